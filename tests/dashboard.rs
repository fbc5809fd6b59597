//! The dashboard (`GET /`) in a real browser: headless Chromium (Debian's
//! `chromium`, which `.ci/run` installs) loads the page of a node that
//! graded the README's example, runs its script against the node's API,
//! and the numbers it shows, read from the DOM, are the evaluation's. A
//! screenshot is written to `target/tmp/dashboard.png`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// The page's DOM once its script has run, as Chromium dumps it.
fn chromium(args: &[&str]) -> String {
    let out = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000"])
        .args(args)
        .output()
        .expect("running chromium (apt-get install chromium)");
    assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text of the cell `data-field="field"` in the row that starts at
/// `row_start` in `dom`.
fn field(dom: &str, row_start: &str, field: &str) -> String {
    let row = dom.split_once(row_start).unwrap_or_else(|| panic!("no row {row_start}")).1;
    let row = row.split_once("</tr>").unwrap().0;
    let cell = row.split_once(&format!("data-field=\"{field}\">")).unwrap_or_else(|| panic!("no {field} in {row}")).1;
    cell.split_once("</td>").unwrap().0.to_owned()
}

#[test]
fn the_dashboard_shows_a_finished_evaluations_numbers() {
    with_timeout(Duration::from_secs(240), || {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::start(&NodeConfig::new(&dir.path().join("data")), dir.path(), "node");
        let page = node.get("/");
        assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
        assert!(page.header("content-security-policy").is_some_and(|p| p.contains("connect-src 'self'")));

        let out = Command::new(env!("CARGO_BIN_EXE_evalmesh"))
            .args(["submit", "examples/class", "--tests", "examples/suite", "--wait", "--format", "json"])
            .args(["--node", &node.addr])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("EVALMESH_TOKEN")
            .output()
            .expect("running evalmesh");
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let record: Value = serde_json::from_slice(&out.stdout).unwrap();
        let id = record["id"].as_str().unwrap();

        let url = format!("http://{}/?evaluation={id}", node.addr);
        let dom = chromium(&["--dump-dom", &url]);
        assert!(dom.contains("<body data-loaded=\"true\">"), "the script did not finish: {dom}");
        let projects = record["projects"].as_object().unwrap();
        assert_eq!(dom.matches("<tr data-project=").count(), projects.len());
        for (name, p) in projects {
            let row = format!("<tr data-project=\"{name}\">");
            for key in ["passed", "failed", "errors", "skipped", "nota", "points"] {
                let shown: f64 = field(&dom, &row, key).parse().unwrap_or_else(|e| panic!("{name} {key}: {e}"));
                assert_eq!(shown, p[key].as_f64().unwrap(), "{name} {key}");
            }
            assert_eq!(field(&dom, &row, "label"), p["label"].as_str().unwrap());
        }
        assert_eq!(field(&dom, &format!("<tr data-node=\"{}\">", node.addr), "status"), "alive");
        assert_eq!(field(&dom, &format!("<tr class=\"pick picked\" data-evaluation=\"{id}\">"), "status"), "done");
        let modules = record["_run_info"]["modules_done"].as_u64().unwrap() as usize;
        assert_eq!(dom.matches("<div data-module=").count(), modules);
        assert!(dom.contains("assert [1, 2, 3] == [3, 2, 1]"), "bob's failure text is shown");

        let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
        let _ = std::fs::remove_file(&shot);
        chromium(&["--window-size=1280,900", &format!("--screenshot={}", shot.display()), &url]);
        assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000), "no screenshot at {}", shot.display());
    });
}
