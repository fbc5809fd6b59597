//! What the command line prints: grade tables, evaluation lists, members,
//! and the progress of a running evaluation. Pure, but for `Progress`,
//! which writes to standard error.

use std::io::Write;

use serde_json::Value;

/// A table with a header row, columns padded to their widest cell, numbers
/// right-aligned.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let numeric = |col: usize| rows.iter().all(|r| r[col].is_empty() || r[col].parse::<f64>().is_ok());
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(
                |(i, c)| if numeric(i) { format!("{c:>w$}", w = widths[i]) } else { format!("{c:<w$}", w = widths[i]) },
            )
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An evaluation's grades, a project a row, as `grades.csv` has them.
pub fn grades(record: &Value) -> String {
    let empty = serde_json::Map::new();
    let projects = record["projects"].as_object().unwrap_or(&empty);
    let rows: Vec<Vec<String>> = projects
        .iter()
        .map(|(name, p)| {
            let mut row = vec![text(&p["label"]), name.clone()];
            row.extend(
                ["passed", "failed", "errors", "skipped", "%passed", "points", "max_points", "nota"]
                    .map(|k| text(&p[k])),
            );
            row.push(text(&p["error"]).lines().next().unwrap_or_default().chars().take(60).collect());
            row
        })
        .collect();
    let header =
        ["label", "project", "passed", "failed", "errors", "skipped", "%passed", "points", "max", "nota", "error"];
    let info = &record["_run_info"];
    let error = record["error"].as_str().map(|e| format!(" ({e})")).unwrap_or_default();
    format!(
        "{}evaluation {} {}{error}: {} of {} modules; tests {} passed, {} failed, {} errors, {} skipped; nota {}\n",
        table(&header, &rows),
        text(&record["id"]),
        text(&record["status"]),
        text(&info["modules_done"]),
        text(&info["modules_total"]),
        text(&info["passed"]),
        text(&info["failed"]),
        text(&info["errors"]),
        text(&info["skipped"]),
        text(&info["nota"]),
    )
}

/// `GET /evaluation`'s list.
pub fn evaluations(list: &Value) -> String {
    let rows: Vec<Vec<String>> = list["evaluations"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|e| ["id", "status", "submitted_at", "projects", "%passed", "nota"].iter().map(|k| text(&e[*k])).collect())
        .collect();
    table(&["id", "status", "submitted", "projects", "%passed", "nota"], &rows)
}

/// `GET /network`'s members, the coordinator marked.
pub fn network(network: &Value) -> String {
    let coordinator = network["coordinator"].as_str().unwrap_or_default();
    let rows: Vec<Vec<String>> = network["members"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let address = text(&m["address"]);
            let role = if address == coordinator { "coordinator" } else { "" };
            vec![address, text(&m["status"]), text(&m["slots"]), text(&m["load"]), role.to_owned()]
        })
        .collect();
    table(&["address", "status", "slots", "load", "role"], &rows)
}

/// Seconds as `m:ss`.
fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

/// One line of progress from a `progress` event's data: modules done of
/// known, failing ones, elapsed and, once a module is done, the time left
/// at the pace so far.
pub fn progress_line(p: &Value, bar: bool) -> String {
    let (done, total) = (p["modules_done"].as_u64().unwrap_or(0), p["modules_total"].as_u64().unwrap_or(0));
    let elapsed = p["elapsed_s"].as_f64().unwrap_or(0.0);
    let eta = (done > 0 && total > done).then(|| elapsed / done as f64 * (total - done) as f64);
    let eta = eta.map(|s| format!(", about {} left", clock(s))).unwrap_or_default();
    let head = if bar {
        const WIDTH: u64 = 24;
        let filled = (done * WIDTH).checked_div(total).unwrap_or(0);
        format!("[{}{}] ", "#".repeat(filled as usize), ".".repeat((WIDTH - filled) as usize))
    } else {
        String::new()
    };
    format!(
        "{head}{} {done}/{total} modules, {} failing, {} elapsed{eta}",
        text(&p["status"]),
        p["modules_failing"].as_u64().unwrap_or(0),
        clock(elapsed),
    )
}

/// Progress on standard error: on a terminal one line redrawn in place,
/// else a line per change.
pub struct Progress {
    terminal: bool,
    last: String,
}

impl Default for Progress {
    fn default() -> Self {
        use std::io::IsTerminal;
        Self { terminal: std::io::stderr().is_terminal(), last: String::new() }
    }
}

impl Progress {
    pub fn show(&mut self, p: &Value) {
        let line = progress_line(p, self.terminal);
        if line == self.last {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal { write!(err, "\r\x1b[2K{line}") } else { writeln!(err, "{line}") };
        let _ = err.flush();
        self.last = line;
    }

    /// Ends the redrawn line.
    pub fn finish(&self) {
        if self.terminal && !self.last.is_empty() {
            let _ = writeln!(std::io::stderr());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_grade_table_has_a_row_per_project_with_the_gradebook_columns() {
        let record = json!({
            "id": "e1", "status": "done", "error": null,
            "_run_info": {"modules_done": 3, "modules_total": 3, "passed": 6, "failed": 1, "errors": 1, "skipped": 0,
                          "nota": 7.5},
            "projects": {
                "alice": {"label": "Alice (s1)", "passed": 4, "failed": 0, "errors": 0, "skipped": 0, "%passed": 100.0,
                          "points": 4.0, "max_points": 4.0, "nota": 10.0, "error": null},
                "bob": {"label": "bob", "passed": 2, "failed": 1, "errors": 1, "skipped": 0, "%passed": 50.0,
                        "points": 2.0, "max_points": 4.0, "nota": 5.0, "error": "pip failed\nline 2"},
            }
        });
        let out = grades(&record);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "label       project  passed  failed  errors  skipped  %passed  points  max  nota  error");
        assert_eq!(lines[1], "Alice (s1)  alice         4       0       0        0    100.0     4.0  4.0  10.0");
        assert_eq!(
            lines[2],
            "bob         bob           2       1       1        0     50.0     2.0  4.0   5.0  pip failed"
        );
        assert_eq!(
            lines[3],
            "evaluation e1 done: 3 of 3 modules; tests 6 passed, 1 failed, 1 errors, 0 skipped; nota 7.5"
        );
    }

    #[test]
    fn progress_tells_modules_failures_elapsed_and_time_left() {
        let p = json!({"status": "running", "modules_done": 3, "modules_total": 12, "modules_failing": 1, "elapsed_s": 30.0});
        assert_eq!(progress_line(&p, false), "running 3/12 modules, 1 failing, 0:30 elapsed, about 1:30 left");
        assert_eq!(
            progress_line(&p, true),
            "[######..................] running 3/12 modules, 1 failing, 0:30 elapsed, about 1:30 left"
        );
        let start =
            json!({"status": "queued", "modules_done": 0, "modules_total": 0, "modules_failing": 0, "elapsed_s": 0.0});
        assert_eq!(progress_line(&start, false), "queued 0/0 modules, 0 failing, 0:00 elapsed");
    }

    #[test]
    fn lists_and_members_are_tables() {
        let list = json!({"evaluations": [{"id": "e1", "status": "done", "submitted_at": "2026-12-06T05:00:00Z",
                                            "projects": 2, "%passed": 75.0, "nota": 15.0}], "next": null});
        assert_eq!(
            evaluations(&list),
            "id  status  submitted             projects  %passed  nota\ne1  done    2026-12-06T05:00:00Z         2     75.0  15.0\n"
        );
        let net = json!({"coordinator": "b:1", "members": [{"address": "a:1", "status": "alive", "slots": 2, "load": 1},
                                                           {"address": "b:1", "status": "alive", "slots": 2, "load": 0}]});
        assert_eq!(
            network(&net),
            "address  status  slots  load  role\na:1      alive       2     1\nb:1      alive       2     0  coordinator\n"
        );
    }
}
