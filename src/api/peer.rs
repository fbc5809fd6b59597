//! The routes between nodes: joining and liveness (`/join`, `/mystats`,
//! `/probe`), the election (`/election`, `/coordinator`), cluster locks
//! (`/lock/acquire`, `/lock/release`, `/lock/holdings`), tasks
//! (`/execute_module`, `/blobs/{sha256}`, `/evaluation_result`,
//! `/evaluation_done`), replication (`/replicate`, `/replica/{id}`,
//! `/replica/{id}/snapshot`). Every one of them sits behind
//! `auth::peer_guard`, the one place that decides whether a caller may speak
//! as a node: by the cluster secret.

use actix_web::middleware::from_fn;
use actix_web::{web, HttpResponse};
use serde_json::json;
use uuid::Uuid;

use super::auth::peer_guard;
use super::{cluster, evaluations, not_allowed, ApiError, AppState};
use crate::coordination::{ElectionAnswer, ElectionMessage, HandleCoordinator, HandleElection};
use crate::evaluation::blobs;
use crate::evaluation::registry::CancelEvaluation;
use crate::evaluation::registry::{Deliver, IsSupervising};
use crate::evaluation::worker::{Execute, Forget};
use crate::locks::model::{AcquireRequest, HoldingsRequest, ReleaseRequest};
use crate::locks::{HandleAcquire, HandleHoldings, HandleRelease};
use crate::membership::model::{MemberInfo, Ping, PingReq};
use crate::membership::{HandleJoin, HandlePing, HandlePingReq};
use crate::peer::model::{CancelRequest, EvaluationDone, EvaluationResult, ExecuteModule, RemoveEvaluation, ResultAck};
use crate::peer::PeerClient;
use crate::replication::model::Replicate;
use crate::replication::receive::{receive, ReceiveError};
use crate::store::{GetSnapshot, GetSummary};

/// Mounts the peer routes, each behind the peer guard.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let route = |path: &str, method: actix_web::Route| {
        web::resource(path.to_owned()).wrap(from_fn(peer_guard)).route(method).default_service(web::to(not_allowed))
    };
    cfg.service(route("/join", web::post().to(join)))
        .service(route("/mystats", web::post().to(mystats)))
        .service(route("/probe", web::post().to(probe)))
        .service(route("/election", web::post().to(election)))
        .service(route("/coordinator", web::post().to(coordinator)))
        .service(route("/lock/acquire", web::post().to(lock_acquire)))
        .service(route("/lock/release", web::post().to(lock_release)))
        .service(route("/lock/holdings", web::post().to(lock_holdings)))
        .service(route("/execute_module", web::post().to(execute_module)))
        .service(route("/blobs/{sha256}", web::get().to(blob)).route(web::head().to(has_blob)))
        .service(route("/evaluation_result", web::post().to(evaluation_result)))
        .service(route("/evaluation_done", web::post().to(evaluation_done)))
        .service(route("/evaluation_remove", web::post().to(evaluation_remove)))
        .service(route("/evaluation_cancel", web::post().to(evaluation_cancel)))
        .service(route("/replicate", web::post().to(replicate)))
        .service(route("/replica/{id}", web::get().to(replica)))
        .service(route("/replica/{id}/snapshot", web::get().to(snapshot)));
}

async fn join(body: web::Json<MemberInfo>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let members = state
        .membership
        .send(HandleJoin(body.into_inner()))
        .await
        .map_err(|e| ApiError::internal("membership unreachable", e))?;
    Ok(HttpResponse::Ok().json(json!({ "members": members })))
}

/// The heartbeat of the seeds: a SWIM probe carrying the prober's load.
async fn mystats(body: web::Json<Ping>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let ack = state
        .membership
        .send(HandlePing(body.into_inner()))
        .await
        .map_err(|e| ApiError::internal("membership unreachable", e))?;
    Ok(HttpResponse::Ok().json(ack))
}

async fn probe(body: web::Json<PingReq>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let ack = state
        .membership
        .send(HandlePingReq(body.into_inner()))
        .await
        .map_err(|e| ApiError::internal("membership unreachable", e))?;
    Ok(HttpResponse::Ok().json(ack))
}

async fn election(body: web::Json<ElectionMessage>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let answer = state
        .coordination
        .send(HandleElection(body.into_inner().from))
        .await
        .map_err(|e| ApiError::internal("coordination unreachable", e))?;
    Ok(HttpResponse::Ok().json(ElectionAnswer { answer }))
}

async fn coordinator(body: web::Json<ElectionMessage>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let from = body.into_inner().from;
    state
        .coordination
        .send(HandleCoordinator(from.clone()))
        .await
        .map_err(|e| ApiError::internal("coordination unreachable", e))?;
    Ok(HttpResponse::Ok().json(json!({ "coordinator": from })))
}

async fn lock_acquire(body: web::Json<AcquireRequest>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let answer = state
        .locks
        .send(HandleAcquire(body.into_inner()))
        .await
        .map_err(|e| ApiError::internal("locks unreachable", e))?;
    Ok(HttpResponse::Ok().json(answer))
}

async fn lock_release(body: web::Json<ReleaseRequest>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let answer = state
        .locks
        .send(HandleRelease(body.into_inner()))
        .await
        .map_err(|e| ApiError::internal("locks unreachable", e))?;
    Ok(HttpResponse::Ok().json(answer))
}

async fn lock_holdings(body: web::Json<HoldingsRequest>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let holdings = state
        .locks
        .send(HandleHoldings(body.into_inner()))
        .await
        .map_err(|e| ApiError::internal("locks unreachable", e))?;
    Ok(HttpResponse::Ok().json(holdings))
}

async fn execute_module(body: web::Json<ExecuteModule>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let task = body.into_inner();
    if !blobs::is_sha256(&task.blob) {
        return Err(ApiError::BadRequest(format!("blob {:?} is not a SHA-256 digest", task.blob)));
    }
    let (evaluation, id) = (task.evaluation, task.task);
    match state.worker.send(Execute(task)).await.map_err(|e| ApiError::internal("worker unreachable", e))? {
        Ok(()) => Ok(HttpResponse::Accepted().json(json!({ "evaluation": evaluation, "task": id }))),
        Err(e) => Err(ApiError::Unavailable(e)),
    }
}

async fn blob(path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let sha = path.into_inner();
    let missing = || ApiError::NotFound(format!("no blob {sha:?}"));
    if !blobs::is_sha256(&sha) {
        return Err(missing());
    }
    match tokio::fs::read(blobs::path(&state.blobs_dir, &sha)).await {
        Ok(bytes) => Ok(HttpResponse::Ok().content_type("application/zip").body(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(missing()),
        Err(e) => Err(ApiError::internal(&format!("reading blob {sha}"), e)),
    }
}

/// Whether this node holds a blob: how a node finds content among its peers.
async fn has_blob(path: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    let sha = path.into_inner();
    let held =
        blobs::is_sha256(&sha) && tokio::fs::try_exists(blobs::path(&state.blobs_dir, &sha)).await.unwrap_or(false);
    if held {
        HttpResponse::Ok().finish()
    } else {
        HttpResponse::NotFound().finish()
    }
}

async fn replicate(
    body: web::Json<Replicate>,
    state: web::Data<AppState>,
    peers: web::Data<PeerClient>,
) -> Result<HttpResponse, ApiError> {
    let replicate = body.into_inner();
    let (id, sender) = (replicate.evaluation, replicate.supervisor.clone());
    let others: Vec<String> = cluster::live_peers(&state).await?.into_iter().filter(|p| *p != sender).collect();
    match receive(&state.store, &peers, &state.blobs_dir, &sender, &others, replicate).await {
        Ok(answer) => Ok(HttpResponse::Ok().json(answer)),
        Err(ReceiveError::Invalid(e)) => Err(ApiError::BadRequest(format!("evaluation {id}: {e}"))),
        Err(ReceiveError::Blob(e)) => Err(ApiError::Unavailable(format!("evaluation {id}: {e}"))),
        Err(ReceiveError::Store(e)) => Err(ApiError::internal(&format!("evaluation {id}: applying writes"), e)),
    }
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(format!("no evaluation {raw:?}")))
}

/// What this node holds of an evaluation, and whether it supervises it now.
async fn replica(path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let summary = state.store.send(GetSummary(id)).await.map_err(|e| ApiError::internal("store unreachable", e))?;
    let summary = summary.map_err(|e| ApiError::internal(&format!("evaluation {id}: reading it"), e))?;
    let mut summary = summary.ok_or_else(|| ApiError::NotFound(format!("no evaluation {id}")))?;
    summary.supervising =
        state.registry.send(IsSupervising(id)).await.map_err(|e| ApiError::internal("registry unreachable", e))?;
    Ok(HttpResponse::Ok().json(summary))
}

/// Everything this node holds of an evaluation, as a journal.
async fn snapshot(path: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let ops = state.store.send(GetSnapshot(id)).await.map_err(|e| ApiError::internal("store unreachable", e))?;
    let ops = ops.map_err(|e| ApiError::internal(&format!("evaluation {id}: reading it"), e))?;
    Ok(HttpResponse::Ok().json(ops.ok_or_else(|| ApiError::NotFound(format!("no evaluation {id}")))?))
}

async fn evaluation_result(
    body: web::Json<EvaluationResult>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let accepted = state
        .registry
        .send(Deliver(body.into_inner()))
        .await
        .map_err(|e| ApiError::internal("registry unreachable", e))?;
    Ok(HttpResponse::Ok().json(ResultAck { accepted }))
}

async fn evaluation_cancel(
    body: web::Json<CancelRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let cancelled = state
        .registry
        .send(CancelEvaluation(body.evaluation))
        .await
        .map_err(|e| ApiError::internal("registry unreachable", e))?;
    Ok(HttpResponse::Ok().json(json!({ "evaluation": body.evaluation, "cancelled": cancelled })))
}

async fn evaluation_remove(
    body: web::Json<RemoveEvaluation>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let removed = evaluations::remove_here(&state, body.evaluation).await?;
    Ok(HttpResponse::Ok().json(json!({ "evaluation": body.evaluation, "removed": removed })))
}

async fn evaluation_done(
    body: web::Json<EvaluationDone>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.worker.do_send(Forget(body.evaluation));
    Ok(HttpResponse::Ok().json(json!({ "evaluation": body.evaluation })))
}
