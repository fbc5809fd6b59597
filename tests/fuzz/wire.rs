//! The JSON of every peer route, requests and answers alike (a node reads
//! both from its peers), without a node: random bytes, random JSON and
//! generated bodies deserialized into each wire type. The properties:
//! - deserializing never panics, whatever the input;
//! - every generated valid body deserializes, and what deserializes
//!   serializes and reads back to the same value;
//! - the pure checks a node runs on a body before acting on it
//!   (`replication::model::check`, `blobs::is_sha256`, the task's job kind,
//!   the announcement's `decode`, SWIM's precedence) never panic on one.

use std::fmt::Debug;

use evalmesh::auth::{self, Secret};
use evalmesh::coordination::{ElectionAnswer, ElectionMessage};
use evalmesh::discovery::announcement;
use evalmesh::evaluation::blobs;
use evalmesh::executor::JobKind;
use evalmesh::locks::model::{AcquireAnswer, AcquireRequest, Holdings, HoldingsRequest, ReleaseAnswer, ReleaseRequest};
use evalmesh::membership::model::{Ack, IndirectAck, MemberInfo, Ping, PingReq};
use evalmesh::peer::model::{EvaluationDone, EvaluationResult, ExecuteModule, ResultAck};
use evalmesh::replication::model::{self, ReplicaOp, ReplicaSummary, Replicate, ReplicateAnswer};
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bodies::{self, S};
use crate::common::TEST_SECRET;

/// The answer of `POST /join`, as the joining node reads it.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Joined {
    members: Vec<MemberInfo>,
}

/// Names a wire type, so that one generated case can pick any of them.
#[derive(Debug, Clone, Copy)]
enum Wire {
    Join,
    Joined,
    Ping,
    Ack,
    PingReq,
    IndirectAck,
    Election,
    ElectionAnswer,
    Acquire,
    AcquireAnswer,
    Release,
    ReleaseAnswer,
    HoldingsRequest,
    Holdings,
    ExecuteModule,
    EvaluationResult,
    ResultAck,
    EvaluationDone,
    Replicate,
    ReplicateAnswer,
    ReplicaSummary,
    Snapshot,
    Announcement,
}

const ALL: &[Wire] = &[
    Wire::Join,
    Wire::Joined,
    Wire::Ping,
    Wire::Ack,
    Wire::PingReq,
    Wire::IndirectAck,
    Wire::Election,
    Wire::ElectionAnswer,
    Wire::Acquire,
    Wire::AcquireAnswer,
    Wire::Release,
    Wire::ReleaseAnswer,
    Wire::HoldingsRequest,
    Wire::Holdings,
    Wire::ExecuteModule,
    Wire::EvaluationResult,
    Wire::ResultAck,
    Wire::EvaluationDone,
    Wire::Replicate,
    Wire::ReplicateAnswer,
    Wire::ReplicaSummary,
    Wire::Snapshot,
    Wire::Announcement,
];

/// Node names as a peer may spell them, real-looking or not: nothing is
/// sent anywhere here.
fn address() -> S {
    prop_oneof![
        3 => "(127\\.0\\.0\\.1|10\\.0\\.0\\.[0-9]{1,3}|\\[::1\\]|node-[a-c]):[0-9]{1,5}",
        1 => "\\PC{0,24}",
    ]
    .prop_map(Value::from)
    .boxed()
}

impl Wire {
    /// Generated values that must deserialize into this type.
    fn valid(self) -> S {
        let a = &address();
        match self {
            Self::Join => bodies::member_info(a),
            Self::Joined => bodies::members(a),
            Self::Ping | Self::Ack => bodies::ping(a),
            Self::PingReq => bodies::ping_req(a),
            Self::IndirectAck => bodies::indirect_ack(a),
            Self::Election => bodies::election(a),
            Self::ElectionAnswer => bodies::election_answer(),
            Self::Acquire => bodies::acquire(a),
            Self::AcquireAnswer => bodies::acquire_answer(a),
            Self::Release => bodies::release(a),
            Self::ReleaseAnswer => bodies::release_answer(a),
            Self::HoldingsRequest => bodies::holdings_request(a),
            Self::Holdings => bodies::holdings(),
            Self::ExecuteModule => bodies::execute_module(a),
            Self::EvaluationResult => bodies::evaluation_result(a),
            Self::ResultAck => bodies::result_ack(),
            Self::EvaluationDone => bodies::evaluation_done(),
            Self::Replicate => bodies::replicate(a),
            Self::ReplicateAnswer => bodies::replicate_answer(a),
            Self::ReplicaSummary => bodies::replica_summary(a),
            Self::Snapshot => bodies::snapshot(a),
            Self::Announcement => bodies::announcement(),
        }
    }

    /// Reads `bytes` as this type and runs the pure checks a node runs on
    /// it; `Ok(true)` if it was accepted.
    fn read(self, bytes: &[u8]) -> Result<bool, TestCaseError> {
        match self {
            Self::Join => read::<MemberInfo>(bytes, |m| {
                let _ = m.supersedes(m);
            }),
            Self::Joined => read::<Joined>(bytes, |j| {
                for (a, b) in j.members.iter().zip(j.members.iter().skip(1)) {
                    let _ = a.supersedes(b);
                }
            }),
            Self::Ping => read::<Ping>(bytes, |_| ()),
            Self::Ack => read::<Ack>(bytes, |_| ()),
            Self::PingReq => read::<PingReq>(bytes, |_| ()),
            Self::IndirectAck => read::<IndirectAck>(bytes, |_| ()),
            Self::Election => read::<ElectionMessage>(bytes, |_| ()),
            Self::ElectionAnswer => read::<ElectionAnswer>(bytes, |_| ()),
            Self::Acquire => read::<AcquireRequest>(bytes, |_| ()),
            Self::AcquireAnswer => read::<AcquireAnswer>(bytes, |_| ()),
            Self::Release => read::<ReleaseRequest>(bytes, |_| ()),
            Self::ReleaseAnswer => read::<ReleaseAnswer>(bytes, |_| ()),
            Self::HoldingsRequest => read::<HoldingsRequest>(bytes, |_| ()),
            Self::Holdings => read::<Holdings>(bytes, |_| ()),
            Self::ExecuteModule => read::<ExecuteModule>(bytes, |t| {
                let _ = blobs::is_sha256(&t.blob);
                let _ = JobKind::from(t.kind.clone());
            }),
            Self::EvaluationResult => read::<EvaluationResult>(bytes, |r| {
                let _: Result<_, String> = r.outcome.clone().into();
            }),
            Self::ResultAck => read::<ResultAck>(bytes, |_| ()),
            Self::EvaluationDone => read::<EvaluationDone>(bytes, |_| ()),
            Self::Replicate => read::<Replicate>(bytes, |r| {
                let _ = model::check(r);
                let _ = r.ops.iter().flat_map(ReplicaOp::blobs).count();
            }),
            Self::ReplicateAnswer => read::<ReplicateAnswer>(bytes, |_| ()),
            Self::ReplicaSummary => read::<ReplicaSummary>(bytes, |s| {
                let _ = s.rank();
            }),
            Self::Snapshot => read::<Vec<ReplicaOp>>(bytes, |ops| {
                let _ = ops.iter().flat_map(ReplicaOp::blobs).count();
            }),
            Self::Announcement => {
                let signing = announcement::Signing { secret: Secret::new(TEST_SECRET), window_ms: 30_000 };
                let decoded = announcement::decode(bytes, &signing, auth::wall_clock_ms());
                prop_assert!(decoded.is_err() || bytes.len() <= announcement::MAX_DATAGRAM);
                Ok(decoded.is_ok())
            }
        }
    }
}

/// Deserializes `bytes` as `T`; when that succeeds, runs `checks` on it and
/// checks that it serializes and reads back to itself.
fn read<T>(bytes: &[u8], checks: impl FnOnce(&T)) -> Result<bool, TestCaseError>
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let Ok(value) = serde_json::from_slice::<T>(bytes) else {
        return Ok(false);
    };
    checks(&value);
    let again =
        serde_json::to_vec(&value).map_err(|e| TestCaseError::fail(format!("{value:?} does not serialize: {e}")))?;
    let back = serde_json::from_slice::<T>(&again);
    prop_assert!(back.as_ref().is_ok_and(|b| *b == value), "{:?} reads back as {:?}", value, back);
    Ok(true)
}

/// A wire type and a valid value of it.
fn valid() -> impl Strategy<Value = (Wire, Value)> {
    prop::sample::select(ALL).prop_flat_map(|wire| (Just(wire), wire.valid()))
}

fn every_type_reads(bytes: &[u8]) -> TestCaseResult {
    for wire in ALL {
        wire.read(bytes)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(crate::config(512, 10_000))]

    #[test]
    fn valid_bodies_deserialize_and_read_back((wire, value) in valid()) {
        let bytes = serde_json::to_vec(&value).expect("values serialize");
        prop_assert!(wire.read(&bytes)?, "a valid {:?} was refused: {}", wire, value);
    }

    #[test]
    fn edited_bodies_never_panic((wire, value) in valid().prop_flat_map(|(w, v)| (Just(w), bodies::mutated(Just(v).boxed())))) {
        wire.read(&serde_json::to_vec(&value).expect("values serialize"))?;
    }

    #[test]
    fn arbitrary_json_never_panics(value in bodies::arbitrary_json()) {
        every_type_reads(&serde_json::to_vec(&value).expect("values serialize"))?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        every_type_reads(&bytes)?;
    }
}

proptest! {
    #![proptest_config(crate::config(32, 10_000))]

    #[test]
    fn deep_nesting_never_panics(depth in 1usize..5000, open in prop::sample::select(vec!["[", "{\"from\":"])) {
        every_type_reads(open.repeat(depth).as_bytes())?;
    }
}
