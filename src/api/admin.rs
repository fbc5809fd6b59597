//! `POST /kill`, for failure tests only: mounted only with
//! `admin.enable_kill = true` (a node without it answers 404, as for any
//! unknown route), and behind the peer guard, so only a holder of the
//! cluster secret can call it. The node answers 202, then dies as in a
//! crash.
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
use serde_json::json;

use super::auth::peer_guard;
use super::{not_allowed, AppState};
use crate::peer::SENDER_HEADER;

/// From the answer to the kill: actix writes the answer as soon as the
/// handler returns, and this leaves it time to reach the caller, even
/// across a network, before the process is gone.
const ANSWER_GRACE: Duration = Duration::from_millis(200);

/// Mounts `POST /kill` behind the peer guard.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/kill")
            .wrap(from_fn(peer_guard))
            .route(web::post().to(kill))
            .default_service(web::to(not_allowed)),
    );
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
