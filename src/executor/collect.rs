//! The collection probe: a pytest plugin the executor drops beside a project,
//! and the reader of the JSON it writes. Pure helpers of the executor, no
//! actix inside: the `Executor` writes [`PLUGIN_SOURCE`] as
//! `{PLUGIN_MODULE}.py` into a folder on `PYTHONPATH`, runs
//!
//! ```text
//! python -m pytest --collect-only -q -p evalmesh_collect \
//!     --continue-on-collection-errors --maxfail=0 --rootdir <project_root>
//! ```
//!
//! with [`OUTPUT_ENV`] naming the report file, and hands the file's text to
//! [`parse_report`]. The answer says which modules hold how many tests, which
//! is what the evaluation plans its work from, and which nodes failed to
//! collect. `--maxfail=0` undoes a project's `addopts = -x` (or `--maxfail`),
//! which would otherwise end collection at the first broken module.
//!
//! The plugin writes the report in `pytest_sessionfinish`, so it is there
//! after collection errors too; it is missing when pytest dies before a
//! session starts (a `conftest.py` at the rootdir that fails to import makes
//! pytest exit with status 4 and no report), which the caller treats as the
//! whole project failing to collect.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::junit::cap_message;

/// The name the plugin is imported under (`-p evalmesh_collect`); the file
/// is written as `evalmesh_collect.py`.
pub const PLUGIN_MODULE: &str = "evalmesh_collect";

/// The plugin, a single pytest-only Python file (pytest 7 and later).
pub const PLUGIN_SOURCE: &str = include_str!("collect_plugin.py");

/// The environment variable that tells the plugin where to write its report.
pub const OUTPUT_ENV: &str = "EVALMESH_COLLECT_OUT";

/// Errors reading the plugin's report.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The report is not the JSON the plugin writes: truncated, or not ours.
    #[error("malformed collection report: {0}")]
    Json(#[from] serde_json::Error),
}

/// What collection found.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Collected {
    /// Module path (relative to the rootdir, '/' separators) → its number of
    /// test items. A module whose import failed is absent.
    pub modules: BTreeMap<String, u32>,
    /// Nodeid of each collector that failed → pytest's text for it, capped.
    /// Mostly a module path ("tests/test_x.py"), but it can be a class
    /// ("tests/test_x.py::TestY", whose module may still be in `modules`), a
    /// folder whose `conftest.py` failed ("tests/sub"), or "" when pytest 7
    /// charges a conftest failure to the whole session.
    pub errors: BTreeMap<String, String>,
}

/// The report as the plugin writes it. Both keys are required: the plugin
/// always writes them, and a document without them is not its report, so
/// reading it as "nothing collected" would hide the fault.
#[derive(Deserialize)]
struct Report {
    modules: BTreeMap<String, u32>,
    errors: BTreeMap<String, String>,
}

/// Reads the plugin's report, capping each error text to `message_cap`
/// bytes with [`cap_message`].
pub fn parse_report(json: &str, message_cap: usize) -> Result<Collected, CollectError> {
    let report: Report = serde_json::from_str(json)?;
    Ok(Collected {
        modules: report.modules,
        errors: report.errors.into_iter().map(|(node, text)| (node, cap_message(&text, message_cap))).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plugin's report under pytest 9.2 with
    /// `--continue-on-collection-errors` on a project with one module that
    /// fails to import.
    const SAMPLE_REPORT: &str = r#"{"errors": {"tests/test_broken.py": "ImportError while importing test module '/tmp/sample_proj/tests/test_broken.py'.\nHint: make sure your test modules/packages have valid Python names.\nTraceback:\n/root/.pyenv/versions/3.11.7/lib/python3.11/importlib/__init__.py:126: in import_module\n    return _bootstrap._gcd_import(name[level:], package, level)\n           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\ntests/test_broken.py:1: in <module>\n    import does_not_exist_module\nE   ModuleNotFoundError: No module named 'does_not_exist_module'"}, "modules": {"tests/pkg/sub/test_deep.py": 2, "tests/test_a.py": 12}}"#;

    /// The same under pytest 9.2 for a project with a failing class, a
    /// failing `tests/sub/conftest.py`, a syntax error, a module-level skip
    /// and a non-ASCII file name.
    const HARD_REPORT: &str = r#"{"errors": {"tests/ok/test_ok.py::TestBad": "In tests/ok/test_ok.py::TestBad::test_m: function uses no argument 'nope'", "tests/sub": "/root/.pyenv/versions/3.11.7/lib/python3.11/importlib/__init__.py:126: in import_module\n    return _bootstrap._gcd_import(name[level:], package, level)\n           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n<frozen importlib._bootstrap>:1204: in _gcd_import\n    ???\n<frozen importlib._bootstrap>:1176: in _find_and_load\n    ???\n<frozen importlib._bootstrap>:1147: in _find_and_load_unlocked\n    ???\n<frozen importlib._bootstrap>:690: in _load_unlocked\n    ???\n../junit_venv/lib/python3.11/site-packages/_pytest/assertion/rewrite.py:185: in exec_module\n    exec(co, module.__dict__)\ntests/sub/conftest.py:1: in <module>\n    raise RuntimeError(\"conftest boom\")\nE   RuntimeError: conftest boom", "tests/test_syntax.py": "../junit_venv/lib/python3.11/site-packages/_pytest/python.py:528: in importtestmodule\n    mod = import_path(\n../junit_venv/lib/python3.11/site-packages/_pytest/pathlib.py:640: in import_path\n    importlib.import_module(module_name)\n/root/.pyenv/versions/3.11.7/lib/python3.11/importlib/__init__.py:126: in import_module\n    return _bootstrap._gcd_import(name[level:], package, level)\n           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n<frozen importlib._bootstrap>:1204: in _gcd_import\n    ???\n<frozen importlib._bootstrap>:1176: in _find_and_load\n    ???\n<frozen importlib._bootstrap>:1147: in _find_and_load_unlocked\n    ???\n<frozen importlib._bootstrap>:690: in _load_unlocked\n    ???\n../junit_venv/lib/python3.11/site-packages/_pytest/assertion/rewrite.py:176: in exec_module\n    source_hash, co = _rewrite_test(fn, self.config)\n                      ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n../junit_venv/lib/python3.11/site-packages/_pytest/assertion/rewrite.py:339: in _rewrite_test\n    tree = ast.parse(source, filename=strfn)\n           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n/root/.pyenv/versions/3.11.7/lib/python3.11/ast.py:50: in parse\n    return compile(source, filename, mode, flags,\nE     File \"/tmp/hard_proj/tests/test_syntax.py\", line 1\nE       def test_(:\nE                 ^\nE   SyntaxError: invalid syntax"}, "modules": {"tests/ok/test_ok.py": 4, "tests/test_ünï.py": 1}}"#;

    /// The same project under pytest 7.4, which charges the conftest failure
    /// to the session and collects nothing.
    const HARD_REPORT_PYTEST7: &str = r#"{"errors": {"": "/root/.pyenv/versions/3.11.7/lib/python3.11/importlib/__init__.py:126: in import_module\n    return _bootstrap._gcd_import(name[level:], package, level)\n<frozen importlib._bootstrap>:1204: in _gcd_import\n    ???\n<frozen importlib._bootstrap>:1176: in _find_and_load\n    ???\n<frozen importlib._bootstrap>:1147: in _find_and_load_unlocked\n    ???\n<frozen importlib._bootstrap>:690: in _load_unlocked\n    ???\n../junit_venv7/lib/python3.11/site-packages/_pytest/assertion/rewrite.py:186: in exec_module\n    exec(co, module.__dict__)\ntests/sub/conftest.py:1: in <module>\n    raise RuntimeError(\"conftest boom\")\nE   RuntimeError: conftest boom"}, "modules": {}}"#;

    #[test]
    fn reads_good_modules_beside_the_broken_one() {
        let collected = parse_report(SAMPLE_REPORT, 10_000).unwrap();
        assert_eq!(
            collected.modules,
            BTreeMap::from([("tests/pkg/sub/test_deep.py".to_owned(), 2), ("tests/test_a.py".to_owned(), 12),])
        );
        assert_eq!(collected.errors.keys().collect::<Vec<_>>(), ["tests/test_broken.py"]);
        let text = &collected.errors["tests/test_broken.py"];
        assert!(text.starts_with("ImportError while importing test module"));
        assert!(text.ends_with("E   ModuleNotFoundError: No module named 'does_not_exist_module'"));
    }

    #[test]
    fn reads_class_folder_and_syntax_errors() {
        let collected = parse_report(HARD_REPORT, 10_000).unwrap();
        assert_eq!(
            collected.modules,
            BTreeMap::from([("tests/ok/test_ok.py".to_owned(), 4), ("tests/test_ünï.py".to_owned(), 1),])
        );
        assert_eq!(
            collected.errors.keys().collect::<Vec<_>>(),
            ["tests/ok/test_ok.py::TestBad", "tests/sub", "tests/test_syntax.py"]
        );
        assert_eq!(
            collected.errors["tests/ok/test_ok.py::TestBad"],
            "In tests/ok/test_ok.py::TestBad::test_m: function uses no argument 'nope'"
        );
        assert!(collected.errors["tests/sub"].ends_with("E   RuntimeError: conftest boom"));
        assert!(collected.errors["tests/test_syntax.py"].ends_with("E   SyntaxError: invalid syntax"));
    }

    #[test]
    fn reads_a_session_wide_error_under_pytest7() {
        let collected = parse_report(HARD_REPORT_PYTEST7, 10_000).unwrap();
        assert!(collected.modules.is_empty());
        assert_eq!(collected.errors.keys().collect::<Vec<_>>(), [""]);
        assert!(collected.errors[""].ends_with("E   RuntimeError: conftest boom"));
    }

    #[test]
    fn error_texts_are_capped() {
        let json =
            r#"{"modules": {"tests/test_a.py": 1}, "errors": {"tests/test_b.py": "ééééé", "tests/test_c.py": "abc"}}"#;
        let collected = parse_report(json, 5).unwrap();
        assert_eq!(collected.errors["tests/test_b.py"], "éé…");
        assert_eq!(collected.errors["tests/test_c.py"], "abc");
        assert_eq!(collected.modules["tests/test_a.py"], 1);
    }

    #[test]
    fn an_empty_collection_is_read() {
        let collected = parse_report(r#"{"errors": {}, "modules": {}}"#, 100).unwrap();
        assert_eq!(collected, Collected::default());
    }

    #[test]
    fn unknown_keys_are_ignored() {
        let json = r#"{"modules": {"t/test_x.py": 3}, "errors": {}, "version": 2}"#;
        let collected = parse_report(json, 100).unwrap();
        assert_eq!(collected.modules["t/test_x.py"], 3);
        assert!(collected.errors.is_empty());
    }

    #[test]
    fn malformed_reports_are_errors() {
        for json in [
            "",
            r#"{"modules": {"tests/test_a.py": 3}"#,
            r#"{"modules": {"tests/test_a.py": -1}}"#,
            r#"{"modules": {"tests/test_a.py": "3"}}"#,
            r#"{"errors": {"tests/test_a.py": null}}"#,
            "[]",
            "{}",
            r#"{"modules": {"tests/test_a.py": 3}}"#,
        ] {
            let err = parse_report(json, 100).unwrap_err();
            assert!(matches!(err, CollectError::Json(_)), "{json}");
            assert!(err.to_string().starts_with("malformed collection report: "));
        }
    }

    #[test]
    fn plugin_source_agrees_with_the_constants() {
        assert!(PLUGIN_SOURCE.contains(&format!("OUTPUT_ENV = \"{OUTPUT_ENV}\"")));
        assert!(PLUGIN_SOURCE.contains("def pytest_sessionfinish"));
        assert!(PLUGIN_SOURCE.contains(PLUGIN_MODULE));
    }
}
