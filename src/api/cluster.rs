//! The cluster-wide answers: `GET /network`, `GET /peers`, and the fan-out
//! that lets any node answer `GET /stats` and `GET /evaluation[/{id}]` for the
//! whole cluster. A peer asked with `?scope=local` answers for itself only.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use futures_util::future::join_all;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

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
pub async fn fan_out<T: DeserializeOwned>(client: &PeerClient, peers: &[String], path: &str) -> Vec<(String, T)> {
    let calls = peers.iter().map(|peer| async move {
        let answer = tokio::time::timeout(FAN_OUT_TIMEOUT, client.get::<T>(peer, path)).await;
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
    let answer = fan_out::<Value>(peers, &[coordinator.to_owned()], "/network?scope=local").await.into_iter().next();
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
