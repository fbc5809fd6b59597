//! Cluster locks: the pure cores — the coordinator's lock table, which
//! grants named locks first come first served, each with a lease, and
//! rebuilds itself from what the live nodes hold and wait for, and a node's
//! own claims — and the wire types of the lock routes.

pub mod claims;
pub mod model;
pub mod table;
