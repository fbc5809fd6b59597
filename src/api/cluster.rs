//! The cluster-wide answers: `GET /network`, `GET /peers`, and the fan-out
//! that lets any node answer `GET /stats` and `GET /evaluation[/{id}]` for the
//! whole cluster. A peer asked with `?scope=local` answers for itself only.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use futures_util::future::join_all;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{ApiError, AppState};
use crate::coordination::GetCoordinator;
use crate::locks::GetLocks;
use crate::membership::{GetMembers, Status};
use crate::peer::PeerClient;

/// `?scope=local` asks a node for its own answer only, as peers do.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Scope {
    pub scope: Option<String>,
    pub detail: Option<String>,
}

impl Scope {
    pub fn local(&self) -> Result<bool, ApiError> {
        match self.scope.as_deref() {
            None | Some("cluster") => Ok(false),
            Some("local") => Ok(true),
            Some(other) => Err(ApiError::BadRequest(format!("unknown scope {other:?}: local or cluster"))),
        }
    }
}

/// The live peers of this node, itself excluded.
pub async fn live_peers(state: &AppState) -> Result<Vec<String>, ApiError> {
    let members =
        state.membership.send(GetMembers).await.map_err(|e| ApiError::internal("membership unreachable", e))?;
    Ok(members
        .into_iter()
        .filter(|m| m.status == Status::Alive && m.address != state.node)
        .map(|m| m.address)
        .collect())
}

/// A peer that has not answered a fan-out within this is left out of the
/// answer: it is probably dead and not yet declared so.
const FAN_OUT_TIMEOUT: Duration = Duration::from_secs(5);

/// GETs `path` from each of `peers` at once; keeps the answers that came.
pub async fn fan_out(client: &PeerClient, peers: &[String], path: &str) -> Vec<(String, Value)> {
    let calls = peers.iter().map(|peer| async move {
        let answer = tokio::time::timeout(FAN_OUT_TIMEOUT, client.get::<Value>(peer, path)).await;
        (peer.clone(), answer)
    });
    join_all(calls)
        .await
        .into_iter()
        .filter_map(|(peer, answer)| match answer {
            Ok(Ok(value)) => Some((peer, value)),
            Ok(Err(e)) => {
                log::debug!("fan-out {path}: {e}");
                None
            }
            Err(_) => {
                log::debug!("fan-out {path}: {peer} did not answer within {FAN_OUT_TIMEOUT:?}");
                None
            }
        })
        .collect()
}

/// `GET /network`: every member this node knows, with its status,
/// incarnation, when it was last heard of, and its slots and load; the
/// coordinator, and its lock table.
#[utoipa::path(get, path = "/network", tag = "cluster", params(Scope),
    responses((status = 200, description = "`{\"node\", \"coordinator\", \"members\", \"locks\"}`", body = Object)))]
pub async fn network(
    state: web::Data<AppState>,
    peers: web::Data<PeerClient>,
    query: web::Query<Scope>,
) -> Result<HttpResponse, ApiError> {
    let local = query.local()?;
    let members =
        state.membership.send(GetMembers).await.map_err(|e| ApiError::internal("membership unreachable", e))?;
    // The view's clock is the membership actor's; its own entry is "now".
    let now_ms = members.first().map_or(0, |me| me.last_seen_ms);
    let now = chrono::Utc::now();
    let members: Vec<Value> = members
        .into_iter()
        .map(|m| {
            let ago = now_ms.saturating_sub(m.last_seen_ms);
            let last_seen = now - chrono::TimeDelta::milliseconds(i64::try_from(ago).unwrap_or(i64::MAX));
            json!({
                "address": m.address,
                "status": m.status,
                "incarnation": m.incarnation,
                "last_seen": last_seen.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "slots": m.meta.slots,
                "load": m.meta.busy,
            })
        })
        .collect();
    let coordinator =
        state.coordination.send(GetCoordinator).await.map_err(|e| ApiError::internal("coordination unreachable", e))?;
    let locks = match coordinator.as_deref() {
        Some(other) if other != state.node && !local => coordinator_locks(&peers, other).await,
        _ => json!(state.locks.send(GetLocks).await.map_err(|e| ApiError::internal("locks unreachable", e))?),
    };
    Ok(HttpResponse::Ok().json(json!({
        "node": state.node,
        "coordinator": coordinator,
        "members": members,
        "locks": locks,
    })))
}

/// The lock table of another node that is coordinator, from its own
/// `GET /network`; `null` when it does not answer.
async fn coordinator_locks(peers: &PeerClient, coordinator: &str) -> Value {
    let answer = fan_out(peers, &[coordinator.to_owned()], "/network?scope=local").await.into_iter().next();
    answer.and_then(|(_, mut network)| network.get_mut("locks").map(Value::take)).unwrap_or(Value::Null)
}

#[utoipa::path(get, path = "/peers", tag = "cluster",
    responses((status = 200, description = "The live members' addresses", body = Object)))]
pub async fn peers(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut live = live_peers(&state).await?;
    live.push(state.node.clone());
    live.sort();
    Ok(HttpResponse::Ok().json(json!({ "peers": live })))
}

/// Sums the numeric fields of every node's stats; `mean_module_time` is
/// weighted by each node's modules.
pub fn global_stats(nodes: &Map<String, Value>) -> Value {
    let mut sums = Map::new();
    let mut weighted_time = 0.0;
    for stats in nodes.values() {
        let Some(fields) = stats.as_object() else {
            continue;
        };
        for key in [
            "slots",
            "slots_busy",
            "jobs_queued",
            "evaluations_running",
            "evaluations_queued",
            "submissions_receiving",
            "modules_run",
            "modules_timed_out",
            "tests_run",
            "passed",
            "failed",
            "skipped",
            "errors",
        ] {
            let add = fields.get(key).and_then(Value::as_u64).unwrap_or(0);
            let total = sums.get(key).and_then(Value::as_u64).unwrap_or(0) + add;
            sums.insert(key.to_owned(), json!(total));
        }
        if let Some(by_status) = fields.get("evaluations").and_then(Value::as_object) {
            let entry = sums.entry("evaluations").or_insert_with(|| json!({}));
            for (status, n) in by_status {
                let total = entry.get(status).and_then(Value::as_u64).unwrap_or(0) + n.as_u64().unwrap_or(0);
                entry[status] = json!(total);
            }
        }
        let modules = fields.get("modules_run").and_then(Value::as_f64).unwrap_or(0.0);
        weighted_time += modules * fields.get("mean_module_time").and_then(Value::as_f64).unwrap_or(0.0);
    }
    let modules = sums.get("modules_run").and_then(Value::as_f64).unwrap_or(0.0);
    let mean = if modules > 0.0 { crate::evaluation::model::round2(weighted_time / modules) } else { 0.0 };
    sums.insert("mean_module_time".into(), json!(mean));
    sums.insert("nodes".into(), json!(nodes.len()));
    Value::Object(sums)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_stats_sum_counts_and_weigh_mean_module_time() {
        let mut nodes = Map::new();
        nodes.insert(
            "a".into(),
            json!({"slots": 2, "modules_run": 1, "mean_module_time": 1.0, "passed": 3, "evaluations": {"done": 1}}),
        );
        nodes.insert(
            "b".into(),
            json!({"slots": 1, "modules_run": 3, "mean_module_time": 2.0, "passed": 4,
                   "evaluations": {"done": 0, "running": 1}, "evaluations_running": 1, "evaluations_queued": 2}),
        );
        let g = global_stats(&nodes);
        assert_eq!(g["slots"], json!(3));
        assert_eq!(g["passed"], json!(7));
        assert_eq!(g["modules_run"], json!(4));
        assert_eq!(g["mean_module_time"], json!(1.75));
        assert_eq!(g["evaluations"], json!({"done": 1, "running": 1}));
        assert_eq!(g["nodes"], json!(2));
        assert_eq!((&g["evaluations_running"], &g["evaluations_queued"]), (&json!(1), &json!(2)));
    }
}
