//! The executor subsystem: the `Executor` actor with its slots, and the plain
//! async helpers it drives — the environment cache, the pytest command lines,
//! the collection plugin, the JUnit reader and the capped process runner.

pub mod collect;
pub mod envs;
// Each actor lives in a file named after it, as the house style asks.
#[allow(clippy::module_inception)]
mod executor;
pub mod junit;
pub mod process;
pub mod pytest;
pub mod runner;
pub mod sandbox;

pub use executor::{
    Executor, ExecutorStats, GetExecutorStats, GetLoad, Job, JobFinished, JobKind, JobOutput, Load, RunStamp, Submit,
};
pub use runner::{PytestRunner, Runner};

/// Errors of the executor's work on one job.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("interpreter {python} does not run: {output}")]
    Interpreter { python: String, output: String },
    #[error("{step} failed: {reason}")]
    Install { step: &'static str, reason: String },
    #[error("pytest collection timed out after {0} s")]
    CollectTimeout(u64),
    #[error("pytest collection failed: {0}")]
    Collect(String),
    #[error("cannot read pytest's report: {0}")]
    Report(String),
    #[error("sandbox: {0}")]
    Sandbox(String),
}

impl ExecutorError {
    pub fn io(context: &str, source: std::io::Error) -> Self {
        Self::Io { context: context.to_owned(), source }
    }
}
