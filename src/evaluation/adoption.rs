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

use super::fence::{self, Act, TermClaim, Verdict};
use super::model::{Event, EventKind};
use crate::metrics::METRICS;
use crate::peer::routes::{EvaluationId, Replica, Snapshot};
use crate::peer::Peers;
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
    pub peers: &'a Peers,
    pub blobs_dir: &'a Path,
    /// Live peers, this node left out.
    pub live: &'a [String],
    /// Every member but those that left, live or not, this node left out:
    /// a majority of them and this node must promise the adopter's term.
    pub members: &'a [String],
}

/// What the adoption rule says next, from this node's copy of an
/// evaluation and the live peers' copies.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// It is closed here: nothing to adopt.
    Closed,
    /// That live node supervises it: catch up from it and stand down.
    Follow(&'a str),
    /// That node's copy knows more (`ReplicaSummary::rank`): catch up from
    /// it, then ask again.
    CatchUp(&'a str),
    /// This node adopts it, in that term: one past every term known.
    Adopt { epoch: u64 },
}

/// The adoption rule. A node that runs the evaluation's supervisor, by its
/// own copy's word, is followed whatever the ranks; else the copy that
/// knows most is caught up from, once (`caught_up` says it was); else this
/// node adopts in a term past all the copies'. Pure.
pub fn rule<'a>(mine: &ReplicaSummary, theirs: &'a [(String, ReplicaSummary)], caught_up: bool) -> Step<'a> {
    if mine.status.is_finished() {
        return Step::Closed;
    }
    if let Some((node, _)) = theirs.iter().find(|(node, s)| s.supervising && s.supervisor == *node) {
        return Step::Follow(node);
    }
    if let Some((node, best)) = theirs.iter().max_by_key(|(_, s)| s.rank()) {
        if !caught_up && best.rank() > mine.rank() {
            return Step::CatchUp(node);
        }
    }
    Step::Adopt { epoch: theirs.iter().map(|(_, s)| s.epoch).chain([mine.epoch]).max().unwrap_or(0) + 1 }
}

/// Decides, under the lock, whether this node adopts evaluation `id`.
pub async fn decide(id: Uuid, cx: &Context<'_>) -> Result<Decision, AdoptionError> {
    let Some(mut mine) = cx.store.send(GetSummary(id)).await?? else {
        return Ok(Decision::StandDown("not held here".into()));
    };
    if mine.status.is_finished() {
        return Ok(Decision::StandDown(format!("already {}", mine.status.as_str())));
    }
    let asks = cx.live.iter().map(|node| {
        let ask = cx.peers.call::<Replica>(node, &EvaluationId { id });
        async move { ask.await.ok().map(|s| (node.clone(), s)) }
    });
    let theirs: Vec<(String, ReplicaSummary)> =
        futures_util::future::join_all(asks).await.into_iter().flatten().collect();

    let mut step = rule(&mine, &theirs, false);
    if let Step::CatchUp(node) = step {
        catch_up(id, node, cx).await?;
        mine = cx.store.send(GetSummary(id)).await??.unwrap_or(mine);
        step = match rule(&mine, &theirs, true) {
            Step::Closed => return Ok(Decision::StandDown(format!("closed on {node}"))),
            other => other,
        };
    }
    let epoch = match step {
        Step::Closed => return Ok(Decision::StandDown(format!("already {}", mine.status.as_str()))),
        Step::Follow(node) => {
            catch_up(id, node, cx).await?;
            return Ok(Decision::StandDown(format!("{node} supervises it")));
        }
        Step::CatchUp(node) => unreachable!("caught up from {node} already"),
        Step::Adopt { epoch } => epoch,
    };
    let epoch = match fenced(id, epoch, cx).await? {
        Ok(epoch) => epoch,
        Err(why) => return Ok(Decision::StandDown(why)),
    };
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

/// Asks a majority to promise this node term `epoch`, once more a term
/// above a promise it finds that was never closed (an adopter that died,
/// or gave up): the term promised, or why none was.
pub(crate) async fn fenced(id: Uuid, epoch: u64, cx: &Context<'_>) -> Result<Result<u64, String>, AdoptionError> {
    let mut epoch = epoch;
    for _ in 0..2 {
        let claim = TermClaim { evaluation: id, epoch, supervisor: cx.me.to_owned(), act: Act::Adopt };
        match fence::claim(cx.store, cx.peers, cx.members, &claim).await? {
            Verdict::Granted => return Ok(Ok(epoch)),
            Verdict::Outranked { known, .. } if !known.closed && known.epoch >= epoch => epoch = known.epoch + 1,
            Verdict::Outranked { by, known } => {
                let what = if known.closed { "the close" } else { "term" };
                return Ok(Err(format!("{by} promised {what} {} of {}", known.epoch, known.supervisor)));
            }
            Verdict::NoQuorum { granted, needed } => {
                return Ok(Err(format!("only {granted} of the {needed} members needed promised term {epoch}")));
            }
        }
    }
    Ok(Err(format!("terms up to {epoch} already promised to others")))
}

/// Catches up from `node`, the evaluation's supervisor in a later term:
/// what a supervisor that steps down does, so that its copy gives the
/// later term's answer.
pub async fn follow(
    id: Uuid,
    node: &str,
    store: &Addr<Store>,
    peers: &Peers,
    blobs_dir: &Path,
) -> Result<(), AdoptionError> {
    let cx = Context { me: peers.node(), store, peers, blobs_dir, live: &[], members: &[] };
    catch_up(id, node, &cx).await
}

/// Applies everything `node` holds of the evaluation, blobs included.
async fn catch_up(id: Uuid, node: &str, cx: &Context<'_>) -> Result<(), AdoptionError> {
    let failed = |reason: String| AdoptionError::CatchUp { node: node.to_owned(), reason };
    let ops = cx.peers.call::<Snapshot>(node, &EvaluationId { id }).await.map_err(|e| failed(e.to_string()))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluation::model::EvaluationStatus;

    fn copy(
        epoch: u64,
        status: EvaluationStatus,
        finished: u64,
        supervisor: &str,
        supervising: bool,
    ) -> ReplicaSummary {
        ReplicaSummary { epoch, supervisor: supervisor.into(), status, finished, supervising }
    }

    fn running(epoch: u64, finished: u64) -> ReplicaSummary {
        copy(epoch, EvaluationStatus::Running, finished, "dead:1", false)
    }

    fn at(node: &str, summary: ReplicaSummary) -> (String, ReplicaSummary) {
        (node.into(), summary)
    }

    #[test]
    fn a_closed_copy_is_not_adopted() {
        for status in [EvaluationStatus::Done, EvaluationStatus::Failed, EvaluationStatus::Cancelled] {
            assert_eq!(rule(&copy(0, status, 3, "dead:1", false), &[], false), Step::Closed);
        }
    }

    #[test]
    fn a_live_supervisor_is_followed_whatever_the_ranks() {
        let theirs = [at("b:1", running(5, 9)), at("c:1", copy(1, EvaluationStatus::Running, 0, "c:1", true))];
        assert_eq!(rule(&running(7, 20), &theirs, false), Step::Follow("c:1"));
        // A node that runs a supervisor for a record naming another is not one.
        let stale = [at("c:1", copy(1, EvaluationStatus::Running, 0, "d:1", true))];
        assert_eq!(rule(&running(1, 0), &stale, false), Step::Adopt { epoch: 2 });
    }

    #[test]
    fn the_copy_that_knows_most_is_caught_up_from_once() {
        let theirs = [at("b:1", running(2, 4)), at("c:1", running(3, 1)), at("d:1", running(3, 2))];
        assert_eq!(rule(&running(2, 9), &theirs, false), Step::CatchUp("d:1"), "a later term, then more results");
        assert_eq!(rule(&running(2, 9), &theirs, true), Step::Adopt { epoch: 4 }, "caught up: adopt past every term");
        let closed = [at("b:1", copy(1, EvaluationStatus::Done, 0, "dead:1", false))];
        assert_eq!(rule(&running(1, 8), &closed, false), Step::CatchUp("b:1"), "a closed copy beats more results");
    }

    #[test]
    fn the_copy_that_knows_as_much_as_any_adopts_in_the_next_term() {
        assert_eq!(rule(&running(0, 0), &[], false), Step::Adopt { epoch: 1 }, "alone");
        let theirs = [at("b:1", running(4, 6)), at("c:1", running(1, 9))];
        assert_eq!(rule(&running(4, 6), &theirs, false), Step::Adopt { epoch: 5 }, "a tie is not caught up from");
        assert_eq!(rule(&running(4, 7), &theirs, false), Step::Adopt { epoch: 5 });
    }
}
