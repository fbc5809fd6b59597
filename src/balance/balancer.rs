//! The `LoadBalancer` actor: one per node, shared by every evaluation
//! supervisor on it. A child of the node root.
//!
//! Takes `SetMembers` from the membership actor (the live nodes and the load
//! their heartbeats carry: slots, busy ones, environments built) and
//! `Place`/`Release` from the supervisors; answers with the node that takes
//! each task, in the order its policy hands tasks out. It adds the tasks it handed out itself to
//! the load heartbeats report, since heartbeats lag behind its own
//! assignments. If it dies, supervisors cannot dispatch until it is restarted;
//! nothing is lost, since it holds only estimates.

use std::collections::BTreeMap;

use actix::prelude::*;

use super::policy::{NodeLoad, Policy, TaskHint};

/// The live nodes as membership sees them; nodes not listed are gone.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetMembers(pub Vec<NodeLoad>);

/// Places waiting tasks: offers them slots in the order the policy gives,
/// each on the node it chooses and counted against it, until no slot is
/// free. Answers each placed task as its index in `tasks` and its node, in
/// the order placed; the others wait (the caller offers them again later).
#[derive(Message)]
#[rtype(result = "Vec<(usize, String)>")]
pub struct Place {
    pub tasks: Vec<TaskHint>,
    /// Nodes not to use, e.g. one that just refused a task.
    pub exclude: Vec<String>,
}

/// A task placed by `Place` on this node has ended or moved.
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
    /// Environments built on it, from its last heartbeat.
    envs: Vec<String>,
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
            .map(|(addr, e)| NodeLoad {
                addr: addr.clone(),
                slots: e.slots,
                busy: e.reported.max(e.assigned),
                envs: e.envs.clone(),
            })
            .collect()
    }
}

impl Actor for LoadBalancer {
    type Context = Context<Self>;
}

crate::panics_when_told!(LoadBalancer);

impl Handler<SetMembers> for LoadBalancer {
    type Result = ();

    fn handle(&mut self, SetMembers(members): SetMembers, _: &mut Context<Self>) {
        let mut nodes = BTreeMap::new();
        for m in members {
            let assigned = self.nodes.get(&m.addr).map_or(0, |e| e.assigned);
            nodes.insert(m.addr, Entry { slots: m.slots, reported: m.busy, assigned, envs: m.envs });
        }
        self.nodes = nodes;
    }
}

impl Handler<Place> for LoadBalancer {
    type Result = MessageResult<Place>;

    fn handle(&mut self, msg: Place, _: &mut Context<Self>) -> Self::Result {
        let mut placed = Vec::new();
        for i in self.policy.order(&msg.tasks) {
            let candidates: Vec<NodeLoad> =
                self.loads().into_iter().filter(|n| !msg.exclude.contains(&n.addr)).collect();
            // A policy declines only when no slot is free: later tasks would find none either.
            let Some(pick) = self.policy.choose(&candidates, &msg.tasks[i]) else {
                break;
            };
            let addr = candidates[pick].addr.clone();
            if let Some(e) = self.nodes.get_mut(&addr) {
                e.assigned += 1;
            }
            placed.push((i, addr));
        }
        MessageResult(placed)
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
    use crate::balance::policy::{LeastConnections, LongestFirst};

    fn node(addr: &str, slots: u32, busy: u32) -> NodeLoad {
        NodeLoad { addr: addr.into(), slots, busy, envs: vec![] }
    }

    fn balancer() -> Addr<LoadBalancer> {
        LoadBalancer::new(Box::new(LeastConnections::default())).start()
    }

    /// Places one task of unknown length and environment.
    async fn assign(lb: &Addr<LoadBalancer>, exclude: &[&str]) -> Option<String> {
        let exclude = exclude.iter().map(|n| n.to_string()).collect();
        let placed = lb.send(Place { tasks: vec![TaskHint::default()], exclude }).await.unwrap();
        placed.into_iter().next().map(|(_, node)| node)
    }

    fn task(estimate_ms: u64, env: Option<&str>) -> TaskHint {
        TaskHint { estimate_ms: Some(estimate_ms), env: env.map(String::from), project: String::new(), project_ms: 0 }
    }

    #[actix::test]
    async fn spreads_tasks_by_free_share_then_refuses_when_full() {
        let lb = balancer();
        lb.send(SetMembers(vec![node("a", 1, 0), node("b", 2, 0)])).await.unwrap();
        let mut picks = Vec::new();
        while let Some(addr) = assign(&lb, &[]).await {
            picks.push(addr);
        }
        picks.sort();
        assert_eq!(picks, vec!["a", "b", "b"]);
        lb.send(Release("b".into())).await.unwrap();
        assert_eq!(assign(&lb, &[]).await, Some("b".into()));
    }

    #[actix::test]
    async fn heartbeat_load_counts_when_above_own_assignments() {
        let lb = balancer();
        lb.send(SetMembers(vec![node("a", 2, 2), node("b", 2, 0)])).await.unwrap();
        assert_eq!(assign(&lb, &[]).await, Some("b".into()));
        assert_eq!(assign(&lb, &[]).await, Some("b".into()));
        assert_eq!(assign(&lb, &[]).await, None);
    }

    #[actix::test]
    async fn own_assignments_survive_a_heartbeat_and_gone_nodes_are_dropped() {
        let lb = balancer();
        lb.send(SetMembers(vec![node("a", 1, 0), node("b", 1, 0)])).await.unwrap();
        let first = assign(&lb, &[]).await.unwrap();
        // A heartbeat that has not seen the task yet does not free the slot.
        lb.send(SetMembers(vec![node("a", 1, 0), node("b", 1, 0)])).await.unwrap();
        let second = assign(&lb, &[]).await.unwrap();
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
        assert_eq!(assign(&lb, &[]).await, Some("a".into()));
        // The heartbeat sees the task running, then the task ends.
        lb.send(SetMembers(vec![node("a", 1, 1)])).await.unwrap();
        lb.send(Release("a".into())).await.unwrap();
        assert_eq!(assign(&lb, &[]).await, Some("a".into()));
        assert_eq!(assign(&lb, &[]).await, None);
    }

    #[actix::test]
    async fn excluded_nodes_are_skipped() {
        let lb = balancer();
        lb.send(SetMembers(vec![node("a", 4, 0), node("b", 1, 0)])).await.unwrap();
        assert_eq!(assign(&lb, &["a"]).await, Some("b".into()));
    }

    #[actix::test]
    async fn longest_first_hands_the_free_slots_to_the_longest_tasks() {
        let lb = LoadBalancer::new(Box::new(LongestFirst::default())).start();
        lb.send(SetMembers(vec![node("a", 1, 0), node("b", 1, 0)])).await.unwrap();
        let tasks = vec![task(100, None), task(9000, None), task(2000, None)];
        let placed = lb.send(Place { tasks, exclude: vec![] }).await.unwrap();
        let order: Vec<usize> = placed.iter().map(|(i, _)| *i).collect();
        assert_eq!(order, vec![1, 2], "the two longest take the two slots; the shortest waits");
        assert_ne!(placed[0].1, placed[1].1);
    }

    #[actix::test]
    async fn longest_first_sends_tasks_where_their_environment_is_and_leaves_no_slot_idle() {
        let lb = LoadBalancer::new(Box::new(LongestFirst::default())).start();
        let holder = NodeLoad { envs: vec!["e1".into()], ..node("b", 2, 0) };
        lb.send(SetMembers(vec![node("a", 2, 0), holder])).await.unwrap();
        let tasks = vec![task(10, Some("e1")), task(30, Some("e1")), task(20, Some("e1")), task(5, Some("e2"))];
        let placed = lb.send(Place { tasks, exclude: vec![] }).await.unwrap();
        // The two longest fill the holder; the third does not wait for it.
        assert_eq!(
            placed,
            vec![(1, "b".to_string()), (2, "b".to_string()), (0, "a".to_string()), (3, "a".to_string())]
        );
        let view = lb.send(GetBalance).await.unwrap();
        assert!(view.iter().all(|n| n.busy == n.slots), "every slot is taken: {view:?}");
    }

    #[actix::test]
    async fn least_connections_keeps_the_order_given() {
        let lb = balancer();
        lb.send(SetMembers(vec![node("a", 1, 0)])).await.unwrap();
        let placed = lb.send(Place { tasks: vec![task(1, None), task(9000, None)], exclude: vec![] }).await.unwrap();
        assert_eq!(placed, vec![(0, "a".to_string())]);
    }
}
