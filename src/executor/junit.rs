//! Reads the JUnit XML that pytest writes (`-o junit_family=xunit1`) into
//! per-module tallies and test cases. Pure helpers of the executor, no actix
//! inside: the `Executor` hands in the report text and the modules that run
//! held, and gets back one `ModuleReport` per module; nothing here touches a
//! file or a clock.
//!
//! Counting mirrors the `errors`, `failures` and `skipped` attributes pytest
//! writes on `<testsuite>`: every `<failure>`, `<error>` and `<skipped>` child
//! counts once, and a testcase without any of them counts as passed. So a
//! test that fails and whose teardown then errors counts as failed *and* as an
//! error, as pytest's summary line says, while its `TestCase` stays `Failed`.
//! pytest writes such a test as two `<testcase>` elements with the same
//! classname and name (the schema allows one failure or error per testcase);
//! they are folded back into one `TestCase`. A test that passes and whose
//! teardown errors is one `<testcase>` with an `<error>` only: the XML does
//! not say the call passed, so it counts as an error alone (pytest's terminal
//! summary counts it as passed too).

use std::collections::{BTreeMap, HashMap};

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::evaluation::model::{Outcome, Tally, TestCase};

/// Errors reading a JUnit report.
#[derive(Debug, thiserror::Error)]
pub enum JunitError {
    /// The text is not well-formed XML (or holds an unknown entity).
    #[error("malformed junit xml at byte {position}: {source}")]
    Xml {
        position: u64,
        #[source]
        source: quick_xml::Error,
    },
    /// The text ends inside an element: typically pytest killed while writing.
    #[error("junit xml ends inside <{element}>")]
    Truncated { element: String },
    /// The text holds no element at all.
    #[error("junit xml has no root element")]
    Empty,
    /// The root is neither `<testsuites>` nor `<testsuite>`.
    #[error("not a junit report: root element is <{root}>")]
    NotJunit { root: String },
}

/// What one module's testcases added up to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModuleReport {
    pub tally: Tally,
    /// Seconds: the sum of the module's testcase `time` attributes, unrounded.
    pub duration: f64,
    /// In report order, one per test (see the module doc for the folding).
    pub tests: Vec<TestCase>,
}

/// Attributes every `<testcase>` to one of `modules` (paths relative to the
/// project root, '/' separators, e.g. "tests/test_a.py").
///
/// A testcase belongs to the module whose dotted path is the longest prefix
/// of its `classname` (pytest derives `classname` from the nodeid, so
/// "tests/test_a.py" owns "tests.test_a" and "tests.test_a.TestX"); when the
/// `file` attribute is one of those candidates it decides between them. The
/// `file` attribute alone is not trusted first: it names the file that
/// *defines* the test function, so a test inherited from a base class in
/// another module would be credited to the base class's module. When the
/// classname matches nothing, `file` is used if it is one of `modules`; a
/// collection error has an empty classname and its dotted module path as
/// name, which is tried last. Testcases matching no module are dropped, and
/// only modules with at least one testcase get an entry.
///
/// Messages are capped with [`cap_message`] to `message_cap` bytes.
pub fn parse(xml: &str, modules: &[String], message_cap: usize) -> Result<BTreeMap<String, ModuleReport>, JunitError> {
    let matcher = Matcher::new(modules);
    let mut reports: BTreeMap<String, Builder> = BTreeMap::new();
    for case in read_testcases(xml)? {
        if let Some(module) = matcher.module_for(&case) {
            reports.entry(module.to_owned()).or_default().add(case, message_cap);
        }
    }
    Ok(reports.into_iter().map(|(module, builder)| (module, builder.report)).collect())
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

/// The outcome elements a `<testcase>` may hold, in the order that decides
/// its `Outcome`: a failure outranks an error, which outranks a skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Failure,
    Error,
    Skipped,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Failure, Kind::Error, Kind::Skipped];

    fn from_tag(tag: &[u8]) -> Option<Kind> {
        match tag {
            b"failure" => Some(Kind::Failure),
            b"error" => Some(Kind::Error),
            b"skipped" => Some(Kind::Skipped),
            _ => None,
        }
    }

    fn outcome(self) -> Outcome {
        match self {
            Kind::Failure => Outcome::Failed,
            Kind::Error => Outcome::Error,
            Kind::Skipped => Outcome::Skipped,
        }
    }
}

/// One `<testcase>` element as written, before attribution.
#[derive(Debug, Default)]
struct RawCase {
    classname: String,
    name: String,
    file: Option<String>,
    time: f64,
    /// How many `<failure>`, `<error>`, `<skipped>` children, by `Kind` order.
    counts: [u32; 3],
    /// The first message of each kind, by `Kind` order.
    messages: [Option<String>; 3],
}

impl RawCase {
    fn record(&mut self, kind: Kind, message: Option<String>) {
        let i = kind as usize;
        self.counts[i] += 1;
        if self.messages[i].is_none() {
            self.messages[i] = message;
        }
    }

    fn tally(&self) -> Tally {
        let [failed, errors, skipped] = self.counts;
        Tally { passed: u32::from(self.counts == [0; 3]), failed, skipped, errors }
    }

    /// The ranking outcome and its message.
    fn verdict(&self) -> (Outcome, Option<&str>) {
        Kind::ALL
            .into_iter()
            .find(|kind| self.counts[*kind as usize] > 0)
            .map_or((Outcome::Passed, None), |kind| (kind.outcome(), self.messages[kind as usize].as_deref()))
    }
}

/// An outcome element whose `message` attribute was missing or empty, so its
/// text is gathered until it closes.
struct PendingText {
    kind: Kind,
    text: String,
}

/// Streams the document and returns its testcases in document order.
fn read_testcases(xml: &str) -> Result<Vec<RawCase>, JunitError> {
    let mut reader = Reader::from_str(xml);
    let mut cases = Vec::new();
    // Names of the open elements: depth tells a testcase's own children
    // from deeper elements, and a non-empty stack at the end means truncation.
    let mut open: Vec<String> = Vec::new();
    let mut saw_root = false;
    // The open testcase and the depth of its own children.
    let mut case: Option<(RawCase, usize)> = None;
    let mut pending: Option<PendingText> = None;

    loop {
        let event =
            reader.read_event().map_err(|source| JunitError::Xml { position: reader.error_position(), source })?;
        let xml_err = |source: quick_xml::Error| JunitError::Xml { position: reader.buffer_position(), source };
        match event {
            Event::Start(ref tag) | Event::Empty(ref tag) => {
                let is_empty = matches!(event, Event::Empty(_));
                let local = tag.local_name();
                let local = local.as_ref();
                if !saw_root {
                    saw_root = true;
                    if local != b"testsuites" && local != b"testsuite" {
                        return Err(JunitError::NotJunit { root: String::from_utf8_lossy(local).into_owned() });
                    }
                }
                let child_depth = case.as_ref().map(|(_, depth)| *depth);
                if child_depth.is_none() && local == b"testcase" {
                    let raw = read_case_attributes(tag).map_err(xml_err)?;
                    if is_empty {
                        cases.push(raw);
                    } else {
                        case = Some((raw, open.len() + 1));
                    }
                } else if let (Some((raw, depth)), Some(kind)) = (&mut case, Kind::from_tag(local)) {
                    if open.len() == *depth {
                        let message = attribute(tag, b"message").map_err(xml_err)?;
                        match message.filter(|m| !m.trim().is_empty()) {
                            Some(m) => raw.record(kind, Some(m.trim().to_owned())),
                            None if is_empty => raw.record(kind, None),
                            None => pending = Some(PendingText { kind, text: String::new() }),
                        }
                    }
                }
                if !is_empty {
                    open.push(String::from_utf8_lossy(tag.name().as_ref()).into_owned());
                }
            }
            Event::End(_) => {
                open.pop();
                let depth = open.len();
                let child_depth = case.as_ref().map(|(_, d)| *d);
                if child_depth == Some(depth) {
                    if let (Some((raw, _)), Some(p)) = (&mut case, pending.take()) {
                        let text = p.text.trim();
                        raw.record(p.kind, (!text.is_empty()).then(|| text.to_owned()));
                    }
                } else if child_depth == Some(depth + 1) {
                    if let Some((raw, _)) = case.take() {
                        cases.push(raw);
                    }
                }
            }
            Event::Text(text) => {
                if let Some(p) = &mut pending {
                    p.text.push_str(&text.unescape().map_err(xml_err)?);
                }
            }
            Event::CData(data) => {
                if let Some(p) = &mut pending {
                    p.text.push_str(&String::from_utf8_lossy(&data));
                }
            }
            Event::Eof => break,
            // Declarations, comments, processing instructions, doctypes.
            _ => {}
        }
    }
    if let Some(element) = open.pop() {
        return Err(JunitError::Truncated { element });
    }
    if !saw_root {
        return Err(JunitError::Empty);
    }
    Ok(cases)
}

fn read_case_attributes(tag: &BytesStart) -> Result<RawCase, quick_xml::Error> {
    let mut raw = RawCase::default();
    for attr in tag.attributes() {
        let attr = attr?;
        let value = || attr.unescape_value().map(|v| v.into_owned());
        match attr.key.local_name().as_ref() {
            b"classname" => raw.classname = value()?,
            b"name" => raw.name = value()?,
            b"file" => raw.file = Some(value()?),
            // A missing or unreadable time is no reason to lose the outcome.
            b"time" => raw.time = value()?.trim().parse::<f64>().ok().filter(|t| t.is_finite()).unwrap_or(0.0),
            _ => {}
        }
    }
    Ok(raw)
}

fn attribute(tag: &BytesStart, key: &[u8]) -> Result<Option<String>, quick_xml::Error> {
    for attr in tag.attributes() {
        let attr = attr?;
        if attr.key.local_name().as_ref() == key {
            return Ok(Some(attr.unescape_value()?.into_owned()));
        }
    }
    Ok(None)
}

/// The modules of one run with the dotted form pytest gives their paths.
struct Matcher<'a> {
    modules: Vec<(&'a str, String)>,
}

impl<'a> Matcher<'a> {
    fn new(modules: &'a [String]) -> Self {
        let modules = modules
            .iter()
            .map(|m| {
                // As pytest's `mangle_test_address`: '/' → '.', one ".py" dropped.
                let dotted = m.strip_suffix(".py").unwrap_or(m).replace('/', ".");
                (m.as_str(), dotted)
            })
            .collect();
        Matcher { modules }
    }

    fn module_for(&self, case: &RawCase) -> Option<&'a str> {
        let file = case.file.as_deref();
        self.by_address(&case.classname, file)
            .or_else(|| file.and_then(|f| self.modules.iter().find(|(m, _)| *m == f)))
            .or_else(|| if case.classname.is_empty() { self.by_address(&case.name, None) } else { None })
            .map(|(m, _)| *m)
    }

    /// The module whose dotted path prefixes `address` at a '.' boundary:
    /// `file` when it is one of the candidates, else the longest.
    fn by_address(&self, address: &str, file: Option<&str>) -> Option<&(&'a str, String)> {
        if address.is_empty() {
            return None;
        }
        let candidates = self.modules.iter().filter(|(_, dotted)| {
            address.strip_prefix(dotted.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
        });
        let mut best: Option<&(&'a str, String)> = None;
        for candidate in candidates {
            if Some(candidate.0) == file {
                return Some(candidate);
            }
            if best.is_none_or(|b| candidate.1.len() > b.1.len()) {
                best = Some(candidate);
            }
        }
        best
    }
}

/// Accumulates one module's report, folding repeated testcases.
#[derive(Default)]
struct Builder {
    report: ModuleReport,
    /// (classname, name) → index in `report.tests`, to fold the second
    /// `<testcase>` pytest writes for a failed test whose teardown errors.
    seen: HashMap<(String, String), usize>,
}

impl Builder {
    fn add(&mut self, raw: RawCase, message_cap: usize) {
        let (outcome, message) = raw.verdict();
        let message = message.map(|m| cap_message(m, message_cap));
        let mut tally = raw.tally();
        self.report.duration += raw.time;
        let key = (raw.classname, raw.name);
        if let Some(&i) = self.seen.get(&key) {
            let test = &mut self.report.tests[i];
            test.duration += raw.time;
            if rank(outcome) > rank(test.outcome) {
                test.outcome = outcome;
                test.message = message;
            }
            // The test is already counted once; a repeat adds only what it
            // reports beyond passing.
            tally.passed = 0;
        } else {
            self.seen.insert(key.clone(), self.report.tests.len());
            self.report.tests.push(TestCase { name: key.1, classname: key.0, outcome, duration: raw.time, message });
        }
        self.report.tally.add(&tally);
    }
}

/// Orders outcomes the way folded testcases combine: a failure stays a
/// failure whatever its teardown does.
fn rank(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Passed => 0,
        Outcome::Skipped => 1,
        Outcome::Error => 2,
        Outcome::Failed => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modules(paths: &[&str]) -> Vec<String> {
        paths.iter().map(|p| (*p).to_owned()).collect()
    }

    fn tally(passed: u32, failed: u32, skipped: u32, errors: u32) -> Tally {
        Tally { passed, failed, skipped, errors }
    }

    fn outcomes(report: &ModuleReport) -> Vec<(&str, Outcome)> {
        report.tests.iter().map(|t| (t.name.as_str(), t.outcome)).collect()
    }

    fn suite(cases: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest">{cases}</testsuite></testsuites>"#
        )
    }

    /// pytest 9.2 with `-o junit_family=xunit1 --continue-on-collection-errors`
    /// on a sample project; only newlines between elements were added.
    const PYTEST_REPORT: &str = r##"<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests">
<testsuite name="pytest" errors="4" failures="4" skipped="2" tests="16" time="0.139" timestamp="2026-11-25T16:18:08.334524+00:00" hostname="vm">
<testcase classname="" name="tests.test_broken" file="tests/test_broken.py" time="0.000">
<error message="collection failure">ImportError while importing test module '/tmp/sample_proj/tests/test_broken.py'.
Hint: make sure your test modules/packages have valid Python names.
Traceback:
/root/.pyenv/versions/3.11.7/lib/python3.11/importlib/__init__.py:126: in import_module
    return _bootstrap._gcd_import(name[level:], package, level)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
tests/test_broken.py:1: in &lt;module&gt;
    import does_not_exist_module
E   ModuleNotFoundError: No module named 'does_not_exist_module'</error>
</testcase>
<testcase classname="tests.pkg.sub.test_deep.TestOuter.TestInner" name="test_nested" file="tests/pkg/sub/test_deep.py" line="2" time="0.001" />
<testcase classname="tests.pkg.sub.test_deep" name="test_deep" file="tests/pkg/sub/test_deep.py" line="5" time="0.000" />
<testcase classname="tests.test_a" name="test_pass" file="tests/test_a.py" line="2" time="0.000" />
<testcase classname="tests.test_a" name="test_fail" file="tests/test_a.py" line="5" time="0.001">
<failure message="AssertionError: one is not &lt;two&gt; &amp; &quot;three&quot;&#10;assert 1 == 2">def test_fail():
&gt;       assert 1 == 2, "one is not &lt;two&gt; &amp; \"three\""
E       AssertionError: one is not &lt;two&gt; &amp; "three"
E       assert 1 == 2

tests/test_a.py:7: AssertionError</failure>
</testcase>
<testcase classname="tests.test_a" name="test_skip" file="tests/test_a.py" line="8" time="0.000">
<skipped type="pytest.skip" message="not today">/tmp/sample_proj/tests/test_a.py:9: not today</skipped>
</testcase>
<testcase classname="tests.test_a" name="test_xfail" file="tests/test_a.py" line="12" time="0.001">
<skipped type="pytest.xfail" message="known bug" />
</testcase>
<testcase classname="tests.test_a" name="test_xpass" file="tests/test_a.py" line="16" time="0.000" />
<testcase classname="tests.test_a" name="test_fail_and_teardown_error" file="tests/test_a.py" line="25" time="0.000">
<failure message="assert False">bad_teardown = None

    def test_fail_and_teardown_error(bad_teardown):
&gt;       assert False
E       assert False

tests/test_a.py:27: AssertionError</failure>
</testcase>
<testcase classname="tests.test_a" name="test_fail_and_teardown_error" file="tests/test_a.py" line="25" time="0.000">
<error message="failed on teardown with &quot;RuntimeError: teardown boom&quot;">@pytest.fixture
    def bad_teardown():
        yield
&gt;       raise RuntimeError("teardown boom")
E       RuntimeError: teardown boom

tests/test_a.py:24: RuntimeError</error>
</testcase>
<testcase classname="tests.test_a" name="test_pass_and_teardown_error" file="tests/test_a.py" line="28" time="0.001">
<error message="failed on teardown with &quot;RuntimeError: teardown boom&quot;">@pytest.fixture
    def bad_teardown():
        yield
&gt;       raise RuntimeError("teardown boom")
E       RuntimeError: teardown boom

tests/test_a.py:24: RuntimeError</error>
</testcase>
<testcase classname="tests.test_a" name="test_setup_error" file="tests/test_a.py" line="35" time="0.001">
<error message="failed on setup with &quot;ValueError: setup boom&quot;">@pytest.fixture
    def bad_setup():
&gt;       raise ValueError("setup boom")
E       ValueError: setup boom

tests/test_a.py:34: ValueError</error>
</testcase>
<testcase classname="tests.test_a.TestThing" name="test_method_ok" file="tests/test_a.py" line="39" time="0.001" />
<testcase classname="tests.test_a.TestThing" name="test_method_bad" file="tests/test_a.py" line="43" time="0.001">
<failure message="AssertionError: assert 'ééé' == 'x'&#10;  &#10;  - x&#10;  + ééé">self = &lt;test_a.TestThing object at 0x7ff0f6615e90&gt;

    def test_method_bad(self):
&gt;       assert "é" * 3 == "x"
E       AssertionError: assert 'ééé' == 'x'
E         
E         - x
E         + ééé

tests/test_a.py:45: AssertionError</failure>
</testcase>
<testcase classname="tests.test_a.TestThing" name="test_param[1]" file="tests/test_a.py" line="46" time="0.001" />
<testcase classname="tests.test_a.TestThing" name="test_param[2]" file="tests/test_a.py" line="46" time="0.001">
<failure message="assert 2 &lt; 2">self = &lt;test_a.TestThing object at 0x7ff0f6601a50&gt;, n = 2

    @pytest.mark.parametrize("n", [1, 2])
    def test_param(self, n):
&gt;       assert n &lt; 2
E       assert 2 &lt; 2

tests/test_a.py:49: AssertionError</failure>
</testcase>
</testsuite>
</testsuites>"##;

    #[test]
    fn real_pytest_report_tallies_each_module() {
        let mods =
            modules(&["tests/test_a.py", "tests/test_broken.py", "tests/pkg/sub/test_deep.py", "tests/test_empty.py"]);
        let reports = parse(PYTEST_REPORT, &mods, 1000).unwrap();
        assert_eq!(
            reports.keys().collect::<Vec<_>>(),
            ["tests/pkg/sub/test_deep.py", "tests/test_a.py", "tests/test_broken.py"]
        );

        let a = &reports["tests/test_a.py"];
        assert_eq!(a.tally, tally(4, 4, 2, 3));
        assert_eq!(
            outcomes(a),
            [
                ("test_pass", Outcome::Passed),
                ("test_fail", Outcome::Failed),
                ("test_skip", Outcome::Skipped),
                ("test_xfail", Outcome::Skipped),
                ("test_xpass", Outcome::Passed),
                ("test_fail_and_teardown_error", Outcome::Failed),
                ("test_pass_and_teardown_error", Outcome::Error),
                ("test_setup_error", Outcome::Error),
                ("test_method_ok", Outcome::Passed),
                ("test_method_bad", Outcome::Failed),
                ("test_param[1]", Outcome::Passed),
                ("test_param[2]", Outcome::Failed),
            ]
        );
        assert!((a.duration - 0.008).abs() < 1e-12, "{}", a.duration);
        assert_eq!(a.tests[1].message.as_deref(), Some("AssertionError: one is not <two> & \"three\"\nassert 1 == 2"));
        assert_eq!(a.tests[2].message.as_deref(), Some("not today"));
        assert_eq!(a.tests[3].message.as_deref(), Some("known bug"));
        assert_eq!(a.tests[4].message, None);
        assert_eq!(a.tests[5].message.as_deref(), Some("assert False"));
        assert_eq!(a.tests[7].message.as_deref(), Some("failed on setup with \"ValueError: setup boom\""));
        assert_eq!(a.tests[9].classname, "tests.test_a.TestThing");
        assert_eq!(a.tests[9].message.as_deref(), Some("AssertionError: assert 'ééé' == 'x'\n  \n  - x\n  + ééé"));

        let deep = &reports["tests/pkg/sub/test_deep.py"];
        assert_eq!(deep.tally, tally(2, 0, 0, 0));
        assert_eq!(deep.tests[0].classname, "tests.pkg.sub.test_deep.TestOuter.TestInner");
        assert_eq!(deep.duration, 0.001);

        let broken = &reports["tests/test_broken.py"];
        assert_eq!(broken.tally, tally(0, 0, 0, 1));
        assert_eq!(outcomes(broken), [("tests.test_broken", Outcome::Error)]);
        assert_eq!(broken.tests[0].classname, "");
        assert_eq!(broken.tests[0].message.as_deref(), Some("collection failure"));

        let mut total = Tally::default();
        reports.values().for_each(|r| total.add(&r.tally));
        // The `<testsuite errors="4" failures="4" skipped="2">` pytest wrote.
        assert_eq!(total, tally(6, 4, 2, 4));
    }

    #[test]
    fn interrupted_collection_reports_only_the_broken_module() {
        // pytest without --continue-on-collection-errors: nothing ran.
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" errors="1" failures="0" skipped="0" tests="1" time="0.253" timestamp="2026-11-25T16:18:07.131325+00:00" hostname="vm"><testcase classname="" name="tests.test_broken" file="tests/test_broken.py" time="0.000"><error message="collection failure">ImportError while importing test module '/tmp/sample_proj/tests/test_broken.py'.
E   ModuleNotFoundError: No module named 'does_not_exist_module'</error></testcase></testsuite></testsuites>"#;
        let mods = modules(&["tests/test_a.py", "tests/test_broken.py"]);
        let reports = parse(xml, &mods, 1000).unwrap();
        assert_eq!(reports.len(), 1);
        let broken = &reports["tests/test_broken.py"];
        assert_eq!(broken.tally, tally(0, 0, 0, 1));
        assert_eq!(broken.duration, 0.0);
    }

    #[test]
    fn class_collection_error_counts_in_its_module() {
        // pytest 9.2 with --continue-on-collection-errors on two modules, one
        // of whose classes fails to collect while its functions run.
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" errors="1" failures="0" skipped="0" tests="6" time="0.066" timestamp="2026-11-25T16:24:52.833560+00:00" hostname="vm"><testcase classname="tests.ok.test_ok" name="TestBad" file="tests/ok/test_ok.py" time="0.000"><error message="collection failure">In tests/ok/test_ok.py::TestBad::test_m: function uses no argument 'nope'</error></testcase><testcase classname="tests.ok.test_ok" name="test_1" file="tests/ok/test_ok.py" line="1" time="0.000" /><testcase classname="tests.ok.test_ok" name="test_p[1]" file="tests/ok/test_ok.py" line="2" time="0.000" /><testcase classname="tests.ok.test_ok" name="test_p[2]" file="tests/ok/test_ok.py" line="2" time="0.000" /><testcase classname="tests.ok.test_ok" name="test_p[3]" file="tests/ok/test_ok.py" line="2" time="0.000" /><testcase classname="tests.test_ünï" name="test_u" file="tests/test_ünï.py" line="0" time="0.000" /></testsuite></testsuites>"#;
        let mods = modules(&["tests/ok/test_ok.py", "tests/test_ünï.py"]);
        let reports = parse(xml, &mods, 1000).unwrap();
        let ok = &reports["tests/ok/test_ok.py"];
        assert_eq!(ok.tally, tally(4, 0, 0, 1));
        assert_eq!(ok.tests[0].outcome, Outcome::Error);
        assert_eq!(ok.tests[0].message.as_deref(), Some("collection failure"));
        assert_eq!(reports["tests/test_ünï.py"].tally, tally(1, 0, 0, 0));
    }

    #[test]
    fn collection_error_without_file_attribute_matches_by_name() {
        // xunit2 drops `file`; the collector's dotted path is then the name.
        let xml = suite(
            r#"<testcase classname="" name="tests.sub.test_broken" time="0.000"><error message="collection failure">boom</error></testcase>"#,
        );
        let mods = modules(&["tests/sub/test_broken.py"]);
        let reports = parse(&xml, &mods, 100).unwrap();
        assert_eq!(reports["tests/sub/test_broken.py"].tally, tally(0, 0, 0, 1));
    }

    #[test]
    fn xfail_is_skipped_and_xpass_is_passed() {
        let xml = suite(
            r#"<testcase classname="tests.test_x" name="test_xfail" file="tests/test_x.py" line="3" time="0.25"><skipped type="pytest.xfail" message="known bug" /></testcase>
<testcase classname="tests.test_x" name="test_xpass" file="tests/test_x.py" line="7" time="0.5" />
<testcase classname="tests.test_x" name="test_xpass_strict" file="tests/test_x.py" line="9" time="0.125"><failure message="[XPASS(strict)] strict">[XPASS(strict)] strict</failure></testcase>"#,
        );
        let reports = parse(&xml, &modules(&["tests/test_x.py"]), 100).unwrap();
        let x = &reports["tests/test_x.py"];
        assert_eq!(x.tally, tally(1, 1, 1, 0));
        assert_eq!(
            outcomes(x),
            [("test_xfail", Outcome::Skipped), ("test_xpass", Outcome::Passed), ("test_xpass_strict", Outcome::Failed),]
        );
        assert_eq!(x.tests[0].message.as_deref(), Some("known bug"));
        assert_eq!(x.duration, 0.875);
    }

    #[test]
    fn failure_with_teardown_error_counts_both_and_stays_failed() {
        // As pytest writes it: a second testcase holding the teardown error.
        let split = suite(
            r#"<testcase classname="tests.test_t" name="test_f" file="tests/test_t.py" line="1" time="0.5"><failure message="assert False">body</failure></testcase>
<testcase classname="tests.test_t" name="test_f" file="tests/test_t.py" line="1" time="0.25"><error message="failed on teardown with &quot;RuntimeError: teardown boom&quot;">tb</error></testcase>
<testcase classname="tests.test_t" name="test_ok" file="tests/test_t.py" line="5" time="0.0" />"#,
        );
        // Both in one testcase, as other JUnit writers put it.
        let joined = suite(
            r#"<testcase classname="tests.test_t" name="test_f" file="tests/test_t.py" line="1" time="0.75"><failure message="assert False">body</failure><error message="failed on teardown">tb</error></testcase>
<testcase classname="tests.test_t" name="test_ok" file="tests/test_t.py" line="5" time="0.0" />"#,
        );
        for xml in [split, joined] {
            let reports = parse(&xml, &modules(&["tests/test_t.py"]), 100).unwrap();
            let t = &reports["tests/test_t.py"];
            assert_eq!(t.tally, tally(1, 1, 0, 1));
            assert_eq!(outcomes(t), [("test_f", Outcome::Failed), ("test_ok", Outcome::Passed)]);
            assert_eq!(t.tests[0].message.as_deref(), Some("assert False"));
            assert_eq!(t.tests[0].duration, 0.75);
            assert_eq!(t.duration, 0.75);
        }
    }

    #[test]
    fn repeated_outcome_children_count_as_pytest_counts_them() {
        // pytest 9.2 report; its testsuite says errors="3" failures="2" skipped="4".
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" errors="3" failures="2" skipped="4" tests="7" time="0.072" hostname="vm">
<testcase classname="tests.test_edge" name="test_setup_and_teardown_error" file="tests/test_edge.py" line="15" time="0.001"><error message="failed on setup with &quot;ValueError: setup boom&quot;">setup tb</error><error message="failed on teardown with &quot;RuntimeError: teardown boom&quot;">teardown tb</error></testcase>
<testcase classname="tests.test_edge" name="test_skip_and_teardown_error" file="tests/test_edge.py" line="18" time="0.001"><skipped type="pytest.skip" message="skipping &lt;now&gt;">/tmp/edge_proj/tests/test_edge.py:20: skipping &lt;now&gt;</skipped><error message="failed on teardown with &quot;RuntimeError: teardown boom&quot;">teardown tb</error></testcase>
<testcase classname="tests.test_edge" name="test_xfail_and_teardown_error" file="tests/test_edge.py" line="21" time="0.001"><skipped type="pytest.xfail" message="xf" /><skipped type="pytest.xfail" message="xf" /></testcase>
<testcase classname="tests.test_edge" name="test_xpass_strict" file="tests/test_edge.py" line="25" time="0.001"><failure message="[XPASS(strict)] strict">[XPASS(strict)] strict</failure></testcase>
<testcase classname="tests.test_edge" name="test_empty_skip_message" file="tests/test_edge.py" line="29" time="0.000"><skipped type="pytest.skip" message="Skipped">/tmp/edge_proj/tests/test_edge.py:31: Skipped</skipped></testcase>
<testcase classname="tests.test_edge" name="test_ctrl_chars" file="tests/test_edge.py" line="32" time="0.001"><failure message="AssertionError: assert '\x1b[31m' == 'red'&#10;  + #x1B[31m">tb</failure></testcase>
</testsuite></testsuites>"#;
        let reports = parse(xml, &modules(&["tests/test_edge.py"]), 100).unwrap();
        let e = &reports["tests/test_edge.py"];
        assert_eq!(e.tally, tally(0, 2, 4, 3));
        assert_eq!(
            outcomes(e),
            [
                ("test_setup_and_teardown_error", Outcome::Error),
                ("test_skip_and_teardown_error", Outcome::Error),
                ("test_xfail_and_teardown_error", Outcome::Skipped),
                ("test_xpass_strict", Outcome::Failed),
                ("test_empty_skip_message", Outcome::Skipped),
                ("test_ctrl_chars", Outcome::Failed),
            ]
        );
        assert_eq!(e.tests[0].message.as_deref(), Some("failed on setup with \"ValueError: setup boom\""));
        assert_eq!(e.tests[1].message.as_deref(), Some("failed on teardown with \"RuntimeError: teardown boom\""));
        assert_eq!(e.tests[5].message.as_deref(), Some("AssertionError: assert '\\x1b[31m' == 'red'\n  + #x1B[31m"));
    }

    #[test]
    fn classname_longest_prefix_picks_the_module() {
        let xml = suite(
            r#"<testcase classname="tests.test_a" name="test_1" time="0.1" />
<testcase classname="tests.test_a.TestX" name="test_2" time="0.1" />
<testcase classname="tests.test_a.test_b" name="test_3" time="0.1" />
<testcase classname="tests.test_a.test_b.TestY.TestZ" name="test_4" time="0.1" />
<testcase classname="tests.test_ab" name="test_5" time="0.1" />
<testcase classname="tests" name="test_6" time="0.1" />
<testcase classname="tests.pkg.v1.2.test_dots" name="test_7" time="0.1" />"#,
        );
        let mods = modules(&["tests/test_a.py", "tests/test_a/test_b.py", "tests/pkg/v1.2/test_dots.py"]);
        let reports = parse(&xml, &mods, 100).unwrap();
        let names = |m: &str| -> Vec<&str> { reports[m].tests.iter().map(|t| t.name.as_str()).collect() };
        assert_eq!(names("tests/test_a.py"), ["test_1", "test_2"]);
        assert_eq!(names("tests/test_a/test_b.py"), ["test_3", "test_4"]);
        assert_eq!(names("tests/pkg/v1.2/test_dots.py"), ["test_7"]);
        // "tests.test_ab" is not "tests.test_a" plus a class, and "tests"
        // is no module of the run: both dropped.
        assert_eq!(reports.len(), 3);
    }

    #[test]
    fn inherited_tests_belong_to_the_collecting_module_not_the_defining_file() {
        // pytest 9.2 report: `file` names where test_inherited is defined.
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" errors="0" failures="0" skipped="0" tests="4" time="0.052" hostname="vm"><testcase classname="tests.test_base.TestBase" name="test_inherited" file="tests/test_base.py" line="1" time="0.001" /><testcase classname="tests.test_sub.TestBase" name="test_inherited" file="tests/test_base.py" line="1" time="0.000" /><testcase classname="tests.test_sub.TestSub" name="test_inherited" file="tests/test_base.py" line="1" time="0.000" /><testcase classname="tests.test_sub.TestSub" name="test_own" file="tests/test_sub.py" line="3" time="0.000" /></testsuite></testsuites>"#;
        let mods = modules(&["tests/test_base.py", "tests/test_sub.py"]);
        let reports = parse(xml, &mods, 100).unwrap();
        assert_eq!(reports["tests/test_base.py"].tally, tally(1, 0, 0, 0));
        assert_eq!(reports["tests/test_sub.py"].tally, tally(3, 0, 0, 0));
        // Same name, different classes: not folded together.
        assert_eq!(reports["tests/test_sub.py"].tests.len(), 3);
    }

    #[test]
    fn file_attribute_decides_when_classname_matches_no_module() {
        let xml = suite(
            r#"<testcase classname="elsewhere.test_c" name="test_1" file="tests/test_c.py" time="0.1" />
<testcase classname="elsewhere.test_c" name="test_2" file="tests/other.py" time="0.1" />"#,
        );
        let reports = parse(&xml, &modules(&["tests/test_c.py"]), 100).unwrap();
        assert_eq!(outcomes(&reports["tests/test_c.py"]), [("test_1", Outcome::Passed)]);
    }

    #[test]
    fn file_attribute_breaks_a_classname_tie() {
        // Both modules mangle to a prefix of the classname; `file` says which.
        let xml = suite(
            r#"<testcase classname="t.test_m.TestK" name="test_1" file="t/test_m.py" time="0.1" />
<testcase classname="t.test_m.TestK" name="test_2" time="0.1" />"#,
        );
        let mods = modules(&["t/test_m.py", "t/test_m/TestK.py"]);
        let reports = parse(&xml, &mods, 100).unwrap();
        assert_eq!(outcomes(&reports["t/test_m.py"]), [("test_1", Outcome::Passed)]);
        assert_eq!(outcomes(&reports["t/test_m/TestK.py"]), [("test_2", Outcome::Passed)]);
    }

    #[test]
    fn testcases_of_other_modules_are_dropped() {
        let xml = suite(r#"<testcase classname="tests.test_z" name="test_1" time="1.0" />"#);
        let reports = parse(&xml, &modules(&["tests/test_a.py"]), 100).unwrap();
        assert!(reports.is_empty());
    }

    #[test]
    fn several_testsuites_add_up() {
        let xml = r#"<testsuites>
<testsuite name="one"><testcase classname="tests.test_a" name="test_1" time="0.5" /></testsuite>
<testsuite name="two" />
<testsuite name="three"><testcase classname="tests.test_a" name="test_2" time="0.25"><skipped message="later" /></testcase></testsuite>
</testsuites>"#;
        let reports = parse(xml, &modules(&["tests/test_a.py"]), 100).unwrap();
        let a = &reports["tests/test_a.py"];
        assert_eq!(a.tally, tally(1, 0, 1, 0));
        assert_eq!(a.duration, 0.75);
    }

    #[test]
    fn a_bare_testsuite_root_is_read() {
        let xml =
            r#"<testsuite name="pytest"><testcase classname="tests.test_a" name="test_1" time="0.5" /></testsuite>"#;
        let reports = parse(xml, &modules(&["tests/test_a.py"]), 100).unwrap();
        assert_eq!(reports["tests/test_a.py"].tally, tally(1, 0, 0, 0));
    }

    #[test]
    fn empty_suites_give_no_modules() {
        for xml in [
            r#"<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" errors="0" failures="0" skipped="0" tests="0" time="0.003" /></testsuites>"#,
            "<testsuites/>",
            "<testsuite></testsuite>",
        ] {
            assert!(parse(xml, &modules(&["tests/test_a.py"]), 100).unwrap().is_empty());
        }
    }

    #[test]
    fn unknown_elements_and_missing_attributes_are_tolerated() {
        let xml = suite(
            r#"<properties><property name="x" value="y" /></properties>
<testcase classname="tests.test_a" name="test_out" time="0.5"><properties><property name="failure" value="no" /></properties><system-out>&lt;failure&gt; printed</system-out><system-err>err</system-err><rerun message="ignored" /></testcase>
<testcase classname="tests.test_a"><failure /></testcase>
<testcase classname="tests.test_a" name="test_bad_time" time="fast" />
<testcase classname="tests.test_a" name="test_nan_time" time="NaN" />
<system-out>suite output</system-out>"#,
        );
        let reports = parse(&xml, &modules(&["tests/test_a.py"]), 100).unwrap();
        let a = &reports["tests/test_a.py"];
        assert_eq!(a.tally, tally(3, 1, 0, 0));
        assert_eq!(
            outcomes(a),
            [
                ("test_out", Outcome::Passed),
                ("", Outcome::Failed),
                ("test_bad_time", Outcome::Passed),
                ("test_nan_time", Outcome::Passed),
            ]
        );
        assert_eq!(a.tests[1].message, None);
        assert_eq!(a.tests[1].duration, 0.0);
        assert_eq!(a.duration, 0.5);
    }

    #[test]
    fn message_falls_back_to_the_element_text() {
        let xml = suite(
            r#"<testcase classname="tests.test_a" name="test_text" time="0"><failure>
  line &lt;1&gt; &amp; &#233;
</failure></testcase>
<testcase classname="tests.test_a" name="test_empty_attr" time="0"><error message="">from text</error></testcase>
<testcase classname="tests.test_a" name="test_cdata" time="0"><failure><![CDATA[raw <b>&amp; kept</b>]]></failure></testcase>
<testcase classname="tests.test_a" name="test_nothing" time="0"><skipped></skipped></testcase>"#,
        );
        let reports = parse(&xml, &modules(&["tests/test_a.py"]), 100).unwrap();
        let messages: Vec<Option<&str>> =
            reports["tests/test_a.py"].tests.iter().map(|t| t.message.as_deref()).collect();
        assert_eq!(messages, [Some("line <1> & é"), Some("from text"), Some("raw <b>&amp; kept</b>"), None]);
    }

    #[test]
    fn messages_are_capped_at_a_char_boundary() {
        let xml = suite(
            r#"<testcase classname="tests.test_a" name="test_long" time="0"><failure message="abcdefghij" /></testcase>
<testcase classname="tests.test_a" name="test_utf8" time="0"><failure message="ééééé" /></testcase>
<testcase classname="tests.test_a" name="test_short" time="0"><failure message="abc" /></testcase>"#,
        );
        let reports = parse(&xml, &modules(&["tests/test_a.py"]), 5).unwrap();
        let messages: Vec<&str> =
            reports["tests/test_a.py"].tests.iter().map(|t| t.message.as_deref().unwrap()).collect();
        assert_eq!(messages, ["abcde…", "éé…", "abc"]);
    }

    #[test]
    fn cap_message_keeps_whole_chars() {
        assert_eq!(cap_message("hello", 5), "hello");
        assert_eq!(cap_message("hello", 4), "hell…");
        assert_eq!(cap_message("hello", 0), "…");
        assert_eq!(cap_message("", 0), "");
        // "é" is two bytes, "😀" four: never split inside either.
        assert_eq!(cap_message("aé", 2), "a…");
        assert_eq!(cap_message("😀😀", 7), "😀…");
        assert_eq!(cap_message("😀😀", 3), "…");
    }

    #[test]
    fn malformed_xml_is_an_error() {
        let mods = modules(&["tests/test_a.py"]);
        let cases = [
            r#"<testsuites><testsuite></testcase></testsuites>"#,
            r#"<testsuites><testcase name="a" name="b" /></testsuites>"#,
            r#"<testsuites><testcase name="&bogus;" /></testsuites>"#,
            r#"<testsuites><testcase classname="tests.test_a"><failure>&bogus;</failure></testcase></testsuites>"#,
            r#"<testsuites><testcase name="unclosed></testsuites>"#,
        ];
        for xml in cases {
            let err = parse(xml, &mods, 100).unwrap_err();
            assert!(matches!(err, JunitError::Xml { .. }), "{xml}: {err:?}");
        }
    }

    #[test]
    fn truncated_report_is_an_error() {
        let xml =
            r#"<?xml version="1.0"?><testsuites><testsuite><testcase classname="tests.test_a" name="t" time="1">"#;
        let err = parse(xml, &modules(&["tests/test_a.py"]), 100).unwrap_err();
        assert!(matches!(&err, JunitError::Truncated { element } if element == "testcase"), "{err:?}");
        assert_eq!(err.to_string(), "junit xml ends inside <testcase>");
    }

    #[test]
    fn empty_or_foreign_documents_are_errors() {
        let mods = modules(&["tests/test_a.py"]);
        assert!(matches!(parse("", &mods, 100), Err(JunitError::Empty)));
        assert!(matches!(parse("<?xml version=\"1.0\"?>\n  not xml\n", &mods, 100), Err(JunitError::Empty)));
        let err = parse("<html><body>502</body></html>", &mods, 100).unwrap_err();
        assert!(matches!(&err, JunitError::NotJunit { root } if root == "html"));
    }
}
