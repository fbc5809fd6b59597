//! The client side of the locks, the pure core under the `Locks` actor: what
//! this node holds and waits for, as the coordinator last answered. No clock,
//! no I/O; the actor sends the asks it makes and feeds back the answers.
//!
//! Every ask is numbered. Asks overlap — one per tick, each allowed a lease to
//! be answered — so an answer older than one already applied is dropped: a
//! late `Queued` must not undo a newer `Granted`.

use std::collections::BTreeMap;

use super::model::{AcquireAnswer, AcquireRequest, Holdings, Waiting};

/// What an answer changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The lock is this node's now.
    Granted,
    /// The coordinator queued a node that believed it held the lock: its
    /// lease ran out, or a rebuild gave the lock to another claimant.
    Lost { position: usize },
}

#[derive(Debug, Clone)]
struct Claim {
    /// The Lamport time of the first ask, sent with every ask.
    stamp: u64,
    held: bool,
    /// The number of the latest ask whose answer was applied.
    answered: u64,
}

#[derive(Debug, Clone)]
pub struct Claims {
    me: String,
    claims: BTreeMap<String, Claim>,
    /// The number of the latest ask, over every lock.
    asks: u64,
}

impl Claims {
    pub fn new(me: &str) -> Self {
        Self { me: me.to_owned(), claims: BTreeMap::new(), asks: 0 }
    }

    /// Starts waiting for `name`, asking with `stamp`; false when this node
    /// already holds it or waits for it.
    pub fn claim(&mut self, name: &str, stamp: u64) -> bool {
        if self.claims.contains_key(name) {
            return false;
        }
        // Answers to asks of an earlier claim on the same name are older than this one.
        self.claims.insert(name.to_owned(), Claim { stamp, held: false, answered: self.asks });
        true
    }

    /// Ends the claim on `name`, held or not; false when there was none.
    pub fn release(&mut self, name: &str) -> bool {
        self.claims.remove(name).is_some()
    }

    /// Every lock this node holds or waits for.
    pub fn names(&self) -> Vec<String> {
        self.claims.keys().cloned().collect()
    }

    /// The next ask for `name`, with its number.
    pub fn ask(&mut self, name: &str) -> Option<(u64, AcquireRequest)> {
        let claim = self.claims.get(name)?;
        self.asks += 1;
        Some((self.asks, AcquireRequest { name: name.to_owned(), node: self.me.clone(), lamport: claim.stamp }))
    }

    /// Applies the coordinator's answer to ask number `ask`.
    pub fn answer(&mut self, name: &str, ask: u64, answer: &AcquireAnswer) -> Option<Change> {
        let claim = self.claims.get_mut(name).filter(|c| c.answered < ask)?;
        claim.answered = ask;
        match *answer {
            AcquireAnswer::Granted { .. } if !claim.held => {
                claim.held = true;
                Some(Change::Granted)
            }
            AcquireAnswer::Queued { position } if claim.held => {
                claim.held = false;
                Some(Change::Lost { position })
            }
            // A renewal, a waiter still waiting, or no answer from a coordinator.
            _ => None,
        }
    }

    /// The locks this node holds, by name.
    pub fn held(&self) -> Vec<String> {
        self.claims.iter().filter(|(_, c)| c.held).map(|(name, _)| name.clone()).collect()
    }

    /// What a new coordinator rebuilds its table from.
    pub fn holdings(&self) -> Holdings {
        let mut holdings = Holdings::default();
        for (name, claim) in &self.claims {
            if claim.held {
                holdings.held.push(name.clone());
            } else {
                holdings.waiting.push(Waiting { name: name.clone(), lamport: claim.stamp });
            }
        }
        holdings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRANTED: AcquireAnswer = AcquireAnswer::Granted { lease_ms: 300 };

    #[test]
    fn asks_carry_the_stamp_of_the_claim_and_rise() {
        let mut c = Claims::new("a");
        assert!(c.claim("x", 7));
        assert!(!c.claim("x", 8), "a second claim on one lock is refused");
        let (first, request) = c.ask("x").unwrap();
        assert_eq!(request, AcquireRequest { name: "x".into(), node: "a".into(), lamport: 7 });
        let (second, request) = c.ask("x").unwrap();
        assert!(second > first);
        assert_eq!(request.lamport, 7, "a renewal keeps the first ask's stamp");
        assert_eq!(c.ask("y"), None);
    }

    #[test]
    fn a_grant_and_a_loss_change_what_is_held() {
        let mut c = Claims::new("a");
        c.claim("x", 1);
        let (ask, _) = c.ask("x").unwrap();
        assert_eq!(c.answer("x", ask, &AcquireAnswer::Queued { position: 1 }), None);
        let (ask, _) = c.ask("x").unwrap();
        assert_eq!(c.answer("x", ask, &GRANTED), Some(Change::Granted));
        assert_eq!(c.held(), vec!["x"]);
        let (ask, _) = c.ask("x").unwrap();
        assert_eq!(c.answer("x", ask, &GRANTED), None, "a renewal changes nothing");
        let (ask, _) = c.ask("x").unwrap();
        assert_eq!(c.answer("x", ask, &AcquireAnswer::Queued { position: 2 }), Some(Change::Lost { position: 2 }));
        assert!(c.held().is_empty());
        assert_eq!(c.holdings(), Holdings { held: vec![], waiting: vec![Waiting { name: "x".into(), lamport: 1 }] });
    }

    #[test]
    fn an_answer_older_than_one_applied_is_dropped() {
        let mut c = Claims::new("a");
        c.claim("x", 1);
        let (old, _) = c.ask("x").unwrap();
        let (new, _) = c.ask("x").unwrap();
        assert_eq!(c.answer("x", new, &GRANTED), Some(Change::Granted));
        assert_eq!(c.answer("x", old, &AcquireAnswer::Queued { position: 1 }), None);
        assert_eq!(c.held(), vec!["x"]);
    }

    #[test]
    fn answers_to_an_ended_claim_change_nothing_even_after_a_new_claim() {
        let mut c = Claims::new("a");
        c.claim("x", 1);
        let (before, _) = c.ask("x").unwrap();
        assert!(c.release("x"));
        assert!(!c.release("x"));
        assert_eq!(c.answer("x", before, &GRANTED), None);
        c.claim("x", 5);
        assert_eq!(c.answer("x", before, &GRANTED), None, "the grant was for the claim released");
        assert!(c.held().is_empty());
    }

    #[test]
    fn holdings_list_held_locks_and_waits_with_their_stamps() {
        let mut c = Claims::new("a");
        c.claim("x", 3);
        c.claim("y", 4);
        let (ask, _) = c.ask("y").unwrap();
        c.answer("y", ask, &GRANTED);
        assert_eq!(c.names(), vec!["x", "y"]);
        assert_eq!(
            c.holdings(),
            Holdings { held: vec!["y".into()], waiting: vec![Waiting { name: "x".into(), lamport: 3 }] }
        );
    }
}
