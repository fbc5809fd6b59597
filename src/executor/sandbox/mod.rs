//! The sandbox around everything a project brings: its test runs and the
//! installs of its requirements. Pure helper of the executor, no actix
//! inside.
//!
//! Each command runs under bubblewrap (`bwrap`) in namespaces of its own —
//! mount, PID (all its processes die with it), IPC, UTS, network (a loopback
//! of its own; an install reaches the index through the node's index proxy
//! only, see [`super::index_proxy`]) — on an empty
//! root where only the system and the files the command needs are mounted
//! ([`bwrap`]). It runs unprivileged in one of two ways, picked at start:
//!
//! - the node runs as root: bwrap runs without a user namespace and
//!   `setpriv` makes the command the user of its slot (`sandbox_uid_base +
//!   slot`), with no capabilities and `no_new_privs`;
//! - the node runs as an ordinary user: bwrap makes an unprivileged user
//!   namespace, and the command runs as the node's user there, unable to
//!   make namespaces of its own.
//!
//! Limits hold for a run as a whole where the node can make a cgroup per
//! slot ([`cgroup`]): memory, its tmpfs pages included, and processes. Where
//! it cannot, `RLIMIT_AS` bounds each process's memory and `RLIMIT_NPROC`
//! the run's processes (set by the launcher inside the user namespace, where
//! the kernel counts the run's processes alone). CPU time per process and
//! file size are always rlimits; every writable tmpfs has a size.
//!
//! The node never changes the ownership or mode of anything a command could
//! write: a run writes only its private tmpfs mounts, an install only the
//! fresh folder of the environment it builds.

pub mod bwrap;
pub mod cgroup;

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::config::Config;

pub use bwrap::Spec;
use bwrap::{Identity, Scratch, SystemLayout};
use cgroup::{CgroupLimits, CgroupVersion, SlotCgroups};

/// The descriptor a run writes its results to (see `launcher.py`).
pub const RESULTS_FD: RawFd = 3;

/// Fork servers a node keeps per slot: one for the environment its slot
/// runs now and one more, so that projects of a few environments
/// interleaved on the slots do not make a server start for each module.
pub const SERVERS_PER_SLOT: usize = 2;

/// User ids (and cgroups) per slot: the slot's own, and its servers'.
pub const IDS_PER_SLOT: usize = 1 + SERVERS_PER_SLOT;

/// Which sandbox runs the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxKind {
    Bwrap,
    /// No isolation: only for machines where bwrap cannot run, chosen
    /// explicitly. The rlimits and the cgroups still apply.
    None,
}

/// Per-run limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    pub cpu_s: u64,
    /// The run's memory with a cgroup, each process's address space without.
    pub memory_bytes: u64,
    pub processes: u64,
    pub file_bytes: u64,
    /// The size of each writable tmpfs of a run.
    pub scratch_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct SandboxSettings {
    pub kind: SandboxKind,
    /// Folders that must not be seen inside (the data folder).
    pub hidden: Vec<PathBuf>,
    /// Files that must not be read inside (the config).
    pub masked: Vec<PathBuf>,
    /// A folder of the node's for the files it writes for the sandbox.
    pub files: PathBuf,
    /// The first of the runs' user ids when the node runs as root, also
    /// their group id.
    pub uid_base: u32,
    /// How many commands at once: one user id and one cgroup each.
    pub slots: usize,
    pub limits: RunLimits,
    /// Make a cgroup per slot where possible.
    pub cgroups: bool,
}

impl SandboxSettings {
    /// The settings `config` asks for, for a node keeping its data in `data_dir`.
    pub fn from_config(config: &Config, data_dir: &Path) -> Self {
        let e = &config.executor;
        Self {
            kind: e.sandbox,
            // Shown nowhere unless a system folder holds them: every evaluation,
            // the database, the blobs, the config with the cluster secret.
            hidden: vec![data_dir.to_owned()],
            masked: config.source.iter().cloned().collect(),
            files: data_dir.join("sandbox"),
            uid_base: e.sandbox_uid_base,
            slots: config.node.slots,
            limits: RunLimits {
                cpu_s: e.cpu_limit_s,
                memory_bytes: e.memory_limit_bytes,
                processes: e.process_limit,
                file_bytes: e.file_size_limit_bytes,
                scratch_bytes: e.scratch_limit_bytes,
            },
            cgroups: e.cgroups,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "bwrap cannot start a sandbox here: {0}; or set executor.sandbox = \"none\" to run tests without isolation"
    )]
    Unavailable(String),
    #[error("every sandbox slot is taken: more commands than slots")]
    NoSlot,
    #[error("preparing the sandbox's files in {path}: {source}")]
    Prepare { path: PathBuf, source: std::io::Error },
}

/// How runs are made unprivileged and limited, as logged at start and shown
/// in `GET /stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SandboxMode {
    /// `bwrap` or `none`.
    pub kind: &'static str,
    /// `per-slot` (root: a user id per slot), `user-namespace` (an
    /// ordinary user), or `node` (no sandbox: the node's own user).
    pub users: &'static str,
    /// `cgroup-v2`, `cgroup-v1`, or `rlimits` (per process).
    pub limits: &'static str,
}

/// A slot, given back when dropped.
pub struct Lease {
    slot: usize,
    /// Where it goes back to; none for a fork server's slot, which belongs
    /// to its server.
    pool: Option<Arc<Mutex<Vec<usize>>>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            pool.lock().expect("no code panics while holding this lock").push(self.slot);
        }
    }
}

pub struct Sandbox {
    settings: SandboxSettings,
    /// Whether bwrap's command drops to a slot's user or makes a user namespace.
    root: bool,
    layout: SystemLayout,
    /// A cgroup per slot, or why there is none (said at start).
    cgroups: Result<SlotCgroups, String>,
    /// The slots not leased, each given back when its lease drops.
    free: Arc<Mutex<Vec<usize>>>,
}

impl Sandbox {
    /// Picks the mode for this node's user, makes the cgroups where it can,
    /// and writes the sandbox's `/etc` files.
    pub fn new(settings: SandboxSettings) -> Result<Self, SandboxError> {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let limits = CgroupLimits { memory_bytes: settings.limits.memory_bytes, processes: settings.limits.processes };
        let cgroups = if settings.cgroups {
            SlotCgroups::create(limits, settings.slots * IDS_PER_SLOT)
        } else {
            Err("executor.cgroups = false".to_owned())
        };
        write_etc(&settings, root)?;
        let layout = SystemLayout::discover(&settings.files);
        let free = (0..settings.slots).rev().collect();
        Ok(Self { settings, root, layout, cgroups, free: Arc::new(Mutex::new(free)) })
    }

    pub fn kind(&self) -> SandboxKind {
        self.settings.kind
    }

    pub fn mode(&self) -> SandboxMode {
        let users = match (self.settings.kind, self.root) {
            (SandboxKind::None, _) => "node",
            (SandboxKind::Bwrap, true) => "per-slot",
            (SandboxKind::Bwrap, false) => "user-namespace",
        };
        let limits = match self.cgroups.as_ref().ok().map(SlotCgroups::version) {
            Some(CgroupVersion::V2) => "cgroup-v2",
            Some(CgroupVersion::V1) => "cgroup-v1",
            None => "rlimits",
        };
        let kind = if self.settings.kind == SandboxKind::Bwrap { "bwrap" } else { "none" };
        SandboxMode { kind, users, limits }
    }

    /// One line for the log at start: the mode, and what it does not cover.
    pub fn describe(&self) -> String {
        let mode = self.mode();
        let users = match mode.users {
            "per-slot" => format!(
                "each slot runs as its own user id ({}..{})",
                self.settings.uid_base,
                self.settings.uid_base as usize + IDS_PER_SLOT * self.settings.slots.max(1) - 1
            ),
            "user-namespace" => "runs are unprivileged in a user namespace of their own".to_owned(),
            _ => "student code runs without isolation, as this node's user".to_owned(),
        };
        let limits = match &self.cgroups {
            Ok(c) => format!(
                "a cgroup {} per slot limits each run's memory (tmpfs included) and processes",
                if c.version() == CgroupVersion::V2 { "v2" } else { "v1" }
            ),
            Err(why) => format!(
                "no cgroup ({why}): memory is limited per process (RLIMIT_AS), processes per run (RLIMIT_NPROC)"
            ),
        };
        format!("sandbox: {} (users: {}, limits: {}); {users}; {limits}", mode.kind, mode.users, mode.limits)
    }

    /// Runs `python -c pass` as a test run would, so that a node that cannot
    /// isolate tests says so at start instead of at the first evaluation.
    /// `readable` holds what the interpreter needs. Blocks: it runs once,
    /// before the node serves.
    pub fn check(&self, python: &Path, readable: Vec<PathBuf>) -> Result<(), SandboxError> {
        if self.settings.kind == SandboxKind::None {
            return Ok(());
        }
        let spec = Spec {
            program: python.to_owned(),
            args: vec![OsString::from("-c"), OsString::from("import os; os.listdir('/tmp'); os.listdir('/dev/shm')")],
            cwd: PathBuf::from("/"),
            readable,
            ..Spec::default()
        };
        let lease = self.lease()?;
        let out = match self.command(&spec, &lease, None).stdin(std::process::Stdio::null()).output() {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SandboxError::Unavailable(
                    "bwrap is not installed: install bubblewrap (apt-get install bubblewrap)".into(),
                ))
            }
            Err(e) => return Err(SandboxError::Unavailable(e.to_string())),
        };
        if out.status.success() {
            return Ok(());
        }
        let stderr: String = String::from_utf8_lossy(&out.stderr).trim().chars().take(500).collect();
        let hint = if self.root {
            "setpriv (util-linux) must be installed"
        } else {
            "this user cannot make an unprivileged user namespace; check with `unshare -Ur true`, and enable them \
             (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0, or on Ubuntu \
             kernel.apparmor_restrict_unprivileged_userns=0; in a container, seccomp and AppArmor unconfined), \
             or run the node as root"
        };
        Err(SandboxError::Unavailable(format!("{stderr}; {hint}")))
    }

    /// The user a command of `lease` runs as, when the node gives each slot
    /// a user of its own: what it builds must belong to that user.
    pub fn owner(&self, lease: &Lease) -> Option<u32> {
        (self.root && self.settings.kind == SandboxKind::Bwrap).then(|| self.uid(lease))
    }

    fn uid(&self, lease: &Lease) -> u32 {
        self.settings.uid_base.saturating_add(u32::try_from(lease.slot).unwrap_or(u32::MAX))
    }

    /// The command that runs `spec` inside the sandbox in `lease`'s slot,
    /// with `results` (a pipe's write end) as its descriptor [`RESULTS_FD`].
    pub fn command(&self, spec: &Spec, lease: &Lease, results: Option<RawFd>) -> Command {
        let mut cmd = match self.settings.kind {
            SandboxKind::None => {
                let mut cmd = Command::new(&spec.program);
                cmd.args(&spec.args).current_dir(&spec.cwd).env_clear().envs(base_env()).envs(spec.env.iter().cloned());
                cmd
            }
            SandboxKind::Bwrap => {
                let identity = if self.root {
                    Identity::SetPriv { uid: self.uid(lease), gid: self.settings.uid_base }
                } else {
                    Identity::UserNamespace
                };
                let empty = self.settings.files.join("empty");
                let masked: Vec<(PathBuf, PathBuf)> =
                    self.settings.masked.iter().map(|f| (empty.clone(), f.clone())).collect();
                let scratch = Scratch { bytes: self.settings.limits.scratch_bytes };
                let args = bwrap::args(
                    &self.layout,
                    spec,
                    identity,
                    &self.settings.hidden,
                    &masked,
                    scratch,
                    &base_env().map(|(k, v)| (k, OsString::from(v))),
                );
                let mut cmd = Command::new("bwrap");
                cmd.args(args);
                cmd
            }
        };
        let limits = self.settings.limits;
        let join = self.cgroups.as_ref().map(|c| c.join_fds(lease.slot)).unwrap_or_default();
        // Without a cgroup the address space is the only bound on memory;
        // with one it would only refuse honest large mappings.
        let address_space = (self.cgroups.is_err() && !spec.install).then_some(limits.memory_bytes);
        // Set outside only where the run is a user of its own; in a user
        // namespace the launcher sets it inside.
        let processes = (self.root && self.settings.kind == SandboxKind::Bwrap).then_some(limits.processes);
        // SAFETY: between fork and exec only write, dup2, fcntl and
        // setrlimit are called, all async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                cgroup::join(&join)?;
                if let Some(fd) = results {
                    pass_fd(fd, RESULTS_FD)?;
                }
                set_limit(libc::RLIMIT_CPU, Some(limits.cpu_s))?;
                set_limit(libc::RLIMIT_AS, address_space)?;
                set_limit(libc::RLIMIT_NPROC, processes)?;
                set_limit(libc::RLIMIT_FSIZE, Some(limits.file_bytes))?;
                set_limit(libc::RLIMIT_CORE, Some(0))
            });
        }
        cmd
    }

    /// Kills what is left in a slot's cgroup once its command has ended.
    pub fn clean(&self, lease: &Lease) {
        if let Ok(cgroups) = &self.cgroups {
            cgroups.kill_all(lease.slot);
        }
    }

    /// Takes a slot for one command; it is free again when the lease drops.
    pub fn lease(&self) -> Result<Lease, SandboxError> {
        let slot =
            self.free.lock().expect("no code panics while holding this lock").pop().ok_or(SandboxError::NoSlot)?;
        Ok(Lease { slot, pool: Some(self.free.clone()) })
    }

    /// The slot of fork server `index` (below `SERVERS_PER_SLOT` times the
    /// node's slot count): a
    /// user and a cgroup apart from the slots of other commands, so that an
    /// install or a fresh run never shares them with a waiting server.
    pub fn server_lease(&self, index: usize) -> Lease {
        Lease { slot: self.settings.slots + index, pool: None }
    }
}

/// The environment every command starts from.
fn base_env() -> [(&'static str, &'static str); 3] {
    [("PATH", "/usr/local/bin:/usr/bin:/bin"), ("HOME", "/tmp"), ("LANG", "C.UTF-8")]
}

/// Writes the sandbox's `/etc/passwd`, `group`, `hosts` and `nsswitch.conf`,
/// naming the users a run may be, and the empty file mounted over masked ones.
fn write_etc(settings: &SandboxSettings, root: bool) -> Result<(), SandboxError> {
    let dir = &settings.files;
    let failed = |source| SandboxError::Prepare { path: dir.clone(), source };
    std::fs::create_dir_all(dir).map_err(failed)?;
    // SAFETY: getuid and getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut passwd = String::from("root:x:0:0:root:/root:/bin/sh\n");
    let mut group = String::from("root:x:0:\n");
    if root && settings.kind == SandboxKind::Bwrap {
        for slot in 0..IDS_PER_SLOT * settings.slots {
            let id = settings.uid_base as usize + slot;
            passwd.push_str(&format!("evalmesh{slot}:x:{id}:{}:evalmesh run:/tmp:/bin/sh\n", settings.uid_base));
        }
        group.push_str(&format!("evalmesh:x:{}:\n", settings.uid_base));
    } else if uid != 0 {
        passwd.push_str(&format!("evalmesh:x:{uid}:{gid}:evalmesh run:/tmp:/bin/sh\n"));
        group.push_str(&format!("evalmesh:x:{gid}:\n"));
    }
    passwd.push_str("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
    group.push_str("nogroup:x:65534:\n");
    let files = [
        ("passwd", passwd),
        ("group", group),
        ("hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".to_owned()),
        ("nsswitch.conf", "passwd: files\ngroup: files\nhosts: files\n".to_owned()),
        ("empty", String::new()),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(failed)?;
        // Readable by a slot's user whatever the node's umask.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).map_err(failed)?;
    }
    Ok(())
}

/// Makes `fd` the child's descriptor `target`, open across exec.
fn pass_fd(fd: RawFd, target: RawFd) -> std::io::Result<()> {
    // SAFETY: dup2 and fcntl act on descriptors only.
    unsafe {
        if fd == target {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            return check(libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC));
        }
        check(libc::dup2(fd, target).min(0))
    }
}

/// Lowers `resource` to `value`, or to the hard limit already in force when
/// that is lower (only a privileged process may raise it); `None` leaves it.
fn set_limit(resource: libc::__rlimit_resource_t, value: Option<u64>) -> std::io::Result<()> {
    let Some(value) = value else { return Ok(()) };
    let mut current = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read or fill the struct they are given.
    unsafe {
        check(libc::getrlimit(resource, &mut current))?;
        let value = value.min(current.rlim_max);
        check(libc::setrlimit(resource, &libc::rlimit { rlim_cur: value, rlim_max: value }))
    }
}

fn check(code: libc::c_int) -> std::io::Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The sandbox the executor's own tests run in: bwrap, as whichever
    /// user runs the tests, with user ids apart from the integration tests'.
    pub(crate) fn sandbox(data: &Path) -> Arc<Sandbox> {
        let settings = SandboxSettings {
            kind: SandboxKind::Bwrap,
            hidden: vec![data.to_owned()],
            masked: Vec::new(),
            files: data.join("sandbox"),
            uid_base: 63_000,
            slots: 2,
            limits: RunLimits {
                cpu_s: 120,
                memory_bytes: 2 << 30,
                processes: 128,
                file_bytes: 1 << 30,
                scratch_bytes: 256 << 20,
            },
            cgroups: false,
        };
        Arc::new(Sandbox::new(settings).unwrap())
    }

    #[test]
    fn mode_names_the_users_and_the_limits() {
        let dir = tempfile::tempdir().unwrap();
        let s = sandbox(dir.path());
        // SAFETY: geteuid has no preconditions.
        let users = if unsafe { libc::geteuid() } == 0 { "per-slot" } else { "user-namespace" };
        assert_eq!(s.mode(), SandboxMode { kind: "bwrap", users, limits: "rlimits" });
        assert!(s.describe().contains("executor.cgroups = false"), "{}", s.describe());
        let passwd = std::fs::read_to_string(dir.path().join("sandbox/passwd")).unwrap();
        assert!(passwd.contains(":/tmp:/bin/sh"), "{passwd}");
    }
}
