//! The `Worker` actor: this node's side of tasks that other nodes' supervisors
//! hand it. A child of the node root.
//!
//! Takes `Execute` (from `POST /execute_module`): it fetches the project's
//! blob unless it has it — from the supervisor, or from any live peer that
//! holds it when the supervisor does not answer — unpacks it once per evaluation,
//! and submits the job to the executor; when the executor answers it posts
//! the result back (`POST /evaluation_result`), retrying while the supervisor
//! does not answer. Takes `Forget` (from `POST /evaluation_done`), drops the
//! evaluation's jobs still queued in the executor and removes its files;
//! blobs stay, as a cache. If it dies, results of
//! running tasks are lost and their supervisors re-dispatch them when the
//! lease runs out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix::prelude::*;
use uuid::Uuid;

use super::intake::UnpackLimits;
use super::{blobs, workspace};
use crate::balance::GetBalance;
use crate::config::Config;
use crate::executor::{Job, JobFinished, StopEvaluation, Submit};
use crate::peer::model::{EvaluationResult, ExecuteModule, Outcome};
use crate::peer::{routes, Peers};
use crate::replication::content;

/// Takes a task for another node's supervisor: answers once the project is
/// here and the job is queued, or why it cannot take it.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct Execute(pub ExecuteModule);

/// The evaluation is over: remove its files here.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Forget(pub Uuid);

/// How a worker reaches the rest of the node.
pub struct WorkerSettings {
    pub blobs_dir: PathBuf,
    pub work_dir: PathBuf,
    pub limits: UnpackLimits,
    /// How often, and how far apart, a result is offered to its supervisor.
    pub result_attempts: u32,
    pub result_backoff: Duration,
}

/// How often a worker offers a result to a supervisor that does not answer,
/// probe intervals apart, growing: about a minute in all.
const RESULT_ATTEMPTS: u32 = 20;

impl WorkerSettings {
    /// The settings `config` asks for, for a node keeping its data in `data_dir`.
    pub fn from_config(config: &Config, data_dir: &Path) -> Self {
        Self {
            blobs_dir: data_dir.join("blobs"),
            work_dir: data_dir.join("work"),
            limits: UnpackLimits::from_config(&config.intake),
            result_attempts: RESULT_ATTEMPTS,
            result_backoff: Duration::from_millis(config.cluster.probe_interval_ms),
        }
    }
}

pub struct Worker {
    settings: WorkerSettings,
    peers: Peers,
    /// This node's executor.
    executor: Recipient<Submit>,
    stopper: Recipient<StopEvaluation>,
    /// The load balancer, asked for the live peers when a blob is not at its
    /// supervisor.
    members: Recipient<GetBalance>,
    /// Where each running task's answer goes: (evaluation, task) → supervisor.
    running: HashMap<(Uuid, u64), String>,
}

impl Worker {
    pub fn new(
        settings: WorkerSettings,
        peers: Peers,
        executor: Recipient<Submit>,
        stopper: Recipient<StopEvaluation>,
        members: Recipient<GetBalance>,
    ) -> Self {
        Self { settings, peers, executor, stopper, members, running: HashMap::new() }
    }

    fn project_dir(&self, evaluation: Uuid, blob: &str) -> PathBuf {
        self.settings.work_dir.join(evaluation.to_string()).join(blob)
    }

    fn answer(&self, supervisor: String, result: EvaluationResult, ctx: &mut Context<Self>) {
        let peers = self.peers.clone();
        let (attempts, backoff) = (self.settings.result_attempts, self.settings.result_backoff);
        let offer = async move {
            for attempt in 1..=attempts {
                match peers.call::<routes::EvaluationResult>(&supervisor, &result).await {
                    Ok(ack) => {
                        if !ack.accepted {
                            log::info!(
                                "evaluation {}: task {} no longer wanted by {supervisor}",
                                result.evaluation,
                                result.task
                            );
                        }
                        return;
                    }
                    Err(e) if e.is_refusal() => {
                        log::warn!(
                            "evaluation {}: task {}: {supervisor} refused the result: {e}",
                            result.evaluation,
                            result.task
                        );
                        return;
                    }
                    Err(e) => {
                        log::warn!(
                            "evaluation {}: task {}: result not delivered (attempt {attempt}): {e}",
                            result.evaluation,
                            result.task
                        );
                        actix_rt::time::sleep(backoff * attempt).await;
                    }
                }
            }
        };
        ctx.spawn(offer.into_actor(self));
    }
}

/// Fetches the blob unless it is here — from the supervisor, else from any
/// live peer that holds it — and unpacks it.
async fn materialise(
    peers: Peers,
    members: Recipient<GetBalance>,
    supervisor: String,
    sha: String,
    blobs_dir: PathBuf,
    dest: PathBuf,
    limits: UnpackLimits,
) -> Result<(), String> {
    let live = members.send(GetBalance).await.unwrap_or_default();
    let others: Vec<String> =
        live.into_iter().map(|m| m.addr).filter(|a| *a != supervisor && a != peers.node()).collect();
    content::ensure(&peers, &[supervisor], &others, &sha, &blobs_dir).await?;
    let blob = blobs::path(&blobs_dir, &sha);
    actix_web::rt::task::spawn_blocking(move || workspace::unpack_once(&blob, &dest, &limits))
        .await
        .map_err(|e| format!("unpacking thread: {e}"))?
}

impl Actor for Worker {
    type Context = Context<Self>;
}

crate::panics_when_told!(Worker);

impl Handler<Execute> for Worker {
    type Result = ResponseActFuture<Self, Result<(), String>>;

    fn handle(&mut self, Execute(task): Execute, _: &mut Context<Self>) -> Self::Result {
        let dest = self.project_dir(task.evaluation, &task.blob);
        let prepare = materialise(
            self.peers.clone(),
            self.members.clone(),
            task.supervisor.clone(),
            task.blob.clone(),
            self.settings.blobs_dir.clone(),
            dest.clone(),
            self.settings.limits.clone(),
        );
        Box::pin(prepare.into_actor(self).map(move |prepared, act, ctx| {
            if let Err(e) = &prepared {
                log::warn!(
                    "evaluation {}: task {}: cannot prepare project {}: {e}",
                    task.evaluation,
                    task.task,
                    task.project
                );
                return prepared;
            }
            act.running.insert((task.evaluation, task.task), task.supervisor.clone());
            act.executor.do_send(Submit(Job {
                evaluation: task.evaluation,
                task: task.task,
                project: task.project,
                root: dest,
                kind: task.kind.into(),
                reply_to: ctx.address().recipient(),
            }));
            Ok(())
        }))
    }
}

impl Handler<JobFinished> for Worker {
    type Result = ();

    fn handle(&mut self, msg: JobFinished, ctx: &mut Context<Self>) {
        let Some(supervisor) = self.running.remove(&(msg.evaluation, msg.task)) else {
            return;
        };
        let result = EvaluationResult {
            evaluation: msg.evaluation,
            task: msg.task,
            project: msg.project,
            stamp: msg.stamp,
            outcome: Outcome::from(msg.outcome),
        };
        self.answer(supervisor, result, ctx);
    }
}

impl Handler<Forget> for Worker {
    type Result = ();

    fn handle(&mut self, Forget(evaluation): Forget, _: &mut Context<Self>) {
        // Its supervisor closed (done, failed or cancelled): nothing queued
        // or running for it here is wanted any more.
        self.stopper.do_send(StopEvaluation(evaluation));
        let dir = self.settings.work_dir.join(evaluation.to_string());
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::warn!("evaluation {evaluation}: cannot remove {}: {e}", dir.display());
            }
        }
    }
}
