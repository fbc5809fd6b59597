//! The replay window: a signed request is taken only if its timestamp is
//! within `window_ms` of this node's clock, either way, and if its signature
//! has not been taken before.
//!
//! To know that, `ReplayGuard` remembers the signatures it took, ordered by
//! timestamp, and keeps one invariant: every signature it took whose
//! timestamp is at or after `floor_ms` is remembered. So a request at or
//! after the floor is a replay exactly when its signature is remembered, and
//! one before the floor is refused, since it cannot be told from a replay.
//!
//! The memory is bounded (`capacity` signatures) because every request a
//! peer signs lands in it: without a bound a burst of genuine traffic, or
//! a window set long, would grow it without limit. At the bound the oldest
//! signature is forgotten and the floor moves past it: the window shrinks,
//! for a while, to what the memory holds, and a replay is still never
//! taken; what is lost is only genuine requests signed before the floor,
//! which their sender signs again on its next attempt. Signatures that
//! leave the window are forgotten the same way, which also keeps the
//! invariant when the wall clock jumps. The floor starts at the moment the
//! guard is made, the node's start: a request signed before it could have
//! been taken by the node's previous run, whose memory is gone.

use std::collections::BTreeSet;

use super::AuthError;

#[derive(Debug)]
pub struct ReplayGuard {
    window_ms: u64,
    capacity: usize,
    /// (timestamp, signature) of every request taken at or after the floor.
    seen: BTreeSet<(u64, [u8; 32])>,
    /// Requests signed before this are refused: the guard no longer knows
    /// whether it took them.
    floor_ms: u64,
}

impl ReplayGuard {
    /// A guard that takes nothing signed before `started_ms`.
    pub fn new(window_ms: u64, capacity: usize, started_ms: u64) -> Self {
        Self { window_ms, capacity: capacity.max(1), seen: BTreeSet::new(), floor_ms: started_ms }
    }

    /// Whether a request signed at `timestamp_ms` may still be taken at
    /// `now_ms`. Cheap, and changes nothing: a caller checks it before it
    /// reads a body and verifies a signature.
    pub fn check(&self, timestamp_ms: u64, now_ms: u64) -> Result<(), AuthError> {
        let window_ms = self.window_ms;
        if timestamp_ms.saturating_add(window_ms) < now_ms {
            return Err(AuthError::Stale { age_ms: now_ms - timestamp_ms, window_ms });
        }
        if timestamp_ms > now_ms.saturating_add(window_ms) {
            return Err(AuthError::Future { ahead_ms: timestamp_ms - now_ms, window_ms });
        }
        if timestamp_ms < self.floor_ms {
            return Err(AuthError::Forgotten);
        }
        Ok(())
    }

    /// Takes a request whose signature has been verified: refused if it is
    /// outside the window or a replay, remembered otherwise. Only verified
    /// signatures may come here, so that forged ones cannot crowd out the
    /// memory.
    pub fn admit(&mut self, timestamp_ms: u64, signature: [u8; 32], now_ms: u64) -> Result<(), AuthError> {
        self.forget_before(now_ms.saturating_sub(self.window_ms));
        self.check(timestamp_ms, now_ms)?;
        if !self.seen.insert((timestamp_ms, signature)) {
            return Err(AuthError::Replayed);
        }
        while self.seen.len() > self.capacity {
            let (oldest, _) = self.seen.pop_first().expect("a set above its capacity is not empty");
            self.floor_ms = self.floor_ms.max(oldest.saturating_add(1));
        }
        Ok(())
    }

    /// How many signatures are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Forgets the signatures made before `cutoff_ms` and raises the floor
    /// to it.
    fn forget_before(&mut self, cutoff_ms: u64) {
        if cutoff_ms <= self.floor_ms {
            return;
        }
        self.floor_ms = cutoff_ms;
        self.seen = self.seen.split_off(&(cutoff_ms, [0; 32]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: u64 = 30_000;
    const START: u64 = 1_000_000;

    fn sig(n: u8) -> [u8; 32] {
        [n; 32]
    }

    fn guard(capacity: usize) -> ReplayGuard {
        ReplayGuard::new(WINDOW, capacity, START)
    }

    #[test]
    fn a_fresh_signature_is_taken_once() {
        let mut g = guard(100);
        assert_eq!(g.admit(START + 10, sig(1), START + 20), Ok(()));
        assert_eq!(g.admit(START + 10, sig(1), START + 25), Err(AuthError::Replayed));
        assert_eq!(g.admit(START + 10, sig(2), START + 25), Ok(()), "another signature of the same instant");
        assert_eq!(g.len(), 2);
    }

    #[test]
    fn a_replay_stays_refused_until_and_after_the_window_closes() {
        let mut g = guard(100);
        let signed = START + 5_000;
        g.admit(signed, sig(1), signed).unwrap();
        assert_eq!(g.admit(signed, sig(1), signed + WINDOW), Err(AuthError::Replayed));
        assert!(
            matches!(g.admit(signed, sig(1), signed + WINDOW + 1), Err(AuthError::Stale { age_ms, .. }) if age_ms == WINDOW + 1)
        );
        assert!(g.is_empty(), "signatures out of the window are forgotten");
    }

    #[test]
    fn stale_and_future_dated_timestamps_are_refused() {
        let g = guard(100);
        let now = START + 100_000;
        assert_eq!(g.check(now - WINDOW, now), Ok(()));
        assert_eq!(g.check(now + WINDOW, now), Ok(()));
        assert_eq!(g.check(now - WINDOW - 1, now), Err(AuthError::Stale { age_ms: WINDOW + 1, window_ms: WINDOW }));
        assert_eq!(g.check(now + WINDOW + 1, now), Err(AuthError::Future { ahead_ms: WINDOW + 1, window_ms: WINDOW }));
        assert!(matches!(g.check(0, now), Err(AuthError::Stale { .. })));
        assert!(matches!(g.check(u64::MAX, now), Err(AuthError::Future { .. })));
    }

    #[test]
    fn nothing_signed_before_the_start_is_taken() {
        let mut g = guard(100);
        assert_eq!(
            g.check(START - 1, START + 10),
            Err(AuthError::Forgotten),
            "within the window, yet before the start"
        );
        assert_eq!(g.admit(START - 1, sig(1), START + 10), Err(AuthError::Forgotten));
        assert_eq!(g.admit(START, sig(1), START + 10), Ok(()));
    }

    #[test]
    fn at_the_bound_the_oldest_is_forgotten_and_nothing_before_it_is_taken() {
        let mut g = guard(3);
        let now = START + 1_000;
        for (i, n) in [(10, 1), (20, 2), (30, 3)] {
            g.admit(START + i, sig(n), now).unwrap();
        }
        g.admit(START + 40, sig(4), now).unwrap();
        assert_eq!(g.len(), 3);
        // The oldest (START + 10) was forgotten: its replay is refused all
        // the same, as is anything signed at or before it.
        assert_eq!(g.admit(START + 10, sig(1), now), Err(AuthError::Forgotten));
        assert_eq!(g.admit(START + 5, sig(9), now), Err(AuthError::Forgotten));
        assert_eq!(g.admit(START + 20, sig(2), now), Err(AuthError::Replayed));
        assert_eq!(g.admit(START + 11, sig(5), now), Ok(()), "a new signature after the forgotten one");
        assert_eq!(g.len(), 3);
    }

    #[test]
    fn a_clock_that_jumps_back_does_not_reopen_forgotten_signatures() {
        let mut g = guard(100);
        g.admit(START + 10, sig(1), START + 10).unwrap();
        // An hour ahead, then back: the signature left the window and was
        // forgotten, and must not be taken again once the clock is back.
        let later = START + 3_600_000;
        g.admit(later, sig(2), later).unwrap();
        assert_eq!(g.admit(START + 10, sig(1), START + 20), Err(AuthError::Forgotten));
    }
}
