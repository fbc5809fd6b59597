//! The command line's client commands (`evalmesh submit`, `status`, `list`,
//! `watch`, `export`, `cancel`, `network`): each a few calls to one node's
//! public API, over awc, with the token as a Bearer header.
//!
//! Exit status, as `Outcome::code` maps it: 0 when the command did what it
//! was asked (for `submit --wait`, `watch` and `status`, when the
//! evaluation is done); 1 when the evaluation failed or was cancelled; 2
//! for a usage error (a bad argument, as clap reports them); 3 when the
//! node could not be reached or refused the request (its `error` is
//! printed); 4 when `status` finds the evaluation queued or running.

pub mod archive;
pub mod show;

use std::path::{Path, PathBuf};
use std::time::Duration;

use awc::http::header;
use futures_util::StreamExt;
use serde_json::{json, Value};

/// The node a command talks to when none is given.
pub const DEFAULT_NODE: &str = "http://127.0.0.1:5001";
/// Uploads and cluster-wide answers may take a while; a stream has no
/// bound (its body has none in awc).
const TIMEOUT: Duration = Duration::from_secs(600);
/// The largest answer read whole.
const MAX_ANSWER: usize = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Local(String),
    #[error("{node}: {reason}")]
    Unreachable { node: String, reason: String },
    #[error("{node} answered {status}: {error}")]
    Refused { node: String, status: u16, error: String },
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    EvaluationFailed,
    StillRunning,
}

impl Outcome {
    fn of(status: &str) -> Self {
        match status {
            "done" => Self::Ok,
            "queued" | "running" => Self::StillRunning,
            _ => Self::EvaluationFailed,
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::EvaluationFailed => 1,
            Self::StillRunning => 4,
        }
    }
}

impl CliError {
    pub fn code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Local(_) | Self::Unreachable { .. } | Self::Refused { .. } => 3,
        }
    }
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// What `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Export {
    Csv,
    Junit,
    Json,
}

/// One node's public API.
pub struct Client {
    client: awc::Client,
    node: String,
    token: Option<String>,
}

impl Client {
    /// `node` is a base URL (`http://host:port`) or `host:port`.
    pub fn new(node: &str, token: Option<String>) -> Self {
        let node = node.trim_end_matches('/');
        let node = if node.contains("://") { node.to_owned() } else { format!("http://{node}") };
        let client = awc::Client::builder().timeout(TIMEOUT).disable_redirects().finish();
        Self { client, node, token: token.filter(|t| !t.is_empty()) }
    }

    fn request(&self, method: awc::http::Method, path: &str) -> awc::ClientRequest {
        let req = self.client.request(method, format!("{}{path}", self.node));
        match &self.token {
            Some(token) => req.insert_header((header::AUTHORIZATION, format!("Bearer {token}"))),
            None => req,
        }
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> CliError {
        CliError::Unreachable { node: self.node.clone(), reason: e.to_string() }
    }

    /// Sends `req` with `body` and answers the body of a 2xx answer; a
    /// node's refusal is its `error`.
    async fn call(&self, req: awc::ClientRequest, body: Option<Vec<u8>>) -> Result<Vec<u8>, CliError> {
        let sent = match body {
            Some(body) => req.send_body(body).await,
            None => req.send().await,
        };
        let mut res = sent.map_err(|e| self.unreachable(e))?;
        let bytes = res.body().limit(MAX_ANSWER).await.map_err(|e| self.unreachable(e))?;
        if !res.status().is_success() {
            return Err(self.refusal(res.status().as_u16(), &bytes));
        }
        Ok(bytes.to_vec())
    }

    /// A node's refusal: its JSON `error`, else its text.
    fn refusal(&self, status: u16, body: &[u8]) -> CliError {
        let error = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
        CliError::Refused { node: self.node.clone(), status, error }
    }

    async fn json(&self, req: awc::ClientRequest, body: Option<Vec<u8>>) -> Result<Value, CliError> {
        let bytes = self.call(req, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| self.unreachable(format!("answer is not JSON: {e}")))
    }

    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.json(self.request(awc::http::Method::GET, path), None).await
    }

    pub async fn get_text(&self, path: &str) -> Result<String, CliError> {
        let bytes = self.call(self.request(awc::http::Method::GET, path), None).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Follows the evaluation's stream, showing its progress, until `done`;
    /// answers the final record. A cut stream is taken up again (with
    /// `Last-Event-ID`) a few times before giving up.
    pub async fn follow(&self, id: &str, progress: &mut show::Progress) -> Result<Value, CliError> {
        let (mut last_id, mut retries) = (None::<String>, 0);
        loop {
            let mut req = self.request(awc::http::Method::GET, &format!("/evaluation/{id}/stream"));
            if let Some(last) = &last_id {
                req = req.insert_header(("Last-Event-ID", last.as_str()));
            }
            let cut = match req.send().await {
                Ok(res) if res.status().is_success() => {
                    let mut body = res;
                    let mut pending = String::new();
                    loop {
                        match body.next().await {
                            Some(Ok(bytes)) => pending.push_str(&String::from_utf8_lossy(&bytes)),
                            Some(Err(e)) => break e.to_string(),
                            None => break "the stream ended before the evaluation did".to_owned(),
                        }
                        while let Some(end) = pending.find("\n\n") {
                            let block: String = pending.drain(..end + 2).collect();
                            let (event, id, data) = parse_event(&block);
                            if let Some(id) = id {
                                last_id = Some(id);
                            }
                            match (event.as_deref(), data) {
                                (Some("progress"), Some(data)) => progress.show(&data),
                                (Some("done"), Some(record)) => {
                                    progress.finish();
                                    return Ok(record);
                                }
                                _ => {}
                            }
                        }
                    }
                }
                Ok(mut res) => {
                    progress.finish();
                    let body = res.body().limit(64 << 10).await.unwrap_or_default();
                    return Err(self.refusal(res.status().as_u16(), &body));
                }
                Err(e) => e.to_string(),
            };
            retries += 1;
            if retries > 5 {
                progress.finish();
                return Err(self.unreachable(cut));
            }
            actix_web::rt::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// An event's name, id and data (as JSON), from one block of a stream.
pub fn parse_event(block: &str) -> (Option<String>, Option<String>, Option<Value>) {
    let (mut event, mut id, mut data) = (None, None, None);
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event: ") {
            event = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("data: ") {
            data = serde_json::from_str(v).ok();
        }
    }
    (event, id, data)
}

/// What `submit` was given: folders or zips to upload, or git URLs.
fn is_url(arg: &str) -> bool {
    ["https://", "http://", "git://", "ssh://", "file://"].iter().any(|s| arg.starts_with(s))
        || (arg.contains('@') && arg.contains(':') && !Path::new(arg).exists())
}

/// A multipart body of `(field, file name, bytes)` parts, and its type.
fn multipart(parts: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = format!("evalmesh-{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::new();
    for (field, file, bytes) in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file}\"\r\n\
                 Content-Type: application/zip\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A zip of the folders, or a zip file as it is.
fn archive_of(paths: &[PathBuf], what: &str) -> Result<Vec<u8>, CliError> {
    if let [single] = paths {
        if single.is_file() {
            return std::fs::read(single).map_err(|e| CliError::Local(format!("reading {}: {e}", single.display())));
        }
    }
    if let Some(bad) = paths.iter().find(|p| !p.is_dir()) {
        return Err(CliError::Usage(format!("{what}: {} is neither a folder nor a zip file", bad.display())));
    }
    let folders: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let (bytes, packed) = archive::zip_folders(&folders)?;
    for skipped in &packed.skipped {
        eprintln!("evalmesh: {what}: {skipped} left out: not a regular file");
    }
    if packed.files == 0 {
        return Err(CliError::Usage(format!("{what}: no file to send")));
    }
    Ok(bytes)
}

/// Posts the submission; answers the evaluation's id.
pub async fn submit(
    client: &Client,
    sources: &[String],
    tests: Option<&str>,
    git_token: Option<String>,
) -> Result<String, CliError> {
    let urls = sources.iter().filter(|s| is_url(s)).count();
    let answer = if urls == sources.len() {
        let mut body = json!({ "projects": sources });
        if let Some(tests) = tests {
            if !is_url(tests) {
                return Err(CliError::Usage("--tests: with git URLs, the reference suite is a git URL too".into()));
            }
            body["tests"] = json!(tests);
        }
        if let Some(token) = git_token {
            body["auth_token"] = json!(token);
        }
        let req = client.request(awc::http::Method::POST, "/evaluation").content_type("application/json");
        client.json(req, Some(body.to_string().into_bytes())).await?
    } else if urls == 0 {
        let paths: Vec<PathBuf> = sources.iter().map(PathBuf::from).collect();
        let projects = archive_of(&paths, "projects")?;
        let suite = match tests {
            Some(t) if is_url(t) => {
                return Err(CliError::Usage("--tests: with folders or zips, the reference suite is one too".into()))
            }
            Some(t) => Some(archive_of(&[PathBuf::from(t)], "--tests")?),
            None => None,
        };
        let mut parts: Vec<(&str, &str, &[u8])> = vec![("file", "projects.zip", &projects)];
        if let Some(suite) = &suite {
            parts.push(("tests", "tests.zip", suite));
        }
        let (content_type, body) = multipart(&parts);
        let req = client.request(awc::http::Method::POST, "/evaluation").content_type(content_type);
        client.json(req, Some(body)).await?
    } else {
        return Err(CliError::Usage("give either folders and zips, or git URLs, not both".into()));
    };
    answer["id"].as_str().map(str::to_owned).ok_or_else(|| client.unreachable("the answer has no id"))
}

/// Prints an evaluation's record as `format` asks; its outcome.
pub async fn print_record(client: &Client, record: &Value, format: Format) -> Result<Outcome, CliError> {
    match format {
        Format::Table => print!("{}", show::grades(record)),
        Format::Json => println!("{}", serde_json::to_string_pretty(record).unwrap_or_default()),
        Format::Csv => {
            let id = record["id"].as_str().unwrap_or_default();
            print!("{}", client.get_text(&format!("/evaluation/{id}/grades.csv")).await?);
        }
    }
    Ok(Outcome::of(record["status"].as_str().unwrap_or_default()))
}

/// `export`: the gradebook, the JUnit report or the record with every test.
pub async fn export(client: &Client, id: &str, what: Export) -> Result<(), CliError> {
    let text = match what {
        Export::Csv => client.get_text(&format!("/evaluation/{id}/grades.csv")).await?,
        Export::Junit => client.get_text(&format!("/evaluation/{id}/junit.xml")).await?,
        Export::Json => {
            let record = client.get(&format!("/evaluation/{id}?detail=tests")).await?;
            serde_json::to_string_pretty(&record).unwrap_or_default() + "\n"
        }
    };
    print!("{text}");
    Ok(())
}

/// `cancel`: what the node answered, in a line.
pub async fn cancel(client: &Client, id: &str) -> Result<String, CliError> {
    let answer = client.json(client.request(awc::http::Method::DELETE, &format!("/evaluation/{id}")), None).await?;
    Ok(match answer.get("removed_from") {
        Some(nodes) => format!("evaluation {id} removed from {nodes}"),
        None => format!("evaluation {id} {}", answer["status"].as_str().unwrap_or("cancelled")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_paths() {
        for url in ["https://git.example/a.git", "file:///srv/a", "git@github.com:a/b.git", "ssh://h/a"] {
            assert!(is_url(url), "{url}");
        }
        for path in ["class", "./projects.zip", "/tmp/a", "C:/x"] {
            assert!(!is_url(path), "{path}");
        }
    }

    #[test]
    fn an_event_block_reads_as_its_name_id_and_data() {
        let (event, id, data) = parse_event("event: module\nid: AQ.\ndata: {\"module\":\"t.py\"}\n\n");
        assert_eq!((event.as_deref(), id.as_deref()), (Some("module"), Some("AQ.")));
        assert_eq!(data, Some(json!({"module": "t.py"})));
        assert_eq!(parse_event(": keepalive\n\n"), (None, None, None));
    }

    #[test]
    fn exit_codes_are_the_documented_ones() {
        assert_eq!(
            ["done", "failed", "cancelled", "running", "queued"].map(|s| Outcome::of(s).code()),
            [0, 1, 1, 4, 4]
        );
        assert_eq!(CliError::Usage("x".into()).code(), 2);
        assert_eq!(CliError::Unreachable { node: "n".into(), reason: "r".into() }.code(), 3);
    }
}
