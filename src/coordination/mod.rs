//! Coordination: the `Coordination` actor and the pure bully election it
//! drives, which make one live node the cluster's coordinator.

pub mod bully;
#[allow(clippy::module_inception)]
mod coordination;

pub use coordination::{
    Coordination, ElectionAnswer, ElectionMessage, GetCoordinator, HandleCoordinator, HandleElection, Tick,
};
