//! The workspace of an evaluation on its supervisor's node: cloning git
//! projects, finding the projects, packing each into a blob, and reading
//! collection errors. Plain helpers of the `EvaluationSupervisor`.

use std::path::{Path, PathBuf};

use super::blobs;
use super::intake::suite::Suite;
use super::intake::{self, discover, git, students, CloneLimits, UnpackLimits};
use super::rules::Rules;
use crate::executor::collect::Collected;
use crate::store::{ProjectRow, Source};

/// Clones every repository into the workspace; a clone that fails, or runs
/// past its limits, becomes a failed project carrying the reason.
pub async fn clone_all(
    repositories: &[String],
    token: Option<&str>,
    workspace: &std::path::Path,
    schemes: &[String],
    limits: &CloneLimits,
) -> Vec<ProjectRow> {
    // A half-done clone from before a crash would make git refuse the folder.
    let _ = tokio::fs::remove_dir_all(workspace).await;
    let mut failed = Vec::new();
    if let Err(e) = tokio::fs::create_dir_all(workspace).await {
        log::error!("cannot create workspace {}: {e}", workspace.display());
    }
    for (url, name) in repositories.iter().zip(git::repo_names(repositories)) {
        let dest = workspace.join(&name);
        if let Err(e) = git::clone(url, &dest, token, schemes, limits).await {
            let _ = tokio::fs::remove_dir_all(&dest).await;
            failed.push(ProjectRow {
                collected: true,
                error: Some(e.to_string()),
                ..ProjectRow::found(name, String::new(), None)
            });
        }
    }
    failed
}

/// Where an evaluation's reference suite waits, beside its workspace, to be
/// laid over its projects: outside them, so that it is never one.
pub fn suite_dir(workspace: &Path) -> PathBuf {
    let mut dir = workspace.as_os_str().to_owned();
    dir.push(".suite");
    PathBuf::from(dir)
}

/// Removes an evaluation's workspace and its suite, if they are there.
pub async fn remove(evaluations_dir: &Path, id: uuid::Uuid) -> std::io::Result<()> {
    let workspace = evaluations_dir.join(id.to_string());
    let _ = tokio::fs::remove_dir_all(suite_dir(&workspace)).await;
    match tokio::fs::remove_dir_all(&workspace).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The projects in the workspace: for git, each repository's projects named
/// after the repository; with a reference suite, laid over each, if laying
/// it over all of them stays within `max_bytes`.
pub fn find_projects(
    workspace: &std::path::Path,
    source: &Source,
    suite: Option<&Suite>,
    max_bytes: u64,
) -> Vec<ProjectRow> {
    let relative =
        |root: &std::path::Path| root.strip_prefix(workspace).unwrap_or(root).to_string_lossy().replace('\\', "/");
    let row = |name: String, root: &std::path::Path| ProjectRow::found(name, relative(root), None);
    let mut rows = Vec::new();
    let discover = |dir: &Path, name: &str| match suite {
        Some(_) => discover::discover_for_suite(dir, name),
        None => discover::discover(dir, name),
    };
    match source {
        Source::Zip { name } => match discover(workspace, name) {
            Ok(projects) => {
                let names: Vec<&str> = projects.iter().map(|p| p.name.as_str()).collect();
                // Checked when the archive was accepted: a failure now is the
                // node's own, and the projects are still graded, by name.
                let mut labels = students::labels(workspace, &names).unwrap_or_else(|e| {
                    log::error!("workspace {}: {e}", workspace.display());
                    Default::default()
                });
                rows.extend(projects.into_iter().map(|p| {
                    let label = labels.remove(&p.name);
                    ProjectRow::found(p.name, relative(&p.root), label)
                }));
            }
            Err(e) => log::error!("cannot read workspace {}: {e}", workspace.display()),
        },
        Source::Git { repositories, .. } => {
            for repo in git::repo_names(repositories) {
                let dir = workspace.join(&repo);
                if !dir.is_dir() {
                    continue;
                }
                match discover(&dir, &repo) {
                    Ok(projects) if projects.is_empty() => rows.push(ProjectRow {
                        collected: true,
                        error: Some("no Python project with tests in this repository".into()),
                        ..ProjectRow::found(repo.clone(), repo.clone(), None)
                    }),
                    // Without a marker file the repository itself is the project,
                    // whatever its top folder holds.
                    Ok(projects) if !projects.iter().any(|p| has_marker(&p.root)) => {
                        rows.push(row(repo.clone(), &dir));
                    }
                    Ok(projects) => rows.extend(projects.into_iter().map(|p| {
                        let name = if p.name == repo { repo.clone() } else { format!("{repo}/{}", p.name) };
                        row(name, &p.root)
                    })),
                    Err(e) => log::error!("cannot read clone {}: {e}", dir.display()),
                }
            }
        }
    }
    // A suite too large for so many projects fails them all; one that
    // cannot be laid over a project, or rules that cannot be applied, fail
    // that project, before anything runs.
    let too_large = suite.and_then(|s| s.fits(rows.len(), max_bytes).err()).map(|e| e.to_string());
    for row in rows.iter_mut().filter(|r| r.error.is_none()) {
        if let Some(suite) = suite {
            let laid = match &too_large {
                Some(reason) => Err(reason.clone()),
                None => suite.lay_over(&workspace.join(&row.root)).map_err(|e| {
                    log::warn!("workspace {}: laying the reference suite over {}: {e}", workspace.display(), row.name);
                    match e.is_client_error() {
                        true => e.to_string(),
                        false => "the reference suite could not be laid over this project".to_owned(),
                    }
                }),
            };
            if let Err(reason) = laid {
                row.error = Some(reason);
                row.collected = true;
                continue;
            }
            row.suite = Some(suite.modules());
        }
        match Rules::read(&workspace.join(&row.root)) {
            Ok(rules) => row.rules = rules,
            Err(e) => {
                row.error = Some(e.to_string());
                row.collected = true;
            }
        }
    }
    rows
}

fn has_marker(root: &Path) -> bool {
    discover::MARKERS.iter().any(|m| root.join(m).is_file())
}

/// The collection errors that stand for a module of their own: an error in a
/// class of a collected module is reported again when that module runs, so it
/// is left to the run; a folder whose conftest failed, or the whole session,
/// becomes an errored pseudo-module named after it.
pub fn collection_errors(collected: &Collected) -> Vec<(String, String)> {
    collected
        .errors
        .iter()
        .filter(|(key, _)| {
            let path = key.split("::").next().unwrap_or_default();
            !(key.contains("::") && collected.modules.contains_key(path))
        })
        .map(|(key, text)| {
            let module = match key.split("::").next().unwrap_or_default() {
                "" => SESSION_MODULE.to_owned(),
                path => path.to_owned(),
            };
            (module, text.clone())
        })
        .collect()
}

/// The name under which a collection error charged to the whole session is reported.
pub const SESSION_MODULE: &str = "(session)";

/// The folder of project `root` (relative to the workspace, "" for itself).
pub fn project_dir(workspace: &Path, root: &str) -> std::path::PathBuf {
    if root.is_empty() {
        workspace.to_owned()
    } else {
        workspace.join(root)
    }
}

/// Packs every project that can run into a blob; a project whose blob is
/// already there keeps it. A project that cannot be packed fails.
pub fn pack_all(workspace: &Path, rows: &mut [ProjectRow], blobs_dir: &Path) {
    for row in rows.iter_mut().filter(|r| r.error.is_none()) {
        if row.blob.as_deref().is_some_and(|sha| blobs::path(blobs_dir, sha).exists()) {
            continue;
        }
        match blobs::pack(&project_dir(workspace, &row.root), blobs_dir) {
            Ok(sha) => row.blob = Some(sha),
            Err(e) => {
                row.error = Some(format!("cannot pack the project: {e}"));
                row.collected = true;
            }
        }
    }
}

/// Unpacks into a fresh folder beside `dest` and renames it into place, so
/// that two tasks of one project arriving together cannot see half a project.
pub fn unpack_once(blob: &Path, dest: &Path, limits: &UnpackLimits) -> Result<(), String> {
    if dest.exists() {
        return Ok(());
    }
    let parent = dest.parent().ok_or("project folder has no parent")?;
    std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    let partial = tempfile::Builder::new()
        .prefix(".partial-")
        .tempdir_in(parent)
        .map_err(|e| format!("creating a folder in {}: {e}", parent.display()))?;
    intake::unpack(blob, partial.path(), limits).map_err(|e| format!("unpacking blob: {e}"))?;
    match std::fs::rename(partial.path(), dest) {
        Ok(()) => Ok(()),
        Err(_) if dest.exists() => Ok(()),
        Err(e) => Err(format!("placing {}: {e}", dest.display())),
    }
}

/// Unpacks, from its blob, every project whose folder is missing: an adopted
/// evaluation arrives as blobs. A project with neither is left to `pack_all`,
/// which fails it.
pub fn unpack_missing(workspace: &Path, rows: &mut [ProjectRow], blobs_dir: &Path, limits: &UnpackLimits) {
    for row in rows.iter_mut().filter(|r| r.error.is_none()) {
        let dir = project_dir(workspace, &row.root);
        let Some(sha) = row.blob.as_deref() else { continue };
        let blob = blobs::path(blobs_dir, sha);
        if dir.exists() || !blob.exists() {
            continue;
        }
        if let Err(e) = unpack_once(&blob, &dir, limits) {
            row.error = Some(format!("cannot unpack the project: {e}"));
            row.collected = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn class_errors_are_left_to_the_run_and_session_errors_get_a_name() {
        let collected = Collected {
            modules: BTreeMap::from([("tests/test_a.py".into(), 2)]),
            errors: BTreeMap::from([
                ("tests/test_a.py::TestBad".into(), "class".into()),
                ("tests/sub".into(), "conftest".into()),
                ("".into(), "session".into()),
            ]),
            env: None,
        };
        assert_eq!(
            collection_errors(&collected),
            vec![(SESSION_MODULE.to_owned(), "session".to_owned()), ("tests/sub".to_owned(), "conftest".to_owned())]
        );
    }
}
