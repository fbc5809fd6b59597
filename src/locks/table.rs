//! The lock table, the pure core under the coordinator side of the `Locks`
//! actor: no clock, no I/O; the actor passes the time in as `now_ms` and
//! calls `expire` on its ticks.
//!
//! Each named lock has one holder, whose lease ends at a deadline that the
//! holder pushes back by asking again, and a FIFO queue of waiters, each
//! remembered with when it last asked. A lock nobody holds is not in the
//! table: whenever a holder lets go or loses its lease the head of the queue
//! holds the lock at once, with a fresh lease, and learns it on its next ask.
//!
//! A new coordinator starts from `rebuild`, fed with what the live nodes say
//! they hold and wait for. Every claim on a lock is ordered by (stamp, node):
//! a waiter's stamp is the Lamport time of its first ask, a holder's claim is
//! stamped 0, ahead of every ask (a Lamport clock's first tick is 1); nodes
//! order as the bully election orders them. The first claim holds the lock
//! with a fresh lease, the others queue in that order. So every rebuild from
//! the same holdings gives the same table, whatever order they arrived in,
//! and when two nodes both believe they hold a lock — one lost its lease
//! under the old coordinator and has not heard so yet — the lower node keeps
//! it and the other is first in line.

use std::collections::{BTreeMap, VecDeque};

use super::model::{Holdings, LockView};
use crate::coordination::bully::rank;

/// The answer to an acquire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Granted {
        lease_ms: u64,
    },
    /// 1 is next in line.
    Queued {
        position: usize,
    },
}

/// What a release did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// The holder let go; the lock went to `next`, if anyone waited.
    HandedOver { next: Option<String> },
    /// A waiter left the queue; the others keep their order.
    Withdrawn,
    /// The node neither holds the lock nor waits for it: nothing changed.
    Refused,
}

/// A change `expire` made, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expiry {
    /// A holder's lease ran out; the lock went to `next`, if anyone waited.
    LeaseLost { name: String, node: String, next: Option<String> },
    /// A waiter stopped asking for longer than a lease and left the queue.
    WaiterGone { name: String, node: String },
}

/// Several nodes said they hold one lock at a rebuild: `kept` holds it, the
/// others are first in its queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub name: String,
    pub kept: String,
    pub queued: Vec<String>,
}

#[derive(Debug, Clone)]
struct Holder {
    node: String,
    deadline_ms: u64,
}

#[derive(Debug, Clone)]
struct Waiter {
    node: String,
    /// The Lamport time of the request it waits with, which tells a new
    /// request from the same node from a repeated one; 0 for a holder that
    /// a rebuild put in the queue, until it asks.
    stamp: u64,
    last_asked_ms: u64,
}

#[derive(Debug, Clone)]
struct Lock {
    holder: Holder,
    queue: VecDeque<Waiter>,
}

impl Lock {
    /// Gives the lock to the head of the queue; `None` when nobody waits,
    /// and the lock is then to be removed.
    fn hand_over(&mut self, deadline_ms: u64) -> Option<String> {
        let next = self.queue.pop_front()?;
        self.holder = Holder { node: next.node, deadline_ms };
        Some(self.holder.node.clone())
    }
}

#[derive(Debug, Clone)]
pub struct LockTable {
    lease_ms: u64,
    locks: BTreeMap<String, Lock>,
}

impl LockTable {
    pub fn new(lease_ms: u64) -> Self {
        Self { lease_ms, locks: BTreeMap::new() }
    }

    fn deadline(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add(self.lease_ms)
    }

    /// Grants a free lock; renews the lease of a holder that asks again;
    /// keeps the place of a waiter that asks again with the same request
    /// and notes that it is still there; queues anyone else at the tail,
    /// including a waiter with a new request (it released and asked again,
    /// and its release was lost).
    pub fn acquire(&mut self, now_ms: u64, name: &str, node: &str, stamp: u64) -> Grant {
        let (lease_ms, deadline_ms) = (self.lease_ms, self.deadline(now_ms));
        let Some(lock) = self.locks.get_mut(name) else {
            let holder = Holder { node: node.to_owned(), deadline_ms };
            self.locks.insert(name.to_owned(), Lock { holder, queue: VecDeque::new() });
            return Grant::Granted { lease_ms };
        };
        if lock.holder.node == node {
            lock.holder.deadline_ms = deadline_ms;
            return Grant::Granted { lease_ms };
        }
        if let Some(i) = lock.queue.iter().position(|w| w.node == node) {
            let waiter = &mut lock.queue[i];
            if waiter.stamp == stamp || waiter.stamp == 0 {
                (waiter.stamp, waiter.last_asked_ms) = (stamp, now_ms);
                return Grant::Queued { position: i + 1 };
            }
            lock.queue.remove(i);
        }
        lock.queue.push_back(Waiter { node: node.to_owned(), stamp, last_asked_ms: now_ms });
        Grant::Queued { position: lock.queue.len() }
    }

    /// Only the holder releases the lock, which goes to the head of the
    /// queue at once; a waiter's release withdraws it from the queue.
    pub fn release(&mut self, now_ms: u64, name: &str, node: &str) -> Released {
        let deadline_ms = self.deadline(now_ms);
        let Some(lock) = self.locks.get_mut(name) else {
            return Released::Refused;
        };
        if lock.holder.node == node {
            let next = lock.hand_over(deadline_ms);
            if next.is_none() {
                self.locks.remove(name);
            }
            return Released::HandedOver { next };
        }
        match lock.queue.iter().position(|w| w.node == node) {
            Some(i) => {
                lock.queue.remove(i);
                Released::Withdrawn
            }
            None => Released::Refused,
        }
    }

    /// Drops the waiters that stopped asking for longer than a lease, then
    /// takes each lock whose lease ran out from its holder and gives it to
    /// the next waiter. Waiters go first so that a dead one is not handed
    /// a lock.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Expiry> {
        let (lease_ms, deadline_ms) = (self.lease_ms, self.deadline(now_ms));
        let mut changes = Vec::new();
        let mut freed = Vec::new();
        for (name, lock) in &mut self.locks {
            lock.queue.retain(|w| {
                let present = now_ms.saturating_sub(w.last_asked_ms) <= lease_ms;
                if !present {
                    changes.push(Expiry::WaiterGone { name: name.clone(), node: w.node.clone() });
                }
                present
            });
            if lock.holder.deadline_ms <= now_ms {
                let node = lock.holder.node.clone();
                let next = lock.hand_over(deadline_ms);
                if next.is_none() {
                    freed.push(name.clone());
                }
                changes.push(Expiry::LeaseLost { name: name.clone(), node, next });
            }
        }
        for name in freed {
            self.locks.remove(&name);
        }
        changes
    }

    /// Replaces the table with one built from what live nodes say they hold
    /// and wait for (the order is in the file's doc); every holder gets a
    /// fresh lease and every waiter a lease's time to ask again.
    pub fn rebuild(&mut self, now_ms: u64, holdings: impl IntoIterator<Item = (String, Holdings)>) -> Vec<Conflict> {
        let mut claims: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
        for (node, h) in holdings {
            for name in h.held {
                claims.entry(name).or_default().push((0, node.clone()));
            }
            for w in h.waiting {
                claims.entry(w.name).or_default().push((w.lamport, node.clone()));
            }
        }
        let deadline_ms = self.deadline(now_ms);
        let mut conflicts = Vec::new();
        self.locks.clear();
        for (name, mut list) in claims {
            list.sort_by(|a, b| (a.0, rank(&a.1)).cmp(&(b.0, rank(&b.1))));
            // A node that says it both holds and waits, or waits twice, keeps its first claim.
            let mut seen = std::collections::BTreeSet::new();
            list.retain(|(_, node)| seen.insert(node.clone()));
            let mut list = list.into_iter();
            let Some((_, holder)) = list.next() else {
                continue;
            };
            let queue: VecDeque<Waiter> =
                list.map(|(stamp, node)| Waiter { node, stamp, last_asked_ms: now_ms }).collect();
            let queued: Vec<String> = queue.iter().filter(|w| w.stamp == 0).map(|w| w.node.clone()).collect();
            if !queued.is_empty() {
                conflicts.push(Conflict { name: name.clone(), kept: holder.clone(), queued });
            }
            self.locks.insert(name, Lock { holder: Holder { node: holder, deadline_ms }, queue });
        }
        conflicts
    }

    /// Every lock, by name: its holder, its queue and the lease left.
    pub fn view(&self, now_ms: u64) -> Vec<LockView> {
        self.locks
            .iter()
            .map(|(name, lock)| LockView {
                name: name.clone(),
                holder: lock.holder.node.clone(),
                waiting: lock.queue.iter().map(|w| w.node.clone()).collect(),
                lease_left_ms: lock.holder.deadline_ms.saturating_sub(now_ms),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locks::model::Waiting;

    const LEASE: u64 = 1000;

    /// Each lock as (name, holder, waiters).
    fn locks(table: &LockTable) -> Vec<(String, String, Vec<String>)> {
        table.view(0).into_iter().map(|v| (v.name, v.holder, v.waiting)).collect()
    }

    fn lock(name: &str, holder: &str, waiting: &[&str]) -> (String, String, Vec<String>) {
        (name.to_owned(), holder.to_owned(), waiting.iter().map(|w| (*w).to_owned()).collect())
    }

    fn holdings(held: &[&str], waiting: &[(&str, u64)]) -> Holdings {
        Holdings {
            held: held.iter().map(|h| (*h).to_owned()).collect(),
            waiting: waiting
                .iter()
                .map(|(name, lamport)| Waiting { name: (*name).to_owned(), lamport: *lamport })
                .collect(),
        }
    }

    #[test]
    fn grants_a_free_lock_and_queues_the_others_in_arrival_order() {
        let mut t = LockTable::new(LEASE);
        assert_eq!(t.acquire(0, "x", "a", 5), Grant::Granted { lease_ms: LEASE });
        // Arrival order, not stamp order: c's earlier stamp does not let it jump b.
        assert_eq!(t.acquire(1, "x", "b", 9), Grant::Queued { position: 1 });
        assert_eq!(t.acquire(2, "x", "c", 1), Grant::Queued { position: 2 });
        assert_eq!(t.acquire(3, "y", "c", 2), Grant::Granted { lease_ms: LEASE });
        assert_eq!(locks(&t), vec![lock("x", "a", &["b", "c"]), lock("y", "c", &[])]);
    }

    #[test]
    fn a_holder_asking_again_renews_its_lease() {
        let mut t = LockTable::new(LEASE);
        t.acquire(0, "x", "a", 1);
        assert_eq!(t.acquire(800, "x", "a", 1), Grant::Granted { lease_ms: LEASE });
        assert_eq!(t.view(800)[0].lease_left_ms, LEASE);
        assert!(t.expire(1500).is_empty(), "the renewal pushed the deadline to 1800");
        assert_eq!(t.expire(1800), vec![Expiry::LeaseLost { name: "x".into(), node: "a".into(), next: None }]);
    }

    #[test]
    fn a_waiter_asking_again_keeps_its_place_and_stays_in_line() {
        let mut t = LockTable::new(LEASE);
        t.acquire(0, "x", "a", 1);
        t.acquire(0, "x", "b", 2);
        t.acquire(0, "x", "c", 3);
        for now in [600, 1200, 1800] {
            t.acquire(now, "x", "a", 1);
            assert_eq!(t.acquire(now, "x", "c", 3), Grant::Queued { position: 2 });
        }
        // b fell silent at 0 and is gone; c asked at 1800 and stays.
        assert_eq!(t.expire(1800), vec![Expiry::WaiterGone { name: "x".into(), node: "b".into() }]);
        assert_eq!(locks(&t), vec![lock("x", "a", &["c"])]);
        assert_eq!(t.acquire(1900, "x", "c", 3), Grant::Queued { position: 1 });
    }

    #[test]
    fn a_waiter_with_a_new_request_goes_to_the_tail() {
        let mut t = LockTable::new(LEASE);
        t.acquire(0, "x", "a", 1);
        t.acquire(0, "x", "b", 2);
        t.acquire(0, "x", "c", 3);
        assert_eq!(t.acquire(10, "x", "b", 7), Grant::Queued { position: 2 });
        assert_eq!(locks(&t), vec![lock("x", "a", &["c", "b"])]);
        assert_eq!(
            t.acquire(20, "x", "a", 8),
            Grant::Granted { lease_ms: LEASE },
            "a holder renews whatever its stamp"
        );
    }

    #[test]
    fn a_release_hands_the_lock_to_the_head_of_the_queue_at_once() {
        let mut t = LockTable::new(LEASE);
        t.acquire(0, "x", "a", 1);
        t.acquire(0, "x", "b", 2);
        t.acquire(0, "x", "c", 3);
        assert_eq!(t.release(100, "x", "a"), Released::HandedOver { next: Some("b".into()) });
        assert_eq!(t.view(100)[0].lease_left_ms, LEASE, "the new holder has a fresh lease");
        assert_eq!(t.acquire(150, "x", "b", 2), Grant::Granted { lease_ms: LEASE });
        assert_eq!(t.release(200, "x", "b"), Released::HandedOver { next: Some("c".into()) });
        assert_eq!(t.release(300, "x", "c"), Released::HandedOver { next: None });
        assert!(locks(&t).is_empty());
        assert_eq!(t.acquire(400, "x", "a", 4), Grant::Granted { lease_ms: LEASE });
    }

    #[test]
    fn a_release_by_a_node_that_does_not_hold_the_lock_is_refused() {
        let mut t = LockTable::new(LEASE);
        assert_eq!(t.release(0, "x", "a"), Released::Refused, "nobody holds it");
        t.acquire(0, "x", "a", 1);
        t.acquire(0, "x", "b", 2);
        t.acquire(0, "x", "c", 3);
        assert_eq!(t.release(10, "x", "d"), Released::Refused);
        assert_eq!(locks(&t), vec![lock("x", "a", &["b", "c"])]);
        // A waiter's release only takes it out of the queue.
        assert_eq!(t.release(20, "x", "b"), Released::Withdrawn);
        assert_eq!(locks(&t), vec![lock("x", "a", &["c"])]);
    }

    #[test]
    fn an_expired_lease_hands_the_lock_to_the_next_waiter() {
        let mut t = LockTable::new(LEASE);
        t.acquire(0, "x", "a", 1);
        t.acquire(0, "x", "b", 2);
        t.acquire(0, "y", "a", 3);
        t.acquire(900, "x", "b", 2);
        assert!(t.expire(999).is_empty());
        let changes = t.expire(1000);
        assert_eq!(
            changes,
            vec![
                Expiry::LeaseLost { name: "x".into(), node: "a".into(), next: Some("b".into()) },
                Expiry::LeaseLost { name: "y".into(), node: "a".into(), next: None },
            ]
        );
        assert_eq!(locks(&t), vec![lock("x", "b", &[])]);
        assert_eq!(t.acquire(1000, "x", "a", 4), Grant::Queued { position: 1 }, "the old holder queues again");
    }

    #[test]
    fn a_silent_waiter_is_dropped_before_it_could_be_handed_the_lock() {
        let mut t = LockTable::new(LEASE);
        t.acquire(0, "x", "a", 1);
        t.acquire(0, "x", "b", 2);
        t.acquire(0, "x", "c", 3);
        t.acquire(500, "x", "c", 3);
        assert!(t.expire(1000).iter().any(|e| matches!(e, Expiry::LeaseLost { next: Some(n), .. } if n == "b")));
        let mut t = LockTable::new(LEASE);
        t.acquire(0, "x", "a", 1);
        t.acquire(0, "x", "b", 2);
        t.acquire(500, "x", "c", 3);
        t.acquire(600, "x", "a", 1);
        // At 1100 a still holds (renewed at 600) and b has been silent for more than a lease.
        assert_eq!(t.expire(1100), vec![Expiry::WaiterGone { name: "x".into(), node: "b".into() }]);
        assert_eq!(
            t.expire(1600),
            vec![
                Expiry::WaiterGone { name: "x".into(), node: "c".into() },
                Expiry::LeaseLost { name: "x".into(), node: "a".into(), next: None },
            ],
            "c fell silent too: the lock is free rather than handed to a dead node"
        );
    }

    #[test]
    fn a_rebuild_orders_waiters_by_stamp_then_node_whatever_the_order_of_the_holdings() {
        let given = vec![
            ("127.0.0.1:7010".to_owned(), holdings(&[], &[("x", 7)])),
            ("127.0.0.1:7001".to_owned(), holdings(&["x"], &[])),
            ("127.0.0.1:7009".to_owned(), holdings(&[], &[("x", 7), ("y", 3)])),
            ("127.0.0.1:7002".to_owned(), holdings(&[], &[("x", 4), ("y", 8)])),
        ];
        let expected = vec![
            // Stamp 7 twice: 7009 before 7010 as addresses, though not as text.
            lock("x", "127.0.0.1:7001", &["127.0.0.1:7002", "127.0.0.1:7009", "127.0.0.1:7010"]),
            // Nobody holds y: its earliest waiter does.
            lock("y", "127.0.0.1:7009", &["127.0.0.1:7002"]),
        ];
        let mut reversed = given.clone();
        reversed.reverse();
        for holdings in [given, reversed] {
            let mut t = LockTable::new(LEASE);
            t.acquire(0, "z", "127.0.0.1:7003", 1);
            assert!(t.rebuild(5000, holdings).is_empty());
            assert_eq!(locks(&t), expected, "z was nobody's any more and is gone");
        }
    }

    #[test]
    fn a_rebuild_gives_holders_a_fresh_lease_and_waiters_a_lease_to_ask_again() {
        let mut t = LockTable::new(LEASE);
        t.rebuild(5000, [("a".to_owned(), holdings(&["x"], &[])), ("b".to_owned(), holdings(&[], &[("x", 3)]))]);
        assert_eq!(t.view(5000)[0].lease_left_ms, LEASE);
        assert_eq!(t.acquire(5900, "x", "b", 3), Grant::Queued { position: 1 });
        assert_eq!(t.acquire(5900, "x", "a", 0), Grant::Granted { lease_ms: LEASE });
        assert!(t.expire(6000).is_empty());
    }

    #[test]
    fn conflicting_holders_in_a_rebuild_leave_the_lowest_node_holding_and_the_others_first_in_line() {
        let given = [
            ("127.0.0.1:7001".to_owned(), holdings(&[], &[("x", 1)])),
            ("127.0.0.1:7003".to_owned(), holdings(&["x"], &[])),
            ("127.0.0.1:7002".to_owned(), holdings(&["x"], &[])),
        ];
        let mut t = LockTable::new(LEASE);
        let conflicts = t.rebuild(0, given);
        assert_eq!(locks(&t), vec![lock("x", "127.0.0.1:7002", &["127.0.0.1:7003", "127.0.0.1:7001"])]);
        assert_eq!(
            conflicts,
            vec![Conflict { name: "x".into(), kept: "127.0.0.1:7002".into(), queued: vec!["127.0.0.1:7003".into()] }]
        );
        // The demoted holder asks with its own stamp, unknown to the rebuild, and keeps its place.
        assert_eq!(t.acquire(10, "x", "127.0.0.1:7003", 6), Grant::Queued { position: 1 });
        assert_eq!(t.acquire(20, "x", "127.0.0.1:7003", 6), Grant::Queued { position: 1 });
    }

    #[test]
    fn a_node_claiming_both_to_hold_and_to_wait_holds() {
        let mut t = LockTable::new(LEASE);
        let conflicts = t.rebuild(0, [("a".to_owned(), holdings(&["x"], &[("x", 4)]))]);
        assert!(conflicts.is_empty());
        assert_eq!(locks(&t), vec![lock("x", "a", &[])]);
    }
}
