//! evalmesh grades Python projects by running their pytest suites.
//!
//! A client posts a zip of projects, or a list of git repositories, to a
//! node; the node unpacks or clones them, finds each project, builds (or
//! reuses) its virtual environment, lets pytest collect its test modules, runs
//! them in its executor slots, and serves per-module and per-project pass
//! rates and a grade. Everything it accepts and every finished result is in
//! SQLite, so a node that is killed resumes its evaluations when it starts
//! again.
//!
//! # The supervisor tree of one node
//!
//! ```text
//! node::run ─────────────── the node root: starts the children, then the HTTP server
//!  ├── store::Store         SQLite (WAL) on an arbiter thread of its own
//!  ├── executor::Executor   `slots` pytest jobs at once, the rest queued
//!  ├── evaluation::Registry parent of the supervisors; resumes unfinished ones at start
//!  │    └── evaluation::EvaluationSupervisor   one per evaluation
//!  └── api (actix-web)      parse → send to an actor → map the answer
//! ```
//!
//! # Where things are
//!
//! | folder | what it holds |
//! | --- | --- |
//! | [`config`] | the typed config file, its defaults and its validation |
//! | [`node`] | `run(config, listener)`: the node root |
//! | [`api`] | routes, handlers, the one `ApiError` |
//! | [`evaluation`] | the registry and supervisor actors, the pure plan and report, intake (zip, git, discovery) |
//! | [`executor`] | the executor actor; environment cache, pytest command lines, JUnit reader, capped processes |
//! | [`store`] | the store actor and its rows |
//!
//! The guarantees — what is stored when, what a crash loses, what a
//! duplicated result does — are in `docs/runtime-semantics.md`.

pub mod api;
pub mod balance;
pub mod config;
pub mod evaluation;
pub mod executor;
pub mod membership;
pub mod node;
pub mod peer;
pub mod store;
