//! The `Registry` actor: the parent of every `EvaluationSupervisor` of this
//! node, a child of the node root. It starts a supervisor for each accepted
//! evaluation and, at node start, one for each evaluation the store still
//! holds as unfinished, so that a restarted node completes them.
//!
//! Takes `StartEvaluation` from the API and `EvaluationFinished` from its
//! supervisors. If it dies, running supervisors go on but new evaluations
//! cannot start; the store keeps everything for the next start.

use std::collections::HashMap;

use actix::prelude::*;
use uuid::Uuid;

use super::supervisor::{EvaluationFinished, EvaluationSupervisor, SupervisorSettings};
use crate::executor::Submit;
use crate::store::{EvaluationRecord, ListUnfinished, Store};

/// Starts the supervisor of an evaluation already recorded in the store.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartEvaluation {
    pub record: EvaluationRecord,
    /// Credentials for the clones, held in memory only.
    pub token: Option<String>,
}

/// How many evaluations this node supervises now.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct GetActive;

pub struct Registry {
    settings: SupervisorSettings,
    store: Addr<Store>,
    /// Handed to each supervisor: where its tasks run.
    executor: Recipient<Submit>,
    /// The live supervisors, by evaluation.
    supervisors: HashMap<Uuid, Addr<EvaluationSupervisor>>,
}

impl Registry {
    pub fn new(
        settings: SupervisorSettings,
        store: Addr<Store>,
        executor: Recipient<Submit>,
    ) -> Self {
        Self {
            settings,
            store,
            executor,
            supervisors: HashMap::new(),
        }
    }

    fn start_supervisor(
        &mut self,
        record: EvaluationRecord,
        token: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        let id = record.id;
        if self.supervisors.contains_key(&id) {
            return;
        }
        let supervisor = EvaluationSupervisor::new(
            record,
            token,
            self.settings.clone(),
            self.store.clone(),
            self.executor.clone(),
            ctx.address().recipient(),
        )
        .start();
        self.supervisors.insert(id, supervisor);
    }
}

impl Actor for Registry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let unfinished = self.store.send(ListUnfinished);
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

impl Handler<EvaluationFinished> for Registry {
    type Result = ();

    fn handle(&mut self, EvaluationFinished(id): EvaluationFinished, _: &mut Context<Self>) {
        self.supervisors.remove(&id);
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
    use crate::evaluation::model::EvaluationStatus;
    use crate::executor::JobKind;
    use crate::store::{CreateEvaluation, ProjectRow, SaveProjects, Source};

    /// Counts the collection jobs it is handed.
    #[derive(Default)]
    struct ProbeExecutor {
        collects: Vec<String>,
    }

    impl Actor for ProbeExecutor {
        type Context = Context<Self>;
    }

    impl Handler<Submit> for ProbeExecutor {
        type Result = ();
        fn handle(&mut self, Submit(job): Submit, _: &mut Context<Self>) {
            if job.kind == JobKind::Collect {
                self.collects.push(job.project);
            }
        }
    }

    #[derive(Message)]
    #[rtype(result = "Vec<String>")]
    struct GetCollects;

    impl Handler<GetCollects> for ProbeExecutor {
        type Result = MessageResult<GetCollects>;
        fn handle(&mut self, _: GetCollects, _: &mut Context<Self>) -> Self::Result {
            MessageResult(self.collects.clone())
        }
    }

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
            input_sha256: None,
            input_ready: true,
            submitted_at: Utc::now(),
            started_at: Some(Utc::now()),
            finished_at: None,
            error: None,
        };
        store.send(CreateEvaluation(record)).await.unwrap().unwrap();
        let project = ProjectRow {
            name: "p".into(),
            root: "p".into(),
            collected: false,
            error: None,
        };
        store
            .send(SaveProjects {
                id,
                projects: vec![project],
            })
            .await
            .unwrap()
            .unwrap();

        let executor = ProbeExecutor::default().start();
        let settings = SupervisorSettings {
            node: "n1".into(),
            evaluations_dir: dir.path().to_owned(),
            modules_per_task: 1,
            module_timeout: Duration::from_secs(5),
            git_schemes: Vec::new(),
            clone_timeout: Duration::from_secs(5),
        };
        let registry = Registry::new(settings, store, executor.clone().recipient()).start();
        let mut collects = Vec::new();
        for _ in 0..1000 {
            collects = executor.send(GetCollects).await.unwrap();
            if !collects.is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(collects, vec!["p".to_string()]);
        assert_eq!(registry.send(GetActive).await.unwrap(), 1);
    }
}
