//! Shared harness of the integration tests: the real `evalmesh` binary run as
//! a child process on port 0, a small blocking HTTP client over `TcpStream`
//! (so a test controls every byte it sends: headers, lengths, chunking), zip
//! and project builders, and `wait_until`.
//!
//! Every node is given `TEST_SECRET` as its cluster secret, so that nodes of
//! one test form a cluster, and a test can call a peer route as a node does,
//! signed (`Node::peer`). A node given client tokens (`NodeConfig::token`)
//! is asked with the first of them by `Node::get`, `post` and `request`.
//!
//! Every node is killed when its `Node` is dropped, and also when the test
//! process dies (`PR_SET_PDEATHSIG`), so a failed or timed-out test leaves no
//! node behind. Tests share nothing: each builds its own temp dir, data dir
//! and node.
//!
//! The tests run as root, and a node runs as root unless a test asks for an
//! ordinary user ([`User::Ordinary`], `nobody`): a node must work, and keep
//! student code contained, either way. [`Mode`] names the four ways a node
//! can run tests (root or ordinary user, `bwrap` or no sandbox), so that a
//! test can be written once and run in each.

#![allow(dead_code)] // each test file uses its own part of the harness

pub mod cluster;
pub mod hostile;
pub mod netns;
pub mod sse;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::{Cursor, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use evalmesh::auth::{self, Secret, SignedRequest, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use serde_json::Value;

/// The cluster secret of every node the harness starts, unless a test sets
/// another: nodes with seeds or multicast refuse the default.
pub const TEST_SECRET: &str = "evalmesh-test-secret-0123456789";

/// The sender a test names when it calls a peer route as a node would.
pub const TEST_SENDER: &str = "127.0.0.1:1";

/// Runs `body` on its own thread and fails the test if it has not finished
/// within `limit`; a panic in `body` is re-raised as is.
pub fn with_timeout(limit: Duration, body: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::Builder::new()
        .name("test-body".into())
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
            let _ = tx.send(result);
        })
        .expect("spawning the test thread");
    match rx.recv_timeout(limit) {
        Ok(Ok(())) => {
            worker.join().expect("test thread ended");
        }
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("test did not finish within its overall timeout of {limit:?}"),
    }
}

/// Polls `probe` every 50 ms until it returns `Some`, or gives up at `timeout`.
pub fn poll_until<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Like [`poll_until`], but panics naming `what` at the deadline.
pub fn wait_until<T>(what: &str, timeout: Duration, probe: impl FnMut() -> Option<T>) -> T {
    poll_until(timeout, probe).unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// 2 passed, 1 failed.
pub const PASS_2_FAIL_1: &str = "\
def test_a():
    assert True


def test_b():
    assert 'x' in 'xyz'


def test_c():
    assert 3 < 2
";

/// A port that was free a moment ago: bound on 127.0.0.1:0, then released.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("bound address").port()
}

/// Makes the child die with the test process (the thread that spawns it must
/// outlive it, which holds for children owned by a test's body).
pub fn die_with_parent(cmd: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        })
    }
}

/// A node's TOML config, section by section; values are raw TOML literals.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    sections: BTreeMap<String, BTreeMap<String, String>>,
}

impl NodeConfig {
    /// Listens on a free port, keeps its data in `data_dir`, and shares
    /// `TEST_SECRET` with the other nodes of the test.
    pub fn new(data_dir: &Path) -> Self {
        let config = Self { sections: BTreeMap::new() };
        config
            .set("node", "listen", &toml_string("127.0.0.1:0"))
            .set("node", "data_dir", &toml_string(&data_dir.to_string_lossy()))
            .set("cluster", "secret", &toml_string(TEST_SECRET))
    }

    /// Asks clients for `token` on the public routes.
    pub fn token(self, token: &str) -> Self {
        self.set("api", "tokens", &format!("[{}]", toml_string(token)))
    }

    /// The cluster secret, as set; the node's default when unset.
    pub fn secret(&self) -> String {
        let raw = self.sections.get("cluster").and_then(|keys| keys.get("secret"));
        raw.map_or_else(|| "change-me".to_owned(), |raw| serde_json::from_str(raw).expect("secret is a quoted string"))
    }

    /// The first client token, if tokens are set.
    pub fn first_token(&self) -> Option<String> {
        let raw = self.sections.get("api")?.get("tokens")?;
        serde_json::from_str::<Vec<String>>(raw).expect("tokens is an array of quoted strings").into_iter().next()
    }

    /// Sets `[section] key = value`, `value` written as is (`"3"`, `"[\"file\"]"`).
    pub fn set(mut self, section: &str, key: &str, value: &str) -> Self {
        self.sections.entry(section.to_owned()).or_default().insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn data_dir(&self) -> PathBuf {
        let raw = &self.sections["node"]["data_dir"];
        PathBuf::from(serde_json::from_str::<String>(raw).expect("data_dir is a quoted string"))
    }

    pub fn to_toml(&self) -> String {
        let mut text = String::new();
        for (section, keys) in &self.sections {
            text.push_str(&format!("[{section}]\n"));
            for (key, value) in keys {
                text.push_str(&format!("{key} = {value}\n"));
            }
            text.push('\n');
        }
        text
    }
}

/// A TOML basic string; JSON's escapes are valid TOML escapes.
pub fn toml_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// The user id of the ordinary user the harness runs nodes as: `nobody`,
/// which every Linux system has, owns no file, and belongs to no group that
/// grants anything.
pub const ORDINARY_UID: u32 = 65534;

/// The interpreter of nodes run by the ordinary user: the default `python3`
/// is a pyenv shim under /root, which no other user can read.
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// Who a node runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum User {
    Root,
    /// [`ORDINARY_UID`], with no capability and no supplementary group.
    Ordinary,
}

impl User {
    /// The uid (also the gid) the node is started with; `None` for root, the
    /// test's own user.
    pub fn uid(self) -> Option<u32> {
        match self {
            User::Root => None,
            User::Ordinary => Some(ORDINARY_UID),
        }
    }

    /// What a node of this user needs in its config: the ordinary user runs
    /// projects with the system interpreter, the only one it can read.
    pub fn configure(self, config: NodeConfig) -> NodeConfig {
        match self {
            User::Root => config,
            User::Ordinary => config.set("executor", "python", &toml_string(SYSTEM_PYTHON)),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            User::Root => "root",
            User::Ordinary => "ordinary user",
        }
    }
}

/// How a node isolates test runs: `executor.sandbox`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sandbox {
    Bwrap,
    /// No isolation, chosen explicitly: runs are the node's user.
    None,
}

impl Sandbox {
    /// The value of `executor.sandbox`, and of `kind` in `/stats`.
    pub fn name(self) -> &'static str {
        match self {
            Sandbox::Bwrap => "bwrap",
            Sandbox::None => "none",
        }
    }
}

/// One way a node can run tests: as which user, in which sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    pub user: User,
    pub sandbox: Sandbox,
}

impl Mode {
    pub fn new(user: User, sandbox: Sandbox) -> Self {
        Mode { user, sandbox }
    }

    /// A config for a node of this mode keeping its data in `data_dir`.
    pub fn config(self, data_dir: &Path) -> NodeConfig {
        self.user.configure(NodeConfig::new(data_dir)).set("executor", "sandbox", &toml_string(self.sandbox.name()))
    }

    /// Starts a node of this mode with `config` (made by [`Mode::config`]).
    pub fn start(self, config: &NodeConfig, dir: &Path, label: &str) -> Node {
        Node::start_as(config, dir, label, self.user.uid())
    }

    pub fn label(self) -> String {
        format!("{} with sandbox {}", self.user.label(), self.sandbox.name())
    }
}

/// How the harness launches a node process, besides its config.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// Runs the node as this user id (and group id), without supplementary
    /// groups, instead of root.
    pub uid: Option<u32>,
    /// The node's RLIMIT_AS, for tests whose attack, should it succeed,
    /// would have the node eat the machine's memory: the node then dies of
    /// it alone, and the test fails, without taking the host down with it.
    pub address_space_bytes: Option<u64>,
    /// Runs the node in this network namespace (`ip netns exec`, which
    /// execs it: the pid is still the node's own).
    pub netns: Option<String>,
    /// More environment for the node.
    pub env: Vec<(String, String)>,
}

/// Gives `path`, and everything under it when it is a folder, to `uid`
/// (user and group), symbolic links themselves and never their targets.
pub fn chown_tree(path: &Path, uid: u32) {
    let mut stack = vec![path.to_path_buf()];
    while let Some(path) = stack.pop() {
        std::os::unix::fs::lchown(&path, Some(uid), Some(uid))
            .unwrap_or_else(|e| panic!("chown {} to {uid}: {e}", path.display()));
        let meta = std::fs::symlink_metadata(&path).expect("reading what was just chowned");
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).expect("listing a folder to chown") {
                stack.push(entry.expect("a folder entry").path());
            }
        }
    }
}

/// One `evalmesh node` process.
pub struct Node {
    child: Child,
    /// `127.0.0.1:PORT`, as the node logged it.
    pub addr: String,
    pub data_dir: PathBuf,
    /// The node's stderr (env_logger) and stdout.
    pub log_path: PathBuf,
    /// The cluster secret the node was given, to sign peer calls with.
    pub secret: String,
    /// The client token `get`, `post` and `request` present, if the node asks for one.
    pub token: Option<String>,
}

impl Node {
    /// Writes `<dir>/<label>.toml`, starts the node with its output in
    /// `<dir>/<label>.log`, and waits for its `serving on` line.
    pub fn start(config: &NodeConfig, dir: &Path, label: &str) -> Node {
        Node::launch(config, dir, label, Launch::default())
    }

    /// As [`Node::start`], run as user `uid` when given (see [`Launch::uid`]).
    pub fn start_as(config: &NodeConfig, dir: &Path, label: &str, uid: Option<u32>) -> Node {
        Node::launch(config, dir, label, Launch { uid, ..Launch::default() })
    }

    /// As [`Node::start`], launched as `launch` says. A node run by another
    /// user than root is given `dir`, its data dir and a home of its own,
    /// `<dir>/<label>.home` (an ordinary user has one: pip and uv keep their
    /// caches there), and starts with that user's ids, no supplementary
    /// group and no capability, as `setpriv --reuid=UID --regid=UID
    /// --clear-groups` would start it; the pid is the node's own.
    pub fn launch(config: &NodeConfig, dir: &Path, label: &str, launch: Launch) -> Node {
        let config_path = dir.join(format!("{label}.toml"));
        std::fs::write(&config_path, config.to_toml()).expect("writing the node config");
        let log_path = dir.join(format!("{label}.log"));
        let log = std::fs::File::create(&log_path).expect("creating the node log");
        let mut cmd = match (launch.uid, &launch.netns) {
            (None, Some(ns)) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns]).arg(env!("CARGO_BIN_EXE_evalmesh"));
                cmd
            }
            (None, None) => Command::new(env!("CARGO_BIN_EXE_evalmesh")),
            (Some(_), Some(_)) => panic!("`ip netns exec` runs as root: a node in a namespace cannot change user"),
            (Some(uid), None) => {
                let home = dir.join(format!("{label}.home"));
                std::fs::create_dir_all(&home).expect("creating the node user's home");
                std::fs::create_dir_all(config.data_dir()).expect("creating the node's data dir");
                chown_tree(&home, uid);
                chown_tree(&config.data_dir(), uid);
                std::os::unix::fs::chown(dir, Some(uid), Some(uid)).expect("giving the test dir to the node user");
                std::os::unix::fs::chown(&config_path, Some(uid), Some(uid))
                    .expect("giving the config to the node user");
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_evalmesh"));
                // std drops the supplementary groups, then sets the group and
                // user ids, before the pre_exec hooks run: the death signal
                // die_with_parent sets survives (a change of ids clears it).
                cmd.uid(uid).gid(uid).env("HOME", &home).env_remove("USER").env_remove("LOGNAME");
                cmd
            }
        };
        cmd.envs(launch.env.iter().map(|(k, v)| (k, v)));
        cmd.arg("node")
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log);
        if let Some(bytes) = launch.address_space_bytes {
            // SAFETY: setrlimit is async-signal-safe and reads only its argument.
            unsafe {
                cmd.pre_exec(move || {
                    let limit = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
                    if libc::setrlimit(libc::RLIMIT_AS, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let child = die_with_parent(&mut cmd).spawn().expect("starting evalmesh");
        let mut node = Node {
            child,
            addr: String::new(),
            data_dir: config.data_dir(),
            log_path,
            secret: config.secret(),
            token: config.first_token(),
        };
        let addr = poll_until(Duration::from_secs(30), || {
            if let Some(status) = node.child.try_wait().expect("polling the node") {
                panic!("node {label} exited with {status} before serving:\n{}", node.log());
            }
            let log = node.log();
            let (_, rest) = log.split_once("serving on ")?;
            // Text or JSON logs: the address ends at a space or a quote.
            let addr: String = rest.chars().take_while(|c| !c.is_whitespace() && *c != '"').collect();
            addr.parse::<SocketAddr>().ok().map(|_| addr)
        });
        node.addr =
            addr.unwrap_or_else(|| panic!("node {label} did not log `serving on` within 30 s:\n{}", node.log()));
        node
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Everything the node has logged so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], Body::None)
    }

    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Response {
        self.request("POST", path, &[("Content-Type", content_type)], Body::Fixed(body))
    }

    /// A request with the node's client token, unless `headers` name an
    /// `Authorization` of their own or the node asks for none.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Body<'_>) -> Response {
        let bearer = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut all = headers.to_vec();
        if let Some(bearer) = &bearer {
            if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("authorization")) {
                all.push(("Authorization", bearer));
            }
        }
        http(&self.addr, method, path, &all, body)
    }

    /// A peer route called as node `TEST_SENDER` would, signed with the node's secret.
    pub fn peer(&self, method: &str, path: &str, body: &[u8]) -> Response {
        let headers = signed_headers(&self.secret, method, path, TEST_SENDER, body, now_ms());
        let mut headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        headers.push(("Content-Type", "application/json"));
        let body = if body.is_empty() { Body::None } else { Body::Fixed(body) };
        http(&self.addr, method, path, &headers, body)
    }

    /// Waits up to `timeout` for the process to exit by itself, and reaps it.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        poll_until(timeout, || self.child.try_wait().expect("polling the node"))
    }

    /// Posts `zip` as curl's `-F file=@<filename>` does and returns the id.
    pub fn submit_multipart(&self, filename: &str, zip: &[u8]) -> String {
        let (content_type, body) = multipart(&[Part::file("file", filename, zip)]);
        self.accepted(self.post("/evaluation", &content_type, &body))
    }

    /// Posts `zip` as a raw `application/zip` body and returns the id.
    pub fn submit_raw_zip(&self, zip: &[u8]) -> String {
        self.accepted(self.post("/evaluation", "application/zip", zip))
    }

    /// Posts a JSON submission and returns the id.
    pub fn submit_json(&self, body: &Value) -> String {
        let body = serde_json::to_vec(body).expect("json serializes");
        self.accepted(self.post("/evaluation", "application/json", &body))
    }

    fn accepted(&self, response: Response) -> String {
        assert_eq!(response.status, 202, "submission refused: {response:?}");
        let id = response.json()["id"].as_str().unwrap_or_else(|| panic!("202 without an id: {response:?}")).to_owned();
        assert_eq!(response.header("location"), Some(format!("/evaluation/{id}").as_str()));
        id
    }

    /// `GET /evaluation/{id}{query}` as JSON, asserting 200.
    pub fn evaluation(&self, id: &str, query: &str) -> Value {
        let response = self.get(&format!("/evaluation/{id}{query}"));
        assert_eq!(response.status, 200, "{response:?}");
        response.json()
    }

    /// Polls the evaluation until it is done or failed and returns it.
    pub fn wait_finished(&self, id: &str, timeout: Duration) -> Value {
        let mut last = Value::Null;
        let finished = poll_until(timeout, || {
            let response = self.get(&format!("/evaluation/{id}"));
            if response.status != 200 {
                return None;
            }
            last = response.json();
            matches!(last["status"].as_str(), Some("done" | "failed" | "cancelled")).then(|| last.clone())
        });
        finished.unwrap_or_else(|| {
            panic!(
                "evaluation {id} not finished after {timeout:?}; last seen:\n{}\nnode log:\n{}",
                serde_json::to_string_pretty(&last).unwrap_or_default(),
                self.log()
            )
        })
    }

    /// Sends `signal` and reaps the process.
    pub fn signal_and_wait(&mut self, signal: i32) -> std::process::ExitStatus {
        // SAFETY: kill(2) on the pid of our own child, not yet reaped.
        if self.child.try_wait().expect("polling the node").is_none() {
            unsafe { libc::kill(self.pid(), signal) };
        }
        self.child.wait().expect("reaping the node")
    }

    /// SIGKILL: the node gets no chance to clean up, as in a crash.
    pub fn kill(&mut self) {
        self.signal_and_wait(libc::SIGKILL);
    }

    /// SIGTERM, then SIGKILL if the node is still there after 10 s.
    pub fn stop(&mut self) {
        // SAFETY: as in signal_and_wait.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let exited = poll_until(Duration::from_secs(10), || self.child.try_wait().expect("polling the node"));
        if exited.is_none() {
            self.kill();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        kill_processes_in(&self.data_dir);
    }
}

/// SIGKILLs every process whose working folder lies under `dir`: the pytest
/// runs a node started in its own process groups, which outlive a killed node.
pub fn kill_processes_in(dir: &Path) {
    let Ok(dir) = dir.canonicalize() else { return };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(&dir)) {
            // SAFETY: kill(2) on a process running inside this test's data dir.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// The members `node` holds alive, by `GET /network`.
pub fn alive(node: &Node) -> BTreeSet<String> {
    let network = node.get("/network").json();
    network["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["status"] == "alive")
        .filter_map(|m| m["address"].as_str().map(str::to_owned))
        .collect()
}

/// The wall clock in milliseconds since the Unix epoch, as nodes sign with it.
pub fn now_ms() -> u64 {
    auth::wall_clock_ms()
}

/// The headers a node puts on a peer request: its name, its Lamport time,
/// `timestamp_ms`, and the signature over them, the method, the path and
/// the body, made with `secret`.
pub fn signed_headers(
    secret: &str,
    method: &str,
    path: &str,
    sender: &str,
    body: &[u8],
    timestamp_ms: u64,
) -> Vec<(&'static str, String)> {
    let lamport = 1;
    let request = SignedRequest { method, path, node: sender, lamport, timestamp_ms, body };
    let signature = auth::sign_request(&Secret::new(secret), &request);
    vec![
        ("x-evalmesh-node", sender.to_owned()),
        ("x-evalmesh-lamport", lamport.to_string()),
        (TIMESTAMP_HEADER, timestamp_ms.to_string()),
        (SIGNATURE_HEADER, signature),
    ]
}

/// A request body: none, with a Content-Length, or chunked.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    None,
    Fixed(&'a [u8]),
    Chunked(&'a [u8]),
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("response is not JSON ({e}): {self:?}"))
    }

    /// The `error` text of a JSON error answer; panics if there is none.
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_else(|| panic!("no error field: {self:?}")).to_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`). A body
/// the server stops reading (an early 413) is not an error: the answer is
/// read all the same.
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: Body<'_>) -> Response {
    try_http(addr, method, path, headers, body).unwrap_or_else(|e| panic!("{e}"))
}

/// As [`http`], but a connection that fails or closes without a whole
/// answer is an error rather than a panic, for tests that probe a node with
/// hostile requests and report what it did.
pub fn try_http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Body<'_>,
) -> Result<Response, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connecting to {addr}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(60))).expect("setting a read timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let mut payload = Vec::new();
    match body {
        Body::None => {}
        Body::Fixed(bytes) => {
            head.push_str(&format!("Content-Length: {}\r\n", bytes.len()));
            payload.extend_from_slice(bytes);
        }
        Body::Chunked(bytes) => {
            head.push_str("Transfer-Encoding: chunked\r\n");
            for chunk in bytes.chunks(16 * 1024) {
                payload.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                payload.extend_from_slice(chunk);
                payload.extend_from_slice(b"\r\n");
            }
            payload.extend_from_slice(b"0\r\n\r\n");
        }
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).map_err(|e| format!("sending {method} {path}: {e}"))?;
    // The server may answer and close before reading the whole body.
    let _ = stream.write_all(&payload);
    // Read until the answer is complete by its own framing, as curl does:
    // after an early answer the server may hold the connection open for a
    // while (actix's client_disconnect_timeout) before closing it.
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    // The answer to a HEAD announces a body it does not send.
    let head_only = method == "HEAD";
    loop {
        if is_complete(&raw, head_only) {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !raw.is_empty() => break,
            Err(e) => return Err(format!("reading the answer to {method} {path}: {e}")),
        }
    }
    parse_response(&raw, head_only)
        .ok_or_else(|| format!("malformed answer to {method} {path}: {:?}", String::from_utf8_lossy(&raw)))
}

/// Whether `raw` holds a whole answer: its head, then the body its
/// Content-Length or chunking announces. Without either, only EOF ends it.
/// The answer to a HEAD is its head alone, whatever length it announces.
fn is_complete(raw: &[u8], head_only: bool) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    if head_only {
        return true;
    }
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let body = &raw[end + 4..];
    if head.contains("\r\ntransfer-encoding: chunked") {
        return dechunk(body).is_some();
    }
    head.split("\r\n")
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|len| len.trim().parse::<usize>().ok())
        .is_some_and(|len| body.len() >= len)
}

fn parse_response(raw: &[u8], head_only: bool) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if head_only {
        Vec::new()
    } else if chunked {
        dechunk(rest)?
    } else {
        match headers.iter().find(|(n, _)| n == "content-length") {
            Some((_, len)) => rest.get(..len.parse::<usize>().ok()?)?.to_vec(),
            None => rest.to_vec(),
        }
    };
    Some(Response { status, headers, body })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// A part of a multipart/form-data body.
pub struct Part<'a> {
    pub name: &'a str,
    pub filename: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub data: &'a [u8],
}

impl<'a> Part<'a> {
    /// A file part as curl's `-F name=@filename` sends it.
    pub fn file(name: &'a str, filename: &'a str, data: &'a [u8]) -> Self {
        Part { name, filename: Some(filename), content_type: Some("application/octet-stream"), data }
    }

    /// A plain field as curl's `-F name=value` sends it.
    pub fn text(name: &'a str, value: &'a str) -> Self {
        Part { name, filename: None, content_type: None, data: value.as_bytes() }
    }
}

/// A multipart/form-data body laid out as curl lays it out; returns the
/// Content-Type header (with the boundary) and the body.
pub fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "------------------------evalmeshQ7x2Lw9Rk3";
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{}\"", part.name);
        if let Some(filename) = part.filename {
            disposition.push_str(&format!("; filename=\"{filename}\""));
        }
        body.extend_from_slice(format!("{disposition}\r\n").as_bytes());
        if let Some(content_type) = part.content_type {
            body.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(part.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A zip archive being built; names are written exactly as given, hostile
/// ones included.
pub struct ZipBuilder {
    writer: zip::ZipWriter<Cursor<Vec<u8>>>,
}

impl Default for ZipBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ZipBuilder {
    pub fn new() -> Self {
        Self { writer: zip::ZipWriter::new(Cursor::new(Vec::new())) }
    }

    fn options() -> zip::write::SimpleFileOptions {
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(0o644)
    }

    pub fn file(mut self, name: &str, data: impl AsRef<[u8]>) -> Self {
        self.writer.start_file(name, Self::options()).expect("starting a zip entry");
        self.writer.write_all(data.as_ref()).expect("writing a zip entry");
        self
    }

    pub fn dir(mut self, name: &str) -> Self {
        self.writer.add_directory(name, Self::options().unix_permissions(0o755)).expect("adding a zip folder");
        self
    }

    pub fn symlink(mut self, name: &str, target: &str) -> Self {
        self.writer.add_symlink(name, target, Self::options()).expect("adding a zip symlink");
        self
    }

    /// One entry of `len` zero bytes, written in 1 MiB pieces.
    pub fn zeros(mut self, name: &str, len: usize) -> Self {
        self.writer.start_file(name, Self::options().large_file(false)).expect("starting a zip entry");
        let block = vec![0u8; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = left.min(block.len());
            self.writer.write_all(&block[..n]).expect("writing a zip entry");
            left -= n;
        }
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.writer.finish().expect("finishing the zip").into_inner()
    }
}

/// A zip of `(path, content)` files.
pub fn zip_of<N: AsRef<str>, C: AsRef<[u8]>>(files: &[(N, C)]) -> Vec<u8> {
    files.iter().fold(ZipBuilder::new(), |zip, (name, content)| zip.file(name.as_ref(), content)).finish()
}

/// A deterministic stream of bytes that is no zip and that no compression
/// shrinks (xorshift).
pub fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Writes `(path, content)` files under `root`, creating folders.
pub fn write_files<N: AsRef<str>, C: AsRef<[u8]>>(root: &Path, files: &[(N, C)]) {
    for (name, content) in files {
        let path = root.join(name.as_ref());
        std::fs::create_dir_all(path.parent().expect("a file has a parent")).expect("creating a project folder");
        std::fs::write(&path, content).expect("writing a project file");
    }
}

/// `files` moved under `prefix/`, to place a project inside an archive.
pub fn under<C: Clone>(prefix: &str, files: &[(&str, C)]) -> Vec<(String, C)> {
    files.iter().map(|(name, content)| (format!("{prefix}/{name}"), content.clone())).collect()
}

/// Runs git with a fixed identity, panicking with its output on failure.
pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=evalmesh-test", "-c", "user.email=test@evalmesh.invalid"])
        .args(["-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .output()
        .expect("running git");
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A git repository at `dir` holding `files` in one commit.
pub fn git_repo<N: AsRef<str>, C: AsRef<[u8]>>(dir: &Path, files: &[(N, C)]) {
    write_files(dir, files);
    git(dir, &["init", "-q"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "initial"]);
}

/// Every regular file under `dir`, symlinks not followed.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            if file_type.is_dir() {
                stack.push(entry.path());
            } else if file_type.is_file() {
                files.push(entry.path());
            }
        }
    }
    files
}

/// The live processes descending from `pid`, by the parent links in /proc
/// (zombies left out: they hold nothing and wait only to be reaped).
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut parents: Vec<(i32, i32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name, in parentheses, may itself hold spaces and ')'.
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let parent = fields.next().and_then(|p| p.parse::<i32>().ok()).unwrap_or(0);
        if state != "Z" {
            parents.push((child, parent));
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(parents.iter().filter(|(_, p)| *p == parent).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

/// Bytes the files under `dir` occupy on disk (allocated blocks, so a sparse
/// file counts what it holds), symbolic links not followed.
pub fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        total += meta.blocks() * 512;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                stack.push(entry.path());
            }
        }
    }
    total
}

/// `GET /evaluation/{id}/grades.csv` from `node`, checked against
/// `evaluation` (its JSON answer): a header row, then one row per project,
/// each column what the JSON says.
pub fn assert_gradebook(node: &Node, id: &str, evaluation: &Value) {
    let answer = node.get(&format!("/evaluation/{id}/grades.csv"));
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.header("content-type"), Some("text/csv; charset=utf-8"));
    let disposition = format!("attachment; filename=\"evaluation-{id}.csv\"");
    assert_eq!(answer.header("content-disposition"), Some(disposition.as_str()));
    let mut reader = csv::Reader::from_reader(answer.body.as_slice());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    let columns = [
        "label",
        "project",
        "passed",
        "failed",
        "errors",
        "skipped",
        "%passed",
        "points",
        "max_points",
        "nota",
        "error",
    ];
    assert_eq!(header, columns);
    let mut named = Vec::new();
    for row in reader.records() {
        let row = row.unwrap();
        let project = &evaluation["projects"][&row[1]];
        named.push(row[1].to_owned());
        assert_eq!(&row[0], project["label"].as_str().unwrap(), "{}", &row[1]);
        for (i, column) in columns.iter().enumerate().take(10).skip(2) {
            assert_eq!(row[i].parse::<f64>().unwrap(), project[*column].as_f64().unwrap(), "{} {column}", &row[1]);
        }
        assert_eq!(&row[10], project["error"].as_str().unwrap_or_default(), "{}", &row[1]);
    }
    let projects: Vec<String> = evaluation["projects"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(named, projects);
}

/// A Python in a new virtual environment at `venv` with `package` (a pinned
/// requirement) installed, by uv from the package index: for tests that
/// check the node's output with a reference tool of another ecosystem.
pub fn python_with(venv: &Path, package: &str) -> PathBuf {
    let python = venv.join("bin/python");
    let steps: [&[&OsStr]; 2] = [
        &["venv".as_ref(), "-q".as_ref(), venv.as_os_str()],
        &["pip".as_ref(), "install".as_ref(), "-q".as_ref(), "--python".as_ref(), python.as_os_str(), package.as_ref()],
    ];
    for args in steps {
        let status = Command::new("uv").args(args).status().expect("running uv");
        assert!(status.success(), "uv {args:?}");
    }
    python
}
