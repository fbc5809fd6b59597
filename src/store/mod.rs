//! The store subsystem: the `Store` actor over the node's SQLite database, and
//! the rows it reads and writes.

mod durations;
mod model;
mod replica;
mod schema;
// Each actor lives in a file named after it, as the house style asks.
#[allow(clippy::module_inception)]
mod store;
mod terms;

pub use durations::GetEstimates;
pub use model::{EvaluationRecord, EvaluationSummary, EvaluationView, ModuleRow, ProjectRow, Source};
pub use replica::{ApplyReplica, GetSnapshot, GetSummary, SetSupervisor};
pub use store::{
    CountByStatus, CreateEvaluation, FinishedBefore, GetEvaluation, GetEvents, ListEvaluations, ListUnfinished,
    MarkInputReady, RecordEvent, RemoveFinished, SaveCollected, SaveProjects, SaveResult, SetBlob, SetStatus, Store,
};
pub use terms::ClaimTerm;

/// Errors of the node's database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create the database folder {path}: {source}")]
    Folder { path: std::path::PathBuf, source: std::io::Error },
    #[error("store unreachable: {0}")]
    Unreachable(#[from] actix::MailboxError),
    #[error("the database is of schema version {found}, newer than this evalmesh reads ({supported})")]
    NewerSchema { found: i64, supported: i64 },
    #[error("migrating the database to schema version {version}: {source}")]
    Migration { version: i64, source: rusqlite::Error },
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
    /// A replicated journal breaks a constraint of the schema (a module of a
    /// project it never sent, an evaluation it never recorded): the sender's
    /// fault, and nothing of it is applied.
    #[error("journal does not apply: {0}")]
    Inconsistent(String),
}
