//! What a live stream of an evaluation (`GET /evaluation/{id}/stream`) says
//! next, from the evaluation as a node's store holds it, and what the
//! stream has already said. Pure.
//!
//! A `module` event goes once for each module with a result, in the order
//! of projects then modules by name among those that are new. Its id names
//! every module sent so far, so that a client that reconnects with
//! `Last-Event-ID`, to any node, gets exactly the modules it missed,
//! whichever node's copy answers and in whatever order the modules ended:
//! for each project (by name), a bitmap over its modules (by name), in
//! base64url, the projects' joined by `.`. A project's modules never change
//! once collected, and its projects never once the evaluation is prepared,
//! so the bitmaps mean the same on every copy.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::model::Tally;
use crate::store::EvaluationView;

/// The modules a stream has sent, by project, over each project's modules
/// in name order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen(BTreeMap<String, Vec<bool>>);

/// One event for the stream: its name, id (for `module`) and data.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub event: &'static str,
    pub id: Option<String>,
    pub data: Value,
}

/// Each project's modules, by name, and the view's index of each.
fn layout(view: &EvaluationView) -> BTreeMap<&str, Vec<(&str, usize)>> {
    let mut projects: BTreeMap<&str, Vec<(&str, usize)>> =
        view.projects.iter().map(|p| (p.name.as_str(), Vec::new())).collect();
    for (i, m) in view.modules.iter().enumerate() {
        projects.entry(m.project.as_str()).or_default().push((m.module.as_str(), i));
    }
    for modules in projects.values_mut() {
        modules.sort_unstable();
    }
    projects
}

impl Seen {
    /// Reads a `Last-Event-ID` against `view`; what does not fit it (another
    /// evaluation's id, garbage) reads as nothing seen, so the client gets
    /// every module again rather than missing one.
    pub fn parse(id: &str, view: &EvaluationView) -> Self {
        let layout = layout(view);
        let parts: Vec<&str> = id.split('.').collect();
        if parts.len() != layout.len() {
            return Self::default();
        }
        let mut seen = BTreeMap::new();
        for ((project, modules), part) in layout.iter().zip(parts) {
            let Ok(bytes) = URL_SAFE_NO_PAD.decode(part) else { return Self::default() };
            let bits = (0..modules.len()).map(|i| bytes.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)).collect();
            seen.insert((*project).to_owned(), bits);
        }
        Self(seen)
    }

    fn id(&self, layout: &BTreeMap<&str, Vec<(&str, usize)>>) -> String {
        let parts: Vec<String> = layout
            .keys()
            .map(|project| {
                let bits = self.0.get(*project).map(Vec::as_slice).unwrap_or_default();
                let mut bytes = vec![0u8; bits.len().div_ceil(8)];
                for (i, _) in bits.iter().enumerate().filter(|(_, b)| **b) {
                    bytes[i / 8] |= 1 << (i % 8);
                }
                while bytes.last() == Some(&0) {
                    bytes.pop();
                }
                URL_SAFE_NO_PAD.encode(bytes)
            })
            .collect();
        parts.join(".")
    }

    /// The `module` events of the modules of `view` with a result that have
    /// not been sent, marking them sent.
    pub fn new_modules(&mut self, view: &EvaluationView) -> Vec<Item> {
        let layout = layout(view);
        let mut items = Vec::new();
        for (project, modules) in &layout {
            for (at, (name, index)) in modules.iter().enumerate() {
                let Some(result) = &view.modules[*index].result else { continue };
                let bits = self.0.entry((*project).to_owned()).or_default();
                if bits.len() < modules.len() {
                    bits.resize(modules.len(), false);
                }
                if bits[at] {
                    continue;
                }
                bits[at] = true;
                let t = result.tally;
                let data = json!({
                    "project": project,
                    "module": name,
                    "status": result.status,
                    "passed": t.passed,
                    "failed": t.failed,
                    "skipped": t.skipped,
                    "errors": t.errors,
                    "duration": result.duration,
                    "wall": result.wall,
                    "node": result.node,
                });
                items.push(Item { event: "module", id: None, data });
            }
        }
        let id = self.id(&layout);
        for item in &mut items {
            item.id = Some(id.clone());
        }
        items
    }
}

/// The `progress` event's data: the status, modules done of those known,
/// the tests' counts so far, the modules with a failure or an error, and
/// the seconds since the evaluation started.
pub fn progress(view: &EvaluationView, now: DateTime<Utc>) -> Value {
    let mut tests = Tally::default();
    let (mut done, mut failing) = (0, 0);
    for result in view.modules.iter().filter_map(|m| m.result.as_ref()) {
        done += 1;
        tests.add(&result.tally);
        failing += usize::from(result.tally.failed + result.tally.errors > 0);
    }
    let elapsed = view.record.started_at.map_or(0.0, |s| (now - s).num_milliseconds().max(0) as f64 / 1000.0);
    json!({
        "status": view.record.status,
        "modules_done": done,
        "modules_total": view.modules.len(),
        "modules_failing": failing,
        "projects": view.projects.len(),
        "passed": tests.passed,
        "failed": tests.failed,
        "skipped": tests.skipped,
        "errors": tests.errors,
        "elapsed_s": elapsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluation::model::{EvaluationStatus, ModuleResult, ModuleStatus};
    use crate::store::{ModuleRow, ProjectRow};

    fn view(done: &[(&str, &str)]) -> EvaluationView {
        let modules = [("b", "tests/test_2.py"), ("a", "tests/test_x.py"), ("b", "tests/test_1.py"), ("a", "t.py")];
        let mut view = crate::evaluation::report::tests::view();
        view.record.status = EvaluationStatus::Running;
        view.projects = ["b", "a", "c"].map(|p| ProjectRow::found(p.into(), p.into(), None)).into();
        view.modules = modules
            .iter()
            .map(|(project, module)| ModuleRow {
                project: (*project).into(),
                module: (*module).into(),
                tests: 2,
                result: done.contains(&(*project, *module)).then(|| ModuleResult {
                    status: ModuleStatus::Done,
                    tally: Tally { passed: 1, failed: 1, ..Tally::default() },
                    duration: 0.5,
                    wall: 0.75,
                    node: "127.0.0.1:5002".into(),
                    output: String::new(),
                    tests: Vec::new(),
                }),
            })
            .collect();
        view
    }

    fn sent(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| format!("{}::{}", i.data["project"].as_str().unwrap(), i.data["module"].as_str().unwrap()))
            .collect()
    }

    #[test]
    fn each_module_is_sent_once_in_name_order_among_the_new() {
        let mut seen = Seen::default();
        assert!(seen.new_modules(&view(&[])).is_empty());
        let items = seen.new_modules(&view(&[("b", "tests/test_2.py"), ("a", "t.py")]));
        assert_eq!(sent(&items), ["a::t.py", "b::tests/test_2.py"]);
        let all = [("b", "tests/test_2.py"), ("a", "t.py"), ("b", "tests/test_1.py"), ("a", "tests/test_x.py")];
        let items = seen.new_modules(&view(&all));
        assert_eq!(sent(&items), ["a::tests/test_x.py", "b::tests/test_1.py"]);
        assert!(seen.new_modules(&view(&all)).is_empty());
    }

    /// A client that reconnects, to a node whose copy lists the modules in
    /// another order, gets exactly what it missed.
    #[test]
    fn a_last_event_id_resumes_exactly_on_any_copy() {
        let mut first = Seen::default();
        let items = first.new_modules(&view(&[("b", "tests/test_2.py"), ("a", "t.py")]));
        let id = items.last().unwrap().id.clone().unwrap();
        assert!(items.iter().all(|i| i.id.as_deref() == Some(id.as_str())));

        let mut other = view(&[("b", "tests/test_2.py"), ("a", "t.py"), ("b", "tests/test_1.py")]);
        other.modules.reverse();
        other.projects.reverse();
        let mut resumed = Seen::parse(&id, &other);
        assert_eq!(sent(&resumed.new_modules(&other)), ["b::tests/test_1.py"]);

        for garbage in ["", "x", "a.b", "!!.!!.!!", "AAAA.AAAA.AAAA.AAAA"] {
            let mut fresh = Seen::parse(garbage, &other);
            assert_eq!(fresh.new_modules(&other).len(), 3, "{garbage:?} reads as nothing seen");
        }
    }

    #[test]
    fn progress_counts_what_has_a_result() {
        let p = progress(&view(&[("b", "tests/test_2.py"), ("a", "t.py")]), Utc::now());
        assert_eq!((&p["modules_done"], &p["modules_total"], &p["modules_failing"]), (&json!(2), &json!(4), &json!(2)));
        assert_eq!((&p["passed"], &p["failed"], &p["projects"]), (&json!(2), &json!(2), &json!(3)));
        assert_eq!(p["status"], json!("running"));
    }
}
