//! `GET /evaluation/{id}/stream`: an evaluation's progress as Server-Sent
//! Events, from any node.
//!
//! A node that holds a copy of the evaluation streams from it, reading its
//! store every `POLL`: a `module` event for each module with a result (its
//! id names every module sent so far, see `evaluation::progress`), a
//! `progress` event when the counts change, and `done` with the final
//! record, after which the stream ends. A node without a copy relays the
//! stream of a live node that has one, the supervisor first. A client that
//! reconnects with `Last-Event-ID`, to this node or another, gets exactly
//! the modules it missed. A copy goes on across an adoption, since it is
//! the copy the adopter continues; a client whose node died reconnects.
//! A replica's copy that has not moved for `STALE` is compared with its
//! supervisor's, and caught up from it when behind: a supervisor that
//! replaced this replica (thought dead, cut off) no longer sends it writes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use futures_util::stream::{self, Stream, StreamExt};
use serde_json::Value;
use uuid::Uuid;

use super::cluster::{self, Scope};
use super::evaluations::{evaluation_id, stored, unknown};
use super::{ApiError, AppState, ErrorBody};
use crate::evaluation::adoption;
use crate::evaluation::progress::{self, Item, Seen};
use crate::evaluation::report;
use crate::peer::routes::{EvaluationId, Replica};
use crate::peer::{PeerClient, Peers};
use crate::store::GetSummary;

/// How often a stream reads its copy.
const POLL: Duration = Duration::from_millis(250);
/// A replica's copy unchanged for this long is compared with its supervisor's.
const STALE: Duration = Duration::from_secs(5);
/// A comment at least this often, so that proxies keep an idle stream open.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Streams one node serves at once: each reads the store, whose one
/// connection also commits the results, every `POLL`. Past it, a 503.
pub const MAX_STREAMS: usize = 64;
/// What a client refused for that is told to wait, in seconds.
const RETRY_AFTER_S: u64 = 5;

/// One of the `MAX_STREAMS`, given back when its stream ends or its
/// client goes.
struct Slot(Arc<AppState>);

impl Slot {
    fn take(state: Arc<AppState>) -> Result<Self, ApiError> {
        if state.streams.fetch_add(1, Ordering::SeqCst) >= MAX_STREAMS {
            state.streams.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::Busy {
                reason: format!("this node serves {MAX_STREAMS} progress streams already"),
                retry_after_s: RETRY_AFTER_S,
            });
        }
        Ok(Self(state))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::SeqCst);
    }
}

#[utoipa::path(get, path = "/evaluation/{id}/stream", tag = "evaluations", params(("id" = String, Path), Scope,
        ("Last-Event-ID" = Option<String>, Header, description = "The last event's id: resumes after it")),
    responses((status = 200, description = "Server-Sent Events: `module`, `progress`, `done`",
        content_type = "text/event-stream", body = String),
        (status = 404, description = "No such evaluation", body = ErrorBody)))]
pub async fn stream(
    path: web::Path<String>,
    query: web::Query<Scope>,
    req: HttpRequest,
    state: web::Data<AppState>,
    peers: web::Data<PeerClient>,
    typed: web::Data<Peers>,
) -> Result<HttpResponse, ApiError> {
    let raw = path.into_inner();
    let id = evaluation_id(&raw)?;
    let last = req.headers().get("Last-Event-ID").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if stored(&state, id, false).await?.is_some() {
        let slot = Slot::take(state.into_inner())?;
        return Ok(events(local(slot, typed.get_ref().clone(), id, last)));
    }
    if query.local()? {
        return Err(unknown(&raw));
    }
    let path = format!("/evaluation/{id}/stream?scope=local");
    let live = cluster::live_peers(&state).await?;
    let holders = cluster::fan_out::<Value>(&peers, &live, &format!("/evaluation/{id}?scope=local")).await;
    // The supervisor's copy is the freshest; then any.
    let mut holders: Vec<(bool, String)> =
        holders.into_iter().map(|(node, v)| (v["supervisor"].as_str() != Some(node.as_str()), node)).collect();
    holders.sort();
    let slot = Slot::take(state.into_inner())?;
    for (_, node) in holders {
        match peers.open_stream(&node, &path, last.as_deref()).await {
            Ok(body) => {
                // The slot lives as long as the relayed body.
                return Ok(events(body.map(move |chunk| {
                    let _held = &slot;
                    chunk
                })));
            }
            Err(e) => log::warn!("evaluation {id}: relaying the stream of {node}: {e}"),
        }
    }
    Err(unknown(&raw))
}

fn events<E: Into<Box<dyn std::error::Error>> + 'static>(
    body: impl Stream<Item = Result<Bytes, E>> + 'static,
) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // nginx passes each event on as it comes rather than buffering.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

/// One event in the wire format.
fn frame(item: &Item) -> String {
    let id = item.id.as_ref().map(|id| format!("id: {id}\n")).unwrap_or_default();
    format!("event: {}\n{id}data: {}\n\n", item.event, item.data)
}

/// Catches this node's running copy up from its supervisor if the
/// supervisor's knows more.
async fn repair(state: &AppState, peers: &Peers, id: Uuid, supervisor: &str) {
    let Ok(Ok(Some(mine))) = state.store.send(GetSummary(id)).await else { return };
    let Ok(theirs) = peers.call::<Replica>(supervisor, &EvaluationId { id }).await else { return };
    if theirs.rank() > mine.rank() {
        match adoption::follow(id, supervisor, &state.store, peers, &state.blobs_dir).await {
            Ok(()) => log::info!("evaluation {id}: this copy had fallen behind; caught up from {supervisor}"),
            Err(e) => log::warn!("evaluation {id}: this copy is behind and not caught up from {supervisor}: {e}"),
        }
    }
}

/// The stream of this node's copy, until it is finished (or gone).
fn local(
    slot: Slot,
    peers: Peers,
    id: Uuid,
    last: Option<String>,
) -> impl Stream<Item = Result<Bytes, ApiError>> + 'static {
    struct Reader {
        state: Slot,
        peers: Peers,
        seen: Option<Seen>,
        last: Option<String>,
        shown: Option<Value>,
        sent_at: Instant,
        /// When the copy last changed, or was last compared with its supervisor's.
        checked_at: Instant,
        over: bool,
    }
    let now = Instant::now();
    let first =
        Reader { state: slot, peers, seen: None, last, shown: None, sent_at: now, checked_at: now, over: false };
    let head = stream::once(async { Ok(Bytes::from_static(b"retry: 1000\n\n")) });
    head.chain(stream::unfold(first, move |mut r| async move {
        if r.over {
            return None;
        }
        loop {
            let view = match stored(&r.state.0, id, false).await {
                Ok(Some(view)) => view,
                Ok(None) => return None,
                Err(e) => return Some((Err(e), Reader { over: true, ..r })),
            };
            let seen =
                r.seen.get_or_insert_with(|| r.last.as_deref().map(|l| Seen::parse(l, &view)).unwrap_or_default());
            let mut out: String = seen.new_modules(&view).iter().map(frame).collect();
            let mut now = progress::progress(&view, Utc::now());
            let counts = {
                let mut c = now.clone();
                c["elapsed_s"] = Value::Null;
                c
            };
            if r.shown.as_ref() != Some(&counts) || !out.is_empty() {
                out.push_str(&frame(&Item { event: "progress", id: None, data: now.take() }));
                r.shown = Some(counts);
            }
            if view.record.status.is_finished() {
                let record = report::evaluation(&view, r.state.0.config.grading.grade_scale, Utc::now(), false);
                out.push_str(&frame(&Item { event: "done", id: None, data: record }));
                r.over = true;
            }
            if !out.is_empty() {
                r.sent_at = Instant::now();
                r.checked_at = r.sent_at;
                return Some((Ok(Bytes::from(out)), r));
            }
            if r.checked_at.elapsed() >= STALE && view.record.supervisor != r.state.0.node {
                r.checked_at = Instant::now();
                repair(&r.state.0, &r.peers, id, &view.record.supervisor).await;
                continue;
            }
            if r.sent_at.elapsed() >= KEEPALIVE {
                r.sent_at = Instant::now();
                return Some((Ok(Bytes::from_static(b": keepalive\n\n")), r));
            }
            actix_web::rt::time::sleep(POLL).await;
        }
    }))
}
