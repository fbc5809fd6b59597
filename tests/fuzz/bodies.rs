//! Generated JSON bodies of the peer routes, and of their answers, as
//! `serde_json::Value`s: valid ones shaped like each wire type with edge
//! values in their leaves (0, `u64::MAX`, the SQLite limit `i64::MAX` and one
//! past it, long and control-laden strings, uuids that do not match), valid
//! ones with a few edits, and arbitrary JSON whose keys are mostly the real
//! field names.
//!
//! Every generator takes the strategy of the strings that name nodes, since
//! a node under test sends requests to the addresses it is given: against a
//! real node they must only ever be loopback (see `peer_routes::address`).

use evalmesh::auth::{self, Secret};
use evalmesh::discovery::announcement;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value};

use crate::common::TEST_SECRET;

pub type S = BoxedStrategy<Value>;

/// An object with these fields, in this order.
fn obj(fields: Vec<(&'static str, S)>) -> S {
    let (names, values): (Vec<&str>, Vec<S>) = fields.into_iter().unzip();
    values.prop_map(move |values| Value::Object(names.iter().map(|n| n.to_string()).zip(values).collect())).boxed()
}

fn tag(value: &'static str) -> S {
    Just(Value::from(value)).boxed()
}

fn one_of(values: &'static [&'static str]) -> S {
    prop::sample::select(values).prop_map(Value::from).boxed()
}

fn maybe(s: S) -> S {
    prop_oneof![1 => Just(Value::Null), 2 => s].boxed()
}

fn list(s: S, max: usize) -> S {
    prop::collection::vec(s, 0..max).prop_map(Value::Array).boxed()
}

/// An object of up to `max` generated keys.
fn map(values: S, max: usize) -> S {
    prop::collection::vec((text_string(), values), 0..max)
        .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>()))
        .boxed()
}

/// Integers that break arithmetic and storage: SQLite holds at most
/// `i64::MAX`.
pub fn u64s() -> S {
    let edges = prop::sample::select(vec![0, 1, u64::from(u32::MAX), i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX]);
    prop_oneof![6 => 0u64..1000, 2 => edges, 1 => any::<u64>()].prop_map(Value::from).boxed()
}

fn u32s() -> S {
    prop_oneof![6 => 0u32..100, 1 => prop::sample::select(vec![0, 1, u32::MAX - 1, u32::MAX]), 1 => any::<u32>()]
        .prop_map(Value::from)
        .boxed()
}

fn floats() -> S {
    let edges = prop::sample::select(vec![0.0, -0.0, -1.0, 1e-300, f64::MIN_POSITIVE, f64::MAX, f64::MIN]);
    prop_oneof![4 => (0u32..100_000).prop_map(|ms| f64::from(ms) / 1000.0), 1 => edges].prop_map(Value::from).boxed()
}

fn text_string() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[a-z_/.]{0,12}",
        2 => "\\PC{0,16}",
        1 => ".{0,16}",
        1 => (0usize..20_000).prop_map(|n| "x".repeat(n)),
    ]
    .boxed()
}

fn text() -> S {
    text_string().prop_map(Value::from).boxed()
}

fn uuids() -> S {
    prop_oneof![4 => any::<u128>(), 1 => Just(0)]
        .prop_map(|n| Value::from(uuid::Uuid::from_u128(n).to_string()))
        .boxed()
}

fn shas() -> S {
    prop_oneof![4 => "[0-9a-f]{64}", 1 => "[0-9a-fA-F./]{0,70}"].prop_map(Value::from).boxed()
}

fn datetimes() -> S {
    let edges = prop::sample::select(vec![
        "1970-01-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999999Z",
        "2024-02-29T12:00:00+14:00",
    ]);
    let any_time = "20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\
                    (\\.[0-9]{1,9})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])";
    prop_oneof![1 => edges.prop_map(str::to_owned), 3 => any_time].prop_map(Value::from).boxed()
}

/// Where a project sits in its workspace: plain, or trying to leave it.
fn roots() -> S {
    prop_oneof![
        3 => "[a-c]{1,2}(/[a-c]{1,2}){0,2}",
        1 => prop::sample::select(vec!["", ".", "..", "../x", "/etc", "a/../../b", "./a", "a//b", "C:\\x"])
            .prop_map(str::to_owned),
        1 => text_string(),
    ]
    .prop_map(Value::from)
    .boxed()
}

pub fn member_info(addr: &S) -> S {
    obj(vec![
        ("address", addr.clone()),
        ("status", one_of(&["alive", "suspect", "dead", "left"])),
        ("incarnation", u64s()),
        ("meta", obj(vec![("slots", u32s()), ("busy", u32s()), ("boot", u64s())])),
    ])
}

pub fn ping(addr: &S) -> S {
    obj(vec![("from", member_info(addr)), ("updates", list(member_info(addr), 4))])
}

pub fn ping_req(addr: &S) -> S {
    obj(vec![("from", member_info(addr)), ("target", addr.clone()), ("updates", list(member_info(addr), 4))])
}

pub fn indirect_ack(addr: &S) -> S {
    obj(vec![
        ("from", member_info(addr)),
        ("ok", any::<bool>().prop_map(Value::from).boxed()),
        ("updates", list(member_info(addr), 4)),
    ])
}

pub fn members(addr: &S) -> S {
    obj(vec![("members", list(member_info(addr), 4))])
}

pub fn election(addr: &S) -> S {
    obj(vec![("from", addr.clone())])
}

pub fn election_answer() -> S {
    obj(vec![("answer", any::<bool>().prop_map(Value::from).boxed())])
}

pub fn acquire(addr: &S) -> S {
    obj(vec![("name", text()), ("node", addr.clone()), ("lamport", u64s())])
}

pub fn release(addr: &S) -> S {
    obj(vec![("name", text()), ("node", addr.clone())])
}

pub fn holdings_request(addr: &S) -> S {
    obj(vec![("coordinator", addr.clone())])
}

pub fn acquire_answer(addr: &S) -> S {
    prop_oneof![
        obj(vec![("answer", tag("granted")), ("lease_ms", u64s())]),
        obj(vec![("answer", tag("queued")), ("position", u64s())]),
        obj(vec![("answer", tag("not_coordinator")), ("coordinator", maybe(addr.clone()))]),
        obj(vec![("answer", tag("rebuilding"))]),
    ]
    .boxed()
}

pub fn release_answer(addr: &S) -> S {
    prop_oneof![
        obj(vec![("answer", tag("released"))]),
        obj(vec![("answer", tag("not_holder"))]),
        obj(vec![("answer", tag("not_coordinator")), ("coordinator", maybe(addr.clone()))]),
        obj(vec![("answer", tag("rebuilding"))]),
    ]
    .boxed()
}

pub fn holdings() -> S {
    obj(vec![("held", list(text(), 3)), ("waiting", list(obj(vec![("name", text()), ("lamport", u64s())]), 3))])
}

pub fn execute_module(addr: &S) -> S {
    let kind = prop_oneof![
        obj(vec![("kind", tag("collect"))]),
        obj(vec![("kind", tag("run")), ("modules", list(text(), 4)), ("timeout_ms", u64s())]),
    ]
    .boxed();
    obj(vec![
        ("evaluation", uuids()),
        ("task", u64s()),
        ("supervisor", addr.clone()),
        ("project", text()),
        ("blob", shas()),
        ("kind", kind),
    ])
}

fn test_case() -> S {
    obj(vec![
        ("name", text()),
        ("classname", text()),
        ("outcome", one_of(&["passed", "failed", "skipped", "error"])),
        ("duration", floats()),
        ("message", maybe(text())),
    ])
}

pub fn module_result(addr: &S) -> S {
    obj(vec![
        ("status", one_of(&["done", "error", "timeout"])),
        ("tally", obj(vec![("passed", u32s()), ("failed", u32s()), ("skipped", u32s()), ("errors", u32s())])),
        ("duration", floats()),
        ("node", addr.clone()),
        ("output", text()),
        ("tests", list(test_case(), 3)),
    ])
}

pub fn evaluation_result(addr: &S) -> S {
    let outcome = prop_oneof![
        obj(vec![("kind", tag("collected")), ("modules", map(u32s(), 3)), ("errors", map(text(), 2))]),
        obj(vec![("kind", tag("ran")), ("results", map(module_result(addr), 3))]),
        obj(vec![("kind", tag("timed_out")), ("output", text())]),
        obj(vec![("kind", tag("failed")), ("error", text())]),
    ]
    .boxed();
    obj(vec![
        ("evaluation", uuids()),
        ("task", u64s()),
        ("project", text()),
        ("stamp", obj(vec![("node", addr.clone()), ("started", u64s()), ("finished", u64s())])),
        ("outcome", outcome),
    ])
}

pub fn evaluation_done() -> S {
    obj(vec![("evaluation", uuids())])
}

pub fn result_ack() -> S {
    obj(vec![("accepted", any::<bool>().prop_map(Value::from).boxed())])
}

fn record(addr: &S, id: S) -> S {
    let source = prop_oneof![
        obj(vec![("kind", tag("zip")), ("name", text())]),
        obj(vec![("kind", tag("git")), ("repositories", list(text(), 3))]),
    ]
    .boxed();
    obj(vec![
        ("id", id),
        ("status", one_of(&["queued", "running", "done", "failed"])),
        ("source", source),
        ("supervisor", addr.clone()),
        ("epoch", u64s()),
        ("input_sha256", maybe(shas())),
        ("input_ready", any::<bool>().prop_map(Value::from).boxed()),
        ("submitted_at", datetimes()),
        ("started_at", maybe(datetimes())),
        ("finished_at", maybe(datetimes())),
        ("error", maybe(text())),
    ])
}

fn project_row() -> S {
    obj(vec![
        ("name", text()),
        ("root", roots()),
        ("collected", any::<bool>().prop_map(Value::from).boxed()),
        ("error", maybe(text())),
        ("blob", maybe(shas())),
    ])
}

fn event(addr: &S) -> S {
    let kinds = &["submitted", "assigned", "started", "result", "reassigned", "supervisor_lost", "adopted", "done"];
    obj(vec![("lamport", u64s()), ("node", addr.clone()), ("kind", one_of(kinds)), ("detail", text())])
}

/// One replication op; a record names the evaluation `id` most of the time.
fn replica_op(addr: &S, id: S) -> S {
    let module = (text(), u32s()).prop_map(|(m, n)| Value::Array(vec![m, n])).boxed();
    prop_oneof![
        obj(vec![("op", tag("record")), ("record", record(addr, prop_oneof![3 => id, 1 => uuids()].boxed()))]),
        obj(vec![("op", tag("projects")), ("projects", list(project_row(), 3))]),
        obj(vec![
            ("op", tag("collected")),
            ("project", text()),
            ("modules", list(module, 3)),
            ("error", maybe(text()))
        ]),
        obj(vec![("op", tag("result")), ("project", text()), ("module", text()), ("result", module_result(addr))]),
        obj(vec![("op", tag("event")), ("event", event(addr))]),
    ]
    .boxed()
}

/// A journal as a supervisor writes one: the record, the projects (most
/// without a blob, which the replica would have to fetch), their modules,
/// some results and events; cut short at a random op.
fn coherent_ops(addr: &S, id: S) -> S {
    let names = prop::collection::btree_set("[p-r]", 1..3);
    let modules = prop::collection::btree_set("[s-u]\\.py", 1..3);
    let rows = prop::collection::vec((project_row(), prop::bool::weighted(0.2)), 3);
    let record = record(addr, prop_oneof![3 => id, 1 => uuids()].boxed());
    let parts = (record, names, modules, rows, list(module_result(addr), 3), list(event(addr), 2), any::<Index>());
    parts
        .prop_map(|(record, names, modules, rows, results, events, cut)| {
            let names: Vec<String> = names.into_iter().collect();
            let modules: Vec<String> = modules.into_iter().collect();
            let projects = names.iter().zip(rows).map(|(name, (mut row, with_blob))| {
                row["name"] = Value::from(name.as_str());
                if !with_blob {
                    row["blob"] = Value::Null;
                }
                row
            });
            let mut ops = vec![
                serde_json::json!({"op": "record", "record": record}),
                serde_json::json!({"op": "projects", "projects": projects.collect::<Vec<_>>()}),
            ];
            for name in &names {
                let listed: Vec<Value> = modules.iter().map(|m| serde_json::json!([m, 1])).collect();
                ops.push(serde_json::json!({"op": "collected", "project": name, "modules": listed, "error": null}));
            }
            let results = results.as_array().cloned().unwrap_or_default();
            for (i, result) in results.into_iter().enumerate() {
                let (project, module) = (&names[i % names.len()], &modules[i % modules.len()]);
                ops.push(serde_json::json!({"op": "result", "project": project, "module": module, "result": result}));
            }
            for event in events.as_array().cloned().unwrap_or_default() {
                ops.push(serde_json::json!({"op": "event", "event": event}));
            }
            ops.truncate(1 + cut.index(ops.len()));
            Value::Array(ops)
        })
        .boxed()
}

pub fn replicate(addr: &S) -> S {
    let addr = addr.clone();
    uuids()
        .prop_flat_map(move |id| {
            let from = prop_oneof![3 => Just(Value::from(0)), 1 => u64s()].boxed();
            let ops = prop_oneof![
                1 => list(replica_op(&addr, Just(id.clone()).boxed()), 5),
                2 => coherent_ops(&addr, Just(id.clone()).boxed()),
            ];
            obj(vec![
                ("evaluation", Just(id).boxed()),
                ("journal", uuids()),
                ("epoch", u64s()),
                ("supervisor", addr.clone()),
                ("from", from),
                ("ops", ops.boxed()),
            ])
        })
        .boxed()
}

pub fn replicate_answer(addr: &S) -> S {
    prop_oneof![
        obj(vec![("kind", tag("applied")), ("have", u64s())]),
        obj(vec![("kind", tag("superseded")), ("epoch", u64s()), ("supervisor", addr.clone())]),
    ]
    .boxed()
}

pub fn replica_summary(addr: &S) -> S {
    obj(vec![
        ("epoch", u64s()),
        ("supervisor", addr.clone()),
        ("status", one_of(&["queued", "running", "done", "failed"])),
        ("finished", u64s()),
        ("supervising", any::<bool>().prop_map(Value::from).boxed()),
    ])
}

pub fn snapshot(addr: &S) -> S {
    list(replica_op(addr, uuids()), 5)
}

/// The multicast announcement of a joinable node: `{"evalmesh": 1, "node":
/// "<ip>:<port>"}`.
/// Signed now with the test secret, as a node of the tests' clusters signs.
pub fn announcement() -> S {
    let node = "(127\\.0\\.0\\.1|10\\.0\\.(0|[1-9][0-9]?)\\.[1-9]|\\[fd00::[1-9a-f]\\]):[1-9][0-9]{0,3}";
    node.prop_map(|node| {
        let secret = Secret::new(TEST_SECRET);
        serde_json::from_slice(&announcement::encode(&node, &secret, auth::wall_clock_ms()))
            .expect("an announcement is JSON")
    })
    .boxed()
}

/// Every field name of the wire types, and the words of their tags.
const WORDS: &[&str] = &[
    "address",
    "status",
    "incarnation",
    "meta",
    "slots",
    "busy",
    "boot",
    "from",
    "updates",
    "target",
    "ok",
    "members",
    "answer",
    "name",
    "node",
    "lamport",
    "coordinator",
    "lease_ms",
    "position",
    "held",
    "waiting",
    "evaluation",
    "task",
    "supervisor",
    "project",
    "blob",
    "kind",
    "modules",
    "timeout_ms",
    "stamp",
    "started",
    "finished",
    "outcome",
    "errors",
    "results",
    "output",
    "error",
    "accepted",
    "journal",
    "epoch",
    "ops",
    "op",
    "record",
    "projects",
    "result",
    "event",
    "module",
    "id",
    "source",
    "input_sha256",
    "input_ready",
    "submitted_at",
    "started_at",
    "finished_at",
    "root",
    "collected",
    "tally",
    "passed",
    "failed",
    "skipped",
    "duration",
    "tests",
    "classname",
    "message",
    "detail",
    "have",
    "supervising",
    "evalmesh",
    "alive",
    "suspect",
    "dead",
    "left",
    "granted",
    "queued",
    "not_coordinator",
    "rebuilding",
    "released",
    "not_holder",
    "collect",
    "run",
    "ran",
    "timed_out",
    "applied",
    "superseded",
    "zip",
    "git",
    "repositories",
    "done",
    "running",
];

/// Any JSON at all, keys and strings mostly drawn from the wire's words.
pub fn arbitrary_json() -> S {
    let word = prop::sample::select(WORDS).prop_map(str::to_owned);
    let key = prop_oneof![4 => word.clone(), 1 => text_string()];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        u64s(),
        floats(),
        word.prop_map(Value::from),
        text(),
        uuids(),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
    .boxed()
}

/// A few edits to a valid value: a node replaced by arbitrary JSON, a key
/// removed or added, a number pushed past its type, a string turned into a
/// number.
pub fn mutated(valid: S) -> S {
    let edit = (any::<Index>(), 0u8..5, arbitrary_json(), prop::sample::select(WORDS));
    (valid, prop::collection::vec(edit, 1..4))
        .prop_map(|(mut value, edits)| {
            for (at, how, other, word) in edits {
                let mut paths = Vec::new();
                pointers(&value, String::new(), &mut paths);
                let path = &paths[at.index(paths.len())];
                let (parent, last) = path.rsplit_once('/').unwrap_or(("", ""));
                let last = last.replace("~1", "/").replace("~0", "~");
                match how {
                    0 => {
                        if let Some(node) = value.pointer_mut(path) {
                            *node = other;
                        }
                    }
                    1 => match value.pointer_mut(parent) {
                        Some(Value::Object(o)) => {
                            o.remove(&last);
                        }
                        Some(Value::Array(a)) if !a.is_empty() => {
                            a.pop();
                        }
                        _ => {}
                    },
                    2 => {
                        if let Some(Value::Object(o)) = value.pointer_mut(path) {
                            o.insert(word.to_owned(), other);
                        }
                    }
                    3 => {
                        if let Some(node) = value.pointer_mut(path) {
                            *node = match node {
                                Value::Number(_) => Value::from(-1),
                                _ => Value::from(1e19),
                            };
                        }
                    }
                    _ => {
                        if let Some(node @ Value::String(_)) = value.pointer_mut(path) {
                            *node = Value::from(u64::MAX);
                        }
                    }
                }
            }
            value
        })
        .boxed()
}

/// The JSON pointer of every node of `value`, the root (`""`) first.
fn pointers(value: &Value, here: String, out: &mut Vec<String>) {
    out.push(here.clone());
    match value {
        Value::Object(o) => {
            for (k, v) in o {
                pointers(v, format!("{here}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                pointers(v, format!("{here}/{i}"), out);
            }
        }
        _ => {}
    }
}
