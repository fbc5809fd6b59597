//! The HTTP API: `configure` mounts every route on an actix-web `App`; the
//! handlers parse, ask an actor, and map the answer. `AppState` holds the
//! actors' addresses and the limits the handlers enforce; each server thread
//! also holds a `PeerClient` of its own for the cluster-wide answers. The
//! peer routes stand behind the cluster secret and the public ones, when
//! tokens are set, behind a client token (`auth`); `admin` holds the
//! test-only `POST /kill`, mounted only when the config asks for it.

mod admin;
mod auth;
mod cluster;
mod dashboard;
mod error;
mod evaluations;
mod node;
mod openapi;
mod peer;
mod stats;
mod stream;
mod upload;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use actix::Addr;
use actix_web::middleware::{from_fn, Logger};
use actix_web::{web, HttpRequest, HttpResponse};

pub use admin::configure as configure_admin;
pub use error::{ApiError, ErrorBody};

use crate::auth::ReplayGuard;
use crate::config::Config;
use crate::coordination::Coordination;
use crate::evaluation::registry::Registry;
use crate::evaluation::worker::Worker;
use crate::executor::Executor;
use crate::locks::Locks;
use crate::membership::Membership;
use crate::peer::LamportClock;
use crate::store::Store;

/// What the handlers share: the node's actors and the limits from config.
pub struct AppState {
    pub config: Config,
    /// This node's advertised address.
    pub node: String,
    pub evaluations_dir: PathBuf,
    pub uploads_dir: PathBuf,
    pub started: Instant,
    pub blobs_dir: PathBuf,
    pub store: Addr<Store>,
    pub registry: Addr<Registry>,
    pub executor: Addr<Executor>,
    pub worker: Addr<Worker>,
    pub membership: Addr<Membership>,
    pub coordination: Addr<Coordination>,
    pub locks: Addr<Locks>,
    /// This node's Lamport clock, moved by every peer message.
    pub clock: Arc<LamportClock>,
    /// The signatures of the peer requests taken within the replay window,
    /// shared by the server's threads: a request is taken once, whichever
    /// thread it reaches.
    pub replay: Mutex<ReplayGuard>,
    /// How this node isolates and limits test runs, for `GET /stats`.
    pub sandbox: crate::executor::sandbox::SandboxMode,
    /// Progress streams served now (`stream`).
    pub streams: std::sync::atomic::AtomicUsize,
}

impl AppState {
    /// The replay guard, held only while a signature is checked or taken.
    /// A thread that panicked holding it left it whole (each change is one
    /// set operation), so a poisoned lock is used as is.
    fn replay_guard(&self) -> MutexGuard<'_, ReplayGuard> {
        self.replay.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Mounts every route: public, cluster-wide and peer. Every public route but
/// `GET /health`, which a load balancer asks without credentials, stands
/// behind the client token check.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Every public route but the health check, which load balancers ask
    // every few seconds, has its line in the access log.
    let resource = |path: &str| {
        web::resource(path.to_owned())
            .wrap(from_fn(auth::client_guard))
            .wrap(Logger::new(ACCESS_LOG).log_target("evalmesh::access"))
            .default_service(web::to(not_allowed))
    };
    cfg.app_data(web::QueryConfig::default().error_handler(|e, _| ApiError::BadRequest(e.to_string()).into()))
        .app_data(web::PathConfig::default().error_handler(|e, _| ApiError::NotFound(e.to_string()).into()))
        .app_data(
            web::JsonConfig::default()
                .limit(MAX_PEER_JSON_BYTES)
                .error_handler(|e, _| ApiError::BadRequest(format!("invalid JSON body: {e}")).into()),
        )
        .service(
            resource("/evaluation").route(web::post().to(evaluations::submit)).route(web::get().to(evaluations::list)),
        )
        .service(
            resource("/evaluation/{id}")
                .route(web::get().to(evaluations::get))
                .route(web::delete().to(evaluations::remove)),
        )
        .service(resource("/evaluation/{id}/events").route(web::get().to(evaluations::events)))
        .service(resource("/evaluation/{id}/stream").route(web::get().to(stream::stream)))
        .service(resource("/evaluation/{id}/grades.csv").route(web::get().to(evaluations::grades_csv)))
        .service(resource("/evaluation/{id}/junit.xml").route(web::get().to(evaluations::junit_xml)))
        .service(resource("/stats").route(web::get().to(node::stats)))
        .service(resource("/metrics").route(web::get().to(node::metrics)))
        .service(resource("/openapi.json").route(web::get().to(openapi::document)))
        .service(web::resource("/health").route(web::get().to(node::health)).default_service(web::to(not_allowed)))
        .service(web::resource("/").route(web::get().to(dashboard::page)).default_service(web::to(not_allowed)))
        .service(resource("/network").route(web::get().to(cluster::network)))
        .service(resource("/peers").route(web::get().to(cluster::peers)))
        .configure(peer::configure);
}

/// Client address, request line, status, bytes sent, seconds, user agent.
const ACCESS_LOG: &str = r#"%a "%r" %s %b %T "%{User-Agent}i""#;

/// Peer bodies carry module results with their capped output.
const MAX_PEER_JSON_BYTES: usize = 64 * 1024 * 1024;

pub(crate) async fn not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

/// Answers routes that do not exist.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!("no route {} {}", req.method(), req.path())))
}
