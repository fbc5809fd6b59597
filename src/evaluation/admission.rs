//! Admission: which evaluations of this node run now, which wait, and
//! whether a new submission may come in. The pure core of the `Registry`:
//! no clock, no actor, driven by what the registry tells it.
//!
//! At most `max_running` evaluations run; the others wait and start in order
//! of submission (`submitted_at`, then id) as places free. A submission asks
//! for a place (`reserve`) before its body is read, and is refused when the
//! running, waiting and reserved together fill `max_running + max_queued`;
//! the ticket is redeemed when the evaluation is recorded (`enqueue`) or
//! given back when the submission fails (`cancel`). Since every place is
//! taken through one actor's mailbox, two submissions at the bound cannot
//! both come in. Adopted evaluations are enqueued without a ticket: they
//! were accepted by the cluster already, so they are never refused.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A place reserved for a submission being received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket(u64);

/// Why a submission was refused: every place is taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{running} evaluations running and {waiting} waiting or being received, the most this node takes")]
pub struct Full {
    pub running: usize,
    pub waiting: usize,
}

/// What the node shows of its admission.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    /// Evaluations whose supervisor runs.
    pub running: usize,
    /// Accepted (or adopted) evaluations waiting for a running place.
    pub queued: usize,
    /// Submissions holding a place while their body is received.
    pub receiving: usize,
}

/// The places of this node; `T` is what the registry needs to start an
/// evaluation once it is its turn.
#[derive(Debug)]
pub struct Admission<T> {
    max_running: usize,
    max_queued: usize,
    running: HashSet<Uuid>,
    /// In the order they start: oldest submission first.
    waiting: BTreeMap<(DateTime<Utc>, Uuid), T>,
    reserved: HashSet<Ticket>,
    next_ticket: u64,
}

impl<T> Admission<T> {
    pub fn new(max_running: usize, max_queued: usize) -> Self {
        Self {
            max_running,
            max_queued,
            running: HashSet::new(),
            waiting: BTreeMap::new(),
            reserved: HashSet::new(),
            next_ticket: 0,
        }
    }

    /// Takes a place for a new submission, or says why there is none.
    pub fn reserve(&mut self) -> Result<Ticket, Full> {
        let waiting = self.waiting.len() + self.reserved.len();
        if self.running.len() + waiting >= self.max_running + self.max_queued {
            return Err(Full { running: self.running.len(), waiting });
        }
        self.next_ticket += 1;
        let ticket = Ticket(self.next_ticket);
        self.reserved.insert(ticket);
        Ok(ticket)
    }

    /// Gives back the place of a submission that was not accepted.
    pub fn cancel(&mut self, ticket: Ticket) {
        self.reserved.remove(&ticket);
    }

    /// Queues an evaluation, redeeming its submission's ticket (none for an
    /// adopted one); false, and nothing queued, when it is already here.
    pub fn enqueue(&mut self, ticket: Option<Ticket>, id: Uuid, submitted_at: DateTime<Utc>, item: T) -> bool {
        if let Some(ticket) = ticket {
            self.reserved.remove(&ticket);
        }
        if self.holds(id) {
            return false;
        }
        self.waiting.insert((submitted_at, id), item);
        true
    }

    /// The oldest waiting evaluation, now counted as running, when a running
    /// place is free; call it until it answers `None`.
    pub fn next_to_start(&mut self) -> Option<T> {
        if self.running.len() >= self.max_running {
            return None;
        }
        let ((_, id), item) = self.waiting.pop_first()?;
        self.running.insert(id);
        Some(item)
    }

    /// Takes a waiting evaluation out of the queue, before it starts.
    pub fn withdraw(&mut self, id: Uuid) -> Option<T> {
        let key = *self.waiting.keys().find(|(_, w)| *w == id)?;
        self.waiting.remove(&key)
    }

    /// An evaluation's supervisor stopped: its running place is free.
    pub fn finished(&mut self, id: Uuid) {
        self.running.remove(&id);
    }

    /// Whether the evaluation runs or waits here.
    pub fn holds(&self, id: Uuid) -> bool {
        self.running.contains(&id) || self.waiting.keys().any(|(_, w)| *w == id)
    }

    pub fn figures(&self) -> Figures {
        Figures { running: self.running.len(), queued: self.waiting.len(), receiving: self.reserved.len() }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(second: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + second, 0).single().unwrap()
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn refuses_past_the_running_and_queued_places() {
        let mut a = Admission::<u32>::new(1, 1);
        let first = a.reserve().unwrap();
        let second = a.reserve().unwrap();
        assert_eq!(a.reserve(), Err(Full { running: 0, waiting: 2 }), "reservations count before the body is read");
        a.enqueue(Some(first), id(1), at(0), 1);
        assert_eq!(a.next_to_start(), Some(1));
        a.enqueue(Some(second), id(2), at(1), 2);
        assert_eq!(a.next_to_start(), None, "the only running place is taken");
        assert_eq!(a.reserve(), Err(Full { running: 1, waiting: 1 }));
        assert_eq!(a.figures(), Figures { running: 1, queued: 1, receiving: 0 });
    }

    #[test]
    fn a_cancelled_reservation_frees_its_place() {
        let mut a = Admission::<u32>::new(1, 0);
        let ticket = a.reserve().unwrap();
        assert!(a.reserve().is_err());
        a.cancel(ticket);
        assert!(a.reserve().is_ok());
    }

    #[test]
    fn waiting_evaluations_start_in_order_of_submission_as_places_free() {
        let mut a = Admission::<&str>::new(1, 3);
        let tickets: Vec<Ticket> = (0..4).map(|_| a.reserve().unwrap()).collect();
        // Recorded out of order: the later submission is enqueued first.
        a.enqueue(Some(tickets[0]), id(1), at(0), "a");
        assert_eq!(a.next_to_start(), Some("a"));
        a.enqueue(Some(tickets[2]), id(3), at(2), "c");
        a.enqueue(Some(tickets[1]), id(2), at(1), "b");
        a.enqueue(Some(tickets[3]), id(4), at(1), "b2");
        assert_eq!(a.next_to_start(), None);
        a.finished(id(1));
        assert_eq!(a.next_to_start(), Some("b"), "the oldest submission, then the lower id");
        assert_eq!(a.next_to_start(), None);
        a.finished(id(2));
        assert_eq!(a.next_to_start(), Some("b2"));
        a.finished(id(4));
        assert_eq!(a.next_to_start(), Some("c"));
        assert_eq!(a.figures(), Figures { running: 1, queued: 0, receiving: 0 });
    }

    #[test]
    fn adopted_evaluations_are_never_refused_but_wait_their_turn() {
        let mut a = Admission::<&str>::new(1, 0);
        let ticket = a.reserve().unwrap();
        a.enqueue(Some(ticket), id(1), at(5), "new");
        assert_eq!(a.next_to_start(), Some("new"));
        assert!(a.enqueue(None, id(2), at(0), "adopted"), "queued past max_queued");
        assert!(a.enqueue(None, id(3), at(1), "adopted later"));
        assert_eq!(a.next_to_start(), None);
        assert_eq!(a.figures(), Figures { running: 1, queued: 2, receiving: 0 });
        assert!(a.reserve().is_err(), "new submissions are refused while they wait");
        a.finished(id(1));
        assert_eq!(a.next_to_start(), Some("adopted"));
    }

    #[test]
    fn an_evaluation_is_held_once() {
        let mut a = Admission::<u32>::new(1, 2);
        assert!(a.enqueue(None, id(1), at(0), 1));
        assert!(!a.enqueue(None, id(1), at(0), 1), "already waiting");
        assert_eq!(a.next_to_start(), Some(1));
        assert!(a.holds(id(1)));
        let ticket = a.reserve().unwrap();
        assert!(!a.enqueue(Some(ticket), id(1), at(0), 1), "already running");
        assert_eq!(a.figures(), Figures { running: 1, queued: 0, receiving: 0 }, "the ticket is redeemed all the same");
        a.finished(id(1));
        assert!(!a.holds(id(1)));
    }
}
