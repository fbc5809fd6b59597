//! Builds the JSON a client reads for one evaluation — `_run_info`,
//! `module_results` and `projects` — from what the store holds. Pure.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::model::{round2, ModuleResult, Tally};
use super::rules::{Rules, Score};
use crate::store::{EvaluationSummary, EvaluationView};

/// The full answer of `GET /evaluation/{id}`; `detail` adds every test case
/// and each module's captured output.
pub fn evaluation(view: &EvaluationView, grade_scale: f64, now: DateTime<Utc>, detail: bool) -> Value {
    let r = &view.record;
    let mut module_results: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    let mut project_tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut total = Tally::default();
    let mut finished = 0usize;
    let rules: BTreeMap<&str, &Rules> =
        view.projects.iter().filter_map(|p| Some((p.name.as_str(), p.rules.as_ref()?))).collect();
    // What the rules score: every module of the project, with its tally once it has a result.
    let mut by_project: BTreeMap<&str, Vec<(&str, Option<Tally>)>> = BTreeMap::new();
    for m in &view.modules {
        by_project.entry(m.project.as_str()).or_default().push((m.module.as_str(), m.result.as_ref().map(|r| r.tally)));
        let Some(result) = &m.result else { continue };
        finished += 1;
        project_tallies.entry(m.project.as_str()).or_default().add(&result.tally);
        total.add(&result.tally);
        let hidden = rules.get(m.project.as_str()).is_some_and(|r| r.hidden(&m.module));
        module_results.entry(m.project.as_str()).or_default().insert(m.module.clone(), module(result, detail, hidden));
    }
    let projects: Map<String, Value> = view
        .projects
        .iter()
        .map(|p| {
            let t = project_tallies.get(p.name.as_str()).copied().unwrap_or_default();
            let score = match &p.rules {
                Some(rules) => rules.score(by_project.remove(p.name.as_str()).unwrap_or_default(), grade_scale),
                None => {
                    Score { points: f64::from(t.passed), max_points: f64::from(t.graded()), nota: t.grade(grade_scale) }
                }
            };
            // A project that could not be graded gets nothing, whatever its rules.
            let score = if p.error.is_some() { Score { points: 0.0, nota: 0.0, ..score } } else { score };
            let value = json!({
                "label": p.shown_as(),
                "passed": t.passed,
                "failed": t.failed,
                "skipped": t.skipped,
                "errors": t.errors,
                "%passed": t.percent_passed(),
                "%failed": t.percent_failed(),
                "points": score.points,
                "max_points": score.max_points,
                "nota": score.nota,
                "error": p.error,
            });
            (p.name.clone(), value)
        })
        .collect();
    let eval_time = match (r.started_at, r.finished_at) {
        (Some(start), Some(end)) => seconds(end - start),
        (Some(start), None) => seconds(now - start),
        _ => 0.0,
    };
    json!({
        "id": r.id,
        "status": r.status,
        "supervisor": r.supervisor,
        "epoch": r.epoch,
        "submitted_at": r.submitted_at,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "error": r.error,
        "_run_info": {
            "errors": total.errors,
            "%passed": total.percent_passed(),
            "%failed": total.percent_failed(),
            "nota": total.grade(grade_scale),
            "eval_time": eval_time,
            "passed": total.passed,
            "failed": total.failed,
            "skipped": total.skipped,
            "projects": view.projects.len(),
            "modules_total": view.modules.len(),
            "modules_done": finished,
        },
        "module_results": module_results,
        "projects": projects,
    })
}

fn module(r: &ModuleResult, detail: bool, hidden: bool) -> Value {
    let mut v = json!({
        "status": r.status,
        "passed": r.tally.passed,
        "failed": r.tally.failed,
        "skipped": r.tally.skipped,
        "errors": r.tally.errors,
        "%passed": r.tally.percent_passed(),
        "%failed": r.tally.percent_failed(),
        "duration": r.duration,
        "wall": r.wall,
        "node": r.node,
        "hidden": hidden,
    });
    if detail {
        v["tests"] = json!(r.tests);
        v["output"] = json!(r.output);
    }
    v
}

/// A line of `GET /evaluation`.
pub fn summary(s: &EvaluationSummary, grade_scale: f64) -> Value {
    json!({
        "id": s.id,
        "status": s.status,
        "submitted_at": s.submitted_at,
        "finished_at": s.finished_at,
        "projects": s.projects,
        "%passed": s.tally.percent_passed(),
        "nota": s.tally.grade(grade_scale),
    })
}

fn seconds(d: chrono::TimeDelta) -> f64 {
    round2(d.num_milliseconds().max(0) as f64 / 1000.0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::evaluation::model::{EvaluationStatus, ModuleStatus};
    use crate::store::{EvaluationRecord, ModuleRow, ProjectRow, Source};

    fn result(passed: u32, failed: u32, errors: u32) -> ModuleResult {
        ModuleResult {
            status: ModuleStatus::Done,
            tally: Tally { passed, failed, skipped: 1, errors },
            duration: 0.5,
            wall: 0.75,
            node: "127.0.0.1:5001".into(),
            output: "out".into(),
            tests: Vec::new(),
        }
    }

    /// A finished evaluation of two projects, a with three modules (one
    /// without a result) and b that could not be graded.
    pub(crate) fn view() -> EvaluationView {
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let row = |project: &str, module: &str, result| ModuleRow {
            project: project.into(),
            module: module.into(),
            tests: 3,
            result,
        };
        EvaluationView {
            record: EvaluationRecord {
                id: uuid::Uuid::nil(),
                status: EvaluationStatus::Done,
                source: Source::Zip { name: "x".into() },
                supervisor: "127.0.0.1:5001".into(),
                epoch: 0,
                input_sha256: None,
                input_ready: true,
                submitted_at: t0,
                started_at: Some(t0),
                finished_at: Some(t0 + chrono::TimeDelta::milliseconds(4210)),
                error: None,
            },
            projects: vec![
                ProjectRow { collected: true, ..ProjectRow::found("a".into(), "a".into(), Some("Ada (s1)".into())) },
                ProjectRow {
                    collected: true,
                    error: Some("pip failed".into()),
                    ..ProjectRow::found("b".into(), "b".into(), None)
                },
            ],
            modules: vec![
                row("a", "tests/test_1.py", Some(result(4, 1, 0))),
                row("a", "tests/test_2.py", Some(result(3, 0, 0))),
                row("a", "tests/test_3.py", None),
            ],
        }
    }

    #[test]
    fn run_info_sums_every_finished_module() {
        let v = evaluation(&view(), 20.0, Utc::now(), false);
        let info = &v["_run_info"];
        assert_eq!(info["%passed"], json!(87.5));
        assert_eq!(info["%failed"], json!(12.5));
        assert_eq!(info["nota"], json!(17.5));
        assert_eq!(info["eval_time"], json!(4.21));
        assert_eq!(info["errors"], json!(0));
        assert_eq!(info["modules_total"], json!(3));
        assert_eq!(info["modules_done"], json!(2));
    }

    #[test]
    fn modules_and_projects_carry_the_documented_fields() {
        let v = evaluation(&view(), 20.0, Utc::now(), false);
        let m = &v["module_results"]["a"]["tests/test_1.py"];
        assert_eq!(m["status"], json!("done"));
        assert_eq!(m["%passed"], json!(80.0));
        assert_eq!(m["%failed"], json!(20.0));
        assert_eq!(m["skipped"], json!(1));
        assert_eq!((&m["duration"], &m["wall"]), (&json!(0.5), &json!(0.75)));
        assert!(m.get("tests").is_none());
        assert!(v["module_results"]["a"].get("tests/test_3.py").is_none(), "unfinished modules are not reported");
        assert_eq!(v["projects"]["a"]["passed"], json!(7));
        assert_eq!((&v["projects"]["a"]["points"], &v["projects"]["a"]["max_points"]), (&json!(7.0), &json!(8.0)));
        assert_eq!(v["projects"]["b"]["error"], json!("pip failed"));
        assert_eq!(v["projects"]["b"]["nota"], json!(0.0));
        assert_eq!((&v["projects"]["a"]["label"], &v["projects"]["b"]["label"]), (&json!("Ada (s1)"), &json!("b")));
    }

    #[test]
    fn detail_adds_tests_and_output() {
        let v = evaluation(&view(), 20.0, Utc::now(), true);
        let m = &v["module_results"]["a"]["tests/test_1.py"];
        assert_eq!(m["tests"], json!([]));
        assert_eq!(m["output"], json!("out"));
    }
}
