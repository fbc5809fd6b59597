//! Reading what a pytest run reports over its results pipe (see
//! `launcher.py`): one JSON object a line, the last one `end`. Pure helpers
//! of the executor, no actix inside: the bytes come in, capped, and the
//! per-module reports or the collection come out.
//!
//! The pipe is the only channel the node reads a run's results from, and it
//! trusts it only as far as it is consistent: a stream without `end` (the
//! process died, or a test called `os._exit`), a line that is not a record,
//! a test of a module the run was not given, or a phase reported twice makes
//! the run's result untrustworthy, and the caller reports its modules as
//! errors with the reason. Nothing after `end` is read.
//!
//! Counting follows pytest's terminal summary: a call that passes counts
//! passed (an unexpected pass too), one that fails counts failed (a strict
//! unexpected pass too), a skip in any phase counts skipped (an expected
//! failure too), and a failing setup or teardown counts an error — so a test
//! that passes and whose teardown fails counts passed and error, as pytest
//! says. Each test keeps one `TestCase`, whose outcome is the worst of its
//! phases: failed, then error, then skipped, then passed.
//!
//! Subtests (unittest's `subTest`, pytest's `subtests` fixture) arrive as
//! more reports of their test's call phase, flagged `subtest`; they are the
//! one case where a phase reports more than once. pytest 9's summary, at its
//! default verbosity (`pytest_report_teststatus` in `_pytest/subtests.py`),
//! counts each failed subtest as one failure and nothing for the others,
//! besides the test itself; so does the tally, and a failed subtest makes
//! its test's case failed. A subtest's time is inside its test's call, and
//! not added again. A flagged report cannot raise a grade: the flag is what
//! lets a phase come again, and a flagged report only ever adds a failure.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use super::collect::Collected;
use crate::evaluation::model::{Outcome, Tally, TestCase};

/// What one module's tests added up to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModuleReport {
    pub tally: Tally,
    /// Seconds: the sum of the module's phase durations, unrounded.
    pub duration: f64,
    /// One per test, in the order they first reported.
    pub tests: Vec<TestCase>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase", deny_unknown_fields)]
enum Record {
    Report {
        nodeid: String,
        when: Phase,
        outcome: PhaseOutcome,
        duration: f64,
        /// Expected failures already arrive as skips and strict unexpected
        /// passes as failures: the flag only says why.
        #[serde(rename = "wasxfail")]
        _wasxfail: bool,
        message: Option<String>,
        /// One subtest of the test's call, of which there may be many.
        #[serde(default)]
        subtest: bool,
    },
    CollectError {
        nodeid: String,
        message: String,
    },
    Collected {
        modules: BTreeMap<String, u32>,
        errors: BTreeMap<String, String>,
    },
    End {
        exitstatus: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Phase {
    Setup,
    Call,
    Teardown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum PhaseOutcome {
    Passed,
    Failed,
    Skipped,
}

/// Takes the pipe's bytes as they come, keeping at most `cap` of them.
#[derive(Debug)]
pub struct StreamReader {
    cap: usize,
    received: usize,
    line: Vec<u8>,
    records: Vec<Record>,
    ended: bool,
    problem: Option<String>,
}

/// A finished stream: its records up to `end`, or what was wrong with it.
#[derive(Debug)]
pub struct Stream {
    records: Vec<Record>,
    problem: Option<String>,
}

impl StreamReader {
    pub fn new(cap: usize) -> Self {
        Self { cap, received: 0, line: Vec::new(), records: Vec::new(), ended: false, problem: None }
    }

    /// Feeds the next bytes read from the pipe; past the cap, or past `end`,
    /// bytes are dropped (the reader still drains the pipe, so the run never
    /// blocks on it).
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.ended || self.problem.is_some() {
            return;
        }
        self.received += bytes.len();
        if self.received > self.cap {
            self.problem = Some(format!("the run reported more than {} bytes of results", self.cap));
            return;
        }
        for &b in bytes {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            let line = std::mem::take(&mut self.line);
            match serde_json::from_slice::<Record>(&line) {
                Ok(Record::End { .. }) => {
                    self.ended = true;
                    return;
                }
                Ok(record) => self.records.push(record),
                Err(e) => {
                    self.problem = Some(format!("the run wrote a line that is not a result: {e}"));
                    return;
                }
            }
        }
    }

    pub fn finish(self) -> Stream {
        let problem = self
            .problem
            .or_else(|| (!self.ended).then(|| "the run ended before pytest finished (no end of results)".to_owned()));
        Stream { records: self.records, problem }
    }
}

impl Stream {
    /// The collection a `collect` run reported.
    pub fn collected(self, message_cap: usize) -> Result<Collected, String> {
        if let Some(problem) = self.problem {
            return Err(problem);
        }
        let mut found = None;
        for record in self.records {
            match record {
                Record::Collected { modules, errors } if found.is_none() => {
                    let errors = errors.into_iter().map(|(k, v)| (k, cap_message(&v, message_cap))).collect();
                    found = Some(Collected { modules, errors, env: None });
                }
                _ => return Err("the collection run reported something other than one collection".into()),
            }
        }
        found.ok_or_else(|| "the collection run reported no collection".into())
    }

    /// One report per module of `modules` that reported anything, or why
    /// the stream cannot be trusted.
    pub fn module_reports(
        self,
        modules: &[String],
        message_cap: usize,
    ) -> Result<BTreeMap<String, ModuleReport>, String> {
        if let Some(problem) = self.problem {
            return Err(problem);
        }
        let mut reports: BTreeMap<String, ModuleReport> = BTreeMap::new();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        let mut seen: HashSet<(String, Phase)> = HashSet::new();
        for record in self.records {
            match record {
                Record::Report { nodeid, when, outcome, duration, message, subtest, .. } => {
                    let module = module_of(&nodeid, modules)?;
                    let (phase, duration) = if subtest {
                        if when != Phase::Call {
                            return Err(format!("the run reported a subtest of {nodeid} in its {when:?}"));
                        }
                        (subtest_outcome(outcome), 0.0)
                    } else {
                        if !seen.insert((nodeid.clone(), when)) {
                            return Err(format!("the run reported the {when:?} of {nodeid} twice"));
                        }
                        let duration = if duration.is_finite() && duration > 0.0 { duration } else { 0.0 };
                        (phase_outcome(when, outcome), duration)
                    };
                    let report = reports.entry(module.clone()).or_default();
                    report.duration += duration;
                    if let Some(counted) = phase {
                        report.tally.count(counted);
                    }
                    let at = *index.entry(nodeid.clone()).or_insert_with(|| {
                        report.tests.push(test_case(&nodeid));
                        report.tests.len() - 1
                    });
                    let case = &mut report.tests[at];
                    case.duration += duration;
                    if let Some(counted) = phase {
                        if rank(counted) > rank(case.outcome) {
                            case.outcome = counted;
                            case.message = message.map(|m| cap_message(&m, message_cap));
                        }
                    }
                }
                Record::CollectError { nodeid, message } => {
                    let module = module_of(&nodeid, modules)?;
                    let report = reports.entry(module).or_default();
                    report.tally.count(Outcome::Error);
                    // A collector is no test: an empty classname says so.
                    report.tests.push(TestCase {
                        name: nodeid,
                        classname: String::new(),
                        outcome: Outcome::Error,
                        duration: 0.0,
                        message: Some(cap_message(&message, message_cap)),
                    });
                }
                Record::Collected { .. } | Record::End { .. } => {
                    return Err("the run reported a collection where test results belong".into())
                }
            }
        }
        Ok(reports)
    }
}

/// What a phase adds to the tally, if anything.
fn phase_outcome(when: Phase, outcome: PhaseOutcome) -> Option<Outcome> {
    match (when, outcome) {
        (_, PhaseOutcome::Skipped) => Some(Outcome::Skipped),
        (Phase::Call, PhaseOutcome::Passed) => Some(Outcome::Passed),
        (Phase::Call, PhaseOutcome::Failed) => Some(Outcome::Failed),
        (_, PhaseOutcome::Failed) => Some(Outcome::Error),
        (_, PhaseOutcome::Passed) => None,
    }
}

/// What a subtest adds to the tally: pytest's summary counts a failed one,
/// and says nothing of one that passes, skips or fails as expected.
fn subtest_outcome(outcome: PhaseOutcome) -> Option<Outcome> {
    match outcome {
        PhaseOutcome::Failed => Some(Outcome::Failed),
        PhaseOutcome::Passed | PhaseOutcome::Skipped => None,
    }
}

fn rank(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Passed => 0,
        Outcome::Skipped => 1,
        Outcome::Error => 2,
        Outcome::Failed => 3,
    }
}

/// The module of `nodeid` among those the run was given.
fn module_of(nodeid: &str, modules: &[String]) -> Result<String, String> {
    let path = nodeid.split("::").next().unwrap_or_default();
    modules
        .iter()
        .find(|m| m.as_str() == path)
        .cloned()
        .ok_or_else(|| format!("the run reported {nodeid}, which is not in the modules it was given"))
}

/// A test named as pytest's JUnit report names it: the dotted module path
/// and classes as `classname`, the function (with its parameters) as `name`.
fn test_case(nodeid: &str) -> TestCase {
    let mut parts: Vec<&str> = nodeid.split("::").collect();
    let name = if parts.len() > 1 { parts.pop().unwrap_or_default() } else { "" };
    let mut classname: Vec<String> = Vec::new();
    if let Some(path) = parts.first() {
        classname.push(path.trim_end_matches(".py").replace('/', "."));
    }
    classname.extend(parts.iter().skip(1).map(|p| p.to_string()));
    TestCase {
        name: if name.is_empty() { classname.join(".") } else { name.to_owned() },
        classname: if name.is_empty() { String::new() } else { classname.join(".") },
        outcome: Outcome::Passed,
        duration: 0.0,
        message: None,
    }
}

/// Cuts `text` to at most `max_bytes` bytes at a char boundary and appends
/// "…" when anything was cut, so a reader can tell a capped text from a
/// short one.
pub fn cap_message(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut capped = String::with_capacity(end + '…'.len_utf8());
    capped.push_str(&text[..end]);
    capped.push('…');
    capped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(nodeid: &str, when: &str, outcome: &str, wasxfail: bool, message: Option<&str>) -> String {
        serde_json::json!({"event": "report", "nodeid": nodeid, "when": when, "outcome": outcome,
            "duration": 0.5, "wasxfail": wasxfail, "message": message})
        .to_string()
    }

    fn stream(lines: &[String], end: bool) -> Stream {
        let mut reader = StreamReader::new(1 << 20);
        let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        if end {
            text.push_str("{\"event\": \"end\", \"exitstatus\": 1}\n");
        }
        // Fed in odd-sized pieces, as a pipe hands them over.
        for chunk in text.as_bytes().chunks(7) {
            reader.feed(chunk);
        }
        reader.finish()
    }

    fn phases(nodeid: &str, setup: &str, call: Option<(&str, bool)>, teardown: &str) -> Vec<String> {
        let mut out = vec![report(nodeid, "setup", setup, false, (setup != "passed").then_some("setup says"))];
        if let Some((outcome, xfail)) = call {
            out.push(report(nodeid, "call", outcome, xfail, (outcome != "passed").then_some("call says")));
        }
        out.push(report(nodeid, "teardown", teardown, false, (teardown != "passed").then_some("teardown says")));
        out
    }

    #[test]
    fn counts_as_pytests_summary_does() {
        let m = "tests/test_a.py";
        let mut lines = Vec::new();
        lines.extend(phases("tests/test_a.py::test_pass", "passed", Some(("passed", false)), "passed"));
        lines.extend(phases("tests/test_a.py::test_fail", "passed", Some(("failed", false)), "passed"));
        lines.extend(phases("tests/test_a.py::test_setup_error", "failed", None, "passed"));
        lines.extend(phases("tests/test_a.py::test_skip", "skipped", None, "passed"));
        lines.extend(phases("tests/test_a.py::test_xfail", "passed", Some(("skipped", true)), "passed"));
        lines.extend(phases("tests/test_a.py::test_xpass", "passed", Some(("passed", true)), "passed"));
        lines.extend(phases("tests/test_a.py::TestK::test_strict_xpass", "passed", Some(("failed", false)), "passed"));
        lines.extend(phases("tests/test_a.py::test_teardown_error", "passed", Some(("passed", false)), "failed"));
        lines.extend(phases("tests/test_a.py::test_fail_and_teardown[1]", "passed", Some(("failed", false)), "failed"));
        let reports = stream(&lines, true).module_reports(&[m.to_owned()], 100).unwrap();
        let r = &reports[m];
        assert_eq!(r.tally, Tally { passed: 3, failed: 3, skipped: 2, errors: 3 });
        assert_eq!(r.tests.len(), 9);
        let outcome = |name: &str| r.tests.iter().find(|t| t.name == name).map(|t| (t.outcome, t.message.clone()));
        assert_eq!(outcome("test_teardown_error"), Some((Outcome::Error, Some("teardown says".into()))));
        assert_eq!(outcome("test_fail_and_teardown[1]"), Some((Outcome::Failed, Some("call says".into()))));
        assert_eq!(outcome("test_xpass"), Some((Outcome::Passed, None)));
        assert_eq!(outcome("test_skip"), Some((Outcome::Skipped, Some("setup says".into()))));
        let strict = r.tests.iter().find(|t| t.name == "test_strict_xpass").unwrap();
        assert_eq!(strict.classname, "tests.test_a.TestK");
        assert!((strict.duration - 1.5).abs() < 1e-9);
        assert!((r.duration - 12.5).abs() < 1e-9);
    }

    fn subtest(nodeid: &str, outcome: &str, xfail: bool) -> String {
        serde_json::json!({"event": "report", "nodeid": nodeid, "when": "call", "outcome": outcome,
            "duration": 0.25, "wasxfail": xfail, "message": (outcome != "passed").then_some("subtest says"),
            "subtest": true})
        .to_string()
    }

    /// A test and its subtests as the launcher reports them: setup, one
    /// report per subtest, the test's own call, teardown.
    fn with_subtests(nodeid: &str, subtests: &[(&str, bool)], call: &str) -> Vec<String> {
        let mut out = vec![report(nodeid, "setup", "passed", false, None)];
        out.extend(subtests.iter().map(|(outcome, xfail)| subtest(nodeid, outcome, *xfail)));
        out.push(report(nodeid, "call", call, false, (call != "passed").then_some("call says")));
        out.push(report(nodeid, "teardown", "passed", false, None));
        out
    }

    #[test]
    fn subtests_count_as_pytests_summary_counts_them() {
        // pytest 9.2, default verbosity, on the same tests: "4 failed, 3 passed".
        let m = "tests/test_s.py";
        let mut lines = Vec::new();
        // unittest's subTest: the test itself still passes.
        lines.extend(with_subtests("tests/test_s.py::T::test_all_pass", &[("passed", false); 3], "passed"));
        lines.extend(with_subtests(
            "tests/test_s.py::T::test_two_fail",
            &[("passed", false), ("failed", false), ("failed", false)],
            "passed",
        ));
        // The subtests fixture: pytest fails the test that holds a failed one.
        lines.extend(with_subtests(
            "tests/test_s.py::test_one_fails",
            &[("passed", false), ("failed", false)],
            "failed",
        ));
        lines.extend(with_subtests(
            "tests/test_s.py::test_skip_xfail",
            &[("skipped", false), ("skipped", true)],
            "passed",
        ));
        let reports = stream(&lines, true).module_reports(&[m.to_owned()], 100).unwrap();
        let r = &reports[m];
        assert_eq!(r.tally, Tally { passed: 3, failed: 4, skipped: 0, errors: 0 });
        assert_eq!(r.tests.len(), 4, "one case a test, not a subtest");
        let case = |name: &str| r.tests.iter().find(|t| t.name == name).unwrap();
        assert_eq!(case("test_all_pass").outcome, Outcome::Passed);
        assert_eq!(case("test_two_fail").outcome, Outcome::Failed);
        assert_eq!(case("test_two_fail").message.as_deref(), Some("subtest says"));
        assert_eq!(case("test_one_fails").outcome, Outcome::Failed);
        assert_eq!(case("test_skip_xfail").outcome, Outcome::Passed);
        // A subtest's time is inside its test's call: 3 phases of 0.5 s a test.
        assert!((r.duration - 6.0).abs() < 1e-9, "{}", r.duration);
    }

    #[test]
    fn a_second_call_is_refused_among_subtests_and_a_subtest_outside_a_call() {
        let m = ["tests/test_s.py".to_owned()];
        let id = "tests/test_s.py::test_x";
        let mut forged = with_subtests(id, &[("passed", false), ("failed", false)], "failed");
        forged.insert(3, report(id, "call", "passed", false, None));
        let err = stream(&forged, true).module_reports(&m, 100).unwrap_err();
        assert!(err.contains("the Call of tests/test_s.py::test_x twice"), "{err}");

        let mut in_setup = with_subtests(id, &[], "passed");
        in_setup.insert(
            1,
            serde_json::json!({"event": "report", "nodeid": id, "when": "setup", "outcome": "passed",
                "duration": 0.0, "wasxfail": false, "message": null, "subtest": true})
            .to_string(),
        );
        let err = stream(&in_setup, true).module_reports(&m, 100).unwrap_err();
        assert!(err.contains("subtest of tests/test_s.py::test_x in its Setup"), "{err}");
    }

    #[test]
    fn a_collection_error_of_a_class_counts_one_error_in_its_module() {
        let lines = [serde_json::json!({"event": "collecterror", "nodeid": "t/test_b.py::TestBad", "message": "boom"})
            .to_string()];
        let reports = stream(&lines, true).module_reports(&["t/test_b.py".to_owned()], 100).unwrap();
        assert_eq!(reports["t/test_b.py"].tally, Tally { errors: 1, ..Tally::default() });
        assert_eq!(reports["t/test_b.py"].tests[0].message.as_deref(), Some("boom"));
    }

    #[test]
    fn untrustworthy_streams_are_refused_with_their_reason() {
        let m = ["tests/test_a.py".to_owned()];
        let ok = phases("tests/test_a.py::test_x", "passed", Some(("passed", false)), "passed");
        let err = stream(&ok, false).module_reports(&m, 100).unwrap_err();
        assert!(err.contains("no end of results"), "{err}");

        let other = phases("tests/test_other.py::test_x", "passed", Some(("passed", false)), "passed");
        let err = stream(&other, true).module_reports(&m, 100).unwrap_err();
        assert!(err.contains("not in the modules it was given"), "{err}");

        let twice = [ok.clone(), ok.clone()].concat();
        let err = stream(&twice, true).module_reports(&m, 100).unwrap_err();
        assert!(err.contains("twice"), "{err}");

        let garbage = vec!["<testsuite tests=\"50\"/>".to_owned()];
        let err = stream(&garbage, true).module_reports(&m, 100).unwrap_err();
        assert!(err.contains("not a result"), "{err}");

        let mut reader = StreamReader::new(10);
        reader.feed(b"{\"event\": \"end\", \"exitstatus\": 0}\n");
        let err = reader.finish().module_reports(&m, 100).unwrap_err();
        assert!(err.contains("more than 10 bytes"), "{err}");
    }

    #[test]
    fn nothing_after_end_is_read() {
        let m = ["tests/test_a.py".to_owned()];
        let mut reader = StreamReader::new(1 << 20);
        let fail = phases("tests/test_a.py::test_x", "passed", Some(("failed", false)), "passed");
        for line in &fail {
            reader.feed(format!("{line}\n").as_bytes());
        }
        reader.feed(b"{\"event\": \"end\", \"exitstatus\": 1}\n");
        for i in 0..50 {
            let forged = phases(&format!("tests/test_a.py::test_{i}"), "passed", Some(("passed", false)), "passed");
            for line in forged {
                reader.feed(format!("{line}\n").as_bytes());
            }
        }
        let reports = reader.finish().module_reports(&m, 100).unwrap();
        assert_eq!(reports["tests/test_a.py"].tally, Tally { failed: 1, ..Tally::default() });
    }

    #[test]
    fn reads_one_collection_and_caps_its_messages() {
        let line = serde_json::json!({"event": "collected", "modules": {"t/test_a.py": 3},
            "errors": {"t/test_b.py": "ééééé"}})
        .to_string();
        let collected = stream(std::slice::from_ref(&line), true).collected(5).unwrap();
        assert_eq!(collected.modules["t/test_a.py"], 3);
        assert_eq!(collected.errors["t/test_b.py"], "éé…");
        assert!(stream(&[line.clone(), line], true).collected(5).is_err());
        assert!(stream(&[], true).collected(5).unwrap_err().contains("no collection"));
    }

    #[test]
    fn message_cap_cuts_at_a_char_boundary() {
        assert_eq!(cap_message("abc", 5), "abc");
        assert_eq!(cap_message("ééé", 3), "é…");
    }
}
