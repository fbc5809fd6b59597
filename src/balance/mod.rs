//! The balancing subsystem: the `LoadBalancer` actor and the policies it can
//! run, behind one trait: longest first with environment preference (the
//! default), or least connections (`balance.policy`).

mod balancer;
pub mod policy;

pub use balancer::{GetBalance, LoadBalancer, Place, Release, SetMembers};
pub use policy::{LeastConnections, LongestFirst, NodeLoad, Policy, PolicyKind, TaskHint};
