//! A replica's side of replication: it fetches the blobs the operations name
//! — from the node that sent them, else from any peer that holds them — and
//! only then applies the operations in its store, so that a replica that
//! acknowledged a project also holds its content.

use std::path::Path;

use actix::prelude::*;

use super::content;
use super::model::{self, Replicate, ReplicateAnswer};
use crate::peer::Peers;
use crate::store::{ApplyReplica, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The operations name something a replica must not use, or contradict
    /// each other or what the replica holds.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Blob(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Applies `replicate`, whose blobs come from `sender` or one of `others`.
pub async fn receive(
    store: &Addr<Store>,
    peers: &Peers,
    blobs_dir: &Path,
    sender: &str,
    others: &[String],
    replicate: Replicate,
) -> Result<ReplicateAnswer, ReceiveError> {
    model::check(&replicate).map_err(ReceiveError::Invalid)?;
    let expected = [sender.to_owned()];
    for sha in replicate.ops.iter().flat_map(|op| op.blobs()) {
        content::ensure(peers, &expected, others, sha, blobs_dir).await.map_err(ReceiveError::Blob)?;
    }
    match store.send(ApplyReplica(replicate)).await.map_err(StoreError::from)? {
        Err(StoreError::Inconsistent(reason)) => Err(ReceiveError::Invalid(reason)),
        applied => Ok(applied?),
    }
}
