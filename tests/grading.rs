//! Grading with a teacher's reference suite: the suite laid over every
//! project, given as a zip or a git url, with its rules and hidden modules,
//! against submissions that try to grade themselves.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{assert_gradebook, git_repo, multipart, wait_until, with_timeout, zip_of, Body, Node, NodeConfig, Part};
use serde_json::{json, Value};

const TEST_TIMEOUT: Duration = Duration::from_secs(240);
const TEACHER: &str = "teacher-token-0123456789";
const STUDENT: &str = "student-token-0123456789";

const SUITE: &[(&str, &str)] = &[
    (
        "tests/test_add.py",
        "from calc import add\n\n\ndef test_small():\n    assert add(1, 2) == 3\n\n\n\
         def test_negative():\n    assert add(-1, -2) == -3\n\n\ndef test_zero():\n    assert add(0, 5) == 5\n",
    ),
    (
        "tests/test_mul.py",
        "from calc import mul\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n\n\n\
         def test_mul_zero():\n    assert mul(0, 7) == 0, 'HIDDEN-HINT'\n",
    ),
    (
        "evalmesh.toml",
        "grade_scale = 10\n[modules.\"tests/test_add.py\"]\nweight = 2\n\
         [modules.\"tests/test_mul.py\"]\nweight = 1\nhidden = true\n",
    ),
    ("requirements.txt", ""),
];

const RIGHT: &str = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n";
const HALF: &str = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b + 1\n";
const WRONG: &str = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b + 1\n";

/// Four submissions: right, half right, broken, and one that would pass
/// everything if its own conftest and pytest.ini were loaded.
fn class() -> Vec<(String, String)> {
    let files: &[(&str, &str)] = &[
        ("alice/requirements.txt", ""),
        ("alice/calc.py", RIGHT),
        ("alice/tests/test_mine.py", "def test_mine():\n    assert False\n"),
        ("bob/requirements.txt", ""),
        ("bob/calc.py", HALF),
        ("carol/requirements.txt", ""),
        ("carol/calc.py", "def add(a, b)\n    return a + b\n"),
        ("mallory/requirements.txt", ""),
        ("mallory/calc.py", WRONG),
        (
            "mallory/conftest.py",
            "import pytest\n\n\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n\
             \x20   outcome = yield\n    outcome.get_result().outcome = 'passed'\n",
        ),
        ("mallory/pytest.ini", "[pytest]\naddopts = -k 'not negative and not zero'\n"),
        ("mallory/tests/test_add.py", "def test_small():\n    pass\n"),
        ("mallory/evalmesh.toml", "grade_scale = 1000\n"),
    ];
    files.iter().map(|(p, t)| (p.to_string(), t.to_string())).collect()
}

fn node(dir: &Path) -> Node {
    let config = NodeConfig::new(&dir.join("data"))
        .token(TEACHER)
        .set("api", "student_tokens", &format!("[\"{STUDENT}\"]"))
        .set("intake", "git_schemes", r#"["file"]"#);
    Node::start(&config, dir, "node")
}

fn counts(m: &Value) -> [u64; 4] {
    ["passed", "failed", "skipped", "errors"].map(|k| m[k].as_u64().unwrap_or_else(|| panic!("{k} in {m}")))
}

/// Each project graded on the suite alone, on the truth.
fn assert_graded_on_the_suite(e: &Value) {
    assert_eq!(e["status"], "done", "{e}");
    let modules = |project: &str| -> Vec<(String, [u64; 4], String)> {
        e["module_results"][project]
            .as_object()
            .unwrap_or_else(|| panic!("{project} in {e}"))
            .iter()
            .map(|(m, r)| (m.clone(), counts(r), r["status"].as_str().unwrap().to_owned()))
            .collect()
    };
    let done = |m: &str, c: [u64; 4]| (m.to_owned(), c, "done".to_owned());
    assert_eq!(modules("alice"), [done("tests/test_add.py", [3, 0, 0, 0]), done("tests/test_mul.py", [2, 0, 0, 0])]);
    assert_eq!(modules("bob"), [done("tests/test_add.py", [3, 0, 0, 0]), done("tests/test_mul.py", [0, 2, 0, 0])]);
    let carol = modules("carol");
    assert_eq!(
        carol.iter().map(|(m, _, s)| (m.as_str(), s.as_str())).collect::<Vec<_>>(),
        [("tests/test_add.py", "error"), ("tests/test_mul.py", "error")]
    );
    assert!(carol.iter().all(|(_, c, _)| c[0] == 0 && c[3] >= 1), "{carol:?}");
    assert_eq!(modules("mallory"), [done("tests/test_add.py", [0, 3, 0, 0]), done("tests/test_mul.py", [0, 2, 0, 0])]);
    // Weights 2 and 1 on the suite's scale of 10, whatever a project says.
    let score = |p: &str| {
        let p = &e["projects"][p];
        (p["points"].as_f64().unwrap(), p["max_points"].as_f64().unwrap(), p["nota"].as_f64().unwrap())
    };
    assert_eq!(score("alice"), (3.0, 3.0, 10.0));
    assert_eq!(score("bob"), (2.0, 3.0, 6.67));
    assert_eq!(score("carol"), (0.0, 3.0, 0.0));
    assert_eq!(score("mallory"), (0.0, 3.0, 0.0));
}

fn as_whom(node: &Node, token: &str, path: &str) -> Value {
    let bearer = format!("Bearer {token}");
    let answer = node.request("GET", path, &[("Authorization", &bearer)], Body::None);
    assert_eq!(answer.status, 200, "{path}: {answer:?}");
    answer.json()
}

#[test]
fn a_reference_suite_in_a_zip_grades_every_project_on_the_truth() {
    with_timeout(TEST_TIMEOUT, || {
        let dir = tempfile::tempdir().unwrap();
        let node = node(dir.path());
        let projects = zip_of(&class());
        let suite = zip_of(SUITE);
        let (content_type, body) =
            multipart(&[Part::file("file", "class.zip", &projects), Part::file("tests", "suite.zip", &suite)]);
        let posted = node.post("/evaluation", &content_type, &body);
        assert_eq!(posted.status, 202, "{posted:?}");
        let id = posted.json()["id"].as_str().unwrap().to_owned();
        let e = node.wait_finished(&id, Duration::from_secs(180));
        assert_graded_on_the_suite(&e);
        assert_gradebook(&node, &id, &e);

        let teacher = as_whom(&node, TEACHER, &format!("/evaluation/{id}?detail=tests"));
        let student = as_whom(&node, STUDENT, &format!("/evaluation/{id}?detail=tests"));
        assert!(teacher.to_string().contains("HIDDEN-HINT") && teacher.to_string().contains("test_mul_zero"));
        assert!(!student.to_string().contains("HIDDEN-HINT") && !student.to_string().contains("test_mul_zero"));
        assert_eq!(student["projects"], teacher["projects"]);

        // Nothing of the suite is left beside the workspace once it is done:
        // the supervisor removes both just after it records the end.
        wait_until("the workspace and the suite removed", Duration::from_secs(30), || {
            let evaluations: Vec<String> = std::fs::read_dir(node.data_dir.join("evaluations"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            evaluations.iter().all(|name| !name.contains(&id)).then_some(())
        });
    });
}

#[test]
fn a_reference_suite_given_as_a_git_url_grades_git_submissions() {
    with_timeout(TEST_TIMEOUT, || {
        let dir = tempfile::tempdir().unwrap();
        let node = node(dir.path());
        let class = class();
        let mut urls = Vec::new();
        for student in ["alice", "bob", "carol", "mallory"] {
            let repo = dir.path().join("repos").join(student);
            let files: Vec<(String, String)> = class
                .iter()
                .filter_map(|(p, t)| p.strip_prefix(&format!("{student}/")).map(|p| (p.to_owned(), t.clone())))
                .collect();
            git_repo(&repo, &files);
            urls.push(format!("file://{}", repo.display()));
        }
        // A repository can hold what a zip cannot: its requirements a link
        // to /dev/zero. The clone makes no links: it is a file naming the
        // path, which the requirements' vetting refuses.
        let linked = dir.path().join("repos").join("linked");
        git_repo(&linked, &[("calc.py", RIGHT)]);
        std::os::unix::fs::symlink("/dev/zero", linked.join("requirements.txt")).unwrap();
        common::git(&linked, &["add", "-A"]);
        common::git(&linked, &["commit", "-q", "-m", "a link"]);
        urls.push(format!("file://{}", linked.display()));
        let suite = dir.path().join("repos").join("suite");
        git_repo(&suite, SUITE);
        let id = node.submit_json(&json!({ "projects": urls, "tests": format!("file://{}", suite.display()) }));
        let e = node.wait_finished(&id, Duration::from_secs(180));
        assert_graded_on_the_suite(&e);
        let linked = &e["projects"]["linked"];
        let refused = "requirements: requirements.txt line 1 (`/dev/zero`) is not installed: local paths are refused";
        assert_eq!(linked["error"], json!(refused), "{e}");
        assert_eq!((&linked["nota"], &linked["max_points"]), (&json!(0.0), &json!(3.0)));
        assert!(e["module_results"].get("linked").is_none(), "{e}");
    });
}

#[test]
fn a_reference_suite_that_cannot_grade_is_refused() {
    with_timeout(TEST_TIMEOUT, || {
        let dir = tempfile::tempdir().unwrap();
        let config = NodeConfig::new(&dir.path().join("data"))
            .token(TEACHER)
            .set("intake", "max_unpacked_bytes", "1048576")
            .set("intake", "git_schemes", r#"["file"]"#);
        let node = Node::start(&config, dir.path(), "node");
        let projects = zip_of(&class());
        let post = |suite: &[u8]| {
            let (content_type, body) =
                multipart(&[Part::file("file", "class.zip", &projects), Part::file("tests", "suite.zip", suite)]);
            node.post("/evaluation", &content_type, &body)
        };
        // 300 KB of suite fits once, but not laid over the four projects.
        let large = post(&zip_of(&[("tests/test_a.py", "def test_a(): pass\n"), ("data.txt", &"x".repeat(300_000))]));
        assert_eq!(large.status, 413, "{large:?}");
        assert!(large.error().contains("laid over 4 projects"), "{:?}", large.error());
        for (what, answer, needle) in [
            ("no test", post(&zip_of(&[("helpers.py", "X = 1\n")])), "reference suite: it holds no test file"),
            ("not a zip", post(b"not a zip at all"), "reference suite: not a valid zip"),
            (
                "bad rules",
                post(&zip_of(&[
                    ("tests/test_a.py", "def test_a(): pass\n"),
                    ("evalmesh.toml", "default_weight = -1\n"),
                ])),
                "reference suite: evalmesh.toml: default_weight",
            ),
            (
                "a git url of a scheme not allowed",
                node.post(
                    "/evaluation",
                    "application/json",
                    br#"{"projects": ["file:///tmp/a"], "tests": "https://example.invalid/suite.git"}"#,
                ),
                "reference suite: git url",
            ),
        ] {
            assert_eq!(answer.status, 400, "{what}: {answer:?}");
            assert!(answer.error().contains(needle), "{what}: {:?}", answer.error());
        }
        let evaluations = std::fs::read_dir(node.data_dir.join("evaluations")).unwrap().count();
        assert_eq!(evaluations, 0, "nothing kept of a refused submission");

        // A suite whose repository cannot be cloned fails the evaluation.
        let id =
            node.submit_json(&json!({ "projects": ["file:///nonexistent/a"], "tests": "file:///nonexistent/suite" }));
        let e = node.wait_finished(&id, Duration::from_secs(120));
        assert_eq!(e["status"], "failed", "{e}");
        assert!(e["error"].as_str().unwrap().starts_with("reference suite: git clone of"), "{e}");
    });
}

#[test]
fn broken_submissions_are_graded_and_never_stop_the_evaluation() {
    const MISSING: &str = "evalmesh-no-such-package-zz";
    with_timeout(TEST_TIMEOUT, || {
        let dir = tempfile::tempdir().unwrap();
        let config = NodeConfig::new(&dir.path().join("data")).set("executor", "collect_timeout_s", "5");
        let node = Node::start(&config, dir.path(), "node");
        let files: &[(&str, &str)] = &[
            ("class/right/requirements.txt", ""),
            ("class/right/calc.py", RIGHT),
            ("class/import_error/requirements.txt", ""),
            ("class/import_error/calc.py", "import evalmesh_no_such_module\n"),
            ("class/no_requirements/calc.py", RIGHT),
            ("class/cannot_install/requirements.txt", "evalmesh-no-such-package-zz==1.0\n"),
            ("class/cannot_install/calc.py", RIGHT),
            ("class/syntax_error/requirements.txt", ""),
            ("class/syntax_error/calc.py", "def add(a, b)\n    return a + b\n"),
            ("class/endless_import/requirements.txt", ""),
            ("class/endless_import/calc.py", "while True:\n    pass\n"),
            ("class/deletes_its_files/requirements.txt", ""),
            (
                "class/deletes_its_files/calc.py",
                "import os\nimport shutil\n\nhere = os.path.dirname(os.path.abspath(__file__))\n\
                 shutil.rmtree(os.path.join(here, 'tests'), ignore_errors=True)\n\n\n\
                 def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n",
            ),
            ("class/empty/", ""),
        ];
        let mut zip = common::ZipBuilder::new();
        for (path, text) in files {
            zip = if path.ends_with('/') { zip.dir(path) } else { zip.file(path, text) };
        }
        let (content_type, body) = multipart(&[
            Part::file("file", "class.zip", &zip.finish()),
            Part::file("tests", "suite.zip", &zip_of(SUITE)),
        ]);
        let posted = node.post("/evaluation", &content_type, &body);
        assert_eq!(posted.status, 202, "{posted:?}");
        let id = posted.json()["id"].as_str().unwrap().to_owned();
        let e = node.wait_finished(&id, Duration::from_secs(200));
        assert_eq!(e["status"], "done", "{e}");

        let project = |name: &str| e["projects"][format!("class/{name}")].clone();
        let nota = |name: &str| project(name)["nota"].as_f64().unwrap_or_else(|| panic!("{name}: {e}"));
        let names: Vec<&str> = e["projects"].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "class/cannot_install",
                "class/deletes_its_files",
                "class/empty",
                "class/endless_import",
                "class/import_error",
                "class/no_requirements",
                "class/right",
                "class/syntax_error"
            ]
        );
        // The right answer is right with or without a requirements file.
        for name in ["right", "no_requirements"] {
            assert_eq!(nota(name), 10.0, "{name}: {}", project(name));
        }
        let install = project("cannot_install");
        assert!(install["error"].as_str().is_some_and(|t| t.contains(MISSING)), "{install}");
        // Nothing of the others passes: each suite module is an error, or
        // the project is, with its reason.
        for name in ["cannot_install", "import_error", "syntax_error", "endless_import", "empty", "deletes_its_files"] {
            assert_eq!((nota(name), project(name)["passed"].as_u64()), (0.0, Some(0)), "{name}: {}", project(name));
        }
        // A module that deletes the suite's files while pytest collects
        // them fails to collect, as under plain pytest.
        for name in ["import_error", "syntax_error", "empty", "deletes_its_files"] {
            let modules = e["module_results"][format!("class/{name}")].as_object().cloned().unwrap_or_default();
            let statuses: Vec<(&str, &str)> =
                modules.iter().map(|(m, r)| (m.as_str(), r["status"].as_str().unwrap())).collect();
            assert_eq!(statuses, [("tests/test_add.py", "error"), ("tests/test_mul.py", "error")], "{name}");
        }
        // An import that never ends stops the collection at its time-out.
        assert_eq!(project("endless_import")["error"], json!("pytest collection timed out after 5 s"));
        assert!(e["module_results"].get("class/endless_import").is_none(), "{e}");
    });
}
