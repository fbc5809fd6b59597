//! The container image's command line, checked without a Docker engine:
//! `docker/Dockerfile` is read for what the image would run (its last
//! stage's `USER`, `ENTRYPOINT`, `CMD`, `COPY`s and `VOLUME`), and that
//! command line is then run on the host, as an ordinary user (`nobody`), with
//! the repository's `docker/node.toml` as its config. Only what cannot exist
//! on the host is overridden, on the command line: the data folder (moved
//! from the image's volume to a temp dir) and the listen address
//! (`0.0.0.0:5001` → `127.0.0.1:0`). The node must serve, answer
//! `GET /health`, and grade a zip exactly.
//!
//! The host's `python3` is a pyenv shim under /root that `nobody` cannot
//! read; the image's is `/usr/bin/python3`, the host's system Python, so the
//! node is given a PATH with `/usr/bin` first, as the image's PATH has no
//! shims, rather than a config other than the image's.
//!
//! The two flags themselves are checked with a node run as root: they win
//! over the file, and a bad value is refused as the file's would be; so are
//! the `EVALMESH_<SECTION>__<KEY>` variables and the secret files a
//! container is given. The Kubernetes manifests are parsed, and the config
//! they give a pod is assembled as its node would.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{
    die_with_parent, http, kill_processes_in, multipart, poll_until, with_timeout, zip_of, Body, Part, PASS_2_FAIL_1,
};
use evalmesh::config::Config;
use serde::Deserialize;
use serde_json::{json, Value};

const DOCKERFILE: &str = include_str!("../docker/Dockerfile");

/// The image's built-in config, as the repository holds it.
const NODE_TOML: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/node.toml");

/// Where `docker/node.toml` comes from in the build context (the repository root).
const NODE_TOML_SOURCE: &str = "docker/node.toml";

/// The folder the Debian base image's PATH finds `evalmesh` in (the
/// Dockerfile sets no PATH of its own).
const IMAGE_BIN_DIR: &str = "/usr/local/bin";

/// The ordinary user the node runs as: `nobody`, which owns no file.
const NOBODY: u32 = 65534;

/// The longest the evaluation may take, the first environment build
/// included: as `nobody` the node first installs uv into its data folder.
const EVALUATION_TIMEOUT: Duration = Duration::from_secs(240);

/// Above [`EVALUATION_TIMEOUT`], so that a stuck evaluation fails with the
/// node's log rather than a bare timeout.
const TEST_TIMEOUT: Duration = Duration::from_secs(330);

// ---------------------------------------------------------------- the Dockerfile

/// What the Dockerfile's last stage (the runtime image) declares.
#[derive(Debug, Default)]
struct Image {
    /// The last `USER`.
    user: Option<String>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    /// Each `COPY` as (sources, destination), `--from` and other flags dropped.
    copies: Vec<(Vec<String>, String)>,
    volumes: Vec<String>,
    expose: Vec<String>,
    /// Each `RUN`'s command, continuation lines joined.
    runs: Vec<String>,
}

impl Image {
    /// Reads the last stage of `dockerfile`: continuation lines joined,
    /// comments and blank lines dropped. `ENTRYPOINT` and `CMD` must be in
    /// exec (JSON) form, so that the node is PID 1 and gets `docker stop`'s
    /// SIGTERM, rather than a shell that would not pass it on.
    fn parse(dockerfile: &str) -> Image {
        let mut instructions = Vec::new();
        let mut current = String::new();
        for line in dockerfile.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.strip_suffix('\\') {
                Some(part) => {
                    current.push_str(part);
                    current.push(' ');
                }
                None => {
                    current.push_str(line);
                    instructions.push(std::mem::take(&mut current));
                }
            }
        }
        let last_from = instructions.iter().rposition(|i| keyword(i).0 == "FROM").expect("the Dockerfile has a FROM");
        let mut image = Image::default();
        for instruction in &instructions[last_from + 1..] {
            let (keyword, args) = keyword(instruction);
            let exec_form = |what: &str| -> Vec<String> {
                serde_json::from_str(args)
                    .unwrap_or_else(|e| panic!("{what} is not in exec form (a JSON array of strings): {args} ({e})"))
            };
            match keyword.as_str() {
                "USER" => image.user = Some(args.to_owned()),
                "ENTRYPOINT" => image.entrypoint = exec_form("ENTRYPOINT"),
                "CMD" => image.cmd = exec_form("CMD"),
                "COPY" => {
                    let mut words: Vec<String> =
                        args.split_whitespace().filter(|w| !w.starts_with("--")).map(str::to_owned).collect();
                    let dest = words.pop().expect("COPY has a destination");
                    image.copies.push((words, dest));
                }
                "VOLUME" if args.starts_with('[') => image.volumes.extend(exec_form("VOLUME")),
                "VOLUME" => image.volumes.extend(args.split_whitespace().map(str::to_owned)),
                "EXPOSE" => image.expose.extend(args.split_whitespace().map(str::to_owned)),
                "RUN" => image.runs.push(args.to_owned()),
                _ => {}
            }
        }
        image
    }

    /// Where the image holds the file `source` of the build context.
    fn copy_destination(&self, source: &str) -> Option<&str> {
        self.copies.iter().find(|(sources, _)| sources.iter().any(|s| s == source)).map(|(_, dest)| dest.as_str())
    }

    /// The value of `--config` on the command line the image runs.
    fn config_path(&self) -> &str {
        let args = self.command_line();
        let at = args.iter().position(|a| *a == "--config").expect("the image's command line has --config");
        args.get(at + 1).copied().expect("--config has a value")
    }

    /// ENTRYPOINT then CMD, as Docker runs them.
    fn command_line(&self) -> Vec<&str> {
        self.entrypoint.iter().chain(&self.cmd).map(String::as_str).collect()
    }
}

/// An instruction's keyword, upper-cased, and the rest of it.
fn keyword(instruction: &str) -> (String, &str) {
    let (word, rest) = instruction.split_once(char::is_whitespace).unwrap_or((instruction, ""));
    (word.to_ascii_uppercase(), rest.trim())
}

// ---------------------------------------------------------------- the node

/// A node started from a command line of this file's making (the harness's
/// `Node` writes a config of its own and takes no flags).
struct NodeProcess {
    child: Child,
    /// The node's working folder, which holds its data: every process left
    /// in it is killed with the node.
    workdir: PathBuf,
    log_path: PathBuf,
}

impl NodeProcess {
    /// Starts `cmd` in `workdir` with its output in `log_path`.
    fn spawn(cmd: &mut Command, workdir: &Path, log_path: PathBuf) -> NodeProcess {
        let log = std::fs::File::create(&log_path).expect("creating the node log");
        cmd.current_dir(workdir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log);
        let child = die_with_parent(cmd).spawn().unwrap_or_else(|e| {
            panic!("starting {} (it and its folders must be readable by its user): {e}", env!("CARGO_BIN_EXE_evalmesh"))
        });
        NodeProcess { child, workdir: workdir.to_owned(), log_path }
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// Waits for the node's `serving on ADDR` line and returns ADDR; panics
    /// with the node's log if it exits first.
    fn serving(&mut self) -> String {
        let addr = poll_until(Duration::from_secs(30), || {
            if let Some(status) = self.child.try_wait().expect("polling the node") {
                panic!("the node exited with {status} before serving:\n{}", self.log());
            }
            let log = self.log();
            let (_, rest) = log.split_once("serving on ")?;
            Some(rest.chars().take_while(|c| !c.is_whitespace()).collect::<String>())
        });
        addr.unwrap_or_else(|| panic!("the node did not log `serving on` within 30 s:\n{}", self.log()))
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        kill_processes_in(&self.workdir);
    }
}

/// The `Uid:`, `Gid:` and `Groups:` lines of `/proc/<pid>/status`: real,
/// effective, saved and filesystem ids, then the supplementary groups.
fn ids_of(pid: u32) -> [String; 3] {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reading the node's status");
    let line = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in {status}"));
        line[name.len()..].split_whitespace().collect::<Vec<_>>().join(" ")
    };
    [line("Uid:"), line("Gid:"), line("Groups:")]
}

// ---------------------------------------------------------------- tests

#[test]
fn image_runs_its_node_as_an_ordinary_user_with_the_config_it_copies_in() {
    let image = Image::parse(DOCKERFILE);

    let user = image.user.as_deref().expect("the image names a USER");
    let name = user.split(':').next().expect("split yields one part");
    assert!(!name.is_empty() && !name.bytes().all(|b| b.is_ascii_digit()), "USER is a name, not an id: {user}");
    assert_ne!(name, "root", "the image runs as root");
    let created = image.runs.iter().any(|run| {
        run.split("&&").any(|step| {
            let words: Vec<&str> = step.split_whitespace().collect();
            words.first() == Some(&"useradd") && words.last() == Some(&name)
        })
    });
    assert!(created, "no RUN creates the user {name} with useradd: {:?}", image.runs);

    assert_eq!(image.entrypoint.get(1).map(String::as_str), Some("node"), "{:?}", image.entrypoint);
    let binary = image.copies.iter().find(|(sources, _)| sources.iter().any(|s| s.ends_with("/release/evalmesh")));
    let (_, binary) = binary.expect("the image copies in the release binary");
    let program = &image.entrypoint[0];
    let resolved = if program.starts_with('/') { program.clone() } else { format!("{IMAGE_BIN_DIR}/{program}") };
    assert_eq!(&resolved, binary, "the entrypoint runs the binary the image copies in");

    let copied_to = image.copy_destination(NODE_TOML_SOURCE).expect("the image copies in docker/node.toml");
    assert_eq!(image.config_path(), copied_to, "CMD names the config where COPY puts docker/node.toml");

    let config = Config::load(Path::new(NODE_TOML)).unwrap();
    let volume = image.volumes.first().expect("the image declares its data VOLUME");
    assert!(
        config.node.data_dir.starts_with(volume),
        "data_dir {:?} is not on the volume {volume}",
        config.node.data_dir
    );
    let port = config.node.listen.rsplit_once(':').expect("listen is IP:port").1;
    assert!(image.expose.iter().any(|e| e == port || *e == format!("{port}/tcp")), "EXPOSE {:?}", image.expose);
}

#[test]
fn image_command_line_serves_and_grades_on_the_host_as_an_ordinary_user() {
    // SAFETY: geteuid(2) has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "starting a node as uid {NOBODY} takes root");
    with_timeout(TEST_TIMEOUT, || {
        let image = Image::parse(DOCKERFILE);
        let config = Config::load(Path::new(NODE_TOML)).unwrap();
        let image_volume = Path::new(image.volumes.first().expect("the image declares its data VOLUME"));

        // dir (root's, open to others) holds the log and what stands for the
        // image's volume, which nobody owns, as the image's user owns its own.
        let dir = tempfile::Builder::new().prefix("evalmesh-docker-").tempdir().expect("creating a temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let volume = dir.path().join("volume");
        std::fs::create_dir(&volume).unwrap();
        std::os::unix::fs::chown(&volume, Some(NOBODY), Some(NOBODY)).unwrap();
        let data_dir = volume.join(config.node.data_dir.strip_prefix(image_volume).expect("data_dir is on the volume"));

        // The image's command line, with the host's paths for its binary and
        // config, and the two overrides.
        let mut args: Vec<String> = image.command_line()[1..].iter().map(|a| a.to_string()).collect();
        let config_at = args.iter().position(|a| a == "--config").expect("--config") + 1;
        args[config_at] = NODE_TOML.to_owned();
        args.extend(["--listen".into(), "127.0.0.1:0".into(), "--data-dir".into(), data_dir.display().to_string()]);

        let path = format!("/usr/bin:{}", std::env::var("PATH").unwrap_or_default());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_evalmesh"));
        // The image's WORKDIR and its user's home are its volume.
        cmd.args(&args).uid(NOBODY).gid(NOBODY).env("PATH", path).env("HOME", &volume);
        let mut node = NodeProcess::spawn(&mut cmd, &volume, dir.path().join("node.log"));

        let nobody = format!("{NOBODY} {NOBODY} {NOBODY} {NOBODY}");
        assert_eq!(ids_of(node.child.id()), [nobody.clone(), nobody, String::new()], "the node runs as nobody");

        let addr = node.serving();
        let health = http(&addr, "GET", "/health", &[], Body::None);
        assert_eq!(health.status, 200, "{health:?}");
        assert_eq!(health.json(), json!({"status": "ok", "node": addr}));

        let zip = zip_of(&[("proj/requirements.txt", ""), ("proj/tests/test_x.py", PASS_2_FAIL_1)]);
        let (content_type, body) = multipart(&[Part::file("file", "projects.zip", &zip)]);
        let accepted = http(&addr, "POST", "/evaluation", &[("Content-Type", &content_type)], Body::Fixed(&body));
        assert_eq!(accepted.status, 202, "{accepted:?}");
        let id = accepted.json()["id"].as_str().expect("202 with an id").to_owned();

        let mut last = Value::Null;
        let finished = poll_until(EVALUATION_TIMEOUT, || {
            last = http(&addr, "GET", &format!("/evaluation/{id}"), &[], Body::None).json();
            matches!(last["status"].as_str(), Some("done" | "failed")).then(|| last.clone())
        });
        let e = finished.unwrap_or_else(|| {
            panic!("evaluation not finished after {EVALUATION_TIMEOUT:?}: {last}\nnode log:\n{}", node.log())
        });
        assert_eq!(e["status"], "done", "{e}\nnode log:\n{}", node.log());
        assert_eq!(e["projects"]["proj"]["error"], Value::Null, "{e}");
        let module = &e["module_results"]["proj"]["tests/test_x.py"];
        assert_eq!(module["status"], "done", "{e}");
        let counts = ["passed", "failed", "skipped", "errors"].map(|k| module[k].as_u64());
        assert_eq!(counts, [Some(2), Some(1), Some(0), Some(0)], "{module}");
        let info = &e["_run_info"];
        assert_eq!((info["passed"].as_u64(), info["failed"].as_u64()), (Some(2), Some(1)), "{info}");
    });
}

#[test]
fn listen_and_data_dir_flags_override_the_config_file_and_are_validated() {
    with_timeout(Duration::from_secs(60), || {
        let config = Config::load(Path::new(NODE_TOML)).unwrap();
        let image_data_existed = config.node.data_dir.exists();
        let dir = tempfile::Builder::new().prefix("evalmesh-flags-").tempdir().expect("creating a temp dir");
        let data_dir = dir.path().join("data");

        let mut cmd = Command::new(env!("CARGO_BIN_EXE_evalmesh"));
        cmd.args(["node", "--config", NODE_TOML, "--listen", "127.0.0.1:0", "--data-dir"]).arg(&data_dir);
        let mut node = NodeProcess::spawn(&mut cmd, dir.path(), dir.path().join("node.log"));
        let addr = node.serving();
        let port = addr.strip_prefix("127.0.0.1:").unwrap_or_else(|| panic!("serving on {addr}, not on loopback"));
        assert_ne!(port, "5001", "the config's port, not a free one");
        assert_eq!(http(&addr, "GET", "/health", &[], Body::None).status, 200);
        assert!(data_dir.join("evalmesh.sqlite3").is_file(), "no database in --data-dir:\n{}", node.log());
        assert_eq!(config.node.data_dir.exists(), image_data_existed, "the config's data_dir was used");

        // A bad value is refused as the same value in the file would be.
        let out = Command::new(env!("CARGO_BIN_EXE_evalmesh"))
            .args(["node", "--config", NODE_TOML, "--listen", "localhost:5001"])
            .output()
            .expect("running evalmesh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("node.listen"), "{stderr}");
    });
}

/// What a container's environment sets: keys by `EVALMESH_<SECTION>__<KEY>`
/// over the image's config, the secret and the tokens from mounted files;
/// a bad variable stops the node, naming it.
#[test]
fn variables_and_secret_files_configure_the_image_node() {
    with_timeout(Duration::from_secs(60), || {
        let dir = tempfile::Builder::new().prefix("evalmesh-env-").tempdir().expect("creating a temp dir");
        let (secret, tokens) = (dir.path().join("secret"), dir.path().join("tokens"));
        std::fs::write(&secret, "a-cluster-secret-from-a-file\n").unwrap();
        std::fs::write(&tokens, "teacher-token-from-a-file\n").unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_evalmesh"));
        cmd.args(["node", "--config", NODE_TOML])
            .env("EVALMESH_NODE__LISTEN", "127.0.0.1:0")
            .env("EVALMESH_NODE__DATA_DIR", dir.path().join("data"))
            .env("EVALMESH_NODE__SLOTS", "3")
            .env("EVALMESH_CLUSTER__SECRET_FILE", &secret)
            .env("EVALMESH_API__TOKENS_FILE", &tokens);
        let mut node = NodeProcess::spawn(&mut cmd, dir.path(), dir.path().join("node.log"));
        let addr = node.serving();
        assert_eq!(http(&addr, "GET", "/stats?scope=local", &[], Body::None).status, 401, "the token file is read");
        let bearer = [("Authorization", "Bearer teacher-token-from-a-file")];
        let stats = http(&addr, "GET", "/stats?scope=local", &bearer, Body::None).json();
        assert_eq!(stats["slots"], 3, "{stats}");
        assert!(dir.path().join("data/evalmesh.sqlite3").is_file(), "{}", node.log());

        let out = Command::new(env!("CARGO_BIN_EXE_evalmesh"))
            .args(["node", "--config", NODE_TOML])
            .env("EVALMESH_NODE__SLOTS", "none")
            .output()
            .expect("running evalmesh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("EVALMESH_NODE__SLOTS"), "{stderr}");
    });
}

/// The Kubernetes manifests (`docker/kubernetes/evalmesh.yaml`), parsed:
/// a headless Service that the StatefulSet names and that publishes pods
/// before they are ready; the pods' config as the node reads it, each pod
/// advertising its stable name and seeded by the first, the secret and the
/// tokens from the Secret's mounted files; the image's user, probes on
/// `/health`, no capability.
#[test]
fn kubernetes_manifests_configure_nodes_that_find_each_other_by_name() {
    const MANIFESTS: &str = include_str!("../docker/kubernetes/evalmesh.yaml");
    let docs: Vec<serde_yaml_ng::Value> = serde_yaml_ng::Deserializer::from_str(MANIFESTS)
        .map(|doc| serde_yaml_ng::Value::deserialize(doc).expect("a YAML document"))
        .collect();
    let of_kind = |kind: &str, name: &str| -> &serde_yaml_ng::Value {
        docs.iter()
            .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    let set = of_kind("StatefulSet", "evalmesh");
    let service_name = set["spec"]["serviceName"].as_str().unwrap();
    let headless = of_kind("Service", service_name);
    assert_eq!(headless["spec"]["clusterIP"].as_str(), Some("None"));
    assert_eq!(headless["spec"]["publishNotReadyAddresses"].as_bool(), Some(true));
    assert_eq!(set["spec"]["selector"]["matchLabels"], headless["spec"]["selector"]);

    let pod = &set["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let uid = DOCKERFILE
        .split("--uid ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<i64>().ok())
        .expect("the Dockerfile gives its user a fixed uid");
    assert_eq!(pod["securityContext"]["runAsUser"].as_i64(), Some(uid));
    assert_eq!(pod["securityContext"]["fsGroup"].as_i64(), Some(uid));
    assert_eq!(container["securityContext"]["capabilities"]["drop"][0].as_str(), Some("ALL"));
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"].as_bool(), Some(false));
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["path"].as_str(), Some("/health"), "{probe}");
    }
    let mounted = |volume: &str| -> String {
        let mount =
            container["volumeMounts"].as_sequence().unwrap().iter().find(|m| m["name"].as_str() == Some(volume));
        mount.and_then(|m| m["mountPath"].as_str()).unwrap_or_else(|| panic!("{volume} is not mounted")).to_owned()
    };
    let config_path = container["args"][1].as_str().unwrap();
    assert_eq!(Path::new(config_path).parent(), Some(Path::new(&mounted("config"))));

    // The pod evalmesh-1's config, as its node assembles it: the ConfigMap's
    // file, the container's variables ($(POD_NAME) as Kubernetes expands it),
    // the Secret's files where the secret volume puts them.
    let dir = tempfile::tempdir().unwrap();
    let config_map = of_kind("ConfigMap", "evalmesh");
    let file = dir.path().join("node.toml");
    std::fs::write(&file, config_map["data"]["node.toml"].as_str().unwrap()).unwrap();
    let secret = of_kind("Secret", "evalmesh");
    let secrets_dir = mounted("secrets");
    let mut vars = Vec::new();
    for (key, value) in secret["stringData"].as_mapping().unwrap() {
        let (key, value) = (key.as_str().unwrap(), value.as_str().unwrap());
        std::fs::write(dir.path().join(key), value).unwrap();
        let var = match key {
            "cluster-secret" => "EVALMESH_CLUSTER__SECRET_FILE",
            "tokens" => "EVALMESH_API__TOKENS_FILE",
            other => panic!("a secret the nodes do not read: {other}"),
        };
        vars.push((var.to_owned(), dir.path().join(key).to_string_lossy().into_owned()));
    }
    for var in container["env"].as_sequence().unwrap() {
        let name = var["name"].as_str().unwrap();
        if let Some(value) = var["value"].as_str() {
            vars.push((name.to_owned(), value.replace("$(POD_NAME)", "evalmesh-1")));
        }
    }
    let from_file = Config::load(&file).map_err(|e| e.to_string());
    assert!(from_file.as_ref().is_err_and(|e| e.contains(&secrets_dir)), "its files are the Secret's: {from_file:?}");
    let c = Config::assemble(Some(&file), vars).unwrap();
    assert_eq!(c.advertise(), format!("evalmesh-1.{service_name}:5001"));
    assert_eq!(c.cluster.seeds, [format!("evalmesh-0.{service_name}:5001")]);
    assert_eq!(c.cluster.secret.expose(), "change-me-kubernetes-cluster-secret");
    assert_eq!(c.api.tokens.len(), 1);
    assert!(c.node.data_dir.starts_with(mounted("data")), "{:?}", c.node.data_dir);
}
