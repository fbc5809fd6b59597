//! The `Registry` actor: the parent of every `EvaluationSupervisor` of this
//! node, a child of the node root. It starts a supervisor for each accepted
//! evaluation and, at node start, one for each evaluation the store still
//! holds as unfinished, so that a restarted node completes them.
//!
//! Takes `StartEvaluation` from the API, `Deliver` (a worker's result, from
//! `POST /evaluation_result`), `NodeLost` from membership, which it passes to
//! every supervisor, and `EvaluationFinished` from its supervisors. If it
//! dies, running supervisors go on but new evaluations cannot start and
//! remote results cannot reach them; the store keeps everything for the next
//! start.

use std::collections::HashMap;

use actix::prelude::*;
use uuid::Uuid;

use super::supervisor::{EvaluationFinished, EvaluationSupervisor, Links, NodeLost, SupervisorSettings};
use crate::balance::LoadBalancer;
use crate::executor::{JobFinished, Submit};
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
}

pub struct Registry {
    shared: Shared,
    /// The live supervisors, by evaluation.
    supervisors: HashMap<Uuid, Addr<EvaluationSupervisor>>,
}

impl Registry {
    pub fn new(shared: Shared) -> Self {
        Self { shared, supervisors: HashMap::new() }
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
        let unfinished = self.shared.store.send(ListUnfinished);
        ctx.wait(unfinished.into_actor(self).map(|res, act, ctx| match res {
            Ok(Ok(records)) => {
                for record in records {
                    log::info!("evaluation {}: resuming", record.id);
                    act.start_supervisor(record, None, ctx);
                }
            }
            Ok(Err(e)) => log::error!("cannot list unfinished evaluations: {e}"),
            Err(e) => log::error!("cannot reach the store: {e}"),
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

    fn handle(&mut self, msg: NodeLost, _: &mut Context<Self>) {
        for supervisor in self.supervisors.values() {
            supervisor.do_send(msg.clone());
        }
    }
}

impl Handler<EvaluationFinished> for Registry {
    type Result = ();

    fn handle(&mut self, EvaluationFinished(id): EvaluationFinished, _: &mut Context<Self>) {
        self.supervisors.remove(&id);
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
    use crate::balance::{LeastConnections, NodeLoad, SetMembers};
    use crate::evaluation::model::EvaluationStatus;
    use crate::evaluation::supervisor::tests::{ProbeExecutor, TakeJobs};
    use crate::executor::JobKind;
    use crate::store::{CreateEvaluation, ProjectRow, SaveProjects, Source};

    #[actix::test]
    async fn resumes_unfinished_evaluations_at_start() {
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
        let registry = Registry::new(Shared {
            settings,
            store,
            executor: executor.clone().recipient(),
            balancer,
            peers: PeerClient::new("n1", Duration::from_secs(1), Default::default()),
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
    }
}
