//! Replication: each evaluation's supervisor keeps its record, its results,
//! its event log and its input (the project blobs) on `cluster.replicas`
//! other live nodes, so that one of them can adopt the evaluation when the
//! supervisor dies. The `Replicator` actor sends the journal; the store
//! applies it (`store::ApplyReplica`); `content` finds and fetches blobs
//! among peers; `placement` picks the replicas.

pub mod content;
pub mod model;
pub mod placement;
pub mod receive;
mod replicator;

pub use replicator::{Append, Flush, GetReplicas, Replicator, ReplicatorSettings, Stop, Superseded, Tick};
