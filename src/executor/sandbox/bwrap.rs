//! bwrap's command line for one sandboxed command. Pure: the host's layout
//! is read once by [`SystemLayout::discover`], and [`args`] only assembles.
//!
//! The sandbox's root is an empty tmpfs into which only what Python and the
//! project's environment need is mounted: `/usr` and the merged-usr links or
//! folders beside it, read-only; a short list of `/etc` entries (the dynamic
//! loader's cache, time zone, certificates, alternatives, fonts, Python's
//! own); `/etc/passwd`, `group`, `hosts` and `nsswitch.conf` written by the
//! node; the interpreter's installation and the environment, read-only; a
//! fresh `/proc`, a minimal `/dev`; and size-capped tmpfs mounts for `/tmp`
//! (also `HOME`), `/dev/shm` and the run's private folders. The node's data
//! folder, its config and every home folder are simply absent.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// What a sandboxed command sees of the host, besides the system.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The working folder, as seen inside.
    pub cwd: PathBuf,
    /// The command's whole environment besides PATH, HOME and LANG.
    pub env: Vec<(String, OsString)>,
    /// Shown read-only at the same path.
    pub readable: Vec<PathBuf>,
    /// Shown read-only elsewhere: `(host path, path inside)`.
    pub renamed: Vec<(PathBuf, PathBuf)>,
    /// Shown writable at the same path (an environment being built).
    pub writable: Vec<PathBuf>,
    /// Empty writable tmpfs mounts, each at most the scratch size plus
    /// `private_room` (the run's copy of the project).
    pub private: Vec<PathBuf>,
    /// What the private mounts hold before the run writes anything (the
    /// project's own files), so that the scratch size bounds what the run
    /// writes, whatever the size of the project.
    pub private_room: u64,
    /// An install: it keeps every limit but the per-process address space,
    /// of which installers such as uv reserve more than a test run needs.
    pub install: bool,
}

/// How a run becomes unprivileged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// bwrap runs as root without a user namespace, then `setpriv` makes the
    /// run this user and group, with no capabilities and no way to get any.
    SetPriv { uid: u32, gid: u32 },
    /// bwrap, run by an ordinary user, makes an unprivileged user namespace.
    UserNamespace,
}

/// The system part of the sandbox, read from the host once.
#[derive(Debug, Clone, Default)]
pub struct SystemLayout {
    /// `(link target, path)` for merged-usr links such as `/bin -> usr/bin`.
    pub links: Vec<(PathBuf, PathBuf)>,
    /// Folders shown read-only at the same path.
    pub folders: Vec<PathBuf>,
    /// `/etc` entries shown read-only.
    pub etc: Vec<PathBuf>,
    /// The node's own `/etc/passwd`, `group`, `hosts`, `nsswitch.conf`,
    /// shown at `/etc/<name>`.
    pub written: Vec<(PathBuf, &'static str)>,
}

/// Top-level system folders: shown as links where the host has links.
const SYSTEM: [&str; 7] = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];
/// `/etc` entries that Python and common libraries read.
const ETC: [&str; 13] = [
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "ssl",
    "ca-certificates",
    "alternatives",
    "fonts",
    "mime.types",
    "os-release",
    "protocols",
    "services",
];
/// The files the node writes for runs.
pub const WRITTEN: [&str; 4] = ["passwd", "group", "hosts", "nsswitch.conf"];

impl SystemLayout {
    /// Reads which system folders and `/etc` entries this host has;
    /// `written` is the folder holding the node's own `/etc` files.
    pub fn discover(written: &Path) -> Self {
        let mut layout = SystemLayout::default();
        for path in SYSTEM.map(PathBuf::from) {
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    if let Ok(target) = std::fs::read_link(&path) {
                        layout.links.push((target, path));
                    }
                }
                Ok(meta) if meta.is_dir() => layout.folders.push(path),
                _ => {}
            }
        }
        layout.etc = ETC.iter().map(|n| Path::new("/etc").join(n)).filter(|p| p.exists()).collect();
        // Debian's Python reads /etc/python3.x (sitecustomize); there may be several.
        if let Ok(entries) = std::fs::read_dir("/etc") {
            let mut pythons: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("python"))
                .map(|e| e.path())
                .collect();
            pythons.sort();
            layout.etc.extend(pythons);
        }
        layout.written = WRITTEN.iter().map(|name| (written.join(name), *name)).collect();
        layout
    }

    /// True when `path` lies in a system folder already shown.
    fn covers(&self, path: &Path) -> bool {
        self.folders.iter().any(|f| path.starts_with(f))
    }
}

/// Sizes of the writable tmpfs mounts.
#[derive(Debug, Clone, Copy)]
pub struct Scratch {
    pub bytes: u64,
}

/// bwrap's arguments, in the order that matters: the system, what is hidden
/// inside it, what is shown again, then the writable mounts; `identity`'s
/// part comes last, just before the program.
pub fn args(
    layout: &SystemLayout,
    spec: &Spec,
    identity: Identity,
    hidden: &[PathBuf],
    masked: &[(PathBuf, PathBuf)],
    scratch: Scratch,
    base_env: &[(&str, OsString)],
) -> Vec<OsString> {
    let mut a = Args::default();
    a.flags(&["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try", "--unshare-net"]);
    if identity == Identity::UserNamespace {
        // No nested namespaces: the kernel's user-namespace code is the
        // sandbox's largest attack surface.
        a.flags(&["--unshare-user", "--disable-userns"]);
    }
    a.flags(&["--die-with-parent", "--new-session"]);
    for folder in &layout.folders {
        a.pair("--ro-bind", folder, folder);
    }
    for (target, link) in &layout.links {
        a.pair("--symlink", target, link);
    }
    // bwrap, run as root, would make /etc readable by root alone.
    a.flags(&["--perms", "0755", "--dir", "/etc"]);
    a.1.push(PathBuf::from("/etc"));
    for entry in &layout.etc {
        a.pair("--ro-bind", entry, entry);
    }
    for (file, name) in &layout.written {
        a.pair("--ro-bind", file, &Path::new("/etc").join(name));
    }
    // What would be shown inside a system folder but must not be: a data
    // folder or config under /usr, say.
    for dir in hidden.iter().filter(|d| layout.covers(d)) {
        a.pair_one("--tmpfs", dir);
    }
    for (empty, file) in masked.iter().filter(|(_, f)| layout.covers(f)) {
        a.pair("--ro-bind", empty, file);
    }
    a.flags(&["--proc", "/proc", "--dev", "/dev"]);
    a.1.extend([PathBuf::from("/proc"), PathBuf::from("/dev")]);
    a.tmpfs("/tmp", 0o1777, scratch.bytes);
    a.tmpfs("/dev/shm", 0o1777, scratch.bytes);
    let cpu = Path::new("/sys/devices/system/cpu");
    if cpu.is_dir() {
        a.parents(layout, cpu);
        a.pair("--ro-bind", cpu, cpu);
    }
    for dir in &spec.readable {
        a.parents(layout, dir);
        a.pair("--ro-bind", dir, dir);
    }
    for (host, inside) in &spec.renamed {
        a.parents(layout, inside);
        a.pair("--ro-bind", host, inside);
    }
    for dir in &spec.writable {
        a.parents(layout, dir);
        a.pair("--bind", dir, dir);
    }
    for dir in &spec.private {
        a.parents(layout, dir);
        a.tmpfs(dir, 0o777, scratch.bytes.saturating_add(spec.private_room));
    }
    // The root and /dev are tmpfs mounts of bwrap's, which in a user
    // namespace belong to the run's user: left writable, they would take
    // files past every size cap, and keep them for a fork server's next
    // child. Only the mounts above stay writable.
    a.flags(&["--remount-ro", "/dev", "--remount-ro", "/"]);
    a.pair_one("--chdir", &spec.cwd);
    a.flags(&["--clearenv"]);
    for (key, value) in base_env.iter().map(|(k, v)| (*k, v)).chain(spec.env.iter().map(|(k, v)| (k.as_str(), v))) {
        a.0.extend([OsString::from("--setenv"), OsString::from(key), value.clone()]);
    }
    if let Identity::SetPriv { uid, gid } = identity {
        // Only what `setpriv` needs to become the run's user.
        a.flags(&["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--"]);
        let (uid, gid) = (uid.to_string(), gid.to_string());
        a.flags(&["setpriv", "--reuid", &uid, "--regid", &gid, "--clear-groups", "--inh-caps=-all"]);
        a.flags(&["--bounding-set=-all", "--no-new-privs"]);
    }
    a.flags(&["--"]);
    a.0.push(spec.program.clone().into_os_string());
    a.0.extend(spec.args.iter().cloned());
    a.0
}

#[derive(Default)]
struct Args(Vec<OsString>, Vec<PathBuf>);

impl Args {
    fn flags(&mut self, flags: &[&str]) {
        self.0.extend(flags.iter().map(OsString::from));
    }

    fn pair(&mut self, flag: &str, from: &Path, to: &Path) {
        self.0.extend([OsString::from(flag), from.as_os_str().to_owned(), to.as_os_str().to_owned()]);
    }

    fn pair_one(&mut self, flag: &str, path: &Path) {
        self.0.extend([OsString::from(flag), path.as_os_str().to_owned()]);
    }

    fn tmpfs(&mut self, path: impl AsRef<Path>, mode: u32, size: u64) {
        self.0.extend(["--perms".into(), format!("{mode:o}").into(), "--size".into(), size.to_string().into()]);
        self.pair_one("--tmpfs", path.as_ref());
        // A mount point of ours: never made again as a plain folder.
        self.1.push(path.as_ref().to_owned());
    }

    /// Makes the folders leading to `dir` traversable by the run's user:
    /// bwrap would create them readable by root alone.
    fn parents(&mut self, layout: &SystemLayout, dir: &Path) {
        let mut ancestors: Vec<&Path> =
            dir.ancestors().skip(1).filter(|a| *a != Path::new("/") && !layout.covers(a)).collect();
        ancestors.reverse();
        for ancestor in ancestors {
            if !self.1.iter().any(|done| done == ancestor) {
                self.1.push(ancestor.to_owned());
                self.0.extend(["--perms", "0755", "--dir"].map(OsString::from));
                self.0.push(ancestor.as_os_str().to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> SystemLayout {
        SystemLayout {
            links: vec![(PathBuf::from("usr/bin"), PathBuf::from("/bin"))],
            folders: vec![PathBuf::from("/usr")],
            etc: vec![PathBuf::from("/etc/ld.so.cache")],
            written: WRITTEN.iter().map(|n| (Path::new("/data/sandbox").join(n), *n)).collect(),
        }
    }

    fn text(args: &[OsString]) -> String {
        args.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
    }

    fn spec() -> Spec {
        Spec {
            program: PathBuf::from("/envs/e/bin/python"),
            args: vec!["-c".into(), "pass".into()],
            cwd: PathBuf::from("/project"),
            env: vec![("A".into(), "1".into())],
            readable: vec![PathBuf::from("/root/.pyenv/versions/3.11"), PathBuf::from("/data/envs/e")],
            writable: Vec::new(),
            private: vec![PathBuf::from("/project")],
            private_room: 20,
            renamed: vec![(PathBuf::from("/data/evaluations/e/p"), PathBuf::from("/evalmesh/base"))],
            install: false,
        }
    }

    #[test]
    fn a_run_sees_the_system_its_files_and_nothing_of_the_node() {
        let base = [("HOME", OsString::from("/tmp"))];
        let hidden = [PathBuf::from("/data"), PathBuf::from("/usr/local/evalmesh")];
        let masked = [(PathBuf::from("/data/empty"), PathBuf::from("/etc/evalmesh/node.toml"))];
        let a =
            text(&args(&layout(), &spec(), Identity::UserNamespace, &hidden, &masked, Scratch { bytes: 100 }, &base));
        assert!(a.starts_with("--unshare-ipc --unshare-pid --unshare-uts --unshare-cgroup-try --unshare-net --unshare-user --disable-userns --die-with-parent --new-session --ro-bind /usr /usr --symlink usr/bin /bin --perms 0755 --dir /etc --ro-bind /etc/ld.so.cache /etc/ld.so.cache --ro-bind /data/sandbox/passwd /etc/passwd"), "{a}");
        assert!(a.contains("--tmpfs /usr/local/evalmesh"), "what lies in a shown folder is hidden: {a}");
        assert!(!a.contains("--tmpfs /data "), "what is not shown needs no hiding: {a}");
        assert!(!a.contains("node.toml"), "{a}");
        assert!(a.contains("--perms 1777 --size 100 --tmpfs /tmp --perms 1777 --size 100 --tmpfs /dev/shm"), "{a}");
        assert!(a.contains("--perms 0755 --dir /root --perms 0755 --dir /root/.pyenv --perms 0755 --dir /root/.pyenv/versions --ro-bind /root/.pyenv/versions/3.11 /root/.pyenv/versions/3.11"), "{a}");
        assert!(
            a.contains("--perms 0755 --dir /data --perms 0755 --dir /data/envs --ro-bind /data/envs/e /data/envs/e"),
            "{a}"
        );
        assert!(a.contains("--perms 0755 --dir /evalmesh --ro-bind /data/evaluations/e/p /evalmesh/base"), "{a}");
        assert!(!a.contains("--dir /data/evaluations"), "the way to the node's copy is not shown: {a}");
        assert!(a.contains("--perms 777 --size 120 --tmpfs /project --remount-ro /dev --remount-ro / --chdir /project --clearenv --setenv HOME /tmp --setenv A 1 -- /envs/e/bin/python -c pass"), "{a}");
        assert!(!a.contains("setpriv"), "{a}");
    }

    #[test]
    fn as_root_the_run_becomes_its_slots_user_and_an_install_writes_its_environment() {
        let mut install = spec();
        install.writable = vec![PathBuf::from("/data/envs/new")];
        install.private.clear();
        let identity = Identity::SetPriv { uid: 61001, gid: 61000 };
        let a = text(&args(&layout(), &install, identity, &[], &[], Scratch { bytes: 100 }, &[]));
        assert!(a.contains("--unshare-net") && !a.contains("--unshare-user"), "{a}");
        assert!(a.contains("--ro-bind /data/sandbox/passwd /etc/passwd"), "{a}");
        assert!(a.contains("--bind /data/envs/new /data/envs/new"), "{a}");
        assert!(a.ends_with("--cap-add CAP_SETUID --cap-add CAP_SETGID -- setpriv --reuid 61001 --regid 61000 --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs -- /envs/e/bin/python -c pass"), "{a}");
    }
}
