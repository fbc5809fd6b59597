//! The `Announcer` actor: multicast discovery, a child of the node root,
//! started only with `[discovery] multicast = true`.
//!
//! Takes in its own timer and the datagrams heard on the group. Every
//! `interval_ms` it multicasts this node's announcement, signed with the
//! cluster secret; for each announcement of another node signed with the
//! same secret it tells membership `Discovered`, which joins that node unless
//! it knows it already. Unsigned or wrongly signed datagrams are ignored. Its
//! own announcements come back through multicast loopback and are dropped
//! here.
//!
//! If it dies, this node stops announcing and listening: the members it has
//! stay members, watched by SWIM; only nodes that start later and have no
//! seeds no longer find this one, nor this one them.

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::stream::{self, Stream};
use tokio::net::UdpSocket;

use super::announcement::{self, Signing, MAX_DATAGRAM};
use crate::auth;
use crate::membership::Discovered;

/// Announces this node once.
#[derive(Message)]
#[rtype(result = "()")]
struct Tick;

/// One datagram heard on the group, at most `MAX_DATAGRAM + 1` bytes of it.
struct Heard {
    bytes: Vec<u8>,
    from: SocketAddr,
}

pub struct Announcer {
    /// This node's advertised address: what it announces, and how it tells
    /// its own announcements when loopback brings them back.
    node: String,
    /// The cluster secret this node signs its announcements with and checks
    /// the others' against, and the window an announcement is heard within.
    signing: Signing,
    /// Opened by `node::run` (`discovery::open`); the receiving stream holds
    /// the other reference.
    socket: Rc<UdpSocket>,
    /// The group and port announcements go to.
    group: SocketAddrV4,
    every: Duration,
    /// Membership, told of every other node heard.
    on_discovered: Recipient<Discovered>,
    /// Whether the last announcement failed, so that a lasting failure (an
    /// interface gone down) is logged once and its end once, not every
    /// interval.
    failing: bool,
}

impl Announcer {
    pub fn new(
        node: String,
        socket: UdpSocket,
        group: SocketAddrV4,
        every: Duration,
        signing: Signing,
        on_discovered: Recipient<Discovered>,
    ) -> Self {
        Self { node, signing, socket: Rc::new(socket), group, every, on_discovered, failing: false }
    }

    fn sent(&mut self, result: io::Result<usize>) {
        match result {
            Ok(_) if self.failing => {
                log::info!("discovery: announcing to {} again", self.group);
                self.failing = false;
            }
            Ok(_) => {}
            Err(e) if !self.failing => {
                log::warn!("discovery: cannot announce to {}: {e}; retrying every {:?}", self.group, self.every);
                self.failing = true;
            }
            Err(_) => {}
        }
    }
}

/// Every datagram the socket receives, for ever. The buffer holds one byte
/// more than an announcement may, so that a larger datagram, which the
/// kernel truncates to the buffer, is seen to be too large.
fn datagrams(socket: Rc<UdpSocket>, pause_after_error: Duration) -> impl Stream<Item = io::Result<Heard>> {
    stream::unfold(socket, move |socket| async move {
        let mut bytes = vec![0; MAX_DATAGRAM + 1];
        let heard = match socket.recv_from(&mut bytes).await {
            Ok((len, from)) => {
                bytes.truncate(len);
                Ok(Heard { bytes, from })
            }
            Err(e) => {
                // An error that lasts would otherwise spin this loop.
                tokio::time::sleep(pause_after_error).await;
                Err(e)
            }
        };
        Some((heard, socket))
    })
}

impl Actor for Announcer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        log::info!("discovery: announcing {} to {} every {:?}", self.node, self.group, self.every);
        ctx.add_stream(datagrams(self.socket.clone(), self.every));
        ctx.run_interval(self.every, |_, ctx| ctx.notify(Tick));
        ctx.notify(Tick);
    }
}

impl Handler<Tick> for Announcer {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        // Signed anew each time: the signature covers when it was sent.
        let datagram = announcement::encode(&self.node, &self.signing.secret, auth::wall_clock_ms());
        let (socket, group) = (self.socket.clone(), self.group);
        let send = async move { socket.send_to(&datagram, group).await };
        ctx.spawn(send.into_actor(self).map(|result, act, _| act.sent(result)));
    }
}

impl StreamHandler<io::Result<Heard>> for Announcer {
    fn handle(&mut self, heard: io::Result<Heard>, _: &mut Context<Self>) {
        let Heard { bytes, from } = match heard {
            Ok(heard) => heard,
            Err(e) => return log::warn!("discovery: cannot receive on {}: {e}", self.group),
        };
        // Debug only: anyone on the segment can send anything, as often as
        // they like.
        let node = match announcement::decode(&bytes, &self.signing, auth::wall_clock_ms()) {
            Ok(node) => node,
            Err(e) => return log::debug!("discovery: ignoring a datagram from {from}: {e}"),
        };
        if node == self.node {
            return;
        }
        // A full mailbox drops the news rather than queue without bound: the
        // node announces itself again within an interval.
        if let Err(e) = self.on_discovered.try_send(Discovered(node)) {
            log::debug!("discovery: membership did not take a discovered node: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;
    use std::net::{Ipv4Addr, UdpSocket as StdUdpSocket};

    use super::*;
    use crate::auth::Secret;
    use crate::discovery::open;

    const SECRET: &str = "cluster-secret-0123456789";

    /// Records the nodes it is told of, as membership would be.
    #[derive(Default)]
    struct Probe {
        discovered: Vec<String>,
    }

    impl Actor for Probe {
        type Context = Context<Self>;
    }

    impl Handler<Discovered> for Probe {
        type Result = ();
        fn handle(&mut self, Discovered(node): Discovered, _: &mut Context<Self>) {
            self.discovered.push(node);
        }
    }

    #[derive(Message)]
    #[rtype(result = "Vec<String>")]
    struct GetDiscovered;

    impl Handler<GetDiscovered> for Probe {
        type Result = MessageResult<GetDiscovered>;
        fn handle(&mut self, _: GetDiscovered, _: &mut Context<Self>) -> Self::Result {
            MessageResult(self.discovered.clone())
        }
    }

    /// A group and port of this test's own: a free UDP port, and a group in
    /// 239.255.0.0/16 picked at random, so that tests running at once do
    /// not hear each other.
    fn own_group() -> SocketAddrV4 {
        let port = StdUdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let [_, _, c, d, ..] = RandomState::new().hash_one(port).to_le_bytes();
        SocketAddrV4::new(Ipv4Addr::new(239, 255, c, d), port)
    }

    fn announce(node: &str, group: SocketAddrV4, secret: &str) -> Addr<Probe> {
        let probe = Probe::default().start();
        let socket = open(*group.ip(), group.port(), Ipv4Addr::LOCALHOST).unwrap();
        let every = Duration::from_millis(20);
        let signing = Signing { secret: Secret::new(secret), window_ms: 30_000 };
        Announcer::new(node.to_owned(), socket, group, every, signing, probe.clone().recipient()).start();
        probe
    }

    /// Polls `probe` until it has been told of `count` nodes, for at most 5 s.
    async fn told(probe: &Addr<Probe>, count: usize) -> Vec<String> {
        for _ in 0..500 {
            let discovered = probe.send(GetDiscovered).await.unwrap();
            if discovered.len() >= count {
                return discovered;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        probe.send(GetDiscovered).await.unwrap()
    }

    #[actix::test]
    async fn announcers_on_one_group_hear_each_other_and_not_themselves() {
        let group = own_group();
        let a = announce("127.0.0.1:6001", group, SECRET);
        let b = announce("127.0.0.1:6002", group, SECRET);
        let heard_by_a = told(&a, 3).await;
        let heard_by_b = told(&b, 3).await;
        assert!(heard_by_a.len() >= 3 && heard_by_a.iter().all(|n| n == "127.0.0.1:6002"), "{heard_by_a:?}");
        assert!(heard_by_b.len() >= 3 && heard_by_b.iter().all(|n| n == "127.0.0.1:6001"), "{heard_by_b:?}");
    }

    #[actix::test]
    async fn an_announcer_with_another_secret_is_not_heard() {
        let group = own_group();
        let a = announce("127.0.0.1:6001", group, SECRET);
        let stranger = announce("127.0.0.1:6666", group, "another-secret-0123456789");
        let _b = announce("127.0.0.1:6002", group, SECRET);
        // By the time a has heard b a few times, the stranger has announced
        // as often: none of its announcements got through, either way.
        let heard_by_a = told(&a, 5).await;
        assert!(heard_by_a.len() >= 5 && heard_by_a.iter().all(|n| n == "127.0.0.1:6002"), "{heard_by_a:?}");
        let heard_by_stranger = stranger.send(GetDiscovered).await.unwrap();
        assert!(heard_by_stranger.is_empty(), "{heard_by_stranger:?}");
    }

    #[actix::test]
    async fn hostile_datagrams_are_ignored_and_the_announcer_keeps_listening() {
        let group = own_group();
        let probe = announce("127.0.0.1:6001", group, SECRET);
        let sender = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        sender.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
        let sender = StdUdpSocket::from(sender);
        let now = auth::wall_clock_ms();
        let secret = Secret::new(SECRET);
        let mut too_large = announcement::encode("127.0.0.1:6666", &secret, now);
        too_large.resize(64 * 1024 - 100, b' ');
        let wrong_secret = announcement::encode("127.0.0.1:6667", &Secret::new("another-secret-0123456789"), now);
        let stale = announcement::encode("127.0.0.1:6668", &secret, now - 60_000);
        let hostile: [&[u8]; 9] = [
            b"",
            b"\x00\xff garbage",
            br#"{"evalmesh":1,"node":"127.0.0.1:6666"}"#,
            br#"{"evalmesh":2,"node":"127.0.0.1:6666"}"#,
            &wrong_secret,
            &stale,
            &announcement::encode("0.0.0.0:6666", &secret, now),
            &announcement::encode("localhost:6666", &secret, now),
            &too_large,
        ];
        for datagram in hostile {
            sender.send_to(datagram, group).unwrap();
        }
        // Datagrams from one socket over loopback arrive in order: once the
        // good one is heard, every hostile one before it has been read.
        sender.send_to(&announcement::encode("127.0.0.1:6003", &secret, now), group).unwrap();
        assert_eq!(told(&probe, 1).await, vec!["127.0.0.1:6003"]);
    }
}
