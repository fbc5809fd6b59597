//! Discovery without seeds, with real processes: nodes with empty seed lists
//! that multicast on one group over loopback find each other; nodes with
//! discovery off, the default, stay alone; hostile datagrams on the group,
//! unsigned or signed with another secret among them, change nothing; a node whose discovery socket cannot be opened refuses to
//! start. Each test picks its own group and a free port, so that tests
//! running at once do not hear each other.

mod common;

use std::collections::hash_map::RandomState;
use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use evalmesh::auth::Secret;
use evalmesh::discovery::announcement;

/// A group in 239.255.0.0/16 picked at random and a UDP port free a moment ago.
fn own_group() -> SocketAddrV4 {
    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let [_, _, c, d, ..] = RandomState::new().hash_one(port).to_le_bytes();
    SocketAddrV4::new(Ipv4Addr::new(239, 255, c, d), port)
}

/// No seeds, cluster timings shrunk as in `cluster.rs`, and discovery on
/// loopback at `group`, announcing every 100 ms when `multicast` is true.
fn config(data_dir: &Path, group: SocketAddrV4, multicast: bool) -> NodeConfig {
    NodeConfig::new(data_dir)
        .set("node", "slots", "1")
        .set("cluster", "probe_interval_ms", "100")
        .set("cluster", "probe_timeout_ms", "80")
        .set("cluster", "suspicion_timeout_ms", "600")
        .set("cluster", "join_retry_ms", "200")
        .set("discovery", "multicast", &multicast.to_string())
        .set("discovery", "group", &toml_string(&group.ip().to_string()))
        .set("discovery", "port", &group.port().to_string())
        .set("discovery", "interface", &toml_string("127.0.0.1"))
        .set("discovery", "interval_ms", "100")
}

fn start(dir: &Path, label: &str, group: SocketAddrV4, multicast: bool) -> Node {
    Node::start(&config(&dir.join(label), group, multicast), dir, label)
}

/// Every member `node` knows, whatever its status.
fn known(node: &Node) -> BTreeSet<String> {
    let network = node.get("/network").json();
    network["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["address"].as_str().map(str::to_owned))
        .collect()
}

/// Waits until each of `nodes` holds all of them alive, and answers their addresses.
fn wait_all_alive(nodes: &[&Node]) -> BTreeSet<String> {
    let all: BTreeSet<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    for node in nodes {
        wait_until(&format!("{} sees {all:?} alive", node.addr), Duration::from_secs(20), || {
            alive(node).is_superset(&all).then_some(())
        });
    }
    all
}

/// A socket that sends to multicast groups over loopback, as a stranger on
/// the segment would.
fn stranger() -> UdpSocket {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    socket.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    socket.bind(&SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0).into()).unwrap();
    socket.into()
}

#[test]
fn nodes_without_seeds_find_each_other_by_multicast() {
    with_timeout(Duration::from_secs(90), || {
        let dir = tempfile::tempdir().unwrap();
        let group = own_group();
        let nodes: Vec<Node> = (0..3).map(|i| start(dir.path(), &format!("node{i}"), group, true)).collect();
        let all = wait_all_alive(&nodes.iter().collect::<Vec<_>>());
        for node in &nodes {
            assert_eq!(known(node), all);
            assert!(node.log().contains(&format!("discovery: announcing {} to {group}", node.addr)), "{}", node.log());
        }
    });
}

#[test]
fn with_multicast_off_nodes_without_seeds_stay_alone() {
    with_timeout(Duration::from_secs(90), || {
        let dir = tempfile::tempdir().unwrap();
        // The nodes with discovery off are given the same group and port, so
        // that only the switch keeps them out.
        let group = own_group();
        let off = [start(dir.path(), "off0", group, false), start(dir.path(), "off1", group, false)];
        let on = [start(dir.path(), "on0", group, true), start(dir.path(), "on1", group, true)];
        // The nodes with it on finding each other shows that announcements
        // flow on this group; ten more intervals give the others every chance.
        let pair = wait_all_alive(&[&on[0], &on[1]]);
        let found = poll_until(Duration::from_secs(1), || {
            let seen: Vec<BTreeSet<String>> = off.iter().chain(&on).map(known).collect();
            let alone =
                seen[0] == BTreeSet::from([off[0].addr.clone()]) && seen[1] == BTreeSet::from([off[1].addr.clone()]);
            (!alone || seen[2] != pair || seen[3] != pair).then_some(seen)
        });
        assert_eq!(found, None, "a node with discovery off was found or found someone");
        for node in &off {
            assert!(!node.log().contains("discovery:"), "{}", node.log());
        }
    });
}

#[test]
fn hostile_datagrams_on_the_group_change_nothing() {
    with_timeout(Duration::from_secs(90), || {
        let dir = tempfile::tempdir().unwrap();
        let group = own_group();
        let a = start(dir.path(), "a", group, true);
        let stranger = stranger();
        // Each refused datagram names an address of its own, so that the
        // log shows none of them led anywhere.
        let decoy = |n: u16| format!(r#"{{"evalmesh":{n},"node":"127.0.0.1:{n}"}}"#);
        let secret = Secret::new(TEST_SECRET);
        let mut too_large = announcement::encode("127.0.0.1:1", &secret, now_ms());
        too_large.resize(60_000, b' ');
        let hostile: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"\x00\xff\xfe not json".to_vec(),
            announcement::encode("0.0.0.0:5001", &secret, now_ms()),
            decoy(7).into_bytes(),
            // Unsigned: version 1, and version 2 without its signature.
            decoy(1).into_bytes(),
            decoy(2).into_bytes(),
            announcement::encode("127.0.0.1:3", &Secret::new("another-cluster-secret-0123"), now_ms()),
            announcement::encode("127.0.0.1:4", &secret, now_ms() - 120_000),
            too_large,
        ];
        for datagram in &hostile {
            stranger.send_to(datagram, group).unwrap();
        }
        // A well-formed announcement of an address nothing listens on: it
        // leads to a join, which fails, and to nothing more. Sent last over
        // loopback, it is read after every hostile one.
        let nowhere = format!("127.0.0.1:{}", free_port());
        stranger.send_to(&announcement::encode(&nowhere, &secret, now_ms()), group).unwrap();
        wait_until("a tries the announced address", Duration::from_secs(10), || {
            a.log().contains(&format!("discovered {nowhere}: joining it")).then_some(())
        });
        assert_eq!(a.log().matches("discovered ").count(), 1, "{}", a.log());
        let b = start(dir.path(), "b", group, true);
        let both = wait_all_alive(&[&a, &b]);
        for node in [&a, &b] {
            assert_eq!(known(node), both, "only the two nodes are members");
        }
    });
}

#[test]
fn a_node_that_cannot_open_its_discovery_socket_refuses_to_start() {
    with_timeout(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        // 198.51.100.0/24 is TEST-NET-2: no interface of this host has it.
        let config = config(&dir.path().join("data"), own_group(), true).set(
            "discovery",
            "interface",
            &toml_string("198.51.100.7"),
        );
        let config_path = dir.path().join("node.toml");
        std::fs::write(&config_path, config.to_toml()).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_evalmesh"));
        cmd.arg("node").arg("--config").arg(&config_path).stdin(Stdio::null());
        let out = die_with_parent(&mut cmd).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains("cannot start multicast discovery"), "{stderr}");
        assert!(stderr.contains("on interface 198.51.100.7: cannot join the group"), "{stderr}");
        assert!(!stderr.contains("serving on"), "{stderr}");
    });
}
