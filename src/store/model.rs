//! The rows of the store as the rest of the node sees them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::evaluation::model::{EvaluationStatus, ModuleResult, Tally};
use crate::evaluation::rules::Rules;

/// Where an evaluation's projects came from. Never holds a token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    Zip {
        name: String,
    },
    Git {
        repositories: Vec<String>,
        /// A reference suite's repository, cloned with the same token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tests: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationRecord {
    pub id: Uuid,
    pub status: EvaluationStatus,
    pub source: Source,
    /// The node that supervises it.
    pub supervisor: String,
    /// The supervision's term: 0 for the node that took the submission, one
    /// more at each adoption. A replica refuses the writes of a lower term.
    pub epoch: u64,
    pub input_sha256: Option<String>,
    /// The workspace holds every project (unpacked or cloned).
    pub input_ready: bool,
    pub submitted_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectRow {
    pub name: String,
    /// Relative to the evaluation's workspace, '/' separators, "" for the workspace itself.
    pub root: String,
    /// Its modules are known (stored as `ModuleRow`s).
    pub collected: bool,
    /// Why the project could not be evaluated: a failed clone or install.
    pub error: Option<String>,
    /// SHA-256 of the project packed as a zip, the name workers fetch it by.
    pub blob: Option<String>,
    /// Who the project is shown as, from the submission's `students.csv`;
    /// `None` shows its name.
    #[serde(default)]
    pub label: Option<String>,
    /// Its grading rules, read when it was taken in.
    #[serde(default)]
    pub rules: Option<Rules>,
    /// The Python files of the reference suite laid over it, if one was.
    #[serde(default)]
    pub suite: Option<Vec<String>>,
}

impl ProjectRow {
    /// A project found in a submission, not yet collected.
    pub fn found(name: String, root: String, label: Option<String>) -> Self {
        Self { name, root, collected: false, error: None, blob: None, label, rules: None, suite: None }
    }

    /// Its rules as the store keeps them: JSON.
    pub fn rules_json(&self) -> Option<String> {
        self.rules.as_ref().map(|r| serde_json::to_string(r).expect("rules hold only strings, numbers and flags"))
    }

    /// Its suite's files as the store keeps them: JSON.
    pub fn suite_json(&self) -> Option<String> {
        self.suite.as_ref().map(|s| serde_json::to_string(s).expect("a list of strings serializes"))
    }

    /// Whether `module` is graded: with a reference suite, only the suite's
    /// modules are (unless its rules run the project's own tests too); a
    /// folder's or the session's collection error always is.
    pub fn grades(&self, module: &str) -> bool {
        let own_tests_too = self.rules.as_ref().is_some_and(|r| r.run_student_tests);
        match &self.suite {
            Some(files) if !own_tests_too => !module.ends_with(".py") || files.iter().any(|f| f == module),
            _ => true,
        }
    }

    /// What a client is shown it as.
    pub fn shown_as(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModuleRow {
    pub project: String,
    pub module: String,
    /// Tests pytest collected in it.
    pub tests: u32,
    /// None until the module has a result.
    pub result: Option<ModuleResult>,
}

/// One evaluation with everything stored about it.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationView {
    pub record: EvaluationRecord,
    pub projects: Vec<ProjectRow>,
    pub modules: Vec<ModuleRow>,
}

/// A line of `GET /evaluation`.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationSummary {
    pub id: Uuid,
    pub status: EvaluationStatus,
    pub submitted_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub projects: u32,
    pub tally: Tally,
}
