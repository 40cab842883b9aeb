//! Realistic objects for benchmarks: what a Deployment's pod looks like on a real cluster.

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

/// Pod number `i` of a Deployment (50 namespaces, 1,000 nodes); `failing` puts its container in
/// ImagePullBackOff.
pub fn realistic_pod(i: usize, failing: bool) -> Pod {
    let state = if failing {
        json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"registry.example/shop/web:1.4.2\""}})
    } else {
        json!({"running": {"startedAt": "2026-11-20T10:00:05Z"}})
    };
    serde_json::from_value(json!({
        "metadata": {
            "name": format!("web-7d9f8c6b5-{i:05x}"), "namespace": format!("team-{}", i % 50),
            "uid": format!("{:08x}-1d2c-4e5f-8a9b-0c1d2e3f4a5b", i),
            "creationTimestamp": "2026-11-20T10:00:00Z", "resourceVersion": "123456", "generateName": "web-7d9f8c6b5-",
            "labels": {"app": "web", "pod-template-hash": "7d9f8c6b5", "tier": "frontend", "team": format!("team-{}", i % 50)},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8c6b5", "uid": "rs", "controller": true}],
        },
        "spec": {"nodeName": format!("node-{}", i % 1000), "containers": [{"name": "web", "image": "registry.example/shop/web:1.4.2"}]},
        "status": {
            "phase": if failing { "Pending" } else { "Running" }, "startTime": "2026-11-20T10:00:01Z", "podIP": "10.0.0.1",
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": "2026-11-20T10:00:02Z"},
                {"type": "Initialized", "status": "True", "lastTransitionTime": "2026-11-20T10:00:01Z"},
                {"type": "Ready", "status": if failing { "False" } else { "True" }, "lastTransitionTime": "2026-11-20T10:00:06Z"},
                {"type": "ContainersReady", "status": if failing { "False" } else { "True" }, "lastTransitionTime": "2026-11-20T10:00:06Z"},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-20T10:00:00Z"}],
            "containerStatuses": [{"name": "web", "image": "registry.example/shop/web:1.4.2", "imageID": "registry.example/shop/web@sha256:0123",
                "containerID": "containerd://abc", "ready": !failing, "restartCount": 0, "started": !failing, "state": state}],
        },
    }))
    .unwrap()
}

/// This process's resident set size, in KiB.
pub fn rss_kib() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
