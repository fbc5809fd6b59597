//! The membership simulation benchmark: how fast the pure SWIM core
//! (`evalmesh::membership::swim`, which the `Membership` actor drives)
//! detects a killed node, and what it costs, as the cluster grows.
//!
//! It takes in nothing but the default `SwimConfig`, runs whole clusters of
//! `Swim` cores on an in-memory network with logical time (no sockets, no
//! clock, seeded, so every run replays exactly), and gives out a markdown
//! table: for n in 5, 10, 25, 50 and 100 nodes, a node killed at a random
//! time, how long until EVERY live node holds it dead (mean and max over
//! several seeds), the requests each node sends per second, and how many
//! protocol periods one update takes to reach every node.
//!
//! The network is the pessimistic one: a killed node never answers, so each
//! probe of it costs its caller a full time-out, as a vanished host would
//! (a killed process on a live host is refused at once, and found sooner).
//!
//! `cargo bench --bench membership_sim`; a few seconds.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use evalmesh::membership::model::{MemberInfo, Meta, PingReq, ProbeId, Status};
use evalmesh::membership::swim::{Action, Swim, SwimConfig};

/// How often the simulated actor ticks each node.
const TICK_MS: u64 = 100;
const SIZES: [usize; 5] = [5, 10, 25, 50, 100];
/// Seeds per cluster size.
const RUNS: u64 = 50;
/// The kill falls at a random time in `KILL_AFTER_MS .. KILL_AFTER_MS + 2 s`.
const KILL_AFTER_MS: u64 = 6_000;
/// The budget the defaults are meant to meet.
const BUDGET_MS: u64 = 5_000;
const GIVE_UP_MS: u64 = 60_000;

/// SplitMix64, for the kill time, the victim and lost requests.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}

/// A failure reported when the caller's time-out runs out: its direct probe,
/// its request to a helper, or a helper's relayed probe.
enum Timeout {
    Probe { node: String, id: ProbeId },
    Indirect { node: String, id: ProbeId },
    Relay { helper: String, requester: String, id: ProbeId, req: PingReq },
}

/// Requests are answered at once between live nodes; a request that
/// involves a dead node fails after the caller's time-out.
struct Net {
    nodes: BTreeMap<String, Swim>,
    down: BTreeSet<String>,
    now: u64,
    later: Vec<(u64, Timeout)>,
    config: SwimConfig,
}

impl Net {
    /// `n` nodes that know each other, as after a settled join.
    fn new(n: usize, config: &SwimConfig, seed: u64) -> Net {
        let meta = Meta { slots: 2, busy: 0, boot: 0, ..Meta::default() };
        let infos: Vec<MemberInfo> = (0..n)
            .map(|i| MemberInfo { address: addr(i), status: Status::Alive, incarnation: 0, meta: meta.clone() })
            .collect();
        let mut nodes = BTreeMap::new();
        for i in 0..n {
            let mut node = Swim::new(&addr(i), 0, meta.clone(), config.clone(), seed * 10_000 + i as u64);
            node.joined(0, infos.clone());
            nodes.insert(addr(i), node);
        }
        Net { nodes, down: BTreeSet::new(), now: 0, later: Vec::new(), config: config.clone() }
    }

    fn node(&mut self, a: &str) -> &mut Swim {
        self.nodes.get_mut(a).expect("a node of the simulation")
    }

    fn up(&self, a: &str) -> bool {
        !self.down.contains(a)
    }

    fn send(&mut self, from: &str, action: Action) {
        let now = self.now;
        match action {
            Action::Probe { id, target, ping } => {
                if self.up(&target) {
                    let ack = self.node(&target).handle_ping(now, ping);
                    self.node(from).on_ack(now, id, ack);
                } else {
                    let at = now + self.config.probe_timeout_ms;
                    let node = from.to_string();
                    self.later.push((at, Timeout::Probe { node, id }));
                }
            }
            Action::ProbeRequest { id, via, req } => {
                if !self.up(&via) {
                    let at = now + self.config.indirect_timeout_ms();
                    let node = from.to_string();
                    self.later.push((at, Timeout::Indirect { node, id }));
                    return;
                }
                let ping = self.node(&via).handle_ping_req(now, &req);
                if self.up(&req.target) {
                    let target = req.target.clone();
                    let ack = self.node(&target).handle_ping(now, ping);
                    let reply = self.node(&via).indirect_reply(now, &req, Some(ack));
                    self.node(from).on_indirect_ack(now, id, reply);
                } else {
                    let at = now + self.config.probe_timeout_ms;
                    let requester = from.to_string();
                    let helper = via;
                    self.later.push((at, Timeout::Relay { helper, requester, id, req }));
                }
            }
        }
    }

    fn fire(&mut self, later: Timeout) {
        let now = self.now;
        match later {
            Timeout::Probe { node, id } if self.up(&node) => {
                for action in self.node(&node).on_probe_failed(now, id) {
                    self.send(&node, action);
                }
            }
            Timeout::Indirect { node, id } if self.up(&node) => {
                self.node(&node).on_indirect_failed(now, id);
            }
            Timeout::Relay { helper, requester, id, req } if self.up(&helper) && self.up(&requester) => {
                let reply = self.node(&helper).indirect_reply(now, &req, None);
                self.node(&requester).on_indirect_ack(now, id, reply);
            }
            _ => {}
        }
    }

    fn step(&mut self) {
        self.now += TICK_MS;
        let now = self.now;
        let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.later).into_iter().partition(|(at, _)| *at <= now);
        self.later = rest;
        for (_, later) in due {
            self.fire(later);
        }
        let live: Vec<String> = self.nodes.keys().filter(|a| self.up(a)).cloned().collect();
        for a in live {
            for action in self.node(&a).tick(now) {
                self.send(&a, action);
            }
        }
    }

    fn requests_sent(&self) -> u64 {
        self.nodes.values().map(|s| s.stats().requests_sent()).sum()
    }

    /// Every live node other than `member` holds it as `status`.
    fn all_see(&self, member: &str, status: Status) -> bool {
        self.nodes
            .iter()
            .filter(|(a, _)| self.up(a) && a.as_str() != member)
            .all(|(_, s)| s.member(member).map(|m| m.status) == Some(status))
    }

    fn any_sees(&self, member: &str, status: Status) -> bool {
        self.nodes.iter().filter(|(a, _)| self.up(a)).any(|(_, s)| s.member(member).map(|m| m.status) == Some(status))
    }
}

/// A node's name in the simulation; nothing is ever sent to it.
fn addr(i: usize) -> String {
    format!("node{i:03}:5001")
}

/// What one run measured.
struct Run {
    /// From the kill to the first suspicion anywhere.
    suspected_ms: u64,
    /// From the kill to the last live node holding the victim dead.
    dead_everywhere_ms: u64,
    /// Requests per node per second before the kill.
    steady_rate: f64,
    /// Requests per live node per second from the kill to full detection.
    detecting_rate: f64,
    /// Periods for one metadata change to reach every node.
    spread_periods: u64,
}

fn run(n: usize, config: &SwimConfig, seed: u64) -> Option<Run> {
    let mut rng = Rng(seed);
    let mut net = Net::new(n, config, seed);
    // Settle, then time the spread of one update while measuring the steady
    // traffic.
    while net.now < 1_000 {
        net.step();
    }
    let (t0, sent0) = (net.now, net.requests_sent());
    let changed = addr(rng.below(n as u64) as usize);
    let busy = Meta { slots: 2, busy: 1, boot: 0, ..Meta::default() };
    net.node(&changed).set_meta(busy.clone());
    let mut spread_at = None;
    let kill_at = KILL_AFTER_MS + rng.below(2_000);
    while net.now < kill_at {
        net.step();
        if spread_at.is_none() && net.nodes.values().all(|s| s.member(&changed).map(|m| m.meta).as_ref() == Some(&busy))
        {
            spread_at = Some(net.now);
        }
    }
    let spread_periods = (spread_at? - t0).div_ceil(config.probe_interval_ms);
    let (t1, sent1) = (net.now, net.requests_sent());
    let steady_rate = (sent1 - sent0) as f64 / n as f64 / ((t1 - t0) as f64 / 1000.0);

    let victim = addr(rng.below(n as u64) as usize);
    net.down.insert(victim.clone());
    let mut suspected_at = None;
    while !net.all_see(&victim, Status::Dead) {
        if net.now - t1 > GIVE_UP_MS {
            return None;
        }
        net.step();
        if suspected_at.is_none() && net.any_sees(&victim, Status::Suspect) {
            suspected_at = Some(net.now);
        }
    }
    let victim_sent = net.nodes[&victim].stats().requests_sent();
    let sent2 = net.requests_sent() - victim_sent;
    let secs = (net.now - t1) as f64 / 1000.0;
    Some(Run {
        suspected_ms: suspected_at.unwrap_or(net.now) - t1,
        dead_everywhere_ms: net.now - t1,
        steady_rate,
        detecting_rate: (sent2 - (sent1 - victim_sent)) as f64 / (n - 1) as f64 / secs,
        spread_periods,
    })
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = xs.fold((0.0, 0), |(s, c), x| (s + x, c + 1));
    sum / f64::from(count.max(1))
}

fn main() {
    let started = Instant::now();
    let config = SwimConfig::default();
    println!("# membership: time to detect a killed node (simulated, logical time)\n");
    println!(
        "default config: probe every {} ms, probe time-out {} ms, {} indirect probes \
         (wait {} ms), suspicion {} ms, retransmit ×{}, at most {} updates a message; \
         actor tick {} ms; {} runs per size, kill at a random time\n",
        config.probe_interval_ms,
        config.probe_timeout_ms,
        config.indirect_probes,
        config.indirect_timeout_ms(),
        config.suspicion_timeout_ms,
        config.retransmit_mult,
        config.max_piggyback,
        TICK_MS,
        RUNS,
    );
    println!(
        "| nodes | first suspect, mean | dead everywhere, mean | dead everywhere, max | within {} s | requests/node/s, steady | requests/node/s, detecting | update reaches all, periods (mean / max) |",
        BUDGET_MS / 1000
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut rates = Vec::new();
    for n in SIZES {
        let runs: Vec<Run> = (1..=RUNS).filter_map(|seed| run(n, &config, seed)).collect();
        let failed = RUNS as usize - runs.len();
        let max_dead = runs.iter().map(|r| r.dead_everywhere_ms).max().unwrap_or(0);
        let within = runs.iter().filter(|r| r.dead_everywhere_ms <= BUDGET_MS).count();
        let steady = mean(runs.iter().map(|r| r.steady_rate));
        rates.push(steady);
        println!(
            "| {n} | {:.0} ms | {:.0} ms | {} ms | {}/{} | {:.2} | {:.2} | {:.1} / {} |",
            mean(runs.iter().map(|r| r.suspected_ms as f64)),
            mean(runs.iter().map(|r| r.dead_everywhere_ms as f64)),
            max_dead,
            within,
            RUNS,
            steady,
            mean(runs.iter().map(|r| r.detecting_rate)),
            mean(runs.iter().map(|r| r.spread_periods as f64)),
            runs.iter().map(|r| r.spread_periods).max().unwrap_or(0),
        );
        if failed > 0 {
            println!("\n{failed} run(s) of {n} nodes never converged\n");
        }
    }
    let (lo, hi) = rates.iter().fold((f64::MAX, 0.0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    println!(
        "\nrequests per node per second, steady state: {lo:.2} to {hi:.2} from {} to {} nodes \
         (one probe a period, {:.2}/s: constant, no all-to-all)",
        SIZES[0],
        SIZES[SIZES.len() - 1],
        1000.0 / config.probe_interval_ms as f64,
    );
    println!("\nwall time {:.1} s", started.elapsed().as_secs_f64());
}
