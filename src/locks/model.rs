//! The wire types of the lock routes between nodes: a node asks the
//! coordinator for a lock and renews it (`POST /lock/acquire`), lets it go
//! (`POST /lock/release`), and a new coordinator gathers what every live node
//! holds and waits for (`POST /lock/holdings`). Also the view of one lock that
//! `GET /network` shows.
//!
//! Unknown fields are refused, as in `peer::model`: a lock is only as good as
//! the agreement on what its messages mean.

use serde::{Deserialize, Serialize};

/// A node asks for a lock, or renews one it holds, or says it still waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcquireRequest {
    pub name: String,
    pub node: String,
    /// The node's Lamport time when it first asked for this lock: the same
    /// on every renewal and retry, so that a new coordinator can order the
    /// waiters as they first asked.
    pub lamport: u64,
}

/// The coordinator's answer to an acquire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case", deny_unknown_fields)]
pub enum AcquireAnswer {
    /// The caller holds the lock for `lease_ms` from now, unless it asks again.
    Granted { lease_ms: u64 },
    /// Others are ahead: 1 is next in line.
    Queued { position: usize },
    /// The asked node is not the coordinator; it names the one it knows.
    NotCoordinator { coordinator: Option<String> },
    /// The asked node has just become coordinator and is gathering the
    /// holdings of the live nodes: ask again later.
    Rebuilding,
}

/// A node lets go of a lock it holds, or stops waiting for one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    pub name: String,
    pub node: String,
}

/// The coordinator's answer to a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReleaseAnswer {
    /// The holder let go (the next waiter holds the lock now), or a waiter left the queue.
    Released,
    /// The caller neither holds the lock nor waits for it: nothing changed.
    NotHolder,
    NotCoordinator {
        coordinator: Option<String>,
    },
    Rebuilding,
}

/// A new coordinator asks a node what it holds and waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldingsRequest {
    pub coordinator: String,
}

/// What one node holds and waits for, as it believes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holdings {
    pub held: Vec<String>,
    pub waiting: Vec<Waiting>,
}

/// A lock a node waits for, with the Lamport time of its first ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Waiting {
    pub name: String,
    pub lamport: u64,
}

/// One lock of the coordinator's table, as `GET /network` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockView {
    pub name: String,
    pub holder: String,
    /// The queue, next in line first.
    pub waiting: Vec<String>,
    /// Until the holder loses the lock if it does not renew it.
    pub lease_left_ms: u64,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn answers_are_tagged_in_snake_case() {
        let granted = serde_json::to_value(AcquireAnswer::Granted { lease_ms: 3000 }).unwrap();
        assert_eq!(granted, json!({"answer": "granted", "lease_ms": 3000}));
        let elsewhere = serde_json::to_value(AcquireAnswer::NotCoordinator { coordinator: None }).unwrap();
        assert_eq!(elsewhere, json!({"answer": "not_coordinator", "coordinator": null}));
        let rebuilding: ReleaseAnswer = serde_json::from_value(json!({"answer": "rebuilding"})).unwrap();
        assert_eq!(rebuilding, ReleaseAnswer::Rebuilding);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let extra = json!({"name": "adopt/1", "node": "127.0.0.1:7001", "lamport": 4, "ttl": 9});
        assert!(serde_json::from_value::<AcquireRequest>(extra).is_err());
        let extra = json!({"answer": "queued", "position": 1, "eta": 3});
        assert!(serde_json::from_value::<AcquireAnswer>(extra).is_err());
        let extra = json!({"held": [], "waiting": [{"name": "adopt/1", "lamport": 2, "since": 0}]});
        assert!(serde_json::from_value::<Holdings>(extra).is_err());
    }
}
