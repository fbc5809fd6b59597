//! Types shared by the evaluation subsystem, the executor and the store: what a
//! module's run produced and how it is graded. Plain data, no actors.

use serde::{Deserialize, Serialize};

/// The life of an evaluation as a client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvaluationStatus {
    Queued,
    Running,
    Done,
    Failed,
    /// Stopped by a client before its end.
    Cancelled,
}

impl EvaluationStatus {
    pub const ALL: [Self; 5] = [Self::Queued, Self::Running, Self::Done, Self::Failed, Self::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(Self::Queued),
            "running" => Some(Self::Running),
            "done" => Some(Self::Done),
            "failed" => Some(Self::Failed),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }
}

/// How a module's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModuleStatus {
    /// pytest ran the module and reported exactly the tests collection found.
    Done,
    /// The module failed to collect, its run's results could not be trusted
    /// (no end, other tests than collected), or pytest reported nothing of it.
    Error,
    /// The module ran past `module_timeout_s` and was killed.
    Timeout,
}

impl ModuleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Error => "error",
            Self::Timeout => "timeout",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "done" => Some(Self::Done),
            "error" => Some(Self::Error),
            "timeout" => Some(Self::Timeout),
            _ => None,
        }
    }
}

/// The outcome of one test case as pytest reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Passed,
    Failed,
    Skipped,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "passed" => Some(Self::Passed),
            "failed" => Some(Self::Failed),
            "skipped" => Some(Self::Skipped),
            "error" => Some(Self::Error),
            _ => None,
        }
    }
}

/// One test case of a module, as its run reported it (`executor::results`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestCase {
    pub name: String,
    pub classname: String,
    pub outcome: Outcome,
    /// Seconds, as pytest measured them.
    pub duration: f64,
    /// The failure, error or skip message, capped.
    pub message: Option<String>,
}

/// Test counts, summed at any level: module, project, evaluation. Sums
/// saturate at `u32::MAX`: counts come from peers too, and a peer's absurd
/// count must not crash the report of a whole evaluation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub passed: u32,
    pub failed: u32,
    pub skipped: u32,
    pub errors: u32,
}

impl Tally {
    pub fn add(&mut self, other: &Tally) {
        self.passed = self.passed.saturating_add(other.passed);
        self.failed = self.failed.saturating_add(other.failed);
        self.skipped = self.skipped.saturating_add(other.skipped);
        self.errors = self.errors.saturating_add(other.errors);
    }

    pub fn count(&mut self, outcome: Outcome) {
        let one = |n: &mut u32| *n = n.saturating_add(1);
        match outcome {
            Outcome::Passed => one(&mut self.passed),
            Outcome::Failed => one(&mut self.failed),
            Outcome::Skipped => one(&mut self.skipped),
            Outcome::Error => one(&mut self.errors),
        }
    }

    /// Tests that count towards the grade: skips count for nothing.
    pub fn graded(&self) -> u32 {
        self.passed.saturating_add(self.failed).saturating_add(self.errors)
    }

    /// `passed / (passed + failed + errors) × 100`, 0 when nothing was graded.
    pub fn percent_passed(&self) -> f64 {
        match self.graded() {
            0 => 0.0,
            n => round2(f64::from(self.passed) * 100.0 / f64::from(n)),
        }
    }

    /// `(failed + errors) / (passed + failed + errors) × 100`, 0 when nothing was graded.
    pub fn percent_failed(&self) -> f64 {
        match self.graded() {
            0 => 0.0,
            n => round2(f64::from(self.failed.saturating_add(self.errors)) * 100.0 / f64::from(n)),
        }
    }

    /// The passed share of `scale`.
    pub fn grade(&self, scale: f64) -> f64 {
        round2(self.percent_passed() / 100.0 * scale)
    }
}

/// Rounds to two decimals, so that reports stay readable and comparable.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Rounds to milliseconds: wall times of forked modules are a few of them,
/// and two decimals would round many to 0.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// What one module's run produced, as the executor hands it to its supervisor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleResult {
    pub status: ModuleStatus,
    pub tally: Tally,
    /// Seconds: the sum of the module's test durations, or the time it was
    /// given before a timeout.
    pub duration: f64,
    /// Seconds the module took on its node, wall clock: its forked child's
    /// life, or its share of the process it ran in. It includes what
    /// `duration` leaves out (collection, imports, fixtures set up outside
    /// tests), and it is what dispatch estimates from. Results written
    /// before it existed, and peers that do not send it, read as 0.
    #[serde(default)]
    pub wall: f64,
    /// The address of the node that ran it.
    pub node: String,
    /// pytest's console output for the run that held this module, capped.
    pub output: String,
    pub tests: Vec<TestCase>,
}

/// How long a module is expected to take on a node, from the wall times of
/// modules that finished before it: what dispatch orders pending work by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub seconds: f64,
    pub basis: Basis,
}

/// What an estimate rests on, from the closest evidence to the weakest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// This module of this very content ran before: the mean of its walls.
    Exact,
    /// A module of the same path ran in other content: the mean of theirs.
    Module,
    /// Nothing of the module ran: its test count times the mean wall of one
    /// test over every module recorded.
    PerTest,
    /// Nothing recorded at all: its test count times an assumed time per
    /// test, which only orders modules by their test counts.
    Tests,
}

impl Basis {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "history",
            Self::Module => "same module",
            Self::PerTest => "per-test mean",
            Self::Tests => "test count",
        }
    }
}

/// One step in the life of an evaluation, stamped with the Lamport time of
/// the node where it happened: sorted by (lamport, node), the log is in an
/// order that agrees with causality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub lamport: u64,
    pub node: String,
    pub kind: EventKind,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Submitted,
    Assigned,
    Started,
    Result,
    Reassigned,
    /// A node noticed that the supervisor died and is about to adopt.
    SupervisorLost,
    /// A node became the evaluation's supervisor in a new term.
    Adopted,
    Done,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::Assigned => "assigned",
            Self::Started => "started",
            Self::Result => "result",
            Self::Reassigned => "reassigned",
            Self::SupervisorLost => "supervisor_lost",
            Self::Adopted => "adopted",
            Self::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Submitted,
            Self::Assigned,
            Self::Started,
            Self::Result,
            Self::Reassigned,
            Self::SupervisorLost,
            Self::Adopted,
            Self::Done,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_follow_the_documented_formula() {
        let t = Tally { passed: 4, failed: 1, skipped: 3, errors: 0 };
        assert_eq!(t.percent_passed(), 80.0);
        assert_eq!(t.percent_failed(), 20.0);
        assert_eq!(t.grade(20.0), 16.0);
    }

    #[test]
    fn nothing_graded_is_zero_not_nan() {
        let t = Tally { skipped: 2, ..Tally::default() };
        assert_eq!(t.percent_passed(), 0.0);
        assert_eq!(t.percent_failed(), 0.0);
        assert_eq!(t.grade(20.0), 0.0);
    }

    /// Found by `tests/fuzz`: a peer's result with counts near
    /// `u32::MAX` overflowed the sums of the report.
    #[test]
    fn counts_from_peers_saturate_instead_of_overflowing() {
        let mut t = Tally { passed: u32::MAX, failed: 1, skipped: u32::MAX, errors: 0 };
        assert_eq!(t.graded(), u32::MAX);
        t.add(&Tally { passed: 1, failed: u32::MAX, skipped: 1, errors: u32::MAX });
        assert_eq!(t, Tally { passed: u32::MAX, failed: u32::MAX, skipped: u32::MAX, errors: u32::MAX });
        t.count(Outcome::Error);
        assert_eq!(t.errors, u32::MAX);
        assert_eq!(t.percent_passed(), 100.0);
        assert_eq!(t.percent_failed(), 100.0);
    }

    #[test]
    fn errors_count_against_the_grade() {
        let t = Tally { passed: 7, failed: 0, skipped: 0, errors: 1 };
        assert_eq!(t.percent_passed(), 87.5);
        assert_eq!(t.percent_failed(), 12.5);
        assert_eq!(t.grade(20.0), 17.5);
    }
}
