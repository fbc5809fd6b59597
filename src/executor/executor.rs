//! The `Executor` actor: runs collection and test jobs for the evaluation
//! supervisors of this node, at most `slots` at once, the rest queued in
//! arrival order. A child of the node root.
//!
//! Takes `Submit`; sends `JobFinished` to each job's `reply_to`. A job's
//! pytest process runs as an actor future, so the mailbox keeps answering
//! `GetLoad` while tests run. If it dies, queued and running jobs are lost
//! and their supervisors never hear back; the node root treats that as fatal.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use super::collect::Collected;
use super::pytest::RunReport;
use super::runner::{module_results, Runner};
use crate::evaluation::model::{round2, ModuleResult, Tally};

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
    Run {
        modules: Vec<String>,
        timeout: Duration,
    },
}

/// A job ended; `outcome` is an error text when the job could not run.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct JobFinished {
    pub evaluation: Uuid,
    pub task: u64,
    pub project: String,
    pub outcome: Result<JobOutput, String>,
}

#[derive(Debug)]
pub enum JobOutput {
    Collected(Collected),
    Ran(BTreeMap<String, ModuleResult>),
    /// The run was killed at its time-out; no module has a result.
    TimedOut {
        output: String,
    },
}

/// This node's slots and how many are taken.
#[derive(Message)]
#[rtype(result = "Load")]
pub struct GetLoad;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Load {
    pub slots: usize,
    pub busy: usize,
    pub queued: usize,
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
    runner: Rc<dyn Runner>,
    stats: ExecutorStats,
}

impl Executor {
    pub fn new(node: String, slots: usize, runner: Rc<dyn Runner>) -> Self {
        Self {
            node,
            slots,
            busy: 0,
            queue: VecDeque::new(),
            runner,
            stats: ExecutorStats::default(),
        }
    }

    /// Starts queued jobs while slots are free.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while self.busy < self.slots {
            let Some(job) = self.queue.pop_front() else {
                break;
            };
            self.busy += 1;
            self.start(job, ctx);
        }
    }

    fn start(&mut self, job: Job, ctx: &mut Context<Self>) {
        let runner = self.runner.clone();
        let root = job.root.clone();
        let kind = job.kind.clone();
        let node = self.node.clone();
        let work = async move {
            match kind {
                JobKind::Collect => runner.collect(root).await.map(JobOutput::Collected),
                JobKind::Run { modules, timeout } => runner
                    .run(root, modules.clone(), timeout)
                    .await
                    .map(|report| match report {
                        RunReport::Completed {
                            reports,
                            exit_code,
                            output,
                            ..
                        } => JobOutput::Ran(module_results(
                            &modules, reports, exit_code, &output, &node,
                        )),
                        RunReport::TimedOut { output, .. } => JobOutput::TimedOut { output },
                    }),
            }
        };
        let started = std::time::Instant::now();
        ctx.spawn(work.into_actor(self).map(move |outcome, act, ctx| {
            act.busy -= 1;
            if let Ok(output) = &outcome {
                act.record(output, started.elapsed());
            }
            let outcome = outcome.map_err(|e| e.to_string());
            if let Err(e) = &outcome {
                log::warn!(
                    "evaluation {}: project {}: job {} failed: {e}",
                    job.evaluation,
                    job.project,
                    job.task
                );
            }
            job.reply_to.do_send(JobFinished {
                evaluation: job.evaluation,
                task: job.task,
                project: job.project,
                outcome,
            });
            act.pump(ctx);
        }));
    }

    fn record(&mut self, output: &JobOutput, elapsed: Duration) {
        let modules = match output {
            JobOutput::Collected(_) => return,
            JobOutput::Ran(results) => {
                for r in results.values() {
                    self.stats.tests.add(&r.tally);
                }
                results.len() as u64
            }
            JobOutput::TimedOut { .. } => {
                self.stats.modules_timed_out += 1;
                1
            }
        };
        self.stats.modules_run += modules;
        self.stats.run_seconds += elapsed.as_secs_f64();
        self.stats.mean_module_time =
            round2(self.stats.run_seconds / self.stats.modules_run as f64);
    }
}

impl Actor for Executor {
    type Context = Context<Self>;
}

impl Handler<Submit> for Executor {
    type Result = ();

    fn handle(&mut self, Submit(job): Submit, ctx: &mut Context<Self>) {
        self.queue.push_back(job);
        self.pump(ctx);
    }
}

impl Handler<GetLoad> for Executor {
    type Result = MessageResult<GetLoad>;

    fn handle(&mut self, _: GetLoad, _: &mut Context<Self>) -> Self::Result {
        MessageResult(Load {
            slots: self.slots,
            busy: self.busy,
            queued: self.queue.len(),
        })
    }
}

impl Handler<GetExecutorStats> for Executor {
    type Result = MessageResult<GetExecutorStats>;

    fn handle(&mut self, _: GetExecutorStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats.clone())
    }
}
