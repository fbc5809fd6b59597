//! Authentication with real processes. Every peer route refuses a request
//! without the cluster secret's signature, with a wrong one, and a replay of
//! a correctly signed one, with 401 and without its handler running; a
//! stale, future-dated or altered request is refused the same way. A node
//! that keeps the default secret takes no peer request. `POST /kill` exists
//! only when enabled, and kills only when signed. Client tokens guard the
//! public routes, while nodes still answer each other's cluster-wide
//! questions. Neither the secret nor a token ends up in a node's files, logs
//! or answers.

mod common;

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use chrono::Utc;
use common::cluster::*;
use common::*;
use evalmesh::coordination::ElectionMessage;
use evalmesh::executor::RunStamp;
use evalmesh::locks::model::{AcquireRequest, HoldingsRequest, ReleaseRequest};
use evalmesh::membership::model::{MemberInfo, Meta, Ping, PingReq};
use evalmesh::membership::Status;
use evalmesh::peer::model::{EvaluationDone, EvaluationResult, ExecuteModule, Outcome, TaskSpec};
use evalmesh::replication::model::{ReplicaOp, Replicate};
use evalmesh::store::{EvaluationRecord, Source};
use serde_json::{json, Value};
use uuid::Uuid;

/// The sender forged requests name; apart from `FAKE`, so that the refusal
/// lines, which name the claimed sender, are not taken for traces of `FAKE`.
const FORGER: &str = "192.0.2.7:5007";
/// The node forged bodies try to make the cluster act on (TEST-NET-1: no
/// such node, and no port of a test can contain it).
const FAKE: &str = "192.0.2.9:5009";
/// The evaluation forged bodies name.
const FAKE_EVALUATION: &str = "0f0f0f0f-dead-4bad-8bad-0f0f0f0f0f0f";
const WRONG_SECRET: &str = "not-the-cluster-secret-0123456789";

/// One peer route and a body that, taken, would leave a visible trace: a
/// member, a coordinator, a lock, a task, an evaluation copy, or a log line
/// naming `FAKE` or `FAKE_EVALUATION`.
struct Call {
    method: &'static str,
    path: String,
    harmful: Vec<u8>,
}

fn member(address: &str) -> MemberInfo {
    MemberInfo {
        address: address.to_owned(),
        status: Status::Alive,
        incarnation: 1,
        meta: Meta { slots: 8, busy: 0, boot: 1, ..Meta::default() },
    }
}

/// Every peer route of `api::peer`, with its harmful body.
fn peer_calls(id: &str, blob: &str) -> Vec<Call> {
    let fake_id: Uuid = FAKE_EVALUATION.parse().unwrap();
    let post =
        |path: &str, body: Value| Call { method: "POST", path: path.to_owned(), harmful: body.to_string().into() };
    let read = |method, path: String| Call { method, path, harmful: Vec::new() };
    let record = EvaluationRecord {
        id: fake_id,
        status: evalmesh::evaluation::model::EvaluationStatus::Queued,
        source: Source::Zip { name: "forged".into() },
        supervisor: FAKE.into(),
        epoch: 0,
        input_sha256: None,
        input_ready: false,
        submitted_at: Utc::now(),
        started_at: None,
        finished_at: None,
        error: None,
    };
    vec![
        post("/join", wire(&member(FAKE))),
        post("/mystats", wire(&Ping { from: member(FAKE), updates: vec![member(FAKE)] })),
        post("/probe", wire(&PingReq { from: member(FAKE), target: FAKE.into(), updates: vec![member(FAKE)] })),
        post("/election", wire(&ElectionMessage { from: FAKE.into() })),
        post("/coordinator", wire(&ElectionMessage { from: FAKE.into() })),
        post("/lock/acquire", wire(&AcquireRequest { name: "forged".into(), node: FAKE.into(), lamport: 1 })),
        post("/lock/release", wire(&ReleaseRequest { name: format!("adopt/{id}"), node: FAKE.into() })),
        post("/lock/holdings", wire(&HoldingsRequest { coordinator: FAKE.into() })),
        post(
            "/execute_module",
            wire(&ExecuteModule {
                evaluation: fake_id,
                task: 1,
                supervisor: FAKE.into(),
                project: "proj".into(),
                blob: blob.into(),
                kind: TaskSpec::Collect,
            }),
        ),
        read("GET", format!("/blobs/{blob}")),
        read("HEAD", format!("/blobs/{blob}")),
        post(
            "/evaluation_result",
            wire(&EvaluationResult {
                evaluation: fake_id,
                task: 1,
                project: "proj".into(),
                stamp: RunStamp { node: FAKE.into(), started: 1, finished: 2 },
                outcome: Outcome::Failed { error: "forged".into() },
            }),
        ),
        post("/evaluation_done", wire(&EvaluationDone { evaluation: fake_id })),
        post(
            "/replicate",
            wire(&Replicate {
                evaluation: fake_id,
                journal: Uuid::new_v4(),
                epoch: 0,
                supervisor: FAKE.into(),
                from: 0,
                ops: vec![ReplicaOp::Record { record }],
            }),
        ),
        read("GET", format!("/replica/{id}")),
        read("GET", format!("/replica/{id}/snapshot")),
    ]
}

/// A body in the library's own wire types, so that a forged body is what
/// its handler would take, and a 401 is not a 400 in disguise.
fn wire<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

/// Sends `call` to `node` with `headers` (and a JSON content type) and
/// `body`; a read route gets no body.
fn send(node: &Node, call: &Call, headers: &[(&'static str, String)], body: &[u8]) -> Response {
    let mut all: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    all.push(("Content-Type", "application/json"));
    let body = if call.method == "POST" { Body::Fixed(body) } else { Body::None };
    http(&node.addr, call.method, &call.path, &all, body)
}

fn assert_refused(response: &Response, call: &Call, what: &str, because: &str) {
    assert_eq!(response.status, 401, "{what} {} {}: {response:?}", call.method, call.path);
    if call.method != "HEAD" {
        let error = response.error();
        assert!(error.contains(because), "{what} {} {}: {error}", call.method, call.path);
    }
}

/// What a node holds that a forged request could change: its members and
/// their status, its coordinator and lock table, the evaluations it holds,
/// and the finished evaluation as it serves it.
fn state(node: &Node, id: &str) -> Value {
    let network = node.get("/network?scope=local").json();
    let members: BTreeSet<(String, String)> = network["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["address"].as_str().unwrap().to_owned(), m["status"].as_str().unwrap().to_owned()))
        .collect();
    let locks: Vec<Value> = network["locks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| json!([l["name"], l["holder"], l["waiting"]]))
        .collect();
    let held: Vec<Value> = node.get("/evaluation?scope=local").json()["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| json!([e["id"], e["status"]]))
        .collect();
    json!({
        "members": members,
        "coordinator": network["coordinator"],
        "locks": locks,
        "held": held,
        "evaluation": node.evaluation(id, "?scope=local"),
    })
}

#[test]
fn every_peer_route_refuses_missing_wrong_and_replayed_signatures_and_nothing_changes() {
    with_timeout(Duration::from_secs(240), || {
        let dir = tempfile::tempdir().unwrap();
        let nodes = start_cluster(dir.path(), 2);
        let id = nodes[0].submit_multipart("projects.zip", &project(2, 0.0));
        assert_exact(&nodes[0].wait_finished(&id, Duration::from_secs(120)), 2);
        let blob = std::fs::read_dir(nodes[0].data_dir.join("blobs"))
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().to_str()?.strip_suffix(".zip").map(str::to_owned))
            .next()
            .expect("the project's blob");
        // Both nodes hold the finished evaluation (replicas = 2), and agree on
        // the coordinator: the state is settled.
        wait_until("both nodes hold the evaluation and name one coordinator", Duration::from_secs(20), || {
            let coordinators: BTreeSet<Option<String>> = nodes.iter().map(coordinator_of).collect();
            let held = nodes.iter().all(|n| n.get(&format!("/evaluation/{id}?scope=local")).status == 200);
            (held && coordinators.len() == 1 && !coordinators.contains(&None)).then_some(())
        });
        let before: Vec<Value> = nodes.iter().map(|n| state(n, &id)).collect();

        let calls = peer_calls(&id, &blob);
        assert_eq!(calls.len(), 16, "every peer route, blobs with GET and HEAD");
        for node in &nodes {
            for call in &calls {
                // Names itself and its clock, as before signatures, but signs nothing.
                let unsigned = vec![("x-evalmesh-node", FORGER.to_owned()), ("x-evalmesh-lamport", "1".to_owned())];
                let response = send(node, call, &unsigned, &call.harmful);
                assert_refused(&response, call, "unsigned", "no x-evalmesh-timestamp header");

                let wrong = signed_headers(WRONG_SECRET, call.method, &call.path, FORGER, &call.harmful, now_ms());
                assert_refused(&send(node, call, &wrong, &call.harmful), call, "wrongly signed", "bad signature");

                // A request signed with the secret, as a node sent it: the
                // guard lets it through once (a POST of `{}` then fails its
                // handler's JSON check, which changes nothing), never twice.
                let body: &[u8] = if call.method == "POST" { b"{}" } else { b"" };
                let genuine = signed_headers(&node.secret, call.method, &call.path, FORGER, body, now_ms());
                let first = send(node, call, &genuine, body);
                let expected = if call.method == "POST" { 400 } else { 200 };
                assert_eq!(first.status, expected, "genuine {} {}: {first:?}", call.method, call.path);
                assert_refused(&send(node, call, &genuine, body), call, "replayed", "replayed");
            }
        }

        let after: Vec<Value> = nodes.iter().map(|n| state(n, &id)).collect();
        assert_eq!(after, before);
        for node in &nodes {
            let log = node.log();
            for trace in [FAKE, FAKE_EVALUATION, "forged"] {
                assert!(!log.contains(trace), "{trace} reached a handler of {}:\n{log}", node.addr);
            }
            let refusals = log.matches("peer route ").count();
            assert!(refusals >= 3 * calls.len(), "each refusal is logged: {refusals}\n{log}");
            assert!(log.contains("peer route POST /join refused: replayed"), "{log}");
            assert!(log.contains("peer route GET /blobs/{sha256} refused: bad signature"), "{log}");
            assert!(log.contains(&format!("(claimed sender \"{FORGER}\")")), "{log}");
            assert!(!log.contains(&node.secret), "the secret is in the log");
        }
    });
}

#[test]
fn stale_future_dated_altered_and_incomplete_requests_are_refused() {
    with_timeout(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::start(&NodeConfig::new(&dir.path().join("data")), dir.path(), "node");
        wait_until("the node names itself coordinator", Duration::from_secs(20), || {
            (coordinator_of(&node).as_deref() == Some(node.addr.as_str())).then_some(())
        });
        let body = serde_json::to_vec(&ElectionMessage { from: FAKE.into() }).unwrap();
        let call = Call { method: "POST", path: "/coordinator".into(), harmful: body.clone() };
        let minutes = 10 * 60 * 1000;
        let signed_at = |t: u64| signed_headers(&node.secret, "POST", "/coordinator", FORGER, &body, t);

        assert_refused(&send(&node, &call, &signed_at(now_ms() - minutes), &body), &call, "stale", "stale");
        assert_refused(&send(&node, &call, &signed_at(now_ms() + minutes), &body), &call, "future", "future-dated");
        let altered = serde_json::to_vec(&ElectionMessage { from: "192.0.2.10:5010".into() }).unwrap();
        assert_refused(&send(&node, &call, &signed_at(now_ms()), &altered), &call, "altered", "bad signature");
        for other in ["/election", "/coordinator?x=1"] {
            let moved = Call { method: "POST", path: other.into(), harmful: body.clone() };
            assert_refused(&send(&node, &moved, &signed_at(now_ms()), &body), &moved, "moved", "bad signature");
        }
        let mut as_another = signed_at(now_ms());
        as_another[0].1 = "192.0.2.11:5011".into();
        assert_refused(&send(&node, &call, &as_another, &body), &call, "another sender", "bad signature");
        let mut later_clock = signed_at(now_ms());
        later_clock[1].1 = "2".into();
        assert_refused(&send(&node, &call, &later_clock, &body), &call, "another clock", "bad signature");
        for missing in 0..4 {
            let mut headers = signed_at(now_ms());
            let (name, _) = headers.remove(missing);
            assert_refused(&send(&node, &call, &headers, &body), &call, "incomplete", &format!("no {name} header"));
        }
        let mut malformed = signed_at(now_ms());
        malformed[3].1 = "not hex".into();
        assert_refused(&send(&node, &call, &malformed, &body), &call, "malformed", "malformed x-evalmesh-signature");

        assert_eq!(coordinator_of(&node).as_deref(), Some(node.addr.as_str()));
        let log = node.log();
        assert!(!log.contains(FAKE) && !log.contains("192.0.2.10"), "{log}");
        assert!(!log.contains(&node.secret), "{log}");
    });
}

#[test]
fn a_node_that_keeps_the_default_secret_takes_no_peer_request() {
    with_timeout(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let config = NodeConfig::new(&dir.path().join("data")).set("cluster", "secret", &toml_string("change-me"));
        let node = Node::start(&config, dir.path(), "node");
        assert!(node.log().contains("cluster.secret is the default"), "{}", node.log());
        // Signed with the default, which anyone can read in the source.
        let body = serde_json::to_vec(&member(FAKE)).unwrap();
        let response = node.peer("POST", "/join", &body);
        assert_eq!(response.status, 401, "{response:?}");
        assert!(response.error().contains("default cluster.secret"), "{response:?}");
        let members: Vec<Value> = node.get("/network").json()["members"].as_array().unwrap().clone();
        assert_eq!(members.len(), 1, "{members:?}");
    });
}

#[test]
fn kill_exists_only_when_enabled_and_kills_only_when_signed() {
    with_timeout(Duration::from_secs(90), || {
        let dir = tempfile::tempdir().unwrap();
        let off = Node::start(&NodeConfig::new(&dir.path().join("off")), dir.path(), "off");
        let response = off.peer("POST", "/kill", b"");
        assert_eq!(response.status, 404, "{response:?}");
        assert!(response.json()["error"].is_string());

        let data = dir.path().join("on");
        let config = NodeConfig::new(&data).set("admin", "enable_kill", "true");
        let mut on = Node::start(&config, dir.path(), "on");
        let call = Call { method: "POST", path: "/kill".into(), harmful: Vec::new() };
        let unsigned = vec![("x-evalmesh-node", FORGER.to_owned()), ("x-evalmesh-lamport", "1".to_owned())];
        assert_refused(&send(&on, &call, &unsigned, b""), &call, "unsigned", "no x-evalmesh-timestamp");
        let wrong = signed_headers(WRONG_SECRET, "POST", "/kill", FORGER, b"", now_ms());
        assert_refused(&send(&on, &call, &wrong, b""), &call, "wrongly signed", "bad signature");
        assert_eq!(on.get("/health").status, 200, "the node still serves");

        let genuine = signed_headers(&on.secret, "POST", "/kill", TEST_SENDER, b"", now_ms());
        let killed = send(&on, &call, &genuine, b"");
        assert_eq!(killed.status, 202, "{killed:?}");
        let status = on.wait_exit(Duration::from_secs(10)).expect("the node exits after POST /kill");
        assert_eq!(status.signal(), Some(libc::SIGKILL), "it dies as in a crash: {status:?}");
        assert!(on.log().contains(&format!("POST /kill from {TEST_SENDER}")), "{}", on.log());

        // The same request, replayed to the node's next run within the
        // window: that run never saw it, and refuses it all the same.
        let again = Node::start(&config, dir.path(), "again");
        assert_refused(&send(&again, &call, &genuine, b""), &call, "replayed after a restart", "before the oldest");
        assert_eq!(again.get("/health").status, 200, "the node still serves");
    });
}

#[test]
fn client_tokens_guard_the_public_routes_but_health() {
    const TOKEN: &str = "client-token-5e2c71d09a";
    with_timeout(Duration::from_secs(90), || {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::start(&NodeConfig::new(&dir.path().join("data")).token(TOKEN), dir.path(), "node");
        let id = Uuid::new_v4();
        let public = [
            ("GET", "/evaluation".to_owned()),
            ("GET", format!("/evaluation/{id}")),
            ("GET", format!("/evaluation/{id}/events")),
            ("GET", "/stats".to_owned()),
            ("GET", "/network".to_owned()),
            ("GET", "/peers".to_owned()),
            ("POST", "/evaluation".to_owned()),
        ];
        let zip = zip_of(&[("proj/tests/test_a.py", "def test_a():\n    pass\n")]);
        let ask = |method: &str, path: &str, authorization: Option<&str>| {
            let mut headers = vec![("Content-Type", "application/zip")];
            if let Some(value) = authorization {
                headers.push(("Authorization", value));
            }
            let body = if method == "POST" { Body::Fixed(&zip) } else { Body::None };
            http(&node.addr, method, path, &headers, body)
        };
        let basic = format!("Basic {TOKEN}");
        for (method, path) in &public {
            for (authorization, because) in [
                (None, "needs an Authorization: Bearer"),
                (Some("Bearer wrong-token-0123456789"), "invalid bearer token"),
                (Some(basic.as_str()), "invalid bearer token"),
            ] {
                let response = ask(method, path, authorization);
                assert_eq!(response.status, 401, "{method} {path} {authorization:?}: {response:?}");
                assert_eq!(response.header("www-authenticate"), Some("Bearer realm=\"evalmesh\""));
                assert!(response.error().contains(because), "{response:?}");
            }
        }
        // Nothing was accepted: no evaluation, no upload left behind.
        assert_eq!(files_under(&node.data_dir.join("evaluations")), Vec::<std::path::PathBuf>::new());
        assert_eq!(files_under(&node.data_dir.join("uploads")), Vec::<std::path::PathBuf>::new());

        assert_eq!(ask("GET", "/health", None).status, 200);
        let bearer = format!("Bearer {TOKEN}");
        assert_eq!(ask("GET", "/stats", Some(&bearer)).status, 200);
        assert_eq!(ask("GET", &format!("/evaluation/{id}"), Some(&bearer)).status, 404);
        let submitted = ask("POST", "/evaluation", Some(&bearer));
        assert_eq!(submitted.status, 202, "{submitted:?}");

        // A node's signed GET passes without a token; a signed POST does not,
        // nor a replayed GET.
        let signed = node.peer("GET", "/stats?scope=local", b"");
        assert_eq!(signed.status, 200, "{signed:?}");
        let posted = node.peer("POST", "/evaluation", &zip);
        assert_eq!(posted.status, 401, "{posted:?}");
        let headers = signed_headers(&node.secret, "GET", "/stats?scope=local", TEST_SENDER, b"", now_ms());
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        assert_eq!(http(&node.addr, "GET", "/stats?scope=local", &headers, Body::None).status, 200);
        let replayed = http(&node.addr, "GET", "/stats?scope=local", &headers, Body::None);
        assert_eq!(replayed.status, 401, "{replayed:?}");
        assert!(replayed.error().contains("replayed"), "{replayed:?}");
        assert!(!node.log().contains(TOKEN), "the token is in the log");
    });
}

#[test]
fn the_secret_and_tokens_appear_in_no_file_log_or_answer() {
    const SECRET: &str = "hygiene-SECRET-7f3a9c2e41d8";
    const TOKEN: &str = "hygiene-TOKEN-b81d0e6f95a3";
    const WRONG_TOKEN: &str = "hygiene-WRONG-TOKEN-4c5d6e";
    with_timeout(Duration::from_secs(240), || {
        let dir = tempfile::tempdir().unwrap();
        let nodes =
            start_cluster_with(dir.path(), 3, |c| c.set("cluster", "secret", &toml_string(SECRET)).token(TOKEN));
        let mut answers: Vec<Response> = Vec::new();

        let id = nodes[0].submit_multipart("projects.zip", &project(3, 0.0));
        // Read from another node: the cluster-wide answers are asked of the
        // peers, signed, without a client token.
        let evaluation = nodes[2].wait_finished(&id, Duration::from_secs(120));
        assert_exact(&evaluation, 3);
        let stats = nodes[1].get("/stats");
        assert_eq!(stats.json()["global"]["nodes"], 3, "every node answered the fan-out: {stats:?}");
        answers.push(stats);
        for node in &nodes {
            answers.push(node.get("/network"));
            answers.push(node.get("/evaluation"));
            answers.push(node.get(&format!("/evaluation/{id}?detail=tests")));
            answers.push(node.get(&format!("/evaluation/{id}/events")));
            answers.push(node.peer("GET", &format!("/replica/{id}/snapshot"), b""));
            // Refused: a wrong token, a wrong secret, no signature.
            let wrong = format!("Bearer {WRONG_TOKEN}");
            answers.push(node.request("GET", "/stats", &[("Authorization", &wrong)], Body::None));
            let forged = signed_headers(WRONG_SECRET, "POST", "/join", FORGER, b"{}", now_ms());
            let forged: Vec<(&str, &str)> = forged.iter().map(|(n, v)| (*n, v.as_str())).collect();
            answers.push(http(&node.addr, "POST", "/join", &forged, Body::Fixed(b"{}")));
            answers.push(http(&node.addr, "POST", "/join", &[], Body::Fixed(b"{}")));
        }
        assert!(answers.iter().filter(|a| a.status == 401).count() >= 9);

        for answer in &answers {
            let text = format!("{:?} {}", answer.headers, answer.text());
            for secret in [SECRET, TOKEN, WRONG_TOKEN, WRONG_SECRET] {
                assert!(!text.contains(secret), "an answer holds {secret}: {text}");
            }
        }
        for node in &nodes {
            let files = files_under(&node.data_dir);
            for db in ["evalmesh.sqlite3", "evalmesh.sqlite3-wal"] {
                assert!(files.iter().any(|f| f.ends_with(db)), "{db} is among the files searched: {files:?}");
            }
            for file in &files {
                let bytes = std::fs::read(file).unwrap_or_default();
                for secret in [SECRET, TOKEN] {
                    let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
                    assert!(!found, "{secret} is in {}", file.display());
                }
            }
            let log = node.log();
            assert!(log.contains("refused"), "the refusals are logged:\n{log}");
            for secret in [SECRET, TOKEN, WRONG_TOKEN, WRONG_SECRET] {
                assert!(!log.contains(secret), "{secret} is in the log of {}", node.addr);
            }
        }
    });
}
