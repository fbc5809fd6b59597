//! The `Registry` actor: the parent of every `EvaluationSupervisor` of this
//! node, a child of the node root. It starts a supervisor for each accepted
//! evaluation, and adopts evaluations whose supervisor is gone: on every
//! `Reconcile` (its timer, and each `NodeLost`) it looks in the store for
//! unfinished evaluations whose supervisor membership holds dead, left or
//! unknown — or is this node, restarted — takes the lock `adopt/<id>`,
//! decides (`adoption::decide`) and starts a supervisor in a new term,
//! holding the lock until it closes.
//!
//! Takes `StartEvaluation` from the API, `Deliver` (a worker's result, from
//! `POST /evaluation_result`), `NodeLost` from membership, which it passes to
//! every supervisor, and `EvaluationFinished` from its supervisors. If it
//! dies, running supervisors go on but new evaluations cannot start, remote
//! results cannot reach them and nothing is adopted here; the store keeps
//! everything for the next start.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::adoption::{self, AdoptionError, Decision};
use super::supervisor::{EvaluationFinished, EvaluationSupervisor, Links, NodeLost, SupervisorSettings};
use crate::balance::{GetBalance, LoadBalancer};
use crate::executor::{JobFinished, Submit};
use crate::locks::{Acquire, LockError, Release};
use crate::membership::{GetJoined, GetMembers, Status};
use crate::peer::model::EvaluationResult;
use crate::peer::PeerClient;
use crate::store::{EvaluationRecord, ListUnfinished, Store};

/// Starts the supervisor of an evaluation already recorded in the store.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartEvaluation {
    pub record: EvaluationRecord,
    /// Credentials for the clones, held in memory only.
    pub token: Option<String>,
}

/// Hands a worker's result to its evaluation's supervisor; false when this
/// node supervises no such evaluation (any more).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Deliver(pub EvaluationResult);

/// Whether this node runs the supervisor of an evaluation now.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct IsSupervising(pub Uuid);

/// Looks for evaluations to adopt.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconcile;

/// How many evaluations this node supervises now.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct GetActive;

/// What every supervisor of this node is handed.
pub struct Shared {
    pub settings: SupervisorSettings,
    pub store: Addr<Store>,
    /// Where tasks placed on this node run.
    pub executor: Recipient<Submit>,
    /// Who picks the node of each task.
    pub balancer: Addr<LoadBalancer>,
    pub peers: PeerClient,
    /// The cluster lock: `adopt/<id>` is taken before deciding an adoption.
    pub lock: Recipient<Acquire>,
    pub unlock: Recipient<Release>,
    /// Membership: nothing is adopted before this node has joined, and only
    /// from a supervisor it holds dead, left or does not know.
    pub joined: Recipient<GetJoined>,
    pub members: Recipient<GetMembers>,
    /// How often the store is searched for evaluations to adopt.
    pub reconcile: Duration,
}

pub struct Registry {
    shared: Shared,
    /// The live supervisors, by evaluation.
    supervisors: HashMap<Uuid, Addr<EvaluationSupervisor>>,
    /// Evaluations whose lock is asked for or whose adoption is being decided.
    adopting: HashSet<Uuid>,
    /// Adopted evaluations: their lock is held until their supervisor stops.
    held: HashSet<Uuid>,
    /// When this registry started: an evaluation this node took before then
    /// was left by a past run of the node; one taken since is started by the API.
    boot: DateTime<Utc>,
}

impl Registry {
    pub fn new(shared: Shared) -> Self {
        Self { shared, supervisors: HashMap::new(), adopting: HashSet::new(), held: HashSet::new(), boot: Utc::now() }
    }

    /// Takes the lock, decides, and adopts or stands down.
    fn adopt(&mut self, id: Uuid, ctx: &mut Context<Self>) {
        self.adopting.insert(id);
        let lock = self.shared.lock.send(Acquire(adoption::lock_name(id)));
        let (store, peers, balancer) =
            (self.shared.store.clone(), self.shared.peers.clone(), self.shared.balancer.clone());
        let (me, blobs_dir): (String, PathBuf) =
            (self.shared.settings.node.clone(), self.shared.settings.blobs_dir.clone());
        let decide = async move {
            lock.await.map_err(Refused::Mailbox)?.map_err(Refused::Lock)?;
            let live: Vec<String> = balancer
                .send(GetBalance)
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|m| m.addr)
                .filter(|a| *a != me)
                .collect();
            let cx = adoption::Context { me: &me, store: &store, peers: &peers, blobs_dir: &blobs_dir, live: &live };
            adoption::decide(id, &cx).await.map_err(Refused::Adoption)
        };
        ctx.spawn(decide.into_actor(self).map(move |decision, act, ctx| {
            act.adopting.remove(&id);
            match decision {
                Ok(Decision::Adopt(record)) if act.supervisors.contains_key(&id) => {
                    log::warn!("evaluation {id}: adopted in term {} but already supervised here", record.epoch);
                    act.shared.unlock.do_send(Release(adoption::lock_name(id)));
                }
                Ok(Decision::Adopt(record)) => {
                    log::info!("evaluation {id}: adopted in term {}", record.epoch);
                    act.held.insert(id);
                    act.start_supervisor(record, None, ctx);
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
    }
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
                if act.supervisors.contains_key(&id) || act.adopting.contains(&id) {
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
        self.start_supervisor(msg.record, msg.token, ctx);
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

    fn handle(&mut self, EvaluationFinished(id): EvaluationFinished, _: &mut Context<Self>) {
        self.supervisors.remove(&id);
        if self.held.remove(&id) {
            self.shared.unlock.do_send(Release(adoption::lock_name(id)));
        }
    }
}

impl Handler<IsSupervising> for Registry {
    type Result = bool;

    fn handle(&mut self, IsSupervising(id): IsSupervising, _: &mut Context<Self>) -> bool {
        self.supervisors.contains_key(&id)
    }
}

impl Handler<GetActive> for Registry {
    type Result = usize;

    fn handle(&mut self, _: GetActive, _: &mut Context<Self>) -> usize {
        self.supervisors.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;

    use super::*;
    use crate::auth::Secret;
    use crate::balance::{LeastConnections, NodeLoad, SetMembers};
    use crate::evaluation::model::EvaluationStatus;
    use crate::evaluation::model::EventKind;
    use crate::evaluation::supervisor::tests::{ProbeExecutor, TakeJobs};
    use crate::executor::JobKind;
    use crate::store::{CreateEvaluation, GetEvaluation, GetEvents, ProjectRow, SaveProjects, Source};

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

    #[actix::test]
    async fn adopts_what_a_past_run_of_this_node_left_unfinished_under_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::in_memory().unwrap().start();
        let id = Uuid::new_v4();
        std::fs::create_dir_all(dir.path().join(id.to_string()).join("p")).unwrap();
        let record = EvaluationRecord {
            id,
            status: EvaluationStatus::Running,
            source: Source::Zip { name: "z".into() },
            supervisor: "n1".into(),
            epoch: 0,
            input_sha256: None,
            input_ready: true,
            submitted_at: Utc::now(),
            started_at: Some(Utc::now()),
            finished_at: None,
            error: None,
        };
        store.send(CreateEvaluation(record)).await.unwrap().unwrap();
        let project = ProjectRow { blob: None, name: "p".into(), root: "p".into(), collected: false, error: None };
        store.send(SaveProjects { id, projects: vec![project] }).await.unwrap().unwrap();

        let executor = ProbeExecutor::default().start();
        let settings = crate::evaluation::supervisor::tests::test_settings(dir.path());
        let balancer = LoadBalancer::new(Box::new(LeastConnections::default())).start();
        let this_node = NodeLoad { addr: "n1".into(), slots: 1, busy: 0 };
        balancer.send(SetMembers(vec![this_node])).await.unwrap();
        let locks = ProbeLocks::default().start();
        let registry = Registry::new(Shared {
            settings,
            store: store.clone(),
            executor: executor.clone().recipient(),
            balancer,
            peers: PeerClient::new(
                "n1",
                Duration::from_secs(1),
                Default::default(),
                Secret::new("test-secret-0123456789"),
            ),
            lock: locks.clone().recipient(),
            unlock: locks.clone().recipient(),
            joined: locks.clone().recipient(),
            members: locks.clone().recipient(),
            reconcile: Duration::from_secs(3600),
        })
        .start();
        let mut jobs = Vec::new();
        for _ in 0..2500 {
            jobs = executor.send(TakeJobs).await.unwrap();
            if !jobs.is_empty() {
                break;
            }
            // Packing runs on a blocking thread: poll in real time, bounded.
            actix_rt::time::sleep(Duration::from_millis(2)).await;
        }
        let collects: Vec<_> = jobs.into_iter().map(|(_, project, kind, _)| (project, kind)).collect();
        assert_eq!(collects, vec![("p".to_string(), JobKind::Collect)]);
        assert_eq!(registry.send(GetActive).await.unwrap(), 1);
        let (asked, released) = locks.send(GetAsked).await.unwrap();
        assert_eq!((asked, released), (vec![format!("adopt/{id}")], vec![]), "held while it supervises");
        let record = store.send(GetEvaluation { id, with_tests: false }).await.unwrap().unwrap().unwrap().record;
        assert_eq!((record.supervisor.as_str(), record.epoch), ("n1", 1));
        let events = store.send(GetEvents(id)).await.unwrap().unwrap().unwrap();
        let kinds: Vec<EventKind> = events.into_iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![EventKind::SupervisorLost, EventKind::Adopted, EventKind::Assigned]);
    }
}
