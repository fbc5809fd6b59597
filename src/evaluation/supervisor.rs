//! The `EvaluationSupervisor` actor: one per evaluation, a child of the
//! `Registry`. It brings the workspace up (cloning git projects, packing each
//! project into a blob), hands collection and test tasks to the nodes the
//! load balancer picks — this node's executor or another node's worker —
//! writes each answer to the store before it counts it, takes back the tasks
//! of nodes that die or stop answering, and closes the evaluation.
//!
//! Takes `JobFinished` (from the local executor, or from a worker through
//! the registry), `NodeLost` (from the registry) and its own `Tick`. Sends
//! `Submit` to the executor, `POST /execute_module` and
//! `POST /evaluation_done` to workers, `Place`/`Release` to the balancer,
//! writes to the `Store`, and tells the registry `EvaluationFinished`. If it
//! dies, nothing stored is lost: the evaluation stays `running` in the store
//! and the next start of the node resumes it from its stored results.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;
use tokio::time::Instant;
use uuid::Uuid;

use super::adoption;
use super::fence::{self, Act, TermClaim, Verdict};
use super::intake::{CloneLimits, UnpackLimits};
use super::model::{EvaluationStatus, Event, EventKind, ModuleResult};
use super::plan::{Plan, Task, TaskKind, TimeoutAction};
use super::prepare::{self, PrepareError};
use super::workspace::{self, collection_errors};
use crate::balance::{LoadBalancer, Place, Release, TaskHint};
use crate::config::Config;
use crate::executor::collect::Collected;
use crate::executor::{runner, Job, JobFinished, JobKind, JobOutput, Submit};
use crate::membership::GetMembers;
use crate::node::fail_stop::{ActorKind, Panic};
use crate::peer::model::{EvaluationDone, ExecuteModule, TaskSpec};
use crate::peer::{routes, Peers};
use crate::replication::model::ReplicaOp;
use crate::replication::{Append, Flush, Replicator, ReplicatorSettings, Stop, Superseded};
use crate::store::{
    EvaluationRecord, GetEstimates, GetEvaluation, GetSnapshot, ProjectRow, RecordEvent, SaveCollected, SaveResult,
    SetStatus, Store, StoreError,
};

/// Most journal entries in one replication request.
const REPLICATION_BATCH: usize = 256;

/// A client cancelled the evaluation: nothing more is handed out, and it
/// closes as `cancelled`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Cancel;

/// Sent to the registry when the supervisor stops.
#[derive(Message)]
#[rtype(result = "()")]
pub struct EvaluationFinished(pub Uuid);

/// A node is dead, has left, or came back as a new incarnation: its tasks
/// are lost.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct NodeLost(pub String);

/// Checks leases and hands out work that waits for a free slot.
#[derive(Message)]
#[rtype(result = "()")]
struct Tick;

/// What a supervisor needs to know of the node.
#[derive(Debug, Clone)]
pub struct SupervisorSettings {
    pub node: String,
    pub evaluations_dir: PathBuf,
    pub blobs_dir: PathBuf,
    pub modules_per_task: usize,
    pub module_timeout: Duration,
    /// Building an environment and collecting may take this long on a worker.
    pub prepare_timeout: Duration,
    /// Added to a task's longest expected run to make its lease.
    pub lease_grace: Duration,
    /// How often leases are checked and waiting work is offered again.
    pub tick: Duration,
    /// A node that refused a task is not offered another for this long.
    pub avoid_for: Duration,
    pub git_schemes: Vec<String>,
    /// How long one clone may take and how large it may grow.
    pub clone_limits: CloneLimits,
    /// Bounds of the blobs an adopted evaluation is unpacked from.
    pub limits: UnpackLimits,
    /// How many other nodes hold a copy of the evaluation.
    pub replicas: usize,
    /// How long closing waits for the replicas to hold the final state.
    pub flush_timeout: Duration,
}

impl SupervisorSettings {
    /// The settings `config` asks for, on node `node` keeping its data in `data_dir`.
    pub fn from_config(config: &Config, node: &str, data_dir: &Path) -> Self {
        let (e, c) = (&config.executor, &config.cluster);
        Self {
            node: node.to_owned(),
            evaluations_dir: data_dir.join("evaluations"),
            blobs_dir: data_dir.join("blobs"),
            modules_per_task: e.modules_per_task,
            module_timeout: Duration::from_secs(e.module_timeout_s),
            prepare_timeout: Duration::from_secs(e.install_timeout_s + e.collect_timeout_s),
            lease_grace: Duration::from_secs(c.lease_grace_s),
            tick: Duration::from_millis(c.dispatch_tick_ms),
            avoid_for: Duration::from_millis(c.suspicion_timeout_ms),
            git_schemes: config.intake.git_schemes.clone(),
            clone_limits: CloneLimits::from_config(&config.intake),
            limits: UnpackLimits::from_config(&config.intake),
            replicas: c.replicas,
            flush_timeout: Duration::from_millis(c.peer_timeout_ms),
        }
    }
}

pub struct EvaluationSupervisor {
    record: EvaluationRecord,
    /// The git token, kept in memory only until the clones are done.
    token: Option<String>,
    settings: SupervisorSettings,
    plan: Plan,
    /// Each project's root (relative to the workspace) and blob.
    projects: BTreeMap<String, ProjectRow>,
    store: Addr<Store>,
    /// This node's executor, for the tasks placed here.
    executor: Recipient<Submit>,
    /// Picks the node of each task; told when a task ends or moves.
    balancer: Addr<LoadBalancer>,
    peers: Peers,
    /// Membership: the members whose promises close the evaluation.
    members: Recipient<GetMembers>,
    /// The registry, told when this evaluation closes.
    on_finished: Recipient<EvaluationFinished>,
    /// Nodes not to offer tasks to until the given time.
    avoid: HashMap<String, Instant>,
    /// Origin of the plan's milliseconds.
    clock: Instant,
    /// Keeps the replicas up to date; started once the input is prepared.
    replicator: Option<Addr<Replicator>>,
    /// The plan is ready and the supervisor hands out work.
    ready: bool,
    dispatching: bool,
    closing: bool,
}

/// The collaborators of a supervisor.
pub struct Links {
    pub store: Addr<Store>,
    pub executor: Recipient<Submit>,
    pub balancer: Addr<LoadBalancer>,
    pub peers: Peers,
    pub members: Recipient<GetMembers>,
    pub on_finished: Recipient<EvaluationFinished>,
}

impl EvaluationSupervisor {
    pub fn new(record: EvaluationRecord, token: Option<String>, settings: SupervisorSettings, links: Links) -> Self {
        let plan = Plan::new(settings.modules_per_task, record.epoch << 32);
        Self {
            record,
            token,
            settings,
            plan,
            projects: BTreeMap::new(),
            store: links.store,
            executor: links.executor,
            balancer: links.balancer,
            peers: links.peers,
            members: links.members,
            on_finished: links.on_finished,
            avoid: HashMap::new(),
            clock: Instant::now(),
            replicator: None,
            ready: false,
            dispatching: false,
            closing: false,
        }
    }

    fn workspace(&self) -> PathBuf {
        self.settings.evaluations_dir.join(self.record.id.to_string())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Hands out what can start now: the balancer orders the tasks and
    /// picks each one's node while slots are free; the rest wait.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        if !self.ready || self.dispatching || self.closing {
            return;
        }
        if self.plan.is_complete() {
            return self.close(EvaluationStatus::Done, None, ctx);
        }
        if !self.plan.has_pending() {
            return;
        }
        self.dispatching = true;
        let now = Instant::now();
        self.avoid.retain(|_, until| *until > now);
        let exclude: Vec<String> = self.avoid.keys().cloned().collect();
        let tasks = self.plan.next_tasks();
        let mut longest = HashMap::new();
        let hints = tasks
            .iter()
            .map(|t| TaskHint {
                estimate_ms: t.estimate_ms,
                env: self.plan.env_of(&t.project).map(String::from),
                project: t.project.clone(),
                project_ms: *longest.entry(t.project.as_str()).or_insert_with(|| self.plan.longest_ms(&t.project)),
            })
            .collect();
        let place = self.balancer.send(Place { tasks: hints, exclude });
        ctx.wait(place.into_actor(self).map(|placed, act, ctx| {
            act.dispatching = false;
            let mut tasks: Vec<Option<Task>> = tasks.into_iter().map(Some).collect();
            // In the order placed: the executor queues its tasks in arrival order.
            for (i, node) in placed.unwrap_or_default() {
                if let Some(task) = tasks.get_mut(i).and_then(Option::take) {
                    act.send(task, node, ctx);
                }
            }
            // Every node is full: these wait for a result or a tick.
            for task in tasks.into_iter().flatten() {
                act.plan.requeue(task.id);
            }
        }));
    }

    /// The lease of a task: the longest it may take, plus grace.
    fn lease(&self, project: &str, kind: &TaskKind) -> Duration {
        let s = &self.settings;
        let run = match kind {
            TaskKind::Collect => Duration::ZERO,
            TaskKind::Run(modules) => modules.iter().map(|m| self.timeout_of(project, m)).sum(),
        };
        s.prepare_timeout + run + s.lease_grace
    }

    /// A module's time-out: its project's rules', never past the node's.
    fn timeout_of(&self, project: &str, module: &str) -> Duration {
        let rules = self.projects.get(project).and_then(|p| p.rules.as_ref());
        rules.map_or(self.settings.module_timeout, |r| r.timeout(module, self.settings.module_timeout))
    }

    /// A module with a time-out of its own runs alone: a task's modules
    /// share one.
    fn keep_apart_the_timed(&mut self, project: &str) {
        let Some(rules) = self.projects.get(project).and_then(|p| p.rules.as_ref()) else { return };
        for (module, rule) in &rules.modules {
            if rule.timeout_s.is_some() {
                self.plan.alone(project, module);
            }
        }
    }

    fn send(&mut self, task: Task, node: String, ctx: &mut Context<Self>) {
        let Some(project) = self.projects.get(&task.project).cloned() else {
            return;
        };
        let lease = self.lease(&task.project, &task.kind);
        let deadline = self.now_ms() + u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        self.plan.place(task.id, &node, deadline);
        let what = match &task.kind {
            TaskKind::Collect => "collect".to_owned(),
            TaskKind::Run(modules) => modules
                .iter()
                .map(|m| match self.plan.estimate_of(&task.project, m) {
                    Some(e) => format!("{m} (estimated {:.2} s from {})", e.seconds, e.basis.as_str()),
                    None => m.clone(),
                })
                .collect::<Vec<_>>()
                .join(", "),
        };
        self.event(EventKind::Assigned, format!("task {} of {} to {node}: {what}", task.id, task.project));
        let kind = match task.kind {
            TaskKind::Collect => JobKind::Collect,
            TaskKind::Run(modules) => {
                // One module alone when it has a time-out of its own.
                let timeout =
                    modules.first().map_or(self.settings.module_timeout, |m| self.timeout_of(&task.project, m));
                JobKind::Run { modules, timeout }
            }
        };
        if node == self.settings.node {
            self.executor.do_send(Submit(Job {
                evaluation: self.record.id,
                task: task.id,
                project: task.project,
                root: workspace::project_dir(&self.workspace(), &project.root),
                kind,
                reply_to: ctx.address().recipient(),
            }));
            return;
        }
        let Some(blob) = project.blob else {
            log::error!("evaluation {}: project {} has no blob to send", self.record.id, task.project);
            return;
        };
        let request = ExecuteModule {
            evaluation: self.record.id,
            task: task.id,
            supervisor: self.settings.node.clone(),
            project: task.project,
            blob,
            kind: TaskSpec::from(&kind),
        };
        let offer = self.peers.call::<routes::ExecuteModule>(&node, &request);
        ctx.spawn(offer.into_actor(self).map(move |sent, act, ctx| {
            if let Err(e) = sent {
                log::warn!("evaluation {}: task {} not taken by {node}: {e}", act.record.id, task.id);
                act.avoid.insert(node, Instant::now() + act.settings.avoid_for);
                act.take_back(task.id);
                act.dispatch(ctx);
            }
        }));
    }

    /// Requeues a task and frees its slot at the balancer.
    fn take_back(&mut self, task: u64) {
        if let Some(node) = self.plan.requeue(task) {
            self.event(EventKind::Reassigned, format!("task {task} taken back from {node}"));
            self.balancer.do_send(Release(node));
        }
    }

    /// Logs an event of this node, at its next Lamport time.
    fn event(&self, kind: EventKind, detail: String) {
        let lamport = self.peers.clock().tick();
        self.log(vec![Event { lamport, node: self.settings.node.clone(), kind, detail }]);
    }

    /// Stores `events` and hands them to the replicas in one append, so that
    /// a replica holds all of them or none: a task's start without its result
    /// would read as a task still running.
    fn log(&self, events: Vec<Event>) {
        self.replicate(events.iter().map(|event| ReplicaOp::Event { event: event.clone() }).collect());
        for event in events {
            self.store.do_send(RecordEvent { id: self.record.id, event });
        }
    }

    /// Hands writes, once stored, to the replicas.
    fn replicate(&self, ops: Vec<ReplicaOp>) {
        if let Some(replicator) = &self.replicator {
            replicator.do_send(Append(ops));
        }
    }

    /// Starts the replicator from what the store holds now, then hands out work.
    fn start_replicating(&mut self, ctx: &mut Context<Self>) {
        let snapshot = self.store.send(GetSnapshot(self.record.id));
        ctx.wait(snapshot.into_actor(self).map(|snapshot, act, ctx| {
            let snapshot = match snapshot {
                Ok(Ok(Some(ops))) => ops,
                Ok(Ok(None)) => return act.abandon(StoreError::Corrupt("evaluation vanished".into()), ctx),
                Ok(Err(e)) => return act.abandon(e, ctx),
                Err(e) => return act.abandon(e.into(), ctx),
            };
            let settings = ReplicatorSettings {
                evaluation: act.record.id,
                me: act.settings.node.clone(),
                epoch: act.record.epoch,
                want: act.settings.replicas,
                batch: REPLICATION_BATCH,
                tick: Some(act.settings.tick),
            };
            let replicator = Replicator::new(
                settings,
                snapshot,
                act.balancer.clone().recipient(),
                act.peers.clone(),
                ctx.address().recipient(),
            );
            act.replicator = Some(replicator.start());
            act.ready = true;
            ctx.run_interval(act.settings.tick, |_, ctx| ctx.notify(Tick));
            act.dispatch(ctx);
        }));
    }

    /// Asks the history how long the modules left of a resumed evaluation
    /// take, then starts replicating and handing out work. Their projects'
    /// environment tags died with the earlier supervisor: those modules go
    /// where the balancer finds room, until nothing else is known.
    fn estimate_resumed(&mut self, ctx: &mut Context<Self>) {
        let (store, id) = (self.store.clone(), self.record.id);
        let wanted = self.plan.unfinished_modules();
        let ask = async move {
            let mut all = Vec::with_capacity(wanted.len());
            for (project, modules) in wanted {
                let estimates = store.send(GetEstimates { id, project: project.clone(), modules }).await??;
                all.push((project, estimates));
            }
            Ok::<_, StoreError>(all)
        };
        ctx.wait(ask.into_actor(self).map(|all, act, ctx| match all {
            Ok(all) => {
                for (project, estimates) in all {
                    act.plan.estimated(&project, &estimates);
                }
                act.start_replicating(ctx);
            }
            Err(e) => act.abandon(e, ctx),
        }));
    }

    /// Closes a task that was answered and frees its slot.
    fn answered(&mut self, task: u64) -> Option<Task> {
        if let Some(node) = self.plan.node_of(task) {
            self.balancer.do_send(Release(node.to_owned()));
        }
        self.plan.close_task(task)
    }

    /// Writes results to the store, then counts the ones it accepted.
    fn save_results(&mut self, project: String, results: Vec<(String, ModuleResult)>, ctx: &mut Context<Self>) {
        // Held to what collection found before anything is stored.
        let results: Vec<(String, ModuleResult)> = results
            .into_iter()
            .map(|(module, result)| {
                let expected = self.plan.tests_in(&project, &module);
                (module, runner::vet(result, expected))
            })
            .collect();
        let (store, id) = (self.store.clone(), self.record.id);
        let write = async move {
            let mut saved = Vec::new();
            for (module, result) in results {
                let msg = SaveResult { id, project: project.clone(), module: module.clone(), result: result.clone() };
                if store.send(msg).await?? {
                    saved.push(ReplicaOp::Result { project: project.clone(), module, result });
                }
            }
            Ok::<_, StoreError>(saved)
        };
        ctx.wait(write.into_actor(self).map(|saved, act, ctx| match saved {
            Ok(saved) => {
                for op in &saved {
                    if let ReplicaOp::Result { project, module, .. } = op {
                        act.plan.finish(project, module);
                    }
                }
                act.replicate(saved);
                act.dispatch(ctx);
            }
            Err(e) => act.abandon(e, ctx),
        }));
    }

    /// Closes the evaluation once a majority of the members promise the
    /// close in this supervisor's term (`fence`): steps down if one knows a
    /// later term, tries again later if too few answer.
    fn close(&mut self, status: EvaluationStatus, error: Option<String>, ctx: &mut Context<Self>) {
        self.closing = true;
        let me = self.settings.node.clone();
        let claim =
            TermClaim { evaluation: self.record.id, epoch: self.record.epoch, supervisor: me.clone(), act: Act::Close };
        let (store, peers, members) = (self.store.clone(), self.peers.clone(), self.members.clone());
        let (replicator, flush_timeout) = (self.replicator.clone(), self.settings.flush_timeout);
        let fenced = async move {
            // The replicas first take every result, so that a close a
            // majority promised is not lost with this node.
            if let Some(replicator) = &replicator {
                let _ = tokio::time::timeout(flush_timeout, replicator.send(Flush)).await;
            }
            let others = fence::members(members.send(GetMembers).await.unwrap_or_default(), &me);
            fence::claim(&store, &peers, &others, &claim).await
        };
        ctx.wait(fenced.into_actor(self).map(move |verdict, act, ctx| match verdict {
            Ok(Verdict::Granted) => act.finish(status, error, ctx),
            Ok(Verdict::Outranked { by, known }) => {
                log::warn!(
                    "evaluation {}: {by} knows term {} of {}; stepping down from term {} without closing",
                    act.record.id,
                    known.epoch,
                    known.supervisor,
                    act.record.epoch
                );
                act.step_down(known.supervisor, ctx);
            }
            Ok(Verdict::NoQuorum { granted, needed }) => {
                log::warn!(
                    "evaluation {}: cannot close yet: {granted} of the {needed} members needed promised term {}",
                    act.record.id,
                    act.record.epoch
                );
                ctx.run_later(act.settings.flush_timeout, move |act, ctx| act.close(status, error, ctx));
            }
            Err(e) => act.abandon(e, ctx),
        }));
    }

    /// Stops without closing anything, a later term's supervisor having
    /// taken over, and catches this node's copy up from it.
    fn step_down(&mut self, to: String, ctx: &mut Context<Self>) {
        self.closing = true;
        if to != self.settings.node {
            let (id, store, peers, blobs_dir) =
                (self.record.id, self.store.clone(), self.peers.clone(), self.settings.blobs_dir.clone());
            actix::spawn(async move {
                match adoption::follow(id, &to, &store, &peers, &blobs_dir).await {
                    Ok(()) => log::info!("evaluation {id}: caught up from {to}, its supervisor now"),
                    Err(e) => log::warn!("evaluation {id}: not caught up from {to}: {e}"),
                }
            });
        }
        ctx.stop();
    }

    /// Records the end, here and on the replicas, and tells the workers.
    fn finish(&mut self, status: EvaluationStatus, error: Option<String>, ctx: &mut Context<Self>) {
        self.event(EventKind::Done, status.as_str().to_owned());
        let (store, id, evaluations_dir) = (self.store.clone(), self.record.id, self.settings.evaluations_dir.clone());
        let peers = self.peers.clone();
        let workers: Vec<String> =
            self.plan.nodes_used().iter().filter(|n| **n != self.settings.node).cloned().collect();
        let (replicator, flush_timeout) = (self.replicator.clone(), self.settings.flush_timeout);
        let finish = async move {
            store.send(SetStatus { id, status, at: Utc::now(), error }).await??;
            let view = store.send(GetEvaluation { id, with_tests: false }).await??;
            if let (Some(replicator), Some(view)) = (replicator, view) {
                replicator.do_send(Append(vec![ReplicaOp::Record { record: view.record }]));
                // The client may read the result from any node: wait, bounded,
                // until the replicas hold it.
                match tokio::time::timeout(flush_timeout, replicator.send(Flush)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => log::warn!("evaluation {id}: replicator gone before the end: {e}"),
                    Err(_) => log::warn!("evaluation {id}: replicas not all up to date at the end"),
                }
            }
            if let Err(e) = workspace::remove(&evaluations_dir, id).await {
                log::warn!("evaluation {id}: cannot remove its workspace: {e}");
            }
            for worker in workers {
                if let Err(e) = peers.call::<routes::EvaluationDone>(&worker, &EvaluationDone { evaluation: id }).await
                {
                    log::warn!("evaluation {id}: {worker} not told it is done: {e}");
                }
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
        log::error!("evaluation {}: store failed, supervisor stops: {e}", self.record.id);
        ctx.stop();
    }

    fn collected(&mut self, project: String, collected: Collected, ctx: &mut Context<Self>) {
        if self.plan.is_collected(&project) {
            return;
        }
        let row = self.projects.get(&project);
        let graded = |module: &str| row.is_none_or(|p| p.grades(module));
        let mut errors = collection_errors(&collected);
        errors.retain(|(module, _)| graded(module));
        let env = collected.env;
        let mut modules: Vec<(String, u32)> = collected.modules.into_iter().filter(|(m, _)| graded(m)).collect();
        modules.extend(errors.iter().map(|(module, _)| (module.clone(), 0)));
        if modules.is_empty() {
            return self.project_failed(project, "pytest collected no tests".into(), ctx);
        }
        let node = self.settings.node.clone();
        let errors: Vec<(String, ModuleResult)> =
            errors.into_iter().map(|(module, text)| (module, runner::collection_error_result(&text, &node))).collect();
        let (store, id) = (self.store.clone(), self.record.id);
        let msg = SaveCollected { id, project: project.clone(), modules: modules.clone(), error: None };
        let ask = GetEstimates { id, project: project.clone(), modules: modules.clone() };
        let write = async move {
            store.send(msg).await??;
            store.send(ask).await?
        };
        ctx.wait(write.into_actor(self).map(move |res, act, ctx| match res {
            Ok(estimates) => {
                act.plan.collected(&project, &modules);
                act.keep_apart_the_timed(&project);
                act.plan.estimated(&project, &estimates);
                act.plan.set_env(&project, env);
                let op = ReplicaOp::Collected { project: project.clone(), modules: modules.clone(), error: None };
                act.replicate(vec![op]);
                // Modules that failed to collect get their result now; the
                // wait keeps them from being dispatched before it is stored.
                act.save_results(project, errors, ctx);
            }
            Err(e) => act.abandon(e, ctx),
        }));
    }

    fn project_failed(&mut self, project: String, error: String, ctx: &mut Context<Self>) {
        if self.plan.is_collected(&project) {
            return;
        }
        log::warn!("evaluation {}: project {project} failed: {error}", self.record.id);
        let (store, id) = (self.store.clone(), self.record.id);
        let msg = SaveCollected { id, project: project.clone(), modules: Vec::new(), error: Some(error.clone()) };
        let write = async move { store.send(msg).await? };
        ctx.wait(write.into_actor(self).map(move |res, act, ctx| match res {
            Ok(()) => {
                act.plan.project_failed(&project);
                act.replicate(vec![ReplicaOp::Collected {
                    project: project.clone(),
                    modules: Vec::new(),
                    error: Some(error),
                }]);
                act.dispatch(ctx);
            }
            Err(e) => act.abandon(e, ctx),
        }));
    }
}

impl Actor for EvaluationSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let prepare = prepare::prepare(
            self.record.clone(),
            self.token.take(),
            self.workspace(),
            self.settings.clone(),
            self.store.clone(),
        );
        ctx.wait(prepare.into_actor(self).map(|loaded, act, ctx| match loaded {
            Ok((projects, modules)) => {
                for p in projects {
                    act.plan.add_project(&p.name, p.collected, p.error.is_some());
                    act.projects.insert(p.name.clone(), p);
                }
                for (project, module, tests, finished) in modules {
                    act.plan.add_module(&project, &module, tests, finished);
                }
                let names: Vec<String> = act.projects.keys().cloned().collect();
                for project in names {
                    act.keep_apart_the_timed(&project);
                }
                act.estimate_resumed(ctx);
            }
            Err(e @ (PrepareError::InputLost | PrepareError::Suite(_))) => {
                act.close(EvaluationStatus::Failed, Some(e.to_string()), ctx);
            }
            Err(PrepareError::Store(e)) => act.abandon(e, ctx),
        }));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(replicator) = &self.replicator {
            replicator.do_send(Stop);
        }
        self.on_finished.do_send(EvaluationFinished(self.record.id));
    }
}

impl Handler<Tick> for EvaluationSupervisor {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        for task in self.plan.expired(self.now_ms()) {
            log::warn!("evaluation {}: task {task} ran past its lease, handing it out again", self.record.id);
            self.take_back(task);
        }
        self.dispatch(ctx);
    }
}

impl Handler<Cancel> for EvaluationSupervisor {
    type Result = ();

    fn handle(&mut self, _: Cancel, ctx: &mut Context<Self>) {
        if !self.closing {
            self.close(EvaluationStatus::Cancelled, Some("cancelled by a client".into()), ctx);
        }
    }
}

impl Handler<NodeLost> for EvaluationSupervisor {
    type Result = ();

    fn handle(&mut self, NodeLost(node): NodeLost, ctx: &mut Context<Self>) {
        if let Some(replicator) = &self.replicator {
            replicator.do_send(NodeLost(node.clone()));
        }
        let tasks = self.plan.tasks_on(&node);
        if tasks.is_empty() {
            return;
        }
        log::warn!("evaluation {}: node {node} lost, handing out its {} tasks again", self.record.id, tasks.len());
        for task in tasks {
            self.take_back(task);
        }
        self.dispatch(ctx);
    }
}

impl Handler<Panic> for EvaluationSupervisor {
    type Result = bool;

    fn handle(&mut self, msg: Panic, _: &mut Context<Self>) -> bool {
        match (msg.0, &self.replicator) {
            (ActorKind::Replicator, Some(replicator)) => replicator.do_send(msg),
            (kind, _) => panic!("{kind:?} told to panic (POST /panic)"),
        }
        true
    }
}

impl Handler<Superseded> for EvaluationSupervisor {
    type Result = ();

    /// Another node adopted this evaluation while this one still ran it (it
    /// was thought dead): the later term wins, this supervisor steps down
    /// without closing anything.
    fn handle(&mut self, msg: Superseded, ctx: &mut Context<Self>) {
        log::warn!(
            "evaluation {}: {} supervises it in term {}; stepping down from term {}",
            self.record.id,
            msg.supervisor,
            msg.epoch,
            self.record.epoch
        );
        self.step_down(msg.supervisor, ctx);
    }
}

impl Handler<JobFinished> for EvaluationSupervisor {
    type Result = ();

    fn handle(&mut self, msg: JobFinished, ctx: &mut Context<Self>) {
        let node = self.settings.node.clone();
        let project = msg.project;
        let (stamp, task) = (msg.stamp, msg.task);
        let summary = match &msg.outcome {
            Ok(JobOutput::Collected(c)) => format!("{} modules collected", c.modules.len()),
            Ok(JobOutput::Ran(results)) => results
                .iter()
                .map(|(m, r)| format!("{m}: {} passed, {} failed", r.tally.passed, r.tally.failed))
                .collect::<Vec<_>>()
                .join("; "),
            Ok(JobOutput::TimedOut { .. }) => "timed out".to_owned(),
            Err(e) => format!("failed: {}", e.lines().next().unwrap_or_default()),
        };
        let started = format!("task {task}");
        let result = format!("task {task}: {summary}");
        self.log(vec![
            Event { lamport: stamp.started, node: stamp.node.clone(), kind: EventKind::Started, detail: started },
            Event { lamport: stamp.finished, node: stamp.node, kind: EventKind::Result, detail: result },
        ]);
        if let Ok(JobOutput::TimedOut { output, elapsed }) = &msg.outcome {
            if let Some(worker) = self.plan.node_of(msg.task) {
                self.balancer.do_send(Release(worker.to_owned()));
            }
            match self.plan.timed_out(msg.task) {
                TimeoutAction::Split => self.dispatch(ctx),
                // A report is for a task of one module: the run's time is its own.
                TimeoutAction::Report { project, module } => {
                    let tests = self.plan.tests_in(&project, &module);
                    let timeout = self.timeout_of(&project, &module);
                    let result = runner::timeout_result(tests, timeout, *elapsed, output, &node);
                    self.save_results(project, vec![(module, result)], ctx);
                }
                TimeoutAction::Ignore => {}
            }
            return;
        }
        // An answer to a task that was taken back still counts: the store
        // keeps the first result of each module and refuses the rest.
        let task = self.answered(msg.task);
        match (task.map(|t| t.kind), msg.outcome) {
            (_, Ok(JobOutput::Collected(collected))) => self.collected(project, collected, ctx),
            (_, Ok(JobOutput::Ran(results))) => self.save_results(project, results.into_iter().collect(), ctx),
            (Some(TaskKind::Collect), Err(error)) => self.project_failed(project, error, ctx),
            (Some(TaskKind::Run(modules)), Err(error)) => {
                let results =
                    modules.into_iter().map(|m| (m, runner::collection_error_result(&error, &node))).collect();
                self.save_results(project, results, ctx);
            }
            (None, Err(error)) => {
                log::info!("evaluation {}: late failure of task {} ignored: {error}", self.record.id, msg.task);
            }
            (_, Ok(JobOutput::TimedOut { .. })) => {}
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::balance::{LeastConnections, LongestFirst, NodeLoad, Policy, SetMembers};
    use crate::evaluation::model::{ModuleStatus, Outcome, Tally};
    use crate::store::{ListUnfinished, SaveProjects, Source};
    use crate::testing::{Cluster, SimNet};

    /// Stands in for the executor: keeps every job it is handed.
    #[derive(Default)]
    pub(crate) struct ProbeExecutor {
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
    pub(crate) struct TakeJobs;

    impl Handler<TakeJobs> for ProbeExecutor {
        type Result = MessageResult<TakeJobs>;
        fn handle(&mut self, _: TakeJobs, _: &mut Context<Self>) -> Self::Result {
            MessageResult(self.jobs.drain(..).map(|j| (j.task, j.project, j.kind, j.reply_to)).collect())
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

    /// Settings of a supervisor on node "n1" whose modules time out at 7 s.
    pub(crate) fn test_settings(dir: &std::path::Path) -> SupervisorSettings {
        SupervisorSettings {
            node: "n1".into(),
            evaluations_dir: dir.to_owned(),
            blobs_dir: dir.join("blobs"),
            modules_per_task: 1,
            module_timeout: Duration::from_secs(7),
            prepare_timeout: Duration::from_secs(60),
            lease_grace: Duration::from_secs(10),
            tick: Duration::from_secs(1),
            avoid_for: Duration::from_secs(2),
            git_schemes: vec!["file".into()],
            clone_limits: CloneLimits { timeout: Duration::from_secs(10), max_bytes: 1 << 20 },
            limits: UnpackLimits { max_entries: 1000, max_unpacked_bytes: 1 << 20 },
            replicas: 2,
            flush_timeout: Duration::from_secs(5),
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
        fixture_on(Store::in_memory().unwrap().start()).await
    }

    /// A fixture whose evaluation is recorded in `store`: two fixtures on
    /// one store are two evaluations of the same project on one node.
    async fn fixture_on(store: Addr<Store>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        let workspace = dir.path().join(id.to_string());
        std::fs::create_dir_all(workspace.join("proj/tests")).unwrap();
        std::fs::write(workspace.join("proj/requirements.txt"), "").unwrap();
        std::fs::write(workspace.join("proj/tests/test_a.py"), "def test_a(): pass\n").unwrap();
        let record = EvaluationRecord {
            id,
            status: EvaluationStatus::Queued,
            source: Source::Zip { name: "upload".into() },
            supervisor: "n1".into(),
            epoch: 0,
            input_sha256: None,
            input_ready: true,
            submitted_at: Utc::now(),
            started_at: None,
            finished_at: None,
            error: None,
        };
        store.send(crate::store::CreateEvaluation(record)).await.unwrap().unwrap();
        let settings = test_settings(dir.path());
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
            self.start_with(vec![NodeLoad { addr: "n1".into(), slots: 8, busy: 0, envs: vec![] }]).await
        }

        /// Starts the supervisor with the balancer seeing `members`.
        async fn start_with(&self, members: Vec<NodeLoad>) -> Addr<EvaluationSupervisor> {
            self.start_balanced(members, Box::new(LeastConnections::default())).await
        }

        /// Starts the supervisor with a balancer that runs `policy`.
        async fn start_balanced(&self, members: Vec<NodeLoad>, policy: Box<dyn Policy>) -> Addr<EvaluationSupervisor> {
            let view = self.store.send(GetEvaluation { id: self.id, with_tests: false }).await;
            let record = view.unwrap().unwrap().unwrap().record;
            let balancer = LoadBalancer::new(policy).start();
            balancer.send(SetMembers(members)).await.unwrap();
            // A node alone: its own promise is a majority.
            let net = SimNet::new();
            let links = Links {
                store: self.store.clone(),
                executor: self.executor.clone().recipient(),
                balancer,
                peers: net.peers("n1"),
                members: Cluster::start(&net).0.recipient(),
                on_finished: self.registry.clone().recipient(),
            };
            EvaluationSupervisor::new(record, None, self.settings.clone(), links).start()
        }

        /// Waits, by yielding, until the supervisor has handed out `n` jobs.
        async fn jobs(&self, n: usize) -> Vec<(u64, String, JobKind, Recipient<JobFinished>)> {
            let mut jobs = Vec::new();
            for _ in 0..2500 {
                jobs.extend(self.executor.send(TakeJobs).await.unwrap());
                if jobs.len() >= n {
                    break;
                }
                // Packing runs on a blocking thread: poll in real time, bounded.
                actix_rt::time::sleep(Duration::from_millis(2)).await;
            }
            assert_eq!(jobs.len(), n, "jobs handed out");
            jobs
        }

        async fn view(&self) -> crate::store::EvaluationView {
            self.store.send(GetEvaluation { id: self.id, with_tests: false }).await.unwrap().unwrap().unwrap()
        }

        async fn until_finished(&self) {
            for _ in 0..2500 {
                if !self.registry.send(GetFinished).await.unwrap().is_empty() {
                    return;
                }
                // Packing runs on a blocking thread: poll in real time, bounded.
                actix_rt::time::sleep(Duration::from_millis(2)).await;
            }
            panic!("the supervisor did not finish");
        }
    }

    /// A module's result with one test case per test, as a run reports it.
    fn done(passed: u32, failed: u32) -> ModuleResult {
        let case = |i: u32, outcome| crate::evaluation::model::TestCase {
            name: format!("test_{i}"),
            classname: "tests.test_x".into(),
            outcome,
            duration: 0.05,
            message: None,
        };
        let outcomes = (0..passed).map(|_| Outcome::Passed).chain((0..failed).map(|_| Outcome::Failed));
        ModuleResult {
            status: ModuleStatus::Done,
            tally: Tally { passed, failed, ..Tally::default() },
            duration: 0.1,
            wall: 0.15,
            node: "n1".into(),
            output: String::new(),
            tests: outcomes.enumerate().map(|(i, o)| case(i as u32, o)).collect(),
        }
    }

    fn finished(id: Uuid, task: u64, outcome: Result<JobOutput, String>) -> JobFinished {
        let stamp = crate::executor::RunStamp { node: "n1".into(), started: 0, finished: 0 };
        JobFinished { evaluation: id, task, project: "proj".into(), outcome, stamp }
    }

    #[actix::test]
    async fn collects_runs_each_module_and_closes_the_evaluation() {
        let f = fixture().await;
        let supervisor = f.start().await;
        let jobs = f.jobs(1).await;
        assert_eq!((jobs[0].1.as_str(), &jobs[0].2), ("proj", &JobKind::Collect));
        let collected = Collected {
            modules: BTreeMap::from([("tests/test_a.py".into(), 2), ("tests/test_b.py".into(), 1)]),
            errors: BTreeMap::from([("tests/test_c.py".into(), "ImportError".into())]),
            env: None,
        };
        supervisor.send(finished(f.id, jobs[0].0, Ok(JobOutput::Collected(collected)))).await.unwrap();
        let runs = f.jobs(2).await;
        let timeout = Duration::from_secs(7);
        assert_eq!(runs[0].2, JobKind::Run { modules: vec!["tests/test_a.py".into()], timeout });
        assert_eq!(runs[1].2, JobKind::Run { modules: vec!["tests/test_b.py".into()], timeout });

        let a = BTreeMap::from([("tests/test_a.py".to_string(), done(2, 0))]);
        supervisor.send(finished(f.id, runs[0].0, Ok(JobOutput::Ran(a.clone())))).await.unwrap();
        // A duplicate answer to the same task changes nothing.
        supervisor.send(finished(f.id, runs[0].0, Ok(JobOutput::Ran(a)))).await.unwrap();
        let b = BTreeMap::from([("tests/test_b.py".to_string(), done(0, 1))]);
        supervisor.send(finished(f.id, runs[1].0, Ok(JobOutput::Ran(b)))).await.unwrap();
        f.until_finished().await;

        let view = f.view().await;
        assert_eq!(view.record.status, EvaluationStatus::Done);
        let results: Vec<_> =
            view.modules.iter().map(|m| (m.module.as_str(), m.result.as_ref().map(|r| (r.status, r.tally)))).collect();
        assert_eq!(
            results,
            vec![
                ("tests/test_a.py", Some((ModuleStatus::Done, Tally { passed: 2, ..Tally::default() }))),
                ("tests/test_b.py", Some((ModuleStatus::Done, Tally { failed: 1, ..Tally::default() }))),
                ("tests/test_c.py", Some((ModuleStatus::Error, Tally { errors: 1, ..Tally::default() }))),
            ]
        );
        assert!(!f.workspace.exists(), "the workspace is removed when the evaluation closes");
    }

    #[actix::test]
    async fn a_timed_out_module_counts_each_of_its_tests_as_an_error() {
        let f = fixture().await;
        let supervisor = f.start().await;
        let jobs = f.jobs(1).await;
        let collected =
            Collected { modules: BTreeMap::from([("tests/test_a.py".into(), 3)]), errors: BTreeMap::new(), env: None };
        supervisor.send(finished(f.id, jobs[0].0, Ok(JobOutput::Collected(collected)))).await.unwrap();
        let runs = f.jobs(1).await;
        supervisor
            .send(finished(
                f.id,
                runs[0].0,
                Ok(JobOutput::TimedOut { output: "sleeping".into(), elapsed: Duration::from_millis(7020) }),
            ))
            .await
            .unwrap();
        f.until_finished().await;
        let result = f.view().await.modules[0].result.clone().unwrap();
        assert_eq!(result.status, ModuleStatus::Timeout);
        assert_eq!(result.tally, Tally { errors: 3, ..Tally::default() });
        assert_eq!(result.duration, 7.0);
        assert_eq!(result.wall, 7.02, "the wall time of the killed run");
    }

    #[actix::test]
    async fn a_failed_install_fails_the_project_not_the_evaluation() {
        let f = fixture().await;
        let supervisor = f.start().await;
        let jobs = f.jobs(1).await;
        let error = "installing requirements failed: no such package".to_string();
        supervisor.send(finished(f.id, jobs[0].0, Err(error.clone()))).await.unwrap();
        f.until_finished().await;
        let view = f.view().await;
        assert_eq!(view.record.status, EvaluationStatus::Done);
        assert_eq!(view.projects[0].error, Some(error));
    }

    #[actix::test]
    async fn a_resumed_evaluation_runs_only_modules_without_a_result() {
        let f = fixture().await;
        let id = f.id;
        let project = ProjectRow::found("proj".into(), "proj".into(), None);
        f.store.send(SaveProjects { id, projects: vec![project] }).await.unwrap().unwrap();
        let modules = vec![("tests/test_a.py".into(), 1), ("tests/test_b.py".into(), 1)];
        f.store.send(SaveCollected { id, project: "proj".into(), modules, error: None }).await.unwrap().unwrap();
        let saved = SaveResult { id, project: "proj".into(), module: "tests/test_a.py".into(), result: done(1, 0) };
        f.store.send(saved).await.unwrap().unwrap();
        f.store
            .send(SetStatus { id, status: EvaluationStatus::Running, at: Utc::now(), error: None })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(f.store.send(ListUnfinished).await.unwrap().unwrap().len(), 1);

        let supervisor = f.start().await;
        let runs = f.jobs(1).await;
        assert_eq!(
            runs[0].2,
            JobKind::Run { modules: vec!["tests/test_b.py".into()], timeout: Duration::from_secs(7) }
        );
        let b = BTreeMap::from([("tests/test_b.py".to_string(), done(1, 0))]);
        supervisor.send(finished(id, runs[0].0, Ok(JobOutput::Ran(b)))).await.unwrap();
        f.until_finished().await;
        assert_eq!(f.view().await.record.status, EvaluationStatus::Done);
    }

    #[actix::test]
    async fn tasks_of_a_lost_node_are_handed_out_again_and_counted_once() {
        let f = fixture().await;
        let supervisor = f.start().await;
        let jobs = f.jobs(1).await;
        let collected =
            Collected { modules: BTreeMap::from([("tests/test_a.py".into(), 1)]), errors: BTreeMap::new(), env: None };
        supervisor.send(finished(f.id, jobs[0].0, Ok(JobOutput::Collected(collected)))).await.unwrap();
        let first = f.jobs(1).await;
        supervisor.send(NodeLost("n1".into())).await.unwrap();
        let second = f.jobs(1).await;
        assert_ne!(first[0].0, second[0].0, "the module is handed out again under a new task");
        assert_eq!(first[0].2, second[0].2);
        let a = || BTreeMap::from([("tests/test_a.py".to_string(), done(1, 0))]);
        // The lost node's answer arrives late and closes the evaluation; the
        // new task's answer then finds no supervisor and changes nothing.
        supervisor.send(finished(f.id, first[0].0, Ok(JobOutput::Ran(a())))).await.unwrap();
        supervisor.do_send(finished(f.id, second[0].0, Ok(JobOutput::Ran(a()))));
        f.until_finished().await;
        let view = f.view().await;
        assert_eq!(view.record.status, EvaluationStatus::Done);
        assert_eq!(view.modules[0].result.as_ref().unwrap().tally, Tally { passed: 1, ..Tally::default() });
    }

    #[actix::test]
    async fn a_task_a_worker_cannot_take_goes_to_another_node() {
        let f = fixture().await;
        // Nothing listens on port 9 of loopback: the remote node refuses.
        let unreachable = NodeLoad { addr: "127.0.0.1:9".into(), slots: 1, busy: 0, envs: vec![] };
        let local = NodeLoad { addr: "n1".into(), slots: 1, busy: 0, envs: vec![] };
        let _supervisor = f.start_with(vec![unreachable, local]).await;
        let jobs = f.jobs(1).await;
        assert_eq!((jobs[0].1.as_str(), &jobs[0].2), ("proj", &JobKind::Collect));
    }

    #[actix::test]
    async fn a_task_whose_worker_stays_silent_past_its_lease_is_handed_out_again() {
        let f = fixture().await;
        let supervisor = f.start().await;
        let jobs = f.jobs(1).await;
        let collected =
            Collected { modules: BTreeMap::from([("tests/test_a.py".into(), 1)]), errors: BTreeMap::new(), env: None };
        supervisor.send(finished(f.id, jobs[0].0, Ok(JobOutput::Collected(collected)))).await.unwrap();
        let first = f.jobs(1).await;
        // The lease of one module: prepare (60 s) + module (7 s) + grace (10 s).
        tokio::time::pause();
        tokio::time::advance(Duration::from_secs(76)).await;
        assert!(f.executor.send(TakeJobs).await.unwrap().is_empty(), "not before the lease runs out");
        tokio::time::advance(Duration::from_secs(2)).await;
        let second = f.jobs(1).await;
        assert_ne!(second[0].0, first[0].0);
        assert_eq!(second[0].2, first[0].2);
    }

    /// Runs one evaluation of `proj` (modules `tests/test_a.py` of 1 test
    /// and `tests/test_b.py` of 5) on one slot under longest first, each
    /// module taking the wall time given; answers the modules in the order
    /// they were handed out.
    async fn run_longest_first(f: &Fixture, walls: [(&str, f64); 2]) -> Vec<String> {
        let one_slot = NodeLoad { addr: "n1".into(), slots: 1, busy: 0, envs: vec![] };
        let supervisor = f.start_balanced(vec![one_slot], Box::new(LongestFirst::default())).await;
        let jobs = f.jobs(1).await;
        let collected = Collected {
            modules: BTreeMap::from([("tests/test_a.py".into(), 1), ("tests/test_b.py".into(), 5)]),
            errors: BTreeMap::new(),
            env: Some("0123456789abcdef".into()),
        };
        supervisor.send(finished(f.id, jobs[0].0, Ok(JobOutput::Collected(collected)))).await.unwrap();
        let mut order = Vec::new();
        for _ in 0..2 {
            // One slot: the next module is handed out once the last one answered.
            let run = f.jobs(1).await.remove(0);
            let JobKind::Run { modules, .. } = &run.2 else { panic!("expected a run") };
            let module = modules[0].clone();
            let wall = walls.iter().find(|(m, _)| *m == module).unwrap().1;
            let tests = if module.ends_with("a.py") { 1 } else { 5 };
            let result = ModuleResult { wall, ..done(tests, 0) };
            let ran = BTreeMap::from([(module.clone(), result)]);
            supervisor.send(finished(f.id, run.0, Ok(JobOutput::Ran(ran)))).await.unwrap();
            order.push(module);
        }
        f.until_finished().await;
        order
    }

    #[actix::test]
    async fn longest_first_runs_the_module_history_says_is_longest_first() {
        let f = fixture().await;
        // No history: the module with more tests is taken for the longer.
        let walls = [("tests/test_a.py", 4.0), ("tests/test_b.py", 0.5)];
        assert_eq!(run_longest_first(&f, walls).await, ["tests/test_b.py", "tests/test_a.py"]);
        let view = f.view().await;
        let stored: Vec<f64> = view.modules.iter().map(|m| m.result.as_ref().unwrap().wall).collect();
        assert_eq!(stored, vec![4.0, 0.5], "each module's wall is stored");

        // The same project again: its own history says test_a is the long one.
        let again = fixture_on(f.store.clone()).await;
        assert_eq!(run_longest_first(&again, walls).await, ["tests/test_a.py", "tests/test_b.py"]);
        let events = again.store.send(crate::store::GetEvents(again.id)).await.unwrap().unwrap().unwrap();
        let assigned: Vec<&str> = events
            .iter()
            .filter(|e| e.kind == EventKind::Assigned && e.detail.contains("tests/test_a.py"))
            .map(|e| e.detail.as_str())
            .collect();
        assert_eq!(assigned.len(), 1);
        assert!(assigned[0].ends_with("tests/test_a.py (estimated 4.00 s from history)"), "{}", assigned[0]);
    }
}
