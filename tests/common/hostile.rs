//! What the hostile-project suites share (`tests/hostile.rs`,
//! `tests/tampering.rs`): their nodes and timeouts, placeholders in the
//! Python they submit, and the assertions on what a node answers and leaves.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::*;

/// The longest one evaluation here may take, environment build included.
pub const EVALUATION_TIMEOUT: Duration = Duration::from_secs(240);

/// The overall limit of one test, above [`EVALUATION_TIMEOUT`] so that a
/// stuck evaluation fails with the node's log rather than a bare timeout.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(420);

pub const MIB: u64 = 1 << 20;

// ---------------------------------------------------------------- helpers

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("evalmesh-hostile-").tempdir().expect("creating a temp dir")
}

/// A node of `user` with its data in `<dir>/data`, `slots` slots, and the
/// sandbox user ids from `uid_base` (used by root nodes only).
pub fn config(user: User, dir: &Path, uid_base: u32, slots: usize) -> NodeConfig {
    user.configure(NodeConfig::new(&dir.join("data"))).set("node", "slots", &slots.to_string()).set(
        "executor",
        "sandbox_uid_base",
        &uid_base.to_string(),
    )
}

/// `template` with each `@NAME@` placeholder replaced; every one must be.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let text = values.iter().fold(template.to_owned(), |text, (name, value)| text.replace(name, value));
    // What lies between two '@' and looks like a NAME.
    let parts: Vec<&str> = text.split('@').collect();
    let inner = parts.iter().skip(1).take(parts.len().saturating_sub(2));
    let placeholder =
        inner.copied().find(|name| !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'));
    assert_eq!(placeholder, None, "a placeholder is left in:\n{text}");
    text
}

/// The node's resident memory, from /proc.
pub fn rss_kib(node: &Node) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", node.pid())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Waits for the evaluation to end and returns it with `?detail=tests`.
pub fn finished(node: &Node, id: &str) -> Value {
    node.wait_finished(id, EVALUATION_TIMEOUT);
    node.evaluation(id, "?detail=tests")
}

pub fn module<'a>(evaluation: &'a Value, project: &str, module: &str) -> &'a Value {
    &evaluation["module_results"][project][module]
}

/// `[passed, failed, skipped, errors]`, `u64::MAX` for a missing count.
pub fn outcome(m: &Value) -> [u64; 4] {
    ["passed", "failed", "skipped", "errors"].map(|k| m[k].as_u64().unwrap_or(u64::MAX))
}

/// Asserts a module ended with `status` and exactly `counts`.
pub fn assert_module(evaluation: &Value, project: &str, name: &str, status: &str, counts: [u64; 4]) {
    let m = module(evaluation, project, name);
    assert_eq!((m["status"].as_str(), outcome(m)), (Some(status), counts), "{project} {name}: {m:#}");
}

/// Asserts a module is an `error` credited with at most `passes` passes, the
/// tests that truly passed before it misbehaved.
pub fn assert_error_module(evaluation: &Value, project: &str, name: &str, passes: u64) {
    let m = module(evaluation, project, name);
    assert_eq!(m["status"], json!("error"), "{project} {name}: {m:#}");
    assert!(m["passed"].as_u64().is_some_and(|p| p <= passes), "{project} {name} gained passes: {m:#}");
    assert!(m["output"].as_str().is_some_and(|o| !o.trim().is_empty()), "{project} {name} says why: {m:#}");
}

/// Asserts the project ran without a project-level error.
pub fn assert_project_ran(evaluation: &Value, project: &str) {
    let p = &evaluation["projects"][project];
    assert_eq!(p["error"], Value::Null, "{project}: {p:#}");
}

/// Everything a client can read about evaluation `id`, and the node's log.
pub fn everything_said(node: &Node, id: &str) -> String {
    let mut all = node.log();
    for path in [format!("/evaluation/{id}?detail=tests"), format!("/evaluation/{id}/events"), "/evaluation".into()] {
        all.push_str(&node.get(&path).text());
    }
    all.push_str(&node.get("/stats?scope=local").text());
    all
}

/// Asserts nothing of the node's config shows in any answer about `id` nor
/// in the log: not the cluster secret, not one of its section headers.
pub fn assert_config_shows_nowhere(node: &Node, id: &str) {
    let all = everything_said(node, id);
    for needle in [TEST_SECRET, "[cluster]", "[executor]", "[node]"] {
        assert!(!all.contains(needle), "{needle:?} of the node's config was handed out:\n{all}");
    }
}

/// The processes under node `pid` other than idle fork servers: a server
/// waiting for work is a sandbox (`bwrap` processes) holding one Python
/// process running the fork server and nothing else; a child it forked, or
/// anything a run left, makes its sandbox a stray.
fn strays(pid: i32) -> Vec<i32> {
    let comm = |p: i32| std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
    let serving = |p: i32| {
        std::fs::read(format!("/proc/{p}/cmdline"))
            .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == b"/evalmesh/forkserver.py"))
    };
    let mut strays = Vec::new();
    for sandbox in descendants(pid).into_iter().filter(|p| is_child_of(*p, pid)) {
        let mut tree = descendants(sandbox);
        tree.push(sandbox);
        let (bwraps, others): (Vec<i32>, Vec<i32>) = tree.iter().partition(|p| comm(**p).trim() == "bwrap");
        let idle = !bwraps.is_empty() && others.len() == 1 && serving(others[0]) && descendants(others[0]).is_empty();
        if !idle {
            strays.extend(tree);
        }
    }
    strays
}

/// Whether `child`'s parent is `parent`.
fn is_child_of(child: i32, parent: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{child}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(") ").and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok()))
        == Some(parent)
}

/// Waits until no process of the runs is left: none under the node but idle
/// fork servers, and, for a root node, none of the sandbox user ids of its
/// `slots`.
pub fn assert_runs_ended(node: &Node, user: User, uid_base: u32, slots: u32) {
    let pid = node.pid();
    let left = poll_until(Duration::from_secs(10), || strays(pid).is_empty().then_some(()));
    assert!(left.is_some(), "processes of the runs outlive them: {:?}", strays(pid));
    if user == User::Root {
        let uids: Vec<String> = (uid_base..uid_base + slots).map(|u| u.to_string()).collect();
        let leftovers = std::process::Command::new("pgrep").args(["-u", &uids.join(",")]).output().unwrap();
        let mut pids = String::new();
        leftovers.stdout.as_slice().read_to_string(&mut pids).unwrap();
        assert_eq!(pids.trim(), "", "processes of the sandbox users are still running");
    }
}

/// What `/stats` says of the node's limits: a cgroup per run for a root node
/// (v1 where the memory and pids controllers have hierarchies of their own,
/// as on this machine), rlimits for an ordinary user, who cannot make one.
pub fn expected_limits(user: User) -> &'static str {
    match user {
        User::Ordinary => "rlimits",
        User::Root if Path::new("/sys/fs/cgroup/memory").is_dir() && Path::new("/sys/fs/cgroup/pids").is_dir() => {
            "cgroup-v1"
        }
        User::Root => "cgroup-v2",
    }
}

/// The sandbox's figures in `GET /stats?scope=local`.
pub fn sandbox_stats(node: &Node) -> Value {
    let stats = node.get("/stats?scope=local");
    assert_eq!(stats.status, 200, "{stats:?}");
    stats.json()["sandbox"].clone()
}

/// Waits until the node has no busy slot and no queued job.
pub fn assert_slots_free(node: &Node) {
    let free = poll_until(Duration::from_secs(20), || {
        let s = node.get("/stats?scope=local").json();
        (s["slots_busy"] == json!(0) && s["jobs_queued"] == json!(0)).then_some(())
    });
    assert!(free.is_some(), "slots still busy: {}", node.get("/stats?scope=local").text());
}

pub const PASS: &str = "def test_passes():\n    assert True\n";

/// One test that passes and one that fails.
pub const PASS_1_FAIL_1: &str = "def test_passes():\n    assert True\n\n\ndef test_fails():\n    assert 1 == 0\n";

/// Declares the tests `<name>::as_root` and `<name>::as_ordinary_user`, each
/// calling `body` (a function of the test crate's root taking a [`User`])
/// with its user.
#[macro_export]
macro_rules! for_each_user {
    ($name:ident, $body:ident) => {
        mod $name {
            #[test]
            fn as_root() {
                super::$body(super::User::Root);
            }

            #[test]
            fn as_ordinary_user() {
                super::$body(super::User::Ordinary);
            }
        }
    };
}
