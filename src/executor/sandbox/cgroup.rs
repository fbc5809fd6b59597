//! One cgroup per slot, so that a run's limits hold for the run as a whole —
//! every process and thread it starts, and the pages of its tmpfs mounts —
//! rather than per process as `setrlimit` does. Pure helper of the sandbox,
//! no actix inside.
//!
//! cgroup v2 is used where this node's cgroup offers the memory and pids
//! controllers and the node may enable them for children of its own
//! (`<own>/evalmesh-<pid>/slot-<n>`): as root, or in a subtree delegated to
//! its user. When the node's cgroup also holds other processes, the kernel
//! refuses (no internal processes), and so does this. Otherwise the v1
//! memory and pids hierarchies are used where the node may write them (as
//! root on a host that mounts them). Else there is none, and the node says
//! so at start.
//!
//! A command joins its slot's cgroup between fork and exec by writing `0`
//! to descriptors opened here once: `write` is async-signal-safe.
//!
//! A node killed outright leaves its cgroups behind; each node removes, at
//! start, those of nodes that are gone, so that they do not pile up.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

/// Which cgroup hierarchy holds the runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// What a slot's cgroup limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupLimits {
    pub memory_bytes: u64,
    pub processes: u64,
}

/// One cgroup (v2) or pair of cgroups (v1 memory and pids) per slot.
#[derive(Debug)]
pub struct SlotCgroups {
    version: CgroupVersion,
    /// Created here, removed in this order when the node stops.
    created: Vec<PathBuf>,
    /// Per slot: the open `cgroup.procs` files a child writes itself into.
    join: Vec<Vec<File>>,
    /// Per slot: the folders whose `cgroup.procs` list what is left of a run.
    dirs: Vec<Vec<PathBuf>>,
}

/// One line of /proc/self/mountinfo that mounts a cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    root: String,
    point: PathBuf,
    version: CgroupVersion,
    controllers: Vec<String>,
}

impl SlotCgroups {
    /// Creates one cgroup per slot with `limits`, trying v2 then v1.
    pub fn create(limits: CgroupLimits, slots: usize) -> Result<Self, String> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
        let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
        let mounts = parse_mounts(&mountinfo);
        let name = format!("evalmesh-{}", std::process::id());
        let v2 = match own_dir(&mounts, &own, CgroupVersion::V2, "") {
            Some(base) => create_v2(&base, &name, limits, slots),
            None => Err("no cgroup v2 hierarchy".to_owned()),
        };
        v2.or_else(|v2_error| {
            let memory = own_dir(&mounts, &own, CgroupVersion::V1, "memory");
            let pids = own_dir(&mounts, &own, CgroupVersion::V1, "pids");
            match (memory, pids) {
                (Some(memory), Some(pids)) => create_v1(&memory, &pids, &name, limits, slots),
                _ => Err(format!("{v2_error}; no cgroup v1 memory and pids hierarchies")),
            }
            .map_err(|v1_error| format!("cgroup v2: {v2_error}; cgroup v1: {v1_error}"))
        })
    }

    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The descriptors a child of `slot` writes `0` into to join its cgroups.
    pub fn join_fds(&self, slot: usize) -> Vec<RawFd> {
        self.join.get(slot).map(|files| files.iter().map(|f| f.as_raw_fd()).collect()).unwrap_or_default()
    }

    /// Kills whatever is left in `slot`'s cgroups: a run's processes all die
    /// with its PID namespace, so this only matters for the none sandbox.
    pub fn kill_all(&self, slot: usize) {
        for dir in self.dirs.get(slot).into_iter().flatten() {
            let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else { continue };
            for pid in procs.lines().filter_map(|l| l.trim().parse::<libc::pid_t>().ok()) {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

impl Drop for SlotCgroups {
    fn drop(&mut self) {
        for dir in self.created.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Writes `0` to each of `fds`: moves the calling process into those
/// cgroups. Called between fork and exec.
pub fn join(fds: &[RawFd]) -> std::io::Result<()> {
    for &fd in fds {
        // SAFETY: write reads one byte from a static buffer.
        if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } != 1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn create_v2(base: &Path, name: &str, limits: CgroupLimits, slots: usize) -> Result<SlotCgroups, String> {
    let controllers = read(&base.join("cgroup.controllers"))?;
    let offered: Vec<&str> = controllers.split_whitespace().collect();
    if !(offered.contains(&"memory") && offered.contains(&"pids")) {
        return Err(format!("{} does not offer the memory and pids controllers", base.display()));
    }
    let mut cgroups =
        SlotCgroups { version: CgroupVersion::V2, created: Vec::new(), join: Vec::new(), dirs: Vec::new() };
    remove_stale(base);
    write(&base.join("cgroup.subtree_control"), "+memory +pids")?;
    let top = base.join(name);
    make_dir(&top, &mut cgroups)?;
    write(&top.join("cgroup.subtree_control"), "+memory +pids")?;
    for slot in 0..slots {
        let dir = top.join(format!("slot-{slot}"));
        make_dir(&dir, &mut cgroups)?;
        write(&dir.join("memory.max"), &limits.memory_bytes.to_string())?;
        // No swap: the limit is on what the run holds, wherever it is.
        if dir.join("memory.swap.max").exists() {
            write(&dir.join("memory.swap.max"), "0")?;
        }
        write(&dir.join("pids.max"), &limits.processes.to_string())?;
        cgroups.join.push(vec![open_procs(&dir)?]);
        cgroups.dirs.push(vec![dir]);
    }
    Ok(cgroups)
}

fn create_v1(
    memory: &Path,
    pids: &Path,
    name: &str,
    limits: CgroupLimits,
    slots: usize,
) -> Result<SlotCgroups, String> {
    let mut cgroups =
        SlotCgroups { version: CgroupVersion::V1, created: Vec::new(), join: Vec::new(), dirs: Vec::new() };
    remove_stale(memory);
    remove_stale(pids);
    let (memory_top, pids_top) = (memory.join(name), pids.join(name));
    make_dir(&memory_top, &mut cgroups)?;
    make_dir(&pids_top, &mut cgroups)?;
    for slot in 0..slots {
        let (m, p) = (memory_top.join(format!("slot-{slot}")), pids_top.join(format!("slot-{slot}")));
        make_dir(&m, &mut cgroups)?;
        make_dir(&p, &mut cgroups)?;
        write(&m.join("memory.limit_in_bytes"), &limits.memory_bytes.to_string())?;
        // Only where swap accounting is on; the limit on memory alone holds anyway.
        let _ = write(&m.join("memory.memsw.limit_in_bytes"), &limits.memory_bytes.to_string());
        write(&p.join("pids.max"), &limits.processes.to_string())?;
        cgroups.join.push(vec![open_procs(&m)?, open_procs(&p)?]);
        cgroups.dirs.push(vec![m, p]);
    }
    Ok(cgroups)
}

/// Removes the `evalmesh-<pid>` cgroups under `parent` whose node is gone.
/// A cgroup that still holds a process is left: the kernel refuses to
/// remove it.
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("evalmesh-")).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let top = entry.path();
        if let Ok(slots) = std::fs::read_dir(&top) {
            for slot in slots.flatten().filter(|s| s.file_name().to_string_lossy().starts_with("slot-")) {
                let _ = std::fs::remove_dir(slot.path());
            }
        }
        let _ = std::fs::remove_dir(&top);
    }
}

fn make_dir(dir: &Path, cgroups: &mut SlotCgroups) -> Result<(), String> {
    std::fs::create_dir(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    cgroups.created.push(dir.to_owned());
    Ok(())
}

fn open_procs(dir: &Path) -> Result<File, String> {
    let path = dir.join("cgroup.procs");
    std::fs::OpenOptions::new().write(true).open(&path).map_err(|e| format!("opening {}: {e}", path.display()))
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    let mut file =
        std::fs::OpenOptions::new().write(true).open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(value.as_bytes()).map_err(|e| format!("writing {value} to {}: {e}", path.display()))
}

/// The cgroup mounts of /proc/self/mountinfo.
fn parse_mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fields: Vec<&str> = left.split(' ').collect();
            let theirs: Vec<&str> = right.split(' ').collect();
            let (root, point) = (fields.get(3)?, fields.get(4)?);
            let version = match *theirs.first()? {
                "cgroup2" => CgroupVersion::V2,
                "cgroup" => CgroupVersion::V1,
                _ => return None,
            };
            let controllers = theirs.get(2).map(|o| o.split(',').map(str::to_owned).collect()).unwrap_or_default();
            Some(Mount { root: (*root).to_owned(), point: PathBuf::from(point), version, controllers })
        })
        .collect()
}

/// This process's own cgroup folder in the hierarchy of `controller` (v1),
/// or in the unified hierarchy (v2), from /proc/self/cgroup.
fn own_dir(mounts: &[Mount], own: &str, version: CgroupVersion, controller: &str) -> Option<PathBuf> {
    let path = own.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (id, list, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = match version {
            CgroupVersion::V2 => id == "0" && list.is_empty(),
            CgroupVersion::V1 => list.split(',').any(|c| c == controller),
        };
        matches.then(|| path.to_owned())
    })?;
    let mount = mounts.iter().find(|m| {
        m.version == version && (version == CgroupVersion::V2 || m.controllers.iter().any(|c| c == controller))
    })?;
    let relative = path.strip_prefix(mount.root.as_str()).unwrap_or(&path).trim_start_matches('/');
    Some(if relative.is_empty() { mount.point.clone() } else { mount.point.join(relative) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hybrid host such as this one: v1 controllers, and a v2 hierarchy
    /// with none of them.
    const MOUNTINFO: &str = "\
25 24 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
30 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
31 25 0:27 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
32 25 0:28 /inner /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
40 24 0:30 / /proc rw - proc proc rw";

    const OWN: &str = "8:pids:/\n4:memory:/process_api/abc\n0::/inner/svc\n";

    #[test]
    fn finds_the_own_folder_in_each_hierarchy() {
        let mounts = parse_mounts(MOUNTINFO);
        assert_eq!(mounts.len(), 3);
        assert_eq!(
            own_dir(&mounts, OWN, CgroupVersion::V1, "memory"),
            Some(PathBuf::from("/sys/fs/cgroup/memory/process_api/abc"))
        );
        assert_eq!(own_dir(&mounts, OWN, CgroupVersion::V1, "pids"), Some(PathBuf::from("/sys/fs/cgroup/pids")));
        // A cgroup namespace shows paths below the mount's root.
        assert_eq!(own_dir(&mounts, OWN, CgroupVersion::V2, ""), Some(PathBuf::from("/sys/fs/cgroup/unified/svc")));
        assert_eq!(own_dir(&mounts, OWN, CgroupVersion::V1, "cpu"), None);
    }

    /// cgroup v2 cannot be exercised on a host without its controllers; a
    /// folder of plain files stands in for the hierarchy. It checks what is
    /// written where, not what the kernel makes of it.
    #[test]
    fn v2_needs_memory_and_pids_and_enables_them_for_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        let limits = CgroupLimits { memory_bytes: 1 << 30, processes: 64 };
        std::fs::write(base.join("cgroup.controllers"), "cpu io\n").unwrap();
        assert!(create_v2(base, "x", limits, 1).unwrap_err().contains("does not offer"));
        std::fs::write(base.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        std::fs::write(base.join("cgroup.subtree_control"), "").unwrap();
        // A plain folder gets no control files: the fake ends there.
        let err = create_v2(base, "x", limits, 1).unwrap_err();
        assert!(err.contains("x/cgroup.subtree_control"), "{err}");
        assert_eq!(std::fs::read_to_string(base.join("cgroup.subtree_control")).unwrap(), "+memory +pids");
    }

    /// With the real hierarchy, where this process may write it (root on a
    /// host that mounts the controllers): a child joins its slot's cgroups,
    /// and the cgroups go with the value.
    #[test]
    fn a_child_joins_its_slot_and_the_cgroups_go_on_drop() {
        let limits = CgroupLimits { memory_bytes: 256 << 20, processes: 32 };
        let cgroups = match SlotCgroups::create(limits, 2) {
            Ok(cgroups) => cgroups,
            Err(e) => {
                eprintln!("skipped: no cgroup can be created here ({e})");
                return;
            }
        };
        let fds = cgroups.join_fds(1);
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("30");
        // SAFETY: join only calls write.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || join(&fds));
        }
        let mut child = cmd.spawn().unwrap();
        for dir in &cgroups.dirs[1] {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
            assert_eq!(procs.trim(), child.id().to_string(), "{}", dir.display());
        }
        let limit_file = match cgroups.version() {
            CgroupVersion::V1 => "memory.limit_in_bytes",
            CgroupVersion::V2 => "memory.max",
        };
        let memory_dir = &cgroups.dirs[1][0];
        assert_eq!(std::fs::read_to_string(memory_dir.join(limit_file)).unwrap().trim(), (256u64 << 20).to_string());
        cgroups.kill_all(1);
        child.wait().unwrap();
        let created = cgroups.created.clone();
        drop(cgroups);
        assert!(created.iter().all(|d| !d.exists()), "cgroups left behind");
    }

    #[test]
    fn the_cgroups_of_gone_nodes_are_removed_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        // No process has a pid this high (the kernel's limit is 2^22).
        let gone = dir.path().join("evalmesh-99999999");
        let alive = dir.path().join(format!("evalmesh-{}", std::process::id()));
        let other = dir.path().join("someone-else");
        for d in [gone.join("slot-0"), gone.join("slot-1"), alive.join("slot-0"), other.clone()] {
            std::fs::create_dir_all(d).unwrap();
        }
        remove_stale(dir.path());
        assert!(!gone.exists());
        assert!(alive.join("slot-0").exists() && other.exists());
    }
}
