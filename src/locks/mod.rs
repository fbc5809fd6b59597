//! Cluster locks: the `Locks` actor on every node, the pure cores it drives —
//! the coordinator's lock table and a node's own claims — the wire types of
//! the lock routes. The
//! coordinator grants named locks, first come first served, each with a lease
//! so that a holder that dies does not block the cluster; a new coordinator
//! rebuilds the table from what the live nodes hold and wait for.

pub mod claims;
#[allow(clippy::module_inception)]
mod locks;
pub mod model;
pub mod table;

pub use locks::{
    Acquire, GetHeld, GetLocks, HandleAcquire, HandleHoldings, HandleRelease, LockError, Locks, LocksLinks, Release,
    Tick,
};
