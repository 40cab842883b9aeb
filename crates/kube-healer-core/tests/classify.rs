//! Every class on real status and event texts, and the healthy look-alikes that must not match.

mod common;

use common::*;
use kube_healer_api::FailureClass::*;
use kube_healer_core::classify::EventPattern;
use kube_healer_core::{CorrelatedCause, PodsKey, Subject, classify_snapshot};
use serde_json::json;

// ---- pods ----

#[test]
fn unschedulable_and_a_fresh_one_not_yet_due() {
    let mut input = input();
    let verdict = |since| {
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.",
        "lastTransitionTime": at(since)}]})
    };
    input.pods.push(pod("big", None, verdict(-900)));
    input.pods.push(pod("fresh", None, verdict(-5)));
    let report = input.report();
    let f = the(&report, "big", Unschedulable);
    assert!(
        f.evidence.summary.contains("3 Insufficient cpu"),
        "{}",
        f.evidence.summary
    );
    assert_eq!(f.since, NOW - 900);
    assert_eq!(due_classes(&report, "big"), [Unschedulable]);
    assert_eq!(classes(&report, "fresh"), [Unschedulable]);
    assert!(
        due_classes(&report, "fresh").is_empty(),
        "a pod refused seconds ago is not due"
    );
}

#[test]
fn stuck_pending_unbound_without_events_but_not_with_events() {
    let mut input = input();
    input.pods.push(pod("silent", None, json!({"phase": "Pending"})));
    input.pods.push(pod("talking", None, json!({"phase": "Pending"})));
    input.events.push(event(
        "Pod",
        "talking",
        "FailedScheduling",
        "0/3 nodes are available: 3 node(s) had untolerated taint",
        4,
        -600,
        -30,
    ));
    let report = input.report();
    assert_eq!(due_classes(&report, "silent"), [StuckPending]);
    assert!(classes(&report, "talking").is_empty());
}

#[test]
fn stuck_pending_bound_to_a_ready_node_that_never_reports() {
    let mut input = input();
    input.pods.push(pod("ghost", Some("n1"), json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": at(-900)}]})));
    let mut fresh = pod(
        "newborn",
        Some("n1"),
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": at(-3)}]}),
    );
    fresh["metadata"]["creationTimestamp"] = json!(at(-3));
    input.pods.push(fresh);
    let report = input.report();
    assert_eq!(due_classes(&report, "ghost"), [StuckPending]);
    assert!(
        due_classes(&report, "newborn").is_empty(),
        "a pod created seconds ago is not stuck"
    );
}

#[test]
fn image_pull_failures_including_corrupted_layers() {
    let mut input = input();
    input.pods.push(pod(
        "backoff",
        Some("n1"),
        waiting(
            "ImagePullBackOff",
            "Back-off pulling image \"registry.example/app:1.0\"",
            0,
        ),
    ));
    input.pods.push(pod("errpull", Some("n1"), waiting("ErrImagePull", "rpc error: code = NotFound desc = failed to pull and unpack image \"registry.example/app:1.0\": not found", 0)));
    input.pods.push(pod("inspect", Some("n1"), waiting("ImageInspectError", "Failed to inspect image \"registry.example/app:1.0\": rpc error: code = Unknown desc = layer does not exist", 0)));
    input.pods.push(pod(
        "badname",
        Some("n1"),
        waiting(
            "InvalidImageName",
            "Failed to apply default image tag \"Registry.Example/App\": couldn't parse image name",
            0,
        ),
    ));
    let report = input.report();
    for name in ["backoff", "errpull", "inspect", "badname"] {
        assert_eq!(due_classes(&report, name), [ImagePullFailure], "{name}");
    }
    let f = the(&report, "inspect", ImagePullFailure);
    assert!(f.evidence.summary.contains("layer does not exist"));
    assert_eq!(
        f.evidence.containers[0].reason.as_deref(),
        Some("ImageInspectError")
    );
    assert_eq!(f.evidence.facts["image"], "registry.example/app:1.0");
}

#[test]
fn stuck_container_creating_with_the_sandbox_event() {
    let mut input = input();
    input
        .pods
        .push(pod("sandbox", Some("n1"), waiting("ContainerCreating", "", 0)));
    input.events.push(event("Pod", "sandbox", "FailedCreatePodSandBox",
        "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to create containerd container: failed to prepare extraction snapshot: layer does not exist", 12, -1700, -20));
    let report = input.report();
    assert_eq!(due_classes(&report, "sandbox"), [StuckContainerCreating]);
}

#[test]
fn stuck_initializing() {
    let mut input = input();
    input.pods.push(pod("init", Some("n1"), json!({"phase": "Pending", "startTime": at(-1800),
        "conditions": [{"type": "Initialized", "status": "False", "reason": "ContainersNotInitialized", "message": "containers with incomplete status: [migrate]"}],
        "initContainerStatuses": [{"name": "migrate", "image": "registry.example/migrate:1", "imageID": "", "ready": false, "restartCount": 0, "state": {"running": {"startedAt": at(-1790)}}}],
        "containerStatuses": [{"name": "app", "image": "registry.example/app:1.0", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]})));
    let report = input.report();
    assert_eq!(due_classes(&report, "init"), [StuckInitializing]);
}

#[test]
fn container_start_failures() {
    let mut input = input();
    input.pods.push(pod("run", Some("n1"), waiting("RunContainerError", "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"/app\": permission denied", 3)));
    input.pods.push(pod(
        "config",
        Some("n1"),
        waiting(
            "CreateContainerConfigError",
            "secret \"db-password\" not found",
            0,
        ),
    ));
    let mut never_ran = waiting(
        "CrashLoopBackOff",
        "back-off 5m0s restarting failed container=app",
        7,
    );
    never_ran["containerStatuses"][0]["lastState"] = json!({"terminated": {"exitCode": 128, "reason": "StartError", "message": "failed to create containerd task"}});
    input.pods.push(pod("never", Some("n1"), never_ran));
    let report = input.report();
    for name in ["run", "config", "never"] {
        assert_eq!(due_classes(&report, name), [ContainerStartFailure], "{name}");
    }
}

#[test]
fn crash_loop_and_its_look_alikes() {
    let mut input = input();
    input.pods.push(pod(
        "loop",
        Some("n1"),
        waiting(
            "CrashLoopBackOff",
            "back-off 5m0s restarting failed container=app pod=loop_shop(uid-loop)",
            12,
        ),
    ));
    input.pods.push(pod(
        "twice",
        Some("n1"),
        waiting(
            "CrashLoopBackOff",
            "back-off 20s restarting failed container=app",
            2,
        ),
    ));
    input.pods.push(pod("recovered", Some("n1"), running(40, -86000)));
    let report = input.report();
    assert_eq!(due_classes(&report, "loop"), [CrashLoop]);
    assert!(
        the(&report, "loop", CrashLoop)
            .evidence
            .summary
            .contains("after 12 restarts")
    );
    assert!(classes(&report, "twice").is_empty(), "below minRestarts");
    assert!(
        classes(&report, "recovered").is_empty(),
        "old restarts, running fine now"
    );
}

/// A pod's container classes are its kubelet's word: on a node not Ready (the kubelet silent or
/// failing) or gone, the last status is stale and the pod is NodeLost's or Orphaned's alone. With
/// no nodes in the input the status is judged as it stands.
#[test]
fn container_classes_are_judged_only_while_the_kubelet_is_current() {
    let looping = || {
        waiting(
            "CrashLoopBackOff",
            "back-off 5m0s restarting failed container=app",
            12,
        )
    };
    let pulling = || {
        waiting(
            "ImagePullBackOff",
            "Back-off pulling image \"registry.example/app:1.0\"",
            0,
        )
    };
    let mut input = input();
    for (node, status) in [("silent", "Unknown"), ("failing", "False")] {
        input.nodes.push(node_with_ready(node, status));
    }
    input.pods.push(pod("loop-silent", Some("silent"), looping()));
    input.pods.push(pod("pull-failing", Some("failing"), pulling()));
    input.pods.push(pod("loop-gone", Some("gone"), looping()));
    input.pods.push(pod("loop-ready", Some("n1"), looping()));
    let report = input.report();
    assert_eq!(classes(&report, "loop-silent"), [NodeLost]);
    assert_eq!(classes(&report, "pull-failing"), [NodeLost]);
    assert_eq!(classes(&report, "loop-gone"), [Orphaned]);
    assert_eq!(classes(&report, "loop-ready"), [CrashLoop]);

    let mut nodeless = common::input();
    nodeless.nodes.clear();
    nodeless.pods.push(pod("loop", Some("n1"), looping()));
    assert_eq!(classes(&nodeless.report(), "loop"), [CrashLoop]);
}

fn node_with_ready(name: &str, status: &str) -> serde_json::Value {
    node(
        name,
        json!([{"type": "Ready", "status": status, "reason": "NodeStatusUnknown", "lastTransitionTime": at(-1800)}]),
    )
}

#[test]
fn admission_rejections_evictions_and_failures() {
    let mut input = input();
    input.pods.push(pod("cpu", Some("n1"), json!({"phase": "Failed", "reason": "OutOfcpu", "message": "Pod was rejected: Node didn't have enough resource: cpu, requested: 2000, used: 3500, capacity: 4000"})));
    input.pods.push(pod("affinity", Some("n1"), json!({"phase": "Failed", "reason": "NodeAffinity", "message": "Pod was rejected: Predicate NodeAffinity failed"})));
    input.pods.push(pod("evicted", Some("n1"), json!({"phase": "Failed", "reason": "Evicted",
        "message": "The node was low on resource: ephemeral-storage. Threshold quantity: 10Gi, available: 9Gi. Container app was using 12Gi, request is 0, has larger consumption of ephemeral-storage.",
        "conditions": [{"type": "Ready", "status": "False", "reason": "PodFailed", "lastTransitionTime": at(-1200)}]})));
    input.pods.push(pod("failed", Some("n1"), json!({"phase": "Failed", "containerStatuses": [{"name": "app", "image": "registry.example/app:1.0", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": at(-7000)}}}]})));
    let mut job_failed = pod(
        "jobpod",
        Some("n1"),
        json!({"phase": "Failed", "containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 1, "finishedAt": at(-7000)}}}]}),
    );
    job_failed["metadata"]["ownerReferences"] =
        json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "migrate", "uid": "j", "controller": true}]);
    input.pods.push(job_failed);
    let mut job_done = pod("jobdone", Some("n1"), json!({"phase": "Succeeded"}));
    job_done["metadata"]["ownerReferences"] =
        json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "migrate", "uid": "j", "controller": true}]);
    input.pods.push(job_done);
    let report = input.report();
    assert_eq!(due_classes(&report, "cpu"), [AdmissionRejected]);
    assert_eq!(due_classes(&report, "affinity"), [AdmissionRejected]);
    let evicted = the(&report, "evicted", Evicted);
    assert_eq!(evicted.since, NOW - 1200);
    assert!(
        evicted
            .evidence
            .summary
            .contains("low on resource: ephemeral-storage")
    );
    assert_eq!(due_classes(&report, "failed"), [Failed]);
    assert!(
        classes(&report, "jobpod").is_empty(),
        "a failed Job pod belongs to the Job's backoffLimit"
    );
    assert!(
        classes(&report, "jobdone").is_empty(),
        "a completed Job pod is healthy"
    );
}

#[test]
fn stuck_terminating_only_past_the_deletion_timestamp() {
    let mut input = input();
    let mut stuck = pod("stuck", Some("n1"), running(0, -3600));
    stuck["metadata"]["deletionTimestamp"] = json!(at(-180));
    stuck["metadata"]["deletionGracePeriodSeconds"] = json!(30);
    let mut graceful = pod("graceful", Some("n1"), running(0, -3600));
    graceful["metadata"]["deletionTimestamp"] = json!(at(20));
    input.pods.push(stuck);
    input.pods.push(graceful);
    let report = input.report();
    let f = the(&report, "stuck", StuckTerminating);
    assert_eq!(f.since, NOW - 180);
    assert!(
        f.evidence.summary.contains("3m past its deletionTimestamp"),
        "{}",
        f.evidence.summary
    );
    assert_eq!(due_classes(&report, "stuck"), [StuckTerminating]);
    assert!(classes(&report, "graceful").is_empty(), "within its grace period");
}

#[test]
fn node_lost_and_orphaned_only_when_nodes_are_known() {
    let mut input = input();
    input.nodes.push(node("gone-dark", json!([{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status.", "lastTransitionTime": at(-600)}])));
    input.pods.push(pod("lost", Some("gone-dark"), running(0, -7200)));
    input
        .pods
        .push(pod("orphan", Some("deleted-node"), running(0, -7200)));
    // Deleted, within its grace period, on the dark node: still lost (no kubelet will finish it).
    let mut deleted = pod("lost-deleted", Some("gone-dark"), running(0, -7200));
    deleted["metadata"]["deletionTimestamp"] = json!(at(20));
    input.pods.push(deleted);
    let report = input.report();
    assert_eq!(due_classes(&report, "lost"), [NodeLost]);
    assert_eq!(the(&report, "lost", NodeLost).since, NOW - 600);
    assert_eq!(due_classes(&report, "lost-deleted"), [NodeLost]);
    assert_eq!(due_classes(&report, "orphan"), [Orphaned]);

    let mut no_nodes = input;
    no_nodes.nodes.clear();
    let report = no_nodes.report();
    assert!(
        classes(&report, "orphan").is_empty(),
        "without nodes in the input, nothing is judged"
    );
    assert!(classes(&report, "lost").is_empty());
}

// ---- nodes ----

#[test]
fn not_ready_unreachable_and_pleg() {
    let mut input = input();
    input.nodes.push(node("cni", json!([{"type": "Ready", "status": "False", "reason": "KubeletNotReady",
        "message": "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized", "lastTransitionTime": at(-900)}])));
    input.nodes.push(node("dark", json!([{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status.", "lastTransitionTime": at(-300), "lastHeartbeatTime": at(-340)}])));
    input.nodes.push(node("pleg", json!([{"type": "Ready", "status": "False", "reason": "KubeletNotReady",
        "message": "PLEG is not healthy: pleg was last seen active 3m3.588s ago; threshold is 3m0s", "lastTransitionTime": at(-400)}])));
    let report = input.report();
    assert_eq!(due_classes(&report, "cni"), [NodeNotReady]);
    assert_eq!(due_classes(&report, "dark"), [NodeUnreachable]);
    assert!(
        the(&report, "dark", NodeUnreachable)
            .evidence
            .summary
            .contains("Kubelet stopped posting node status.")
    );
    assert_eq!(classes(&report, "pleg"), [NodeNotReady, PLEGUnhealthy]);
    assert_eq!(due_classes(&report, "pleg"), [NodeNotReady, PLEGUnhealthy]);
}

#[test]
fn flapping_from_events_and_from_history() {
    let mut input = input();
    input.nodes.push(ready_node("flappy"));
    input.nodes.push(ready_node("blip"));
    input.events.push(event(
        "Node",
        "flappy",
        "NodeNotReady",
        "Node flappy status is now: NodeNotReady",
        3,
        -3000,
        -600,
    ));
    input.events.push(event(
        "Node",
        "flappy",
        "NodeReady",
        "Node flappy status is now: NodeReady",
        3,
        -2950,
        -550,
    ));
    input.events.push(event(
        "Node",
        "blip",
        "NodeNotReady",
        "Node blip status is now: NodeNotReady",
        1,
        -600,
        -600,
    ));
    input.events.push(event(
        "Node",
        "blip",
        "NodeReady",
        "Node blip status is now: NodeReady",
        1,
        -580,
        -580,
    ));
    let report = input.report();
    let f = the(&report, "flappy", NodeFlapping);
    assert!(f.evidence.summary.contains("6 times"), "{}", f.evidence.summary);
    assert!(classes(&report, "blip").is_empty(), "one blip is not flapping");

    let mut snapshot = input.snapshot();
    let n = snapshot.nodes.iter_mut().find(|n| &*n.name == "blip").unwrap();
    n.ready_transitions = vec![NOW - 7200, NOW - 1000, NOW - 900, NOW - 300, NOW - 200].into();
    let report = classify_snapshot(&snapshot, NOW);
    let f = the(&report, "blip", NodeFlapping);
    assert_eq!(f.since, NOW - 1000, "only transitions within the window count");
}

#[test]
fn pressure_and_problem_conditions_but_not_healthy_ones() {
    let mut input = input();
    input.nodes.push(node("disk", json!([
        {"type": "Ready", "status": "True"},
        {"type": "DiskPressure", "status": "True", "reason": "KubeletHasDiskPressure", "message": "kubelet has disk pressure", "lastTransitionTime": at(-600)},
        {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"}])));
    input.nodes.push(node("deadlock", json!([
        {"type": "Ready", "status": "True"},
        {"type": "KernelDeadlock", "status": "True", "reason": "DockerHung", "message": "kernel: INFO: task docker:20744 blocked for more than 120 seconds.", "lastTransitionTime": at(-400)}])));
    input.nodes.push(node(
        "npd-fine",
        json!([
        {"type": "Ready", "status": "True"},
        {"type": "KernelDeadlock", "status": "False", "reason": "KernelHasNoDeadlock"},
        {"type": "ReadonlyFilesystem", "status": "False", "reason": "FilesystemIsNotReadOnly"},
        {"type": "NetworkUnavailable", "status": "False", "reason": "RouteCreated"}]),
    ));
    let mut cordoned = ready_node("cordoned");
    cordoned["spec"] = json!({"unschedulable": true, "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]});
    input.nodes.push(cordoned);
    // EKS's node monitoring agent: its conditions are healthy when True, a problem when False.
    input.nodes.push(node(
        "eks-fine",
        json!([
        {"type": "Ready", "status": "True"},
        {"type": "KernelReady", "status": "True", "reason": "KernelIsReady"},
        {"type": "NetworkingReady", "status": "True", "reason": "NetworkingIsReady"}]),
    ));
    input.nodes.push(node("eks-kernel", json!([
        {"type": "Ready", "status": "True"},
        {"type": "KernelReady", "status": "False", "reason": "ForkFailedOutOfPIDs", "message": "fork failed: out of PIDs", "lastTransitionTime": at(-300)},
        {"type": "NetworkingReady", "status": "True", "reason": "NetworkingIsReady"}])));
    let report = input.report();
    assert!(
        classes(&report, "eks-fine").is_empty(),
        "a condition named ...Ready is healthy when True"
    );
    assert_eq!(due_classes(&report, "eks-kernel"), [NodeCondition]);
    assert_eq!(due_classes(&report, "disk"), [NodePressure]);
    assert_eq!(due_classes(&report, "deadlock"), [NodeCondition]);
    assert!(classes(&report, "npd-fine").is_empty());
    assert!(
        classes(&report, "cordoned").is_empty(),
        "a cordoned but healthy node is healthy"
    );
}

#[test]
fn heartbeat_lag_while_ready() {
    let mut input = input();
    input.nodes.push(ready_node("slow"));
    input.nodes.push(ready_node("prompt"));
    input.leases.push(lease("slow", -35));
    input.leases.push(lease("prompt", -4));
    let report = input.report();
    let f = the(&report, "slow", HeartbeatLag);
    assert_eq!(f.since, NOW - 15);
    assert_eq!(f.evidence.facts["leaseAge"], "35s");
    assert!(classes(&report, "prompt").is_empty());
}

#[test]
fn heartbeat_lag_ages_from_when_the_operator_saw_the_renewal() {
    let mut input = input();
    input.nodes.push(ready_node("skewed"));
    input.nodes.push(ready_node("stalled"));
    // The kubelet's clock is 35 s behind: renewTime reads old, but the renewal was seen 4 s ago.
    input.leases.push(lease("skewed", -35));
    input.leases.push(lease("stalled", -35));
    let mut snapshot = input.snapshot();
    snapshot.leases[0].observed = Some(NOW - 4);
    snapshot.leases[1].observed = Some(NOW - 25);
    snapshot.leases_seen_renewing = Some(NOW - 1);
    let report = classify_snapshot(&snapshot, NOW);
    assert!(
        classes(&report, "skewed").is_empty(),
        "no lag from a skewed clock"
    );
    let f = the(&report, "stalled", HeartbeatLag);
    assert_eq!(f.since, NOW - 5, "due when the seen heartbeat is 20 s old");
    assert_eq!(f.evidence.facts["leaseAge"], "25s");
    // No Lease seen renewing for longer than the threshold: the stream is stale, not the nodes.
    snapshot.leases_seen_renewing = Some(NOW - 25);
    let report = classify_snapshot(&snapshot, NOW);
    assert!(classes(&report, "stalled").is_empty(), "{:?}", report.findings);
}

#[test]
fn system_oom_repeated_not_single() {
    let mut input = input();
    input.nodes.push(ready_node("oomy"));
    input.nodes.push(ready_node("once"));
    input.events.push(event(
        "Node",
        "oomy",
        "SystemOOM",
        "System OOM encountered, victim process: java, pid: 18212",
        4,
        -500,
        -20,
    ));
    input.events.push(event(
        "Node",
        "once",
        "SystemOOM",
        "System OOM encountered, victim process: java, pid: 1",
        1,
        -100,
        -100,
    ));
    let report = input.report();
    assert_eq!(due_classes(&report, "oomy"), [SystemOOM]);
    assert!(classes(&report, "once").is_empty());
}

#[test]
fn black_hole_needs_several_pods() {
    let mut input = input();
    input.nodes.push(ready_node("hole"));
    input.nodes.push(ready_node("one-off"));
    let stuck = |name: &str, node: &str| {
        let mut p = pod(name, Some(node), waiting("ContainerCreating", "", 0));
        p["status"]["conditions"][0]["lastTransitionTime"] = json!(at(-1500));
        p
    };
    for i in 0..3 {
        input.pods.push(stuck(&format!("h{i}"), "hole"));
    }
    input.pods.push(stuck("lonely", "one-off"));
    let report = input.report();
    let f = the(&report, "hole", NodeBlackHole);
    assert_eq!(f.evidence.facts["unstartedPods"], "3");
    assert!(
        classes(&report, "one-off").is_empty(),
        "one pod is not a black hole"
    );
}

// ---- any object, correlation ----

#[test]
fn event_pattern_counts_within_the_window() {
    let mut input = input();
    input
        .pods
        .push(pod("mounty", Some("n1"), waiting("ContainerCreating", "", 0)));
    input.events.push(event("Pod", "mounty", "FailedMount",
        "MountVolume.SetUp failed for volume \"data\" : rpc error: code = DeadlineExceeded desc = timed out waiting for the condition", 6, -500, -10));
    let snapshot = input.snapshot();
    let subject = Subject::pod(&snapshot.pods[0]);
    let pattern = |count, window| EventPattern {
        reason: Some("FailedMount".into()),
        message: Some(regex::Regex::new("timed out waiting for the condition").unwrap()),
        count,
        window,
    };
    let f = pattern(5, 600)
        .find(&subject, None, &snapshot, NOW)
        .expect("6 within 10m");
    assert_eq!(f.evidence.events[0].count, 6);
    assert!(pattern(7, 600).find(&subject, None, &snapshot, NOW).is_none());
    assert!(
        pattern(1, 5).find(&subject, None, &snapshot, NOW).is_none(),
        "last seen 10s ago, outside a 5s window"
    );
    let other = EventPattern {
        reason: Some("BackOff".into()),
        message: None,
        count: 1,
        window: 600,
    };
    assert!(other.find(&subject, None, &snapshot, NOW).is_none());
}

#[test]
fn correlated_registry_failure_and_nodes_down() {
    let mut input = input();
    for n in 0..10 {
        input.nodes.push(ready_node(&format!("w{n}")));
    }
    for i in 0..6 {
        input.pods.push(pod(
            &format!("p{i}"),
            Some(&format!("w{}", i % 3)),
            waiting("ErrImagePull", "failed to pull image: 503 Service Unavailable", 0),
        ));
    }
    let report = input.report();
    assert_eq!(report.correlated.len(), 1);
    let c = &report.correlated[0];
    assert_eq!(
        c.cause,
        CorrelatedCause::Pods(PodsKey::Registry("registry.example".into()))
    );
    assert_eq!(c.members.len(), 6);
    assert!(c.covers(&the(&report, "p0", ImagePullFailure)));

    let mut storm = input;
    storm.pods.clear();
    let down = json!([{"type": "Ready", "status": "Unknown", "message": "Kubelet stopped posting node status.", "lastTransitionTime": at(-120)}]);
    for n in 0..4 {
        storm.nodes[1 + n] = node(&format!("w{n}"), down.clone());
    }
    let report = storm.report();
    assert_eq!(report.correlated.len(), 1, "{:?}", report.correlated);
    assert_eq!(
        report.correlated[0].cause,
        CorrelatedCause::Nodes {
            family: kube_healer_core::classify::NodeFamily::Down,
            domain: None
        }
    );
    assert!(report.correlated[0].message.contains("4 of 11 nodes"));

    let mut two_down = storm;
    two_down.nodes[3] = ready_node("w2");
    two_down.nodes[4] = ready_node("w3");
    assert!(
        two_down.report().correlated.is_empty(),
        "two nodes down are node faults"
    );
}

#[test]
fn opt_out_annotation_is_read() {
    let mut input = input();
    let mut p = pod("shy", Some("n1"), running(0, -100));
    p["metadata"]["annotations"] = json!({"healing.kubehealer.io/opt-out": "true"});
    input.pods.push(p);
    assert!(input.snapshot().pods[0].opted_out);
}

/// Running, started at `started`, unready since `unready`, its restarts as given.
fn unready(restarts: i32, started: i64, unready: i64) -> serde_json::Value {
    let not_ready = |type_: &str| {
        serde_json::json!({"type": type_, "status": "False", "reason": "ContainersNotReady",
            "message": "containers with unready status: [app]", "lastTransitionTime": at(unready)})
    };
    serde_json::json!({"phase": "Running", "startTime": at(-7200),
        "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Initialized", "status": "True"},
            not_ready("ContainersReady"), not_ready("Ready")],
        "containerStatuses": [{"name": "app", "image": "registry.example/app:1.0", "imageID": "", "ready": false,
            "started": true, "restartCount": restarts, "state": {"running": {"startedAt": at(started)}}}]})
}

#[test]
fn probe_failure_and_its_look_alikes() {
    // The kubelet's own text (prober.go: "%s probe failed: %s", the HTTP prober's output).
    let failed = "Readiness probe failed: HTTP probe failed with statuscode: 503";
    let mut input = input();
    input
        .pods
        .push(pod("unready", Some("n1"), unready(0, -1500, -1200)));
    input
        .events
        .push(event("Pod", "unready", "Unhealthy", failed, 120, -1490, -5));
    // Unready for two minutes only: found, not due (10m by default).
    input.pods.push(pod("fresh", Some("n1"), unready(0, -150, -120)));
    input
        .events
        .push(event("Pod", "fresh", "Unhealthy", failed, 12, -140, -5));
    // Probes that errored never make a container unready; they are not failures.
    input
        .pods
        .push(pod("errored", Some("n1"), unready(0, -1500, -1200)));
    let errored = "Readiness probe errored and resulted in unknown state: rpc error: code = Unknown";
    input
        .events
        .push(event("Pod", "errored", "Unhealthy", errored, 120, -1490, -5));
    // A liveness probe failing restarts the container: each restart begins the run anew.
    input
        .pods
        .push(pod("restarting", Some("n1"), unready(9, -60, -1200)));
    input
        .events
        .push(event("Pod", "restarting", "Unhealthy", failed, 120, -1490, -5));
    // Fewer failures than the threshold (3, the kubelet's default failureThreshold).
    input
        .pods
        .push(pod("twice", Some("n1"), unready(0, -1500, -1200)));
    input
        .events
        .push(event("Pod", "twice", "Unhealthy", failed, 2, -1490, -1480));
    let report = input.report();

    assert_eq!(due_classes(&report, "unready"), [ProbeFailure]);
    let found = the(&report, "unready", ProbeFailure);
    assert_eq!(found.since, NOW - 1200, "from when the pod went unready");
    assert!(
        found.evidence.summary.contains("failed 120 times"),
        "{}",
        found.evidence.summary
    );
    assert!(
        found.evidence.summary.ends_with(failed),
        "{}",
        found.evidence.summary
    );
    assert_eq!(found.evidence.events.len(), 1);
    assert_eq!(found.evidence.containers.len(), 1);
    assert_eq!(classes(&report, "fresh"), [ProbeFailure]);
    assert!(due_classes(&report, "fresh").is_empty());
    assert!(classes(&report, "errored").is_empty());
    let restarting = the(&report, "restarting", ProbeFailure);
    assert_eq!(restarting.since, NOW - 60, "the restart began the run anew");
    assert!(due_classes(&report, "restarting").is_empty());
    assert!(classes(&report, "twice").is_empty(), "below minFailures");
}

#[test]
fn probe_failures_threshold_is_a_policy_knob() {
    let mut condition = kube_healer_api::FailureCondition::new(ProbeFailure);
    condition.min_failures = Some(1);
    let knobs = kube_healer_core::Knobs::for_condition(&condition);
    assert_eq!(knobs.probe_min_failures, 1);
    assert_eq!(kube_healer_core::Knobs::default().probe_min_failures, 3);
}

#[test]
fn probe_failure_needs_a_ready_node_and_a_known_start_and_reads_combined_events() {
    let failed = "Readiness probe failed: HTTP probe failed with statuscode: 503";
    let mut input = input();
    input.nodes.push(node(
        "lost",
        json!([{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown", "lastTransitionTime": at(-1800)}]),
    ));
    // On a node whose kubelet stopped posting, the pod's status is stale: NodeLost, not this.
    input
        .pods
        .push(pod("stale", Some("lost"), unready(0, -7000, -3600)));
    input
        .events
        .push(event("Pod", "stale", "Unhealthy", failed, 100, -3590, -1900));
    // The kubelet's correlator combines similar events past ten distinct messages.
    input
        .pods
        .push(pod("combined", Some("n1"), unready(0, -1500, -1200)));
    let combined = format!("(combined from similar events): {failed}");
    input
        .events
        .push(event("Pod", "combined", "Unhealthy", &combined, 4, -1490, -5));
    // Unready since an unknown time: counted from now, never from the container's start.
    let mut unknown = unready(0, -86_000, -1200);
    unknown["conditions"][3]
        .as_object_mut()
        .unwrap()
        .remove("lastTransitionTime");
    input.pods.push(pod("unknown", Some("n1"), unknown));
    input
        .events
        .push(event("Pod", "unknown", "Unhealthy", failed, 30, -1000, -5));
    let report = input.report();

    assert!(
        !classes(&report, "stale").contains(&ProbeFailure),
        "{:?}",
        classes(&report, "stale")
    );
    assert!(classes(&report, "stale").contains(&NodeLost));
    assert_eq!(due_classes(&report, "combined"), [ProbeFailure]);
    assert_eq!(the(&report, "unknown", ProbeFailure).since, NOW);
    assert!(due_classes(&report, "unknown").is_empty());
}
