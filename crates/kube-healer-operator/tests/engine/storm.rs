//! A storm's Ready transitions are not flapping: nodes down together and recovering, then one of
//! them down again within the cool-off, is no flapping node to cordon.

use kube::runtime::watcher::Event;
use kube_healer_operator::watch::Change;
use serde_json::json;

use super::*;

fn flapping_policy() -> Change {
    let policy: kube_healer_api::HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": "flapping", "generation": 1},
        "spec": {"target": {"kind": "Node"},
            "conditions": [{"class": "NodeFlapping", "transitions": 3, "window": "1h"}],
            "actions": [{"action": "Cordon"}],
            "safety": {"maxUnhealthy": "100%", "maxConcurrent": 10, "rate": {"actions": 100, "per": "1m"}}}}))
    .unwrap();
    Change::policy(Event::Apply(policy))
}

#[test]
fn a_storms_transitions_do_not_make_its_nodes_flapping() {
    let (mut e, clock, mut work) = acting();
    listed(&mut e);
    e.apply(flapping_policy());
    for i in 0..10 {
        e.apply(node(&format!("n{i}"), "True", T0 - 86_400));
    }
    // Wave 1: four of ten nodes unreachable together, then back.
    for (i, at) in [(0, 10), (1, 14), (2, 18), (3, 22)] {
        clock.set(T0 + at);
        e.apply(node(&format!("n{i}"), "Unknown", T0 + at));
        e.correlated();
    }
    for (i, at) in [(0, 40), (1, 44), (2, 48), (3, 52)] {
        clock.set(T0 + at);
        e.apply(node(&format!("n{i}"), "True", T0 + at));
        e.correlated();
    }
    // Wave 2 begins within the cool-off: n0 down again, its third transition in the hour.
    clock.set(T0 + 80);
    e.apply(node("n0", "Unknown", T0 + 80));
    e.correlated();
    e.fire_due_timers();
    let decided: Vec<_> = requests(&mut work)
        .into_iter()
        .filter(|r| r.hold.is_none())
        .map(|r| r.spec.target.name)
        .collect();
    assert!(decided.is_empty(), "cordoned as flapping: {decided:?}");
}

/// A cause cools off with every node it held while it lasted: the first node to recover from a
/// storm, down again alone within the cool-off (a second wave's first), is still the storm's.
#[test]
fn the_first_node_to_recover_stays_held_through_the_cool_off() {
    let (mut e, clock, mut work) = acting();
    listed(&mut e);
    let policy: kube_healer_api::HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": "down", "generation": 1},
        "spec": {"target": {"kind": "Node"}, "conditions": [{"class": "NodeNotReady", "for": "15s"}],
            "actions": [{"action": "Cordon"}],
            "safety": {"maxUnhealthy": "100%", "maxConcurrent": 10, "rate": {"actions": 100, "per": "1m"}}}}))
    .unwrap();
    e.apply(Change::policy(Event::Apply(policy)));
    for i in 0..10 {
        e.apply(node(&format!("n{i}"), "True", T0 - 86_400));
    }
    // Four down together, then they recover one by one, n0 first.
    for i in 0..4 {
        e.apply(node(&format!("n{i}"), "False", T0));
    }
    assert_eq!(e.correlated().len(), 1);
    for (i, at) in [(0, 5), (1, 8), (2, 11), (3, 14)] {
        clock.set(T0 + at);
        e.apply(node(&format!("n{i}"), "True", T0 + at));
        e.correlated();
    }
    assert!(e.correlated().is_empty(), "cleared, cooling off");
    // n0 down again, alone, within the cool-off: due at T0 + 35, held.
    clock.set(T0 + 20);
    e.apply(node("n0", "False", T0 + 20));
    clock.set(T0 + 35);
    e.fire_due_timers();
    let decided = requests(&mut work);
    let n0: Vec<_> = decided.iter().filter(|r| r.spec.target.name == "n0").collect();
    assert_eq!(n0.len(), 1, "{decided:?}");
    assert_eq!(
        n0[0].hold.as_ref().map(|h| h.reason),
        Some(kube_healer_api::reasons::HoldReason::Correlated),
        "n0 cordoned within the cool-off of the storm it was part of"
    );
}
