//! The datagram a node multicasts to say where it can be joined, and the
//! reading of the datagrams it hears: bytes in, an address or the reason to
//! ignore them out. No socket; the clock is an argument.
//!
//! The datagram is JSON,
//! `{"evalmesh":2,"node":"10.0.0.5:5001","at":1700000000000,"mac":"<64 hex>"}`:
//! the key `evalmesh` tells it from other traffic on the group and carries
//! the version, so that another version is ignored rather than misread;
//! `at` is when it was sent (ms since the Unix epoch) and `mac` the
//! HMAC-SHA256 of `node` and `at` with the cluster secret
//! (`auth::signature`, under a label of its own, so that it cannot pass for
//! a signed request). Anything from the network is refused, never trusted:
//! too large, not JSON, another version, unsigned, signed with another
//! secret, sent outside the replay window, or naming an address no one
//! could join. An announcement replayed within the window names a node of
//! the cluster all the same, and leads at most to a join of that node, so
//! no memory of past announcements is kept.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::auth::{signature, AuthError, Secret};

/// The most bytes an announcement may hold; the receiver reads one byte more
/// to tell a larger datagram, which it ignores. An announcement is about 150.
pub const MAX_DATAGRAM: usize = 512;

/// The version of the announcement this node writes and reads: 1 was
/// unsigned.
pub const VERSION: u32 = 2;

/// What the `mac` of an announcement is made under.
const LABEL: &[u8] = b"evalmesh announcement v2";

/// How a node signs its announcements and checks the others'.
#[derive(Debug, Clone)]
pub struct Signing {
    /// The cluster secret.
    pub secret: Secret,
    /// An announcement is heard only within this of the hearer's clock.
    pub window_ms: u64,
}

/// Why a datagram heard on the group is not an announcement.
#[derive(Debug, thiserror::Error)]
pub enum AnnouncementError {
    #[error("{0} bytes, more than the {MAX_DATAGRAM} an announcement may hold")]
    TooLarge(usize),
    #[error("not an announcement: {0}")]
    Malformed(#[source] serde_json::Error),
    #[error("announcement version {0}, this node reads version {VERSION}")]
    Version(u32),
    #[error("unsigned announcement")]
    Unsigned,
    #[error("announcement refused: {0}")]
    Auth(AuthError),
    #[error("announced node {0:?} is not an address a node can be joined at")]
    Address(String),
}

#[derive(Serialize, Deserialize)]
struct Wire {
    evalmesh: u32,
    node: String,
    #[serde(default)]
    at: Option<u64>,
    #[serde(default)]
    mac: Option<String>,
}

/// This node's announcement at `now_ms`: `node` is its advertised address.
pub fn encode(node: &str, secret: &Secret, now_ms: u64) -> Vec<u8> {
    let mac = signature::sign(secret, LABEL, &fields(node, &now_ms.to_string()));
    serde_json::to_vec(&Wire { evalmesh: VERSION, node: node.to_owned(), at: Some(now_ms), mac: Some(mac) })
        .expect("a struct of numbers and strings serializes")
}

/// The node a datagram heard at `now_ms` announces, exactly as the node
/// spells its address: that spelling is its name in the member table.
pub fn decode(datagram: &[u8], signing: &Signing, now_ms: u64) -> Result<String, AnnouncementError> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(AnnouncementError::TooLarge(datagram.len()));
    }
    let wire: Wire = serde_json::from_slice(datagram).map_err(AnnouncementError::Malformed)?;
    if wire.evalmesh != VERSION {
        return Err(AnnouncementError::Version(wire.evalmesh));
    }
    let (Some(at), Some(mac)) = (wire.at, wire.mac) else {
        return Err(AnnouncementError::Unsigned);
    };
    signature::verify_fields(&signing.secret, LABEL, &fields(&wire.node, &at.to_string()), &mac)
        .map_err(AnnouncementError::Auth)?;
    let window_ms = signing.window_ms;
    if at.saturating_add(window_ms) < now_ms {
        return Err(AnnouncementError::Auth(AuthError::Stale { age_ms: now_ms - at, window_ms }));
    }
    if at > now_ms.saturating_add(window_ms) {
        return Err(AnnouncementError::Auth(AuthError::Future { ahead_ms: at - now_ms, window_ms }));
    }
    match wire.node.parse::<SocketAddr>() {
        Ok(addr) if !addr.ip().is_unspecified() && !addr.ip().is_multicast() && addr.port() != 0 => Ok(wire.node),
        _ => Err(AnnouncementError::Address(wire.node)),
    }
}

fn fields<'a>(node: &'a str, at: &'a str) -> [&'a [u8]; 2] {
    [node.as_bytes(), at.as_bytes()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn signing() -> Signing {
        Signing { secret: Secret::new("cluster-secret-0123456789"), window_ms: 30_000 }
    }

    fn signed(node: &str) -> Vec<u8> {
        encode(node, &signing().secret, NOW)
    }

    #[test]
    fn an_announcement_reads_back_as_the_node_it_announces() {
        let datagram = signed("10.0.0.5:5001");
        let text = String::from_utf8(datagram.clone()).unwrap();
        assert!(text.starts_with(r#"{"evalmesh":2,"node":"10.0.0.5:5001","at":1700000000000,"mac":""#), "{text}");
        assert_eq!(decode(&datagram, &signing(), NOW).unwrap(), "10.0.0.5:5001");
        assert_eq!(decode(&signed("[fd00::2]:5001"), &signing(), NOW + 1).unwrap(), "[fd00::2]:5001");
    }

    #[test]
    fn the_longest_address_fits_well_within_the_bound() {
        let longest = "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255%4294967295]:65535";
        assert!(encode(longest, &signing().secret, u64::MAX).len() < MAX_DATAGRAM / 2);
    }

    #[test]
    fn fields_a_later_version_adds_are_ignored() {
        let mut wire: serde_json::Value = serde_json::from_slice(&signed("10.0.0.5:5001")).unwrap();
        wire["extra"] = serde_json::json!("00ff");
        let datagram = serde_json::to_vec(&wire).unwrap();
        assert_eq!(decode(&datagram, &signing(), NOW).unwrap(), "10.0.0.5:5001");
    }

    #[test]
    fn a_datagram_past_the_bound_is_refused_before_it_is_read() {
        let mut datagram = signed("10.0.0.5:5001");
        datagram.resize(MAX_DATAGRAM + 1, b' ');
        assert!(matches!(decode(&datagram, &signing(), NOW), Err(AnnouncementError::TooLarge(513))));
        datagram.truncate(MAX_DATAGRAM);
        assert!(decode(&datagram, &signing(), NOW).is_ok(), "trailing white space up to the bound is still JSON");
    }

    #[test]
    fn anything_but_an_announcement_is_malformed() {
        let hostile: [&[u8]; 8] = [
            b"",
            b"\xff\xfe\x00",
            b"hello",
            b"null",
            br#"{"evalmesh":2}"#,
            br#"{"node":"10.0.0.5:5001"}"#,
            br#"{"evalmesh":-1,"node":"10.0.0.5:5001"}"#,
            br#"{"evalmesh":2,"node":5001}"#,
        ];
        for datagram in hostile {
            assert!(matches!(decode(datagram, &signing(), NOW), Err(AnnouncementError::Malformed(_))), "{datagram:?}");
        }
    }

    #[test]
    fn another_version_is_refused() {
        for (datagram, version) in
            [(&br#"{"evalmesh":1,"node":"10.0.0.5:5001"}"#[..], 1), (br#"{"evalmesh":3,"node":"10.0.0.5:5001"}"#, 3)]
        {
            assert!(matches!(decode(datagram, &signing(), NOW), Err(AnnouncementError::Version(v)) if v == version));
        }
    }

    #[test]
    fn an_unsigned_announcement_is_refused() {
        for datagram in [
            &br#"{"evalmesh":2,"node":"10.0.0.5:5001"}"#[..],
            br#"{"evalmesh":2,"node":"10.0.0.5:5001","at":1700000000000}"#,
            br#"{"evalmesh":2,"node":"10.0.0.5:5001","mac":"00"}"#,
        ] {
            assert!(matches!(decode(datagram, &signing(), NOW), Err(AnnouncementError::Unsigned)), "{datagram:?}");
        }
    }

    #[test]
    fn another_secret_or_an_altered_field_is_a_bad_signature() {
        let other = encode("10.0.0.5:5001", &Secret::new("another-secret-0123456789"), NOW);
        assert!(matches!(decode(&other, &signing(), NOW), Err(AnnouncementError::Auth(AuthError::BadSignature))));
        let mut wire: serde_json::Value = serde_json::from_slice(&signed("10.0.0.5:5001")).unwrap();
        wire["node"] = serde_json::json!("10.0.0.6:5001");
        let moved = serde_json::to_vec(&wire).unwrap();
        assert!(matches!(decode(&moved, &signing(), NOW), Err(AnnouncementError::Auth(AuthError::BadSignature))));
        let mut wire: serde_json::Value = serde_json::from_slice(&signed("10.0.0.5:5001")).unwrap();
        wire["at"] = serde_json::json!(NOW + 1);
        let redated = serde_json::to_vec(&wire).unwrap();
        assert!(matches!(decode(&redated, &signing(), NOW), Err(AnnouncementError::Auth(AuthError::BadSignature))));
    }

    #[test]
    fn an_announcement_outside_the_window_is_refused() {
        let datagram = signed("10.0.0.5:5001");
        assert!(decode(&datagram, &signing(), NOW + 30_000).is_ok());
        assert!(decode(&datagram, &signing(), NOW - 30_000).is_ok());
        let stale = decode(&datagram, &signing(), NOW + 30_001);
        assert!(matches!(stale, Err(AnnouncementError::Auth(AuthError::Stale { .. }))), "{stale:?}");
        let future = decode(&datagram, &signing(), NOW - 30_001);
        assert!(matches!(future, Err(AnnouncementError::Auth(AuthError::Future { .. }))), "{future:?}");
    }

    #[test]
    fn an_address_no_one_can_join_is_refused() {
        for node in
            ["", "node-a:5001", "10.0.0.5", "0.0.0.0:5001", "10.0.0.5:0", "239.255.77.77:5001", "10.0.0.5:99999"]
        {
            let datagram = signed(node);
            assert!(
                matches!(decode(&datagram, &signing(), NOW), Err(AnnouncementError::Address(n)) if n == node),
                "{node:?}"
            );
        }
    }
}
