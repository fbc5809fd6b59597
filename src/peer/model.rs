//! The wire types of the evaluation routes between nodes: a supervisor hands
//! a task to a worker (`POST /execute_module`), the worker fetches the
//! project (`GET /blobs/{sha256}`) and answers (`POST /evaluation_result`),
//! and the supervisor closes the evaluation everywhere (`POST /evaluation_done`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::evaluation::model::ModuleResult;
use crate::executor::collect::Collected;
use crate::executor::envs::is_tag;
use crate::executor::{JobKind, JobOutput, RunStamp};

/// A task for a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecuteModule {
    pub evaluation: Uuid,
    pub task: u64,
    /// Where the result goes and the blob comes from.
    pub supervisor: String,
    pub project: String,
    /// SHA-256 of the project's content, as a zip.
    pub blob: String,
    pub kind: TaskSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum TaskSpec {
    Collect,
    Run { modules: Vec<String>, timeout_ms: u64 },
}

impl From<&JobKind> for TaskSpec {
    fn from(kind: &JobKind) -> Self {
        match kind {
            JobKind::Collect => Self::Collect,
            JobKind::Run { modules, timeout } => Self::Run {
                modules: modules.clone(),
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            },
        }
    }
}

impl From<TaskSpec> for JobKind {
    fn from(spec: TaskSpec) -> Self {
        match spec {
            TaskSpec::Collect => Self::Collect,
            TaskSpec::Run { modules, timeout_ms } => Self::Run { modules, timeout: Duration::from_millis(timeout_ms) },
        }
    }
}

/// A worker's answer to a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationResult {
    pub evaluation: Uuid,
    pub task: u64,
    pub project: String,
    /// The worker that ran it, and when in its Lamport time.
    pub stamp: RunStamp,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Outcome {
    Collected {
        modules: BTreeMap<String, u32>,
        errors: BTreeMap<String, String>,
        /// The project's environment tag; absent from older workers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        env: Option<String>,
    },
    Ran {
        results: BTreeMap<String, ModuleResult>,
    },
    TimedOut {
        output: String,
        /// How long the run went before it was killed; 0 from a worker that
        /// does not send it.
        #[serde(default)]
        elapsed_ms: u64,
    },
    /// The task could not run: a failed install, a missing blob.
    Failed {
        error: String,
    },
}

impl From<Result<JobOutput, String>> for Outcome {
    fn from(outcome: Result<JobOutput, String>) -> Self {
        match outcome {
            Ok(JobOutput::Collected(c)) => Self::Collected { modules: c.modules, errors: c.errors, env: c.env },
            Ok(JobOutput::Ran(results)) => Self::Ran { results },
            Ok(JobOutput::TimedOut { output, elapsed }) => {
                Self::TimedOut { output, elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX) }
            }
            Err(error) => Self::Failed { error },
        }
    }
}

impl From<Outcome> for Result<JobOutput, String> {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Collected { modules, errors, env } => {
                Ok(JobOutput::Collected(Collected { modules, errors, env: env.filter(|t| is_tag(t)) }))
            }
            Outcome::Ran { results } => Ok(JobOutput::Ran(results)),
            Outcome::TimedOut { output, elapsed_ms } => {
                Ok(JobOutput::TimedOut { output, elapsed: Duration::from_millis(elapsed_ms) })
            }
            Outcome::Failed { error } => Err(error),
        }
    }
}

/// The evaluation is over: its temporary files can go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationDone {
    pub evaluation: Uuid,
}

/// A client cancelled an evaluation: its supervisor closes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    pub evaluation: Uuid,
}

/// A client removed a finished evaluation: every node drops its copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveEvaluation {
    pub evaluation: Uuid,
}

/// The answer to `POST /evaluation_result`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultAck {
    /// False when the supervisor no longer wants it (evaluation closed or unknown).
    pub accepted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_specs_round_trip_through_json_and_job_kinds() {
        let kind = JobKind::Run { modules: vec!["tests/test_a.py".into()], timeout: Duration::from_millis(1500) };
        let spec = TaskSpec::from(&kind);
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(json, r#"{"kind":"run","modules":["tests/test_a.py"],"timeout_ms":1500}"#);
        let back: TaskSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(JobKind::from(back), kind);
    }

    #[test]
    fn a_timed_out_run_carries_its_elapsed_time_and_an_old_worker_reads_as_zero() {
        let out: Outcome = Ok(JobOutput::TimedOut { output: "x".into(), elapsed: Duration::from_millis(2500) }).into();
        let json = serde_json::to_string(&out).unwrap();
        assert_eq!(json, r#"{"kind":"timed_out","output":"x","elapsed_ms":2500}"#);
        let back: Result<JobOutput, String> = serde_json::from_str::<Outcome>(&json).unwrap().into();
        assert!(matches!(back, Ok(JobOutput::TimedOut { elapsed, .. }) if elapsed == Duration::from_millis(2500)));
        let old: Outcome = serde_json::from_str(r#"{"kind":"timed_out","output":"x"}"#).unwrap();
        assert_eq!(old, Outcome::TimedOut { output: "x".into(), elapsed_ms: 0 });
    }

    #[test]
    fn a_module_result_carries_its_wall_and_one_without_reads_as_zero() {
        let json = r#"{"status":"done","tally":{"passed":1,"failed":0,"skipped":0,"errors":0},
                       "duration":0.25,"node":"n1","output":"","tests":[]}"#;
        let old: ModuleResult = serde_json::from_str(json).unwrap();
        assert_eq!(old.wall, 0.0);
        let new = ModuleResult { wall: 0.4, ..old };
        let back: ModuleResult = serde_json::from_str(&serde_json::to_string(&new).unwrap()).unwrap();
        assert_eq!((back.duration, back.wall), (0.25, 0.4));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err =
            serde_json::from_str::<EvaluationDone>(r#"{"evaluation":"00000000-0000-0000-0000-000000000000","x":1}"#);
        assert!(err.is_err());
    }
}
