//! Fencing by term. A supervisor acts in a term (`epoch`): 0 for the node a
//! client submitted to, one past every known term for an adopter. Two acts
//! need a majority of the cluster's members, this node included, to promise
//! the term (`POST /term`): adopting, and closing. A member promises an
//! adoption only above every term it knows and never after a close; it
//! promises a close only if it knows no later term. Any two majorities
//! share a member, so a supervisor cut off from the majority can neither
//! close an evaluation that the majority adopted, nor be adopted over once
//! it has closed. The members are all those membership knows but those
//! that left: a dead member still counts, since it may only be cut off.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use actix::Addr;

use crate::membership::{MemberView, Status};
use crate::peer::{routes, Peers};
use crate::store::{ClaimTerm, Store, StoreError};

/// What a node asks of the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TermClaim {
    pub evaluation: Uuid,
    pub epoch: u64,
    pub supervisor: String,
    pub act: Act,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Act {
    Adopt,
    Close,
}

/// The term a member knows: the highest it promised, or of its copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Known {
    pub epoch: u64,
    pub supervisor: String,
    /// It promised a close in that term.
    pub closed: bool,
}

/// A member's answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TermAnswer {
    pub granted: bool,
    /// What it knows after the claim.
    pub known: Option<Known>,
}

/// Whether a member that knows `known` promises `claim`. An epoch is
/// promised to one supervisor; terms are ordered by (epoch, supervisor), as
/// replicas order writes. Pure.
pub fn grant(known: Option<&Known>, claim: &TermClaim) -> bool {
    let Some(known) = known else { return true };
    let claimed = (claim.epoch, claim.supervisor.as_str());
    let held = (known.epoch, known.supervisor.as_str());
    match claim.act {
        // The same claimant may ask again for the epoch it was promised: a
        // claim that found no majority is retried.
        Act::Adopt => !known.closed && (claim.epoch > known.epoch || claimed == held),
        // A close repeated in its own term is promised again: the first
        // answer may have been lost.
        Act::Close => claimed >= held && !(known.closed && claimed != held),
    }
}

/// What a member knows after it promised `claim`.
pub fn promised(claim: &TermClaim) -> Known {
    Known { epoch: claim.epoch, supervisor: claim.supervisor.clone(), closed: claim.act == Act::Close }
}

/// How a claim went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A majority promised it.
    Granted,
    /// A member knows a later term, or a close: the claimant must give way.
    Outranked { by: String, known: Known },
    /// Too few members answered: try again later.
    NoQuorum { granted: usize, needed: usize },
}

/// The members whose promises count, `me` left out: all that membership
/// knows but those that left.
pub fn members(views: Vec<MemberView>, me: &str) -> Vec<String> {
    views.into_iter().filter(|m| m.status != Status::Left && m.address != me).map(|m| m.address).collect()
}

/// How many of `members` make a majority.
pub fn majority(members: usize) -> usize {
    members / 2 + 1
}

/// Claims `claim` on this node (its `store`), then asks `others` (every
/// member but this node): granted by a majority of all of them, outranked
/// as soon as one member knows better.
pub async fn claim(
    store: &Addr<Store>,
    peers: &Peers,
    others: &[String],
    claim: &TermClaim,
) -> Result<Verdict, StoreError> {
    let mine = store.send(ClaimTerm(claim.clone())).await??;
    if let (false, Some(known)) = (mine.granted, &mine.known) {
        return Ok(Verdict::Outranked { by: peers.node().to_owned(), known: known.clone() });
    }
    Ok(ask(peers, others, claim, mine).await)
}

/// Asks `others` to promise `claim`, which this node has promised (`mine`).
async fn ask(peers: &Peers, others: &[String], claim: &TermClaim, mine: TermAnswer) -> Verdict {
    let asks = others.iter().map(|node| {
        let ask = peers.call::<routes::Term>(node, claim);
        async move { (node.clone(), ask.await) }
    });
    let mut answers = vec![(peers.node().to_owned(), Ok(mine))];
    answers.extend(futures_util::future::join_all(asks).await);
    let needed = majority(others.len() + 1);
    let mut granted = 0;
    for (node, answer) in answers {
        match answer {
            Ok(TermAnswer { granted: true, .. }) => granted += 1,
            Ok(TermAnswer { granted: false, known: Some(known) }) => return Verdict::Outranked { by: node, known },
            Ok(TermAnswer { granted: false, known: None }) => {}
            Err(e) => log::debug!("evaluation {}: term {} not promised by {node}: {e}", claim.evaluation, claim.epoch),
        }
    }
    if granted >= needed {
        Verdict::Granted
    } else {
        Verdict::NoQuorum { granted, needed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(epoch: u64, supervisor: &str, act: Act) -> TermClaim {
        TermClaim { evaluation: Uuid::nil(), epoch, supervisor: supervisor.into(), act }
    }

    fn known(epoch: u64, supervisor: &str, closed: bool) -> Known {
        Known { epoch, supervisor: supervisor.into(), closed }
    }

    #[test]
    fn an_adoption_is_promised_only_above_every_known_term_and_never_after_a_close() {
        assert!(grant(None, &claim(1, "b", Act::Adopt)));
        assert!(grant(Some(&known(0, "a", false)), &claim(1, "b", Act::Adopt)));
        assert!(grant(Some(&known(1, "b", false)), &claim(1, "b", Act::Adopt)), "asked again by its claimant");
        assert!(!grant(Some(&known(1, "c", false)), &claim(1, "b", Act::Adopt)), "an epoch has one supervisor");
        assert!(!grant(Some(&known(1, "a", false)), &claim(1, "b", Act::Adopt)), "whatever the names' order");
        assert!(!grant(Some(&known(2, "a", false)), &claim(1, "b", Act::Adopt)));
        assert!(!grant(Some(&known(0, "a", true)), &claim(5, "b", Act::Adopt)), "closed in an earlier term");
    }

    #[test]
    fn a_close_is_promised_unless_a_later_term_is_known() {
        assert!(grant(None, &claim(0, "a", Act::Close)));
        assert!(grant(Some(&known(0, "a", false)), &claim(0, "a", Act::Close)), "its own term");
        assert!(grant(Some(&known(0, "a", true)), &claim(0, "a", Act::Close)), "asked again");
        assert!(grant(Some(&known(1, "b", false)), &claim(2, "c", Act::Close)));
        assert!(!grant(Some(&known(1, "b", false)), &claim(0, "a", Act::Close)), "adopted over");
        assert!(!grant(Some(&known(1, "b", true)), &claim(0, "a", Act::Close)));
    }

    #[test]
    fn a_close_and_an_adoption_of_one_term_cannot_both_win_whatever_the_order() {
        // Every order in which one member sees the two claims: the second is refused.
        let (close, adopt) = (claim(0, "a", Act::Close), claim(1, "b", Act::Adopt));
        for (first, second) in [(&close, &adopt), (&adopt, &close)] {
            assert!(grant(None, first));
            assert!(!grant(Some(&promised(first)), second), "{first:?} then {second:?}");
        }
    }

    #[test]
    fn a_majority_is_more_than_half() {
        assert_eq!([1, 2, 3, 4, 5].map(majority), [1, 2, 2, 3, 3]);
    }
}
