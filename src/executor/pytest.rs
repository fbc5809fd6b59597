//! The pytest runs: collecting a project's modules and running some of them,
//! each in the sandbox through the launcher (`launcher.py`), which works on
//! a private copy of the project and reports over a pipe. Pure helper of the
//! executor, no actix inside.
//!
//! The project's folder (`base`) is the one the node unpacked or cloned; a
//! run sees it read-only and copies it into a tmpfs of its own, so nothing a
//! run writes reaches another run, another project, or the node.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::process::Command;

use super::collect::Collected;
use super::envs::Env;
use super::process::{self, Finished, Side};
use super::results::{ModuleReport, StreamReader};
use super::sandbox::{Sandbox, SandboxKind, Spec, RESULTS_FD};
use super::ExecutorError;

/// The launcher, written into the node's sandbox folder at start.
pub const LAUNCHER_SOURCE: &str = include_str!("launcher.py");

/// Where a run's private copy of the project lives inside the sandbox.
const PROJECT: &str = "/project";
/// Where the sandbox shows the node's copy of the project, read-only, and
/// the launcher: apart from the node's data folder, whose layout a run has
/// no business seeing.
const BASE: &str = "/evalmesh/base";
const LAUNCHER: &str = "/evalmesh/launcher.py";

/// What one pytest run over some modules produced.
#[derive(Debug)]
pub enum RunReport {
    Completed {
        /// Per module, or why the run's results cannot be trusted.
        reports: Result<BTreeMap<String, ModuleReport>, String>,
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

/// Caps of what a run may send back.
#[derive(Debug, Clone, Copy)]
pub struct PytestCaps {
    /// Console output kept per run.
    pub output: usize,
    /// Per-test failure message kept.
    pub message: usize,
    /// Results read per run: past it, the run's results are refused.
    pub results: usize,
}

pub struct Pytest {
    launcher: PathBuf,
    /// Where the private copies live when there is no sandbox to make them.
    scratch: PathBuf,
    collect_timeout: Duration,
    caps: PytestCaps,
    process_limit: u64,
    /// Every run happens inside it.
    sandbox: Arc<Sandbox>,
    /// What the interpreter needs to be read inside the sandbox: its
    /// installation, which may sit in a hidden home folder.
    interpreter: Vec<PathBuf>,
}

impl Pytest {
    /// Writes the launcher into `sandbox_dir`.
    pub fn new(
        sandbox_dir: &Path,
        scratch: PathBuf,
        collect_timeout: Duration,
        caps: PytestCaps,
        process_limit: u64,
        sandbox: Arc<Sandbox>,
        interpreter: Vec<PathBuf>,
    ) -> Result<Self, ExecutorError> {
        let launcher = sandbox_dir.join("launcher.py");
        std::fs::create_dir_all(&scratch).map_err(|e| ExecutorError::io("creating the scratch folder", e))?;
        std::fs::write(&launcher, LAUNCHER_SOURCE).map_err(|e| ExecutorError::io("writing the launcher", e))?;
        Ok(Self { launcher, scratch, collect_timeout, caps, process_limit, sandbox, interpreter })
    }

    /// Lists the project's test modules as pytest itself collects them, so that
    /// the project's own pytest configuration is honoured.
    pub async fn collect(&self, env: &Env, base: &Path) -> Result<Collected, ExecutorError> {
        let args = ["--collect-only", "-q"].map(OsString::from).to_vec();
        let (out, results) = self.launch(env, base, "collect", args, self.collect_timeout).await?;
        if out.timed_out() {
            return Err(ExecutorError::CollectTimeout(self.collect_timeout.as_secs()));
        }
        results
            .collected(self.caps.message)
            .map_err(|reason| ExecutorError::Collect(format!("{reason}\n{}", out.output.trim())))
    }

    /// Runs `modules` (paths relative to the project root) in one pytest run.
    pub async fn run(
        &self,
        env: &Env,
        base: &Path,
        modules: &[String],
        timeout: Duration,
    ) -> Result<RunReport, ExecutorError> {
        let mut args: Vec<OsString> = vec![OsString::from("-q"), OsString::from("--")];
        args.extend(modules.iter().map(OsString::from));
        let (out, results) = self.launch(env, base, "run", args, timeout).await?;
        if out.timed_out() {
            return Ok(RunReport::TimedOut { output: out.output, elapsed: out.elapsed });
        }
        let reports = results.module_reports(modules, self.caps.message);
        Ok(RunReport::Completed { reports, exit_code: out.code(), output: out.output, elapsed: out.elapsed })
    }

    /// The launcher in `mode` over `base`, in the sandbox, with `pytest_args`
    /// after the ones every run has.
    async fn launch(
        &self,
        env: &Env,
        base: &Path,
        mode: &str,
        pytest_args: Vec<OsString>,
        timeout: Duration,
    ) -> Result<(Finished, super::results::Stream), ExecutorError> {
        let unsandboxed = self.sandbox.kind() == SandboxKind::None;
        let private = if unsandboxed {
            Some(
                tempfile::Builder::new()
                    .prefix("project-")
                    .tempdir_in(&self.scratch)
                    .map_err(|e| ExecutorError::io("creating a private folder", e))?,
            )
        } else {
            None
        };
        let project = private.as_ref().map_or_else(|| PathBuf::from(PROJECT), |p| p.path().to_owned());
        let (base_seen, launcher_seen) = if unsandboxed {
            (base.to_owned(), self.launcher.clone())
        } else {
            (PathBuf::from(BASE), PathBuf::from(LAUNCHER))
        };
        let mut args: Vec<OsString> = vec![
            launcher_seen.clone().into(),
            base_seen.clone().into(),
            project.clone().into(),
            mode.into(),
            "--".into(),
        ];
        args.extend(base_args(&project));
        args.extend(pytest_args);
        let mut readable = vec![env.dir.clone()];
        readable.extend(self.interpreter.iter().cloned());
        let path = format!("{}:/usr/local/bin:/usr/bin:/bin", env.dir.join("bin").display());
        let spec = Spec {
            program: env.python.clone(),
            args,
            cwd: project.clone(),
            env: vec![
                ("PATH".into(), path.into()),
                ("VIRTUAL_ENV".into(), env.dir.clone().into()),
                ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
                ("EVALMESH_RESULTS_FD".into(), RESULTS_FD.to_string().into()),
                ("EVALMESH_PROCESS_LIMIT".into(), self.process_limit.to_string().into()),
                ("EVALMESH_MESSAGE_CAP".into(), self.caps.message.to_string().into()),
            ],
            readable,
            renamed: vec![(base.to_owned(), base_seen), (self.launcher.clone(), launcher_seen)],
            writable: Vec::new(),
            private: if unsandboxed { Vec::new() } else { vec![project] },
            private_room: if unsandboxed { 0 } else { tmpfs_bytes(base) },
            install: false,
        };
        let (read, write) = process::pipe().map_err(|e| ExecutorError::io("creating the results pipe", e))?;
        let lease = self.sandbox.lease().map_err(|e| ExecutorError::Sandbox(e.to_string()))?;
        let cmd = Command::from(self.sandbox.command(&spec, &lease, Some(write.as_raw_fd())));
        // One byte past the cap, so that the reader sees the cap was passed.
        let side = Side { read, write, cap: self.caps.results + 1 };
        let out = process::run(cmd, timeout, self.caps.output, Some(side))
            .await
            .map_err(|e| ExecutorError::io("starting pytest", e))?;
        self.sandbox.clean(&lease);
        let mut reader = StreamReader::new(self.caps.results);
        reader.feed(&out.side);
        Ok((out, reader.finish()))
    }
}

/// pytest's arguments for every run in `project`: the cache stays out of
/// it, and a project's `addopts = -x` (or `--maxfail`) cannot stop a run at
/// the first broken module. The sandbox's environment is clean, so no
/// `PYTEST_ADDOPTS` of the node's reaches the run.
fn base_args(project: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> =
        ["-p", "no:cacheprovider", "--continue-on-collection-errors", "--maxfail=0", "--rootdir"]
            .map(OsString::from)
            .to_vec();
    args.push(project.as_os_str().to_owned());
    args
}

/// What the files under `base` take of a tmpfs's size: each regular file
/// rounded up to whole pages (folders take none). Links are not followed;
/// the node's copy of a project holds none.
fn tmpfs_bytes(base: &Path) -> u64 {
    const PAGE: u64 = 4096;
    let mut total = 0u64;
    let mut stack = vec![base.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => stack.push(entry.path()),
                Ok(meta) if meta.is_file() => total = total.saturating_add(meta.len().div_ceil(PAGE) * PAGE),
                _ => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_projects_own_files_are_counted_in_whole_pages() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tests")).unwrap();
        std::fs::write(dir.path().join("data.bin"), vec![0u8; 5000]).unwrap();
        std::fs::write(dir.path().join("tests/test_a.py"), "def test_a(): pass\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        // 8 KiB and 4 KiB of files; the folders and the link add nothing.
        assert_eq!(tmpfs_bytes(dir.path()), 8192 + 4096);
    }
}
