//! Which targets a policy selects and which findings it acts on.

use kube_healer_api::FailureClass;
use kube_healer_api::HealingPolicy;
use kube_healer_core::convert::{Interner, event_view, node_view, pod_view};
use kube_healer_core::policy::{CompiledPolicy, TargetView};
use kube_healer_core::{Knobs, Snapshot, classify_pod};
use serde_json::json;

const NOW: i64 = 1_800_000_000;

fn at(offset: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(NOW + offset)
        .unwrap()
        .to_string()
}

fn policy(spec: serde_json::Value) -> HealingPolicy {
    serde_json::from_value(
        json!({"apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": "p", "generation": 3}, "spec": spec}),
    )
    .unwrap()
}

fn pod(ns: &str, labels: serde_json::Value, owner: Option<&str>, restarts: i32) -> serde_json::Value {
    let owners = owner
        .map(|k| json!([{"apiVersion": "apps/v1", "kind": k, "name": "o", "uid": "o", "controller": true}]));
    json!({"metadata": {"name": "web", "namespace": ns, "uid": "u", "labels": labels, "ownerReferences": owners, "creationTimestamp": at(-3600)},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running", "startTime": at(-3600), "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false,
            "restartCount": restarts, "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container=c"}}}]}})
}

fn snapshot(pods: Vec<serde_json::Value>, events: Vec<serde_json::Value>) -> Snapshot {
    let mut i = Interner::default();
    let node = node_view(&serde_json::from_value(json!({"metadata": {"name": "n1"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}})).unwrap(), &mut i).unwrap();
    let pods = pods
        .into_iter()
        .map(|p| pod_view(&serde_json::from_value(p).unwrap(), &mut i).unwrap())
        .collect();
    let events = events
        .into_iter()
        .map(|e| event_view(&serde_json::from_value(e).unwrap(), &mut i).unwrap())
        .collect();
    Snapshot::new(pods, vec![node], events, vec![])
}

fn selects(
    spec: serde_json::Value,
    ns: &str,
    labels: serde_json::Value,
    owner: Option<&str>,
    ns_labels: Option<serde_json::Value>,
) -> bool {
    let compiled = CompiledPolicy::compile(&policy(spec)).unwrap();
    let s = snapshot(vec![pod(ns, labels, owner, 0)], vec![]);
    let mut i = Interner::default();
    let ns_labels = ns_labels.map(|l| i.labels(Some(&serde_json::from_value(l).unwrap())));
    compiled.selects_pod(&s.pods[0], ns_labels.as_ref())
}

#[test]
fn selection_by_labels_namespaces_owners_and_namespace_labels() {
    let base = |target: serde_json::Value| json!({"target": target, "conditions": [{"class": "CrashLoop"}], "actions": [{"action": "Event"}], "safety": {"dryRun": true}});
    let app = json!({"app": "web", "tier": "front"});
    assert!(selects(
        base(json!({"kind": "Pod"})),
        "shop",
        app.clone(),
        None,
        None
    ));
    assert!(selects(
        base(json!({"kind": "Pod", "selector": {"matchLabels": {"app": "web"}}})),
        "shop",
        app.clone(),
        None,
        None
    ));
    assert!(!selects(
        base(json!({"kind": "Pod", "selector": {"matchLabels": {"app": "db"}}})),
        "shop",
        app.clone(),
        None,
        None
    ));
    let expr = |op: &str, values: serde_json::Value| {
        base(
            json!({"kind": "Pod", "selector": {"matchExpressions": [{"key": "tier", "operator": op, "values": values}]}}),
        )
    };
    assert!(selects(
        expr("In", json!(["front", "back"])),
        "shop",
        app.clone(),
        None,
        None
    ));
    assert!(!selects(
        expr("NotIn", json!(["front"])),
        "shop",
        app.clone(),
        None,
        None
    ));
    assert!(selects(
        expr("Exists", json!(null)),
        "shop",
        app.clone(),
        None,
        None
    ));
    assert!(!selects(
        expr("DoesNotExist", json!(null)),
        "shop",
        app.clone(),
        None,
        None
    ));
    // kube-system is protected unless named.
    assert!(!selects(
        base(json!({"kind": "Pod"})),
        "kube-system",
        app.clone(),
        None,
        None
    ));
    assert!(selects(
        base(json!({"kind": "Pod", "namespaces": {"include": ["kube-system"]}})),
        "kube-system",
        app.clone(),
        None,
        None
    ));
    assert!(!selects(
        base(json!({"kind": "Pod", "namespaces": {"exclude": ["shop"]}})),
        "shop",
        app.clone(),
        None,
        None
    ));
    assert!(!selects(
        base(json!({"kind": "Pod", "namespaces": {"include": ["other"]}})),
        "shop",
        app.clone(),
        None,
        None
    ));
    // Owner kinds: the controller's kind, or None.
    let owners =
        |include: serde_json::Value| base(json!({"kind": "Pod", "ownerKinds": {"include": include}}));
    assert!(selects(
        owners(json!(["ReplicaSet"])),
        "shop",
        app.clone(),
        Some("ReplicaSet"),
        None
    ));
    assert!(!selects(
        owners(json!(["ReplicaSet"])),
        "shop",
        app.clone(),
        Some("StatefulSet"),
        None
    ));
    assert!(selects(owners(json!(["None"])), "shop", app.clone(), None, None));
    // namespaceSelector: matches only when the namespace's labels are known and match.
    let by_ns = base(json!({"kind": "Pod", "namespaceSelector": {"matchLabels": {"heal": "yes"}}}));
    assert!(selects(
        by_ns.clone(),
        "shop",
        app.clone(),
        None,
        Some(json!({"heal": "yes"}))
    ));
    assert!(!selects(
        by_ns.clone(),
        "shop",
        app.clone(),
        None,
        Some(json!({"heal": "no"}))
    ));
    assert!(!selects(by_ns, "shop", app, None, None));
}

#[test]
fn a_condition_with_its_own_knobs_reclassifies() {
    let s = snapshot(vec![pod("shop", json!({}), None, 3)], vec![]);
    let mut defaults = Vec::new();
    classify_pod(&s.pods[0], &s, &Knobs::default(), NOW, &mut defaults);
    assert!(defaults.is_empty(), "3 restarts are below the default 5");
    let strict = CompiledPolicy::compile(&policy(json!({"target": {"kind": "Pod"}, "conditions": [{"class": "CrashLoop", "minRestarts": 3, "for": "2m"}],
        "actions": [{"action": "Event"}], "safety": {"dryRun": true}}))).unwrap();
    assert_eq!(strict.conditions[0].for_secs, 120);
    let found = strict.findings_for(TargetView::Pod(&s.pods[0]), &defaults, &s, NOW);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].1.class, FailureClass::CrashLoop);
}

#[test]
fn event_patterns_and_bad_regular_expressions() {
    let event = json!({"metadata": {"name": "e", "namespace": "shop"}, "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "web"},
        "reason": "FailedMount", "message": "MountVolume.SetUp failed for volume \"data\": timed out waiting for the condition", "count": 4,
        "firstTimestamp": at(-300), "lastTimestamp": at(-5)});
    let s = snapshot(vec![pod("shop", json!({}), None, 0)], vec![event]);
    let p = |pattern: &str, count: i32| {
        policy(
            json!({"target": {"kind": "Pod"}, "conditions": [{"class": "EventPattern", "reason": "FailedMount",
        "messagePattern": pattern, "count": count, "window": "10m"}], "actions": [{"action": "Event"}], "safety": {"dryRun": true}}),
        )
    };
    let compiled = CompiledPolicy::compile(&p("timed out", 3)).unwrap();
    let found = compiled.findings_for(TargetView::Pod(&s.pods[0]), &[], &s, NOW);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].1.class, FailureClass::EventPattern);
    assert!(
        CompiledPolicy::compile(&p("timed out", 5))
            .unwrap()
            .findings_for(TargetView::Pod(&s.pods[0]), &[], &s, NOW)
            .is_empty()
    );
    let err = CompiledPolicy::compile(&p("(unclosed", 1)).unwrap_err();
    assert_eq!(err.field, "spec.conditions[0].messagePattern");
}

#[test]
fn protected_namespaces_can_be_replaced() {
    let spec = json!({"target": {"kind": "Pod"}, "conditions": [{"class": "CrashLoop"}], "actions": [{"action": "Event"}], "safety": {"dryRun": true}});
    let compiled = CompiledPolicy::compile(&policy(spec))
        .unwrap()
        .protecting(vec!["platform".to_string(), "monitoring".to_string()].into());
    let s = snapshot(
        vec![
            pod("platform", json!({}), None, 0),
            pod("kube-system", json!({}), None, 0),
            pod("shop", json!({}), None, 0),
        ],
        vec![],
    );
    let selected: Vec<&str> = s
        .pods
        .iter()
        .filter(|p| compiled.selects_pod(p, None))
        .map(|p| &*p.namespace)
        .collect();
    assert_eq!(selected, ["kube-system", "shop"]);
}

#[test]
fn selectors_that_can_never_match_a_label_are_refused() {
    let with = |selector: serde_json::Value| {
        CompiledPolicy::compile(&policy(json!({"target": {"kind": "Pod", "selector": selector},
            "conditions": [{"class": "Evicted", "for": "1m"}], "actions": [{"action": "Delete"}],
            "safety": {"dryRun": true}})))
    };
    let huge = with(json!({"matchLabels": {"app": "x".repeat(10_000)}})).unwrap_err();
    assert!(huge.field.contains("matchLabels"), "{huge:?}");
    assert!(
        huge.problem.contains("10000 characters") && huge.problem.contains("63"),
        "{huge:?}"
    );
    assert!(with(json!({"matchLabels": {"app": "é"}})).is_err(), "unicode");
    assert!(with(json!({"matchLabels": {"bad key!": "v"}})).is_err());
    assert!(with(json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["-x"]}]})).is_err());
    for ok in [
        json!({"matchLabels": {"app.kubernetes.io/name": "web-1", "tier": ""}}),
        json!({"matchExpressions": [{"key": "example.com/team", "operator": "In", "values": ["a.b_c"]}]}),
    ] {
        assert!(with(ok.clone()).is_ok(), "{ok}");
    }
}

#[test]
fn a_no_execute_taint_needs_its_acknowledgement_and_windows_keep_events() {
    let taint = |ack: bool| {
        policy(
            json!({"target": {"kind": "Node"}, "conditions": [{"class": "SystemOOM", "window": "3h"}, {"class": "NodeFlapping"}],
            "actions": [{"action": "Event"}, {"action": "Taint", "taint": {"key": "kube-healer/oom", "effect": "NoExecute", "acknowledgeNoExecute": ack}}]}),
        )
    };
    let err = CompiledPolicy::compile(&taint(false)).unwrap_err();
    assert_eq!(err.field, "spec.actions[1].taint.acknowledgeNoExecute");
    assert!(err.problem.contains("no PodDisruptionBudget"), "{}", err.problem);
    let compiled = CompiledPolicy::compile(&taint(true)).unwrap();
    let windows: Vec<i64> = compiled.conditions.iter().map(|c| c.event_window()).collect();
    assert_eq!(
        windows,
        [3 * 3600, 3600],
        "the SystemOOM window as set, NodeFlapping's default"
    );
}

/// A policy stored before node jobs were the admin's still carries its own pod spec: it is
/// refused (the field named, the way forward said), never run; naming a NodeJob compiles.
#[test]
fn a_stored_policy_with_its_own_pod_spec_is_refused() {
    let with = |run_job: serde_json::Value| {
        policy(
            json!({"target": {"kind": "Node"}, "conditions": [{"class": "NodeFlapping"}],
            "actions": [{"action": "Cordon"}, {"action": "RunJob", "runJob": run_job}]}),
        )
    };
    for old in [
        json!({"namespace": "jobs", "podSpec": {"containers": [{"name": "x", "image": "busybox"}]}}),
        json!({"nodeJob": "restart-runtime", "activeDeadlineSeconds": 60}),
        json!({}),
    ] {
        let err = CompiledPolicy::compile(&with(old.clone())).unwrap_err();
        assert_eq!(err.field, "spec.actions[1].runJob", "{old}");
        assert!(err.problem.contains("nodeJob: <name>"), "{}", err.problem);
    }
    assert!(CompiledPolicy::compile(&with(json!({"nodeJob": "restart-runtime"}))).is_ok());
}
