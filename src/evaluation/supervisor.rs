//! The `EvaluationSupervisor` actor: one per evaluation, a child of the
//! `Registry`. It brings the workspace up (cloning git projects), finds the
//! projects, hands collection and test tasks to the executor, writes each
//! answer to the store before it counts it, and closes the evaluation.
//!
//! Takes `JobFinished` from the executor; sends `Submit` to the executor,
//! writes to the `Store`, and tells the registry `EvaluationFinished`. If it
//! dies, nothing stored is lost: the evaluation stays `running` in the store
//! and the next start of the node resumes it from its stored results.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;
use uuid::Uuid;

use super::intake::{discover, git};
use super::model::{EvaluationStatus, ModuleResult};
use super::plan::{Plan, Task, TaskKind, TimeoutAction};
use crate::executor::collect::Collected;
use crate::executor::{runner, Job, JobFinished, JobKind, JobOutput, Submit};
use crate::store::{
    EvaluationRecord, GetEvaluation, MarkInputReady, ProjectRow, SaveCollected, SaveProjects,
    SaveResult, SetStatus, Source, Store, StoreError,
};

/// Sent to the registry when the supervisor stops.
#[derive(Message)]
#[rtype(result = "()")]
pub struct EvaluationFinished(pub Uuid);

/// What a supervisor needs to know of the node.
#[derive(Debug, Clone)]
pub struct SupervisorSettings {
    pub node: String,
    pub evaluations_dir: PathBuf,
    pub modules_per_task: usize,
    pub module_timeout: Duration,
    pub git_schemes: Vec<String>,
    pub clone_timeout: Duration,
}

pub struct EvaluationSupervisor {
    record: EvaluationRecord,
    /// The git token, kept in memory only until the clones are done.
    token: Option<String>,
    settings: SupervisorSettings,
    plan: Plan,
    /// Each project's root, relative to the workspace.
    roots: BTreeMap<String, String>,
    store: Addr<Store>,
    /// The executor of this node, which runs every task.
    executor: Recipient<Submit>,
    /// The registry, told when this evaluation closes.
    on_finished: Recipient<EvaluationFinished>,
}

/// Project rows and module rows as the store holds them at start.
type Loaded = (Vec<ProjectRow>, Vec<(String, String, u32, bool)>);

impl EvaluationSupervisor {
    pub fn new(
        record: EvaluationRecord,
        token: Option<String>,
        settings: SupervisorSettings,
        store: Addr<Store>,
        executor: Recipient<Submit>,
        on_finished: Recipient<EvaluationFinished>,
    ) -> Self {
        let plan = Plan::new(settings.modules_per_task);
        Self {
            record,
            token,
            settings,
            plan,
            roots: BTreeMap::new(),
            store,
            executor,
            on_finished,
        }
    }

    fn workspace(&self) -> PathBuf {
        self.settings
            .evaluations_dir
            .join(self.record.id.to_string())
    }

    /// Clones what is missing, finds the projects, and loads what the store
    /// already knows of them.
    async fn prepare(
        id: Uuid,
        record: EvaluationRecord,
        token: Option<String>,
        workspace: PathBuf,
        settings: SupervisorSettings,
        store: Addr<Store>,
    ) -> Result<Loaded, StoreError> {
        store
            .send(SetStatus {
                id,
                status: EvaluationStatus::Running,
                at: Utc::now(),
                error: None,
            })
            .await??;
        let known = store
            .send(GetEvaluation {
                id,
                with_tests: false,
            })
            .await??;
        let known_projects = known
            .as_ref()
            .map(|v| v.projects.clone())
            .unwrap_or_default();
        if known_projects.is_empty() {
            let mut rows = Vec::new();
            if let Source::Git { repositories } = &record.source {
                if !record.input_ready {
                    rows = clone_all(repositories, token.as_deref(), &workspace, &settings).await;
                }
            }
            rows.extend(find_projects(&workspace, &record.source));
            store.send(SaveProjects { id, projects: rows }).await??;
            store.send(MarkInputReady(id)).await??;
        }
        let view = store
            .send(GetEvaluation {
                id,
                with_tests: false,
            })
            .await??;
        let view = view.ok_or_else(|| StoreError::Corrupt(format!("evaluation {id} vanished")))?;
        let modules = view
            .modules
            .into_iter()
            .map(|m| (m.project, m.module, m.tests, m.result.is_some()))
            .collect();
        Ok((view.projects, modules))
    }

    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        for task in self.plan.next_tasks() {
            self.submit(task, ctx);
        }
        if self.plan.is_complete() {
            self.close(EvaluationStatus::Done, None, ctx);
        }
    }

    fn submit(&self, task: Task, ctx: &mut Context<Self>) {
        let Some(root) = self.project_root(&task.project) else {
            return;
        };
        let kind = match task.kind {
            TaskKind::Collect => JobKind::Collect,
            TaskKind::Run(modules) => JobKind::Run {
                modules,
                timeout: self.settings.module_timeout,
            },
        };
        self.executor.do_send(Submit(Job {
            evaluation: self.record.id,
            task: task.id,
            project: task.project,
            root,
            kind,
            reply_to: ctx.address().recipient(),
        }));
    }

    fn project_root(&self, project: &str) -> Option<PathBuf> {
        self.roots.get(project).map(|rel| {
            if rel.is_empty() {
                self.workspace()
            } else {
                self.workspace().join(rel)
            }
        })
    }

    /// Writes results to the store, then counts the ones it accepted.
    fn save_results(
        &mut self,
        project: String,
        results: Vec<(String, ModuleResult)>,
        ctx: &mut Context<Self>,
    ) {
        let (store, id) = (self.store.clone(), self.record.id);
        let write = async move {
            let mut saved = Vec::new();
            for (module, result) in results {
                if store
                    .send(SaveResult {
                        id,
                        project: project.clone(),
                        module: module.clone(),
                        result,
                    })
                    .await??
                {
                    saved.push((project.clone(), module));
                }
            }
            Ok::<_, StoreError>(saved)
        };
        ctx.wait(write.into_actor(self).map(|saved, act, ctx| match saved {
            Ok(saved) => {
                for (project, module) in saved {
                    act.plan.finish(&project, &module);
                }
                act.dispatch(ctx);
            }
            Err(e) => act.abandon(e, ctx),
        }));
    }

    fn close(&mut self, status: EvaluationStatus, error: Option<String>, ctx: &mut Context<Self>) {
        let (store, id, workspace) = (self.store.clone(), self.record.id, self.workspace());
        let finish = async move {
            store
                .send(SetStatus {
                    id,
                    status,
                    at: Utc::now(),
                    error,
                })
                .await??;
            if let Err(e) = tokio::fs::remove_dir_all(&workspace).await {
                log::warn!(
                    "evaluation {id}: cannot remove workspace {}: {e}",
                    workspace.display()
                );
            }
            Ok::<_, StoreError>(())
        };
        ctx.wait(finish.into_actor(self).map(move |res, act, ctx| {
            match res {
                Ok(()) => log::info!("evaluation {}: {}", act.record.id, status.as_str()),
                Err(e) => log::error!("evaluation {}: cannot record its end: {e}", act.record.id),
            }
            ctx.stop();
        }));
    }

    /// The store failed: stop without recording anything more; the evaluation
    /// stays `running` and resumes when the node starts again.
    fn abandon(&mut self, e: StoreError, ctx: &mut Context<Self>) {
        log::error!(
            "evaluation {}: store failed, supervisor stops: {e}",
            self.record.id
        );
        ctx.stop();
    }
}

/// Clones every repository into the workspace; a clone that fails becomes a
/// failed project carrying git's error.
async fn clone_all(
    repositories: &[String],
    token: Option<&str>,
    workspace: &std::path::Path,
    settings: &SupervisorSettings,
) -> Vec<ProjectRow> {
    // A half-done clone from before a crash would make git refuse the folder.
    let _ = tokio::fs::remove_dir_all(workspace).await;
    let mut failed = Vec::new();
    if let Err(e) = tokio::fs::create_dir_all(workspace).await {
        log::error!("cannot create workspace {}: {e}", workspace.display());
    }
    for (url, name) in repositories.iter().zip(git::repo_names(repositories)) {
        let dest = workspace.join(&name);
        if let Err(e) = git::clone(
            url,
            &dest,
            token,
            &settings.git_schemes,
            settings.clone_timeout,
        )
        .await
        {
            let _ = tokio::fs::remove_dir_all(&dest).await;
            failed.push(ProjectRow {
                name,
                root: String::new(),
                collected: true,
                error: Some(e.to_string()),
            });
        }
    }
    failed
}

/// The projects in the workspace: for git, each repository's projects named
/// after the repository.
fn find_projects(workspace: &std::path::Path, source: &Source) -> Vec<ProjectRow> {
    let row = |name: String, root: &std::path::Path| ProjectRow {
        name,
        root: root
            .strip_prefix(workspace)
            .unwrap_or(root)
            .to_string_lossy()
            .replace('\\', "/"),
        collected: false,
        error: None,
    };
    let mut rows = Vec::new();
    match source {
        Source::Zip { name } => match discover::discover(workspace, name) {
            Ok(projects) => rows.extend(projects.into_iter().map(|p| row(p.name, &p.root))),
            Err(e) => log::error!("cannot read workspace {}: {e}", workspace.display()),
        },
        Source::Git { repositories } => {
            for repo in git::repo_names(repositories) {
                let dir = workspace.join(&repo);
                if !dir.is_dir() {
                    continue;
                }
                match discover::discover(&dir, &repo) {
                    Ok(projects) if projects.is_empty() => rows.push(ProjectRow {
                        name: repo.clone(),
                        root: repo.clone(),
                        collected: true,
                        error: Some("no Python project with tests in this repository".into()),
                    }),
                    // Without a marker file the repository itself is the
                    // project, whatever its top folder holds.
                    Ok(projects) if !projects.iter().any(|p| has_marker(&p.root)) => {
                        rows.push(row(repo.clone(), &dir));
                    }
                    Ok(projects) => rows.extend(projects.into_iter().map(|p| {
                        let name = if p.name == repo {
                            repo.clone()
                        } else {
                            format!("{repo}/{}", p.name)
                        };
                        row(name, &p.root)
                    })),
                    Err(e) => log::error!("cannot read clone {}: {e}", dir.display()),
                }
            }
        }
    }
    rows
}

fn has_marker(root: &std::path::Path) -> bool {
    discover::MARKERS.iter().any(|m| root.join(m).is_file())
}

/// The collection errors that stand for a module of their own: an error in a
/// class of a collected module is reported again when that module runs, so it
/// is left to the run; a folder whose conftest failed, or the whole session,
/// becomes an errored pseudo-module named after it.
fn collection_errors(collected: &Collected) -> Vec<(String, String)> {
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
const SESSION_MODULE: &str = "(session)";

impl Actor for EvaluationSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let prepare = Self::prepare(
            self.record.id,
            self.record.clone(),
            self.token.take(),
            self.workspace(),
            self.settings.clone(),
            self.store.clone(),
        );
        ctx.wait(
            prepare
                .into_actor(self)
                .map(|loaded, act, ctx| match loaded {
                    Ok((projects, modules)) => {
                        for p in &projects {
                            act.roots.insert(p.name.clone(), p.root.clone());
                            act.plan
                                .add_project(&p.name, p.collected, p.error.is_some());
                        }
                        for (project, module, tests, finished) in modules {
                            act.plan.add_module(&project, &module, tests, finished);
                        }
                        act.dispatch(ctx);
                    }
                    Err(e) => act.abandon(e, ctx),
                }),
        );
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.on_finished.do_send(EvaluationFinished(self.record.id));
    }
}

impl Handler<JobFinished> for EvaluationSupervisor {
    type Result = ();

    fn handle(&mut self, msg: JobFinished, ctx: &mut Context<Self>) {
        let node = self.settings.node.clone();
        let project = msg.project;
        match msg.outcome {
            Ok(JobOutput::TimedOut { output }) => match self.plan.timed_out(msg.task) {
                TimeoutAction::Split => self.dispatch(ctx),
                TimeoutAction::Report { project, module } => {
                    let tests = self.plan.tests_in(&project, &module);
                    let result =
                        runner::timeout_result(tests, self.settings.module_timeout, &output, &node);
                    self.save_results(project, vec![(module, result)], ctx);
                }
                TimeoutAction::Ignore => {}
            },
            outcome => {
                let Some(task) = self.plan.close_task(msg.task) else {
                    return;
                };
                match (task.kind, outcome) {
                    (TaskKind::Collect, Ok(JobOutput::Collected(collected))) => {
                        self.collected(project, collected, ctx);
                    }
                    (TaskKind::Collect, Err(error)) => self.project_failed(project, error, ctx),
                    (TaskKind::Run(_), Ok(JobOutput::Ran(results))) => {
                        self.save_results(project, results.into_iter().collect(), ctx);
                    }
                    (TaskKind::Run(modules), Err(error)) => {
                        let results = modules
                            .into_iter()
                            .map(|m| (m, runner::collection_error_result(&error, &node)))
                            .collect();
                        self.save_results(project, results, ctx);
                    }
                    (kind, outcome) => {
                        log::error!(
                            "evaluation {}: task {kind:?} answered with {outcome:?}",
                            self.record.id
                        );
                    }
                }
            }
        }
    }
}

impl EvaluationSupervisor {
    fn collected(&mut self, project: String, collected: Collected, ctx: &mut Context<Self>) {
        let errors = collection_errors(&collected);
        let mut modules: Vec<(String, u32)> = collected.modules.into_iter().collect();
        modules.extend(errors.iter().map(|(module, _)| (module.clone(), 0)));
        if modules.is_empty() {
            return self.project_failed(project, "pytest collected no tests".into(), ctx);
        }
        let node = self.settings.node.clone();
        let errors: Vec<(String, ModuleResult)> = errors
            .into_iter()
            .map(|(module, text)| (module, runner::collection_error_result(&text, &node)))
            .collect();
        let (store, id) = (self.store.clone(), self.record.id);
        let saved_modules = modules.clone();
        let project_for_store = project.clone();
        let write = async move {
            store
                .send(SaveCollected {
                    id,
                    project: project_for_store,
                    modules: saved_modules,
                    error: None,
                })
                .await?
        };
        ctx.wait(write.into_actor(self).map(move |res, act, ctx| match res {
            Ok(()) => {
                act.plan.collected(&project, &modules);
                // Modules that failed to collect get their result now; the
                // wait keeps them from being dispatched before it is stored.
                act.save_results(project, errors, ctx);
            }
            Err(e) => act.abandon(e, ctx),
        }));
    }

    fn project_failed(&mut self, project: String, error: String, ctx: &mut Context<Self>) {
        log::warn!(
            "evaluation {}: project {project} failed: {error}",
            self.record.id
        );
        let (store, id) = (self.store.clone(), self.record.id);
        let p = project.clone();
        let write = async move {
            store
                .send(SaveCollected {
                    id,
                    project: p,
                    modules: Vec::new(),
                    error: Some(error),
                })
                .await?
        };
        ctx.wait(write.into_actor(self).map(move |res, act, ctx| match res {
            Ok(()) => {
                act.plan.project_failed(&project);
                act.dispatch(ctx);
            }
            Err(e) => act.abandon(e, ctx),
        }));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::evaluation::model::{ModuleStatus, Tally};
    use crate::store::ListUnfinished;

    /// Stands in for the executor: keeps every job it is handed.
    #[derive(Default)]
    struct ProbeExecutor {
        jobs: Vec<Job>,
    }

    impl Actor for ProbeExecutor {
        type Context = Context<Self>;
    }

    impl Handler<Submit> for ProbeExecutor {
        type Result = ();
        fn handle(&mut self, Submit(job): Submit, _: &mut Context<Self>) {
            self.jobs.push(job);
        }
    }

    /// Hands over the jobs received so far.
    #[derive(Message)]
    #[rtype(result = "Vec<(u64, String, JobKind, Recipient<JobFinished>)>")]
    struct TakeJobs;

    impl Handler<TakeJobs> for ProbeExecutor {
        type Result = MessageResult<TakeJobs>;
        fn handle(&mut self, _: TakeJobs, _: &mut Context<Self>) -> Self::Result {
            MessageResult(
                self.jobs
                    .drain(..)
                    .map(|j| (j.task, j.project, j.kind, j.reply_to))
                    .collect(),
            )
        }
    }

    /// Stands in for the registry.
    #[derive(Default)]
    struct ProbeRegistry {
        finished: Vec<Uuid>,
    }

    impl Actor for ProbeRegistry {
        type Context = Context<Self>;
    }

    impl Handler<EvaluationFinished> for ProbeRegistry {
        type Result = ();
        fn handle(&mut self, msg: EvaluationFinished, _: &mut Context<Self>) {
            self.finished.push(msg.0);
        }
    }

    #[derive(Message)]
    #[rtype(result = "Vec<Uuid>")]
    struct GetFinished;

    impl Handler<GetFinished> for ProbeRegistry {
        type Result = MessageResult<GetFinished>;
        fn handle(&mut self, _: GetFinished, _: &mut Context<Self>) -> Self::Result {
            MessageResult(self.finished.clone())
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        workspace: PathBuf,
        id: Uuid,
        store: Addr<Store>,
        executor: Addr<ProbeExecutor>,
        registry: Addr<ProbeRegistry>,
        settings: SupervisorSettings,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        let workspace = dir.path().join(id.to_string());
        std::fs::create_dir_all(workspace.join("proj/tests")).unwrap();
        std::fs::write(workspace.join("proj/requirements.txt"), "").unwrap();
        std::fs::write(
            workspace.join("proj/tests/test_a.py"),
            "def test_a(): pass\n",
        )
        .unwrap();
        let store = Store::in_memory().unwrap().start();
        let record = EvaluationRecord {
            id,
            status: EvaluationStatus::Queued,
            source: Source::Zip {
                name: "upload".into(),
            },
            supervisor: "n1".into(),
            input_sha256: None,
            input_ready: true,
            submitted_at: Utc::now(),
            started_at: None,
            finished_at: None,
            error: None,
        };
        store
            .send(crate::store::CreateEvaluation(record))
            .await
            .unwrap()
            .unwrap();
        let settings = SupervisorSettings {
            node: "n1".into(),
            evaluations_dir: dir.path().to_owned(),
            modules_per_task: 1,
            module_timeout: Duration::from_secs(7),
            git_schemes: vec!["file".into()],
            clone_timeout: Duration::from_secs(10),
        };
        Fixture {
            _dir: dir,
            workspace,
            id,
            store,
            executor: ProbeExecutor::default().start(),
            registry: ProbeRegistry::default().start(),
            settings,
        }
    }

    impl Fixture {
        async fn start(&self) -> Addr<EvaluationSupervisor> {
            let record = self
                .store
                .send(GetEvaluation {
                    id: self.id,
                    with_tests: false,
                })
                .await
                .unwrap()
                .unwrap()
                .unwrap()
                .record;
            EvaluationSupervisor::new(
                record,
                None,
                self.settings.clone(),
                self.store.clone(),
                self.executor.clone().recipient(),
                self.registry.clone().recipient(),
            )
            .start()
        }

        /// Waits, by yielding, until the supervisor has handed out `n` jobs.
        async fn jobs(&self, n: usize) -> Vec<(u64, String, JobKind, Recipient<JobFinished>)> {
            let mut jobs = Vec::new();
            for _ in 0..1000 {
                jobs.extend(self.executor.send(TakeJobs).await.unwrap());
                if jobs.len() >= n {
                    break;
                }
                tokio::task::yield_now().await;
            }
            assert_eq!(jobs.len(), n, "jobs handed out");
            jobs
        }

        async fn view(&self) -> crate::store::EvaluationView {
            self.store
                .send(GetEvaluation {
                    id: self.id,
                    with_tests: false,
                })
                .await
                .unwrap()
                .unwrap()
                .unwrap()
        }

        async fn until_finished(&self) {
            for _ in 0..1000 {
                if !self.registry.send(GetFinished).await.unwrap().is_empty() {
                    return;
                }
                tokio::task::yield_now().await;
            }
            panic!("the supervisor did not finish");
        }
    }

    fn done(passed: u32, failed: u32) -> ModuleResult {
        ModuleResult {
            status: ModuleStatus::Done,
            tally: Tally {
                passed,
                failed,
                ..Tally::default()
            },
            duration: 0.1,
            node: "n1".into(),
            output: String::new(),
            tests: Vec::new(),
        }
    }

    fn finished(id: Uuid, task: u64, outcome: Result<JobOutput, String>) -> JobFinished {
        JobFinished {
            evaluation: id,
            task,
            project: "proj".into(),
            outcome,
        }
    }

    #[actix::test]
    async fn collects_runs_each_module_and_closes_the_evaluation() {
        let f = fixture().await;
        let supervisor = f.start().await;
        let jobs = f.jobs(1).await;
        assert_eq!(
            (jobs[0].1.as_str(), &jobs[0].2),
            ("proj", &JobKind::Collect)
        );
        let collected = Collected {
            modules: BTreeMap::from([("tests/test_a.py".into(), 2), ("tests/test_b.py".into(), 1)]),
            errors: BTreeMap::from([("tests/test_c.py".into(), "ImportError".into())]),
        };
        supervisor
            .send(finished(
                f.id,
                jobs[0].0,
                Ok(JobOutput::Collected(collected)),
            ))
            .await
            .unwrap();
        let runs = f.jobs(2).await;
        let timeout = Duration::from_secs(7);
        assert_eq!(
            runs[0].2,
            JobKind::Run {
                modules: vec!["tests/test_a.py".into()],
                timeout
            }
        );
        assert_eq!(
            runs[1].2,
            JobKind::Run {
                modules: vec!["tests/test_b.py".into()],
                timeout
            }
        );

        let a = BTreeMap::from([("tests/test_a.py".to_string(), done(2, 0))]);
        supervisor
            .send(finished(f.id, runs[0].0, Ok(JobOutput::Ran(a.clone()))))
            .await
            .unwrap();
        // A duplicate answer to the same task changes nothing.
        supervisor
            .send(finished(f.id, runs[0].0, Ok(JobOutput::Ran(a))))
            .await
            .unwrap();
        let b = BTreeMap::from([("tests/test_b.py".to_string(), done(0, 1))]);
        supervisor
            .send(finished(f.id, runs[1].0, Ok(JobOutput::Ran(b))))
            .await
            .unwrap();
        f.until_finished().await;

        let view = f.view().await;
        assert_eq!(view.record.status, EvaluationStatus::Done);
        let results: Vec<_> = view
            .modules
            .iter()
            .map(|m| {
                (
                    m.module.as_str(),
                    m.result.as_ref().map(|r| (r.status, r.tally)),
                )
            })
            .collect();
        assert_eq!(
            results,
            vec![
                (
                    "tests/test_a.py",
                    Some((
                        ModuleStatus::Done,
                        Tally {
                            passed: 2,
                            ..Tally::default()
                        }
                    ))
                ),
                (
                    "tests/test_b.py",
                    Some((
                        ModuleStatus::Done,
                        Tally {
                            failed: 1,
                            ..Tally::default()
                        }
                    ))
                ),
                (
                    "tests/test_c.py",
                    Some((
                        ModuleStatus::Error,
                        Tally {
                            errors: 1,
                            ..Tally::default()
                        }
                    ))
                ),
            ]
        );
        assert!(
            !f.workspace.exists(),
            "the workspace is removed when the evaluation closes"
        );
    }

    #[actix::test]
    async fn a_timed_out_module_counts_each_of_its_tests_as_an_error() {
        let f = fixture().await;
        let supervisor = f.start().await;
        let jobs = f.jobs(1).await;
        let collected = Collected {
            modules: BTreeMap::from([("tests/test_a.py".into(), 3)]),
            errors: BTreeMap::new(),
        };
        supervisor
            .send(finished(
                f.id,
                jobs[0].0,
                Ok(JobOutput::Collected(collected)),
            ))
            .await
            .unwrap();
        let runs = f.jobs(1).await;
        supervisor
            .send(finished(
                f.id,
                runs[0].0,
                Ok(JobOutput::TimedOut {
                    output: "sleeping".into(),
                }),
            ))
            .await
            .unwrap();
        f.until_finished().await;
        let result = f.view().await.modules[0].result.clone().unwrap();
        assert_eq!(result.status, ModuleStatus::Timeout);
        assert_eq!(
            result.tally,
            Tally {
                errors: 3,
                ..Tally::default()
            }
        );
        assert_eq!(result.duration, 7.0);
    }

    #[actix::test]
    async fn a_failed_install_fails_the_project_not_the_evaluation() {
        let f = fixture().await;
        let supervisor = f.start().await;
        let jobs = f.jobs(1).await;
        let error = "installing requirements failed: no such package".to_string();
        supervisor
            .send(finished(f.id, jobs[0].0, Err(error.clone())))
            .await
            .unwrap();
        f.until_finished().await;
        let view = f.view().await;
        assert_eq!(view.record.status, EvaluationStatus::Done);
        assert_eq!(view.projects[0].error, Some(error));
    }

    #[actix::test]
    async fn a_resumed_evaluation_runs_only_modules_without_a_result() {
        let f = fixture().await;
        let id = f.id;
        let project = ProjectRow {
            name: "proj".into(),
            root: "proj".into(),
            collected: false,
            error: None,
        };
        f.store
            .send(SaveProjects {
                id,
                projects: vec![project],
            })
            .await
            .unwrap()
            .unwrap();
        let modules = vec![("tests/test_a.py".into(), 1), ("tests/test_b.py".into(), 1)];
        f.store
            .send(SaveCollected {
                id,
                project: "proj".into(),
                modules,
                error: None,
            })
            .await
            .unwrap()
            .unwrap();
        let saved = SaveResult {
            id,
            project: "proj".into(),
            module: "tests/test_a.py".into(),
            result: done(1, 0),
        };
        f.store.send(saved).await.unwrap().unwrap();
        f.store
            .send(SetStatus {
                id,
                status: EvaluationStatus::Running,
                at: Utc::now(),
                error: None,
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            f.store.send(ListUnfinished).await.unwrap().unwrap().len(),
            1
        );

        let supervisor = f.start().await;
        let runs = f.jobs(1).await;
        assert_eq!(
            runs[0].2,
            JobKind::Run {
                modules: vec!["tests/test_b.py".into()],
                timeout: Duration::from_secs(7)
            }
        );
        let b = BTreeMap::from([("tests/test_b.py".to_string(), done(1, 0))]);
        supervisor
            .send(finished(id, runs[0].0, Ok(JobOutput::Ran(b))))
            .await
            .unwrap();
        f.until_finished().await;
        assert_eq!(f.view().await.record.status, EvaluationStatus::Done);
    }

    #[test]
    fn class_errors_are_left_to_the_run_and_session_errors_get_a_name() {
        let collected = Collected {
            modules: BTreeMap::from([("tests/test_a.py".into(), 2)]),
            errors: BTreeMap::from([
                ("tests/test_a.py::TestBad".into(), "class".into()),
                ("tests/sub".into(), "conftest".into()),
                ("".into(), "session".into()),
            ]),
        };
        assert_eq!(
            collection_errors(&collected),
            vec![
                (SESSION_MODULE.to_owned(), "session".to_owned()),
                ("tests/sub".to_owned(), "conftest".to_owned())
            ]
        );
    }
}
