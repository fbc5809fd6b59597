//! The command line's client commands against a real node: a teacher grades
//! a folder of projects with one command, follows it, reads and exports the
//! grades, cancels, and gets the documented exit status each time.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

const TOKEN: &str = "cli-client-token-0123456789";

/// Runs `evalmesh ARGS` with `env`; its exit code, standard output and
/// standard error.
fn evalmesh(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_evalmesh"));
    cmd.args(args).env_remove("EVALMESH_NODE").env_remove("EVALMESH_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running evalmesh");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().expect("exited"), text(&out.stdout), text(&out.stderr))
}

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

const TESTS: &str = "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n\n\n\
                     def test_zero():\n    assert add(0, 0) == 0\n";

#[test]
fn a_teacher_grades_a_folder_with_one_command_and_reads_it_back() {
    with_timeout(Duration::from_secs(240), || {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::start(&NodeConfig::new(&dir.path().join("data")).token(TOKEN), dir.path(), "node");
        let class = dir.path().join("class");
        write(
            &class,
            &[
                ("alice/requirements.txt", ""),
                ("alice/calc.py", "def add(a, b):\n    return a + b\n"),
                ("alice/tests/test_calc.py", TESTS),
                // Neither a repository's history nor an environment is sent.
                ("alice/.git/tests/test_history.py", "def test_history():\n    assert False\n"),
                ("alice/.venv/tests/test_env.py", "def test_env():\n    assert False\n"),
                ("bob/requirements.txt", ""),
                ("bob/calc.py", "def add(a, b):\n    return a + b + 1\n"),
                ("bob/tests/test_calc.py", TESTS),
            ],
        );
        let url = format!("http://{}", node.addr);
        let env = [("EVALMESH_NODE", url.as_str()), ("EVALMESH_TOKEN", TOKEN)];
        let class_arg = class.to_str().unwrap();

        let (code, out, err) = evalmesh(&["submit", class_arg, "--wait", "--format", "json"], &env);
        assert_eq!(code, 0, "{out}\n{err}");
        let record: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        let id = record["id"].as_str().unwrap().to_owned();
        assert_eq!(record["status"], "done");
        let counts = |p: &str| {
            let p = &record["projects"][p];
            (p["passed"].as_u64(), p["failed"].as_u64(), p["errors"].as_u64())
        };
        assert_eq!(counts("alice"), (Some(2), Some(0), Some(0)), "{record}");
        assert_eq!(counts("bob"), (Some(0), Some(2), Some(0)), "{record}");
        // Not on a terminal: a plain line per change, the last all done.
        assert!(err.starts_with(&format!("evaluation {id}\n")), "{err}");
        assert!(err.lines().any(|l| l.starts_with("done 2/2 modules, 1 failing")), "{err}");

        let (code, out, err) = evalmesh(&["status", &id], &env);
        assert_eq!(code, 0, "{err}");
        assert!(out.lines().next().unwrap().starts_with("label  project  passed"), "{out}");
        assert!(out.contains("\nbob    bob           0       2"), "{out}");
        let (code, csv, _) = evalmesh(&["export", &id, "--format", "csv"], &env);
        assert_eq!((code, csv), (0, node.get(&format!("/evaluation/{id}/grades.csv")).text()));
        let (code, junit, _) =
            evalmesh(&["export", &id, "--format", "junit", "--node", &node.addr, "--token", TOKEN], &[]);
        assert_eq!((code, junit.matches("<testsuite name=").count()), (0, 2), "{junit}");
        let (code, list, _) = evalmesh(&["list", "--format", "json"], &env);
        assert_eq!(code, 0);
        let listed: Value = serde_json::from_str(&list).unwrap();
        assert_eq!(listed["evaluations"][0]["id"].as_str(), Some(id.as_str()));
        let (code, network, _) = evalmesh(&["network"], &env);
        assert_eq!(code, 0);
        assert!(network.contains(&format!("{}  alive", node.addr)), "{network}");

        // A reference suite from a folder: both graded on it alone.
        let suite = dir.path().join("suite");
        write(
            &suite,
            &[("tests/test_suite.py", "from calc import add\n\n\ndef test_suite():\n    assert add(2, 2) == 4\n")],
        );
        let (code, out, err) =
            evalmesh(&["submit", class_arg, "--tests", suite.to_str().unwrap(), "--wait", "--format", "csv"], &env);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.lines().count(), 3, "{out}");
        assert!(out.lines().any(|l| l.starts_with("alice,alice,1,0,0,0,100")), "{out}");
        assert!(out.lines().any(|l| l.starts_with("bob,bob,0,1,0,0,0")), "{out}");

        // A running evaluation, followed then cancelled: the exit status says so.
        let slow = dir.path().join("slow");
        write(&slow, &[("tests/test_slow.py", "import time\n\n\ndef test_slow():\n    time.sleep(60)\n")]);
        let (code, out, _) = evalmesh(&["submit", slow.to_str().unwrap()], &env);
        assert_eq!(code, 0);
        let slow_id = out.trim().to_owned();
        wait_until("it runs", Duration::from_secs(60), || {
            (node.evaluation(&slow_id, "")["status"] == "running").then_some(())
        });
        let (code, out, _) = evalmesh(&["status", &slow_id], &env);
        assert_eq!(code, 4, "running: {out}");
        let (code, out, _) = evalmesh(&["cancel", &slow_id], &env);
        assert_eq!((code, out.trim()), (0, format!("evaluation {slow_id} cancelled").as_str()));
        let (code, _, err) = evalmesh(&["watch", &slow_id], &env);
        assert_eq!(code, 1, "cancelled: {err}");
        let (code, out, _) = evalmesh(&["cancel", &slow_id], &env);
        assert_eq!(code, 0);
        assert!(out.starts_with(&format!("evaluation {slow_id} removed from")), "{out}");

        // Refusals and usage errors.
        let (code, _, err) = evalmesh(&["status", &id, "--node", &node.addr], &[]);
        assert_eq!(code, 3, "no token");
        assert!(err.contains("answered 401"), "{err}");
        let (code, _, err) = evalmesh(&["status", &slow_id], &env);
        assert_eq!(code, 3, "{err}");
        assert!(err.contains("answered 404"), "{err}");
        let (code, _, err) = evalmesh(&["list", "--node", &format!("127.0.0.1:{}", free_port())], &[]);
        assert_eq!(code, 3, "{err}");
        let missing = dir.path().join("missing");
        let (code, _, err) = evalmesh(&["submit", missing.to_str().unwrap()], &env);
        assert_eq!(code, 2, "{err}");
        let (code, _, err) = evalmesh(&["submit", class_arg, "https://example.invalid/a.git"], &env);
        assert_eq!(code, 2, "{err}");
        assert_eq!(evalmesh(&["status"], &env).0, 2, "clap's usage error");
    });
}

/// The quick start's example, run as the README says, prints the grade
/// table the README shows, row for row.
#[test]
fn the_readme_example_grades_as_the_readme_shows() {
    const README: &str = include_str!("../README.md");
    const COMMAND: &str = "cargo run --release -- submit examples/class --tests examples/suite --wait";
    with_timeout(Duration::from_secs(240), || {
        let after = README.split_once(COMMAND).expect("the README runs the example").1;
        let table = after.split_once("```text\n").unwrap().1.split_once("```").unwrap().0;
        let dir = tempfile::tempdir().unwrap();
        let node = Node::start(&NodeConfig::new(&dir.path().join("data")), dir.path(), "node");
        let args: Vec<&str> = COMMAND.split(" -- ").nth(1).unwrap().split(' ').collect();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_evalmesh"));
        cmd.args(&args).env("EVALMESH_NODE", &node.addr).env_remove("EVALMESH_TOKEN");
        let out = cmd.current_dir(env!("CARGO_MANIFEST_DIR")).output().expect("running evalmesh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        let rows: Vec<&str> = stdout.lines().take(table.lines().count()).collect();
        assert_eq!(rows, table.lines().collect::<Vec<_>>(), "{stdout}");
    });
}
