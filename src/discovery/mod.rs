//! Multicast discovery: nodes on one network segment find each other without
//! seeds. The `Announcer` actor multicasts this node's address and tells
//! membership of every other node it hears; `announcement` writes and reads
//! the datagram (pure); `socket` opens the UDP socket.
//!
//! An announcement is signed with the cluster secret, and one that is not is
//! ignored: a stranger on the segment cannot make a node join an address of
//! its choosing. All a genuine one makes a node do is `POST /join` the
//! announced address, as it would a seed, and that join is itself a signed
//! peer call.

pub mod announcement;
mod announcer;
mod socket;

pub use announcement::Signing;
pub use announcer::Announcer;
pub use socket::{open, DiscoveryError};
