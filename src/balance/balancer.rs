//! The `LoadBalancer` actor: one per node, shared by every evaluation
//! supervisor on it. A child of the node root.
//!
//! Takes `SetMembers` from the membership actor (the live nodes and the load
//! their heartbeats carry) and `Assign`/`Release` from the supervisors; answers
//! with the node that takes a task. It adds the tasks it handed out itself to
//! the load heartbeats report, since heartbeats lag behind its own
//! assignments. If it dies, supervisors cannot dispatch until it is restarted;
//! nothing is lost, since it holds only estimates.

use std::collections::BTreeMap;

use actix::prelude::*;

use super::policy::{NodeLoad, Policy};

/// The live nodes as membership sees them; nodes not listed are gone.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetMembers(pub Vec<NodeLoad>);

/// Chooses a node for one task and counts the task against it; `None` when
/// every node is full (the caller retries later).
#[derive(Message)]
#[rtype(result = "Option<String>")]
pub struct Assign {
    /// Nodes not to use, e.g. one that just refused the task.
    pub exclude: Vec<String>,
}

/// A task handed out by `Assign` to this node has ended or moved.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Release(pub String);

/// The balancer's view: every node with the load it assumes.
#[derive(Message)]
#[rtype(result = "Vec<NodeLoad>")]
pub struct GetBalance;

#[derive(Debug, Clone, Default)]
struct Entry {
    slots: u32,
    /// Load from the node's last heartbeat.
    reported: u32,
    /// Tasks this balancer handed to it that have not ended.
    assigned: u32,
}

pub struct LoadBalancer {
    policy: Box<dyn Policy>,
    nodes: BTreeMap<String, Entry>,
}

impl LoadBalancer {
    pub fn new(policy: Box<dyn Policy>) -> Self {
        Self { policy, nodes: BTreeMap::new() }
    }

    fn loads(&self) -> Vec<NodeLoad> {
        self.nodes
            .iter()
            .map(|(addr, e)| NodeLoad { addr: addr.clone(), slots: e.slots, busy: e.reported.max(e.assigned) })
            .collect()
    }
}

impl Actor for LoadBalancer {
    type Context = Context<Self>;
}

impl Handler<SetMembers> for LoadBalancer {
    type Result = ();

    fn handle(&mut self, SetMembers(members): SetMembers, _: &mut Context<Self>) {
        let mut nodes = BTreeMap::new();
        for m in members {
            let assigned = self.nodes.get(&m.addr).map_or(0, |e| e.assigned);
            nodes.insert(m.addr, Entry { slots: m.slots, reported: m.busy, assigned });
        }
        self.nodes = nodes;
    }
}

impl Handler<Assign> for LoadBalancer {
    type Result = Option<String>;

    fn handle(&mut self, msg: Assign, _: &mut Context<Self>) -> Option<String> {
        let candidates: Vec<NodeLoad> = self.loads().into_iter().filter(|n| !msg.exclude.contains(&n.addr)).collect();
        let pick = self.policy.choose(&candidates)?;
        let addr = candidates[pick].addr.clone();
        if let Some(e) = self.nodes.get_mut(&addr) {
            e.assigned += 1;
        }
        Some(addr)
    }
}

impl Handler<Release> for LoadBalancer {
    type Result = ();

    fn handle(&mut self, Release(addr): Release, _: &mut Context<Self>) {
        if let Some(e) = self.nodes.get_mut(&addr) {
            e.assigned = e.assigned.saturating_sub(1);
            // The last heartbeat counted this task too: until the next one,
            // the slot it held is free, rather than a dispatch tick later.
            e.reported = e.reported.saturating_sub(1);
        }
    }
}

impl Handler<GetBalance> for LoadBalancer {
    type Result = MessageResult<GetBalance>;

    fn handle(&mut self, _: GetBalance, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.loads())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::policy::LeastConnections;

    fn node(addr: &str, slots: u32, busy: u32) -> NodeLoad {
        NodeLoad { addr: addr.into(), slots, busy }
    }

    fn balancer() -> Addr<LoadBalancer> {
        LoadBalancer::new(Box::new(LeastConnections::default())).start()
    }

    #[actix::test]
    async fn spreads_tasks_by_free_share_then_refuses_when_full() {
        let lb = balancer();
        lb.send(SetMembers(vec![node("a", 1, 0), node("b", 2, 0)])).await.unwrap();
        let mut picks = Vec::new();
        while let Some(addr) = lb.send(Assign { exclude: vec![] }).await.unwrap() {
            picks.push(addr);
        }
        picks.sort();
        assert_eq!(picks, vec!["a", "b", "b"]);
        lb.send(Release("b".into())).await.unwrap();
        assert_eq!(lb.send(Assign { exclude: vec![] }).await.unwrap(), Some("b".into()));
    }

    #[actix::test]
    async fn heartbeat_load_counts_when_above_own_assignments() {
        let lb = balancer();
        lb.send(SetMembers(vec![node("a", 2, 2), node("b", 2, 0)])).await.unwrap();
        assert_eq!(lb.send(Assign { exclude: vec![] }).await.unwrap(), Some("b".into()));
        assert_eq!(lb.send(Assign { exclude: vec![] }).await.unwrap(), Some("b".into()));
        assert_eq!(lb.send(Assign { exclude: vec![] }).await.unwrap(), None);
    }

    #[actix::test]
    async fn own_assignments_survive_a_heartbeat_and_gone_nodes_are_dropped() {
        let lb = balancer();
        lb.send(SetMembers(vec![node("a", 1, 0), node("b", 1, 0)])).await.unwrap();
        let first = lb.send(Assign { exclude: vec![] }).await.unwrap().unwrap();
        // A heartbeat that has not seen the task yet does not free the slot.
        lb.send(SetMembers(vec![node("a", 1, 0), node("b", 1, 0)])).await.unwrap();
        let second = lb.send(Assign { exclude: vec![] }).await.unwrap().unwrap();
        assert_ne!(first, second);
        lb.send(SetMembers(vec![node("a", 1, 0)])).await.unwrap();
        let view = lb.send(GetBalance).await.unwrap();
        assert_eq!(view.len(), 1);
        assert_eq!(view[0].addr, "a");
    }

    #[actix::test]
    async fn a_released_slot_is_free_before_the_next_heartbeat() {
        let lb = balancer();
        lb.send(SetMembers(vec![node("a", 1, 0)])).await.unwrap();
        assert_eq!(lb.send(Assign { exclude: vec![] }).await.unwrap(), Some("a".into()));
        // The heartbeat sees the task running, then the task ends.
        lb.send(SetMembers(vec![node("a", 1, 1)])).await.unwrap();
        lb.send(Release("a".into())).await.unwrap();
        assert_eq!(lb.send(Assign { exclude: vec![] }).await.unwrap(), Some("a".into()));
        assert_eq!(lb.send(Assign { exclude: vec![] }).await.unwrap(), None);
    }

    #[actix::test]
    async fn excluded_nodes_are_skipped() {
        let lb = balancer();
        lb.send(SetMembers(vec![node("a", 4, 0), node("b", 1, 0)])).await.unwrap();
        assert_eq!(lb.send(Assign { exclude: vec!["a".into()] }).await.unwrap(), Some("b".into()));
    }
}
