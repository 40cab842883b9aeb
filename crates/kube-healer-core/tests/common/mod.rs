//! Builders shared by the classification tests: pods, nodes, events and leases as the API
//! server serves them, and the findings they give.
#![allow(dead_code)] // each test binary uses its own share

use kube_healer_api::FailureClass;
use kube_healer_core::convert::{Interner, event_view, lease_view, node_view, pod_view};
use kube_healer_core::view::Secs;
use kube_healer_core::{Finding, Report, Snapshot, classify_snapshot};
use serde_json::{Value, json};

pub const NOW: Secs = 1_800_000_000;

pub fn at(offset: Secs) -> String {
    k8s_openapi::jiff::Timestamp::from_second(NOW + offset)
        .unwrap()
        .to_string()
}

pub fn pod(name: &str, node: Option<&str>, status: Value) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"), "creationTimestamp": at(-3600)},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "registry.example/app:1.0"}]},
        "status": status,
    })
}

pub fn node(name: &str, conditions: Value) -> Value {
    json!({"metadata": {"name": name, "uid": format!("uid-{name}")}, "status": {"conditions": conditions}})
}

pub fn ready_node(name: &str) -> Value {
    node(
        name,
        json!([{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status", "lastTransitionTime": at(-86400)}]),
    )
}

pub fn event(
    kind: &str,
    name: &str,
    reason: &str,
    message: &str,
    count: i32,
    first: Secs,
    last: Secs,
) -> Value {
    let ns = if kind == "Pod" { Some("shop") } else { None };
    json!({
        "metadata": {"name": format!("{name}.{reason}.{first}"), "namespace": ns.unwrap_or("default")},
        "involvedObject": {"kind": kind, "name": name, "namespace": ns},
        "reason": reason, "message": message, "count": count,
        "firstTimestamp": at(first), "lastTimestamp": at(last), "type": "Warning",
    })
}

/// A MicroTime, as events.k8s.io and Leases write it.
pub fn micro(offset: Secs) -> String {
    let t = k8s_openapi::jiff::Timestamp::from_second(NOW + offset).unwrap();
    t.strftime("%Y-%m-%dT%H:%M:%S.000000Z").to_string()
}

pub fn lease(node: &str, renewed: Secs) -> Value {
    json!({"metadata": {"name": node, "namespace": "kube-node-lease"}, "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": micro(renewed)}})
}

pub struct Input {
    pub pods: Vec<Value>,
    pub nodes: Vec<Value>,
    pub events: Vec<Value>,
    pub leases: Vec<Value>,
}

pub fn input() -> Input {
    Input {
        pods: vec![],
        nodes: vec![ready_node("n1")],
        events: vec![],
        leases: vec![],
    }
}

impl Input {
    pub fn snapshot(&self) -> Snapshot {
        let mut i = Interner::default();
        let pods = self
            .pods
            .iter()
            .map(|p| pod_view(&serde_json::from_value(p.clone()).unwrap(), &mut i).unwrap())
            .collect();
        let nodes = self
            .nodes
            .iter()
            .map(|n| node_view(&serde_json::from_value(n.clone()).unwrap(), &mut i).unwrap())
            .collect();
        let events = self
            .events
            .iter()
            .map(|e| event_view(&serde_json::from_value(e.clone()).unwrap(), &mut i).unwrap())
            .collect();
        let leases = self
            .leases
            .iter()
            .map(|l| lease_view(&serde_json::from_value(l.clone()).unwrap(), &mut i).unwrap())
            .collect();
        Snapshot::new(pods, nodes, events, leases)
    }

    pub fn report(&self) -> Report {
        let mut snapshot = self.snapshot();
        snapshot.sick_nodes = kube_healer_core::classify::sick_nodes_of(&snapshot, NOW);
        classify_snapshot(&snapshot, NOW)
    }
}

/// The classes found for `name`, due or not.
pub fn classes(report: &Report, name: &str) -> Vec<FailureClass> {
    let mut c: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.subject.name == name)
        .map(|f| f.class)
        .collect();
    c.sort();
    c
}

pub fn due_classes(report: &Report, name: &str) -> Vec<FailureClass> {
    let mut c: Vec<_> = report
        .due(NOW)
        .filter(|f| f.subject.name == name)
        .map(|f| f.class)
        .collect();
    c.sort();
    c
}

pub fn the(report: &Report, name: &str, class: FailureClass) -> Finding {
    report
        .findings
        .iter()
        .find(|f| f.subject.name == name && f.class == class)
        .cloned()
        .unwrap_or_else(|| panic!("no {class} for {name}; found {:?}", classes(report, name)))
}

pub fn waiting(reason: &str, message: &str, restarts: i32) -> Value {
    json!({"phase": "Pending", "startTime": at(-1800), "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": at(-1800)}],
        "containerStatuses": [{"name": "app", "image": "registry.example/app:1.0", "imageID": "", "ready": false, "restartCount": restarts,
        "state": {"waiting": {"reason": reason, "message": message}}}]})
}

pub fn running(restarts: i32, started: Secs) -> Value {
    json!({"phase": "Running", "startTime": at(-7200), "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "app", "image": "registry.example/app:1.0", "imageID": "", "ready": true, "restartCount": restarts,
        "state": {"running": {"startedAt": at(started)}}, "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]})
}
