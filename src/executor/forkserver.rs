//! Warm pytest processes: fork servers (`forkserver.py`), two per slot, each
//! serving the environment it was started in, and forking a fresh child for
//! every collection and every module. Pure helper of the executor, no actix
//! inside.
//!
//! A server imports pytest and its plugins once; each child then pays only
//! for its own run. Isolation stays what a fresh process gives: a child sees
//! only its own project — the server's read-only `/evalmesh/base` holds
//! hard links to one project's files at a time, swapped by the node between
//! children — and a server runs one child at a time, after which it kills
//! every process left in its PID namespace and empties its writable
//! folders. A server runs in a slot of its own (user and cgroup), apart
//! from the slots of installs and fresh runs.
//!
//! The node talks to a server over a `SOCK_SEQPACKET` socket: one JSON
//! request a message, with the child's results pipe and output pipe passed
//! as descriptors, and one JSON answer when the child has gone. A server
//! that dies, or does not answer in time, is killed and its run reported
//! lost; the caller runs it again in a fresh process.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::envs::Env;
use super::process::{self, kill_group};
use super::sandbox::{Lease, Sandbox, SandboxKind, Spec};

/// The fork server, written into the node's sandbox folder at start.
pub const FORKSERVER_SOURCE: &str = include_str!("forkserver.py");
/// How long past a run's own time-out the node waits for the server's
/// answer: the server kills the child at the time-out and then cleans up.
const ANSWER_MARGIN: Duration = Duration::from_secs(10);
/// The room a server's project folder has beyond the scratch size and the
/// project it starts for, so that projects a little larger share it. Each
/// child takes what its own project leaves of it as ballast.
const ROOM_SLACK: u64 = 8 << 20;

/// How servers are kept.
#[derive(Debug, Clone, Copy)]
pub struct ForkSettings {
    /// Runs a server forks before it is replaced.
    pub max_runs: u32,
    /// A server without a run for this long is stopped.
    pub idle: Duration,
    /// How long a server may take to import pytest and say it is ready.
    pub start_timeout: Duration,
    /// Whether runs of a module may be forked from a zygote (`forkserver.py`).
    pub zygote: bool,
}

/// What the server is asked to run.
#[derive(Debug, Serialize)]
pub struct Request<'a> {
    /// `collect`, `run` or `compile`, as the launcher takes it.
    pub mode: &'a str,
    /// The project as the child sees it, read-only, and its private copy.
    pub base: &'a Path,
    pub project: &'a Path,
    pub args: &'a [OsString],
    /// Seconds.
    pub timeout: f64,
    /// For a run of one module, the folder it is in: the runs of a project's
    /// modules of one folder may be forked from one zygote (see
    /// `ForkServers::zygotes`).
    pub group: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum Answer {
    Ready { forkable: bool },
    Exit { status: Option<i32>, timed_out: bool, clean: bool },
}

/// How a child ended, as its server saw it, with what it sent.
#[derive(Debug)]
pub struct ChildRun {
    /// Its exit code; none when a signal ended it.
    pub code: Option<i32>,
    pub timed_out: bool,
    pub output: String,
    pub results: Vec<u8>,
    pub elapsed: Duration,
}

/// Why a server cannot run something: the caller runs it in a fresh process.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("starting the fork server: {0}")]
    Start(std::io::Error),
    #[error("the fork server ended or stopped answering")]
    Lost,
    /// Importing the environment's plugins started a thread, which a fork
    /// would not carry over.
    #[error("the environment's pytest plugins start threads at import")]
    Unforkable,
    #[error("{context}: {source}")]
    Io { context: &'static str, source: std::io::Error },
}

/// What a server is for: an environment, by its interpreter, and the
/// distributions whose pytest plugins its runs may load (none: all), since
/// the server imports those plugins before it forks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Serving {
    pub python: PathBuf,
    pub plugins: Option<Vec<String>>,
}

impl Serving {
    pub fn of(env: &Env) -> Self {
        Self { python: env.python.clone(), plugins: env.plugins.clone() }
    }
}

/// One running server.
pub struct ForkServer {
    process: tokio::process::Child,
    control: AsyncFd<OwnedFd>,
    /// Its slot: dropped (and cleaned) with it.
    lease: Lease,
    serving: Serving,
    /// Project bytes its private folder holds beyond the scratch size.
    room: u64,
    runs: u32,
    last_used: Instant,
    /// The host folder shown at `/evalmesh/base`, and which project it
    /// mirrors now, and whether with its bytecode; none without a sandbox,
    /// where the child reads the project where it is.
    mirror: Option<PathBuf>,
    mirrored: Option<(PathBuf, bool)>,
}

impl ForkServer {
    /// Starts a server in `spec` (its program and files; the control socket
    /// becomes its descriptor 3) and waits until it is ready.
    async fn start(
        sandbox: &Sandbox,
        spec: &Spec,
        lease: Lease,
        serving: &Serving,
        room: u64,
        mirror: Option<PathBuf>,
        timeout: Duration,
    ) -> Result<Self, ServerError> {
        let (node_end, server_end) = seqpacket_pair().map_err(ServerError::Start)?;
        let mut cmd = tokio::process::Command::from(sandbox.command(spec, &lease, Some(server_end.as_raw_fd())));
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        let process = cmd.spawn().map_err(ServerError::Start)?;
        drop(server_end);
        // SAFETY: the AsyncFd owns the descriptor, open until it drops.
        let control = unsafe { AsyncFd::register(node_end) }.map_err(|e| ServerError::Start(e.into()))?;
        let server = Self {
            process,
            control,
            lease,
            serving: serving.clone(),
            room,
            runs: 0,
            last_used: Instant::now(),
            mirror,
            mirrored: None,
        };
        match tokio::time::timeout(timeout, server.answer()).await {
            Ok(Ok(Answer::Ready { forkable: true })) => Ok(server),
            Ok(Ok(Answer::Ready { forkable: false })) => Err(ServerError::Unforkable),
            _ => Err(ServerError::Lost),
        }
    }

    /// Runs one request in a fresh child, `root` being the project's folder
    /// on the node, `compiled` whether its bytecode is there now; forked
    /// from a zygote where the request names its group. The server is no
    /// longer usable after an error.
    async fn run(
        &mut self,
        root: &Path,
        compiled: bool,
        bytes: u64,
        request: &Request<'_>,
        caps: (usize, usize),
    ) -> Result<ChildRun, ServerError> {
        if let Some(mirror) = &self.mirror {
            let wanted = (root.to_owned(), compiled);
            if self.mirrored.as_ref() != Some(&wanted) {
                self.mirrored = None;
                let (from, to) = (root.to_owned(), mirror.clone());
                tokio::task::spawn_blocking(move || mirror_project(&from, &to))
                    .await
                    .map_err(|e| ServerError::Io { context: "mirroring the project", source: e.into() })?
                    .map_err(|source| ServerError::Io { context: "mirroring the project", source })?;
                self.mirrored = Some(wanted);
            }
        }
        let (results_read, results_write) =
            process::pipe().map_err(|source| ServerError::Io { context: "creating the results pipe", source })?;
        let (output_read, output_write) =
            process::pipe().map_err(|source| ServerError::Io { context: "creating the output pipe", source })?;
        let ballast = if self.mirror.is_some() { self.room.saturating_sub(bytes) } else { 0 };
        // The project as this server shows it, and the module's folder:
        // what makes a zygote's initial state that of the module's fresh run.
        let key = request.group.map(|g| format!("{}\n{compiled}\n{g}", root.display()));
        let message = serde_json::to_vec(&WireRequest::new(request, ballast, key)).expect("a request serializes");
        let started = Instant::now();
        self.send(&message, &[results_write.as_raw_fd(), output_write.as_raw_fd()]).await?;
        drop((results_write, output_write));
        self.runs += 1;
        let deadline = Duration::from_secs_f64(request.timeout) + ANSWER_MARGIN;
        let answer = tokio::time::timeout(deadline, self.answer());
        let (answer, output, results) = process::read_while(output_read, results_read, caps.0, caps.1, answer)
            .await
            .map_err(|source| ServerError::Io { context: "reading the child's pipes", source })?;
        self.last_used = Instant::now();
        match answer {
            Ok(Ok(Answer::Exit { status, timed_out, clean })) => {
                if !clean {
                    // The child's result stands; the server is not used again.
                    self.runs = u32::MAX;
                }
                Ok(ChildRun { code: status, timed_out, output, results, elapsed: started.elapsed() })
            }
            _ => Err(ServerError::Lost),
        }
    }

    async fn send(&self, message: &[u8], fds: &[RawFd]) -> Result<(), ServerError> {
        loop {
            let mut guard = self.control.writable().await.map_err(|_| ServerError::Lost)?;
            match guard.try_io(|fd| send_with_fds(fd.as_raw_fd(), message, fds)) {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(_)) => return Err(ServerError::Lost),
                Err(_would_block) => continue,
            }
        }
    }

    async fn answer(&self) -> Result<Answer, ServerError> {
        let mut buf = vec![0u8; 4096];
        loop {
            let mut guard = self.control.ready(Interest::READABLE).await.map_err(|_| ServerError::Lost)?;
            match guard.try_io(|fd| recv(fd.as_raw_fd(), &mut buf)) {
                Ok(Ok(0)) | Ok(Err(_)) => return Err(ServerError::Lost),
                Ok(Ok(n)) => return serde_json::from_slice(&buf[..n]).map_err(|_| ServerError::Lost),
                Err(_would_block) => continue,
            }
        }
    }

    /// Kills the server and everything left in its slot.
    fn stop(mut self, sandbox: &Sandbox) {
        kill_group(self.process.id());
        let _ = self.process.start_kill();
        sandbox.clean(&self.lease);
    }

    fn worn(&self, settings: &ForkSettings) -> bool {
        self.runs >= settings.max_runs
    }
}

/// The request as it travels: paths as text.
#[derive(Serialize)]
struct WireRequest<'a> {
    mode: &'a str,
    base: String,
    project: String,
    args: Vec<String>,
    timeout: f64,
    /// Bytes the child takes of its project folder before it copies the
    /// project: the server's room beyond what this project needs.
    ballast: u64,
    /// Runs with the same key may be forked from one zygote.
    zygote: Option<String>,
}

impl<'a> WireRequest<'a> {
    fn new(r: &Request<'a>, ballast: u64, zygote: Option<String>) -> Self {
        WireRequest {
            mode: r.mode,
            base: r.base.to_string_lossy().into_owned(),
            project: r.project.to_string_lossy().into_owned(),
            args: r.args.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
            timeout: r.timeout,
            ballast,
            zygote,
        }
    }
}

/// The servers of one node: `SERVERS_PER_SLOT` places per slot, each empty,
/// idle or lent to the job running in it.
pub struct ForkServers {
    settings: ForkSettings,
    places: RefCell<Vec<Place>>,
    /// Environments whose servers cannot fork: they run in fresh processes.
    unforkable: RefCell<HashSet<Serving>>,
    /// Where each place's mirror of a project lives on the node.
    mirrors: PathBuf,
    /// The projects whose bytecode was asked for, by folder: true once it
    /// is stored there.
    bytecode: RefCell<HashMap<PathBuf, bool>>,
}

#[derive(Default)]
struct Place {
    lent: bool,
    server: Option<ForkServer>,
}

/// A server lent to one job, with its place.
pub struct Lent {
    index: usize,
    server: Option<ForkServer>,
}

/// Gives a place back if the job's future is dropped while it runs (the job
/// was stopped): its server goes, with the child still running in it, and
/// the place is free again.
struct Lending<'a> {
    servers: &'a ForkServers,
    sandbox: &'a Sandbox,
    lent: Option<Lent>,
}

impl Drop for Lending<'_> {
    fn drop(&mut self) {
        if let Some(mut lent) = self.lent.take() {
            if let Some(server) = lent.server.take() {
                server.stop(self.sandbox);
            }
            self.servers.give_back(lent, self.sandbox);
        }
    }
}

impl ForkServers {
    pub fn new(settings: ForkSettings, slots: usize, mirrors: PathBuf) -> Self {
        let places = (0..slots).map(|_| Place::default()).collect();
        Self {
            settings,
            places: RefCell::new(places),
            unforkable: RefCell::default(),
            mirrors,
            bytecode: RefCell::default(),
        }
    }

    /// Whether the caller should compile the project at `root`: true once
    /// per folder (the first to ask does it; the others run without).
    pub fn claim_bytecode(&self, root: &Path) -> bool {
        let mut bytecode = self.bytecode.borrow_mut();
        if bytecode.contains_key(root) {
            return false;
        }
        bytecode.insert(root.to_owned(), false);
        true
    }

    /// Records that the bytecode of the project at `root` is stored there:
    /// servers mirror it again before their next child.
    pub fn bytecode_stored(&self, root: &Path) {
        self.bytecode.borrow_mut().insert(root.to_owned(), true);
    }

    /// Whether runs may name a group, to be forked from a zygote.
    pub fn zygotes(&self) -> bool {
        self.settings.zygote
    }

    /// Whether a fork server can serve what `serving` names.
    pub fn forkable(&self, serving: &Serving) -> bool {
        !self.unforkable.borrow().contains(serving)
    }

    /// Lends a place to a job for what `serving` names and the project at
    /// `root` of `bytes`: a place whose server already serves it, the one
    /// that shows that project (and may hold its zygote) first, else the one
    /// whose project was used longest ago; else an empty one, else the one
    /// idle longest (its server is stopped).
    fn lend(&self, serving: &Serving, root: &Path, bytes: u64, sandbox: &Sandbox) -> Lent {
        let mut places = self.places.borrow_mut();
        let free = || places.iter().enumerate().filter(|(_, p)| !p.lent);
        let serves = |s: &ForkServer| s.serving == *serving && s.room >= bytes;
        let fits = |p: &Place| p.server.as_ref().is_some_and(serves);
        let shows = |s: &ForkServer| s.mirrored.as_ref().is_some_and(|(r, _)| r == root);
        let index = free()
            .filter(|(_, p)| fits(p))
            .max_by_key(|(_, p)| p.server.as_ref().map(|s| (shows(s), std::cmp::Reverse(s.last_used))))
            .or_else(|| free().find(|(_, p)| p.server.is_none()))
            .or_else(|| free().min_by_key(|(_, p)| p.server.as_ref().map(|s| s.last_used)))
            .map(|(i, _)| i)
            .expect("the executor runs at most one job per slot");
        let place = &mut places[index];
        place.lent = true;
        let mut server = place.server.take();
        if !server.as_ref().is_some_and(serves) {
            if let Some(old) = server.take() {
                old.stop(sandbox);
            }
        }
        Lent { index, server }
    }

    /// Takes back a place; its server is kept unless it is worn out.
    fn give_back(&self, lent: Lent, sandbox: &Sandbox) {
        let mut places = self.places.borrow_mut();
        let place = &mut places[lent.index];
        place.lent = false;
        place.server = match lent.server {
            Some(server) if server.worn(&self.settings) => {
                server.stop(sandbox);
                None
            }
            kept => kept,
        };
    }

    /// Stops the servers idle for longer than the setting, and those whose
    /// project's folder is gone (its evaluation ended here: its zygote, a
    /// process of that project's code, ends with it), and forgets those
    /// projects.
    pub fn tidy(&self, sandbox: &Sandbox) {
        self.bytecode.borrow_mut().retain(|root, _| root.exists());
        let mut places = self.places.borrow_mut();
        let done = |s: &ForkServer| {
            s.last_used.elapsed() >= self.settings.idle || s.mirrored.as_ref().is_some_and(|(root, _)| !root.exists())
        };
        for place in places.iter_mut().filter(|p| !p.lent) {
            if place.server.as_ref().is_some_and(done) {
                place.server.take().expect("checked above").stop(sandbox);
            }
        }
    }

    /// How many servers are running.
    pub fn running(&self) -> usize {
        self.places.borrow().iter().filter(|p| p.server.is_some()).count()
    }

    /// Runs each request in turn in a child of one server for what
    /// `serving` names, started from `spec` (given its room and mirror folder)
    /// when the place lent has none; `bytes` is what the project at `root`
    /// takes of a tmpfs. Stops after the first child that timed out. An
    /// error means the caller should run them in fresh processes.
    #[allow(clippy::too_many_arguments)]
    pub async fn run_all(
        &self,
        sandbox: &Sandbox,
        serving: &Serving,
        spec: impl FnOnce(u64, Option<&Path>) -> Spec,
        root: &Path,
        bytes: u64,
        requests: &[Request<'_>],
        caps: (usize, usize),
    ) -> Result<Vec<ChildRun>, ServerError> {
        let mut guard = Lending { servers: self, sandbox, lent: Some(self.lend(serving, root, bytes, sandbox)) };
        let lent = guard.lent.as_mut().expect("lent above");
        let out = self.run_lent(lent, sandbox, serving, spec, root, bytes, requests, caps).await;
        let mut lent = guard.lent.take().expect("given back only here or on drop");
        if let Err(e) = &out {
            if let Some(server) = lent.server.take() {
                server.stop(sandbox);
            }
            if matches!(e, ServerError::Unforkable) {
                self.unforkable.borrow_mut().insert(serving.clone());
            }
        }
        self.give_back(lent, sandbox);
        out
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_lent(
        &self,
        lent: &mut Lent,
        sandbox: &Sandbox,
        serving: &Serving,
        spec: impl FnOnce(u64, Option<&Path>) -> Spec,
        root: &Path,
        bytes: u64,
        requests: &[Request<'_>],
        caps: (usize, usize),
    ) -> Result<Vec<ChildRun>, ServerError> {
        if lent.server.is_none() {
            let mirror = if sandbox.kind() == SandboxKind::Bwrap {
                let dir = self.mirrors.join(lent.index.to_string());
                make_mirror(&dir).map_err(|source| ServerError::Io { context: "making the mirror folder", source })?;
                Some(dir)
            } else {
                None
            };
            let room = bytes.saturating_add(ROOM_SLACK);
            let spec = spec(room, mirror.as_deref());
            let lease = sandbox.server_lease(lent.index);
            let started = ForkServer::start(sandbox, &spec, lease, serving, room, mirror, self.settings.start_timeout);
            lent.server = Some(started.await?);
        }
        let server = lent.server.as_mut().expect("started above");
        let compiled = self.bytecode.borrow().get(root) == Some(&true);
        let mut runs = Vec::with_capacity(requests.len());
        for request in requests {
            let run = server.run(root, compiled, bytes, request, caps).await?;
            let timed_out = run.timed_out;
            runs.push(run);
            if timed_out {
                break;
            }
        }
        Ok(runs)
    }
}

/// A socket pair whose messages keep their bounds, closed on exec; the
/// node's end does not block.
fn seqpacket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair fills the two-element array it is given.
    let code =
        unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
    if code != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just opened and are owned by nothing else.
    let (node, server) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on a descriptor owned here.
    unsafe {
        let flags = libc::fcntl(node.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(node.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok((node, server))
}

/// Sends one message with `fds` attached (SCM_RIGHTS).
fn send_with_fds(socket: RawFd, data: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    let payload = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(payload as u32) } as usize;
    // u64 words keep the control buffer aligned for cmsghdr.
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    // SAFETY: msghdr is plain data; every pointer set below outlives the call.
    let sent = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(payload as u32) as usize;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast::<RawFd>(), fds.len());
        libc::sendmsg(socket, &msg, libc::MSG_NOSIGNAL)
    };
    match sent {
        n if n < 0 => Err(std::io::Error::last_os_error()),
        n if n as usize == data.len() => Ok(()),
        _ => Err(std::io::Error::new(std::io::ErrorKind::WriteZero, "message cut short")),
    }
}

fn recv(socket: RawFd, buf: &mut [u8]) -> std::io::Result<usize> {
    // SAFETY: recv writes at most buf.len() bytes into buf.
    let n = unsafe { libc::recv(socket, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Makes the folder a server shows at `/evalmesh/base`, traversable by the
/// slot's user.
fn make_mirror(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
}

/// Makes `to` (an existing folder, mounted in a server's sandbox) hold
/// `from`'s files and nothing else: hard links where the two share a file
/// system, copies where they do not. The folder itself stays, since the
/// sandbox's mount holds on to it. Only folders and regular files are
/// mirrored; the node's copy of a project holds nothing else.
pub fn mirror_project(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(to)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    let mut stack = vec![(from.to_owned(), to.to_owned())];
    while let Some((src, dst)) = stack.pop() {
        for entry in std::fs::read_dir(&src)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let target = dst.join(entry.file_name());
            if kind.is_dir() {
                std::fs::create_dir(&target)?;
                std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
                stack.push((entry.path(), target));
            } else if kind.is_file() && std::fs::hard_link(entry.path(), &target).is_err() {
                std::fs::copy(entry.path(), &target)?;
            }
        }
    }
    Ok(())
}
