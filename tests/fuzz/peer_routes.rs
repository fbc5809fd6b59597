//! Generated requests to every peer route of a real node (the binary, as in
//! the other integration tests), as a hostile or broken peer would send
//! them: valid bodies with edge values, edited bodies, arbitrary JSON and
//! bytes, odd content types, wrong methods, odd path segments, and missing
//! or malformed guard headers. After every request:
//! - the answer is never a 5xx, except 503 from the routes that document it
//!   (`/execute_module` when the worker cannot take the task, `/replicate`
//!   when a blob cannot be fetched);
//! - every error answer is JSON with an `error` string, and the guard
//!   refuses (401) exactly the requests whose headers do not name a sender
//!   and a valid Lamport time;
//! - the node still answers `GET /health`, and has logged no panic;
//! - it holds no evaluation but those a `POST /replicate` was answered
//!   `applied` for: nothing a refused request carried is kept.
//!
//! The node is given addresses to call back (members, probe targets,
//! supervisors, coordinators). Every string a body puts where an address
//! goes is loopback or cannot be a host name at all (see `address`), so the
//! node sends nothing off this machine, not even a DNS query.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::Duration;

use evalmesh::auth::{self, Secret, SignedRequest, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use evalmesh::peer::LamportClock;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use serde_json::Value;

use crate::bodies::{self, S};
use crate::common::{self, now_ms, with_timeout, Body, Node, NodeConfig, Response, User, TEST_SECRET};

/// What a caller claims so that the guard lets it speak as a node.
#[derive(Debug, Clone)]
struct Credentials {
    sender: Option<String>,
    lamport: Option<String>,
}

impl Credentials {
    /// Whether the guard should let these through: a sender, and a time no
    /// later than the clock's limit.
    fn valid(&self) -> bool {
        let time = self.lamport.as_deref().and_then(|l| l.trim().parse::<u64>().ok());
        self.sender.is_some() && time.is_some_and(|t| t <= LamportClock::MAX)
    }
}

/// One request to a peer route, before it is signed.
#[derive(Clone)]
struct PeerRequest {
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    credentials: Credentials,
    /// The route may answer 503, as documented.
    may_be_unavailable: bool,
}

impl std::fmt::Debug for PeerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = String::from_utf8_lossy(&self.body);
        write!(f, "{} {} ({:?}, {:?}) {body}", self.method, self.path, self.content_type, self.credentials)
    }
}

/// The headers the peer guard checks: a caller that names itself and gives
/// a valid Lamport time signs the request with the node's secret, as a real
/// node would; any other is sent as claimed, unsigned, and must be refused.
fn sign(req: &PeerRequest) -> Vec<(String, String)> {
    let c = &req.credentials;
    let time = c.lamport.as_deref().and_then(|l| l.trim().parse::<u64>().ok());
    if let (true, Some(sender), Some(lamport)) = (c.valid(), &c.sender, time) {
        let request = SignedRequest {
            method: req.method,
            path: &req.path,
            // The server reads header values without surrounding blanks.
            node: sender.trim(),
            lamport,
            timestamp_ms: now_ms(),
            // GET and HEAD go out without the generated body.
            body: if matches!(req.method, "GET" | "HEAD") { &[] } else { &req.body },
        };
        let signature = auth::sign_request(&Secret::new(TEST_SECRET), &request);
        return vec![
            ("x-evalmesh-node".to_owned(), sender.clone()),
            ("x-evalmesh-lamport".to_owned(), c.lamport.clone().unwrap_or_default()),
            (TIMESTAMP_HEADER.to_owned(), request.timestamp_ms.to_string()),
            (SIGNATURE_HEADER.to_owned(), signature),
        ];
    }
    let sender = c.sender.iter().map(|s| ("x-evalmesh-node".to_owned(), s.clone()));
    let lamport = c.lamport.iter().map(|l| ("x-evalmesh-lamport".to_owned(), l.clone()));
    sender.chain(lamport).collect()
}

fn send(node: &Node, req: &PeerRequest) -> Result<Response, String> {
    let mut headers = sign(req);
    if let Some(ct) = req.content_type {
        headers.push(("content-type".to_owned(), ct.to_owned()));
    }
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let body = if req.method == "GET" || req.method == "HEAD" { Body::None } else { Body::Fixed(&req.body) };
    common::try_http(&node.addr, req.method, &req.path, &headers, body)
}

/// Loopback addresses where nothing listens, and this node's own.
fn callbacks(own: &str) -> Vec<String> {
    vec![own.to_owned(), "127.0.0.1:1".into(), "127.0.0.1:9".into(), "[::1]:1".into(), "127.0.0.1:0".into()]
}

/// The names a body gives for nodes: loopback, or a string with a
/// character no URI may hold, which the node cannot even try to resolve.
fn address(own: &str) -> S {
    prop_oneof![
        3 => prop::sample::select(callbacks(own)),
        1 => ("\\PC{0,6}", "[\u{e9}\u{4e2d}\u{1F600}]", "\\PC{0,6}").prop_map(|(a, b, c)| format!("{a}{b}{c}")),
    ]
    .prop_map(Value::from)
    .boxed()
}

fn is_safe(s: &str, own: &str) -> bool {
    !s.is_ascii() || callbacks(own).iter().any(|c| c == s)
}

const ADDRESS_KEYS: &[&str] = &["address", "target", "from", "node", "supervisor", "coordinator"];

/// Replaces any string under an address key that is not safe: edits and
/// arbitrary JSON can put anything there, a status word included, which
/// the node would try to resolve as a host name.
fn sanitize(value: &mut Value, own: &str) -> bool {
    let mut changed = false;
    match value {
        Value::Object(o) => {
            for (k, v) in o.iter_mut() {
                match v {
                    Value::String(s) if ADDRESS_KEYS.contains(&k.as_str()) && !is_safe(s, own) => {
                        *s = "127.0.0.1:1".into();
                        changed = true;
                    }
                    _ => changed |= sanitize(v, own),
                }
            }
        }
        Value::Array(a) => {
            for v in a {
                changed |= sanitize(v, own);
            }
        }
        _ => {}
    }
    changed
}

/// Bytes that are JSON are sanitized too, and then sent as re-serialized.
fn safe_bytes(bytes: Vec<u8>, own: &str) -> Vec<u8> {
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return bytes;
    };
    if sanitize(&mut value, own) {
        serde_json::to_vec(&value).expect("values serialize")
    } else {
        bytes
    }
}

/// The body of one route: valid, edited, arbitrary JSON or bytes.
fn body(valid: S, own: String) -> BoxedStrategy<Vec<u8>> {
    let json = prop_oneof![4 => valid.clone(), 3 => bodies::mutated(valid), 1 => bodies::arbitrary_json()]
        .prop_map(|v| serde_json::to_vec(&v).expect("values serialize"));
    prop_oneof![16 => json, 2 => prop::collection::vec(any::<u8>(), 0..256), 1 => Just(Vec::new())]
        .prop_map(move |b| safe_bytes(b, &own))
        .boxed()
}

/// A path segment: what the route expects, or anything, percent-encoded;
/// never empty, since `/blobs/` is no peer route but an unknown one.
fn segment() -> BoxedStrategy<String> {
    let encode = |s: String| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    prop_oneof![
        "[0-9a-f]{64}",
        any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        "\\PC{1,80}".prop_map(encode),
        Just("..%2F..%2Fetc%2Fpasswd".to_owned()),
    ]
    .boxed()
}

fn credentials() -> impl Strategy<Value = Credentials> {
    let sender =
        prop_oneof![18 => Just(Some("127.0.0.1:1".to_owned())), 1 => "[ -~]{0,20}".prop_map(Some), 1 => Just(None)];
    let edges = prop::sample::select(vec![
        "0".to_owned(),
        (i64::MAX as u64).to_string(),
        (i64::MAX as u64 + 1).to_string(),
        u64::MAX.to_string(),
        "18446744073709551616".to_owned(),
        "-1".to_owned(),
        " 7".to_owned(),
        "0x10".to_owned(),
        String::new(),
    ]);
    let lamport = prop_oneof![
        18 => (0u64..10_000).prop_map(|n| Some(n.to_string())),
        2 => edges.prop_map(Some),
        1 => Just(None),
    ];
    (sender, lamport).prop_map(|(sender, lamport)| Credentials { sender, lamport })
}

/// Any request to any peer route.
fn request(own: &str) -> impl Strategy<Value = PeerRequest> {
    let a = &address(own);
    // Replication and tasks carry the most structure: they get more cases.
    let posts: Vec<(&'static str, S, bool)> = vec![
        ("/replicate", bodies::replicate(a), true),
        ("/replicate", bodies::replicate(a), true),
        ("/execute_module", bodies::execute_module(a), true),
        ("/evaluation_result", bodies::evaluation_result(a), false),
        ("/join", bodies::member_info(a), false),
        ("/mystats", bodies::ping(a), false),
        ("/probe", bodies::ping_req(a), false),
        ("/election", bodies::election(a), false),
        ("/coordinator", bodies::election(a), false),
        ("/lock/acquire", bodies::acquire(a), false),
        ("/lock/release", bodies::release(a), false),
        ("/lock/holdings", bodies::holdings_request(a), false),
        ("/execute_module", bodies::execute_module(a), true),
        ("/evaluation_result", bodies::evaluation_result(a), false),
        ("/evaluation_done", bodies::evaluation_done(), false),
        ("/replicate", bodies::replicate(a), true),
    ];
    let own = own.to_owned();
    let post = prop::sample::select((0..posts.len()).collect::<Vec<_>>())
        .prop_flat_map(move |i| {
            let (path, valid, unavailable) = posts[i].clone();
            let method = prop_oneof![12 => Just("POST"), 1 => Just("GET"), 1 => Just("PUT")];
            let content_type = prop_oneof![
                10 => Just(Some("application/json")),
                1 => Just(None),
                1 => Just(Some("text/plain")),
                1 => Just(Some("application/json; charset=latin1")),
            ];
            (Just(path), method, content_type, body(valid, own.clone()), Just(unavailable))
        })
        .prop_map(|(path, method, content_type, body, unavailable)| {
            (method, path.to_owned(), content_type, body, unavailable)
        });
    let get = (
        prop::sample::select(vec!["GET", "HEAD", "POST"]),
        prop::sample::select(vec!["/blobs/", "/replica/", "/replica/"]),
        segment(),
        any::<bool>(),
    )
        .prop_map(|(method, route, seg, snapshot)| {
            let suffix = if route == "/replica/" && snapshot { "/snapshot" } else { "" };
            (method, format!("{route}{seg}{suffix}"), None, Vec::new(), false)
        });
    (prop_oneof![6 => post, 1 => get], credentials()).prop_map(
        |((method, path, content_type, body, may_be_unavailable), credentials)| PeerRequest {
            method,
            path,
            content_type,
            body,
            credentials,
            may_be_unavailable,
        },
    )
}

/// The evaluations the node holds, by `GET /evaluation?scope=local`.
fn evaluations(node: &Node) -> Result<BTreeSet<String>, String> {
    let res = common::try_http(&node.addr, "GET", "/evaluation?scope=local", &[], Body::None)?;
    if res.status != 200 {
        return Err(format!("GET /evaluation answered {}: {}", res.status, res.text()));
    }
    let list = serde_json::from_slice::<Value>(&res.body).map_err(|e| format!("GET /evaluation: {e}"))?;
    Ok(list["evaluations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["id"].as_str())
        .map(str::to_owned)
        .collect())
}

/// A failed case, with the node's first panic or else its last lines.
fn fail(msg: String, node: &Node) -> TestCaseError {
    let log = node.log();
    let lines: Vec<&str> = log.lines().collect();
    let at = lines.iter().position(|l| l.contains("panicked")).unwrap_or(lines.len().saturating_sub(20));
    let excerpt = lines[at.saturating_sub(5)..(at + 15).min(lines.len())].join("\n");
    TestCaseError::fail(format!("{msg}\nnode log:\n{excerpt}"))
}

/// Whatever a replica holds, every route that shows it answers.
fn read_back(node: &Node, id: &str) -> Result<(), TestCaseError> {
    let peer = Credentials { sender: Some("127.0.0.1:1".into()), lamport: Some("1".into()) };
    let paths = [
        (format!("/evaluation/{id}?scope=local&detail=tests"), false),
        (format!("/evaluation/{id}/events?scope=local"), false),
        (format!("/replica/{id}"), true),
        (format!("/replica/{id}/snapshot"), true),
    ];
    for (path, guarded) in paths {
        let credentials = if guarded { peer.clone() } else { Credentials { sender: None, lamport: None } };
        let req = PeerRequest {
            method: "GET",
            path,
            content_type: None,
            body: Vec::new(),
            credentials,
            may_be_unavailable: false,
        };
        let headers = if guarded { sign(&req) } else { Vec::new() };
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let res = common::try_http(&node.addr, "GET", &req.path, &headers, Body::None).map_err(|e| fail(e, node))?;
        if res.status != 200 {
            return Err(fail(format!("GET {} of a replica answered {}: {}", req.path, res.status, res.text()), node));
        }
    }
    Ok(())
}

/// Sends `req` and checks every property of the module doc.
/// `accepted` gathers the evaluations a `POST /replicate` was answered
/// `applied` for, `read` those already read back.
fn check(
    node: &Node,
    req: &PeerRequest,
    accepted: &RefCell<BTreeSet<String>>,
    read: &RefCell<BTreeSet<String>>,
) -> Result<(), TestCaseError> {
    let res = send(node, req).map_err(|e| fail(format!("no answer: {e}"), node))?;
    let status = res.status;
    let unavailable_ok = status == 503 && req.may_be_unavailable;
    if status >= 500 && !unavailable_ok {
        return Err(fail(format!("{} {} answered {status}: {}", req.method, req.path, res.text()), node));
    }
    let refused = status == 401;
    if refused == req.credentials.valid() {
        return Err(fail(format!("the guard answered {status} to {:?}", req.credentials), node));
    }
    if status >= 400 && req.method != "HEAD" {
        let error =
            serde_json::from_slice::<Value>(&res.body).ok().and_then(|v| v["error"].as_str().map(str::to_owned));
        if error.is_none() {
            return Err(fail(
                format!("{} {} answered {status} without a JSON error: {:?}", req.method, req.path, res.text()),
                node,
            ));
        }
    }
    if req.path == "/replicate" && status == 200 && res.json()["kind"] == "applied" {
        let body: Value = serde_json::from_slice(&req.body).expect("an applied body is JSON");
        accepted
            .borrow_mut()
            .insert(body["evaluation"].as_str().expect("an applied body names its evaluation").to_owned());
    }

    let health = common::try_http(&node.addr, "GET", "/health", &[], Body::None).map_err(|e| fail(e, node))?;
    if health.status != 200 {
        return Err(fail(format!("GET /health answered {}", health.status), node));
    }
    if node.log().contains("panicked") {
        return Err(fail("the node panicked".into(), node));
    }
    let held = evaluations(node).map_err(|e| fail(e, node))?;
    if !held.is_subset(&accepted.borrow()) {
        let applied = accepted.borrow();
        return Err(fail(format!("the node holds {held:?}, of which only {:?} were applied", *applied), node));
    }
    for id in held.difference(&read.borrow()) {
        read_back(node, id)?;
    }
    read.replace(held);
    Ok(())
}

/// Hostile peers against a node run by `user`.
fn hostile_peers(user: User) {
    with_timeout(Duration::from_secs(240), move || {
        let dir = tempfile::tempdir().expect("a temp dir");
        let config = user.configure(NodeConfig::new(&dir.path().join("data")));
        let node = Node::start_as(&config, dir.path(), "hostile", user.uid());
        let mut config = crate::config(1000, 0);
        config.source_file = Some(file!());
        let mut runner = TestRunner::new(config);
        let (accepted, read) = (RefCell::new(BTreeSet::new()), RefCell::new(BTreeSet::new()));
        if let Err(e) = runner.run(&request(&node.addr), |req| check(&node, &req, &accepted, &read)) {
            panic!("{e}\n{runner}");
        }
        let blobs = std::fs::read_dir(node.data_dir.join("blobs")).map_or(0, Iterator::count);
        assert_eq!(blobs, 0, "no blob can have been fetched from a loopback address where nothing listens");
    });
}

crate::for_each_user!(peer_routes_survive_hostile_peers, hostile_peers);
