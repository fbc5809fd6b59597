//! The bully election (Garcia-Molina 1982), the pure core under the
//! `Coordination` actor: no clock, no socket. The actor feeds it the members
//! membership holds alive and the election messages that arrive, and carries
//! out the messages it returns.
//!
//! Node ids are node addresses, ordered as socket addresses (IP, then port):
//! the highest live node is the coordinator. A node that sees no live
//! coordinator calls an election: it sends `Election` to every higher node;
//! a higher node answers and takes the election over; a node that no higher
//! node answers within `answer_timeout_ms` wins and announces itself with
//! `Coordinator` to every lower node. A node that comes back and is higher
//! than the coordinator calls an election and wins it: the bully.

use std::net::SocketAddr;

use crate::membership::model::SwimConfig;

/// A message to send to one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// "I am calling an election": the receiver answers if it is higher.
    Election { to: String },
    /// "I am the coordinator".
    Coordinator { to: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BullyConfig {
    /// A caller no higher node answered within this has won.
    pub answer_timeout_ms: u64,
    /// A caller that was answered but heard no coordinator within this calls again.
    pub coordinator_timeout_ms: u64,
}

impl BullyConfig {
    /// An election waits for answers as long as an indirect probe, and for
    /// an announcement as long as a suspicion: the timings of the same network.
    pub fn from_swim(swim: &SwimConfig) -> Self {
        Self { answer_timeout_ms: swim.indirect_timeout_ms(), coordinator_timeout_ms: swim.suspicion_timeout_ms }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Election {
    started_ms: u64,
    answered: bool,
}

#[derive(Debug)]
pub struct Bully {
    me: String,
    config: BullyConfig,
    coordinator: Option<String>,
    election: Option<Election>,
}

/// Orders node ids as socket addresses; an id that is not one sorts below
/// every address, by its text.
pub fn rank(id: &str) -> (Option<SocketAddr>, &str) {
    (id.parse().ok(), id)
}

impl Bully {
    pub fn new(me: &str, config: BullyConfig) -> Self {
        Self { me: me.to_owned(), config, coordinator: None, election: None }
    }

    pub fn coordinator(&self) -> Option<&str> {
        self.coordinator.as_deref()
    }

    pub fn electing(&self) -> bool {
        self.election.is_some()
    }

    fn higher(&self, alive: &[String]) -> Vec<String> {
        alive.iter().filter(|n| rank(n) > rank(&self.me)).cloned().collect()
    }

    fn lower(&self, alive: &[String]) -> Vec<String> {
        alive.iter().filter(|n| rank(n) < rank(&self.me)).cloned().collect()
    }

    fn call(&mut self, now_ms: u64, alive: &[String]) -> Vec<Outgoing> {
        let higher: Vec<Outgoing> = self.higher(alive).into_iter().map(|to| Outgoing::Election { to }).collect();
        if higher.is_empty() {
            return self.win(alive);
        }
        self.election = Some(Election { started_ms: now_ms, answered: false });
        higher
    }

    fn win(&mut self, alive: &[String]) -> Vec<Outgoing> {
        self.election = None;
        self.coordinator = Some(self.me.clone());
        self.lower(alive).into_iter().map(|to| Outgoing::Coordinator { to }).collect()
    }

    /// Called often with the members held alive (this node included):
    /// calls an election when there is no live coordinator, and ends one
    /// whose time is up.
    pub fn tick(&mut self, now_ms: u64, alive: &[String]) -> Vec<Outgoing> {
        if let Some(e) = self.election {
            let waited = now_ms.saturating_sub(e.started_ms);
            return match (e.answered, waited) {
                (false, w) if w >= self.config.answer_timeout_ms => self.win(alive),
                (true, w) if w >= self.config.coordinator_timeout_ms => self.call(now_ms, alive),
                _ => Vec::new(),
            };
        }
        let live_coordinator = self.coordinator.as_ref().is_some_and(|c| alive.contains(c));
        if !live_coordinator {
            return self.call(now_ms, alive);
        }
        // A node above the coordinator is alive: it has just come back or
        // joined, and an election makes it the coordinator.
        let coordinator = self.coordinator.clone().unwrap_or_default();
        if alive.iter().any(|n| rank(n) > rank(&coordinator)) {
            return self.call(now_ms, alive);
        }
        Vec::new()
    }

    /// A lower node called an election: this node answers (the caller's
    /// transport carries the answer back) and calls its own. A node that is
    /// or becomes coordinator tells the caller at once, even when its view
    /// of the live members does not hold the caller yet.
    pub fn on_election(&mut self, now_ms: u64, from: &str, alive: &[String]) -> (bool, Vec<Outgoing>) {
        if rank(from) >= rank(&self.me) {
            return (false, Vec::new());
        }
        let mut out = if self.election.is_some() { Vec::new() } else { self.call(now_ms, alive) };
        let tell = Outgoing::Coordinator { to: from.to_owned() };
        if self.coordinator.as_deref() == Some(self.me.as_str()) && !out.contains(&tell) {
            out.push(tell);
        }
        (true, out)
    }

    /// A higher node answered this node's call: it waits for the announcement.
    pub fn on_answer(&mut self) {
        if let Some(e) = self.election.as_mut() {
            e.answered = true;
        }
    }

    /// A node announced itself. A lower one is contested by calling an
    /// election, which this node will win.
    pub fn on_coordinator(&mut self, now_ms: u64, from: &str, alive: &[String]) -> Vec<Outgoing> {
        if rank(from) < rank(&self.me) {
            return self.call(now_ms, alive);
        }
        self.election = None;
        self.coordinator = Some(from.to_owned());
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    const CONFIG: BullyConfig = BullyConfig { answer_timeout_ms: 300, coordinator_timeout_ms: 1000 };

    /// Nodes that deliver election messages to each other at once; dead
    /// nodes receive nothing and are missing from every alive list.
    struct Cluster {
        nodes: BTreeMap<String, Bully>,
        dead: BTreeSet<String>,
        now: u64,
    }

    impl Cluster {
        fn new(n: u16) -> Self {
            let nodes = (1..=n).map(addr).map(|a| (a.clone(), Bully::new(&a, CONFIG))).collect();
            Self { nodes, dead: BTreeSet::new(), now: 0 }
        }

        fn alive(&self) -> Vec<String> {
            self.nodes.keys().filter(|n| !self.dead.contains(*n)).cloned().collect()
        }

        fn deliver(&mut self, from: &str, out: Vec<Outgoing>) {
            for msg in out {
                let alive = self.alive();
                match msg {
                    Outgoing::Election { to } if !self.dead.contains(&to) => {
                        let (answered, more) = self.nodes.get_mut(&to).unwrap().on_election(self.now, from, &alive);
                        if answered {
                            self.nodes.get_mut(from).unwrap().on_answer();
                        }
                        self.deliver(&to, more);
                    }
                    Outgoing::Coordinator { to } if !self.dead.contains(&to) => {
                        let more = self.nodes.get_mut(&to).unwrap().on_coordinator(self.now, from, &alive);
                        self.deliver(&to, more);
                    }
                    _ => {}
                }
            }
        }

        fn run(&mut self, ms: u64) {
            for _ in 0..ms / 100 {
                self.now += 100;
                for id in self.alive() {
                    let alive = self.alive();
                    let out = self.nodes.get_mut(&id).unwrap().tick(self.now, &alive);
                    self.deliver(&id, out);
                }
            }
        }

        fn coordinators(&self) -> BTreeSet<Option<String>> {
            self.alive().iter().map(|n| self.nodes[n].coordinator().map(str::to_owned)).collect()
        }
    }

    fn addr(i: u16) -> String {
        format!("127.0.0.1:{}", 5000 + i)
    }

    #[test]
    fn every_node_agrees_on_the_highest() {
        let mut c = Cluster::new(5);
        c.run(2000);
        assert_eq!(c.coordinators(), BTreeSet::from([Some(addr(5))]));
    }

    #[test]
    fn the_next_highest_takes_over_when_the_coordinator_dies() {
        let mut c = Cluster::new(5);
        c.run(2000);
        c.dead.insert(addr(5));
        c.run(2000);
        assert_eq!(c.coordinators(), BTreeSet::from([Some(addr(4))]));
    }

    #[test]
    fn several_deaths_leave_the_highest_survivor() {
        let mut c = Cluster::new(6);
        c.run(2000);
        for i in [6, 5, 3] {
            c.dead.insert(addr(i));
        }
        c.run(3000);
        assert_eq!(c.coordinators(), BTreeSet::from([Some(addr(4))]));
    }

    #[test]
    fn a_higher_node_that_comes_back_bullies_its_way_to_coordinator() {
        let mut c = Cluster::new(4);
        c.dead.insert(addr(4));
        c.run(2000);
        assert_eq!(c.coordinators(), BTreeSet::from([Some(addr(3))]));
        c.dead.remove(&addr(4));
        c.nodes.insert(addr(4), Bully::new(&addr(4), CONFIG));
        c.run(2000);
        assert_eq!(c.coordinators(), BTreeSet::from([Some(addr(4))]));
    }

    #[test]
    fn a_coordinator_that_does_not_know_the_caller_yet_still_tells_it() {
        let mut high = Bully::new(&addr(3), CONFIG);
        let (answered, out) = high.on_election(0, &addr(1), &[]);
        assert!(answered);
        assert_eq!(out, vec![Outgoing::Coordinator { to: addr(1) }]);
    }

    #[test]
    fn a_node_that_missed_the_announcement_calls_when_it_sees_a_higher_node() {
        // 1 follows 2; 3 won alone before it knew anyone, and told nobody.
        let mut low = Bully::new(&addr(1), CONFIG);
        low.on_coordinator(0, &addr(2), &[addr(1), addr(2)]);
        let out = low.tick(100, &[addr(1), addr(2), addr(3)]);
        assert_eq!(out, vec![Outgoing::Election { to: addr(2) }, Outgoing::Election { to: addr(3) }]);
    }

    #[test]
    fn a_lone_node_is_its_own_coordinator_at_once() {
        let mut b = Bully::new(&addr(1), CONFIG);
        assert!(b.tick(0, &[addr(1)]).is_empty());
        assert_eq!(b.coordinator(), Some(addr(1).as_str()));
    }

    #[test]
    fn ids_order_as_socket_addresses_not_as_text() {
        assert!(rank("127.0.0.1:10000") > rank("127.0.0.1:9000"));
        assert!(rank("127.0.0.2:1") > rank("127.0.0.1:9000"));
    }
}
