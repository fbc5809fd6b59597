//! `POST /evaluation`, `GET /evaluation` and `GET /evaluation/{id}`.

use std::collections::HashMap;
use std::path::Path;

use actix::Addr;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::auth::Viewer;
use super::cluster::{self, Scope};
use super::upload::{self, Upload};
use super::{ApiError, AppState, ErrorBody};
use crate::evaluation::admission::Ticket;
use crate::evaluation::intake::suite::Suite;
use crate::evaluation::intake::{self, IntakeError, UnpackLimits};
use crate::evaluation::model::{EvaluationStatus, Event, EventKind};
use crate::evaluation::registry::CancelEvaluation;
use crate::evaluation::registry::{CancelReservation, Registry, Reserve, StartEvaluation};
use crate::evaluation::rules::Rules;
use crate::evaluation::worker::Forget;
use crate::evaluation::workspace;
use crate::evaluation::{gradebook, report};
use crate::peer::model::{CancelRequest, RemoveEvaluation};
use crate::peer::routes::{self, Removed};
use crate::peer::{PeerClient, Peers};
use crate::store::{
    CreateEvaluation, EvaluationRecord, EvaluationView, GetEvaluation, GetEvents, ListEvaluations, RecordEvent,
    RemoveFinished, Source,
};

/// The JSON form of a submission: git repositories and an optional token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GitSubmission {
    projects: Vec<String>,
    #[serde(default)]
    auth_token: Option<String>,
    /// A reference suite's git url.
    #[serde(default)]
    tests: Option<String>,
}

/// What a submission's content type says its body holds.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Multipart,
    Zip,
    Git,
}

/// A place in this node's admission, held while a submission is received
/// and recorded; given back when dropped unredeemed — the submission was
/// refused, failed, or its client went away.
struct Place {
    ticket: Option<Ticket>,
    registry: Addr<Registry>,
}

impl Place {
    /// Asks the registry for a place; a full node answers 503.
    async fn reserve(state: &AppState) -> Result<Self, ApiError> {
        let answer = state.registry.send(Reserve).await.map_err(|e| ApiError::internal("registry unreachable", e))?;
        match answer {
            Ok(ticket) => Ok(Self { ticket: Some(ticket), registry: state.registry.clone() }),
            Err(full) => {
                log::info!("submission refused: {full}");
                Err(ApiError::Busy { reason: full.to_string(), retry_after_s: state.config.admission.retry_after_s })
            }
        }
    }

    /// Hands the place over to the accepted evaluation.
    fn redeem(mut self) -> Ticket {
        self.ticket.take().expect("a place is redeemed once, by value, and given back only on drop")
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.registry.do_send(CancelReservation(ticket));
        }
    }
}

#[utoipa::path(post, path = "/evaluation", tag = "evaluations",
    request_body(description = "A zip of projects: multipart (`file`, and a reference suite as `tests`), or the raw zip \
        (application/zip); or JSON `{\"projects\": [git urls], \"auth_token\", \"tests\": git url}`",
        content(("multipart/form-data"), ("application/zip"), ("application/json"))),
    responses(
        (status = 202, description = "Accepted: `{\"id\", \"status\", ...}`", body = Object),
        (status = 400, description = "Not a submission", body = ErrorBody),
        (status = 413, description = "Past the intake limits", body = ErrorBody),
        (status = 503, description = "No room for another evaluation (Retry-After)", body = ErrorBody)))]
pub async fn submit(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mime = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let kind = match mime.as_str() {
        "multipart/form-data" => Kind::Multipart,
        "application/zip" | "application/x-zip-compressed" | "application/octet-stream" => Kind::Zip,
        "application/json" => Kind::Git,
        other => return Err(ApiError::UnsupportedMediaType(other.to_owned())),
    };
    let intake_cfg = &state.config.intake;
    let limit = if kind == Kind::Git { intake_cfg.max_json_bytes } else { intake_cfg.max_upload_bytes };
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    // Before a byte of the body is read or written: a full node refuses with
    // nothing to undo, and two submissions at the bound cannot both pass.
    let place = Place::reserve(&state).await?;
    let id = Uuid::new_v4();
    let (record, token) = match kind {
        Kind::Multipart => {
            let form = upload::multipart(&req, payload, &state.uploads_dir, limit).await?;
            (accept_zip(id, form.file, form.tests, &state).await?, None)
        }
        Kind::Zip => {
            let upload = upload::raw(payload, &state.uploads_dir, limit).await?;
            (accept_zip(id, upload, None, &state).await?, None)
        }
        Kind::Git => accept_git(id, upload::json_body(payload, limit).await?, &state)?,
    };
    let created = state.store.send(CreateEvaluation(record.clone())).await;
    if let Err(e) = created.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
        let _ = workspace::remove(&state.evaluations_dir, id).await;
        return Err(ApiError::internal(&format!("evaluation {id}: recording it"), e));
    }
    log::info!("evaluation {id}: accepted ({})", describe(&record.source));
    let submitted = Event {
        lamport: state.clock.tick(),
        node: state.node.clone(),
        kind: EventKind::Submitted,
        detail: describe(&record.source),
    };
    state.store.do_send(RecordEvent { id, event: submitted });
    state.registry.do_send(StartEvaluation { record, token, ticket: place.redeem() });
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/evaluation/{id}")))
        .json(json!({ "id": id })))
}

/// Unpacks the upload, and the reference suite if one came, into the
/// evaluation's workspace, or leaves nothing.
async fn accept_zip(
    id: Uuid,
    upload: Upload,
    suite: Option<Upload>,
    state: &AppState,
) -> Result<EvaluationRecord, ApiError> {
    let name = upload.name.clone().unwrap_or_else(|| "project".to_owned());
    let evaluations = state.evaluations_dir.clone();
    let limits = UnpackLimits {
        max_entries: state.config.intake.max_entries,
        max_unpacked_bytes: state.config.intake.max_unpacked_bytes,
    };
    let fallback = name.clone();
    let sha = upload.sha256.clone();
    web::block(move || {
        let suite = suite.as_ref().map(|s| &*s.path);
        unpack_into_workspace(&upload.path, suite, &evaluations, id, &limits, &fallback)
    })
    .await
    .map_err(|e| ApiError::internal("unpacking thread", e))??;
    Ok(new_record(id, Source::Zip { name }, &state.node, Some(sha), true))
}

/// Unpacks into hidden folders and renames them into place only when the
/// archives are sound and hold tests, so that a refused one leaves nothing.
/// The suite is laid over the projects later, by their supervisor.
fn unpack_into_workspace(
    archive: &Path,
    suite: Option<&Path>,
    evaluations: &Path,
    id: Uuid,
    limits: &UnpackLimits,
    fallback_name: &str,
) -> Result<(), ApiError> {
    let partial = evaluations.join(format!(".{id}.partial"));
    let suite_partial = evaluations.join(format!(".{id}.suite.partial"));
    let workspace = evaluations.join(id.to_string());
    let result = (|| {
        let creating = |e| ApiError::internal("creating a workspace", e);
        std::fs::create_dir_all(&partial).map_err(creating)?;
        intake::unpack(archive, &partial, limits).map_err(intake_error)?;
        let projects = match suite {
            Some(_) => intake::discover::discover_for_suite(&partial, fallback_name),
            None => intake::discover(&partial, fallback_name),
        };
        let projects = projects.map_err(|e| ApiError::internal("reading a workspace", e))?;
        if projects.is_empty() {
            return Err(ApiError::BadRequest("no Python project with tests found in the archive".into()));
        }
        if suite.is_none() && !projects.iter().any(|p| p.has_tests) {
            return Err(ApiError::BadRequest("no tests found in the archive (test_*.py or *_test.py)".into()));
        }
        let names: Vec<&str> = projects.iter().map(|p| p.name.as_str()).collect();
        intake::students::labels(&partial, &names).map_err(intake_error)?;
        let Some(suite) = suite else {
            for project in &projects {
                let refused = |e| ApiError::BadRequest(format!("project {:?}: {e}", project.name));
                Rules::read(&project.root).map_err(refused)?;
            }
            return std::fs::rename(&partial, &workspace).map_err(creating);
        };
        // A project's own rules give way to the suite's.
        std::fs::create_dir_all(&suite_partial).map_err(creating)?;
        intake::unpack(suite, &suite_partial, limits).map_err(|e| suite_error(intake_error(e)))?;
        let laid = Suite::load(&suite_partial).map_err(intake_error)?;
        laid.fits(projects.len(), limits.max_unpacked_bytes).map_err(|e| ApiError::TooLarge(e.to_string()))?;
        Rules::read(&suite_partial).map_err(|e| suite_error(ApiError::BadRequest(e.to_string())))?;
        std::fs::rename(&suite_partial, workspace::suite_dir(&workspace)).map_err(creating)?;
        std::fs::rename(&partial, &workspace).map_err(creating)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&partial);
        let _ = std::fs::remove_dir_all(&suite_partial);
        let _ = std::fs::remove_dir_all(workspace::suite_dir(&workspace));
    }
    result
}

/// Names the reference suite in an error about its archive.
fn suite_error(e: ApiError) -> ApiError {
    match e {
        ApiError::BadRequest(m) => ApiError::BadRequest(format!("reference suite: {m}")),
        ApiError::TooLarge(m) => ApiError::TooLarge(format!("reference suite: {m}")),
        e => e,
    }
}

fn intake_error(e: IntakeError) -> ApiError {
    match e {
        IntakeError::TooLarge { .. } | IntakeError::TooManyEntries { .. } => ApiError::TooLarge(e.to_string()),
        e if e.is_client_error() => ApiError::BadRequest(e.to_string()),
        e => ApiError::internal("unpacking an archive", e),
    }
}

fn accept_git(id: Uuid, body: web::BytesMut, state: &AppState) -> Result<(EvaluationRecord, Option<String>), ApiError> {
    let submission: GitSubmission =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    let intake_cfg = &state.config.intake;
    if submission.projects.is_empty() {
        return Err(ApiError::BadRequest("projects is empty: give at least one git url".into()));
    }
    if submission.projects.len() > intake_cfg.max_repositories {
        return Err(ApiError::BadRequest(format!(
            "{} repositories, more than the limit of {}",
            submission.projects.len(),
            intake_cfg.max_repositories
        )));
    }
    for url in &submission.projects {
        intake::validate_url(url, &intake_cfg.git_schemes).map_err(intake_error)?;
    }
    if let Some(url) = &submission.tests {
        intake::validate_url(url, &intake_cfg.git_schemes).map_err(|e| suite_error(intake_error(e)))?;
    }
    let token = submission.auth_token.filter(|t| !t.is_empty());
    let source = Source::Git { repositories: submission.projects, tests: submission.tests };
    let record = new_record(id, source, &state.node, None, false);
    Ok((record, token))
}

fn new_record(id: Uuid, source: Source, node: &str, sha: Option<String>, ready: bool) -> EvaluationRecord {
    EvaluationRecord {
        id,
        status: EvaluationStatus::Queued,
        source,
        supervisor: node.to_owned(),
        epoch: 0,
        input_sha256: sha,
        input_ready: ready,
        submitted_at: Utc::now(),
        started_at: None,
        finished_at: None,
        error: None,
    }
}

fn describe(source: &Source) -> String {
    match source {
        Source::Zip { name } => format!("zip {name}"),
        Source::Git { repositories, tests: None } => format!("{} git repositories", repositories.len()),
        Source::Git { repositories, tests: Some(_) } => {
            format!("{} git repositories and a reference suite", repositories.len())
        }
    }
}

/// `GET /evaluation`'s query: the scope, and a page of the evaluations of
/// one status.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    scope: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
    after: Option<String>,
}

/// The most lines one page of `GET /evaluation` may ask for.
pub const MAX_PAGE: usize = 1000;

#[utoipa::path(get, path = "/evaluation", tag = "evaluations", params(ListQuery),
    responses((status = 200, description = "`{\"evaluations\": [...], \"next\"}`, oldest first", body = Object),
        (status = 400, description = "A bad query", body = ErrorBody)))]
pub async fn list(
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
    peers: web::Data<PeerClient>,
) -> Result<HttpResponse, ApiError> {
    let scope = Scope { scope: query.scope.clone(), detail: None };
    let status = match query.status.as_deref() {
        None => None,
        Some(s) => Some(EvaluationStatus::parse(s).ok_or_else(|| {
            let known: Vec<&str> = EvaluationStatus::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::BadRequest(format!("unknown status {s:?}: one of {}", known.join(", ")))
        })?),
    };
    let limit = match query.limit {
        Some(n) if n == 0 || n > MAX_PAGE => {
            return Err(ApiError::BadRequest(format!("limit {n}: from 1 to {MAX_PAGE}")));
        }
        limit => limit,
    };
    let mut list = summaries(&state, &peers, scope.local()?).await?;
    if let Some(after) = &query.after {
        let cursor = Uuid::parse_str(after)
            .map_err(|_| ApiError::BadRequest(format!("after {after:?}: not an evaluation id")))?
            .to_string();
        let at = list
            .iter()
            .position(|e| e["id"].as_str() == Some(cursor.as_str()))
            .ok_or_else(|| ApiError::BadRequest(format!("after {after:?}: no such evaluation in the list")))?;
        list.drain(..=at);
    }
    if let Some(status) = status {
        list.retain(|e| e["status"].as_str() == Some(status.as_str()));
    }
    let next = match limit {
        Some(n) if list.len() > n => {
            list.truncate(n);
            list.last().map(|e| e["id"].clone())
        }
        _ => None,
    };
    Ok(HttpResponse::Ok().json(json!({ "evaluations": list, "next": next })))
}

/// One line per evaluation, oldest first (by submission, then id): this
/// node's own, or with `local` false every live node's, where the most
/// advanced of the copies that replicas hold stands for each evaluation.
pub async fn summaries(state: &AppState, peers: &PeerClient, local: bool) -> Result<Vec<Value>, ApiError> {
    let summaries = state
        .store
        .send(ListEvaluations)
        .await
        .map_err(|e| ApiError::internal("store unreachable", e))?
        .map_err(|e| ApiError::internal("listing evaluations", e))?;
    let scale = state.config.grading.grade_scale;
    let mut list: Vec<Value> = summaries.iter().map(|s| report::summary(s, scale)).collect();
    if !local {
        let live = cluster::live_peers(state).await?;
        let mut best: HashMap<String, Value> = HashMap::new();
        let answers = cluster::fan_out::<Value>(peers, &live, "/evaluation?scope=local").await;
        let theirs = answers.iter().filter_map(|(_, a)| a["evaluations"].as_array()).flatten();
        for e in list.drain(..).chain(theirs.cloned()) {
            let id = e["id"].as_str().unwrap_or_default().to_owned();
            if best.get(&id).is_none_or(|kept| progress(&e) > progress(kept)) {
                best.insert(id, e);
            }
        }
        list = best.into_values().collect();
    }
    list.sort_by(|a, b| {
        (a["submitted_at"].as_str(), a["id"].as_str()).cmp(&(b["submitted_at"].as_str(), b["id"].as_str()))
    });
    Ok(list)
}

#[utoipa::path(get, path = "/evaluation/{id}", tag = "evaluations", params(("id" = String, Path), Scope),
    responses((status = 200, description = "The evaluation: `_run_info`, `module_results`, `projects`", body = Object),
        (status = 404, description = "No such evaluation", body = ErrorBody)))]
pub async fn get(
    path: web::Path<String>,
    query: web::Query<Scope>,
    viewer: Viewer,
    state: web::Data<AppState>,
    peers: web::Data<PeerClient>,
) -> Result<HttpResponse, ApiError> {
    let detail = match query.detail.as_deref() {
        None => false,
        Some("tests") => true,
        Some(other) => return Err(ApiError::BadRequest(format!("unknown detail {other:?}: the only one is tests"))),
    };
    let answer = answer(&path, query.local()?, detail, viewer, &state, &peers).await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// `GET /evaluation/{id}/grades.csv`: the gradebook, from any node.
#[utoipa::path(get, path = "/evaluation/{id}/grades.csv", tag = "evaluations", params(("id" = String, Path)),
    responses((status = 200, description = "The gradebook, a project a row", content_type = "text/csv", body = String),
        (status = 404, description = "No such evaluation", body = ErrorBody)))]
pub async fn grades_csv(
    path: web::Path<String>,
    state: web::Data<AppState>,
    peers: web::Data<PeerClient>,
) -> Result<HttpResponse, ApiError> {
    let answer = answer(&path, false, false, Viewer::Teacher, &state, &peers).await?;
    Ok(attachment(gradebook::csv(&answer), "text/csv; charset=utf-8", &format!("evaluation-{path}.csv")))
}

/// `GET /evaluation/{id}/junit.xml`: every module's tests as JUnit XML, from
/// any node.
#[utoipa::path(get, path = "/evaluation/{id}/junit.xml", tag = "evaluations", params(("id" = String, Path)),
    responses((status = 200, description = "A testsuite per project and module", content_type = "application/xml",
        body = String), (status = 404, description = "No such evaluation", body = ErrorBody)))]
pub async fn junit_xml(
    path: web::Path<String>,
    viewer: Viewer,
    state: web::Data<AppState>,
    peers: web::Data<PeerClient>,
) -> Result<HttpResponse, ApiError> {
    let answer = answer(&path, false, true, viewer, &state, &peers).await?;
    Ok(attachment(gradebook::junit(&answer), "application/xml", &format!("evaluation-{path}-junit.xml")))
}

/// `DELETE /evaluation/{id}`: cancels an evaluation that is queued or runs
/// (its supervisor closes it as `cancelled`); removes a finished one, and
/// all that is stored of it, from every live node that holds a copy. A
/// teacher's.
#[utoipa::path(delete, path = "/evaluation/{id}", tag = "evaluations", params(("id" = String, Path)),
    responses((status = 202, description = "Cancelled", body = Object),
        (status = 200, description = "Removed: `{\"id\", \"removed_from\"}`", body = Object),
        (status = 403, description = "A student's token", body = ErrorBody),
        (status = 404, description = "No such evaluation", body = ErrorBody),
        (status = 503, description = "Its supervisor does not answer", body = ErrorBody)))]
pub async fn remove(
    path: web::Path<String>,
    viewer: Viewer,
    state: web::Data<AppState>,
    peers: web::Data<PeerClient>,
    typed: web::Data<Peers>,
) -> Result<HttpResponse, ApiError> {
    if viewer == Viewer::Student {
        return Err(ApiError::Forbidden("a student token cannot remove an evaluation".into()));
    }
    let answer = answer(&path, false, false, Viewer::Teacher, &state, &peers).await?;
    let id = evaluation_id(&path)?;
    if !progress(&answer).0 {
        return cancel(id, answer["supervisor"].as_str().unwrap_or_default(), &state, &typed).await;
    }
    let mut removed_from = Vec::new();
    if remove_here(&state, id).await? {
        removed_from.push(state.node.clone());
    }
    let live = cluster::live_peers(&state).await?;
    let asks = live.iter().map(|peer| {
        let ask = typed.call::<routes::EvaluationRemove>(peer, &RemoveEvaluation { evaluation: id });
        async move { (peer.clone(), ask.await) }
    });
    for (peer, said) in futures_util::future::join_all(asks).await {
        match said {
            Ok(Removed { removed: true, .. }) => removed_from.push(peer),
            Ok(_) => {}
            Err(e) => log::warn!("evaluation {id}: {peer} not told to remove it: {e}"),
        }
    }
    removed_from.sort();
    log::info!("evaluation {id}: removed from {}", removed_from.join(", "));
    Ok(HttpResponse::Ok().json(json!({ "id": id, "removed_from": removed_from })))
}

/// Asks the evaluation's supervisor to cancel it: `202` once it has taken
/// the request, the evaluation closing as `cancelled` on every node.
async fn cancel(id: Uuid, supervisor: &str, state: &AppState, peers: &Peers) -> Result<HttpResponse, ApiError> {
    let taken = if supervisor == state.node {
        state.registry.send(CancelEvaluation(id)).await.map_err(|e| ApiError::internal("registry unreachable", e))?
    } else {
        let said = peers.call::<routes::EvaluationCancel>(supervisor, &CancelRequest { evaluation: id }).await;
        said.is_ok_and(|c| c.cancelled)
    };
    if !taken {
        return Err(ApiError::Unavailable(format!(
            "evaluation {id}: its supervisor {supervisor} did not take the cancellation (it may be changing hands): try again"
        )));
    }
    log::info!("evaluation {id}: cancelled, through its supervisor {supervisor}");
    Ok(HttpResponse::Accepted().json(json!({ "id": id, "status": "cancelled" })))
}

/// Removes a finished evaluation from this node: its rows, and the files
/// that are still here of it (a worker's copy of its projects; the
/// workspace and the suite, which its supervisor removes as it closes).
/// Answers whether it was here.
pub async fn remove_here(state: &AppState, id: Uuid) -> Result<bool, ApiError> {
    let removed = state
        .store
        .send(RemoveFinished(id))
        .await
        .map_err(|e| ApiError::internal("store unreachable", e))?
        .map_err(|e| ApiError::internal(&format!("evaluation {id}: removing it"), e))?;
    if let Err(e) = workspace::remove(&state.evaluations_dir, id).await {
        log::warn!("evaluation {id}: cannot remove its workspace: {e}");
    }
    state.worker.do_send(Forget(id));
    Ok(removed)
}

fn attachment(body: String, content_type: &str, file_name: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file_name}\"")))
        .body(body)
}

/// The answer of `GET /evaluation/{raw}`: this node's copy when it holds the
/// evaluation (the supervisor's while it runs), else the best of the live
/// peers' unless `local`; for a student, without the tests and output of
/// hidden modules.
async fn answer(
    raw: &str,
    local: bool,
    detail: bool,
    viewer: Viewer,
    state: &AppState,
    peers: &PeerClient,
) -> Result<Value, ApiError> {
    let mut answer = any_copy(raw, local, detail, state, peers).await?;
    if viewer == Viewer::Student {
        let projects = answer["module_results"].as_object_mut().into_iter().flat_map(|p| p.values_mut());
        for module in projects.filter_map(Value::as_object_mut).flat_map(|modules| modules.values_mut()) {
            if let Some(fields) = module.as_object_mut().filter(|m| m.get("hidden") == Some(&Value::Bool(true))) {
                fields.remove("tests");
                fields.remove("output");
            }
        }
    }
    Ok(answer)
}

async fn any_copy(
    raw: &str,
    local: bool,
    detail: bool,
    state: &AppState,
    peers: &PeerClient,
) -> Result<Value, ApiError> {
    let id = evaluation_id(raw)?;
    let view = stored(state, id, detail).await?;
    let detail_query = if detail { "&detail=tests" } else { "" };
    let path = format!("/evaluation/{id}?scope=local{detail_query}");
    if let Some(view) = view {
        let report = report::evaluation(&view, state.config.grading.grade_scale, Utc::now(), detail);
        return Ok(fresher(state, peers, local, &view.record, &path, report).await);
    }
    if local {
        return Err(unknown(raw));
    }
    from_peers(state, peers, &path, raw).await
}

/// This node's copy of evaluation `id`, with every test case if `detail`.
pub(super) async fn stored(state: &AppState, id: Uuid, detail: bool) -> Result<Option<EvaluationView>, ApiError> {
    state
        .store
        .send(GetEvaluation { id, with_tests: detail })
        .await
        .map_err(|e| ApiError::internal("store unreachable", e))?
        .map_err(|e| ApiError::internal(&format!("evaluation {id}: reading it"), e))
}

/// A running evaluation's copy on a replica lags its supervisor's by a
/// replication round: the supervisor's answer is fresher while it answers.
async fn fresher(
    state: &AppState,
    peers: &PeerClient,
    local: bool,
    record: &EvaluationRecord,
    path: &str,
    mine: Value,
) -> Value {
    if local || record.status.is_finished() || record.supervisor == state.node {
        return mine;
    }
    let theirs = cluster::fan_out::<Value>(peers, std::slice::from_ref(&record.supervisor), path).await;
    theirs.into_iter().next().map_or(mine, |(_, v)| v)
}

/// How far an answer about an evaluation has got: closed first, then the
/// most modules with a result.
fn progress(answer: &Value) -> (bool, u64) {
    let finished =
        answer["status"].as_str().and_then(EvaluationStatus::parse).is_some_and(EvaluationStatus::is_finished);
    (finished, answer["_run_info"]["modules_done"].as_u64().unwrap_or(0))
}

/// `GET /evaluation/{id}/events`: the evaluation's log in causal order, from
/// the node that holds it.
#[utoipa::path(get, path = "/evaluation/{id}/events", tag = "evaluations", params(("id" = String, Path), Scope),
    responses((status = 200, description = "`{\"id\", \"events\": [...]}` in causal order", body = Object),
        (status = 404, description = "No such evaluation", body = ErrorBody)))]
pub async fn events(
    path: web::Path<String>,
    query: web::Query<Scope>,
    state: web::Data<AppState>,
    peers: web::Data<PeerClient>,
) -> Result<HttpResponse, ApiError> {
    let raw = path.into_inner();
    let id = evaluation_id(&raw)?;
    let events = state
        .store
        .send(GetEvents(id))
        .await
        .map_err(|e| ApiError::internal("store unreachable", e))?
        .map_err(|e| ApiError::internal(&format!("evaluation {id}: reading its events"), e))?;
    let local = query.local()?;
    let path = format!("/evaluation/{id}/events?scope=local");
    if let Some(events) = events {
        let mine = json!({ "id": id, "events": events });
        let record = state.store.send(GetEvaluation { id, with_tests: false }).await;
        let Ok(Ok(Some(view))) = record else {
            return Ok(HttpResponse::Ok().json(mine));
        };
        return Ok(HttpResponse::Ok().json(fresher(&state, &peers, local, &view.record, &path, mine).await));
    }
    if local {
        return Err(unknown(&raw));
    }
    from_peers(&state, &peers, &path, &raw).await.map(|v| HttpResponse::Ok().json(v))
}

/// A malformed id is as unknown as a missing one.
pub(super) fn evaluation_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| unknown(raw))
}

pub(super) fn unknown(raw: &str) -> ApiError {
    ApiError::NotFound(format!("no evaluation {raw:?}"))
}

/// The evaluation is not held here: of the live peers that hold it, the
/// supervisor answers, or else the copy that got furthest.
async fn from_peers(state: &AppState, peers: &PeerClient, path: &str, raw: &str) -> Result<Value, ApiError> {
    let live = cluster::live_peers(state).await?;
    let answers = cluster::fan_out::<Value>(peers, &live, path).await;
    let best = answers.into_iter().max_by_key(|(node, v)| {
        let supervising = v["supervisor"].as_str() == Some(node.as_str());
        (progress(v).0, supervising, progress(v).1)
    });
    best.map(|(_, v)| v).ok_or_else(|| unknown(raw))
}
