//! The node root: `run` starts this node's actors — the `Store`, the
//! `Executor`, the `Worker`, the `LoadBalancer`, the `Registry` of evaluation
//! supervisors, the `Membership`, the `Coordination`, the `Locks` and, when
//! multicast discovery is on, the `Announcer` — and the HTTP server on a
//! listener the caller has already bound, and hands back a `NodeHandle`.
//! The server's threads share the node's replay guard, made at start, so
//! that nothing signed before this run is taken; `POST /kill` is mounted
//! only when `admin.enable_kill` asks for it.

pub mod fail_stop;

use std::net::{SocketAddrV4, TcpListener};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{web, App, HttpServer};

use crate::api::{self, AppState};
use crate::auth::{self, ReplayGuard};
use crate::balance::LoadBalancer;
use crate::config::{Config, DEFAULT_SECRET};
use crate::coordination::bully::{Bully, BullyConfig};
use crate::coordination::Coordination;
use crate::discovery::{self, Announcer, DiscoveryError, Signing};
use crate::evaluation::registry::{Registry, Shared};
use crate::evaluation::supervisor::SupervisorSettings;
use crate::evaluation::worker::{Worker, WorkerSettings};
use crate::executor::envs::{resolve_interpreter, EnvCache, EnvSettings, BRIDGE_SOURCE};
use crate::executor::index_proxy;
use crate::executor::pytest::{Pytest, PytestSettings};
use crate::executor::sandbox::{Sandbox, SandboxError, SandboxKind, SandboxSettings};
use crate::executor::{Executor, ExecutorError, PytestRunner};
use crate::locks::{Locks, LocksLinks};
use crate::membership::model::Meta;
use crate::membership::swim::{Swim, SwimConfig};
use crate::membership::{Leave, Membership, MembershipLinks, MembershipSettings};
use crate::peer::{LamportClock, PeerClient, Peers};
use crate::store::{Store, StoreError};

/// Errors starting a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot prepare data folder {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot prepare the executor: {0}")]
    Executor(#[from] ExecutorError),
    #[error("cannot start the HTTP server: {0}")]
    Http(std::io::Error),
    #[error("cannot isolate tests: {0}")]
    Sandbox(#[from] SandboxError),
    #[error("cannot start multicast discovery: {0}")]
    Discovery(#[from] DiscoveryError),
}

/// The most peer-request signatures a node remembers within the replay
/// window: about 40 bytes each in an ordered set, so a few MiB at most. That
/// is a window's worth of 2000 requests a second; past it the window shrinks
/// rather than the memory grows (see `auth::replay`).
const REPLAY_MEMORY: usize = 65_536;

/// A running node: its server future, the address it serves on, and its
/// membership, to leave the cluster before stopping.
pub struct NodeHandle {
    pub server: actix_web::dev::Server,
    pub addr: std::net::SocketAddr,
    pub membership: Addr<Membership>,
}

impl NodeHandle {
    /// Serves until the server stops or SIGTERM/SIGINT arrives; on a signal
    /// the node leaves the cluster — peers take back its tasks at once — and
    /// then stops the server, letting requests in flight finish.
    pub async fn serve_until_signal(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let mut server = std::pin::pin!(self.server);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            stopped = &mut server => return stopped,
            _ = term.recv() => log::info!("SIGTERM: leaving the cluster"),
            _ = tokio::signal::ctrl_c() => log::info!("SIGINT: leaving the cluster"),
        }
        if let Err(e) = self.membership.send(Leave).await {
            log::warn!("cannot announce leaving: {e}");
        }
        // The server future must be polled for the stop to go through.
        let (_, stopped) = tokio::join!(handle.stop(true), server);
        stopped
    }
}

/// Starts a node on `listener`. Must run inside an actix `System`.
pub fn run(config: Config, listener: TcpListener) -> Result<NodeHandle, NodeError> {
    let addr = listener.local_addr().map_err(NodeError::Http)?;
    let node = config.node.advertise.clone().unwrap_or_else(|| addr.to_string());
    // Opened before anything starts: a node asked to discover its peers that
    // cannot would otherwise serve alone, with nothing to show it is cut off.
    let d = &config.discovery;
    let discovery_socket = d.multicast.then(|| discovery::open(d.group, d.port, d.interface)).transpose()?;
    // Absolute, so that paths stored in the database do not depend on the
    // folder the node was started from.
    let data_dir = std::path::absolute(&config.node.data_dir)
        .map_err(|source| NodeError::DataDir { path: config.node.data_dir.clone(), source })?;
    let evaluations_dir = data_dir.join("evaluations");
    let uploads_dir = data_dir.join("uploads");
    for dir in [&data_dir, &evaluations_dir, &uploads_dir] {
        std::fs::create_dir_all(dir).map_err(|source| NodeError::DataDir { path: dir.clone(), source })?;
    }
    clear_leftovers(&evaluations_dir, &uploads_dir);

    let store = Store::open(&data_dir.join("evalmesh.sqlite3"))?;
    let store = Store::start_in_arbiter(&Arbiter::new().handle(), move |_| store);

    let e = &config.executor;
    let sandbox_dir = data_dir.join("sandbox");
    let sandbox = Arc::new(Sandbox::new(SandboxSettings::from_config(&config, &data_dir))?);
    let (executable, interpreter) = resolve_interpreter(&e.python);
    sandbox.check(&executable, interpreter.clone())?;
    if e.sandbox == SandboxKind::None {
        log::warn!("executor.sandbox = \"none\": student code runs without isolation, as this node's user");
    }
    log::info!("{}", sandbox.describe());
    let sandbox_mode = sandbox.mode();
    let bridge = sandbox_dir.join("bridge.py");
    std::fs::write(&bridge, BRIDGE_SOURCE).map_err(|source| NodeError::DataDir { path: bridge.clone(), source })?;
    let index_socket = sandbox_dir.join("index.sock");
    let index_listener =
        index_proxy::bind(&index_socket).map_err(|source| NodeError::DataDir { path: index_socket.clone(), source })?;
    actix_rt::spawn(index_proxy::serve(index_listener, Arc::new(e.index_hosts.clone())));
    let settings = EnvSettings::from_config(e, &data_dir, executable, interpreter.clone(), bridge, index_socket);
    let envs = EnvCache::new(settings, sandbox.clone());
    let pytest = Pytest::new(PytestSettings::from_config(&config, &data_dir, interpreter), sandbox)?;
    let runner = Rc::new(PytestRunner::new(envs, pytest));
    let clock = Arc::new(LamportClock::default());
    let executor = Executor::new(node.clone(), config.node.slots, runner, clock.clone()).start();

    let c = &config.cluster;
    let peer_timeout = Duration::from_millis(c.peer_timeout_ms);
    let secret = c.secret.clone();
    let peers = Peers::new(PeerClient::new(&node, peer_timeout, clock.clone(), secret.clone()));
    let balancer = LoadBalancer::new(config.balance.policy.build()).start();
    let blobs_dir = data_dir.join("blobs");
    let worker = Worker::new(
        WorkerSettings::from_config(&config, &data_dir),
        peers.clone(),
        executor.clone().recipient(),
        executor.clone().recipient(),
        balancer.clone().recipient(),
    )
    .start();

    let settings = SupervisorSettings::from_config(&config, &node, &data_dir);
    // Membership tells the registry of lost nodes, and the registry needs the
    // locks, which need membership: the registry's address comes first.
    let registry_context = Context::<Registry>::new();
    let registry = registry_context.address();

    let swim_config = SwimConfig::from_config(c);
    // The wall clock in milliseconds: a restarted node comes back with an
    // incarnation above its dead past self's.
    let incarnation = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
    let slots = u32::try_from(config.node.slots).unwrap_or(u32::MAX);
    let swim = Swim::new(
        &node,
        incarnation,
        Meta { slots, busy: 0, boot: incarnation, envs: Vec::new() },
        swim_config.clone(),
        incarnation,
    );
    let membership = Membership::new(
        swim,
        MembershipSettings::from_config(c, &node, &swim_config),
        MembershipLinks {
            peers: peers.clone(),
            load: executor.clone().recipient(),
            balancer: balancer.clone().recipient(),
            on_lost: registry.clone().recipient(),
        },
    )
    .start();

    if let Some(socket) = discovery_socket {
        let group = SocketAddrV4::new(d.group, d.port);
        let every = Duration::from_millis(d.interval_ms);
        let signing = Signing { secret: secret.clone(), window_ms: c.auth_window_ms };
        Announcer::new(node.clone(), socket, group, every, signing, membership.clone().recipient()).start();
    }

    let bully = Bully::new(&node, BullyConfig::from_swim(&swim_config));
    let coordination = Coordination::new(
        &node,
        bully,
        peers.clone(),
        membership.clone().recipient(),
        Some(Duration::from_millis((c.probe_interval_ms / 3).max(10))),
    )
    .start();

    // Three asks a lease: a holder renews in time even when one ask is lost.
    let locks = Locks::new(
        &node,
        Duration::from_millis(c.lock_lease_ms),
        LocksLinks {
            peers: peers.clone(),
            coordination: coordination.clone().recipient(),
            members: membership.clone().recipient(),
            clock: clock.clone(),
        },
        Some(Duration::from_millis((c.lock_lease_ms / 3).max(1))),
    )
    .start();

    registry_context.run(Registry::new(Shared {
        settings,
        store: store.clone(),
        executor: executor.clone().recipient(),
        balancer: balancer.clone(),
        peers: peers.clone(),
        lock: locks.clone().recipient(),
        unlock: locks.clone().recipient(),
        joined: membership.clone().recipient(),
        members: membership.clone().recipient(),
        reconcile: Duration::from_millis(c.suspicion_timeout_ms),
        max_running: config.admission.max_running_evaluations,
        max_queued: config.admission.max_queued_evaluations,
        retention: match config.node.retention_days {
            0 => None,
            days => Some(Duration::from_secs(u64::from(days) * 86_400)),
        },
    }));

    if c.secret.expose() == DEFAULT_SECRET {
        log::warn!("cluster.secret is the default: this node serves alone and refuses every peer request");
    }
    let replay = ReplayGuard::new(c.auth_window_ms, REPLAY_MEMORY, auth::wall_clock_ms());
    let enable_kill = config.admin.enable_kill;
    if enable_kill {
        log::warn!("admin.enable_kill is on: POST /kill, signed with the cluster secret, kills this node");
    }
    let state = web::Data::new(AppState {
        config,
        node: node.clone(),
        evaluations_dir,
        uploads_dir,
        started: Instant::now(),
        blobs_dir,
        store,
        registry,
        executor,
        worker,
        membership: membership.clone(),
        coordination,
        locks,
        clock: clock.clone(),
        replay: std::sync::Mutex::new(replay),
        sandbox: sandbox_mode,
        streams: Default::default(),
    });
    let server_node = node.clone();
    let server_clock = clock.clone();
    let server = HttpServer::new(move || {
        let client = PeerClient::new(&server_node, peer_timeout, server_clock.clone(), secret.clone());
        let peers = Peers::new(client.clone());
        let app = App::new()
            .app_data(state.clone())
            .app_data(web::Data::new(client))
            .app_data(web::Data::new(peers))
            .configure(api::configure);
        let app = if enable_kill { app.configure(api::configure_admin) } else { app };
        app.default_service(web::to(api::not_found))
    })
    .workers(2)
    .disable_signals()
    .listen(listener)
    .map_err(NodeError::Http)?
    .run();
    log::info!("node {node} serving on {addr}");
    Ok(NodeHandle { server, addr, membership })
}

/// Removes what an interrupted intake left: half-unpacked workspaces and
/// uploads. Whole workspaces stay, for the evaluations that resume.
fn clear_leftovers(evaluations_dir: &std::path::Path, uploads_dir: &std::path::Path) {
    let partials = std::fs::read_dir(evaluations_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".partial"));
    let uploads = std::fs::read_dir(uploads_dir).into_iter().flatten().flatten();
    for entry in partials.chain(uploads) {
        let path = entry.path();
        let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        if let Err(e) = removed {
            log::warn!("cannot remove leftover {}: {e}", path.display());
        }
    }
}
