//! The membership subsystem: the `Membership` actor, the pure SWIM core it
//! drives, the data that travels between nodes, and the transport the actor
//! speaks through.

#[allow(clippy::module_inception)]
mod membership;
pub mod model;
pub mod swim;
mod transport;

pub use membership::{
    Discovered, GetJoined, GetMembers, HandleJoin, HandlePing, HandlePingReq, Leave, Membership, MembershipLinks,
    MembershipSettings, Tick,
};
pub use model::{MemberView, Status};
pub use transport::Transport;
