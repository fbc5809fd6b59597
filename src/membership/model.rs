//! The data of cluster membership, under the `Membership` actor: what the pure
//! SWIM core in `swim.rs` takes in (its [`SwimConfig`], the messages of its
//! peers) and gives out ([`Action`]s for the actor, views, events, counters),
//! and what travels between nodes as JSON. `POST /mystats` carries a [`Ping`]
//! and answers an [`Ack`]; `POST /probe` carries a [`PingReq`] and answers an
//! [`IndirectAck`]; `POST /join` carries the joiner's [`MemberInfo`] and
//! answers the member list. Also the gossip queue that decides which claims
//! ride on the next message, and the seeded generator behind the core's
//! shuffles. No I/O, no clock.
//!
//! Unknown fields are accepted on the wire (unlike `peer::model`): during a
//! rolling upgrade nodes of two versions probe each other, and refusing a
//! probe would make a healthy node look dead.

use serde::{Deserialize, Serialize};

#[cfg(doc)]
use super::swim::Swim;
use crate::config::ClusterConfig;

/// Timings and fan-outs of the protocol.
///
/// The defaults are chosen so that a killed node is dead in every view within
/// 5 s in a cluster of 4 to 50 nodes. From the kill: some live node probes the
/// victim within about a period (n − 1 probers, each reaching it once per
/// round); it is suspect a probe time-out and a relayed probe time-out later
/// (the helpers wait on it too); each node declares it dead a suspicion
/// time-out after hearing of the suspicion, and the rumour takes O(log n)
/// periods to reach everyone. `bench/membership_sim.rs`, with a victim that
/// never answers, measures a first suspicion after about 0.9 s and death
/// everywhere after 3.0 to 3.6 s on average, 4.5 s at worst, for 5 to 100
/// nodes (50 kills each). memberlist-like timings (500 ms period, 400 ms
/// time-out) miss the budget in 7 of 50 kills at 50 nodes (6.2 s at worst),
/// hence the shorter period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwimConfig {
    /// One protocol period: each node starts one probe per period, whatever
    /// the cluster's size. 300 ms keeps detection and dissemination (both a
    /// few periods) inside the 5 s budget for about 3.3 small requests a
    /// second per node.
    pub probe_interval_ms: u64,
    /// A direct probe not answered within this is failed; the actor uses it as
    /// the request time-out of `POST /mystats`. A healthy peer on a LAN
    /// answers in milliseconds even under load; 250 ms allows for a busy
    /// runtime without stretching detection.
    pub probe_timeout_ms: u64,
    /// Helpers asked to probe a member that failed the direct probe (SWIM's
    /// k). Three makes a false suspicion from one lossy link unlikely
    /// (memberlist's default).
    pub indirect_probes: usize,
    /// How long a suspect has to refute before it is declared dead. 2 s is
    /// several periods: enough for the suspicion to reach a live member and
    /// its refutation to come back, short enough for the 5 s budget.
    pub suspicion_timeout_ms: u64,
    /// λ: each claim is piggybacked `λ·⌈log10(n + 1)⌉` times (memberlist's
    /// default 4).
    pub retransmit_mult: u32,
    /// Most claims one message carries.
    pub max_piggyback: usize,
}

impl Default for SwimConfig {
    fn default() -> Self {
        Self {
            probe_interval_ms: 300,
            probe_timeout_ms: 250,
            indirect_probes: 3,
            suspicion_timeout_ms: 2000,
            retransmit_mult: 4,
            max_piggyback: 8,
        }
    }
}

impl SwimConfig {
    /// The protocol's timings as `[cluster]` sets them.
    pub fn from_config(c: &ClusterConfig) -> Self {
        Self {
            probe_interval_ms: c.probe_interval_ms,
            probe_timeout_ms: c.probe_timeout_ms,
            indirect_probes: c.indirect_probes,
            suspicion_timeout_ms: c.suspicion_timeout_ms,
            ..Self::default()
        }
    }

    /// How long the indirect leg waits for its helpers, each of which spends
    /// up to a probe time-out on the target: the actor's time-out for
    /// `POST /probe`.
    pub fn indirect_timeout_ms(&self) -> u64 {
        self.probe_timeout_ms.saturating_mul(2)
    }
}

/// A request the actor is to make on behalf of the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `POST /mystats` to `target` with `ping`, time-out
    /// `probe_timeout_ms`; the answer goes to [`Swim::on_ack`], an error or
    /// time-out to [`Swim::on_probe_failed`].
    Probe { id: ProbeId, target: String, ping: Ping },
    /// `POST /probe` to `via` with `req`, time-out
    /// [`SwimConfig::indirect_timeout_ms`]; the answer goes to
    /// [`Swim::on_indirect_ack`], an error or time-out to
    /// [`Swim::on_indirect_failed`].
    ProbeRequest { id: ProbeId, via: String, req: PingReq },
}

/// The load a node advertises: what the load balancer reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// pytest processes the node runs at once.
    pub slots: u32,
    /// Tasks running or queued on it.
    pub busy: u32,
    /// Names one run of the node (its first incarnation): a node restarted
    /// before anyone declared it dead refutes to a higher incarnation, and
    /// only a new `boot` tells that its earlier run, and that run's tasks,
    /// are gone.
    #[serde(default)]
    pub boot: u64,
    /// Tags of the environments built on the node, last used first, at most
    /// `executor::envs::MAX_ADVERTISED`: the balancer prefers a node that
    /// holds a task's environment. Absent from nodes that do not tell, and
    /// left out when empty, so that such nodes read the same claims.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub envs: Vec<String>,
}

/// A member's state in one node's view (SWIM §4.2, plus memberlist's `left`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Alive,
    /// Failed a direct and the indirect probes; dead unless it refutes within
    /// the suspicion timeout.
    Suspect,
    Dead,
    /// Announced its own departure: a planned stop, not a failure.
    Left,
}

impl Status {
    pub const ALL: [Self; 4] = [Self::Alive, Self::Suspect, Self::Dead, Self::Left];

    /// Breaks ties between claims of the same incarnation: a later stage of
    /// one life wins, and a deliberate leave wins over a presumed death.
    fn rank(self) -> u8 {
        match self {
            Self::Alive => 0,
            Self::Suspect => 1,
            Self::Dead => 2,
            Self::Left => 3,
        }
    }
}

/// One claim about one member: the unit of gossip and of the join list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// The member's advertised HTTP address; it is the member's identity.
    pub address: String,
    pub status: Status,
    /// Raised only by the member itself: to refute a suspicion, to announce
    /// new metadata, or on restart.
    pub incarnation: u64,
    /// The metadata the member announced with this incarnation.
    pub meta: Meta,
}

impl MemberInfo {
    /// Whether this claim replaces `current`, a claim about the same member.
    ///
    /// The precedence rules of SWIM §4.2 and memberlist (alive{i} beats
    /// alive/suspect{j<i}; suspect{i} beats alive{j<=i} and suspect{j<i};
    /// dead{i} and left{i} beat alive/suspect{j<=i}; a restart, alive{i}
    /// after dead{j<i}, is alive again) all come out of one lexicographic
    /// order on (incarnation, rank). Because it is a total order every node
    /// converges on the greatest claim whatever order gossip arrives in.
    pub fn supersedes(&self, current: &MemberInfo) -> bool {
        (self.incarnation, self.status.rank()) > (current.incarnation, current.status.rank())
    }
}

/// A direct probe (`POST /mystats`). `from` is the prober's own current
/// claim, so each probe also refreshes the prober's metadata at the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    pub from: MemberInfo,
    pub updates: Vec<MemberInfo>,
}

/// The answer to a [`Ping`]: the acker's own claim, so each probe refreshes
/// load information both ways, and its piggybacked gossip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub from: MemberInfo,
    pub updates: Vec<MemberInfo>,
}

/// An indirect probe request (`POST /probe`): "probe `target` for me".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingReq {
    pub from: MemberInfo,
    pub target: String,
    pub updates: Vec<MemberInfo>,
}

/// The helper's answer to a [`PingReq`], sent once it has probed the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndirectAck {
    pub from: MemberInfo,
    /// The target answered the helper's probe.
    pub ok: bool,
    pub updates: Vec<MemberInfo>,
}

/// Names one outstanding probe of this node, direct and indirect legs alike.
/// Local to the node; never on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProbeId(pub u64);

/// One member as the rest of the node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub address: String,
    pub status: Status,
    pub incarnation: u64,
    /// Logical time of the last first-hand contact or accepted claim.
    pub last_seen_ms: u64,
    pub meta: Meta,
}

impl MemberView {
    pub fn new(info: &MemberInfo, last_seen_ms: u64) -> Self {
        Self {
            address: info.address.clone(),
            status: info.status,
            incarnation: info.incarnation,
            last_seen_ms,
            meta: info.meta.clone(),
        }
    }
}

/// A change in the view, for the load balancer and evaluation supervisors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberEvent {
    pub address: String,
    /// The incarnation of the claim that caused it: a node that restarted
    /// shows as `Rejoined` with an incarnation above the one it died with.
    pub incarnation: u64,
    pub kind: EventKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// First seen, alive.
    Joined,
    /// Was suspect and refuted it: the same process, its work intact.
    Recovered,
    /// Was dead or left and is alive with a higher incarnation: a restart,
    /// whose in-flight work is lost.
    Rejoined,
    Suspected,
    Dead,
    Left,
}

impl EventKind {
    /// What a change of status means to the rest of the node. Tombstones of
    /// members this node never knew alive are not news to it.
    pub fn of_change(previous: Option<Status>, now: Status) -> Option<EventKind> {
        match (previous, now) {
            (None, Status::Alive) => Some(Self::Joined),
            (Some(Status::Suspect), Status::Alive) => Some(Self::Recovered),
            (Some(Status::Dead | Status::Left), Status::Alive) => Some(Self::Rejoined),
            (Some(Status::Alive), Status::Alive) | (Some(Status::Suspect), Status::Suspect) => None,
            (_, Status::Suspect) => Some(Self::Suspected),
            (None, Status::Dead | Status::Left) => None,
            // Dead after dead is a later incarnation dying: a restart missed.
            (Some(_), Status::Dead) => Some(Self::Dead),
            (Some(_), Status::Left) => Some(Self::Left),
        }
    }
}

/// Traffic counters of one node, for the benchmark and a stats route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Direct probes this node started (including leave notices).
    pub pings_sent: u64,
    pub ping_reqs_sent: u64,
    /// Probes sent on behalf of another node's [`PingReq`].
    pub relayed_pings_sent: u64,
    pub pings_received: u64,
    pub ping_reqs_received: u64,
    pub joins_received: u64,
    pub acks_received: u64,
    pub indirect_acks_received: u64,
    /// Claims piggybacked on outgoing messages.
    pub updates_sent: u64,
    pub updates_received: u64,
    /// Times this node raised its incarnation to deny a suspicion or death.
    pub refutations: u64,
}

impl Stats {
    /// Requests (HTTP calls) this node made.
    pub fn requests_sent(&self) -> u64 {
        self.pings_sent + self.ping_reqs_sent + self.relayed_pings_sent
    }

    /// Requests peers made of this node.
    pub fn requests_received(&self) -> u64 {
        self.pings_received + self.ping_reqs_received + self.joins_received
    }
}

/// Claims waiting to ride on outgoing messages, each sent a bounded number of
/// times, least-sent and then newest first (memberlist's
/// `TransmitLimitedQueue`). Holds at most one claim per member: a newer claim
/// makes the older one pointless to spread.
#[derive(Debug, Default)]
pub(super) struct GossipQueue {
    entries: Vec<Queued>,
    /// Orders claims by arrival, newest highest.
    pushed: u64,
}

#[derive(Debug)]
struct Queued {
    info: MemberInfo,
    sent: u32,
    order: u64,
}

impl GossipQueue {
    pub(super) fn push(&mut self, info: MemberInfo) {
        self.entries.retain(|q| q.info.address != info.address);
        self.pushed += 1;
        self.entries.push(Queued { info, sent: 0, order: self.pushed });
    }

    /// Takes up to `max` claims for one message, counting each as sent once
    /// and forgetting it after `limit` sends.
    pub(super) fn take(&mut self, max: usize, limit: u32) -> Vec<MemberInfo> {
        self.entries.sort_by(|a, b| a.sent.cmp(&b.sent).then(b.order.cmp(&a.order)));
        let taken: Vec<MemberInfo> = self
            .entries
            .iter_mut()
            .take(max)
            .map(|q| {
                q.sent += 1;
                q.info.clone()
            })
            .collect();
        self.entries.retain(|q| q.sent < limit);
        taken
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// memberlist's retransmit limit, `mult × ⌈log10(n + 1)⌉`: enough sends for an
/// epidemic to reach all `n` members with high probability (SWIM §4.1), few
/// enough that each claim costs O(log n) piggyback slots per node.
pub(super) fn retransmit_limit(mult: u32, n: usize) -> u32 {
    // ⌈log10(n + 1)⌉ is the number of decimal digits of n, for n >= 1.
    let mut digits = 0u32;
    let mut rest = n;
    while rest > 0 {
        digits += 1;
        rest /= 10;
    }
    mult.saturating_mul(digits.max(1))
}

/// SplitMix64 (Steele, Lea, Flood 2014): a seeded generator, so that a test
/// or a simulation replays exactly. Only shuffles depend on it; nothing here
/// needs unpredictability.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` for shuffling; 0 when `n` is 0.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// Fisher–Yates.
    pub(super) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(status: Status, incarnation: u64) -> MemberInfo {
        MemberInfo { address: "n1".into(), status, incarnation, meta: Meta::default() }
    }

    #[test]
    fn precedence_follows_swim_and_memberlist() {
        use Status::*;
        let cases = [
            (Alive, 2, Suspect, 1, true),
            (Alive, 1, Suspect, 1, false),
            (Alive, 1, Alive, 1, false),
            (Suspect, 1, Alive, 1, true),
            (Suspect, 1, Suspect, 1, false),
            (Suspect, 2, Suspect, 1, true),
            (Dead, 1, Alive, 1, true),
            (Dead, 1, Suspect, 1, true),
            (Dead, 1, Alive, 2, false),
            (Alive, 1, Dead, 1, false),
            (Alive, 2, Dead, 1, true),
            (Left, 1, Dead, 1, true),
            (Dead, 1, Left, 1, false),
            (Left, 1, Alive, 1, true),
        ];
        for (s, i, cs, ci, want) in cases {
            assert_eq!(claim(s, i).supersedes(&claim(cs, ci)), want, "{s:?}{{{i}}} over {cs:?}{{{ci}}}");
        }
    }

    #[test]
    fn retransmit_limit_grows_with_log_n() {
        assert_eq!(retransmit_limit(4, 0), 4);
        assert_eq!(retransmit_limit(4, 9), 4);
        assert_eq!(retransmit_limit(4, 10), 8);
        assert_eq!(retransmit_limit(4, 99), 8);
        assert_eq!(retransmit_limit(4, 100), 12);
    }

    #[test]
    fn wire_types_are_json_with_lowercase_status() {
        let ping = Ping { from: claim(Status::Alive, 3), updates: vec![claim(Status::Suspect, 2)] };
        let json = serde_json::to_string(&ping).unwrap();
        assert_eq!(
            json,
            r#"{"from":{"address":"n1","status":"alive","incarnation":3,"meta":{"slots":0,"busy":0,"boot":0}},"updates":[{"address":"n1","status":"suspect","incarnation":2,"meta":{"slots":0,"busy":0,"boot":0}}]}"#
        );
        assert_eq!(serde_json::from_str::<Ping>(&json).unwrap(), ping);
    }
}
