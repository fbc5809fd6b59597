//! The `Replicator` actor: one per evaluation, a child of its
//! `EvaluationSupervisor`. It holds the evaluation's journal — a snapshot of
//! the store at the supervisor's start, then every write the supervisor
//! makes — and keeps `want` live nodes, picked by rendezvous hashing, holding
//! all of it: each tick it sends every replica the entries it has not
//! acknowledged, in order and in batches, and replaces replicas that died.
//!
//! Takes `Append`, `Flush` and `Stop` from its supervisor, `NodeLost`
//! (forwarded by the supervisor) and its own `Tick`; sends `POST /replicate` and tells the
//! supervisor `Superseded` when a replica knows a later supervisor. If it
//! dies, the replicas stop getting writes; the supervisor's store still has
//! them all, and a new replicator sends them again from a new journal.

use std::collections::BTreeMap;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::model::{ReplicaOp, Replicate, ReplicateAnswer};
use super::placement;
use crate::balance::GetBalance;
use crate::evaluation::supervisor::NodeLost;
use crate::peer::{routes, Peers};

/// Adds the supervisor's latest writes, already committed to its store.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Append(pub Vec<ReplicaOp>);

/// Answers once every replica holds the whole journal as it is now (true),
/// or at once with false when there is no replica to hold it.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Flush;

/// The replicas and how much of the journal each acknowledged.
#[derive(Message)]
#[rtype(result = "Vec<(String, u64)>")]
pub struct GetReplicas;

/// The supervisor has stopped: so does its replicator.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stop;

/// Refreshes the replica set and sends what each replica lacks.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Tick;

/// A replica knows a later supervisor of this evaluation: this one must stop.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct Superseded {
    pub epoch: u64,
    pub supervisor: String,
}

#[derive(Debug, Clone)]
pub struct ReplicatorSettings {
    pub evaluation: Uuid,
    /// This node: the supervisor, never its own replica.
    pub me: String,
    /// The supervisor's term, sent with every write.
    pub epoch: u64,
    /// How many replicas to keep.
    pub want: usize,
    /// Most entries in one request.
    pub batch: usize,
    /// `None` when the owner sends `Tick` itself, as tests do.
    pub tick: Option<Duration>,
}

/// What the replicator knows of one replica.
#[derive(Debug, Default)]
struct Replica {
    /// Entries the replica holds, as it last said.
    acked: u64,
    /// A request to it is on its way.
    busy: bool,
}

pub struct Replicator {
    settings: ReplicatorSettings,
    /// Names this journal to the replicas.
    journal_id: Uuid,
    journal: Vec<ReplicaOp>,
    replicas: BTreeMap<String, Replica>,
    /// The load balancer, asked for the live members on every tick.
    members: Recipient<GetBalance>,
    peers: Peers,
    /// The supervisor, told when a replica knows a later one.
    on_superseded: Recipient<Superseded>,
    /// `Flush`es waiting for every replica to catch up.
    flushes: Vec<oneshot::Sender<bool>>,
}

impl Replicator {
    pub fn new(
        settings: ReplicatorSettings,
        snapshot: Vec<ReplicaOp>,
        members: Recipient<GetBalance>,
        peers: Peers,
        on_superseded: Recipient<Superseded>,
    ) -> Self {
        Self {
            settings,
            journal_id: Uuid::new_v4(),
            journal: snapshot,
            replicas: BTreeMap::new(),
            members,
            peers,
            on_superseded,
            flushes: Vec::new(),
        }
    }

    fn len(&self) -> u64 {
        self.journal.len() as u64
    }

    fn push(&mut self, to: String, ctx: &mut Context<Self>) {
        let len = self.len();
        let Some(replica) = self.replicas.get_mut(&to) else { return };
        if replica.busy || replica.acked >= len {
            return;
        }
        replica.busy = true;
        let from = replica.acked;
        let start = usize::try_from(from).unwrap_or(usize::MAX);
        let ops: Vec<ReplicaOp> = self.journal.iter().skip(start).take(self.settings.batch).cloned().collect();
        let body = Replicate {
            evaluation: self.settings.evaluation,
            journal: self.journal_id,
            epoch: self.settings.epoch,
            supervisor: self.settings.me.clone(),
            from,
            ops,
        };
        let call = self.peers.call::<routes::Replicate>(&to, &body);
        ctx.spawn(call.into_actor(self).map(move |answer, act, ctx| {
            let len = act.len();
            let Some(replica) = act.replicas.get_mut(&to) else { return };
            replica.busy = false;
            match answer {
                Ok(ReplicateAnswer::Applied { have }) => {
                    let progressed = have > from;
                    replica.acked = have.min(len);
                    act.settle_flushes();
                    // A replica that moved on gets the rest now; one that
                    // reported a gap gets it from where it stands next tick.
                    if progressed {
                        act.push(to, ctx);
                    }
                }
                Ok(ReplicateAnswer::Superseded { epoch, supervisor }) => {
                    log::warn!(
                        "evaluation {}: {to} knows supervisor {supervisor} in term {epoch}",
                        act.settings.evaluation
                    );
                    act.on_superseded.do_send(Superseded { epoch, supervisor });
                }
                Err(e) => log::debug!("evaluation {}: replica {to} not reached: {e}", act.settings.evaluation),
            }
        }));
    }

    fn settle_flushes(&mut self) {
        let len = self.len();
        if self.replicas.is_empty() || self.replicas.values().all(|r| r.acked >= len) {
            let held = !self.replicas.is_empty();
            for waiter in self.flushes.drain(..) {
                let _ = waiter.send(held);
            }
        }
    }

    fn replicate_all(&mut self, ctx: &mut Context<Self>) {
        let targets: Vec<String> = self.replicas.keys().cloned().collect();
        for to in targets {
            self.push(to, ctx);
        }
    }
}

impl Actor for Replicator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(every) = self.settings.tick {
            ctx.run_interval(every, |_, ctx| ctx.notify(Tick));
            ctx.notify(Tick);
        }
    }
}

crate::panics_when_told!(Replicator);

impl Handler<Tick> for Replicator {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        let members = self.members.send(GetBalance);
        ctx.wait(members.into_actor(self).map(|members, act, ctx| {
            let Ok(members) = members else { return };
            let live: Vec<String> = members.into_iter().map(|m| m.addr).collect();
            act.replicas.retain(|node, _| live.contains(node));
            let current: Vec<String> = act.replicas.keys().cloned().collect();
            let s = &act.settings;
            for node in placement::top_up(s.evaluation, &s.me, &live, &current, s.want) {
                log::info!("evaluation {}: replicating to {node}", s.evaluation);
                act.replicas.insert(node, Replica::default());
            }
            act.settle_flushes();
            act.replicate_all(ctx);
        }));
    }
}

impl Handler<Append> for Replicator {
    type Result = ();

    fn handle(&mut self, Append(ops): Append, ctx: &mut Context<Self>) {
        self.journal.extend(ops);
        self.replicate_all(ctx);
    }
}

impl Handler<Flush> for Replicator {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, _: Flush, _: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.flushes.push(tx);
        self.settle_flushes();
        Box::pin(async move { rx.await.unwrap_or(false) })
    }
}

impl Handler<NodeLost> for Replicator {
    type Result = ();

    fn handle(&mut self, NodeLost(node): NodeLost, ctx: &mut Context<Self>) {
        // A replica that restarted keeps its database: if it is picked again
        // it reports how far it got and receives only the rest.
        if self.replicas.remove(&node).is_some() {
            ctx.notify(Tick);
        }
    }
}

impl Handler<Stop> for Replicator {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<GetReplicas> for Replicator {
    type Result = MessageResult<GetReplicas>;

    fn handle(&mut self, _: GetReplicas, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.replicas.iter().map(|(n, r)| (n.clone(), r.acked)).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::rc::Rc;

    use super::*;
    use crate::balance::{LeastConnections, LoadBalancer, NodeLoad, SetMembers};
    use crate::evaluation::model::EvaluationStatus;
    use crate::replication::model::ReplicaSummary;
    use crate::store::{GetSummary, Store};
    use crate::testing::fixtures::{self, result};
    use crate::testing::{serve, SimNet};

    const ME: &str = "n0";

    /// Keeps the `Superseded` notices.
    #[derive(Default)]
    struct Probe(Vec<Superseded>);

    impl Actor for Probe {
        type Context = Context<Self>;
    }

    impl Handler<Superseded> for Probe {
        type Result = ();
        fn handle(&mut self, msg: Superseded, _: &mut Context<Self>) {
            self.0.push(msg);
        }
    }

    #[derive(Message)]
    #[rtype(result = "Vec<Superseded>")]
    struct Taken;

    impl Handler<Taken> for Probe {
        type Result = MessageResult<Taken>;
        fn handle(&mut self, _: Taken, _: &mut Context<Self>) -> Self::Result {
            MessageResult(self.0.clone())
        }
    }

    struct Cluster {
        id: Uuid,
        net: Rc<SimNet>,
        stores: HashMap<String, Addr<Store>>,
        balancer: Addr<LoadBalancer>,
        probe: Addr<Probe>,
    }

    impl Cluster {
        /// `ME` and `peers` more nodes, all live.
        async fn new(peers: usize) -> Self {
            let (net, mut stores) = (SimNet::new(), HashMap::new());
            let mut live = vec![NodeLoad { addr: ME.into(), slots: 1, busy: 0, envs: vec![] }];
            for i in 1..=peers {
                let store = Store::in_memory().unwrap().start();
                net.serve(&format!("n{i}"), serve::store(store.clone()));
                stores.insert(format!("n{i}"), store);
                live.push(NodeLoad { addr: format!("n{i}"), slots: 1, busy: 0, envs: vec![] });
            }
            let balancer = LoadBalancer::new(Box::new(LeastConnections::default())).start();
            balancer.send(SetMembers(live)).await.unwrap();
            Self { id: Uuid::new_v4(), net, stores, balancer, probe: Probe::default().start() }
        }

        fn replicator(&self, epoch: u64, snapshot: Vec<ReplicaOp>) -> Addr<Replicator> {
            let settings =
                ReplicatorSettings { evaluation: self.id, me: ME.into(), epoch, want: 2, batch: 2, tick: None };
            let members = self.balancer.clone().recipient();
            Replicator::new(settings, snapshot, members, self.net.peers(ME), self.probe.clone().recipient()).start()
        }

        async fn summary(&self, node: &str) -> Option<ReplicaSummary> {
            self.stores[node].send(GetSummary(self.id)).await.unwrap().unwrap()
        }

        async fn set_live(&self, nodes: &[&str]) {
            let live = nodes.iter().map(|n| NodeLoad { addr: (*n).into(), slots: 1, busy: 0, envs: vec![] }).collect();
            self.balancer.send(SetMembers(live)).await.unwrap();
        }
    }

    fn snapshot(id: Uuid, epoch: u64) -> Vec<ReplicaOp> {
        fixtures::snapshot(id, epoch, ME)
    }

    /// Replicas in the order they were picked, with what each acknowledged.
    async fn replicas(replicator: &Addr<Replicator>) -> Vec<(String, u64)> {
        replicator.send(GetReplicas).await.unwrap()
    }

    /// Flushes, giving up after `secs` of (paused) time.
    async fn flush(replicator: &Addr<Replicator>, secs: u64) -> Option<bool> {
        tokio::time::timeout(Duration::from_secs(secs), replicator.send(Flush)).await.ok().map(Result::unwrap)
    }

    #[actix::test]
    async fn the_journal_reaches_exactly_two_replicas_in_batches() {
        tokio::time::pause();
        let cluster = Cluster::new(3).await;
        let replicator = cluster.replicator(0, snapshot(cluster.id, 0));
        replicator.send(Append(vec![result(0), result(1)])).await.unwrap();
        replicator.send(Tick).await.unwrap();
        assert_eq!(flush(&replicator, 5).await, Some(true));

        let held = replicas(&replicator).await;
        assert_eq!(held.iter().map(|(_, acked)| *acked).collect::<Vec<_>>(), vec![5, 5]);
        for node in ["n1", "n2", "n3"] {
            let summary = cluster.summary(node).await;
            if held.iter().any(|(n, _)| n == node) {
                let summary = summary.unwrap();
                assert_eq!((summary.finished, summary.epoch, summary.status), (2, 0, EvaluationStatus::Running));
            } else {
                assert_eq!(summary, None);
            }
        }
    }

    #[actix::test]
    async fn a_replica_that_missed_writes_catches_up_from_where_it_stood() {
        tokio::time::pause();
        let cluster = Cluster::new(2).await;
        let replicator = cluster.replicator(0, snapshot(cluster.id, 0));
        replicator.send(Tick).await.unwrap();
        assert_eq!(flush(&replicator, 5).await, Some(true));

        cluster.net.set_down("n2", true);
        replicator.send(Append(vec![result(0), result(1), result(2)])).await.unwrap();
        assert_eq!(flush(&replicator, 5).await, None, "n2 is down: the flush cannot complete");
        assert_eq!(cluster.summary("n1").await.unwrap().finished, 3);
        assert_eq!(cluster.summary("n2").await.unwrap().finished, 0);

        cluster.net.set_down("n2", false);
        replicator.send(Tick).await.unwrap();
        assert_eq!(flush(&replicator, 5).await, Some(true));
        assert_eq!(cluster.summary("n2").await.unwrap().finished, 3);
        assert_eq!(replicas(&replicator).await, vec![("n1".into(), 6), ("n2".into(), 6)]);
    }

    #[actix::test]
    async fn a_new_journal_is_sent_whole_and_applied_once() {
        tokio::time::pause();
        let cluster = Cluster::new(2).await;
        let first = cluster.replicator(0, snapshot(cluster.id, 0));
        first.send(Append(vec![result(0), result(1)])).await.unwrap();
        first.send(Tick).await.unwrap();
        assert_eq!(flush(&first, 5).await, Some(true));

        // The supervisor restarted: its snapshot holds what it stored before.
        let mut again = snapshot(cluster.id, 0);
        again.extend([result(0), result(1), result(2)]);
        let second = cluster.replicator(0, again);
        second.send(Tick).await.unwrap();
        assert_eq!(flush(&second, 5).await, Some(true));
        assert_eq!(replicas(&second).await, vec![("n1".into(), 6), ("n2".into(), 6)]);
        assert_eq!(cluster.summary("n1").await.unwrap().finished, 3);
    }

    #[actix::test]
    async fn a_lost_replica_is_replaced_and_the_new_one_gets_everything() {
        tokio::time::pause();
        let cluster = Cluster::new(3).await;
        let replicator = cluster.replicator(0, snapshot(cluster.id, 0));
        replicator.send(Append(vec![result(0)])).await.unwrap();
        replicator.send(Tick).await.unwrap();
        assert_eq!(flush(&replicator, 5).await, Some(true));
        let before: Vec<String> = replicas(&replicator).await.into_iter().map(|(n, _)| n).collect();
        let spare = ["n1", "n2", "n3"].into_iter().find(|n| !before.iter().any(|b| b == n)).unwrap();

        let lost = before[0].clone();
        let live: Vec<&str> = [ME, "n1", "n2", "n3"].into_iter().filter(|n| *n != lost).collect();
        cluster.set_live(&live).await;
        replicator.send(NodeLost(lost.clone())).await.unwrap();
        assert_eq!(flush(&replicator, 5).await, Some(true));

        let after: Vec<String> = replicas(&replicator).await.into_iter().map(|(n, _)| n).collect();
        assert!(after.contains(&spare.to_string()) && !after.contains(&lost), "{after:?}");
        assert_eq!(cluster.summary(spare).await.unwrap().finished, 1);
    }

    #[actix::test]
    async fn a_replica_that_knows_a_later_term_tells_the_supervisor_to_stop() {
        tokio::time::pause();
        let cluster = Cluster::new(1).await;
        let later = cluster.replicator(2, snapshot(cluster.id, 2));
        later.send(Tick).await.unwrap();
        assert_eq!(flush(&later, 5).await, Some(true));

        let stale = cluster.replicator(1, snapshot(cluster.id, 1));
        stale.send(Append(vec![result(0)])).await.unwrap();
        stale.send(Tick).await.unwrap();
        assert_eq!(flush(&stale, 5).await, None);
        let notices = cluster.probe.send(Taken).await.unwrap();
        assert_eq!(notices, vec![Superseded { epoch: 2, supervisor: ME.into() }]);
        assert_eq!(cluster.summary("n1").await.unwrap().finished, 0, "the stale term wrote nothing");
    }

    #[actix::test]
    async fn with_no_other_node_a_flush_answers_false_at_once() {
        tokio::time::pause();
        let cluster = Cluster::new(0).await;
        let replicator = cluster.replicator(0, snapshot(cluster.id, 0));
        replicator.send(Tick).await.unwrap();
        assert_eq!(flush(&replicator, 5).await, Some(false));
    }

    #[actix::test]
    async fn a_stopped_replicator_sends_nothing_more() {
        tokio::time::pause();
        let cluster = Cluster::new(2).await;
        let replicator = cluster.replicator(0, snapshot(cluster.id, 0));
        replicator.send(Stop).await.unwrap();
        assert!(replicator.send(Tick).await.is_err(), "the actor is gone");
        assert_eq!(cluster.summary("n1").await, None);
    }
}
