//! The `Store` actor: the node's SQLite database (WAL), the one place where
//! evaluations and finished module results live. A child of the node root,
//! on an arbiter thread of its own so that disk waits block no other actor.
//!
//! Takes the write messages of the evaluation supervisors and the queries of
//! the API and the registry. Every write is committed before its reply, so a
//! supervisor that has its answer knows the row survives a crash.

use std::collections::BTreeMap;
use std::path::Path;

use actix::prelude::*;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use uuid::Uuid;

use super::model::{EvaluationRecord, EvaluationSummary, EvaluationView, ModuleRow, ProjectRow, Source};
use super::StoreError;
use super::{durations, schema};
use crate::evaluation::model::{
    EvaluationStatus, Event, EventKind, ModuleResult, ModuleStatus, Outcome, Tally, TestCase,
};

type Reply<T> = Result<T, StoreError>;

/// Records a new evaluation.
#[derive(Message)]
#[rtype(result = "Reply<()>")]
pub struct CreateEvaluation(pub EvaluationRecord);

/// The workspace now holds every project.
#[derive(Message)]
#[rtype(result = "Reply<()>")]
pub struct MarkInputReady(pub Uuid);

/// Moves an evaluation to `status`; stamps `started_at` on the first
/// `Running` and `finished_at` on `Done` or `Failed`.
#[derive(Message)]
#[rtype(result = "Reply<()>")]
pub struct SetStatus {
    pub id: Uuid,
    pub status: EvaluationStatus,
    pub at: DateTime<Utc>,
    pub error: Option<String>,
}

/// Records the projects found in the workspace; known ones are kept as they are.
#[derive(Message)]
#[rtype(result = "Reply<()>")]
pub struct SaveProjects {
    pub id: Uuid,
    pub projects: Vec<ProjectRow>,
}

/// Records the blob a project is packed in.
#[derive(Message)]
#[rtype(result = "Reply<()>")]
pub struct SetBlob {
    pub id: Uuid,
    pub project: String,
    pub blob: String,
}

/// Records a project's modules (path and number of tests), or why it has none.
#[derive(Message)]
#[rtype(result = "Reply<()>")]
pub struct SaveCollected {
    pub id: Uuid,
    pub project: String,
    pub modules: Vec<(String, u32)>,
    pub error: Option<String>,
}

/// Records a module's result once; answers false when it already had one.
#[derive(Message)]
#[rtype(result = "Reply<bool>")]
pub struct SaveResult {
    pub id: Uuid,
    pub project: String,
    pub module: String,
    pub result: ModuleResult,
}

#[derive(Message)]
#[rtype(result = "Reply<Option<EvaluationView>>")]
pub struct GetEvaluation {
    pub id: Uuid,
    /// Load every test case too.
    pub with_tests: bool,
}

#[derive(Message)]
#[rtype(result = "Reply<Vec<EvaluationSummary>>")]
pub struct ListEvaluations;

/// Appends an event to an evaluation's log.
#[derive(Message)]
#[rtype(result = "Reply<()>")]
pub struct RecordEvent {
    pub id: Uuid,
    pub event: Event,
}

/// An evaluation's log in causal order; `None` when the evaluation is not here.
#[derive(Message)]
#[rtype(result = "Reply<Option<Vec<Event>>>")]
pub struct GetEvents(pub Uuid);

/// Evaluations that are queued or running: the work a restarted node resumes.
#[derive(Message)]
#[rtype(result = "Reply<Vec<EvaluationRecord>>")]
pub struct ListUnfinished;

/// Removes a finished evaluation and all that is stored of it (its
/// duration records stay: they are history of content, not of it); answers
/// whether it was here. One that is not finished is left.
#[derive(Message)]
#[rtype(result = "Reply<bool>")]
pub struct RemoveFinished(pub Uuid);

/// The finished evaluations that finished before a time.
#[derive(Message)]
#[rtype(result = "Reply<Vec<Uuid>>")]
pub struct FinishedBefore(pub DateTime<Utc>);

#[derive(Message)]
#[rtype(result = "Reply<BTreeMap<String, u64>>")]
pub struct CountByStatus;

pub struct Store {
    /// The only connection: one writer keeps every commit in message order.
    pub(super) conn: Connection,
}

impl Store {
    /// Opens (creating) the database at `path` and applies the schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Folder { path: dir.to_owned(), source })?;
        }
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::apply(&mut conn)?;
        Ok(Self { conn })
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> Result<Self, StoreError> {
        let mut conn = Connection::open_in_memory()?;
        schema::apply(&mut conn)?;
        Ok(Self { conn })
    }

    pub(super) fn create(&mut self, r: &EvaluationRecord) -> Reply<()> {
        write_record(&self.conn, r, "")
    }

    pub(super) fn set_status(&mut self, m: &SetStatus) -> Reply<()> {
        let at = stamp(m.at);
        let id = m.id.to_string();
        match m.status {
            EvaluationStatus::Running => self.conn.execute(
                "UPDATE evaluations SET status = ?2, started_at = COALESCE(started_at, ?3) WHERE id = ?1",
                params![id, m.status.as_str(), at],
            )?,
            EvaluationStatus::Done | EvaluationStatus::Failed | EvaluationStatus::Cancelled => self.conn.execute(
                "UPDATE evaluations SET status = ?2, finished_at = ?3, error = ?4,
                 started_at = COALESCE(started_at, ?3) WHERE id = ?1",
                params![id, m.status.as_str(), at, m.error],
            )?,
            EvaluationStatus::Queued => {
                self.conn.execute("UPDATE evaluations SET status = ?2 WHERE id = ?1", params![id, m.status.as_str()])?
            }
        };
        Ok(())
    }

    pub(super) fn save_projects(&mut self, m: &SaveProjects) -> Reply<()> {
        let tx = self.conn.transaction()?;
        for p in &m.projects {
            write_project(&tx, m.id, p, "ON CONFLICT(evaluation, name) DO NOTHING")?;
        }
        tx.commit()?;
        Ok(())
    }

    fn save_collected(&mut self, m: &SaveCollected) -> Reply<()> {
        let tx = self.conn.transaction()?;
        write_collected(&tx, m.id, &m.project, &m.modules, m.error.as_deref())?;
        tx.commit()?;
        Ok(())
    }

    fn save_result(&mut self, m: &SaveResult) -> Reply<bool> {
        let tx = self.conn.transaction()?;
        let saved = write_result(&tx, m.id, &m.project, &m.module, &m.result)?;
        // A module that never ran (it failed to collect) says nothing of how
        // long it takes.
        if saved && m.result.wall > 0.0 {
            durations::remember(&tx, m.id, &m.project, &m.module, m.result.wall)?;
        }
        tx.commit()?;
        Ok(saved)
    }

    pub(super) fn record(&self, id: &str) -> Reply<Option<EvaluationRecord>> {
        self.conn
            .query_row(&format!("SELECT {RECORD_COLUMNS} FROM evaluations WHERE id = ?1"), [id], read_record)
            .optional()?
            .transpose()
    }

    pub(super) fn view(&self, id: Uuid, with_tests: bool) -> Reply<Option<EvaluationView>> {
        let key = id.to_string();
        let Some(record) = self.record(&key)? else {
            return Ok(None);
        };
        let mut stmt = self.conn.prepare(
            "SELECT name, root, collected, error, blob, label, rules, suite FROM projects WHERE evaluation = ?1 ORDER BY name",
        )?;
        let projects = stmt
            .query_map([&key], |row| {
                let json: (Option<String>, Option<String>) = (row.get(6)?, row.get(7)?);
                let project = ProjectRow {
                    name: row.get(0)?,
                    root: row.get(1)?,
                    collected: row.get(2)?,
                    error: row.get(3)?,
                    blob: row.get(4)?,
                    label: row.get(5)?,
                    rules: None,
                    suite: None,
                };
                Ok((project, json))
            })?
            .map(|row| {
                let (project, (rules, suite)) = row?;
                let corrupt = |what: &str, e: serde_json::Error| {
                    StoreError::Corrupt(format!("the {what} of project {:?}: {e}", project.name))
                };
                let rules = rules.map(|j| serde_json::from_str(&j)).transpose().map_err(|e| corrupt("rules", e))?;
                let suite = suite.map(|j| serde_json::from_str(&j)).transpose().map_err(|e| corrupt("suite", e))?;
                Ok(ProjectRow { rules, suite, ..project })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut stmt = self.conn.prepare(
            "SELECT project, module, tests, status, passed, failed, skipped, errors, duration, node, output, wall
             FROM modules WHERE evaluation = ?1 ORDER BY project, module",
        )?;
        let mut modules = stmt.query_map([&key], read_module)?.collect::<Result<Result<Vec<_>, _>, _>>()??;
        if with_tests {
            let mut stmt = self.conn.prepare(
                "SELECT name, classname, outcome, duration, message FROM tests
                 WHERE evaluation = ?1 AND project = ?2 AND module = ?3 ORDER BY seq",
            )?;
            for m in modules.iter_mut() {
                if let Some(result) = m.result.as_mut() {
                    result.tests =
                        stmt.query_map(params![key, m.project, m.module], read_test)?
                            .collect::<Result<Result<Vec<_>, _>, _>>()??;
                }
            }
        }
        Ok(Some(EvaluationView { record, projects, modules }))
    }

    fn list(&self) -> Reply<Vec<EvaluationSummary>> {
        let mut stmt = self.conn.prepare(
            "SELECT e.id, e.status, e.submitted_at, e.finished_at,
                    (SELECT COUNT(*) FROM projects p WHERE p.evaluation = e.id),
                    COALESCE(SUM(m.passed), 0), COALESCE(SUM(m.failed), 0),
                    COALESCE(SUM(m.skipped), 0), COALESCE(SUM(m.errors), 0)
             FROM evaluations e LEFT JOIN modules m ON m.evaluation = e.id
             GROUP BY e.id ORDER BY e.submitted_at, e.id",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((|| {
                Ok(EvaluationSummary {
                    id: parse_uuid(&row.get::<_, String>(0)?)?,
                    status: parse_status(&row.get::<_, String>(1)?)?,
                    submitted_at: parse_time(&row.get::<_, String>(2)?)?,
                    finished_at: row.get::<_, Option<String>>(3)?.as_deref().map(parse_time).transpose()?,
                    projects: row.get(4)?,
                    tally: Tally {
                        passed: count(row.get(5)?),
                        failed: count(row.get(6)?),
                        skipped: count(row.get(7)?),
                        errors: count(row.get(8)?),
                    },
                })
            })())
        })?;
        rows.collect::<Result<Result<Vec<_>, StoreError>, _>>()?
    }

    fn unfinished(&self) -> Reply<Vec<EvaluationRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {RECORD_COLUMNS} FROM evaluations WHERE status IN ('queued', 'running') ORDER BY submitted_at"
        ))?;
        let rows = stmt.query_map([], read_record)?;
        rows.collect::<Result<Result<Vec<_>, _>, _>>()?
    }

    pub(super) fn events(&self, id: Uuid) -> Reply<Option<Vec<Event>>> {
        let key = id.to_string();
        if self.record(&key)?.is_none() {
            return Ok(None);
        }
        let mut stmt = self.conn.prepare(
            "SELECT lamport, node, kind, detail FROM events WHERE evaluation = ?1 ORDER BY lamport, node, seq",
        )?;
        let rows = stmt.query_map([&key], |row| {
            let kind: String = row.get(2)?;
            Ok(EventKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("event kind {kind:?}")))
                .map(|kind| (row.get(0), row.get(1), kind, row.get(3))))
        })?;
        let mut events = Vec::new();
        for row in rows {
            let (lamport, node, kind, detail) = row??;
            events.push(Event { lamport: lamport?, node: node?, kind, detail: detail? });
        }
        Ok(Some(events))
    }

    fn remove_finished(&mut self, id: Uuid) -> Reply<bool> {
        let removed = self.conn.execute(
            "DELETE FROM evaluations WHERE id = ?1 AND status IN ('done', 'failed', 'cancelled')",
            [id.to_string()],
        )?;
        Ok(removed > 0)
    }

    fn finished_before(&self, before: DateTime<Utc>) -> Reply<Vec<Uuid>> {
        let mut stmt = self.conn.prepare(
            "SELECT id FROM evaluations WHERE status IN ('done', 'failed', 'cancelled') AND finished_at < ?1
             ORDER BY finished_at",
        )?;
        let ids = stmt.query_map([stamp(before)], |row| row.get::<_, String>(0))?;
        ids.map(|id| parse_uuid(&id?)).collect()
    }

    fn counts(&self) -> Reply<BTreeMap<String, u64>> {
        let mut stmt = self.conn.prepare("SELECT status, COUNT(*) FROM evaluations GROUP BY status")?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Inserts a project's row; `on_conflict` is SQL that follows the insert.
pub(super) fn write_project(conn: &Connection, id: Uuid, p: &ProjectRow, on_conflict: &str) -> Reply<()> {
    let sql = format!(
        "INSERT INTO projects (evaluation, name, root, collected, error, blob, label, rules, suite)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) {on_conflict}"
    );
    let (rules, suite) = (p.rules_json(), p.suite_json());
    conn.execute(&sql, params![id.to_string(), p.name, p.root, p.collected, p.error, p.blob, p.label, rules, suite])?;
    Ok(())
}

/// Inserts an evaluation's record; `on_conflict` is SQL that follows the
/// insert: empty for a new evaluation, an upsert for a replica's copy.
pub(super) fn write_record(conn: &Connection, r: &EvaluationRecord, on_conflict: &str) -> Reply<()> {
    let source = serde_json::to_string(&r.source).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let sql = format!(
        "INSERT INTO evaluations (id, status, source, supervisor, input_sha256, input_ready, submitted_at,
                                  started_at, finished_at, error, epoch)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) {on_conflict}"
    );
    conn.execute(
        &sql,
        params![
            r.id.to_string(),
            r.status.as_str(),
            source,
            r.supervisor,
            r.input_sha256,
            r.input_ready,
            stamp(r.submitted_at),
            r.started_at.map(stamp),
            r.finished_at.map(stamp),
            r.error,
            r.epoch,
        ],
    )?;
    Ok(())
}

/// Records a project's modules; modules already known are kept as they are.
pub(super) fn write_collected(
    conn: &Connection,
    id: Uuid,
    project: &str,
    modules: &[(String, u32)],
    error: Option<&str>,
) -> Reply<()> {
    let id = id.to_string();
    for (module, tests) in modules {
        conn.execute(
            "INSERT OR IGNORE INTO modules (evaluation, project, module, tests) VALUES (?1, ?2, ?3, ?4)",
            params![id, project, module, tests],
        )?;
    }
    conn.execute(
        "UPDATE projects SET collected = 1, error = ?3 WHERE evaluation = ?1 AND name = ?2",
        params![id, project, error],
    )?;
    Ok(())
}

/// Records a module's result unless it has one; answers whether it was written.
pub(super) fn write_result(conn: &Connection, id: Uuid, project: &str, module: &str, r: &ModuleResult) -> Reply<bool> {
    let id = id.to_string();
    let changed = conn.execute(
        "UPDATE modules SET status = ?4, passed = ?5, failed = ?6, skipped = ?7, errors = ?8,
         duration = ?9, node = ?10, output = ?11, wall = ?12
         WHERE evaluation = ?1 AND project = ?2 AND module = ?3 AND status IS NULL",
        params![
            id,
            project,
            module,
            r.status.as_str(),
            r.tally.passed,
            r.tally.failed,
            r.tally.skipped,
            r.tally.errors,
            r.duration,
            r.node,
            r.output,
            r.wall,
        ],
    )?;
    if changed == 1 {
        for (seq, t) in r.tests.iter().enumerate() {
            conn.execute(
                "INSERT INTO tests (evaluation, project, module, seq, name, classname, outcome, duration, message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![id, project, module, seq, t.name, t.classname, t.outcome.as_str(), t.duration, t.message],
            )?;
        }
    }
    Ok(changed == 1)
}

/// Appends an event unless the log has it already.
pub(super) fn write_event(conn: &Connection, id: Uuid, e: &Event) -> Reply<()> {
    conn.execute(
        "INSERT OR IGNORE INTO events (evaluation, lamport, node, kind, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id.to_string(), e.lamport, e.node, e.kind.as_str(), e.detail],
    )?;
    Ok(())
}

pub(super) const RECORD_COLUMNS: &str =
    "id, status, source, supervisor, input_sha256, input_ready, submitted_at, started_at, finished_at, error, epoch";

/// Stamps keep milliseconds: `eval_time` is computed from them.
pub(super) fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp {s:?}: {e}")))
}

/// A sum of module counts, saturated as `Tally` saturates: the counts of
/// several modules can add up past `u32::MAX`.
fn count(sum: i64) -> u32 {
    u32::try_from(sum.max(0)).unwrap_or(u32::MAX)
}

fn parse_uuid(s: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(s).map_err(|e| StoreError::Corrupt(format!("id {s:?}: {e}")))
}

fn parse_status(s: &str) -> Result<EvaluationStatus, StoreError> {
    EvaluationStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("evaluation status {s:?}")))
}

/// Row readers answer a nested result: the outer error is SQLite's, the
/// inner one a value that does not parse.
pub(super) fn read_record(row: &Row) -> rusqlite::Result<Reply<EvaluationRecord>> {
    let get = |row: &Row| -> Reply<EvaluationRecord> {
        let source: String = row.get(2)?;
        Ok(EvaluationRecord {
            id: parse_uuid(&row.get::<_, String>(0)?)?,
            status: parse_status(&row.get::<_, String>(1)?)?,
            source: serde_json::from_str::<Source>(&source).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            supervisor: row.get(3)?,
            input_sha256: row.get(4)?,
            input_ready: row.get(5)?,
            submitted_at: parse_time(&row.get::<_, String>(6)?)?,
            started_at: row.get::<_, Option<String>>(7)?.as_deref().map(parse_time).transpose()?,
            finished_at: row.get::<_, Option<String>>(8)?.as_deref().map(parse_time).transpose()?,
            error: row.get(9)?,
            epoch: row.get(10)?,
        })
    };
    Ok(get(row))
}

fn read_module(row: &Row) -> rusqlite::Result<Reply<ModuleRow>> {
    let status: Option<String> = row.get(3)?;
    let result = match status {
        None => None,
        Some(s) => {
            let Some(status) = ModuleStatus::parse(&s) else {
                return Ok(Err(StoreError::Corrupt(format!("module status {s:?}"))));
            };
            Some(ModuleResult {
                status,
                tally: Tally { passed: row.get(4)?, failed: row.get(5)?, skipped: row.get(6)?, errors: row.get(7)? },
                duration: row.get(8)?,
                wall: row.get(11)?,
                node: row.get::<_, Option<String>>(9)?.unwrap_or_default(),
                output: row.get::<_, Option<String>>(10)?.unwrap_or_default(),
                tests: Vec::new(),
            })
        }
    };
    Ok(Ok(ModuleRow { project: row.get(0)?, module: row.get(1)?, tests: row.get(2)?, result }))
}

fn read_test(row: &Row) -> rusqlite::Result<Reply<TestCase>> {
    let outcome: String = row.get(2)?;
    let Some(outcome) = Outcome::parse(&outcome) else {
        return Ok(Err(StoreError::Corrupt(format!("test outcome {outcome:?}"))));
    };
    Ok(Ok(TestCase { name: row.get(0)?, classname: row.get(1)?, outcome, duration: row.get(3)?, message: row.get(4)? }))
}

impl Actor for Store {
    type Context = Context<Self>;
}

crate::panics_when_told!(Store);

macro_rules! handle {
    ($msg:ty, $out:ty, |$s:ident, $m:ident| $body:expr) => {
        impl Handler<$msg> for Store {
            type Result = Reply<$out>;

            fn handle(&mut self, $m: $msg, _: &mut Context<Self>) -> Self::Result {
                let $s = self;
                $body
            }
        }
    };
}

handle!(CreateEvaluation, (), |s, m| s.create(&m.0));
handle!(MarkInputReady, (), |s, m| {
    s.conn.execute("UPDATE evaluations SET input_ready = 1 WHERE id = ?1", [m.0.to_string()])?;
    Ok(())
});
handle!(SetStatus, (), |s, m| s.set_status(&m));
handle!(SetBlob, (), |s, m| {
    s.conn.execute(
        "UPDATE projects SET blob = ?3 WHERE evaluation = ?1 AND name = ?2",
        params![m.id.to_string(), m.project, m.blob],
    )?;
    Ok(())
});
handle!(SaveProjects, (), |s, m| s.save_projects(&m));
handle!(SaveCollected, (), |s, m| s.save_collected(&m));
handle!(SaveResult, bool, |s, m| s.save_result(&m));
handle!(GetEvaluation, Option<EvaluationView>, |s, m| s.view(m.id, m.with_tests));
handle!(ListEvaluations, Vec<EvaluationSummary>, |s, _m| s.list());
handle!(ListUnfinished, Vec<EvaluationRecord>, |s, _m| s.unfinished());
handle!(RemoveFinished, bool, |s, m| s.remove_finished(m.0));
handle!(FinishedBefore, Vec<Uuid>, |s, m| s.finished_before(m.0));
handle!(RecordEvent, (), |s, m| write_event(&s.conn, m.id, &m.event));
handle!(GetEvents, Option<Vec<Event>>, |s, m| s.events(m.0));
handle!(CountByStatus, BTreeMap<String, u64>, |s, _m| s.counts());

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: Uuid) -> EvaluationRecord {
        EvaluationRecord {
            id,
            status: EvaluationStatus::Queued,
            source: Source::Git { repositories: vec!["https://github.com/a/b".into()], tests: None },
            supervisor: "127.0.0.1:5001".into(),
            epoch: 0,
            input_sha256: None,
            input_ready: false,
            submitted_at: Utc::now(),
            started_at: None,
            finished_at: None,
            error: None,
        }
    }

    fn result(passed: u32) -> ModuleResult {
        ModuleResult {
            status: ModuleStatus::Done,
            tally: Tally { passed, ..Tally::default() },
            duration: 1.5,
            wall: 1.75,
            node: "n1".into(),
            output: "ok".into(),
            tests: vec![TestCase {
                name: "test_a".into(),
                classname: "tests.test_a".into(),
                outcome: Outcome::Passed,
                duration: 1.5,
                message: None,
            }],
        }
    }

    async fn seeded() -> (Addr<Store>, Uuid) {
        let store = Store::in_memory().unwrap().start();
        let id = Uuid::new_v4();
        store.send(CreateEvaluation(record(id))).await.unwrap().unwrap();
        let project = ProjectRow::found("p".into(), "p".into(), Some("Pat (p1)".into()));
        store.send(SaveProjects { id, projects: vec![project] }).await.unwrap().unwrap();
        let modules = vec![("tests/test_a.py".into(), 1), ("tests/test_b.py".into(), 2)];
        store.send(SaveCollected { id, project: "p".into(), modules, error: None }).await.unwrap().unwrap();
        (store, id)
    }

    #[actix::test]
    async fn a_result_is_stored_once() {
        let (store, id) = seeded().await;
        let save = || SaveResult { id, project: "p".into(), module: "tests/test_a.py".into(), result: result(1) };
        assert!(store.send(save()).await.unwrap().unwrap());
        assert!(!store.send(save()).await.unwrap().unwrap(), "a duplicate is refused");
        let view = store.send(GetEvaluation { id, with_tests: true }).await.unwrap().unwrap().unwrap();
        assert_eq!(view.modules.len(), 2);
        let a = view.modules[0].result.as_ref().unwrap();
        assert_eq!(a.tally.passed, 1);
        assert_eq!((a.duration, a.wall), (1.5, 1.75), "wall is stored beside duration");
        assert_eq!(a.tests.len(), 1, "tests of a duplicate are not added twice");
        assert_eq!(view.modules[1].result, None);
        assert!(view.projects[0].collected);
        assert_eq!(view.projects[0].label.as_deref(), Some("Pat (p1)"));
    }

    #[actix::test]
    async fn only_a_finished_evaluation_is_removed_and_its_finish_dates_it() {
        let (store, id) = seeded().await;
        let save = SaveResult { id, project: "p".into(), module: "tests/test_a.py".into(), result: result(1) };
        store.send(save).await.unwrap().unwrap();
        assert!(!store.send(RemoveFinished(id)).await.unwrap().unwrap(), "a queued evaluation stays");
        let at = DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z").unwrap().with_timezone(&Utc);
        store.send(SetStatus { id, status: EvaluationStatus::Done, at, error: None }).await.unwrap().unwrap();
        let before = |t: &str| {
            let t = DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
            store.send(FinishedBefore(t))
        };
        assert_eq!(before("2026-03-01T12:00:00Z").await.unwrap().unwrap(), Vec::<Uuid>::new());
        assert_eq!(before("2026-03-01T12:00:01Z").await.unwrap().unwrap(), vec![id]);
        assert!(store.send(RemoveFinished(id)).await.unwrap().unwrap());
        assert!(store.send(GetEvaluation { id, with_tests: true }).await.unwrap().unwrap().is_none());
        assert!(store.send(ListEvaluations).await.unwrap().unwrap().is_empty());
        assert!(!store.send(RemoveFinished(id)).await.unwrap().unwrap(), "removed once");
    }

    #[actix::test]
    async fn tests_load_only_on_request() {
        let (store, id) = seeded().await;
        let save = SaveResult { id, project: "p".into(), module: "tests/test_a.py".into(), result: result(1) };
        store.send(save).await.unwrap().unwrap();
        let view = store.send(GetEvaluation { id, with_tests: false }).await.unwrap().unwrap().unwrap();
        assert!(view.modules[0].result.as_ref().unwrap().tests.is_empty());
    }

    #[actix::test]
    async fn status_changes_stamp_start_and_end_and_leave_unfinished_list() {
        let (store, id) = seeded().await;
        assert_eq!(store.send(ListUnfinished).await.unwrap().unwrap().len(), 1);
        let at = Utc::now();
        store.send(SetStatus { id, status: EvaluationStatus::Running, at, error: None }).await.unwrap().unwrap();
        store.send(SetStatus { id, status: EvaluationStatus::Done, at, error: None }).await.unwrap().unwrap();
        let record = store.send(GetEvaluation { id, with_tests: false }).await.unwrap().unwrap().unwrap().record;
        assert_eq!(record.status, EvaluationStatus::Done);
        assert!(record.started_at.is_some() && record.finished_at.is_some());
        assert!(store.send(ListUnfinished).await.unwrap().unwrap().is_empty());
        let counts = store.send(CountByStatus).await.unwrap().unwrap();
        assert_eq!(counts.get("done"), Some(&1));
    }

    /// Found by `tests/fuzz`: two replicated results of `u32::MAX` passed
    /// tests made the summed column overflow `u32`, and `GET /evaluation`
    /// answered 500 for every evaluation.
    #[actix::test]
    async fn summaries_saturate_counts_past_u32() {
        let (store, id) = seeded().await;
        for module in ["tests/test_a.py", "tests/test_b.py"] {
            let save = SaveResult { id, project: "p".into(), module: module.into(), result: result(u32::MAX) };
            store.send(save).await.unwrap().unwrap();
        }
        let list = store.send(ListEvaluations).await.unwrap().unwrap();
        assert_eq!(list[0].tally.passed, u32::MAX);
    }

    #[actix::test]
    async fn summaries_sum_module_counts() {
        let (store, id) = seeded().await;
        for (module, passed) in [("tests/test_a.py", 1), ("tests/test_b.py", 2)] {
            let save = SaveResult { id, project: "p".into(), module: module.into(), result: result(passed) };
            store.send(save).await.unwrap().unwrap();
        }
        let list = store.send(ListEvaluations).await.unwrap().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].projects, 1);
        assert_eq!(list[0].tally.passed, 3);
    }

    #[actix::test]
    async fn unknown_evaluation_is_none() {
        let store = Store::in_memory().unwrap().start();
        let view = store.send(GetEvaluation { id: Uuid::new_v4(), with_tests: false }).await.unwrap().unwrap();
        assert_eq!(view, None);
    }

    #[test]
    fn reopening_a_database_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db/evalmesh.sqlite3");
        let id = Uuid::new_v4();
        Store::open(&path).unwrap().create(&record(id)).unwrap();
        let store = Store::open(&path).unwrap();
        assert_eq!(store.record(&id.to_string()).unwrap().unwrap().id, id);
        let mode: String = store.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
    }

    #[actix::test]
    async fn events_come_back_in_lamport_order_and_only_for_known_evaluations() {
        let (store, id) = seeded().await;
        let event = |lamport, node: &str, kind| Event { lamport, node: node.into(), kind, detail: String::new() };
        for e in [event(7, "b", EventKind::Result), event(2, "a", EventKind::Assigned), event(7, "a", EventKind::Done)]
        {
            store.send(RecordEvent { id, event: e }).await.unwrap().unwrap();
        }
        let events = store.send(GetEvents(id)).await.unwrap().unwrap().unwrap();
        let order: Vec<_> = events.iter().map(|e| (e.lamport, e.node.as_str(), e.kind)).collect();
        assert_eq!(order, vec![(2, "a", EventKind::Assigned), (7, "a", EventKind::Done), (7, "b", EventKind::Result)]);
        assert_eq!(store.send(GetEvents(Uuid::new_v4())).await.unwrap().unwrap(), None);
    }
}
