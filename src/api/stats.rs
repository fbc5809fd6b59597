//! The figures of `GET /stats`, typed: what one node reports of itself
//! (`?scope=local`, and what its peers read of it for the cluster-wide
//! answer), and the cluster's totals summed from them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::evaluation::model::round2;
use crate::executor::sandbox::SandboxMode;

/// How a node isolates runs, as `SandboxMode` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxView {
    pub kind: String,
    pub users: String,
    pub limits: String,
}

impl From<SandboxMode> for SandboxView {
    fn from(mode: SandboxMode) -> Self {
        Self { kind: mode.kind.into(), users: mode.users.into(), limits: mode.limits.into() }
    }
}

/// One node's figures. A field a peer of another version leaves out reads as 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeStats {
    pub node: String,
    pub uptime_s: u64,
    pub sandbox: SandboxView,
    pub slots: u64,
    pub slots_busy: u64,
    pub jobs_queued: u64,
    /// The copies it holds, by status.
    pub evaluations: BTreeMap<String, u64>,
    pub evaluations_running: u64,
    pub evaluations_queued: u64,
    pub submissions_receiving: u64,
    pub modules_run: u64,
    pub modules_timed_out: u64,
    pub tests_run: u64,
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
    pub errors: u64,
    /// Seconds, over its modules.
    pub mean_module_time: f64,
}

/// The cluster's totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GlobalStats {
    /// How many nodes answered.
    pub nodes: usize,
    pub slots: u64,
    pub slots_busy: u64,
    pub jobs_queued: u64,
    /// Each evaluation once, at its most advanced copy, by status.
    pub evaluations: BTreeMap<String, u64>,
    pub evaluations_running: u64,
    pub evaluations_queued: u64,
    pub submissions_receiving: u64,
    pub modules_run: u64,
    pub modules_timed_out: u64,
    pub tests_run: u64,
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
    pub errors: u64,
    /// Weighted by each node's modules.
    pub mean_module_time: f64,
}

/// `GET /stats`: every node that answered, and the totals.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStats {
    pub nodes: BTreeMap<String, NodeStats>,
    pub global: GlobalStats,
}

impl GlobalStats {
    /// Sums the nodes' figures; `evaluations` is left to the caller, who
    /// counts each evaluation once rather than each copy.
    pub fn sum<'a>(nodes: impl IntoIterator<Item = &'a NodeStats>) -> Self {
        let mut g = Self::default();
        let mut weighted_time = 0.0;
        for n in nodes {
            g.nodes += 1;
            for (total, add) in [
                (&mut g.slots, n.slots),
                (&mut g.slots_busy, n.slots_busy),
                (&mut g.jobs_queued, n.jobs_queued),
                (&mut g.evaluations_running, n.evaluations_running),
                (&mut g.evaluations_queued, n.evaluations_queued),
                (&mut g.submissions_receiving, n.submissions_receiving),
                (&mut g.modules_run, n.modules_run),
                (&mut g.modules_timed_out, n.modules_timed_out),
                (&mut g.tests_run, n.tests_run),
                (&mut g.passed, n.passed),
                (&mut g.failed, n.failed),
                (&mut g.skipped, n.skipped),
                (&mut g.errors, n.errors),
            ] {
                *total = total.saturating_add(add);
            }
            weighted_time += n.modules_run as f64 * n.mean_module_time;
        }
        if g.modules_run > 0 {
            g.mean_module_time = round2(weighted_time / g.modules_run as f64);
        }
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_totals_sum_counts_and_weigh_the_mean_module_time() {
        let a = NodeStats { slots: 2, modules_run: 1, mean_module_time: 1.0, passed: 3, ..NodeStats::default() };
        let b = NodeStats {
            slots: 1,
            modules_run: 3,
            mean_module_time: 2.0,
            passed: 4,
            evaluations_running: 1,
            evaluations_queued: 2,
            ..NodeStats::default()
        };
        let g = GlobalStats::sum([&a, &b]);
        assert_eq!((g.nodes, g.slots, g.passed, g.modules_run), (2, 3, 7, 4));
        assert_eq!(g.mean_module_time, 1.75);
        assert_eq!((g.evaluations_running, g.evaluations_queued), (1, 2));
    }

    #[test]
    fn a_peers_figures_without_a_field_read_it_as_zero() {
        let old: NodeStats = serde_json::from_str(r#"{"node": "n1", "slots": 2}"#).unwrap();
        assert_eq!((old.slots, old.passed, old.sandbox.kind.as_str()), (2, 0, ""));
    }
}
