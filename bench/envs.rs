//! Benchmark: setting up a project's environment, cold and warm.
//!
//! Drives `evalmesh::executor::envs::EnvCache` directly, as the executor does
//! before every collection and every module run, for a project whose
//! `requirements.txt` holds two small packages, and prints one markdown table
//! row per case (min / median / max wall time of `EnvCache::ensure`):
//!
//! - uv, cold, empty uv cache: fresh data dir and a fresh `UV_CACHE_DIR`
//!   each time, so uv downloads every wheel from the package index;
//! - uv, cold, warm uv cache: fresh data dir, uv's cache already filled;
//! - uv, warm, running node: the same `EnvCache` again, which is what every
//!   module of an evaluation pays;
//! - uv, warm, first call after start: a new `EnvCache` over a built data dir,
//!   which also resolves the interpreter's identity once;
//! - the same with pip (`use_uv = false`), cold with an empty and with a warm
//!   pip cache, and warm.
//!
//! Target (issue): a warm set-up (cache hit) under 0.5 s. The run exits with
//! status 1 when a warm case's slowest repetition misses it.
//!
//! Run: `cargo bench --bench envs` (needs the package index; about 2 minutes
//! on 2 cores). Options after `--`: `--reps N` cold repetitions (default 5),
//! `--warm-reps N` (default 20), `--no-pip`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use evalmesh::executor::envs::{resolve_interpreter, Env, EnvCache, EnvSettings, BRIDGE_SOURCE};
use evalmesh::executor::index_proxy;
use evalmesh::executor::sandbox::{RunLimits, Sandbox, SandboxKind, SandboxSettings};

const REQUIREMENTS: &str = "six==1.16.0\niniconfig\n";
const WARM_TARGET: Duration = Duration::from_millis(500);
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
const OUTPUT_CAP: usize = 64 * 1024;

struct Options {
    reps: usize,
    warm_reps: usize,
    pip: bool,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut options = Self { reps: 5, warm_reps: 20, pip: true };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut count = |name: &str| -> Result<usize, String> {
                args.next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("{name} takes a positive count"))
            };
            match arg.as_str() {
                "--reps" => options.reps = count("--reps")?,
                "--warm-reps" => options.warm_reps = count("--warm-reps")?,
                "--no-pip" => options.pip = false,
                // cargo bench passes --bench to every bench binary.
                "--bench" => {}
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(options)
    }
}

/// One case: its label and the wall time of each repetition.
struct Case {
    label: &'static str,
    times: Vec<Duration>,
    warm: bool,
}

impl Case {
    fn sorted(&self) -> Vec<Duration> {
        let mut t = self.times.clone();
        t.sort();
        t
    }

    fn max(&self) -> Duration {
        self.sorted().last().copied().unwrap_or_default()
    }

    fn row(&self) -> String {
        let t = self.sorted();
        format!("| {} | {} | {} | {} | {} |", self.label, t.len(), show(t[0]), show(median(&t)), show(t[t.len() - 1]))
    }
}

fn median(sorted: &[Duration]) -> Duration {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }
}

fn show(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else if d < Duration::from_secs(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// A fresh actix runtime per call, dropped before the caller changes the
/// environment variables the next children inherit.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    actix_rt::System::new().block_on(f)
}

/// The cache as a node builds it: installs in the bwrap sandbox, reaching
/// PyPI through the index proxy. Called on the runtime that awaits it.
fn cache(data_dir: &Path, use_uv: bool) -> EnvCache {
    let (executable, interpreter) = resolve_interpreter("python3");
    let limits =
        RunLimits { cpu_s: 600, memory_bytes: 4 << 30, processes: 256, file_bytes: 1 << 30, scratch_bytes: 512 << 20 };
    let sandbox = Sandbox::new(SandboxSettings {
        kind: SandboxKind::Bwrap,
        hidden: vec![data_dir.to_owned()],
        masked: Vec::new(),
        files: data_dir.join("sandbox"),
        uid_base: 64_000,
        slots: 2,
        limits,
        cgroups: false,
    })
    .expect("the sandbox's files can be written");
    let settings = EnvSettings {
        data_dir: data_dir.to_owned(),
        python: "python3".into(),
        executable,
        interpreter,
        use_uv,
        timeout: INSTALL_TIMEOUT,
        output_cap: OUTPUT_CAP,
        bridge: data_dir.join("sandbox/bridge.py"),
        index_socket: data_dir.join("sandbox/index.sock"),
        max_bytes: None,
        min_idle: Duration::from_secs(3600),
    };
    std::fs::write(&settings.bridge, BRIDGE_SOURCE).expect("the bridge can be written");
    let listener = index_proxy::bind(&settings.index_socket).expect("the proxy's socket binds");
    let hosts = vec!["pypi.org:443".to_owned(), "files.pythonhosted.org:443".to_owned()];
    actix_rt::spawn(index_proxy::serve(listener, std::sync::Arc::new(hosts)));
    EnvCache::new(settings, std::sync::Arc::new(sandbox))
}

/// Builds an environment into a fresh data dir, checks it was a miss, and
/// removes the data dir again.
fn cold(scratch: &Path, project: &Path, use_uv: bool) -> Result<Duration, String> {
    let data_dir = tempfile::tempdir_in(scratch).map_err(|e| e.to_string())?;
    let env = block_on(async { cache(data_dir.path(), use_uv).ensure(project).await })
        .map_err(|e| format!("cold build failed: {e}"))?;
    check(&env, false)?;
    Ok(env.elapsed)
}

fn check(env: &Env, cached: bool) -> Result<(), String> {
    if env.cached != cached {
        return Err(format!("expected cached = {cached}, got {} for {}", env.cached, env.python.display()));
    }
    if !env.python.exists() {
        return Err(format!("{} does not exist", env.python.display()));
    }
    Ok(())
}

/// `reps` hits on one `EnvCache`, after one build (not timed) if needed.
fn warm_same_instance(data_dir: &Path, project: &Path, use_uv: bool, reps: usize) -> Result<Vec<Duration>, String> {
    block_on(async {
        let c = cache(data_dir, use_uv);
        c.ensure(project).await.map_err(|e| e.to_string())?;
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps {
            let env = c.ensure(project).await.map_err(|e| e.to_string())?;
            check(&env, true)?;
            times.push(env.elapsed);
        }
        Ok(times)
    })
}

/// `reps` first hits, each on a new `EnvCache` over the built `data_dir`.
fn warm_new_instance(data_dir: &Path, project: &Path, use_uv: bool, reps: usize) -> Result<Vec<Duration>, String> {
    block_on(async {
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps {
            let env = cache(data_dir, use_uv).ensure(project).await.map_err(|e| e.to_string())?;
            check(&env, true)?;
            times.push(env.elapsed);
        }
        Ok(times)
    })
}

/// The machine's load, printed with the figures: on a shared 2-core machine
/// other work shows in them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn fresh_dir(scratch: &Path, name: &str) -> Result<PathBuf, String> {
    let dir = scratch.join(name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(dir)
}

fn run(options: &Options) -> Result<Vec<Case>, String> {
    let scratch = tempfile::Builder::new().prefix("evalmesh-bench-envs-").tempdir().map_err(|e| e.to_string())?;
    let scratch = scratch.path();
    let project = fresh_dir(scratch, "project")?;
    std::fs::write(project.join("requirements.txt"), REQUIREMENTS).map_err(|e| e.to_string())?;
    let installer = block_on(async { cache(scratch, true).installer().await.clone() });
    eprintln!("uv installer found: {installer:?}");
    let mut cases = Vec::new();

    // uv, every wheel downloaded: a new uv cache per repetition.
    let mut times = Vec::new();
    for i in 0..options.reps {
        std::env::set_var("UV_CACHE_DIR", fresh_dir(scratch, &format!("uv-cache-empty-{i}"))?);
        times.push(cold(scratch, &project, true)?);
        eprintln!("uv cold, empty uv cache #{i}: {}", show(times[i]));
    }
    cases.push(Case { label: "uv, cold, empty uv cache (download)", times, warm: false });

    // uv with its cache filled by one build that is not timed.
    std::env::set_var("UV_CACHE_DIR", fresh_dir(scratch, "uv-cache-shared")?);
    cold(scratch, &project, true)?;
    let mut times = Vec::new();
    for i in 0..options.reps {
        times.push(cold(scratch, &project, true)?);
        eprintln!("uv cold, warm uv cache #{i}: {}", show(times[i]));
    }
    cases.push(Case { label: "uv, cold, warm uv cache", times, warm: false });

    let built = fresh_dir(scratch, "data-uv")?;
    let times = warm_same_instance(&built, &project, true, options.warm_reps)?;
    cases.push(Case { label: "uv, warm, running node (same `EnvCache`)", times, warm: true });
    let times = warm_new_instance(&built, &project, true, options.warm_reps)?;
    cases.push(Case { label: "uv, warm, first call after start (new `EnvCache`)", times, warm: true });
    eprintln!("uv warm: done");

    if options.pip {
        let mut times = Vec::new();
        for i in 0..options.reps {
            std::env::set_var("PIP_CACHE_DIR", fresh_dir(scratch, &format!("pip-cache-empty-{i}"))?);
            times.push(cold(scratch, &project, false)?);
            eprintln!("pip cold, empty pip cache #{i}: {}", show(times[i]));
        }
        cases.push(Case { label: "pip, cold, empty pip cache (download)", times, warm: false });

        std::env::set_var("PIP_CACHE_DIR", fresh_dir(scratch, "pip-cache-shared")?);
        cold(scratch, &project, false)?;
        let mut times = Vec::new();
        for i in 0..options.reps {
            times.push(cold(scratch, &project, false)?);
            eprintln!("pip cold, warm pip cache #{i}: {}", show(times[i]));
        }
        cases.push(Case { label: "pip, cold, warm pip cache", times, warm: false });

        let built = fresh_dir(scratch, "data-pip")?;
        let times = warm_same_instance(&built, &project, false, options.warm_reps)?;
        cases.push(Case { label: "pip, warm, running node (same `EnvCache`)", times, warm: true });
        let times = warm_new_instance(&built, &project, false, options.warm_reps)?;
        cases.push(Case { label: "pip, warm, first call after start (new `EnvCache`)", times, warm: true });
        eprintln!("pip warm: done");
    }
    Ok(cases)
}

fn main() -> ExitCode {
    let options = match Options::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("envs bench: {e}");
            return ExitCode::from(2);
        }
    };
    let cases = match run(&options) {
        Ok(cases) => cases,
        Err(e) => {
            eprintln!("envs bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("requirements.txt: {}", REQUIREMENTS.trim().replace('\n', ", "));
    println!("load average at the end (1, 5, 15 min): {}", load_average());
    println!();
    println!("| case | n | min | median | max |");
    println!("| --- | --- | --- | --- | --- |");
    for case in &cases {
        println!("{}", case.row());
    }
    let slowest_warm = cases.iter().filter(|c| c.warm).map(Case::max).max().unwrap_or_default();
    let met = slowest_warm < WARM_TARGET;
    println!();
    println!(
        "target: warm set-up under {} (slowest warm repetition): {} ({})",
        show(WARM_TARGET),
        if met { "met" } else { "MISSED" },
        show(slowest_warm)
    );
    if met {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
