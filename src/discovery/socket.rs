//! Opens the UDP socket the `Announcer` both sends and listens on. Apart from
//! the actor, since it runs before the node starts anything: a socket that
//! cannot be opened stops the node (see `node::run`).

use std::net::{Ipv4Addr, SocketAddrV4};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

/// Errors opening the discovery socket; `step` names the call that failed,
/// since the kernel's own text ("No such device") rarely says which.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("multicast group {group}:{port} on interface {interface}: cannot {step}: {source}")]
    Socket { step: &'static str, group: Ipv4Addr, port: u16, interface: Ipv4Addr, source: std::io::Error },
}

/// A socket bound to `group:port`, member of `group` on the interface whose
/// address is `interface` (`0.0.0.0`: the one the routing table picks), and
/// sending there with TTL 1 and loopback on. Must run inside a tokio runtime.
pub fn open(group: Ipv4Addr, port: u16, interface: Ipv4Addr) -> Result<UdpSocket, DiscoveryError> {
    let fail = |step| move |source| DiscoveryError::Socket { step, group, port, interface, source };
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(fail("create a UDP socket"))?;
    // Several nodes of one host (tests, a laptop cluster) listen on the same
    // port; each gets its own copy of every datagram sent to the group.
    socket.set_reuse_address(true).map_err(fail("set SO_REUSEADDR"))?;
    socket.set_reuse_port(true).map_err(fail("set SO_REUSEPORT"))?;
    // Bound to the group, not to 0.0.0.0: Linux then hands this socket only
    // datagrams sent to this group, not unicast to the port nor other groups
    // that other sockets of the host joined on it.
    socket.bind(&SocketAddrV4::new(group, port).into()).map_err(fail("bind"))?;
    socket.join_multicast_v4(&group, &interface).map_err(fail("join the group"))?;
    socket.set_multicast_if_v4(&interface).map_err(fail("set the outgoing interface"))?;
    // Nodes of one host hear each other only through the loopback copy.
    socket.set_multicast_loop_v4(true).map_err(fail("turn multicast loopback on"))?;
    // One segment: routers do not forward the announcements.
    socket.set_multicast_ttl_v4(1).map_err(fail("set the multicast TTL"))?;
    socket.set_nonblocking(true).map_err(fail("make the socket non-blocking"))?;
    UdpSocket::from_std(socket.into()).map_err(fail("register the socket with the runtime"))
}
