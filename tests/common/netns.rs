//! A network that tests can cut: each node in a network namespace of its
//! own, joined to a bridge (in a namespace of its own too) by a veth pair,
//! and the test process joined to the same bridge from the host. Links are
//! cut by dropping packets at the receiver (`nft`), so a cut link loses
//! packets silently as a pulled cable does, and loss is a random drop there
//! too (`numgen`: this machine's kernel has no `tc netem`). The nodes
//! reach the package index only through the test's `CONNECT` proxy on the
//! host (their `HTTPS_PROXY`), as nodes behind a company proxy do. Needs
//! root: `Lab::new` answers `None`, after saying why, to anyone else.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;

use super::*;

/// One test's namespaces, removed when it is dropped.
pub struct Lab {
    /// Names every namespace and interface of this lab: `em<subnet>`.
    prefix: String,
    subnet: u8,
    nodes: usize,
}

/// The port every node listens on, in its own namespace.
const PORT: u16 = 7000;
/// The port of the host's proxy.
const PROXY_PORT: u16 = 3128;

/// Serves `CONNECT host:port` on `listener`, forever, a thread a tunnel.
fn proxy(listener: TcpListener) {
    for client in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let mut reader = BufReader::new(client.try_clone()?);
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let target = line.split(' ').nth(1).unwrap_or_default().to_owned();
            while reader.read_line(&mut line)? > 2 {
                line.clear();
            }
            let upstream = TcpStream::connect(&target)?;
            (&client).write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
            let (mut up_read, mut client_write) = (upstream.try_clone()?, client.try_clone()?);
            std::thread::spawn(move || std::io::copy(&mut up_read, &mut client_write));
            std::io::copy(&mut reader, &mut &upstream)?;
            Ok::<_, std::io::Error>(())
        });
    }
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Lab {
    /// A lab of `nodes` namespaces on `10.77.<subnet>.0/24`; the subnet
    /// names the lab, so each test takes one of its own. `None`, after
    /// saying so, when the test cannot make namespaces (not root, no `ip`
    /// or `nft`).
    pub fn new(subnet: u8, nodes: usize) -> Option<Lab> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: network namespaces need root; CI runs as root");
            return None;
        }
        for tool in ["ip", "nft"] {
            if Command::new(tool).arg("-V").output().is_err() {
                eprintln!("SKIPPED: `{tool}` is not installed (.ci/run installs iproute2 and nftables)");
                return None;
            }
        }
        let lab = Lab { prefix: format!("em{subnet}"), subnet, nodes };
        lab.remove();
        let hub = lab.hub();
        run(&["ip", "netns", "add", &hub]);
        run(&["ip", "-n", &hub, "link", "add", "br0", "type", "bridge"]);
        run(&["ip", "-n", &hub, "link", "set", "br0", "up"]);
        // The test process's own end, on the host.
        let host = format!("{}h", lab.prefix);
        run(&["ip", "link", "add", &host, "type", "veth", "peer", "name", "host", "netns", &hub]);
        run(&["ip", "-n", &hub, "link", "set", "host", "master", "br0", "up"]);
        run(&["ip", "addr", "add", &format!("10.77.{subnet}.254/24"), "dev", &host]);
        run(&["ip", "link", "set", &host, "up"]);
        let listener = TcpListener::bind((format!("10.77.{subnet}.254"), PROXY_PORT)).expect("binding the lab's proxy");
        std::thread::spawn(move || proxy(listener));
        for i in 0..nodes {
            let ns = lab.ns(i);
            let port = format!("p{i}");
            run(&["ip", "netns", "add", &ns]);
            run(&["ip", "-n", &hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
            run(&["ip", "-n", &hub, "link", "set", &port, "master", "br0", "up"]);
            run(&["ip", "-n", &ns, "addr", "add", &format!("{}/24", lab.ip(i)), "dev", "eth0"]);
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            run(&["ip", "netns", "exec", &ns, "nft", "add table inet lab"]);
            let chain = "add chain inet lab input { type filter hook input priority 0 ; }";
            run(&["ip", "netns", "exec", &ns, "nft", chain]);
        }
        Some(lab)
    }

    fn hub(&self) -> String {
        format!("{}hub", self.prefix)
    }

    pub fn ns(&self, i: usize) -> String {
        format!("{}n{i}", self.prefix)
    }

    pub fn ip(&self, i: usize) -> String {
        format!("10.77.{}.{}", self.subnet, i + 1)
    }

    /// Node `i`'s address, as it listens and advertises.
    pub fn addr(&self, i: usize) -> String {
        format!("{}:{PORT}", self.ip(i))
    }

    /// Starts node `i` in its namespace with `config` (its listen address
    /// is set here), seeded with node 0 unless it is node 0.
    pub fn start(&self, i: usize, config: NodeConfig, dir: &Path) -> Node {
        let seeds = if i == 0 { "[]".to_owned() } else { format!("[{}]", toml_string(&self.addr(0))) };
        let config = config.set("node", "listen", &toml_string(&self.addr(i))).set("cluster", "seeds", &seeds);
        let proxy = format!("http://10.77.{}.254:{PROXY_PORT}", self.subnet);
        let launch = Launch { netns: Some(self.ns(i)), env: vec![("HTTPS_PROXY".into(), proxy)], ..Launch::default() };
        Node::launch(&config, dir, &format!("node{i}"), launch)
    }

    /// Packets from node `from` no longer reach node `to`.
    pub fn cut(&self, from: usize, to: usize) {
        let rule = format!("add rule inet lab input ip saddr {} drop", self.ip(from));
        run(&["ip", "netns", "exec", &self.ns(to), "nft", &rule]);
    }

    /// Cuts node `i` from every other node, both ways; the test still reaches it.
    pub fn isolate(&self, i: usize) {
        for j in (0..self.nodes).filter(|j| *j != i) {
            self.cut(i, j);
            self.cut(j, i);
        }
    }

    /// Every cut link carries packets again, and none loses any.
    pub fn heal(&self) {
        for i in 0..self.nodes {
            run(&["ip", "netns", "exec", &self.ns(i), "nft", "flush chain inet lab input"]);
        }
    }

    /// Every node loses `percent` % of the packets it receives: every
    /// link, both ways, loses that many.
    pub fn loss(&self, percent: u32) {
        for i in 0..self.nodes {
            let rule = format!("add rule inet lab input numgen random mod 100 < {percent} drop");
            run(&["ip", "netns", "exec", &self.ns(i), "nft", &rule]);
        }
    }

    fn remove(&self) {
        let _ = Command::new("ip").args(["link", "del", &format!("{}h", self.prefix)]).output();
        for ns in (0..self.nodes).map(|i| self.ns(i)).chain([self.hub()]) {
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.remove();
    }
}
