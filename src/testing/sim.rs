//! A deterministic simulation of the cluster's control plane. Five nodes run
//! their real actors in one process — membership (SWIM), coordination
//! (bully), locks and the store — over a `SimNet` under paused time, and
//! a seed draws everything else: when a node dies, which nodes a partition
//! cuts off and for how long, which link is cut one way, the latency, and
//! which node tries to adopt or close which evaluation when. Adopting and
//! closing go through the real `Locks` (the `adopt/<id>` lock) and the real
//! fence (`fence::claim` against every member's store); the supervisor's
//! own work between the two (running modules) is not simulated: the
//! partition tests and the chaos bench run it for real.
//!
//! Checked after every step: no epoch of an evaluation promised to two
//! supervisors; no evaluation closed in two terms, nor adopted after it was
//! closed; no lock held by two nodes once every node up names the same
//! coordinator and the network has been whole for two leases. At the end,
//! with the network healed: every node up sees the others up, and names
//! the same coordinator, the highest.
//!
//! `SIM_SEEDS` sets how many seeds run (200 by default, in four tests that
//! run side by side), `SIM_SEED` runs one; a failure names its seed, and
//! `SIM_SEED=<seed> cargo nextest run --lib -E 'test(/sim::/)'` replays it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use uuid::Uuid;

use super::{serve, settle, SimNet};
use crate::balance::SetMembers;
use crate::coordination::bully::{Bully, BullyConfig};
use crate::coordination::{Coordination, GetCoordinator};
use crate::evaluation::adoption;
use crate::evaluation::fence::{self, Act, TermClaim, Verdict};
use crate::evaluation::supervisor::NodeLost;
use crate::executor::{GetLoad, Load};
use crate::locks::{Acquire, GetHeld, Locks, LocksLinks, Release};
use crate::membership::model::{Meta, SplitMix64, SwimConfig};
use crate::membership::swim::Swim;
use crate::membership::{GetMembers, Membership, MembershipLinks, MembershipSettings, Status};
use crate::peer::{LamportClock, Peers};
use crate::store::Store;

const NODES: usize = 5;
const EVALUATIONS: u128 = 3;
const STEP: Duration = Duration::from_millis(100);
/// Steps with faults, then steps of a whole network.
const CHAOS_STEPS: usize = 200;
const CALM_STEPS: usize = 200;
const LEASE: Duration = Duration::from_millis(900);

/// The seeded draws of one run.
struct Draws(SplitMix64);

impl Draws {
    fn below(&mut self, n: usize) -> usize {
        self.0.below(n as u64) as usize
    }

    /// True with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.0.below(1000) < per_mille
    }
}

/// Stands in for the executor, balancer and registry membership tells.
struct Sink;

impl Actor for Sink {
    type Context = Context<Self>;
}

impl Handler<GetLoad> for Sink {
    type Result = MessageResult<GetLoad>;
    fn handle(&mut self, _: GetLoad, _: &mut Context<Self>) -> Self::Result {
        MessageResult(Load { slots: 1, busy: 0, queued: 0, envs: Vec::new() })
    }
}

impl Handler<SetMembers> for Sink {
    type Result = ();
    fn handle(&mut self, _: SetMembers, _: &mut Context<Self>) {}
}

impl Handler<NodeLost> for Sink {
    type Result = ();
    fn handle(&mut self, _: NodeLost, _: &mut Context<Self>) {}
}

struct Node {
    name: String,
    membership: Addr<Membership>,
    coordination: Addr<Coordination>,
    locks: Addr<Locks>,
    store: Addr<Store>,
    peers: Peers,
    /// The last epoch it tried to adopt each evaluation in: its own memory.
    tried: RefCell<BTreeMap<u128, u64>>,
}

fn name(i: usize) -> String {
    format!("10.0.0.{}:7000", i + 1)
}

fn start(net: &Rc<SimNet>, i: usize, seed: u64) -> Node {
    let me = name(i);
    let peers = net.peers(&me);
    let sink = Sink.start();
    let config = SwimConfig {
        probe_interval_ms: 300,
        probe_timeout_ms: 200,
        suspicion_timeout_ms: 1500,
        ..SwimConfig::default()
    };
    let meta = Meta { slots: 1, busy: 0, boot: 1, envs: Vec::new() };
    let swim = Swim::new(&me, 1, meta, config.clone(), seed.wrapping_add(i as u64));
    let settings = MembershipSettings {
        seeds: if i == 0 { Vec::new() } else { vec![name(0)] },
        tick: None,
        join_retry: Duration::from_millis(200),
        probe_timeout: Duration::from_millis(config.probe_timeout_ms),
        indirect_timeout: Duration::from_millis(config.indirect_timeout_ms()),
    };
    let links = MembershipLinks {
        peers: peers.clone(),
        load: sink.clone().recipient(),
        balancer: sink.clone().recipient(),
        on_lost: sink.recipient(),
    };
    let membership = Membership::new(swim, settings, links).start();
    let bully = Bully::new(
        &me,
        BullyConfig {
            answer_timeout_ms: config.indirect_timeout_ms(),
            coordinator_timeout_ms: config.suspicion_timeout_ms,
        },
    );
    let coordination = Coordination::new(&me, bully, peers.clone(), membership.clone().recipient(), None).start();
    let links = LocksLinks {
        peers: peers.clone(),
        coordination: coordination.clone().recipient(),
        members: membership.clone().recipient(),
        clock: Arc::new(LamportClock::default()),
    };
    let locks = Locks::new(&me, LEASE, links, None).start();
    let store = Store::in_memory().expect("an in-memory store").start();
    let router = serve::membership(membership.clone())
        .and(serve::coordination(coordination.clone()))
        .and(serve::locks(locks.clone()))
        .and(serve::store(store.clone()));
    net.serve(&me, router);
    Node { name: me, membership, coordination, locks, store, peers, tried: RefCell::default() }
}

/// What happened to the evaluations, as the simulation saw it.
#[derive(Default)]
struct History {
    /// (evaluation, epoch) → the supervisors a majority promised it to.
    adopted: BTreeMap<(u128, u64), BTreeSet<String>>,
    /// evaluation → the terms a majority promised its close in.
    closed: BTreeMap<u128, BTreeSet<(u64, String)>>,
    /// evaluation → the terms adopted after one of its closes.
    adopted_after_close: Vec<(u128, u64, String)>,
    /// Supervisors acting now: evaluation → (epoch, node).
    acting: BTreeMap<u128, Vec<(u64, String)>>,
}

/// One node tries to adopt `evaluation` as the registry does: the lock,
/// then the fence (`adoption::fenced`), for the epoch after the last it
/// tried, or after a promise it meets.
async fn adopt(node: Rc<Node>, evaluation: u128, history: RefHistory) {
    let lock = format!("adopt/{evaluation}");
    let granted = tokio::time::timeout(LEASE * 2, node.locks.send(Acquire(lock.clone()))).await;
    if !matches!(granted, Ok(Ok(Ok(())))) {
        return;
    }
    let members = fence::members(node.membership.send(GetMembers).await.unwrap_or_default(), &node.name);
    let tried = node.tried.borrow().get(&evaluation).copied().unwrap_or(0);
    let cx = adoption::Context {
        me: &node.name,
        store: &node.store,
        peers: &node.peers,
        blobs_dir: std::path::Path::new("/nonexistent"),
        live: &[],
        members: &members,
    };
    let decided = adoption::fenced(Uuid::from_u128(evaluation), tried + 1, &cx).await;
    if let Ok(Ok(epoch)) = decided {
        node.tried.borrow_mut().insert(evaluation, epoch);
        let mut h = history.borrow_mut();
        if h.closed.get(&evaluation).is_some_and(|c| !c.is_empty()) {
            h.adopted_after_close.push((evaluation, epoch, node.name.clone()));
        }
        h.adopted.entry((evaluation, epoch)).or_default().insert(node.name.clone());
        h.acting.entry(evaluation).or_default().push((epoch, node.name.clone()));
    } else {
        node.tried.borrow_mut().insert(evaluation, tried + 1);
    }
    node.locks.do_send(Release(lock));
}

/// A supervisor acting in `epoch` tries to close `evaluation`, as the
/// supervisor does.
async fn close(node: Rc<Node>, evaluation: u128, epoch: u64, history: RefHistory) {
    let members = fence::members(node.membership.send(GetMembers).await.unwrap_or_default(), &node.name);
    let claim =
        TermClaim { evaluation: Uuid::from_u128(evaluation), epoch, supervisor: node.name.clone(), act: Act::Close };
    let verdict = fence::claim(&node.store, &node.peers, &members, &claim).await;
    let mut h = history.borrow_mut();
    let stop =
        |h: &mut History| h.acting.entry(evaluation).or_default().retain(|(e, n)| (*e, n) != (epoch, &node.name));
    match verdict {
        Ok(Verdict::Granted) => {
            h.closed.entry(evaluation).or_default().insert((epoch, node.name.clone()));
            stop(&mut h);
        }
        Ok(Verdict::Outranked { .. }) => stop(&mut h),
        Ok(Verdict::NoQuorum { .. }) | Err(_) => {}
    }
}

type RefHistory = Rc<RefCell<History>>;

/// Fails with the seed if an invariant does not hold.
fn check(history: &History, seed: u64) {
    for ((evaluation, epoch), supervisors) in &history.adopted {
        assert!(supervisors.len() <= 1, "seed {seed}: epoch {epoch} of {evaluation} promised to {supervisors:?}");
    }
    for (evaluation, terms) in &history.closed {
        assert!(terms.len() <= 1, "seed {seed}: {evaluation} closed in terms {terms:?}");
    }
    assert!(
        history.adopted_after_close.is_empty(),
        "seed {seed}: adopted after a close: {:?}",
        history.adopted_after_close
    );
}

async fn holders(nodes: &[Rc<Node>], up: &[usize]) -> BTreeMap<String, Vec<String>> {
    let mut held: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for &i in up {
        for lock in nodes[i].locks.send(GetHeld).await.unwrap_or_default() {
            held.entry(lock).or_default().push(nodes[i].name.clone());
        }
    }
    held
}

async fn coordinators(nodes: &[Rc<Node>], up: &[usize]) -> BTreeSet<Option<String>> {
    let mut seen = BTreeSet::new();
    for &i in up {
        seen.insert(nodes[i].coordination.send(GetCoordinator).await.unwrap_or(None));
    }
    seen
}

/// One simulated run: faults for `CHAOS_STEPS`, then calm.
async fn run(seed: u64) {
    let mut draws = Draws(SplitMix64(seed));
    let net = SimNet::new();
    let nodes: Vec<Rc<Node>> = (0..NODES).map(|i| Rc::new(start(&net, i, seed))).collect();
    let history: RefHistory = Rc::default();
    let mut down: BTreeSet<usize> = BTreeSet::new();
    let mut whole_for = 0usize;
    for step in 0..CHAOS_STEPS + CALM_STEPS {
        let chaos = step < CHAOS_STEPS;
        if chaos && step > 20 {
            // At most two dead: three of five can still make a majority.
            if down.len() < 2 && draws.chance(8) {
                let victim = draws.below(NODES);
                down.insert(victim);
                net.set_down(&nodes[victim].name, true);
            }
            if draws.chance(15) {
                let side: Vec<&str> = nodes.iter().filter(|_| draws.chance(400)).map(|n| n.name.as_str()).collect();
                let rest: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).filter(|n| !side.contains(n)).collect();
                net.partition(&side, &rest);
                whole_for = 0;
            }
            if draws.chance(10) {
                let (a, b) = (draws.below(NODES), draws.below(NODES));
                net.set_cut(&nodes[a].name, &nodes[b].name, true);
                whole_for = 0;
            }
            if draws.chance(20) {
                net.heal();
            }
            if draws.chance(10) {
                net.set_latency(Duration::from_millis(draws.below(80) as u64));
            }
        }
        if step == CHAOS_STEPS {
            net.heal();
            net.set_latency(Duration::ZERO);
            whole_for = 0;
        }
        let up: Vec<usize> = (0..NODES).filter(|i| !down.contains(i)).collect();
        if chaos && step > 30 && draws.chance(60) {
            let evaluation = draws.below(EVALUATIONS as usize) as u128;
            let node = up[draws.below(up.len())];
            let acting = history.borrow().acting.get(&evaluation).cloned().unwrap_or_default();
            let (history, node) = (history.clone(), nodes[node].clone());
            match acting.iter().find(|(_, n)| *n == node.name) {
                Some(&(epoch, _)) => actix::spawn(close(node, evaluation, epoch, history)),
                None => actix::spawn(adopt(node, evaluation, history)),
            };
        }
        tokio::time::advance(STEP).await;
        for &i in &up {
            let node = &nodes[i];
            node.membership.do_send(crate::membership::Tick);
            node.coordination.do_send(crate::coordination::Tick);
            node.locks.do_send(crate::locks::Tick);
        }
        settle().await;
        check(&history.borrow(), seed);
        if whole_for > (2 * LEASE.as_millis() / STEP.as_millis()) as usize {
            let named = coordinators(&nodes, &up).await;
            if named.len() == 1 && named.iter().next().is_some_and(Option::is_some) {
                for (lock, by) in holders(&nodes, &up).await {
                    assert!(by.len() <= 1, "seed {seed}: step {step}: {lock} held by {by:?}");
                }
            }
        }
        whole_for += usize::from(net.is_whole());
    }
    let up: Vec<usize> = (0..NODES).filter(|i| !down.contains(i)).collect();
    for &i in &up {
        let members = nodes[i].membership.send(GetMembers).await.unwrap();
        let alive: BTreeSet<&str> =
            members.iter().filter(|m| m.status == Status::Alive).map(|m| m.address.as_str()).collect();
        let expected: BTreeSet<&str> = up.iter().map(|&j| nodes[j].name.as_str()).collect();
        assert_eq!(alive, expected, "seed {seed}: {} sees these alive after the calm", nodes[i].name);
    }
    let highest = up.iter().map(|&i| nodes[i].name.clone()).max();
    assert_eq!(
        coordinators(&nodes, &up).await,
        BTreeSet::from([highest]),
        "seed {seed}: one coordinator after the calm"
    );
}

/// The seeds of part `part` of `PARTS`: the parts run side by side.
fn seeds(part: u64) -> Vec<u64> {
    match std::env::var("SIM_SEED") {
        Ok(one) => (part == 0).then(|| one.parse().expect("SIM_SEED is a number")).into_iter().collect(),
        Err(_) => {
            let count = std::env::var("SIM_SEEDS").ok().and_then(|n| n.parse().ok()).unwrap_or(200u64);
            (1..=count).filter(|s| s % PARTS == part).collect()
        }
    }
}

const PARTS: u64 = 4;

async fn run_part(part: u64) {
    tokio::time::pause();
    for seed in seeds(part) {
        run(seed).await;
    }
}

#[actix::test]
async fn the_control_plane_keeps_its_invariants_under_seeded_faults_part_0() {
    run_part(0).await;
}

#[actix::test]
async fn the_control_plane_keeps_its_invariants_under_seeded_faults_part_1() {
    run_part(1).await;
}

#[actix::test]
async fn the_control_plane_keeps_its_invariants_under_seeded_faults_part_2() {
    run_part(2).await;
}

#[actix::test]
async fn the_control_plane_keeps_its_invariants_under_seeded_faults_part_3() {
    run_part(3).await;
}
