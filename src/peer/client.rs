//! `PeerClient`: the one awc client a node uses to speak to its peers. Every
//! request names its sender in `x-evalmesh-node`, carries its Lamport time
//! and a timestamp, and is signed with the cluster secret over all of these,
//! its method, path and body (`auth::signature`), so that the guard on the
//! other side can tell it comes from a node of the cluster.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use awc::http::header::CONTENT_TYPE;
use awc::http::StatusCode;
use awc::ClientRequest;
use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;
use serde::de::DeserializeOwned;

use super::lamport::{LamportClock, LAMPORT_HEADER};
use super::network::{Exchange, Network};
use super::routes::Method;
use super::{lamport_of, PeerError, SENDER_HEADER};
use crate::auth::{self, Secret, SignedRequest, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::metrics::METRICS;

/// Runs a request to a peer, counting it and its latency (`metrics`).
async fn measured<T>(path: &str, request: impl Future<Output = Result<T, PeerError>>) -> Result<T, PeerError> {
    let started = Instant::now();
    let out = request.await;
    METRICS.peer_request(path, out.is_ok(), started.elapsed());
    out
}

/// Largest peer answer read into memory: a project blob or an evaluation.
const MAX_ANSWER_BYTES: usize = 256 * 1024 * 1024;

#[derive(Clone)]
pub struct PeerClient {
    client: awc::Client,
    /// This node's advertised address, sent with every request.
    node: String,
    /// This node's clock: every request carries its time, every answer moves it.
    clock: Arc<LamportClock>,
    /// The cluster secret every request is signed with.
    secret: Secret,
}

impl Network for PeerClient {
    fn node(&self) -> &str {
        &self.node
    }

    fn clock(&self) -> &Arc<LamportClock> {
        &self.clock
    }

    fn exchange(&self, to: &str, exchange: Exchange) -> LocalBoxFuture<'static, Result<Bytes, PeerError>> {
        let (client, to) = (self.clone(), to.to_owned());
        async move { client.send(&to, exchange).await }.boxed_local()
    }
}

impl PeerClient {
    /// awc clients are bound to the thread that made them: make one per arbiter.
    pub fn new(node: &str, timeout: Duration, clock: Arc<LamportClock>, secret: Secret) -> Self {
        let client = awc::Client::builder().timeout(timeout).disable_redirects().finish();
        Self { client, node: node.to_owned(), clock, secret }
    }

    /// GETs a JSON answer of a public route, as a node reads another's
    /// local view (`?scope=local`) for a cluster-wide answer.
    pub async fn get<R: DeserializeOwned>(&self, addr: &str, path: &str) -> Result<R, PeerError> {
        let exchange = Exchange { method: Method::Get, path: path.to_owned(), body: Bytes::new(), within: None };
        let bytes = self.send(addr, exchange).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| PeerError::Decode { url: format!("http://{addr}{path}"), reason: e.to_string() })
    }

    async fn send(&self, addr: &str, exchange: Exchange) -> Result<Bytes, PeerError> {
        let Exchange { method, path, body, within } = exchange;
        measured(&path, async {
            let url = format!("http://{addr}{path}");
            let req = match method {
                Method::Post => self.client.post(&url).insert_header((CONTENT_TYPE, "application/json")),
                Method::Get => self.client.get(&url),
                Method::Head => self.client.head(&url),
            };
            let mut req = self.signed(req, &body);
            if let Some(t) = within {
                req = req.timeout(t);
            }
            let res =
                req.send_body(body).await.map_err(|e| PeerError::Send { url: url.clone(), reason: e.to_string() })?;
            read(&url, res, &self.clock).await
        })
        .await
    }

    /// Opens a stream (`GET`, Server-Sent Events) on the peer and answers its
    /// body as it comes: the request's time-out covers the answer's head
    /// only, so the stream lasts as long as the peer sends.
    pub async fn open_stream(
        &self,
        addr: &str,
        path: &str,
        last_event_id: Option<&str>,
    ) -> Result<impl futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>> + use<>, PeerError> {
        let url = format!("http://{addr}{path}");
        let mut req = self.signed(self.client.get(&url), b"");
        if let Some(id) = last_event_id {
            req = req.insert_header(("Last-Event-ID", id));
        }
        let mut res = req.send().await.map_err(|e| PeerError::Send { url: url.clone(), reason: e.to_string() })?;
        if let Some(remote) = lamport_of(res.headers()) {
            self.clock.receive(remote);
        }
        if !res.status().is_success() {
            let body = res.body().limit(4096).await.unwrap_or_default();
            let body = String::from_utf8_lossy(&body).into_owned();
            return Err(PeerError::Status { url, status: res.status().as_u16(), body });
        }
        Ok(res)
    }

    /// Names this node, stamps its Lamport time and the wall clock, and
    /// signs the request over them, its method, its path and `body`.
    fn signed(&self, req: ClientRequest, body: &[u8]) -> ClientRequest {
        let lamport = self.clock.tick();
        let timestamp_ms = auth::wall_clock_ms();
        let path = req.get_uri().path_and_query().map_or("/", |p| p.as_str());
        let signature = auth::sign_request(
            &self.secret,
            &SignedRequest { method: req.get_method().as_str(), path, node: &self.node, lamport, timestamp_ms, body },
        );
        req.insert_header((SENDER_HEADER, self.node.as_str()))
            .insert_header((LAMPORT_HEADER, lamport.to_string()))
            .insert_header((TIMESTAMP_HEADER, timestamp_ms.to_string()))
            .insert_header((SIGNATURE_HEADER, signature))
    }
}

/// Reads an answer's body, bounded, and turns a non-2xx status into an error.
async fn read<S>(url: &str, mut res: awc::ClientResponse<S>, clock: &LamportClock) -> Result<Bytes, PeerError>
where
    S: futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>>,
{
    if let Some(remote) = lamport_of(res.headers()) {
        clock.receive(remote);
    }
    let bytes = res
        .body()
        .limit(MAX_ANSWER_BYTES)
        .await
        .map_err(|e| PeerError::Read { url: url.to_owned(), reason: e.to_string() })?;
    check(url, res.status(), &bytes)?;
    Ok(bytes)
}

fn check(url: &str, status: StatusCode, body: &[u8]) -> Result<(), PeerError> {
    if status.is_success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
    Err(PeerError::Status { url: url.to_owned(), status: status.as_u16(), body: text })
}
