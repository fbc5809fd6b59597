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

use super::bytecode;
use super::collect::Collected;
use super::envs::Env;
use super::forkserver::{ForkServers, ForkSettings, Request, Serving, FORKSERVER_SOURCE};
use super::process::{self, Side};
use super::results::{ModuleReport, Stream, StreamReader};
use super::sandbox::{Sandbox, SandboxKind, Spec, RESULTS_FD, SERVERS_PER_SLOT};
use super::ExecutorError;
use crate::config::Config;

/// The launcher, written into the node's sandbox folder at start.
pub const LAUNCHER_SOURCE: &str = include_str!("launcher.py");

/// Where a run's private copy of the project lives inside the sandbox.
const PROJECT: &str = "/project";
/// Where the sandbox shows the node's copy of the project, read-only, and
/// the launcher: apart from the node's data folder, whose layout a run has
/// no business seeing.
const BASE: &str = "/evalmesh/base";
const LAUNCHER: &str = "/evalmesh/launcher.py";
const FORKSERVER: &str = "/evalmesh/forkserver.py";

/// The Python sources a project must weigh for its bytecode to be compiled
/// once for all its runs: below, each run compiles what it imports in less
/// time than a compile run takes to start (a class's small projects).
const COMPILE_FROM: u64 = 64 << 10;

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
        /// Each module's wall time: its own child's where it had one, else
        /// an equal share of the process's.
        walls: BTreeMap<String, Duration>,
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

/// How pytest runs are made.
pub struct PytestSettings {
    /// Where the launcher and the fork server are written.
    pub sandbox_dir: PathBuf,
    /// Where the private copies live when there is no sandbox to make them.
    pub scratch: PathBuf,
    pub collect_timeout: Duration,
    pub caps: PytestCaps,
    pub process_limit: u64,
    /// What the interpreter needs to be read inside the sandbox: its
    /// installation, which may sit in a hidden home folder.
    pub interpreter: Vec<PathBuf>,
    /// Fork servers, one place per slot; none runs every module in a fresh
    /// process.
    pub fork: Option<ForkSettings>,
    pub slots: usize,
}

/// What one pytest run may report over its results pipe: tens of thousands
/// of tests with capped messages fit; past it the run's results are refused.
const RESULTS_CAP: usize = 16 << 20;

impl PytestSettings {
    /// The settings `config` asks for, for a node keeping its data in
    /// `data_dir`, with what its interpreter needs read in the sandbox.
    pub fn from_config(config: &Config, data_dir: &Path, interpreter: Vec<PathBuf>) -> Self {
        let e = &config.executor;
        let fork = e.fork_server.then(|| ForkSettings {
            max_runs: e.fork_server_max_runs,
            idle: Duration::from_secs(e.fork_server_idle_s),
            zygote: e.fork_zygote,
            start_timeout: Duration::from_secs(e.collect_timeout_s),
        });
        Self {
            sandbox_dir: data_dir.join("sandbox"),
            scratch: data_dir.join("tmp"),
            collect_timeout: Duration::from_secs(e.collect_timeout_s),
            caps: PytestCaps { output: e.output_cap_bytes, message: e.message_cap_bytes, results: RESULTS_CAP },
            process_limit: e.process_limit,
            interpreter,
            fork,
            slots: config.node.slots,
        }
    }
}

pub struct Pytest {
    launcher: PathBuf,
    forkserver: PathBuf,
    scratch: PathBuf,
    collect_timeout: Duration,
    caps: PytestCaps,
    process_limit: u64,
    /// Every run happens inside it.
    sandbox: Arc<Sandbox>,
    interpreter: Vec<PathBuf>,
    servers: Option<ForkServers>,
}

/// How one pytest process, or one forked child, ended.
struct Ran {
    timed_out: bool,
    code: Option<i32>,
    output: String,
    results: Stream,
    elapsed: Duration,
}

impl Pytest {
    /// Writes the launcher and the fork server into the sandbox folder.
    pub fn new(settings: PytestSettings, sandbox: Arc<Sandbox>) -> Result<Self, ExecutorError> {
        let dir = &settings.sandbox_dir;
        let launcher = dir.join("launcher.py");
        let forkserver = dir.join("forkserver.py");
        std::fs::create_dir_all(&settings.scratch).map_err(|e| ExecutorError::io("creating the scratch folder", e))?;
        std::fs::write(&launcher, LAUNCHER_SOURCE).map_err(|e| ExecutorError::io("writing the launcher", e))?;
        std::fs::write(&forkserver, FORKSERVER_SOURCE).map_err(|e| ExecutorError::io("writing the fork server", e))?;
        let servers =
            settings.fork.map(|fork| ForkServers::new(fork, settings.slots * SERVERS_PER_SLOT, dir.join("servers")));
        Ok(Self {
            launcher,
            forkserver,
            scratch: settings.scratch,
            collect_timeout: settings.collect_timeout,
            caps: settings.caps,
            process_limit: settings.process_limit,
            sandbox,
            interpreter: settings.interpreter,
            servers,
        })
    }

    /// Lists the project's test modules as pytest itself collects them, so that
    /// the project's own pytest configuration is honoured.
    pub async fn collect(&self, env: &Env, base: &Path) -> Result<Collected, ExecutorError> {
        let args = ["--collect-only", "-q"].map(OsString::from).to_vec();
        let timeout = self.collect_timeout;
        let ran = match self.forked(env, base, "collect", vec![(args.clone(), None)], timeout).await {
            Some(mut runs) => runs.pop().expect("one request, one run"),
            None => self.fresh(env, base, "collect", args, timeout).await?,
        };
        if ran.timed_out {
            return Err(ExecutorError::CollectTimeout(timeout.as_secs()));
        }
        ran.results
            .collected(self.caps.message)
            .map_err(|reason| ExecutorError::Collect(format!("{reason}\n{}", ran.output.trim())))
    }

    /// Runs `modules` (paths relative to the project root): each in a child
    /// of a fork server where there is one, else all in one fresh process.
    pub async fn run(
        &self,
        env: &Env,
        base: &Path,
        modules: &[String],
        timeout: Duration,
    ) -> Result<RunReport, ExecutorError> {
        let args = |modules: &[String]| {
            let mut args: Vec<OsString> = vec![OsString::from("-q"), OsString::from("--")];
            args.extend(modules.iter().map(OsString::from));
            args
        };
        let zygotes = self.servers.as_ref().is_some_and(ForkServers::zygotes);
        let folder = |m: &String| Path::new(m).parent().filter(|_| zygotes).map(|f| f.to_string_lossy().into_owned());
        let each = modules.iter().map(|m| (args(std::slice::from_ref(m)), folder(m))).collect();
        if let Some(runs) = self.forked(env, base, "run", each, timeout).await {
            return Ok(self.merge(modules, runs));
        }
        let ran = self.fresh(env, base, "run", args(modules), timeout).await?;
        if ran.timed_out {
            return Ok(RunReport::TimedOut { output: ran.output, elapsed: ran.elapsed });
        }
        let reports = ran.results.module_reports(modules, self.caps.message);
        let share = ran.elapsed / modules.len().max(1) as u32;
        let walls = modules.iter().map(|m| (m.clone(), share)).collect();
        Ok(RunReport::Completed { reports, exit_code: ran.code, output: ran.output, elapsed: ran.elapsed, walls })
    }

    /// Stops the fork servers that have been idle too long.
    pub fn tidy(&self) {
        if let Some(servers) = &self.servers {
            servers.tidy(&self.sandbox);
        }
    }

    /// One report for the children of a batch, as one process would give:
    /// timed out if one did, else every module's results, refused as a
    /// whole if one child's are.
    fn merge(&self, modules: &[String], runs: Vec<Ran>) -> RunReport {
        let elapsed = runs.iter().map(|r| r.elapsed).sum();
        let output = runs.iter().map(|r| r.output.as_str()).collect::<Vec<_>>().join("\n");
        if runs.iter().any(|r| r.timed_out) {
            return RunReport::TimedOut { output, elapsed };
        }
        let exit_code = runs.iter().map(|r| r.code).find(|c| *c != Some(0)).unwrap_or(Some(0));
        let walls = modules.iter().zip(&runs).map(|(m, r)| (m.clone(), r.elapsed)).collect();
        let mut reports = Ok(BTreeMap::new());
        for (module, ran) in modules.iter().zip(runs) {
            let one = ran.results.module_reports(std::slice::from_ref(module), self.caps.message);
            reports = match (reports, one) {
                (Ok(mut all), Ok(one)) => {
                    all.extend(one);
                    Ok(all)
                }
                (Err(reason), _) | (_, Err(reason)) => Err(reason),
            };
        }
        RunReport::Completed { reports, exit_code, output, elapsed, walls }
    }

    /// Runs each of `each` (pytest arguments, and the folder of the one
    /// module they run) in a child of a fork server, the time-out shared
    /// among them. None when there is no server for this environment or it
    /// failed: the caller runs them afresh.
    async fn forked(
        &self,
        env: &Env,
        base: &Path,
        mode: &str,
        each: Vec<(Vec<OsString>, Option<String>)>,
        timeout: Duration,
    ) -> Option<Vec<Ran>> {
        let servers = self.servers.as_ref()?;
        if !servers.forkable(&Serving::of(env)) {
            return None;
        }
        let sandboxed = self.sandbox.kind() == SandboxKind::Bwrap;
        if sandboxed && servers.claim_bytecode(base) && source_bytes(base) >= COMPILE_FROM {
            self.compile(servers, env, base).await;
        }
        let bytes = if sandboxed { tmpfs_bytes(base) } else { 0 };
        let base_seen = if sandboxed { PathBuf::from(BASE) } else { base.to_owned() };
        // Without a sandbox each child gets a private folder of its own here,
        // kept until the children are done.
        let mut privates = Vec::new();
        let mut args = Vec::with_capacity(each.len());
        for (rest, group) in each {
            let project = if sandboxed {
                PathBuf::from(PROJECT)
            } else {
                let private = tempfile::Builder::new().prefix("project-").tempdir_in(&self.scratch).ok()?;
                let path = private.path().to_owned();
                privates.push(private);
                path
            };
            let mut all = base_args(&project);
            all.extend(rest);
            args.push((project, all, group));
        }
        let share = timeout.as_secs_f64() / args.len().max(1) as f64;
        let requests: Vec<Request<'_>> = args
            .iter()
            .map(|(project, args, group)| Request {
                mode,
                base: &base_seen,
                project,
                args,
                timeout: share.max(1.0),
                group: group.as_deref(),
            })
            .collect();
        let spec = |room, mirror: Option<&Path>| self.server_spec(env, room, mirror);
        let caps = (self.caps.output, self.caps.results + 1);
        match servers.run_all(&self.sandbox, &Serving::of(env), spec, base, bytes, &requests, caps).await {
            Ok(runs) => Some(
                runs.into_iter()
                    .map(|run| {
                        let mut reader = StreamReader::new(self.caps.results);
                        reader.feed(&run.results);
                        Ran {
                            timed_out: run.timed_out,
                            code: run.code,
                            output: run.output,
                            results: reader.finish(),
                            elapsed: run.elapsed,
                        }
                    })
                    .collect(),
            ),
            Err(e) => {
                log::warn!("fork server for {}: {e}; running in a fresh process", env.dir.display());
                None
            }
        }
    }

    /// Compiles the sources of the project at `base` in a child of a fork
    /// server and stores their bytecode there (see `bytecode`). Where that
    /// fails, the project's runs compile what they import, as before.
    async fn compile(&self, servers: &ForkServers, env: &Env, base: &Path) {
        let bytes = tmpfs_bytes(base);
        let (base_seen, project) = (PathBuf::from(BASE), PathBuf::from(PROJECT));
        let request = Request {
            mode: "compile",
            base: &base_seen,
            project: &project,
            args: &[],
            timeout: self.collect_timeout.as_secs_f64(),
            group: None,
        };
        let spec = |room, mirror: Option<&Path>| self.server_spec(env, room, mirror);
        let caps = (self.caps.output, bytecode::CAP + 1);
        let stored = match servers.run_all(&self.sandbox, &Serving::of(env), spec, base, bytes, &[request], caps).await
        {
            Ok(mut runs) => {
                let run = runs.pop().expect("one request, one run");
                if run.timed_out || run.code != Some(0) {
                    Err(format!("the compile run ended with {:?}: {}", run.code, run.output.trim()))
                } else {
                    let root = base.to_owned();
                    tokio::task::spawn_blocking(move || bytecode::store(&root, &run.results))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|stored| stored.map_err(|e| e.to_string()))
                }
            }
            Err(e) => Err(e.to_string()),
        };
        match stored {
            Ok(count) => {
                log::debug!("bytecode of {}: {count} files", base.display());
                servers.bytecode_stored(base);
            }
            Err(e) => log::warn!("bytecode of {}: {e}; its runs compile their imports", base.display()),
        }
    }

    /// A fork server's command: `room` is what its project folder holds
    /// beyond the scratch size, `mirror` the folder it shows as the base.
    fn server_spec(&self, env: &Env, room: u64, mirror: Option<&Path>) -> Spec {
        let sandboxed = mirror.is_some();
        let script = if sandboxed { PathBuf::from(FORKSERVER) } else { self.forkserver.clone() };
        let mut spec = self.spec(env, vec![script.into_os_string()]);
        spec.env.push(("EVALMESH_CONTROL_FD".into(), RESULTS_FD.to_string().into()));
        if let Some(mirror) = mirror {
            spec.env.push(("EVALMESH_ISOLATE".into(), "1".into()));
            spec.env.push(("EVALMESH_WIPE".into(), format!("{PROJECT}:/tmp:/dev/shm").into()));
            spec.cwd = PathBuf::from(PROJECT);
            spec.renamed = vec![
                (mirror.to_owned(), PathBuf::from(BASE)),
                (self.launcher.clone(), PathBuf::from(LAUNCHER)),
                (self.forkserver.clone(), PathBuf::from(FORKSERVER)),
            ];
            spec.private = vec![PathBuf::from(PROJECT)];
            spec.private_room = room;
        } else {
            spec.cwd = self.scratch.clone();
        }
        spec
    }

    /// What every command running pytest in `env` has: the interpreter
    /// with `args`, the environment's variables and files.
    fn spec(&self, env: &Env, args: Vec<OsString>) -> Spec {
        let mut readable = vec![env.dir.clone()];
        readable.extend(self.interpreter.iter().cloned());
        let path = format!("{}:/usr/local/bin:/usr/bin:/bin", env.dir.join("bin").display());
        let mut vars: Vec<(String, OsString)> = vec![
            ("PATH".into(), path.into()),
            ("VIRTUAL_ENV".into(), env.dir.clone().into()),
            ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
            ("EVALMESH_PROCESS_LIMIT".into(), self.process_limit.to_string().into()),
            ("EVALMESH_MESSAGE_CAP".into(), self.caps.message.to_string().into()),
        ];
        if let Some(plugins) = &env.plugins {
            vars.push(("EVALMESH_PLUGINS".into(), plugins.join(",").into()));
        }
        Spec { program: env.python.clone(), args, env: vars, readable, ..Spec::default() }
    }

    /// The launcher in `mode` over `base`, in a fresh process in the
    /// sandbox, with `pytest_args` after the ones every run has.
    async fn fresh(
        &self,
        env: &Env,
        base: &Path,
        mode: &str,
        pytest_args: Vec<OsString>,
        timeout: Duration,
    ) -> Result<Ran, ExecutorError> {
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
        let mut spec = self.spec(env, args);
        spec.env.push(("EVALMESH_RESULTS_FD".into(), RESULTS_FD.to_string().into()));
        spec.cwd = project.clone();
        spec.renamed = vec![(base.to_owned(), base_seen), (self.launcher.clone(), launcher_seen)];
        if !unsandboxed {
            spec.private = vec![project];
            spec.private_room = tmpfs_bytes(base);
        }
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
        Ok(Ran {
            timed_out: out.timed_out(),
            code: out.code(),
            output: out.output,
            results: reader.finish(),
            elapsed: out.elapsed,
        })
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
    sum_files(base, |_, len| len.div_ceil(PAGE) * PAGE)
}

/// What the Python sources under `base` weigh.
fn source_bytes(base: &Path) -> u64 {
    sum_files(base, |path, len| if path.extension().is_some_and(|e| e == "py") { len } else { 0 })
}

/// The sum of `weigh` over each regular file under `base` and its size.
/// Links are not followed; the node's copy of a project holds none.
fn sum_files(base: &Path, weigh: impl Fn(&Path, u64) -> u64) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![base.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => stack.push(entry.path()),
                Ok(meta) if meta.is_file() => total = total.saturating_add(weigh(&entry.path(), meta.len())),
                _ => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluation::model::Tally;
    use crate::executor::envs::resolve_interpreter;
    use crate::executor::envs::tests::cache;
    use crate::executor::plugins;
    use crate::executor::sandbox::tests::sandbox;

    /// How a test node runs modules.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Way {
        Fresh,
        /// Forked from the server.
        Forked,
        /// Forked from a zygote, as by default.
        Zygote,
    }

    /// The runs of a node that runs its modules the `way` given, in bwrap.
    fn pytest(data: &Path, way: Way) -> Pytest {
        let (_, interpreter) = resolve_interpreter("python3");
        let settings = PytestSettings {
            sandbox_dir: data.join("sandbox"),
            scratch: data.join("tmp"),
            collect_timeout: Duration::from_secs(60),
            caps: PytestCaps { output: 64 << 10, message: 4 << 10, results: 16 << 20 },
            process_limit: 128,
            interpreter,
            fork: (way != Way::Fresh).then_some(ForkSettings {
                max_runs: 100,
                idle: Duration::from_secs(600),
                start_timeout: Duration::from_secs(60),
                zygote: way == Way::Zygote,
            }),
            slots: 2,
        };
        Pytest::new(settings, sandbox(data)).unwrap()
    }

    fn write(root: &Path, files: &[(&str, &str)]) {
        for (name, text) in files {
            let path = root.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }

    /// A module that leaves all it can behind: files, a process of its
    /// own session, System V shared memory, a message queue and a semaphore
    /// set, a patched library, an environment variable, a module.
    const LEAVES: &str = r#"import ctypes, json, os, subprocess, sys

def test_leave():
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.shmget(0x5eed, 4096, 0o1600) >= 0
    assert libc.msgget(0x5eed, 0o1600) >= 0
    assert libc.semget(0x5eed, 1, 0o1600) >= 0
    open('/tmp/left', 'w').write('x')
    open('/dev/shm/left', 'w').write('x')
    open('left.txt', 'w').write('x')
    subprocess.Popen(['sleep', '60'], start_new_session=True)
    json.dumps = lambda *a, **k: 'patched'
    os.environ['EVALMESH_LEFT'] = '1'
    sys.modules['evalmesh_left'] = sys
"#;

    /// A module that fails if anything of an earlier run is left.
    const CLEAN: &str = r#"import json, os, sys

def sleepers():
    names = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            names.append(open(f'/proc/{pid}/comm').read().strip())
        except OSError:
            pass
    return names.count('sleep')

def test_nothing_is_left():
    for kind in ('shm', 'msg', 'sem'):
        assert open(f'/proc/sysvipc/{kind}').read().count('\n') == 1, kind
    assert not os.path.exists('/tmp/left')
    assert not os.path.exists('/dev/shm/left')
    assert not os.path.exists('left.txt')
    assert json.dumps({}) == '{}'
    assert 'EVALMESH_LEFT' not in os.environ and 'evalmesh_left' not in sys.modules
    assert sleepers() == 0
"#;

    fn tally(report: &RunReport, module: &str) -> Result<Tally, String> {
        match report {
            RunReport::Completed { reports: Ok(r), .. } => {
                r.get(module).map(|m| m.tally).ok_or_else(|| format!("{module} not reported"))
            }
            RunReport::Completed { reports: Err(reason), .. } => Err(reason.clone()),
            RunReport::TimedOut { .. } => Err("timed out".into()),
        }
    }

    /// Each module in a forked child reports what a fresh process reports,
    /// and nothing one child leaves reaches the next one of its server.
    #[actix_rt::test]
    async fn forked_children_report_what_fresh_processes_report_and_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("p");
        write(
            &project,
            &[
                (
                    "tests/test_plain.py",
                    "import pytest\ndef test_pass(): pass\ndef test_fail(): assert 1 == 2\n\
                     def test_skip(): pytest.skip('no')\n@pytest.mark.xfail\ndef test_xfail(): assert 0\n",
                ),
                ("tests/test_leaves.py", LEAVES),
                ("tests/test_clean.py", CLEAN),
                ("tests/test_exit.py", "import os\ndef test_exit():\n    os._exit(3)\n"),
            ],
        );
        let env = cache(&dir.path().join("envdata")).ensure(&project).await.unwrap();
        let order = ["tests/test_plain.py", "tests/test_leaves.py", "tests/test_clean.py", "tests/test_exit.py"];
        let mut seen = Vec::new();
        for way in [Way::Zygote, Way::Forked, Way::Fresh] {
            let data = dir.path().join(format!("{way:?}"));
            let p = pytest(&data, way);
            let collected = p.collect(&env, &project).await.unwrap();
            assert_eq!(collected.modules.values().sum::<u32>(), 7, "{collected:?}");
            let mut tallies = Vec::new();
            for module in order.iter().chain(&["tests/test_clean.py"]) {
                let report = p.run(&env, &project, &[(*module).to_owned()], Duration::from_secs(60)).await.unwrap();
                tallies.push(tally(&report, module));
            }
            if way != Way::Fresh {
                assert_eq!(p.servers.as_ref().unwrap().running(), 1, "one server served every run");
            }
            seen.push(tallies);
        }
        let passed = |n| Ok(Tally { passed: n, ..Tally::default() });
        assert_eq!(seen[0][0], Ok(Tally { passed: 1, failed: 1, skipped: 2, ..Tally::default() }));
        assert_eq!(seen[0][1..3], [passed(1), passed(1)]);
        assert!(seen[0][3].as_ref().is_err_and(|e| e.contains("end")), "{:?}", seen[0][3]);
        assert_eq!(seen[0][4], passed(1), "a child that called os._exit leaves nothing either");
        assert_eq!(seen[0], seen[2], "runs forked from a zygote and fresh runs agree");
        assert_eq!(seen[1], seen[2], "runs forked from the server and fresh runs agree");
    }

    /// A child past its time-out is killed and its server serves the next;
    /// a child that kills its server has its module run again afresh, and
    /// the next run gets a new server.
    #[actix_rt::test]
    async fn a_hung_child_is_killed_and_a_lost_server_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("p");
        write(
            &project,
            &[
                ("tests/test_hang.py", "import time\ndef test_hang():\n    time.sleep(600)\n"),
                (
                    "tests/test_kill.py",
                    "import os, signal, time\n\ndef test_kill():\n    try:\n        os.kill(os.getppid(), signal.SIGKILL)\n    \
                     except PermissionError:\n        pass\n    time.sleep(0.5)\n",
                ),
                ("tests/test_clean.py", CLEAN),
            ],
        );
        let env = cache(&dir.path().join("envdata")).ensure(&project).await.unwrap();
        let p = pytest(&dir.path().join("data"), Way::Zygote);
        let run = |module: &'static str, secs| {
            let (p, env, project) = (&p, &env, &project);
            async move { p.run(env, project, &[module.to_owned()], Duration::from_secs(secs)).await.unwrap() }
        };
        let hung = run("tests/test_hang.py", 2).await;
        assert!(matches!(hung, RunReport::TimedOut { .. }), "{hung:?}");
        let clean = run("tests/test_clean.py", 60).await;
        assert_eq!(tally(&clean, "tests/test_clean.py"), Ok(Tally { passed: 1, ..Tally::default() }), "{clean:?}");
        let servers = p.servers.as_ref().unwrap();
        assert_eq!(servers.running(), 1, "the server outlived the hung child");
        let killed = run("tests/test_kill.py", 60).await;
        assert_eq!(tally(&killed, "tests/test_kill.py"), Ok(Tally { passed: 1, ..Tally::default() }), "{killed:?}");
        assert_eq!(servers.running(), 0, "the lost server is gone");
        assert_eq!(
            tally(&run("tests/test_clean.py", 60).await, "tests/test_clean.py"),
            Ok(Tally { passed: 1, ..Tally::default() })
        );
        assert_eq!(servers.running(), 1);
    }

    /// A child cannot reach its server, nor the zygote it was forked from
    /// (the second run and after): no descriptor of a control socket is left
    /// to it, and neither, not dumpable, can be traced nor have its memory,
    /// environment or descriptors read through /proc; the server serves the
    /// next child.
    #[actix_rt::test]
    async fn a_child_cannot_reach_its_server() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("p");
        let module = "tests/test_reach.py".to_owned();
        write(&project, &[(module.as_str(), include_str!("../../tests/data/hostile/server.py"))]);
        let env = cache(&dir.path().join("envdata")).ensure(&project).await.unwrap();
        let p = pytest(&dir.path().join("data"), Way::Zygote);
        for _ in 0..3 {
            let report = p.run(&env, &project, std::slice::from_ref(&module), Duration::from_secs(60)).await.unwrap();
            assert_eq!(tally(&report, &module), Ok(Tally { passed: 1, ..Tally::default() }), "{report:?}");
        }
        assert_eq!(p.servers.as_ref().unwrap().running(), 1, "one server forked every run");
    }

    /// A project whose conftest writes into every writable mount when the
    /// zygote imports it, and whose modules, forked from that zygote, leave
    /// files, processes, IPC objects and patched globals behind: its modules
    /// see what a fresh run sees, and the next project, on the same server,
    /// finds none of it.
    #[actix_rt::test]
    async fn a_zygote_leaves_nothing_to_the_next_project() {
        let dir = tempfile::tempdir().unwrap();
        let (hostile, next) = (dir.path().join("hostile"), dir.path().join("next"));
        let conftest = "import os\nfor path in ('/tmp/zygote', '/dev/shm/zygote', 'zygote.txt'):\n    \
                        open(path, 'w').write('x')\nos.environ['EVALMESH_ZYGOTE_LEFT'] = '1'\n";
        let sees_conftest = "import os\n\ndef test_conftest_ran():\n    \
                             assert all(os.path.exists(p) for p in ('/tmp/zygote', '/dev/shm/zygote', 'zygote.txt'))\n";
        write(
            &hostile,
            &[
                ("tests/conftest.py", conftest),
                ("tests/test_leaves_a.py", LEAVES),
                // Checks first that the run before left nothing, then leaves.
                ("tests/test_leaves_b.py", &format!("{CLEAN}\n{LEAVES}")),
                ("tests/test_sees.py", sees_conftest),
            ],
        );
        let none_left = "import os\n\ndef test_nothing_of_the_zygote():\n    \
                         assert not any(os.path.exists(p) for p in ('/tmp/zygote', '/dev/shm/zygote', 'zygote.txt'))\n    \
                         assert 'EVALMESH_ZYGOTE_LEFT' not in os.environ\n    \
                         assert sorted(os.listdir('tests')) == ['test_clean.py', 'test_none_left.py']\n";
        write(&next, &[("tests/test_clean.py", CLEAN), ("tests/test_none_left.py", none_left)]);
        let env = cache(&dir.path().join("envdata")).ensure(&hostile).await.unwrap();
        let p = pytest(&dir.path().join("data"), Way::Zygote);
        for (root, module, passed) in [
            (&hostile, "tests/test_leaves_a.py", 1),
            (&hostile, "tests/test_leaves_b.py", 2),
            (&hostile, "tests/test_leaves_b.py", 2),
            (&hostile, "tests/test_sees.py", 1),
            (&next, "tests/test_clean.py", 1),
            (&next, "tests/test_none_left.py", 1),
        ] {
            let report = p.run(&env, root, &[module.to_owned()], Duration::from_secs(60)).await.unwrap();
            assert_eq!(tally(&report, module), Ok(Tally { passed, ..Tally::default() }), "{module}: {report:?}");
        }
        assert_eq!(p.servers.as_ref().unwrap().running(), 1, "one server forked every run");
    }

    /// Compares the bytecode the node stored in a project (argv 1) with what
    /// Python and pytest write themselves in a copy of it (argv 2), where
    /// pytest runs the tests: the same files, headers and code. Then
    /// rewrites the stored pyc of `pkg/mod.py` to code of its own.
    const ALIKE: &str = r#"import importlib.util, marshal, os, shutil, subprocess, sys

def pycs(top):
    return {os.path.relpath(os.path.join(d, f), top): open(os.path.join(d, f), 'rb').read()
            for d, _, fs in os.walk(top) for f in fs if f.endswith('.pyc')}

root, copy = sys.argv[1], sys.argv[2]
shutil.copytree(root, copy, ignore=shutil.ignore_patterns('__pycache__'))
env = {k: v for k, v in os.environ.items() if k != 'PYTHONDONTWRITEBYTECODE'}
subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'tests'], cwd=copy, env=env,
               check=True, stdout=subprocess.DEVNULL)
ours, theirs = pycs(root), pycs(copy)
assert sorted(ours) == sorted(theirs), (sorted(ours), sorted(theirs))
for name, data in ours.items():
    assert data[:16] == theirs[name][:16], name
    assert marshal.loads(data[16:]) == marshal.loads(theirs[name][16:]), name
print(len(ours), 'alike')
mod = os.path.join(root, 'pkg', '__pycache__', 'mod.' + sys.implementation.cache_tag + '.pyc')
data = ours[os.path.relpath(mod, root)]
with open(mod, 'r+b') as f:
    f.write(data[:16] + marshal.dumps(compile('VALUE = 2', 'pkg/mod.py', 'exec')))
    f.truncate()
"#;

    /// The bytecode the node compiles once for a project is, file by file,
    /// what Python and pytest write for it themselves, only where they would
    /// (no pyc for a folder of other files, none for a source that does not
    /// compile); and the children of its runs import it.
    #[actix_rt::test]
    async fn a_projects_bytecode_is_what_python_and_pytest_write_and_its_children_import_it() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("p");
        write(
            &project,
            &[
                ("pkg/__init__.py", "from . import big\nfrom .mod import VALUE\n"),
                ("pkg/mod.py", "VALUE = 1\n\ndef double(x):\n    return [v * 2 for v in x]\n"),
                ("pkg/big.py", &big_module()),
                ("tests/conftest.py", "import pytest\n\n@pytest.fixture\ndef one():\n    assert True\n    return 1\n"),
                (
                    "tests/test_a.py",
                    "import pkg\nfrom pkg.mod import double\n\ndef test_a(one):\n    assert double([one]) == [2]\n",
                ),
                ("tests/test_value.py", "import pkg\n\ndef test_value():\n    assert pkg.VALUE == 1\n"),
                ("data/sample.py", "print('read by a test, never imported')\n"),
                ("broken.py", "def (\n"),
            ],
        );
        let env = cache(&dir.path().join("envdata")).ensure(&project).await.unwrap();
        let p = pytest(&dir.path().join("data"), Way::Zygote);
        let module = "tests/test_a.py".to_owned();
        let report = p.run(&env, &project, std::slice::from_ref(&module), Duration::from_secs(60)).await.unwrap();
        assert_eq!(tally(&report, &module), Ok(Tally { passed: 1, ..Tally::default() }), "{report:?}");
        let out = std::process::Command::new(&env.python)
            .arg("-c")
            .arg(ALIKE)
            .arg(&project)
            .arg(dir.path().join("copy"))
            .arg("tamper")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // pkg/__init__, pkg/mod, pkg/big, tests/conftest, tests/test_a,
        // tests/test_value.
        assert_eq!(String::from_utf8_lossy(&out.stdout), "6 alike\n");
        // A node of its own, whose zygote copies the project as it is now.
        let p = pytest(&dir.path().join("data2"), Way::Zygote);
        let module = "tests/test_value.py".to_owned();
        let report = p.run(&env, &project, std::slice::from_ref(&module), Duration::from_secs(60)).await.unwrap();
        assert_eq!(tally(&report, &module), Ok(Tally { failed: 1, ..Tally::default() }), "{report:?}");
    }

    /// A module large enough that its project's bytecode is compiled once
    /// (`COMPILE_FROM`).
    fn big_module() -> String {
        let source: String = (0..6000).map(|i| format!("V{i} = {i}\n")).collect();
        assert!(source.len() as u64 >= COMPILE_FROM);
        source
    }

    /// A module that sends bytecode records of its own over its results
    /// channel: the node takes bytecode only from its compile runs, so the
    /// module's results are refused and nothing of it is stored.
    #[actix_rt::test]
    async fn bytecode_a_run_sends_is_refused_and_never_stored() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("p");
        let forge = r#"import base64, json, os

def test_forge():
    record = {'event': 'bytecode', 'source': 'pkg/mod.py', 'path': 'pkg/__pycache__/mod.forged.pyc',
              'data': base64.b64encode(b'forged').decode()}
    os.write(int(os.environ['EVALMESH_RESULTS_FD']), (json.dumps(record) + '\n').encode())
"#;
        write(
            &project,
            &[
                ("pkg/__init__.py", ""),
                ("pkg/mod.py", "VALUE = 1\n"),
                ("pkg/big.py", &big_module()),
                ("tests/test_forge.py", forge),
            ],
        );
        let env = cache(&dir.path().join("envdata")).ensure(&project).await.unwrap();
        let p = pytest(&dir.path().join("data"), Way::Zygote);
        let module = "tests/test_forge.py".to_owned();
        let report = p.run(&env, &project, std::slice::from_ref(&module), Duration::from_secs(60)).await.unwrap();
        let refused = tally(&report, &module).unwrap_err();
        assert!(refused.contains("not a result"), "{refused}");
        let mut pycs: Vec<_> = std::fs::read_dir(project.join("pkg/__pycache__"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        pycs.sort();
        // pkg/__init__, pkg/mod and pkg/big, as the compile run made them.
        assert_eq!(pycs.len(), 3, "{pycs:?}");
        assert!(pycs.iter().all(|name| name.contains(".cpython-") && !name.contains("forged")), "{pycs:?}");
    }

    /// The modules of one folder of a project are forked from one zygote,
    /// which imported the conftest once, made at the second module in a row;
    /// another folder, or the same folder after a run of another project,
    /// gets a zygote of its own; and with zygotes off, each run imports the
    /// conftest itself. A server whose project is gone is stopped with its
    /// zygote.
    #[actix_rt::test]
    async fn the_modules_of_a_folder_are_forked_from_one_zygote() {
        let dir = tempfile::tempdir().unwrap();
        let (project, other) = (dir.path().join("p"), dir.path().join("q"));
        // Fails with the pid that imported the conftest, and whether it is
        // the test's own.
        let test = "import os\nimport conftest\n\ndef test_pid():\n    \
                    assert (conftest.PID, conftest.PID == os.getpid()) == ()\n";
        let conftest = "import os\nPID = os.getpid()\n";
        write(
            &project,
            &[
                ("tests/conftest.py", conftest),
                ("tests/test_a.py", test),
                ("tests/test_b.py", test),
                ("tests/sub/__init__.py", ""),
                ("tests/sub/test_c.py", test),
            ],
        );
        write(&other, &[("tests/test_a.py", "def test_a(): pass\n")]);
        let env = cache(&dir.path().join("envdata")).ensure(&project).await.unwrap();
        let imported_by = |report: &RunReport, module: &str| -> (u32, bool) {
            let RunReport::Completed { reports: Ok(reports), .. } = report else { panic!("{report:?}") };
            let message = reports[module].tests[0].message.clone().unwrap_or_default();
            let shown = message.split("E       assert (").nth(1).and_then(|rest| rest.split_once(')'));
            let (pid, own) = shown.and_then(|(inner, _)| inner.split_once(", ")).unwrap_or_else(|| panic!("{message}"));
            (pid.parse().unwrap_or_else(|_| panic!("{message}")), own == "True")
        };
        for way in [Way::Forked, Way::Zygote] {
            let p = pytest(&dir.path().join(format!("{way:?}")), way);
            let mut seen = Vec::new();
            for (root, module) in [
                (&project, "tests/test_a.py"),
                (&project, "tests/test_b.py"),
                (&project, "tests/test_a.py"),
                (&project, "tests/sub/test_c.py"),
                (&project, "tests/sub/test_c.py"),
                (&other, "tests/test_a.py"),
                (&project, "tests/test_b.py"),
                (&project, "tests/test_b.py"),
            ] {
                let report = p.run(&env, root, &[module.to_owned()], Duration::from_secs(60)).await.unwrap();
                if root == &project {
                    seen.push(imported_by(&report, module));
                } else {
                    assert_eq!(tally(&report, module), Ok(Tally { passed: 1, ..Tally::default() }));
                }
            }
            if way == Way::Forked {
                assert!(seen.iter().all(|(_, own)| *own), "{seen:?}");
                continue;
            }
            let own: Vec<bool> = seen.iter().map(|(_, own)| *own).collect();
            assert_eq!(own, [true, false, false, true, false, true, false], "the first of a group in a row alone");
            assert_eq!(seen[1].0, seen[2].0, "one zygote for the folder");
            assert_ne!(seen[2].0, seen[4].0, "another for the subfolder");
            assert_ne!(seen[2].0, seen[6].0, "a new one after another project");
            let servers = p.servers.as_ref().unwrap();
            assert_eq!(servers.running(), 1);
            p.tidy();
            assert_eq!(servers.running(), 1, "a server of a project still there is kept");
            std::fs::rename(&project, dir.path().join("gone")).unwrap();
            p.tidy();
            assert_eq!(servers.running(), 0, "the server, and its zygote, end with their project");
        }
    }

    /// A zygote leans on pytest's insides (its capture manager, faulthandler
    /// descriptor, arguments): on the pytest versions the launcher takes, the
    /// children of a zygote report what fresh processes report, captured
    /// output included, and the second module is forked from a zygote.
    #[actix_rt::test]
    async fn children_of_a_zygote_report_as_fresh_processes_on_pytest_7_8_and_9() {
        let dir = tempfile::tempdir().unwrap();
        // test_fail fails either way, saying whether this process imported
        // the conftest.
        let test = "import os, sys\nimport conftest\n\ndef test_pass():\n    print('out')\n    sys.stderr.write('err')\n\n\
                    def test_fail():\n    print('shown')\n    assert conftest.PID < 0, f'own={conftest.PID == os.getpid()}'\n";
        for version in ["7.1.3", "7.4.4", "8.0.2", "9.0.0"] {
            let project = dir.path().join(version);
            write(
                &project,
                &[
                    ("requirements.txt", &format!("pytest=={version}\n")),
                    ("tests/conftest.py", "import os\nPID = os.getpid()\n"),
                    ("tests/test_a.py", test),
                    ("tests/test_b.py", test),
                ],
            );
            let env = cache(&dir.path().join("envdata")).ensure(&project).await.unwrap();
            let mut seen = Vec::new();
            for way in [Way::Zygote, Way::Fresh] {
                let p = pytest(&dir.path().join(format!("{version}-{way:?}")), way);
                for module in ["tests/test_a.py", "tests/test_b.py"] {
                    let report = p.run(&env, &project, &[module.to_owned()], Duration::from_secs(60)).await.unwrap();
                    let RunReport::Completed { reports: Ok(mut r), exit_code, output, .. } = report else {
                        panic!("pytest {version}, {way:?}: {report:?}")
                    };
                    let cases = r.remove(module).unwrap().tests;
                    let failed = cases.iter().find(|c| c.name == "test_fail").unwrap();
                    assert!(output.contains("Captured stdout call -") && output.contains("shown"), "{output}");
                    assert!(
                        !output.contains("out\n") && !output.contains("err\n"),
                        "a passing test's output shows: {output}"
                    );
                    let own = failed.message.as_deref().unwrap_or_default().contains("own=True");
                    seen.push((
                        way,
                        cases.iter().map(|c| (c.name.clone(), c.outcome)).collect::<Vec<_>>(),
                        exit_code,
                        own,
                    ));
                }
            }
            let owns: Vec<bool> = seen.iter().map(|s| s.3).collect();
            assert_eq!(owns, [true, false, true, true], "pytest {version}: the second module from a zygote");
            for (zygote, fresh) in seen[..2].iter().zip(&seen[2..]) {
                assert_eq!((&zygote.1, zygote.2), (&fresh.1, fresh.2), "pytest {version}");
            }
        }
    }

    /// A server serves projects of one environment one after the other; each
    /// child sees its own project's files and no other's.
    #[actix_rt::test]
    async fn a_server_shared_by_projects_shows_each_child_its_own_project_only() {
        let dir = tempfile::tempdir().unwrap();
        // Projects this small get no bytecode of the node's.
        let check = r#"import os

def test_alone():
    assert sorted(os.listdir('/evalmesh/base/tests')) == ['test_NAME.py']
    assert sorted(os.listdir('tests')) == ['test_NAME.py']
"#;
        let mut projects = Vec::new();
        for name in ["a", "b", "c"] {
            let root = dir.path().join(name);
            write(&root, &[(&format!("tests/test_{name}.py"), &check.replace("NAME", name))]);
            projects.push(root);
        }
        let env = cache(&dir.path().join("envdata")).ensure(&projects[0]).await.unwrap();
        let p = pytest(&dir.path().join("data"), Way::Zygote);
        for (i, name) in [(0, "a"), (1, "b"), (2, "c"), (0, "a")] {
            let root = &projects[i];
            let module = format!("tests/test_{name}.py");
            let report = p.run(&env, root, std::slice::from_ref(&module), Duration::from_secs(60)).await.unwrap();
            assert_eq!(tally(&report, &module), Ok(Tally { passed: 1, ..Tally::default() }), "{report:?}");
        }
        assert_eq!(p.servers.as_ref().unwrap().running(), 1);
    }

    /// Installs `source` into `env`'s site-packages as a pytest plugin (a
    /// `pytest11` entry point) named `evalmesh_plugin`.
    /// Installs the distribution `name` (a module of that name, `_` for
    /// `-`) whose `pytest11` entry point `entry` is that module.
    fn install_plugin(env: &Env, name: &str, entry: &str, source: &str) {
        let module = name.replace('-', "_");
        let info = format!("{module}-1.0.dist-info");
        write(
            &site_packages(env),
            &[
                (&format!("{module}.py"), source),
                (&format!("{info}/METADATA"), &format!("Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")),
                (&format!("{info}/entry_points.txt"), &format!("[pytest11]\n{entry} = {module}\n")),
                (&format!("{info}/RECORD"), &format!("{module}.py,,\n")),
            ],
        );
    }

    /// How many processes have `marker` in their command line.
    fn processes_with(marker: &str) -> usize {
        let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
        entries
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .filter(|cmdline| cmdline.windows(marker.len()).any(|w| w == marker.as_bytes()))
            .count()
    }

    /// A job stopped mid-run (its evaluation was cancelled) has its future
    /// dropped: no process of the run is left, a test's own child included,
    /// and the place its fork server had serves again: more runs are
    /// dropped than a node has places, and the next one still runs.
    #[actix_rt::test]
    async fn a_run_dropped_mid_way_leaves_no_process_and_its_place_serves_again() {
        let (hangs, ok) = ("tests/test_hangs.py".to_owned(), "tests/test_ok.py".to_owned());
        for way in [Way::Fresh, Way::Forked, Way::Zygote] {
            let dir = tempfile::tempdir().unwrap();
            let project = dir.path().join("p");
            let marker = format!("9{}.{}", std::process::id(), way as u8);
            let source = format!(
                "import subprocess, time\ndef test_hangs():\n    subprocess.Popen(['sleep', '{marker}'])\n    \
                 time.sleep(120)\n"
            );
            write(&project, &[(hangs.as_str(), &source), (ok.as_str(), "def test_ok():\n    pass\n")]);
            let env = cache(&dir.path().join("envdata")).ensure(&project).await.unwrap();
            let p = pytest(&dir.path().join("data"), way);
            // The test node has two slots.
            for round in 0..=2 * SERVERS_PER_SLOT {
                let started = async {
                    while processes_with(&marker) == 0 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                };
                tokio::select! {
                    _ = p.run(&env, &project, std::slice::from_ref(&hangs), Duration::from_secs(300)) => {
                        panic!("{way:?}: the run ended on its own")
                    }
                    _ = started => {}
                }
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while processes_with(&marker) > 0 && std::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                assert_eq!(processes_with(&marker), 0, "{way:?}: a process of dropped run {round} is left");
            }
            let report = p.run(&env, &project, std::slice::from_ref(&ok), Duration::from_secs(60)).await.unwrap();
            assert_eq!(tally(&report, &ok), Ok(Tally { passed: 1, ..Tally::default() }), "{way:?}: {report:?}");
        }
    }

    /// With a reference suite (`plugins::FILE` in the project), only the
    /// plugins of the distributions it names load, in a fresh process and
    /// in a server's or a zygote's child alike. The submission's plugin here
    /// forces every outcome to passed as soon as it is imported, so a
    /// server that imported it before forking, or that was kept from a run
    /// without a suite, would pass the failing test. A submission's package
    /// that takes a suite plugin's entry-point name, or its distribution's
    /// name, fails the project.
    #[actix_rt::test]
    async fn with_a_suite_only_its_plugins_load_and_a_submissions_cannot_force_outcomes() {
        const CHEAT: &str = "from _pytest.reports import TestReport\n\
                             _init = TestReport.__init__\n\
                             def _passed(self, *args, **kwargs):\n    \
                             _init(self, *args, **kwargs)\n    self.outcome, self.longrepr = 'passed', None\n\
                             TestReport.__init__ = _passed\n";
        let module = "tests/test_graded.py".to_owned();
        let graded = "def test_fixture(suite_value):\n    assert suite_value == 42\n\n\
                      def test_wrong():\n    assert 1 == 2\n";
        for way in [Way::Fresh, Way::Forked, Way::Zygote] {
            let dir = tempfile::tempdir().unwrap();
            let project = dir.path().join("p");
            write(&project, &[(module.as_str(), graded)]);
            let envs = cache(&dir.path().join("envdata"));
            let env = envs.ensure(&project).await.unwrap();
            install_plugin(
                &env,
                "suite-plugin",
                "suiteplug",
                "import pytest\n@pytest.fixture\ndef suite_value():\n    return 42\n",
            );
            install_plugin(&env, "cheat", "cheat", CHEAT);
            let p = pytest(&dir.path().join("data"), way);
            let counts = |passed, failed, errors| Ok(Tally { passed, failed, errors, ..Tally::default() });
            let run = |env: Env| {
                let (p, project, module) = (&p, &project, &module);
                async move {
                    let report = p.run(&env, project, std::slice::from_ref(module), Duration::from_secs(60)).await;
                    tally(&report.unwrap(), module)
                }
            };

            assert_eq!(run(env.clone()).await, counts(2, 0, 0), "{way:?}: without a suite, as under plain pytest");
            write(&project, &[(plugins::FILE, "suite-plugin\n")]);
            let env = envs.ensure(&project).await.unwrap();
            assert_eq!(env.plugins.as_deref(), Some(&["suite-plugin".to_owned()][..]));
            assert_eq!(run(env).await, counts(1, 1, 0), "{way:?}: the suite's plugin only");
            write(&project, &[(plugins::FILE, "")]);
            let env = envs.ensure(&project).await.unwrap();
            assert_eq!(run(env.clone()).await, counts(0, 1, 1), "{way:?}: no plugin at all, the fixture is missing");

            install_plugin(&env, "cheat", "suiteplug", CHEAT);
            write(&project, &[(plugins::FILE, "suite-plugin\n")]);
            let env = envs.ensure(&project).await.unwrap();
            let err = p.collect(&env, &project).await.unwrap_err().to_string();
            assert!(err.contains("registers the pytest plugin 'suiteplug'"), "{way:?}: {err}");

            // A second distribution under the suite's plugin's name, whose
            // entry point is the cheat: refused, whichever copy comes first.
            install_plugin(&env, "cheat", "cheat", CHEAT);
            write(
                &site_packages(&env),
                &[
                    ("sneaky.py", CHEAT),
                    (
                        "Suite.Plugin-9.0.dist-info/METADATA",
                        "Metadata-Version: 2.1\nName: Suite.Plugin\nVersion: 9.0\n",
                    ),
                    ("Suite.Plugin-9.0.dist-info/entry_points.txt", "[pytest11]\nsneaky = sneaky\n"),
                ],
            );
            let err = p.collect(&env, &project).await.unwrap_err().to_string();
            assert!(err.contains("2 distributions named 'suite-plugin'"), "{way:?}: {err}");
        }
    }

    fn site_packages(env: &Env) -> PathBuf {
        std::fs::read_dir(env.dir.join("lib")).unwrap().next().unwrap().unwrap().path().join("site-packages")
    }

    /// Python that starts a thread named `name` when it is imported.
    fn starts_thread(name: &str) -> String {
        format!(
            "import threading, time\n\
             threading.Thread(target=time.sleep, args=(3600,), name='{name}', daemon=True).start()\n"
        )
    }

    /// A test module passing when the threads running are exactly the main
    /// one and `name`.
    fn sees_thread(name: &str) -> String {
        format!(
            "import threading\ndef test_the_thread_runs():\n    \
             assert [t.name for t in threading.enumerate()] == ['MainThread', '{name}']\n"
        )
    }

    /// A plugin is imported in the server, through pytest's assertion
    /// rewriter as a fresh pytest imports it: its assertions are rewritten,
    /// and the child's pytest never warns that it was imported before it
    /// could rewrite it (so a project that turns warnings into errors runs).
    #[actix_rt::test]
    async fn a_plugin_is_imported_in_the_server_as_a_fresh_pytest_imports_it() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("p");
        let module = "tests/test_rewritten.py".to_owned();
        write(
            &project,
            &[
                ("pytest.ini", "[pytest]\nfilterwarnings = error\n"),
                (
                    module.as_str(),
                    "import os, pytest, evalmesh_plugin\n\
                     def test_warm_and_rewritten(checked):\n    \
                     assert evalmesh_plugin.IMPORTED_IN != os.getpid()\n    \
                     with pytest.raises(AssertionError, match='assert 1 == 2'):\n        checked(1, 2)\n",
                ),
            ],
        );
        let env = cache(&dir.path().join("envdata")).ensure(&project).await.unwrap();
        install_plugin(
            &env,
            "evalmesh-plugin",
            "plugin",
            "import os, pytest\nIMPORTED_IN = os.getpid()\n@pytest.fixture\ndef checked():\n    \
             def check(a, b):\n        assert a == b\n    return check\n",
        );
        let p = pytest(&dir.path().join("data"), Way::Zygote);
        let collected = p.collect(&env, &project).await.unwrap();
        assert_eq!(collected.modules.get(&module), Some(&1), "{collected:?}");
        let report = p.run(&env, &project, std::slice::from_ref(&module), Duration::from_secs(60)).await.unwrap();
        assert_eq!(tally(&report, &module), Ok(Tally { passed: 1, ..Tally::default() }), "{report:?}");
        assert_eq!(p.servers.as_ref().unwrap().running(), 1, "the server forked both runs");
    }

    /// A server whose start started a thread (here a `.pth` file at the
    /// interpreter's start) cannot fork: the child would hold the thread's
    /// locks without the thread. Its environment's runs are fresh processes,
    /// in which the thread runs as under plain pytest.
    #[actix_rt::test]
    async fn an_environment_that_starts_a_thread_runs_in_fresh_processes() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("p");
        let module = "tests/test_threads.py".to_owned();
        write(&project, &[(module.as_str(), &sees_thread("site"))]);
        let env = cache(&dir.path().join("envdata")).ensure(&project).await.unwrap();
        write(
            &site_packages(&env),
            &[("evalmesh_thread.py", &starts_thread("site")), ("evalmesh_thread.pth", "import evalmesh_thread\n")],
        );
        let p = pytest(&dir.path().join("data"), Way::Zygote);
        for _ in 0..2 {
            let report = p.run(&env, &project, std::slice::from_ref(&module), Duration::from_secs(60)).await.unwrap();
            assert_eq!(tally(&report, &module), Ok(Tally { passed: 1, ..Tally::default() }), "{report:?}");
        }
        let servers = p.servers.as_ref().unwrap();
        assert!(!servers.forkable(&Serving::of(&env)), "the environment is known not to fork");
        assert_eq!(servers.running(), 0, "no server was kept for it");
    }

    /// Where a zygote would not be what a fresh process is at collection —
    /// its conftest started a thread, or a module changed a file of the
    /// project — its modules are forked from the server instead, each
    /// importing the conftest itself and seeing the project as unpacked.
    #[actix_rt::test]
    async fn a_zygote_that_differs_from_a_fresh_run_gives_way_to_forks_of_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let (threads, writes) = (dir.path().join("threads"), dir.path().join("writes"));
        write(
            &threads,
            &[
                ("tests/conftest.py", &starts_thread("conftest")),
                ("tests/test_a.py", &sees_thread("conftest")),
                ("tests/test_b.py", &sees_thread("conftest")),
            ],
        );
        let pristine = "def test_pristine():\n    assert open('tests/data.txt').read() == 'pristine'\n";
        write(
            &writes,
            &[
                ("tests/data.txt", "pristine"),
                ("tests/test_a.py", pristine),
                (
                    "tests/test_b.py",
                    &format!("{pristine}\ndef test_change():\n    open('tests/data.txt', 'w').write('changed')\n"),
                ),
                ("tests/test_c.py", pristine),
            ],
        );
        let env = cache(&dir.path().join("envdata")).ensure(&threads).await.unwrap();
        let p = pytest(&dir.path().join("data"), Way::Zygote);
        for (root, module, passed) in [
            (&threads, "tests/test_a.py", 1),
            (&threads, "tests/test_b.py", 1),
            (&writes, "tests/test_a.py", 1),
            (&writes, "tests/test_b.py", 2),
            (&writes, "tests/test_c.py", 1),
            (&writes, "tests/test_a.py", 1),
        ] {
            let report = p.run(&env, root, &[module.to_owned()], Duration::from_secs(60)).await.unwrap();
            assert_eq!(tally(&report, module), Ok(Tally { passed, ..Tally::default() }), "{module}: {report:?}");
        }
        assert_eq!(p.servers.as_ref().unwrap().running(), 1, "one server forked every run");
    }

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
