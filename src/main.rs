//! The `evalmesh` binary: command line → config → logging → `node::run`.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use evalmesh::cli::{self, CliError, Client, Export, Format, Outcome};
use evalmesh::config::{Config, LogFormat};

#[derive(Parser)]
#[command(version, about = "A cluster of peer nodes that grades Python projects with pytest")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the client commands find the cluster.
#[derive(clap::Args)]
struct Target {
    /// A node of the cluster: http://host:port, or host:port.
    #[arg(long, env = "EVALMESH_NODE", default_value = cli::DEFAULT_NODE)]
    node: String,
    /// A client token (`[api] tokens`), sent as a Bearer header.
    #[arg(long, env = "EVALMESH_TOKEN", hide_env_values = true)]
    token: Option<String>,
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
    /// Submits projects: folders (zipped on the fly, without .git, virtual
    /// environments and caches), a zip, or git URLs.
    Submit {
        #[arg(required = true, value_name = "PATH|URL")]
        sources: Vec<String>,
        /// A reference suite to grade every project on: a folder, a zip, or
        /// (with git URLs) a git URL.
        #[arg(long, value_name = "PATH|URL")]
        tests: Option<String>,
        /// The token that clones the git URLs.
        #[arg(long, env = "EVALMESH_GIT_TOKEN", hide_env_values = true)]
        git_token: Option<String>,
        /// Follows the evaluation to its end, then prints its grades.
        #[arg(long)]
        wait: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        #[command(flatten)]
        target: Target,
    },
    /// Prints an evaluation's grades and status.
    Status {
        id: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        #[command(flatten)]
        target: Target,
    },
    /// Lists the cluster's evaluations.
    List {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        #[command(flatten)]
        target: Target,
    },
    /// Follows an evaluation's progress to its end, then prints its grades.
    Watch {
        id: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        #[command(flatten)]
        target: Target,
    },
    /// Writes an evaluation's gradebook, JUnit report or full record.
    Export {
        id: String,
        #[arg(long, value_enum)]
        format: Export,
        #[command(flatten)]
        target: Target,
    },
    /// Cancels a running evaluation, or removes a finished one.
    Cancel {
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Prints the cluster's members and coordinator.
    Network {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        #[command(flatten)]
        target: Target,
    },
}

fn main() -> ExitCode {
    let (config, listen, data_dir) = match Cli::parse().command {
        Command::Node { config, listen, data_dir } => (config, listen, data_dir),
        client => return run_client(client),
    };
    evalmesh::node::fail_stop::install();
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
    init_logging(config.node.log_format);
    match serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("evalmesh: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs at `info` unless `RUST_LOG` says otherwise, as text or JSON lines.
fn init_logging(format: LogFormat) {
    let mut builder = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if format == LogFormat::Json {
        builder.format(|out, record| {
            let line = serde_json::json!({
                "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "level": record.level().as_str(),
                "target": record.target(),
                "message": record.args().to_string(),
            });
            writeln!(out, "{line}")
        });
    }
    builder.init();
}

fn serve(config: Config) -> Result<(), String> {
    let listener =
        TcpListener::bind(&config.node.listen).map_err(|e| format!("cannot listen on {}: {e}", config.node.listen))?;
    actix::System::new().block_on(async move {
        let node = evalmesh::node::run(config, listener).map_err(|e| e.to_string())?;
        node.serve_until_signal().await.map_err(|e| format!("server failed: {e}"))
    })
}

/// Runs a client command; its exit status is `cli`'s.
fn run_client(command: Command) -> ExitCode {
    let outcome = actix::System::new().block_on(client(command));
    match outcome {
        Ok(outcome) => ExitCode::from(outcome.code()),
        Err(e) => {
            eprintln!("evalmesh: {e}");
            ExitCode::from(e.code())
        }
    }
}

async fn client(command: Command) -> Result<Outcome, CliError> {
    let connect = |t: Target| Client::new(&t.node, t.token);
    let json = |v: &serde_json::Value| println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    match command {
        Command::Node { .. } => unreachable!("run by main"),
        Command::Submit { sources, tests, git_token, wait, format, target } => {
            let client = connect(target);
            let id = cli::submit(&client, &sources, tests.as_deref(), git_token).await?;
            if !wait {
                match format {
                    Format::Json => json(&serde_json::json!({ "id": id })),
                    Format::Table | Format::Csv => println!("{id}"),
                }
                return Ok(Outcome::Ok);
            }
            eprintln!("evaluation {id}");
            let record = client.follow(&id, &mut cli::show::Progress::default()).await?;
            cli::print_record(&client, &record, format).await
        }
        Command::Status { id, format, target } => {
            let client = connect(target);
            let record = client.get(&format!("/evaluation/{id}")).await?;
            cli::print_record(&client, &record, format).await
        }
        Command::Watch { id, format, target } => {
            let client = connect(target);
            let record = client.follow(&id, &mut cli::show::Progress::default()).await?;
            cli::print_record(&client, &record, format).await
        }
        Command::List { format, target } => {
            let list = connect(target).get("/evaluation").await?;
            match format {
                Format::Json => json(&list),
                Format::Table | Format::Csv => print!("{}", cli::show::evaluations(&list)),
            }
            Ok(Outcome::Ok)
        }
        Command::Export { id, format, target } => {
            cli::export(&connect(target), &id, format).await.map(|()| Outcome::Ok)
        }
        Command::Cancel { id, target } => {
            println!("{}", cli::cancel(&connect(target), &id).await?);
            Ok(Outcome::Ok)
        }
        Command::Network { format, target } => {
            let network = connect(target).get("/network").await?;
            match format {
                Format::Json => json(&network),
                Format::Table | Format::Csv => print!("{}", cli::show::network(&network)),
            }
            Ok(Outcome::Ok)
        }
    }
}
