//! The membership subsystem: the `Membership` actor, the pure SWIM core it
//! drives and the data that travels between nodes.

#[allow(clippy::module_inception)]
mod membership;
pub mod model;
pub mod swim;

pub use membership::{
    Discovered, GetJoined, GetMembers, HandleJoin, HandlePing, HandlePingReq, Leave, Membership, MembershipLinks,
    MembershipSettings, Tick,
};
pub use model::{MemberView, Status};
