//! The balancing subsystem: the `LoadBalancer` actor and the policies it can
//! run, behind one trait so that another policy (duration-aware scheduling)
//! can replace least connections.

mod balancer;
pub mod policy;

pub use balancer::{Assign, GetBalance, LoadBalancer, Release, SetMembers};
pub use policy::{LeastConnections, NodeLoad, Policy};
