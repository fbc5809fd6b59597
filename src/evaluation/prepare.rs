//! Bringing an evaluation's input up before its supervisor hands out work:
//! cloning what is missing, finding and packing the projects, and loading
//! what the store already knows. An adopted evaluation comes with its blobs
//! but without a workspace: its projects are unpacked from them.

use std::path::PathBuf;

use actix::prelude::*;
use chrono::Utc;

use super::intake::suite::Suite;
use super::intake::{self, IntakeError};
use super::model::EvaluationStatus;
use super::supervisor::SupervisorSettings;
use super::workspace;
use crate::store::{
    EvaluationRecord, GetEvaluation, MarkInputReady, ProjectRow, SaveCollected, SaveProjects, SetBlob, SetStatus,
    Source, Store, StoreError,
};

/// Project rows and module rows as the store holds them at start.
pub type Loaded = (Vec<ProjectRow>, Vec<(String, String, u32, bool)>);

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The supervisor died between accepting an upload and replicating its
    /// projects: no node holds them.
    #[error("the upload was lost with its supervisor before it reached a replica")]
    InputLost,
    /// The reference suite could not be cloned, or holds no test.
    #[error(transparent)]
    Suite(IntakeError),
}

impl From<actix::MailboxError> for PrepareError {
    fn from(e: actix::MailboxError) -> Self {
        Self::Store(e.into())
    }
}

/// Clones what is missing, finds and packs the projects, and loads what
/// the store already knows of them.
pub async fn prepare(
    record: EvaluationRecord,
    token: Option<String>,
    workspace: PathBuf,
    settings: SupervisorSettings,
    store: Addr<Store>,
) -> Result<Loaded, PrepareError> {
    let id = record.id;
    store.send(SetStatus { id, status: EvaluationStatus::Running, at: Utc::now(), error: None }).await??;
    let known = store.send(GetEvaluation { id, with_tests: false }).await??;
    let known_projects = known.map(|v| v.projects).unwrap_or_default();
    if known_projects.is_empty() && matches!(record.source, Source::Zip { .. }) && !workspace.exists() {
        return Err(PrepareError::InputLost);
    }
    if known_projects.is_empty() {
        let mut rows = Vec::new();
        let suite_dir = workspace::suite_dir(&workspace);
        if let Source::Git { repositories, tests } = &record.source {
            if !record.input_ready {
                let (schemes, limits) = (&settings.git_schemes, &settings.clone_limits);
                rows = workspace::clone_all(repositories, token.as_deref(), &workspace, schemes, limits).await;
                if let Some(url) = tests {
                    let _ = tokio::fs::remove_dir_all(&suite_dir).await;
                    if let Err(e) = intake::clone(url, &suite_dir, token.as_deref(), schemes, limits).await {
                        let _ = tokio::fs::remove_dir_all(&suite_dir).await;
                        return Err(PrepareError::Suite(IntakeError::Suite { reason: e.to_string() }));
                    }
                }
            }
        }
        let suite = match suite_dir.exists() {
            true => Some(Suite::load(&suite_dir).map_err(PrepareError::Suite)?),
            false => None,
        };
        let (ws, blobs, source) = (workspace.clone(), settings.blobs_dir.clone(), record.source.clone());
        let max_bytes = settings.limits.max_unpacked_bytes;
        let found = actix_web::rt::task::spawn_blocking(move || {
            let mut found = workspace::find_projects(&ws, &source, suite.as_ref(), max_bytes);
            workspace::pack_all(&ws, &mut found, &blobs);
            found
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("packing thread: {e}")))?;
        rows.extend(found);
        store.send(SaveProjects { id, projects: rows }).await??;
        store.send(MarkInputReady(id)).await??;
    } else {
        // A resumed evaluation: blobs lost with a data folder are packed
        // again; an adopted one is unpacked from its blobs.
        let (ws, blobs, limits) = (workspace.clone(), settings.blobs_dir.clone(), settings.limits.clone());
        let before = known_projects.clone();
        let after = actix_web::rt::task::spawn_blocking(move || {
            let mut rows = before;
            workspace::unpack_missing(&ws, &mut rows, &blobs, &limits);
            workspace::pack_all(&ws, &mut rows, &blobs);
            rows
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("packing thread: {e}")))?;
        for (old, new) in known_projects.iter().zip(after) {
            if new.error.is_some() && old.error.is_none() {
                let msg = SaveCollected { id, project: new.name, modules: Vec::new(), error: new.error };
                store.send(msg).await??;
            } else if let Some(blob) = new.blob.filter(|b| old.blob.as_ref() != Some(b)) {
                store.send(SetBlob { id, project: new.name, blob }).await??;
            }
        }
    }
    let view = store.send(GetEvaluation { id, with_tests: false }).await??;
    let view = view.ok_or_else(|| StoreError::Corrupt(format!("evaluation {id} vanished")))?;
    let modules = view.modules.into_iter().map(|m| (m.project, m.module, m.tests, m.result.is_some())).collect();
    Ok((view.projects, modules))
}
