//! The node root: `run` starts this node's actors — the `Store`, the
//! `Executor`, the `Registry` of evaluation supervisors — and the HTTP server
//! on a listener the caller has already bound, and hands back a `NodeHandle`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{web, App, HttpServer};

use crate::api::{self, AppState};
use crate::config::Config;
use crate::evaluation::registry::Registry;
use crate::evaluation::supervisor::SupervisorSettings;
use crate::executor::envs::EnvCache;
use crate::executor::pytest::Pytest;
use crate::executor::{Executor, ExecutorError, PytestRunner};
use crate::store::{Store, StoreError};

/// Errors starting a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot prepare data folder {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot prepare the executor: {0}")]
    Executor(#[from] ExecutorError),
    #[error("cannot start the HTTP server: {0}")]
    Http(std::io::Error),
}

/// A running node: its server future and the address it serves on.
pub struct NodeHandle {
    pub server: actix_web::dev::Server,
    pub addr: std::net::SocketAddr,
}

/// Starts a node on `listener`. Must run inside an actix `System`.
pub fn run(config: Config, listener: TcpListener) -> Result<NodeHandle, NodeError> {
    let addr = listener.local_addr().map_err(NodeError::Http)?;
    let node = config
        .node
        .advertise
        .clone()
        .unwrap_or_else(|| addr.to_string());
    // Absolute, so that paths stored in the database do not depend on the
    // folder the node was started from.
    let data_dir =
        std::path::absolute(&config.node.data_dir).map_err(|source| NodeError::DataDir {
            path: config.node.data_dir.clone(),
            source,
        })?;
    let evaluations_dir = data_dir.join("evaluations");
    let uploads_dir = data_dir.join("uploads");
    for dir in [&data_dir, &evaluations_dir, &uploads_dir] {
        std::fs::create_dir_all(dir).map_err(|source| NodeError::DataDir {
            path: dir.clone(),
            source,
        })?;
    }
    clear_leftovers(&evaluations_dir, &uploads_dir);

    let store = Store::open(&data_dir.join("evalmesh.sqlite3"))?;
    let store = Store::start_in_arbiter(&Arbiter::new().handle(), move |_| store);

    let e = &config.executor;
    let envs = EnvCache::new(
        &data_dir,
        &e.python,
        e.use_uv,
        Duration::from_secs(e.install_timeout_s),
        e.output_cap_bytes,
    );
    let pytest = Pytest::new(
        &data_dir,
        Duration::from_secs(e.collect_timeout_s),
        e.output_cap_bytes,
        e.message_cap_bytes,
    )?;
    let runner = Rc::new(PytestRunner::new(envs, pytest));
    let executor = Executor::new(node.clone(), config.node.slots, runner).start();

    let settings = SupervisorSettings {
        node: node.clone(),
        evaluations_dir: evaluations_dir.clone(),
        modules_per_task: e.modules_per_task,
        module_timeout: Duration::from_secs(e.module_timeout_s),
        git_schemes: config.intake.git_schemes.clone(),
        clone_timeout: Duration::from_secs(config.intake.clone_timeout_s),
    };
    let registry = Registry::new(settings, store.clone(), executor.clone().recipient()).start();

    let state = web::Data::new(AppState {
        config,
        node: node.clone(),
        evaluations_dir,
        uploads_dir,
        started: Instant::now(),
        store,
        registry,
        executor,
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(api::configure)
            .default_service(web::to(api::not_found))
    })
    .workers(2)
    .listen(listener)
    .map_err(NodeError::Http)?
    .run();
    log::info!("node {node} serving on {addr}");
    Ok(NodeHandle { server, addr })
}

/// Removes what an interrupted intake left: half-unpacked workspaces and
/// uploads. Whole workspaces stay, for the evaluations that resume.
fn clear_leftovers(evaluations_dir: &std::path::Path, uploads_dir: &std::path::Path) {
    let partials = std::fs::read_dir(evaluations_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".partial"));
    let uploads = std::fs::read_dir(uploads_dir)
        .into_iter()
        .flatten()
        .flatten();
    for entry in partials.chain(uploads) {
        let path = entry.path();
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if let Err(e) = removed {
            log::warn!("cannot remove leftover {}: {e}", path.display());
        }
    }
}
