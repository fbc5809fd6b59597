//! `GET /stats` and `GET /health`: the figures of the cluster and of this node, and liveness.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::cluster::{self, Scope};
use super::evaluations;
use super::stats::{ClusterStats, Counts, GlobalStats, NodeStats};
use super::{ApiError, AppState};
use crate::evaluation::model::EvaluationStatus;
use crate::evaluation::registry::GetAdmission;
use crate::executor::{GetExecutorStats, GetLoad};
use crate::membership::{GetMembers, Status};
use crate::metrics::{StatusLabel, METRICS};
use crate::peer::PeerClient;
use crate::store::CountByStatus;

/// `GET /stats`: every live node's figures and the cluster totals, or with
/// `?scope=local` this node's own.
#[utoipa::path(get, path = "/stats", tag = "cluster", params(Scope),
    responses((status = 200, description = "`{\"nodes\", \"global\"}`, or this node's figures", body = Object)))]
pub async fn stats(
    query: web::Query<Scope>,
    state: web::Data<AppState>,
    peers: web::Data<PeerClient>,
) -> Result<HttpResponse, ApiError> {
    let own = local_stats(&state).await?;
    if query.local()? {
        return Ok(HttpResponse::Ok().json(own));
    }
    let live = cluster::live_peers(&state).await?;
    let mut nodes = BTreeMap::from([(state.node.clone(), own)]);
    nodes.extend(cluster::fan_out::<NodeStats>(&peers, &live, "/stats?scope=local").await);
    let mut global = GlobalStats::sum(nodes.values());
    // Each node counts the copies it holds, replicas' included; the
    // cluster counts each evaluation once, at its most advanced copy.
    global.evaluations = zeroed();
    for e in evaluations::summaries(&state, &peers, false).await? {
        *global.evaluations.entry(e["status"].as_str().unwrap_or_default().to_owned()).or_insert(0) += 1;
    }
    Ok(HttpResponse::Ok().json(ClusterStats { nodes, global }))
}

async fn local_stats(state: &AppState) -> Result<NodeStats, ApiError> {
    let load = state.executor.send(GetLoad).await.map_err(|e| ApiError::internal("executor unreachable", e))?;
    let done =
        state.executor.send(GetExecutorStats).await.map_err(|e| ApiError::internal("executor unreachable", e))?;
    let admission =
        state.registry.send(GetAdmission).await.map_err(|e| ApiError::internal("registry unreachable", e))?;
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let t = done.tests;
    Ok(NodeStats {
        node: state.node.clone(),
        uptime_s: state.started.elapsed().as_secs(),
        sandbox: state.sandbox.into(),
        evaluations: count_by_status(state).await?,
        counts: Counts {
            slots: count(load.slots),
            slots_busy: count(load.busy),
            jobs_queued: count(load.queued),
            evaluations_running: count(admission.running),
            evaluations_queued: count(admission.queued),
            submissions_receiving: count(admission.receiving),
            modules_run: done.modules_run,
            modules_timed_out: done.modules_timed_out,
            tests_run: u64::from(t.passed) + u64::from(t.failed) + u64::from(t.skipped) + u64::from(t.errors),
            passed: t.passed.into(),
            failed: t.failed.into(),
            skipped: t.skipped.into(),
            errors: t.errors.into(),
        },
        mean_module_time: done.mean_module_time,
    })
}

/// `GET /metrics`: this node's metrics in the OpenMetrics text format
/// (`crate::metrics`), its states read now.
#[utoipa::path(get, path = "/metrics", tag = "node",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text",
        body = String)))]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let load = state.executor.send(GetLoad).await.map_err(|e| ApiError::internal("executor unreachable", e))?;
    let members =
        state.membership.send(GetMembers).await.map_err(|e| ApiError::internal("membership unreachable", e))?;
    let m = &METRICS;
    for (status, count) in count_by_status(&state).await? {
        m.evaluations.get_or_create(&StatusLabel { status }).set(i64::try_from(count).unwrap_or(i64::MAX));
    }
    let mut members_by_status: BTreeMap<String, i64> =
        Status::ALL.iter().map(|s| (format!("{s:?}").to_lowercase(), 0)).collect();
    for member in members {
        *members_by_status.entry(format!("{:?}", member.status).to_lowercase()).or_default() += 1;
    }
    for (status, count) in members_by_status {
        m.members.get_or_create(&StatusLabel { status }).set(count);
    }
    let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    m.slots.set(gauge(load.slots));
    m.slots_busy.set(gauge(load.busy));
    m.queue_depth.set(gauge(load.queued));
    Ok(HttpResponse::Ok().content_type("application/openmetrics-text; version=1.0.0; charset=utf-8").body(m.encode()))
}

/// The evaluations this node holds, by status, every status present.
async fn count_by_status(state: &AppState) -> Result<BTreeMap<String, u64>, ApiError> {
    let counted = state
        .store
        .send(CountByStatus)
        .await
        .map_err(|e| ApiError::internal("store unreachable", e))?
        .map_err(|e| ApiError::internal("counting evaluations", e))?;
    let mut by_status = zeroed();
    by_status.extend(counted);
    Ok(by_status)
}

/// Every status, counted 0.
fn zeroed() -> BTreeMap<String, u64> {
    EvaluationStatus::ALL.into_iter().map(|s| (s.as_str().to_owned(), 0)).collect()
}

#[utoipa::path(get, path = "/health", tag = "node",
    responses((status = 200, description = "`{\"status\": \"ok\", \"node\"}`, without a token", body = Object)))]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok", "node": state.node }))
}
