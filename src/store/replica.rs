//! The `Store`'s replication messages: a replica applies a supervisor's
//! journal (`ApplyReplica`), and any node answers what it holds of an
//! evaluation (`GetSummary`) and all of it (`GetSnapshot`), and records an
//! adoption (`SetSupervisor`). Each of them commits in one transaction, so a
//! crash leaves a replica at a journal position it can report truthfully.

use actix::prelude::*;
use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

use super::store::{
    read_record, write_collected, write_event, write_project, write_record, write_result, RECORD_COLUMNS,
};
use super::{EvaluationRecord, Store, StoreError};
use crate::replication::model::{ReplicaOp, ReplicaSummary, Replicate, ReplicateAnswer};

type Reply<T> = Result<T, StoreError>;

/// Applies the entries of a journal this replica does not hold yet.
#[derive(Message)]
#[rtype(result = "Reply<ReplicateAnswer>")]
pub struct ApplyReplica(pub Replicate);

/// What this node holds of an evaluation; `supervising` is left false, the
/// registry knows better.
#[derive(Message)]
#[rtype(result = "Reply<Option<ReplicaSummary>>")]
pub struct GetSummary(pub Uuid);

/// Everything this node holds of an evaluation, as a journal that rebuilds it.
#[derive(Message)]
#[rtype(result = "Reply<Option<Vec<ReplicaOp>>>")]
pub struct GetSnapshot(pub Uuid);

/// This node adopts the evaluation in term `epoch`.
#[derive(Message)]
#[rtype(result = "Reply<EvaluationRecord>")]
pub struct SetSupervisor {
    pub id: Uuid,
    pub supervisor: String,
    pub epoch: u64,
}

/// Whether a write of term (`epoch`, `supervisor`) must give way to what the
/// replica knows: a later term, or the same term under a higher node. Two
/// supervisors in one term means the lock failed somewhere; the order on
/// names still settles it the same way on every replica.
fn outranked(local: &EvaluationRecord, epoch: u64, supervisor: &str) -> bool {
    (local.epoch, local.supervisor.as_str()) > (epoch, supervisor)
}

fn load(conn: &Connection, id: Uuid) -> Reply<Option<EvaluationRecord>> {
    conn.query_row(&format!("SELECT {RECORD_COLUMNS} FROM evaluations WHERE id = ?1"), [id.to_string()], read_record)
        .optional()?
        .transpose()
}

/// A replica's copy of a record: overwritten by each newer one.
const UPSERT_RECORD: &str = "ON CONFLICT(id) DO UPDATE SET status = excluded.status, supervisor = excluded.supervisor,
     input_ready = excluded.input_ready, started_at = excluded.started_at,
     finished_at = excluded.finished_at, error = excluded.error, epoch = excluded.epoch";

fn apply_op(conn: &Connection, id: Uuid, op: &ReplicaOp) -> Reply<()> {
    match op {
        ReplicaOp::Record { record } => write_record(conn, record, UPSERT_RECORD),
        ReplicaOp::Projects { projects } => {
            for p in projects {
                write_project(
                    conn,
                    id,
                    p,
                    "ON CONFLICT(evaluation, name) DO UPDATE SET blob = COALESCE(projects.blob, excluded.blob)",
                )?;
            }
            Ok(())
        }
        ReplicaOp::Collected { project, modules, error } => {
            write_collected(conn, id, project, modules, error.as_deref())
        }
        ReplicaOp::Result { project, module, result } => write_result(conn, id, project, module, result).map(|_| ()),
        ReplicaOp::Event { event } => write_event(conn, id, event),
    }
}

/// A constraint an operation breaks is the journal's fault, not the store's;
/// the transaction is dropped, so nothing of the journal stays.
fn inconsistent(e: StoreError) -> StoreError {
    match e {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, detail))
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Inconsistent(detail.unwrap_or_else(|| f.to_string()).to_lowercase())
        }
        other => other,
    }
}

impl Store {
    fn apply_replica(&mut self, m: &Replicate) -> Reply<ReplicateAnswer> {
        let tx = self.conn.transaction()?;
        let key = m.evaluation.to_string();
        // A term promised here (`evaluation::fence`) outranks like a copy's.
        let promised: Option<(u64, String)> = tx
            .query_row("SELECT epoch, supervisor FROM terms WHERE evaluation = ?1", [&key], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        if let Some((epoch, supervisor)) = promised.filter(|(e, s)| (*e, s.as_str()) > (m.epoch, m.supervisor.as_str()))
        {
            return Ok(ReplicateAnswer::Superseded { epoch, supervisor });
        }
        if let Some(local) = load(&tx, m.evaluation)? {
            if outranked(&local, m.epoch, &m.supervisor) {
                return Ok(ReplicateAnswer::Superseded { epoch: local.epoch, supervisor: local.supervisor });
            }
            // A later term's journal from its start replaces the copy: what
            // an earlier supervisor wrote after it was adopted over (cut off
            // from the majority, say) is not the evaluation's.
            if (m.epoch, m.supervisor.as_str()) > (local.epoch, local.supervisor.as_str()) && m.from == 0 {
                tx.execute("DELETE FROM evaluations WHERE id = ?1", [&key])?;
            }
        }
        let position: Option<(String, u64)> = tx
            .query_row("SELECT journal, seq FROM replicas WHERE evaluation = ?1", [&key], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let have = match position {
            Some((journal, seq)) if journal == m.journal.to_string() => seq,
            _ => 0,
        };
        if m.from > have {
            return Ok(ReplicateAnswer::Applied { have });
        }
        let skip = usize::try_from(have - m.from).unwrap_or(usize::MAX);
        for op in m.ops.iter().skip(skip) {
            apply_op(&tx, m.evaluation, op).map_err(inconsistent)?;
        }
        let have = have.max(m.from + m.ops.len() as u64);
        // The row needs the evaluation: an empty journal that starts nowhere
        // leaves no position behind.
        if load(&tx, m.evaluation)?.is_some() {
            tx.execute(
                "INSERT INTO replicas (evaluation, journal, seq) VALUES (?1, ?2, ?3)
                 ON CONFLICT(evaluation) DO UPDATE SET journal = excluded.journal, seq = excluded.seq",
                params![key, m.journal.to_string(), have],
            )?;
        }
        tx.commit()?;
        Ok(ReplicateAnswer::Applied { have })
    }

    fn summary(&self, id: Uuid) -> Reply<Option<ReplicaSummary>> {
        let Some(record) = load(&self.conn, id)? else {
            return Ok(None);
        };
        let finished: u64 = self.conn.query_row(
            "SELECT COUNT(*) FROM modules WHERE evaluation = ?1 AND status IS NOT NULL",
            [id.to_string()],
            |r| r.get(0),
        )?;
        Ok(Some(ReplicaSummary {
            epoch: record.epoch,
            supervisor: record.supervisor,
            status: record.status,
            finished,
            supervising: false,
        }))
    }

    fn snapshot(&self, id: Uuid) -> Reply<Option<Vec<ReplicaOp>>> {
        let Some(view) = self.view(id, true)? else {
            return Ok(None);
        };
        let mut ops =
            vec![ReplicaOp::Record { record: view.record }, ReplicaOp::Projects { projects: view.projects.clone() }];
        for project in view.projects.iter().filter(|p| p.collected) {
            let modules = view
                .modules
                .iter()
                .filter(|m| m.project == project.name)
                .map(|m| (m.module.clone(), m.tests))
                .collect();
            ops.push(ReplicaOp::Collected { project: project.name.clone(), modules, error: project.error.clone() });
        }
        for m in view.modules {
            if let Some(result) = m.result {
                ops.push(ReplicaOp::Result { project: m.project, module: m.module, result });
            }
        }
        let events = self.events(id)?.unwrap_or_default();
        ops.extend(events.into_iter().map(|event| ReplicaOp::Event { event }));
        Ok(Some(ops))
    }

    fn set_supervisor(&mut self, m: &SetSupervisor) -> Reply<EvaluationRecord> {
        let key = m.id.to_string();
        self.conn.execute(
            "UPDATE evaluations SET supervisor = ?2, epoch = ?3 WHERE id = ?1",
            params![key, m.supervisor, m.epoch],
        )?;
        load(&self.conn, m.id)?.ok_or_else(|| StoreError::Corrupt(format!("evaluation {} vanished", m.id)))
    }
}

impl Handler<ApplyReplica> for Store {
    type Result = Reply<ReplicateAnswer>;

    fn handle(&mut self, m: ApplyReplica, _: &mut Context<Self>) -> Self::Result {
        self.apply_replica(&m.0)
    }
}

impl Handler<GetSummary> for Store {
    type Result = Reply<Option<ReplicaSummary>>;

    fn handle(&mut self, m: GetSummary, _: &mut Context<Self>) -> Self::Result {
        self.summary(m.0)
    }
}

impl Handler<GetSnapshot> for Store {
    type Result = Reply<Option<Vec<ReplicaOp>>>;

    fn handle(&mut self, m: GetSnapshot, _: &mut Context<Self>) -> Self::Result {
        self.snapshot(m.0)
    }
}

impl Handler<SetSupervisor> for Store {
    type Result = Reply<EvaluationRecord>;

    fn handle(&mut self, m: SetSupervisor, _: &mut Context<Self>) -> Self::Result {
        self.set_supervisor(&m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluation::fence::{Act, TermClaim};
    use crate::store::{ClaimTerm, GetEvaluation};
    use crate::testing::fixtures::{result, snapshot};

    fn journal(ops: Vec<ReplicaOp>) -> Replicate {
        Replicate {
            evaluation: Uuid::from_u128(7),
            journal: Uuid::from_u128(1),
            epoch: 0,
            supervisor: "n1".into(),
            from: 0,
            ops,
        }
    }

    fn term(epoch: u64, supervisor: &str, journal: u128, from: u64, ops: Vec<ReplicaOp>) -> ApplyReplica {
        let id = Uuid::from_u128(7);
        ApplyReplica(Replicate {
            evaluation: id,
            journal: Uuid::from_u128(journal),
            epoch,
            supervisor: supervisor.into(),
            from,
            ops,
        })
    }

    async fn results(store: &Addr<Store>) -> Vec<String> {
        let view = store.send(GetEvaluation { id: Uuid::from_u128(7), with_tests: false }).await.unwrap().unwrap();
        view.unwrap().modules.into_iter().filter(|m| m.result.is_some()).map(|m| m.module).collect()
    }

    #[actix::test]
    async fn a_later_terms_journal_replaces_what_an_earlier_supervisor_wrote_after_it() {
        let store = Store::in_memory().unwrap().start();
        let id = Uuid::from_u128(7);
        let mut cut_off = snapshot(id, 0, "n1");
        cut_off.extend([result(0), result(1)]);
        store.send(term(0, "n1", 1, 0, cut_off)).await.unwrap().unwrap();
        assert_eq!(results(&store).await, ["tests/test_0.py", "tests/test_1.py"]);

        // The adopter's copy had only module 0 when it adopted.
        let mut adopted = snapshot(id, 1, "n2");
        adopted.push(result(0));
        assert_eq!(
            store.send(term(1, "n2", 2, 0, adopted.clone())).await.unwrap().unwrap(),
            ReplicateAnswer::Applied { have: 4 }
        );
        assert_eq!(results(&store).await, ["tests/test_0.py"], "module 1 came from a term adopted over");
        // Sent again, as a lost answer makes it: nothing changes.
        store.send(term(1, "n2", 2, 0, adopted)).await.unwrap().unwrap();
        store.send(term(1, "n2", 2, 4, vec![result(2)])).await.unwrap().unwrap();
        assert_eq!(results(&store).await, ["tests/test_0.py", "tests/test_2.py"]);
        let late = store.send(term(0, "n1", 1, 5, vec![result(3)])).await.unwrap().unwrap();
        assert_eq!(late, ReplicateAnswer::Superseded { epoch: 1, supervisor: "n2".into() });
    }

    #[actix::test]
    async fn a_promised_term_refuses_an_earlier_supervisors_writes_before_any_copy_is_here() {
        let store = Store::in_memory().unwrap().start();
        let id = Uuid::from_u128(7);
        let promise = TermClaim { evaluation: id, epoch: 1, supervisor: "n2".into(), act: Act::Adopt };
        assert!(store.send(ClaimTerm(promise)).await.unwrap().unwrap().granted);
        let stale = store.send(term(0, "n1", 1, 0, snapshot(id, 0, "n1"))).await.unwrap().unwrap();
        assert_eq!(stale, ReplicateAnswer::Superseded { epoch: 1, supervisor: "n2".into() });
        let view = store.send(GetEvaluation { id, with_tests: false }).await.unwrap().unwrap();
        assert!(view.is_none(), "nothing of the stale journal is kept");
    }

    /// Found by `tests/fuzz`: the foreign key failure came back as a
    /// database error, and the replica answered 500.
    #[actix::test]
    async fn a_journal_about_a_project_it_never_sent_is_refused_whole() {
        let store = Store::in_memory().unwrap().start();
        let collected = ReplicaOp::Collected { project: "p".into(), modules: vec![("t.py".into(), 1)], error: None };
        let answer = store.send(ApplyReplica(journal(vec![collected]))).await.unwrap();
        match answer {
            Err(StoreError::Inconsistent(reason)) => assert_eq!(reason, "foreign key constraint failed"),
            other => panic!("expected Inconsistent, got {other:?}"),
        }
        let view = store.send(GetEvaluation { id: Uuid::from_u128(7), with_tests: false }).await.unwrap().unwrap();
        assert!(view.is_none());
    }
}
