//! Git input: checks client-supplied urls, names the folders their clones go
//! to, and shallow-clones them with the system `git`.
//!
//! Urls are hostile. [`validate_url`] refuses option injection (a leading
//! `-`, a host starting with `-`), git's `<transport>::<address>` helper
//! syntax, bare local paths and schemes outside the configured list; [`clone`]
//! validates again, puts `--` before the url, and sets `GIT_ALLOW_PROTOCOL`
//! so git itself refuses other transports, including on redirects and
//! submodule urls. Checked-out symlinks become plain files
//! (`core.symlinks=false`), matching what the zip intake allows.
//!
//! git has no bound of its own on what a clone downloads (`receive.maxInputSize`
//! bounds pushes only, and `--filter` needs the server's consent), so
//! [`clone`] measures the destination folder while git runs — the incoming
//! pack and the checkout both land there — and kills the clone past
//! [`CloneLimits::max_bytes`]. git runs in a process group of its own: at a
//! limit, and after it exits, the whole group is killed, so a remote helper
//! (`git remote-https`) waiting on a silent server dies with it.
//!
//! A GitHub token travels only in the environment (`GIT_CONFIG_*`, scoped to
//! `https://github.com/`), never in argv where `ps` would show it, and is
//! scrubbed, raw and base64-encoded, from the stderr returned to the client.

use std::collections::HashSet;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use tokio::io::AsyncReadExt;
use tokio::process::{ChildStderr, Command};

use super::IntakeError;
use crate::config::IntakeConfig;
use crate::executor::process::kill_group;

/// Only clones of this prefix receive the token, so a url on another host
/// (or a redirect to one) never sees it.
const GITHUB_PREFIX: &str = "https://github.com/";
const GITHUB_HEADER_KEY: &str = "http.https://github.com/.extraheader";
/// How much of git's stderr reaches the client.
const STDERR_CAP: usize = 2 * 1024;
/// How much of git's stderr is kept while it runs: the tail, which holds the
/// `fatal:` line, and enough that a token cut at the window's edge falls
/// outside the [`STDERR_CAP`] bytes returned.
const STDERR_WINDOW: usize = 64 * 1024;
/// Longest folder name [`repo_names`] produces before de-duplication.
const NAME_CAP: usize = 100;
/// How often a clone's folder is measured while git runs: a clone may
/// overshoot its limit by what git writes in this long.
const SIZE_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// What one clone may use.
#[derive(Debug, Clone)]
pub struct CloneLimits {
    /// git, and every process it started, is killed past this.
    pub timeout: Duration,
    /// The clone's folder, `.git` and checkout, may hold this many bytes.
    pub max_bytes: u64,
}

impl CloneLimits {
    pub fn from_config(intake: &IntakeConfig) -> Self {
        Self { timeout: Duration::from_secs(intake.clone_timeout_s), max_bytes: intake.max_clone_bytes }
    }
}

/// Checks that `url` is a well-formed git url whose scheme is in
/// `allowed_schemes` (compared case-insensitively). scp-like
/// `[user@]host:path` counts as `ssh`, as do `git+ssh://` and `ssh+git://`.
pub fn validate_url(url: &str, allowed_schemes: &[String]) -> Result<(), IntakeError> {
    let scheme =
        scheme_of(url).map_err(|reason| IntakeError::InvalidUrl { url: redact(url), reason: reason.to_string() })?;
    if allowed_schemes.iter().any(|s| s.eq_ignore_ascii_case(&scheme)) {
        Ok(())
    } else {
        Err(IntakeError::SchemeNotAllowed { url: redact(url), scheme })
    }
}

/// Returns the url's scheme in lowercase, or why it has none usable.
fn scheme_of(url: &str) -> Result<String, &'static str> {
    if url.is_empty() {
        return Err("url is empty");
    }
    // git would read it as an option; `--` guards clone, but not every caller.
    if url.starts_with('-') {
        return Err("url starts with '-'");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("url contains whitespace or control characters");
    }

    if let Some((scheme, rest)) = url.split_once("://") {
        let mut chars = scheme.chars();
        let well_formed = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !well_formed {
            return Err("url scheme is malformed");
        }
        let scheme = scheme.to_ascii_lowercase();
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        // ssh would take `-oProxyCommand=...` as an option (CVE-2017-1000117).
        if host.starts_with('-') {
            return Err("url host starts with '-'");
        }
        if scheme == "file" {
            if rest.len() <= authority.len() {
                return Err("url has no path");
            }
        } else if host.is_empty() {
            return Err("url has no host");
        }
        return Ok(match scheme.as_str() {
            "git+ssh" | "ssh+git" => "ssh".to_string(),
            _ => scheme,
        });
    }

    if let Some((head, path)) = url.split_once(':') {
        // `ext::sh -c ...` runs commands; `fd::`, `remote-x::` are no better.
        if path.starts_with(':') {
            return Err("transport helper urls (<transport>::<address>) are not allowed");
        }
        // git reads `host:path` as scp-like ssh only when no '/' precedes the
        // first ':'; otherwise it is a local path.
        if !head.contains('/') {
            let host = head.rsplit_once('@').map_or(head, |(_, h)| h);
            if host.is_empty() {
                return Err("url has no host");
            }
            if host.starts_with('-') {
                return Err("url host starts with '-'");
            }
            if path.is_empty() {
                return Err("url has no path");
            }
            return Ok("ssh".to_string());
        }
    }
    Err("url has no scheme (local paths are not accepted)")
}

/// The byte range of the password in `scheme://user:password@host/...`.
fn password_span(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let rest = &url[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let at = authority.rfind('@')?;
    let colon = authority[..at].find(':')?;
    Some((start + colon + 1, start + at))
}

/// The url as it may appear in errors and logs: any password is `***`.
fn redact(url: &str) -> String {
    match password_span(url) {
        Some((from, to)) if from < to => format!("{}***{}", &url[..from], &url[to..]),
        _ => url.to_string(),
    }
}

/// Folder names for the clones of `urls`, in order: the last path segment
/// without a trailing `/` or `.git`, with characters outside
/// `[A-Za-z0-9._-]` replaced by `_`, leading `.` and `-` dropped (no hidden
/// folders, no `..`, nothing option-like), at most 100 characters, `repo`
/// when nothing is left; repeats become `name-2`, `name-3`, ...
pub fn repo_names(urls: &[String]) -> Vec<String> {
    let mut used = HashSet::new();
    urls.iter()
        .map(|url| {
            let base = base_name(url);
            let mut name = base.clone();
            let mut n = 2;
            while used.contains(&name) {
                name = format!("{base}-{n}");
                n += 1;
            }
            used.insert(name.clone());
            name
        })
        .collect()
}

fn base_name(url: &str) -> String {
    let path = if url.contains("://") { url.split(['?', '#']).next().unwrap_or_default() } else { url };
    let path = path.trim_end_matches('/');
    let last = path.rsplit('/').next().unwrap_or_default();
    // scp-like `host:repo.git` has no '/' before the repo.
    let last = last.rsplit(':').next().unwrap_or_default();
    let last = last.strip_suffix(".git").unwrap_or(last);
    let cleaned: String =
        last.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect();
    let cleaned = cleaned.trim_start_matches(['.', '-']);
    // Only ASCII is left, so any byte index is a char boundary.
    let cleaned = &cleaned[..cleaned.len().min(NAME_CAP)];
    if cleaned.is_empty() {
        "repo".to_string()
    } else {
        cleaned.to_string()
    }
}

/// Shallow-clones `url` into `dest` (which must not exist, or be an empty
/// folder; its parent must exist) within `limits`. The caller removes `dest`
/// on error.
///
/// `token`, when given and the url starts with `https://github.com/`, is sent
/// as an `Authorization` header through the environment. The url is
/// validated against `allowed_schemes` first, so callers need not.
pub async fn clone(
    url: &str,
    dest: &Path,
    token: Option<&str>,
    allowed_schemes: &[String],
    limits: &CloneLimits,
) -> Result<(), IntakeError> {
    validate_url(url, allowed_schemes)?;
    run_clone(url, dest, token, allowed_schemes, limits).await
}

async fn run_clone(
    url: &str,
    dest: &Path,
    token: Option<&str>,
    allowed_schemes: &[String],
    limits: &CloneLimits,
) -> Result<(), IntakeError> {
    let shown = redact(url);
    let (cmd, secrets) = command(url, dest, token, allowed_schemes);
    log::debug!("git clone of {shown:?} into {} starting", dest.display());
    supervise(cmd, dest, limits, &shown, &secrets).await
}

/// How a clone's process ended.
enum Ended {
    Exited(std::io::Result<ExitStatus>, Vec<u8>),
    TimedOut,
    TooLarge,
}

/// Kills a clone's process group when dropped: at a limit, after git exits
/// (a remote helper may outlive it), and when the clone is abandoned.
struct Group(Option<u32>);

impl Drop for Group {
    fn drop(&mut self) {
        kill_group(self.0);
    }
}

/// Runs the clone command in a process group of its own until it exits, runs
/// past the time-out, or `dest` grows past the size limit.
async fn supervise(
    mut cmd: Command,
    dest: &Path,
    limits: &CloneLimits,
    shown: &str,
    secrets: &[String],
) -> Result<(), IntakeError> {
    cmd.process_group(0);
    let mut child = cmd.spawn().map_err(IntakeError::io("git"))?;
    let group = Group(child.id());
    let stderr = child.stderr.take();
    let ended = tokio::select! {
        (captured, status) = async { tokio::join!(read_tail(stderr), child.wait()) } => Ended::Exited(status, captured),
        () = grows_past(dest, limits.max_bytes) => Ended::TooLarge,
        () = tokio::time::sleep(limits.timeout) => Ended::TimedOut,
    };
    drop(group);
    let (status, captured) = match ended {
        Ended::Exited(status, captured) => (status.map_err(IntakeError::io("git"))?, captured),
        Ended::TimedOut | Ended::TooLarge => {
            // Reap it now rather than leave kill_on_drop to do it unseen.
            if let Err(e) = child.wait().await {
                log::warn!("git clone of {shown:?}: reaping after it was killed failed: {e}");
            }
            return Err(match ended {
                Ended::TimedOut => IntakeError::CloneTimeout { url: shown.to_owned(), timeout: limits.timeout },
                _ => IntakeError::CloneTooLarge { url: shown.to_owned(), limit: limits.max_bytes },
            });
        }
    };
    if !status.success() {
        let stderr = client_stderr(&captured, secrets, status);
        log::debug!("git clone of {shown:?} failed: {stderr}");
        return Err(IntakeError::CloneFailed { url: shown.to_owned(), stderr });
    }
    // git may have written its last bytes after the last measure.
    let dir = dest.to_owned();
    let size = tokio::task::spawn_blocking(move || folder_size(&dir)).await.unwrap_or(0);
    if size > limits.max_bytes {
        return Err(IntakeError::CloneTooLarge { url: shown.to_owned(), limit: limits.max_bytes });
    }
    Ok(())
}

/// Resolves once the folder at `dest` holds more than `max` bytes; never
/// otherwise.
async fn grows_past(dest: &Path, max: u64) {
    loop {
        tokio::time::sleep(SIZE_CHECK_INTERVAL).await;
        let dir = dest.to_owned();
        // A walk that panicked measured nothing; the measure after git exits decides.
        let size = tokio::task::spawn_blocking(move || folder_size(&dir)).await.unwrap_or(0);
        if size > max {
            return;
        }
    }
}

/// Bytes of the regular files under `dir`, symlinks not followed; a file
/// that vanishes during the walk (git renames its temporary files) counts
/// for nothing.
fn folder_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

/// Builds the git command and lists the secrets its stderr must not reveal.
fn command(url: &str, dest: &Path, token: Option<&str>, allowed_schemes: &[String]) -> (Command, Vec<String>) {
    let allowed: Vec<String> = allowed_schemes.iter().map(|s| s.to_ascii_lowercase()).collect();
    let mut cmd = Command::new("git");
    cmd.args(["-c", "core.symlinks=false", "clone", "--depth", "1", "--quiet", "--"])
        .arg(url)
        .arg(dest)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ALLOW_PROTOCOL", allowed.join(":"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // An unknown host key would otherwise make ssh ask on the terminal and
    // hang until the timeout; respect an operator's own ssh setup.
    if std::env::var_os("GIT_SSH_COMMAND").is_none() && std::env::var_os("GIT_SSH").is_none() {
        cmd.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
    }

    let mut secrets = Vec::new();
    if let Some((from, to)) = password_span(url) {
        secrets.push(url[from..to].to_string());
    }
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        secrets.push(token.to_string());
        if url.starts_with(GITHUB_PREFIX) {
            let encoded = STANDARD.encode(format!("x-access-token:{token}"));
            cmd.env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", GITHUB_HEADER_KEY)
                .env("GIT_CONFIG_VALUE_0", format!("Authorization: Basic {encoded}"));
            secrets.push(encoded);
        }
    }
    secrets.retain(|s| !s.is_empty());
    // Longest first, so no secret is left half-replaced by a shorter one.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    (cmd, secrets)
}

/// Drains the pipe to EOF so git never blocks on it, keeping only the last
/// [`STDERR_WINDOW`]-odd bytes.
async fn read_tail(stderr: Option<ChildStderr>) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut stderr) = stderr else {
        return kept;
    };
    let mut buf = [0u8; 8 * 1024];
    loop {
        match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * STDERR_WINDOW {
                    kept.drain(..kept.len() - STDERR_WINDOW);
                }
            }
        }
    }
    kept
}

/// git's stderr as the client may see it: secrets replaced by `***`, the
/// last [`STDERR_CAP`] bytes, or the exit status when git said nothing.
fn client_stderr(captured: &[u8], secrets: &[String], status: ExitStatus) -> String {
    let mut text = String::from_utf8_lossy(captured).into_owned();
    for secret in secrets {
        text = text.replace(secret.as_str(), "***");
    }
    let text = text.trim();
    if text.is_empty() {
        return format!("git exited with {status}");
    }
    let mut start = text.len().saturating_sub(STDERR_CAP);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    if start == 0 {
        text.to_string()
    } else {
        format!("...{}", &text[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command as StdCommand;

    fn schemes(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn all_schemes() -> Vec<String> {
        schemes(&["https", "http", "git", "ssh", "file"])
    }

    /// Limits no clone here reaches.
    fn roomy() -> CloneLimits {
        CloneLimits { timeout: Duration::from_secs(60), max_bytes: 1 << 30 }
    }

    fn invalid_reason(url: &str) -> String {
        match validate_url(url, &all_schemes()) {
            Err(IntakeError::InvalidUrl { reason, .. }) => reason,
            other => panic!("{url}: expected InvalidUrl, got {other:?}"),
        }
    }

    #[test]
    fn accepts_allowed_schemes_and_scp_like_urls() {
        for url in [
            "https://github.com/org/repo.git",
            "HTTPS://example.com/repo",
            "http://example.com:8080/a/b",
            "git://example.com/repo.git",
            "ssh://git@example.com:22/repo.git",
            "git+ssh://git@example.com/repo.git",
            "git@github.com:org/repo.git",
            "example.com:repo.git",
            "file:///srv/git/repo.git",
        ] {
            assert!(validate_url(url, &all_schemes()).is_ok(), "{url}");
        }
    }

    #[test]
    fn rejects_schemes_outside_the_list() {
        let https_only = schemes(&["https"]);
        for (url, scheme) in [
            ("http://example.com/r", "http"),
            ("git@github.com:org/repo.git", "ssh"),
            ("ssh+git://example.com/r", "ssh"),
            ("file:///tmp/r", "file"),
            ("ftp://example.com/r", "ftp"),
        ] {
            match validate_url(url, &https_only) {
                Err(IntakeError::SchemeNotAllowed { url: u, scheme: s }) => {
                    assert_eq!((u.as_str(), s.as_str()), (url, scheme));
                }
                other => panic!("{url}: expected SchemeNotAllowed, got {other:?}"),
            }
        }
    }

    #[test]
    fn rejects_malformed_and_dangerous_urls() {
        for (url, reason) in [
            ("", "url is empty"),
            ("-uhttps://x/y", "url starts with '-'"),
            ("--upload-pack=touch /tmp/x", "url starts with '-'"),
            ("https://x/a b", "url contains whitespace or control characters"),
            ("https://x/a\nb", "url contains whitespace or control characters"),
            ("https://x/\u{7f}", "url contains whitespace or control characters"),
            ("ssh://-oProxyCommand=x/y", "url host starts with '-'"),
            ("ssh://git@-oProxyCommand=x/y", "url host starts with '-'"),
            ("-oProxyCommand=x:y", "url starts with '-'"),
            ("git@-oProxyCommand=x:y", "url host starts with '-'"),
            ("ext::sh", "transport helper urls (<transport>::<address>) are not allowed"),
            ("fd::17", "transport helper urls (<transport>::<address>) are not allowed"),
            ("1http://x/y", "url scheme is malformed"),
            ("https:///path", "url has no host"),
            ("file://", "url has no path"),
            (":path", "url has no host"),
            ("host:", "url has no path"),
            ("/srv/git/repo.git", "url has no scheme (local paths are not accepted)"),
            ("./a:b", "url has no scheme (local paths are not accepted)"),
            ("repo", "url has no scheme (local paths are not accepted)"),
        ] {
            assert_eq!(invalid_reason(url), reason, "{url:?}");
        }
    }

    #[test]
    fn errors_hide_url_passwords() {
        let err = validate_url("ftp://me:hunter2@example.com/r", &all_schemes()).unwrap_err();
        assert_eq!(err.to_string(), "git url \"ftp://me:***@example.com/r\" uses scheme \"ftp\", which is not allowed");
        assert_eq!(redact("https://tok@github.com/a"), "https://tok@github.com/a");
        assert_eq!(redact("https://github.com/a@b:c"), "https://github.com/a@b:c");
    }

    #[test]
    fn repo_names_are_sanitised_and_unique() {
        let urls = schemes(&[
            "https://github.com/org/a.git",
            "https://gitlab.com/other/a/",
            "git@github.com:team/a.git",
            "https://example.com/a-2",
            "example.com:solo.git",
            "https://example.com/we%20ird name!.git?ref=main#x",
            "https://example.com/..",
            "https://example.com/.git",
            "https://example.com/-rf",
            "file:///srv/.hidden",
        ]);
        assert_eq!(
            repo_names(&urls),
            vec!["a", "a-2", "a-3", "a-2-2", "solo", "we_20ird_name_", "repo", "repo-2", "rf", "hidden",]
        );
        let long = format!("https://example.com/{}", "x".repeat(300));
        assert_eq!(repo_names(&[long])[0].len(), 100);
        assert!(repo_names(&[]).is_empty());
    }

    #[test]
    fn token_travels_in_env_never_in_args() {
        let dest = Path::new("/tmp/dest");
        let allowed = schemes(&["HTTPS", "file"]);
        let (cmd, secrets) = command("https://github.com/o/r.git", dest, Some("secret"), &allowed);
        let std = cmd.as_std();
        let args: Vec<&OsStr> = std.get_args().collect();
        assert_eq!(
            args,
            [
                "-c",
                "core.symlinks=false",
                "clone",
                "--depth",
                "1",
                "--quiet",
                "--",
                "https://github.com/o/r.git",
                "/tmp/dest"
            ]
        );
        let env = |key: &str| {
            std.get_envs()
                .find(|(k, _)| *k == OsStr::new(key))
                .and_then(|(_, v)| v)
                .map(|v| v.to_string_lossy().into_owned())
        };
        assert_eq!(env("GIT_TERMINAL_PROMPT").as_deref(), Some("0"));
        assert_eq!(env("GIT_ALLOW_PROTOCOL").as_deref(), Some("https:file"));
        assert_eq!(env("GIT_CONFIG_COUNT").as_deref(), Some("1"));
        assert_eq!(env("GIT_CONFIG_KEY_0").as_deref(), Some("http.https://github.com/.extraheader"));
        assert_eq!(env("GIT_CONFIG_VALUE_0").as_deref(), Some("Authorization: Basic eC1hY2Nlc3MtdG9rZW46c2VjcmV0"));
        assert_eq!(secrets, ["eC1hY2Nlc3MtdG9rZW46c2VjcmV0", "secret"]);
    }

    #[test]
    fn token_is_not_sent_off_github() {
        let dest = Path::new("/tmp/dest");
        for url in ["https://github.com.evil.example/o/r", "http://github.com/o/r", "https://gitlab.com/o/r"] {
            let (cmd, secrets) = command(url, dest, Some("secret"), &all_schemes());
            assert!(cmd.as_std().get_envs().all(|(k, _)| !k.to_string_lossy().starts_with("GIT_CONFIG")), "{url}");
            assert_eq!(secrets, ["secret"], "{url}");
        }
        let (_, secrets) = command("https://github.com/o/r", dest, Some(""), &all_schemes());
        assert!(secrets.is_empty());
    }

    #[test]
    fn client_stderr_scrubs_secrets_and_keeps_the_tail() {
        let secrets = vec!["eC1hY2Nlc3MtdG9rZW46c2VjcmV0".to_string(), "secret".to_string()];
        let failed = ExitStatus::from_raw(128 << 8);
        let raw = b"fatal: header Authorization: Basic eC1hY2Nlc3MtdG9rZW46c2VjcmV0 for secret\n";
        assert_eq!(client_stderr(raw, &secrets, failed), "fatal: header Authorization: Basic *** for ***");
        assert_eq!(client_stderr(b"  \n", &secrets, failed), "git exited with exit status: 128");

        let mut long = "é".repeat(3000).into_bytes();
        long.extend_from_slice(b"\nfatal: the end secret");
        let text = client_stderr(&long, &secrets, failed);
        assert!(text.starts_with("..."));
        assert!(text.ends_with("fatal: the end ***"));
        assert!(text.len() <= STDERR_CAP + 3);
    }

    /// A file:// repository with one commit holding a file and a symlink.
    fn source_repo() -> (tempfile::TempDir, String) {
        repo_with(|repo| {
            std::fs::write(repo.join("README.md"), "hello\n").unwrap();
            std::os::unix::fs::symlink("/etc/passwd", repo.join("link")).unwrap();
        })
    }

    /// A file:// repository with one commit holding what `fill` writes.
    fn repo_with(fill: impl FnOnce(&Path)) -> (tempfile::TempDir, String) {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("srcrepo");
        std::fs::create_dir(&repo).unwrap();
        fill(&repo);
        let git = |args: &[&str]| {
            let out = StdCommand::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"])
                .args(args)
                .current_dir(&repo)
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        git(&["init", "-q"]);
        git(&["add", "-A"]);
        git(&["commit", "-q", "-m", "init"]);
        let url = format!("file://{}", repo.display());
        (tmp, url)
    }

    #[tokio::test]
    async fn clones_a_file_repository_without_symlinks() {
        let (tmp, url) = source_repo();
        let dest = tmp.path().join("dest");
        clone(&url, &dest, Some("secret"), &schemes(&["file"]), &roomy()).await.unwrap();
        assert_eq!(std::fs::read_to_string(dest.join("README.md")).unwrap(), "hello\n");
        let link = std::fs::symlink_metadata(dest.join("link")).unwrap();
        assert!(link.is_file(), "symlink should be checked out as a plain file");
        assert_eq!(std::fs::read_to_string(dest.join("link")).unwrap(), "/etc/passwd");
        let log = StdCommand::new("git").args(["rev-list", "--count", "HEAD"]).current_dir(&dest).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&log.stdout).trim(), "1");
    }

    #[tokio::test]
    async fn refuses_a_disallowed_scheme_without_running_git() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("dest");
        let err = clone("file:///nowhere", &dest, None, &schemes(&["https"]), &roomy()).await.unwrap_err();
        assert!(matches!(err, IntakeError::SchemeNotAllowed { ref scheme, .. } if scheme == "file"));
        assert!(!dest.exists());
    }

    #[tokio::test]
    async fn git_itself_refuses_protocols_outside_the_list() {
        let (tmp, url) = source_repo();
        let dest = tmp.path().join("dest");
        let err = run_clone(&url, &dest, None, &schemes(&["https"]), &roomy()).await.unwrap_err();
        match err {
            IntakeError::CloneFailed { url: u, stderr } => {
                assert_eq!(u, url);
                assert!(stderr.contains("transport 'file' not allowed"), "{stderr}");
            }
            other => panic!("expected CloneFailed, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn missing_repository_fails_with_stderr() {
        let tmp = tempfile::tempdir().unwrap();
        let url = format!("file://{}/missing", tmp.path().display());
        let err = clone(&url, &tmp.path().join("dest"), None, &all_schemes(), &roomy()).await.unwrap_err();
        assert!(err.is_client_error());
        match err {
            IntakeError::CloneFailed { url: u, stderr } => {
                assert_eq!(u, url);
                assert!(stderr.contains("does not appear to be a git repository"), "{stderr}");
                assert!(stderr.len() <= STDERR_CAP + 3);
            }
            other => panic!("expected CloneFailed, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn slow_clone_times_out() {
        let (tmp, url) = source_repo();
        let err = clone(
            &url,
            &tmp.path().join("dest"),
            None,
            &all_schemes(),
            &CloneLimits { timeout: Duration::ZERO, ..roomy() },
        )
        .await
        .unwrap_err();
        match err {
            IntakeError::CloneTimeout { url: u, timeout } => {
                assert_eq!((u, timeout), (url, Duration::ZERO));
            }
            other => panic!("expected CloneTimeout, got {other:?}"),
        }
    }

    /// `len` bytes that no compression shrinks (xorshift).
    fn noise(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[tokio::test]
    async fn a_clone_larger_than_its_limit_is_refused() {
        let (tmp, url) = repo_with(|repo| std::fs::write(repo.join("big.bin"), noise(3 << 20)).unwrap());
        let limits = CloneLimits { max_bytes: 1 << 20, ..roomy() };
        let err = clone(&url, &tmp.path().join("dest"), None, &all_schemes(), &limits).await.unwrap_err();
        assert!(err.is_client_error());
        assert_eq!(err.to_string(), format!("git clone of {url:?} grew past the limit of 1048576 bytes"));
        let roomy_dest = tmp.path().join("roomy");
        clone(&url, &roomy_dest, None, &all_schemes(), &roomy()).await.unwrap();
        assert!(folder_size(&roomy_dest) > 3 << 20, "the measure counts the checkout and .git");
    }

    #[tokio::test]
    async fn a_clone_that_keeps_growing_is_killed_at_its_limit_while_it_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("dest");
        std::fs::create_dir(&dest).unwrap();
        // Stands in for a git that keeps writing: 64 MiB over 10 s at most,
        // should the kill fail.
        let mut cmd = Command::new("sh");
        let script = r#"for i in $(seq 1000); do head -c 65536 /dev/zero >> "$0/pack"; sleep 0.01; done"#;
        cmd.arg("-c").arg(script).arg(&dest);
        cmd.stderr(Stdio::piped()).kill_on_drop(true);
        let limits = CloneLimits { max_bytes: 1 << 20, ..roomy() };
        let started = std::time::Instant::now();
        let err = supervise(cmd, &dest, &limits, "writer", &[]).await.unwrap_err();
        assert!(matches!(err, IntakeError::CloneTooLarge { limit: 1_048_576, .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(30), "killed while it ran, not at the time-out");
        let size = folder_size(&dest);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(folder_size(&dest), size, "nothing writes after the kill");
    }

    /// Live (not zombie) processes whose command line contains `needle`.
    fn processes_naming(needle: &str) -> Vec<String> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let pid = entry.file_name().to_string_lossy().into_owned();
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            if !stat.contains(") Z ") && String::from_utf8_lossy(&cmdline).contains(needle) {
                found.push(format!("{pid}: {}", String::from_utf8_lossy(&cmdline).replace('\0', " ")));
            }
        }
        found
    }

    #[tokio::test]
    async fn a_timed_out_clone_leaves_no_process_behind() {
        // A server that takes the connection and never answers: git starts
        // `git remote-http`, which waits on it and would outlive a killed git.
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hangs.git", server.local_addr().unwrap());
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let connection = server.accept();
            let _ = stopped.recv();
            drop(connection);
        });
        let tmp = tempfile::tempdir().unwrap();
        let limits = CloneLimits { timeout: Duration::from_secs(1), ..roomy() };
        let err = clone(&url, &tmp.path().join("dest"), None, &all_schemes(), &limits).await.unwrap_err();
        assert!(matches!(err, IntakeError::CloneTimeout { .. }), "{err:?}");
        let mut left = processes_naming(&url);
        for _ in 0..100 {
            if left.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            left = processes_naming(&url);
        }
        let _ = stop.send(());
        holder.join().unwrap();
        assert!(left.is_empty(), "processes of the clone outlived it: {left:?}");
    }
}
