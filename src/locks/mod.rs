//! Cluster locks: the coordinator's lock table, a pure core that grants
//! named locks first come first served, each with a lease, and rebuilds
//! itself from what the live nodes hold and wait for; and the wire types of
//! the lock routes.

pub mod model;
pub mod table;
