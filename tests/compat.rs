//! Honest code is graded the same in every mode: the compat project
//! (`tests/data/compat/`, one module per behaviour a student's tests may
//! rely on — processes with "fork" and "spawn", threads, child processes,
//! loopback sockets, signals, /dev/shm, devices, /proc, time zones, UTF-8,
//! a 1 GiB mapping, files in the project — and one module of every kind of
//! outcome, one of subtests, modules that change the interpreter, modules
//! named like the standard library's) is graded by a node run by root and by an ordinary
//! user, with `sandbox = "bwrap"` and `"none"`, in children of the fork
//! server and (as root in bwrap) in fresh processes, and each module must
//! end `done` with the counts plain pytest gives it, run on the same files
//! in a virtual environment of the test's own.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// The longest the evaluation may take, its environment build included.
const EVALUATION_TIMEOUT: Duration = Duration::from_secs(240);

/// The overall limit of one test: the plain pytest venv, the plain runs,
/// and the evaluation.
const TEST_TIMEOUT: Duration = Duration::from_secs(480);

/// The project's files, as `tests/data/compat/` holds them.
const FILES: [(&str, &str); 28] = [
    ("requirements.txt", include_str!("data/compat/requirements.txt")),
    ("tests/workers.py", include_str!("data/compat/tests/workers.py")),
    ("tests/test_counts.py", include_str!("data/compat/tests/test_counts.py")),
    ("tests/test_devices.py", include_str!("data/compat/tests/test_devices.py")),
    ("tests/test_identity.py", include_str!("data/compat/tests/test_identity.py")),
    ("tests/test_mmap.py", include_str!("data/compat/tests/test_mmap.py")),
    ("tests/test_mp_lock.py", include_str!("data/compat/tests/test_mp_lock.py")),
    ("tests/test_mp_manager.py", include_str!("data/compat/tests/test_mp_manager.py")),
    ("tests/test_mp_pool.py", include_str!("data/compat/tests/test_mp_pool.py")),
    ("tests/test_mp_queue.py", include_str!("data/compat/tests/test_mp_queue.py")),
    ("tests/test_proc.py", include_str!("data/compat/tests/test_proc.py")),
    ("tests/test_project_files.py", include_str!("data/compat/tests/test_project_files.py")),
    ("tests/test_shm.py", include_str!("data/compat/tests/test_shm.py")),
    ("tests/test_signals.py", include_str!("data/compat/tests/test_signals.py")),
    ("tests/test_subprocess.py", include_str!("data/compat/tests/test_subprocess.py")),
    ("tests/test_subtests.py", include_str!("data/compat/tests/test_subtests.py")),
    ("tests/test_tcp.py", include_str!("data/compat/tests/test_tcp.py")),
    ("tests/test_tempfile_home.py", include_str!("data/compat/tests/test_tempfile_home.py")),
    ("tests/test_threads.py", include_str!("data/compat/tests/test_threads.py")),
    ("tests/test_timezones.py", include_str!("data/compat/tests/test_timezones.py")),
    ("tests/test_utf8.py", include_str!("data/compat/tests/test_utf8.py")),
    ("tests/test_state_a.py", include_str!("data/compat/tests/test_state_a.py")),
    ("tests/test_state_b.py", include_str!("data/compat/tests/test_state_b.py")),
    ("tests/shadowing/conftest.py", include_str!("data/compat/tests/shadowing/conftest.py")),
    ("tests/shadowing/code.py", include_str!("data/compat/tests/shadowing/code.py")),
    ("tests/shadowing/ctypes.py", include_str!("data/compat/tests/shadowing/ctypes.py")),
    ("tests/shadowing/resource.py", include_str!("data/compat/tests/shadowing/resource.py")),
    ("tests/shadowing/test_shadowing.py", include_str!("data/compat/tests/shadowing/test_shadowing.py")),
];

/// What plain pytest must give `tests/test_counts.py`, `[passed, failed,
/// skipped, errors]`: a pass, a pass whose teardown errors, and an xpass;
/// a failure; two skips and an xfail; a setup error and that teardown error.
const COUNTS_MODULE: [u64; 4] = [3, 1, 3, 2];

/// What plain pytest must give `tests/test_subtests.py`: a test whose
/// subtests pass, a unittest test that passes with two failed subtests, a
/// test that fails with its one failed subtest, and a test whose subtests
/// skip and xfail, which its summary does not count.
const SUBTESTS_MODULE: [u64; 4] = [3, 4, 0, 0];

/// The test modules of the project.
fn modules() -> Vec<&'static str> {
    FILES
        .iter()
        .map(|(path, _)| *path)
        .filter(|path| path.rsplit('/').next().is_some_and(|f| f.starts_with("test_")))
        .collect()
}

/// Runs `program args` in `cwd`, panicking with its output on failure.
fn run(program: &Path, args: &[&str], cwd: &Path) -> std::process::Output {
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// pytest's last summary line, "1 failed, 3 passed, 1 xfailed, 2 errors in
/// 0.52s", as `[passed, failed, skipped, errors]` the way the node counts:
/// xpassed with passed, xfailed with skipped.
fn parse_summary(line: &str) -> [u64; 4] {
    let counts = line.trim().trim_matches('=').trim();
    let counts = counts.rsplit_once(" in ").map_or(counts, |(counts, _)| counts);
    let mut tally = [0; 4];
    for part in counts.split(", ") {
        let (n, kind) = part.split_once(' ').unwrap_or_else(|| panic!("not a pytest summary: {line:?}"));
        let n: u64 = n.parse().unwrap_or_else(|_| panic!("not a pytest summary: {line:?}"));
        match kind {
            "passed" | "xpassed" => tally[0] += n,
            "failed" => tally[1] += n,
            "skipped" | "xfailed" => tally[2] += n,
            "error" | "errors" => tally[3] += n,
            _ => {}
        }
    }
    tally
}

/// Each module's counts under plain pytest: the project written to
/// `<dir>/plain`, pytest installed into a fresh venv of the system Python,
/// one pytest run per module (as the node runs them), with a home of its
/// own and the locale the node gives its runs. At pytest's default
/// verbosity: with `-q` or `-v` its summary counts subtests that skip or
/// xfail too (`pytest_report_teststatus` in `_pytest/subtests.py`).
fn plain_pytest_counts(dir: &Path) -> BTreeMap<String, [u64; 4]> {
    let project = dir.join("plain");
    write_files(&project, &FILES);
    let home = dir.join("plain-home");
    std::fs::create_dir(&home).unwrap();
    run(Path::new(SYSTEM_PYTHON), &["-m", "venv", "venv"], dir);
    let python = dir.join("venv/bin/python");
    run(&python, &["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "pytest"], dir);
    modules()
        .into_iter()
        .map(|module| {
            let out = Command::new(&python)
                .args(["-m", "pytest", "-p", "no:cacheprovider", module])
                .current_dir(&project)
                .env("HOME", &home)
                .env("LANG", "C.UTF-8")
                .env("PYTHONDONTWRITEBYTECODE", "1")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let summary = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
            (module.to_owned(), parse_summary(summary))
        })
        .collect()
}

fn counts(m: &Value) -> [u64; 4] {
    ["passed", "failed", "skipped", "errors"].map(|k| m[k].as_u64().unwrap_or(u64::MAX))
}

/// How the node starts the runs it grades.
#[derive(Clone, Copy)]
enum Runs {
    /// Children of a warm fork server, the default.
    Forked,
    /// A fresh Python process per run.
    Fresh,
    /// Forked, the project's tests given as a reference suite over a
    /// project that holds none.
    Suite,
}

fn graded_as_plain_pytest(mode: Mode, runs: Runs) {
    with_timeout(TEST_TIMEOUT, move || {
        let dir = tempfile::Builder::new().prefix("evalmesh-compat-").tempdir().unwrap();
        let plain = plain_pytest_counts(dir.path());
        // The project itself is sound: everything passes under plain pytest
        // but the modules of outcomes and of subtests, which count as designed.
        for (module, tally) in &plain {
            let expected = match module.as_str() {
                "tests/test_counts.py" => COUNTS_MODULE,
                "tests/test_subtests.py" => SUBTESTS_MODULE,
                _ => [tally[0], 0, 0, 0],
            };
            assert!(tally[0] > 0, "{module} ran nothing under plain pytest");
            assert_eq!(*tally, expected, "{module} under plain pytest");
        }

        let (uid_base, fork_server) = match runs {
            Runs::Forked => ("62900", "true"),
            Runs::Fresh => ("62950", "false"),
            Runs::Suite => ("62850", "true"),
        };
        let cfg = mode
            .config(&dir.path().join("data"))
            .set("node", "slots", "2")
            .set("executor", "sandbox_uid_base", uid_base)
            .set("executor", "fork_server", fork_server);
        let node = mode.start(&cfg, dir.path(), "node");
        let id = match runs {
            Runs::Suite => {
                let (tests, project): (Vec<_>, Vec<_>) = FILES.iter().partition(|(path, _)| path.starts_with("tests/"));
                let project = zip_of(&under("compat", &project));
                let (content_type, body) = multipart(&[
                    Part::file("file", "compat.zip", &project),
                    Part::file("tests", "suite.zip", &zip_of(&tests)),
                ]);
                let posted = node.post("/evaluation", &content_type, &body);
                assert_eq!(posted.status, 202, "{posted:?}");
                posted.json()["id"].as_str().unwrap().to_owned()
            }
            Runs::Forked | Runs::Fresh => node.submit_multipart("compat.zip", &zip_of(&under("compat", &FILES))),
        };
        node.wait_finished(&id, EVALUATION_TIMEOUT);
        let e = node.evaluation(&id, "?detail=tests");
        assert_eq!(e["status"], json!("done"), "{}: {e:#}", mode.label());
        assert_eq!(e["projects"]["compat"]["error"], Value::Null, "{}: {e:#}", mode.label());

        let results = e["module_results"]["compat"].as_object().cloned().unwrap_or_default();
        let graded: Vec<&String> = results.keys().collect();
        assert_eq!(graded, plain.keys().collect::<Vec<_>>(), "{}: the modules graded", mode.label());
        let differing: Vec<String> = plain
            .iter()
            .filter(|(module, tally)| {
                results[*module]["status"] != json!("done") || counts(&results[*module]) != **tally
            })
            .map(|(module, tally)| {
                let m = &results[module];
                format!(
                    "{module}: {} {:?}, plain pytest {tally:?}\n{}",
                    m["status"],
                    counts(m),
                    m["output"].as_str().unwrap_or_default()
                )
            })
            .collect();
        assert!(
            differing.is_empty(),
            "{}: modules graded unlike plain pytest:\n{}",
            mode.label(),
            differing.join("\n")
        );
    });
}

#[test]
fn honest_code_is_graded_as_plain_pytest_grades_it_as_root_in_bwrap() {
    graded_as_plain_pytest(Mode::new(User::Root, Sandbox::Bwrap), Runs::Forked);
}

#[test]
fn honest_code_is_graded_as_plain_pytest_grades_it_in_fresh_processes_as_root_in_bwrap() {
    graded_as_plain_pytest(Mode::new(User::Root, Sandbox::Bwrap), Runs::Fresh);
}

#[test]
fn honest_code_given_as_a_reference_suite_is_graded_as_plain_pytest_grades_it_as_ordinary_user_in_bwrap() {
    graded_as_plain_pytest(Mode::new(User::Ordinary, Sandbox::Bwrap), Runs::Suite);
}

#[test]
fn honest_code_is_graded_as_plain_pytest_grades_it_as_root_without_sandbox() {
    graded_as_plain_pytest(Mode::new(User::Root, Sandbox::None), Runs::Forked);
}

#[test]
fn honest_code_is_graded_as_plain_pytest_grades_it_as_ordinary_user_in_bwrap() {
    graded_as_plain_pytest(Mode::new(User::Ordinary, Sandbox::Bwrap), Runs::Forked);
}

#[test]
fn honest_code_is_graded_as_plain_pytest_grades_it_as_ordinary_user_without_sandbox() {
    graded_as_plain_pytest(Mode::new(User::Ordinary, Sandbox::None), Runs::Forked);
}

#[test]
fn pytest_summaries_are_read_as_the_node_counts() {
    assert_eq!(parse_summary("1 failed, 36 passed, 2 skipped, 1 xfailed, 1 xpassed, 2 errors in 3.08s"), [37, 1, 3, 2]);
    assert_eq!(parse_summary("3 passed in 0.02s"), [3, 0, 0, 0]);
    assert_eq!(parse_summary("== 1 error in 0.10s =="), [0, 0, 0, 1]);
    assert_eq!(parse_summary("2 passed, 1 warning in 0.02s"), [2, 0, 0, 0]);
}
