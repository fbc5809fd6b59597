//! Hostile projects against a real node: each test submits projects whose
//! tests try one thing a student's code must not be able to do — get out of
//! the sandbox (read the node's data or config, reach the network), stall
//! the node (hang, flood its output, fork without end) or exhaust it (eat
//! memory or disk, litter its data folder, see another run's files). Every
//! one must end with the evaluation `done`, each module reported as it truly
//! behaved, and the node serving as before. `tests/tampering.rs` holds the
//! attacks on what the node installs, which host files it touches, and the
//! results it reads.
//!
//! Each test runs twice, with the node run by root (a sandbox user id per
//! slot, a cgroup per run) and by an ordinary user (an unprivileged user
//! namespace, rlimits), unless the attack only means something against root.
//! Root nodes are given user ids of their own (`sandbox_uid_base`), so that
//! no two tests' runs share one. The Python of the projects lives in
//! `tests/data/hostile/`.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use common::hostile::*;
use common::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------- contained and reported

const READS: &str = include_str!("data/hostile/reads.py");
const SERVER: &str = include_str!("data/hostile/server.py");

/// The hostile project: one module per attack. `port` is a port the host
/// listens on; `data_dir` and `config` are the node's own; `marker` a host
/// path the run must not be able to write.
fn hostile_project(port: u16, data_dir: &Path, config: &Path, marker: &str) -> Vec<u8> {
    let sleep = "import time\n\ndef test_sleeps_forever():\n    time.sleep(3600)\n";
    let network = format!(
        "import socket\n\ndef test_connects_to_the_host():\n    \
         socket.create_connection(('127.0.0.1', {port}), timeout=5).close()\n"
    );
    let escape = format!(
        "def test_writes_tmp():\n    \
         with open('{marker}', 'w') as f:\n        f.write('escaped')\n"
    );
    // It fails, so that pytest prints the 50 MB it captured.
    let output = "import sys\n\ndef test_prints_50_mb():\n    \
                  chunk = 'x' * (1 << 20)\n    for _ in range(50):\n        sys.stdout.write(chunk)\n    \
                  assert False, 'printed 50 MB'\n";
    let fork = "import os, time\n\ndef test_forks_without_end():\n    \
                children = 0\n    try:\n        while children < 100000:\n            \
                if os.fork() == 0:\n                time.sleep(30)\n                os._exit(0)\n            \
                children += 1\n    except OSError:\n        pass\n    \
                assert children < 100, f'{children} processes: not limited'\n";
    let reads =
        fill(READS, &[("@DATA@", &data_dir.display().to_string()), ("@CONFIG@", &config.display().to_string())]);
    zip_of(&[
        ("hostile/requirements.txt", String::new()),
        ("hostile/tests/test_sleep.py", sleep.to_owned()),
        ("hostile/tests/test_network.py", network),
        ("hostile/tests/test_escape.py", escape),
        ("hostile/tests/test_output.py", output.to_owned()),
        ("hostile/tests/test_fork.py", fork.to_owned()),
        ("hostile/tests/test_reads.py", reads),
        ("hostile/tests/test_server.py", SERVER.to_owned()),
    ])
}

fn contained_and_reported(user: User) {
    with_timeout(Duration::from_secs(300), move || {
        let dir = temp_dir();
        let marker = format!("/tmp/evalmesh_escape_marker_{}", uuid::Uuid::new_v4().simple());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = config(user, dir.path(), 62000, 2)
            .set("executor", "module_timeout_s", "8")
            .set("executor", "process_limit", "64")
            .set("executor", "output_cap_bytes", "65536");
        let node = Node::start_as(&config, dir.path(), "node", user.uid());
        let data_dir = std::fs::canonicalize(node.data_dir.clone()).unwrap();
        let config_file = std::fs::canonicalize(dir.path().join("node.toml")).unwrap();
        let before = rss_kib(&node);

        let id = node.submit_multipart("hostile.zip", &hostile_project(port, &data_dir, &config_file, &marker));
        let e = finished(&node, &id);
        let escaped = std::fs::remove_file(&marker).is_ok();
        assert_eq!(e["status"], json!("done"), "{e:#}");
        assert_eq!(e["_run_info"]["modules_done"], json!(7), "{e:#}");

        assert_module(&e, "hostile", "tests/test_sleep.py", "timeout", [0, 0, 0, 1]);

        let network = module(&e, "hostile", "tests/test_network.py");
        assert_eq!(outcome(network), [0, 1, 0, 0], "{network:#}");
        let message = network["tests"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("Connection refused"), "{network:#}");
        let mut accepted = listener.accept();
        assert!(accepted.as_mut().is_err(), "the host's port was reached");

        let escape = module(&e, "hostile", "tests/test_escape.py");
        assert_eq!(outcome(escape), [1, 0, 0, 0], "writing its own /tmp is allowed: {escape:#}");
        assert!(!escaped, "the run wrote the host's /tmp");

        let output = module(&e, "hostile", "tests/test_output.py");
        assert_eq!(outcome(output), [0, 1, 0, 0], "{}", output["status"]);
        let kept = output["output"].as_str().unwrap();
        assert!(kept.len() < 70_000, "output kept: {} bytes", kept.len());
        assert!(kept.contains("more bytes of output dropped"), "the cap says what it dropped");

        let fork = module(&e, "hostile", "tests/test_fork.py");
        assert_eq!(outcome(fork), [1, 0, 0, 0], "the fork bomb ran into the process limit: {fork:#}");

        let reads = module(&e, "hostile", "tests/test_reads.py");
        assert_eq!(outcome(reads), [1, 0, 0, 0], "the node's data and config are not visible: {reads:#}");

        let server = module(&e, "hostile", "tests/test_server.py");
        assert_eq!(outcome(server), [1, 0, 0, 0], "the fork server is out of the child's reach: {server:#}");

        let after = rss_kib(&node);
        assert!(after < before + 40 * 1024, "node memory grew from {before} KiB to {after} KiB");
        let health = node.get("/health");
        assert_eq!(health.status, 200);
        assert_runs_ended(&node, user, 62000, 2);
    });
}

for_each_user!(hostile_modules_are_contained_and_reported_as_they_behaved, contained_and_reported);

// ---------------------------------------------------------------- memory and disk

const MEMORY: &str = include_str!("data/hostile/limits/test_memory.py");
const SCRATCH: &str = include_str!("data/hostile/limits/test_scratch.py");
const LITTER: &str = include_str!("data/hostile/limits/test_litter.py");

const MEMORY_LIMIT: u64 = 512 * MIB;
const SCRATCH_LIMIT: u64 = 256 * MIB;

fn memory_and_disk(user: User) {
    with_timeout(TEST_TIMEOUT, move || {
        let dir = temp_dir();
        let cfg = config(user, dir.path(), 62500, 1)
            .set("executor", "module_timeout_s", "120")
            .set("executor", "memory_limit_bytes", &MEMORY_LIMIT.to_string())
            .set("executor", "scratch_limit_bytes", &SCRATCH_LIMIT.to_string());
        let node = Node::start_as(&cfg, dir.path(), "node", user.uid());

        // Only a root node has a cgroup to hold the whole run to the limit.
        let cgroup = if user == User::Root { "true" } else { "false" };
        let memory = fill(MEMORY, &[("@CGROUP@", cgroup)]);
        let scratch = fill(SCRATCH, &[("@SCRATCH@", &SCRATCH_LIMIT.to_string())]);
        let zip = zip_of(&under(
            "greedy",
            &[
                ("requirements.txt", ""),
                ("tests/test_memory.py", memory.as_str()),
                ("tests/test_scratch.py", scratch.as_str()),
            ],
        ));
        let id = node.submit_multipart("greedy.zip", &zip);
        let e = finished(&node, &id);
        assert_eq!(e["status"], json!("done"), "{e:#}");
        assert_module(&e, "greedy", "tests/test_memory.py", "done", [1, 0, 0, 0]);
        assert_module(&e, "greedy", "tests/test_scratch.py", "done", [3, 0, 0, 0]);

        // The environment is built by now: what the next evaluation adds is
        // its own records, and whatever its run leaves behind.
        let before = disk_usage(&node.data_dir);
        let litter = zip_of(&under("litter", &[("requirements.txt", ""), ("tests/test_litter.py", LITTER)]));
        let second = node.submit_multipart("litter.zip", &litter);
        let e = finished(&node, &second);
        assert_module(&e, "litter", "tests/test_litter.py", "done", [1, 0, 0, 0]);
        let settled = poll_until(Duration::from_secs(20), || {
            let now = disk_usage(&node.data_dir);
            (now < before + 8 * MIB).then_some(now)
        });
        assert!(
            settled.is_some(),
            "the data dir grew from {before} to {} bytes: a run left files behind",
            disk_usage(&node.data_dir)
        );

        assert_eq!(sandbox_stats(&node)["limits"], json!(expected_limits(user)));
        assert_runs_ended(&node, user, 62500, 1);
    });
}

for_each_user!(memory_and_scratch_space_are_capped_per_run, memory_and_disk);

/// The scratch size bounds what a run writes, not the project it is given:
/// a project of 3 MiB runs under a scratch size of 1 MiB.
fn large_project(user: User) {
    with_timeout(TEST_TIMEOUT, move || {
        let dir = temp_dir();
        let cfg = config(user, dir.path(), 62800, 1).set("executor", "scratch_limit_bytes", &MIB.to_string());
        let node = Node::start_as(&cfg, dir.path(), "node", user.uid());
        let data = "x".repeat(3 * MIB as usize);
        let test = "import os\n\ndef test_reads_its_data():\n    \
                    with open(os.path.join(os.path.dirname(__file__), 'data.txt')) as f:\n        \
                    assert len(f.read()) == 3 * 1024 * 1024\n";
        let files = [("requirements.txt", ""), ("tests/data.txt", data.as_str()), ("tests/test_big.py", test)];
        let id = node.submit_multipart("big.zip", &zip_of(&under("big", &files)));
        let e = finished(&node, &id);
        assert_module(&e, "big", "tests/test_big.py", "done", [1, 0, 0, 0]);
    });
}

for_each_user!(a_project_larger_than_the_scratch_limit_runs, large_project);

// ---------------------------------------------------------------- isolation

const ISOLATION_A: &str = include_str!("data/hostile/isolation/test_a.py");
const ISOLATION_B: &str = include_str!("data/hostile/isolation/test_b.py");

fn runs_isolated(user: User) {
    with_timeout(TEST_TIMEOUT, move || {
        let dir = temp_dir();
        // One slot: the two modules run one after the other, in one folder
        // if the node gives them one.
        let cfg = config(user, dir.path(), 62600, 1);
        let node = Node::start_as(&cfg, dir.path(), "node", user.uid());
        let zip = zip_of(&under(
            "pair",
            &[("requirements.txt", ""), ("tests/test_a.py", ISOLATION_A), ("tests/test_b.py", ISOLATION_B)],
        ));
        let id = node.submit_multipart("pair.zip", &zip);
        let e = finished(&node, &id);
        assert_eq!(e["status"], json!("done"), "{e:#}");
        assert_module(&e, "pair", "tests/test_a.py", "done", [1, 0, 0, 0]);
        assert_module(&e, "pair", "tests/test_b.py", "done", [1, 0, 0, 0]);
        let leaked: Vec<_> = files_under(&node.data_dir)
            .into_iter()
            .filter(|f| f.file_name().is_some_and(|n| n.to_string_lossy().starts_with("leak_")))
            .collect();
        assert!(leaked.is_empty(), "the runs' writes reached the node: {leaked:?}");
    });
}

for_each_user!(each_run_works_on_its_own_copy_of_the_project, runs_isolated);

// ---------------------------------------------------------------- the mode

/// Starts a node of `mode` (with `cgroups` set when given) and checks the
/// sandbox figures of `/stats` and the line of the log that names them.
fn assert_mode_shown(dir: &Path, label: &str, mode: Mode, cgroups: Option<bool>, expected: Value) {
    let mut cfg = mode.config(&dir.join(label)).set("executor", "sandbox_uid_base", "62700");
    if let Some(cgroups) = cgroups {
        cfg = cfg.set("executor", "cgroups", &cgroups.to_string());
    }
    let node = mode.start(&cfg, dir, label);
    assert_eq!(sandbox_stats(&node), expected, "{}", mode.label());
    let words: Vec<&str> = ["kind", "users", "limits"].map(|k| expected[k].as_str().unwrap()).to_vec();
    let log = node.log();
    assert!(
        log.lines().any(|line| words.iter().all(|w| line.contains(w))),
        "no line of the log names {words:?}:\n{log}"
    );
}

fn sandbox_mode(user: User) {
    with_timeout(Duration::from_secs(120), move || {
        let dir = temp_dir();
        let limits = expected_limits(user);
        let users = if user == User::Root { "per-slot" } else { "user-namespace" };
        let bwrap = Mode::new(user, Sandbox::Bwrap);
        assert_mode_shown(dir.path(), "bwrap", bwrap, None, json!({"kind": "bwrap", "users": users, "limits": limits}));
        let none = Mode::new(user, Sandbox::None);
        assert_mode_shown(dir.path(), "none", none, None, json!({"kind": "none", "users": "node", "limits": limits}));
        if user == User::Root {
            let expected = json!({"kind": "bwrap", "users": "per-slot", "limits": "rlimits"});
            assert_mode_shown(dir.path(), "nocgroup", bwrap, Some(false), expected);
        }
    });
}

for_each_user!(the_sandbox_mode_shows_in_stats_and_log, sandbox_mode);

// ---------------------------------------------------------------- without bwrap

/// Starts the binary with `config` and a PATH that holds no bwrap; answers
/// whether it exited, and its stderr.
fn start_without_bwrap(dir: &Path, config: &NodeConfig) -> (bool, String) {
    let path = dir.join("node.toml");
    std::fs::write(&path, config.to_toml()).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_evalmesh"))
        .args(["node", "--config"])
        .arg(&path)
        .env("PATH", "/nonexistent")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let exited = poll_until(Duration::from_secs(10), || child.try_wait().unwrap()).is_some();
    if !exited {
        child.kill().unwrap();
    }
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    child.wait().unwrap();
    (exited, stderr)
}

#[test]
fn without_bwrap_a_node_refuses_to_start_unless_told_to_run_tests_unsandboxed() {
    with_timeout(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        // An absolute interpreter, so that only bwrap is missing from PATH.
        let python =
            std::process::Command::new("python3").args(["-c", "import sys; print(sys.executable)"]).output().unwrap();
        let python = String::from_utf8(python.stdout).unwrap().trim().to_owned();
        let config = NodeConfig::new(&dir.path().join("data")).set("executor", "python", &toml_string(&python));
        let (exited, stderr) = start_without_bwrap(dir.path(), &config);
        assert!(exited, "the node started without a sandbox: {stderr}");
        assert!(stderr.contains("cannot isolate tests"), "{stderr}");
        assert!(stderr.contains("executor.sandbox = \"none\""), "the error names the way out: {stderr}");

        let unsandboxed = config.set("executor", "sandbox", "\"none\"");
        let (exited, stderr) = start_without_bwrap(dir.path(), &unsandboxed);
        assert!(!exited, "with sandbox = none the node serves: {stderr}");
        assert!(stderr.contains("student code runs without isolation"), "{stderr}");
    });
}
