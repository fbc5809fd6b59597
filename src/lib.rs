//! evalmesh grades Python projects by running their pytest suites, on a
//! cluster of peer nodes.
//!
//! A client posts a zip of projects, or a list of git repositories, to any
//! node; that node supervises the evaluation: it unpacks or clones the
//! projects, packs each into a content-addressed blob, and hands collection
//! and test tasks to the live nodes its balancer picks — itself included —
//! the longest expected module first, where its environment is built when a
//! slot is free there. Workers fetch the blob, build (or reuse) the project's
//! environment, run pytest and post the results back; the supervisor serves
//! per-module and per-project pass rates and a grade. Nodes find each other
//! through seeds, or by multicast on one network segment, and watch each
//! other with SWIM; every request between them, and every announcement, is
//! signed with the cluster secret. The tasks of a node that dies, leaves or
//! restarts are handed out again. Everything a supervisor accepts and every finished
//! result is in its SQLite database and replicated to other nodes; when a
//! supervisor dies, a replica takes the cluster lock of the evaluation from
//! the elected coordinator and adopts it, keeping every finished result.
//!
//! # The supervisor tree of one node
//!
//! ```text
//! node::run ─────────────── the node root: starts the children, then the HTTP server
//!  ├── store::Store         SQLite (WAL) on an arbiter thread of its own
//!  ├── executor::Executor   `slots` pytest jobs at once, the rest queued
//!  ├── evaluation::Worker   tasks other nodes' supervisors hand this node
//!  ├── balance::LoadBalancer  longest first, environment-aware (or least connections)
//!  ├── membership::Membership SWIM probes, suspicion, gossip of members and load
//!  ├── coordination::Coordination  the bully election of the coordinator
//!  ├── discovery::Announcer multicast announcements; only with `[discovery] multicast`
//!  ├── locks::Locks         named locks: asks the coordinator for them; the lock table when coordinator
//!  ├── evaluation::Registry parent of the supervisors; admits evaluations; adopts those whose supervisor is gone
//!  │    └── evaluation::EvaluationSupervisor   one per evaluation this node supervises
//!  │         └── replication::Replicator       keeps R other nodes holding the evaluation
//!  └── api (actix-web)      parse → send to an actor → map the answer
//! ```
//!
//! # Where things are
//!
//! | folder | what it holds |
//! | --- | --- |
//! | [`config`] | the typed config file, its defaults and its validation |
//! | [`node`] | `run(config, listener)`: the node root; `fail_stop`, what a panic does |
//! | [`api`] | public, cluster-wide and peer routes, the guards in front of them (cluster secret, client tokens), the test-only `POST /kill`, the one `ApiError` |
//! | [`auth`] | pure: the HMAC signature of peer requests and announcements, the replay window, client tokens, the `Secret` that never prints |
//! | [`evaluation`] | registry, supervisor and worker actors; the pure admission, plan and report; intake (zip, git, discovery); workspace and blobs |
//! | [`executor`] | the executor actor; environment cache and vetted requirements, the launcher and its results stream, the bwrap sandbox and cgroups, capped processes |
//! | [`membership`] | the membership actor, the pure SWIM core and its wire types |
//! | [`balance`] | the load balancer actor and its policies |
//! | [`coordination`] | the coordination actor and the pure bully election |
//! | [`discovery`] | the announcer actor, the pure announcement datagram, the multicast socket |
//! | [`locks`] | the locks actor, the pure lock table and claims, the wire types of the lock routes |
//! | [`peer`] | every route between nodes defined once, the `Network` that carries them (`Peers` for typed calls), the one awc client |
//! | [`replication`] | the replicator actor, its wire types, replica placement, finding blobs among peers |
//! | [`store`] | the store actor and its rows |
//! | `testing` | for the unit tests: the simulated network, stand-in actors, helpers |
//!
//! How the parts fit is in `docs/architecture.md`; the guarantees — what is
//! stored when, what a crash loses, what a duplicated result does — are in
//! `docs/runtime-semantics.md`; what stops hostile code, hostile clients and
//! peers — the sandbox of test runs, the limits of a node, who may call what —
//! is in `docs/security.md`.

pub mod api;
pub mod auth;
pub mod balance;
pub mod cli;
pub mod config;
pub mod coordination;
pub mod discovery;
pub mod evaluation;
pub mod executor;
pub mod locks;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod peer;
pub mod replication;
pub mod store;
#[cfg(test)]
pub mod testing;
