//! The database schema, applied at open. Results are written once per module
//! (`status IS NULL` until then) and events once per node and time, which is
//! what makes a duplicated result or a replicated write applied twice
//! harmless.
//!
//! The schema's version is the database's `PRAGMA user_version`: a new
//! database is created at [`VERSION`], an older one is brought to it by the
//! steps of [`MIGRATIONS`] at open, and a newer one (written by a later
//! evalmesh) is refused rather than misread.

use rusqlite::{Connection, OptionalExtension};

use super::StoreError;

/// The version this code reads and writes.
pub const VERSION: i64 = 3;

/// Each step brings a database from the version before it to its own.
/// Version 0 is the schema before versioning, whose `modules` had no `wall`
/// and which had no `durations` (a missing table is created by [`TABLES`]);
/// version 1's `projects` had no `label`, `rules` or `suite`; version 2 had
/// no `terms`, which [`TABLES`] creates.
const MIGRATIONS: [(i64, &str); 2] = [
    (1, "ALTER TABLE modules ADD COLUMN wall REAL NOT NULL DEFAULT 0;"),
    (
        2,
        "ALTER TABLE projects ADD COLUMN label TEXT; ALTER TABLE projects ADD COLUMN rules TEXT;
         ALTER TABLE projects ADD COLUMN suite TEXT;",
    ),
];

/// Settings of the connection, not of the file: given at every open.
const PRAGMAS: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
";

/// Brings the database on `conn` to [`VERSION`]: creates it when empty,
/// migrates it when older, refuses it when newer.
pub fn apply(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch(PRAGMAS)?;
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > VERSION {
        return Err(StoreError::NewerSchema { found, supported: VERSION });
    }
    let tx = conn.transaction()?;
    let existing = tx
        .query_row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'modules'", [], |r| r.get::<_, i64>(0))
        .optional()?
        .is_some();
    // A new database gets the current tables at once; only an existing one
    // has steps to catch up on.
    if existing {
        for (version, step) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
            tx.execute_batch(step).map_err(|e| StoreError::Migration { version: *version, source: e })?;
        }
    }
    tx.execute_batch(TABLES)?;
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()?;
    Ok(())
}

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS evaluations (
    id            TEXT PRIMARY KEY,
    status        TEXT NOT NULL,
    source        TEXT NOT NULL,
    supervisor    TEXT NOT NULL,
    epoch         INTEGER NOT NULL DEFAULT 0,
    input_sha256  TEXT,
    input_ready   INTEGER NOT NULL,
    submitted_at  TEXT NOT NULL,
    started_at    TEXT,
    finished_at   TEXT,
    error         TEXT
);

CREATE TABLE IF NOT EXISTS projects (
    evaluation  TEXT NOT NULL REFERENCES evaluations(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    root        TEXT NOT NULL,
    collected   INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    blob        TEXT,
    label       TEXT,
    -- The project's grading rules (evalmesh.toml) as JSON.
    rules       TEXT,
    -- The Python files of the reference suite laid over it, as JSON.
    suite       TEXT,
    PRIMARY KEY (evaluation, name)
);

CREATE TABLE IF NOT EXISTS modules (
    evaluation  TEXT NOT NULL,
    project     TEXT NOT NULL,
    module      TEXT NOT NULL,
    tests       INTEGER NOT NULL,
    status      TEXT,
    passed      INTEGER NOT NULL DEFAULT 0,
    failed      INTEGER NOT NULL DEFAULT 0,
    skipped     INTEGER NOT NULL DEFAULT 0,
    errors      INTEGER NOT NULL DEFAULT 0,
    duration    REAL NOT NULL DEFAULT 0,
    node        TEXT,
    wall        REAL NOT NULL DEFAULT 0,
    output      TEXT,
    PRIMARY KEY (evaluation, project, module),
    FOREIGN KEY (evaluation, project) REFERENCES projects(evaluation, name) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS tests (
    evaluation  TEXT NOT NULL,
    project     TEXT NOT NULL,
    module      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    name        TEXT NOT NULL,
    classname   TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    duration    REAL NOT NULL,
    message     TEXT,
    PRIMARY KEY (evaluation, project, module, seq),
    FOREIGN KEY (evaluation, project, module) REFERENCES modules(evaluation, project, module) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    evaluation  TEXT NOT NULL REFERENCES evaluations(id) ON DELETE CASCADE,
    lamport     INTEGER NOT NULL,
    node        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    detail      TEXT NOT NULL
);

-- On a replica: how far it has applied the journal of an evaluation's
-- supervisor; a supervisor that starts again sends a new journal id.
CREATE TABLE IF NOT EXISTS replicas (
    evaluation  TEXT PRIMARY KEY REFERENCES evaluations(id) ON DELETE CASCADE,
    journal     TEXT NOT NULL,
    seq         INTEGER NOT NULL
);

-- The wall time of each finished module, keyed by the content it ran (the
-- project's blob, none without one) and its path: what dispatch estimates
-- from (`durations.rs`). Only the newest rows are kept.
CREATE TABLE IF NOT EXISTS durations (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    content     TEXT,
    module      TEXT NOT NULL,
    tests       INTEGER NOT NULL,
    wall        REAL NOT NULL
);

-- The term this node promised for an evaluation, held here or not, and
-- whether it promised its close (`evaluation::fence`).
CREATE TABLE IF NOT EXISTS terms (
    evaluation  TEXT PRIMARY KEY,
    epoch       INTEGER NOT NULL,
    supervisor  TEXT NOT NULL,
    closed      INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS durations_by_content ON durations(content, module);
CREATE INDEX IF NOT EXISTS durations_by_module ON durations(module);
CREATE INDEX IF NOT EXISTS evaluations_by_status ON evaluations(status);
CREATE INDEX IF NOT EXISTS events_by_evaluation ON events(evaluation, lamport);
-- A node stamps each of its events with a time of its own: the same event
-- replicated twice is one row.
CREATE UNIQUE INDEX IF NOT EXISTS events_once ON events(evaluation, node, lamport, kind);
";

#[cfg(test)]
mod tests {
    use rusqlite::params;
    use uuid::Uuid;

    use super::*;
    use crate::store::Store;

    /// The tables as evalmesh wrote them before versioning (version 0),
    /// `modules` without `wall`.
    const VERSION_0: &str = "
    CREATE TABLE evaluations (
        id TEXT PRIMARY KEY, status TEXT NOT NULL, source TEXT NOT NULL, supervisor TEXT NOT NULL,
        epoch INTEGER NOT NULL DEFAULT 0, input_sha256 TEXT, input_ready INTEGER NOT NULL,
        submitted_at TEXT NOT NULL, started_at TEXT, finished_at TEXT, error TEXT);
    CREATE TABLE projects (
        evaluation TEXT NOT NULL REFERENCES evaluations(id) ON DELETE CASCADE, name TEXT NOT NULL,
        root TEXT NOT NULL, collected INTEGER NOT NULL DEFAULT 0, error TEXT, blob TEXT,
        PRIMARY KEY (evaluation, name));
    CREATE TABLE modules (
        evaluation TEXT NOT NULL, project TEXT NOT NULL, module TEXT NOT NULL, tests INTEGER NOT NULL,
        status TEXT, passed INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0,
        duration REAL NOT NULL DEFAULT 0, node TEXT, output TEXT,
        PRIMARY KEY (evaluation, project, module),
        FOREIGN KEY (evaluation, project) REFERENCES projects(evaluation, name) ON DELETE CASCADE);
    CREATE TABLE tests (
        evaluation TEXT NOT NULL, project TEXT NOT NULL, module TEXT NOT NULL, seq INTEGER NOT NULL,
        name TEXT NOT NULL, classname TEXT NOT NULL, outcome TEXT NOT NULL, duration REAL NOT NULL,
        message TEXT, PRIMARY KEY (evaluation, project, module, seq));
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, evaluation TEXT NOT NULL, lamport INTEGER NOT NULL,
        node TEXT NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL);
    CREATE TABLE replicas (evaluation TEXT PRIMARY KEY, journal TEXT NOT NULL, seq INTEGER NOT NULL);
    ";

    fn version(path: &std::path::Path) -> i64 {
        Connection::open(path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn a_version_0_database_gains_wall_and_label_and_keeps_its_results() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("evalmesh.sqlite3");
        let id = Uuid::new_v4().to_string();
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(VERSION_0).unwrap();
            conn.execute(
                "INSERT INTO evaluations (id, status, source, supervisor, input_ready, submitted_at)
                 VALUES (?1, 'done', '{\"kind\":\"zip\",\"name\":\"old.zip\"}', 'n1', 1, '2026-01-01T00:00:00.000Z')",
                [&id],
            )
            .unwrap();
            conn.execute("INSERT INTO projects (evaluation, name, root, collected) VALUES (?1, 'p', 'p', 1)", [&id])
                .unwrap();
            conn.execute(
                "INSERT INTO modules (evaluation, project, module, tests, status, passed, duration, node, output)
                 VALUES (?1, 'p', 'tests/test_a.py', 2, 'done', 2, 0.5, 'n1', 'ok')",
                params![id],
            )
            .unwrap();
        }
        assert_eq!(version(&path), 0);

        let store = Store::open(&path).unwrap();
        let view = store.view(Uuid::parse_str(&id).unwrap(), false).unwrap().unwrap();
        let result = view.modules[0].result.as_ref().unwrap();
        assert_eq!((result.tally.passed, result.duration, result.wall), (2, 0.5, 0.0));
        assert_eq!((&view.projects[0].label, &view.projects[0].rules), (&None, &None));
        drop(store);
        assert_eq!(version(&path), VERSION);

        // Opening it again runs no step twice.
        let store = Store::open(&path).unwrap();
        assert_eq!(store.view(Uuid::parse_str(&id).unwrap(), false).unwrap().unwrap().modules.len(), 1);
    }

    #[test]
    fn a_version_2_database_gains_terms_and_keeps_its_evaluations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("evalmesh.sqlite3");
        let id = Uuid::new_v4();
        {
            // Version 2 is version 3 without `terms`.
            let mut conn = Connection::open(&path).unwrap();
            apply(&mut conn).unwrap();
            conn.execute_batch("DROP TABLE terms; PRAGMA user_version = 2;").unwrap();
            conn.execute(
                "INSERT INTO evaluations (id, status, source, supervisor, epoch, input_ready, submitted_at)
                 VALUES (?1, 'running', '{\"kind\":\"zip\",\"name\":\"a.zip\"}', 'n1', 4, 1, '2026-01-01T00:00:00.000Z')",
                [id.to_string()],
            )
            .unwrap();
        }
        assert_eq!(version(&path), 2);
        let store = Store::open(&path).unwrap();
        assert_eq!(version(&path), VERSION);
        let record = store.view(id, false).unwrap().unwrap().record;
        assert_eq!((record.epoch, record.supervisor.as_str()), (4, "n1"));
        let rows: i64 = store.conn.query_row("SELECT COUNT(*) FROM terms", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 0);
    }

    #[test]
    fn a_new_database_starts_at_the_current_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("evalmesh.sqlite3");
        drop(Store::open(&path).unwrap());
        assert_eq!(version(&path), VERSION);
    }

    #[test]
    fn a_database_of_a_newer_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("evalmesh.sqlite3");
        drop(Store::open(&path).unwrap());
        Connection::open(&path).unwrap().pragma_update(None, "user_version", VERSION + 1).unwrap();
        let err = Store::open(&path).err().expect("a newer schema is refused");
        assert!(
            matches!(err, StoreError::NewerSchema { found, supported } if found == VERSION + 1 && supported == VERSION)
        );
    }
}
