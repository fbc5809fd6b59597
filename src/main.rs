//! The `evalmesh` binary: command line → config → logging → `node::run`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use evalmesh::config::Config;

#[derive(Parser)]
#[command(version, about = "A cluster of peer nodes that grades Python projects with pytest")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a node.
    Node {
        /// The node's TOML config file; without it the embedded defaults
        /// apply. Variables `EVALMESH_<SECTION>__<KEY>` set keys over it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listens on ADDR (IP:port; port 0 takes a free one) instead of the
        /// config's `node.listen`.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Keeps evaluations, results and environments in PATH instead of the
        /// config's `node.data_dir`.
        #[arg(long, value_name = "PATH")]
        data_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let Command::Node { config, listen, data_dir } = Cli::parse().command;
    // A variable that is not UTF-8 cannot name a key: left to whoever set it.
    let vars = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let config = Config::assemble(config.as_deref(), vars);
    // The flags win over the file and the environment, and the result is
    // validated again: a bad --listen is refused as a bad `node.listen` would be.
    let config = config.and_then(|mut config| {
        if let Some(listen) = listen {
            config.node.listen = listen;
        }
        if let Some(data_dir) = data_dir {
            config.node.data_dir = data_dir;
        }
        config.validate().map(|()| config)
    });
    let config = match config {
        Ok(config) => config,
        Err(e) => {
            eprintln!("evalmesh: {e}");
            return ExitCode::from(2);
        }
    };
    match serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("evalmesh: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Config) -> Result<(), String> {
    let listener =
        TcpListener::bind(&config.node.listen).map_err(|e| format!("cannot listen on {}: {e}", config.node.listen))?;
    actix::System::new().block_on(async move {
        let node = evalmesh::node::run(config, listener).map_err(|e| e.to_string())?;
        node.serve_until_signal().await.map_err(|e| format!("server failed: {e}"))
    })
}
