//! Every route between nodes, defined once: its path, its method, what it
//! takes and what it answers. The client side (`Peers::call`) and the server
//! side (`api::peer`) are generic over these definitions, so a route's
//! string and types are written here and nowhere else.

use actix_web::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::model::{self, CancelRequest, RemoveEvaluation, ResultAck};
use crate::coordination::{ElectionAnswer, ElectionMessage};
use crate::evaluation::fence::{TermAnswer, TermClaim};
use crate::locks::model::{AcquireAnswer, AcquireRequest, Holdings, HoldingsRequest, ReleaseAnswer, ReleaseRequest};
use crate::membership::model::{Ack, IndirectAck, MemberInfo, Ping, PingReq};
use crate::replication::model::{self as replication, ReplicaOp, ReplicaSummary, ReplicateAnswer};

/// How a route is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The request is the JSON body.
    Post,
    /// The request is in the path (`Route::path`); there is no body.
    Get,
    /// As `Get`, for whether something exists: 2xx or 404, no body.
    Head,
}

/// One peer route. The reply is JSON; `Blob` is the one route whose answer
/// is raw bytes, and it is not a `Route`.
pub trait Route: 'static {
    /// The resource pattern the server mounts, with `{name}` for a path part.
    const PATTERN: &'static str;
    const METHOD: Method;
    /// The status of a successful answer.
    const STATUS: StatusCode = StatusCode::OK;
    type Request: Serialize + DeserializeOwned + 'static;
    type Reply: Serialize + DeserializeOwned + 'static;

    /// The path of one call: the pattern, filled from the request for `Get`.
    fn path(_request: &Self::Request) -> String {
        Self::PATTERN.to_owned()
    }
}

/// Defines a `POST` route: its marker type, path, request and reply.
macro_rules! post_route {
    ($(#[$doc:meta])* $name:ident, $path:literal, $request:ty => $reply:ty $(, $status:expr)?) => {
        $(#[$doc])*
        pub struct $name;

        impl Route for $name {
            const PATTERN: &'static str = $path;
            const METHOD: Method = Method::Post;
            $(const STATUS: StatusCode = $status;)?
            type Request = $request;
            type Reply = $reply;
        }
    };
}

post_route!(
    /// A node joins through a seed, which answers every member it knows.
    Join, "/join", MemberInfo => Joined
);
post_route!(
    /// A SWIM probe, carrying the prober's load: the heartbeat of the seeds.
    Mystats, "/mystats", Ping => Ack
);
post_route!(
    /// "Probe that node for me": SWIM's indirect probe.
    Probe, "/probe", PingReq => IndirectAck
);
post_route!(
    /// A bully election message: a higher node answers and takes over.
    Election, "/election", ElectionMessage => ElectionAnswer
);
post_route!(
    /// The winner of an election names itself.
    Coordinator, "/coordinator", ElectionMessage => CoordinatorAck
);
post_route!(LockAcquire, "/lock/acquire", AcquireRequest => AcquireAnswer);
post_route!(LockRelease, "/lock/release", ReleaseRequest => ReleaseAnswer);
post_route!(
    /// A new coordinator asks what each node holds.
    LockHoldings, "/lock/holdings", HoldingsRequest => Holdings
);
post_route!(
    /// A supervisor hands a task to a worker.
    ExecuteModule, "/execute_module", model::ExecuteModule => TaskTaken, StatusCode::ACCEPTED
);
post_route!(
    /// A worker answers a task to its supervisor.
    EvaluationResult, "/evaluation_result", model::EvaluationResult => ResultAck
);
post_route!(
    /// The supervisor tells a worker the evaluation is over.
    EvaluationDone, "/evaluation_done", model::EvaluationDone => DoneAck
);
post_route!(
    /// A client removed a finished evaluation: every node drops its copy.
    EvaluationRemove, "/evaluation_remove", RemoveEvaluation => Removed
);
post_route!(
    /// A client cancelled an evaluation through another node.
    EvaluationCancel, "/evaluation_cancel", CancelRequest => Cancelled
);
post_route!(
    /// A supervisor sends entries of its journal to a replica.
    Replicate, "/replicate", replication::Replicate => ReplicateAnswer
);

post_route!(
    /// A supervisor asks a member to promise its term, to adopt or to close
    /// (`evaluation::fence`).
    Term, "/term", TermClaim => TermAnswer
);

/// `GET /replica/{id}`: what a node holds of an evaluation.
pub struct Replica;

impl Route for Replica {
    const PATTERN: &'static str = "/replica/{id}";
    const METHOD: Method = Method::Get;
    type Request = EvaluationId;
    type Reply = ReplicaSummary;

    fn path(request: &EvaluationId) -> String {
        format!("/replica/{}", request.id)
    }
}

/// `GET /replica/{id}/snapshot`: everything a node holds of an evaluation,
/// as a journal that opens with the record.
pub struct Snapshot;

impl Route for Snapshot {
    const PATTERN: &'static str = "/replica/{id}/snapshot";
    const METHOD: Method = Method::Get;
    type Request = EvaluationId;
    type Reply = Vec<ReplicaOp>;

    fn path(request: &EvaluationId) -> String {
        format!("/replica/{}/snapshot", request.id)
    }
}

/// `GET /blobs/{sha256}` answers a project's zip; `HEAD` whether the node
/// holds it.
pub struct Blob;

impl Blob {
    pub const PATTERN: &'static str = "/blobs/{sha256}";

    pub fn path(sha: &str) -> String {
        format!("/blobs/{sha}")
    }
}

/// The path part of the routes about one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvaluationId {
    pub id: Uuid,
}

/// The answer of `POST /join`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    pub members: Vec<MemberInfo>,
}

/// The answer of `POST /coordinator`: whom the node now follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordinatorAck {
    pub coordinator: String,
}

/// The answer of `POST /execute_module`: the worker has the task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskTaken {
    pub evaluation: Uuid,
    pub task: u64,
}

/// The answer of `POST /evaluation_done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoneAck {
    pub evaluation: Uuid,
}

/// The answer of `POST /evaluation_remove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub evaluation: Uuid,
    /// The node held a copy and dropped it.
    pub removed: bool,
}

/// The answer of `POST /evaluation_cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancelled {
    pub evaluation: Uuid,
    /// The node supervises it and is closing it.
    pub cancelled: bool,
}
