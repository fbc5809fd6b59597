//! `Network`: how an actor reaches the other nodes. The node's network is
//! the `PeerClient` over HTTP; a test gives the same actors an in-memory one
//! (`testing::SimNet`) that it can delay, cut and heal. `Peers` is the typed
//! face of either: `call::<R>` for a route `R` of `routes`.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;

use super::lamport::LamportClock;
use super::routes::{Blob, Method, Route};
use super::PeerError;

/// One request to a peer, serialized.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: Method,
    pub path: String,
    /// JSON, or empty for `Get` and `Head`.
    pub body: Bytes,
    /// A time-out of its own instead of the network's.
    pub within: Option<Duration>,
}

/// Carries requests to peers and their answers back. An answer other than
/// 2xx is `PeerError::Status`.
pub trait Network {
    /// This node's advertised address.
    fn node(&self) -> &str;
    /// This node's Lamport clock: every request carries its time.
    fn clock(&self) -> &Arc<LamportClock>;
    fn exchange(&self, to: &str, exchange: Exchange) -> LocalBoxFuture<'static, Result<Bytes, PeerError>>;
}

/// The typed calls of the peer routes, over a `Network`.
#[derive(Clone)]
pub struct Peers(Rc<dyn Network>);

impl Peers {
    pub fn new(network: impl Network + 'static) -> Self {
        Self(Rc::new(network))
    }

    pub fn node(&self) -> &str {
        self.0.node()
    }

    pub fn clock(&self) -> &Arc<LamportClock> {
        self.0.clock()
    }

    /// Calls route `R` on node `to`.
    pub fn call<R: Route>(
        &self,
        to: &str,
        request: &R::Request,
    ) -> LocalBoxFuture<'static, Result<R::Reply, PeerError>> {
        self.call_timed::<R>(to, request, None)
    }

    /// As `call`, giving up after `within`: an answer later than that is stale.
    pub fn call_within<R: Route>(
        &self,
        to: &str,
        request: &R::Request,
        within: Duration,
    ) -> LocalBoxFuture<'static, Result<R::Reply, PeerError>> {
        self.call_timed::<R>(to, request, Some(within))
    }

    fn call_timed<R: Route>(
        &self,
        to: &str,
        request: &R::Request,
        within: Option<Duration>,
    ) -> LocalBoxFuture<'static, Result<R::Reply, PeerError>> {
        let path = R::path(request);
        let url = format!("http://{to}{path}");
        let body = match R::METHOD {
            Method::Post => match serde_json::to_vec(request) {
                Ok(body) => Bytes::from(body),
                Err(e) => return std::future::ready(Err(PeerError::Send { url, reason: e.to_string() })).boxed_local(),
            },
            Method::Get | Method::Head => Bytes::new(),
        };
        let sent = self.0.exchange(to, Exchange { method: R::METHOD, path, body, within });
        async move {
            let bytes = sent.await?;
            serde_json::from_slice(&bytes).map_err(|e| PeerError::Decode { url, reason: e.to_string() })
        }
        .boxed_local()
    }

    /// Fetches blob `sha` from node `to`.
    pub fn blob(&self, to: &str, sha: &str) -> LocalBoxFuture<'static, Result<Bytes, PeerError>> {
        self.0.exchange(to, Exchange { method: Method::Get, path: Blob::path(sha), body: Bytes::new(), within: None })
    }

    /// Whether node `to` holds blob `sha`.
    pub fn holds_blob(&self, to: &str, sha: &str) -> LocalBoxFuture<'static, Result<bool, PeerError>> {
        let asked = self
            .0
            .exchange(to, Exchange { method: Method::Head, path: Blob::path(sha), body: Bytes::new(), within: None });
        async move {
            match asked.await {
                Ok(_) => Ok(true),
                Err(PeerError::Status { status: 404, .. }) => Ok(false),
                Err(e) => Err(e),
            }
        }
        .boxed_local()
    }
}
