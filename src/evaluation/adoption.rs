//! Deciding an adoption. A node that holds a copy of an evaluation whose
//! supervisor is gone (dead, or this node itself before a restart) first
//! takes the cluster lock `adopt/<id>`, then calls `decide`: it asks every
//! live peer what it holds of the evaluation, catches up from the most
//! advanced copy, and adopts — a new term, this node as supervisor — only if
//! no live node supervises it and no copy is closed. The lock makes the
//! candidates decide one after the other; the adopter holds it for as long
//! as it supervises, so the next candidate sees its term and stands down.

use std::path::Path;

use actix::prelude::*;
use uuid::Uuid;

use super::model::{Event, EventKind};
use crate::metrics::METRICS;
use crate::peer::PeerClient;
use crate::replication::model::{ReplicaOp, ReplicaSummary, Replicate};
use crate::replication::receive::{receive, ReceiveError};
use crate::store::{EvaluationRecord, GetSummary, RecordEvent, SetSupervisor, Store, StoreError};

/// The name of the lock an adopter holds.
pub fn lock_name(id: Uuid) -> String {
    format!("adopt/{id}")
}

#[derive(Debug)]
pub enum Decision {
    /// This node now supervises the evaluation, in the record's term.
    Adopt(EvaluationRecord),
    /// Someone else has it, or it is over; why, for the log.
    StandDown(String),
}

#[derive(Debug, thiserror::Error)]
pub enum AdoptionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("catching up from {node}: {reason}")]
    CatchUp { node: String, reason: String },
}

impl From<MailboxError> for AdoptionError {
    fn from(e: MailboxError) -> Self {
        Self::Store(e.into())
    }
}

/// Everything `decide` needs of the node.
pub struct Context<'a> {
    pub me: &'a str,
    pub store: &'a Addr<Store>,
    pub peers: &'a PeerClient,
    pub blobs_dir: &'a Path,
    /// Live peers, this node left out.
    pub live: &'a [String],
}

/// Decides, under the lock, whether this node adopts evaluation `id`.
pub async fn decide(id: Uuid, cx: &Context<'_>) -> Result<Decision, AdoptionError> {
    let Some(mut mine) = cx.store.send(GetSummary(id)).await?? else {
        return Ok(Decision::StandDown("not held here".into()));
    };
    if mine.status.is_finished() {
        return Ok(Decision::StandDown(format!("already {}", mine.status.as_str())));
    }
    let path = format!("/replica/{id}");
    let asks = cx.live.iter().map(|node| {
        let path = path.clone();
        async move { cx.peers.get::<ReplicaSummary>(node, &path).await.ok().map(|s| (node.clone(), s)) }
    });
    let theirs: Vec<(String, ReplicaSummary)> =
        futures_util::future::join_all(asks).await.into_iter().flatten().collect();

    if let Some((node, _)) = theirs.iter().find(|(node, s)| s.supervising && s.supervisor == *node) {
        catch_up(id, node, cx).await?;
        return Ok(Decision::StandDown(format!("{node} supervises it")));
    }
    if let Some((node, best)) = theirs.iter().max_by_key(|(_, s)| s.rank()) {
        if best.rank() > mine.rank() {
            catch_up(id, node, cx).await?;
            mine = cx.store.send(GetSummary(id)).await??.unwrap_or(mine);
            if mine.status.is_finished() {
                return Ok(Decision::StandDown(format!("closed on {node}")));
            }
        }
    }
    let epoch = theirs.iter().map(|(_, s)| s.epoch).chain([mine.epoch]).max().unwrap_or(0) + 1;
    let record = cx.store.send(SetSupervisor { id, supervisor: cx.me.to_owned(), epoch }).await??;
    let clock = cx.peers.clock();
    let lost = format!("supervisor {} lost", mine.supervisor);
    let adopted = format!("adopted by {} in term {epoch}", cx.me);
    for (kind, detail) in [(EventKind::SupervisorLost, lost), (EventKind::Adopted, adopted)] {
        let event = Event { lamport: clock.tick(), node: cx.me.to_owned(), kind, detail };
        cx.store.send(RecordEvent { id, event }).await??;
    }
    METRICS.adoptions.inc();
    Ok(Decision::Adopt(record))
}

/// Applies everything `node` holds of the evaluation, blobs included.
async fn catch_up(id: Uuid, node: &str, cx: &Context<'_>) -> Result<(), AdoptionError> {
    let failed = |reason: String| AdoptionError::CatchUp { node: node.to_owned(), reason };
    let ops: Vec<ReplicaOp> =
        cx.peers.get(node, &format!("/replica/{id}/snapshot")).await.map_err(|e| failed(e.to_string()))?;
    let Some(ReplicaOp::Record { record }) = ops.first() else {
        return Err(failed("a snapshot must open with the record".into()));
    };
    let replicate = Replicate {
        evaluation: id,
        journal: Uuid::new_v4(),
        epoch: record.epoch,
        supervisor: record.supervisor.clone(),
        from: 0,
        ops,
    };
    let others: Vec<String> = cx.live.iter().filter(|n| *n != node).cloned().collect();
    match receive(cx.store, cx.peers, cx.blobs_dir, node, &others, replicate).await {
        Ok(_) => Ok(()),
        Err(ReceiveError::Store(e)) => Err(e.into()),
        Err(e) => Err(failed(e.to_string())),
    }
}
