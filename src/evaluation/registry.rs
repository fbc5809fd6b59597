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
