//! The pytest command lines: collecting a project's modules and running some
//! of them with a JUnit report. Pure helper of the executor, no actix inside.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::process::Command;

use super::collect::{self, Collected};
use super::junit::{self, ModuleReport};
use super::sandbox::{Lease, Mounts, Sandbox};
use super::{process, ExecutorError};

/// What one pytest run over some modules produced.
#[derive(Debug)]
pub enum RunReport {
    Completed {
        reports: BTreeMap<String, ModuleReport>,
        /// pytest's exit code, to explain a module missing from the report.
        exit_code: Option<i32>,
        output: String,
        elapsed: Duration,
    },
    TimedOut {
        output: String,
        elapsed: Duration,
    },
}

pub struct Pytest {
    /// Holds the collection plugin, put on PYTHONPATH for collection runs.
    plugin_dir: PathBuf,
    scratch: PathBuf,
    collect_timeout: Duration,
    output_cap: usize,
    message_cap: usize,
    /// Every run happens inside it.
    sandbox: Arc<Sandbox>,
    /// What the interpreter needs to be read inside the sandbox: its
    /// installation, which may sit in a hidden home folder.
    interpreter: Vec<PathBuf>,
}

impl Pytest {
    /// Writes the collection plugin under `data_dir`.
    pub fn new(
        data_dir: &Path,
        collect_timeout: Duration,
        output_cap: usize,
        message_cap: usize,
        sandbox: Arc<Sandbox>,
        interpreter: Vec<PathBuf>,
    ) -> Result<Self, ExecutorError> {
        let plugin_dir = data_dir.join("plugins");
        let scratch = data_dir.join("tmp");
        for dir in [&plugin_dir, &scratch] {
            std::fs::create_dir_all(dir).map_err(|e| ExecutorError::io("creating the executor's folders", e))?;
        }
        std::fs::write(plugin_dir.join(format!("{}.py", collect::PLUGIN_MODULE)), collect::PLUGIN_SOURCE)
            .map_err(|e| ExecutorError::io("writing the collection plugin", e))?;
        Ok(Self { plugin_dir, scratch, collect_timeout, output_cap, message_cap, sandbox, interpreter })
    }

    /// Lists the project's test modules as pytest itself collects them, so that
    /// the project's own pytest configuration is honoured.
    pub async fn collect(&self, python: &Path, root: &Path) -> Result<Collected, ExecutorError> {
        let scratch = self.scratch_dir()?;
        let report = scratch.path().join("collected.json");
        let mut args = base_args(root);
        args.extend(
            ["--collect-only", "-q", "--continue-on-collection-errors", "-p", collect::PLUGIN_MODULE]
                .map(OsString::from),
        );
        let env = [
            ("PYTHONPATH", self.plugin_dir.clone().into_os_string()),
            (collect::OUTPUT_ENV, report.clone().into_os_string()),
        ];
        let (cmd, _lease) = self.command(python, root, scratch.path(), &args, &env)?;
        let out = process::run(cmd, self.collect_timeout, self.output_cap)
            .await
            .map_err(|e| ExecutorError::io("starting pytest", e))?;
        if out.timed_out() {
            return Err(ExecutorError::CollectTimeout(self.collect_timeout.as_secs()));
        }
        let json = tokio::fs::read_to_string(&report)
            .await
            .map_err(|_| ExecutorError::Collect(out.output.trim().to_owned()))?;
        collect::parse_report(&json, self.message_cap).map_err(|e| ExecutorError::Report(e.to_string()))
    }

    /// Runs `modules` (paths relative to `root`) in one pytest process.
    pub async fn run(
        &self,
        python: &Path,
        root: &Path,
        modules: &[String],
        timeout: Duration,
    ) -> Result<RunReport, ExecutorError> {
        let scratch = self.scratch_dir()?;
        let xml_path = scratch.path().join("junit.xml");
        let mut args = base_args(root);
        args.extend(["-q", "-o", "junit_family=xunit1", "--junitxml"].map(OsString::from));
        args.push(xml_path.clone().into_os_string());
        args.push(OsString::from("--"));
        args.extend(modules.iter().map(OsString::from));
        let (cmd, _lease) = self.command(python, root, scratch.path(), &args, &[])?;
        let out =
            process::run(cmd, timeout, self.output_cap).await.map_err(|e| ExecutorError::io("starting pytest", e))?;
        if out.timed_out() {
            return Ok(RunReport::TimedOut { output: out.output, elapsed: out.elapsed });
        }
        let reports = match tokio::fs::read_to_string(&xml_path).await {
            Ok(xml) => {
                junit::parse(&xml, modules, self.message_cap).map_err(|e| ExecutorError::Report(e.to_string()))?
            }
            // pytest writes no report when it fails before running anything;
            // the caller reports every module as an error with the output.
            Err(_) => BTreeMap::new(),
        };
        Ok(RunReport::Completed { reports, exit_code: out.code(), output: out.output, elapsed: out.elapsed })
    }

    /// `python args` in the project root, inside the sandbox: the
    /// environment and the plugin readable, the project and the scratch
    /// folder writable. The lease holds the run's user id until it ends.
    fn command(
        &self,
        python: &Path,
        root: &Path,
        scratch: &Path,
        args: &[OsString],
        env: &[(&str, OsString)],
    ) -> Result<(Command, Lease), ExecutorError> {
        let env_dir = python.parent().and_then(Path::parent).unwrap_or(python).to_owned();
        let mut readable = vec![env_dir, self.plugin_dir.clone()];
        readable.extend(self.interpreter.iter().cloned());
        let mounts = Mounts { readable, writable: vec![root.to_owned(), scratch.to_owned()] };
        let mut env = env.to_vec();
        env.push(("PYTHONDONTWRITEBYTECODE", OsString::from("1")));
        let (cmd, lease) = self
            .sandbox
            .command(python, args, root, &env, &mounts)
            .map_err(|e| ExecutorError::Sandbox(e.to_string()))?;
        Ok((Command::from(cmd), lease))
    }

    fn scratch_dir(&self) -> Result<tempfile::TempDir, ExecutorError> {
        tempfile::Builder::new()
            .prefix("pytest-")
            .tempdir_in(&self.scratch)
            .map_err(|e| ExecutorError::io("creating a scratch folder", e))
    }
}

/// `python -m pytest` arguments for a run in the project root: the root
/// lands on sys.path as a student running pytest there would expect, and the
/// cache stays out of it. The sandbox's environment is clean, so no
/// `PYTEST_ADDOPTS` of the node's reaches the run.
fn base_args(root: &Path) -> Vec<OsString> {
    // A project's `addopts = -x` would stop at the first broken module.
    let mut args: Vec<OsString> =
        ["-m", "pytest", "-p", "no:cacheprovider", "--continue-on-collection-errors", "--maxfail=0", "--rootdir"]
            .map(OsString::from)
            .to_vec();
    args.push(root.as_os_str().to_owned());
    args
}
