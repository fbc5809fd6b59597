//! `GET /stats` and `GET /health`: this node's figures and liveness.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::{ApiError, AppState};
use crate::evaluation::registry::GetActive;
use crate::executor::{GetExecutorStats, GetLoad};
use crate::store::CountByStatus;

pub async fn stats(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let load = state
        .executor
        .send(GetLoad)
        .await
        .map_err(|e| ApiError::internal("executor unreachable", e))?;
    let done = state
        .executor
        .send(GetExecutorStats)
        .await
        .map_err(|e| ApiError::internal("executor unreachable", e))?;
    let active = state
        .registry
        .send(GetActive)
        .await
        .map_err(|e| ApiError::internal("registry unreachable", e))?;
    let mut by_status = state
        .store
        .send(CountByStatus)
        .await
        .map_err(|e| ApiError::internal("store unreachable", e))?
        .map_err(|e| ApiError::internal("counting evaluations", e))?;
    for status in ["queued", "running", "done", "failed"] {
        by_status.entry(status.to_owned()).or_insert(0);
    }
    Ok(HttpResponse::Ok().json(json!({
        "node": state.node,
        "uptime_s": state.started.elapsed().as_secs(),
        "slots": load.slots,
        "slots_busy": load.busy,
        "jobs_queued": load.queued,
        "evaluations": by_status,
        "evaluations_supervised": active,
        "modules_run": done.modules_run,
        "modules_timed_out": done.modules_timed_out,
        "tests_run": done.tests.passed + done.tests.failed + done.tests.skipped + done.tests.errors,
        "passed": done.tests.passed,
        "failed": done.tests.failed,
        "skipped": done.tests.skipped,
        "errors": done.tests.errors,
        "mean_module_time": done.mean_module_time,
    })))
}

pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok", "node": state.node }))
}
