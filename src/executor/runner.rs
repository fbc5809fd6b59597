//! What the `Executor` actor runs for a job, behind one trait so that the
//! actor's slot and queue logic can be tested without Python: the real
//! `PytestRunner` builds (or reuses) the project's environment and runs pytest.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;

use super::collect::Collected;
use super::envs::EnvCache;
use super::pytest::{Pytest, RunReport};
use super::results::ModuleReport;
use super::ExecutorError;
use crate::evaluation::model::{round2, round3, ModuleResult, ModuleStatus, Tally};

/// Collects and runs a project's tests.
pub trait Runner {
    fn collect(&self, root: PathBuf) -> LocalBoxFuture<'static, Result<Collected, ExecutorError>>;
    fn run(
        &self,
        root: PathBuf,
        modules: Vec<String>,
        timeout: Duration,
    ) -> LocalBoxFuture<'static, Result<RunReport, ExecutorError>>;
    /// Lets go of what has been idle too long; called now and then.
    fn tidy(&self) {}
    /// Tags of the environments ready on this node, last used first.
    fn envs(&self) -> Vec<String> {
        Vec::new()
    }
}

pub struct PytestRunner {
    envs: Arc<EnvCache>,
    pytest: Rc<Pytest>,
}

impl PytestRunner {
    pub fn new(envs: EnvCache, pytest: Pytest) -> Self {
        Self { envs: Arc::new(envs), pytest: Rc::new(pytest) }
    }
}

impl Runner for PytestRunner {
    fn collect(&self, root: PathBuf) -> LocalBoxFuture<'static, Result<Collected, ExecutorError>> {
        let (envs, pytest) = (self.envs.clone(), self.pytest.clone());
        async move {
            let env = envs.ensure(&root).await?;
            let collected = pytest.collect(&env, &root).await?;
            Ok(Collected { env: Some(super::envs::tag(&env.key)), ..collected })
        }
        .boxed_local()
    }

    fn run(
        &self,
        root: PathBuf,
        modules: Vec<String>,
        timeout: Duration,
    ) -> LocalBoxFuture<'static, Result<RunReport, ExecutorError>> {
        let (envs, pytest) = (self.envs.clone(), self.pytest.clone());
        async move {
            let env = envs.ensure(&root).await?;
            pytest.run(&env, &root, &modules, timeout).await
        }
        .boxed_local()
    }

    fn tidy(&self) {
        self.pytest.tidy();
    }

    fn envs(&self) -> Vec<String> {
        self.envs.tags()
    }
}

/// What a completed run hands to [`module_results`].
pub struct Completed<'a> {
    pub reports: Result<BTreeMap<String, ModuleReport>, String>,
    pub exit_code: Option<i32>,
    pub output: &'a str,
    /// Each module's wall time; a module missing here took none of its own.
    pub walls: &'a BTreeMap<String, Duration>,
}

/// Turns a completed run into one result per module, each with its wall
/// time; a module pytest said nothing about is an error carrying pytest's
/// exit code and output, and every module of a run whose results cannot be
/// trusted is an error carrying the reason.
pub fn module_results(modules: &[String], run: Completed<'_>, node: &str) -> BTreeMap<String, ModuleResult> {
    let Completed { reports, exit_code, output, walls } = run;
    let code = exit_code.map_or_else(|| "none".to_owned(), |c| c.to_string());
    let wall = |module: &str| walls.get(module).map_or(0.0, |w| round3(w.as_secs_f64()));
    let error = |module: &str, text: String| ModuleResult {
        status: ModuleStatus::Error,
        tally: Tally { errors: 1, ..Tally::default() },
        duration: 0.0,
        wall: wall(module),
        node: node.to_owned(),
        output: text,
        tests: Vec::new(),
    };
    let mut reports = match reports {
        Ok(reports) => reports,
        Err(reason) => {
            return modules
                .iter()
                .map(|m| (m.clone(), error(m, format!("results refused: {reason} (exit code {code}):\n{output}"))))
                .collect()
        }
    };
    modules
        .iter()
        .map(|module| {
            let result = match reports.remove(module) {
                Some(report) => ModuleResult {
                    status: ModuleStatus::Done,
                    tally: report.tally,
                    duration: round2(report.duration),
                    wall: wall(module),
                    node: node.to_owned(),
                    output: output.to_owned(),
                    tests: report.tests,
                },
                None => error(module, format!("pytest reported no result for {module} (exit code {code}):\n{output}")),
            };
            (module.clone(), result)
        })
        .collect()
}

/// Holds a module's result to what collection found: a module whose run
/// reports other tests than the `expected` ones, or that ended in error,
/// earns nothing — every test it holds counts as an error — so that neither
/// a crash nor a forged report can raise a grade.
pub fn vet(result: ModuleResult, expected: u32) -> ModuleResult {
    let reported = u32::try_from(result.tests.iter().filter(|t| !t.classname.is_empty()).count()).unwrap_or(u32::MAX);
    let reason = match result.status {
        ModuleStatus::Done if reported == expected => return result,
        ModuleStatus::Done => format!("the run reported {reported} tests where collection found {expected}"),
        ModuleStatus::Error => String::new(),
        _ => return result,
    };
    let output = if reason.is_empty() { result.output } else { format!("{reason}\n{}", result.output) };
    ModuleResult {
        status: ModuleStatus::Error,
        tally: Tally { errors: expected.max(1), ..Tally::default() },
        output,
        ..result
    }
}

/// The result of a module killed at its time-out: every test it holds counts
/// as an error, so that a hanging module cannot raise a grade. `wall` is
/// the module's share of the killed run's time.
pub fn timeout_result(tests: u32, timeout: Duration, wall: Duration, output: &str, node: &str) -> ModuleResult {
    ModuleResult {
        status: ModuleStatus::Timeout,
        tally: Tally { errors: tests.max(1), ..Tally::default() },
        duration: round2(timeout.as_secs_f64()),
        wall: round3(wall.as_secs_f64()),
        node: node.to_owned(),
        output: format!("killed after {} s\n{output}", timeout.as_secs()),
        tests: Vec::new(),
    }
}

/// The result of a module that failed to collect.
pub fn collection_error_result(message: &str, node: &str) -> ModuleResult {
    ModuleResult {
        status: ModuleStatus::Error,
        tally: Tally { errors: 1, ..Tally::default() },
        duration: 0.0,
        wall: 0.0,
        node: node.to_owned(),
        output: message.to_owned(),
        tests: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluation::model::{Outcome, TestCase};

    fn case(name: &str, outcome: Outcome) -> TestCase {
        TestCase { name: name.into(), classname: "tests.test_a".into(), outcome, duration: 0.1, message: None }
    }

    fn done(tests: Vec<TestCase>) -> ModuleResult {
        let mut tally = Tally::default();
        for t in &tests {
            tally.count(t.outcome);
        }
        ModuleResult {
            status: ModuleStatus::Done,
            tally,
            duration: 0.2,
            wall: 0.3,
            node: "n".into(),
            output: "out".into(),
            tests,
        }
    }

    #[test]
    fn each_module_gets_its_own_wall_time() {
        let report = |passed| ModuleReport {
            tally: Tally { passed, ..Tally::default() },
            duration: 0.1,
            tests: (0..passed).map(|i| case(&format!("t{i}"), Outcome::Passed)).collect(),
        };
        let modules: Vec<String> = ["a.py", "b.py", "gone.py"].map(String::from).to_vec();
        let walls = BTreeMap::from([
            ("a.py".to_owned(), Duration::from_millis(1234)),
            ("b.py".to_owned(), Duration::from_micros(40_400)),
            ("gone.py".to_owned(), Duration::from_millis(9)),
        ]);
        let reports = Ok(BTreeMap::from([("a.py".to_owned(), report(2)), ("b.py".to_owned(), report(1))]));
        let run = Completed { reports, exit_code: Some(0), output: "", walls: &walls };
        let results = module_results(&modules, run, "n");
        let walls: Vec<f64> = modules.iter().map(|m| results[m].wall).collect();
        assert_eq!(walls, vec![1.234, 0.04, 0.009]);
        assert_eq!(results["a.py"].duration, 0.1, "duration stays pytest's own");
        assert_eq!(results["gone.py"].status, ModuleStatus::Error);
    }

    #[test]
    fn a_result_that_matches_collection_is_kept() {
        let result = done(vec![case("a", Outcome::Passed), case("b", Outcome::Failed)]);
        assert_eq!(vet(result.clone(), 2), result);
    }

    #[test]
    fn more_or_fewer_tests_than_collected_earn_nothing() {
        let forged = done((0..50).map(|i| case(&format!("t{i}"), Outcome::Passed)).collect());
        let vetted = vet(forged, 4);
        assert_eq!((vetted.status, vetted.tally), (ModuleStatus::Error, Tally { errors: 4, ..Tally::default() }));
        assert!(vetted.output.starts_with("the run reported 50 tests where collection found 4"), "{}", vetted.output);

        let short = vet(done(vec![case("a", Outcome::Passed)]), 3);
        assert_eq!(short.tally, Tally { errors: 3, ..Tally::default() });
    }

    #[test]
    fn an_error_counts_every_collected_test_and_a_class_error_is_no_test() {
        let walls = BTreeMap::new();
        let run = Completed { reports: Err("no end".into()), exit_code: Some(0), output: "", walls: &walls };
        let refused = module_results(&["tests/test_a.py".into()], run, "n");
        let vetted = vet(refused["tests/test_a.py"].clone(), 5);
        assert_eq!(vetted.tally, Tally { errors: 5, ..Tally::default() });
        assert!(vetted.output.starts_with("results refused: no end (exit code 0)"), "{}", vetted.output);

        let mut class_error = case("tests.test_a.TestBad", Outcome::Error);
        class_error.classname = String::new();
        let result = done(vec![case("a", Outcome::Passed), class_error]);
        assert_eq!(vet(result.clone(), 1), result);
    }
}
