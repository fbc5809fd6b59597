//! One real `evalmesh` node, driven over HTTP as a client would drive it:
//! zip uploads (multipart and raw), git repositories over `file://` and
//! `git://`, time-outs and batching, failing installs, hostile input,
//! a crash and restart in the middle of an evaluation, config errors, and the
//! node's figures. Every test has its own temp dir, data dir and node, and
//! runs under an overall timeout.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{
    assert_gradebook, die_with_parent, files_under, free_port, git_repo, multipart, noise, under, wait_until,
    with_timeout, zip_of, Body, Node, NodeConfig, Part, ZipBuilder, PASS_2_FAIL_1,
};
use serde_json::{json, Value};

/// The longest any one evaluation here may take, first environment build
/// included.
const EVALUATION_TIMEOUT: Duration = Duration::from_secs(120);

/// The overall limit of one test, above [`EVALUATION_TIMEOUT`] so that a
/// stuck evaluation fails with the node's log rather than a bare timeout.
const TEST_TIMEOUT: Duration = Duration::from_secs(240);

/// `executor.module_timeout_s` where a module hangs. The budget also pays
/// each pytest process's start-up, about 1.2 s of CPU (the node's
/// environments hold no bytecode and pytest runs with
/// `PYTHONDONTWRITEBYTECODE`); on this 2-core machine under other builds'
/// load, healthy modules took up to ~6 s, so 3 s and even 10 s killed them.
const MODULE_TIMEOUT_S: u64 = 15;

// ---------------------------------------------------------------- fixtures

const PASS_3: &str = "\
def test_one():
    assert 1 + 1 == 2


def test_two():
    assert 'a'.upper() == 'A'


def test_three():
    assert [1, 2][1] == 2
";

/// 2 passed, 1 failed, 1 skipped.
const MIXED: &str = "\
import pytest


def test_first_passes():
    assert True


def test_second_passes():
    assert 2 * 2 == 4


def test_fails():
    assert 1 == 2, 'one is not two'


@pytest.mark.skip(reason='not today')
def test_skipped():
    assert False
";

/// Fails to import, so it fails to collect.
const BROKEN: &str = "\
import evalmesh_no_such_module_xyz


def test_never_runs():
    assert True
";

/// One test that outlives any module time-out used here.
const HANG: &str = "\
import time


def test_hangs():
    time.sleep(600)
";

/// Two tests, one of which hangs: the module times out as a whole.
const HANG_WITH_A_PASS: &str = "\
import time


def test_quick():
    assert True


def test_hangs():
    time.sleep(600)
";

/// 1 passed (needs `six` installed from requirements.txt), 1 failed.
const SIX: &str = "\
import six


def test_six_is_installed():
    assert six.__version__ == '1.16.0'


def test_fails():
    assert six.PY2
";

/// The two projects of the multipart test: `alpha` (pass, mixed, broken,
/// hang) and `beta` (six from PyPI, 1 passed 1 failed).
fn alpha_beta_zip() -> Vec<u8> {
    let mut files = under(
        "alpha",
        &[
            ("requirements.txt", ""),
            ("tests/test_pass.py", PASS_3),
            ("tests/test_mixed.py", MIXED),
            ("tests/test_broken.py", BROKEN),
            ("tests/test_hang.py", HANG),
        ],
    );
    files.extend(under("beta", &[("requirements.txt", "six==1.16.0\n"), ("tests/test_six.py", SIX)]));
    zip_of(&files)
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("evalmesh-single-").tempdir().expect("creating a temp dir")
}

/// A config for a node whose data lives in `<dir>/data`.
fn config(dir: &Path) -> NodeConfig {
    NodeConfig::new(&dir.join("data"))
}

/// The counts of a module or project as `[passed, failed, skipped, errors]`.
fn counts(v: &Value) -> [u64; 4] {
    ["passed", "failed", "skipped", "errors"]
        .map(|k| v[k].as_u64().unwrap_or_else(|| panic!("{k} missing or not a count in {v}")))
}

/// Asserts a module's status, counts and node.
fn assert_module(evaluation: &Value, project: &str, module: &str, status: &str, c: [u64; 4]) {
    let m = &evaluation["module_results"][project][module];
    assert_eq!(m["status"], json!(status), "{project} {module}: {m}");
    assert_eq!(counts(m), c, "{project} {module}: {m}");
    assert_eq!(m["node"], evaluation["supervisor"], "{project} {module} ran on the supervisor");
}

/// Asserts a project's counts, %passed, %failed, nota and error.
fn assert_project(evaluation: &Value, project: &str, c: [u64; 4], passed: f64, nota: f64) {
    let p = &evaluation["projects"][project];
    assert_eq!(counts(p), c, "{project}: {p}");
    assert_eq!(p["%passed"], json!(passed), "{project}: {p}");
    let graded = c[0] + c[1] + c[3];
    let failed = if graded == 0 { 0.0 } else { 100.0 - passed };
    assert_eq!(p["%failed"], json!(failed), "{project}: {p}");
    assert_eq!(p["nota"], json!(nota), "{project}: {p}");
    assert_eq!(p["error"], Value::Null, "{project}: {p}");
}

/// The module names of a project's results, sorted.
fn modules_of(evaluation: &Value, project: &str) -> Vec<String> {
    evaluation["module_results"][project]
        .as_object()
        .unwrap_or_else(|| panic!("no results for {project}: {evaluation}"))
        .keys()
        .cloned()
        .collect()
}

fn project_names(evaluation: &Value) -> Vec<String> {
    evaluation["projects"].as_object().unwrap_or_else(|| panic!("no projects: {evaluation}")).keys().cloned().collect()
}

/// Waits for the evaluation to finish and returns it with `?detail=tests`,
/// so that a failed assertion shows each module's tests and pytest output.
fn finished(node: &Node, id: &str) -> Value {
    node.wait_finished(id, EVALUATION_TIMEOUT);
    node.evaluation(id, "?detail=tests")
}

/// Asserts the evaluation ended `done` with its timestamps and no error.
fn assert_done(evaluation: &Value, node: &Node) {
    assert_eq!(evaluation["status"], json!("done"), "{evaluation}");
    assert_eq!(evaluation["error"], Value::Null, "{evaluation}");
    assert_eq!(evaluation["supervisor"], json!(node.addr), "{evaluation}");
    for stamp in ["submitted_at", "started_at", "finished_at"] {
        assert!(evaluation[stamp].is_string(), "{stamp}: {evaluation}");
    }
    let info = &evaluation["_run_info"];
    assert_eq!(info["modules_done"], info["modules_total"], "every module has a result: {info}");
}

// ---------------------------------------------------------------- tests

#[test]
fn grades_a_multipart_zip_of_two_projects_exactly() {
    with_timeout(TEST_TIMEOUT, || {
        let dir = temp_dir();
        let cfg = config(dir.path()).set("executor", "module_timeout_s", &MODULE_TIMEOUT_S.to_string()).set(
            "grading",
            "grade_scale",
            "10.0",
        );
        let node = Node::start(&cfg, dir.path(), "node");

        let id = node.submit_multipart("projects.zip", &alpha_beta_zip());
        let e = finished(&node, &id);
        assert_done(&e, &node);
        assert_eq!(e["id"], json!(id));
        assert_eq!(project_names(&e), ["alpha", "beta"]);

        assert_eq!(
            modules_of(&e, "alpha"),
            ["tests/test_broken.py", "tests/test_hang.py", "tests/test_mixed.py", "tests/test_pass.py"]
        );
        assert_module(&e, "alpha", "tests/test_pass.py", "done", [3, 0, 0, 0]);
        assert_module(&e, "alpha", "tests/test_mixed.py", "done", [2, 1, 1, 0]);
        assert_module(&e, "alpha", "tests/test_broken.py", "error", [0, 0, 0, 1]);
        assert_module(&e, "alpha", "tests/test_hang.py", "timeout", [0, 0, 0, 1]);
        let hang = &e["module_results"]["alpha"]["tests/test_hang.py"];
        assert_eq!(hang["duration"], json!(MODULE_TIMEOUT_S as f64), "{hang}");
        let mixed = &e["module_results"]["alpha"]["tests/test_mixed.py"];
        assert_eq!(mixed["%passed"], json!(66.67), "{mixed}");
        assert_eq!(mixed["%failed"], json!(33.33), "{mixed}");
        assert_eq!(modules_of(&e, "beta"), ["tests/test_six.py"]);
        assert_module(&e, "beta", "tests/test_six.py", "done", [1, 1, 0, 0]);

        // alpha: 5 passed of 8 graded (the skip does not count).
        assert_project(&e, "alpha", [5, 1, 1, 2], 62.5, 6.25);
        assert_project(&e, "beta", [1, 1, 0, 0], 50.0, 5.0);
        let info = &e["_run_info"];
        assert_eq!(
            info,
            &json!({
                "errors": 2, "%passed": 60.0, "%failed": 40.0, "nota": 6.0,
                "eval_time": info["eval_time"].clone(),
                "passed": 6, "failed": 2, "skipped": 1,
                "projects": 2, "modules_total": 5, "modules_done": 5,
            })
        );
        let eval_time = info["eval_time"].as_f64().expect("eval_time is a number");
        assert!(eval_time >= 3.0, "the hanging module alone takes 3 s: {info}");

        // Every test case of test_mixed.py, with the failure's message.
        let mixed = &e["module_results"]["alpha"]["tests/test_mixed.py"];
        let mut tests: Vec<(String, String)> = mixed["tests"]
            .as_array()
            .unwrap_or_else(|| panic!("no tests list: {mixed}"))
            .iter()
            .map(|t| {
                assert!(t["classname"].as_str().is_some_and(|c| c.ends_with("test_mixed")), "{t}");
                (t["name"].as_str().unwrap().to_owned(), t["outcome"].as_str().unwrap().to_owned())
            })
            .collect();
        tests.sort();
        assert_eq!(
            tests,
            [
                ("test_fails", "failed"),
                ("test_first_passes", "passed"),
                ("test_second_passes", "passed"),
                ("test_skipped", "skipped"),
            ]
            .map(|(n, o)| (n.to_owned(), o.to_owned()))
        );
        let failed = mixed["tests"].as_array().unwrap().iter().find(|t| t["name"] == "test_fails").unwrap();
        assert!(failed["message"].as_str().is_some_and(|m| m.contains("one is not two")), "{failed}");
        assert!(mixed["output"].is_string(), "{mixed}");
        let plain = node.evaluation(&id, "");
        let plain_mixed = &plain["module_results"]["alpha"]["tests/test_mixed.py"];
        assert!(
            plain_mixed.get("tests").is_none() && plain_mixed.get("output").is_none(),
            "tests and output only with ?detail=tests: {plain_mixed}"
        );

        let list = node.get("/evaluation");
        assert_eq!(list.status, 200);
        let list = list.json();
        assert_eq!(list["evaluations"].as_array().map(Vec::len), Some(1), "{list}");
        let line = &list["evaluations"][0];
        assert_eq!(line["id"], json!(id));
        assert_eq!(line["status"], json!("done"));
        assert_eq!(line["projects"], json!(2));
        assert_eq!(line["%passed"], json!(60.0));
        assert_eq!(line["nota"], json!(6.0));
        assert_eq!(line["submitted_at"], e["submitted_at"]);
        assert_eq!(line["finished_at"], e["finished_at"]);

        assert_gradebook(&node, &id, &e);
        assert_eq!(
            (&e["projects"]["alpha"]["points"], &e["projects"]["alpha"]["max_points"]),
            (&json!(5.0), &json!(8.0))
        );
        let junit = node.get(&format!("/evaluation/{id}/junit.xml"));
        assert_eq!(junit.status, 200, "{junit:?}");
        assert_eq!(junit.header("content-type"), Some("application/xml"));
        let disposition = format!("attachment; filename=\"evaluation-{id}-junit.xml\"");
        assert_eq!(junit.header("content-disposition"), Some(disposition.as_str()));
        assert_eq!(junit_suites(&junit.text()), {
            let mut suites = Vec::new();
            for (project, modules) in e["module_results"].as_object().unwrap() {
                for (module, m) in modules.as_object().unwrap() {
                    let c = counts(m);
                    suites.push((format!("{project}::{module}"), c.iter().sum::<u64>(), c[1], c[3], c[2]));
                }
            }
            suites
        });
        let unknown = uuid::Uuid::new_v4();
        for export in ["grades.csv", "junit.xml"] {
            let missing = node.get(&format!("/evaluation/{unknown}/{export}"));
            assert_eq!(missing.status, 404, "{missing:?}");
            assert!(missing.json()["error"].is_string());
        }
    });
}

/// Each testsuite of a JUnit report: its name, tests, failures, errors and
/// skipped.
fn junit_suites(xml: &str) -> Vec<(String, u64, u64, u64, u64)> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut suites = Vec::new();
    loop {
        match reader.read_event().unwrap_or_else(|e| panic!("{e}: {xml}")) {
            quick_xml::events::Event::Eof => return suites,
            quick_xml::events::Event::Start(e) if e.name().as_ref() == b"testsuite" => {
                let get =
                    |name: &str| e.try_get_attribute(name).unwrap().unwrap().unescape_value().unwrap().into_owned();
                let n = |name: &str| get(name).parse::<u64>().unwrap();
                suites.push((get("name"), n("tests"), n("failures"), n("errors"), n("skipped")));
            }
            _ => {}
        }
    }
}

#[test]
fn shows_each_project_as_students_csv_names_it() {
    with_timeout(TEST_TIMEOUT, || {
        let dir = temp_dir();
        let node = Node::start(&config(dir.path()), dir.path(), "node");
        let zip = zip_of(&[
            ("students.csv", "path,id,name\nclass/alice,s1,Alice Smith\nclass/bob/,s2,\n"),
            ("class/alice/requirements.txt", ""),
            ("class/alice/tests/test_a.py", PASS_3),
            ("class/bob/requirements.txt", ""),
            ("class/bob/tests/test_b.py", PASS_3),
            ("class/carol/requirements.txt", ""),
            ("class/carol/tests/test_c.py", PASS_3),
        ]);
        let id = node.submit_raw_zip(&zip);
        let e = finished(&node, &id);
        assert_done(&e, &node);
        let labels: Vec<(&str, &str)> = e["projects"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, p)| (name.as_str(), p["label"].as_str().unwrap()))
            .collect();
        assert_eq!(labels, [("class/alice", "Alice Smith (s1)"), ("class/bob", "s2"), ("class/carol", "class/carol")]);
        assert_project(&e, "class/alice", [3, 0, 0, 0], 100.0, 20.0);
    });
}

#[test]
fn grades_by_the_rules_of_evalmesh_toml_and_hides_hidden_tests_from_students() {
    const TEACHER: &str = "teacher-token-0123456789";
    const STUDENT: &str = "student-token-0123456789";
    with_timeout(TEST_TIMEOUT, || {
        let dir = temp_dir();
        let cfg = config(dir.path()).token(TEACHER).set("api", "student_tokens", &format!("[\"{STUDENT}\"]")).set(
            "executor",
            "module_timeout_s",
            "120",
        );
        let node = Node::start(&cfg, dir.path(), "node");
        let rules = "grade_scale = 10\n\
            [modules.\"tests/test_basic.py\"]\nweight = 1\n\
            [modules.\"tests/test_hidden.py\"]\nweight = 3\nhidden = true\n\
            [modules.\"tests/test_slow.py\"]\nweight = 1\ntimeout_s = 2\n\
            [modules.\"tests/test_deleted.py\"]\nweight = 5\n";
        let zip = zip_of(&[
            ("p/requirements.txt", ""),
            ("p/evalmesh.toml", rules),
            ("p/tests/test_basic.py", "def test_one():\n    pass\n\n\ndef test_two():\n    pass\n"),
            (
                "p/tests/test_hidden.py",
                "def test_shown():\n    pass\n\n\ndef test_secret_case():\n    assert 'SECRET-ANSWER' == 'x'\n",
            ),
            ("p/tests/test_slow.py", "import time\n\n\ndef test_sleeps():\n    time.sleep(60)\n"),
        ]);
        let id = node.submit_raw_zip(&zip);
        let e = finished(&node, &id);
        assert_done(&e, &node);
        assert_module(&e, "p", "tests/test_basic.py", "done", [2, 0, 0, 0]);
        assert_module(&e, "p", "tests/test_hidden.py", "done", [1, 1, 0, 0]);
        // Its own time-out, 2 s, not the node's 120 s.
        assert_module(&e, "p", "tests/test_slow.py", "timeout", [0, 0, 0, 1]);
        assert_eq!(e["module_results"]["p"]["tests/test_slow.py"]["duration"], json!(2.0));
        // 1 of 1, 1.5 of 3 (one of two passed), 0 of 1 (timed out), 0 of 5
        // (no such module): 2.5 of 10 on a scale of 10.
        let p = &e["projects"]["p"];
        assert_eq!((&p["points"], &p["max_points"], &p["nota"]), (&json!(2.5), &json!(10.0), &json!(2.5)), "{p}");
        assert_eq!(p["%passed"], json!(60.0), "tests passed, unweighted: 3 of 5");
        assert_gradebook(&node, &id, &e);

        let as_whom = |token: &str, path: &str| {
            let bearer = format!("Bearer {token}");
            let answer = node.request("GET", path, &[("Authorization", &bearer)], Body::None);
            assert_eq!(answer.status, 200, "{path}: {answer:?}");
            answer
        };
        let teacher = as_whom(TEACHER, &format!("/evaluation/{id}?detail=tests")).json();
        let student = as_whom(STUDENT, &format!("/evaluation/{id}?detail=tests")).json();
        let hidden = |v: &Value| v["module_results"]["p"]["tests/test_hidden.py"].clone();
        assert_eq!(hidden(&teacher)["hidden"], json!(true));
        assert_eq!(hidden(&teacher)["tests"].as_array().map(Vec::len), Some(2));
        assert!(hidden(&teacher).to_string().contains("SECRET-ANSWER"));
        assert_eq!(counts(&hidden(&student)), [1, 1, 0, 0]);
        assert!(hidden(&student).get("tests").is_none() && hidden(&student).get("output").is_none(), "{student}");
        assert!(!student.to_string().contains("SECRET-ANSWER") && !student.to_string().contains("test_secret_case"));
        let basic = |v: &Value| v["module_results"]["p"]["tests/test_basic.py"].clone();
        assert_eq!(
            (basic(&student)["hidden"].clone(), basic(&student)["tests"].as_array().map(Vec::len)),
            (json!(false), Some(2))
        );
        assert_eq!(student["projects"], teacher["projects"]);

        let junit = |token| as_whom(token, &format!("/evaluation/{id}/junit.xml")).text();
        assert!(junit(TEACHER).contains("SECRET-ANSWER") && junit(TEACHER).contains("test_secret_case"));
        assert!(!junit(STUDENT).contains("SECRET-ANSWER") && !junit(STUDENT).contains("test_secret_case"));
        assert!(junit(STUDENT).contains("name=\"p::tests/test_hidden.py\" tests=\"2\" failures=\"1\""));
        let refused = node.request(
            "GET",
            &format!("/evaluation/{id}"),
            &[("Authorization", "Bearer not-a-token-at-all")],
            Body::None,
        );
        assert_eq!(refused.status, 401);
        let student_delete = node.request(
            "DELETE",
            &format!("/evaluation/{id}"),
            &[("Authorization", &format!("Bearer {STUDENT}"))],
            Body::None,
        );
        assert_eq!(student_delete.status, 403, "{student_delete:?}");
        assert_eq!(node.get(&format!("/evaluation/{id}")).status, 200, "still there");
    });
}

#[test]
fn grades_a_raw_application_zip_body() {
    with_timeout(TEST_TIMEOUT, || {
        let dir = temp_dir();
        let node = Node::start(&config(dir.path()), dir.path(), "node");
        // No marker file: the archive's only folder is the project.
        let zip = zip_of(&[
            ("calc/calc.py", "def add(a, b):\n    return a + b\n"),
            (
                "calc/tests/test_calc.py",
                "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n\
                 def test_add_neg():\n    assert add(-1, 1) == 0\n\n\n\
                 def test_add_wrong():\n    assert add(1, 1) == 3\n",
            ),
        ]);
        let id = node.submit_raw_zip(&zip);
        let e = finished(&node, &id);
        assert_done(&e, &node);
        assert_eq!(project_names(&e), ["calc"]);
        assert_eq!(modules_of(&e, "calc"), ["tests/test_calc.py"]);
        assert_module(&e, "calc", "tests/test_calc.py", "done", [2, 1, 0, 0]);
        assert_project(&e, "calc", [2, 1, 0, 0], 66.67, 13.33);
        assert_eq!(e["_run_info"]["modules_total"], json!(1));
    });
}

#[test]
fn batch_that_hangs_is_split_so_only_the_hanging_module_times_out() {
    with_timeout(TEST_TIMEOUT, || {
        let dir = temp_dir();
        let cfg = config(dir.path()).set("executor", "module_timeout_s", &MODULE_TIMEOUT_S.to_string()).set(
            "executor",
            "modules_per_task",
            "3",
        );
        let node = Node::start(&cfg, dir.path(), "node");
        let zip = zip_of(&under(
            "batch",
            &[
                ("requirements.txt", ""),
                ("tests/test_a.py", "def test_1():\n    pass\n\n\ndef test_2():\n    pass\n"),
                ("tests/test_b.py", "def test_1():\n    pass\n\n\ndef test_2():\n    assert 0\n"),
                ("tests/test_hang.py", HANG_WITH_A_PASS),
            ],
        ));
        let id = node.submit_multipart("batch.zip", &zip);
        let e = finished(&node, &id);
        assert_done(&e, &node);
        assert_eq!(modules_of(&e, "batch"), ["tests/test_a.py", "tests/test_b.py", "tests/test_hang.py"]);
        assert_module(&e, "batch", "tests/test_a.py", "done", [2, 0, 0, 0]);
        assert_module(&e, "batch", "tests/test_b.py", "done", [1, 1, 0, 0]);
        // Both tests of the killed module count as errors.
        assert_module(&e, "batch", "tests/test_hang.py", "timeout", [0, 0, 0, 2]);
        assert_project(&e, "batch", [3, 1, 0, 2], 50.0, 10.0);
    });
}

#[test]
fn grades_git_repositories_over_file_urls_and_keeps_the_token_nowhere() {
    const TOKEN: &str = "tok-SECRET-123";
    with_timeout(TEST_TIMEOUT, || {
        let dir = temp_dir();
        let repos = dir.path().join("repos");
        git_repo(&repos.join("a/proj"), &[("requirements.txt", ""), ("tests/test_p.py", PASS_3)]);
        git_repo(
            &repos.join("b/proj"),
            &[
                ("pyproject.toml", "[project]\nname = \"proj\"\nversion = \"0.1\"\n"),
                ("tests/test_p.py", PASS_2_FAIL_1),
            ],
        );
        git_repo(
            &repos.join("c/other"),
            &[("setup.py", "from setuptools import setup\nsetup(name='other')\n"), ("test_other.py", MIXED)],
        );
        let url = |rel: &str| format!("file://{}", repos.join(rel).display());
        let cfg = config(dir.path()).set("intake", "git_schemes", r#"["file", "git"]"#);
        let node = Node::start(&cfg, dir.path(), "node");

        let urls = [url("a/proj"), url("b/proj"), url("c/other"), url("missing/gone")];
        let id = node.submit_json(&json!({ "projects": urls, "auth_token": TOKEN }));
        let e = finished(&node, &id);
        assert_eq!(e["status"], json!("done"), "{e}");
        assert_eq!(e["error"], Value::Null, "{e}");
        assert_eq!(project_names(&e), ["gone", "other", "proj", "proj-2"]);

        assert_eq!(modules_of(&e, "proj"), ["tests/test_p.py"]);
        assert_module(&e, "proj", "tests/test_p.py", "done", [3, 0, 0, 0]);
        assert_project(&e, "proj", [3, 0, 0, 0], 100.0, 20.0);
        assert_eq!(modules_of(&e, "proj-2"), ["tests/test_p.py"]);
        assert_module(&e, "proj-2", "tests/test_p.py", "done", [2, 1, 0, 0]);
        assert_project(&e, "proj-2", [2, 1, 0, 0], 66.67, 13.33);
        assert_eq!(modules_of(&e, "other"), ["test_other.py"]);
        assert_module(&e, "other", "test_other.py", "done", [2, 1, 1, 0]);
        assert_project(&e, "other", [2, 1, 1, 0], 66.67, 13.33);

        let gone = &e["projects"]["gone"];
        let error = gone["error"].as_str().unwrap_or_else(|| panic!("{gone}"));
        assert!(error.contains("missing/gone"), "names the url: {error}");
        assert_eq!(counts(gone), [0, 0, 0, 0], "{gone}");
        assert_eq!(gone["nota"], json!(0.0), "{gone}");
        assert!(e["module_results"].get("gone").is_none(), "{e}");

        let info = &e["_run_info"];
        assert_eq!(counts(info), [7, 2, 1, 0], "{info}");
        assert_eq!(info["projects"], json!(4), "{info}");
        assert_eq!(info["modules_total"], json!(3), "{info}");
        assert_eq!(info["modules_done"], json!(3), "{info}");

        // The token lives in memory only: not in any file, SQLite's WAL
        // included, and not in the log.
        let files = files_under(&node.data_dir);
        for db in ["evalmesh.sqlite3", "evalmesh.sqlite3-wal"] {
            assert!(files.iter().any(|f| f.ends_with(db)), "{db} is among the files searched: {files:?}");
        }
        for file in &files {
            let bytes = std::fs::read(file).unwrap_or_default();
            assert!(!bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()), "the token is in {}", file.display());
        }
        assert!(!node.log().contains(TOKEN), "the token is in the log");
    });
}

#[test]
fn git_repository_without_marker_file_is_named_after_the_repository() {
    with_timeout(TEST_TIMEOUT, || {
        let dir = temp_dir();
        let repos = dir.path().join("repos");
        // No requirements.txt, pyproject.toml or setup.py: only a tests folder.
        git_repo(&repos.join("bare"), &[("tests/test_x.py", PASS_2_FAIL_1)]);
        let cfg = config(dir.path()).set("intake", "git_schemes", r#"["file"]"#);
        let node = Node::start(&cfg, dir.path(), "node");

        let url = format!("file://{}", repos.join("bare").display());
        let id = node.submit_json(&json!({ "projects": [url] }));
        let e = finished(&node, &id);
        assert_done(&e, &node);
        assert_eq!(project_names(&e), ["bare"], "{e}");
        assert_eq!(modules_of(&e, "bare"), ["tests/test_x.py"]);
        assert_module(&e, "bare", "tests/test_x.py", "done", [2, 1, 0, 0]);
    });
}

/// A `git daemon` on loopback, killed with its connection children when
/// dropped. `git daemon` would run `git-daemon` as a child that outlives a
/// killed `git`, so the real program is run directly, leading its own
/// process group.
struct GitDaemon {
    child: Child,
    port: u16,
}

impl GitDaemon {
    /// Starts the daemon on a free port, trying another port if the one
    /// picked was taken in the meantime.
    fn start(base: &Path) -> GitDaemon {
        let exec_path = Command::new("git").arg("--exec-path").output().expect("running git --exec-path");
        let program = Path::new(String::from_utf8_lossy(&exec_path.stdout).trim()).join("git-daemon");
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = Command::new(&program);
            cmd.arg("--reuseaddr")
                .arg(format!("--base-path={}", base.display()))
                .arg("--export-all")
                .arg("--listen=127.0.0.1")
                .arg(format!("--port={port}"))
                .arg(base)
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let child =
                die_with_parent(&mut cmd).spawn().unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
            let mut daemon = GitDaemon { child, port };
            let up = wait_until("git daemon to accept connections or exit", Duration::from_secs(20), || {
                if daemon.child.try_wait().expect("polling git daemon").is_some() {
                    return Some(false);
                }
                std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| true)
            });
            if up {
                return daemon;
            }
        }
        panic!("git daemon did not start on any of 5 free ports");
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on the process group our own live child leads.
            unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        }
        let _ = self.child.wait();
    }
}

#[test]
fn grades_a_git_repository_served_by_git_daemon() {
    with_timeout(TEST_TIMEOUT, || {
        let dir = temp_dir();
        let served = dir.path().join("served");
        git_repo(&served.join("repo"), &[("requirements.txt", ""), ("tests/test_r.py", PASS_2_FAIL_1)]);
        let daemon = GitDaemon::start(&served);
        let cfg = config(dir.path()).set("intake", "git_schemes", r#"["git"]"#);
        let node = Node::start(&cfg, dir.path(), "node");

        let url = format!("git://127.0.0.1:{}/repo", daemon.port);
        let id = node.submit_json(&json!({ "projects": [url] }));
        let e = finished(&node, &id);
        assert_done(&e, &node);
        assert_eq!(project_names(&e), ["repo"]);
        assert_eq!(modules_of(&e, "repo"), ["tests/test_r.py"]);
        assert_module(&e, "repo", "tests/test_r.py", "done", [2, 1, 0, 0]);
        assert_project(&e, "repo", [2, 1, 0, 0], 66.67, 13.33);
        drop(daemon);
    });
}

#[test]
fn failing_install_fails_only_its_project() {
    const MISSING: &str = "evalmesh-no-such-package-zz";
    with_timeout(TEST_TIMEOUT, || {
        let dir = temp_dir();
        let node = Node::start(&config(dir.path()), dir.path(), "node");
        let mut files =
            under("bad", &[("requirements.txt", "evalmesh-no-such-package-zz==1.0\n"), ("tests/test_bad.py", PASS_3)]);
        files.extend(under("good", &[("requirements.txt", ""), ("tests/test_good.py", PASS_2_FAIL_1)]));
        let id = node.submit_multipart("install.zip", &zip_of(&files));
        let e = finished(&node, &id);
        assert_done(&e, &node);
        assert_eq!(project_names(&e), ["bad", "good"]);

        let bad = &e["projects"]["bad"];
        let error = bad["error"].as_str().unwrap_or_else(|| panic!("{bad}"));
        assert!(error.contains(MISSING), "names the package: {error}");
        assert_eq!(counts(bad), [0, 0, 0, 0], "{bad}");
        assert_eq!(bad["nota"], json!(0.0), "{bad}");
        assert!(e["module_results"].get("bad").is_none(), "{e}");

        assert_module(&e, "good", "tests/test_good.py", "done", [2, 1, 0, 0]);
        assert_project(&e, "good", [2, 1, 0, 0], 66.67, 13.33);
        let info = &e["_run_info"];
        assert_eq!(counts(info), [2, 1, 0, 0], "{info}");
        assert_eq!(info["projects"], json!(2), "{info}");
        assert_eq!(info["modules_total"], json!(1), "{info}");
    });
}

#[test]
fn refuses_bad_input_and_keeps_nothing_of_it() {
    const MARKER: &str = "evalmesh_zipslip_marker";
    with_timeout(TEST_TIMEOUT, || {
        let dir = temp_dir();
        let cfg = config(dir.path())
            .set("intake", "max_upload_bytes", "262144")
            .set("intake", "max_entries", "50")
            .set("intake", "max_unpacked_bytes", "1048576");
        let node = Node::start(&cfg, dir.path(), "node");

        let expect = |what: &str, response: common::Response, status: u16, needle: &str| {
            assert_eq!(response.status, status, "{what}: {response:?}");
            let error = response.error();
            assert!(error.contains(needle), "{what}: error {error:?} lacks {needle:?}");
        };
        let zip_post = |zip: &[u8]| node.post("/evaluation", "application/zip", zip);

        expect("corrupt zip", zip_post(&noise(4096)), 400, "not a valid zip");
        expect("empty body", zip_post(b""), 400, "empty");
        expect("body over max_upload_bytes", zip_post(&noise(300 * 1024)), 413, "262144");
        expect(
            "chunked body over max_upload_bytes",
            node.request(
                "POST",
                "/evaluation",
                &[("Content-Type", "application/zip")],
                Body::Chunked(&noise(300 * 1024)),
            ),
            413,
            "262144",
        );

        let slip_entry = format!("../../{MARKER}");
        let slip = ZipBuilder::new()
            .file("p/requirements.txt", "")
            .file("p/tests/test_ok.py", PASS_3)
            .file(&slip_entry, "pwned")
            .finish();
        expect("zip slip", zip_post(&slip), 400, &slip_entry);

        let absolute_entry = format!("{}/{MARKER}_abs", dir.path().display());
        let absolute = ZipBuilder::new().file("p/tests/test_ok.py", PASS_3).file(&absolute_entry, "pwned").finish();
        expect("absolute entry", zip_post(&absolute), 400, &absolute_entry);

        let symlink = ZipBuilder::new()
            .file("p/tests/test_ok.py", PASS_3)
            .symlink("p/tests/test_link.py", "/etc/passwd")
            .finish();
        expect("symlink entry", zip_post(&symlink), 400, "symlink");

        let stranger = zip_of(&[("p/tests/test_ok.py", PASS_3), ("students.csv", "path,name\nq,Quinn\n")]);
        expect("students.csv naming no project", zip_post(&stranger), 400, "students.csv: line 2: \"q\" is no project");

        let bad_rules = zip_of(&[
            ("p/tests/test_ok.py", PASS_3),
            ("p/evalmesh.toml", "[modules.\"tests/test_ok.py\"]\nweight = -1\n"),
        ]);
        expect(
            "evalmesh.toml with a negative weight",
            zip_post(&bad_rules),
            400,
            "evalmesh.toml: module \"tests/test_ok.py\": weight",
        );

        let no_tests = zip_of(&[("docs/requirements.txt", ""), ("docs/README.md", "# hi\n")]);
        expect("no test files", zip_post(&no_tests), 400, "no tests");

        let many: Vec<(String, &str)> =
            (0..51).map(|i| (format!("p/tests/test_{i}.py"), "def test_x():\n    pass\n")).collect();
        expect("too many entries", zip_post(&zip_of(&many)), 413, "51 entries");

        let bomb = ZipBuilder::new().file("p/tests/test_ok.py", PASS_3).zeros("p/data.bin", 50 << 20).finish();
        assert!(bomb.len() < 262_144, "the bomb fits the upload limit");
        expect("zip bomb", zip_post(&bomb), 413, "1048576");

        let json_post = |body: &str| node.post("/evaluation", "application/json", body.as_bytes());
        expect("no projects", json_post(r#"{"projects": []}"#), 400, "empty");
        expect(
            "unknown field",
            json_post(r#"{"projects": ["https://example.invalid/r.git"], "token": "x"}"#),
            400,
            "unknown field",
        );
        expect("malformed JSON", json_post(r#"{"projects": ["#), 400, "invalid JSON");
        expect(
            "ssh url with the default schemes",
            json_post(r#"{"projects": ["ssh://git@127.0.0.1/r.git"]}"#),
            400,
            "ssh",
        );
        expect("text/plain", node.post("/evaluation", "text/plain", b"hello"), 415, "text/plain");

        let (content_type, body) = multipart(&[Part::text("comment", "no file here")]);
        expect("multipart with another field", node.post("/evaluation", &content_type, &body), 400, "comment");
        let (content_type, body) = multipart(&[]);
        expect("multipart without any part", node.post("/evaluation", &content_type, &body), 400, "multipart");

        let unknown = uuid::Uuid::new_v4();
        expect("unknown id", node.get(&format!("/evaluation/{unknown}")), 404, &unknown.to_string());
        expect("id not a uuid", node.get("/evaluation/not-a-uuid"), 404, "not-a-uuid");
        expect("unknown route", node.get("/nope"), 404, "/nope");
        expect("DELETE /evaluation", node.request("DELETE", "/evaluation", &[], Body::None), 405, "not allowed");

        // Nothing was accepted, and nothing of it stayed on disk.
        let list = node.get("/evaluation");
        assert_eq!(list.status, 200, "{list:?}");
        assert_eq!(list.json(), json!({ "evaluations": [], "next": null }));
        for folder in ["evaluations", "uploads"] {
            let entries: Vec<_> = std::fs::read_dir(node.data_dir.join(folder))
                .unwrap_or_else(|e| panic!("reading {folder}: {e}"))
                .map(|e| e.unwrap().file_name())
                .collect();
            assert!(entries.is_empty(), "{folder} holds {entries:?}");
        }
        let evaluations = node.data_dir.join("evaluations");
        for ancestor in evaluations.join(".x.partial").ancestors() {
            assert!(!ancestor.join(MARKER).exists(), "zip slip wrote {}", ancestor.join(MARKER).display());
        }
        let escaped: Vec<_> =
            files_under(dir.path()).into_iter().filter(|f| f.to_string_lossy().contains(MARKER)).collect();
        assert!(escaped.is_empty(), "hostile entries written: {escaped:?}");
    });
}

#[test]
fn restarted_node_resumes_without_rerunning_finished_modules() {
    with_timeout(TEST_TIMEOUT, || {
        let dir = temp_dir();
        let module = |name: &str| format!("import time\n\n\ndef test_{name}():\n    time.sleep(1.5)\n");
        let names = ["m1", "m2", "m3", "m4", "m5", "m6"];
        let mut files = vec![("slow/requirements.txt".to_owned(), String::new())];
        for name in names {
            files.push((format!("slow/tests/test_{name}.py"), module(name)));
        }
        let cfg = config(dir.path()).set("node", "slots", "1");
        let mut first = Node::start(&cfg, dir.path(), "first");
        let id = first.submit_multipart("slow.zip", &zip_of(&files));

        let before = wait_until("two modules with a result", EVALUATION_TIMEOUT, || {
            let e = first.evaluation(&id, "");
            (e["_run_info"]["modules_done"].as_u64() >= Some(2)).then_some(e)
        });
        first.kill();
        let finished_before: Vec<String> = modules_of(&before, "slow");
        assert!(finished_before.len() < 6, "killed mid-way: {before}");

        let second = Node::start(&cfg, dir.path(), "second");
        let e = finished(&second, &id);
        assert_eq!(e["status"], json!("done"), "{e}");
        // The restarted node listens on another port: it is another node,
        // and it adopts what the node before it left.
        assert!(
            second.log().contains(&format!("evaluation {id}: adopted in term 1")),
            "the second node adopted the evaluation:\n{}",
            second.log()
        );
        let expected: Vec<String> = names.iter().map(|n| format!("tests/test_{n}.py")).collect();
        assert_eq!(modules_of(&e, "slow"), expected);
        for module in &expected {
            let m = &e["module_results"]["slow"][module];
            assert_eq!(m["status"], json!("done"), "{module}: {m}");
            assert_eq!(counts(m), [1, 0, 0, 0], "{module}: {m}");
        }
        assert_project(&e, "slow", [6, 0, 0, 0], 100.0, 20.0);
        assert_eq!(e["_run_info"]["modules_done"], json!(6));

        // Each result names the node that ran the module: the two runs of the
        // node listen on different ports, so a result kept from before the
        // kill is told apart from a run after it.
        for module in &expected {
            let m = &e["module_results"]["slow"][module];
            if finished_before.contains(module) {
                let kept = before["module_results"]["slow"][module].as_object().unwrap();
                for (field, value) in kept {
                    assert_eq!(&m[field], value, "{module} had a result and ran again");
                }
                assert_eq!(m["node"], json!(first.addr), "{module}");
            } else {
                assert_eq!(m["node"], json!(second.addr), "{module} ran after the restart");
            }
        }
    });
}

#[test]
fn config_errors_stop_the_node_with_a_useful_message() {
    with_timeout(Duration::from_secs(30), || {
        let dir = temp_dir();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[node]\nslots = 2\nslotz = 3\n").unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_evalmesh"))
            .arg("node")
            .arg("--config")
            .arg(&path)
            .output()
            .expect("running evalmesh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains("slotz"), "{stderr}");
        assert!(stderr.contains("line 3"), "{stderr}");

        let missing = dir.path().join("nowhere/evalmesh.toml");
        let out = Command::new(env!("CARGO_BIN_EXE_evalmesh"))
            .arg("node")
            .arg("--config")
            .arg(&missing)
            .output()
            .expect("running evalmesh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    });
}

#[test]
fn lists_evaluations_a_page_at_a_time_and_by_status() {
    with_timeout(TEST_TIMEOUT, || {
        let dir = temp_dir();
        let node = Node::start(&config(dir.path()), dir.path(), "node");
        let zip = zip_of(&[("calc/tests/test_calc.py", "def test_one():\n    assert True\n")]);
        let mut submitted: Vec<String> = (0..3).map(|_| node.submit_raw_zip(&zip)).collect();
        for id in &submitted {
            finished(&node, id);
        }
        let page = |query: &str| {
            let answer = node.get(&format!("/evaluation{query}"));
            assert_eq!(answer.status, 200, "{query}: {answer:?}");
            let v = answer.json();
            let ids: Vec<String> =
                v["evaluations"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
            (ids, v["next"].clone())
        };
        let (all, next) = page("");
        assert_eq!(next, Value::Null);
        let mut listed = all.clone();
        listed.sort();
        submitted.sort();
        assert_eq!(listed, submitted);

        let (first, next) = page("?limit=2");
        assert_eq!(first, all[..2]);
        assert_eq!(next, json!(all[1]));
        let (rest, next) = page(&format!("?limit=2&after={}", all[1]));
        assert_eq!(rest, all[2..]);
        assert_eq!(next, Value::Null);
        assert_eq!(page(&format!("?after={}", all[0])).0, all[1..]);
        assert_eq!(page("?status=done").0, all);
        assert_eq!(page("?status=done&limit=3").1, Value::Null);
        assert_eq!(page("?status=running").0, Vec::<String>::new());
        assert_eq!(page(&format!("?status=queued&after={}", all[0])).0, Vec::<String>::new());

        // A running evaluation is cancelled: nothing more starts, and what
        // had started is killed; then it can be removed, once.
        let slow: Vec<(String, String)> = (0..6)
            .map(|i| {
                (
                    format!("slow/tests/test_slow_{i}.py"),
                    "import time\n\n\ndef test_slow():\n    time.sleep(2)\n".to_owned(),
                )
            })
            .collect();
        let running = node.submit_raw_zip(&zip_of(&slow));
        wait_until("a module runs", Duration::from_secs(60), || {
            (node.get("/stats?scope=local").json()["slots_busy"].as_u64() > Some(0)).then_some(())
        });
        let cancelled = node.request("DELETE", &format!("/evaluation/{running}"), &[], Body::None);
        assert_eq!(cancelled.status, 202, "{cancelled:?}");
        assert_eq!(cancelled.json()["status"], json!("cancelled"));
        let e = finished(&node, &running);
        assert_eq!((&e["status"], &e["error"]), (&json!("cancelled"), &json!("cancelled by a client")), "{e}");
        let done = e["_run_info"]["modules_done"].as_u64().unwrap();
        assert!(done < 6, "cancelled before its end: {done} of 6 modules");
        wait_until("no module runs or waits", Duration::from_secs(60), || {
            let s = node.get("/stats?scope=local").json();
            (s["slots_busy"] == json!(0) && s["jobs_queued"] == json!(0)).then_some(())
        });
        assert_eq!(
            node.evaluation(&running, "")["_run_info"]["modules_done"].as_u64(),
            Some(done),
            "nothing counted after"
        );
        assert_eq!(page("?status=cancelled").0, std::slice::from_ref(&running));
        let removed = node.request("DELETE", &format!("/evaluation/{running}"), &[], Body::None);
        assert_eq!((removed.status, removed.json()["removed_from"].clone()), (200, json!([node.addr])), "{removed:?}");
        assert_eq!(node.get(&format!("/evaluation/{running}")).status, 404);
        assert_eq!(node.request("DELETE", &format!("/evaluation/{running}"), &[], Body::None).status, 404);
        assert_eq!(page("").0, all, "the others stay");

        let unknown = uuid::Uuid::new_v4();
        for bad in [
            "?limit=0".to_owned(),
            "?limit=1001".to_owned(),
            "?limit=two".to_owned(),
            "?status=finished".to_owned(),
            "?after=not-an-id".to_owned(),
            format!("?after={unknown}"),
        ] {
            let answer = node.get(&format!("/evaluation{bad}"));
            assert_eq!(answer.status, 400, "{bad}: {answer:?}");
            assert!(answer.json()["error"].is_string(), "{bad}: {answer:?}");
        }
    });
}

#[test]
fn stats_and_health_report_the_work_done() {
    with_timeout(TEST_TIMEOUT, || {
        let dir = temp_dir();
        let cfg = config(dir.path()).set("node", "slots", "3").set(
            "executor",
            "module_timeout_s",
            &MODULE_TIMEOUT_S.to_string(),
        );
        let node = Node::start(&cfg, dir.path(), "node");

        let health = node.get("/health");
        assert_eq!(health.status, 200, "{health:?}");
        assert_eq!(health.json(), json!({ "status": "ok", "node": node.addr }));

        let id = node.submit_multipart("projects.zip", &alpha_beta_zip());
        let e = finished(&node, &id);
        assert_done(&e, &node);
        assert_module(&e, "alpha", "tests/test_pass.py", "done", [3, 0, 0, 0]);
        assert_module(&e, "alpha", "tests/test_mixed.py", "done", [2, 1, 1, 0]);
        assert_module(&e, "alpha", "tests/test_hang.py", "timeout", [0, 0, 0, 1]);
        assert_module(&e, "beta", "tests/test_six.py", "done", [1, 1, 0, 0]);

        // The supervisor stops just after it records the end.
        let s = wait_until("the supervisor to stop", Duration::from_secs(10), || {
            let stats = node.get("/stats?scope=local");
            assert_eq!(stats.status, 200, "{stats:?}");
            let s = stats.json();
            (s["evaluations_running"] == json!(0)).then_some(s)
        });
        assert_eq!(s["node"], json!(node.addr), "{s}");
        assert_eq!(s["slots"], json!(3), "{s}");
        assert_eq!(s["slots_busy"], json!(0), "{s}");
        assert_eq!(s["jobs_queued"], json!(0), "{s}");
        assert_eq!(
            s["evaluations"],
            json!({ "queued": 0, "running": 0, "done": 1, "failed": 0, "cancelled": 0 }),
            "{s}"
        );
        // pytest ran test_pass, test_mixed, test_hang (killed) and test_six;
        // test_broken never ran, it failed to collect.
        assert_eq!(s["modules_run"], json!(4), "{s}");
        assert_eq!(s["modules_timed_out"], json!(1), "{s}");
        assert_eq!(s["passed"], json!(6), "{s}");
        assert_eq!(s["failed"], json!(2), "{s}");
        assert_eq!(s["skipped"], json!(1), "{s}");
        assert_eq!(s["tests_run"], json!(9), "{s}");

        let health = node.get("/health");
        assert_eq!(health.status, 200, "{health:?}");
    });
}

/// With `log_format = "json"` every line the node logs is a JSON object,
/// and each public request but the health check has its access line.
#[test]
fn json_logs_hold_an_access_line_per_public_request() {
    with_timeout(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let config = NodeConfig::new(&dir.path().join("data")).set("node", "log_format", "\"json\"");
        let node = Node::start(&config, dir.path(), "node");
        assert_eq!(node.get("/evaluation").status, 200);
        assert_eq!(node.get("/evaluation/not-an-id").status, 404);
        assert_eq!(node.get("/health").status, 200);
        let access = |log: &str| -> Vec<Value> {
            let lines: Vec<Value> = log
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
                .collect();
            for line in &lines {
                for key in ["ts", "level", "target", "message"] {
                    assert!(line[key].is_string(), "{key} in {line}");
                }
            }
            lines.into_iter().filter(|l| l["target"] == "evalmesh::access").collect()
        };
        let lines = wait_until("both access lines are written", Duration::from_secs(10), || {
            let lines = access(&node.log());
            (lines.len() >= 2).then_some(lines)
        });
        let messages: Vec<&str> = lines.iter().map(|l| l["message"].as_str().unwrap()).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages[0].contains("\"GET /evaluation HTTP/1.1\" 200 "), "{messages:?}");
        assert!(messages[1].contains("\"GET /evaluation/not-an-id HTTP/1.1\" 404 "), "{messages:?}");
        assert!(!messages.iter().any(|m| m.contains("/health")));
    });
}

/// A node serves at most 64 progress streams at once: the next is refused
/// with 503 and Retry-After, and a stream whose client went, or whose
/// evaluation ended, makes room again.
#[test]
fn progress_streams_are_bounded_and_give_their_place_back() {
    use common::sse::{self, Stream};
    with_timeout(Duration::from_secs(180), || {
        let dir = temp_dir();
        let node = Node::start(&config(dir.path()), dir.path(), "node");
        let slow = zip_of(&[("slow/tests/test_slow.py", "import time\n\n\ndef test_slow():\n    time.sleep(120)\n")]);
        let id = node.submit_raw_zip(&slow);
        let path = format!("/evaluation/{id}/stream");
        let mut streams: Vec<Stream> = (0..64).map(|_| Stream::open(&node.addr, &path, &[])).collect();
        let refused = node.get(&path);
        assert_eq!(refused.status, 503, "{refused:?}");
        assert_eq!(refused.header("retry-after"), Some("5"));
        assert!(refused.error().contains("64 progress streams"), "{refused:?}");

        drop(streams.pop());
        wait_until("the place of the client that went is free", Duration::from_secs(40), || {
            (sse::status(&node.addr, &path) == 200).then_some(())
        });
        let cancelled = node.request("DELETE", &format!("/evaluation/{id}"), &[], Body::None);
        assert_eq!(cancelled.status, 202, "{cancelled:?}");
        for stream in &mut streams {
            assert_eq!(stream.until_done().last().unwrap().data["status"], "cancelled");
        }
        drop(streams);
        wait_until("every place is free", Duration::from_secs(30), || {
            (sse::status(&node.addr, &path) == 200).then_some(())
        });
    });
}
