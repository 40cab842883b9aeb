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

fn event_about(kind: &str, name: &str, i: usize, type_: &str, reason: &str, last: Secs) -> Change {
    let ns = (kind == "Pod").then_some("ns");
    let event: k8s_openapi::api::core::v1::Event = serde_json::from_value(json!({
        "metadata": {"name": format!("{name}.{i}"), "namespace": ns.unwrap_or("default"), "uid": format!("ev-{i}")},
        "involvedObject": {"kind": kind, "namespace": ns, "name": name},
        "reason": reason, "type": type_, "message": format!("{reason} happened to {name}"),
        "source": {"component": "kubelet"},
        "count": 1, "firstTimestamp": at(last), "lastTimestamp": at(last)}))
    .unwrap();
    Change::Event(Box::new(Event::Apply(event)))
}

#[test]
fn an_event_flood_stays_within_the_event_budget() {
    let (e, _clock) = engine();
    let mut e = e.with_event_budget(1 << 20);
    listed(&mut e);
    for i in 0..60_000 {
        e.apply(event_about(
            "Pod",
            &format!("web-{i}"),
            i,
            "Warning",
            "BackOff",
            T0 - 60_000 + i as Secs,
        ));
    }
    let (bytes, budget, evicted) = e.stores().event_memory();
    assert!(bytes <= budget, "{bytes} of {budget}");
    assert!(evicted > 40_000, "evicted {evicted}");
    assert_eq!(e.stores().event_count() as u64 + evicted, 60_000);
}

#[test]
fn normal_events_nothing_reads_leave_one_marker_per_object() {
    let (mut e, _clock) = engine();
    listed(&mut e);
    e.apply(node("n1", "True", T0 - 86_400));
    // Bound, no container status yet: with no event at all, StuckPending; a kubelet's Normal
    // event shows the kubelet has it.
    e.apply(pod(json!({"metadata": {"name": "quiet", "namespace": "ns", "uid": "quiet", "creationTimestamp": at(T0 - 3600)},
        "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "app"}]},
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": at(T0 - 3600)}]}})));
    for (i, reason) in ["Scheduled", "Pulling", "Pulled", "Created", "Started"]
        .iter()
        .enumerate()
    {
        e.apply(event_about(
            "Pod",
            "quiet",
            i,
            "Normal",
            reason,
            T0 - 100 + i as Secs,
        ));
    }
    e.apply(event_about("Node", "n1", 10, "Normal", "NodeNotReady", T0 - 50));
    e.apply(event_about("Node", "n1", 11, "Normal", "Starting", T0 - 40));
    use kube_healer_core::cluster::ClusterView;
    let about_pod: Vec<String> = e
        .stores()
        .events("Pod", Some("ns"), "quiet")
        .map(|v| v.reason.to_string())
        .collect();
    assert_eq!(about_pod, ["(Normal)"], "five Normal events, one marker");
    let mut about_node: Vec<String> = e
        .stores()
        .events("Node", None, "n1")
        .map(|v| v.reason.to_string())
        .collect();
    about_node.sort();
    assert_eq!(
        about_node,
        ["(Normal)", "NodeNotReady"],
        "a reason a class reads is kept whole"
    );
    let knobs = kube_healer_core::Knobs::default();
    let mut findings = Vec::new();
    let quiet = e.stores().pods().find(|p| &*p.name == "quiet").unwrap();
    kube_healer_core::classify_pod(quiet, e.stores(), &knobs, T0 + 3600, &mut findings);
    assert!(
        findings.iter().all(|f| f.class != FailureClass::StuckPending),
        "the marker still tells the pod had events: {findings:?}"
    );
    // A policy whose pattern names a Normal reason keeps it whole from then on.
    let policy: kube_healer_api::HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy", "metadata": {"name": "kills", "generation": 1},
        "spec": {"target": {"kind": "Pod"}, "conditions": [{"class": "EventPattern", "reason": "Killing"}],
            "actions": [{"action": "Event"}], "safety": {"dryRun": true}}}))
    .unwrap();
    e.apply(Change::policy(Event::Apply(policy)));
    e.apply(event_about("Pod", "quiet", 20, "Normal", "Killing", T0 - 10));
    let mut about_pod: Vec<String> = e
        .stores()
        .events("Pod", Some("ns"), "quiet")
        .map(|v| v.reason.to_string())
        .collect();
    about_pod.sort();
    assert_eq!(about_pod, ["(Normal)", "Killing"]);
}
