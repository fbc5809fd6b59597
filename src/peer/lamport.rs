//! The node's Lamport clock (Lamport 1978, "Time, clocks, and the ordering
//! of events"): one counter per node, shared by its actors and its HTTP
//! threads. Every message between nodes carries the sender's time in
//! `x-evalmesh-lamport`; a node that receives it moves past it. Events logged
//! with these times are in an order that agrees with causality: if one event
//! could have influenced another, it has the smaller time.
//!
//! Times stop at [`LamportClock::MAX`], the largest integer SQLite stores:
//! a peer that sends a larger one is refused (`peer::lamport_of` does not
//! read it), so that no message can wrap the clock back to zero or stamp
//! events the store cannot hold. Counting one a message, a cluster never
//! gets there honestly.

use std::sync::atomic::{AtomicU64, Ordering};

/// The header that carries the sender's Lamport time.
pub const LAMPORT_HEADER: &str = "x-evalmesh-lamport";

#[derive(Debug, Default)]
pub struct LamportClock(AtomicU64);

impl LamportClock {
    /// The latest time a clock reaches and a message may carry: `i64::MAX`,
    /// what the store can hold.
    pub const MAX: u64 = i64::MAX as u64;

    /// The time of the last event, without making a new one.
    pub fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// A local event, or a send: the clock advances by one.
    pub fn tick(&self) -> u64 {
        self.advance(|current| current)
    }

    /// A message stamped `remote` arrives: the clock moves past both its own
    /// time and the sender's.
    pub fn receive(&self, remote: u64) -> u64 {
        self.advance(|current| current.max(remote))
    }

    /// Moves the clock one past `from(current)`, stopping at `MAX`.
    fn advance(&self, from: impl Fn(u64) -> u64) -> u64 {
        let mut current = self.0.load(Ordering::SeqCst);
        loop {
            let next = from(current).saturating_add(1).min(Self::MAX);
            match self.0.compare_exchange_weak(current, next, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return next,
                Err(seen) => current = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_events_and_sends_advance_by_one() {
        let c = LamportClock::default();
        assert_eq!(c.tick(), 1);
        assert_eq!(c.tick(), 2);
        assert_eq!(c.now(), 2);
    }

    #[test]
    fn a_receive_moves_past_the_sender() {
        let c = LamportClock::default();
        c.tick();
        assert_eq!(c.receive(10), 11, "a later sender pulls the clock forward");
        assert_eq!(c.receive(3), 12, "an earlier sender still advances it by one");
    }

    #[test]
    fn a_message_is_after_its_send_on_both_sides() {
        let (a, b) = (LamportClock::default(), LamportClock::default());
        b.tick();
        b.tick();
        let sent = a.tick();
        let received = b.receive(sent);
        assert!(received > sent);
        let reply = b.tick();
        assert!(a.receive(reply) > reply);
    }

    #[test]
    fn a_time_past_the_store_stops_the_clock_at_its_limit_instead_of_wrapping() {
        let c = LamportClock::default();
        assert_eq!(c.receive(u64::MAX), LamportClock::MAX);
        assert_eq!(c.tick(), LamportClock::MAX, "a tick at the limit stays there");
        assert_eq!(c.receive(LamportClock::MAX - 1), LamportClock::MAX);
        assert_eq!(c.now(), LamportClock::MAX);
    }

    #[test]
    fn concurrent_receives_never_go_back() {
        let c = std::sync::Arc::new(LamportClock::default());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || (0..1000).map(|i| c.receive(t * 1000 + i)).collect::<Vec<_>>())
            })
            .collect();
        for t in threads {
            let seen = t.join().unwrap();
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "each thread sees its own times rise");
        }
        assert!(c.now() >= 4000);
    }
}
