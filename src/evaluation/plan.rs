//! The bookkeeping of one evaluation, apart from its actor: which projects
//! still need collecting, which modules are pending, assigned or finished,
//! where each handed-out task runs and until when, and how pending modules
//! are grouped into tasks, each with how long it is expected to take and
//! the environment it runs in, for the balancer to order and place them.
//! No I/O; time comes in as milliseconds.

use std::collections::{BTreeMap, BTreeSet};

use super::model::Estimate;

/// A unit of work handed to an executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: u64,
    pub project: String,
    pub kind: TaskKind,
    /// The sum of its modules' estimates; none for a collection, whose
    /// length is unknown.
    pub estimate_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskKind {
    Collect,
    Run(Vec<String>),
}

/// What to do about a task that ran past its time-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeoutAction {
    /// The task held several modules: they run again one by one, so that only
    /// the one that hangs is reported as timed out.
    Split,
    /// The task's only module is to be reported as timed out.
    Report { project: String, module: String },
    /// Not a known task: already handled.
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProjectState {
    /// Modules unknown; a collect task is due or assigned.
    Uncollected {
        assigned: bool,
    },
    Collected,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModuleState {
    Pending,
    Assigned,
    Finished,
}

#[derive(Debug, Clone)]
struct Module {
    tests: u32,
    state: ModuleState,
    /// It timed out in a batch: from now on it runs in a task of its own.
    alone: bool,
    /// How long it is expected to take, once the history was asked.
    estimate: Option<Estimate>,
}

impl Module {
    fn new(tests: u32, state: ModuleState) -> Self {
        Self { tests, state, alone: false, estimate: None }
    }

    fn estimate_ms(&self) -> u64 {
        self.estimate.map_or(0, |e| (e.seconds.max(0.0) * 1000.0).round() as u64)
    }
}

#[derive(Debug, Clone)]
struct Project {
    state: ProjectState,
    modules: BTreeMap<String, Module>,
    /// The tag of its environment, as its collection told it.
    env: Option<String>,
}

/// Where a handed-out task runs, and until when its worker has to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placement {
    node: String,
    deadline_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Plan {
    modules_per_task: usize,
    next_task: u64,
    projects: BTreeMap<String, Project>,
    /// Tasks handed out and not yet answered, with where they run once placed.
    tasks: BTreeMap<u64, (Task, Option<Placement>)>,
    /// Every node a task was placed on: they are told when the evaluation ends.
    nodes_used: BTreeSet<String>,
}

impl Plan {
    /// A plan whose task ids start at `first_task`: each supervision term
    /// numbers its tasks apart, so that a late answer to a task of an earlier
    /// term is never taken for one of this term.
    pub fn new(modules_per_task: usize, first_task: u64) -> Self {
        Self {
            modules_per_task: modules_per_task.max(1),
            next_task: first_task.max(1),
            projects: BTreeMap::new(),
            tasks: BTreeMap::new(),
            nodes_used: BTreeSet::new(),
        }
    }

    /// Adds a project: still to be collected, already collected, or failed.
    pub fn add_project(&mut self, name: &str, collected: bool, failed: bool) {
        let state = match (failed, collected) {
            (true, _) => ProjectState::Failed,
            (false, true) => ProjectState::Collected,
            (false, false) => ProjectState::Uncollected { assigned: false },
        };
        self.projects.insert(name.to_owned(), Project { state, modules: BTreeMap::new(), env: None });
    }

    /// Adds a module of a collected project, finished when it has a stored result.
    pub fn add_module(&mut self, project: &str, module: &str, tests: u32, finished: bool) {
        if let Some(p) = self.projects.get_mut(project) {
            let state = if finished { ModuleState::Finished } else { ModuleState::Pending };
            p.modules.insert(module.to_owned(), Module::new(tests, state));
        }
    }

    /// Runs `module` in a task of its own from now on (a module with a
    /// time-out of its own); nothing when there is no such module.
    pub fn alone(&mut self, project: &str, module: &str) {
        if let Some(m) = self.projects.get_mut(project).and_then(|p| p.modules.get_mut(module)) {
            m.alone = true;
        }
    }

    /// Hands out every task that can start now: collections, then pending
    /// modules grouped by project, `modules_per_task` at a time, each task
    /// with the sum of its modules' estimates. In project and module order:
    /// the balancer's policy decides the order they start in.
    pub fn next_tasks(&mut self) -> Vec<Task> {
        let mut out = Vec::new();
        for (name, project) in self.projects.iter_mut() {
            match project.state {
                ProjectState::Uncollected { assigned: false } => {
                    project.state = ProjectState::Uncollected { assigned: true };
                    out.push((name.clone(), TaskKind::Collect, None));
                }
                ProjectState::Collected => {
                    let mut batch = Vec::new();
                    let mut batch_ms = 0;
                    for (module, m) in project.modules.iter_mut() {
                        if m.state != ModuleState::Pending {
                            continue;
                        }
                        m.state = ModuleState::Assigned;
                        if m.alone {
                            out.push((name.clone(), TaskKind::Run(vec![module.clone()]), Some(m.estimate_ms())));
                            continue;
                        }
                        batch.push(module.clone());
                        batch_ms += m.estimate_ms();
                        if batch.len() == self.modules_per_task {
                            let ms = std::mem::take(&mut batch_ms);
                            out.push((name.clone(), TaskKind::Run(std::mem::take(&mut batch)), Some(ms)));
                        }
                    }
                    if !batch.is_empty() {
                        out.push((name.clone(), TaskKind::Run(batch), Some(batch_ms)));
                    }
                }
                _ => {}
            }
        }
        out.into_iter()
            .map(|(project, kind, estimate_ms)| {
                let task = Task { id: self.next_task, project, kind, estimate_ms };
                self.next_task += 1;
                self.tasks.insert(task.id, (task.clone(), None));
                task
            })
            .collect()
    }

    /// Records that task `id` runs on `node` and must be answered by `deadline_ms`.
    pub fn place(&mut self, id: u64, node: &str, deadline_ms: u64) {
        if let Some((_, placement)) = self.tasks.get_mut(&id) {
            *placement = Some(Placement { node: node.to_owned(), deadline_ms });
            self.nodes_used.insert(node.to_owned());
        }
    }

    /// The node task `id` was placed on.
    pub fn node_of(&self, id: u64) -> Option<&str> {
        self.tasks.get(&id).and_then(|(_, p)| p.as_ref()).map(|p| p.node.as_str())
    }

    /// Every node a task of this evaluation was placed on.
    pub fn nodes_used(&self) -> &BTreeSet<String> {
        &self.nodes_used
    }

    /// The task is answered; later answers to it are ignored.
    pub fn close_task(&mut self, id: u64) -> Option<Task> {
        self.tasks.remove(&id).map(|(task, _)| task)
    }

    /// Takes task `id` back: its work is pending again, to be handed out anew
    /// under a new id. Answers the node it was placed on, if any.
    pub fn requeue(&mut self, id: u64) -> Option<String> {
        let (task, placement) = self.tasks.remove(&id)?;
        if let Some(p) = self.projects.get_mut(&task.project) {
            match &task.kind {
                TaskKind::Collect => {
                    if p.state == (ProjectState::Uncollected { assigned: true }) {
                        p.state = ProjectState::Uncollected { assigned: false };
                    }
                }
                TaskKind::Run(modules) => {
                    for module in modules {
                        if let Some(m) = p.modules.get_mut(module).filter(|m| m.state == ModuleState::Assigned) {
                            m.state = ModuleState::Pending;
                        }
                    }
                }
            }
        }
        placement.map(|p| p.node)
    }

    /// Tasks placed on `node`.
    pub fn tasks_on(&self, node: &str) -> Vec<u64> {
        self.tasks.iter().filter(|(_, (_, p))| p.as_ref().is_some_and(|p| p.node == node)).map(|(id, _)| *id).collect()
    }

    /// Placed tasks whose deadline has passed at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> Vec<u64> {
        self.tasks
            .iter()
            .filter(|(_, (_, p))| p.as_ref().is_some_and(|p| p.deadline_ms <= now_ms))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Whether some work waits to be handed out.
    pub fn has_pending(&self) -> bool {
        self.projects.values().any(|p| match p.state {
            ProjectState::Uncollected { assigned } => !assigned,
            ProjectState::Collected => p.modules.values().any(|m| m.state == ModuleState::Pending),
            ProjectState::Failed => false,
        })
    }

    /// Whether the project's modules are known or it has failed.
    pub fn is_collected(&self, project: &str) -> bool {
        self.projects.get(project).is_some_and(|p| !matches!(p.state, ProjectState::Uncollected { .. }))
    }

    /// Records a project's modules; modules known already keep their state.
    pub fn collected(&mut self, project: &str, modules: &[(String, u32)]) {
        if let Some(p) = self.projects.get_mut(project) {
            p.state = ProjectState::Collected;
            for (module, tests) in modules {
                p.modules.entry(module.clone()).or_insert(Module::new(*tests, ModuleState::Pending));
            }
        }
    }

    /// Records how long each of a project's modules is expected to take.
    pub fn estimated(&mut self, project: &str, estimates: &BTreeMap<String, Estimate>) {
        if let Some(p) = self.projects.get_mut(project) {
            for (module, estimate) in estimates {
                if let Some(m) = p.modules.get_mut(module) {
                    m.estimate = Some(*estimate);
                }
            }
        }
    }

    /// How long a module is expected to take, once known.
    pub fn estimate_of(&self, project: &str, module: &str) -> Option<Estimate> {
        self.projects.get(project).and_then(|p| p.modules.get(module)).and_then(|m| m.estimate)
    }

    /// Records the tag of a project's environment.
    pub fn set_env(&mut self, project: &str, env: Option<String>) {
        if let Some(p) = self.projects.get_mut(project) {
            p.env = env;
        }
    }

    /// The longest expected module of a project, whatever its state: where
    /// the project stands in the order of `LongestFirst`, which does not
    /// move as its modules are handed out.
    pub fn longest_ms(&self, project: &str) -> u64 {
        self.projects.get(project).and_then(|p| p.modules.values().map(Module::estimate_ms).max()).unwrap_or(0)
    }

    /// The tag of a project's environment, once its collection told it.
    pub fn env_of(&self, project: &str) -> Option<&str> {
        self.projects.get(project).and_then(|p| p.env.as_deref())
    }

    /// Each collected project with modules not finished, and those modules
    /// with their test counts: what a resumed evaluation asks estimates for.
    pub fn unfinished_modules(&self) -> Vec<(String, Vec<(String, u32)>)> {
        self.projects
            .iter()
            .filter(|(_, p)| p.state == ProjectState::Collected)
            .map(|(name, p)| {
                let modules = p
                    .modules
                    .iter()
                    .filter(|(_, m)| m.state != ModuleState::Finished)
                    .map(|(module, m)| (module.clone(), m.tests))
                    .collect::<Vec<_>>();
                (name.clone(), modules)
            })
            .filter(|(_, modules)| !modules.is_empty())
            .collect()
    }

    pub fn project_failed(&mut self, project: &str) {
        if let Some(p) = self.projects.get_mut(project) {
            p.state = ProjectState::Failed;
        }
    }

    /// Marks a module finished; false when it already was (a duplicate).
    pub fn finish(&mut self, project: &str, module: &str) -> bool {
        match self.projects.get_mut(project).and_then(|p| p.modules.get_mut(module)) {
            Some(m) if m.state != ModuleState::Finished => {
                m.state = ModuleState::Finished;
                true
            }
            _ => false,
        }
    }

    /// Decides what a time-out of task `id` means, and closes the task.
    pub fn timed_out(&mut self, id: u64) -> TimeoutAction {
        let Some((task, _)) = self.tasks.remove(&id) else {
            return TimeoutAction::Ignore;
        };
        let TaskKind::Run(modules) = task.kind else {
            return TimeoutAction::Ignore;
        };
        if let [module] = modules.as_slice() {
            return TimeoutAction::Report { project: task.project, module: module.clone() };
        }
        if let Some(p) = self.projects.get_mut(&task.project) {
            for module in &modules {
                if let Some(m) = p.modules.get_mut(module).filter(|m| m.state == ModuleState::Assigned) {
                    m.state = ModuleState::Pending;
                    m.alone = true;
                }
            }
        }
        TimeoutAction::Split
    }

    /// Tests collected in a module, to weigh a time-out.
    pub fn tests_in(&self, project: &str, module: &str) -> u32 {
        self.projects.get(project).and_then(|p| p.modules.get(module)).map_or(0, |m| m.tests)
    }

    /// Every project collected or failed, and every module finished.
    pub fn is_complete(&self) -> bool {
        self.projects.values().all(|p| match p.state {
            ProjectState::Uncollected { .. } => false,
            ProjectState::Failed => true,
            ProjectState::Collected => p.modules.values().all(|m| m.state == ModuleState::Finished),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modules(names: &[&str]) -> Vec<(String, u32)> {
        names.iter().map(|n| (n.to_string(), 2)).collect()
    }

    #[test]
    fn collects_first_then_runs_modules_in_batches() {
        let mut plan = Plan::new(2, 1);
        plan.add_project("a", false, false);
        let tasks = plan.next_tasks();
        assert_eq!(tasks, vec![Task { id: 1, project: "a".into(), kind: TaskKind::Collect, estimate_ms: None }]);
        assert!(plan.next_tasks().is_empty(), "a collection is handed out once");
        plan.close_task(1);
        plan.collected("a", &modules(&["m1", "m2", "m3"]));
        let tasks = plan.next_tasks();
        let kinds: Vec<_> = tasks.iter().map(|t| t.kind.clone()).collect();
        assert_eq!(kinds, vec![TaskKind::Run(vec!["m1".into(), "m2".into()]), TaskKind::Run(vec!["m3".into()])]);
        assert!(!plan.is_complete());
        for m in ["m1", "m2", "m3"] {
            assert!(plan.finish("a", m));
        }
        assert!(plan.is_complete());
    }

    #[test]
    fn a_duplicate_result_is_refused() {
        let mut plan = Plan::new(1, 1);
        plan.add_project("a", true, false);
        plan.add_module("a", "m", 1, false);
        assert!(plan.finish("a", "m"));
        assert!(!plan.finish("a", "m"));
        assert!(!plan.finish("a", "unknown"));
    }

    #[test]
    fn a_timed_out_batch_runs_again_one_module_at_a_time() {
        let mut plan = Plan::new(3, 1);
        plan.add_project("a", true, false);
        for m in ["m1", "m2", "m3"] {
            plan.add_module("a", m, 4, false);
        }
        let batch = plan.next_tasks();
        assert_eq!(batch.len(), 1);
        assert_eq!(plan.timed_out(batch[0].id), TimeoutAction::Split);
        let singles = plan.next_tasks();
        assert_eq!(singles.len(), 3);
        assert!(singles.iter().all(|t| matches!(&t.kind, TaskKind::Run(m) if m.len() == 1)));
        assert_eq!(plan.timed_out(singles[1].id), TimeoutAction::Report { project: "a".into(), module: "m2".into() });
        assert_eq!(plan.timed_out(singles[1].id), TimeoutAction::Ignore);
        assert_eq!(plan.tests_in("a", "m2"), 4);
    }

    #[test]
    fn resumed_plan_runs_only_unfinished_modules() {
        let mut plan = Plan::new(10, 1);
        plan.add_project("a", true, false);
        plan.add_module("a", "done.py", 1, true);
        plan.add_module("a", "todo.py", 1, false);
        plan.add_project("b", false, false);
        plan.add_project("c", false, true);
        let tasks = plan.next_tasks();
        assert_eq!(
            tasks.iter().map(|t| (t.project.as_str(), t.kind.clone())).collect::<Vec<_>>(),
            vec![("a", TaskKind::Run(vec!["todo.py".into()])), ("b", TaskKind::Collect)]
        );
    }

    #[test]
    fn a_requeued_task_is_handed_out_again() {
        let mut plan = Plan::new(2, 1);
        plan.add_project("a", true, false);
        for m in ["m1", "m2", "m3"] {
            plan.add_module("a", m, 1, false);
        }
        let tasks = plan.next_tasks();
        plan.place(tasks[0].id, "n1", 100);
        plan.place(tasks[1].id, "n2", 200);
        assert_eq!(plan.tasks_on("n1"), vec![tasks[0].id]);
        assert_eq!(plan.expired(150), vec![tasks[0].id]);
        assert!(!plan.has_pending());
        assert_eq!(plan.requeue(tasks[0].id), Some("n1".to_string()));
        assert!(plan.has_pending());
        let again = plan.next_tasks();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].kind, TaskKind::Run(vec!["m1".into(), "m2".into()]));
        assert_ne!(again[0].id, tasks[0].id, "a requeued task comes back under a new id");
        assert_eq!(plan.requeue(tasks[0].id), None, "a task is requeued once");
    }

    #[test]
    fn a_late_result_of_a_requeued_task_still_finishes_its_module_once() {
        let mut plan = Plan::new(1, 1);
        plan.add_project("a", true, false);
        plan.add_module("a", "m", 1, false);
        let first = plan.next_tasks();
        plan.requeue(first[0].id);
        let second = plan.next_tasks();
        assert!(plan.finish("a", "m"), "the late answer of the first task counts");
        assert!(!plan.finish("a", "m"), "the answer of the second does not count again");
        plan.close_task(second[0].id);
        assert!(plan.is_complete());
    }

    #[test]
    fn a_requeued_collection_is_handed_out_again() {
        let mut plan = Plan::new(1, 1);
        plan.add_project("a", false, false);
        let t = plan.next_tasks();
        plan.place(t[0].id, "n1", 10);
        plan.requeue(t[0].id);
        assert_eq!(plan.next_tasks()[0].kind, TaskKind::Collect);
    }

    #[test]
    fn failed_projects_do_not_hold_completion() {
        let mut plan = Plan::new(1, 1);
        plan.add_project("a", false, false);
        plan.next_tasks();
        assert!(!plan.is_complete());
        plan.project_failed("a");
        assert!(plan.is_complete());
    }

    fn estimates(list: &[(&str, f64)]) -> BTreeMap<String, Estimate> {
        let basis = crate::evaluation::model::Basis::Exact;
        list.iter().map(|(m, seconds)| (m.to_string(), Estimate { seconds: *seconds, basis })).collect()
    }

    #[test]
    fn tasks_carry_the_sum_of_their_modules_estimates() {
        let mut plan = Plan::new(2, 1);
        plan.add_project("a", true, false);
        for m in ["m1", "m2", "m3"] {
            plan.add_module("a", m, 1, false);
        }
        plan.estimated("a", &estimates(&[("m1", 0.5), ("m2", 4.0), ("m3", 2.25)]));
        plan.set_env("a", Some("0123456789abcdef".into()));
        let tasks = plan.next_tasks();
        let got: Vec<_> = tasks.iter().map(|t| (t.kind.clone(), t.estimate_ms)).collect();
        assert_eq!(
            got,
            vec![
                (TaskKind::Run(vec!["m1".into(), "m2".into()]), Some(4500)),
                (TaskKind::Run(vec!["m3".into()]), Some(2250))
            ]
        );
        assert_eq!(plan.env_of("a"), Some("0123456789abcdef"));
        assert_eq!(plan.estimate_of("a", "m3").map(|e| e.seconds), Some(2.25));
    }

    #[test]
    fn a_resumed_plan_asks_estimates_for_its_unfinished_modules_only() {
        let mut plan = Plan::new(1, 1);
        plan.add_project("a", true, false);
        plan.add_module("a", "done.py", 1, true);
        plan.add_module("a", "todo.py", 3, false);
        plan.add_project("b", false, false);
        plan.add_project("c", true, false);
        plan.add_module("c", "done.py", 1, true);
        assert_eq!(plan.unfinished_modules(), vec![("a".to_string(), vec![("todo.py".to_string(), 3)])]);
    }
}
