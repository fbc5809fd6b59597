//! The wire types of replication: a supervisor sends its evaluation's journal
//! to its replicas (`POST /replicate`), and a node asks a peer what it holds
//! of an evaluation (`GET /replica/{id}`) and for all of it
//! (`GET /replica/{id}/snapshot`), to catch up or to decide an adoption.

use std::path::{Component, Path};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::evaluation::blobs;
use crate::evaluation::model::{EvaluationStatus, Event, ModuleResult};
use crate::store::{EvaluationRecord, ProjectRow};

/// One write of a supervisor, as a replica applies it. Applying an operation
/// twice changes nothing: records are overwritten, projects and modules are
/// kept as first written, results and events are stored once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReplicaOp {
    /// The evaluation's record as the supervisor now has it.
    Record {
        record: EvaluationRecord,
    },
    /// Projects and the blobs that hold them: the replica fetches each blob
    /// before it acknowledges.
    Projects {
        projects: Vec<ProjectRow>,
    },
    /// A project's modules, or why it has none.
    Collected {
        project: String,
        modules: Vec<(String, u32)>,
        error: Option<String>,
    },
    Result {
        project: String,
        module: String,
        result: ModuleResult,
    },
    Event {
        event: Event,
    },
}

impl ReplicaOp {
    fn projects(&self) -> &[ProjectRow] {
        match self {
            Self::Projects { projects } => projects,
            _ => &[],
        }
    }

    /// The blobs a replica must hold before it applies this operation.
    pub fn blobs(&self) -> impl Iterator<Item = &str> {
        self.projects().iter().filter_map(|p| p.blob.as_deref())
    }
}

/// The largest integer SQLite stores. Epochs stay below it, so that an
/// adoption's next term still fits.
const MAX_STORED: u64 = i64::MAX as u64;

/// Checks a journal before a replica applies any of it: a record is of the
/// journal's evaluation (the replica checked that evaluation's term, not
/// another's), every number fits in the store, each blob is a SHA-256
/// digest and each project root a relative path that stays inside the
/// workspace.
pub fn check(replicate: &Replicate) -> Result<(), String> {
    let end = replicate.from.checked_add(replicate.ops.len() as u64);
    if end.is_none_or(|end| end > MAX_STORED) {
        return Err(format!("journal position {} is past what a replica stores", replicate.from));
    }
    for op in &replicate.ops {
        match op {
            ReplicaOp::Record { record } if record.id != replicate.evaluation => {
                return Err(format!("a record of evaluation {} in the journal of {}", record.id, replicate.evaluation));
            }
            ReplicaOp::Record { record } if record.epoch >= MAX_STORED => {
                return Err(format!("epoch {} is past what a replica stores", record.epoch));
            }
            ReplicaOp::Event { event } if event.lamport > MAX_STORED => {
                return Err(format!("event time {} is past what a replica stores", event.lamport));
            }
            _ => {}
        }
    }
    for project in replicate.ops.iter().flat_map(ReplicaOp::projects) {
        if let Some(blob) = project.blob.as_deref().filter(|b| !blobs::is_sha256(b)) {
            return Err(format!("project {:?}: blob {blob:?} is not a SHA-256 digest", project.name));
        }
        let inside = Path::new(&project.root).components().all(|c| matches!(c, Component::Normal(_)));
        if !inside {
            return Err(format!("project {:?}: root {:?} leaves the workspace", project.name, project.root));
        }
    }
    Ok(())
}

/// `POST /replicate`: the entries `from..from + ops.len()` of a supervisor's
/// journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replicate {
    pub evaluation: Uuid,
    /// Names the journal: a supervisor that starts again begins a new one.
    pub journal: Uuid,
    /// The sender's term; a replica that knows a higher one refuses.
    pub epoch: u64,
    pub supervisor: String,
    pub from: u64,
    pub ops: Vec<ReplicaOp>,
}

/// The answer of `POST /replicate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReplicateAnswer {
    /// The replica holds the journal up to `have`: below `from` when it
    /// missed entries, which the supervisor then sends again.
    Applied { have: u64 },
    /// The replica knows a later supervisor of this evaluation.
    Superseded { epoch: u64, supervisor: String },
}

/// `GET /replica/{id}`: what a node holds of an evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaSummary {
    pub epoch: u64,
    pub supervisor: String,
    pub status: EvaluationStatus,
    /// Modules with a result.
    pub finished: u64,
    /// The answering node runs the evaluation's supervisor now.
    pub supervising: bool,
}

impl ReplicaSummary {
    /// Which of two copies knows more: a later term, then a closed
    /// evaluation, then more results.
    pub fn rank(&self) -> (u64, bool, u64) {
        (self.epoch, self.status.is_finished(), self.finished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(root: &str, blob: Option<&str>) -> ReplicaOp {
        let row = ProjectRow { blob: blob.map(str::to_owned), ..ProjectRow::found("p".into(), root.into(), None) };
        ReplicaOp::Projects { projects: vec![row] }
    }

    const ID: Uuid = Uuid::from_u128(7);

    fn journal(ops: Vec<ReplicaOp>) -> Replicate {
        Replicate { evaluation: ID, journal: Uuid::from_u128(1), epoch: 0, supervisor: "n1".into(), from: 0, ops }
    }

    fn record(id: Uuid, epoch: u64) -> ReplicaOp {
        let record = EvaluationRecord {
            id,
            status: EvaluationStatus::Queued,
            source: crate::store::Source::Zip { name: "p".into() },
            supervisor: "n1".into(),
            epoch,
            input_sha256: None,
            input_ready: true,
            submitted_at: chrono::DateTime::UNIX_EPOCH,
            started_at: None,
            finished_at: None,
            error: None,
        };
        ReplicaOp::Record { record }
    }

    #[test]
    fn a_duration_crosses_the_wire_to_the_last_bit() {
        // A replica's copy must say what the supervisor's says: serde_json
        // parses floats exactly only with `float_roundtrip`.
        let duration: f64 = 0.000_942_922_997_637_651_9;
        let back: f64 = serde_json::from_str(&serde_json::to_string(&duration).unwrap()).unwrap();
        assert_eq!(back.to_bits(), duration.to_bits());
    }

    #[test]
    fn project_roots_must_stay_inside_the_workspace_and_blobs_be_digests() {
        let sha = "a".repeat(64);
        assert_eq!(check(&journal(vec![project("p", Some(&sha)), project("", None), project("a/b", None)])), Ok(()));
        for bad in ["../x", "/etc", "a/../../b", "./a"] {
            assert!(check(&journal(vec![project(bad, None)])).is_err(), "{bad}");
        }
        assert!(check(&journal(vec![project("p", Some("../../etc/passwd"))])).is_err());
    }

    /// Found by `tests/fuzz`: these reached SQLite, which cannot hold
    /// them, and the replica answered 500.
    #[test]
    fn numbers_past_what_the_store_holds_are_refused() {
        assert_eq!(check(&journal(vec![record(ID, MAX_STORED - 1)])), Ok(()));
        assert!(check(&journal(vec![record(ID, MAX_STORED)])).is_err(), "no room left for an adoption's term");
        assert!(check(&journal(vec![record(ID, u64::MAX)])).is_err());
        let event = |lamport| ReplicaOp::Event {
            event: Event {
                lamport,
                node: "n1".into(),
                kind: crate::evaluation::model::EventKind::Done,
                detail: "".into(),
            },
        };
        assert_eq!(check(&journal(vec![event(MAX_STORED)])), Ok(()));
        assert!(check(&journal(vec![event(MAX_STORED + 1)])).is_err());
        let far = Replicate { from: MAX_STORED, ..journal(vec![event(1)]) };
        assert!(check(&far).is_err(), "the position after the journal would not fit");
        assert!(check(&Replicate { from: u64::MAX, ..journal(vec![event(1)]) }).is_err());
    }

    /// Found by `tests/fuzz`: the record was written although the replica
    /// had checked the term of the journal's evaluation, not of this one.
    #[test]
    fn a_record_of_another_evaluation_is_refused() {
        assert_eq!(check(&journal(vec![record(ID, 1)])), Ok(()));
        assert!(check(&journal(vec![record(Uuid::from_u128(8), 1)])).is_err());
    }

    #[test]
    fn ops_round_trip_and_unknown_fields_are_refused() {
        let op = project("p", None);
        let json = serde_json::to_string(&op).unwrap();
        assert_eq!(serde_json::from_str::<ReplicaOp>(&json).unwrap(), op);
        let extra = r#"{"op":"collected","project":"p","modules":[],"error":null,"x":1}"#;
        assert!(serde_json::from_str::<ReplicaOp>(extra).is_err());
    }
}
