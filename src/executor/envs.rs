//! The environment cache: one virtual environment per distinct
//! (interpreter, requirements) pair, built once and reused by every
//! evaluation on this node. Pure helper of the executor, no actix inside.
//!
//! An environment is complete when its `READY` marker exists; a folder without
//! it is the remains of a build that was interrupted and is built again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::process::Command;
use tokio::sync::OnceCell;

use super::process;
use super::ExecutorError;

const READY: &str = ".evalmesh-ready";
/// Part of every key, so that a change in how environments are built
/// invalidates the old ones.
const LAYOUT: &str = "evalmesh-env-v1";

/// An environment ready to run a project's tests.
#[derive(Debug, Clone)]
pub struct Env {
    pub python: PathBuf,
    /// False when this call built it.
    pub cached: bool,
    pub elapsed: Duration,
}

/// How environments are built.
#[derive(Debug, Clone)]
pub enum Installer {
    Uv(PathBuf),
    Pip,
}

pub struct EnvCache {
    root: PathBuf,
    tools: PathBuf,
    python: String,
    use_uv: bool,
    timeout: Duration,
    output_cap: usize,
    /// The interpreter's path and version, resolved once: part of every key.
    identity: OnceCell<String>,
    installer: OnceCell<Installer>,
    /// One lock per key, so that two projects with the same requirements
    /// build their environment once.
    building: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl EnvCache {
    pub fn new(data_dir: &Path, python: &str, use_uv: bool, timeout: Duration, output_cap: usize) -> Self {
        Self {
            root: data_dir.join("envs"),
            tools: data_dir.join("tools"),
            python: python.to_owned(),
            use_uv,
            timeout,
            output_cap,
            identity: OnceCell::new(),
            installer: OnceCell::new(),
            building: Mutex::new(HashMap::new()),
        }
    }

    /// Returns the environment for the project at `project_root`, building it
    /// on a miss.
    pub async fn ensure(&self, project_root: &Path) -> Result<Env, ExecutorError> {
        let started = Instant::now();
        let requirements = project_root.join("requirements.txt");
        let reqs = match tokio::fs::read(&requirements).await {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(ExecutorError::io("reading requirements.txt", e)),
        };
        let key = self.key(reqs.as_deref()).await?;
        let dir = self.root.join(&key);
        let python = dir.join("bin").join("python");
        if dir.join(READY).exists() {
            return Ok(Env { python, cached: true, elapsed: started.elapsed() });
        }
        let lock = {
            let mut building = self.building.lock().expect("no code panics while holding this lock");
            building.entry(key.clone()).or_default().clone()
        };
        let _guard = lock.lock().await;
        if dir.join(READY).exists() {
            return Ok(Env { python, cached: true, elapsed: started.elapsed() });
        }
        self.build(&dir, reqs.is_some().then_some(requirements.as_path())).await?;
        Ok(Env { python, cached: false, elapsed: started.elapsed() })
    }

    /// The cache key: a hash of the interpreter and the requirements.
    pub async fn key(&self, requirements: Option<&[u8]>) -> Result<String, ExecutorError> {
        let identity = self.identity.get_or_try_init(|| self.resolve_identity()).await?;
        let mut h = Sha256::new();
        h.update(LAYOUT);
        h.update([0]);
        h.update(identity);
        h.update([0]);
        h.update(requirements.unwrap_or_default());
        Ok(format!("{:x}", h.finalize()))
    }

    /// How environments are built here: uv found or installed once, else pip.
    pub async fn installer(&self) -> &Installer {
        self.installer.get_or_init(|| self.find_installer()).await
    }

    async fn resolve_identity(&self) -> Result<String, ExecutorError> {
        let mut cmd = Command::new(&self.python);
        cmd.args(["-c", "import sys; print(sys.executable); print(sys.version)"]);
        let out = process::run(cmd, Duration::from_secs(30), 4096)
            .await
            .map_err(|e| ExecutorError::io(&format!("starting {}", self.python), e))?;
        if !out.success() {
            return Err(ExecutorError::Interpreter { python: self.python.clone(), output: out.output });
        }
        Ok(out.output)
    }

    async fn find_installer(&self) -> Installer {
        if !self.use_uv {
            return Installer::Pip;
        }
        if let Some(uv) = find_on_path("uv") {
            return Installer::Uv(uv);
        }
        let local = self.tools.join("uv").join("bin").join("uv");
        if local.exists() {
            return Installer::Uv(local);
        }
        let mut cmd = Command::new(&self.python);
        cmd.args(["-m", "pip", "install", "--quiet", "--target"]).arg(self.tools.join("uv")).arg("uv");
        match process::run(cmd, self.timeout, self.output_cap).await {
            Ok(out) if out.success() && local.exists() => {
                log::info!("installed uv into {}", local.display());
                Installer::Uv(local)
            }
            Ok(out) => {
                log::warn!("cannot install uv, building environments with pip: {}", out.output.trim());
                Installer::Pip
            }
            Err(e) => {
                log::warn!("cannot install uv, building environments with pip: {e}");
                Installer::Pip
            }
        }
    }

    async fn build(&self, dir: &Path, requirements: Option<&Path>) -> Result<(), ExecutorError> {
        if dir.exists() {
            tokio::fs::remove_dir_all(dir)
                .await
                .map_err(|e| ExecutorError::io("removing an unfinished environment", e))?;
        }
        tokio::fs::create_dir_all(&self.root)
            .await
            .map_err(|e| ExecutorError::io("creating the environment cache", e))?;
        let python = dir.join("bin").join("python");
        let (create, install) = match self.installer().await {
            Installer::Uv(uv) => {
                let mut create = Command::new(uv);
                create.args(["venv", "--quiet", "--python", &self.python]).arg(dir);
                let mut install = Command::new(uv);
                // Bytecode compiled once here, not by every pytest run.
                install.args(["pip", "install", "--quiet", "--compile-bytecode", "--python"]).arg(&python);
                (create, install)
            }
            Installer::Pip => {
                let mut create = Command::new(&self.python);
                create.args(["-m", "venv"]).arg(dir);
                let mut install = Command::new(&python);
                install.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]);
                (create, install)
            }
        };
        let mut install = install;
        if let Some(reqs) = requirements {
            install.arg("-r").arg(reqs);
        }
        install.arg("pytest");
        for (step, cmd) in [("creating the environment", create), ("installing requirements", install)] {
            let out = process::run(cmd, self.timeout, self.output_cap).await.map_err(|e| ExecutorError::io(step, e))?;
            if !out.success() {
                let reason = if out.timed_out() {
                    format!("timed out after {} s", self.timeout.as_secs())
                } else {
                    out.output.trim().to_owned()
                };
                // A half-built environment must not be taken for a cached one.
                let _ = tokio::fs::remove_dir_all(dir).await;
                return Err(ExecutorError::Install { step, reason });
            }
        }
        tokio::fs::write(dir.join(READY), b"").await.map_err(|e| ExecutorError::io("marking the environment ready", e))
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(dir: &Path) -> EnvCache {
        EnvCache::new(dir, "python3", true, Duration::from_secs(600), 8192)
    }

    #[tokio::test]
    async fn key_depends_on_requirements_only_through_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path());
        let a = c.key(Some(b"requests==2.0\n")).await.unwrap();
        let b = c.key(Some(b"requests==2.0\n")).await.unwrap();
        let none = c.key(None).await.unwrap();
        assert_eq!(a, b);
        assert_ne!(a, none);
        assert_eq!(a.len(), 64);
    }

    #[tokio::test]
    async fn builds_once_then_hits_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("p");
        std::fs::create_dir(&project).unwrap();
        let c = cache(&dir.path().join("data"));
        let first = c.ensure(&project).await.unwrap();
        assert!(!first.cached);
        assert!(first.python.exists());
        let second = c.ensure(&project).await.unwrap();
        assert!(second.cached);
        assert_eq!(first.python, second.python);
    }

    #[tokio::test]
    async fn failing_install_reports_its_error_and_leaves_no_environment() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("p");
        std::fs::create_dir(&project).unwrap();
        std::fs::write(project.join("requirements.txt"), "this-package-does-not-exist-evalmesh==9.9\n").unwrap();
        let c = cache(&dir.path().join("data"));
        let err = c.ensure(&project).await.unwrap_err();
        assert!(matches!(err, ExecutorError::Install { step: "installing requirements", .. }), "{err}");
        assert!(err.to_string().contains("this-package-does-not-exist-evalmesh"), "{err}");
        let envs: Vec<_> = std::fs::read_dir(dir.path().join("data/envs")).unwrap().collect();
        assert_eq!(envs.len(), 0);
    }
}
