//! The `Worker` actor: this node's side of tasks that other nodes' supervisors
//! hand it. A child of the node root.
//!
//! Takes `Execute` (from `POST /execute_module`): it fetches the project's
//! blob from the supervisor unless it has it, unpacks it once per evaluation,
//! and submits the job to the executor; when the executor answers it posts
//! the result back (`POST /evaluation_result`), retrying while the supervisor
//! does not answer. Takes `Forget` (from `POST /evaluation_done`) and removes
//! the evaluation's files; blobs stay, as a cache. If it dies, results of
//! running tasks are lost and their supervisors re-dispatch them when the
//! lease runs out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix::prelude::*;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::blobs;
use super::intake::{self, UnpackLimits};
use crate::executor::{Job, JobFinished, Submit};
use crate::peer::model::{EvaluationResult, ExecuteModule, Outcome, ResultAck};
use crate::peer::PeerClient;

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

pub struct Worker {
    settings: WorkerSettings,
    peers: PeerClient,
    /// This node's executor.
    executor: Recipient<Submit>,
    /// Where each running task's answer goes: (evaluation, task) → supervisor.
    running: HashMap<(Uuid, u64), String>,
}

impl Worker {
    pub fn new(settings: WorkerSettings, peers: PeerClient, executor: Recipient<Submit>) -> Self {
        Self { settings, peers, executor, running: HashMap::new() }
    }

    fn project_dir(&self, evaluation: Uuid, blob: &str) -> PathBuf {
        self.settings.work_dir.join(evaluation.to_string()).join(blob)
    }

    fn answer(&self, supervisor: String, result: EvaluationResult, ctx: &mut Context<Self>) {
        let peers = self.peers.clone();
        let (attempts, backoff) = (self.settings.result_attempts, self.settings.result_backoff);
        let offer = async move {
            for attempt in 1..=attempts {
                match peers.post::<_, ResultAck>(&supervisor, "/evaluation_result", &result).await {
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

/// Fetches the blob unless it is here, checks its digest, and unpacks it.
async fn materialise(
    peers: PeerClient,
    supervisor: String,
    sha: String,
    blob_path: PathBuf,
    dest: PathBuf,
    limits: UnpackLimits,
) -> Result<(), String> {
    if !blob_path.exists() {
        let bytes = peers.get_bytes(&supervisor, &format!("/blobs/{sha}")).await.map_err(|e| e.to_string())?;
        // Hashing and writing a large blob would stall this thread's actors,
        // membership among them, long enough to look dead.
        let path = blob_path.clone();
        actix_web::rt::task::spawn_blocking(move || {
            let digest = format!("{:x}", Sha256::digest(&bytes));
            if digest != sha {
                return Err(format!("blob {sha} from {supervisor} has digest {digest}"));
            }
            write_atomically(&path, &bytes).map_err(|e| format!("storing blob {sha}: {e}"))
        })
        .await
        .map_err(|e| format!("blob thread: {e}"))??;
    }
    actix_web::rt::task::spawn_blocking(move || unpack_once(&blob_path, &dest, &limits))
        .await
        .map_err(|e| format!("unpacking thread: {e}"))?
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().ok_or_else(|| std::io::Error::other("blob path has no folder"))?;
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Unpacks into a fresh folder beside `dest` and renames it into place, so
/// that two tasks of one project arriving together cannot see half a project.
fn unpack_once(blob: &Path, dest: &Path, limits: &UnpackLimits) -> Result<(), String> {
    if dest.exists() {
        return Ok(());
    }
    let parent = dest.parent().ok_or("project folder has no parent")?;
    std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    let partial = tempfile::Builder::new()
        .prefix(".partial-")
        .tempdir_in(parent)
        .map_err(|e| format!("creating a folder in {}: {e}", parent.display()))?;
    intake::unpack(blob, partial.path(), limits).map_err(|e| format!("unpacking blob: {e}"))?;
    match std::fs::rename(partial.path(), dest) {
        Ok(()) => Ok(()),
        Err(_) if dest.exists() => Ok(()),
        Err(e) => Err(format!("placing {}: {e}", dest.display())),
    }
}

impl Actor for Worker {
    type Context = Context<Self>;
}

impl Handler<Execute> for Worker {
    type Result = ResponseActFuture<Self, Result<(), String>>;

    fn handle(&mut self, Execute(task): Execute, _: &mut Context<Self>) -> Self::Result {
        let dest = self.project_dir(task.evaluation, &task.blob);
        let prepare = materialise(
            self.peers.clone(),
            task.supervisor.clone(),
            task.blob.clone(),
            blobs::path(&self.settings.blobs_dir, &task.blob),
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
        let dir = self.settings.work_dir.join(evaluation.to_string());
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::warn!("evaluation {evaluation}: cannot remove {}: {e}", dir.display());
            }
        }
    }
}
