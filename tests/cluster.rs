//! The mesh with real processes on loopback: evaluations spread over several
//! nodes, a worker killed with SIGKILL mid-evaluation, a node that joins
//! mid-evaluation, a node that restarts or leaves, and the cluster-wide
//! answers. Every node is a real `evalmesh` process on a port it picked.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::cluster::*;
use common::sse::{Event, Stream};
use common::*;

/// Debian's nginx in front of `nodes`, configured from `config/nginx.conf`
/// with the nodes' addresses and a free port; killed when dropped.
struct Proxy {
    child: Child,
    addr: String,
}

impl Proxy {
    fn start(dir: &Path, nodes: &[Node]) -> Proxy {
        let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/nginx.conf")).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let servers: String =
            nodes.iter().map(|n| format!("        server {} max_fails=2 fail_timeout=10s;\n", n.addr)).collect();
        let mut rendered = String::new();
        for line in shipped.lines() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("server 127.0.0.1:") {
                continue;
            }
            if trimmed == "listen 127.0.0.1:8080;" {
                rendered.push_str(&format!("        listen {addr};\n"));
                continue;
            }
            rendered.push_str(line);
            rendered.push('\n');
            if trimmed == "least_conn;" {
                rendered.push_str(&servers);
            }
        }
        let prefix = dir.join("nginx");
        for sub in ["logs", "temp"] {
            std::fs::create_dir_all(prefix.join(sub)).unwrap();
        }
        let conf = prefix.join("nginx.conf");
        std::fs::write(&conf, rendered).unwrap();
        let mut cmd = Command::new("nginx");
        // Its own process group, so that dropping the proxy also kills the
        // worker processes nginx forks.
        cmd.arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(format!("{}/", prefix.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let child = die_with_parent(&mut cmd).spawn().expect("nginx is installed (.ci/run installs it)");
        let proxy = Proxy { child, addr };
        wait_until("nginx accepts", Duration::from_secs(10), || {
            std::net::TcpStream::connect(&proxy.addr).ok().map(|_| ())
        });
        proxy
    }

    fn get(&self, path: &str, authorization: &str) -> Response {
        http(&self.addr, "GET", path, &[("Authorization", authorization)], Body::None)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // SAFETY: killpg(2) on the group our own child leads.
        unsafe { libc::killpg(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

#[test]
fn an_evaluation_submitted_through_nginx_is_spread_over_the_cluster() {
    const TOKEN: &str = "nginx-client-token-0123456789";
    with_timeout(Duration::from_secs(240), || {
        let dir = tempfile::tempdir().unwrap();
        // Client tokens on, as in the shipped cluster configs: nginx passes
        // the client's Authorization header to the nodes, and their
        // WWW-Authenticate back.
        let nodes = start_cluster_with(dir.path(), 4, |config| config.token(TOKEN));
        let proxy = Proxy::start(dir.path(), &nodes);
        let bearer = format!("Bearer {TOKEN}");
        let (content_type, body) = multipart(&[Part::file("file", "projects.zip", &project(12, 1.0))]);
        let refused = http(&proxy.addr, "POST", "/evaluation", &[("Content-Type", &content_type)], Body::Fixed(&body));
        assert_eq!(refused.status, 401, "{refused:?}");
        assert_eq!(refused.header("www-authenticate"), Some("Bearer realm=\"evalmesh\""), "{refused:?}");
        let submitted = http(
            &proxy.addr,
            "POST",
            "/evaluation",
            &[("Content-Type", &content_type), ("Authorization", &bearer)],
            Body::Fixed(&body),
        );
        assert_eq!(submitted.status, 202, "{submitted:?}");
        let id = submitted.json()["id"].as_str().unwrap().to_owned();
        // Its live progress through the proxy: each event as it comes (the
        // first while the evaluation still runs), every module once.
        let mut stream = Stream::open(&proxy.addr, &format!("/evaluation/{id}/stream"), &[("Authorization", &bearer)]);
        let first = std::iter::from_fn(|| stream.next_event()).find(|e| e.event == "module").expect("a module event");
        let running = proxy.get(&format!("/evaluation/{id}"), &bearer).json();
        assert_eq!(running["status"], "running", "the first module event came only at the end: {running}");
        let events = stream.until_done();
        let mut streamed: Vec<String> = std::iter::once(&first)
            .chain(events.iter().filter(|e| e.event == "module"))
            .map(|e| format!("{}::{}", e.data["project"], e.data["module"]))
            .collect();
        streamed.sort();
        streamed.dedup();
        assert_eq!(streamed.len(), 1 + events.iter().filter(|e| e.event == "module").count(), "each module once");
        assert_eq!(streamed.len(), 12);
        let evaluation = poll_until(Duration::from_secs(180), || {
            let e = proxy.get(&format!("/evaluation/{id}"), &bearer).json();
            (e["status"] == "done").then_some(e)
        })
        .expect("the evaluation finishes");
        assert_eq!(events.last().unwrap().data["_run_info"], evaluation["_run_info"], "done carries the final record");
        let placed = assert_exact(&evaluation, 12);
        let used: BTreeSet<&String> = placed.values().collect();
        assert!(used.len() >= 3, "modules ran on {used:?}");
        assert_eq!(http(&proxy.addr, "GET", "/health", &[], Body::None).status, 200, "health needs no token");
        for (export, content_type) in [
            ("events", "application/json"),
            ("grades.csv", "text/csv; charset=utf-8"),
            ("junit.xml", "application/xml"),
        ] {
            let answer = proxy.get(&format!("/evaluation/{id}/{export}"), &bearer);
            assert_eq!(
                (answer.status, answer.header("content-type")),
                (200, Some(content_type)),
                "{export}: {answer:?}"
            );
            // Byte for byte only where every copy says the same: a replica's
            // events and captured output may lag the supervisor's a while.
            match export {
                "grades.csv" => assert_eq!(answer.text(), nodes[3].get(&format!("/evaluation/{id}/{export}")).text()),
                "junit.xml" => assert_eq!(answer.text().matches("<testsuite name=").count(), 12, "{}", answer.text()),
                _ => assert_eq!(answer.json()["id"], serde_json::json!(id)),
            }
        }

        // A reference suite through the proxy: the project is graded on the
        // suite's module alone, then removed through the proxy.
        let suite =
            zip_of(&[("tests/test_suite.py", "def test_suite():\n    pass\n\n\ndef test_no():\n    assert False\n")]);
        let (content_type, body) = multipart(&[
            Part::file("file", "projects.zip", &project(4, 0.0)),
            Part::file("tests", "suite.zip", &suite),
        ]);
        let headers = [("Content-Type", content_type.as_str()), ("Authorization", bearer.as_str())];
        let graded = http(&proxy.addr, "POST", "/evaluation", &headers, Body::Fixed(&body));
        assert_eq!(graded.status, 202, "{graded:?}");
        let graded = graded.json()["id"].as_str().unwrap().to_owned();
        let e = poll_until(Duration::from_secs(120), || {
            let e = proxy.get(&format!("/evaluation/{graded}"), &bearer).json();
            (e["status"] == "done").then_some(e)
        })
        .expect("the suite's evaluation finishes");
        let modules: Vec<&String> = e["module_results"]["proj"].as_object().unwrap().keys().collect();
        assert_eq!(modules, ["tests/test_suite.py"], "{e}");
        assert_eq!(
            (&e["projects"]["proj"]["passed"], &e["projects"]["proj"]["failed"]),
            (&serde_json::json!(1), &serde_json::json!(1))
        );
        let csv = proxy.get(&format!("/evaluation/{graded}/grades.csv"), &bearer);
        assert_eq!(csv.text(), "label,project,passed,failed,errors,skipped,%passed,points,max_points,nota,error\nproj,proj,1,1,0,0,50.0,1.0,2.0,10.0,\n");
        let removed =
            http(&proxy.addr, "DELETE", &format!("/evaluation/{graded}"), &[("Authorization", &bearer)], Body::None);
        assert_eq!(removed.status, 200, "{removed:?}");
        assert_eq!(proxy.get(&format!("/evaluation/{graded}"), &bearer).status, 404);
        // A peer route called without a node's signature is refused.
        let direct = nodes[0].post("/execute_module", "application/json", b"{}");
        assert_eq!(direct.status, 401, "{direct:?}");
        // Peer routes are not reachable through the proxy, even signed.
        let signed = signed_headers(&nodes[0].secret, "POST", "/execute_module", TEST_SENDER, b"{}", now_ms());
        let mut headers: Vec<(&str, &str)> = signed.iter().map(|(n, v)| (*n, v.as_str())).collect();
        headers.push(("Content-Type", "application/json"));
        let peer = http(&proxy.addr, "POST", "/execute_module", &headers, Body::Fixed(b"{}"));
        assert_eq!(peer.status, 404);
        assert!(peer.json()["error"].is_string());
    });
}

#[test]
fn an_evaluation_is_spread_over_the_nodes_and_readable_from_each() {
    with_timeout(Duration::from_secs(240), || {
        let dir = tempfile::tempdir().unwrap();
        let nodes = start_cluster(dir.path(), 4);
        let id = nodes[1].submit_multipart("projects.zip", &project(12, 1.0));
        let evaluation = nodes[2].wait_finished(&id, Duration::from_secs(180));
        let placed = assert_exact(&evaluation, 12);
        let used: BTreeSet<&String> = placed.values().collect();
        assert!(used.len() >= 3, "modules ran on {used:?}");
        assert_eq!(evaluation["supervisor"], nodes[1].addr.as_str());
        for node in &nodes {
            assert_eq!(node.evaluation(&id, "")["_run_info"], evaluation["_run_info"], "as seen from {}", node.addr);
            // One of the four holds no copy: it asks its peers.
            assert_gradebook(node, &id, &evaluation);
            let listed = node.get("/evaluation").json();
            let ids: Vec<&str> =
                listed["evaluations"].as_array().unwrap().iter().filter_map(|e| e["id"].as_str()).collect();
            assert_eq!(ids, vec![id.as_str()]);
        }
        let stats = nodes[0].get("/stats").json();
        assert_eq!(stats["nodes"].as_object().unwrap().len(), 4);
        assert_eq!(stats["global"]["slots"], 4);
        assert_eq!(stats["global"]["passed"], 12);
        assert_eq!(stats["global"]["failed"], 6);
        // Three nodes hold the finished evaluation (its supervisor and two
        // replicas); the cluster counts it once.
        let stats = wait_until("three copies of the finished evaluation", Duration::from_secs(30), || {
            let stats = nodes[0].get("/stats").json();
            let held: u64 =
                stats["nodes"].as_object().unwrap().values().filter_map(|n| n["evaluations"]["done"].as_u64()).sum();
            (held == 3).then_some(stats)
        });
        assert_eq!(
            stats["global"]["evaluations"],
            serde_json::json!({"queued": 0, "running": 0, "done": 1, "failed": 0, "cancelled": 0})
        );
        assert_causal(&nodes[3].get(&format!("/evaluation/{id}/events")).json());
        let peers = nodes[3].get("/peers").json();
        let expected: Vec<&str> = {
            let mut all: Vec<&str> = nodes.iter().map(|n| n.addr.as_str()).collect();
            all.sort();
            all
        };
        assert_eq!(peers["peers"], serde_json::json!(expected));

        // Removed from every node that held a copy, asked of one that may not.
        // The supervisor and its two replicas hold one; a replica replaced
        // while thought dead (a loaded machine delays probes) keeps its own.
        let holders: Vec<String> = nodes
            .iter()
            .filter(|n| n.get(&format!("/evaluation/{id}?scope=local")).status == 200)
            .map(|n| n.addr.clone())
            .collect();
        assert!(holders.len() >= 3, "{holders:?}");
        let removed = nodes[0].request("DELETE", &format!("/evaluation/{id}"), &[], Body::None);
        assert_eq!(removed.status, 200, "{removed:?}");
        let mut expected_holders = holders.clone();
        expected_holders.sort();
        assert_eq!(removed.json()["removed_from"], serde_json::json!(expected_holders));
        for node in &nodes {
            assert_eq!(node.get(&format!("/evaluation/{id}")).status, 404, "{}", node.addr);
            assert_eq!(node.get("/evaluation").json()["evaluations"], serde_json::json!([]), "{}", node.addr);
        }
        assert_eq!(nodes[1].request("DELETE", &format!("/evaluation/{id}"), &[], Body::None).status, 404);
    });
}

#[test]
fn a_worker_killed_mid_evaluation_loses_nothing() {
    with_timeout(Duration::from_secs(240), || {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = start_cluster(dir.path(), 3);
        let id = nodes[0].submit_multipart("projects.zip", &project(9, 2.0));
        let victim = nodes[2].addr.clone();
        wait_until("the victim runs a module", Duration::from_secs(120), || {
            let stats = nodes[2].get("/stats?scope=local").json();
            (stats["slots_busy"].as_u64() == Some(1)).then_some(())
        });
        nodes[2].kill();
        wait_until("the victim is dead", Duration::from_secs(20), || {
            (status_of(&nodes[0], &victim).as_deref() == Some("dead")).then_some(())
        });
        let evaluation = nodes[0].wait_finished(&id, Duration::from_secs(180));
        let placed = assert_exact(&evaluation, 9);
        assert!(placed.values().all(|n| *n != victim), "no result came from the dead node: {placed:?}");
        assert!(nodes[0].log().contains(&format!("node {victim} lost")), "the supervisor took back its tasks");
        let log = nodes[1].get(&format!("/evaluation/{id}/events")).json();
        assert_causal(&log);
        let reassigned = log["events"].as_array().unwrap().iter().filter(|e| e["kind"] == "reassigned").count();
        assert!(reassigned >= 1, "the log shows the tasks taken back: {log:#}");
    });
}

#[test]
fn a_node_that_joins_mid_evaluation_receives_work() {
    with_timeout(Duration::from_secs(240), || {
        let dir = tempfile::tempdir().unwrap();
        let first = Node::start(&cluster_config(&dir.path().join("data0"), &[]), dir.path(), "node0");
        let id = first.submit_multipart("projects.zip", &project(10, 1.5));
        wait_until("a first result", Duration::from_secs(120), || {
            (first.evaluation(&id, "")["_run_info"]["modules_done"].as_u64() >= Some(1)).then_some(())
        });
        let late = Node::start(&cluster_config(&dir.path().join("data1"), &[&first]), dir.path(), "node1");
        let evaluation = first.wait_finished(&id, Duration::from_secs(180));
        let placed = assert_exact(&evaluation, 10);
        assert!(placed.values().any(|n| *n == late.addr), "the late node took no module: {placed:?}");
    });
}

#[test]
fn a_restarted_node_rejoins_under_its_address_with_a_higher_incarnation() {
    with_timeout(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = start_cluster(dir.path(), 2);
        let addr = nodes[1].addr.clone();
        let incarnation = |node: &Node| {
            let network = node.get("/network").json();
            network["members"].as_array().unwrap().iter().find(|m| m["address"] == addr.as_str()).unwrap()
                ["incarnation"]
                .as_u64()
                .unwrap()
        };
        let before = incarnation(&nodes[0]);
        nodes[1].kill();
        wait_until("the node is dead", Duration::from_secs(20), || {
            (status_of(&nodes[0], &addr).as_deref() == Some("dead")).then_some(())
        });
        let config = cluster_config(&dir.path().join("data1"), &[&nodes[0]]).set("node", "listen", &toml_string(&addr));
        let again = Node::start(&config, dir.path(), "node1-again");
        assert_eq!(again.addr, addr);
        wait_until("the node is alive again", Duration::from_secs(20), || {
            (status_of(&nodes[0], &addr).as_deref() == Some("alive")).then_some(())
        });
        assert!(incarnation(&nodes[0]) > before);
        assert_eq!(alive(&again).len(), 2, "the restarted node sees the cluster");
    });
}

#[test]
fn a_node_stopped_with_sigterm_leaves_and_is_not_declared_dead() {
    with_timeout(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = start_cluster(dir.path(), 3);
        let addr = nodes[2].addr.clone();
        let status = nodes[2].signal_and_wait(libc::SIGTERM);
        assert!(status.success(), "a node stopped with SIGTERM exits 0: {status:?}");
        for node in &nodes[..2] {
            wait_until("the node is left", Duration::from_secs(10), || {
                (status_of(node, &addr).as_deref() == Some("left")).then_some(())
            });
        }
        assert!(nodes[2].log().contains("leaving the cluster"));
    });
}

#[test]
fn the_nodes_elect_the_highest_and_elect_again_when_it_dies() {
    with_timeout(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = start_cluster(dir.path(), 3);
        let first = highest(nodes.iter());
        for node in &nodes {
            wait_until("every node knows the coordinator", Duration::from_secs(20), || {
                (coordinator_of(node).as_deref() == Some(first.as_str())).then_some(())
            });
        }
        let victim = nodes.iter().position(|n| n.addr == first).unwrap();
        nodes[victim].kill();
        let survivors: Vec<&Node> = nodes.iter().enumerate().filter(|(i, _)| *i != victim).map(|(_, n)| n).collect();
        let next = highest(survivors.iter().copied());
        for node in &survivors {
            wait_until("the survivors elect the next highest", Duration::from_secs(20), || {
                (coordinator_of(node).as_deref() == Some(next.as_str())).then_some(())
            });
        }
    });
}

/// Nodes named by host names (as a compose service or a Kubernetes
/// StatefulSet's pods are): the seed is resolved and joined, the second
/// node advertises a name, and an evaluation spread over both has its exact
/// counts, modules run at the named node included.
#[test]
fn nodes_named_by_host_names_join_and_grade_together() {
    with_timeout(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().unwrap();
        let first = Node::start(&cluster_config(&dir.path().join("data0"), &[]), dir.path(), "node0");
        let port = first.addr.rsplit_once(':').unwrap().1;
        let own = free_port();
        let config = cluster_config(&dir.path().join("data1"), &[])
            .set("cluster", "seeds", &format!("[\"localhost:{port}\"]"))
            .set("node", "listen", &toml_string(&format!("127.0.0.1:{own}")))
            .set("node", "advertise", &toml_string(&format!("localhost:{own}")));
        let second = Node::start(&config, dir.path(), "node1");
        for node in [&first, &second] {
            wait_until(&format!("{} sees both members alive", node.addr), Duration::from_secs(20), || {
                let members = alive(node);
                (members.len() == 2 && members.contains(&format!("localhost:{own}"))).then_some(())
            });
        }
        let id = first.submit_multipart("projects.zip", &project(6, 0.5));
        let ran_at = assert_exact(&first.wait_finished(&id, Duration::from_secs(90)), 6);
        assert!(ran_at.values().any(|n| *n == format!("localhost:{own}")), "{ran_at:?}");
    });
}

/// The modules named by the `module` events of `events`, in the order sent.
fn modules_of(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event == "module")
        .map(|e| format!("{}::{}", e.data["project"].as_str().unwrap(), e.data["module"].as_str().unwrap()))
        .collect()
}

/// The stream of an evaluation from a node that holds no copy (relayed),
/// cut after two modules and resumed on another node with `Last-Event-ID`:
/// every module comes exactly once, progress never goes back, and `done`
/// carries the final record.
#[test]
fn a_stream_from_any_node_resumes_on_another_with_each_module_once() {
    with_timeout(Duration::from_secs(180), || {
        let dir = tempfile::tempdir().unwrap();
        let nodes = start_cluster_with(dir.path(), 3, |c| c.set("cluster", "replicas", "1"));
        let id = nodes[0].submit_multipart("projects.zip", &project(8, 0.5));
        let holds = |n: &Node| n.get(&format!("/evaluation/{id}?scope=local")).status == 200;
        // The supervisor and its one replica hold copies; the third node relays.
        let (away, holder) = wait_until("the replica holds its copy", Duration::from_secs(30), || {
            let held: Vec<bool> = nodes.iter().map(holds).collect();
            (held.iter().filter(|h| **h).count() == 2 && held[0]).then_some(())?;
            Some((held.iter().position(|h| !h)?, (1..3).find(|i| held[*i])?))
        });
        let path = format!("/evaluation/{id}/stream");
        let mut first = Stream::open(&nodes[away].addr, &path, &[]);
        let mut before = Vec::new();
        while modules_of(&before).len() < 2 {
            before.push(first.next_event().expect("the stream goes on"));
        }
        drop(first);
        let last_id = before.iter().rev().find_map(|e| e.id.clone()).expect("module events have ids");
        let after = Stream::open(&nodes[holder].addr, &path, &[("Last-Event-ID", &last_id)]).until_done();

        let mut all = modules_of(&before);
        all.extend(modules_of(&after));
        let mut unique = all.clone();
        unique.sort();
        unique.dedup();
        assert_eq!((all.len(), unique.len()), (8, 8), "{all:?}");
        let done: Vec<u64> = before
            .iter()
            .chain(&after)
            .filter(|e| e.event == "progress")
            .map(|e| e.data["modules_done"].as_u64().unwrap())
            .collect();
        assert!(done.windows(2).all(|w| w[0] <= w[1]), "progress went back: {done:?}");
        let record = &after.last().unwrap().data;
        assert_eq!(record["status"], "done");
        assert_exact(record, 8);
        // The stream of a finished evaluation is its progress and its end.
        let again = Stream::open(&nodes[away].addr, &path, &[("Last-Event-ID", &last_id)]).until_done();
        assert_eq!(modules_of(&again).len(), 6, "what that id had not seen");
        assert_eq!(again.last().unwrap().data["_run_info"], record["_run_info"]);
        let unknown = nodes[1].get(&format!("/evaluation/{}/stream", uuid::Uuid::new_v4()));
        assert_eq!(unknown.status, 404, "{unknown:?}");
    });
}

/// A client streams from a replica while the supervisor is killed: the
/// stream goes on across the adoption to `done`, each module once, with
/// the exact counts.
#[test]
fn a_stream_goes_on_across_an_adoption() {
    with_timeout(Duration::from_secs(240), || {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = start_cluster(dir.path(), 3);
        let id = nodes[0].submit_multipart("projects.zip", &project(12, 1.0));
        let replica = wait_until("a replica holds a copy", Duration::from_secs(30), || {
            (1..3).find(|i| nodes[*i].get(&format!("/evaluation/{id}?scope=local")).status == 200)
        });
        let mut stream = Stream::open(&nodes[replica].addr, &format!("/evaluation/{id}/stream"), &[]);
        let mut events = Vec::new();
        while modules_of(&events).is_empty() {
            events.push(stream.next_event().expect("the stream goes on"));
        }
        nodes[0].kill();
        events.extend(stream.until_done());
        let modules = modules_of(&events);
        let mut unique = modules.clone();
        unique.sort();
        unique.dedup();
        assert_eq!((modules.len(), unique.len()), (12, 12), "{modules:?}");
        let record = &events.last().unwrap().data;
        assert_ne!(record["supervisor"], serde_json::json!(nodes[0].addr), "adopted: {record}");
        assert_exact(record, 12);
    });
}

/// `GET /metrics` of `node`, read by the Prometheus project's own parser of
/// the OpenMetrics text format (its Python client, installed for `python`):
/// each sample as (name, labels, value).
fn scrape(node: &Node, python: &Path) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let answer = node.get("/metrics");
    assert_eq!(answer.header("content-type"), Some("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    const PARSE: &str = "import json, sys\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
        print(json.dumps([[s.name, s.labels, s.value] for f in text_string_to_metric_families(sys.stdin.read()) \
        for s in f.samples]))\n";
    let mut child = Command::new(python)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running the parser");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &answer.body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the parser refused it: {}\n{}", String::from_utf8_lossy(&out.stderr), answer.text());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Two nodes grade a known evaluation; their metrics, parsed by
/// Prometheus' parser, count it exactly: every module once by outcome and
/// wall time, the evaluation done where it is held, two members alive, the
/// join, and the requests between the nodes.
#[test]
fn metrics_count_a_known_evaluation_as_prometheus_reads_them() {
    with_timeout(Duration::from_secs(240), || {
        let dir = tempfile::tempdir().unwrap();
        let python = python_with(&dir.path().join("parser"), "prometheus-client==0.21.1");
        let nodes = start_cluster(dir.path(), 2);
        let id = nodes[0].submit_multipart("projects.zip", &project(6, 0.2));
        assert_exact(&nodes[0].wait_finished(&id, Duration::from_secs(120)), 6);
        let value = |samples: &[(String, BTreeMap<String, String>, f64)], name: &str, label: Option<(&str, &str)>| {
            samples
                .iter()
                .filter(|(n, l, _)| n == name && label.is_none_or(|(k, v)| l.get(k).map(String::as_str) == Some(v)))
                .map(|(_, _, v)| v)
                .sum::<f64>()
        };
        let scraped: Vec<_> = nodes.iter().map(|n| scrape(n, &python)).collect();
        let total = |name, label| scraped.iter().map(|s| value(s, name, label)).sum::<f64>();
        assert_eq!(total("evalmesh_modules_total", Some(("outcome", "done"))), 6.0);
        assert_eq!(total("evalmesh_module_wall_seconds_count", None), 6.0);
        for s in &scraped {
            assert_eq!(value(s, "evalmesh_evaluations", Some(("status", "done"))), 1.0, "held by both");
            assert_eq!(value(s, "evalmesh_evaluations", Some(("status", "running"))), 0.0);
            assert_eq!(value(s, "evalmesh_members", Some(("status", "alive"))), 2.0);
            assert_eq!((value(s, "evalmesh_slots", None), value(s, "evalmesh_slots_busy", None)), (1.0, 0.0));
            assert_eq!(value(s, "evalmesh_queue_depth", None), 0.0);
            assert!(value(s, "evalmesh_membership_changes_total", Some(("kind", "joined"))) >= 1.0);
            assert!(value(s, "evalmesh_peer_requests_total", Some(("result", "ok"))) > 0.0);
            assert_eq!(value(s, "evalmesh_adoptions_total", None), 0.0);
        }
        let routes: BTreeSet<&str> = scraped[0]
            .iter()
            .filter(|(n, _, _)| n == "evalmesh_peer_requests_total")
            .filter_map(|(_, l, _)| l.get("route").map(String::as_str))
            .collect();
        assert!(routes.iter().all(|r| !r.contains(&id)), "ids stay out of the labels: {routes:?}");
    });
}

/// How many processes of this machine have `marker` in their command line.
fn processes_with(marker: &str) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    entries
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|cmdline| cmdline.windows(marker.len()).any(|w| w == marker.as_bytes()))
        .count()
}

/// Modules that would run for ten minutes, each with a child of its own,
/// run on every node; cancelled through one node, they are killed on every
/// node within seconds, the modules' children included, long before the
/// five minutes of their time-out.
#[test]
fn a_cancelled_evaluation_leaves_no_process_on_any_node() {
    with_timeout(Duration::from_secs(240), || {
        let dir = tempfile::tempdir().unwrap();
        let nodes = start_cluster(dir.path(), 3);
        let marker = format!("97{}.5", std::process::id());
        let hangs = format!(
            "import subprocess, time\n\n\ndef test_hangs():\n    subprocess.Popen(['sleep', '{marker}'])\n    \
             time.sleep(600)\n"
        );
        let mut files = vec![("proj/requirements.txt".to_owned(), String::new())];
        files.extend((0..6).map(|i| (format!("proj/tests/test_h{i}.py"), hangs.clone())));
        let id = nodes[0].submit_multipart("projects.zip", &zip_of(&files));
        wait_until("every node runs a module", Duration::from_secs(120), || {
            let busy = nodes.iter().all(|n| n.get("/stats?scope=local").json()["slots_busy"] == 1);
            (busy && processes_with(&marker) == 3).then_some(())
        });
        let cancelled = nodes[1].request("DELETE", &format!("/evaluation/{id}"), &[], Body::None);
        assert_eq!(cancelled.status, 202, "{cancelled:?}");
        wait_until("no process of it is left on any node", Duration::from_secs(30), || {
            let idle = nodes.iter().all(|n| {
                let s = n.get("/stats?scope=local").json();
                s["slots_busy"] == 0 && s["jobs_queued"] == 0
            });
            (idle && processes_with(&marker) == 0).then_some(())
        });
        let e = nodes[2].wait_finished(&id, Duration::from_secs(30));
        assert_eq!(
            (&e["status"], &e["_run_info"]["modules_done"]),
            (&serde_json::json!("cancelled"), &serde_json::json!(0)),
            "{e}"
        );
    });
}

#[test]
fn an_evaluation_cancelled_through_any_node_closes_cancelled_on_every_copy() {
    with_timeout(Duration::from_secs(240), || {
        let dir = tempfile::tempdir().unwrap();
        let nodes = start_cluster(dir.path(), 3);
        let id = nodes[0].submit_multipart("projects.zip", &project(12, 2.0));
        wait_until("a module is done", Duration::from_secs(120), || {
            (nodes[0].evaluation(&id, "")["_run_info"]["modules_done"].as_u64() >= Some(1)).then_some(())
        });
        // Asked of a node that is not its supervisor.
        let cancelled = nodes[2].request("DELETE", &format!("/evaluation/{id}"), &[], Body::None);
        assert_eq!(cancelled.status, 202, "{cancelled:?}");
        let e = nodes[1].wait_finished(&id, Duration::from_secs(60));
        assert_eq!(e["status"], "cancelled", "{e}");
        assert!(e["_run_info"]["modules_done"].as_u64() < Some(12), "{e}");
        for node in &nodes {
            wait_until("its copy is cancelled and nothing of it runs", Duration::from_secs(60), || {
                let copy = node.get(&format!("/evaluation/{id}?scope=local"));
                let held = copy.status == 404 || copy.json()["status"] == "cancelled";
                let idle = node.get("/stats?scope=local").json()["slots_busy"] == serde_json::json!(0);
                // Its workspace, and a worker's copy of its project, are gone.
                let files = ["evaluations", "work"].iter().any(|d| node.data_dir.join(d).join(&id).exists());
                (held && idle && !files).then_some(())
            });
        }
        let stats = nodes[0].get("/stats").json();
        assert_eq!(stats["global"]["evaluations"]["cancelled"], 1, "{stats}");
        let removed = nodes[1].request("DELETE", &format!("/evaluation/{id}"), &[], Body::None);
        assert_eq!(removed.status, 200, "{removed:?}");
        for node in &nodes {
            assert_eq!(node.get(&format!("/evaluation/{id}")).status, 404, "{}", node.addr);
        }
    });
}
