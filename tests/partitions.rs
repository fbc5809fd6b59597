//! Partitions on a real network: every node a real `evalmesh` process in a
//! network namespace of its own, on a bridge, with links the test cuts and
//! heals (`common::netns`). A supervisor cut off from the majority must not
//! close an evaluation the majority adopted (fencing by term), and once the
//! network heals every node gives one answer. Needs root; skipped, with a
//! message, otherwise.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::cluster::*;
use common::netns::Lab;
use common::sse::Stream;
use common::*;
use serde_json::Value;

const MODULES: usize = 8;

/// Starts `n` nodes in `lab`, each seeing all of them alive.
fn start(lab: &Lab, dir: &std::path::Path, n: usize) -> Vec<Node> {
    let nodes: Vec<Node> =
        (0..n).map(|i| lab.start(i, cluster_config(&dir.join(format!("data{i}")), &[]), dir)).collect();
    for node in &nodes {
        wait_until(&format!("{} sees {n} members alive", node.addr), Duration::from_secs(30), || {
            (alive(node).len() == n).then_some(())
        });
    }
    nodes
}

/// What a node's own copy says of an evaluation: its status, term,
/// supervisor and every module's result.
fn copy_of(node: &Node, id: &str) -> Option<Value> {
    let response = node.get(&format!("/evaluation/{id}?scope=local"));
    (response.status == 200).then(|| {
        let e = response.json();
        serde_json::json!({
            "status": e["status"], "epoch": e["epoch"], "supervisor": e["supervisor"],
            "results": e["module_results"],
        })
    })
}

/// Waits until every node answers the same finished evaluation, and answers it.
fn one_answer(nodes: &[Node], id: &str) -> Value {
    wait_until("every node gives one answer", Duration::from_secs(90), || {
        let answers: Vec<Value> = nodes.iter().map(|n| n.evaluation(id, "")).collect();
        let distinct: BTreeSet<String> = answers
            .iter()
            .map(|e| serde_json::json!([e["status"], e["epoch"], e["supervisor"], e["module_results"]]).to_string())
            .collect();
        (distinct.len() == 1 && answers[0]["status"] == "done").then(|| answers[0].clone())
    })
}

#[test]
fn a_supervisor_cut_off_from_the_majority_cannot_close_and_gives_way_once_healed() {
    let Some(lab) = Lab::new(71, 3) else { return };
    with_timeout(Duration::from_secs(300), move || {
        let dir = tempfile::tempdir().unwrap();
        let nodes = start(&lab, dir.path(), 3);
        let id = nodes[0].submit_multipart("projects.zip", &project(MODULES, 1.0));
        wait_until("two modules done", Duration::from_secs(120), || {
            (nodes[0].evaluation(&id, "")["_run_info"]["modules_done"].as_u64()? >= 2).then_some(())
        });
        lab.isolate(0);

        // The majority adopts it and finishes it, with exact counts.
        let adopted = wait_until("the majority closes it", Duration::from_secs(120), || {
            copy_of(&nodes[1], &id).filter(|c| c["status"] == "done")
        });
        assert_eq!(adopted["epoch"], 1, "{adopted:#}");
        assert_ne!(adopted["supervisor"], nodes[0].addr.as_str());
        assert_exact(&nodes[1].evaluation(&id, "?scope=local"), MODULES);
        // The cut-off supervisor runs every module itself, then asks for the
        // close and is refused: it has no majority.
        wait_until("the cut-off supervisor is fenced", Duration::from_secs(120), || {
            nodes[0].log().contains("cannot close yet").then_some(())
        });
        let cut_off = copy_of(&nodes[0], &id).unwrap();
        assert_eq!((&cut_off["status"], &cut_off["epoch"]), (&Value::from("running"), &Value::from(0)), "{cut_off:#}");

        lab.heal();
        let answer = one_answer(&nodes, &id);
        assert_eq!(answer["epoch"], 1);
        assert_exact(&answer, MODULES);
        for node in &nodes {
            assert_eq!(
                copy_of(node, &id).map(|c| c["results"].clone()),
                Some(adopted["results"].clone()),
                "{}",
                node.addr
            );
        }
        assert!(nodes[0].log().contains("stepping down from term 0"), "{}", nodes[0].log());
    });
}

#[test]
fn with_the_coordinator_cut_off_the_majority_elects_another_and_grades_exactly() {
    let Some(lab) = Lab::new(72, 3) else { return };
    with_timeout(Duration::from_secs(300), move || {
        let dir = tempfile::tempdir().unwrap();
        let nodes = start(&lab, dir.path(), 3);
        let coordinator = highest(nodes.iter());
        assert_eq!(coordinator, lab.addr(2));
        lab.isolate(2);
        for node in &nodes[..2] {
            wait_until("the majority elects the next highest", Duration::from_secs(30), || {
                (coordinator_of(node).as_deref() == Some(lab.addr(1).as_str())).then_some(())
            });
        }
        let id = nodes[0].submit_multipart("projects.zip", &project(MODULES, 0.5));
        assert_exact(&nodes[0].wait_finished(&id, Duration::from_secs(180)), MODULES);

        lab.heal();
        for node in &nodes {
            wait_until("every node follows the highest again", Duration::from_secs(60), || {
                (coordinator_of(node).as_deref() == Some(coordinator.as_str())).then_some(())
            });
        }
        assert_exact(&one_answer(&nodes, &id), MODULES);
    });
}

#[test]
fn with_a_tenth_of_every_links_packets_lost_results_are_exact() {
    let Some(lab) = Lab::new(73, 3) else { return };
    with_timeout(Duration::from_secs(400), move || {
        let dir = tempfile::tempdir().unwrap();
        let nodes = start(&lab, dir.path(), 3);
        lab.loss(10);
        let id = nodes[1].submit_multipart("projects.zip", &project(MODULES, 0.5));
        assert_exact(&nodes[1].wait_finished(&id, Duration::from_secs(300)), MODULES);
        assert_exact(&one_answer(&nodes, &id), MODULES);
    });
}

#[test]
fn with_a_link_cut_one_way_results_are_exact() {
    let Some(lab) = Lab::new(74, 3) else { return };
    with_timeout(Duration::from_secs(300), move || {
        let dir = tempfile::tempdir().unwrap();
        let nodes = start(&lab, dir.path(), 3);
        lab.cut(0, 1);
        let id = nodes[2].submit_multipart("projects.zip", &project(MODULES, 0.5));
        assert_exact(&nodes[2].wait_finished(&id, Duration::from_secs(180)), MODULES);
        lab.heal();
        assert_exact(&one_answer(&nodes, &id), MODULES);
    });
}

#[test]
fn a_replica_replaced_while_cut_off_gives_a_stream_that_ends() {
    let Some(lab) = Lab::new(75, 3) else { return };
    with_timeout(Duration::from_secs(300), move || {
        let dir = tempfile::tempdir().unwrap();
        let nodes: Vec<Node> = (0..3)
            .map(|i| {
                lab.start(
                    i,
                    cluster_config(&dir.path().join(format!("data{i}")), &[]).set("cluster", "replicas", "1"),
                    dir.path(),
                )
            })
            .collect();
        for node in &nodes {
            wait_until("every member alive", Duration::from_secs(30), || (alive(node).len() == 3).then_some(()));
        }
        let id = nodes[0].submit_multipart("projects.zip", &project(12, 1.5));
        let replica = wait_until("the replica holds a copy", Duration::from_secs(60), || {
            (1..3).find(|&i| copy_of(&nodes[i], &id).is_some())
        });
        let other = 3 - replica;
        // Cut off, the replica is declared dead and replaced by the other node.
        lab.isolate(replica);
        wait_until("the other node becomes the replica", Duration::from_secs(60), || {
            copy_of(&nodes[other], &id).map(|_| ())
        });
        lab.heal();
        // The old replica's copy may get no more writes (its stream then
        // catches it up from the supervisor) or be picked again: either
        // way its stream ends with the evaluation.
        let events = Stream::open(&nodes[replica].addr, &format!("/evaluation/{id}/stream"), &[]).until_done();
        let done = &events.last().unwrap().data;
        assert_exact(done, 12);
        assert_exact(&one_answer(&nodes, &id), 12);
    });
}
