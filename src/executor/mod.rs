//! The executor subsystem: the `Executor` actor with its slots, and the plain
//! async helpers it drives — the environment cache and the vetting of
//! requirements, the pytest runs through the launcher, the reader of their
//! results, the sandbox and the capped process runner.

pub mod bytecode;
pub mod collect;
pub mod envs;
pub mod eviction;
pub mod forkserver;
pub mod index_proxy;
pub mod plugins;
// Each actor lives in a file named after it, as the house style asks.
#[allow(clippy::module_inception)]
mod executor;
pub mod process;
pub mod pytest;
pub mod requirements;
pub mod results;
pub mod runner;
pub mod safe_file;
pub mod sandbox;

pub use executor::{
    Executor, ExecutorStats, GetExecutorStats, GetLoad, Job, JobFinished, JobKind, JobOutput, Load, RunStamp,
    StopEvaluation, Submit,
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
    #[error("sandbox: {0}")]
    Sandbox(String),
    #[error("requirements: {0}")]
    Requirements(String),
}

impl ExecutorError {
    pub fn io(context: &str, source: std::io::Error) -> Self {
        Self::Io { context: context.to_owned(), source }
    }
}
