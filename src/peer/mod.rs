//! Peer-to-peer: every route between nodes defined once (`routes`), the
//! `Network` that carries them and its typed face `Peers`, the one awc
//! client that is the real network, signing each request with the cluster secret
//! (`auth::signature`), and the Lamport clock every message carries. The
//! routes themselves are in `api::peer`, behind the guard of `api::auth`.

mod client;
pub mod lamport;
pub mod model;
mod network;
pub mod routes;

pub use client::PeerClient;
pub use lamport::{LamportClock, LAMPORT_HEADER};
pub use network::{Exchange, Network, Peers};

/// The Lamport time a message carries, if it carries a valid one: a
/// number up to [`LamportClock::MAX`].
pub fn lamport_of(headers: &actix_web::http::header::HeaderMap) -> Option<u64> {
    headers.get(LAMPORT_HEADER)?.to_str().ok()?.parse().ok().filter(|t| *t <= LamportClock::MAX)
}

/// The header in which a peer names itself; the signature covers it.
pub const SENDER_HEADER: &str = "x-evalmesh-node";

/// Errors of a call to a peer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("{url}: cannot send: {reason}")]
    Send { url: String, reason: String },
    #[error("{url}: cannot read the answer: {reason}")]
    Read { url: String, reason: String },
    #[error("{url}: answered {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error("{url}: unexpected answer: {reason}")]
    Decode { url: String, reason: String },
}

impl PeerError {
    /// The peer answered and said no: retrying the same call will not help.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Status { status, .. } if (400..500).contains(status))
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

    use super::*;

    fn carrying(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HeaderName::from_static(LAMPORT_HEADER), HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn a_lamport_time_past_what_the_store_holds_is_not_read() {
        assert_eq!(lamport_of(&carrying("9223372036854775807")), Some(LamportClock::MAX));
        for bad in ["9223372036854775808", "18446744073709551615", "-1", "0x10", ""] {
            assert_eq!(lamport_of(&carrying(bad)), None, "{bad:?}");
        }
        assert_eq!(lamport_of(&HeaderMap::new()), None);
    }
}
