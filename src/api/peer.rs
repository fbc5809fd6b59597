//! The routes between nodes, as `peer::routes` defines them: joining and
//! liveness, the election, cluster locks, tasks, replication. Each is served
//! by one generic adapter (`serve`) that reads the request its definition
//! names and writes the reply; the handlers below only talk to the actors.
//! Every route sits behind `auth::peer_guard`, the one place that decides
//! whether a caller may speak as a node: by the cluster secret.

use std::future::Future;

use actix_web::dev::HttpServiceFactory;
use actix_web::middleware::from_fn;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};

use super::auth::peer_guard;
use super::{cluster, evaluations, not_allowed, ApiError, AppState};
use crate::coordination::{ElectionAnswer, HandleCoordinator, HandleElection};
use crate::evaluation::blobs;
use crate::evaluation::registry::{CancelEvaluation, Deliver, IsSupervising};
use crate::evaluation::worker::{Execute, Forget};
use crate::locks::{HandleAcquire, HandleHoldings, HandleRelease};
use crate::membership::{HandleJoin, HandlePing, HandlePingReq};
use crate::peer::model::ResultAck;
use crate::peer::routes::EvaluationId;
use crate::peer::routes::{self, Blob, Method, Route};
use crate::peer::Peers;
use crate::replication::model::{ReplicaOp, ReplicaSummary, Replicate, ReplicateAnswer};
use crate::replication::receive::{receive, ReceiveError};
use crate::store::{ClaimTerm, GetSnapshot, GetSummary};

/// What a handler may use: the node's actors and its peers.
#[derive(Clone)]
struct Served {
    state: web::Data<AppState>,
    peers: web::Data<Peers>,
}

/// An actor that did not answer: the node is failing, not the caller.
fn gone(actor: &'static str) -> impl Fn(actix::MailboxError) -> ApiError {
    move |e| ApiError::internal(&format!("{actor} unreachable"), e)
}

/// Mounts route `R` behind the peer guard: reads its request (the JSON
/// body, or the path), hands it to `handler`, and answers its reply as JSON
/// with the route's status.
fn serve<R, F, Fut>(cfg: &mut web::ServiceConfig, handler: F)
where
    R: Route,
    F: Fn(Served, R::Request) -> Fut + Clone + 'static,
    Fut: Future<Output = Result<R::Reply, ApiError>> + 'static,
{
    let adapter = move |state: web::Data<AppState>, peers: web::Data<Peers>, req: HttpRequest, body: web::Payload| {
        let handler = handler.clone();
        async move {
            let request = match R::METHOD {
                Method::Post => web::Json::<R::Request>::from_request(&req, &mut body.into_inner()).await?.into_inner(),
                Method::Get | Method::Head => web::Path::<R::Request>::extract(&req).await?.into_inner(),
            };
            let reply = handler(Served { state, peers }, request).await?;
            Ok::<_, actix_web::Error>(HttpResponse::build(R::STATUS).json(reply))
        }
    };
    let method = match R::METHOD {
        Method::Post => web::post(),
        Method::Get => web::get(),
        Method::Head => web::head(),
    };
    cfg.service(guarded(R::PATTERN, [method.to(adapter)]));
}

fn guarded(pattern: &str, routes: impl IntoIterator<Item = actix_web::Route>) -> impl HttpServiceFactory {
    let resource = routes.into_iter().fold(web::resource(pattern.to_owned()), |r, route| r.route(route));
    resource.wrap(from_fn(peer_guard)).default_service(web::to(not_allowed))
}

/// Mounts the peer routes, each behind the peer guard.
pub fn configure(cfg: &mut web::ServiceConfig) {
    serve::<routes::Join, _, _>(cfg, |s, member| async move {
        let members = s.state.membership.send(HandleJoin(member)).await.map_err(gone("membership"))?;
        Ok(routes::Joined { members })
    });
    serve::<routes::Mystats, _, _>(cfg, |s, ping| async move {
        s.state.membership.send(HandlePing(ping)).await.map_err(gone("membership"))
    });
    serve::<routes::Probe, _, _>(cfg, |s, req| async move {
        s.state.membership.send(HandlePingReq(req)).await.map_err(gone("membership"))
    });
    serve::<routes::Election, _, _>(cfg, |s, message| async move {
        let answer = s.state.coordination.send(HandleElection(message.from)).await.map_err(gone("coordination"))?;
        Ok(ElectionAnswer { answer })
    });
    serve::<routes::Coordinator, _, _>(cfg, |s, message| async move {
        let coordinator = message.from;
        s.state.coordination.send(HandleCoordinator(coordinator.clone())).await.map_err(gone("coordination"))?;
        Ok(routes::CoordinatorAck { coordinator })
    });
    serve::<routes::LockAcquire, _, _>(cfg, |s, request| async move {
        s.state.locks.send(HandleAcquire(request)).await.map_err(gone("locks"))
    });
    serve::<routes::LockRelease, _, _>(cfg, |s, request| async move {
        s.state.locks.send(HandleRelease(request)).await.map_err(gone("locks"))
    });
    serve::<routes::LockHoldings, _, _>(cfg, |s, request| async move {
        s.state.locks.send(HandleHoldings(request)).await.map_err(gone("locks"))
    });
    serve::<routes::ExecuteModule, _, _>(cfg, |s, task| async move {
        if !blobs::is_sha256(&task.blob) {
            return Err(ApiError::BadRequest(format!("blob {:?} is not a SHA-256 digest", task.blob)));
        }
        let (evaluation, id) = (task.evaluation, task.task);
        s.state.worker.send(Execute(task)).await.map_err(gone("worker"))?.map_err(ApiError::Unavailable)?;
        Ok(routes::TaskTaken { evaluation, task: id })
    });
    serve::<routes::EvaluationResult, _, _>(cfg, |s, result| async move {
        let accepted = s.state.registry.send(Deliver(result)).await.map_err(gone("registry"))?;
        Ok(ResultAck { accepted })
    });
    serve::<routes::EvaluationDone, _, _>(cfg, |s, done| async move {
        s.state.worker.do_send(Forget(done.evaluation));
        Ok(routes::DoneAck { evaluation: done.evaluation })
    });
    serve::<routes::EvaluationRemove, _, _>(cfg, |s, remove| async move {
        let removed = evaluations::remove_here(&s.state, remove.evaluation).await?;
        Ok(routes::Removed { evaluation: remove.evaluation, removed })
    });
    serve::<routes::EvaluationCancel, _, _>(cfg, |s, cancel| async move {
        let cancelled = s.state.registry.send(CancelEvaluation(cancel.evaluation)).await.map_err(gone("registry"))?;
        Ok(routes::Cancelled { evaluation: cancel.evaluation, cancelled })
    });
    serve::<routes::Term, _, _>(cfg, |s, claim| async move {
        let answer = s.state.store.send(ClaimTerm(claim)).await.map_err(gone("store"))?;
        answer.map_err(|e| ApiError::internal("promising a term", e))
    });
    serve::<routes::Replicate, _, _>(cfg, replicate);
    serve::<routes::Replica, _, _>(cfg, replica);
    serve::<routes::Snapshot, _, _>(cfg, snapshot);
    cfg.service(guarded(Blob::PATTERN, [web::get().to(blob), web::head().to(has_blob)]));
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

async fn replicate(s: Served, replicate: Replicate) -> Result<ReplicateAnswer, ApiError> {
    let (id, sender) = (replicate.evaluation, replicate.supervisor.clone());
    let others: Vec<String> = cluster::live_peers(&s.state).await?.into_iter().filter(|p| *p != sender).collect();
    match receive(&s.state.store, &s.peers, &s.state.blobs_dir, &sender, &others, replicate).await {
        Ok(answer) => Ok(answer),
        Err(ReceiveError::Invalid(e)) => Err(ApiError::BadRequest(format!("evaluation {id}: {e}"))),
        Err(ReceiveError::Blob(e)) => Err(ApiError::Unavailable(format!("evaluation {id}: {e}"))),
        Err(ReceiveError::Store(e)) => Err(ApiError::internal(&format!("evaluation {id}: applying writes"), e)),
    }
}

/// What this node holds of an evaluation, and whether it supervises it now.
async fn replica(s: Served, EvaluationId { id }: EvaluationId) -> Result<ReplicaSummary, ApiError> {
    let summary = s.state.store.send(GetSummary(id)).await.map_err(gone("store"))?;
    let summary = summary.map_err(|e| ApiError::internal(&format!("evaluation {id}: reading it"), e))?;
    let mut summary = summary.ok_or_else(|| ApiError::NotFound(format!("no evaluation {id}")))?;
    summary.supervising = s.state.registry.send(IsSupervising(id)).await.map_err(gone("registry"))?;
    Ok(summary)
}

/// Everything this node holds of an evaluation, as a journal.
async fn snapshot(s: Served, EvaluationId { id }: EvaluationId) -> Result<Vec<ReplicaOp>, ApiError> {
    let ops = s.state.store.send(GetSnapshot(id)).await.map_err(gone("store"))?;
    let ops = ops.map_err(|e| ApiError::internal(&format!("evaluation {id}: reading it"), e))?;
    ops.ok_or_else(|| ApiError::NotFound(format!("no evaluation {id}")))
}
