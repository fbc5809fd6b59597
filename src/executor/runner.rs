//! What the `Executor` actor runs for a job, behind one trait so that the
//! actor's slot and queue logic can be tested without Python: the real
//! `PytestRunner` builds (or reuses) the project's environment and runs pytest.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;

use super::collect::Collected;
use super::envs::EnvCache;
use super::pytest::{Pytest, RunReport};
use super::ExecutorError;
use crate::evaluation::model::{round2, ModuleResult, ModuleStatus, Tally};

/// Collects and runs a project's tests.
pub trait Runner {
    fn collect(&self, root: PathBuf) -> LocalBoxFuture<'static, Result<Collected, ExecutorError>>;
    fn run(
        &self,
        root: PathBuf,
        modules: Vec<String>,
        timeout: Duration,
    ) -> LocalBoxFuture<'static, Result<RunReport, ExecutorError>>;
}

pub struct PytestRunner {
    envs: Arc<EnvCache>,
    pytest: Arc<Pytest>,
}

impl PytestRunner {
    pub fn new(envs: EnvCache, pytest: Pytest) -> Self {
        Self { envs: Arc::new(envs), pytest: Arc::new(pytest) }
    }
}

impl Runner for PytestRunner {
    fn collect(&self, root: PathBuf) -> LocalBoxFuture<'static, Result<Collected, ExecutorError>> {
        let (envs, pytest) = (self.envs.clone(), self.pytest.clone());
        async move {
            let env = envs.ensure(&root).await?;
            pytest.collect(&env.python, &root).await
        }
        .boxed_local()
    }

    fn run(
        &self,
        root: PathBuf,
        modules: Vec<String>,
        timeout: Duration,
    ) -> LocalBoxFuture<'static, Result<RunReport, ExecutorError>> {
        let (envs, pytest) = (self.envs.clone(), self.pytest.clone());
        async move {
            let env = envs.ensure(&root).await?;
            pytest.run(&env.python, &root, &modules, timeout).await
        }
        .boxed_local()
    }
}

/// Turns a completed run into one result per module; a module pytest said
/// nothing about is an error carrying pytest's exit code and output.
pub fn module_results(
    modules: &[String],
    reports: BTreeMap<String, super::junit::ModuleReport>,
    exit_code: Option<i32>,
    output: &str,
    node: &str,
) -> BTreeMap<String, ModuleResult> {
    let mut reports = reports;
    modules
        .iter()
        .map(|module| {
            let result = match reports.remove(module) {
                Some(report) => ModuleResult {
                    status: ModuleStatus::Done,
                    tally: report.tally,
                    duration: round2(report.duration),
                    node: node.to_owned(),
                    output: output.to_owned(),
                    tests: report.tests,
                },
                None => ModuleResult {
                    status: ModuleStatus::Error,
                    tally: Tally { errors: 1, ..Tally::default() },
                    duration: 0.0,
                    node: node.to_owned(),
                    output: format!(
                        "pytest reported no result for {module} (exit code {}):\n{output}",
                        exit_code.map_or_else(|| "none".to_owned(), |c| c.to_string())
                    ),
                    tests: Vec::new(),
                },
            };
            (module.clone(), result)
        })
        .collect()
}

/// The result of a module killed at its time-out: every test it holds counts
/// as an error, so that a hanging module cannot raise a grade.
pub fn timeout_result(tests: u32, timeout: Duration, output: &str, node: &str) -> ModuleResult {
    ModuleResult {
        status: ModuleStatus::Timeout,
        tally: Tally { errors: tests.max(1), ..Tally::default() },
        duration: round2(timeout.as_secs_f64()),
        node: node.to_owned(),
        output: format!("killed after {} s\n{output}", timeout.as_secs()),
        tests: Vec::new(),
    }
}

/// The result of a module that failed to collect.
pub fn collection_error_result(message: &str, node: &str) -> ModuleResult {
    ModuleResult {
        status: ModuleStatus::Error,
        tally: Tally { errors: 1, ..Tally::default() },
        duration: 0.0,
        node: node.to_owned(),
        output: message.to_owned(),
        tests: Vec::new(),
    }
}
