//! A sick node is the cause of its pods' failures (issue 30 (4)): pods of several workloads
//! failing on one node, and on no other, while the same workloads' pods run fine elsewhere.

mod common;

use common::*;
use kube_healer_core::{CorrelatedCause, PodsKey};
use serde_json::{Value, json};

/// A pod of Deployment `deployment` on `node`: stuck in ContainerCreating (`stuck`), or Running
/// and Ready.
fn pod_of(deployment: &str, node: &str, stuck: bool) -> Value {
    let hash = "7d4f8b6c5d";
    let name = format!("{deployment}-{hash}-{node}");
    let mut p = json!({
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"), "creationTimestamp": at(-1200),
            "labels": {"app": deployment, "pod-template-hash": hash},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{deployment}-{hash}"),
                "uid": format!("rs-{deployment}"), "controller": true}]},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": format!("registry.example/{deployment}:1")}]},
    });
    p["status"] = if stuck {
        json!({"phase": "Pending", "startTime": at(-1200),
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": at(-1200)}],
            "containerStatuses": [{"name": "app", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}}}]})
    } else {
        json!({"phase": "Running", "startTime": at(-1200),
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": at(-1100)}],
            "containerStatuses": [{"name": "app", "image": "", "imageID": "", "ready": true, "restartCount": 0,
                "started": true, "state": {"running": {"startedAt": at(-1150)}}}]})
    };
    p
}

fn cluster(stuck_on_sick: &[&str], fine_elsewhere: &[&str], failing_elsewhere: &[&str]) -> Input {
    let mut input = input();
    input.nodes = vec![ready_node("sick"), ready_node("fine")];
    for d in stuck_on_sick {
        input.pods.push(pod_of(d, "sick", true));
    }
    for d in fine_elsewhere {
        input.pods.push(pod_of(d, "fine", false));
    }
    // Crash-looping there (not told alike with the stuck ones: no shared cause of that kind).
    for d in failing_elsewhere {
        input.pods.push(crashing(d, "fine"));
    }
    input
}

/// A pod of Deployment `deployment` crash-looping on `node`.
fn crashing(deployment: &str, node: &str) -> Value {
    let mut p = pod_of(deployment, node, false);
    p["status"]["conditions"] = json!([{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}]);
    p["status"]["containerStatuses"][0] = json!({"name": "app", "image": "", "imageID": "", "ready": false,
        "restartCount": 9, "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": at(-60)}}});
    p
}

fn sick_causes(input: &Input) -> Vec<(String, usize)> {
    input
        .report()
        .correlated
        .iter()
        .filter_map(|c| match &c.cause {
            CorrelatedCause::Pods(PodsKey::Node(node)) => Some((node.clone(), c.members.len())),
            _ => None,
        })
        .collect()
}

#[test]
fn pods_of_several_workloads_failing_on_one_node_while_their_siblings_run_elsewhere_are_the_node_s() {
    let four = ["cart", "pay", "search", "auth"];
    let sick = cluster(&four, &four, &[]);
    assert_eq!(sick_causes(&sick), [("sick".to_string(), 4)]);
    let report = sick.report();
    let cause = report
        .correlated
        .iter()
        .find(|c| matches!(c.cause, CorrelatedCause::Pods(PodsKey::Node(_))))
        .unwrap();
    assert!(cause.message.contains("fail on node sick"), "{}", cause.message);
    // A later pod failing there is held on sight.
    let later = report
        .findings
        .iter()
        .find(|f| f.subject.name.starts_with("cart-"))
        .unwrap();
    assert!(cause.covers(later));
}

#[test]
fn no_sibling_running_fine_is_no_evidence_against_the_node() {
    // Nothing of those workloads runs anywhere else: they may fail on their own.
    let four = ["cart", "pay", "search", "auth"];
    assert!(sick_causes(&cluster(&four, &[], &[])).is_empty());
    // Two workloads are not enough.
    assert!(sick_causes(&cluster(&["cart", "pay"], &["cart", "pay"], &[])).is_empty());
}

#[test]
fn a_workload_failing_on_other_nodes_too_is_its_own_cause_not_the_node_s() {
    // auth fails on both nodes: it is auth's trouble, and does not count for the node.
    let sick = cluster(
        &["cart", "pay", "search", "auth"],
        &["cart", "pay", "search"],
        &["auth"],
    );
    assert_eq!(sick_causes(&sick), [("sick".to_string(), 3)]);
    // With two workloads left, no node is the cause.
    let own = cluster(&["cart", "pay", "auth"], &["cart", "pay"], &["auth"]);
    assert!(sick_causes(&own).is_empty());
}

#[test]
fn a_sick_node_is_reported_to_node_policies_as_a_black_hole_whatever_its_pods_fail_of() {
    use kube_healer_api::FailureClass::NodeBlackHole;
    // Four workloads' pods crash-loop on one node (they started: no pod is unstarted there)
    // while their siblings run fine on another.
    let four = ["cart", "pay", "search", "auth"];
    let mut sick = cluster(&[], &four, &[]);
    sick.pods.extend(four.iter().map(|d| crashing(d, "sick")));
    let report = sick.report();
    assert!(classes(&report, "sick").contains(&NodeBlackHole));
    assert!(!classes(&report, "fine").contains(&NodeBlackHole));
    let finding = report.findings.iter().find(|f| f.class == NodeBlackHole).unwrap();
    assert!(
        finding.evidence.summary.contains("fail on node sick"),
        "{}",
        finding.evidence.summary
    );
    assert_eq!(finding.evidence.facts["failingPods"], "4");
    // The same pods with no sibling running fine elsewhere: no evidence against the node.
    let mut alone = cluster(&[], &[], &[]);
    alone.pods.extend(four.iter().map(|d| crashing(d, "sick")));
    assert!(!classes(&alone.report(), "sick").contains(&NodeBlackHole));
}

#[test]
fn a_pods_alike_cause_found_for_a_looser_policy_does_not_stand_for_the_sick_node() {
    use kube_healer_core::Knobs;
    use kube_healer_core::classify::{Topology, correlate};
    // Four workloads crash alike on the sick node, their siblings fine elsewhere; one policy
    // asks for pods alike at 2 of 1, so causes are found at 2 of 1.
    let four = ["cart", "pay", "search", "auth"];
    let mut sick = cluster(&[], &four, &[]);
    sick.pods.extend(four.iter().map(|d| crashing(d, "sick")));
    let (snapshot, findings) = (sick.snapshot(), sick.report().findings);
    let mut knobs = Knobs::default();
    (knobs.pods_alike.pods, knobs.pods_alike.workloads) = (2, 1);
    let found = correlate(&findings, &Topology::default(), &knobs, &[], &snapshot);
    // The pods-alike cause holds only that policy; the sick node still holds every other.
    let is_sick =
        |c: &&kube_healer_core::Correlated| c.cause == CorrelatedCause::Pods(PodsKey::Node("sick".into()));
    assert!(found.iter().any(|c| is_sick(&c)), "{found:#?}");
    let cart = findings
        .iter()
        .find(|f| f.subject.name.starts_with("cart-") && f.subject.node.as_deref() == Some("sick"))
        .unwrap();
    let operator_s = Knobs::default().pods_alike;
    let holding = found.iter().find(|c| c.covers(cart) && c.holds_for(&operator_s));
    assert!(holding.is_some_and(|c| is_sick(&c)), "{found:#?}");
}
