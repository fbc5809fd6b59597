//! Balancing policies: in which order waiting tasks are offered slots, and
//! given the live nodes and their load, which node takes a task. Pure; the
//! `LoadBalancer` actor feeds them.
//!
//! `LongestFirst` (the default) is longest-processing-time-first list
//! scheduling, by project: the project whose longest expected task is the
//! longest goes first, its tasks longest first, so that no long task starts
//! last and holds the evaluation up while the other slots idle, and a
//! node's slots run a project's modules one after the other, forked from
//! the zygote of a fork server that holds the project. It sends a task
//! where its environment is built (no install, a warm fork server) when
//! such a node has a free slot, and to another free node otherwise: it
//! never leaves a slot idle to wait for a preferred node.
//! `LeastConnections` keeps the order tasks come in and looks at load alone.

use std::cmp::Reverse;

/// The policies a node can run, as `balance.policy` names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    #[default]
    LongestFirst,
    LeastConnections,
}

impl PolicyKind {
    pub fn build(self) -> Box<dyn Policy> {
        match self {
            Self::LongestFirst => Box::new(LongestFirst::default()),
            Self::LeastConnections => Box::new(LeastConnections::default()),
        }
    }
}

/// What a policy knows of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLoad {
    pub addr: String,
    pub slots: u32,
    /// Tasks running or queued on it, as best known.
    pub busy: u32,
    /// Tags of the environments built on it, from its heartbeats.
    pub envs: Vec<String>,
}

impl NodeLoad {
    fn is_free(&self) -> bool {
        self.busy < self.slots
    }
}

/// What a policy knows of one task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskHint {
    /// How long it is expected to take; none for work of unknown length that
    /// other work waits on (a collection, whose modules are not known yet).
    pub estimate_ms: Option<u64>,
    /// The tag of the environment it runs in, once its project is collected.
    pub env: Option<String>,
    /// The project it belongs to, and the longest expected module of that
    /// project, handed out or not.
    pub project: String,
    pub project_ms: u64,
}

/// Orders waiting tasks and chooses a node for each.
pub trait Policy {
    /// The order in which `tasks` are offered slots, as indices into it; by
    /// default the order they come in.
    fn order(&self, tasks: &[TaskHint]) -> Vec<usize> {
        (0..tasks.len()).collect()
    }

    /// Chooses a node for `task`; `None` only when no node has a free slot.
    fn choose(&mut self, nodes: &[NodeLoad], task: &TaskHint) -> Option<usize>;
}

/// Least connections weighted by slots: the node with the lowest busy/slots
/// share that still has a free slot. Ties go round-robin, so that equal nodes
/// take turns instead of the first one in address order taking them all.
#[derive(Debug, Default)]
pub struct LeastConnections {
    turn: usize,
}

impl LeastConnections {
    /// The least loaded free node among those `eligible` admits.
    fn pick(&mut self, nodes: &[NodeLoad], eligible: impl Fn(&NodeLoad) -> bool) -> Option<usize> {
        let open = |n: &NodeLoad| n.is_free() && eligible(n);
        // busy/slots compared as busy_a * slots_b < busy_b * slots_a, exactly.
        let best = nodes
            .iter()
            .filter(|n| open(n))
            .min_by(|a, b| (u64::from(a.busy) * u64::from(b.slots)).cmp(&(u64::from(b.busy) * u64::from(a.slots))))?;
        let tied: Vec<usize> = nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                open(n) && u64::from(n.busy) * u64::from(best.slots) == u64::from(best.busy) * u64::from(n.slots)
            })
            .map(|(i, _)| i)
            .collect();
        let pick = tied[self.turn % tied.len()];
        self.turn = self.turn.wrapping_add(1);
        Some(pick)
    }
}

impl Policy for LeastConnections {
    fn choose(&mut self, nodes: &[NodeLoad], _: &TaskHint) -> Option<usize> {
        self.pick(nodes, |_| true)
    }
}

/// Longest expected task first, a project's tasks together, to a free node
/// that holds its environment when there is one, else to the least loaded
/// free node.
#[derive(Debug, Default)]
pub struct LongestFirst {
    least: LeastConnections,
}

impl Policy for LongestFirst {
    /// Work of unknown length first (it unlocks the rest), then by project,
    /// the project of the longest module first, each project's tasks
    /// longest first; equal estimates keep their order.
    fn order(&self, tasks: &[TaskHint]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..tasks.len()).collect();
        order.sort_by_key(|&i| {
            let task = &tasks[i];
            task.estimate_ms.map(|ms| (Reverse(task.project_ms), task.project.as_str(), Reverse(ms)))
        });
        order
    }

    fn choose(&mut self, nodes: &[NodeLoad], task: &TaskHint) -> Option<usize> {
        if let Some(env) = &task.env {
            if let Some(pick) = self.least.pick(nodes, |n| n.envs.contains(env)) {
                return Some(pick);
            }
        }
        self.least.pick(nodes, |_| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(addr: &str, slots: u32, busy: u32) -> NodeLoad {
        NodeLoad { addr: addr.into(), slots, busy, envs: vec![] }
    }

    fn with_env(addr: &str, slots: u32, busy: u32, env: &str) -> NodeLoad {
        NodeLoad { envs: vec![env.into()], ..node(addr, slots, busy) }
    }

    fn task(estimate_ms: Option<u64>, env: Option<&str>) -> TaskHint {
        TaskHint { estimate_ms, env: env.map(String::from), project: String::new(), project_ms: 0 }
    }

    fn of(project: &str, project_ms: u64, estimate_ms: u64) -> TaskHint {
        TaskHint { project: project.into(), project_ms, ..task(Some(estimate_ms), None) }
    }

    #[test]
    fn picks_the_lowest_busy_share() {
        let nodes = [node("a", 2, 1), node("b", 4, 1), node("c", 1, 0)];
        // c is at 0/1, b at 1/4, a at 1/2.
        assert_eq!(LeastConnections::default().choose(&nodes, &TaskHint::default()), Some(2));
    }

    #[test]
    fn weighs_by_slots() {
        let nodes = [node("a", 1, 0), node("b", 4, 1)];
        assert_eq!(LeastConnections::default().choose(&nodes, &TaskHint::default()), Some(0));
        let nodes = [node("a", 2, 1), node("b", 4, 1)];
        assert_eq!(LeastConnections::default().choose(&nodes, &TaskHint::default()), Some(1));
    }

    #[test]
    fn full_nodes_take_nothing() {
        let nodes = [node("a", 1, 1), node("b", 2, 3)];
        for policy in [&mut LeastConnections::default() as &mut dyn Policy, &mut LongestFirst::default()] {
            assert_eq!(policy.choose(&nodes, &task(Some(5), None)), None);
            assert_eq!(policy.choose(&[], &task(Some(5), None)), None);
        }
    }

    #[test]
    fn equal_nodes_take_turns() {
        let nodes = [node("a", 1, 0), node("b", 1, 0), node("c", 1, 0)];
        let mut policy = LeastConnections::default();
        let picks: Vec<_> = (0..6).map(|_| policy.choose(&nodes, &TaskHint::default()).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn least_connections_keeps_the_order_tasks_come_in_and_ignores_environments() {
        let tasks = [task(Some(1), None), task(Some(9), None), task(None, None)];
        assert_eq!(LeastConnections::default().order(&tasks), vec![0, 1, 2]);
        let nodes = [node("a", 2, 0), with_env("b", 2, 1, "e1")];
        assert_eq!(LeastConnections::default().choose(&nodes, &task(Some(1), Some("e1"))), Some(0));
    }

    #[test]
    fn longest_first_offers_collections_then_the_longest_tasks() {
        let tasks = [task(Some(100), None), task(Some(5000), None), task(None, None), task(Some(100), None)];
        assert_eq!(LongestFirst::default().order(&tasks), vec![2, 1, 0, 3]);
    }

    #[test]
    fn longest_first_keeps_a_projects_tasks_together_the_project_of_the_longest_first() {
        // a's longest module (900) is handed out already: a stays first.
        let tasks = [
            of("a", 900, 100),
            of("b", 500, 500),
            of("a", 900, 50),
            of("b", 500, 10),
            of("c", 300, 300),
            task(None, None),
            of("a", 900, 120),
        ];
        assert_eq!(LongestFirst::default().order(&tasks), vec![5, 6, 0, 2, 1, 3, 4]);
    }

    #[test]
    fn longest_first_prefers_a_free_node_that_holds_the_environment() {
        // b is busier than a, but holds the environment and has a free slot.
        let nodes = [node("a", 2, 0), with_env("b", 2, 1, "e1")];
        let mut policy = LongestFirst::default();
        assert_eq!(policy.choose(&nodes, &task(Some(1), Some("e1"))), Some(1));
        assert_eq!(policy.choose(&nodes, &task(Some(1), Some("e2"))), Some(0), "no holder: the least loaded");
        assert_eq!(policy.choose(&nodes, &task(Some(1), None)), Some(0));
    }

    #[test]
    fn longest_first_leaves_no_slot_idle_to_wait_for_the_holder() {
        // The only holder is full: the task goes to the free node now.
        let nodes = [with_env("a", 1, 1, "e1"), node("b", 1, 0)];
        assert_eq!(LongestFirst::default().choose(&nodes, &task(Some(1), Some("e1"))), Some(1));
    }
}
