//! The database schema, applied at open. Results are written once per module
//! (`status IS NULL` until then) and events once per node and time, which is
//! what makes a duplicated result or a replicated write applied twice
//! harmless.

pub const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;

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

CREATE INDEX IF NOT EXISTS evaluations_by_status ON evaluations(status);
CREATE INDEX IF NOT EXISTS events_by_evaluation ON events(evaluation, lamport);
-- A node stamps each of its events with a time of its own: the same event
-- replicated twice is one row.
CREATE UNIQUE INDEX IF NOT EXISTS events_once ON events(evaluation, node, lamport, kind);
";
