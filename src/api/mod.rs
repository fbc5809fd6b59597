//! The HTTP API: `configure` mounts every route on an actix-web `App`; the
//! handlers parse, ask an actor, and map the answer. `AppState` holds the
//! actors' addresses and the limits the handlers enforce.

mod error;
mod evaluations;
mod node;
mod upload;

use std::path::PathBuf;
use std::time::Instant;

use actix::Addr;
use actix_web::{web, HttpRequest, HttpResponse};

pub use error::ApiError;

use crate::config::Config;
use crate::evaluation::registry::Registry;
use crate::executor::Executor;
use crate::store::Store;

/// What the handlers share: the node's actors and the limits from config.
pub struct AppState {
    pub config: Config,
    /// This node's advertised address.
    pub node: String,
    pub evaluations_dir: PathBuf,
    pub uploads_dir: PathBuf,
    pub started: Instant,
    pub store: Addr<Store>,
    pub registry: Addr<Registry>,
    pub executor: Addr<Executor>,
}

/// Mounts the public routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::QueryConfig::default()
            .error_handler(|e, _| ApiError::BadRequest(e.to_string()).into()),
    )
    .app_data(
        web::PathConfig::default().error_handler(|e, _| ApiError::NotFound(e.to_string()).into()),
    )
    .service(
        web::resource("/evaluation")
            .route(web::post().to(evaluations::submit))
            .route(web::get().to(evaluations::list))
            .default_service(web::to(not_allowed)),
    )
    .service(
        web::resource("/evaluation/{id}")
            .route(web::get().to(evaluations::get))
            .default_service(web::to(not_allowed)),
    )
    .service(
        web::resource("/stats")
            .route(web::get().to(node::stats))
            .default_service(web::to(not_allowed)),
    )
    .service(
        web::resource("/health")
            .route(web::get().to(node::health))
            .default_service(web::to(not_allowed)),
    );
}

async fn not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

/// Answers routes that do not exist.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route {} {}",
        req.method(),
        req.path()
    )))
}
