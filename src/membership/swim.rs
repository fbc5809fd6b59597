//! The pure core of cluster membership, under the `Membership` actor: one
//! node's SWIM failure detector and gossip (Das, Gupta, Motivala 2002; as in
//! HashiCorp memberlist and Serf). It owns no clock and no socket, in the
//! manner of raft-rs's `tick`/`step`: the actor calls [`Swim::tick`] on a
//! timer, hands it each answer or failure of the requests it asked for, and
//! hands it each request a peer sends; [`Swim`] answers with [`Action`]s
//! (HTTP requests to make), replies to send back, and [`MemberEvent`]s for
//! the load balancer and the evaluation supervisors.
//!
//! Each protocol period the node probes one member, round-robin over a list
//! shuffled every round, so probe traffic per node stays constant however
//! large the cluster. A member that fails the direct probe is probed through
//! `indirect_probes` helpers; failing those too it becomes suspect, and dead
//! after `suspicion_timeout_ms` unless it refutes with a higher incarnation.
//! Every change rides on probes and their answers a bounded number of times.
//!
//! All of it is in memory and rebuilt by joining a seed: a node that dies
//! loses only its view, which its peers hold too.

use std::collections::BTreeMap;

use super::model::{
    retransmit_limit, Ack, EventKind, GossipQueue, IndirectAck, MemberEvent, MemberInfo, MemberView, Meta, Ping,
    PingReq, ProbeId, SplitMix64, Stats, Status,
};
pub use super::model::{Action, SwimConfig};

/// One member other than this node, as this node sees it.
#[derive(Debug)]
struct Member {
    /// The greatest claim heard about it.
    info: MemberInfo,
    last_seen_ms: u64,
    /// When a suspect turns dead, on this node's clock.
    suspect_deadline_ms: Option<u64>,
}

#[derive(Debug)]
struct Probe {
    target: String,
    stage: Stage,
    /// When the current stage fails if nothing has answered.
    deadline_ms: u64,
}

#[derive(Debug, PartialEq, Eq)]
enum Stage {
    Direct,
    /// Waiting on this many helpers; one `ok` is enough.
    Indirect {
        waiting: usize,
    },
    /// A probe of a member held dead, in case it is back (Serf's reconnect):
    /// failing it changes nothing.
    Reconnect,
}

/// One node's view of the cluster and its part in the protocol.
#[derive(Debug)]
pub struct Swim {
    /// This node's own claim: `Alive`, or `Left` once it has left.
    me: MemberInfo,
    config: SwimConfig,
    /// Seeded by the actor, so that a simulation replays exactly.
    rng: SplitMix64,
    /// Everyone else, tombstones included: a dead member's incarnation must be
    /// remembered for a restart to be told from its past self.
    members: BTreeMap<String, Member>,
    /// Claims still to be piggybacked on outgoing messages.
    gossip: GossipQueue,
    /// This round's probe order; `true` marks the one dead member tried for
    /// reconnection this round.
    round: Vec<(String, bool)>,
    /// Index in `round` of the next member to probe.
    next: usize,
    /// When the next period starts; `None` until the first tick.
    next_probe_ms: Option<u64>,
    /// Probes awaiting an answer: usually one, more when a probe's indirect
    /// leg outlasts a period.
    probes: BTreeMap<ProbeId, Probe>,
    last_id: u64,
    /// Changes not yet taken by the actor with `drain_events`.
    events: Vec<MemberEvent>,
    stats: Stats,
    /// The latest time given by the actor, for this node's own `last_seen_ms`.
    now_ms: u64,
}

impl Swim {
    /// A node alone in its cluster. `incarnation` should exceed any earlier
    /// run's (the wall clock in ms will do); a lower one is corrected by
    /// refutation once peers tell the node about its past.
    pub fn new(me: &str, incarnation: u64, meta: Meta, config: SwimConfig, seed: u64) -> Self {
        Self {
            me: MemberInfo { address: me.to_string(), status: Status::Alive, incarnation, meta },
            config,
            rng: SplitMix64(seed),
            members: BTreeMap::new(),
            gossip: GossipQueue::default(),
            round: Vec::new(),
            next: 0,
            next_probe_ms: None,
            probes: BTreeMap::new(),
            last_id: 0,
            events: Vec::new(),
            stats: Stats::default(),
            now_ms: 0,
        }
    }

    /// Advances the node to `now_ms`: turns expired suspicions into deaths,
    /// fails probes past their time-out (starting the indirect leg of a direct
    /// probe), and starts a probe when a period is due. Call it every
    /// 100 ms or so; a period starts at the first tick at or after it is due.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Action> {
        self.now_ms = now_ms;
        self.expire_suspicions(now_ms);
        let overdue: Vec<ProbeId> =
            self.probes.iter().filter(|(_, p)| p.deadline_ms <= now_ms).map(|(id, _)| *id).collect();
        let mut actions = Vec::new();
        for id in overdue {
            actions.extend(self.fail_probe(now_ms, id));
        }
        if self.me.status == Status::Left {
            return actions;
        }
        let interval = self.config.probe_interval_ms;
        match self.next_probe_ms {
            // A random phase, so that nodes started together do not probe in
            // lockstep.
            None => self.next_probe_ms = Some(now_ms.saturating_add(self.rng.below(interval.max(1)))),
            Some(due) if now_ms >= due => {
                // Keeps the period's phase when ticks jitter, without a burst
                // of catch-up probes after a stall.
                let next = if now_ms - due >= interval {
                    now_ms.saturating_add(interval)
                } else {
                    due.saturating_add(interval)
                };
                self.next_probe_ms = Some(next);
                actions.extend(self.start_probe(now_ms));
            }
            Some(_) => {}
        }
        actions
    }

    /// A direct probe was answered (also a late answer, after the indirect leg
    /// started, or the answer to a leave notice).
    pub fn on_ack(&mut self, now_ms: u64, id: ProbeId, ack: Ack) {
        self.now_ms = now_ms;
        self.stats.acks_received += 1;
        self.receive(now_ms, ack.from, ack.updates);
        if let Some(probe) = self.probes.remove(&id) {
            self.seen(now_ms, &probe.target);
        }
    }

    /// A direct probe failed at the transport (error or time-out): starts the
    /// indirect leg. Returns the `ProbeRequest`s to make.
    pub fn on_probe_failed(&mut self, now_ms: u64, id: ProbeId) -> Vec<Action> {
        self.now_ms = now_ms;
        // A failure of the direct leg reported after the indirect leg started
        // (the core's own deadline came first) is old news.
        match self.probes.get(&id).map(|p| &p.stage) {
            Some(Stage::Direct | Stage::Reconnect) => self.fail_probe(now_ms, id),
            _ => Vec::new(),
        }
    }

    /// A helper answered a `ProbeRequest`.
    pub fn on_indirect_ack(&mut self, now_ms: u64, id: ProbeId, reply: IndirectAck) {
        self.now_ms = now_ms;
        self.stats.indirect_acks_received += 1;
        self.receive(now_ms, reply.from, reply.updates);
        self.indirect_answer(now_ms, id, reply.ok);
    }

    /// A `ProbeRequest` failed at the transport: that helper counts as a no.
    pub fn on_indirect_failed(&mut self, now_ms: u64, id: ProbeId) {
        self.now_ms = now_ms;
        self.indirect_answer(now_ms, id, false);
    }

    /// Answers a peer's probe (`POST /mystats`).
    pub fn handle_ping(&mut self, now_ms: u64, ping: Ping) -> Ack {
        self.now_ms = now_ms;
        self.stats.pings_received += 1;
        let sender = ping.from.address.clone();
        self.receive(now_ms, ping.from, ping.updates);
        Ack { from: self.me.clone(), updates: self.piggyback(&sender) }
    }

    /// Takes a peer's indirect probe request (`POST /probe`) and returns the
    /// ping to send to `req.target` (`POST /mystats`, time-out
    /// `probe_timeout_ms`). The actor then answers the requester with
    /// [`Swim::indirect_reply`]. Keeps no state, so a relay the actor drops
    /// leaks nothing.
    pub fn handle_ping_req(&mut self, now_ms: u64, req: &PingReq) -> Ping {
        self.now_ms = now_ms;
        self.stats.ping_reqs_received += 1;
        self.receive(now_ms, req.from.clone(), req.updates.clone());
        self.stats.relayed_pings_sent += 1;
        self.ping_to(&req.target)
    }

    /// The answer to a relayed probe: `ack` is the target's answer to the
    /// ping from [`Swim::handle_ping_req`], `None` if it failed or timed out.
    pub fn indirect_reply(&mut self, now_ms: u64, req: &PingReq, ack: Option<Ack>) -> IndirectAck {
        self.now_ms = now_ms;
        let ok = ack.is_some();
        if let Some(ack) = ack {
            self.stats.acks_received += 1;
            self.receive(now_ms, ack.from, ack.updates);
        }
        IndirectAck { from: self.me.clone(), ok, updates: self.piggyback(&req.from.address) }
    }

    /// The seed side of `POST /join`: records the joiner and answers every
    /// claim this node holds, itself first, tombstones included, so that a
    /// restarted joiner learns of its own death and outbids it.
    pub fn handle_join(&mut self, now_ms: u64, joiner: MemberInfo) -> Vec<MemberInfo> {
        self.now_ms = now_ms;
        self.stats.joins_received += 1;
        self.apply(now_ms, joiner, Source::FirstHand);
        std::iter::once(self.me.clone()).chain(self.members.values().map(|m| m.info.clone())).collect()
    }

    /// The joiner side of `POST /join`: takes in the seed's member list.
    pub fn joined(&mut self, now_ms: u64, members: Vec<MemberInfo>) {
        self.now_ms = now_ms;
        for info in members {
            self.apply(now_ms, info, Source::Sync);
        }
    }

    /// Leaves the cluster: marks this node left, stops probing, and returns
    /// probes that carry the news to `λ·⌈log10(n + 1)⌉` random members at once,
    /// as many as gossip would have reached, since the node is about to stop.
    /// Their answers may go to [`Swim::on_ack`] or be dropped.
    pub fn leave(&mut self) -> Vec<Action> {
        if self.me.status == Status::Left {
            return Vec::new();
        }
        self.me.status = Status::Left;
        self.gossip.push(self.me.clone());
        self.probes.clear();
        let mut peers = self.addresses(|s| s == Status::Alive);
        let fanout = retransmit_limit(self.config.retransmit_mult, self.live_count()) as usize;
        self.rng.shuffle(&mut peers);
        peers.truncate(fanout);
        peers
            .into_iter()
            .map(|target| {
                self.stats.pings_sent += 1;
                Action::Probe { id: self.new_id(), ping: self.ping_to(&target), target }
            })
            .collect()
    }

    /// Sets this node's metadata. A change raises the incarnation, so that the
    /// new claim supersedes the old everywhere, and is gossiped as well as
    /// carried on this node's probes and acks.
    pub fn set_meta(&mut self, meta: Meta) {
        // A node that has left keeps its last claim: a new one would need a
        // new incarnation, which would read as coming back.
        if meta == self.me.meta || self.me.status != Status::Alive {
            return;
        }
        self.me.meta = meta;
        self.me.incarnation = self.me.incarnation.saturating_add(1);
        self.gossip.push(self.me.clone());
    }

    /// Every member this node knows, itself first, tombstones included.
    pub fn members(&self) -> Vec<MemberView> {
        std::iter::once(MemberView::new(&self.me, self.now_ms))
            .chain(self.members.values().map(|m| MemberView::new(&m.info, m.last_seen_ms)))
            .collect()
    }

    /// One member's view, this node included.
    pub fn member(&self, address: &str) -> Option<MemberView> {
        if address == self.me.address {
            return Some(MemberView::new(&self.me, self.now_ms));
        }
        self.members.get(address).map(|m| MemberView::new(&m.info, m.last_seen_ms))
    }

    /// Addresses of the members held alive, this node included unless it has
    /// left. Suspects are not in it: the load balancer should not pick them.
    pub fn alive(&self) -> Vec<String> {
        let mut alive = self.addresses(|s| s == Status::Alive);
        if self.me.status == Status::Alive {
            alive.insert(0, self.me.address.clone());
        }
        alive
    }

    /// The changes seen since the last call, oldest first.
    pub fn drain_events(&mut self) -> Vec<MemberEvent> {
        std::mem::take(&mut self.events)
    }

    /// This node's own claim: what it sends to `POST /join`.
    pub fn info(&self) -> MemberInfo {
        self.me.clone()
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Claims waiting to be piggybacked.
    pub fn pending_gossip(&self) -> usize {
        self.gossip.len()
    }

    fn start_probe(&mut self, now_ms: u64) -> Option<Action> {
        let mut reshuffled = false;
        loop {
            if self.next >= self.round.len() {
                // At most one new round per period: when every member already
                // has a probe in flight there is nothing to start.
                if reshuffled {
                    return None;
                }
                self.reshuffle();
                reshuffled = true;
                if self.round.is_empty() {
                    return None;
                }
            }
            let (target, reconnect) = self.round[self.next].clone();
            self.next += 1;
            let stage = match self.members.get(&target).map(|m| m.info.status) {
                Some(Status::Alive | Status::Suspect) => Stage::Direct,
                Some(Status::Dead) if reconnect => Stage::Reconnect,
                _ => continue,
            };
            if self.probes.values().any(|p| p.target == target) {
                continue;
            }
            let id = self.new_id();
            self.probes.insert(
                id,
                Probe {
                    target: target.clone(),
                    stage,
                    deadline_ms: now_ms.saturating_add(self.config.probe_timeout_ms),
                },
            );
            self.stats.pings_sent += 1;
            let ping = self.ping_to(&target);
            return Some(Action::Probe { id, target, ping });
        }
    }

    /// A new round: every live member once, in a fresh random order (SWIM
    /// §4.3: bounded time to first detection), plus one dead member at a
    /// random place, so that a member wrongly declared dead (a healed
    /// partition) is found again.
    fn reshuffle(&mut self) {
        let mut round: Vec<(String, bool)> =
            self.addresses(|s| matches!(s, Status::Alive | Status::Suspect)).into_iter().map(|a| (a, false)).collect();
        self.rng.shuffle(&mut round);
        let dead = self.addresses(|s| s == Status::Dead);
        if !dead.is_empty() {
            let pick = dead[self.rng.below(dead.len() as u64) as usize].clone();
            let at = self.rng.below(round.len() as u64 + 1) as usize;
            round.insert(at, (pick, true));
        }
        self.round = round;
        self.next = 0;
    }

    /// A member that came to life joins the current round at a random place
    /// among those not yet probed (memberlist does the same), so it is
    /// probed this round without disturbing the others.
    fn insert_into_round(&mut self, address: &str) {
        let rest = &self.round[self.next.min(self.round.len())..];
        if rest.iter().any(|(a, r)| a == address && !r) {
            return;
        }
        let at = self.next + self.rng.below(rest.len() as u64 + 1) as usize;
        self.round.insert(at, (address.to_string(), false));
    }

    /// The current stage of a probe failed.
    fn fail_probe(&mut self, now_ms: u64, id: ProbeId) -> Vec<Action> {
        let Some(probe) = self.probes.get(&id) else {
            return Vec::new();
        };
        let target = probe.target.clone();
        if probe.stage != Stage::Direct {
            // A reconnect that fails changes nothing; a failed indirect leg
            // makes the target suspect.
            if self.probes.remove(&id).is_some_and(|p| p.stage != Stage::Reconnect) {
                self.suspect(now_ms, &target);
            }
            return Vec::new();
        }
        let helpers = self.helpers(&target);
        if helpers.is_empty() {
            self.probes.remove(&id);
            self.suspect(now_ms, &target);
            return Vec::new();
        }
        let deadline_ms = now_ms.saturating_add(self.config.indirect_timeout_ms());
        if let Some(probe) = self.probes.get_mut(&id) {
            probe.stage = Stage::Indirect { waiting: helpers.len() };
            probe.deadline_ms = deadline_ms;
        }
        helpers
            .into_iter()
            .map(|via| {
                self.stats.ping_reqs_sent += 1;
                let req = PingReq { from: self.me.clone(), target: target.clone(), updates: self.piggyback(&via) };
                Action::ProbeRequest { id, via, req }
            })
            .collect()
    }

    fn indirect_answer(&mut self, now_ms: u64, id: ProbeId, ok: bool) {
        let Some(probe) = self.probes.get_mut(&id) else {
            return;
        };
        let Stage::Indirect { waiting } = &mut probe.stage else {
            return;
        };
        *waiting = waiting.saturating_sub(1);
        if ok || *waiting == 0 {
            if let Some(probe) = self.probes.remove(&id) {
                if ok {
                    self.seen(now_ms, &probe.target);
                } else {
                    self.suspect(now_ms, &probe.target);
                }
            }
        }
    }

    /// Up to `indirect_probes` random alive members other than `target`.
    fn helpers(&mut self, target: &str) -> Vec<String> {
        let mut alive = self.addresses(|s| s == Status::Alive);
        alive.retain(|a| a != target);
        self.rng.shuffle(&mut alive);
        alive.truncate(self.config.indirect_probes);
        alive
    }

    fn suspect(&mut self, now_ms: u64, target: &str) {
        if let Some(m) = self.members.get(target) {
            let claim = MemberInfo { status: Status::Suspect, ..m.info.clone() };
            self.apply(now_ms, claim, Source::Gossip);
        }
    }

    fn expire_suspicions(&mut self, now_ms: u64) {
        let expired: Vec<MemberInfo> = self
            .members
            .values()
            .filter(|m| m.info.status == Status::Suspect)
            .filter(|m| m.suspect_deadline_ms.is_some_and(|d| d <= now_ms))
            .map(|m| MemberInfo { status: Status::Dead, ..m.info.clone() })
            .collect();
        for claim in expired {
            self.apply(now_ms, claim, Source::Gossip);
        }
    }

    fn receive(&mut self, now_ms: u64, from: MemberInfo, updates: Vec<MemberInfo>) {
        self.stats.updates_received += updates.len() as u64;
        self.apply(now_ms, from, Source::FirstHand);
        for info in updates {
            self.apply(now_ms, info, Source::Gossip);
        }
    }

    /// Takes in one claim: keeps it if it supersedes what this node holds
    /// (see [`MemberInfo::supersedes`]), then reports and re-gossips it.
    fn apply(&mut self, now_ms: u64, info: MemberInfo, source: Source) {
        if info.address == self.me.address {
            self.refute(info);
            return;
        }
        let previous = self.members.get(&info.address).map(|m| m.info.clone());
        if let Some(previous) = &previous {
            if !info.supersedes(previous) {
                if source == Source::FirstHand {
                    self.seen(now_ms, &info.address);
                }
                return;
            }
        }
        let live = |s: Status| matches!(s, Status::Alive | Status::Suspect);
        if live(info.status) && !previous.as_ref().is_some_and(|p| live(p.status)) {
            self.insert_into_round(&info.address);
        }
        let rebooted = previous.as_ref().is_some_and(|p| p.meta.boot != info.meta.boot && info.status == Status::Alive);
        let change = EventKind::of_change(previous.as_ref().map(|p| p.status), info.status);
        if let Some(kind) = if rebooted { Some(EventKind::Rejoined) } else { change } {
            self.events.push(MemberEvent { address: info.address.clone(), incarnation: info.incarnation, kind });
        }
        let suspect_deadline_ms =
            (info.status == Status::Suspect).then(|| now_ms.saturating_add(self.config.suspicion_timeout_ms));
        if source != Source::Sync {
            self.gossip.push(info.clone());
        }
        self.members.insert(info.address.clone(), Member { info, last_seen_ms: now_ms, suspect_deadline_ms });
    }

    /// A claim about this node. Only this node may raise its incarnation, so
    /// a suspicion or death at or above it is denied by outbidding it (SWIM
    /// §4.2); so is a greater alive claim, left by an earlier run.
    fn refute(&mut self, info: MemberInfo) {
        if self.me.status == Status::Left {
            return;
        }
        let threat = match info.status {
            Status::Alive => info.incarnation > self.me.incarnation,
            Status::Suspect | Status::Dead | Status::Left => info.incarnation >= self.me.incarnation,
        };
        if threat {
            self.me.incarnation = info.incarnation.saturating_add(1);
            self.stats.refutations += 1;
            self.gossip.push(self.me.clone());
        }
    }

    fn seen(&mut self, now_ms: u64, address: &str) {
        if let Some(m) = self.members.get_mut(address) {
            m.last_seen_ms = now_ms;
        }
    }

    fn ping_to(&mut self, target: &str) -> Ping {
        Ping { from: self.me.clone(), updates: self.piggyback(target) }
    }

    /// The claims for one message to `to`, at most `max_piggyback`.
    fn piggyback(&mut self, to: &str) -> Vec<MemberInfo> {
        let max = self.config.max_piggyback;
        let mut out = Vec::with_capacity(max);
        // What this node holds against the recipient goes first, so that a
        // live member wrongly suspected or declared dead refutes at its next
        // contact instead of waiting for the rumour to reach it.
        if let Some(m) = self.members.get(to) {
            if matches!(m.info.status, Status::Suspect | Status::Dead) && max > 0 {
                out.push(m.info.clone());
            }
        }
        let limit = retransmit_limit(self.config.retransmit_mult, self.live_count());
        out.extend(self.gossip.take(max - out.len(), limit));
        self.stats.updates_sent += out.len() as u64;
        out
    }

    /// Members not known dead or gone, this node included: the n of the
    /// retransmit limit.
    fn live_count(&self) -> usize {
        1 + self.members.values().filter(|m| matches!(m.info.status, Status::Alive | Status::Suspect)).count()
    }

    fn addresses(&self, keep: impl Fn(Status) -> bool) -> Vec<String> {
        self.members.values().filter(|m| keep(m.info.status)).map(|m| m.info.address.clone()).collect()
    }

    fn new_id(&mut self) -> ProbeId {
        self.last_id += 1;
        ProbeId(self.last_id)
    }
}

/// Where a claim came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The sender's claim about itself: proof it was reachable just now.
    FirstHand,
    /// Piggybacked, or this node's own conclusion: spread it further.
    Gossip,
    /// A seed's member list: the cluster's settled state, not news to spread
    /// (re-gossiping a whole list would crowd out real news for a while).
    Sync,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// How often the simulated actor ticks each node.
    const TICK_MS: u64 = 100;

    fn meta() -> Meta {
        Meta { slots: 2, busy: 0, boot: 0, envs: vec![] }
    }

    fn addr(i: usize) -> String {
        format!("n{i:02}")
    }

    fn alive(address: &str, incarnation: u64) -> MemberInfo {
        MemberInfo { address: address.into(), status: Status::Alive, incarnation, meta: meta() }
    }

    /// A failure the network reports later, when the caller's time-out runs out:
    /// its direct probe, its request to a helper, or a helper's relayed probe.
    enum Timeout {
        Probe { node: String, id: ProbeId },
        Indirect { node: String, id: ProbeId },
        Relay { helper: String, requester: String, id: ProbeId, req: PingReq },
    }

    /// An in-memory network: requests are answered at once when both ends are
    /// up and the link holds; otherwise the caller hears of the failure after
    /// its time-out, the pessimistic case of a host that vanished.
    struct Sim {
        nodes: BTreeMap<String, Swim>,
        /// Killed nodes: they neither tick nor answer.
        down: BTreeSet<String>,
        /// Directed links whose requests are lost.
        cut: BTreeSet<(String, String)>,
        /// Each request is lost with this probability, in percent.
        drop_percent: u64,
        rng: SplitMix64,
        now: u64,
        later: Vec<(u64, Timeout)>,
        config: SwimConfig,
    }

    impl Sim {
        /// `n` nodes that all know each other, as after a settled join.
        fn new(n: usize, config: SwimConfig, seed: u64) -> Sim {
            let infos: Vec<MemberInfo> = (0..n).map(|i| alive(&addr(i), 0)).collect();
            let mut nodes = BTreeMap::new();
            for i in 0..n {
                let mut node = Swim::new(&addr(i), 0, meta(), config.clone(), seed * 1000 + i as u64);
                node.joined(0, infos.clone());
                node.drain_events();
                nodes.insert(addr(i), node);
            }
            Sim {
                nodes,
                down: BTreeSet::new(),
                cut: BTreeSet::new(),
                drop_percent: 0,
                rng: SplitMix64(seed),
                now: 0,
                later: Vec::new(),
                config,
            }
        }

        fn node(&mut self, a: &str) -> &mut Swim {
            self.nodes.get_mut(a).unwrap()
        }

        fn live(&self) -> Vec<String> {
            self.nodes.keys().filter(|a| !self.down.contains(*a)).cloned().collect()
        }

        fn link_ok(&mut self, from: &str, to: &str) -> bool {
            !self.down.contains(from)
                && !self.down.contains(to)
                && !self.cut.contains(&(from.to_string(), to.to_string()))
                && self.rng.below(100) >= self.drop_percent
        }

        fn send(&mut self, from: &str, action: Action) {
            let now = self.now;
            match action {
                Action::Probe { id, target, ping } => {
                    if self.link_ok(from, &target) {
                        let ack = self.node(&target).handle_ping(now, ping);
                        self.node(from).on_ack(now, id, ack);
                    } else {
                        let at = now + self.config.probe_timeout_ms;
                        self.later.push((at, Timeout::Probe { node: from.into(), id }));
                    }
                }
                Action::ProbeRequest { id, via, req } => {
                    if !self.link_ok(from, &via) {
                        let at = now + self.config.indirect_timeout_ms();
                        self.later.push((at, Timeout::Indirect { node: from.into(), id }));
                        return;
                    }
                    let ping = self.node(&via).handle_ping_req(now, &req);
                    let target = req.target.clone();
                    if self.link_ok(&via, &target) {
                        let ack = self.node(&target).handle_ping(now, ping);
                        let reply = self.node(&via).indirect_reply(now, &req, Some(ack));
                        self.node(from).on_indirect_ack(now, id, reply);
                    } else {
                        let at = now + self.config.probe_timeout_ms;
                        let requester = from.to_string();
                        self.later.push((at, Timeout::Relay { helper: via, requester, id, req }));
                    }
                }
            }
        }

        fn fire(&mut self, later: Timeout) {
            let now = self.now;
            match later {
                Timeout::Probe { node, id } if !self.down.contains(&node) => {
                    for action in self.node(&node).on_probe_failed(now, id) {
                        self.send(&node, action);
                    }
                }
                Timeout::Indirect { node, id } if !self.down.contains(&node) => {
                    self.node(&node).on_indirect_failed(now, id);
                }
                Timeout::Relay { helper, requester, id, req }
                    if !self.down.contains(&helper) && !self.down.contains(&requester) =>
                {
                    let reply = self.node(&helper).indirect_reply(now, &req, None);
                    self.node(&requester).on_indirect_ack(now, id, reply);
                }
                _ => {}
            }
        }

        fn step(&mut self) {
            self.now += TICK_MS;
            let now = self.now;
            let (due, rest): (Vec<_>, Vec<_>) =
                std::mem::take(&mut self.later).into_iter().partition(|(at, _)| *at <= now);
            self.later = rest;
            for (_, later) in due {
                self.fire(later);
            }
            for a in self.live() {
                for action in self.node(&a).tick(now) {
                    self.send(&a, action);
                }
            }
        }

        fn run_for(&mut self, ms: u64) {
            let end = self.now + ms;
            while self.now < end {
                self.step();
            }
        }

        /// Steps until `done` holds, at most `limit_ms`; the time it held.
        fn run_until(&mut self, limit_ms: u64, done: impl Fn(&Sim) -> bool) -> Option<u64> {
            let end = self.now + limit_ms;
            while self.now < end {
                self.step();
                if done(self) {
                    return Some(self.now);
                }
            }
            None
        }

        fn status(&self, viewer: &str, member: &str) -> Option<Status> {
            self.nodes[viewer].member(member).map(|m| m.status)
        }

        /// Every live node other than `member` sees it as `status`.
        fn all_see(&self, member: &str, status: Status) -> bool {
            self.live().iter().filter(|a| *a != member).all(|a| self.status(a, member) == Some(status))
        }

        fn events_about(&mut self, member: &str) -> Vec<(String, MemberEvent)> {
            let mut out = Vec::new();
            for (a, node) in self.nodes.iter_mut() {
                for e in node.drain_events() {
                    if e.address == member {
                        out.push((a.clone(), e));
                    }
                }
            }
            out
        }

        fn join(&mut self, joiner: &str, seed: &str) {
            let now = self.now;
            let info = self.node(joiner).info();
            let list = self.node(seed).handle_join(now, info);
            self.node(joiner).joined(now, list);
        }
    }

    fn ack_from(address: &str) -> Ack {
        Ack { from: alive(address, 0), updates: Vec::new() }
    }

    #[test]
    fn a_restart_before_anyone_noticed_shows_as_rejoined() {
        let meta = |boot| Meta { slots: 1, busy: 0, boot, envs: vec![] };
        let mut a = Swim::new("a", 10, meta(10), SwimConfig::default(), 1);
        let b_first = MemberInfo { address: "b".into(), status: Status::Alive, incarnation: 20, meta: meta(20) };
        a.joined(0, vec![b_first]);
        a.drain_events();
        let b_again = MemberInfo { address: "b".into(), status: Status::Alive, incarnation: 30, meta: meta(30) };
        a.handle_ping(5, Ping { from: b_again, updates: Vec::new() });
        let events = a.drain_events();
        assert_eq!(events.len(), 1);
        assert_eq!((events[0].address.as_str(), events[0].kind), ("b", EventKind::Rejoined));
    }

    #[test]
    fn probes_every_member_once_per_round_in_a_fresh_order() {
        let mut swim = Swim::new("me", 0, meta(), SwimConfig::default(), 7);
        let peers: Vec<String> = (1..=6).map(addr).collect();
        swim.joined(0, peers.iter().map(|a| alive(a, 0)).collect());
        let mut now = 0;
        let mut next_target = |swim: &mut Swim| loop {
            now += TICK_MS;
            for action in swim.tick(now) {
                if let Action::Probe { id, target, .. } = action {
                    swim.on_ack(now, id, ack_from(&target));
                    return target;
                }
            }
        };
        let mut orders = Vec::new();
        for _ in 0..4 {
            let order: Vec<String> = (0..peers.len()).map(|_| next_target(&mut swim)).collect();
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, peers, "one round probes each member exactly once");
            orders.push(order);
        }
        assert!(orders.windows(2).any(|w| w[0] != w[1]), "rounds are reshuffled");

        // A member that joins mid-round is probed within that round.
        let first = next_target(&mut swim);
        swim.handle_join(0, alive("late", 0));
        let rest: BTreeSet<String> = (0..peers.len()).map(|_| next_target(&mut swim)).collect();
        assert!(rest.contains("late") && !rest.contains(&first) && rest.len() == peers.len());
    }

    #[test]
    fn silent_member_is_suspected_then_dead_everywhere_after_the_timeout() {
        let config = SwimConfig::default();
        let mut sim = Sim::new(5, config.clone(), 1);
        sim.run_for(3000);
        let killed_at = sim.now;
        sim.down.insert(addr(3));
        let suspected =
            sim.run_until(5000, |s| s.live().iter().any(|a| s.status(a, &addr(3)) == Some(Status::Suspect))).unwrap();
        let first_dead =
            sim.run_until(5000, |s| s.live().iter().any(|a| s.status(a, &addr(3)) == Some(Status::Dead))).unwrap();
        let all_dead = sim.run_until(5000, |s| s.all_see(&addr(3), Status::Dead)).unwrap();
        assert!(first_dead - suspected >= config.suspicion_timeout_ms - TICK_MS);
        assert!(all_dead - killed_at <= 5000, "dead everywhere {} ms after the kill", all_dead - killed_at);
        let events = sim.events_about(&addr(3));
        for a in sim.live() {
            let dead = events.iter().filter(|(n, e)| *n == a && e.kind == EventKind::Dead).count();
            assert_eq!(dead, 1, "{a} reports the death once");
        }
        assert!(events.iter().any(|(_, e)| e.kind == EventKind::Suspected));
    }

    #[test]
    fn indirect_probe_keeps_a_member_alive_when_only_the_direct_path_fails() {
        let mut sim = Sim::new(5, SwimConfig::default(), 2);
        sim.cut.insert((addr(0), addr(3)));
        sim.run_for(20_000);
        assert!(sim.all_see(&addr(3), Status::Alive));
        assert!(sim.events_about(&addr(3)).is_empty(), "never suspected");
        let stats = sim.nodes[&addr(0)].stats();
        assert!(stats.ping_reqs_sent >= 3 && stats.indirect_acks_received >= 3);
    }

    #[test]
    fn suspected_live_member_refutes_and_everyone_ends_alive() {
        let mut sim = Sim::new(5, SwimConfig::default(), 3);
        sim.run_for(1000);
        let rumour = Ping {
            from: alive(&addr(1), 0),
            updates: vec![MemberInfo { status: Status::Suspect, ..alive(&addr(3), 0) }],
        };
        let now = sim.now;
        sim.node(&addr(0)).handle_ping(now, rumour);
        assert_eq!(sim.status(&addr(0), &addr(3)), Some(Status::Suspect));
        sim.run_for(10_000);
        assert!(sim.all_see(&addr(3), Status::Alive));
        assert!(sim.nodes[&addr(3)].info().incarnation >= 1);
        assert_eq!(sim.nodes[&addr(3)].stats().refutations, 1);
        let events = sim.events_about(&addr(3));
        assert!(!events.iter().any(|(_, e)| e.kind == EventKind::Dead));
        assert!(events.iter().any(|(n, e)| *n == addr(0) && e.kind == EventKind::Recovered));
    }

    #[test]
    fn restarted_member_rejoins_with_a_higher_incarnation() {
        let mut sim = Sim::new(6, SwimConfig::default(), 4);
        sim.run_for(2000);
        sim.down.insert(addr(2));
        sim.run_until(10_000, |s| s.all_see(&addr(2), Status::Dead)).unwrap();
        let died_with = sim.nodes[&addr(0)].member(&addr(2)).unwrap().incarnation;
        sim.events_about(&addr(2));

        // The new process starts from incarnation 0, below its dead past self.
        let fresh = Swim::new(&addr(2), 0, meta(), SwimConfig::default(), 99);
        sim.nodes.insert(addr(2), fresh);
        sim.down.remove(&addr(2));
        sim.join(&addr(2), &addr(0));
        sim.run_until(5000, |s| s.all_see(&addr(2), Status::Alive)).unwrap();
        let now_inc = sim.nodes[&addr(2)].info().incarnation;
        assert!(now_inc > died_with);
        let events = sim.events_about(&addr(2));
        for a in sim.live().into_iter().filter(|a| *a != addr(2)) {
            assert!(
                events.iter().any(|(n, e)| *n == a && e.kind == EventKind::Rejoined && e.incarnation > died_with),
                "{a} sees the restart"
            );
        }
        assert_eq!(sim.nodes[&addr(2)].alive().len(), 6);
    }

    #[test]
    fn graceful_leave_is_left_everywhere_not_dead() {
        let mut sim = Sim::new(6, SwimConfig::default(), 5);
        sim.run_for(2000);
        for action in sim.node(&addr(4)).leave() {
            sim.send(&addr(4), action);
        }
        assert_eq!(sim.status(&addr(4), &addr(4)), Some(Status::Left));
        sim.down.insert(addr(4));
        sim.run_for(15_000);
        assert!(sim.all_see(&addr(4), Status::Left));
        let events = sim.events_about(&addr(4));
        assert!(!events.iter().any(|(_, e)| e.kind == EventKind::Dead));
        assert!(sim.live().iter().all(|a| !sim.nodes[a].alive().contains(&addr(4))));
    }

    /// Periods until every node holds `n00`'s new metadata.
    fn periods_to_spread(n: usize, seed: u64) -> u64 {
        let config = SwimConfig::default();
        let mut sim = Sim::new(n, config.clone(), seed);
        sim.run_for(2000);
        let start = sim.now;
        let busy = Meta { slots: 2, busy: 1, boot: 0, envs: vec!["0123456789abcdef".into()] };
        sim.node(&addr(0)).set_meta(busy.clone());
        let done = sim
            .run_until(30_000, |s| s.nodes.values().all(|node| node.member(&addr(0)).unwrap().meta == busy))
            .unwrap();
        (done - start).div_ceil(config.probe_interval_ms)
    }

    #[test]
    fn gossip_reaches_all_nodes_in_logarithmic_periods() {
        for n in [8, 32, 128] {
            let worst = (1..=3).map(|seed| periods_to_spread(n, seed)).max().unwrap();
            let log2 = u64::from(usize::BITS - n.leading_zeros() - 1);
            assert!(worst <= log2 + 2, "{n} nodes: {worst} periods");
        }
    }

    #[test]
    fn piggyback_is_bounded_and_each_claim_is_sent_a_bounded_number_of_times() {
        let config = SwimConfig::default();
        let mut seed_node = Swim::new("seed", 0, meta(), config.clone(), 8);
        for i in 0..30 {
            seed_node.handle_join(0, alive(&addr(i), 0));
        }
        let limit = retransmit_limit(config.retransmit_mult, 31) as usize;
        let mut sent: BTreeMap<String, usize> = BTreeMap::new();
        for round in 0..200 {
            let ping = Ping { from: alive(&addr(round % 30), 0), updates: Vec::new() };
            let ack = seed_node.handle_ping(round as u64, ping);
            assert!(ack.updates.len() <= config.max_piggyback);
            for u in ack.updates {
                *sent.entry(u.address).or_default() += 1;
            }
        }
        assert_eq!(sent.len(), 30);
        assert!(sent.values().all(|&c| c == limit), "{sent:?}");
        assert_eq!(seed_node.pending_gossip(), 0);

        // A fresh claim goes out on the very next message.
        seed_node.handle_join(300, alive("new", 0));
        let ack = seed_node.handle_ping(301, Ping { from: alive(&addr(0), 0), updates: Vec::new() });
        assert_eq!(ack.updates[0].address, "new");
    }

    /// Requests each node sends per second, steady state.
    fn requests_per_node_per_second(n: usize) -> f64 {
        let mut sim = Sim::new(n, SwimConfig::default(), 9);
        sim.run_for(20_000);
        let sent: u64 = sim.nodes.values().map(|s| s.stats().requests_sent()).sum();
        sent as f64 / n as f64 / 20.0
    }

    #[test]
    fn probe_traffic_per_node_is_constant_as_the_cluster_grows() {
        let expected = 1000.0 / SwimConfig::default().probe_interval_ms as f64;
        for n in [4, 16, 64] {
            let rate = requests_per_node_per_second(n);
            assert!((rate - expected).abs() < expected * 0.1, "{n} nodes: {rate} requests/s per node");
        }
    }

    #[test]
    fn killed_node_is_dead_everywhere_within_five_seconds_with_defaults() {
        for n in [4, 16, 50] {
            for seed in 1..=4 {
                let mut sim = Sim::new(n, SwimConfig::default(), seed);
                sim.run_for(2000 + seed * 170);
                let killed_at = sim.now;
                let victim = addr(seed as usize % n);
                sim.down.insert(victim.clone());
                let done = sim.run_until(10_000, |s| s.all_see(&victim, Status::Dead)).unwrap();
                assert!(done - killed_at <= 5000, "{n} nodes, seed {seed}: {} ms", done - killed_at);
            }
        }
    }

    #[test]
    fn lossy_links_cause_suspicions_that_are_refuted_not_deaths() {
        let mut sim = Sim::new(10, SwimConfig::default(), 10);
        sim.drop_percent = 20;
        sim.run_for(60_000);
        let mut suspicions = 0;
        for a in sim.live() {
            assert_eq!(sim.nodes[&a].alive().len(), 10, "{a} holds everyone alive");
            let events = sim.nodes.get_mut(&a).unwrap().drain_events();
            assert!(!events.iter().any(|e| e.kind == EventKind::Dead));
            suspicions += events.iter().filter(|e| e.kind == EventKind::Suspected).count();
        }
        let refutations: u64 = sim.nodes.values().map(|s| s.stats().refutations).sum();
        assert!(suspicions > 0 && refutations > 0, "the loss was felt");
    }

    #[test]
    fn a_healed_partition_brings_a_node_declared_dead_back() {
        let mut sim = Sim::new(5, SwimConfig::default(), 14);
        sim.run_for(1000);
        let isolated = addr(4);
        for other in (0..4).map(addr) {
            sim.cut.insert((isolated.clone(), other.clone()));
            sim.cut.insert((other, isolated.clone()));
        }
        sim.run_until(10_000, |s| s.all_see(&addr(4), Status::Dead)).unwrap();
        assert!(sim.nodes[&isolated].alive().len() == 1, "it holds the rest dead");
        sim.cut.clear();
        let healed = sim.now;
        let done = sim.run_until(30_000, |s| s.nodes.values().all(|n| n.alive().len() == 5)).unwrap();
        // Each node tries one dead member a round (Serf's reconnect).
        assert!(done - healed <= 5000, "healed after {} ms", done - healed);
    }

    #[test]
    fn a_node_that_joins_through_a_seed_is_known_everywhere() {
        let mut sim = Sim::new(8, SwimConfig::default(), 11);
        sim.run_for(1000);
        let mut newcomer =
            Swim::new("new", 5, Meta { slots: 4, busy: 0, boot: 0, envs: vec![] }, SwimConfig::default(), 12);
        newcomer.tick(sim.now);
        sim.nodes.insert("new".into(), newcomer);
        sim.join("new", &addr(3));
        assert_eq!(sim.nodes["new"].alive().len(), 9, "the seed's list");
        sim.run_until(5000, |s| s.all_see("new", Status::Alive)).unwrap();
        let view = sim.nodes[&addr(0)].member("new").unwrap();
        assert_eq!((view.incarnation, view.meta.slots), (5, 4));
        let joined = sim.events_about("new");
        assert_eq!(joined.iter().filter(|(_, e)| e.kind == EventKind::Joined).count(), 8);
    }

    #[test]
    fn a_node_told_it_is_dead_outbids_the_claim_in_its_answer() {
        let mut swim = Swim::new("me", 4, meta(), SwimConfig::default(), 13);
        let ping =
            Ping { from: alive("peer", 0), updates: vec![MemberInfo { status: Status::Dead, ..alive("me", 4) }] };
        let ack = swim.handle_ping(0, ping);
        assert_eq!((ack.from.status, ack.from.incarnation), (Status::Alive, 5));
        swim.leave();
        let ping =
            Ping { from: alive("peer", 0), updates: vec![MemberInfo { status: Status::Suspect, ..alive("me", 5) }] };
        let ack = swim.handle_ping(1, ping);
        assert_eq!((ack.from.status, ack.from.incarnation), (Status::Left, 5), "a leaver does not refute");
    }
}
