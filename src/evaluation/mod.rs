//! The evaluation subsystem: the `Registry` of this node's evaluations, one
//! `EvaluationSupervisor` per evaluation, and the plain parts they use — the
//! admission (which evaluations run and wait), the plan (task bookkeeping),
//! the report (the JSON a client reads) and the gradebook (its CSV and
//! JUnit forms), the grading rules, intake (zip, git, project discovery)
//! and the shared model types.

pub mod admission;
pub(crate) mod adoption;
pub mod blobs;
pub mod fence;
pub mod gradebook;
pub mod intake;
pub mod model;
pub mod plan;
mod prepare;
pub mod progress;
pub mod registry;
pub mod report;
pub mod rules;
pub mod supervisor;
pub mod worker;
pub mod workspace;
