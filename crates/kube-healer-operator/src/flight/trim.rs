//! What a recording keeps of each object: what kube-healer reads (the views' inputs), nothing a
//! user might not want to ship. Out go managed fields, IP addresses, every annotation but
//! kube-healer's own and the few it reads (a node's others keep their keys, emptied: a key is
//! a maintenance signal), and of a pod's spec everything but its node, its
//! containers' names and images, its grace period and whether it claims volumes: no env values,
//! no commands, no volume sources (Secrets are never watched). A node keeps its conditions, not
//! its images or addresses. Events keep their messages: they are the evidence.
//!
//! The test below holds the rule to the views: a trimmed object converts to the same view.

use kube_healer_core::decide::Maintainer;
use serde_json::{Map, Value};

/// Annotations kept besides kube-healer's own (`healing.kubehealer.io/...`): those the views
/// and decisions read.
const KEPT_ANNOTATIONS: [&str; 3] = [
    "kubernetes.io/config.mirror",
    kube_healer_api::replace::MACHINE_ANNOTATION,
    kube_healer_api::replace::MACHINE_NAMESPACE_ANNOTATION,
];

fn keep_only(map: &mut Map<String, Value>, keys: &[&str]) {
    map.retain(|k, _| keys.contains(&k.as_str()));
}

/// Whether an object's other annotations are dropped, or kept by key with their values
/// emptied (a node's: planned-disruption signals are annotation keys, kured's or configured).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Others {
    Dropped,
    KeysOnly,
}

fn metadata(v: &mut Value, others: Others) {
    let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    meta.remove("managedFields");
    meta.remove("resourceVersion");
    meta.remove("selfLink");
    if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
        let read = |k: &str| k.starts_with("healing.kubehealer.io/") || KEPT_ANNOTATIONS.contains(&k);
        match others {
            Others::Dropped => a.retain(|k, _| read(k)),
            Others::KeysOnly => a
                .iter_mut()
                .filter(|(k, _)| !read(k))
                .for_each(|(_, v)| *v = Value::String(String::new())),
        }
        if a.is_empty() {
            meta.remove("annotations");
        }
    }
}

fn containers(list: Option<&mut Value>) {
    for c in list.and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(c) = c.as_object_mut() {
            keep_only(c, &["name", "image"]);
        }
    }
}

pub fn pod(v: &mut Value) {
    metadata(v, Others::Dropped);
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
        pod_spec(spec);
    }
    if let Some(status) = v.get_mut("status").and_then(Value::as_object_mut) {
        for ip in ["hostIP", "hostIPs", "podIP", "podIPs", "resourceClaimStatuses"] {
            status.remove(ip);
        }
        for list in [
            "containerStatuses",
            "initContainerStatuses",
            "ephemeralContainerStatuses",
        ] {
            let statuses = status.get_mut(list).and_then(Value::as_array_mut);
            for c in statuses.into_iter().flatten().filter_map(Value::as_object_mut) {
                container_status(c);
            }
        }
    }
}

/// A pod's spec: its node and what pins it there, its containers' names and images, its grace
/// period, and whether it claims volumes.
fn pod_spec(spec: &mut Map<String, Value>) {
    keep_only(
        spec,
        &[
            "nodeName",
            "nodeSelector",
            "affinity",
            "containers",
            "initContainers",
            "terminationGracePeriodSeconds",
            "volumes",
        ],
    );
    containers(spec.get_mut("containers"));
    containers(spec.get_mut("initContainers"));
    // Only what pins the pod to its node (core's `convert::pinned`).
    if let Some(selector) = spec.get_mut("nodeSelector").and_then(Value::as_object_mut) {
        keep_only(selector, &["kubernetes.io/hostname"]);
    }
    if let Some(affinity) = spec.get_mut("affinity").and_then(Value::as_object_mut) {
        keep_only(affinity, &["nodeAffinity"]);
        if let Some(node) = affinity.get_mut("nodeAffinity").and_then(Value::as_object_mut) {
            keep_only(node, &["requiredDuringSchedulingIgnoredDuringExecution"]);
        }
    }
    if let Some(volumes) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        // Only whether the pod claims volumes is read: the claims, without their sources.
        volumes.retain(|v| v.get("persistentVolumeClaim").is_some() || v.get("ephemeral").is_some());
        for volume in volumes.iter_mut() {
            if let Some(volume) = volume.as_object_mut() {
                keep_only(volume, &["name", "persistentVolumeClaim", "ephemeral"]);
                if volume.contains_key("ephemeral") {
                    volume.insert("ephemeral".into(), Value::Object(Map::new()));
                }
            }
        }
    }
}

/// A container's status without its noise; a terminated state's message (which may be the tail
/// of its log, FallbackToLogsOnError) only as the view keeps it, of the last one.
fn container_status(c: &mut Map<String, Value>) {
    for noise in [
        "volumeMounts",
        "resources",
        "allocatedResources",
        "user",
        "imageID",
    ] {
        c.remove(noise);
    }
    for state in ["state", "lastState"] {
        let Some(t) = c
            .get_mut(state)
            .and_then(|s| s.get_mut("terminated"))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        let kept = (state == "lastState")
            .then(|| t.get("message").and_then(Value::as_str))
            .flatten()
            .and_then(kube_healer_core::convert::termination_line);
        match kept {
            Some(line) => t.insert("message".into(), Value::String(line)),
            None => t.remove("message"),
        };
    }
}

pub fn node(v: &mut Value) {
    let owners = unschedulable_owners(v);
    metadata(v, Others::KeysOnly);
    if !owners.is_empty()
        && let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.insert("managedFields".into(), Value::Array(owners));
    }
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
        keep_only(spec, &["unschedulable", "taints", "providerID"]);
    }
    if let Some(status) = v.get_mut("status").and_then(Value::as_object_mut) {
        keep_only(status, &["conditions"]);
    }
}

/// Of a node's managedFields, only who owns `spec.unschedulable` (whose cordon it is: core's
/// `unschedulable_set_by_other`), each entry cut to that field.
fn unschedulable_owners(v: &Value) -> Vec<Value> {
    let entries = v.pointer("/metadata/managedFields").and_then(Value::as_array);
    entries
        .into_iter()
        .flatten()
        .filter(|m| m.pointer("/fieldsV1/f:spec/f:unschedulable").is_some())
        .map(|m| {
            serde_json::json!({"manager": m.get("manager"), "operation": m.get("operation"),
                "fieldsV1": {"f:spec": {"f:unschedulable": {}}}})
        })
        .collect()
}

pub fn event(v: &mut Value) {
    metadata(v, Others::Dropped);
}

pub fn lease(v: &mut Value) {
    metadata(v, Others::Dropped);
}

pub fn namespace(v: &mut Value) {
    metadata(v, Others::Dropped);
    if let Some(o) = v.as_object_mut() {
        o.remove("spec");
    }
}

pub fn policy(v: &mut Value) {
    metadata(v, Others::Dropped);
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
}

/// Another tool's maintenance resource: its metadata (annotation keys: Cluster API's skip
/// annotations are read by presence) and the fields core's `Maintainer::says` reads, no more.
pub fn maintainer(v: &mut Value) {
    metadata(v, Others::KeysOnly);
    let mut read = Value::Object(Map::new());
    for path in Maintainer::ALL.iter().flat_map(|m| m.read_paths()) {
        let Some(found) = path.iter().try_fold(&*v, |at, k| at.get(k)).cloned() else {
            continue;
        };
        let mut into = &mut read;
        for k in path.iter() {
            into = &mut into[*k];
        }
        *into = found;
    }
    if let (Some(o), Value::Object(read)) = (v.as_object_mut(), read) {
        o.remove("spec");
        o.remove("status");
        o.extend(read);
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Node, Pod};
    use kube_healer_core::convert::{Interner, node_view, pod_view};
    use serde_json::json;

    use super::*;

    fn rich_pod() -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1", "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"app": "a"}, "resourceVersion": "7",
            "annotations": {"secret-ish": "token", "healing.kubehealer.io/opt-out": "true", "kubernetes.io/config.mirror": "x"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "o", "controller": true}],
            "managedFields": [{"manager": "kubectl"}]},
          "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 30, "serviceAccountName": "sa",
            "nodeSelector": {"disk": "ssd"},
            "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "zone"}]},
              "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}},
            "containers": [{"name": "c", "image": "img:1", "env": [{"name": "PASSWORD", "value": "hunter2"}],
              "command": ["run", "--token=abc"]}],
            "initContainers": [{"name": "i", "image": "init:1", "args": ["--key=k"]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "pvc"}},
              {"name": "s", "secret": {"secretName": "creds"}}]},
          "status": {"phase": "Pending", "podIP": "10.0.0.1", "hostIP": "10.1.0.1", "startTime": "2026-01-01T00:00:01Z",
            "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": "2026-01-01T00:00:01Z"}],
            "containerStatuses": [{"name": "c", "image": "img:1", "imageID": "", "ready": false, "restartCount": 3,
              "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}},
              "lastState": {"terminated": {"reason": "Error", "exitCode": 1, "message": "panic: db password hunter3"}}}]}})
    }

    #[test]
    fn a_trimmed_maintenance_resource_says_the_same_and_keeps_nothing_else() {
        let machine = json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
            "metadata": {"name": "m", "namespace": "capi", "deletionTimestamp": "2026-12-07T00:00:00Z",
              "annotations": {"cluster.x-k8s.io/skip-remediation": "", "note": "secret"}, "managedFields": []},
            "spec": {"bootstrap": {"dataSecretName": "boot"}, "providerID": "p"},
            "status": {"nodeRef": {"name": "w1", "uid": "u"}, "addresses": [{"address": "10.0.0.1"}]}});
        let maintenance = json!({"metadata": {"name": "nm"}, "spec": {"nodeName": "w1", "reason": "kernel"},
            "status": {"phase": "Running", "evictionPods": 3}});
        for (m, original) in [
            (Maintainer::Machine, machine),
            (Maintainer::NodeMaintenance, maintenance),
        ] {
            let mut trimmed = original.clone();
            maintainer(&mut trimmed);
            assert_eq!(m.says(&trimmed), m.says(&original));
            let text = trimmed.to_string();
            for gone in ["secret", "boot", "10.0.0.1", "managedFields", "evictionPods"] {
                assert!(!text.contains(gone), "{gone} in {text}");
            }
        }
    }

    #[test]
    fn a_trimmed_pod_has_the_same_view_and_no_secrets() {
        let original = rich_pod();
        let mut trimmed = original.clone();
        pod(&mut trimmed);
        // All but the resourceVersion, which is not recorded: only a call reads it (a delete's
        // precondition), and a replay makes none.
        let view = |v: &Value| {
            let p: Pod = serde_json::from_value(v.clone()).unwrap();
            let view = pod_view(&p, &mut Interner::default()).unwrap();
            kube_healer_core::view::PodView {
                version: None,
                ..view
            }
        };
        assert_eq!(view(&original), view(&trimmed));
        assert!(view(&trimmed).pinned, "what pins the pod to its node is kept");
        let text = trimmed.to_string();
        for secret in [
            "ssd",
            "podAntiAffinity",
            "hunter2",
            "hunter3",
            "PASSWORD",
            "token",
            "--key",
            "creds",
            "10.0.0.1",
            "kubectl",
            "serviceAccount",
        ] {
            assert!(!text.contains(secret), "{secret} kept: {text}");
        }
        assert!(text.contains("healing.kubehealer.io/opt-out"));
    }

    #[test]
    fn a_trimmed_node_has_the_same_view() {
        // Cordoned again by a person since kube-healer's mark: the field's owner says so.
        let original = json!({"metadata": {"name": "n1", "uid": "n", "labels": {"zone": "a"},
            "annotations": {"healing.kubehealer.io/cordoned-by": "p", "node.alpha.kubernetes.io/ttl": "0", "cluster.x-k8s.io/machine": "m"},
            "managedFields": [{"manager": "kubectl", "operation": "Update", "time": "2026-01-01T00:00:05Z",
                "fieldsV1": {"f:spec": {"f:unschedulable": {}}}},
              {"manager": "kubelet", "operation": "Update", "subresource": "status",
                "fieldsV1": {"f:status": {"f:addresses": {}}}}]},
          "spec": {"unschedulable": true, "podCIDR": "10.2.0.0/24", "taints": [{"key": "k", "effect": "NoSchedule"}]},
          "status": {"addresses": [{"type": "InternalIP", "address": "10.1.0.1"}], "images": [{"names": ["a"], "sizeBytes": 1}],
            "conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "PLEG is not healthy",
              "lastTransitionTime": "2026-01-01T00:00:00Z", "lastHeartbeatTime": "2026-01-01T00:00:10Z"}]}});
        let mut trimmed = original.clone();
        node(&mut trimmed);
        let view = |v: &Value| {
            let n: Node = serde_json::from_value(v.clone()).unwrap();
            node_view(&n, &mut Interner::default()).unwrap()
        };
        assert_eq!(view(&original), view(&trimmed));
        assert!(view(&trimmed).cordoned_by_other && view(&trimmed).stale_cordon);
        let text = trimmed.to_string();
        assert!(
            !text.contains("10.1.0.1")
                && !text.contains("podCIDR")
                && !text.contains("\"0\"")
                && !text.contains("kubelet"),
            "{text}"
        );
        assert!(text.contains("cluster.x-k8s.io/machine"));
    }
}
