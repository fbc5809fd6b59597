//! The `Store`'s part in fencing (`evaluation::fence`): what this node has
//! promised of each evaluation's term, decided and written in one
//! transaction so that two claims never both see the old promise.

use actix::prelude::*;
use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};
use crate::evaluation::fence::{self, Known, TermAnswer, TermClaim};

/// Promises `claim` if the fence rule allows, and answers what this node
/// knows after it.
#[derive(Message)]
#[rtype(result = "Result<TermAnswer, StoreError>")]
pub struct ClaimTerm(pub TermClaim);

impl Store {
    fn claim_term(&mut self, claim: &TermClaim) -> Result<TermAnswer, StoreError> {
        let tx = self.conn.transaction()?;
        let key = claim.evaluation.to_string();
        let promised: Option<Known> = tx
            .query_row("SELECT epoch, supervisor, closed FROM terms WHERE evaluation = ?1", [&key], |r| {
                Ok(Known { epoch: r.get(0)?, supervisor: r.get(1)?, closed: r.get(2)? })
            })
            .optional()?;
        // A copy held here counts as a promise of its term, closed once finished.
        let copy: Option<Known> = tx
            .query_row("SELECT epoch, supervisor, status FROM evaluations WHERE id = ?1", [&key], |r| {
                let status: String = r.get(2)?;
                Ok(Known {
                    epoch: r.get(0)?,
                    supervisor: r.get(1)?,
                    closed: matches!(status.as_str(), "done" | "failed" | "cancelled"),
                })
            })
            .optional()?;
        let known = [promised, copy]
            .into_iter()
            .flatten()
            .max_by(|a, b| (a.epoch, &a.supervisor, a.closed).cmp(&(b.epoch, &b.supervisor, b.closed)));
        if !fence::grant(known.as_ref(), claim) {
            return Ok(TermAnswer { granted: false, known });
        }
        let now = fence::promised(claim);
        tx.execute(
            "INSERT INTO terms (evaluation, epoch, supervisor, closed) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(evaluation) DO UPDATE SET epoch = excluded.epoch, supervisor = excluded.supervisor,
             closed = excluded.closed",
            params![key, now.epoch, now.supervisor, now.closed],
        )?;
        tx.commit()?;
        Ok(TermAnswer { granted: true, known: Some(now) })
    }
}

impl Handler<ClaimTerm> for Store {
    type Result = Result<TermAnswer, StoreError>;

    fn handle(&mut self, ClaimTerm(claim): ClaimTerm, _: &mut Context<Self>) -> Self::Result {
        self.claim_term(&claim)
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::evaluation::fence::Act;

    fn claim(id: Uuid, epoch: u64, supervisor: &str, act: Act) -> ClaimTerm {
        ClaimTerm(TermClaim { evaluation: id, epoch, supervisor: supervisor.into(), act })
    }

    #[actix::test]
    async fn a_promise_is_kept_across_claims_and_the_first_of_two_rivals_wins() {
        let store = Store::in_memory().unwrap().start();
        let id = Uuid::new_v4();
        let first = store.send(claim(id, 1, "b", Act::Adopt)).await.unwrap().unwrap();
        assert!(first.granted);
        let rival = store.send(claim(id, 0, "a", Act::Close)).await.unwrap().unwrap();
        assert_eq!(
            rival,
            TermAnswer { granted: false, known: Some(Known { epoch: 1, supervisor: "b".into(), closed: false }) }
        );
        let closed = store.send(claim(id, 1, "b", Act::Close)).await.unwrap().unwrap();
        assert!(closed.granted);
        let late = store.send(claim(id, 2, "c", Act::Adopt)).await.unwrap().unwrap();
        assert!(!late.granted, "nothing is adopted after a close");
        let other = Uuid::new_v4();
        assert!(store.send(claim(other, 0, "a", Act::Close)).await.unwrap().unwrap().granted, "one row per evaluation");
    }
}
