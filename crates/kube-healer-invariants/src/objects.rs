//! The simulated cluster's objects as the API server would serve them: what a kubelet, the node
//! lifecycle controller and a ReplicaSet write, and nothing kube-healer would not read.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube_healer_core::view::Secs;
use serde_json::json;

/// The label that names a node's zone (as core reads it).
pub use kube_healer_core::classify::node_families::ZONE_LABEL;

/// Unix seconds as the API server writes a time.
pub fn at(secs: Secs) -> String {
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// A node as its kubelet posts it: Ready since `since` (True, False or Unknown).
pub fn node(name: &str, uid: &str, zone: &str, created: Secs) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "uid": uid, "creationTimestamp": at(created),
            "labels": {ZONE_LABEL: zone, "kubernetes.io/hostname": name}},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "lastHeartbeatTime": at(created), "lastTransitionTime": at(created)}]}}))
    .expect("a node")
}

/// The node's Ready condition set to `status` from `since` (kept if it already says so).
pub fn set_ready(node: &mut Node, status: &str, since: Secs) {
    let reason = match status {
        "True" => "KubeletReady",
        "False" => "KubeletNotReady",
        _ => "NodeStatusUnknown",
    };
    let conditions = node
        .status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new);
    match conditions.iter_mut().find(|c| c.type_ == "Ready") {
        Some(c) if c.status == status => {}
        Some(c) => {
            c.status = status.to_string();
            c.reason = Some(reason.to_string());
            c.last_transition_time = Some(time(since));
        }
        None => conditions.push(
            serde_json::from_value(json!({"type": "Ready", "status": status, "reason": reason,
                "lastTransitionTime": at(since)}))
            .expect("a condition"),
        ),
    }
}

/// The condition node-problem-detector sets on a node whose kernel hung: the node stays Ready
/// (its kubelet posts), and is no place for pods.
pub const PROBLEM: &str = "KernelDeadlock";

/// The node's KernelDeadlock condition, True (as node-problem-detector's kernel monitor words
/// it) or False, from `since`.
pub fn set_problem(node: &mut Node, on: bool, since: Secs) {
    let conditions = node
        .status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new);
    conditions.retain(|c| c.type_ != PROBLEM);
    let (status, reason, message) = match on {
        true => (
            "True",
            "DockerHung",
            "kernel: INFO: task docker:20744 blocked for more than 120 seconds.",
        ),
        false => ("False", "KernelHasNoDeadlock", "kernel has no deadlock"),
    };
    conditions.push(
        serde_json::from_value(json!({"type": PROBLEM, "status": status, "reason": reason,
            "message": message, "lastHeartbeatTime": at(since), "lastTransitionTime": at(since)}))
        .expect("a condition"),
    );
}

fn time(secs: Secs) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::from_second(secs).unwrap_or_default(),
    )
}

/// How a pod's containers are, as its kubelet reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodStatus {
    /// Running and Ready since the moment given.
    Running(Secs),
    /// Restarting in CrashLoopBackOff since the moment given, many times over, saying why as
    /// it dies.
    Crashing(Secs, Said),
    /// Evicted by the kubelet at the moment given.
    Evicted(Secs),
}

/// What a crashing container says as it dies: a shared cause's pods say the same (a lookup of
/// the dependency that is down, named by the cause), a pod crashing on its own says what its
/// workload says (its exit code is the workload's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Said {
    Shared(u32),
    Own(usize),
}

impl Said {
    fn exit_code(self) -> i32 {
        match self {
            Said::Shared(_) => 1,
            Said::Own(workload) => 100 + (workload % 100) as i32,
        }
    }

    fn message(self) -> String {
        match self {
            Said::Shared(cause) => {
                // The dependency's name in letters: the cause's number would be left out of
                // the failure's signature, as every number is.
                let mut name = String::new();
                let mut n = cause as usize;
                loop {
                    name.push((b'a' + (n % 26) as u8) as char);
                    n /= 26;
                    if n == 0 {
                        break;
                    }
                }
                format!("dial tcp: lookup dep-{name}.internal on 10.96.0.10:53: i/o timeout")
            }
            Said::Own(_) => "panic: the workload's own bug".to_string(),
        }
    }
}

/// A pod of `owner` (a StatefulSet's when `stateful`, else a ReplicaSet's) on `node`.
pub fn pod(
    namespace: &str,
    name: &str,
    uid: &str,
    node: &str,
    owner: (&str, bool),
    created: Secs,
    status: PodStatus,
) -> Pod {
    let (owner, stateful) = owner;
    let kind = if stateful { "StatefulSet" } else { "ReplicaSet" };
    let mut pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "creationTimestamp": at(created),
            "labels": {"app": owner},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": owner,
                "uid": format!("owner-{owner}"), "controller": true}]},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "registry.local/app:1"}]}}))
    .expect("a pod");
    set_status(&mut pod, status);
    pod
}

/// The pod's status as its kubelet would write it now.
pub fn set_status(pod: &mut Pod, status: PodStatus) {
    let value = match status {
        PodStatus::Running(since) => json!({"phase": "Running", "startTime": at(since),
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": at(since)}],
            "containerStatuses": [{"name": "app", "image": "registry.local/app:1", "imageID": "", "ready": true,
                "restartCount": 0, "started": true, "state": {"running": {"startedAt": at(since)}}}]}),
        PodStatus::Crashing(since, said) => json!({"phase": "Running", "startTime": at(since),
            "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": at(since)}],
            "containerStatuses": [{"name": "app", "image": "registry.local/app:1", "imageID": "", "ready": false,
                "restartCount": 6, "started": false,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}},
                "lastState": {"terminated": {"exitCode": said.exit_code(), "reason": "Error", "message": said.message(),
                    "startedAt": at(since), "finishedAt": at(since)}}}]}),
        PodStatus::Evicted(since) => json!({"phase": "Failed", "reason": "Evicted", "startTime": at(since),
            "message": "The node was low on resource: memory."}),
    };
    pod.status = Some(serde_json::from_value(value).expect("a pod status"));
}

/// The node lifecycle controller's word on a pod whose node stopped posting: not Ready.
pub fn mark_not_ready(pod: &mut Pod, since: Secs) {
    let Some(conditions) = pod.status.as_mut().and_then(|s| s.conditions.as_mut()) else {
        return;
    };
    for c in conditions
        .iter_mut()
        .filter(|c| c.type_ == "Ready" && c.status == "True")
    {
        c.status = "False".into();
        c.reason = Some("NodeNotReady".into());
        c.last_transition_time = Some(time(since));
    }
}

/// Whether the pod reports Ready.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether the node is cordoned.
pub fn unschedulable(node: &Node) -> bool {
    node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false)
}

/// `spec.unschedulable` set to `to` by the field manager `by`, with the ownership the API server
/// records for an update: the field and its owner, or neither once it is false (an uncordon
/// removes it). Setting it to what it is changes nothing, its owner included.
pub fn set_unschedulable(node: &mut Node, to: bool, by: &str) {
    if unschedulable(node) == to {
        return;
    }
    node.spec.get_or_insert_with(Default::default).unschedulable = to.then_some(true);
    let managed = node.metadata.managed_fields.get_or_insert_with(Vec::new);
    managed.retain(|m| m.fields_v1.as_ref().and_then(|f| f.0.get("f:spec")).is_none());
    if to {
        managed.push(
            serde_json::from_value(serde_json::json!({"manager": by, "operation": "Update",
                "fieldsV1": {"f:spec": {"f:unschedulable": {}}}}))
            .expect("a managed fields entry"),
        );
    }
}

/// A JSON merge patch (RFC 7386) applied to `target`.
pub fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    let serde_json::Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let object = target.as_object_mut().expect("an object");
    for (key, value) in patch {
        if value.is_null() {
            object.remove(key);
        } else {
            merge(
                object.entry(key.clone()).or_insert(serde_json::Value::Null),
                value,
            );
        }
    }
}
