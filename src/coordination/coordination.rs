//! The `Coordination` actor: this node's part in electing the cluster's
//! coordinator, a child of the node root. A thin shell around the pure bully
//! core (`bully.rs`): on every `Tick` it reads the live members from
//! membership and feeds them to the core, carries out the messages the core
//! returns (`POST /election`, `POST /coordinator`), and answers those routes.
//!
//! If it dies, this node neither answers elections nor knows the
//! coordinator; the others elect among themselves, and a restarted actor
//! calls an election of its own.

use std::time::Duration;

use actix::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::bully::{Bully, Outgoing};
use crate::membership::{GetMembers, Status};
use crate::peer::routes::{Coordinator, Election};
use crate::peer::Peers;

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

pub struct Coordination {
    me: String,
    bully: Bully,
    peers: Peers,
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
    pub fn new(me: &str, bully: Bully, peers: Peers, members: Recipient<GetMembers>, tick: Option<Duration>) -> Self {
        Self { me: me.to_owned(), bully, peers, members, alive: Vec::new(), tick, clock: Instant::now() }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn perform(&mut self, out: Vec<Outgoing>, ctx: &mut Context<Self>) {
        for msg in out {
            match msg {
                Outgoing::Election { to } => {
                    let call = self.peers.call::<Election>(&to, &ElectionMessage { from: self.me.clone() });
                    ctx.spawn(call.into_actor(self).map(|answer, act, _| {
                        if matches!(answer, Ok(ElectionAnswer { answer: true })) {
                            act.bully.on_answer();
                        }
                    }));
                }
                Outgoing::Coordinator { to } => {
                    let call = self.peers.call::<Coordinator>(&to, &ElectionMessage { from: self.me.clone() });
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

crate::panics_when_told!(Coordination);

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
    use std::collections::{BTreeMap, BTreeSet};
    use std::rc::Rc;

    use super::*;
    use crate::coordination::bully::BullyConfig;
    use crate::testing::{serve, settle, Cluster, SimNet};

    fn addr(i: u16) -> String {
        format!("127.0.0.1:{}", 7000 + i)
    }

    struct Net {
        sim: Rc<SimNet>,
        nodes: BTreeMap<String, Addr<Coordination>>,
    }

    impl Net {
        fn set_alive(&self, i: u16, alive: bool) {
            self.sim.set_down(&addr(i), !alive);
        }
    }

    async fn run_for(net: &Net, ms: u64) {
        for _ in 0..ms / 100 {
            tokio::time::advance(Duration::from_millis(100)).await;
            // A dead node is not ticked: it sends nothing any more.
            for node in net.sim.up() {
                net.nodes[&node].send(Tick).await.unwrap();
            }
            settle().await;
        }
    }

    async fn coordinators(net: &Net) -> BTreeSet<Option<String>> {
        let mut seen = BTreeSet::new();
        for node in net.sim.up() {
            seen.insert(net.nodes[&node].send(GetCoordinator).await.unwrap());
        }
        seen
    }

    /// Starts `n` coordination actors, all alive, on one simulated network.
    fn cluster(n: u16) -> Net {
        let sim = SimNet::new();
        let (members, _) = Cluster::start(&sim);
        let config = BullyConfig { answer_timeout_ms: 300, coordinator_timeout_ms: 1000 };
        let mut nodes = BTreeMap::new();
        for i in 1..=n {
            let me = addr(i);
            let actor =
                Coordination::new(&me, Bully::new(&me, config), sim.peers(&me), members.clone().recipient(), None)
                    .start();
            sim.serve(&me, serve::coordination(actor.clone()));
            nodes.insert(me, actor);
        }
        Net { sim, nodes }
    }

    #[actix::test]
    async fn the_actors_elect_the_highest_and_again_when_it_dies() {
        tokio::time::pause();
        let net = cluster(3);
        run_for(&net, 1000).await;
        assert_eq!(coordinators(&net).await, BTreeSet::from([Some(addr(3))]));
        net.set_alive(3, false);
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
            net.set_alive(dead, false);
        }
        run_for(&net, 2000).await;
        assert_eq!(coordinators(&net).await, BTreeSet::from([Some(addr(3))]));
    }

    #[actix::test]
    async fn a_higher_node_that_rejoins_takes_over() {
        tokio::time::pause();
        let net = cluster(3);
        net.set_alive(3, false);
        run_for(&net, 1500).await;
        assert_eq!(coordinators(&net).await, BTreeSet::from([Some(addr(2))]));
        net.set_alive(3, true);
        run_for(&net, 1500).await;
        assert_eq!(coordinators(&net).await, BTreeSet::from([Some(addr(3))]));
    }
}
