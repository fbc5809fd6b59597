//! The datagram a node multicasts to say where it can be joined, and the
//! reading of the datagrams it hears: bytes in, an address or the reason to
//! ignore them out. No socket, no clock.
//!
//! The datagram is JSON, `{"evalmesh":1,"node":"10.0.0.5:5001"}`: the key
//! `evalmesh` tells it from other traffic on the group and carries the
//! version, so that a later version (one signed with the cluster secret) is
//! ignored by this one rather than misread. Anything from the network is
//! refused, never trusted: too large, not JSON, another version, or a node
//! address no one could join.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The most bytes an announcement may hold; the receiver reads one byte more
/// to tell a larger datagram, which it ignores. An announcement is about 50.
pub const MAX_DATAGRAM: usize = 512;

/// The version of the announcement this node writes and reads.
pub const VERSION: u32 = 1;

/// Why a datagram heard on the group is not an announcement.
#[derive(Debug, thiserror::Error)]
pub enum AnnouncementError {
    #[error("{0} bytes, more than the {MAX_DATAGRAM} an announcement may hold")]
    TooLarge(usize),
    #[error("not an announcement: {0}")]
    Malformed(#[source] serde_json::Error),
    #[error("announcement version {0}, this node reads version {VERSION}")]
    Version(u32),
    #[error("announced node {0:?} is not an address a node can be joined at")]
    Address(String),
}

#[derive(Serialize, Deserialize)]
struct Wire {
    evalmesh: u32,
    node: String,
}

/// This node's announcement: `node` is its advertised address.
pub fn encode(node: &str) -> Vec<u8> {
    serde_json::to_vec(&Wire { evalmesh: VERSION, node: node.to_owned() })
        .expect("a struct of a number and a string serializes")
}

/// The node a datagram announces, exactly as the node spells its address:
/// that spelling is its name in the member table.
pub fn decode(datagram: &[u8]) -> Result<String, AnnouncementError> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(AnnouncementError::TooLarge(datagram.len()));
    }
    let wire: Wire = serde_json::from_slice(datagram).map_err(AnnouncementError::Malformed)?;
    if wire.evalmesh != VERSION {
        return Err(AnnouncementError::Version(wire.evalmesh));
    }
    match wire.node.parse::<SocketAddr>() {
        Ok(addr) if !addr.ip().is_unspecified() && !addr.ip().is_multicast() && addr.port() != 0 => Ok(wire.node),
        _ => Err(AnnouncementError::Address(wire.node)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announcement_reads_back_as_the_node_it_announces() {
        let datagram = encode("10.0.0.5:5001");
        assert_eq!(datagram, br#"{"evalmesh":1,"node":"10.0.0.5:5001"}"#);
        assert_eq!(decode(&datagram).unwrap(), "10.0.0.5:5001");
        assert_eq!(decode(&encode("[fd00::2]:5001")).unwrap(), "[fd00::2]:5001");
    }

    #[test]
    fn the_longest_address_fits_well_within_the_bound() {
        let longest = "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255%4294967295]:65535";
        assert!(encode(longest).len() < MAX_DATAGRAM / 4);
    }

    #[test]
    fn fields_a_later_version_adds_are_ignored() {
        let datagram = br#"{"evalmesh":1,"node":"10.0.0.5:5001","mac":"00ff"}"#;
        assert_eq!(decode(datagram).unwrap(), "10.0.0.5:5001");
    }

    #[test]
    fn a_datagram_past_the_bound_is_refused_before_it_is_read() {
        let mut datagram = encode("10.0.0.5:5001");
        datagram.resize(MAX_DATAGRAM + 1, b' ');
        assert!(matches!(decode(&datagram), Err(AnnouncementError::TooLarge(513))));
        datagram.truncate(MAX_DATAGRAM);
        assert!(decode(&datagram).is_ok(), "trailing white space up to the bound is still JSON");
    }

    #[test]
    fn anything_but_an_announcement_is_malformed() {
        let hostile: [&[u8]; 8] = [
            b"",
            b"\xff\xfe\x00",
            b"hello",
            b"null",
            br#"{"evalmesh":1}"#,
            br#"{"node":"10.0.0.5:5001"}"#,
            br#"{"evalmesh":-1,"node":"10.0.0.5:5001"}"#,
            br#"{"evalmesh":1,"node":5001}"#,
        ];
        for datagram in hostile {
            assert!(matches!(decode(datagram), Err(AnnouncementError::Malformed(_))), "{datagram:?}");
        }
    }

    #[test]
    fn another_version_is_refused() {
        let datagram = br#"{"evalmesh":2,"node":"10.0.0.5:5001"}"#;
        assert!(matches!(decode(datagram), Err(AnnouncementError::Version(2))));
    }

    #[test]
    fn an_address_no_one_can_join_is_refused() {
        for node in
            ["", "node-a:5001", "10.0.0.5", "0.0.0.0:5001", "10.0.0.5:0", "239.255.77.77:5001", "10.0.0.5:99999"]
        {
            let datagram = encode(node);
            assert!(matches!(decode(&datagram), Err(AnnouncementError::Address(n)) if n == node), "{node:?}");
        }
    }
}
