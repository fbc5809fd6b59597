//! The two gates in front of the handlers, as actix-web middleware.
//!
//! `peer_guard` stands before every peer route (and `POST /kill`): a request
//! passes only if it is signed with the cluster secret (`auth::signature`),
//! within the replay window and not seen before (`auth::replay`). It must
//! read the body to check the signature, so it reads it whole, bounded like
//! the JSON extractor, and hands the same bytes on to the handler. A
//! request refused is answered 401 with what was wrong, logged with its
//! route and claimed sender, and its handler never runs. A request that
//! passes moves this node's Lamport clock; the answer carries the clock.
//!
//! `client_guard` stands before every public route but `GET /health` when
//! `[api] tokens` is set: a client presents `Authorization: Bearer <token>`.
//! A node asking another for its part of a cluster-wide answer (a `GET`
//! with `?scope=local`) holds no token: its request is signed instead, and
//! passes on its signature as a peer request would.

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::HttpMessage;
use futures_util::StreamExt;

use super::{ApiError, AppState, MAX_PEER_JSON_BYTES};
use crate::auth::{self, token, AuthError, SignedRequest, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::config::DEFAULT_SECRET;
use crate::peer::{LAMPORT_HEADER, SENDER_HEADER};

/// Lets through only requests signed by a node of this cluster; moves this
/// node's clock past the sender's, and stamps the answer with this node's time.
pub async fn peer_guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = state_of(&req)?;
    let lamport = match verify_signed(&mut req, &state).await {
        Ok(lamport) => lamport,
        Err(Refusal::Body(e)) => return Err(e.into()),
        Err(Refusal::Auth(e)) => {
            log::warn!("peer route {} refused: {e} (claimed sender {})", route(&req), claimed_sender(req.headers()));
            return Err(ApiError::Unauthorized(format!("peer route refused: {e}")).into());
        }
    };
    state.clock.receive(lamport);
    let mut res = next.call(req).await?;
    let stamp = HeaderValue::from(state.clock.tick());
    res.headers_mut().insert(HeaderName::from_static(LAMPORT_HEADER), stamp);
    Ok(res)
}

/// Who asks, as the client guard found: a teacher reads everything, a
/// student reads of a hidden module only its counts. A node without client
/// tokens takes every client for a teacher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    Teacher,
    Student,
}

impl actix_web::FromRequest for Viewer {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(req.extensions().get::<Viewer>().copied().unwrap_or(Viewer::Teacher)))
    }
}

/// With client tokens configured, lets through a request that presents one
/// (telling the handler whose, as a [`Viewer`]), or a node's signed `GET`;
/// without, lets everything through.
pub async fn client_guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = state_of(&req)?;
    let api = &state.config.api;
    if api.tokens.is_empty() {
        return next.call(req).await;
    }
    let presented = req.headers().get(AUTHORIZATION).map(|v| v.to_str().ok().and_then(token::bearer));
    let viewer = match presented {
        Some(Some(bearer)) if token::matches(&api.tokens, bearer) => Ok(Viewer::Teacher),
        Some(Some(bearer)) if token::matches(&api.student_tokens, bearer) => Ok(Viewer::Student),
        Some(_) => Err("invalid bearer token".to_owned()),
        None if req.method() == Method::GET && req.headers().contains_key(SIGNATURE_HEADER) => {
            match verify_signed(&mut req, &state).await {
                // A peer asks for its part of an answer that it conceals
                // itself when its own client is a student.
                Ok(_) => Ok(Viewer::Teacher),
                Err(Refusal::Body(e)) => return Err(e.into()),
                Err(Refusal::Auth(e)) => {
                    log::warn!("{} refused: {e} (claimed sender {})", route(&req), claimed_sender(req.headers()));
                    Err(format!("peer signature refused: {e}"))
                }
            }
        }
        None => Err("this route needs an Authorization: Bearer <token> header".to_owned()),
    };
    match viewer {
        Ok(viewer) => {
            req.extensions_mut().insert(viewer);
            next.call(req).await
        }
        Err(reason) => {
            // The token presented is never logged: it may be a real one mistyped.
            let from = req.peer_addr().map_or_else(|| "unknown".to_owned(), |a| a.to_string());
            log::info!("{} refused: {reason} (from {from})", route(&req));
            Err(ApiError::BearerRequired(reason).into())
        }
    }
}

/// Why a signed request does not pass.
enum Refusal {
    /// Not signed by a node of this cluster, or not now: a 401.
    Auth(AuthError),
    /// Its body could not be read to check the signature.
    Body(ApiError),
}

impl From<AuthError> for Refusal {
    fn from(e: AuthError) -> Self {
        Self::Auth(e)
    }
}

/// Verifies the request's signature and takes it in the replay guard; on
/// success the body is back in place for the handler and the sender's
/// Lamport time is answered. The cheap checks (headers, window) come before
/// the body is read, so that a request refused on them costs no read.
async fn verify_signed(req: &mut ServiceRequest, state: &AppState) -> Result<u64, Refusal> {
    let now_ms = auth::wall_clock_ms();
    let secret = &state.config.cluster.secret;
    if secret.expose() == DEFAULT_SECRET {
        return Err(AuthError::DefaultSecret.into());
    }
    let headers = req.headers();
    let node = header(headers, SENDER_HEADER)?.to_owned();
    let lamport = number(headers, LAMPORT_HEADER)?;
    let timestamp_ms = number(headers, TIMESTAMP_HEADER)?;
    let signature = header(headers, SIGNATURE_HEADER)?.to_owned();
    state.replay_guard().check(timestamp_ms, now_ms)?;
    let body = read_body(req).await.map_err(Refusal::Body)?;
    let path = req.uri().path_and_query().map_or(req.path(), |p| p.as_str());
    let signed = SignedRequest { method: req.method().as_str(), path, node: &node, lamport, timestamp_ms, body: &body };
    let tag = auth::verify_request(secret, &signed, &signature)?;
    state.replay_guard().admit(timestamp_ms, tag, now_ms)?;
    req.set_payload(Payload::from(body));
    Ok(lamport)
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, AuthError> {
    let value = headers.get(name).ok_or(AuthError::Missing(name))?;
    value.to_str().map_err(|_| AuthError::Malformed(name))
}

fn number(headers: &HeaderMap, name: &'static str) -> Result<u64, AuthError> {
    header(headers, name)?.parse().map_err(|_| AuthError::Malformed(name))
}

/// The whole body, at most the peer JSON limit.
async fn read_body(req: &mut ServiceRequest) -> Result<Bytes, ApiError> {
    let limit = MAX_PEER_JSON_BYTES;
    let too_large = || ApiError::PayloadTooLarge { limit: u64::try_from(limit).unwrap_or(u64::MAX) };
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut payload = req.take_payload();
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("cannot read the request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn state_of(req: &ServiceRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>().cloned().ok_or_else(|| ApiError::internal("auth", "the app has no state"))
}

/// The method and the route's pattern (`GET /blobs/{sha256}`): bounded,
/// unlike the path a caller chose.
fn route(req: &ServiceRequest) -> String {
    format!("{} {}", req.method(), req.match_pattern().unwrap_or_else(|| "?".to_owned()))
}

/// The sender a request names, quoted and cut short: it is the caller's text.
fn claimed_sender(headers: &HeaderMap) -> String {
    match headers.get(SENDER_HEADER) {
        None => "none".to_owned(),
        Some(value) => {
            let text = String::from_utf8_lossy(value.as_bytes());
            format!("{:?}", text.chars().take(64).collect::<String>())
        }
    }
}
