//! What the alerts read: the held targets gauge follows holds as they start and end, and the
//! policies gauge counts refused policies.

use kube::runtime::watcher::Event;
use kube_healer_operator::metrics::Metrics;
use kube_healer_operator::watch::Change;
use serde_json::json;

use super::*;

/// The value of the sample `name{labels}` in the metrics text (0 when absent).
fn sample(metrics: &Metrics, series: &str) -> f64 {
    let text = metrics.encode();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn held_targets_count_while_held_and_drop_when_the_hold_ends() {
    let (mut e, clock, mut work, metrics) = acting_measured();
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
    // Four of ten down together: one cause, each node held.
    for i in 0..4 {
        e.apply(node(&format!("n{i}"), "False", T0));
    }
    assert_eq!(e.correlated().len(), 1);
    clock.set(T0 + 15);
    e.fire_due_timers();
    let held = requests(&mut work).iter().filter(|r| r.hold.is_some()).count();
    assert_eq!(held, 4);
    let correlated = r#"kube_healer_held_targets{reason="Correlated"}"#;
    assert_eq!(sample(&metrics, correlated), 4.0);
    // Two recover: their holds end with their failures.
    for i in 0..2 {
        clock.set(T0 + 20 + i);
        e.apply(node(&format!("n{i}"), "True", T0 + 20 + i));
    }
    // Past the clear debounce, the failures are over.
    clock.set(T0 + 200);
    e.fire_due_timers();
    assert_eq!(sample(&metrics, correlated), 2.0);
    // The other two go: nothing is held.
    for i in 2..4 {
        let gone: k8s_openapi::api::core::v1::Node =
            serde_json::from_value(json!({"metadata": {"name": format!("n{i}"), "uid": format!("n{i}")}}))
                .unwrap();
        e.apply(Change::Node(Box::new(Event::Delete(gone))));
    }
    assert_eq!(sample(&metrics, correlated), 0.0);
}

#[test]
fn refused_policies_are_counted() {
    let (mut e, _clock, _work, metrics) = acting_measured();
    listed(&mut e);
    let good: kube_healer_api::HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": "good", "generation": 1},
        "spec": {"target": {"kind": "Pod"}, "conditions": [{"class": "Evicted"}], "actions": [{"action": "Delete"}]}}))
    .unwrap();
    let stale: kube_healer_api::HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": "stale", "generation": 1},
        "spec": {"target": {"kind": "Node"}, "conditions": [{"class": "NodeFlapping"}],
            "actions": [{"action": "RunJob", "runJob": {"namespace": "jobs", "podSpec": {}}}]}}))
    .unwrap();
    e.apply(Change::policy(Event::Apply(good)));
    e.apply(Change::policy(Event::Apply(stale.clone())));
    assert_eq!(sample(&metrics, r#"kube_healer_policies{state="active"}"#), 1.0);
    assert_eq!(sample(&metrics, r#"kube_healer_policies{state="refused"}"#), 1.0);
    e.apply(Change::policy(Event::Delete(stale)));
    assert_eq!(sample(&metrics, r#"kube_healer_policies{state="refused"}"#), 0.0);
}
