//! An evaluation as the replication tests write it: one project `p` of four
//! one-test modules, `tests/test_{i}.py`, collected, in a term of a supervisor.

use chrono::Utc;
use uuid::Uuid;

use crate::evaluation::model::{EvaluationStatus, ModuleResult, ModuleStatus, Tally};
use crate::replication::model::ReplicaOp;
use crate::store::{EvaluationRecord, ProjectRow, Source};

pub fn record(id: Uuid, epoch: u64, supervisor: &str) -> EvaluationRecord {
    EvaluationRecord {
        id,
        status: EvaluationStatus::Running,
        source: Source::Zip { name: "z".into() },
        supervisor: supervisor.into(),
        epoch,
        input_sha256: None,
        input_ready: true,
        submitted_at: Utc::now(),
        started_at: Some(Utc::now()),
        finished_at: None,
        error: None,
    }
}

/// What a supervisor's journal opens with: the record, the project, its modules.
pub fn snapshot(id: Uuid, epoch: u64, supervisor: &str) -> Vec<ReplicaOp> {
    let project = ProjectRow { collected: true, ..ProjectRow::found("p".into(), "p".into(), Some("Pat (p1)".into())) };
    let modules = (0..4).map(|i| (format!("tests/test_{i}.py"), 1)).collect();
    vec![
        ReplicaOp::Record { record: record(id, epoch, supervisor) },
        ReplicaOp::Projects { projects: vec![project] },
        ReplicaOp::Collected { project: "p".into(), modules, error: None },
    ]
}

/// Module `i` passed its one test.
pub fn result(i: usize) -> ReplicaOp {
    let result = ModuleResult {
        status: ModuleStatus::Done,
        tally: Tally { passed: 1, ..Tally::default() },
        duration: 0.1,
        wall: 0.2,
        node: "n1".into(),
        output: String::new(),
        tests: Vec::new(),
    };
    ReplicaOp::Result { project: "p".into(), module: format!("tests/test_{i}.py"), result }
}
