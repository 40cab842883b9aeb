//! A node's hold (cordon, taint) of a policy whose failure is over is let go: at start-up as
//! well (the failure cleared while the operator was down), and again if the revert did not take.

use k8s_openapi::api::core::v1::Node;
use kube::runtime::watcher::Event;
use kube_healer_operator::protocol::Work;
use kube_healer_operator::watch::Change;
use serde_json::json;

use super::*;

/// Node n1, cordoned by `owners`, with KernelDeadlock `deadlock`.
fn held_node(owners: Option<&str>, deadlock: &str) -> Change {
    let mut annotations = json!({});
    if let Some(owners) = owners {
        annotations[kube_healer_api::CORDONED_BY_ANNOTATION] = json!(owners);
    }
    let node: Node = serde_json::from_value(
        json!({"metadata": {"name": "n1", "uid": "n1", "annotations": annotations},
        "spec": {"unschedulable": owners.is_some()},
        "status": {"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": at(T0 - 86_400)},
            {"type": "KernelDeadlock", "status": deadlock, "lastTransitionTime": at(T0 - 3600)}]}}),
    )
    .unwrap();
    Change::Node(Box::new(Event::Apply(node)))
}

fn reverts(work: &mut tokio::sync::mpsc::UnboundedReceiver<Work>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Ok(w) = work.try_recv() {
        if let Work::Revert { policy, node, .. } = w {
            out.push((policy, node));
        }
    }
    out
}

#[test]
fn a_hold_whose_failure_is_over_is_let_go_and_again_if_it_did_not_take() {
    let (mut e, clock, mut work) = acting();
    listed(&mut e);
    e.apply(deadlock_policy());
    // Still failing: the cordon stays.
    e.apply(held_node(Some("deadlock"), "True"));
    assert!(reverts(&mut work).is_empty());
    // The failure is over (as a restarted operator finds it): let go, once.
    e.apply(held_node(Some("deadlock"), "False"));
    assert_eq!(reverts(&mut work), [("deadlock".to_string(), "n1".to_string())]);
    clock.set(T0 + 30);
    e.apply(held_node(Some("deadlock"), "False"));
    assert!(
        reverts(&mut work).is_empty(),
        "sent again before the revert could show"
    );
    // A minute on, still held: the revert did not take, it is sent again.
    clock.set(T0 + 61);
    e.apply(held_node(Some("deadlock"), "False"));
    assert_eq!(reverts(&mut work).len(), 1);
    // Let go: nothing more. A policy this operator does not run is not its to let go.
    e.apply(held_node(None, "False"));
    e.apply(held_node(Some("someone-else"), "False"));
    clock.set(T0 + 200);
    e.apply(held_node(Some("someone-else"), "False"));
    assert!(reverts(&mut work).is_empty());
}

/// Node n1 cordoned by `owner`, Ready `ready` since `since`.
fn cordoned_node(owner: &str, ready: &str, since: Secs) -> Change {
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1", "uid": "n1",
            "annotations": {kube_healer_api::CORDONED_BY_ANNOTATION: owner}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": at(since)}]}}))
    .unwrap();
    Change::Node(Box::new(Event::Apply(node)))
}

/// A hold ends on evidence the node recovered, never on a policy's edit or delete, nor on a
/// restart: a cordon of a node still down stays when its policy is deleted, and comes off only
/// once the node has been Ready for the clear debounce, as its Ready condition dates it (found by
/// the invariants' histories, with the node policies acting in them).
#[test]
fn a_hold_comes_off_only_once_its_node_has_been_ready_for_the_debounce() {
    let (e, clock, mut work) = acting();
    let mut e = e.with_clear_debounce(std::time::Duration::from_secs(60));
    listed(&mut e);
    let policy: kube_healer_api::HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": "down", "generation": 1},
        "spec": {"target": {"kind": "Node"}, "conditions": [{"class": "NodeUnreachable", "for": "1m"}],
            "actions": [{"action": "Cordon"}], "safety": {"maxUnhealthy": "100%"}}}))
    .unwrap();
    e.apply(Change::policy(Event::Apply(policy.clone())));
    e.apply(cordoned_node("down", "Unknown", T0 - 600));
    // The policy is deleted while the node is down: the cordon stays.
    e.apply(Change::policy(Event::Delete(policy)));
    clock.set(T0 + 5);
    e.fire_due_timers();
    e.apply(cordoned_node("down", "Unknown", T0 - 600));
    assert!(reverts(&mut work).is_empty(), "lifted on a policy's delete");
    // The node is back: not yet, Ready for 10 s only.
    clock.set(T0 + 20);
    e.apply(cordoned_node("down", "True", T0 + 10));
    assert!(reverts(&mut work).is_empty(), "lifted before the debounce");
    // Ready for the debounce: the deleted policy's cordon comes off.
    clock.set(T0 + 70);
    e.fire_due_timers();
    assert_eq!(reverts(&mut work), [("down".to_string(), "n1".to_string())]);
}
