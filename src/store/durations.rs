//! The duration history: the wall time of every finished module, keyed by
//! the content it ran (the project's blob, the SHA-256 of its packed files)
//! and its path, so that the next evaluation of the same or similar work can
//! hand out its longest modules first. Plain functions over the `Store`'s
//! connection; the table keeps only the newest rows, so it stays bounded
//! however many evaluations a node runs.
//!
//! An estimate falls back from the closest evidence to the weakest (see
//! [`Basis`]): the same content and path, the same path in any content, the
//! module's test count times the mean wall of one test, the test count alone
//! (when nothing at all is recorded).

use std::collections::BTreeMap;

use actix::prelude::*;
use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

use super::{Store, StoreError};
use crate::evaluation::model::{Basis, Estimate};

/// Estimates for modules of a project of an evaluation, the project's
/// content being the blob the store holds for it.
#[derive(Message)]
#[rtype(result = "Result<BTreeMap<String, Estimate>, StoreError>")]
pub struct GetEstimates {
    pub id: Uuid,
    pub project: String,
    /// Each module's path and collected test count.
    pub modules: Vec<(String, u32)>,
}

impl Handler<GetEstimates> for Store {
    type Result = Result<BTreeMap<String, Estimate>, StoreError>;

    fn handle(&mut self, m: GetEstimates, _: &mut Context<Self>) -> Self::Result {
        let content = blob(&self.conn, m.id, &m.project)?;
        estimate(&self.conn, content.as_deref(), &m.modules)
    }
}

/// The blob of a project of an evaluation, if it has one.
fn blob(conn: &Connection, id: Uuid, project: &str) -> Result<Option<String>, StoreError> {
    let found = conn
        .query_row(
            "SELECT blob FROM projects WHERE evaluation = ?1 AND name = ?2",
            params![id.to_string(), project],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()?;
    Ok(found.flatten())
}

/// Records the wall time of a module whose result was just written, under
/// its project's content and with its collected test count.
pub fn remember(conn: &Connection, id: Uuid, project: &str, module: &str, wall: f64) -> Result<(), StoreError> {
    let tests: u32 = conn.query_row(
        "SELECT tests FROM modules WHERE evaluation = ?1 AND project = ?2 AND module = ?3",
        params![id.to_string(), project, module],
        |r| r.get(0),
    )?;
    record(conn, blob(conn, id, project)?.as_deref(), module, tests, wall, HISTORY_ROWS)
}

/// Rows kept: at a few hundred modules an evaluation, the last hundred or so
/// evaluations, a few MiB of database.
pub const HISTORY_ROWS: u64 = 50_000;

/// Seconds assumed for one test when nothing at all is recorded: then every
/// module is estimated from it alone, so it only has to order them by test
/// count, and any value would; this one reads as a plausible time.
const ASSUMED_TEST_SECONDS: f64 = 0.1;

/// Records that `module` of `content` (none when the project has no blob)
/// with `tests` collected tests took `wall` seconds, and drops the oldest
/// rows past `keep`.
pub fn record(
    conn: &Connection,
    content: Option<&str>,
    module: &str,
    tests: u32,
    wall: f64,
    keep: u64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO durations (content, module, tests, wall) VALUES (?1, ?2, ?3, ?4)",
        params![content, module, tests, wall],
    )?;
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    conn.execute("DELETE FROM durations WHERE seq <= (SELECT MAX(seq) FROM durations) - ?1", [keep])?;
    Ok(())
}

/// An estimate for each of `modules` (path and collected test count) of
/// `content`.
pub fn estimate(
    conn: &Connection,
    content: Option<&str>,
    modules: &[(String, u32)],
) -> Result<BTreeMap<String, Estimate>, StoreError> {
    let per_test: Option<f64> =
        conn.query_row("SELECT SUM(wall) / SUM(tests) FROM durations WHERE tests > 0", [], |r| {
            r.get::<_, Option<f64>>(0)
        })?;
    let mut exact = conn.prepare_cached("SELECT AVG(wall) FROM durations WHERE content = ?1 AND module = ?2")?;
    let mut same_path = conn.prepare_cached("SELECT AVG(wall) FROM durations WHERE module = ?1")?;
    let mut out = BTreeMap::new();
    for (module, tests) in modules {
        let found = match content {
            Some(content) => exact.query_row(params![content, module], |r| r.get::<_, Option<f64>>(0)).optional()?,
            None => None,
        };
        let estimate = if let Some(seconds) = found.flatten() {
            Estimate { seconds, basis: Basis::Exact }
        } else if let Some(seconds) =
            same_path.query_row([module], |r| r.get::<_, Option<f64>>(0)).optional()?.flatten()
        {
            Estimate { seconds, basis: Basis::Module }
        } else if let Some(mean) = per_test {
            Estimate { seconds: f64::from(*tests) * mean, basis: Basis::PerTest }
        } else {
            Estimate { seconds: f64::from(*tests) * ASSUMED_TEST_SECONDS, basis: Basis::Tests }
        };
        out.insert(module.clone(), estimate);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::apply(&mut conn).unwrap();
        conn
    }

    fn modules(list: &[(&str, u32)]) -> Vec<(String, u32)> {
        list.iter().map(|(m, t)| (m.to_string(), *t)).collect()
    }

    #[test]
    fn without_history_the_test_count_is_the_weight() {
        let conn = db();
        let e = estimate(&conn, Some("c1"), &modules(&[("a.py", 3), ("b.py", 10)])).unwrap();
        assert_eq!(e["a.py"].basis, Basis::Tests);
        assert_eq!(e["b.py"].basis, Basis::Tests);
        assert!(e["b.py"].seconds > e["a.py"].seconds && e["a.py"].seconds > 0.0, "{e:?}");
    }

    #[test]
    fn estimates_fall_back_from_exact_to_path_to_per_test() {
        let conn = db();
        record(&conn, Some("c1"), "slow.py", 1, 3.0, 100).unwrap();
        record(&conn, Some("c1"), "slow.py", 1, 5.0, 100).unwrap();
        record(&conn, Some("c2"), "slow.py", 1, 10.0, 100).unwrap();
        record(&conn, Some("c2"), "fast.py", 8, 0.2, 100).unwrap();
        let e = estimate(&conn, Some("c1"), &modules(&[("slow.py", 1), ("fast.py", 8), ("new.py", 4)])).unwrap();
        assert_eq!(e["slow.py"], Estimate { seconds: 4.0, basis: Basis::Exact }, "the mean of this content's runs");
        assert_eq!(e["fast.py"], Estimate { seconds: 0.2, basis: Basis::Module }, "another content's run");
        // 18.2 s over 11 tests, times 4 tests.
        let new = e["new.py"];
        assert_eq!(new.basis, Basis::PerTest);
        assert!((new.seconds - 4.0 * 18.2 / 11.0).abs() < 1e-9, "{new:?}");

        let unknown_content = estimate(&conn, None, &modules(&[("slow.py", 1)])).unwrap();
        assert_eq!(unknown_content["slow.py"], Estimate { seconds: 6.0, basis: Basis::Module });
    }

    /// A result stored for a project with a blob is history for that
    /// content; the same module of a project with another blob falls back
    /// to the path.
    #[actix::test]
    async fn a_stored_result_is_history_for_the_same_content() {
        use crate::evaluation::model::{EvaluationStatus, ModuleResult, ModuleStatus, Tally};
        use crate::store::{
            CreateEvaluation, EvaluationRecord, ProjectRow, SaveCollected, SaveProjects, SaveResult, Source,
        };

        let store = Store::in_memory().unwrap().start();
        let id = Uuid::new_v4();
        let record = EvaluationRecord {
            id,
            status: EvaluationStatus::Running,
            source: Source::Zip { name: "x.zip".into() },
            supervisor: "n1".into(),
            epoch: 0,
            input_sha256: None,
            input_ready: true,
            submitted_at: chrono::Utc::now(),
            started_at: None,
            finished_at: None,
            error: None,
        };
        store.send(CreateEvaluation(record)).await.unwrap().unwrap();
        let project = |name: &str, blob: &str| ProjectRow {
            blob: Some(blob.into()),
            ..ProjectRow::found(name.into(), name.into(), None)
        };
        let projects = vec![project("p", "blob-1"), project("q", "blob-2")];
        store.send(SaveProjects { id, projects }).await.unwrap().unwrap();
        for name in ["p", "q"] {
            let modules = vec![("slow.py".into(), 1), ("collect_error.py".into(), 0)];
            store.send(SaveCollected { id, project: name.into(), modules, error: None }).await.unwrap().unwrap();
        }
        let result = |wall| ModuleResult {
            status: ModuleStatus::Done,
            tally: Tally { passed: 1, ..Tally::default() },
            duration: 1.9,
            wall,
            node: "n1".into(),
            output: String::new(),
            tests: Vec::new(),
        };
        for (module, wall) in [("slow.py", 2.5), ("collect_error.py", 0.0)] {
            let save = SaveResult { id, project: "p".into(), module: module.into(), result: result(wall) };
            store.send(save).await.unwrap().unwrap();
        }
        let ask = |project: &str| GetEstimates {
            id,
            project: project.into(),
            modules: vec![("slow.py".into(), 1), ("collect_error.py".into(), 0)],
        };
        let p = store.send(ask("p")).await.unwrap().unwrap();
        assert_eq!(p["slow.py"], Estimate { seconds: 2.5, basis: Basis::Exact });
        assert_eq!(p["collect_error.py"].basis, Basis::PerTest, "a module that took no time is not history");
        let q = store.send(ask("q")).await.unwrap().unwrap();
        assert_eq!(q["slow.py"], Estimate { seconds: 2.5, basis: Basis::Module });
    }

    #[test]
    fn history_keeps_only_the_newest_rows() {
        let conn = db();
        for i in 0..10 {
            record(&conn, Some("c"), &format!("m{i}.py"), 1, f64::from(i), 4).unwrap();
        }
        let count: i64 = conn.query_row("SELECT COUNT(*) FROM durations", [], |r| r.get(0)).unwrap();
        assert_eq!(count, 4);
        let e = estimate(&conn, Some("c"), &modules(&[("m9.py", 1), ("m5.py", 1)])).unwrap();
        assert_eq!(e["m9.py"].basis, Basis::Exact);
        assert_eq!(e["m5.py"].basis, Basis::PerTest, "the oldest rows are gone");
    }
}
