//! Helpers of the multi-node tests: a cluster of real nodes with shrunk
//! timings, the project whose exact counts they assert, and the checks of an
//! evaluation's results and event log.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::*;

/// Cluster timings shrunk for tests: dead within about a second.
pub fn cluster_config(data_dir: &Path, seeds: &[&Node]) -> NodeConfig {
    let seeds: Vec<String> = seeds.iter().map(|n| toml_string(&n.addr)).collect();
    NodeConfig::new(data_dir)
        .set("node", "slots", "1")
        .set("cluster", "seeds", &format!("[{}]", seeds.join(", ")))
        .set("cluster", "probe_interval_ms", "300")
        .set("cluster", "probe_timeout_ms", "200")
        .set("cluster", "suspicion_timeout_ms", "1500")
        .set("cluster", "dispatch_tick_ms", "100")
        .set("cluster", "join_retry_ms", "200")
        .set("cluster", "lock_lease_ms", "2000")
}

/// Starts `n` nodes, the first the seed of the others, and waits until each
/// sees all of them alive.
pub fn start_cluster(dir: &Path, n: usize) -> Vec<Node> {
    start_cluster_with(dir, n, |config| config)
}

/// As [`start_cluster`], each node's config passed through `adjust` first.
pub fn start_cluster_with(dir: &Path, n: usize, adjust: impl Fn(NodeConfig) -> NodeConfig) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..n {
        let data = dir.join(format!("data{i}"));
        let config = match nodes.first() {
            None => cluster_config(&data, &[]),
            Some(seed) => cluster_config(&data, &[seed]),
        };
        nodes.push(Node::start(&adjust(config), dir, &format!("node{i}")));
    }
    for node in &nodes {
        wait_until(&format!("{} sees {n} members alive", node.addr), Duration::from_secs(20), || {
            (alive(node).len() == n).then_some(())
        });
    }
    nodes
}

pub fn status_of(node: &Node, member: &str) -> Option<String> {
    let network = node.get("/network").json();
    network["members"]
        .as_array()?
        .iter()
        .find(|m| m["address"] == member)
        .and_then(|m| m["status"].as_str().map(str::to_owned))
}

/// A project of `modules` modules; module i sleeps `sleep_s` then has one
/// passing test and, when i is odd, one failing test.
pub fn project(modules: usize, sleep_s: f64) -> Vec<u8> {
    let mut files = vec![("proj/requirements.txt".to_string(), String::new())];
    for i in 0..modules {
        let mut source = format!("import time\n\ndef test_pass_{i}():\n    time.sleep({sleep_s})\n");
        if i % 2 == 1 {
            source.push_str(&format!("\ndef test_fail_{i}():\n    assert {i} == 0\n"));
        }
        files.push((format!("proj/tests/test_m{i:02}.py"), source));
    }
    zip_of(&files)
}

/// Asserts the exact counts `project` promises, and answers the node of each module.
pub fn assert_exact(evaluation: &Value, modules: usize) -> BTreeMap<String, String> {
    assert_eq!(evaluation["status"], "done", "{evaluation:#}");
    let results = evaluation["module_results"]["proj"].as_object().expect("results of proj");
    assert_eq!(results.len(), modules, "{evaluation:#}");
    let mut nodes = BTreeMap::new();
    for i in 0..modules {
        let r = &results[&format!("tests/test_m{i:02}.py")];
        let failed = u64::from(i % 2 == 1);
        assert_eq!(
            (r["status"].as_str(), r["passed"].as_u64(), r["failed"].as_u64(), r["errors"].as_u64()),
            (Some("done"), Some(1), Some(failed), Some(0)),
            "module {i}: {r:#}"
        );
        nodes.insert(format!("tests/test_m{i:02}.py"), r["node"].as_str().unwrap_or_default().to_owned());
    }
    let failed = (modules / 2) as u64;
    let p = &evaluation["projects"]["proj"];
    assert_eq!((p["passed"].as_u64(), p["failed"].as_u64()), (Some(modules as u64), Some(failed)));
    assert_eq!(evaluation["_run_info"]["modules_done"], modules);
    nodes
}

/// The event log starts with the submission and ends with the close, is
/// sorted by Lamport time, and each task that ran is assigned, then started,
/// then answered, even when a worker on another node ran it.
pub fn assert_causal(log: &Value) {
    let events = log["events"].as_array().expect("events");
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"submitted"), "{log:#}");
    assert_eq!(kinds.last(), Some(&"done"), "{log:#}");
    let times: Vec<u64> = events.iter().filter_map(|e| e["lamport"].as_u64()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "sorted by Lamport time: {times:?}");
    let mut tasks: BTreeMap<u64, BTreeMap<&str, u64>> = BTreeMap::new();
    for e in events {
        let detail = e["detail"].as_str().unwrap_or_default();
        let Some(task) = detail.strip_prefix("task ").and_then(|r| r.split([' ', ':']).next()?.parse::<u64>().ok())
        else {
            continue;
        };
        tasks.entry(task).or_default().insert(e["kind"].as_str().unwrap(), e["lamport"].as_u64().unwrap());
    }
    assert!(!tasks.is_empty());
    // A task placed on a node that died has an assignment and nothing more.
    for (task, t) in &tasks {
        let (assigned, started, result) = (t.get("assigned"), t.get("started"), t.get("result"));
        assert!(assigned.is_some(), "task {task} ran without an assignment: {t:?}\n{log:#}");
        assert!(started.is_some() == result.is_some(), "task {task}: {t:?}");
        if let (Some(a), Some(s), Some(r)) = (assigned, started, result) {
            assert!(a < s && s < r, "task {task}: {t:?}\n{log:#}");
        }
    }
}

pub fn coordinator_of(node: &Node) -> Option<String> {
    node.get("/network").json()["coordinator"].as_str().map(str::to_owned)
}

/// The node of highest address, the one the bully election must choose.
pub fn highest<'a>(nodes: impl Iterator<Item = &'a Node>) -> String {
    nodes.map(|n| n.addr.parse::<std::net::SocketAddr>().unwrap()).max().unwrap().to_string()
}
