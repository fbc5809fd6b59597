//! Hostile projects against a real node: each test submits projects whose
//! tests, conftest or build backend try one thing a student's code must not
//! be able to do — get out of the sandbox (run as the node, read its config,
//! chmod the host's files), cheat (fake or rewrite its report, change a
//! classmate's tests, see another run's files) or stall the node (hang or
//! flood the report, eat memory or disk). Every one must end with the
//! evaluation `done`, each module reported as it truly behaved, and the
//! node serving as before.
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
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// The longest one evaluation here may take, environment build included.
const EVALUATION_TIMEOUT: Duration = Duration::from_secs(240);

/// The overall limit of one test, above [`EVALUATION_TIMEOUT`] so that a
/// stuck evaluation fails with the node's log rather than a bare timeout.
const TEST_TIMEOUT: Duration = Duration::from_secs(420);

const MIB: u64 = 1 << 20;

// ---------------------------------------------------------------- helpers

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("evalmesh-hostile-").tempdir().expect("creating a temp dir")
}

/// A node of `user` with its data in `<dir>/data`, `slots` slots, and the
/// sandbox user ids from `uid_base` (used by root nodes only).
fn config(user: User, dir: &Path, uid_base: u32, slots: usize) -> NodeConfig {
    user.configure(NodeConfig::new(&dir.join("data"))).set("node", "slots", &slots.to_string()).set(
        "executor",
        "sandbox_uid_base",
        &uid_base.to_string(),
    )
}

/// `template` with each `@NAME@` placeholder replaced; every one must be.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
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
fn rss_kib(node: &Node) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", node.pid())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Waits for the evaluation to end and returns it with `?detail=tests`.
fn finished(node: &Node, id: &str) -> Value {
    node.wait_finished(id, EVALUATION_TIMEOUT);
    node.evaluation(id, "?detail=tests")
}

fn module<'a>(evaluation: &'a Value, project: &str, module: &str) -> &'a Value {
    &evaluation["module_results"][project][module]
}

/// `[passed, failed, skipped, errors]`, `u64::MAX` for a missing count.
fn outcome(m: &Value) -> [u64; 4] {
    ["passed", "failed", "skipped", "errors"].map(|k| m[k].as_u64().unwrap_or(u64::MAX))
}

/// Asserts a module ended with `status` and exactly `counts`.
fn assert_module(evaluation: &Value, project: &str, name: &str, status: &str, counts: [u64; 4]) {
    let m = module(evaluation, project, name);
    assert_eq!((m["status"].as_str(), outcome(m)), (Some(status), counts), "{project} {name}: {m:#}");
}

/// Asserts a module is an `error` credited with at most `passes` passes, the
/// tests that truly passed before it misbehaved.
fn assert_error_module(evaluation: &Value, project: &str, name: &str, passes: u64) {
    let m = module(evaluation, project, name);
    assert_eq!(m["status"], json!("error"), "{project} {name}: {m:#}");
    assert!(m["passed"].as_u64().is_some_and(|p| p <= passes), "{project} {name} gained passes: {m:#}");
    assert!(m["output"].as_str().is_some_and(|o| !o.trim().is_empty()), "{project} {name} says why: {m:#}");
}

/// Asserts the project ran without a project-level error.
fn assert_project_ran(evaluation: &Value, project: &str) {
    let p = &evaluation["projects"][project];
    assert_eq!(p["error"], Value::Null, "{project}: {p:#}");
}

/// Everything a client can read about evaluation `id`, and the node's log.
fn everything_said(node: &Node, id: &str) -> String {
    let mut all = node.log();
    for path in [format!("/evaluation/{id}?detail=tests"), format!("/evaluation/{id}/events"), "/evaluation".into()] {
        all.push_str(&node.get(&path).text());
    }
    all.push_str(&node.get("/stats?scope=local").text());
    all
}

/// Asserts nothing of the node's config shows in any answer about `id` nor
/// in the log: not the cluster secret, not one of its section headers.
fn assert_config_shows_nowhere(node: &Node, id: &str) {
    let all = everything_said(node, id);
    for needle in [TEST_SECRET, "[cluster]", "[executor]", "[node]"] {
        assert!(!all.contains(needle), "{needle:?} of the node's config was handed out:\n{all}");
    }
}

/// Waits until no process of the runs is left: none under the node, and, for
/// a root node, none of the sandbox user ids of its `slots`.
fn assert_runs_ended(node: &Node, user: User, uid_base: u32, slots: u32) {
    let pid = node.pid();
    let left = poll_until(Duration::from_secs(10), || descendants(pid).is_empty().then_some(()));
    assert!(left.is_some(), "processes of the runs outlive them: {:?}", descendants(pid));
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
fn expected_limits(user: User) -> &'static str {
    match user {
        User::Ordinary => "rlimits",
        User::Root if Path::new("/sys/fs/cgroup/memory").is_dir() && Path::new("/sys/fs/cgroup/pids").is_dir() => {
            "cgroup-v1"
        }
        User::Root => "cgroup-v2",
    }
}

/// The sandbox's figures in `GET /stats?scope=local`.
fn sandbox_stats(node: &Node) -> Value {
    let stats = node.get("/stats?scope=local");
    assert_eq!(stats.status, 200, "{stats:?}");
    stats.json()["sandbox"].clone()
}

/// Waits until the node has no busy slot and no queued job.
fn assert_slots_free(node: &Node) {
    let free = poll_until(Duration::from_secs(20), || {
        let s = node.get("/stats?scope=local").json();
        (s["slots_busy"] == json!(0) && s["jobs_queued"] == json!(0)).then_some(())
    });
    assert!(free.is_some(), "slots still busy: {}", node.get("/stats?scope=local").text());
}

const PASS: &str = "def test_passes():\n    assert True\n";

const PASS_2_FAIL_1: &str = "def test_a():\n    assert True\n\n\ndef test_b():\n    assert 'x' in 'xyz'\n\n\n\
                             def test_c():\n    assert 3 < 2\n";

/// One test that passes and one that fails.
const PASS_1_FAIL_1: &str = "def test_passes():\n    assert True\n\n\ndef test_fails():\n    assert 1 == 0\n";

// ---------------------------------------------------------------- contained and reported

const READS: &str = include_str!("data/hostile/reads.py");

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
        assert_eq!(e["_run_info"]["modules_done"], json!(6), "{e:#}");

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

        let after = rss_kib(&node);
        assert!(after < before + 40 * 1024, "node memory grew from {before} KiB to {after} KiB");
        let health = node.get("/health");
        assert_eq!(health.status, 200);
        assert_runs_ended(&node, user, 62000, 2);
    });
}

#[test]
fn hostile_modules_are_contained_and_reported_as_they_behaved_as_root() {
    contained_and_reported(User::Root);
}

#[test]
fn hostile_modules_are_contained_and_reported_as_they_behaved_as_ordinary_user() {
    contained_and_reported(User::Ordinary);
}

// ---------------------------------------------------------------- no code outside the sandbox

const ATTACKER_CONFTEST: &str = include_str!("data/hostile/install/attacker_conftest.py");
const RELINKER_CONFTEST: &str = include_str!("data/hostile/install/relinker_conftest.py");
const CLASSMATE_TESTS: &str = include_str!("data/hostile/install/test_classmate_grade.py");

/// Three projects: `attacker`, whose conftest plants a project with an
/// in-tree build backend and names it in requirements.txt; `classmate`,
/// whose failing test the backend rewrites to pass; `relinker`, whose
/// conftest makes requirements.txt a link to the node's config. The
/// attacker's name sorts first, so that with one slot its modules, and the
/// installs a node would run for them, come after the classmate's
/// collection and before its module.
fn install_projects(marker: &str, config: &Path) -> Vec<u8> {
    let config = config.display().to_string();
    let attacker = fill(ATTACKER_CONFTEST, &[("@MARKER@", marker), ("@CONFIG@", &config)]);
    let relinker = fill(RELINKER_CONFTEST, &[("@CONFIG@", &config)]);
    let mut files = under(
        "attacker",
        &[
            ("requirements.txt", ""),
            ("tests/conftest.py", attacker.as_str()),
            ("tests/test_one.py", PASS_1_FAIL_1),
            ("tests/test_two.py", PASS_1_FAIL_1),
            ("tests/test_three.py", PASS_1_FAIL_1),
        ],
    );
    files.extend(under("classmate", &[("requirements.txt", ""), ("tests/test_classmate_grade.py", CLASSMATE_TESTS)]));
    files.extend(under(
        "relinker",
        &[("requirements.txt", ""), ("tests/conftest.py", relinker.as_str()), ("tests/test_relinked.py", PASS)],
    ));
    zip_of(&files)
}

fn install_code_stays_in_the_sandbox(user: User) {
    with_timeout(TEST_TIMEOUT, move || {
        let dir = temp_dir();
        let marker = format!("/tmp/evalmesh_install_marker_{}", uuid::Uuid::new_v4().simple());
        let config_file = dir.path().join("node.toml");
        let cfg = config(user, dir.path(), 62100, 1);
        let node = Node::start_as(&cfg, dir.path(), "node", user.uid());

        let id = node.submit_multipart("install.zip", &install_projects(&marker, &config_file));
        let e = finished(&node, &id);
        let planted = std::fs::read_to_string(&marker).ok();
        let _ = std::fs::remove_file(&marker);
        assert_eq!(planted, None, "the planted build backend ran on the host and wrote {marker}");
        assert_eq!(e["status"], json!("done"), "{e:#}");

        assert_project_ran(&e, "classmate");
        assert_module(&e, "classmate", "tests/test_classmate_grade.py", "done", [1, 1, 0, 0]);
        assert_project_ran(&e, "attacker");
        for name in ["tests/test_one.py", "tests/test_two.py", "tests/test_three.py"] {
            assert_module(&e, "attacker", name, "done", [1, 1, 0, 0]);
        }
        assert_project_ran(&e, "relinker");
        assert_module(&e, "relinker", "tests/test_relinked.py", "done", [1, 0, 0, 0]);
        assert_config_shows_nowhere(&node, &id);
        assert_runs_ended(&node, user, 62100, 1);
    });
}

#[test]
fn requirements_changed_by_a_run_are_never_installed_as_root() {
    install_code_stays_in_the_sandbox(User::Root);
}

#[test]
fn requirements_changed_by_a_run_are_never_installed_as_ordinary_user() {
    install_code_stays_in_the_sandbox(User::Ordinary);
}

/// A git repository whose requirements.txt is a symbolic link to the node's
/// config (the clone checks it out as a plain file holding the path), beside
/// an honest one.
fn symlinked_requirements(user: User) {
    with_timeout(TEST_TIMEOUT, move || {
        let dir = temp_dir();
        let config_file = dir.path().join("node.toml");
        let repos = dir.path().join("repos");
        let linked = repos.join("linked");
        write_files(&linked, &[("tests/test_linked.py", PASS)]);
        std::os::unix::fs::symlink(&config_file, linked.join("requirements.txt")).unwrap();
        git(&linked, &["init", "-q"]);
        git(&linked, &["add", "-A"]);
        git(&linked, &["commit", "-q", "-m", "requirements are the node's config"]);
        git_repo(&repos.join("honest"), &[("requirements.txt", ""), ("tests/test_honest.py", PASS)]);
        if let Some(uid) = user.uid() {
            chown_tree(&repos, uid);
        }
        let cfg = config(user, dir.path(), 62150, 1).set("intake", "git_schemes", r#"["file"]"#);
        let node = Node::start_as(&cfg, dir.path(), "node", user.uid());

        let url = |name: &str| format!("file://{}", repos.join(name).display());
        let id = node.submit_json(&json!({ "projects": [url("linked"), url("honest")] }));
        let e = finished(&node, &id);
        assert_eq!(e["status"], json!("done"), "{e:#}");

        let p = &e["projects"]["linked"];
        let error = p["error"].as_str().unwrap_or_else(|| panic!("linked has no project error: {e:#}"));
        assert!(error.contains("requirements.txt"), "the error names requirements.txt: {error}");
        assert_eq!(outcome(p), [0, 0, 0, 0], "{p:#}");
        assert_eq!(p["nota"], json!(0.0), "{p:#}");

        assert_project_ran(&e, "honest");
        assert_module(&e, "honest", "tests/test_honest.py", "done", [1, 0, 0, 0]);
        assert_config_shows_nowhere(&node, &id);
    });
}

#[test]
fn symlinked_requirements_fail_their_project_and_show_nothing_of_the_target_as_root() {
    symlinked_requirements(User::Root);
}

#[test]
fn symlinked_requirements_fail_their_project_and_show_nothing_of_the_target_as_ordinary_user() {
    symlinked_requirements(User::Ordinary);
}

const EVIL_BACKEND: &str = include_str!("data/hostile/install/backend.py");
const EVIL_PYPROJECT: &str = include_str!("data/hostile/install/pyproject.toml");

/// Requirement lines that name the project itself: skipped, the project
/// root being on sys.path anyway.
const OWN_LINES: [(&str, &str); 2] = [("dot", "."), ("dash_e_dot", "-e .")];

/// Requirement lines that name local code, a VCS, another index or another
/// file: each fails its project, with the line in the error.
const REFUSED_LINES: [(&str, &str); 13] = [
    ("relative", "./evil"),
    ("editable", "-e ./evil"),
    ("parent", "../evil"),
    ("absolute", "/usr/lib/python3/dist-packages"),
    ("file_url", "file:///usr/lib/python3/dist-packages"),
    ("vcs", "git+https://example.invalid/evil.git"),
    ("include", "-r /etc/passwd"),
    ("constraints", "-c /etc/passwd"),
    ("index", "-i https://example.invalid/simple"),
    ("index_url", "--index-url https://example.invalid/simple"),
    ("extra_index", "--extra-index-url https://example.invalid/simple"),
    ("find_links", "-f /tmp"),
    ("find_links_long", "--find-links /tmp"),
];

fn requirement_lines(user: User) {
    with_timeout(TEST_TIMEOUT, move || {
        let dir = temp_dir();
        let marker = format!("/tmp/evalmesh_backend_marker_{}", uuid::Uuid::new_v4().simple());
        let backend = fill(EVIL_BACKEND, &[("@MARKER@", &marker)]);
        let mut files = Vec::new();
        for (project, line) in OWN_LINES.iter().chain(&REFUSED_LINES) {
            files.extend(under(
                project,
                &[
                    ("requirements.txt", format!("{line}\n")),
                    ("tests/test_x.py", PASS.to_owned()),
                    // What `./evil` names, built by importing its backend.
                    ("evil/pyproject.toml", EVIL_PYPROJECT.to_owned()),
                    ("evil/backend.py", backend.clone()),
                ],
            ));
        }
        let cfg = config(user, dir.path(), 62170, 2);
        let node = Node::start_as(&cfg, dir.path(), "node", user.uid());
        let id = node.submit_multipart("lines.zip", &zip_of(&files));
        let e = finished(&node, &id);
        let built = std::fs::read_to_string(&marker).ok();
        let _ = std::fs::remove_file(&marker);
        assert_eq!(built, None, "a requirement line had local code built on the host");
        assert_eq!(e["status"], json!("done"), "{e:#}");

        for (project, _) in OWN_LINES {
            assert_project_ran(&e, project);
            assert_module(&e, project, "tests/test_x.py", "done", [1, 0, 0, 0]);
        }
        for (project, line) in REFUSED_LINES {
            let p = &e["projects"][project];
            let error = p["error"].as_str().unwrap_or_else(|| panic!("{line:?} was taken: {p:#}"));
            assert!(error.contains(line), "the error of {project} names {line:?}: {error}");
            assert_eq!(outcome(p), [0, 0, 0, 0], "{p:#}");
            assert!(e["module_results"].get(project).is_none(), "{project} ran: {e:#}");
        }
        let all = everything_said(&node, &id);
        assert!(!all.contains("root:x:0:0"), "/etc/passwd was read into an answer:\n{all}");
        assert_config_shows_nowhere(&node, &id);
    });
}

#[test]
fn requirement_lines_naming_local_code_or_other_sources_fail_their_project_as_root() {
    requirement_lines(User::Root);
}

#[test]
fn requirement_lines_naming_local_code_or_other_sources_fail_their_project_as_ordinary_user() {
    requirement_lines(User::Ordinary);
}

// ---------------------------------------------------------------- host files through a swapped folder

const SWAPPER: &str = include_str!("data/hostile/swap/test_a_swap.py");

/// How many host files the swapper aims at.
const TREE_FILES: usize = 2000;

/// A root-only folder of root-only files outside the node's data dir.
fn root_only_tree(dir: &Path) -> std::path::PathBuf {
    let tree = dir.join("root-only");
    std::fs::create_dir(&tree).unwrap();
    for i in 0..TREE_FILES {
        let file = tree.join(format!("secret-{i:04}"));
        std::fs::write(&file, format!("secret {i}\n")).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::set_permissions(&tree, std::fs::Permissions::from_mode(0o700)).unwrap();
    tree
}

/// The entries of `tree` (itself included) that are no longer root's alone:
/// mode other than 0600 (0700 for the folder), or owner or group not root.
fn changed_entries(tree: &Path) -> Vec<String> {
    let mut entries = vec![tree.to_path_buf()];
    entries.extend(std::fs::read_dir(tree).unwrap().map(|e| e.unwrap().path()));
    entries
        .into_iter()
        .filter_map(|path| {
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let expected = if meta.is_dir() { 0o700 } else { 0o600 };
            let mode = meta.permissions().mode() & 0o7777;
            (mode != expected || meta.uid() != 0 || meta.gid() != 0)
                .then(|| format!("{} {mode:o} {}:{}", path.display(), meta.uid(), meta.gid()))
        })
        .collect()
}

fn swapped_folder(user: User) {
    with_timeout(TEST_TIMEOUT, move || {
        let dir = temp_dir();
        let tree = root_only_tree(dir.path());
        let swapper = fill(SWAPPER, &[("@TREE@", &tree.display().to_string()), ("@SECONDS@", "10")]);
        // The swapper first, then modules enough to keep the other slot
        // starting runs of the same project while it swaps.
        let mut files = vec![
            ("swapper/requirements.txt".to_owned(), String::new()),
            ("swapper/swapped/keep.txt".to_owned(), "kept\n".to_owned()),
            ("swapper/tests/test_a_swap.py".to_owned(), swapper),
        ];
        for i in 0..16 {
            files.push((format!("swapper/tests/test_m{i:02}.py"), PASS.to_owned()));
        }
        let cfg = config(user, dir.path(), 62200, 2).set("executor", "module_timeout_s", "60");
        let node = Node::start_as(&cfg, dir.path(), "node", user.uid());

        let id = node.submit_multipart("swapper.zip", &zip_of(&files));
        let e = finished(&node, &id);
        let changed = changed_entries(&tree);
        assert!(
            changed.is_empty(),
            "{} of the root-only entries changed, as: {:?}",
            changed.len(),
            &changed[..5.min(changed.len())]
        );
        assert_eq!(e["status"], json!("done"), "{e:#}");
        assert_module(&e, "swapper", "tests/test_a_swap.py", "done", [1, 0, 0, 0]);
        for i in 0..16 {
            assert_module(&e, "swapper", &format!("tests/test_m{i:02}.py"), "done", [1, 0, 0, 0]);
        }
        assert_runs_ended(&node, user, 62200, 2);
    });
}

#[test]
fn a_swapped_folder_never_opens_host_files_to_runs_as_root() {
    swapped_folder(User::Root);
}

#[test]
#[ignore = "a node run by an ordinary user cannot chown or chmod root's files at all: the attack needs a root node"]
fn a_swapped_folder_never_opens_host_files_to_runs_as_ordinary_user() {
    swapped_folder(User::Ordinary);
}

// ---------------------------------------------------------------- hijacked and faked reports

const HIJACK_HELPER: &str = include_str!("data/hostile/hijack/atexit_hijack.py");
const HIJACK_FIFO: &str = include_str!("data/hostile/hijack/test_fifo.py");
const HIJACK_ZERO: &str = include_str!("data/hostile/hijack/test_zero.py");
const FLOOD: &str = include_str!("data/hostile/hijack/test_flood.py");

fn hijacked_reports(user: User) {
    with_timeout(TEST_TIMEOUT, move || {
        let dir = temp_dir();
        // Honest modules take seconds: a module stuck on its report shows
        // soon, and so does an evaluation that never ends.
        let cfg = config(user, dir.path(), 62300, 2).set("executor", "module_timeout_s", "30").set(
            "executor",
            "memory_limit_bytes",
            &(1u64 << 30).to_string(),
        );
        // Should a node read /dev/zero to its end, it dies at 4 GiB, alone.
        let launch = Launch { uid: user.uid(), address_space_bytes: Some(4 << 30) };
        let node = Node::launch(&cfg, dir.path(), "node", launch);
        let before = rss_kib(&node);

        let mut files = under(
            "fifo",
            &[("requirements.txt", ""), ("tests/atexit_hijack.py", HIJACK_HELPER), ("tests/test_fifo.py", HIJACK_FIFO)],
        );
        files.extend(under(
            "zero",
            &[("requirements.txt", ""), ("tests/atexit_hijack.py", HIJACK_HELPER), ("tests/test_zero.py", HIJACK_ZERO)],
        ));
        files.extend(under("flood", &[("requirements.txt", ""), ("tests/test_flood.py", FLOOD)]));
        let id = node.submit_multipart("hijack.zip", &zip_of(&files));
        node.wait_finished(&id, Duration::from_secs(150));
        let e = node.evaluation(&id, "?detail=tests");
        assert_eq!(e["status"], json!("done"), "{e:#}");
        assert_module(&e, "fifo", "tests/test_fifo.py", "done", [1, 0, 0, 0]);
        assert_module(&e, "zero", "tests/test_zero.py", "done", [1, 0, 0, 0]);
        assert_error_module(&e, "flood", "tests/test_flood.py", 1);
        assert_slots_free(&node);

        let honest = zip_of(&under("honest", &[("requirements.txt", ""), ("tests/test_honest.py", PASS_2_FAIL_1)]));
        let second = node.submit_multipart("honest.zip", &honest);
        let e = finished(&node, &second);
        assert_eq!(e["status"], json!("done"), "{e:#}");
        assert_module(&e, "honest", "tests/test_honest.py", "done", [2, 1, 0, 0]);

        let after = rss_kib(&node);
        assert!(after < before + 64 * 1024, "node memory grew from {before} KiB to {after} KiB");
        assert_slots_free(&node);
        assert_runs_ended(&node, user, 62300, 2);
    });
}

#[test]
fn hijacked_report_paths_neither_stall_nor_bloat_the_node_as_root() {
    hijacked_reports(User::Root);
}

#[test]
fn hijacked_report_paths_neither_stall_nor_bloat_the_node_as_ordinary_user() {
    hijacked_reports(User::Ordinary);
}

const FAKES: &str = include_str!("data/hostile/faked/fakes.py");
const FAKE_REWRITE: &str = include_str!("data/hostile/faked/test_rewrite.py");
const FAKE_EXIT: &str = include_str!("data/hostile/faked/test_exit.py");
const FAKE_STREAM: &str = include_str!("data/hostile/faked/test_stream.py");

fn faked_reports(user: User) {
    with_timeout(TEST_TIMEOUT, move || {
        let dir = temp_dir();
        let cfg = config(user, dir.path(), 62400, 2).set("executor", "module_timeout_s", "60");
        let node = Node::start_as(&cfg, dir.path(), "node", user.uid());
        let zip = zip_of(&under(
            "faker",
            &[
                ("requirements.txt", ""),
                ("tests/fakes.py", FAKES),
                ("tests/test_rewrite.py", FAKE_REWRITE),
                ("tests/test_exit.py", FAKE_EXIT),
                ("tests/test_stream.py", FAKE_STREAM),
            ],
        ));
        let id = node.submit_multipart("faker.zip", &zip);
        let e = finished(&node, &id);
        assert_eq!(e["status"], json!("done"), "{e:#}");
        assert_module(&e, "faker", "tests/test_rewrite.py", "done", [2, 2, 0, 0]);
        assert_error_module(&e, "faker", "tests/test_exit.py", 1);
        assert_error_module(&e, "faker", "tests/test_stream.py", 0);
        let p = &e["projects"]["faker"];
        assert!(p["passed"].as_u64().is_some_and(|passed| passed <= 3), "{p:#}");
        assert_runs_ended(&node, user, 62400, 2);
    });
}

#[test]
fn faked_reports_count_only_what_truly_ran_as_root() {
    faked_reports(User::Root);
}

#[test]
fn faked_reports_count_only_what_truly_ran_as_ordinary_user() {
    faked_reports(User::Ordinary);
}

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

#[test]
fn memory_and_scratch_space_are_capped_per_run_as_root() {
    memory_and_disk(User::Root);
}

#[test]
fn memory_and_scratch_space_are_capped_per_run_as_ordinary_user() {
    memory_and_disk(User::Ordinary);
}

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

#[test]
fn each_run_works_on_its_own_copy_of_the_project_as_root() {
    runs_isolated(User::Root);
}

#[test]
fn each_run_works_on_its_own_copy_of_the_project_as_ordinary_user() {
    runs_isolated(User::Ordinary);
}

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

#[test]
fn the_sandbox_mode_shows_in_stats_and_log_as_root() {
    sandbox_mode(User::Root);
}

#[test]
fn the_sandbox_mode_shows_in_stats_and_log_as_ordinary_user() {
    sandbox_mode(User::Ordinary);
}

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
