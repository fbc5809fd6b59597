//! What happens when an actor panics (`node::fail_stop`): the node stops at
//! once with exit status 70, whichever actor it was, and a node started
//! again on the same data rebuilds its state from its store — an evaluation
//! whose supervisor panicked is resumed and graded exactly. One test per
//! kind of actor, each made to panic in one of its own handlers through
//! `POST /panic` (mounted only under `admin.enable_kill`).

mod common;

use std::time::Duration;

use common::cluster::{assert_exact, project};
use common::*;

const MODULES: usize = 4;

/// Makes `actor` of a real node panic, with an evaluation running when
/// `running`; checks that the node stops with status 70 and that a node
/// started again on its data serves, and finishes the evaluation exactly.
fn panics_stop_the_node(actor: &'static str, running: bool) {
    with_timeout(Duration::from_secs(240), move || {
        let dir = tempfile::tempdir().unwrap();
        let config = NodeConfig::new(&dir.path().join("data")).set("admin", "enable_kill", "true");
        let mut node = Node::start(&config, dir.path(), "node");
        let id = running.then(|| {
            let id = node.submit_multipart("projects.zip", &project(MODULES, 2.0));
            wait_until("the evaluation runs", Duration::from_secs(120), || {
                (node.evaluation(&id, "")["status"] == "running").then_some(())
            });
            id
        });
        let body = format!(r#"{{"actor":"{actor}"}}"#);
        let told = node.peer("POST", "/panic", body.as_bytes());
        assert_eq!(told.status, 202, "{told:?}");
        let status = node.wait_exit(Duration::from_secs(20)).expect("the node stops after the panic");
        assert_eq!(status.code(), Some(70), "{status:?}\n{}", node.log());
        let log = node.log();
        assert!(log.contains("told to panic"), "{log}");
        assert!(log.contains("stopping the node so that the cluster takes over its work (exit 70)"), "{log}");

        let again = Node::start(&config, dir.path(), "again");
        assert_eq!(again.get("/health").status, 200);
        if let Some(id) = id {
            assert_exact(&again.wait_finished(&id, Duration::from_secs(120)), MODULES);
        }
    });
}

#[test]
fn a_panicking_store_stops_the_node() {
    panics_stop_the_node("store", false);
}

#[test]
fn a_panicking_executor_stops_the_node() {
    panics_stop_the_node("executor", false);
}

#[test]
fn a_panicking_worker_stops_the_node() {
    panics_stop_the_node("worker", false);
}

#[test]
fn a_panicking_balancer_stops_the_node() {
    panics_stop_the_node("balancer", false);
}

#[test]
fn a_panicking_membership_stops_the_node() {
    panics_stop_the_node("membership", false);
}

#[test]
fn a_panicking_coordination_stops_the_node() {
    panics_stop_the_node("coordination", false);
}

#[test]
fn a_panicking_locks_actor_stops_the_node() {
    panics_stop_the_node("locks", false);
}

#[test]
fn a_panicking_registry_stops_the_node() {
    panics_stop_the_node("registry", false);
}

#[test]
fn a_panicking_supervisor_stops_the_node_and_its_evaluation_resumes_after_a_restart() {
    panics_stop_the_node("supervisor", true);
}

#[test]
fn a_panicking_replicator_stops_the_node_and_its_evaluation_resumes_after_a_restart() {
    panics_stop_the_node("replicator", true);
}

#[test]
fn an_unknown_actor_kind_is_refused_and_the_node_goes_on() {
    with_timeout(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let config = NodeConfig::new(&dir.path().join("data")).set("admin", "enable_kill", "true");
        let node = Node::start(&config, dir.path(), "node");
        let refused = node.peer("POST", "/panic", br#"{"actor":"everything"}"#);
        assert_eq!(refused.status, 400, "{refused:?}");
        assert_eq!(refused.json()["error"], "no actor kind \"everything\"");
        let none = node.peer("POST", "/panic", br#"{"actor":"supervisor"}"#);
        assert_eq!(none.status, 404, "no evaluation runs: {none:?}");
        assert_eq!(node.get("/health").status, 200);
    });
}
