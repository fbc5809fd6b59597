//! Hostile zips posted to `POST /evaluation` of a real node, raw and as a
//! multipart form: the caller's side of `archives`. None of them holds a
//! Python test, so every one must be refused, and the properties are:
//! - the answer is 400 or 413 with a JSON `error`, never a 5xx;
//! - the node keeps nothing: no workspace and no `.partial` folder under
//!   `evaluations/`, no upload under `uploads/`, no evaluation listed;
//! - the node still answers `GET /health` and has logged no panic.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

use crate::common::{self, with_timeout, Body, Node, NodeConfig, User};
use crate::zips::{self, Entry};

/// An archive with no `.py` file in it, so that no project can have tests.
fn archive() -> impl Strategy<Value = Vec<u8>> {
    let no_python = |entries: &Vec<Entry>| entries.iter().all(|e| !e.name.windows(3).any(|w| w == b".py"));
    prop_oneof![
        3 => zips::mostly_honest().prop_filter("no Python files", no_python).prop_map(|e| zips::write(&e)),
        3 => prop::collection::vec(zips::entry(), 0..12).prop_filter("no Python files", no_python).prop_map(|e| zips::write(&e)),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

fn listed(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map_or_else(|_| Vec::new(), |d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
}

fn check(node: &Node, bytes: &[u8], multipart: bool) -> Result<(), TestCaseError> {
    let (content_type, body) = if multipart {
        common::multipart(&[common::Part::file("file", "projects.zip", bytes)])
    } else {
        ("application/zip".to_owned(), bytes.to_vec())
    };
    let headers = [("Content-Type", content_type.as_str())];
    let res = common::try_http(&node.addr, "POST", "/evaluation", &headers, Body::Fixed(&body))
        .map_err(|e| TestCaseError::fail(format!("no answer: {e}\n{}", node.log())))?;
    prop_assert!(matches!(res.status, 400 | 413), "answered {}: {}", res.status, res.text());
    let error = serde_json::from_slice::<serde_json::Value>(&res.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned));
    prop_assert!(error.is_some(), "no JSON error: {}", res.text());

    let data = &node.data_dir;
    prop_assert_eq!(listed(&data.join("evaluations")), Vec::<String>::new(), "after {}", res.text());
    prop_assert_eq!(listed(&data.join("uploads")), Vec::<String>::new());
    let list =
        common::try_http(&node.addr, "GET", "/evaluation?scope=local", &[], Body::None).map_err(TestCaseError::fail)?;
    prop_assert_eq!(&list.json()["evaluations"], &serde_json::json!([]));
    let health = common::try_http(&node.addr, "GET", "/health", &[], Body::None).map_err(TestCaseError::fail)?;
    prop_assert_eq!(health.status, 200);
    prop_assert!(!node.log().contains("panicked"), "the node panicked:\n{}", node.log());
    Ok(())
}

/// Hostile uploads to a node run by `user`.
fn refused_uploads(user: User) {
    with_timeout(Duration::from_secs(180), move || {
        let dir = tempfile::tempdir().expect("a temp dir");
        // Small limits, so that the entry and size limits are met too.
        let config = NodeConfig::new(&dir.path().join("data")).set("intake", "max_entries", "10").set(
            "intake",
            "max_unpacked_bytes",
            "1048576",
        );
        let node = Node::start_as(&user.configure(config), dir.path(), "uploads", user.uid());
        let mut config = crate::config(128, 0);
        config.source_file = Some(file!());
        let mut runner = TestRunner::new(config);
        if let Err(e) = runner.run(&(archive(), any::<bool>()), |(bytes, multipart)| check(&node, &bytes, multipart)) {
            panic!("{e}\n{runner}");
        }
    });
}

crate::for_each_user!(refused_uploads_leave_nothing_behind, refused_uploads);
