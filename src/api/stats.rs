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

/// What a node counts and the cluster sums.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    pub slots: u64,
    pub slots_busy: u64,
    pub jobs_queued: u64,
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
}

impl std::ops::AddAssign<&Counts> for Counts {
    fn add_assign(&mut self, add: &Counts) {
        let pairs = [
            (&mut self.slots, add.slots),
            (&mut self.slots_busy, add.slots_busy),
            (&mut self.jobs_queued, add.jobs_queued),
            (&mut self.evaluations_running, add.evaluations_running),
            (&mut self.evaluations_queued, add.evaluations_queued),
            (&mut self.submissions_receiving, add.submissions_receiving),
            (&mut self.modules_run, add.modules_run),
            (&mut self.modules_timed_out, add.modules_timed_out),
            (&mut self.tests_run, add.tests_run),
            (&mut self.passed, add.passed),
            (&mut self.failed, add.failed),
            (&mut self.skipped, add.skipped),
            (&mut self.errors, add.errors),
        ];
        for (total, n) in pairs {
            *total = total.saturating_add(n);
        }
    }
}

/// One node's figures. A field a peer of another version leaves out reads as 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeStats {
    pub node: String,
    pub uptime_s: u64,
    pub sandbox: SandboxView,
    /// The copies it holds, by status.
    pub evaluations: BTreeMap<String, u64>,
    #[serde(flatten)]
    pub counts: Counts,
    /// Seconds, over its modules.
    pub mean_module_time: f64,
}

/// The cluster's totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GlobalStats {
    /// How many nodes answered.
    pub nodes: usize,
    /// Each evaluation once, at its most advanced copy, by status.
    pub evaluations: BTreeMap<String, u64>,
    #[serde(flatten)]
    pub counts: Counts,
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
            g.counts += &n.counts;
            weighted_time += n.counts.modules_run as f64 * n.mean_module_time;
        }
        if g.counts.modules_run > 0 {
            g.mean_module_time = round2(weighted_time / g.counts.modules_run as f64);
        }
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_totals_sum_counts_and_weigh_the_mean_module_time() {
        let a = NodeStats {
            counts: Counts { slots: 2, modules_run: 1, passed: 3, ..Counts::default() },
            mean_module_time: 1.0,
            ..NodeStats::default()
        };
        let b = NodeStats {
            counts: Counts {
                slots: 1,
                modules_run: 3,
                passed: 4,
                evaluations_running: 1,
                evaluations_queued: 2,
                ..Counts::default()
            },
            mean_module_time: 2.0,
            ..NodeStats::default()
        };
        let g = GlobalStats::sum([&a, &b]);
        let c = &g.counts;
        assert_eq!((g.nodes, c.slots, c.passed, c.modules_run), (2, 3, 7, 4));
        assert_eq!(g.mean_module_time, 1.75);
        assert_eq!((c.evaluations_running, c.evaluations_queued), (1, 2));
    }

    #[test]
    fn a_peers_figures_without_a_field_read_it_as_zero() {
        let old: NodeStats = serde_json::from_str(r#"{"node": "n1", "slots": 2}"#).unwrap();
        assert_eq!((old.counts.slots, old.counts.passed, old.sandbox.kind.as_str()), (2, 0, ""));
    }
}
