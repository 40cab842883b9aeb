//! What the engine keeps goes with what it was kept for: a churn of pods with unique labels (a
//! Job's) leaves the interner as small as what is still there, and the gate forgets the ladders
//! and held decisions of targets that are gone.

use kube::runtime::watcher::Event;
use kube_healer_operator::watch::Change;
use serde_json::json;

use super::*;

fn job_pod(i: usize) -> serde_json::Value {
    json!({"metadata": {"name": format!("job-{i}-x7k2p"), "namespace": "batch", "uid": format!("u{i}"),
        "labels": {"batch.kubernetes.io/controller-uid": format!("c{i}"), "job-name": format!("job-{i}")},
        "creationTimestamp": at(T0 - 60)},
        "spec": {"containers": [{"name": "main", "image": "busybox"}], "nodeName": "n1"},
        "status": {"phase": "Succeeded", "startTime": at(T0 - 60)}})
}

#[test]
fn the_interner_forgets_what_deleted_pods_used() {
    let (mut e, _clock) = engine();
    listed(&mut e);
    e.apply(node("n1", "True", T0 - 86_400));
    for i in 0..20_000 {
        e.apply(pod(job_pod(i)));
    }
    let churned = e.stores().interned();
    assert!(
        churned >= 40_000,
        "each pod interns its unique names and labels: {churned}"
    );
    for i in 0..20_000 {
        let gone: k8s_openapi::api::core::v1::Pod = serde_json::from_value(job_pod(i)).unwrap();
        e.apply(Change::Pod(Box::new(Event::Delete(gone))));
    }
    // A few more changes after the deletions; the interner is pruned as it goes.
    for i in 20_000..20_010 {
        e.apply(pod(job_pod(i)));
    }
    let after = e.stores().interned();
    assert!(
        after < 9_000,
        "pruned to about what the 10 pods left use, at most the floor: {after} of {churned}"
    );
}

#[test]
fn the_gate_forgets_targets_that_are_gone() {
    let (mut e, clock, mut work) = acting();
    listed(&mut e);
    e.apply(leftovers_policy(
        json!({"maxConcurrent": 1000, "rate": {"actions": 1000, "per": "1m"}}),
    ));
    e.apply(node("n1", "True", T0 - 86_400));
    for i in 0..50 {
        e.apply(evicted(&format!("e{i}")));
    }
    clock.set(T0 + 60);
    e.fire_due_timers();
    assert_eq!(requests(&mut work).len(), 50);
    assert!(
        e.gate_entries() >= 50,
        "a ladder per target decided on: {}",
        e.gate_entries()
    );
    for i in 0..50 {
        let gone: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("e{i}"), "namespace": "ns", "uid": format!("e{i}")}}))
        .unwrap();
        e.apply(Change::Pod(Box::new(Event::Delete(gone))));
    }
    assert_eq!(e.gate_entries(), 0, "ladders of deleted pods forgotten");
}
