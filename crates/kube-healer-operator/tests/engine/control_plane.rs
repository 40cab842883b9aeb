//! The control plane as a cause: while the operator's own API calls fail, a node failing on its
//! own is held (Skipped/Correlated); silence does not clear it; once calls are healthy again and
//! the cool-off has passed it is decided again, unchanged, and acted on.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::runtime::watcher::Event;
use kube_healer_api::reasons::HoldReason;
use kube_healer_core::classify::CallSample;
use kube_healer_operator::api_health::ApiCalls;
use kube_healer_operator::watch::Change;
use serde_json::json;

use super::*;

fn deadlocked() -> Change {
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1", "uid": "n1"},
        "status": {"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": at(T0 - 86_400)},
            {"type": "KernelDeadlock", "status": "True", "lastTransitionTime": at(T0 - 3600)}]}}))
    .unwrap();
    Change::Node(Box::new(Event::Apply(node)))
}

#[test]
fn node_actions_wait_while_the_operators_own_calls_fail() {
    let (e, clock, mut work) = acting();
    let calls = Arc::new(ApiCalls::default());
    let mut e = e.with_api_calls(calls.clone());
    listed(&mut e);
    e.apply(deadlock_policy());
    // Four of the operator's calls failed in the last few seconds (503s, no answer).
    for ago in [9, 7, 5, 3] {
        calls.note(CallSample {
            at_ms: (T0 - ago) * 1000,
            latency_ms: 120,
            failed: true,
        });
    }
    e.apply(deadlocked());
    // A node finding is decided once it has been known PEERS_SETTLE (2 s), its calls still failing.
    clock.set(T0 + 2);
    e.fire_due_timers();
    let held = requests(&mut work);
    assert_eq!(held.len(), 1);
    let hold = held[0].hold.as_ref().expect("held");
    assert_eq!(hold.reason, HoldReason::Correlated);
    assert!(
        hold.message.contains("own API calls are failing"),
        "{}",
        hold.message
    );
    // A minute on without a call: still held (silence is no health).
    clock.set(T0 + 60);
    assert_eq!(e.correlated().len(), 1, "cleared without a healthy call");
    // Healthy calls: the cause clears and cools off for 60 s.
    for at in [50, 52, 54, 56, 58] {
        calls.note(CallSample {
            at_ms: (T0 + at) * 1000,
            latency_ms: 40,
            failed: false,
        });
    }
    e.fire_due_timers();
    assert!(e.correlated().is_empty());
    assert!(requests(&mut work).is_empty(), "acted within the cool-off");
    // Past the cool-off: the node, unchanged, is decided again and cordoned.
    clock.set(T0 + 125);
    e.correlated();
    e.fire_due_timers();
    let acted = requests(&mut work);
    assert_eq!(acted.len(), 1, "{acted:?}");
    assert!(acted[0].hold.is_none(), "{:?}", acted[0].hold);
    assert_eq!(acted[0].spec.action.to_string(), "Cordon");
}
