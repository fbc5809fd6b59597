//! The `Locks` actor: named cluster locks, a child of the node root, on every
//! node and on both sides of a lock. A thin shell around two pure cores.
//!
//! As a client (`claims.rs`) it takes `Acquire` and `Release` from this
//! node's actors and, on every tick — about three a lease — asks the
//! coordinator that coordination names for each lock it holds (a renewal) or
//! waits for (a sign that it is still there). An `Acquire` answers once the
//! coordinator has granted the lock.
//!
//! As the coordinator it holds the lock table (`table.rs`) and answers
//! `POST /lock/acquire`, `/lock/release` and `/lock/holdings` for the peer
//! routes. When this node becomes coordinator it answers `Rebuilding` until
//! it has asked every live member (membership's view) what it holds and
//! waits for and rebuilt the table from the answers; it expires leases on its
//! ticks, and drops the table when another node becomes coordinator.
//!
//! If it dies, this node's waiting `Acquire`s fail with a mailbox error and
//! the coordinator takes its locks back as their leases run out; if this node
//! was the coordinator, the cluster has no lock service until another node
//! becomes coordinator and rebuilds the table from the holders.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::join_all;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::claims::{Change, Claims};
use super::model::{AcquireAnswer, AcquireRequest, Holdings, HoldingsRequest, LockView, ReleaseAnswer, ReleaseRequest};
use super::table::{Conflict, Expiry, Grant, LockTable, Released};
use crate::coordination::GetCoordinator;
use crate::membership::{GetMembers, Status};
use crate::peer::routes::{LockAcquire, LockHoldings, LockRelease};
use crate::peer::Peers;
use crate::peer::{LamportClock, PeerError};

/// Answers once the coordinator has granted this node the named lock. The
/// lock is the node's, not the caller's: while the node holds it or waits
/// for it, another `Acquire` of it is refused. A caller that stops waiting
/// must send `Release`, or the node goes on asking and will hold the lock.
#[derive(Message)]
#[rtype(result = "Result<(), LockError>")]
pub struct Acquire(pub String);

/// Lets go of a lock this node holds, or stops waiting for one (the waiting
/// `Acquire` then fails).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Release(pub String);

/// The locks this node holds, as the coordinator last answered, by name.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct GetHeld;

/// The lock table while this node is the coordinator and has rebuilt it;
/// empty otherwise.
#[derive(Message)]
#[rtype(result = "Vec<LockView>")]
pub struct GetLocks;

/// A node asks for a lock, renews it or says it still waits, `POST /lock/acquire`.
#[derive(Message)]
#[rtype(result = "AcquireAnswer")]
pub struct HandleAcquire(pub AcquireRequest);

/// A node lets go of a lock or stops waiting, `POST /lock/release`.
#[derive(Message)]
#[rtype(result = "ReleaseAnswer")]
pub struct HandleRelease(pub ReleaseRequest);

/// A new coordinator asks what this node holds and waits for, `POST /lock/holdings`.
#[derive(Message)]
#[rtype(result = "Holdings")]
pub struct HandleHoldings(pub HoldingsRequest);

/// Follows the coordinator, asks for every claimed lock, expires leases.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Tick;

/// Why an `Acquire` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockError {
    #[error("lock {0}: this node already holds it or waits for it")]
    AlreadyClaimed(String),
    #[error("lock {0}: released before it was granted")]
    Cancelled(String),
}

/// The actors and clock the `Locks` actor works with.
pub struct LocksLinks {
    /// How this node reaches the coordinator and, as coordinator, the others.
    pub peers: Peers,
    /// Coordination, asked on every tick who the coordinator is.
    pub coordination: Recipient<GetCoordinator>,
    /// Membership, asked for the live members when this node becomes coordinator.
    pub members: Recipient<GetMembers>,
    /// This node's Lamport clock, shared with its peer client: stamps each new claim.
    pub clock: Arc<LamportClock>,
}

/// This node's part on the coordinator's side.
enum Role {
    /// Another node, or none, is the coordinator.
    Follower,
    /// This node has become coordinator and gathers the holdings; `term`
    /// tells the answers of this term from those of an earlier one.
    Rebuilding {
        term: u64,
    },
    Serving(LockTable),
}

pub struct Locks {
    /// This node's address: its name in the table.
    me: String,
    /// How long a grant lasts without renewal; also how long a call to
    /// another node may take before its answer would be stale.
    lease: Duration,
    /// The coordinator's and the members' sources, the transport, the Lamport clock.
    links: LocksLinks,
    /// `None` when the owner sends `Tick` itself, as tests do.
    tick: Option<Duration>,
    /// Origin of the table's milliseconds.
    origin: Instant,
    /// The coordinator as of the last tick.
    coordinator: Option<String>,
    /// The locks this node holds and waits for: what it asks the coordinator
    /// for on every tick, and what it tells a new coordinator.
    claims: Claims,
    /// The `Acquire` waiting for each claimed lock not granted yet; the other
    /// end is that `Acquire`'s answer.
    waiting: HashMap<String, oneshot::Sender<Result<(), LockError>>>,
    /// The lock table, while this node is coordinator.
    role: Role,
    /// The latest term this node became coordinator in.
    terms: u64,
}

impl Locks {
    pub fn new(me: &str, lease: Duration, links: LocksLinks, tick: Option<Duration>) -> Self {
        Self {
            me: me.to_owned(),
            lease,
            links,
            tick,
            origin: Instant::now(),
            coordinator: None,
            claims: Claims::new(me),
            waiting: HashMap::new(),
            role: Role::Follower,
            terms: 0,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lease_ms(&self) -> u64 {
        u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX)
    }

    /// Takes up or gives up the coordinator's side as coordination names a
    /// coordinator.
    fn follow(&mut self, coordinator: Option<String>, ctx: &mut Context<Self>) {
        let is_me = coordinator.as_deref() == Some(self.me.as_str());
        self.coordinator = coordinator;
        match (&self.role, is_me) {
            (Role::Follower, true) => self.rebuild(ctx),
            (Role::Rebuilding { .. } | Role::Serving(_), false) => {
                log::info!("locks: no longer coordinator, the lock table is dropped");
                self.role = Role::Follower;
            }
            _ => {}
        }
    }

    /// Asks every other live member for its holdings, each within a lease,
    /// and rebuilds the table from the answers and this node's own claims. A
    /// member that does not answer is left out: it finds out on its next ask.
    fn rebuild(&mut self, ctx: &mut Context<Self>) {
        self.terms += 1;
        let term = self.terms;
        self.role = Role::Rebuilding { term };
        log::info!("locks: this node is coordinator, gathering the holdings of the live members");
        let members = self.links.members.send(GetMembers);
        let (peers, me, within) = (self.links.peers.clone(), self.me.clone(), self.lease);
        let gather = async move {
            let members = members.await?;
            let live = members.into_iter().filter(|m| m.status == Status::Alive && m.address != me);
            let calls = live.map(|m| {
                let call =
                    peers.call_within::<LockHoldings>(&m.address, &HoldingsRequest { coordinator: me.clone() }, within);
                async move { (m.address, call.await) }
            });
            Ok::<_, MailboxError>(join_all(calls).await)
        };
        ctx.spawn(gather.into_actor(self).map(move |answers, act, _| {
            if !matches!(act.role, Role::Rebuilding { term: t } if t == term) {
                return;
            }
            let answers = match answers {
                Ok(answers) => answers,
                Err(e) => {
                    log::warn!("locks: membership unreachable, rebuilding again on the next tick: {e}");
                    act.role = Role::Follower;
                    return;
                }
            };
            let mut holdings = vec![(act.me.clone(), act.claims.holdings())];
            for (peer, answer) in answers {
                match answer {
                    Ok(h) => holdings.push((peer, h)),
                    Err(e) => log::warn!("locks: {peer} left out of the rebuild: {e}"),
                }
            }
            let nodes = holdings.len();
            let mut table = LockTable::new(act.lease_ms());
            for Conflict { name, kept, queued } in table.rebuild(act.now_ms(), holdings) {
                log::warn!("lock {name}: {kept} keeps it; {queued:?} also held it at the rebuild and now wait");
            }
            log::info!("locks: table rebuilt from {nodes} nodes");
            act.role = Role::Serving(table);
        }));
    }

    /// Asks the coordinator for `name`: a first ask, a renewal, or a
    /// waiter's sign of life. This node serves its own asks when it is the
    /// coordinator.
    fn ask(&mut self, name: &str, ctx: &mut Context<Self>) {
        let Some(coordinator) = self.coordinator.clone() else {
            return;
        };
        let Some((ask, request)) = self.claims.ask(name) else {
            return;
        };
        if coordinator == self.me {
            let answer = self.serve_acquire(&request);
            self.answered(&coordinator, name, ask, &answer);
            return;
        }
        let call = self.links.peers.call_within::<LockAcquire>(&coordinator, &request, self.lease);
        let name = name.to_owned();
        ctx.spawn(call.into_actor(self).map(move |answer, act, _| match answer {
            Ok(answer) => act.answered(&coordinator, &name, ask, &answer),
            Err(e) => log::debug!("lock {name}: coordinator {coordinator} did not answer: {e}"),
        }));
    }

    /// Applies an answer from `from`; one from a node that is no longer the
    /// coordinator says nothing about the current table and is dropped.
    fn answered(&mut self, from: &str, name: &str, ask: u64, answer: &AcquireAnswer) {
        if self.coordinator.as_deref() != Some(from) {
            return;
        }
        match self.claims.answer(name, ask, answer) {
            Some(Change::Granted) => {
                log::info!("lock {name}: granted by {from}");
                if let Some(waiting) = self.waiting.remove(name) {
                    // The `Acquire` may have been dropped by its caller; the grant stands.
                    let _ = waiting.send(Ok(()));
                }
            }
            Some(Change::Lost { position }) => {
                log::warn!("lock {name}: lost, {from} has queued this node at position {position}; waiting again");
            }
            None => {}
        }
    }

    fn serve_acquire(&mut self, request: &AcquireRequest) -> AcquireAnswer {
        let now_ms = self.now_ms();
        match &mut self.role {
            Role::Follower => AcquireAnswer::NotCoordinator { coordinator: self.coordinator.clone() },
            Role::Rebuilding { .. } => AcquireAnswer::Rebuilding,
            Role::Serving(table) => match table.acquire(now_ms, &request.name, &request.node, request.lamport) {
                Grant::Granted { lease_ms } => AcquireAnswer::Granted { lease_ms },
                Grant::Queued { position } => AcquireAnswer::Queued { position },
            },
        }
    }

    fn serve_release(&mut self, request: &ReleaseRequest) -> ReleaseAnswer {
        let now_ms = self.now_ms();
        let (name, node) = (&request.name, &request.node);
        match &mut self.role {
            Role::Follower => ReleaseAnswer::NotCoordinator { coordinator: self.coordinator.clone() },
            Role::Rebuilding { .. } => ReleaseAnswer::Rebuilding,
            Role::Serving(table) => match table.release(now_ms, name, node) {
                Released::HandedOver { next } => {
                    log::debug!("lock {name}: released by {node}, now {}", next.as_deref().unwrap_or("free"));
                    ReleaseAnswer::Released
                }
                Released::Withdrawn => ReleaseAnswer::Released,
                Released::Refused => ReleaseAnswer::NotHolder,
            },
        }
    }
}

/// Logs a release the coordinator did not carry out. It costs at most a
/// lease: this node no longer asks, so the lease runs out or its place in
/// the queue lapses.
fn log_release(name: &str, coordinator: &str, answer: Result<ReleaseAnswer, PeerError>) {
    match answer {
        Ok(ReleaseAnswer::Released) => {}
        Ok(other) => log::debug!("lock {name}: release not carried out by {coordinator}: {other:?}"),
        Err(e) => log::debug!("lock {name}: release not sent to {coordinator}: {e}"),
    }
}

impl Actor for Locks {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(every) = self.tick {
            ctx.run_interval(every, |_, ctx| ctx.notify(Tick));
        }
    }
}

crate::panics_when_told!(Locks);

impl Handler<Tick> for Locks {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        let coordinator = self.links.coordination.send(GetCoordinator);
        ctx.wait(coordinator.into_actor(self).map(|coordinator, act, ctx| {
            let Ok(coordinator) = coordinator else { return };
            act.follow(coordinator, ctx);
            let now_ms = act.now_ms();
            if let Role::Serving(table) = &mut act.role {
                for expiry in table.expire(now_ms) {
                    match expiry {
                        Expiry::LeaseLost { name, node, next } => log::info!(
                            "lock {name}: the lease of {node} ran out, now {}",
                            next.as_deref().unwrap_or("free")
                        ),
                        Expiry::WaiterGone { name, node } => log::info!("lock {name}: {node} stopped waiting"),
                    }
                }
            }
            for name in act.claims.names() {
                act.ask(&name, ctx);
            }
        }));
    }
}

impl Handler<Acquire> for Locks {
    type Result = ResponseActFuture<Self, Result<(), LockError>>;

    fn handle(&mut self, Acquire(name): Acquire, ctx: &mut Context<Self>) -> Self::Result {
        if !self.claims.claim(&name, self.links.clock.tick()) {
            return Box::pin(fut::ready(Err(LockError::AlreadyClaimed(name))));
        }
        let (granted, grant) = oneshot::channel();
        self.waiting.insert(name.clone(), granted);
        // At once rather than on the next tick: a free lock is granted within a round trip.
        self.ask(&name, ctx);
        // The sender goes only with an answer, or with the actor: then the
        // caller sees the mailbox closed, as this future goes too.
        Box::pin(async move { grant.await.unwrap_or(Err(LockError::Cancelled(name))) }.into_actor(self))
    }
}

impl Handler<Release> for Locks {
    type Result = ();

    fn handle(&mut self, Release(name): Release, ctx: &mut Context<Self>) {
        if !self.claims.release(&name) {
            log::debug!("lock {name}: released, but this node neither holds it nor waits for it");
            return;
        }
        if let Some(waiting) = self.waiting.remove(&name) {
            let _ = waiting.send(Err(LockError::Cancelled(name.clone())));
        }
        let Some(coordinator) = self.coordinator.clone() else {
            return;
        };
        let request = ReleaseRequest { name: name.clone(), node: self.me.clone() };
        if coordinator == self.me {
            let answer = self.serve_release(&request);
            log_release(&name, &coordinator, Ok(answer));
            return;
        }
        let call = self.links.peers.call_within::<LockRelease>(&coordinator, &request, self.lease);
        ctx.spawn(call.into_actor(self).map(move |answer, _, _| log_release(&name, &coordinator, answer)));
    }
}

impl Handler<GetHeld> for Locks {
    type Result = MessageResult<GetHeld>;

    fn handle(&mut self, _: GetHeld, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.claims.held())
    }
}

impl Handler<GetLocks> for Locks {
    type Result = MessageResult<GetLocks>;

    fn handle(&mut self, _: GetLocks, _: &mut Context<Self>) -> Self::Result {
        match &self.role {
            Role::Serving(table) => MessageResult(table.view(self.now_ms())),
            Role::Follower | Role::Rebuilding { .. } => MessageResult(Vec::new()),
        }
    }
}

impl Handler<HandleAcquire> for Locks {
    type Result = MessageResult<HandleAcquire>;

    fn handle(&mut self, HandleAcquire(request): HandleAcquire, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.serve_acquire(&request))
    }
}

impl Handler<HandleRelease> for Locks {
    type Result = MessageResult<HandleRelease>;

    fn handle(&mut self, HandleRelease(request): HandleRelease, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.serve_release(&request))
    }
}

impl Handler<HandleHoldings> for Locks {
    type Result = MessageResult<HandleHoldings>;

    fn handle(&mut self, HandleHoldings(request): HandleHoldings, _: &mut Context<Self>) -> Self::Result {
        log::info!("locks: {} gathers the holdings of the live members", request.coordinator);
        MessageResult(self.claims.holdings())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;

    use tokio::task::JoinHandle;

    use super::*;
    use crate::testing::{serve, settle, Cluster, SimNet};

    const LEASE: Duration = Duration::from_millis(300);

    /// A simulated cluster: the nodes' actors on one network, and the
    /// coordinator every node sees.
    struct Net {
        sim: Rc<SimNet>,
        nodes: RefCell<HashMap<String, Addr<Locks>>>,
        coordinator: Rc<RefCell<Option<String>>>,
    }

    fn addr(i: u16) -> String {
        format!("127.0.0.1:{}", 7000 + i)
    }

    fn node(net: &Net, i: u16) -> Addr<Locks> {
        net.nodes.borrow()[&addr(i)].clone()
    }

    /// Starts nodes 1 to `n` with node `n` the coordinator, and lets it
    /// rebuild its (empty) table.
    async fn cluster(n: u16) -> Net {
        tokio::time::pause();
        let sim = SimNet::new();
        let (cluster, coordinator) = Cluster::start(&sim);
        let net = Net { sim: sim.clone(), nodes: RefCell::default(), coordinator };
        for i in 1..=n {
            let links = LocksLinks {
                peers: sim.peers(&addr(i)),
                coordination: cluster.clone().recipient(),
                members: cluster.clone().recipient(),
                clock: Arc::new(LamportClock::default()),
            };
            let actor = Locks::new(&addr(i), LEASE, links, None).start();
            sim.serve(&addr(i), serve::locks(actor.clone()));
            net.nodes.borrow_mut().insert(addr(i), actor);
        }
        *net.coordinator.borrow_mut() = Some(addr(n));
        run(&net, &(1..=n).collect::<Vec<_>>(), 200).await;
        net
    }

    /// Advances time by `ms` in steps of a tick (a third of the lease),
    /// ticking `nodes` at each step.
    async fn run(net: &Net, nodes: &[u16], ms: u64) {
        for _ in 0..ms / 100 {
            tokio::time::advance(Duration::from_millis(100)).await;
            for i in nodes {
                node(net, *i).send(Tick).await.unwrap();
            }
            settle().await;
        }
    }

    /// Node `i` dies: it answers nobody, and its actor stops with its last address.
    fn kill(net: &Net, i: u16) {
        net.sim.set_down(&addr(i), true);
        net.nodes.borrow_mut().remove(&addr(i));
    }

    /// Sends `Acquire` without waiting for the grant.
    async fn acquire(net: &Net, i: u16, name: &str) -> JoinHandle<Result<(), LockError>> {
        let (node, name) = (node(net, i), name.to_owned());
        let asked = actix_rt::spawn(async move { node.send(Acquire(name)).await.unwrap() });
        settle().await;
        asked
    }

    /// The answer of an `Acquire` that must have come by now.
    async fn answer(asked: JoinHandle<Result<(), LockError>>) -> Result<(), LockError> {
        assert!(asked.is_finished(), "the acquire still waits");
        asked.await.unwrap()
    }

    /// The coordinator's table as (name, holder, waiters), by node number.
    async fn table(net: &Net, coordinator: u16) -> Vec<(String, String, Vec<String>)> {
        let view = node(net, coordinator).send(GetLocks).await.unwrap();
        view.into_iter().map(|l| (l.name, l.holder, l.waiting)).collect()
    }

    fn lock(name: &str, holder: u16, waiting: &[u16]) -> (String, String, Vec<String>) {
        (name.to_owned(), addr(holder), waiting.iter().map(|w| addr(*w)).collect())
    }

    async fn held(net: &Net, i: u16) -> Vec<String> {
        node(net, i).send(GetHeld).await.unwrap()
    }

    #[actix::test]
    async fn grants_the_first_contender_and_hands_over_in_fifo_order_on_release() {
        let net = cluster(3).await;
        assert_eq!(answer(acquire(&net, 1, "x").await).await, Ok(()));
        let second = acquire(&net, 2, "x").await;
        // The coordinator's own claim queues behind the others'.
        let third = acquire(&net, 3, "x").await;
        assert_eq!(table(&net, 3).await, vec![lock("x", 1, &[2, 3])]);
        run(&net, &[1, 2, 3], 1000).await;
        assert_eq!(table(&net, 3).await, vec![lock("x", 1, &[2, 3])], "renewals keep the holder past its lease");
        assert!(!second.is_finished() && !third.is_finished());
        assert_eq!(node(&net, 2).send(Acquire("x".into())).await.unwrap(), Err(LockError::AlreadyClaimed("x".into())));

        node(&net, 1).send(Release("x".into())).await.unwrap();
        run(&net, &[1, 2, 3], 100).await;
        assert!(!third.is_finished());
        assert_eq!(answer(second).await, Ok(()));
        assert_eq!((held(&net, 1).await, held(&net, 2).await), (vec![], vec!["x".to_owned()]));
        node(&net, 2).send(Release("x".into())).await.unwrap();
        run(&net, &[1, 2, 3], 100).await;
        assert_eq!(answer(third).await, Ok(()));
        assert_eq!(table(&net, 3).await, vec![lock("x", 3, &[])]);
    }

    #[actix::test]
    async fn a_release_while_waiting_fails_the_wait_and_leaves_the_queue() {
        let net = cluster(3).await;
        acquire(&net, 1, "x").await;
        let waiting = acquire(&net, 2, "x").await;
        node(&net, 2).send(Release("x".into())).await.unwrap();
        settle().await;
        assert_eq!(answer(waiting).await, Err(LockError::Cancelled("x".into())));
        assert_eq!(table(&net, 3).await, vec![lock("x", 1, &[])]);
    }

    #[actix::test]
    async fn a_holder_that_stops_renewing_loses_the_lock_after_its_lease() {
        let net = cluster(3).await;
        acquire(&net, 1, "x").await;
        let waiting = acquire(&net, 2, "x").await;
        kill(&net, 1);
        run(&net, &[2, 3], 200).await;
        assert!(!waiting.is_finished(), "the lease has not run out yet");
        run(&net, &[2, 3], 200).await;
        assert_eq!(answer(waiting).await, Ok(()));
        assert_eq!(table(&net, 3).await, vec![lock("x", 2, &[])]);
    }

    #[actix::test]
    async fn a_new_coordinator_rebuilds_the_table_from_the_live_holders() {
        let net = cluster(3).await;
        acquire(&net, 1, "x").await;
        let waiting = acquire(&net, 2, "x").await;
        acquire(&net, 2, "y").await;
        kill(&net, 3);
        *net.coordinator.borrow_mut() = Some(addr(2));
        // Only the new coordinator ticks: its own claim asks first, and
        // still finds node 1 holding x.
        run(&net, &[2], 200).await;
        assert_eq!(table(&net, 2).await, vec![lock("x", 1, &[2]), lock("y", 2, &[])]);
        run(&net, &[1, 2], 1000).await;
        assert_eq!(table(&net, 2).await, vec![lock("x", 1, &[2]), lock("y", 2, &[])]);
        assert_eq!((held(&net, 1).await, held(&net, 2).await), (vec!["x".to_owned()], vec!["y".to_owned()]));
        assert!(!waiting.is_finished());
        node(&net, 1).send(Release("x".into())).await.unwrap();
        run(&net, &[1, 2], 100).await;
        assert_eq!(answer(waiting).await, Ok(()));
    }

    #[actix::test]
    async fn a_member_silent_during_the_rebuild_is_left_out_and_learns_its_loss_on_its_next_ask() {
        let net = cluster(3).await;
        acquire(&net, 1, "x").await;
        net.sim.set_mute(&addr(1), true);
        kill(&net, 3);
        *net.coordinator.borrow_mut() = Some(addr(2));
        run(&net, &[2], 100).await;
        let ask = AcquireRequest { name: "x".into(), node: addr(2), lamport: 9 };
        assert_eq!(node(&net, 2).send(HandleAcquire(ask)).await.unwrap(), AcquireAnswer::Rebuilding);
        assert_eq!(
            node(&net, 1).send(HandleAcquire(AcquireRequest { name: "x".into(), node: addr(2), lamport: 9 })).await,
            Ok(AcquireAnswer::NotCoordinator { coordinator: Some(addr(3)) }),
            "node 1 has not ticked since the switch"
        );
        // Past a lease the rebuild gives up on node 1, and x is free.
        run(&net, &[2], 400).await;
        assert_eq!(answer(acquire(&net, 2, "x").await).await, Ok(()));
        net.sim.set_mute(&addr(1), false);
        run(&net, &[1, 2], 100).await;
        assert_eq!(held(&net, 1).await, Vec::<String>::new(), "node 1 was queued and waits again");
        assert_eq!(table(&net, 2).await, vec![lock("x", 2, &[1])]);
        node(&net, 2).send(Release("x".into())).await.unwrap();
        run(&net, &[1, 2], 100).await;
        assert_eq!(held(&net, 1).await, vec!["x"]);
    }
}
