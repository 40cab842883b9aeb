//! How events are counted: each Event object is its own series, an aggregated series counts its
//! occurrences, one that began before the window is estimated (and says so), and the OOM loop
//! the project exists for is found with the default knobs while its look-alikes stay quiet.

mod common;

use common::*;
use kube_healer_api::FailureClass::*;
use kube_healer_core::classify_snapshot;
use kube_healer_core::view::Secs;
use serde_json::{Value, json};

/// An Event object of its own, as the kubelet or the node lifecycle controller writes one when
/// its recorder no longer has the earlier one in its cache (a restart, a failover).
fn separate(name: &str, reason: &str, message: &str, at_offset: Secs, n: usize) -> Value {
    let mut e = event("Node", name, reason, message, 1, at_offset, at_offset);
    e["metadata"]["name"] = json!(format!("{name}.{n:016x}"));
    e["metadata"]["uid"] = json!(format!("00000000-0000-4000-8000-{n:012x}"));
    e
}

/// An events.k8s.io Event read through core/v1: eventTime and series, no count or timestamps.
fn series_event(name: &str, reason: &str, message: &str, count: i32, first: Secs, last: Secs) -> Value {
    json!({
        "metadata": {"name": format!("{name}.{reason}"), "namespace": "default", "uid": format!("uid-{name}-{reason}")},
        "involvedObject": {"kind": "Node", "name": name},
        "reason": reason, "message": message, "type": "Warning",
        "eventTime": micro(first),
        "series": {"count": count, "lastObservedTime": micro(last)},
        "reportingComponent": "kubelet", "reportingInstance": name, "action": "OOMKilling",
    })
}

fn oom_message(pid: u32) -> String {
    format!("System OOM encountered, victim process: node-exporter, pid: {pid}")
}

#[test]
fn separate_objects_with_one_reason_and_message_each_count() {
    let mut input = input();
    input.nodes.push(ready_node("flappy"));
    // 4 NotReady and 4 Ready within the hour, each an object of its own with count 1.
    for i in 0..4 {
        let t = -3000 + i * 600;
        let n = i as usize * 2;
        input.events.push(separate(
            "flappy",
            "NodeNotReady",
            "Node flappy status is now: NodeNotReady",
            t,
            n,
        ));
        input.events.push(separate(
            "flappy",
            "NodeReady",
            "Node flappy status is now: NodeReady",
            t + 60,
            n + 1,
        ));
    }
    let report = input.report();
    let f = the(&report, "flappy", NodeFlapping);
    assert!(
        f.evidence.summary.contains("changed 8 times"),
        "{}",
        f.evidence.summary
    );
    assert_eq!(f.evidence.events.len(), 8, "one evidence entry per object");
    assert_eq!(f.since, NOW - 3000);

    // The same object read again (a relist, an update) replaces itself: still 8.
    let again = input.events[0].clone();
    input.events.push(again);
    let report = input.report();
    assert!(
        the(&report, "flappy", NodeFlapping)
            .evidence
            .summary
            .contains("changed 8 times")
    );
}

#[test]
fn one_aggregated_series_counts_its_occurrences() {
    let mut input = input();
    input.nodes.push(ready_node("oomy"));
    // core/v1 aggregation: one object, count 4, all inside the window.
    input
        .events
        .push(event("Node", "oomy", "SystemOOM", &oom_message(7), 4, -1800, -60));
    let report = input.report();
    let f = the(&report, "oomy", SystemOOM);
    assert!(
        f.evidence
            .summary
            .starts_with("4 SystemOOM events in the last 1h"),
        "{}",
        f.evidence.summary
    );
    assert_eq!(f.evidence.events[0].count, 4);
    assert!(!f.evidence.events[0].estimated);
}

#[test]
fn events_k8s_io_series_and_both_fields_count_each_occurrence_once() {
    let mut input = input();
    input.nodes.push(ready_node("new-api"));
    input.nodes.push(ready_node("both"));
    input.events.push(series_event(
        "new-api",
        "SystemOOM",
        &oom_message(9),
        3,
        -1200,
        -300,
    ));
    // Both the deprecated count/lastTimestamp and series, for the same 3 occurrences: 3, not 6.
    let mut both = series_event("both", "SystemOOM", &oom_message(10), 3, -1200, -300);
    both["count"] = json!(3);
    both["firstTimestamp"] = json!(at(-1200));
    both["lastTimestamp"] = json!(at(-300));
    input.events.push(both);
    let report = input.report();
    let f = the(&report, "new-api", SystemOOM);
    assert!(
        f.evidence.summary.starts_with("3 SystemOOM events"),
        "{}",
        f.evidence.summary
    );
    assert_eq!(f.since, NOW - 1200);
    let f = the(&report, "both", SystemOOM);
    assert!(
        f.evidence.summary.starts_with("3 SystemOOM events"),
        "{}",
        f.evidence.summary
    );
}

#[test]
fn a_series_partly_inside_the_window_is_estimated_and_says_so() {
    let mut input = input();
    input.nodes.push(ready_node("long"));
    input.nodes.push(ready_node("edge"));
    // 9 occurrences from 3700 s ago to now: about 8 of them in the last hour.
    input
        .events
        .push(series_event("long", "SystemOOM", &oom_message(11), 9, -3700, 0));
    // 2 occurrences, one before the window and one inside: 1, not 2, and not estimated away.
    input.events.push(event(
        "Node",
        "edge",
        "SystemOOM",
        &oom_message(12),
        2,
        -4000,
        -100,
    ));
    let report = input.report();
    let f = the(&report, "long", SystemOOM);
    assert!(
        f.evidence
            .summary
            .starts_with("about 8 SystemOOM events in the last 1h"),
        "{}",
        f.evidence.summary
    );
    assert_eq!(f.evidence.events[0].count, 8);
    assert!(f.evidence.events[0].estimated);
    assert!(
        f.since > NOW - 3600 && f.since < NOW - 3000,
        "the first occurrence inside: {}",
        f.since
    );
    let json = serde_json::to_value(&f.evidence.events[0]).unwrap();
    assert_eq!(json["estimated"], true, "the record says the count is estimated");
    assert!(
        classes(&report, "edge").is_empty(),
        "one occurrence inside the window"
    );
}

/// The mission's OOM loop: a DaemonSet pod killed and recreated until PLEG went unhealthy.
/// Times in minutes after 16:00.
const KILLS: [Secs; 8] = [50, 52, 52, 96, 98, 127, 135, 135];

/// The node's events as they stood at `minute` (each kill its own object: the pid differs).
fn oom_loop_at(minute: Secs) -> common::Input {
    let mut input = input();
    input.nodes.push(ready_node("loop"));
    for (i, &m) in KILLS.iter().enumerate().filter(|(_, m)| **m <= minute) {
        let offset = (m - minute) * 60;
        input.events.push(separate(
            "loop",
            "SystemOOM",
            &oom_message(4100 + i as u32),
            offset,
            i,
        ));
    }
    input
}

#[test]
fn the_oom_loop_is_found_with_the_defaults() {
    let found = |minute: Secs| {
        let report = oom_loop_at(minute).report();
        report
            .due(NOW)
            .any(|f| f.class == SystemOOM && &*f.subject.name == "loop")
    };
    assert!(!found(50), "16:50: the first kill alone");
    assert!(found(52), "16:52: three kills");
    assert!(found(98), "17:38: five kills in the hour");
    assert!(found(135), "18:15: five kills in the hour");
    let summary = the(&oom_loop_at(98).report(), "loop", SystemOOM).evidence.summary;
    assert!(
        summary.starts_with("5 SystemOOM events in the last 1h (threshold 3)"),
        "{summary}"
    );
}

#[test]
fn look_alikes_stay_quiet() {
    let mut input = input();
    input.nodes.push(ready_node("twice"));
    // Two system OOMs hours apart (the older one kept by an index that holds events longer).
    input
        .events
        .push(separate("twice", "SystemOOM", &oom_message(1), -4 * 3600, 1));
    input
        .events
        .push(separate("twice", "SystemOOM", &oom_message(2), -60, 2));
    // A container killed at its own memory limit: an OOMKilled termination, no SystemOOM event.
    input.nodes.push(ready_node("limits"));
    input.pods.push(pod("capped", Some("limits"), running(3, -120)));
    let report = input.report();
    assert!(classes(&report, "twice").is_empty(), "{:?}", report.findings);
    assert!(classes(&report, "limits").is_empty(), "{:?}", report.findings);
    assert!(!report.findings.iter().any(|f| f.class == SystemOOM));
    // The same report at any later minute stays quiet too.
    let snapshot = input.snapshot();
    for later in [600, 3600, 7200] {
        let r = classify_snapshot(&snapshot, NOW + later);
        assert!(!r.findings.iter().any(|f| f.class == SystemOOM));
    }
}

#[test]
fn a_recreated_object_does_not_inherit_its_predecessors_events() {
    use kube_healer_core::policy::{CompiledPolicy, TargetView};
    let policy: kube_healer_api::HealingPolicy = serde_json::from_value(json!({"apiVersion": "healing.kubehealer.io/v1alpha1",
        "kind": "HealingPolicy", "metadata": {"name": "p"}, "spec": {"target": {"kind": "Pod"},
        "conditions": [{"class": "EventPattern", "reason": "FailedMount", "count": 1}], "actions": [{"action": "Event"}]}}))
    .unwrap();
    let policy = CompiledPolicy::compile(&policy).unwrap();
    let mounting = |uid: Option<&str>, at_offset: Secs| {
        let mut e = event(
            "Pod",
            "db-0",
            "FailedMount",
            "MountVolume.SetUp failed for volume \"data\"",
            1,
            at_offset,
            at_offset,
        );
        e["metadata"]["name"] = json!(format!("db-0.{at_offset}"));
        if let Some(uid) = uid {
            e["involvedObject"]["uid"] = json!(uid);
        }
        e
    };
    // db-0 was recreated 60 s ago (uid-db-0 now): its predecessor's event names the old uid, and
    // one without a uid is older than the new pod.
    let mut p = pod("db-0", Some("n1"), running(0, -50));
    p["metadata"]["creationTimestamp"] = json!(at(-60));
    let found = |events: Vec<Value>| {
        let mut input = input();
        input.pods.push(p.clone());
        input.events = events;
        let snapshot = input.snapshot();
        !policy
            .findings_for(TargetView::Pod(&snapshot.pods[0]), &[], &snapshot, NOW)
            .is_empty()
    };
    assert!(
        !found(vec![mounting(Some("uid-old"), -30)]),
        "the predecessor's event"
    );
    assert!(
        !found(vec![mounting(None, -120)]),
        "an event older than the pod, without a uid"
    );
    assert!(found(vec![mounting(Some("uid-db-0"), -30)]), "its own event");
    assert!(found(vec![mounting(None, -30)]), "a newer event without a uid");

    // The kubelet names its node by name in involvedObject.uid: those count for the node.
    let mut input = input();
    input.nodes.push(ready_node("k1"));
    for i in 0..3 {
        let mut e = separate(
            "k1",
            "SystemOOM",
            &oom_message(i),
            -60 * (i as Secs + 1),
            i as usize,
        );
        e["involvedObject"]["uid"] = json!("k1");
        input.events.push(e);
    }
    assert!(classes(&input.report(), "k1").contains(&SystemOOM));
}
