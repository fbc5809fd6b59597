//! Multicast discovery: nodes on one network segment find each other without
//! seeds. The `Announcer` actor multicasts this node's address and tells
//! membership of every other node it hears; `announcement` writes and reads
//! the datagram (pure); `socket` opens the UDP socket.
//!
//! An announcement is not authenticated: all it can make a node do is
//! `POST /join` the announced address, as it would a seed, and that join is
//! an ordinary peer call.

pub mod announcement;
mod announcer;
mod socket;

pub use announcer::Announcer;
pub use socket::{open, DiscoveryError};
