//! The `Executor` actor: runs collection and test jobs for the evaluation
//! supervisors of this node, at most `slots` at once, the rest queued in
//! arrival order. A child of the node root.
//!
//! Takes `Submit`; sends `JobFinished` to each job's `reply_to`. A job's
//! pytest process runs as an actor future, so the mailbox keeps answering
//! `GetLoad` while tests run. If it dies, queued and running jobs are lost
//! and their supervisors never hear back; the node root treats that as fatal.
//!
//! A job whose result would reach no one is stopped: on `StopEvaluation`
//! (its evaluation closed or was cancelled) and when its asker is gone (a
//! supervisor that stopped). Stopping a running job drops its future, which
//! kills its processes (`process::run`, `forkserver`) and frees its slot.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use super::collect::Collected;
use super::pytest::RunReport;
use super::runner::{module_results, Completed, Runner};
use crate::evaluation::model::{round2, ModuleResult, ModuleStatus, Tally};
use crate::metrics::{OutcomeLabel, METRICS};
use crate::peer::LamportClock;

/// How often the runner may let go of what has been idle too long, or whose
/// project is gone.
const TIDY_EVERY: Duration = Duration::from_secs(2);

/// Queues a job.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Submit(pub Job);

/// What a job is about and where its answer goes.
pub struct Job {
    pub evaluation: Uuid,
    /// The supervisor's handle on this job, handed back in `JobFinished`.
    pub task: u64,
    pub project: String,
    pub root: PathBuf,
    pub kind: JobKind,
    pub reply_to: Recipient<JobFinished>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum JobKind {
    /// Build or reuse the environment and list the test modules.
    Collect,
    /// Run these modules in one pytest process.
    Run { modules: Vec<String>, timeout: Duration },
}

/// A job ended; `outcome` is an error text when the job could not run.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct JobFinished {
    pub evaluation: Uuid,
    pub task: u64,
    pub project: String,
    pub outcome: Result<JobOutput, String>,
    pub stamp: RunStamp,
}

/// Where a job ran and, in Lamport time, when it started and ended there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RunStamp {
    pub node: String,
    pub started: u64,
    pub finished: u64,
}

#[derive(Debug)]
pub enum JobOutput {
    Collected(Collected),
    Ran(BTreeMap<String, ModuleResult>),
    /// The run was killed at its time-out; no module has a result.
    TimedOut {
        output: String,
        /// How long the run went before it was killed.
        elapsed: Duration,
    },
}

/// This node's slots and how many are taken.
#[derive(Message)]
#[rtype(result = "Load")]
pub struct GetLoad;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Load {
    pub slots: usize,
    pub busy: usize,
    pub queued: usize,
    /// Tags of the environments built here, last used first, at most
    /// [`super::envs::MAX_ADVERTISED`].
    pub envs: Vec<String>,
}

#[derive(Message)]
#[rtype(result = "ExecutorStats")]
pub struct GetExecutorStats;

/// What this node's executor has done since it started.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ExecutorStats {
    pub modules_run: u64,
    pub modules_timed_out: u64,
    pub tests: Tally,
    /// Sum of the wall time of finished run jobs, in seconds.
    #[serde(skip)]
    pub run_seconds: f64,
    pub mean_module_time: f64,
}

pub struct Executor {
    /// This node's address, stamped on every result.
    node: String,
    slots: usize,
    busy: usize,
    /// Jobs waiting for a slot, oldest first.
    queue: VecDeque<Job>,
    /// Jobs in a slot, by the number `start` gave them.
    running: HashMap<u64, Running>,
    started: u64,
    runner: Rc<dyn Runner>,
    stats: ExecutorStats,
    /// This node's Lamport clock: each job's start and end are events on it.
    clock: Arc<LamportClock>,
}

/// A job in a slot: what to stop it by.
struct Running {
    evaluation: Uuid,
    reply_to: Recipient<JobFinished>,
    handle: SpawnHandle,
}

impl Executor {
    pub fn new(node: String, slots: usize, runner: Rc<dyn Runner>, clock: Arc<LamportClock>) -> Self {
        Self {
            node,
            slots,
            busy: 0,
            queue: VecDeque::new(),
            running: HashMap::new(),
            started: 0,
            runner,
            stats: ExecutorStats::default(),
            clock,
        }
    }

    /// Stops the running jobs that `gone` picks; answers how many.
    fn stop_running(&mut self, gone: impl Fn(&Running) -> bool, ctx: &mut Context<Self>) -> usize {
        let stopped: Vec<u64> = self.running.iter().filter(|(_, r)| gone(r)).map(|(id, _)| *id).collect();
        for id in &stopped {
            let running = self.running.remove(id).expect("listed above");
            ctx.cancel_future(running.handle);
            self.busy -= 1;
            log::debug!("evaluation {}: a running job stopped, its result would reach no one", running.evaluation);
        }
        if !stopped.is_empty() {
            self.pump(ctx);
        }
        stopped.len()
    }

    /// Starts queued jobs while slots are free. A job whose asker is gone (a
    /// supervisor that closed, cancelled or not) is dropped: its result
    /// would reach no one.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while self.busy < self.slots {
            let Some(job) = self.queue.pop_front() else {
                break;
            };
            if !job.reply_to.connected() {
                log::debug!("evaluation {}: task {} dropped, its asker is gone", job.evaluation, job.task);
                continue;
            }
            self.busy += 1;
            self.start(job, ctx);
        }
    }

    fn start(&mut self, job: Job, ctx: &mut Context<Self>) {
        let started_lamport = self.clock.tick();
        let runner = self.runner.clone();
        let root = job.root.clone();
        let kind = job.kind.clone();
        let batch = match &kind {
            JobKind::Run { modules, .. } => modules.len(),
            JobKind::Collect => 0,
        };
        let node = self.node.clone();
        let work = async move {
            match kind {
                JobKind::Collect => runner.collect(root).await.map(JobOutput::Collected),
                JobKind::Run { modules, timeout } => {
                    runner.run(root, modules.clone(), timeout).await.map(|report| match report {
                        RunReport::Completed { reports, exit_code, output, walls, .. } => {
                            let run = Completed { reports, exit_code, output: &output, walls: &walls };
                            JobOutput::Ran(module_results(&modules, run, &node))
                        }
                        RunReport::TimedOut { output, elapsed } => JobOutput::TimedOut { output, elapsed },
                    })
                }
            }
        };
        let started = std::time::Instant::now();
        let (id, evaluation, reply_to) = (self.started, job.evaluation, job.reply_to.clone());
        self.started += 1;
        let handle = ctx.spawn(work.into_actor(self).map(move |outcome, act, ctx| {
            act.running.remove(&id);
            act.busy -= 1;
            if let Ok(output) = &outcome {
                act.record(output, batch, started.elapsed());
            }
            let outcome = outcome.map_err(|e| e.to_string());
            if let Err(e) = &outcome {
                log::warn!("evaluation {}: project {}: job {} failed: {e}", job.evaluation, job.project, job.task);
            }
            let stamp = RunStamp { node: act.node.clone(), started: started_lamport, finished: act.clock.tick() };
            job.reply_to.do_send(JobFinished {
                evaluation: job.evaluation,
                task: job.task,
                project: job.project,
                outcome,
                stamp,
            });
            act.pump(ctx);
        }));
        self.running.insert(id, Running { evaluation, reply_to, handle });
    }

    /// Counts what a job produced; `batch` is how many modules it ran.
    fn record(&mut self, output: &JobOutput, batch: usize, elapsed: Duration) {
        let modules = match output {
            JobOutput::Collected(_) => return,
            JobOutput::Ran(results) => {
                for r in results.values() {
                    self.stats.tests.add(&r.tally);
                    METRICS.modules.get_or_create(&OutcomeLabel { outcome: r.status.as_str().to_owned() }).inc();
                    METRICS.module_wall.observe(r.wall);
                }
                results.len() as u64
            }
            // A batch that times out runs again module by module: only a
            // single module's time-out is its result.
            JobOutput::TimedOut { .. } if batch == 1 => {
                self.stats.modules_timed_out += 1;
                METRICS
                    .modules
                    .get_or_create(&OutcomeLabel { outcome: ModuleStatus::Timeout.as_str().to_owned() })
                    .inc();
                METRICS.module_wall.observe(elapsed.as_secs_f64());
                1
            }
            JobOutput::TimedOut { .. } => 0,
        };
        if modules == 0 {
            return;
        }
        self.stats.modules_run += modules;
        self.stats.run_seconds += elapsed.as_secs_f64();
        self.stats.mean_module_time = round2(self.stats.run_seconds / self.stats.modules_run as f64);
    }
}

impl Actor for Executor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(TIDY_EVERY, |act, ctx| {
            act.stop_running(|r| !r.reply_to.connected(), ctx);
            act.runner.tidy();
        });
    }
}

crate::panics_when_told!(Executor);

impl Handler<Submit> for Executor {
    type Result = ();

    fn handle(&mut self, Submit(job): Submit, ctx: &mut Context<Self>) {
        self.queue.push_back(job);
        self.pump(ctx);
    }
}

/// An evaluation is over here: its jobs still queued never start and its
/// running ones are stopped; answers how many there were.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct StopEvaluation(pub Uuid);

impl Handler<StopEvaluation> for Executor {
    type Result = usize;

    fn handle(&mut self, StopEvaluation(evaluation): StopEvaluation, ctx: &mut Context<Self>) -> usize {
        let before = self.queue.len();
        self.queue.retain(|job| job.evaluation != evaluation);
        before - self.queue.len() + self.stop_running(|r| r.evaluation == evaluation, ctx)
    }
}

impl Handler<GetLoad> for Executor {
    type Result = MessageResult<GetLoad>;

    fn handle(&mut self, _: GetLoad, _: &mut Context<Self>) -> Self::Result {
        let envs = self.runner.envs();
        MessageResult(Load { slots: self.slots, busy: self.busy, queued: self.queue.len(), envs })
    }
}

impl Handler<GetExecutorStats> for Executor {
    type Result = MessageResult<GetExecutorStats>;

    fn handle(&mut self, _: GetExecutorStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use futures_util::future::LocalBoxFuture;
    use futures_util::FutureExt;
    use tokio::sync::oneshot;

    use super::*;
    use crate::evaluation::model::{ModuleStatus, Outcome, TestCase};
    use crate::executor::results::ModuleReport;
    use crate::executor::ExecutorError;

    type Pending = Rc<RefCell<HashMap<String, oneshot::Sender<Result<RunReport, ExecutorError>>>>>;

    /// A runner whose runs end when the test says so: each run is keyed by
    /// its first module, and `started` records the order runs began in.
    #[derive(Default, Clone)]
    struct Scripted {
        pending: Pending,
        started: Rc<RefCell<Vec<String>>>,
    }

    impl Scripted {
        fn finish(&self, key: &str, report: Result<RunReport, ExecutorError>) {
            let tx = self.pending.borrow_mut().remove(key).expect("run is pending");
            tx.send(report).ok();
        }
    }

    impl Runner for Scripted {
        fn collect(&self, _: PathBuf) -> LocalBoxFuture<'static, Result<Collected, ExecutorError>> {
            async { Ok(Collected::default()) }.boxed_local()
        }

        fn run(
            &self,
            _: PathBuf,
            modules: Vec<String>,
            _: Duration,
        ) -> LocalBoxFuture<'static, Result<RunReport, ExecutorError>> {
            let (tx, rx) = oneshot::channel();
            self.pending.borrow_mut().insert(modules[0].clone(), tx);
            self.started.borrow_mut().push(modules[0].clone());
            async move { rx.await.expect("the test finishes every run") }.boxed_local()
        }
    }

    /// Records every `JobFinished` it receives.
    #[derive(Default)]
    struct Probe {
        seen: Vec<JobFinished>,
    }

    impl Actor for Probe {
        type Context = Context<Self>;
    }

    impl Handler<JobFinished> for Probe {
        type Result = ();
        fn handle(&mut self, msg: JobFinished, _: &mut Context<Self>) {
            self.seen.push(msg);
        }
    }

    #[derive(Message)]
    #[rtype(result = "Vec<(u64, String)>")]
    struct Seen;

    /// Stops the probe, as a supervisor stops when it closes.
    #[derive(Message)]
    #[rtype(result = "()")]
    struct Stop;

    impl Handler<Stop> for Probe {
        type Result = ();
        fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
            ctx.stop();
        }
    }

    impl Handler<Seen> for Probe {
        type Result = MessageResult<Seen>;
        fn handle(&mut self, _: Seen, _: &mut Context<Self>) -> Self::Result {
            MessageResult(
                self.seen
                    .iter()
                    .map(|f| {
                        let what = match &f.outcome {
                            Ok(JobOutput::Ran(r)) => format!("ran {}", r.len()),
                            Ok(JobOutput::TimedOut { .. }) => "timed out".into(),
                            Ok(JobOutput::Collected(_)) => "collected".into(),
                            Err(e) => format!("error: {e}"),
                        };
                        (f.task, what)
                    })
                    .collect(),
            )
        }
    }

    fn run_job(task: u64, module: &str, reply_to: Recipient<JobFinished>) -> Submit {
        Submit(Job {
            evaluation: Uuid::nil(),
            task,
            project: "p".into(),
            root: PathBuf::from("/nonexistent"),
            kind: JobKind::Run { modules: vec![module.into()], timeout: Duration::from_secs(5) },
            reply_to,
        })
    }

    fn passed_report(module: &str) -> RunReport {
        let test = TestCase {
            name: "test_x".into(),
            classname: "tests.test_x".into(),
            outcome: Outcome::Passed,
            duration: 0.25,
            message: None,
        };
        let report = ModuleReport { tally: Tally { passed: 1, ..Tally::default() }, duration: 0.25, tests: vec![test] };
        RunReport::Completed {
            reports: Ok(BTreeMap::from([(module.to_owned(), report)])),
            exit_code: Some(0),
            output: "1 passed".into(),
            elapsed: Duration::from_millis(300),
            walls: BTreeMap::from([(module.to_owned(), Duration::from_millis(300))]),
        }
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[actix::test]
    async fn a_queued_job_whose_asker_is_gone_never_starts() {
        let runner = Scripted::default();
        let executor = Executor::new("n1".into(), 1, Rc::new(runner.clone()), Arc::default()).start();
        let (stays, goes) = (Probe::default().start(), Probe::default().start());
        executor.send(run_job(1, "a.py", stays.clone().recipient())).await.unwrap();
        executor.send(run_job(2, "b.py", goes.clone().recipient())).await.unwrap();
        executor.send(run_job(3, "c.py", stays.clone().recipient())).await.unwrap();
        settle().await;
        goes.send(Stop).await.unwrap();
        settle().await;
        runner.finish("a.py", Ok(passed_report("a.py")));
        settle().await;
        assert_eq!(*runner.started.borrow(), vec!["a.py", "c.py"]);
        assert_eq!(executor.send(GetLoad).await.unwrap(), Load { slots: 1, busy: 1, queued: 0, envs: vec![] });
    }

    impl Scripted {
        /// Whether the run keyed `key` was dropped before it ended.
        fn dropped(&self, key: &str) -> bool {
            self.pending.borrow().get(key).expect("run was started").is_closed()
        }
    }

    #[actix::test]
    async fn an_evaluation_over_here_has_its_queued_jobs_dropped_and_its_running_ones_stopped() {
        let runner = Scripted::default();
        let executor = Executor::new("n1".into(), 1, Rc::new(runner.clone()), Arc::default()).start();
        let probe = Probe::default().start();
        let other = Uuid::from_u128(9);
        for (task, module) in [(1, "a.py"), (2, "b.py"), (3, "c.py")] {
            let mut job = run_job(task, module, probe.clone().recipient());
            if task == 3 {
                job.0.evaluation = other;
            }
            executor.send(job).await.unwrap();
        }
        settle().await;
        assert_eq!(executor.send(StopEvaluation(Uuid::nil())).await.unwrap(), 2, "a.py running, b.py queued");
        settle().await;
        assert!(runner.dropped("a.py"), "the running job's future is dropped, which kills its processes");
        assert_eq!(*runner.started.borrow(), vec!["a.py", "c.py"], "its slot goes to the other evaluation");
        assert_eq!(executor.send(GetLoad).await.unwrap(), Load { slots: 1, busy: 1, queued: 0, envs: vec![] });
        runner.finish("c.py", Ok(passed_report("c.py")));
        settle().await;
        assert_eq!(probe.send(Seen).await.unwrap(), vec![(3, "ran 1".to_owned())], "nothing of the stopped one");
        assert_eq!(executor.send(GetLoad).await.unwrap(), Load { slots: 1, busy: 0, queued: 0, envs: vec![] });
    }

    #[actix::test]
    async fn a_running_job_whose_asker_is_gone_is_stopped_at_the_next_tidy() {
        tokio::time::pause();
        let runner = Scripted::default();
        let executor = Executor::new("n1".into(), 1, Rc::new(runner.clone()), Arc::default()).start();
        let (stays, goes) = (Probe::default().start(), Probe::default().start());
        executor.send(run_job(1, "a.py", goes.clone().recipient())).await.unwrap();
        executor.send(run_job(2, "b.py", stays.clone().recipient())).await.unwrap();
        settle().await;
        goes.send(Stop).await.unwrap();
        settle().await;
        assert!(!runner.dropped("a.py"), "not before the tidy");
        tokio::time::advance(TIDY_EVERY + Duration::from_millis(10)).await;
        settle().await;
        assert!(runner.dropped("a.py"));
        assert_eq!(*runner.started.borrow(), vec!["a.py", "b.py"]);
        assert_eq!(executor.send(GetLoad).await.unwrap(), Load { slots: 1, busy: 1, queued: 0, envs: vec![] });
    }

    #[actix::test]
    async fn runs_at_most_slots_jobs_and_queues_the_rest_in_order() {
        let runner = Scripted::default();
        let executor = Executor::new("n1".into(), 2, Rc::new(runner.clone()), Arc::default()).start();
        let probe = Probe::default().start();
        for (task, module) in [(1, "a.py"), (2, "b.py"), (3, "c.py")] {
            executor.send(run_job(task, module, probe.clone().recipient())).await.unwrap();
        }
        settle().await;
        assert_eq!(executor.send(GetLoad).await.unwrap(), Load { slots: 2, busy: 2, queued: 1, envs: vec![] });
        assert_eq!(*runner.started.borrow(), vec!["a.py", "b.py"]);

        runner.finish("b.py", Ok(passed_report("b.py")));
        settle().await;
        assert_eq!(*runner.started.borrow(), vec!["a.py", "b.py", "c.py"]);
        assert_eq!(executor.send(GetLoad).await.unwrap(), Load { slots: 2, busy: 2, queued: 0, envs: vec![] });
        assert_eq!(probe.send(Seen).await.unwrap(), vec![(2, "ran 1".to_string())]);

        runner.finish("a.py", Ok(passed_report("a.py")));
        runner.finish("c.py", Ok(passed_report("c.py")));
        settle().await;
        assert_eq!(executor.send(GetLoad).await.unwrap(), Load { slots: 2, busy: 0, queued: 0, envs: vec![] });
        let stats = executor.send(GetExecutorStats).await.unwrap();
        assert_eq!(stats.modules_run, 3);
        assert_eq!(stats.tests.passed, 3);
    }

    #[actix::test]
    async fn a_module_missing_from_the_report_is_an_error() {
        let runner = Scripted::default();
        let executor = Executor::new("n1".into(), 1, Rc::new(runner.clone()), Arc::default()).start();
        let (tx, rx) = oneshot::channel();
        let catcher = Catcher(Some(tx)).start();
        executor.send(run_job(7, "gone.py", catcher.recipient())).await.unwrap();
        settle().await;
        runner.finish("gone.py", Ok(passed_report("other.py")));
        let finished = rx.await.unwrap();
        let Ok(JobOutput::Ran(results)) = finished.outcome else { panic!("expected results") };
        let result = &results["gone.py"];
        assert_eq!(result.status, ModuleStatus::Error);
        assert_eq!(result.tally.errors, 1);
        assert_eq!(result.node, "n1");
        assert!(result.output.contains("exit code 0"), "{}", result.output);
    }

    #[actix::test]
    async fn timeouts_and_runner_errors_reach_the_supervisor() {
        let runner = Scripted::default();
        let executor = Executor::new("n1".into(), 2, Rc::new(runner.clone()), Arc::default()).start();
        let probe = Probe::default().start();
        executor.send(run_job(1, "hang.py", probe.clone().recipient())).await.unwrap();
        executor.send(run_job(2, "broken.py", probe.clone().recipient())).await.unwrap();
        settle().await;
        runner.finish("hang.py", Ok(RunReport::TimedOut { output: String::new(), elapsed: Duration::from_secs(5) }));
        runner.finish("broken.py", Err(ExecutorError::Collect("boom".into())));
        settle().await;
        assert_eq!(
            probe.send(Seen).await.unwrap(),
            vec![(1, "timed out".to_string()), (2, "error: pytest collection failed: boom".to_string())]
        );
        let stats = executor.send(GetExecutorStats).await.unwrap();
        assert_eq!(stats.modules_timed_out, 1);
        assert_eq!(executor.send(GetLoad).await.unwrap().busy, 0);
    }

    /// Hands the first `JobFinished` to a oneshot.
    struct Catcher(Option<oneshot::Sender<JobFinished>>);

    impl Actor for Catcher {
        type Context = Context<Self>;
    }

    impl Handler<JobFinished> for Catcher {
        type Result = ();
        fn handle(&mut self, msg: JobFinished, _: &mut Context<Self>) {
            if let Some(tx) = self.0.take() {
                tx.send(msg).ok();
            }
        }
    }
}
