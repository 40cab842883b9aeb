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
        if let Work::Revert { policy, node } = w {
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
