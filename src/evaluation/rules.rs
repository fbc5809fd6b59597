//! Grading rules: `evalmesh.toml` at a project's root. Points per module
//! (`weight`), modules whose tests only a teacher may read (`hidden`), a
//! time-out per module and the grade's scale:
//!
//! ```toml
//! grade_scale = 10        # the nota's scale; else the node's grading.grade_scale
//! default_weight = 1      # the weight of a module not listed below
//! run_student_tests = false  # with a reference suite, grade the project's own tests too
//!
//! [modules."tests/test_basics.py"]
//! weight = 2
//!
//! [modules."tests/test_secret.py"]
//! weight = 3
//! hidden = true
//! timeout_s = 30          # at most the node's executor.module_timeout_s
//! ```
//!
//! With rules a module is worth its weight, scaled by the share of its
//! graded tests that passed; a listed module that is missing or has no
//! result is worth 0 of its weight (a submission does not escape a module
//! by deleting it). Without rules every graded test is worth one point.
//! The file is read when the submission is taken in, before any of its
//! code runs, as any file of a submission is: not through a link, only a
//! regular file, capped. Pure.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::model::{round2, Tally};
use crate::executor::safe_file::{self, SafeReadError};

pub const FILE: &str = "evalmesh.toml";
pub const MAX_BYTES: u64 = 256 << 10;
/// The largest weight, scale or time-out a rule may give.
pub const MAX_NUMBER: f64 = 1e6;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    #[serde(default)]
    pub grade_scale: Option<f64>,
    #[serde(default = "one")]
    pub default_weight: f64,
    #[serde(default)]
    pub modules: BTreeMap<String, ModuleRule>,
    /// With a reference suite, the project's own tests run and count too.
    #[serde(default)]
    pub run_student_tests: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleRule {
    #[serde(default)]
    pub weight: Option<f64>,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub timeout_s: Option<f64>,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{FILE}: {0}")]
    Invalid(String),
    #[error("{FILE}: {0}")]
    Unreadable(SafeReadError),
}

/// What a project's rules give it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub points: f64,
    pub max_points: f64,
    pub nota: f64,
}

impl Rules {
    /// Parses and checks the rules; module paths are kept as pytest names
    /// them, relative to the project's root with `/`.
    pub fn parse(text: &str) -> Result<Self, RulesError> {
        let rules: Rules =
            toml::from_str(text).map_err(|e| RulesError::Invalid(e.to_string().trim_end().to_owned()))?;
        let bad = |what: String| Err(RulesError::Invalid(what));
        // Bounded, so that sums stay finite and a time-out is a Duration.
        let within = |x: f64, low: f64| x >= low && x <= MAX_NUMBER;
        if rules.grade_scale.is_some_and(|s| !(within(s, 0.0) && s > 0.0)) {
            return bad(format!("grade_scale must be a number above 0, at most {MAX_NUMBER}"));
        }
        if !within(rules.default_weight, 0.0) {
            return bad(format!("default_weight must be a number from 0 to {MAX_NUMBER}"));
        }
        for (path, rule) in &rules.modules {
            let clean = !path.is_empty()
                && !path.starts_with('/')
                && path.ends_with(".py")
                && path.split('/').all(|part| !part.is_empty() && part != "." && part != "..");
            if !clean {
                return bad(format!("module {path:?}: give a .py path relative to the project's root, with /"));
            }
            if rule.weight.is_some_and(|w| !within(w, 0.0)) {
                return bad(format!("module {path:?}: weight must be a number from 0 to {MAX_NUMBER}"));
            }
            if rule.timeout_s.is_some_and(|t| !(within(t, 0.0) && t > 0.0)) {
                return bad(format!(
                    "module {path:?}: timeout_s must be a number of seconds above 0, at most {MAX_NUMBER}"
                ));
            }
        }
        Ok(rules)
    }

    /// The rules at `root`, or `None` without the file.
    pub fn read(root: &Path) -> Result<Option<Self>, RulesError> {
        let bytes = safe_file::read_capped(&root.join(FILE), FILE, MAX_BYTES).map_err(RulesError::Unreadable)?;
        let Some(bytes) = bytes else { return Ok(None) };
        let text = String::from_utf8(bytes).map_err(|_| RulesError::Invalid("not UTF-8".into()))?;
        Self::parse(&text).map(Some)
    }

    pub fn weight(&self, module: &str) -> f64 {
        self.modules.get(module).and_then(|r| r.weight).unwrap_or(self.default_weight)
    }

    pub fn hidden(&self, module: &str) -> bool {
        self.modules.get(module).is_some_and(|r| r.hidden)
    }

    /// The module's own time-out, never past the node's `cap`.
    pub fn timeout(&self, module: &str, cap: Duration) -> Duration {
        let own = self.modules.get(module).and_then(|r| r.timeout_s).map(Duration::from_secs_f64);
        own.map_or(cap, |t| t.min(cap))
    }

    /// Points, the most there were, and the nota on the rules' scale (else
    /// `default_scale`), from each module's tally (`None`: no result).
    pub fn score<'a>(
        &'a self,
        modules: impl IntoIterator<Item = (&'a str, Option<Tally>)>,
        default_scale: f64,
    ) -> Score {
        let mut seen: BTreeMap<&str, Option<Tally>> = self.modules.keys().map(|m| (m.as_str(), None)).collect();
        seen.extend(modules);
        let (mut points, mut max_points) = (0.0, 0.0);
        for (module, tally) in seen {
            let weight = self.weight(module);
            max_points += weight;
            if let Some(t) = tally.filter(|t| t.graded() > 0) {
                points += weight * f64::from(t.passed) / f64::from(t.graded());
            }
        }
        let scale = self.grade_scale.unwrap_or(default_scale);
        let nota = if max_points > 0.0 { round2(points / max_points * scale) } else { 0.0 };
        Score { points: round2(points), max_points: round2(max_points), nota }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(passed: u32, failed: u32, skipped: u32, errors: u32) -> Option<Tally> {
        Some(Tally { passed, failed, skipped, errors })
    }

    const RULES: &str = r#"
grade_scale = 10
default_weight = 1

[modules."tests/test_a.py"]
weight = 2

[modules."tests/test_hidden.py"]
weight = 3
hidden = true
timeout_s = 1.5
"#;

    #[test]
    fn a_module_is_worth_its_weight_times_the_share_that_passed() {
        let rules = Rules::parse(RULES).unwrap();
        // a: 3 of 4 graded (the skip counts for nothing): 1.5 of 2; hidden:
        // all passed, 3 of 3; b, unlisted: 0 of 1 (an error); c, unlisted,
        // only skips: 0 of 1.
        let score = rules.score(
            [
                ("tests/test_a.py", tally(3, 1, 1, 0)),
                ("tests/test_hidden.py", tally(5, 0, 0, 0)),
                ("tests/test_b.py", tally(0, 0, 0, 1)),
                ("tests/test_c.py", tally(0, 0, 2, 0)),
            ],
            20.0,
        );
        assert_eq!(score, Score { points: 4.5, max_points: 7.0, nota: 6.43 });
    }

    #[test]
    fn a_listed_module_that_is_missing_counts_for_nothing_of_its_weight() {
        let rules = Rules::parse(RULES).unwrap();
        let score = rules.score([("tests/test_a.py", tally(2, 0, 0, 0))], 20.0);
        assert_eq!(score, Score { points: 2.0, max_points: 5.0, nota: 4.0 });
        let nothing = Rules::parse("default_weight = 0").unwrap().score([("tests/test_a.py", tally(1, 0, 0, 0))], 20.0);
        assert_eq!(nothing, Score { points: 0.0, max_points: 0.0, nota: 0.0 });
    }

    #[test]
    fn hidden_and_timeouts_are_per_module_and_capped_by_the_node() {
        let rules = Rules::parse(RULES).unwrap();
        assert!(rules.hidden("tests/test_hidden.py") && !rules.hidden("tests/test_a.py"));
        let cap = Duration::from_secs(60);
        assert_eq!(rules.timeout("tests/test_hidden.py", cap), Duration::from_millis(1500));
        assert_eq!(rules.timeout("tests/test_a.py", cap), cap);
        assert_eq!(rules.timeout("tests/test_hidden.py", Duration::from_secs(1)), Duration::from_secs(1));
        let defaults = Rules::parse("").unwrap();
        assert_eq!((defaults.grade_scale, defaults.default_weight), (None, 1.0));
    }

    #[test]
    fn refuses_rules_it_cannot_apply() {
        for (text, reason) in [
            ("grade_scale = 0", "grade_scale"),
            ("default_weight = -1", "default_weight"),
            ("[modules.\"tests/test_a.py\"]\nweight = -2", "weight"),
            ("[modules.\"tests/test_a.py\"]\ntimeout_s = 0", "timeout_s"),
            ("[modules.\"../test_a.py\"]\nweight = 1", "relative"),
            ("[modules.\"/abs/test_a.py\"]\nweight = 1", "relative"),
            ("[modules.\"tests/data.txt\"]\nweight = 1", "relative"),
            ("[modules.\"tests/test_a.py\"]\nwieght = 1", "unknown field"),
            ("points = 3", "unknown field"),
            ("grade_scale = ", "line 1, column 15"),
            ("grade_scale = 1e300", "grade_scale"),
            ("default_weight = inf", "default_weight"),
            ("[modules.\"tests/test_a.py\"]\nweight = 1e7", "weight"),
            ("[modules.\"tests/test_a.py\"]\ntimeout_s = 1e300", "timeout_s"),
            ("[modules.\"tests/test_a.py\"]\ntimeout_s = nan", "timeout_s"),
        ] {
            let err = Rules::parse(text).expect_err(text).to_string();
            assert!(err.starts_with("evalmesh.toml: ") && err.contains(reason), "{text:?}: {err}");
        }
    }

    #[test]
    fn reads_the_file_safely() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Rules::read(dir.path()).unwrap(), None);
        std::fs::write(dir.path().join(FILE), RULES).unwrap();
        assert_eq!(Rules::read(dir.path()).unwrap().unwrap().weight("tests/test_a.py"), 2.0);
        std::fs::remove_file(dir.path().join(FILE)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join(FILE)).unwrap();
        assert!(Rules::read(dir.path()).unwrap_err().to_string().contains("symbolic link"));
    }
}
