//! The environment cache: one virtual environment per distinct
//! (interpreter, requirements) pair, built once and reused by every
//! evaluation on this node. Pure helper of the executor, no actix inside.
//!
//! The requirements are read from the project as the node unpacked it —
//! never from a folder a run can write — without following a link, and
//! vetted ([`super::requirements`]) before anything is installed. The
//! install itself runs in the sandbox, without network: the bridge inside
//! (`bridge.py`) hands its connections to the node's index proxy
//! ([`super::index_proxy`]), which lets them reach the package index and
//! nothing else. The environment's folder and the install's own cache are
//! all it can write, and it runs as the user of its slot (or in a user
//! namespace), so a package's build script sees nothing of the node.
//!
//! An environment is complete when its `READY` marker exists; a folder without
//! it is the remains of a build that was interrupted and is built again.
//!
//! Past its size (`max_bytes`) the cache drops the environments used least
//! recently, never one used within `min_idle` ([`super::eviction`]); the
//! marker's time is the last use, so the order outlives a restart.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};
use tokio::process::Command;
use tokio::sync::OnceCell;

use super::eviction;
use super::plugins;
use super::process;
use super::requirements::{self, Requirements};
use super::safe_file;
use super::sandbox::{Sandbox, Spec};
use super::ExecutorError;
use crate::config::ExecutorConfig;

const READY: &str = ".evalmesh-ready";
/// Part of every key, so that a change in how environments are built
/// invalidates the old ones.
const LAYOUT: &str = "evalmesh-env-v2";
/// The largest requirements file read.
const REQUIREMENTS_CAP: u64 = 64 * 1024;
/// The bridge, written into the node's sandbox folder at start.
pub const BRIDGE_SOURCE: &str = include_str!("bridge.py");
/// What an install may take from the node's environment: the index the
/// operator chose, and the certificates that an intercepting proxy needs.
const PASSED_ON: [&str; 11] = [
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_INDEX",
    "UV_NATIVE_TLS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
];

/// Hex digits of a key that name an environment to peers: short enough that
/// a node's list rides on its heartbeats, long enough not to collide.
pub const TAG_LEN: usize = 16;
/// Most environments a node tells its peers it holds: the ones used last.
pub const MAX_ADVERTISED: usize = 64;

/// The name peers know an environment by: the start of its key.
pub fn tag(key: &str) -> String {
    key.chars().take(TAG_LEN).collect()
}

/// True for what [`tag`] makes: `TAG_LEN` lowercase hex digits. A peer's
/// list is held to it.
pub fn is_tag(s: &str) -> bool {
    s.len() == TAG_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// An environment ready to run a project's tests.
#[derive(Debug, Clone)]
pub struct Env {
    /// The cache key: a hash of the interpreter and the requirements.
    pub key: String,
    pub dir: PathBuf,
    pub python: PathBuf,
    /// False when this call built it.
    pub cached: bool,
    pub elapsed: Duration,
    /// The distributions whose pytest plugins the project's runs may load;
    /// none for all the environment has (see `super::plugins`).
    pub plugins: Option<Vec<String>>,
}

/// How environments are built.
#[derive(Debug, Clone)]
pub enum Installer {
    /// The uv executable itself, not a shim that would need its own home.
    Uv(PathBuf),
    Pip,
}

/// How the cache reaches its interpreter and builds environments.
pub struct EnvSettings {
    pub data_dir: PathBuf,
    /// The interpreter as configured, and its real executable.
    pub python: String,
    pub executable: PathBuf,
    /// What the interpreter needs to be read inside the sandbox.
    pub interpreter: Vec<PathBuf>,
    pub use_uv: bool,
    pub timeout: Duration,
    pub output_cap: usize,
    /// The bridge script and the index proxy's socket, both shown to installs.
    pub bridge: PathBuf,
    pub index_socket: PathBuf,
    /// The size past which environments are evicted; `None` keeps them all.
    pub max_bytes: Option<u64>,
    /// An environment used more recently than this is never evicted.
    pub min_idle: Duration,
}

impl EnvSettings {
    /// The settings `e` asks for, with the interpreter resolved
    /// (`resolve_interpreter`) and the bridge and the proxy's socket written.
    pub fn from_config(
        e: &ExecutorConfig,
        data_dir: &Path,
        executable: PathBuf,
        interpreter: Vec<PathBuf>,
        bridge: PathBuf,
        index_socket: PathBuf,
    ) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            python: e.python.clone(),
            executable,
            interpreter,
            use_uv: e.use_uv,
            timeout: Duration::from_secs(e.install_timeout_s),
            output_cap: e.output_cap_bytes,
            bridge,
            index_socket,
            max_bytes: (e.env_cache_max_mb > 0).then(|| e.env_cache_max_mb.saturating_mul(1 << 20)),
            min_idle: Duration::from_secs(e.env_cache_min_idle_s),
        }
    }
}

pub struct EnvCache {
    root: PathBuf,
    tools: PathBuf,
    settings: EnvSettings,
    sandbox: Arc<Sandbox>,
    /// The interpreter's path and version, resolved once: part of every key.
    identity: OnceCell<String>,
    installer: OnceCell<Installer>,
    /// One lock per key, so that two projects with the same requirements
    /// build their environment once.
    building: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Tags of the environments built here, last used first, at most
    /// `MAX_ADVERTISED`: what the node's heartbeats tell the balancers, so
    /// that a project's modules go where its environment already is.
    recent: Mutex<VecDeque<String>>,
    /// When each environment was last asked for, by key.
    used_at: Mutex<HashMap<String, SystemTime>>,
}

impl EnvCache {
    pub fn new(settings: EnvSettings, sandbox: Arc<Sandbox>) -> Self {
        Self {
            root: settings.data_dir.join("envs"),
            tools: settings.data_dir.join("tools"),
            settings,
            sandbox,
            identity: OnceCell::new(),
            installer: OnceCell::new(),
            building: Mutex::new(HashMap::new()),
            recent: Mutex::new(VecDeque::new()),
            used_at: Mutex::new(HashMap::new()),
        }
        .with_built()
    }

    /// Takes in the environments a previous run of the node left ready,
    /// the most recently finished first.
    fn with_built(self) -> Self {
        let mut built: Vec<(SystemTime, String)> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let ready = entry.path().join(READY).metadata().and_then(|m| m.modified()).ok()?;
                Some((ready, entry.file_name().to_string_lossy().into_owned()))
            })
            .filter(|(_, key)| is_tag(&tag(key)))
            .collect();
        built.sort_by_key(|b| std::cmp::Reverse(b.0));
        self.used_at
            .lock()
            .expect("no code panics while holding this lock")
            .extend(built.iter().map(|(t, k)| (k.clone(), *t)));
        let built: Vec<(SystemTime, String)> = built.into_iter().map(|(t, key)| (t, tag(&key))).collect();
        *self.recent.lock().expect("no code panics while holding this lock") =
            built.into_iter().map(|(_, t)| t).take(MAX_ADVERTISED).collect();
        self
    }

    /// Tags of the environments ready here, last used first.
    pub fn tags(&self) -> Vec<String> {
        self.recent.lock().expect("no code panics while holding this lock").iter().cloned().collect()
    }

    /// Marks `key` used now, before its marker is looked at: an eviction
    /// that has not removed the marker yet sees it used and leaves it.
    fn touch(&self, key: &str) {
        let now = SystemTime::now();
        self.used_at.lock().expect("no code panics while holding this lock").insert(key.to_owned(), now);
        if let Ok(marker) = std::fs::OpenOptions::new().write(true).open(self.root.join(key).join(READY)) {
            let _ = marker.set_modified(now);
        }
    }

    /// Moves `key`'s tag to the front of the advertised ones.
    fn used(&self, key: &str) {
        let tag = tag(key);
        let mut recent = self.recent.lock().expect("no code panics while holding this lock");
        recent.retain(|t| *t != tag);
        recent.push_front(tag);
        recent.truncate(MAX_ADVERTISED);
    }

    /// Returns the environment for the project at `project_root`, building it
    /// on a miss.
    pub async fn ensure(&self, project_root: &Path) -> Result<Env, ExecutorError> {
        let started = Instant::now();
        let requirements = read_requirements(project_root)?;
        let plugins = plugins::read(project_root)?;
        let key = self.key(&requirements).await?;
        let dir = self.root.join(&key);
        let python = dir.join("bin").join("python");
        let env = |cached| {
            self.used(&key);
            let (key, dir, python, plugins) = (key.clone(), dir.clone(), python.clone(), plugins.clone());
            Env { key, dir, python, cached, elapsed: started.elapsed(), plugins }
        };
        self.touch(&key);
        if dir.join(READY).exists() {
            return Ok(env(true));
        }
        let lock = {
            let mut building = self.building.lock().expect("no code panics while holding this lock");
            building.entry(key.clone()).or_default().clone()
        };
        let _guard = lock.lock().await;
        if dir.join(READY).exists() {
            return Ok(env(true));
        }
        self.build(&key, &requirements).await?;
        self.touch(&key);
        drop(_guard);
        self.evict_past_size().await;
        Ok(env(false))
    }

    /// Evicts the environments used least recently while the cache is past
    /// its size (see the module doc); answers the keys evicted.
    pub async fn evict_past_size(&self) -> Vec<String> {
        let Some(max_bytes) = self.settings.max_bytes else { return Vec::new() };
        let used_at = self.used_at.lock().expect("no code panics while holding this lock").clone();
        let root = self.root.clone();
        let held = tokio::task::spawn_blocking(move || {
            let entries = std::fs::read_dir(&root).into_iter().flatten().flatten();
            entries
                .filter_map(|entry| {
                    let key = entry.file_name().to_string_lossy().into_owned();
                    let marker = entry.path().join(READY).metadata().ok()?;
                    let used = used_at.get(&key).copied().or_else(|| marker.modified().ok())?;
                    Some(eviction::Held { bytes: eviction::size_of(&entry.path()), key, used })
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let mut evicted = Vec::new();
        for key in eviction::to_evict(held, max_bytes, SystemTime::now(), self.settings.min_idle) {
            if self.evict(&key).await {
                evicted.push(key);
            }
        }
        evicted
    }

    /// Removes one environment unless it was used since it was picked.
    async fn evict(&self, key: &str) -> bool {
        let dir = self.root.join(key);
        {
            let used_at = self.used_at.lock().expect("no code panics while holding this lock");
            let idle = used_at.get(key).and_then(|t| t.elapsed().ok()).unwrap_or(Duration::MAX);
            // Under the lock `touch` takes: an `ensure` after this finds no
            // marker and builds it again.
            if idle < self.settings.min_idle || std::fs::remove_file(dir.join(READY)).is_err() {
                return false;
            }
        }
        let lock = {
            let mut building = self.building.lock().expect("no code panics while holding this lock");
            building.entry(key.to_owned()).or_default().clone()
        };
        let _guard = lock.lock().await;
        if dir.join(READY).exists() {
            return false;
        }
        let gone = self.root.join(format!(".evicted-{key}"));
        if tokio::fs::rename(&dir, &gone).await.is_ok() {
            let _ = tokio::fs::remove_dir_all(&gone).await;
        }
        self.used_at.lock().expect("no code panics while holding this lock").remove(key);
        self.recent.lock().expect("no code panics while holding this lock").retain(|t| *t != tag(key));
        log::info!("environment {}: evicted, the cache being past its size", tag(key));
        true
    }

    /// The cache key: a hash of the interpreter and the vetted requirements.
    pub async fn key(&self, requirements: &Requirements) -> Result<String, ExecutorError> {
        let identity = self.identity.get_or_try_init(|| self.resolve_identity()).await?;
        let mut h = Sha256::new();
        h.update(LAYOUT);
        h.update([0]);
        h.update(identity);
        h.update([0]);
        h.update(requirements.text());
        Ok(format!("{:x}", h.finalize()))
    }

    /// How environments are built here: uv found or installed once, else pip.
    pub async fn installer(&self) -> &Installer {
        self.installer.get_or_init(|| self.find_installer()).await
    }

    async fn resolve_identity(&self) -> Result<String, ExecutorError> {
        let mut cmd = Command::new(&self.settings.python);
        cmd.args(["-c", "import sys; print(sys.executable); print(sys.version)"]);
        let out = process::run(cmd, Duration::from_secs(30), 4096, None)
            .await
            .map_err(|e| ExecutorError::io(&format!("starting {}", self.settings.python), e))?;
        if !out.success() {
            return Err(ExecutorError::Interpreter { python: self.settings.python.clone(), output: out.output });
        }
        Ok(out.output)
    }

    async fn find_installer(&self) -> Installer {
        if !self.settings.use_uv {
            return Installer::Pip;
        }
        // uv installed into the interpreter knows where its binary is; a
        // shim on PATH (pyenv's) would not run in the sandbox.
        let mut cmd = Command::new(&self.settings.python);
        cmd.args(["-c", "import uv; print(uv.find_uv_bin())"]);
        if let Ok(out) = process::run(cmd, Duration::from_secs(30), 4096, None).await {
            let path = PathBuf::from(out.output.trim());
            if out.success() && is_executable_binary(&path) {
                return Installer::Uv(path);
            }
        }
        if let Some(uv) =
            find_on_path("uv").and_then(|p| std::fs::canonicalize(p).ok()).filter(|p| is_executable_binary(p))
        {
            return Installer::Uv(uv);
        }
        let local = self.tools.join("uv").join("bin").join("uv");
        if local.exists() {
            return Installer::Uv(local);
        }
        let mut cmd = Command::new(&self.settings.python);
        cmd.args(["-m", "pip", "install", "--quiet", "--target"]).arg(self.tools.join("uv")).arg("uv");
        match process::run(cmd, self.settings.timeout, self.settings.output_cap, None).await {
            Ok(out) if out.success() && local.exists() => {
                log::info!("installed uv into {}", local.display());
                Installer::Uv(local)
            }
            Ok(out) => {
                log::warn!("cannot install uv, building environments with pip: {}", out.output.trim());
                Installer::Pip
            }
            Err(e) => {
                log::warn!("cannot install uv, building environments with pip: {e}");
                Installer::Pip
            }
        }
    }

    /// Builds environment `key` in the sandbox: a fresh folder owned by the
    /// slot's user, the vetted requirements beside it read-only.
    async fn build(&self, key: &str, requirements: &Requirements) -> Result<(), ExecutorError> {
        let dir = self.root.join(key);
        let work = self.root.join(format!(".build-{key}"));
        for old in [&dir, &work] {
            if old.exists() {
                tokio::fs::remove_dir_all(old)
                    .await
                    .map_err(|e| ExecutorError::io("removing an unfinished environment", e))?;
            }
        }
        let lease = self.sandbox.lease().map_err(|e| ExecutorError::Sandbox(e.to_string()))?;
        let owner = self.sandbox.owner(&lease);
        let cache = work.join("cache");
        let reqs = work.join("requirements.txt");
        std::fs::create_dir_all(&work).map_err(|e| ExecutorError::io("creating the environment cache", e))?;
        std::fs::write(&reqs, requirements.text()).map_err(|e| ExecutorError::io("writing the requirements", e))?;
        for fresh in [&dir, &cache] {
            make_owned_dir(fresh, owner).map_err(|e| ExecutorError::io("creating the environment's folder", e))?;
        }
        let result = self.install(&dir, &cache, &reqs, &lease).await;
        self.sandbox.clean(&lease);
        let _ = tokio::fs::remove_dir_all(&work).await;
        if let Err(e) = result {
            // A half-built environment must not be taken for a cached one.
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return Err(e);
        }
        tokio::fs::write(dir.join(READY), b"").await.map_err(|e| ExecutorError::io("marking the environment ready", e))
    }

    async fn install(
        &self,
        dir: &Path,
        cache: &Path,
        reqs: &Path,
        lease: &super::sandbox::Lease,
    ) -> Result<(), ExecutorError> {
        let python = dir.join("bin").join("python");
        let executable = self.settings.executable.as_os_str().to_owned();
        let mut readable = self.settings.interpreter.clone();
        readable.extend([reqs.to_owned(), self.settings.bridge.clone(), self.settings.index_socket.clone()]);
        let installer = self.installer().await.clone();
        let (create, install): ((PathBuf, Vec<OsString>), (PathBuf, Vec<OsString>)) = match &installer {
            Installer::Uv(uv) => {
                if let Some(folder) = uv.parent() {
                    readable.push(folder.to_owned());
                }
                let create = vec!["venv".into(), "--quiet".into(), "--python".into(), executable, dir.into()];
                let mut install: Vec<OsString> =
                    ["pip", "install", "--quiet", "--compile-bytecode", "--python"].map(OsString::from).to_vec();
                install.push(python.clone().into());
                ((uv.clone(), create), (uv.clone(), install))
            }
            Installer::Pip => {
                let create = vec!["-m".into(), "venv".into(), dir.into()];
                let install = ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-cache-dir"]
                    .map(OsString::from)
                    .to_vec();
                ((self.settings.executable.clone(), create), (python.clone(), install))
            }
        };
        // The installer reaches the index through the bridge, the only way out.
        let (installer_program, installer_args) = install;
        let mut args: Vec<OsString> = vec![
            self.settings.bridge.clone().into(),
            self.settings.index_socket.clone().into(),
            "--".into(),
            installer_program.into(),
        ];
        args.extend(installer_args);
        args.extend([OsString::from("-r"), reqs.into(), OsString::from("pytest")]);
        let program = self.settings.executable.clone();
        let mut env: Vec<(String, OsString)> = vec![
            ("UV_CACHE_DIR".into(), cache.into()),
            ("UV_PYTHON_DOWNLOADS".into(), "never".into()),
            ("UV_NO_CONFIG".into(), "1".into()),
        ];
        let passed: Vec<(String, OsString)> =
            PASSED_ON.iter().filter_map(|k| std::env::var_os(k).map(|v| ((*k).to_owned(), v))).collect();
        // A certificate file or folder named there must be seen to be used.
        readable.extend(
            passed
                .iter()
                .map(|(_, v)| PathBuf::from(v))
                .filter(|p| p.is_absolute() && p.exists() && !p.starts_with("/etc")),
        );
        env.extend(passed);
        for (step, (program, args)) in
            [("creating the environment", create), ("installing requirements", (program, args))]
        {
            let spec = Spec {
                program,
                args,
                cwd: PathBuf::from("/"),
                env: env.clone(),
                readable: readable.clone(),
                writable: vec![dir.to_owned(), cache.to_owned()],
                install: true,
                ..Spec::default()
            };
            let cmd = Command::from(self.sandbox.command(&spec, lease, None));
            let out = process::run(cmd, self.settings.timeout, self.settings.output_cap, None)
                .await
                .map_err(|e| ExecutorError::io(step, e))?;
            if !out.success() {
                let reason = if out.timed_out() {
                    format!("timed out after {} s", self.settings.timeout.as_secs())
                } else {
                    out.output.trim().to_owned()
                };
                return Err(ExecutorError::Install { step, reason });
            }
        }
        Ok(())
    }
}

/// The project's vetted requirements, read safely from its pristine folder.
fn read_requirements(project_root: &Path) -> Result<Requirements, ExecutorError> {
    let path = project_root.join("requirements.txt");
    let bytes = safe_file::read_capped(&path, "requirements.txt", REQUIREMENTS_CAP)
        .map_err(|e| ExecutorError::Requirements(e.to_string()))?;
    let Some(bytes) = bytes else { return Ok(Requirements::default()) };
    let text =
        String::from_utf8(bytes).map_err(|_| ExecutorError::Requirements("requirements.txt is not UTF-8".into()))?;
    requirements::vet(&text).map_err(|e| ExecutorError::Requirements(e.to_string()))
}

/// Creates the empty folder `dir` and, when the slot has a user of its own,
/// gives it to that user through a descriptor: nothing was ever inside.
fn make_owned_dir(dir: &Path, owner: Option<u32>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if let Some(uid) = owner {
        let folder =
            std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW).open(dir)?;
        std::os::unix::fs::fchown(&folder, Some(uid), None)?;
    }
    Ok(())
}

/// True for a file that starts as an ELF executable does: not a shell shim.
fn is_executable_binary(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)).is_ok()
        && magic == *b"\x7fELF"
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

/// The interpreter's real executable and where it is installed, resolved
/// through symbolic links and pyenv-style shims: sandboxed commands must be
/// able to read it even when it lies in a home folder they do not see. When
/// the interpreter does not run, the name as configured and nothing to
/// show; the sandbox check then says what fails.
pub fn resolve_interpreter(python: &str) -> (PathBuf, Vec<PathBuf>) {
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import os, sys; print(os.path.realpath(sys.executable)); print(os.path.realpath(sys.base_prefix))",
        ])
        .stdin(std::process::Stdio::null())
        .output();
    if let Some(out) = out.ok().filter(|out| out.status.success()) {
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some((executable, prefix)) = text.trim().split_once('\n') {
            return (PathBuf::from(executable), vec![PathBuf::from(prefix)]);
        }
    }
    (PathBuf::from(python), Vec::new())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::executor::sandbox::tests::sandbox;

    /// A cache as the node makes one, with its index proxy serving PyPI;
    /// must be called on an actix runtime.
    pub(crate) fn cache(data: &Path) -> EnvCache {
        cache_of_size(data, None)
    }

    fn cache_of_size(data: &Path, max_bytes: Option<u64>) -> EnvCache {
        let (executable, interpreter) = resolve_interpreter("python3");
        let sandbox = sandbox(data);
        let bridge = data.join("sandbox/bridge.py");
        std::fs::write(&bridge, BRIDGE_SOURCE).unwrap();
        let index_socket = data.join("sandbox/index.sock");
        let listener = crate::executor::index_proxy::bind(&index_socket).unwrap();
        let hosts = vec!["pypi.org:443".to_owned(), "files.pythonhosted.org:443".to_owned()];
        actix_rt::spawn(crate::executor::index_proxy::serve(listener, Arc::new(hosts)));
        let settings = EnvSettings {
            data_dir: data.to_owned(),
            python: "python3".into(),
            executable,
            interpreter,
            use_uv: true,
            timeout: Duration::from_secs(600),
            output_cap: 8192,
            bridge,
            index_socket,
            max_bytes,
            min_idle: Duration::from_secs(3600),
        };
        EnvCache::new(settings, sandbox)
    }

    #[actix_rt::test]
    async fn past_its_size_the_cache_drops_the_least_recently_used_but_never_one_used_lately() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let hour = Duration::from_secs(3600);
        // Three environments as a past run left them, 1 MiB each, last used
        // 3 hours, 2 hours and a minute ago.
        let keys: Vec<String> = ["a", "b", "c"].iter().map(|c| c.repeat(64)).collect();
        for (key, ago) in keys.iter().zip([hour * 3, hour * 2, Duration::from_secs(60)]) {
            let env = data.join("envs").join(key);
            std::fs::create_dir_all(env.join("lib")).unwrap();
            std::fs::write(env.join("lib/site.bin"), vec![0u8; 1 << 20]).unwrap();
            let marker = std::fs::File::create(env.join(READY)).unwrap();
            marker.set_modified(SystemTime::now() - ago).unwrap();
        }
        let fits_two = cache_of_size(&data, Some((5 << 20) / 2));
        assert_eq!(fits_two.tags().len(), 3);
        assert_eq!(fits_two.evict_past_size().await, [keys[0].clone()]);
        assert!(!data.join("envs").join(&keys[0]).exists());
        assert_eq!(fits_two.tags(), [tag(&keys[2]), tag(&keys[1])]);
        assert_eq!(fits_two.evict_past_size().await, Vec::<String>::new(), "the rest fit");
        // Room for none: the one used a minute ago stays all the same.
        let fits_none = cache_of_size(&data, Some(0));
        assert_eq!(fits_none.evict_past_size().await, [keys[1].clone()]);
        let left: Vec<String> = std::fs::read_dir(data.join("envs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        assert_eq!(left, [keys[2].clone()]);
    }

    #[actix_rt::test]
    async fn key_depends_on_the_vetted_requirements() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path());
        let a = c.key(&requirements::vet("requests==2.0\n").unwrap()).await.unwrap();
        let b = c.key(&requirements::vet("# pinned\nrequests==2.0  # why\n-e .\n").unwrap()).await.unwrap();
        let none = c.key(&Requirements::default()).await.unwrap();
        assert_eq!(a, b);
        assert_ne!(a, none);
        assert_eq!(a.len(), 64);
    }

    #[actix_rt::test]
    async fn builds_once_in_the_sandbox_then_hits_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("p");
        std::fs::create_dir(&project).unwrap();
        let c = cache(&dir.path().join("data"));
        let first = c.ensure(&project).await.unwrap();
        assert!(!first.cached);
        assert!(first.python.exists());
        let second = c.ensure(&project).await.unwrap();
        assert!(second.cached);
        assert_eq!(first.python, second.python);
        assert_eq!(c.tags(), vec![tag(&first.key)], "the node tells it holds the environment");
        let left: Vec<_> =
            std::fs::read_dir(dir.path().join("data/envs")).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 1, "the build's own folder is gone: {left:?}");
    }

    #[actix_rt::test]
    async fn advertises_the_environments_used_last_and_no_more_than_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // A previous run of the node left two environments ready, `b` the
        // later, and one whose build was interrupted.
        let old = std::time::SystemTime::now() - Duration::from_secs(60);
        for (key, ready) in [("a", Some(old)), ("b", Some(std::time::SystemTime::now())), ("c", None)] {
            let env = data.join("envs").join(key.repeat(64));
            std::fs::create_dir_all(&env).unwrap();
            if let Some(at) = ready {
                std::fs::File::create(env.join(READY)).unwrap().set_modified(at).unwrap();
            }
        }
        let c = cache(&data);
        assert_eq!(c.tags(), vec!["b".repeat(TAG_LEN), "a".repeat(TAG_LEN)]);
        c.used(&"a".repeat(64));
        assert_eq!(c.tags(), vec!["a".repeat(TAG_LEN), "b".repeat(TAG_LEN)]);
        let key = |i: u32| format!("{i:016x}{}", "0".repeat(48));
        for i in 0..100 {
            c.used(&key(i));
        }
        let tags = c.tags();
        assert_eq!(tags.len(), MAX_ADVERTISED);
        assert_eq!(tags[0], tag(&key(99)));
        assert!(tags.iter().all(|t| is_tag(t)));
    }

    #[actix_rt::test]
    async fn failing_install_reports_its_error_and_leaves_no_environment() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("p");
        std::fs::create_dir(&project).unwrap();
        std::fs::write(project.join("requirements.txt"), "this-package-does-not-exist-evalmesh==9.9\n").unwrap();
        let c = cache(&dir.path().join("data"));
        let err = c.ensure(&project).await.unwrap_err();
        assert!(matches!(err, ExecutorError::Install { step: "installing requirements", .. }), "{err}");
        assert!(err.to_string().contains("this-package-does-not-exist-evalmesh"), "{err}");
        let envs: Vec<_> = std::fs::read_dir(dir.path().join("data/envs")).unwrap().collect();
        assert_eq!(envs.len(), 0);
    }

    #[actix_rt::test]
    async fn refuses_a_linked_or_local_requirements_file_before_installing() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("p");
        std::fs::create_dir(&project).unwrap();
        let secret = dir.path().join("node.toml");
        std::fs::write(&secret, "secret = \"s3cr3t\"\n").unwrap();
        std::os::unix::fs::symlink(&secret, project.join("requirements.txt")).unwrap();
        let c = cache(&dir.path().join("data"));
        let err = c.ensure(&project).await.unwrap_err().to_string();
        assert_eq!(err, "requirements: requirements.txt is a symbolic link");
        std::fs::remove_file(project.join("requirements.txt")).unwrap();
        std::fs::write(project.join("requirements.txt"), "pytest\n./evil\n").unwrap();
        let err = c.ensure(&project).await.unwrap_err().to_string();
        assert!(err.contains("line 2 (`./evil`)"), "{err}");
        assert!(!dir.path().join("data/envs").exists(), "nothing was built");
    }

    /// What a build script sees of the network during an install: the index
    /// through the bridge, and nothing else — neither a service of the
    /// host's loopback, asked through the proxy or directly.
    #[actix_rt::test]
    async fn an_install_reaches_the_index_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let c = cache(&data);
        let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = host.local_addr().unwrap().port();
        let script = format!(
            "import os, socket, urllib.request\n\
             def fails(f):\n    try:\n        f()\n    except OSError as e:\n        return type(e).__name__\n    return 'reached'\n\
             print('index', urllib.request.urlopen('https://pypi.org/simple/pytest/', timeout=30).status)\n\
             print('host via proxy', fails(lambda: urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=10)))\n\
             os.environ.pop('HTTPS_PROXY'); os.environ.pop('HTTP_PROXY')\n\
             print('host direct', fails(lambda: socket.create_connection(('127.0.0.1', {port}), timeout=10)))\n"
        );
        let s = &c.settings;
        let mut readable = s.interpreter.clone();
        readable.extend([s.bridge.clone(), s.index_socket.clone()]);
        let args = vec![
            s.bridge.clone().into(),
            s.index_socket.clone().into(),
            "--".into(),
            s.executable.clone().into(),
            "-c".into(),
            script.into(),
        ];
        let spec = Spec { program: s.executable.clone(), args, cwd: PathBuf::from("/"), readable, ..Spec::default() };
        let lease = c.sandbox.lease().unwrap();
        let cmd = Command::from(c.sandbox.command(&spec, &lease, None));
        let out = process::run(cmd, Duration::from_secs(120), 8192, None).await.unwrap();
        assert!(out.success(), "{}", out.output);
        assert!(out.output.contains("index 200"), "{}", out.output);
        assert!(out.output.contains("host via proxy HTTPError"), "{}", out.output);
        assert!(out.output.contains("host direct ConnectionRefusedError"), "{}", out.output);
    }
}
