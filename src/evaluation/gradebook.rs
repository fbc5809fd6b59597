//! An evaluation as files for the tools teachers already use: a gradebook
//! (CSV, one row per project) and a JUnit XML report (one testsuite per
//! project and module). Both are made from the JSON answer a client reads
//! (`report::evaluation`), so that they say exactly what it says. Pure.

use serde_json::Value;

/// The gradebook's columns, in order.
pub const COLUMNS: [&str; 11] =
    ["label", "project", "passed", "failed", "errors", "skipped", "%passed", "points", "max_points", "nota", "error"];

/// A header row, then one row per project in the answer's order (by name).
/// Numbers are written as the JSON writes them; a missing error is empty.
pub fn csv(report: &Value) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    let row_error = "a CSV writer over a Vec cannot fail";
    out.write_record(COLUMNS).expect(row_error);
    for (name, p) in report["projects"].as_object().into_iter().flatten() {
        let row: Vec<String> = COLUMNS
            .iter()
            .map(|column| match (*column, &p[*column]) {
                ("project", _) => name.clone(),
                (_, Value::String(s)) => s.clone(),
                (_, Value::Null) => String::new(),
                (_, other) => other.to_string(),
            })
            .collect();
        out.write_record(&row).expect(row_error);
    }
    String::from_utf8(out.into_inner().expect(row_error)).expect("the CSV writer writes the UTF-8 it was given")
}

/// JUnit XML of an answer made with its tests (`?detail=tests`): one
/// `testsuite` per module that has a result, named `project::module`, its
/// project, label and status as properties and its captured output as
/// `system-out`.
pub fn junit(report: &Value) -> String {
    let mut suites = String::new();
    let mut total = [0u64; 4];
    let mut total_time = 0.0;
    for (project, modules) in report["module_results"].as_object().into_iter().flatten() {
        let label = report["projects"][project]["label"].as_str().unwrap_or(project);
        for (module, m) in modules.as_object().into_iter().flatten() {
            let counts = ["passed", "failed", "errors", "skipped"].map(|k| m[k].as_u64().unwrap_or(0));
            let tests: u64 = counts.iter().sum();
            let time = m["duration"].as_f64().unwrap_or(0.0);
            for (t, c) in total.iter_mut().zip(counts) {
                *t += c;
            }
            total_time += time;
            suites.push_str(&format!(
                "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{time}\" hostname=\"{}\">\n",
                attr(&format!("{project}::{module}")),
                counts[1],
                counts[2],
                counts[3],
                attr(m["node"].as_str().unwrap_or_default()),
            ));
            suites.push_str("    <properties>\n");
            for (key, value) in [("project", project.as_str()), ("module", module), ("label", label)] {
                suites.push_str(&format!("      <property name=\"{key}\" value=\"{}\"/>\n", attr(value)));
            }
            let status = m["status"].as_str().unwrap_or_default();
            suites.push_str(&format!("      <property name=\"status\" value=\"{}\"/>\n", attr(status)));
            suites.push_str("    </properties>\n");
            for case in m["tests"].as_array().into_iter().flatten() {
                suites.push_str(&testcase(case));
            }
            if let Some(output) = m["output"].as_str().filter(|o| !o.is_empty()) {
                suites.push_str(&format!("    <system-out>{}</system-out>\n", text(output)));
            }
            suites.push_str("  </testsuite>\n");
        }
    }
    let [passed, failed, errors, skipped] = total;
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"evalmesh {}\" tests=\"{}\" failures=\"{failed}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{}\">\n{suites}</testsuites>\n",
        attr(report["id"].as_str().unwrap_or_default()),
        passed + failed + errors + skipped,
        crate::evaluation::model::round2(total_time),
    )
}

fn testcase(case: &Value) -> String {
    let open = format!(
        "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"",
        attr(case["classname"].as_str().unwrap_or_default()),
        attr(case["name"].as_str().unwrap_or_default()),
        case["duration"].as_f64().unwrap_or(0.0),
    );
    let message = case["message"].as_str().unwrap_or_default();
    let element = match case["outcome"].as_str() {
        Some("failed") => "failure",
        Some("error") => "error",
        Some("skipped") => "skipped",
        _ => return format!("{open}/>\n"),
    };
    let first_line = message.lines().next().unwrap_or_default();
    format!(
        "{open}>\n      <{element} message=\"{}\">{}</{element}>\n    </testcase>\n",
        attr(first_line),
        text(message)
    )
}

/// What XML 1.0 cannot carry at all, even escaped (a test's output may hold
/// any byte): replaced by U+FFFD.
fn xml_chars(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

fn attr(s: &str) -> String {
    quick_xml::escape::escape(xml_chars(s)).replace('\n', "&#10;").replace('\r', "&#13;").replace('\t', "&#9;")
}

fn text(s: &str) -> String {
    quick_xml::escape::escape(xml_chars(s)).into_owned()
}

#[cfg(test)]
mod tests {
    use quick_xml::events::Event;
    use serde_json::json;

    use super::*;

    fn answer() -> Value {
        json!({
            "id": "0b0e",
            "projects": {
                "alice": {"label": "Smith, \"Al\" (s1)", "passed": 3, "failed": 1, "errors": 0, "skipped": 1,
                          "%passed": 75.0, "points": 3, "max_points": 4, "nota": 15.0, "error": null},
                "bob": {"label": "bob", "passed": 0, "failed": 0, "errors": 0, "skipped": 0,
                        "%passed": 0.0, "points": 0, "max_points": 0, "nota": 0.0, "error": "pip failed:\nno such package"}
            },
            "module_results": {
                "alice": {"tests/test_a.py": {
                    "status": "done", "passed": 3, "failed": 1, "errors": 0, "skipped": 1, "duration": 0.25,
                    "node": "127.0.0.1:5001", "output": "out \u{1b}[31mred\u{0} ]]> <x>",
                    "tests": [
                        {"name": "test_ok", "classname": "tests.test_a", "outcome": "passed", "duration": 0.1, "message": null},
                        {"name": "test_bad[\"<&>\"]", "classname": "tests.test_a", "outcome": "failed", "duration": 0.1,
                         "message": "assert 1 == 2\n  where \u{7} rings"},
                        {"name": "test_skip", "classname": "tests.test_a", "outcome": "skipped", "duration": 0.0, "message": "later"},
                        {"name": "test_x", "classname": "tests.test_a", "outcome": "passed", "duration": 0.0, "message": null},
                        {"name": "test_y", "classname": "tests.test_a", "outcome": "passed", "duration": 0.05, "message": null}
                    ]}}
            }
        })
    }

    #[test]
    fn the_gradebook_read_back_says_what_the_answer_says() {
        let report = answer();
        let text = csv(&report);
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), COLUMNS);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        for row in rows {
            let project = &report["projects"][&row[1]];
            assert_eq!(&row[0], project["label"].as_str().unwrap());
            for (i, column) in COLUMNS.iter().enumerate().skip(2).take(8) {
                assert_eq!(row[i].parse::<f64>().unwrap(), project[*column].as_f64().unwrap(), "{column}");
            }
            assert_eq!(&row[10], project["error"].as_str().unwrap_or_default());
        }
    }

    #[test]
    fn the_junit_report_is_well_formed_and_counts_as_the_answer() {
        let xml = junit(&answer());
        let mut reader = quick_xml::Reader::from_str(&xml);
        let (mut suites, mut cases, mut failures, mut skipped) = (Vec::new(), 0, 0, 0);
        loop {
            match reader.read_event().unwrap_or_else(|e| panic!("{e}:\n{xml}")) {
                Event::Eof => break,
                Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                    b"testsuite" => {
                        let name = e.try_get_attribute("name").unwrap().unwrap().unescape_value().unwrap().into_owned();
                        let tests =
                            e.try_get_attribute("tests").unwrap().unwrap().unescape_value().unwrap().into_owned();
                        suites.push((name, tests));
                    }
                    b"testcase" => cases += 1,
                    b"failure" => failures += 1,
                    b"skipped" => skipped += 1,
                    _ => {}
                },
                _ => {}
            }
        }
        assert_eq!(suites, [("alice::tests/test_a.py".to_owned(), "5".to_owned())]);
        assert_eq!((cases, failures, skipped), (5, 1, 1));
        assert!(xml.contains("name=\"test_bad[&quot;&lt;&amp;&gt;&quot;]\""), "{xml}");
        assert!(xml.contains("<property name=\"label\" value=\"Smith, &quot;Al&quot; (s1)\"/>"), "{xml}");
        assert!(xml.contains("failures=\"1\" errors=\"0\" skipped=\"1\" time=\"0.25\">"), "{xml}");
    }
}
