//! Finding content among peers: a blob is named by its SHA-256, so any node
//! that holds it can serve it and the digest proves it is the right one. A
//! node fetches a blob from the nodes it expects to hold it (the supervisor,
//! the sender of a replica) and, when none of them answers, asks its other
//! peers which of them hold it (`HEAD /blobs/{sha256}`) and fetches it from
//! the first holder.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::evaluation::blobs;
use crate::peer::Peers;

/// Makes sure blob `sha` is in `dir`: fetched from the first of `expected`
/// that serves it, else from any of `others` that says it holds it.
pub async fn ensure(
    peers: &Peers,
    expected: &[String],
    others: &[String],
    sha: &str,
    dir: &Path,
) -> Result<(), String> {
    let path = blobs::path(dir, sha);
    if path.exists() {
        return Ok(());
    }
    let mut last = format!("no node to fetch blob {sha} from");
    for node in expected {
        match fetch(peers, node, sha, &path).await {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
    }
    for node in holders(peers, others, sha).await {
        match fetch(peers, &node, sha, &path).await {
            Ok(()) => {
                log::info!("blob {sha}: found on {node}");
                return Ok(());
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Those of `nodes` that say they hold blob `sha`.
pub async fn holders(peers: &Peers, nodes: &[String], sha: &str) -> Vec<String> {
    let asks = nodes.iter().map(|node| {
        let ask = peers.holds_blob(node, sha);
        async move { ask.await.ok().filter(|held| *held).map(|_| node.clone()) }
    });
    futures_util::future::join_all(asks).await.into_iter().flatten().collect()
}

/// Fetches blob `sha` from `node` and stores it at `path` once its digest
/// matches.
async fn fetch(peers: &Peers, node: &str, sha: &str, path: &Path) -> Result<(), String> {
    let bytes = peers.blob(node, sha).await.map_err(|e| e.to_string())?;
    // Hashing and writing a large blob would stall this thread's actors,
    // membership among them, long enough to look dead.
    let (path, sha, node): (PathBuf, String, String) = (path.to_owned(), sha.to_owned(), node.to_owned());
    actix_web::rt::task::spawn_blocking(move || {
        let digest = format!("{:x}", Sha256::digest(&bytes));
        if digest != sha {
            return Err(format!("blob {sha} from {node} has digest {digest}"));
        }
        write_atomically(&path, &bytes).map_err(|e| format!("storing blob {sha}: {e}"))
    })
    .await
    .map_err(|e| format!("blob thread: {e}"))?
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().ok_or_else(|| std::io::Error::other("blob path has no folder"))?;
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
