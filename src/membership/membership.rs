//! The `Membership` actor: this node's view of the cluster, a child of the
//! node root. A thin shell around the pure SWIM core (`swim.rs`): it feeds the
//! core its clock on every `Tick`, carries out the requests the core asks for
//! through its `Transport`, and answers the peer routes (`/join`, `/mystats`,
//! `/probe`). It joins through its seeds, and through the nodes multicast
//! discovery hears of (`Discovered`), when discovery is on.
//!
//! Sends the live members and their load to the load balancer (`SetMembers`)
//! and tells the registry `NodeLost` when a member dies, leaves or comes back
//! as a new incarnation, so that supervisors take back its tasks. If it dies,
//! this node stops answering probes and the others declare it dead; its view
//! is rebuilt from the seeds, or from discovery, when it is restarted.

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::join_all;
use tokio::time::Instant;

use super::model::{Ack, EventKind, IndirectAck, MemberInfo, MemberView, Meta, Ping, PingReq, Status, SwimConfig};
use super::swim::{Action, Swim};
use crate::balance::{NodeLoad, SetMembers};
use crate::config::ClusterConfig;
use crate::evaluation::supervisor::NodeLost;
use crate::executor::envs::{is_tag, MAX_ADVERTISED};
use crate::executor::{GetLoad, Load};
use crate::metrics::{KindLabel, METRICS};
use crate::peer::routes::{Join, Joined, Mystats, Probe};
use crate::peer::Peers;

/// Advances the protocol: probes, time-outs, suspicions, gossip to the balancer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Tick;

/// A peer's direct probe, `POST /mystats`.
#[derive(Message)]
#[rtype(result = "Ack")]
pub struct HandlePing(pub Ping);

/// A peer asks this node to probe another, `POST /probe`.
#[derive(Message)]
#[rtype(result = "IndirectAck")]
pub struct HandlePingReq(pub PingReq);

/// A node joins through this one, `POST /join`: answers the member list.
#[derive(Message)]
#[rtype(result = "Vec<MemberInfo>")]
pub struct HandleJoin(pub MemberInfo);

/// A node that multicast discovery heard announce itself. It is joined as a
/// seed is, unless this node already knows it — alive, suspect, or as a
/// tombstone, which SWIM's reconnect probes and the restarted node's own join
/// take care of — or tried it within `join_retry`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Discovered(pub String);

/// Every member this node knows, itself first.
#[derive(Message)]
#[rtype(result = "Vec<MemberView>")]
pub struct GetMembers;

/// Announces this node's departure; answers once the announcements are out.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave;

/// Whether this node has joined the cluster: a seed answered, or it has no
/// seeds. Until then it sees itself alone and must not act on that view.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct GetJoined;

/// This node's load, read from the executor on every tick.
#[derive(Message)]
#[rtype(result = "()")]
struct LoadRead(Load);

/// The most nodes heard through discovery that are tried within one
/// `join_retry`: announcements are not authenticated, and a flood of made-up
/// addresses must not turn into a flood of joins. Far more than a segment's
/// newcomers in one retry period, whose first joins bring in the others.
const MAX_DISCOVERING: usize = 64;

/// Where the nodes a join asks come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Seeds,
    Discovery,
}

/// Timings of the shell around the core.
#[derive(Debug, Clone)]
pub struct MembershipSettings {
    pub seeds: Vec<String>,
    /// How often the core is ticked; `None` when the owner sends `Tick`
    /// itself, as tests do to drive time.
    pub tick: Option<Duration>,
    /// How often seeds are tried again until one answers.
    pub join_retry: Duration,
    /// Time-out of a direct probe, `POST /mystats`.
    pub probe_timeout: Duration,
    /// Time-out of an indirect probe, `POST /probe`.
    pub indirect_timeout: Duration,
}

impl MembershipSettings {
    /// The settings `[cluster]` asks for, on node `me`, with its SWIM timings.
    pub fn from_config(c: &ClusterConfig, me: &str, swim: &SwimConfig) -> Self {
        Self {
            seeds: c.seeds.iter().filter(|s| *s != me).cloned().collect(),
            // Several ticks a period, so that time-outs are noticed promptly.
            tick: Some(Duration::from_millis((c.probe_interval_ms / 5).max(10))),
            join_retry: Duration::from_millis(c.join_retry_ms),
            probe_timeout: Duration::from_millis(swim.probe_timeout_ms),
            indirect_timeout: Duration::from_millis(swim.indirect_timeout_ms()),
        }
    }
}

pub struct Membership {
    swim: Swim,
    settings: MembershipSettings,
    peers: Peers,
    /// This node's executor, whose load rides on every probe.
    load: Recipient<GetLoad>,
    /// The load balancer, told the live members after every tick.
    balancer: Recipient<SetMembers>,
    /// The registry, told of members whose tasks are lost.
    on_lost: Recipient<NodeLost>,
    /// Origin of the core's milliseconds.
    clock: Instant,
    joined: bool,
    last_join_try: Option<Instant>,
    /// Nodes heard through discovery and when they were last tried: an
    /// unreachable one announces itself every interval and must not be joined
    /// that often. Entries older than `join_retry` are dropped; at most
    /// `MAX_DISCOVERING` stay.
    discovering: HashMap<String, Instant>,
}

/// The collaborators of the membership actor.
pub struct MembershipLinks {
    pub peers: Peers,
    pub load: Recipient<GetLoad>,
    pub balancer: Recipient<SetMembers>,
    pub on_lost: Recipient<NodeLost>,
}

impl Membership {
    pub fn new(swim: Swim, settings: MembershipSettings, links: MembershipLinks) -> Self {
        let joined = settings.seeds.is_empty();
        Self {
            swim,
            settings,
            peers: links.peers,
            load: links.load,
            balancer: links.balancer,
            on_lost: links.on_lost,
            clock: Instant::now(),
            joined,
            last_join_try: None,
            discovering: HashMap::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn perform(&mut self, actions: Vec<Action>, ctx: &mut Context<Self>) {
        let (probe_timeout, indirect_timeout) = (self.settings.probe_timeout, self.settings.indirect_timeout);
        for action in actions {
            match action {
                Action::Probe { id, target, ping } => {
                    let call = self.peers.call_within::<Mystats>(&target, &ping, probe_timeout);
                    ctx.spawn(call.into_actor(self).map(move |answer, act, ctx| {
                        let now = act.now_ms();
                        match answer {
                            Ok(ack) => act.swim.on_ack(now, id, ack),
                            Err(e) => {
                                log::debug!("probe of {target} failed: {e}");
                                let more = act.swim.on_probe_failed(now, id);
                                act.perform(more, ctx);
                            }
                        }
                    }));
                }
                Action::ProbeRequest { id, via, req } => {
                    let call = self.peers.call_within::<Probe>(&via, &req, indirect_timeout);
                    ctx.spawn(call.into_actor(self).map(move |answer, act, _| {
                        let now = act.now_ms();
                        match answer {
                            Ok(reply) => act.swim.on_indirect_ack(now, id, reply),
                            Err(_) => act.swim.on_indirect_failed(now, id),
                        }
                    }));
                }
            }
        }
    }

    fn try_join(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        if self.joined || self.last_join_try.is_some_and(|t| now - t < self.settings.join_retry) {
            return;
        }
        self.last_join_try = Some(now);
        let seeds = self.settings.seeds.clone();
        self.join(&seeds, Via::Seeds, ctx);
    }

    /// `POST /join`s each of `targets` and takes in every answer's member list.
    fn join(&mut self, targets: &[String], via: Via, ctx: &mut Context<Self>) {
        let me = self.swim.info();
        let calls: Vec<_> = targets.iter().map(|target| self.peers.call::<Join>(target, &me)).collect();
        ctx.spawn(join_all(calls).into_actor(self).map(move |answers, act, _| {
            let now = act.now_ms();
            let mut answered = false;
            for answer in answers {
                match answer {
                    Ok(Joined { members }) => {
                        act.swim.joined(now, members);
                        answered = true;
                    }
                    Err(e) => log::warn!("join: {e}"),
                }
            }
            if answered {
                // Only a seed's answer ends the retries: a node found by
                // discovery may belong to another cluster than the seeds.
                act.joined |= via == Via::Seeds;
                log::info!("node {} joined: {} members alive", act.swim.info().address, act.swim.alive().len());
            }
        }));
    }

    /// Hands the view to the balancer and the losses to the registry.
    fn publish(&mut self) {
        for event in self.swim.drain_events() {
            log::info!("member {} (incarnation {}): {:?}", event.address, event.incarnation, event.kind);
            let kind = format!("{:?}", event.kind).to_lowercase();
            METRICS.membership_changes.get_or_create(&KindLabel { kind }).inc();
            if matches!(event.kind, EventKind::Dead | EventKind::Left | EventKind::Rejoined) {
                self.on_lost.do_send(NodeLost(event.address));
            }
        }
        let live: Vec<NodeLoad> = self
            .swim
            .members()
            .into_iter()
            .filter(|m| m.status == Status::Alive)
            .map(|m| {
                // A peer's list is held to what this node's own would be.
                let envs = m.meta.envs.into_iter().filter(|t| is_tag(t)).take(MAX_ADVERTISED).collect();
                NodeLoad { addr: m.address, slots: m.meta.slots, busy: m.meta.busy, envs }
            })
            .collect();
        self.balancer.do_send(SetMembers(live));
    }
}

impl Actor for Membership {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(every) = self.settings.tick {
            ctx.run_interval(every, |_, ctx| ctx.notify(Tick));
            ctx.notify(Tick);
        }
    }
}

crate::panics_when_told!(Membership);

impl Handler<Tick> for Membership {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        let load = self.load.send(GetLoad);
        ctx.spawn(load.into_actor(self).map(|load, _, ctx| {
            if let Ok(load) = load {
                ctx.notify(LoadRead(load));
            }
        }));
        self.try_join(ctx);
        let actions = self.swim.tick(self.now_ms());
        self.perform(actions, ctx);
        self.publish();
    }
}

impl Handler<LoadRead> for Membership {
    type Result = ();

    fn handle(&mut self, LoadRead(load): LoadRead, _: &mut Context<Self>) {
        let meta = Meta {
            slots: u32::try_from(load.slots).unwrap_or(u32::MAX),
            busy: u32::try_from(load.busy + load.queued).unwrap_or(u32::MAX),
            boot: self.swim.info().meta.boot,
            envs: load.envs,
        };
        self.swim.set_meta(meta);
    }
}

impl Handler<HandlePing> for Membership {
    type Result = MessageResult<HandlePing>;

    fn handle(&mut self, HandlePing(ping): HandlePing, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.swim.handle_ping(self.now_ms(), ping))
    }
}

impl Handler<HandlePingReq> for Membership {
    type Result = ResponseActFuture<Self, IndirectAck>;

    fn handle(&mut self, HandlePingReq(req): HandlePingReq, _: &mut Context<Self>) -> Self::Result {
        let ping = self.swim.handle_ping_req(self.now_ms(), &req);
        let timeout = self.settings.probe_timeout;
        let call = self.peers.call_within::<Mystats>(&req.target, &ping, timeout);
        Box::pin(call.into_actor(self).map(move |answer, act, _| {
            let now = act.now_ms();
            act.swim.indirect_reply(now, &req, answer.ok())
        }))
    }
}

impl Handler<HandleJoin> for Membership {
    type Result = MessageResult<HandleJoin>;

    fn handle(&mut self, HandleJoin(joiner): HandleJoin, _: &mut Context<Self>) -> Self::Result {
        let members = self.swim.handle_join(self.now_ms(), joiner);
        self.publish();
        MessageResult(members)
    }
}

impl Handler<Discovered> for Membership {
    type Result = ();

    fn handle(&mut self, Discovered(address): Discovered, ctx: &mut Context<Self>) {
        // A node that has left joins no one: its claim would read as leaving.
        if self.swim.info().status == Status::Left || self.swim.member(&address).is_some() {
            return;
        }
        let now = Instant::now();
        let retry = self.settings.join_retry;
        self.discovering.retain(|_, tried| now - *tried < retry);
        if self.discovering.contains_key(&address) {
            return;
        }
        if self.discovering.len() >= MAX_DISCOVERING {
            log::debug!("discovered {address}: not joined, {MAX_DISCOVERING} others tried within the join retry");
            return;
        }
        log::info!("discovered {address}: joining it");
        self.discovering.insert(address.clone(), now);
        self.join(&[address], Via::Discovery, ctx);
    }
}

impl Handler<GetMembers> for Membership {
    type Result = MessageResult<GetMembers>;

    fn handle(&mut self, _: GetMembers, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.swim.members())
    }
}

impl Handler<GetJoined> for Membership {
    type Result = bool;

    fn handle(&mut self, _: GetJoined, _: &mut Context<Self>) -> bool {
        self.joined
    }
}

impl Handler<Leave> for Membership {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Leave, _: &mut Context<Self>) -> Self::Result {
        let timeout = self.settings.probe_timeout;
        let calls: Vec<_> = self
            .swim
            .leave()
            .into_iter()
            .filter_map(|action| match action {
                Action::Probe { target, ping, .. } => Some(self.peers.call_within::<Mystats>(&target, &ping, timeout)),
                Action::ProbeRequest { .. } => None,
            })
            .collect();
        log::info!("node {} leaving: telling {} members", self.swim.info().address, calls.len());
        Box::pin(join_all(calls).into_actor(self).map(|_, _, _| ()))
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use crate::membership::model::MemberView;
    use crate::membership::swim::SwimConfig;
    use crate::peer::routes::{self, Route};
    use crate::testing::{serve, settle, SimNet};

    /// The target of every join sent, reached or not.
    fn joins(net: &SimNet) -> Vec<String> {
        net.sent().into_iter().filter(|s| s.path == routes::Join::PATTERN).map(|s| s.to).collect()
    }

    /// Stands in for the executor, the balancer and the registry of one node.
    #[derive(Default)]
    struct Recorder {
        live: Vec<String>,
        lost: Vec<String>,
        /// The environments the balancer was told each live node holds.
        envs: Vec<Vec<String>>,
    }

    impl Actor for Recorder {
        type Context = Context<Self>;
    }

    impl Handler<GetLoad> for Recorder {
        type Result = MessageResult<GetLoad>;
        fn handle(&mut self, _: GetLoad, _: &mut Context<Self>) -> Self::Result {
            MessageResult(Load { slots: 2, busy: 1, queued: 0, envs: vec!["0123456789abcdef".into()] })
        }
    }

    impl Handler<SetMembers> for Recorder {
        type Result = ();
        fn handle(&mut self, SetMembers(live): SetMembers, _: &mut Context<Self>) {
            self.envs = live.iter().map(|n| n.envs.clone()).collect();
            self.live = live.into_iter().map(|n| n.addr).collect();
        }
    }

    impl Handler<NodeLost> for Recorder {
        type Result = ();
        fn handle(&mut self, NodeLost(addr): NodeLost, _: &mut Context<Self>) {
            self.lost.push(addr);
        }
    }

    #[derive(Message)]
    #[rtype(result = "(Vec<String>, Vec<String>)")]
    struct Seen;

    impl Handler<Seen> for Recorder {
        type Result = MessageResult<Seen>;
        fn handle(&mut self, _: Seen, _: &mut Context<Self>) -> Self::Result {
            MessageResult((self.live.clone(), self.lost.clone()))
        }
    }

    #[derive(Message)]
    #[rtype(result = "Vec<Vec<String>>")]
    struct SeenEnvs;

    impl Handler<SeenEnvs> for Recorder {
        type Result = MessageResult<SeenEnvs>;
        fn handle(&mut self, _: SeenEnvs, _: &mut Context<Self>) -> Self::Result {
            MessageResult(self.envs.clone())
        }
    }

    struct Node {
        addr: Addr<Membership>,
        recorder: Addr<Recorder>,
    }

    fn start(net: &Rc<SimNet>, name: &str, incarnation: u64, seeds: &[&str]) -> Node {
        let recorder = Recorder::default().start();
        let meta = Meta { slots: 2, busy: 0, boot: incarnation, envs: vec![] };
        let swim = Swim::new(name, incarnation, meta, SwimConfig::default(), incarnation);
        let settings = MembershipSettings {
            seeds: seeds.iter().map(|s| s.to_string()).collect(),
            tick: None,
            join_retry: Duration::from_millis(500),
            probe_timeout: Duration::from_millis(250),
            indirect_timeout: Duration::from_millis(500),
        };
        let links = MembershipLinks {
            peers: net.peers(name),
            load: recorder.clone().recipient(),
            balancer: recorder.clone().recipient(),
            on_lost: recorder.clone().recipient(),
        };
        let addr = Membership::new(swim, settings, links).start();
        net.serve(name, serve::membership(addr.clone()));
        Node { addr, recorder }
    }

    /// Advances the paused clock by `ms` in steps of 50 ms, ticking every node.
    async fn run_for(nodes: &[&Node], ms: u64) {
        for _ in 0..ms / 50 {
            tokio::time::advance(Duration::from_millis(50)).await;
            for n in nodes {
                n.addr.send(Tick).await.unwrap();
            }
            settle().await;
        }
    }

    async fn status_of(node: &Node, of: &str) -> Option<Status> {
        let members: Vec<MemberView> = node.addr.send(GetMembers).await.unwrap();
        members.into_iter().find(|m| m.address == of).map(|m| m.status)
    }

    /// Three nodes joined through "a", a second after they started.
    async fn three_nodes(net: &Rc<SimNet>) -> (Node, Node, Node) {
        let a = start(net, "a", 1, &[]);
        let b = start(net, "b", 1, &["a"]);
        let c = start(net, "c", 1, &["a"]);
        run_for(&[&a, &b, &c], 1000).await;
        (a, b, c)
    }

    #[actix::test]
    async fn nodes_join_through_a_seed_and_see_each_other() {
        tokio::time::pause();
        let net = SimNet::new();
        let (a, b, c) = three_nodes(&net).await;
        for node in [&a, &b, &c] {
            for other in ["a", "b", "c"] {
                assert_eq!(status_of(node, other).await, Some(Status::Alive));
            }
            let (mut live, lost) = node.recorder.send(Seen).await.unwrap();
            live.sort();
            assert_eq!(live, vec!["a", "b", "c"]);
            assert!(lost.is_empty());
            let envs = node.recorder.send(SeenEnvs).await.unwrap();
            assert_eq!(
                envs,
                vec![vec!["0123456789abcdef".to_string()]; 3],
                "each node's environments reach the balancers"
            );
        }
    }

    #[actix::test]
    async fn a_silent_node_is_dead_everywhere_within_five_seconds_and_its_work_is_lost() {
        tokio::time::pause();
        let net = SimNet::new();
        let (a, b, _c) = three_nodes(&net).await;
        net.set_down("c", true);
        run_for(&[&a, &b], 5000).await;
        for node in [&a, &b] {
            assert_eq!(status_of(node, "c").await, Some(Status::Dead));
            let (mut live, lost) = node.recorder.send(Seen).await.unwrap();
            live.sort();
            assert_eq!(live, vec!["a", "b"]);
            assert_eq!(lost, vec!["c"], "supervisors are told once");
        }
    }

    #[actix::test]
    async fn a_node_that_leaves_is_left_not_dead() {
        tokio::time::pause();
        let net = SimNet::new();
        let (a, b, c) = three_nodes(&net).await;
        c.addr.send(Leave).await.unwrap();
        net.set_down("c", true);
        run_for(&[&a, &b], 5000).await;
        for node in [&a, &b] {
            assert_eq!(status_of(node, "c").await, Some(Status::Left));
            assert_eq!(node.recorder.send(Seen).await.unwrap().1, vec!["c"]);
        }
    }

    #[actix::test]
    async fn a_restarted_node_rejoins_and_its_old_work_is_lost() {
        tokio::time::pause();
        let net = SimNet::new();
        let a = start(&net, "a", 1, &[]);
        let b = start(&net, "b", 1, &["a"]);
        run_for(&[&a, &b], 1000).await;
        // b restarts at once, before anyone declares it dead: a new process
        // with a new boot and a higher incarnation takes its address.
        let b2 = start(&net, "b", 50, &["a"]);
        run_for(&[&a, &b2], 1000).await;
        assert_eq!(status_of(&a, "b").await, Some(Status::Alive));
        assert_eq!(a.recorder.send(Seen).await.unwrap().1, vec!["b"]);
        let views: Vec<MemberView> = a.addr.send(GetMembers).await.unwrap();
        let b_view = views.iter().find(|m| m.address == "b").unwrap();
        assert!(b_view.incarnation >= 50);
        assert_eq!(b_view.meta.boot, 50);
        drop(b);
    }

    #[actix::test]
    async fn nodes_without_seeds_join_a_discovered_node_and_see_each_other() {
        tokio::time::pause();
        let net = SimNet::new();
        let a = start(&net, "a", 1, &[]);
        let b = start(&net, "b", 1, &[]);
        run_for(&[&a, &b], 1000).await;
        assert_eq!(status_of(&a, "b").await, None, "no seeds, no discovery: alone");
        a.addr.send(Discovered("b".into())).await.unwrap();
        run_for(&[&a, &b], 1000).await;
        for node in [&a, &b] {
            for other in ["a", "b"] {
                assert_eq!(status_of(node, other).await, Some(Status::Alive));
            }
            let (mut live, _) = node.recorder.send(Seen).await.unwrap();
            live.sort();
            assert_eq!(live, vec!["a", "b"]);
        }
    }

    #[actix::test]
    async fn discovering_itself_or_a_known_member_sends_no_join() {
        tokio::time::pause();
        let net = SimNet::new();
        let (a, b, c) = three_nodes(&net).await;
        let before = joins(&net).len();
        for heard in ["a", "b", "c"] {
            a.addr.send(Discovered(heard.into())).await.unwrap();
        }
        run_for(&[&a, &b, &c], 500).await;
        assert_eq!(joins(&net).len(), before);
    }

    #[actix::test]
    async fn an_unreachable_discovered_node_is_tried_again_only_after_join_retry() {
        tokio::time::pause();
        let net = SimNet::new();
        let a = start(&net, "a", 1, &[]);
        for _ in 0..5 {
            a.addr.send(Discovered("ghost".into())).await.unwrap();
            run_for(&[&a], 50).await;
        }
        assert_eq!(joins(&net), vec!["ghost"], "announced five times within join_retry: tried once");
        run_for(&[&a], 500).await;
        a.addr.send(Discovered("ghost".into())).await.unwrap();
        settle().await;
        assert_eq!(joins(&net), vec!["ghost", "ghost"]);
        assert_eq!(status_of(&a, "ghost").await, None, "a failed join adds no member");
    }

    #[actix::test]
    async fn a_flood_of_discovered_addresses_is_joined_only_up_to_the_bound() {
        tokio::time::pause();
        let net = SimNet::new();
        let a = start(&net, "a", 1, &[]);
        for i in 0..MAX_DISCOVERING + 100 {
            a.addr.send(Discovered(format!("ghost-{i}"))).await.unwrap();
        }
        settle().await;
        assert_eq!(joins(&net).len(), MAX_DISCOVERING);
        run_for(&[&a], 500).await;
        a.addr.send(Discovered("ghost-late".into())).await.unwrap();
        settle().await;
        assert_eq!(joins(&net).last().map(String::as_str), Some("ghost-late"), "room again after join_retry");
    }
}
