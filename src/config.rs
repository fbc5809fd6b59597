//! The node's typed configuration: read from a TOML file, every key with a
//! default, unknown keys refused, validated once at start so that a bad value
//! stops the node before it serves anything.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::Secret;
pub use crate::balance::PolicyKind;
pub use crate::executor::sandbox::SandboxKind;
use crate::executor::sandbox::IDS_PER_SLOT;

/// Errors loading or validating a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// toml's message names the key and the line and column.
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config value {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The file this config was read from, hidden from test runs.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    pub node: NodeConfig,
    pub cluster: ClusterConfig,
    pub discovery: DiscoveryConfig,
    pub executor: ExecutorConfig,
    pub balance: BalanceConfig,
    pub intake: IntakeConfig,
    pub admission: AdmissionConfig,
    pub grading: GradingConfig,
    pub api: ApiConfig,
    pub admin: AdminConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// The HTTP API, public and peer routes.
    pub listen: String,
    /// The address peers use; defaults to `listen`.
    pub advertise: Option<String>,
    pub data_dir: PathBuf,
    /// pytest processes this node runs at once.
    pub slots: usize,
    /// Days a finished evaluation is kept; 0 keeps it.
    pub retention_days: u32,
    /// How log lines are written on standard error.
    pub log_format: LogFormat,
}

/// `text`: a line a record, for people; `json`: one JSON object a line
/// (`ts`, `level`, `target`, `message`), for log collectors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:5001".into(),
            advertise: None,
            data_dir: PathBuf::from("data/node-5001"),
            slots: 2,
            retention_days: 0,
            log_format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Nodes to join at start.
    pub seeds: Vec<String>,
    /// Shared by the nodes of one cluster: the key of the signature on every
    /// request between nodes and on every multicast announcement.
    pub secret: Secret,
    /// A file holding `secret` (its trailing newline dropped), read at start.
    pub secret_file: Option<PathBuf>,
    /// A signed request is taken only within this of the receiver's clock,
    /// either way, and only once.
    pub auth_window_ms: u64,
    /// How often this node probes one peer.
    pub probe_interval_ms: u64,
    /// A probe not answered within this is a failed probe.
    pub probe_timeout_ms: u64,
    /// How many peers are asked to probe a peer that did not answer.
    pub indirect_probes: usize,
    /// A suspect not heard from within this is declared dead.
    pub suspicion_timeout_ms: u64,
    /// Time-out of the other calls between nodes (tasks, blobs, results).
    pub peer_timeout_ms: u64,
    /// How often a supervisor checks leases and offers waiting work again.
    pub dispatch_tick_ms: u64,
    /// Added to a task's longest expected run to make its lease.
    pub lease_grace_s: u64,
    /// How often a node that has not joined yet retries its seeds.
    pub join_retry_ms: u64,
    /// How many other nodes hold a copy of each evaluation (R).
    pub replicas: usize,
    /// A cluster lock whose holder has not renewed it within this is taken
    /// back by the coordinator; holders renew three times a lease.
    pub lock_lease_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            seeds: Vec::new(),
            secret: Secret::new(DEFAULT_SECRET),
            secret_file: None,
            auth_window_ms: 30_000,
            probe_interval_ms: 300,
            probe_timeout_ms: 250,
            indirect_probes: 3,
            suspicion_timeout_ms: 2000,
            peer_timeout_ms: 30_000,
            dispatch_tick_ms: 250,
            lease_grace_s: 60,
            join_retry_ms: 1000,
            replicas: 2,
            lock_lease_ms: 3000,
        }
    }
}

/// Multicast discovery: nodes of one network segment find each other without
/// seeds. Off unless asked for, since it sends on the network by itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// Announce this node and listen for the others' announcements.
    pub multicast: bool,
    /// The IPv4 multicast group the announcements go to.
    pub group: Ipv4Addr,
    /// The UDP port of the group, shared by every node of the segment.
    pub port: u16,
    /// The address of the interface to announce and listen on; `0.0.0.0`
    /// lets the routing table choose.
    pub interface: Ipv4Addr,
    /// How often this node announces itself.
    pub interval_ms: u64,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            multicast: false,
            group: Ipv4Addr::new(239, 255, 77, 77),
            port: 7477,
            interface: Ipv4Addr::UNSPECIFIED,
            interval_ms: 1000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorConfig {
    /// A module still running after this long is killed and reported `timeout`.
    pub module_timeout_s: u64,
    /// The interpreter projects are run with.
    pub python: String,
    /// How many modules of one project share a pytest process.
    pub modules_per_task: usize,
    /// Console output kept per pytest run, in bytes.
    pub output_cap_bytes: usize,
    /// Per-test failure message kept, in bytes.
    pub message_cap_bytes: usize,
    /// Building one environment (venv + pip install) may take this long.
    pub install_timeout_s: u64,
    /// Collecting a project's tests may take this long.
    pub collect_timeout_s: u64,
    /// Use `uv` to build environments when it is on PATH or can be installed.
    pub use_uv: bool,
    /// How test runs are isolated: `bwrap` (bubblewrap) or, explicitly, `none`.
    pub sandbox: SandboxKind,
    /// The first user id of test runs, one per slot; also their group id.
    pub sandbox_uid_base: u32,
    /// CPU seconds one process of a run may use (RLIMIT_CPU).
    pub cpu_limit_s: u64,
    /// Memory of a run as a whole, its tmpfs pages included, with a cgroup;
    /// the address space of each process (RLIMIT_AS) without.
    pub memory_limit_bytes: u64,
    /// Processes one run may have at once (its cgroup's pids.max, and
    /// RLIMIT_NPROC counted for the run alone).
    pub process_limit: u64,
    /// Largest file a run may write (RLIMIT_FSIZE).
    pub file_size_limit_bytes: u64,
    /// What a run may write into each of its writable tmpfs mounts: its
    /// copy of the project (which gets the project's own size on top), its
    /// /tmp, its /dev/shm.
    pub scratch_limit_bytes: u64,
    /// Give each slot a cgroup, where the node can make one, so that memory
    /// and processes are limited for a run as a whole.
    pub cgroups: bool,
    /// The `host:port` pairs an install may reach: the package index and
    /// where it serves files. Nothing else is reachable from an install.
    pub index_hosts: Vec<String>,
    /// Run tests in children forked from a warm pytest, two servers per
    /// slot, each serving one environment at a time; false runs each module in a
    /// fresh process.
    pub fork_server: bool,
    /// A fork server is replaced after forking this many runs.
    pub fork_server_max_runs: u32,
    /// A fork server without a run for this long is stopped.
    pub fork_server_idle_s: u64,
    /// Megabytes of environments kept; past it the least recently used go.
    /// 0 keeps them all.
    pub env_cache_max_mb: u64,
    /// An environment used within this many seconds is never evicted.
    pub env_cache_min_idle_s: u64,
    /// Fork each module from a zygote: a child of the server that has run
    /// pytest on the module's project up to collection (configuration read,
    /// initial conftests imported), kept while the server runs modules of
    /// the same folder of that project; false forks every module from the
    /// server itself.
    pub fork_zygote: bool,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            module_timeout_s: 300,
            python: "python3".into(),
            modules_per_task: 1,
            output_cap_bytes: 64 * 1024,
            message_cap_bytes: 4 * 1024,
            install_timeout_s: 900,
            collect_timeout_s: 120,
            use_uv: true,
            sandbox: SandboxKind::Bwrap,
            sandbox_uid_base: 61_000,
            cpu_limit_s: 300,
            memory_limit_bytes: 4 << 30,
            process_limit: 256,
            file_size_limit_bytes: 1 << 30,
            scratch_limit_bytes: 512 << 20,
            cgroups: true,
            index_hosts: vec!["pypi.org:443".into(), "files.pythonhosted.org:443".into()],
            fork_server: true,
            fork_server_max_runs: 500,
            fork_server_idle_s: 120,
            env_cache_max_mb: 20_480,
            env_cache_min_idle_s: 3600,
            fork_zygote: true,
        }
    }
}

/// How a supervisor hands out its tasks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BalanceConfig {
    /// `longest_first`: the longest expected module first, to a free slot of
    /// a node that holds its environment when there is one; or
    /// `least_connections`: modules in name order, to the least loaded node.
    pub policy: PolicyKind,
}

/// Bounds on one submission: what a client may send and what its input may
/// grow to on disk.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntakeConfig {
    /// Largest accepted upload (zip); past it the answer is 413.
    pub max_upload_bytes: u64,
    /// Largest JSON submission body (git urls and a token); past it the answer is 413.
    pub max_json_bytes: u64,
    /// Most entries one archive may hold.
    pub max_entries: usize,
    /// Most bytes one archive may unpack to.
    pub max_unpacked_bytes: u64,
    /// URL schemes a git project may use.
    pub git_schemes: Vec<String>,
    /// Most repositories in one evaluation.
    pub max_repositories: usize,
    /// One shallow clone may take this long.
    pub clone_timeout_s: u64,
    /// One clone (its `.git` and checkout) may grow to this many bytes on disk.
    pub max_clone_bytes: u64,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: 100 * 1024 * 1024,
            max_json_bytes: 1024 * 1024,
            max_entries: 20_000,
            max_unpacked_bytes: 512 * 1024 * 1024,
            git_schemes: vec!["https".into()],
            max_repositories: 500,
            clone_timeout_s: 120,
            max_clone_bytes: 200 * 1024 * 1024,
        }
    }
}

/// Bounds on the work one node takes at once: evaluations whose supervisor
/// runs, and accepted evaluations that wait for a place.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdmissionConfig {
    /// Evaluations this node supervises at once.
    pub max_running_evaluations: usize,
    /// Accepted evaluations waiting for a running place; past it a submission gets 503.
    pub max_queued_evaluations: usize,
    /// The `Retry-After` of that 503, in seconds.
    pub retry_after_s: u64,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self { max_running_evaluations: 4, max_queued_evaluations: 64, retry_after_s: 30 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GradingConfig {
    /// `nota` is the passed share of this scale.
    pub grade_scale: f64,
}

impl Default for GradingConfig {
    fn default() -> Self {
        Self { grade_scale: 20.0 }
    }
}

/// The public API.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Bearer tokens a client must present on every public route but
    /// `GET /health`; empty, the default, asks for none. They are teachers'
    /// tokens: they read everything.
    pub tokens: Vec<Secret>,
    /// Students' tokens: they reach the same routes, but read of a hidden
    /// module (grading rules) only its counts. Needs `tokens`.
    pub student_tokens: Vec<Secret>,
    /// Files holding `tokens` and `student_tokens`, one a line (blank lines
    /// and `#` comments skipped), read at start.
    pub tokens_file: Option<PathBuf>,
    pub student_tokens_file: Option<PathBuf>,
}

/// Routes for tests only.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Mounts `POST /kill`, behind the cluster secret: the node exits as if
    /// it crashed. For failure tests; off by default.
    pub enable_kill: bool,
}

/// The cluster secret a node has until it is given one. It is public (it is
/// in the source), so a node that keeps it serves alone: it may not have
/// seeds nor multicast discovery, and it takes no peer request.
pub const DEFAULT_SECRET: &str = "change-me";

/// The shortest cluster secret or client token accepted, in bytes: 128 bits
/// when random, out of reach of an offline guess from a captured signature.
pub const MIN_SECRET_BYTES: usize = 16;

/// The bounds of `cluster.auth_window_ms`. Below a second, ordinary clock
/// skew between hosts and a busy runtime would refuse genuine peers; above
/// five minutes, a captured request stays replayable against a restarted
/// node for that long, and the replay memory must hold that much traffic.
const AUTH_WINDOW_MS: std::ops::RangeInclusive<u64> = 1_000..=300_000;

/// The variables `EVALMESH_<SECTION>__<KEY>` set config keys.
pub const ENV_PREFIX: &str = "EVALMESH_";

const GIT_SCHEMES: [&str; 5] = ["https", "http", "git", "ssh", "file"];

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let mut config = Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.to_owned(), message },
            other => other,
        })?;
        config.source = Some(std::path::absolute(path).unwrap_or_else(|_| path.to_owned()));
        Ok(config)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| parse_error(Path::new(""), &e))?;
        config.read_secret_files()?;
        config.validate()?;
        Ok(config)
    }

    /// The file at `path` (or the embedded defaults), with the variables of
    /// `vars` named `EVALMESH_<SECTION>__<KEY>` over it, validated. A value
    /// is read as TOML when it is one (a number, a boolean, an array, a
    /// quoted string), else as a string: a string that reads as a number
    /// is quoted, or given in a file (`secret_file`, `tokens_file`).
    pub fn assemble(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let overrides: Vec<(String, String, String)> = vars
            .into_iter()
            .filter_map(|(name, value)| {
                let (section, key) = name.strip_prefix(ENV_PREFIX)?.split_once("__")?;
                Some((section.to_ascii_lowercase(), key.to_ascii_lowercase(), value))
            })
            .collect();
        if overrides.is_empty() {
            return path.map_or_else(|| Ok(Self::default()), Self::load);
        }
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                toml::from_str::<toml::Table>(&text).map_err(|e| parse_error(path, &e))?
            }
            None => toml::Table::new(),
        };
        let mut names = Vec::new();
        for (section, key, raw) in overrides {
            let name = format!("{ENV_PREFIX}{}__{}", section.to_ascii_uppercase(), key.to_ascii_uppercase());
            let parsed = toml::from_str::<toml::Table>(&format!("v = {raw}")).ok().and_then(|mut t| t.remove("v"));
            // A secret is always a string, and tokens a list of strings or
            // one string, so that no error quotes one read as a number.
            let value = match (section.as_str(), key.as_str(), parsed) {
                ("cluster", "secret", _) => toml::Value::String(raw),
                ("api", "tokens" | "student_tokens", Some(list @ toml::Value::Array(_))) => list,
                ("api", "tokens" | "student_tokens", _) => toml::Value::Array(vec![toml::Value::String(raw)]),
                (_, _, Some(value)) => value,
                (_, _, None) => toml::Value::String(raw),
            };
            match table.entry(section).or_insert_with(|| toml::Table::new().into()) {
                toml::Value::Table(section) => {
                    section.insert(key, value);
                }
                _ => return Err(ConfigError::Invalid { key: "environment", reason: format!("{name}: not a section") }),
            }
            names.push(name);
        }
        let env_error = |message: String| ConfigError::Parse {
            path: path.map_or_else(|| PathBuf::from("(embedded defaults)"), Path::to_owned),
            message: format!("{} (with {} from the environment)", blank_strings(&message), names.join(", ")),
        };
        let mut config: Config =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| env_error(e.message().to_owned()))?;
        config.source = path.map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_owned()));
        config.read_secret_files()?;
        config.validate()?;
        Ok(config)
    }

    /// Takes `cluster.secret_file`, `api.tokens_file` and
    /// `api.student_tokens_file` in, each in place of the key it stands for.
    fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })
        };
        let both =
            |key: &'static str| ConfigError::Invalid { key, reason: "give the value or the file, not both".into() };
        if let Some(path) = self.cluster.secret_file.take() {
            if self.cluster.secret.expose() != DEFAULT_SECRET {
                return Err(both("cluster.secret_file"));
            }
            self.cluster.secret = Secret::new(read(&path)?.trim_end_matches(['\r', '\n']));
        }
        let lines = |text: String| -> Vec<Secret> {
            text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(Secret::new).collect()
        };
        if let Some(path) = self.api.tokens_file.take() {
            if !self.api.tokens.is_empty() {
                return Err(both("api.tokens_file"));
            }
            self.api.tokens = lines(read(&path)?);
        }
        if let Some(path) = self.api.student_tokens_file.take() {
            if !self.api.student_tokens.is_empty() {
                return Err(both("api.student_tokens_file"));
            }
            self.api.student_tokens = lines(read(&path)?);
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| Err(ConfigError::Invalid { key, reason: reason.to_owned() });
        if self.node.listen.parse::<SocketAddr>().is_err() {
            return invalid("node.listen", "expected host:port with an IP address");
        }
        if self.node.advertise.as_deref().is_some_and(|a| !is_host_port(a)) {
            return invalid("node.advertise", "expected host:port, the host an IP address or a DNS name");
        }
        if self.node.data_dir.as_os_str().is_empty() {
            return invalid("node.data_dir", "must not be empty");
        }
        if self.node.slots == 0 {
            return invalid("node.slots", "must be at least 1");
        }
        if !self.cluster.seeds.iter().all(|seed| is_host_port(seed)) {
            return invalid("cluster.seeds", "each seed is host:port, the host an IP address or a DNS name");
        }
        let c = &self.cluster;
        if c.secret.expose() == DEFAULT_SECRET {
            if !c.seeds.is_empty() || self.discovery.multicast {
                return invalid(
                    "cluster.secret",
                    "the default is public: give every node of the cluster the same secret of at least 16 bytes \
                     before giving seeds or turning multicast discovery on",
                );
            }
        } else if c.secret.len() < MIN_SECRET_BYTES {
            return invalid("cluster.secret", "must be at least 16 bytes");
        }
        if !AUTH_WINDOW_MS.contains(&c.auth_window_ms) {
            return invalid("cluster.auth_window_ms", "must be from 1000 to 300000 ms");
        }
        if c.probe_interval_ms == 0
            || c.probe_timeout_ms == 0
            || c.suspicion_timeout_ms == 0
            || c.peer_timeout_ms == 0
            || c.dispatch_tick_ms == 0
            || c.join_retry_ms == 0
        {
            return invalid("cluster", "intervals and time-outs must be at least 1 ms");
        }
        if c.lock_lease_ms == 0 {
            return invalid("cluster.lock_lease_ms", "must be at least 1 ms");
        }
        if c.probe_timeout_ms >= c.probe_interval_ms {
            return invalid("cluster.probe_timeout_ms", "must be shorter than probe_interval_ms");
        }
        let d = &self.discovery;
        if !d.group.is_multicast() {
            return invalid("discovery.group", "expected an IPv4 multicast address, 224.0.0.0 to 239.255.255.255");
        }
        if d.port == 0 {
            return invalid("discovery.port", "must be a fixed port, shared by every node");
        }
        if d.interface.is_multicast() || d.interface.is_broadcast() {
            return invalid("discovery.interface", "expected the address of one of this host's interfaces, or 0.0.0.0");
        }
        if d.interval_ms == 0 {
            return invalid("discovery.interval_ms", "must be at least 1 ms");
        }
        // What a node announces is where the others join it: an unspecified
        // address would send them to themselves.
        let advertised_ip = self.advertise().parse::<SocketAddr>().map(|a| a.ip()).ok();
        if d.multicast && advertised_ip.is_some_and(|ip| ip.is_unspecified()) {
            return invalid("node.advertise", "multicast discovery needs an address peers can reach, not 0.0.0.0");
        }
        if d.multicast && advertised_ip.is_none() {
            return invalid("node.advertise", "multicast discovery announces an IP address, not a name");
        }
        let e = &self.executor;
        if e.module_timeout_s == 0 || e.install_timeout_s == 0 || e.collect_timeout_s == 0 {
            return invalid("executor", "module_timeout_s, install_timeout_s and collect_timeout_s must be at least 1");
        }
        if e.sandbox_uid_base == 0
            || e.sandbox_uid_base
                .checked_add(u32::try_from(IDS_PER_SLOT * self.node.slots).unwrap_or(u32::MAX))
                .is_none()
        {
            return invalid(
                "executor.sandbox_uid_base",
                "must be above 0 (root) and leave room for three ids per slot (its runs and its two fork servers)",
            );
        }
        if e.fork_server_max_runs == 0 || e.fork_server_idle_s == 0 {
            return invalid("executor", "fork_server_max_runs and fork_server_idle_s must be at least 1");
        }
        // An environment in use (a task's modules, a warm server) is never
        // evicted: it was asked for within this.
        let in_use = e.module_timeout_s.saturating_mul(e.modules_per_task as u64).max(e.fork_server_idle_s);
        if e.env_cache_min_idle_s < in_use {
            return invalid(
                "executor.env_cache_min_idle_s",
                "must be at least module_timeout_s × modules_per_task and fork_server_idle_s",
            );
        }
        if e.cpu_limit_s == 0 || e.memory_limit_bytes < 64 << 20 || e.process_limit < 8 || e.file_size_limit_bytes == 0
        {
            return invalid(
                "executor",
                "cpu_limit_s and file_size_limit_bytes must be at least 1, memory_limit_bytes at least 64 MiB, process_limit at least 8",
            );
        }
        if e.index_hosts
            .iter()
            .any(|h| h.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err()))
        {
            return invalid("executor.index_hosts", "each entry must be host:port, such as \"pypi.org:443\"");
        }
        if e.scratch_limit_bytes < 1 << 20 {
            return invalid("executor.scratch_limit_bytes", "must be at least 1 MiB");
        }
        if e.python.trim().is_empty() {
            return invalid("executor.python", "must name an interpreter");
        }
        if e.modules_per_task == 0 {
            return invalid("executor.modules_per_task", "must be at least 1");
        }
        if e.output_cap_bytes < 1024 || e.message_cap_bytes < 64 {
            return invalid("executor", "output_cap_bytes must be at least 1024 and message_cap_bytes at least 64");
        }
        let i = &self.intake;
        if i.max_upload_bytes == 0 || i.max_entries == 0 || i.max_unpacked_bytes == 0 {
            return invalid("intake", "max_upload_bytes, max_entries and max_unpacked_bytes must be at least 1");
        }
        // The smallest useful body: `{"projects": ["<url>"]}` with a short url.
        if i.max_json_bytes < 256 {
            return invalid("intake.max_json_bytes", "must be at least 256");
        }
        if let Some(bad) = i.git_schemes.iter().find(|s| !GIT_SCHEMES.contains(&s.as_str())) {
            return invalid("intake.git_schemes", &format!("unknown scheme {bad:?}, expected some of {GIT_SCHEMES:?}"));
        }
        if i.max_repositories == 0 || i.clone_timeout_s == 0 || i.max_clone_bytes == 0 {
            return invalid("intake", "max_repositories, clone_timeout_s and max_clone_bytes must be at least 1");
        }
        let a = &self.admission;
        if a.max_running_evaluations == 0 {
            return invalid("admission.max_running_evaluations", "must be at least 1");
        }
        if a.retry_after_s == 0 {
            return invalid("admission.retry_after_s", "must be at least 1");
        }
        if !(self.grading.grade_scale.is_finite() && self.grading.grade_scale > 0.0) {
            return invalid("grading.grade_scale", "must be a positive number");
        }
        for (key, tokens) in [("api.tokens", &self.api.tokens), ("api.student_tokens", &self.api.student_tokens)] {
            for token in tokens {
                // The token's text is never part of the reason: the error is printed.
                if token.len() < MIN_SECRET_BYTES {
                    return invalid(key, "each token must be at least 16 bytes");
                }
                if !token.expose().bytes().all(|b| b.is_ascii_graphic()) {
                    return invalid(key, "a token is printable ASCII without spaces, as a Bearer header carries it");
                }
                if token == &c.secret {
                    return invalid(key, "a token must not be the cluster secret, which clients must never hold");
                }
            }
        }
        if !self.api.student_tokens.is_empty() && self.api.tokens.is_empty() {
            return invalid("api.student_tokens", "needs api.tokens: without them every client reads as a teacher");
        }
        if self.api.student_tokens.iter().any(|s| self.api.tokens.contains(s)) {
            return invalid("api.student_tokens", "a token cannot be both a teacher's (api.tokens) and a student's");
        }
        Ok(())
    }

    /// The address peers and clients are told to use.
    pub fn advertise(&self) -> &str {
        self.node.advertise.as_deref().unwrap_or(&self.node.listen)
    }
}

/// `IP:port`, or `name:port` with a DNS name (letters, digits, `-`, `.`),
/// resolved each time a connection is made to it: in compose and Kubernetes
/// a seed is a service's name, and a node's address its pod's stable name,
/// while the addresses behind them change as containers do.
fn is_host_port(seed: &str) -> bool {
    if seed.parse::<SocketAddr>().is_ok() {
        return true;
    }
    let Some((host, port)) = seed.rsplit_once(':') else { return false };
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    port.parse::<u16>().is_ok_and(|p| p > 0)
        && host.len() <= 253
        && host.split('.').all(label)
        && !host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// toml's error on one line, its strings blanked (`without_strings`).
fn parse_error(path: &Path, e: &toml::de::Error) -> ConfigError {
    ConfigError::Parse { path: path.to_owned(), message: without_strings(&e.to_string()).trim_end().replace('\n', " ") }
}

/// toml's error quotes the line at fault, and a secret or a token may be on
/// it (`secret = "abc` unterminated): the quoted line keeps its keys and the
/// caret, with every string in it blanked.
fn without_strings(message: &str) -> String {
    let quoted_source = |number: &str| !number.trim().is_empty() && number.trim().bytes().all(|b| b.is_ascii_digit());
    let lines = message.lines().map(|line| match line.split_once(" | ") {
        Some((number, source)) if quoted_source(number) => format!("{number} | {}", blank_strings(source)),
        _ => line.to_owned(),
    });
    lines.collect::<Vec<_>>().join("\n")
}

/// `source` with the inside of each string literal, closed or not, replaced
/// by `***`.
fn blank_strings(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '"' && c != '\'' {
            continue;
        }
        out.push_str("***");
        let mut escaped = false;
        for inner in chars.by_ref() {
            if inner == c && !escaped {
                out.push(c);
                break;
            }
            escaped = c == '"' && inner == '\\' && !escaped;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_documented_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.node.listen, "127.0.0.1:5001");
        assert_eq!(c.advertise(), "127.0.0.1:5001");
        assert_eq!(c.node.slots, 2);
        assert_eq!(c.executor.module_timeout_s, 300);
        assert_eq!(c.cluster.lock_lease_ms, 3000);
        assert_eq!(c.intake.git_schemes, vec!["https".to_string()]);
        assert_eq!(c.grading.grade_scale, 20.0);
        assert!(!c.discovery.multicast);
        assert_eq!((c.discovery.group, c.discovery.port), (Ipv4Addr::new(239, 255, 77, 77), 7477));
        assert_eq!(c.discovery.interface, Ipv4Addr::UNSPECIFIED);
        assert_eq!(c.discovery.interval_ms, 1000);
        assert_eq!((c.intake.max_json_bytes, c.intake.max_clone_bytes), (1 << 20, 200 << 20));
        let a = &c.admission;
        assert_eq!((a.max_running_evaluations, a.max_queued_evaluations, a.retry_after_s), (4, 64, 30));
    }

    #[test]
    fn example_file_in_config_folder_parses() {
        let text = include_str!("../config/node.toml");
        let c = Config::parse(text).unwrap();
        assert_eq!(c.node.listen, "127.0.0.1:5001");
        let defaults = Config::default();
        assert_eq!(c.cluster.secret, defaults.cluster.secret);
        assert_eq!(c.cluster.auth_window_ms, defaults.cluster.auth_window_ms);
        assert!(c.api.tokens.is_empty() && !c.admin.enable_kill);
    }

    #[test]
    fn container_config_parses() {
        let c = Config::parse(include_str!("../docker/node.toml")).unwrap();
        assert_eq!(c.node.listen, "0.0.0.0:5001");
        assert_eq!(c.balance.policy, PolicyKind::LongestFirst);
    }

    #[test]
    fn compose_configs_parse_with_client_tokens_on() {
        for text in [
            include_str!("../docker/node1.toml"),
            include_str!("../docker/node2.toml"),
            include_str!("../docker/node3.toml"),
            include_str!("../docker/node4.toml"),
        ] {
            let c = Config::parse(text).unwrap();
            assert_eq!(c.cluster.seeds, ["node1:5001"]);
            assert_eq!(c.api.tokens.len(), 1, "the cluster asks clients for a token");
        }
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = Config::parse("[node]\nslots = 2\nslotz = 3\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("slotz"), "{text}");
        assert!(text.contains("line 3"), "{text}");
    }

    #[test]
    fn wrong_type_is_named_with_its_line() {
        let err = Config::parse("[executor]\n\nmodule_timeout_s = \"soon\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("line 3"), "{text}");
        assert!(text.contains("module_timeout_s"), "{text}");
    }

    #[test]
    fn balance_policy_defaults_to_longest_first_and_least_connections_stays_selectable() {
        assert_eq!(Config::parse("").unwrap().balance.policy, PolicyKind::LongestFirst);
        let c = Config::parse("[balance]\npolicy = \"least_connections\"\n").unwrap();
        assert_eq!(c.balance.policy, PolicyKind::LeastConnections);
        let err = Config::parse("[balance]\n\npolicy = \"round_robin\"\n").unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("policy"), "{err}");
        assert!(err.contains("longest_first") && err.contains("least_connections"), "the choices are named: {err}");
    }

    #[test]
    fn zero_slots_is_refused() {
        let err = Config::parse("[node]\nslots = 0\n").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "node.slots", .. }));
    }

    #[test]
    fn zero_lock_lease_is_refused() {
        let err = Config::parse("[cluster]\nlock_lease_ms = 0\n").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "cluster.lock_lease_ms", .. }));
    }

    #[test]
    fn admission_needs_a_running_place_and_a_retry_time_but_may_queue_nothing() {
        let err = Config::parse("[admission]\nmax_running_evaluations = 0\n").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "admission.max_running_evaluations", .. }), "{err}");
        let err = Config::parse("[admission]\nretry_after_s = 0\n").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "admission.retry_after_s", .. }), "{err}");
        let c = Config::parse("[admission]\nmax_queued_evaluations = 0\n").unwrap();
        assert_eq!(c.admission.max_queued_evaluations, 0);
    }

    #[test]
    fn intake_size_bounds_are_refused_when_unusable() {
        let err = Config::parse("[intake]\nmax_clone_bytes = 0\n").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "intake", .. }), "{err}");
        let err = Config::parse("[intake]\nmax_json_bytes = 10\n").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "intake.max_json_bytes", .. }), "{err}");
    }

    #[test]
    fn sandbox_bounds_are_refused_when_unusable() {
        let err = Config::parse("[executor]\nindex_hosts = [\"pypi.org\"]\n").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "executor.index_hosts", .. }), "{err}");
        let err = Config::parse("[executor]\nindex_hosts = [\":443\"]\n").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "executor.index_hosts", .. }), "{err}");
        let err = Config::parse("[executor]\nscratch_limit_bytes = 1000\n").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "executor.scratch_limit_bytes", .. }), "{err}");
        let c = Config::parse("[executor]\nindex_hosts = [\"mirror.lan:8443\"]\ncgroups = false\n").unwrap();
        assert_eq!((c.executor.index_hosts, c.executor.cgroups), (vec!["mirror.lan:8443".to_owned()], false));
    }

    #[test]
    fn unknown_git_scheme_is_refused() {
        let err = Config::parse("[intake]\ngit_schemes = [\"ftp\"]\n").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "intake.git_schemes", .. }));
    }

    #[test]
    fn discovery_group_must_be_multicast() {
        let err = Config::parse("[discovery]\ngroup = \"10.0.0.1\"\n").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "discovery.group", .. }), "{err}");
    }

    #[test]
    fn discovery_group_that_is_not_an_address_is_named_with_its_line() {
        let err = Config::parse("[discovery]\nmulticast = true\ngroup = \"239.255.77\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("line 3") && text.contains("group"), "{text}");
    }

    #[test]
    fn discovery_port_zero_and_multicast_interface_are_refused() {
        let err = Config::parse("[discovery]\nport = 0\n").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "discovery.port", .. }), "{err}");
        let err = Config::parse("[discovery]\ninterface = \"239.1.2.3\"\n").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "discovery.interface", .. }), "{err}");
    }

    const SECRET: &str = "cluster-secret-0123456789";

    #[test]
    fn multicast_discovery_needs_a_reachable_advertised_address() {
        let discovery = format!("[cluster]\nsecret = \"{SECRET}\"\n[discovery]\nmulticast = true\n");
        let err = Config::parse(&format!("[node]\nlisten = \"0.0.0.0:5001\"\n{discovery}")).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "node.advertise", .. }), "{err}");
        let text = format!("[node]\nlisten = \"0.0.0.0:5001\"\nadvertise = \"10.1.2.3:5001\"\n{discovery}");
        assert!(Config::parse(&text).is_ok());
    }

    #[test]
    fn a_lone_node_may_keep_the_default_secret() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.cluster.secret.expose(), DEFAULT_SECRET);
        assert_eq!(c.cluster.auth_window_ms, 30_000);
        assert!(c.api.tokens.is_empty(), "tokens are off by default");
        assert!(!c.admin.enable_kill, "the kill route is off by default");
    }

    #[test]
    fn the_default_secret_is_refused_with_seeds_or_multicast() {
        for text in [
            "[cluster]\nseeds = [\"127.0.0.1:5002\"]\n",
            "[discovery]\nmulticast = true\n",
            "[cluster]\nsecret = \"change-me\"\nseeds = [\"127.0.0.1:5002\"]\n",
        ] {
            let err = Config::parse(text).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { key: "cluster.secret", .. }), "{text}: {err}");
        }
        let text =
            format!("[cluster]\nsecret = \"{SECRET}\"\nseeds = [\"127.0.0.1:5002\"]\n[discovery]\nmulticast = true\n");
        assert!(Config::parse(&text).is_ok());
    }

    #[test]
    fn a_secret_of_its_own_is_at_least_16_bytes_even_alone() {
        for short in ["", "x", "fifteen-bytes-x"] {
            let err = Config::parse(&format!("[cluster]\nsecret = \"{short}\"\n")).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { key: "cluster.secret", .. }), "{short:?}: {err}");
            assert!(short.is_empty() || !err.to_string().contains(short), "the error shows the secret: {err}");
        }
        assert!(Config::parse("[cluster]\nsecret = \"sixteen-bytes-xx\"\n").is_ok());
    }

    #[test]
    fn the_auth_window_is_bounded() {
        for (window, ok) in [(0, false), (999, false), (1000, true), (300_000, true), (300_001, false)] {
            let parsed = Config::parse(&format!("[cluster]\nauth_window_ms = {window}\n"));
            assert_eq!(parsed.is_ok(), ok, "{window}");
            if let Err(err) = parsed {
                assert!(matches!(err, ConfigError::Invalid { key: "cluster.auth_window_ms", .. }), "{err}");
            }
        }
    }

    #[test]
    fn tokens_are_long_printable_and_not_the_secret() {
        let tokens = |list: &str| format!("[cluster]\nsecret = \"{SECRET}\"\n[api]\ntokens = {list}\n");
        let c = Config::parse(&tokens("[\"client-token-0123456789\", \"other-token-0123456789\"]")).unwrap();
        assert_eq!(c.api.tokens.len(), 2);
        for bad in ["[\"short\"]", "[\"\"]", "[\"with a space in it 0123\"]", "[\"café-token-0123456789\"]"] {
            let err = Config::parse(&tokens(bad)).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { key: "api.tokens", .. }), "{bad}: {err}");
        }
        let err = Config::parse(&tokens(&format!("[\"{SECRET}\"]"))).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "api.tokens", .. }), "{err}");
        assert!(!err.to_string().contains(SECRET), "{err}");
    }

    #[test]
    fn an_environment_in_use_cannot_be_evicted() {
        let executor = |lines: &str| Config::parse(&format!("[executor]\n{lines}\n"));
        assert!(executor("env_cache_min_idle_s = 300\nmodule_timeout_s = 300\nfork_server_idle_s = 120").is_ok());
        for bad in [
            "env_cache_min_idle_s = 299\nmodule_timeout_s = 300",
            "env_cache_min_idle_s = 300\nmodule_timeout_s = 100\nmodules_per_task = 4",
            "env_cache_min_idle_s = 60\nmodule_timeout_s = 30\nfork_server_idle_s = 120",
        ] {
            let err = executor(bad).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { key: "executor.env_cache_min_idle_s", .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn student_tokens_need_teacher_tokens_and_are_never_one() {
        let api = |lines: &str| Config::parse(&format!("[cluster]\nsecret = \"{SECRET}\"\n[api]\n{lines}\n"));
        let teacher = "tokens = [\"teacher-token-0123456789\"]";
        let c = api(&format!("{teacher}\nstudent_tokens = [\"student-token-0123456789\"]")).unwrap();
        assert_eq!((c.api.tokens.len(), c.api.student_tokens.len()), (1, 1));
        for bad in [
            "student_tokens = [\"student-token-0123456789\"]".to_owned(),
            format!("{teacher}\nstudent_tokens = [\"teacher-token-0123456789\"]"),
            format!("{teacher}\nstudent_tokens = [\"short\"]"),
            format!("{teacher}\nstudent_tokens = [\"{SECRET}\"]"),
        ] {
            let err = api(&bad).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { key: "api.student_tokens", .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn a_malformed_line_holding_a_secret_is_not_quoted_in_the_error() {
        for text in [
            "[cluster]\nsecret = \"abcdefghijklmnopq\n",
            "[cluster]\nsecret = 'abcdefghijklmnopq\n",
            "[api]\ntokens = [\"abcdefghijklmnopq\", 3]\n",
            "[api]\ntokens = [\"abcdefghijklmnopq\\\"x\", 3]\n",
        ] {
            let err = Config::parse(text).unwrap_err().to_string();
            assert!(err.contains("line 2"), "{err}");
            assert!(!err.contains("abcdefghijklmnopq"), "{text:?}: {err}");
        }
        let err = Config::parse("[cluster]\nsecrets = 1\n").unwrap_err().to_string();
        assert!(err.contains("secrets") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn debug_of_the_config_shows_neither_secret_nor_tokens() {
        let c = Config::parse(&format!(
            "[cluster]\nsecret = \"{SECRET}\"\n[api]\ntokens = [\"client-token-0123456789\"]\n"
        ))
        .unwrap();
        let shown = format!("{c:?}");
        assert!(shown.contains("Secret(***)"), "{shown}");
        assert!(!shown.contains(SECRET) && !shown.contains("client-token-0123456789"), "{shown}");
    }

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn variables_set_keys_over_the_file_and_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(&file, "[node]\nslots = 3\nlisten = \"127.0.0.1:7000\"\n").unwrap();
        let vars = env(&[
            ("EVALMESH_NODE__SLOTS", "5"),
            ("EVALMESH_CLUSTER__SEEDS", r#"["10.0.0.1:5000", "10.0.0.2:5000"]"#),
            ("EVALMESH_CLUSTER__SECRET", "1234567890123456789"),
            ("EVALMESH_EXECUTOR__PYTHON", "/usr/bin/python3"),
            ("EVALMESH_ADMIN__ENABLE_KILL", "true"),
            ("EVALMESH_API__TOKENS", "teacher-token-0123456789"),
            ("EVALMESH_NODE", "http://127.0.0.1:5000"),
            ("EVALMESH_TOKEN", "not a key"),
            ("PATH", "/usr/bin"),
        ]);
        let c = Config::assemble(Some(&file), vars).unwrap();
        assert_eq!((c.node.slots, c.node.listen.as_str()), (5, "127.0.0.1:7000"), "the file's keys stay");
        assert_eq!(c.cluster.seeds, ["10.0.0.1:5000", "10.0.0.2:5000"]);
        assert_eq!(c.cluster.secret.expose(), "1234567890123456789", "a secret of digits stays a string");
        assert_eq!(c.executor.python, "/usr/bin/python3");
        assert!(c.admin.enable_kill);
        assert_eq!(c.api.tokens.iter().map(Secret::expose).collect::<Vec<_>>(), ["teacher-token-0123456789"]);
        assert!(c.source.is_some());

        let c = Config::assemble(None, env(&[("EVALMESH_NODE__SLOTS", "7")])).unwrap();
        assert_eq!((c.node.slots, c.source), (7, None), "over the embedded defaults");
        assert_eq!(
            Config::assemble(None, env(&[("EVALMESH_NODE", "x")])).unwrap().node.slots,
            Config::default().node.slots
        );
    }

    #[test]
    fn a_bad_variable_is_refused_naming_it_and_never_quoting_a_secret() {
        let err = Config::assemble(None, env(&[("EVALMESH_NODE__SLOTZ", "2")])).unwrap_err().to_string();
        assert!(err.contains("unknown field `slotz`") && err.contains("EVALMESH_NODE__SLOTZ"), "{err}");
        let err = Config::assemble(None, env(&[("EVALMESH_NODE__SLOTS", "many")])).unwrap_err().to_string();
        assert!(err.contains("EVALMESH_NODE__SLOTS"), "{err}");
        let err = Config::assemble(None, env(&[("EVALMESH_CLUSTER__SECRET", "short-secret")])).unwrap_err();
        assert_eq!(err.to_string(), "invalid config value cluster.secret: must be at least 16 bytes");
        let err = Config::assemble(None, env(&[("EVALMESH_NODE__SLOTS", "0")])).unwrap_err().to_string();
        assert_eq!(err, "invalid config value node.slots: must be at least 1", "validated as a file is");
    }

    #[test]
    fn seeds_are_ip_or_dns_names_with_a_port() {
        for good in ["10.0.0.1:5000", "[::1]:5000", "evalmesh-0.evalmesh:5001", "node-1:80", "localhost:5001"] {
            assert!(is_host_port(good), "{good}");
        }
        for bad in ["evalmesh", "evalmesh:0", "evalmesh:http", ":5000", "-a:1", "a_b:1", "1.2.3:5000", "a..b:1"] {
            assert!(!is_host_port(bad), "{bad}");
        }
        let err = Config::parse("[cluster]\nseeds = [\"no-port\"]\n").unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid config value cluster.seeds: each seed is host:port, the host an IP address or a DNS name"
        );
    }

    #[test]
    fn the_secret_and_the_tokens_can_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, tokens) = (dir.path().join("secret"), dir.path().join("tokens"));
        std::fs::write(&secret, "a-cluster-secret-from-a-file\n").unwrap();
        std::fs::write(&tokens, "# teachers\nteacher-one-0123456789\n\n  teacher-two-0123456789  \n").unwrap();
        let text = format!(
            "[cluster]\nsecret_file = {:?}\n[api]\ntokens_file = {:?}\nstudent_tokens = [\"student-one-0123456789\"]\n",
            secret, tokens
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(c.cluster.secret.expose(), "a-cluster-secret-from-a-file");
        let tokens: Vec<&str> = c.api.tokens.iter().map(Secret::expose).collect();
        assert_eq!(tokens, ["teacher-one-0123456789", "teacher-two-0123456789"]);
        let vars = env(&[("EVALMESH_CLUSTER__SECRET_FILE", secret.to_str().unwrap())]);
        assert_eq!(Config::assemble(None, vars).unwrap().cluster.secret.expose(), "a-cluster-secret-from-a-file");

        let both = format!("[cluster]\nsecret = \"x-secret-0123456789\"\nsecret_file = {secret:?}\n");
        let err = Config::parse(&both).unwrap_err().to_string();
        assert_eq!(err, "invalid config value cluster.secret_file: give the value or the file, not both");
        let missing = format!("[api]\ntokens_file = {:?}\n", dir.path().join("none"));
        assert!(matches!(Config::parse(&missing), Err(ConfigError::Read { .. })));
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let err = Config::load(Path::new("/nonexistent/evalmesh.toml")).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
    }
}
