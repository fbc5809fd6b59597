//! Authentication, pure: no socket, no actor, and the clock only as an
//! argument. The HTTP side — the guard in front of the peer routes, the
//! token check in front of the public ones — is `api::auth`; `PeerClient`
//! signs, and the multicast announcement signs with the same secret.
//!
//! - [`signature`]: the HMAC-SHA256 a node puts on every request to a peer,
//!   over the method, the path and query, its name, its Lamport time, a
//!   timestamp and the body, made with the cluster secret.
//! - [`replay`]: the replay window and the bounded memory of the signatures
//!   seen within it, so that a captured request cannot be sent again.
//! - [`token`]: the `Authorization: Bearer` tokens a client may be asked for.
//! - [`Secret`]: the cluster secret and the tokens, which never print.
//!
//! What is promised, and why, is in `docs/security.md`.

pub mod replay;
mod secret;
pub mod signature;
pub mod token;

pub use replay::ReplayGuard;
pub use secret::Secret;
pub use signature::{sign_request, verify_request, SignedRequest};

/// The header that carries the sender's wall-clock time, in milliseconds
/// since the Unix epoch, when it signed the request.
pub const TIMESTAMP_HEADER: &str = "x-evalmesh-timestamp";

/// The header that carries the request's signature, as 64 hex digits.
pub const SIGNATURE_HEADER: &str = "x-evalmesh-signature";

/// Why a request, or an announcement, is not taken as coming from a node of
/// this cluster. The texts name what was wrong and never a secret, nor the
/// signature the request should have had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no {0} header")]
    Missing(&'static str),
    #[error("malformed {0} header")]
    Malformed(&'static str),
    #[error("stale: signed {age_ms} ms ago, beyond the replay window of {window_ms} ms")]
    Stale { age_ms: u64, window_ms: u64 },
    #[error(
        "future-dated: signed {ahead_ms} ms ahead of this node's clock, beyond the replay window of {window_ms} ms"
    )]
    Future { ahead_ms: u64, window_ms: u64 },
    /// Signed before the oldest signature this node still remembers: when it
    /// started, or what it had to forget to stay within its bound.
    #[error("signed before the oldest signature this node remembers, so a replay cannot be ruled out: sign it again")]
    Forgotten,
    #[error("replayed: this signature was already used")]
    Replayed,
    #[error("bad signature: not made with this cluster's secret, or the request was altered")]
    BadSignature,
    #[error("this node keeps the default cluster.secret and takes no peer requests")]
    DefaultSecret,
}

/// The wall clock in milliseconds since the Unix epoch: what timestamps
/// are made of, here and on the signing side.
pub fn wall_clock_ms() -> u64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}
