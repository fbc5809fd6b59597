//! The `Registry` actor: the parent of every `EvaluationSupervisor` of this
//! node, a child of the node root. It admits submissions (`admission`): a
//! submission reserves a place before its body is read, or is refused; an
//! accepted evaluation starts its supervisor when one of
//! `max_running_evaluations` places is free, the oldest submission first.
//! It also adopts evaluations whose supervisor is gone: on every
//! `Reconcile` (its timer, and each `NodeLost`) it looks in the store for
//! unfinished evaluations whose supervisor membership holds dead, left or
//! unknown — or is this node, restarted — takes the lock `adopt/<id>`,
//! decides (`adoption::decide`) and queues it to run in a new term, holding
//! the lock until it closes.
//!
//! Takes `Reserve`, `CancelReservation` and `StartEvaluation` from the API,
//! `Deliver` (a worker's result, from `POST /evaluation_result`), `NodeLost`
//! from membership, which it passes to every supervisor, and
//! `EvaluationFinished` from its supervisors. If it dies, running supervisors
//! go on but new evaluations cannot start, waiting ones stay `queued`, remote
//! results cannot reach them and nothing is adopted here; the store keeps
//! everything for the next start.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::admission::{Admission, Figures, Full, Ticket};
use super::adoption::{self, AdoptionError, Decision};
use super::fence;
use super::model::EvaluationStatus;
use super::supervisor::{Cancel, EvaluationFinished, EvaluationSupervisor, Links, NodeLost, SupervisorSettings};
use crate::balance::{GetBalance, LoadBalancer};
use crate::executor::{JobFinished, Submit};
use crate::locks::{Acquire, LockError, Release};
use crate::membership::{GetJoined, GetMembers, Status};
use crate::node::fail_stop::{ActorKind, Panic};
use crate::peer::model::EvaluationResult;
use crate::peer::Peers;
use crate::store::{EvaluationRecord, FinishedBefore, ListUnfinished, RemoveFinished, SetStatus, Store, StoreError};

/// Takes a place for a submission about to be received, or refuses it.
#[derive(Message)]
#[rtype(result = "Result<Ticket, Full>")]
pub struct Reserve;

/// Gives back the place of a submission that was not accepted.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CancelReservation(pub Ticket);

/// Starts the supervisor of an evaluation already recorded in the store, at
/// once or when a running place frees; redeems the submission's place.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartEvaluation {
    pub record: EvaluationRecord,
    /// Credentials for the clones, held in memory only.
    pub token: Option<String>,
    pub ticket: Ticket,
}

/// Hands a worker's result to its evaluation's supervisor; false when this
/// node supervises no such evaluation (any more).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Deliver(pub EvaluationResult);

/// Whether this node supervises an evaluation now: runs its supervisor,
/// holds it waiting for a running place, or is deciding to adopt it under
/// its lock.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct IsSupervising(pub Uuid);

/// Looks for evaluations to adopt.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconcile;

/// A client cancelled an evaluation: its supervisor here closes it, or it
/// leaves the queue; answers whether it was here.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct CancelEvaluation(pub Uuid);

/// Removes the finished evaluations older than the retention; answers how
/// many went.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Sweep;

/// How often finished evaluations past their retention are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// How many evaluations run, wait, and are being received here.
#[derive(Message)]
#[rtype(result = "Figures")]
pub struct GetAdmission;

/// What the registry is handed: its own bounds, and what it hands every
/// supervisor of this node.
pub struct Shared {
    pub settings: SupervisorSettings,
    pub store: Addr<Store>,
    /// Where tasks placed on this node run.
    pub executor: Recipient<Submit>,
    /// Who picks the node of each task.
    pub balancer: Addr<LoadBalancer>,
    pub peers: Peers,
    /// The cluster lock: `adopt/<id>` is taken before deciding an adoption.
    pub lock: Recipient<Acquire>,
    pub unlock: Recipient<Release>,
    /// Membership: nothing is adopted before this node has joined, and only
    /// from a supervisor it holds dead, left or does not know.
    pub joined: Recipient<GetJoined>,
    pub members: Recipient<GetMembers>,
    /// How often the store is searched for evaluations to adopt.
    pub reconcile: Duration,
    /// Supervisors running at once.
    pub max_running: usize,
    /// Accepted evaluations that may wait for a running place.
    pub max_queued: usize,
    /// How long a finished evaluation is kept; `None` keeps it.
    pub retention: Option<Duration>,
}

/// An evaluation waiting for a running place.
struct Pending {
    record: EvaluationRecord,
    token: Option<String>,
}

pub struct Registry {
    shared: Shared,
    /// Which evaluations run and wait here, and the places of submissions
    /// being received; the API reserves them.
    admission: Admission<Pending>,
    /// The live supervisors, by evaluation.
    supervisors: HashMap<Uuid, Addr<EvaluationSupervisor>>,
    /// Evaluations whose lock is asked for or whose adoption is being decided.
    adopting: HashSet<Uuid>,
    /// Evaluations whose lock this node was granted and whose adoption it is
    /// deciding: to peers, as good as supervised here.
    deciding: HashSet<Uuid>,
    /// Adopted evaluations: their lock is held until their supervisor stops.
    held: HashSet<Uuid>,
    /// When this registry started: an evaluation this node took before then
    /// was left by a past run of the node; one taken since is started by the API.
    boot: DateTime<Utc>,
}

impl Registry {
    pub fn new(shared: Shared) -> Self {
        Self {
            admission: Admission::new(shared.max_running, shared.max_queued),
            shared,
            supervisors: HashMap::new(),
            adopting: HashSet::new(),
            deciding: HashSet::new(),
            held: HashSet::new(),
            boot: Utc::now(),
        }
    }

    /// Queues an evaluation, then starts whatever has a running place.
    fn enqueue(
        &mut self,
        ticket: Option<Ticket>,
        record: EvaluationRecord,
        token: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        let (id, submitted_at) = (record.id, record.submitted_at);
        if !self.admission.enqueue(ticket, id, submitted_at, Pending { record, token }) {
            return;
        }
        self.admit(ctx);
        if !self.supervisors.contains_key(&id) {
            log::info!("evaluation {id}: queued, {} waiting for a running place", self.admission.figures().queued);
        }
    }

    /// Starts the oldest waiting evaluations while running places are free.
    fn admit(&mut self, ctx: &mut Context<Self>) {
        while let Some(Pending { record, token }) = self.admission.next_to_start() {
            self.start_supervisor(record, token, ctx);
        }
    }

    /// Takes the lock, decides, and adopts or stands down.
    fn adopt(&mut self, id: Uuid, ctx: &mut Context<Self>) {
        self.adopting.insert(id);
        let lock = self.shared.lock.send(Acquire(adoption::lock_name(id)));
        let (store, peers, balancer) =
            (self.shared.store.clone(), self.shared.peers.clone(), self.shared.balancer.clone());
        let (me, blobs_dir): (String, PathBuf) =
            (self.shared.settings.node.clone(), self.shared.settings.blobs_dir.clone());
        let granted = async move { lock.await.map_err(Refused::Mailbox)?.map_err(Refused::Lock) };
        let members = self.shared.members.send(GetMembers);
        let decide = async move {
            let members = fence::members(members.await.unwrap_or_default(), &me);
            let live: Vec<String> = balancer
                .send(GetBalance)
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|m| m.addr)
                .filter(|a| *a != me)
                .collect();
            let cx = adoption::Context {
                me: &me,
                store: &store,
                peers: &peers,
                blobs_dir: &blobs_dir,
                live: &live,
                members: &members,
            };
            adoption::decide(id, &cx).await.map_err(Refused::Adoption)
        };
        let decided = granted.into_actor(self).then(move |granted, act, _| {
            let decision: ResponseActFuture<Self, _> = match granted {
                // From here until it adopts or stands down, this node answers
                // that it supervises the evaluation: a candidate granted the
                // lock after this one's lease ran out must not adopt too.
                Ok(()) => {
                    act.deciding.insert(id);
                    Box::pin(decide.into_actor(act))
                }
                Err(e) => Box::pin(fut::ready(Err(e))),
            };
            decision
        });
        ctx.spawn(decided.map(move |decision, act, ctx| {
            act.adopting.remove(&id);
            act.deciding.remove(&id);
            match decision {
                Ok(Decision::Adopt(record)) if act.admission.holds(id) => {
                    log::warn!("evaluation {id}: adopted in term {} but already supervised here", record.epoch);
                    act.shared.unlock.do_send(Release(adoption::lock_name(id)));
                }
                Ok(Decision::Adopt(record)) => {
                    log::info!("evaluation {id}: adopted in term {}", record.epoch);
                    act.held.insert(id);
                    // Accepted by the cluster long ago: never refused, but it
                    // waits for a running place like any other.
                    act.enqueue(None, record, None, ctx);
                }
                Ok(Decision::StandDown(why)) => {
                    log::info!("evaluation {id}: not adopted: {why}");
                    act.shared.unlock.do_send(Release(adoption::lock_name(id)));
                }
                Err(e @ Refused::Adoption(_)) => {
                    log::warn!("evaluation {id}: adoption put off: {e}");
                    act.shared.unlock.do_send(Release(adoption::lock_name(id)));
                }
                Err(e) => log::warn!("evaluation {id}: adoption put off: {e}"),
            }
        }));
    }

    fn start_supervisor(&mut self, record: EvaluationRecord, token: Option<String>, ctx: &mut Context<Self>) {
        let id = record.id;
        if self.supervisors.contains_key(&id) {
            return;
        }
        let links = Links {
            store: self.shared.store.clone(),
            executor: self.shared.executor.clone(),
            balancer: self.shared.balancer.clone(),
            peers: self.shared.peers.clone(),
            members: self.shared.members.clone(),
            on_finished: ctx.address().recipient(),
        };
        let supervisor = EvaluationSupervisor::new(record, token, self.shared.settings.clone(), links).start();
        self.supervisors.insert(id, supervisor);
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.shared.reconcile, |_, ctx| ctx.notify(Reconcile));
        ctx.notify(Reconcile);
        if self.shared.retention.is_some() {
            ctx.run_interval(SWEEP_EVERY, |_, ctx| ctx.notify(Sweep));
            ctx.notify(Sweep);
        }
    }
}

impl Handler<CancelEvaluation> for Registry {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, CancelEvaluation(id): CancelEvaluation, _: &mut Context<Self>) -> Self::Result {
        if let Some(supervisor) = self.supervisors.get(&id) {
            supervisor.do_send(Cancel);
            return Box::pin(async { true });
        }
        if self.admission.withdraw(id).is_none() {
            return Box::pin(async { false });
        }
        let store = self.shared.store.clone();
        let dir = self.shared.settings.evaluations_dir.clone();
        Box::pin(async move {
            let cancelled = SetStatus {
                id,
                status: EvaluationStatus::Cancelled,
                at: Utc::now(),
                error: Some("cancelled by a client".into()),
            };
            if let Err(e) = store.send(cancelled).await.map_err(StoreError::from).and_then(|r| r) {
                log::error!("evaluation {id}: cannot record that it was cancelled: {e}");
            }
            if let Err(e) = super::workspace::remove(&dir, id).await {
                log::warn!("evaluation {id}: cannot remove its workspace: {e}");
            }
            true
        })
    }
}

impl Handler<Sweep> for Registry {
    type Result = ResponseFuture<usize>;

    /// Each node sweeps its own copies by the same rule, so that a
    /// finished evaluation leaves every node once its time is up.
    fn handle(&mut self, _: Sweep, _: &mut Context<Self>) -> Self::Result {
        let (store, dir) = (self.shared.store.clone(), self.shared.settings.evaluations_dir.clone());
        let retention = self.shared.retention;
        Box::pin(async move {
            let Some(keep) = retention.and_then(|r| chrono::TimeDelta::from_std(r).ok()) else { return 0 };
            let expired = match store.send(FinishedBefore(Utc::now() - keep)).await {
                Ok(Ok(ids)) => ids,
                Ok(Err(e)) => return log_sweep_error(&e),
                Err(e) => return log_sweep_error(&e),
            };
            let mut removed = 0;
            for id in expired {
                if let Ok(Ok(true)) = store.send(RemoveFinished(id)).await {
                    if let Err(e) = super::workspace::remove(&dir, id).await {
                        log::warn!("evaluation {id}: cannot remove its workspace: {e}");
                    }
                    log::info!("evaluation {id}: removed, finished longer ago than the retention");
                    removed += 1;
                }
            }
            removed
        })
    }
}

fn log_sweep_error(e: &dyn std::fmt::Display) -> usize {
    log::error!("retention: cannot list the finished evaluations: {e}");
    0
}

/// Why an adoption was put off until the next `Reconcile`.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("lock: {0}")]
    Lock(LockError),
    #[error("lock service unreachable: {0}")]
    Mailbox(actix::MailboxError),
    #[error(transparent)]
    Adoption(AdoptionError),
}

impl Handler<Reconcile> for Registry {
    type Result = ();

    fn handle(&mut self, _: Reconcile, ctx: &mut Context<Self>) {
        let (joined, store, members) = (
            self.shared.joined.send(GetJoined),
            self.shared.store.send(ListUnfinished),
            self.shared.members.send(GetMembers),
        );
        let look = async move { (joined.await, store.await, members.await) };
        ctx.spawn(look.into_actor(self).map(|(joined, unfinished, members), act, ctx| {
            if !matches!(joined, Ok(true)) {
                return;
            }
            let (Ok(Ok(unfinished)), Ok(members)) = (unfinished, members) else {
                log::warn!("cannot look for evaluations to adopt: store or membership unreachable");
                return;
            };
            // A suspect may still refute: only a death, a departure, or an
            // address no one knows any more makes a supervisor gone.
            let present: HashSet<String> = members
                .into_iter()
                .filter(|m| matches!(m.status, Status::Alive | Status::Suspect))
                .map(|m| m.address)
                .collect();
            let me = act.shared.settings.node.clone();
            for record in unfinished {
                let id = record.id;
                if act.admission.holds(id) || act.adopting.contains(&id) {
                    continue;
                }
                let left_by_past_run = record.supervisor == me && record.submitted_at < act.boot;
                let gone = left_by_past_run || !present.contains(&record.supervisor);
                if gone {
                    log::info!("evaluation {id}: supervisor {} is gone, asking to adopt it", record.supervisor);
                    act.adopt(id, ctx);
                }
            }
        }));
    }
}

impl Handler<StartEvaluation> for Registry {
    type Result = ();

    fn handle(&mut self, msg: StartEvaluation, ctx: &mut Context<Self>) {
        self.enqueue(Some(msg.ticket), msg.record, msg.token, ctx);
    }
}

impl Handler<Reserve> for Registry {
    type Result = Result<Ticket, Full>;

    fn handle(&mut self, _: Reserve, _: &mut Context<Self>) -> Self::Result {
        self.admission.reserve()
    }
}

impl Handler<CancelReservation> for Registry {
    type Result = ();

    fn handle(&mut self, CancelReservation(ticket): CancelReservation, _: &mut Context<Self>) {
        self.admission.cancel(ticket);
    }
}

impl Handler<Deliver> for Registry {
    type Result = bool;

    fn handle(&mut self, Deliver(result): Deliver, _: &mut Context<Self>) -> bool {
        let Some(supervisor) = self.supervisors.get(&result.evaluation) else {
            return false;
        };
        supervisor.do_send(JobFinished {
            evaluation: result.evaluation,
            task: result.task,
            project: result.project,
            outcome: result.outcome.into(),
            stamp: result.stamp,
        });
        true
    }
}

impl Handler<NodeLost> for Registry {
    type Result = ();

    fn handle(&mut self, msg: NodeLost, ctx: &mut Context<Self>) {
        for supervisor in self.supervisors.values() {
            supervisor.do_send(msg.clone());
        }
        ctx.notify(Reconcile);
    }
}

impl Handler<EvaluationFinished> for Registry {
    type Result = ();

    fn handle(&mut self, EvaluationFinished(id): EvaluationFinished, ctx: &mut Context<Self>) {
        self.supervisors.remove(&id);
        self.admission.finished(id);
        if self.held.remove(&id) {
            self.shared.unlock.do_send(Release(adoption::lock_name(id)));
        }
        self.admit(ctx);
    }
}

impl Handler<IsSupervising> for Registry {
    type Result = bool;

    /// A waiting evaluation counts: this node answers for it, and no other
    /// node may adopt it.
    fn handle(&mut self, IsSupervising(id): IsSupervising, _: &mut Context<Self>) -> bool {
        self.admission.holds(id) || self.deciding.contains(&id)
    }
}

impl Handler<Panic> for Registry {
    type Result = bool;

    /// Panics, or hands the panic to the balancer or to a supervisor (which
    /// hands a replicator's to its replicator): false when there is none.
    fn handle(&mut self, msg: Panic, _: &mut Context<Self>) -> bool {
        match msg.0 {
            ActorKind::Balancer => self.shared.balancer.do_send(msg),
            ActorKind::Supervisor | ActorKind::Replicator => match self.supervisors.values().next() {
                Some(supervisor) => supervisor.do_send(msg),
                None => return false,
            },
            kind => panic!("{kind:?} told to panic (POST /panic)"),
        }
        true
    }
}

impl Handler<GetAdmission> for Registry {
    type Result = MessageResult<GetAdmission>;

    fn handle(&mut self, _: GetAdmission, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.admission.figures())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;

    use super::*;
    use crate::balance::{LeastConnections, NodeLoad, SetMembers};
    use crate::evaluation::model::EvaluationStatus;
    use crate::evaluation::model::EventKind;
    use crate::evaluation::supervisor::tests::{ProbeExecutor, TakeJobs};
    use crate::executor::{JobKind, RunStamp};
    use crate::store::{CreateEvaluation, GetEvaluation, GetEvents, ProjectRow, SaveProjects, SetStatus, Source};
    use crate::testing::SimNet;

    /// Stands in for the lock service and membership: grants every lock at
    /// once, records what is asked and released, and says it has joined.
    #[derive(Default)]
    struct ProbeLocks {
        asked: Vec<String>,
        released: Vec<String>,
    }

    impl Actor for ProbeLocks {
        type Context = Context<Self>;
    }

    impl Handler<Acquire> for ProbeLocks {
        type Result = Result<(), LockError>;
        fn handle(&mut self, Acquire(name): Acquire, _: &mut Context<Self>) -> Self::Result {
            self.asked.push(name);
            Ok(())
        }
    }

    impl Handler<Release> for ProbeLocks {
        type Result = ();
        fn handle(&mut self, Release(name): Release, _: &mut Context<Self>) {
            self.released.push(name);
        }
    }

    impl Handler<GetMembers> for ProbeLocks {
        type Result = MessageResult<GetMembers>;
        fn handle(&mut self, _: GetMembers, _: &mut Context<Self>) -> Self::Result {
            MessageResult(Vec::new())
        }
    }

    impl Handler<GetJoined> for ProbeLocks {
        type Result = bool;
        fn handle(&mut self, _: GetJoined, _: &mut Context<Self>) -> bool {
            true
        }
    }

    #[derive(Message)]
    #[rtype(result = "(Vec<String>, Vec<String>)")]
    struct GetAsked;

    impl Handler<GetAsked> for ProbeLocks {
        type Result = MessageResult<GetAsked>;
        fn handle(&mut self, _: GetAsked, _: &mut Context<Self>) -> Self::Result {
            MessageResult((self.asked.clone(), self.released.clone()))
        }
    }

    /// A registry on node "n1", alone in its cluster, with a probe executor
    /// and probe locks.
    struct Bench {
        dir: tempfile::TempDir,
        store: Addr<Store>,
        executor: Addr<ProbeExecutor>,
        locks: Addr<ProbeLocks>,
        registry: Addr<Registry>,
    }

    async fn bench(max_running: usize, max_queued: usize) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::in_memory().unwrap().start();
        let executor = ProbeExecutor::default().start();
        let settings = crate::evaluation::supervisor::tests::test_settings(dir.path());
        let balancer = LoadBalancer::new(Box::new(LeastConnections::default())).start();
        let this_node = NodeLoad { addr: "n1".into(), slots: 1, busy: 0, envs: vec![] };
        balancer.send(SetMembers(vec![this_node])).await.unwrap();
        let locks = ProbeLocks::default().start();
        let registry = Registry::new(Shared {
            settings,
            store: store.clone(),
            executor: executor.clone().recipient(),
            balancer,
            peers: SimNet::new().peers("n1"),
            lock: locks.clone().recipient(),
            unlock: locks.clone().recipient(),
            joined: locks.clone().recipient(),
            members: locks.clone().recipient(),
            reconcile: Duration::from_secs(3600),
            max_running,
            max_queued,
            retention: Some(Duration::from_secs(86_400)),
        })
        .start();
        Bench { dir, store, executor, locks, registry }
    }

    impl Bench {
        /// Records an evaluation of one project `p` on "n1", its workspace
        /// unpacked; `known` also stores the project, as a copy to adopt has it.
        async fn record(&self, submitted_at: DateTime<Utc>, status: EvaluationStatus, known: bool) -> EvaluationRecord {
            let id = Uuid::new_v4();
            let project = self.dir.path().join(id.to_string()).join("p");
            std::fs::create_dir_all(project.join("tests")).unwrap();
            std::fs::write(project.join("requirements.txt"), "").unwrap();
            std::fs::write(project.join("tests/test_a.py"), "def test_a(): pass\n").unwrap();
            let record = EvaluationRecord {
                id,
                status,
                source: Source::Zip { name: "z".into() },
                supervisor: "n1".into(),
                epoch: 0,
                input_sha256: None,
                input_ready: true,
                submitted_at,
                started_at: None,
                finished_at: None,
                error: None,
            };
            self.store.send(CreateEvaluation(record.clone())).await.unwrap().unwrap();
            if known {
                let row = ProjectRow::found("p".into(), "p".into(), None);
                self.store.send(SaveProjects { id, projects: vec![row] }).await.unwrap().unwrap();
            }
            record
        }

        /// Waits, polling, until the executor was handed `n` more jobs.
        async fn jobs(&self, n: usize) -> Vec<(u64, String, JobKind, Recipient<JobFinished>)> {
            let mut jobs = Vec::new();
            for _ in 0..2500 {
                jobs.extend(self.executor.send(TakeJobs).await.unwrap());
                if jobs.len() >= n {
                    break;
                }
                // Packing runs on a blocking thread: poll in real time, bounded.
                actix_rt::time::sleep(Duration::from_millis(2)).await;
            }
            assert_eq!(jobs.len(), n, "jobs handed out");
            jobs
        }

        async fn status(&self, id: Uuid) -> EvaluationStatus {
            self.store.send(GetEvaluation { id, with_tests: false }).await.unwrap().unwrap().unwrap().record.status
        }

        async fn figures(&self) -> Figures {
            self.registry.send(GetAdmission).await.unwrap()
        }

        /// Fails the collection `job` answers for, which closes its evaluation.
        async fn fail(&self, id: Uuid, job: &(u64, String, JobKind, Recipient<JobFinished>)) {
            let stamp = RunStamp { node: "n1".into(), started: 0, finished: 0 };
            let outcome = Err("pytest collected nothing".to_owned());
            let finished = JobFinished { evaluation: id, task: job.0, project: job.1.clone(), outcome, stamp };
            job.3.send(finished).await.unwrap();
        }

        /// Waits, polling, until the evaluation is closed.
        async fn until_done(&self, id: Uuid) {
            for _ in 0..2500 {
                if self.status(id).await.is_finished() {
                    return;
                }
                actix_rt::time::sleep(Duration::from_millis(2)).await;
            }
            panic!("evaluation {id} did not close");
        }
    }

    #[actix::test]
    async fn a_cancelled_evaluation_leaves_the_queue_or_its_supervisor_closes_it() {
        let b = bench(1, 1).await;
        let now = Utc::now();
        let mut ids = Vec::new();
        for at in [now, now + chrono::Duration::seconds(1)] {
            let ticket = b.registry.send(Reserve).await.unwrap().unwrap();
            let record = b.record(at, EvaluationStatus::Queued, false).await;
            ids.push(record.id);
            b.registry.send(StartEvaluation { record, token: None, ticket }).await.unwrap();
        }
        b.jobs(1).await;
        assert_eq!(b.figures().await, Figures { running: 1, queued: 1, receiving: 0 });
        assert!(b.registry.send(CancelEvaluation(ids[1])).await.unwrap());
        assert_eq!(b.figures().await, Figures { running: 1, queued: 0, receiving: 0 });
        assert_eq!(b.status(ids[1]).await, EvaluationStatus::Cancelled);
        assert!(b.registry.send(CancelEvaluation(ids[0])).await.unwrap());
        b.until_done(ids[0]).await;
        assert_eq!(b.status(ids[0]).await, EvaluationStatus::Cancelled);
        assert!(!b.registry.send(CancelEvaluation(Uuid::new_v4())).await.unwrap(), "not here");
    }

    #[actix::test]
    async fn the_sweep_removes_what_finished_longer_ago_than_the_retention() {
        let b = bench(1, 1).await;
        let day = chrono::Duration::days(1);
        let old = b.record(Utc::now() - day * 3, EvaluationStatus::Running, true).await.id;
        let recent = b.record(Utc::now() - day * 3, EvaluationStatus::Running, true).await.id;
        let running = b.record(Utc::now() - day * 3, EvaluationStatus::Queued, true).await.id;
        for (id, at) in [(old, Utc::now() - day * 2), (recent, Utc::now() - day / 2)] {
            b.store.send(SetStatus { id, status: EvaluationStatus::Done, at, error: None }).await.unwrap().unwrap();
        }
        assert_eq!(b.registry.send(Sweep).await.unwrap(), 1);
        let held = |id| b.store.send(GetEvaluation { id, with_tests: false });
        assert!(held(old).await.unwrap().unwrap().is_none());
        assert!(!b.dir.path().join(old.to_string()).exists(), "its workspace went with it");
        assert!(held(recent).await.unwrap().unwrap().is_some());
        assert!(held(running).await.unwrap().unwrap().is_some(), "an unfinished one stays, however old");
        assert_eq!(b.registry.send(Sweep).await.unwrap(), 0);
    }

    #[actix::test]
    async fn adopts_what_a_past_run_of_this_node_left_unfinished_under_the_lock() {
        let b = bench(4, 4).await;
        let record = b.record(Utc::now() - chrono::Duration::hours(1), EvaluationStatus::Running, true).await;
        let id = record.id;
        b.registry.send(Reconcile).await.unwrap();
        let jobs = b.jobs(1).await;
        let collects: Vec<_> = jobs.into_iter().map(|(_, project, kind, _)| (project, kind)).collect();
        assert_eq!(collects, vec![("p".to_string(), JobKind::Collect)]);
        assert_eq!(b.figures().await.running, 1);
        let (asked, released) = b.locks.send(GetAsked).await.unwrap();
        assert_eq!((asked, released), (vec![format!("adopt/{id}")], vec![]), "held while it supervises");
        let record = b.store.send(GetEvaluation { id, with_tests: false }).await.unwrap().unwrap().unwrap().record;
        assert_eq!((record.supervisor.as_str(), record.epoch), ("n1", 1));
        let events = b.store.send(GetEvents(id)).await.unwrap().unwrap().unwrap();
        let kinds: Vec<EventKind> = events.into_iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![EventKind::SupervisorLost, EventKind::Adopted, EventKind::Assigned]);
    }

    #[actix::test]
    async fn runs_at_most_max_running_and_starts_the_queue_in_order_of_submission() {
        let b = bench(1, 2).await;
        let mut tickets = Vec::new();
        for _ in 0..3 {
            tickets.push(b.registry.send(Reserve).await.unwrap().expect("a place is free"));
        }
        let refused = b.registry.send(Reserve).await.unwrap();
        assert_eq!(refused, Err(Full { running: 0, waiting: 3 }), "places are taken before bodies are read");
        assert_eq!(b.figures().await, Figures { running: 0, queued: 0, receiving: 3 });

        // Recorded in another order than submitted: `third` was submitted before `second`.
        let now = Utc::now();
        let first = b.record(now, EvaluationStatus::Queued, false).await;
        let second = b.record(now + chrono::Duration::seconds(2), EvaluationStatus::Queued, false).await;
        let third = b.record(now + chrono::Duration::seconds(1), EvaluationStatus::Queued, false).await;
        let ids = [first.id, second.id, third.id];
        for (record, ticket) in [first, second, third].into_iter().zip(tickets) {
            b.registry.send(StartEvaluation { record, token: None, ticket }).await.unwrap();
        }
        let job = b.jobs(1).await.remove(0);
        assert_eq!(b.figures().await, Figures { running: 1, queued: 2, receiving: 0 });
        assert_eq!(b.status(ids[0]).await, EvaluationStatus::Running);
        for waiting in &ids[1..] {
            assert_eq!(b.status(*waiting).await, EvaluationStatus::Queued, "waits in the store as queued");
        }
        assert!(b.registry.send(IsSupervising(ids[1])).await.unwrap(), "a waiting evaluation is this node's");
        assert_eq!(b.registry.send(Reserve).await.unwrap(), Err(Full { running: 1, waiting: 2 }));

        b.fail(ids[0], &job).await;
        b.until_done(ids[0]).await;
        let job = b.jobs(1).await.remove(0);
        assert_eq!(b.status(ids[2]).await, EvaluationStatus::Running, "the older submission starts first");
        assert_eq!(b.status(ids[1]).await, EvaluationStatus::Queued);
        assert_eq!(b.figures().await, Figures { running: 1, queued: 1, receiving: 0 });

        b.fail(ids[2], &job).await;
        b.until_done(ids[2]).await;
        let job = b.jobs(1).await.remove(0);
        assert_eq!(b.status(ids[1]).await, EvaluationStatus::Running);
        b.fail(ids[1], &job).await;
        b.until_done(ids[1]).await;
        // The supervisor stops just after it records the end.
        for _ in 0..2500 {
            if b.figures().await == Figures::default() {
                return;
            }
            actix_rt::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("the last supervisor did not stop: {:?}", b.figures().await);
    }

    #[actix::test]
    async fn a_cancelled_reservation_frees_its_place() {
        let b = bench(1, 0).await;
        let ticket = b.registry.send(Reserve).await.unwrap().unwrap();
        assert!(b.registry.send(Reserve).await.unwrap().is_err());
        b.registry.send(CancelReservation(ticket)).await.unwrap();
        assert_eq!(b.figures().await, Figures::default());
        assert!(b.registry.send(Reserve).await.unwrap().is_ok());
    }

    #[actix::test]
    async fn an_adopted_evaluation_is_never_refused_but_waits_for_a_running_place() {
        let b = bench(1, 0).await;
        let ticket = b.registry.send(Reserve).await.unwrap().unwrap();
        let running = b.record(Utc::now(), EvaluationStatus::Queued, false).await;
        let running_id = running.id;
        b.registry.send(StartEvaluation { record: running, token: None, ticket }).await.unwrap();
        let job = b.jobs(1).await.remove(0);

        let left = b.record(Utc::now() - chrono::Duration::hours(1), EvaluationStatus::Running, true).await;
        b.registry.send(Reconcile).await.unwrap();
        for _ in 0..2500 {
            if b.figures().await.queued == 1 {
                break;
            }
            actix_rt::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(b.figures().await, Figures { running: 1, queued: 1, receiving: 0 }, "adopted past max_queued");
        let (asked, _) = b.locks.send(GetAsked).await.unwrap();
        assert_eq!(asked, vec![format!("adopt/{}", left.id)], "the lock is held while it waits");
        assert!(b.executor.send(TakeJobs).await.unwrap().is_empty(), "it does not start yet");
        assert_eq!(b.registry.send(Reserve).await.unwrap(), Err(Full { running: 1, waiting: 1 }));

        b.fail(running_id, &job).await;
        b.until_done(running_id).await;
        let jobs = b.jobs(1).await;
        assert_eq!((jobs[0].1.as_str(), &jobs[0].2), ("p", &JobKind::Collect));
        assert_eq!(b.status(left.id).await, EvaluationStatus::Running);
        let record = b.store.send(GetEvaluation { id: left.id, with_tests: false }).await.unwrap().unwrap().unwrap();
        assert_eq!(record.record.epoch, 1, "adopted in a new term");
        assert_eq!(b.figures().await, Figures { running: 1, queued: 0, receiving: 0 });
    }
}
