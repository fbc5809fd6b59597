//! Duration-aware dispatch on one real node: a project whose modules take
//! very different times, submitted twice. Each module result carries its
//! `wall` time beside pytest's `duration`, the counts are exact both times,
//! and the second submission, whose content the node has run before, starts
//! its longest module first where the first could only go by test counts
//! (the evaluation's events name the module of each task and the estimate
//! it was handed out with).
//!
//! The node has one slot, so the order tasks are handed out in is the order
//! they run in.

mod common;

use std::time::Duration;

use common::{toml_string, under, with_timeout, zip_of, Node, NodeConfig};
use serde_json::{json, Value};

/// The longest one evaluation may take, its environment build included.
const EVALUATION_TIMEOUT: Duration = Duration::from_secs(180);

const TEST_TIMEOUT: Duration = Duration::from_secs(420);

/// One test, and the longest module by far.
const LONG: &str = "\
import time


def test_takes_its_time():
    time.sleep(2.0)
";

/// Two tests, a fraction of the long module's time.
const MIDDLE: &str = "\
import time


def test_first():
    time.sleep(0.3)


def test_second():
    time.sleep(0.3)
";

/// Many tests, all quick: the most tests, the least time.
const MANY_QUICK: &str = "\
import pytest


@pytest.mark.parametrize('n', range(6))
def test_quick(n):
    assert n < 6
";

const FEW_QUICK: &str = "\
def test_a():
    assert True


def test_b():
    assert 'x'


def test_c():
    assert [0]
";

/// The modules, their passed tests, most tests first.
const MODULES: [(&str, u64); 4] = [
    ("tests/test_many_quick.py", 6),
    ("tests/test_few_quick.py", 3),
    ("tests/test_middle.py", 2),
    ("tests/test_long.py", 1),
];

fn project_zip() -> Vec<u8> {
    zip_of(&under(
        "proj",
        &[
            ("requirements.txt", ""),
            ("tests/test_long.py", LONG),
            ("tests/test_middle.py", MIDDLE),
            ("tests/test_many_quick.py", MANY_QUICK),
            ("tests/test_few_quick.py", FEW_QUICK),
        ],
    ))
}

/// The modules of the evaluation's run tasks, in the order they were handed
/// out, each with the estimate's basis its event names.
fn handed_out(node: &Node, id: &str) -> Vec<(String, String)> {
    let log = node.get(&format!("/evaluation/{id}/events")).json();
    let events = log["events"].as_array().unwrap_or_else(|| panic!("no events: {log}"));
    events
        .iter()
        .filter(|e| e["kind"] == "assigned")
        .filter_map(|e| {
            let detail = e["detail"].as_str().expect("a detail");
            // "task N of proj to ADDR: tests/test_x.py (estimated 2.10 s from history)"
            let (_, what) = detail.rsplit_once(": ")?;
            let (module, estimate) = what.split_once(" (estimated ")?;
            let basis = estimate.split_once(" s from ")?.1.trim_end_matches(')');
            Some((module.to_owned(), basis.to_owned()))
        })
        .collect()
}

/// Asserts the evaluation is done with every module's exact counts and a
/// sensible `wall`, and answers the modules' walls.
fn assert_exact_with_walls(evaluation: &Value) -> Vec<f64> {
    assert_eq!(evaluation["status"], json!("done"), "{evaluation:#}");
    let info = &evaluation["_run_info"];
    assert_eq!((info["modules_total"].as_u64(), info["modules_done"].as_u64()), (Some(4), Some(4)), "{info}");
    assert_eq!(
        (info["passed"].as_u64(), info["failed"].as_u64(), info["errors"].as_u64()),
        (Some(12), Some(0), Some(0))
    );
    MODULES
        .iter()
        .map(|(module, passed)| {
            let m = &evaluation["module_results"]["proj"][module];
            assert_eq!(m["status"], json!("done"), "{module}: {m}");
            assert_eq!(m["passed"].as_u64(), Some(*passed), "{module}: {m}");
            let (duration, wall) = (m["duration"].as_f64().unwrap(), m["wall"].as_f64().unwrap());
            assert!(wall > 0.0, "{module}: every module has a wall time: {m}");
            // The wall holds the tests' time and more; duration is rounded
            // to 10 ms and wall to 1 ms.
            assert!(wall + 0.01 >= duration, "{module}: wall {wall} below duration {duration}: {m}");
            wall
        })
        .collect()
}

#[test]
fn the_second_run_of_a_project_starts_its_longest_module_first() {
    with_timeout(TEST_TIMEOUT, || {
        let dir = tempfile::Builder::new().prefix("evalmesh-dispatch-").tempdir().expect("a temp dir");
        let config = NodeConfig::new(&dir.path().join("data"))
            .set("node", "slots", "1")
            .set("executor", "sandbox_uid_base", "62700")
            .set("balance", "policy", &toml_string("longest_first"));
        let node = Node::start(&config, dir.path(), "dispatch");

        let first = node.submit_raw_zip(&project_zip());
        node.wait_finished(&first, EVALUATION_TIMEOUT);
        let walls = assert_exact_with_walls(&node.evaluation(&first, ""));
        let long = walls[3];
        assert!(long >= 2.0, "the long module's wall holds its 2 s sleep: {walls:?}");
        assert!(walls[..3].iter().all(|w| *w < long), "{walls:?}");
        // Nothing was known: the module with the most tests went first, the
        // long one with a single test last.
        let order = handed_out(&node, &first);
        let expected: Vec<(String, String)> =
            MODULES.iter().map(|(m, _)| (m.to_string(), "test count".to_string())).collect();
        assert_eq!(order, expected, "first run");

        let second = node.submit_raw_zip(&project_zip());
        node.wait_finished(&second, EVALUATION_TIMEOUT);
        assert_exact_with_walls(&node.evaluation(&second, ""));
        let order = handed_out(&node, &second);
        assert_eq!(order.len(), 4, "{order:?}");
        assert!(order.iter().all(|(_, basis)| basis == "history"), "the same content's own history: {order:?}");
        let modules: Vec<&str> = order.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(modules[..2], ["tests/test_long.py", "tests/test_middle.py"], "second run: {order:?}");
    });
}
