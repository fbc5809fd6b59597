//! The sandbox around every pytest run: student code runs under bubblewrap
//! (`bwrap`) with the system read-only; the node's data folder, its config
//! and the home folders hidden; only the project folder and the run's
//! scratch folder writable; a private `/tmp`; no network (a network namespace
//! of its own, with only a loopback of its own); a PID namespace whose
//! processes all die when the run ends or the node dies; and `setrlimit`
//! limits on CPU time, address space, processes and file size. Pure helper
//! of the executor, no actix inside.
//!
//! bwrap runs as root without a user namespace, mounts what the run needs,
//! and `setpriv` then makes the run a user of its own with no capabilities
//! and no way to gain one. Each concurrent run gets a user id from a pool of
//! one per slot, all in one group: the kernel counts the process limit per
//! user (and never for root), so a fork bomb exhausts only its own run's
//! allowance, and the group lets every run write the folders the node
//! prepares for it.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use std::process::Command;

/// Which sandbox runs the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxKind {
    Bwrap,
    /// No isolation: only for machines where bwrap cannot run, chosen
    /// explicitly. The limits still apply, except the process count, which
    /// the kernel does not enforce on root.
    None,
}

/// Per-run limits, enforced by the kernel with `setrlimit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    pub cpu_s: u64,
    pub memory_bytes: u64,
    pub processes: u64,
    pub file_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct SandboxSettings {
    pub kind: SandboxKind,
    /// Folders replaced by an empty one inside the sandbox.
    pub hidden: Vec<PathBuf>,
    /// Files replaced by an empty one inside the sandbox (the config).
    pub masked: Vec<PathBuf>,
    /// An empty regular file, mounted over the masked ones: a device such as
    /// /dev/null cannot be opened through bwrap's `nodev` bind mounts.
    pub empty: PathBuf,
    /// The first of the runs' user ids, also their group id.
    pub uid_base: u32,
    /// How many runs at once: one user id each.
    pub slots: usize,
    pub limits: RunLimits,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("bwrap cannot start a sandbox here ({0}); install bubblewrap, or set executor.sandbox = \"none\" to run tests without isolation")]
    Unavailable(String),
    #[error("every sandbox user id is taken: more runs than slots")]
    NoUid,
    #[error("preparing {path} for the sandbox: {source}")]
    Prepare { path: PathBuf, source: std::io::Error },
}

/// What one sandboxed command sees besides the read-only system.
#[derive(Debug, Clone, Default)]
pub struct Mounts {
    /// Visible read-only even inside a hidden folder (the environment).
    pub readable: Vec<PathBuf>,
    /// Visible and writable by the run (the project, the scratch folder).
    pub writable: Vec<PathBuf>,
}

/// A user id of the pool, given back when dropped.
pub struct Lease {
    uid: u32,
    pool: Arc<Mutex<Vec<u32>>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.lock().expect("no code panics while holding this lock").push(self.uid);
    }
}

pub struct Sandbox {
    settings: SandboxSettings,
    free: Arc<Mutex<Vec<u32>>>,
}

impl Sandbox {
    pub fn new(settings: SandboxSettings) -> Self {
        let count = u32::try_from(settings.slots).unwrap_or(u32::MAX);
        let free = (settings.uid_base..settings.uid_base.saturating_add(count)).rev().collect();
        Self { settings, free: Arc::new(Mutex::new(free)) }
    }

    pub fn kind(&self) -> SandboxKind {
        self.settings.kind
    }

    /// Runs `python -c pass` in a sandbox as a test run would, so that a
    /// node that cannot isolate tests says so at start instead of at the
    /// first evaluation. `readable` holds what the interpreter needs. Blocks:
    /// it runs once, before the node serves.
    pub fn check(&self, python: &Path, readable: Vec<PathBuf>) -> Result<(), SandboxError> {
        if self.settings.kind == SandboxKind::None {
            return Ok(());
        }
        let mounts = Mounts { readable, writable: Vec::new() };
        let (mut cmd, _lease) =
            self.command(python, &[OsString::from("-c"), OsString::from("pass")], Path::new("/"), &[], &mounts)?;
        let out =
            cmd.stdin(std::process::Stdio::null()).output().map_err(|e| SandboxError::Unavailable(e.to_string()))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(SandboxError::Unavailable(stderr.trim().chars().take(500).collect()))
    }

    /// Builds the command that runs `program args` in `cwd` inside the
    /// sandbox, with `env` as its whole environment besides PATH, HOME and
    /// LANG. The writable folders are handed to the run's group first.
    pub fn command(
        &self,
        program: &Path,
        args: &[OsString],
        cwd: &Path,
        env: &[(&str, OsString)],
        mounts: &Mounts,
    ) -> Result<(Command, Lease), SandboxError> {
        let lease = self.lease()?;
        let limits = self.settings.limits;
        let mut cmd = match self.settings.kind {
            SandboxKind::None => {
                let mut cmd = Command::new(program);
                cmd.args(args).current_dir(cwd).env_clear().envs(base_env()).envs(env.iter().cloned());
                cmd
            }
            SandboxKind::Bwrap => {
                for dir in &mounts.writable {
                    share_with_group(dir, self.settings.uid_base)?;
                }
                let mut cmd = Command::new("bwrap");
                cmd.args(bwrap_args(&self.settings, mounts, cwd, env))
                    .args(drop_to(lease.uid, self.settings.uid_base))
                    .arg(program)
                    .args(args);
                cmd
            }
        };
        // SAFETY: between fork and exec only setrlimit is called, which is
        // async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                set_limit(libc::RLIMIT_CPU, limits.cpu_s)?;
                set_limit(libc::RLIMIT_AS, limits.memory_bytes)?;
                set_limit(libc::RLIMIT_NPROC, limits.processes)?;
                set_limit(libc::RLIMIT_FSIZE, limits.file_bytes)?;
                set_limit(libc::RLIMIT_CORE, 0)
            });
        }
        Ok((cmd, lease))
    }

    fn lease(&self) -> Result<Lease, SandboxError> {
        let uid = self.free.lock().expect("no code panics while holding this lock").pop().ok_or(SandboxError::NoUid)?;
        Ok(Lease { uid, pool: self.free.clone() })
    }
}

/// The environment every run starts from.
fn base_env() -> [(&'static str, &'static str); 3] {
    [("PATH", "/usr/local/bin:/usr/bin:/bin"), ("HOME", "/tmp"), ("LANG", "C.UTF-8")]
}

/// bwrap's arguments, in the order that matters: the system, then the
/// hidden folders over it, then what is shown again inside them. bwrap runs
/// as root, without a user namespace, so that it can mount what the run's
/// user could not reach (an interpreter in root's home) and so that the run
/// is a real user of its own, to whom the kernel applies the process limit
/// (it never applies it to root, nor to root mapped into a namespace).
fn bwrap_args(settings: &SandboxSettings, mounts: &Mounts, cwd: &Path, env: &[(&str, OsString)]) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--perms",
        "1777",
        "--tmpfs",
        "/tmp",
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    let hidden: Vec<&PathBuf> = settings.hidden.iter().filter(|d| d.is_dir()).collect();
    for dir in &hidden {
        args.extend([OsString::from("--tmpfs"), dir.as_os_str().to_owned()]);
    }
    // bwrap makes the folders leading to a mount point inside a tmpfs
    // readable by root alone: open them to the run's user, in order.
    let tmpfs: Vec<&Path> = hidden.iter().map(|d| d.as_path()).chain([Path::new("/tmp")]).collect();
    let mut opened: Vec<&Path> = Vec::new();
    for dir in mounts.readable.iter().chain(&mounts.writable).chain(&settings.masked) {
        let mut ancestors: Vec<&Path> =
            dir.ancestors().skip(1).filter(|a| tmpfs.iter().any(|t| a.starts_with(t) && a != t)).collect();
        ancestors.reverse();
        for ancestor in ancestors {
            if !opened.contains(&ancestor) {
                opened.push(ancestor);
                args.extend(["--perms", "0755", "--dir"].map(OsString::from));
                args.push(ancestor.as_os_str().to_owned());
            }
        }
    }
    let mut pair = |flag: &str, from: &Path, to: &Path| {
        args.extend([OsString::from(flag), from.as_os_str().to_owned(), to.as_os_str().to_owned()]);
    };
    for file in settings.masked.iter().filter(|f| f.is_file()) {
        pair("--ro-bind", &settings.empty, file);
    }
    for dir in &mounts.readable {
        pair("--ro-bind", dir, dir);
    }
    for dir in &mounts.writable {
        pair("--bind", dir, dir);
    }
    // Only what `setpriv` needs to become the run's user.
    for cap in ["CAP_SETUID", "CAP_SETGID"] {
        args.extend([OsString::from("--cap-add"), OsString::from(cap)]);
    }
    args.extend([OsString::from("--chdir"), cwd.as_os_str().to_owned(), OsString::from("--clearenv")]);
    let base = base_env().map(|(k, v)| (k, OsString::from(v)));
    for (key, value) in base.iter().cloned().chain(env.iter().cloned()) {
        args.extend([OsString::from("--setenv"), OsString::from(key), value]);
    }
    args
}

/// Inside the sandbox, `setpriv` becomes the run's user with no
/// capabilities left, none to inherit, and no way to gain any back.
fn drop_to(uid: u32, gid: u32) -> Vec<OsString> {
    let (uid, gid) = (uid.to_string(), gid.to_string());
    let args = [
        "--",
        "setpriv",
        "--reuid",
        &uid,
        "--regid",
        &gid,
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ];
    args.into_iter().map(OsString::from).collect()
}

fn set_limit(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let limit = libc::rlimit { rlim_cur: value, rlim_max: value };
    // SAFETY: setrlimit reads the struct it is given and nothing else.
    check(unsafe { libc::setrlimit(resource, &limit) })
}

fn check(code: libc::c_int) -> std::io::Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Hands `dir` and everything under it to group `gid`, writable by the
/// group. Symbolic links are left alone: following one would change
/// whatever a student's link points at.
fn share_with_group(dir: &Path, gid: u32) -> Result<(), SandboxError> {
    let failed = |path: &Path, source| SandboxError::Prepare { path: path.to_owned(), source };
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(|e| failed(&path, e))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        std::os::unix::fs::lchown(&path, None, Some(gid)).map_err(|e| failed(&path, e))?;
        let mode = meta.permissions().mode() | 0o060 | if meta.is_dir() { 0o010 } else { 0 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(|e| failed(&path, e))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(|e| failed(&path, e))? {
                stack.push(entry.map_err(|e| failed(&path, e))?.path());
            }
        }
    }
    Ok(())
}
