//! The index proxy: the only network an install gets. Installs run in a
//! sandbox without network; the bridge inside (`bridge.py`) hands each of
//! their connections to this proxy over a Unix socket, and the proxy allows
//! only `CONNECT` to the hosts of `executor.index_hosts` (the package index
//! and where it serves files). So a package's build script can reach the
//! index, and nothing else: not the node, not the host's other services, not
//! the rest of the network. Plain async helpers, no actor: the node spawns
//! [`serve`] once on its runtime.
//!
//! Where the node itself must go through a proxy (`HTTPS_PROXY` in its
//! environment), the connection is made through that proxy.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};

/// The largest request head read.
const HEAD_CAP: usize = 8 * 1024;
/// How long a client may take to send its head, and the proxy to connect.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request is refused, as the client is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("only CONNECT is served")]
    NotConnect,
    #[error("{0} is not a package index host")]
    NotAllowed(String),
    #[error("malformed request")]
    Malformed,
}

/// The `host:port` a request head asks to reach, if it may.
pub fn target(head: &str, allowed: &[String]) -> Result<String, Refusal> {
    let line = head.lines().next().ok_or(Refusal::Malformed)?;
    let mut parts = line.split(' ');
    let (method, authority, version) = (parts.next(), parts.next(), parts.next());
    let (Some(method), Some(authority), Some(version)) = (method, authority, version) else {
        return Err(Refusal::Malformed);
    };
    if parts.next().is_some() || !version.starts_with("HTTP/1.") {
        return Err(Refusal::Malformed);
    }
    if method != "CONNECT" {
        return Err(Refusal::NotConnect);
    }
    let authority = authority.to_ascii_lowercase();
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(&authority)) {
        Ok(authority)
    } else {
        Err(Refusal::NotAllowed(authority))
    }
}

/// The proxy's socket at `path`, made anew, which every sandbox user may
/// connect to: installs reach it from inside their sandbox.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o666))?;
    Ok(listener)
}

/// Serves connections on `listener` until the node stops.
pub async fn serve(listener: UnixListener, allowed: Arc<Vec<String>>) {
    let upstream = std::env::var("HTTPS_PROXY").or_else(|_| std::env::var("https_proxy")).ok();
    let upstream = upstream.and_then(|u| proxy_authority(&u));
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        let (allowed, upstream) = (allowed.clone(), upstream.clone());
        actix_rt::spawn(async move {
            if let Err(e) = handle(client, &allowed, upstream.as_deref()).await {
                log::info!("index proxy: {e}");
            }
        });
    }
}

async fn handle(mut client: UnixStream, allowed: &[String], upstream: Option<&str>) -> std::io::Result<()> {
    let head = tokio::time::timeout(STEP_TIMEOUT, read_head(&mut client)).await.map_err(std::io::Error::other)??;
    let authority = match target(&head, allowed) {
        Ok(authority) => authority,
        Err(refusal) => {
            let answer = format!("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nX-Evalmesh: {refusal}\r\n\r\n");
            client.write_all(answer.as_bytes()).await?;
            return Err(std::io::Error::other(format!("refused: {refusal}")));
        }
    };
    let server =
        tokio::time::timeout(STEP_TIMEOUT, connect(&authority, upstream)).await.map_err(std::io::Error::other)?;
    let mut server = match server {
        Ok(server) => server,
        Err(e) => {
            client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n").await?;
            return Err(std::io::Error::other(format!("{authority}: {e}")));
        }
    };
    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}

/// Connects to `authority`, through `upstream` when the node must use a proxy.
async fn connect(authority: &str, upstream: Option<&str>) -> std::io::Result<TcpStream> {
    let Some(proxy) = upstream else {
        return TcpStream::connect(authority).await;
    };
    let mut stream = TcpStream::connect(proxy).await?;
    stream.write_all(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes()).await?;
    let answer = read_head(&mut stream).await?;
    let status = answer.split(' ').nth(1).unwrap_or_default();
    if status != "200" {
        return Err(std::io::Error::other(format!("the node's proxy answered {status}")));
    }
    Ok(stream)
}

/// `host:port` of a proxy URL such as `http://proxy:3128/`.
fn proxy_authority(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let authority = rest.split('/').next()?.rsplit('@').next()?;
    (!authority.is_empty()).then(|| authority.to_owned())
}

/// Reads up to the blank line that ends an HTTP head, byte by byte so that
/// nothing after it is taken from the stream.
async fn read_head<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 || head.len() >= HEAD_CAP {
            return Err(std::io::Error::other("incomplete request head"));
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec!["pypi.org:443".into(), "files.pythonhosted.org:443".into()]
    }

    #[test]
    fn allows_connect_to_the_index_only() {
        let head = "CONNECT pypi.org:443 HTTP/1.1\r\nHost: pypi.org:443\r\n\r\n";
        assert_eq!(target(head, &allowed()), Ok("pypi.org:443".into()));
        assert_eq!(target("CONNECT PyPI.org:443 HTTP/1.1\r\n\r\n", &allowed()), Ok("pypi.org:443".into()));
        assert_eq!(
            target("CONNECT 127.0.0.1:5001 HTTP/1.1\r\n\r\n", &allowed()),
            Err(Refusal::NotAllowed("127.0.0.1:5001".into()))
        );
        assert_eq!(
            target("CONNECT pypi.org:80 HTTP/1.1\r\n\r\n", &allowed()),
            Err(Refusal::NotAllowed("pypi.org:80".into()))
        );
        assert_eq!(target("GET http://pypi.org/simple/ HTTP/1.1\r\n\r\n", &allowed()), Err(Refusal::NotConnect));
        assert_eq!(target("CONNECT pypi.org:443\r\n\r\n", &allowed()), Err(Refusal::Malformed));
        assert_eq!(target("", &allowed()), Err(Refusal::Malformed));
    }

    #[test]
    fn reads_the_authority_of_a_proxy_url() {
        assert_eq!(proxy_authority("http://proxy.lan:3128/"), Some("proxy.lan:3128".into()));
        assert_eq!(proxy_authority("http://user:pw@proxy.lan:3128"), Some("proxy.lan:3128".into()));
        assert_eq!(proxy_authority("proxy.lan:3128"), Some("proxy.lan:3128".into()));
    }

    /// A real round trip: a client on the Unix socket reaches an allowed
    /// server on loopback through CONNECT, and is refused another.
    #[actix_rt::test]
    async fn tunnels_to_an_allowed_host_and_refuses_the_rest() {
        let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = server.local_addr().unwrap().port();
        actix_rt::spawn(async move {
            let (mut s, _) = server.accept().await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sock");
        let listener = bind(&path).unwrap();
        actix_rt::spawn(serve(listener, Arc::new(vec![format!("127.0.0.1:{port}")])));

        let mut client = UnixStream::connect(&path).await.unwrap();
        client.write_all(format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n").as_bytes()).await.unwrap();
        let head = read_head(&mut client).await.unwrap();
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        client.write_all(b"ping").await.unwrap();
        let mut echo = [0u8; 4];
        client.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"ping");

        let mut other = UnixStream::connect(&path).await.unwrap();
        other.write_all(b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n").await.unwrap();
        let head = read_head(&mut other).await.unwrap();
        assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    }
}
