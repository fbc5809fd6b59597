//! `POST /kill` and `POST /panic`, for failure tests only: mounted only
//! with `admin.enable_kill = true` (a node without it answers 404, as for
//! any unknown route), and behind the peer guard, so only a holder of the
//! cluster secret can call them. `/kill` answers 202, then the node dies as
//! in a crash; `/panic` answers 202, then the actor it names panics, and
//! the node stops as its policy says (`node::fail_stop`).
//!
//! It dies by SIGKILL sent to itself, neither `std::process::exit` nor
//! `abort`: exit runs the C library's exit handlers and flushes its
//! buffers, a tidier end than the crash the route stands for, and abort
//! raises SIGABRT, which may write a core dump of the whole node. SIGKILL
//! runs nothing, and the parent sees what the failover tests' own kill
//! gives: terminated by signal 9.

use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::auth::peer_guard;
use super::{not_allowed, ApiError, AppState};
use crate::node::fail_stop::{ActorKind, Panic};
use crate::peer::SENDER_HEADER;

/// From the answer to the kill: actix writes the answer as soon as the
/// handler returns, and this leaves it time to reach the caller, even
/// across a network, before the process is gone.
const ANSWER_GRACE: Duration = Duration::from_millis(200);

/// Mounts `POST /kill` and `POST /panic` behind the peer guard.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/kill")
            .wrap(from_fn(peer_guard))
            .route(web::post().to(kill))
            .default_service(web::to(not_allowed)),
    )
    .service(
        web::resource("/panic")
            .wrap(from_fn(peer_guard))
            .route(web::post().to(panic))
            .default_service(web::to(not_allowed)),
    );
}

/// The body of `POST /panic`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PanicRequest {
    actor: String,
}

async fn panic(body: web::Json<PanicRequest>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let kind: ActorKind = body.actor.parse().map_err(ApiError::BadRequest)?;
    log::warn!("POST /panic: the {kind:?} actor is told to panic");
    let msg = Panic(kind);
    match kind {
        ActorKind::Store => state.store.do_send(msg),
        ActorKind::Executor => state.executor.do_send(msg),
        ActorKind::Worker => state.worker.do_send(msg),
        ActorKind::Membership => state.membership.do_send(msg),
        ActorKind::Coordination => state.coordination.do_send(msg),
        ActorKind::Locks => state.locks.do_send(msg),
        ActorKind::Registry => state.registry.do_send(msg),
        ActorKind::Balancer | ActorKind::Supervisor | ActorKind::Replicator => {
            if !state.registry.send(msg).await.map_err(|e| ApiError::internal("registry unreachable", e))? {
                return Err(ApiError::NotFound(format!("no {kind:?} on this node")));
            }
        }
    }
    Ok(HttpResponse::Accepted().json(json!({ "node": state.node, "actor": body.actor })))
}

async fn kill(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let sender = req.headers().get(SENDER_HEADER).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    log::warn!("POST /kill from {}: this node dies as in a crash", sender.as_deref().unwrap_or("?"));
    actix_web::rt::spawn(async {
        tokio::time::sleep(ANSWER_GRACE).await;
        die();
    });
    HttpResponse::Accepted().json(json!({ "node": state.node, "killed": true }))
}

fn die() -> ! {
    // SAFETY: kill(2) on this very process has no memory-safety
    // preconditions; SIGKILL cannot be caught, so it does not return.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    std::process::abort()
}
