//! A hostile client cannot starve a node, checked on the real binary: a node
//! runs at most `max_running_evaluations` evaluations and queues at most
//! `max_queued_evaluations` more; past that a submission gets 503 with
//! `Retry-After` and leaves nothing behind, while the accepted ones run one
//! after the other, survive a crash while they wait, and end with exact
//! counts. A git repository larger than `max_clone_bytes` fails its project
//! and the evaluation goes on. Every test has its own temp dir, data dir and
//! node, and runs under an overall timeout.

mod common;

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{git_repo, http, multipart, noise, under, wait_until, with_timeout, zip_of, Body, Node, NodeConfig, Part};
use serde_json::{json, Value};

/// The longest any one evaluation here may take, first environment build
/// included.
const EVALUATION_TIMEOUT: Duration = Duration::from_secs(120);

/// Above [`EVALUATION_TIMEOUT`] so that a stuck evaluation fails with the
/// node's log rather than a bare timeout.
const TEST_TIMEOUT: Duration = Duration::from_secs(300);

/// What a full node answers in `Retry-After`.
const RETRY_AFTER_S: u64 = 7;

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("evalmesh-limits-").tempdir().expect("creating a temp dir")
}

/// A node that runs one evaluation at a time and queues one more.
fn one_and_one(dir: &Path) -> NodeConfig {
    NodeConfig::new(&dir.join("data"))
        .set("admission", "max_running_evaluations", "1")
        .set("admission", "max_queued_evaluations", "1")
        .set("admission", "retry_after_s", &RETRY_AFTER_S.to_string())
}

/// A project whose first test waits until a file `gate` appears in the
/// project's folder, so that an evaluation of it holds its running place
/// until the test opens the gate: 2 passed, 1 failed. The project's folder is
/// the one place outside the run's own scratch that the test and the
/// sandboxed run both see.
const GATED: &str = "\
import os
import time


def test_waits_for_the_gate():
    deadline = time.time() + 100
    while not os.path.exists('gate') and time.time() < deadline:
        time.sleep(0.05)
    assert os.path.exists('gate')


def test_passes():
    assert True


def test_fails():
    assert 1 == 2
";

fn gated_zip() -> Vec<u8> {
    zip_of(&under("gated", &[("requirements.txt", ""), ("tests/test_gate.py", GATED)]))
}

/// Opens the gate of each evaluation, in its workspace on `node`.
fn open_gates(node: &Node, ids: &[&String]) {
    for id in ids {
        let gate = node.data_dir.join("evaluations").join(id.as_str()).join("gated/gate");
        std::fs::write(&gate, "open").unwrap_or_else(|e| panic!("opening {}: {e}", gate.display()));
    }
}

fn counts(v: &Value) -> [u64; 4] {
    ["passed", "failed", "skipped", "errors"]
        .map(|k| v[k].as_u64().unwrap_or_else(|| panic!("{k} missing or not a count in {v}")))
}

/// Asserts that a gated evaluation ended `done` with its exact counts.
fn assert_gated_done(e: &Value) {
    assert_eq!(e["status"], json!("done"), "{e}");
    let module = &e["module_results"]["gated"]["tests/test_gate.py"];
    assert_eq!(module["status"], json!("done"), "{module}");
    assert_eq!(counts(module), [2, 1, 0, 0], "{module}");
    assert_eq!(counts(&e["projects"]["gated"]), [2, 1, 0, 0], "{e}");
    assert_eq!(e["_run_info"]["modules_done"], json!(1), "{e}");
}

fn time_of(e: &Value, field: &str) -> DateTime<Utc> {
    let text = e[field].as_str().unwrap_or_else(|| panic!("no {field}: {e}"));
    DateTime::parse_from_rfc3339(text).unwrap_or_else(|err| panic!("{field} {text:?}: {err}")).with_timezone(&Utc)
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a folder entry").file_name().to_string_lossy().into_owned())
        .collect()
}

fn local_stats(node: &Node) -> Value {
    let stats = node.get("/stats?scope=local");
    assert_eq!(stats.status, 200, "{stats:?}");
    stats.json()
}

#[test]
fn a_full_node_refuses_with_503_and_keeps_nothing_while_the_accepted_run_one_after_the_other() {
    with_timeout(TEST_TIMEOUT, || {
        let dir = temp_dir();
        let node = Node::start(&one_and_one(dir.path()), dir.path(), "node");
        let (content_type, body) = multipart(&[Part::file("file", "gated.zip", &gated_zip())]);

        // Three at once: the places are taken one by one in the registry, so
        // exactly one is refused whatever the order they arrive in.
        let start = Arc::new(Barrier::new(3));
        let posts: Vec<_> = (0..3)
            .map(|_| {
                let (addr, content_type, body, start) =
                    (node.addr.clone(), content_type.clone(), body.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    http(&addr, "POST", "/evaluation", &[("Content-Type", &content_type)], Body::Fixed(&body))
                })
            })
            .collect();
        let answers: Vec<common::Response> = posts.into_iter().map(|p| p.join().expect("a posting thread")).collect();
        let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        assert_eq!(statuses.iter().filter(|s| **s == 202).count(), 2, "{answers:?}");
        let refused = answers.iter().find(|a| a.status == 503).unwrap_or_else(|| panic!("none refused: {answers:?}"));
        assert_eq!(refused.header("retry-after"), Some(RETRY_AFTER_S.to_string().as_str()), "{refused:?}");
        let error = refused.error();
        assert!(error.contains(&format!("retry after {RETRY_AFTER_S} s")), "{error}");
        let mut accepted: Vec<String> = answers
            .iter()
            .filter(|a| a.status == 202)
            .map(|a| a.json()["id"].as_str().expect("an id").to_owned())
            .collect();
        accepted.sort();

        // A git submission is refused before its body is read, too.
        let git = node.post("/evaluation", "application/json", br#"{"projects": ["https://example.invalid/r.git"]}"#);
        assert_eq!(git.status, 503, "{git:?}");
        assert_eq!(git.header("retry-after"), Some(RETRY_AFTER_S.to_string().as_str()));

        // One runs, held at the gate; the other waits, recorded as queued.
        let statuses: Vec<String> =
            accepted.iter().map(|id| node.evaluation(id, "")["status"].as_str().unwrap_or("").to_owned()).collect();
        assert!(statuses.contains(&"queued".to_owned()), "{statuses:?}");
        let s = local_stats(&node);
        assert_eq!(
            (&s["evaluations_running"], &s["evaluations_queued"], &s["submissions_receiving"]),
            (&json!(1), &json!(1), &json!(0)),
            "{s}"
        );
        let global = node.get("/stats").json();
        assert_eq!(global["nodes"][&node.addr]["evaluations_queued"], json!(1), "{global}");
        assert_eq!(global["global"]["evaluations_running"], json!(1), "{global}");

        // The refused submissions left no row and no file.
        let mut listed: Vec<String> = node.get("/evaluation").json()["evaluations"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|e| e["id"].as_str().expect("an id").to_owned())
            .collect();
        listed.sort();
        assert_eq!(listed, accepted);
        assert!(entries(&node.data_dir.join("uploads")).is_empty(), "uploads left behind");
        let workspaces = entries(&node.data_dir.join("evaluations"));
        assert!(workspaces.iter().all(|w| accepted.contains(w)), "{workspaces:?} beyond {accepted:?}");

        open_gates(&node, &accepted.iter().collect::<Vec<_>>());
        let mut done: Vec<Value> = accepted.iter().map(|id| node.wait_finished(id, EVALUATION_TIMEOUT)).collect();
        for e in &done {
            assert_gated_done(e);
        }
        done.sort_by_key(|e| time_of(e, "started_at"));
        assert!(
            time_of(&done[1], "started_at") >= time_of(&done[0], "finished_at"),
            "the second started before the first finished: {} {}",
            done[0],
            done[1]
        );
        let s = wait_until("the last supervisor to stop", Duration::from_secs(10), || {
            let s = local_stats(&node);
            (s["evaluations_running"] == json!(0)).then_some(s)
        });
        assert_eq!(s["evaluations_queued"], json!(0), "{s}");
        assert_eq!(node.post("/evaluation", &content_type, &body).status, 202, "places are free again");
    });
}

#[test]
fn queued_evaluations_survive_a_crash_and_complete() {
    with_timeout(TEST_TIMEOUT, || {
        let dir = temp_dir();
        let cfg = one_and_one(dir.path());
        let mut first = Node::start(&cfg, dir.path(), "first");
        let zip = gated_zip();
        let running = first.submit_multipart("gated.zip", &zip);
        let queued = first.submit_multipart("gated.zip", &zip);
        wait_until("the first evaluation to run", EVALUATION_TIMEOUT, || {
            (first.evaluation(&running, "")["status"] == json!("running")).then_some(())
        });
        assert_eq!(first.evaluation(&queued, "")["status"], json!("queued"));
        first.kill();
        // Its pytest, waiting at the gate in a process group of its own, outlives it.
        common::kill_processes_in(&first.data_dir);

        let second = Node::start(&cfg, dir.path(), "second");
        open_gates(&second, &[&running, &queued]);
        for id in [&running, &queued] {
            let e = second.wait_finished(id, EVALUATION_TIMEOUT);
            assert_gated_done(&e);
            assert_eq!(e["supervisor"], json!(second.addr), "{e}");
            assert!(second.log().contains(&format!("evaluation {id}: adopted in term 1")), "{}", second.log());
        }
    });
}

#[test]
fn a_repository_larger_than_max_clone_bytes_fails_its_project_and_the_evaluation_goes_on() {
    with_timeout(TEST_TIMEOUT, || {
        let dir = temp_dir();
        let repos = dir.path().join("repos");
        let passing = "def test_a():\n    assert True\n\n\ndef test_b():\n    assert False\n";
        git_repo(
            &repos.join("big"),
            &[("tests/test_big.py", passing.as_bytes().to_vec()), ("data.bin", noise(3 << 20))],
        );
        git_repo(&repos.join("small"), &[("tests/test_small.py", passing)]);
        let cfg = NodeConfig::new(&dir.path().join("data")).set("intake", "git_schemes", r#"["file"]"#).set(
            "intake",
            "max_clone_bytes",
            "1048576",
        );
        let node = Node::start(&cfg, dir.path(), "node");

        let url = |name: &str| format!("file://{}", repos.join(name).display());
        let id = node.submit_json(&json!({ "projects": [url("big"), url("small")] }));
        let e = node.wait_finished(&id, EVALUATION_TIMEOUT);
        assert_eq!(e["status"], json!("done"), "{e}");
        let big = &e["projects"]["big"];
        assert_eq!(
            big["error"],
            json!(format!("git clone of {:?} grew past the limit of 1048576 bytes", url("big"))),
            "{big}"
        );
        assert_eq!(counts(big), [0, 0, 0, 0], "{big}");
        assert!(e["module_results"].get("big").is_none(), "{e}");
        let small = &e["module_results"]["small"]["tests/test_small.py"];
        assert_eq!((&small["status"], counts(small)), (&json!("done"), [1, 1, 0, 0]), "{small}");
        assert_eq!(counts(&e["_run_info"]), [1, 1, 0, 0], "{e}");
        assert_eq!(e["_run_info"]["projects"], json!(2), "{e}");
    });
}
