//! Balancing policies: given the live nodes and their load, which node takes
//! the next task. Pure; the `LoadBalancer` actor feeds it.

/// What a policy knows of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLoad {
    pub addr: String,
    pub slots: u32,
    /// Tasks running or queued on it, as best known.
    pub busy: u32,
}

/// Chooses a node for the next task; `None` when no node should take one now.
pub trait Policy {
    fn choose(&mut self, nodes: &[NodeLoad]) -> Option<usize>;
}

/// Least connections weighted by slots: the node with the lowest busy/slots
/// share that still has a free slot. Ties go round-robin, so that equal nodes
/// take turns instead of the first one in address order taking them all.
#[derive(Debug, Default)]
pub struct LeastConnections {
    turn: usize,
}

impl Policy for LeastConnections {
    fn choose(&mut self, nodes: &[NodeLoad]) -> Option<usize> {
        let free = |n: &NodeLoad| n.busy < n.slots;
        // busy/slots compared as busy_a * slots_b < busy_b * slots_a, exactly.
        let best = nodes
            .iter()
            .filter(|n| free(n))
            .min_by(|a, b| (u64::from(a.busy) * u64::from(b.slots)).cmp(&(u64::from(b.busy) * u64::from(a.slots))))?;
        let tied: Vec<usize> = nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                free(n) && u64::from(n.busy) * u64::from(best.slots) == u64::from(best.busy) * u64::from(n.slots)
            })
            .map(|(i, _)| i)
            .collect();
        let pick = tied[self.turn % tied.len()];
        self.turn = self.turn.wrapping_add(1);
        Some(pick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(addr: &str, slots: u32, busy: u32) -> NodeLoad {
        NodeLoad { addr: addr.into(), slots, busy }
    }

    #[test]
    fn picks_the_lowest_busy_share() {
        let nodes = [node("a", 2, 1), node("b", 4, 1), node("c", 1, 0)];
        // c is at 0/1, b at 1/4, a at 1/2.
        assert_eq!(LeastConnections::default().choose(&nodes), Some(2));
    }

    #[test]
    fn weighs_by_slots() {
        let nodes = [node("a", 1, 0), node("b", 4, 1)];
        assert_eq!(LeastConnections::default().choose(&nodes), Some(0));
        let nodes = [node("a", 2, 1), node("b", 4, 1)];
        assert_eq!(LeastConnections::default().choose(&nodes), Some(1));
    }

    #[test]
    fn full_nodes_take_nothing() {
        let nodes = [node("a", 1, 1), node("b", 2, 3)];
        assert_eq!(LeastConnections::default().choose(&nodes), None);
        assert_eq!(LeastConnections::default().choose(&[]), None);
    }

    #[test]
    fn equal_nodes_take_turns() {
        let nodes = [node("a", 1, 0), node("b", 1, 0), node("c", 1, 0)];
        let mut policy = LeastConnections::default();
        let picks: Vec<_> = (0..6).map(|_| policy.choose(&nodes).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }
}
