//! The `Coordination` actor: this node's part in electing the cluster's
//! coordinator, a child of the node root. A thin shell around the pure bully
//! core (`bully.rs`): on every `Tick` it reads the live members from
//! membership and feeds them to the core, carries out the messages the core
//! returns (`POST /election`, `POST /coordinator`), and answers those routes.
//!
//! If it dies, this node neither answers elections nor knows the
//! coordinator; the others elect among themselves, and a restarted actor
//! calls an election of its own.

use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::bully::{Bully, Outgoing};
use crate::membership::{GetMembers, Status};
use crate::peer::{PeerClient, PeerError};

/// Advances the election with the current live members.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Tick;

/// A lower node calls an election, `POST /election`: answers whether this
/// node takes it over.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct HandleElection(pub String);

/// A node announces itself coordinator, `POST /coordinator`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct HandleCoordinator(pub String);

/// The coordinator this node knows, if any.
#[derive(Message)]
#[rtype(result = "Option<String>")]
pub struct GetCoordinator;

/// The body of both election routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElectionMessage {
    pub from: String,
}

/// The answer of `POST /election`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectionAnswer {
    pub answer: bool,
}

/// How the actor reaches the other nodes.
pub trait Transport {
    fn election(&self, to: &str, from: &str) -> LocalBoxFuture<'static, Result<bool, PeerError>>;
    fn coordinator(&self, to: &str, from: &str) -> LocalBoxFuture<'static, Result<(), PeerError>>;
}

impl Transport for PeerClient {
    fn election(&self, to: &str, from: &str) -> LocalBoxFuture<'static, Result<bool, PeerError>> {
        let (client, to, body) = (self.clone(), to.to_owned(), ElectionMessage { from: from.to_owned() });
        async move { client.post::<_, ElectionAnswer>(&to, "/election", &body).await.map(|a| a.answer) }.boxed_local()
    }

    fn coordinator(&self, to: &str, from: &str) -> LocalBoxFuture<'static, Result<(), PeerError>> {
        let (client, to, body) = (self.clone(), to.to_owned(), ElectionMessage { from: from.to_owned() });
        async move { client.post::<_, serde_json::Value>(&to, "/coordinator", &body).await.map(|_| ()) }.boxed_local()
    }
}

pub struct Coordination {
    me: String,
    bully: Bully,
    transport: Rc<dyn Transport>,
    /// Membership, asked for the live members on every tick.
    members: Recipient<GetMembers>,
    /// The live members as of the last tick, this node included.
    alive: Vec<String>,
    /// `None` when the owner sends `Tick` itself, as tests do.
    tick: Option<Duration>,
    /// Origin of the core's milliseconds.
    clock: Instant,
}

impl Coordination {
    pub fn new(
        me: &str,
        bully: Bully,
        transport: Rc<dyn Transport>,
        members: Recipient<GetMembers>,
        tick: Option<Duration>,
    ) -> Self {
        Self { me: me.to_owned(), bully, transport, members, alive: Vec::new(), tick, clock: Instant::now() }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn perform(&mut self, out: Vec<Outgoing>, ctx: &mut Context<Self>) {
        for msg in out {
            match msg {
                Outgoing::Election { to } => {
                    let call = self.transport.election(&to, &self.me);
                    ctx.spawn(call.into_actor(self).map(|answer, act, _| {
                        if matches!(answer, Ok(true)) {
                            act.bully.on_answer();
                        }
                    }));
                }
                Outgoing::Coordinator { to } => {
                    let call = self.transport.coordinator(&to, &self.me);
                    ctx.spawn(call.into_actor(self).map(move |sent, _, _| {
                        if let Err(e) = sent {
                            log::debug!("coordinator announcement to {to} lost: {e}");
                        }
                    }));
                }
            }
        }
    }

    fn note_coordinator(&self, before: Option<String>) {
        let after = self.bully.coordinator();
        if before.as_deref() != after {
            log::info!("coordinator: {}", after.unwrap_or("none"));
        }
    }
}

impl Actor for Coordination {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(every) = self.tick {
            ctx.run_interval(every, |_, ctx| ctx.notify(Tick));
        }
    }
}

impl Handler<Tick> for Coordination {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        let members = self.members.send(GetMembers);
        ctx.wait(members.into_actor(self).map(|members, act, ctx| {
            let Ok(members) = members else { return };
            act.alive = members.into_iter().filter(|m| m.status == Status::Alive).map(|m| m.address).collect();
            let before = act.bully.coordinator().map(str::to_owned);
            let out = act.bully.tick(act.now_ms(), &act.alive);
            act.note_coordinator(before);
            act.perform(out, ctx);
        }));
    }
}

impl Handler<HandleElection> for Coordination {
    type Result = bool;

    fn handle(&mut self, HandleElection(from): HandleElection, ctx: &mut Context<Self>) -> bool {
        let (answered, out) = self.bully.on_election(self.now_ms(), &from, &self.alive);
        self.perform(out, ctx);
        answered
    }
}

impl Handler<HandleCoordinator> for Coordination {
    type Result = ();

    fn handle(&mut self, HandleCoordinator(from): HandleCoordinator, ctx: &mut Context<Self>) {
        let before = self.bully.coordinator().map(str::to_owned);
        let out = self.bully.on_coordinator(self.now_ms(), &from, &self.alive);
        self.note_coordinator(before);
        self.perform(out, ctx);
    }
}

impl Handler<GetCoordinator> for Coordination {
    type Result = Option<String>;

    fn handle(&mut self, _: GetCoordinator, _: &mut Context<Self>) -> Option<String> {
        self.bully.coordinator().map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::{BTreeSet, HashMap};

    use super::*;
    use crate::coordination::bully::BullyConfig;
    use crate::membership::model::{MemberView, Meta};

    /// The nodes of an in-memory cluster: their actors, and who is alive.
    #[derive(Default)]
    struct Net {
        nodes: RefCell<HashMap<String, Addr<Coordination>>>,
        alive: RefCell<BTreeSet<String>>,
    }

    struct Link(Rc<Net>);

    impl Link {
        fn reach(&self, to: &str) -> Result<Addr<Coordination>, PeerError> {
            let refused = || PeerError::Send { url: to.to_owned(), reason: "connection refused".into() };
            if !self.0.alive.borrow().contains(to) {
                return Err(refused());
            }
            self.0.nodes.borrow().get(to).cloned().ok_or_else(refused)
        }
    }

    fn lost(e: MailboxError) -> PeerError {
        PeerError::Read { url: String::new(), reason: e.to_string() }
    }

    impl Transport for Link {
        fn election(&self, to: &str, from: &str) -> LocalBoxFuture<'static, Result<bool, PeerError>> {
            let (target, from) = (self.reach(to), from.to_owned());
            async move { target?.send(HandleElection(from)).await.map_err(lost) }.boxed_local()
        }

        fn coordinator(&self, to: &str, from: &str) -> LocalBoxFuture<'static, Result<(), PeerError>> {
            let (target, from) = (self.reach(to), from.to_owned());
            async move { target?.send(HandleCoordinator(from)).await.map_err(lost) }.boxed_local()
        }
    }

    /// Stands in for membership: every node sees the same live set.
    struct Members(Rc<Net>);

    impl Actor for Members {
        type Context = Context<Self>;
    }

    impl Handler<GetMembers> for Members {
        type Result = MessageResult<GetMembers>;
        fn handle(&mut self, _: GetMembers, _: &mut Context<Self>) -> Self::Result {
            let view = |address: &String| MemberView {
                address: address.clone(),
                status: Status::Alive,
                incarnation: 1,
                last_seen_ms: 0,
                meta: Meta::default(),
            };
            MessageResult(self.0.alive.borrow().iter().map(view).collect())
        }
    }

    fn addr(i: u16) -> String {
        format!("127.0.0.1:{}", 7000 + i)
    }

    async fn run_for(net: &Net, ms: u64) {
        for _ in 0..ms / 100 {
            tokio::time::advance(Duration::from_millis(100)).await;
            // A dead node is not ticked: it sends nothing any more.
            let alive = net.alive.borrow().clone();
            let nodes: Vec<_> =
                net.nodes.borrow().iter().filter(|(a, _)| alive.contains(*a)).map(|(_, n)| n.clone()).collect();
            for node in nodes {
                node.send(Tick).await.unwrap();
            }
            for _ in 0..20 {
                tokio::task::yield_now().await;
            }
        }
    }

    async fn coordinators(net: &Net) -> BTreeSet<Option<String>> {
        let mut seen = BTreeSet::new();
        let alive: Vec<String> = net.alive.borrow().iter().cloned().collect();
        for a in alive {
            let node = net.nodes.borrow()[&a].clone();
            seen.insert(node.send(GetCoordinator).await.unwrap());
        }
        seen
    }

    /// Starts `n` coordination actors, all alive, on one in-memory network.
    fn cluster(n: u16) -> Rc<Net> {
        let net = Rc::new(Net::default());
        let members = Members(net.clone()).start();
        let config = BullyConfig { answer_timeout_ms: 300, coordinator_timeout_ms: 1000 };
        for i in 1..=n {
            let me = addr(i);
            let actor = Coordination::new(
                &me,
                Bully::new(&me, config),
                Rc::new(Link(net.clone())),
                members.clone().recipient(),
                None,
            )
            .start();
            net.nodes.borrow_mut().insert(me.clone(), actor);
            net.alive.borrow_mut().insert(me);
        }
        net
    }

    #[actix::test]
    async fn the_actors_elect_the_highest_and_again_when_it_dies() {
        tokio::time::pause();
        let net = cluster(3);
        run_for(&net, 1000).await;
        assert_eq!(coordinators(&net).await, BTreeSet::from([Some(addr(3))]));
        net.alive.borrow_mut().remove(&addr(3));
        run_for(&net, 1500).await;
        assert_eq!(coordinators(&net).await, BTreeSet::from([Some(addr(2))]));
    }

    #[actix::test]
    async fn when_several_die_at_once_the_highest_survivor_is_elected() {
        tokio::time::pause();
        let net = cluster(5);
        run_for(&net, 1000).await;
        assert_eq!(coordinators(&net).await, BTreeSet::from([Some(addr(5))]));
        for dead in [5, 4, 2] {
            net.alive.borrow_mut().remove(&addr(dead));
        }
        run_for(&net, 2000).await;
        assert_eq!(coordinators(&net).await, BTreeSet::from([Some(addr(3))]));
    }

    #[actix::test]
    async fn a_higher_node_that_rejoins_takes_over() {
        tokio::time::pause();
        let net = cluster(3);
        net.alive.borrow_mut().remove(&addr(3));
        run_for(&net, 1500).await;
        assert_eq!(coordinators(&net).await, BTreeSet::from([Some(addr(2))]));
        net.alive.borrow_mut().insert(addr(3));
        run_for(&net, 1500).await;
        assert_eq!(coordinators(&net).await, BTreeSet::from([Some(addr(3))]));
    }
}
