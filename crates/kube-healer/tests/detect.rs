//! The running operator detects every failure class on the real cluster: failures made by kwok
//! stages, by the scheduler and the node lifecycle controller, or written through the API as a
//! kubelet or node-problem-detector would. Detection shows as a "finding detected" log line naming
//! the class and the target, and in the kube_healer_findings metric.
//!
//! Its own cluster: its operators run without `--policy-selector` (the policies of event_pattern
//! and policy_status have no owner), so on a shared cluster they would load every other test's
//! policies, act on them and write their status.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::ensure;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube_healer_testenv::harness::{Ctx, test};
use kube_healer_testenv::{ClusterOptions, Scenario, nodes, scenario, scenario_pod, wait};
use serde_json::json;
use support::{Operator, node_event, now_rfc3339, ready, unmanaged_node};

fn main() -> std::process::ExitCode {
    kube_healer_testenv::harness::run(
        ClusterOptions::default(),
        vec![
            test("pod_failure_classes_are_detected", pod_classes),
            test("node_failure_classes_are_detected", node_classes),
            test("lost_and_orphaned_pods_are_detected", lost_and_orphaned),
            test(
                "a_skewed_clock_finds_no_heartbeat_lag_on_healthy_nodes",
                skewed_clock,
            ),
            test("event_patterns_are_detected_through_policies", event_pattern),
            test(
                "policy_status_tells_validity_suspension_and_targets",
                policy_status,
            ),
        ],
    )
}

const DETECT: Duration = Duration::from_secs(60);
const DEBUG: &[&str] = &["--log", "info,kube_healer_operator=debug"];

async fn expect(op: &Operator, class: &str, target: &str) -> anyhow::Result<()> {
    op.wait_log(
        &[
            "finding detected",
            &format!("class={class}"),
            &format!("target={target} "),
        ],
        DETECT,
    )
    .await?;
    Ok(())
}

async fn pod_classes(ctx: Ctx) -> anyhow::Result<()> {
    let op = Operator::start(&ctx.cluster, "pods", DEBUG).await?;
    let node = ctx.name("n");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("p").await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pp = PostParams::default();
    let waiting = |reason: &str, message: &str, restarts| Scenario::ContainerWaiting {
        reason: reason.into(),
        message: message.into(),
        restarts,
    };
    let cases: Vec<(&str, Scenario, &str)> = vec![
        (
            "pull",
            Scenario::image_pull_backoff("registry.example/app:2"),
            "ImagePullFailure",
        ),
        ("loop", Scenario::crash_loop(8), "CrashLoop"),
        (
            "start",
            waiting(
                "RunContainerError",
                "failed to create containerd task: exec: \"/app\": permission denied",
                2,
            ),
            "ContainerStartFailure",
        ),
        (
            "creating",
            waiting("ContainerCreating", "", 0),
            "StuckContainerCreating",
        ),
        ("init", waiting("PodInitializing", "", 0), "StuckInitializing"),
        ("evicted", Scenario::evicted(), "Evicted"),
        (
            "deadline",
            Scenario::Failed {
                reason: "DeadlineExceeded".into(),
                message: "Pod was active on the node longer than the specified deadline".into(),
            },
            "Failed",
        ),
        (
            "cpu",
            Scenario::Failed {
                reason: "OutOfcpu".into(),
                message: "Pod was rejected: Node didn't have enough resource: cpu".into(),
            },
            "AdmissionRejected",
        ),
    ];
    for (name, scenario, _) in &cases {
        pods.create(&pp, &scenario_pod(&ns, name, Some(&node), scenario))
            .await?;
    }
    // Unschedulable: the scheduler's verdict. StuckPending: no scheduler will ever look at it.
    let mut picky = scenario_pod(&ns, "picky", None, &Scenario::Running);
    picky.spec.as_mut().unwrap().node_selector =
        Some(BTreeMap::from([("no-such-label".to_string(), "x".to_string())]));
    pods.create(&pp, &picky).await?;
    let mut ignored = scenario_pod(&ns, "ignored", None, &Scenario::Running);
    ignored.spec.as_mut().unwrap().scheduler_name = Some("no-such-scheduler".into());
    pods.create(&pp, &ignored).await?;
    // StuckTerminating: deleted with a 1 s grace period, never finishing.
    scenario::stuck_terminating_pod(&pods, &ns, "stuck", &node).await?;

    for (name, _, class) in &cases {
        expect(&op, class, &format!("pod/{ns}/{name}")).await?;
    }
    expect(&op, "Unschedulable", &format!("pod/{ns}/picky")).await?;
    expect(&op, "StuckPending", &format!("pod/{ns}/ignored")).await?;
    expect(&op, "StuckTerminating", &format!("pod/{ns}/stuck")).await?;
    // The healthy look-alike on the same node: a pod seen seconds after creation may look
    // pending for a moment, but nothing about it becomes due and nothing stays.
    pods.create(&pp, &scenario_pod(&ns, "fine", Some(&node), &Scenario::Running))
        .await?;
    wait::pod_phase(&pods, "fine", "Running", Duration::from_secs(30)).await?;
    let about_fine = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains(&format!("/{ns}/fine")) || l.contains(&format!("\"{ns}\", \"fine\"")))
            .map(str::to_string)
            .collect()
    };
    // The operator sees the pod Running when its watch delivers it, later on a loaded machine:
    // give it the moment the test always gave, then wait for any finding on it to clear, and
    // check none became due.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cleared = wait::until(
        "no finding left on the healthy pod",
        Duration::from_secs(30),
        || async {
            let lines = about_fine(&op.log());
            Ok(lines
                .last()
                .is_none_or(|l| l.contains("finding cleared"))
                .then_some(lines))
        },
    )
    .await;
    let lines = cleared.map_err(|e| anyhow::anyhow!("{e}: {:#?}", about_fine(&op.log())))?;
    ensure!(
        !lines.iter().any(|l| l.contains("finding due")),
        "a healthy pod became due: {lines:#?}"
    );

    let (_, metrics) = op.get("/metrics").await?;
    for class in [
        "ImagePullFailure",
        "CrashLoop",
        "StuckTerminating",
        "Unschedulable",
    ] {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&format!("kube_healer_findings{{class=\"{class}\"}}")));
        let value: f64 = line
            .and_then(|l| l.split_whitespace().last()?.parse().ok())
            .unwrap_or(0.0);
        ensure!(
            value >= 1.0,
            "kube_healer_findings for {class} is {value}:\n{metrics}"
        );
    }
    Ok(())
}

async fn node_classes(ctx: Ctx) -> anyhow::Result<()> {
    let op = Operator::start(&ctx.cluster, "nodes", DEBUG).await?;
    let c = &ctx.client;
    let (not_ready, pleg, pressure, deadlock) =
        (ctx.name("nr"), ctx.name("pleg"), ctx.name("disk"), ctx.name("kd"));
    unmanaged_node(
        c,
        &not_ready,
        json!([ready(
            "False",
            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady"
        )]),
    )
    .await?;
    unmanaged_node(
        c,
        &pleg,
        json!([ready(
            "False",
            "PLEG is not healthy: pleg was last seen active 3m3.588s ago; threshold is 3m0s"
        )]),
    )
    .await?;
    unmanaged_node(c, &pressure, json!([ready("True", "kubelet is posting ready status"),
        {"type": "DiskPressure", "status": "True", "reason": "KubeletHasDiskPressure", "message": "kubelet has disk pressure", "lastTransitionTime": now_rfc3339(-30)}])).await?;
    unmanaged_node(c, &deadlock, json!([ready("True", "kubelet is posting ready status"),
        {"type": "KernelDeadlock", "status": "True", "reason": "DockerHung", "message": "kernel: INFO: task docker:20744 blocked for more than 120 seconds.", "lastTransitionTime": now_rfc3339(-30)}])).await?;
    expect(&op, "NodeNotReady", &format!("node/{not_ready}")).await?;
    expect(&op, "PLEGUnhealthy", &format!("node/{pleg}")).await?;
    expect(&op, "NodePressure", &format!("node/{pressure}")).await?;
    expect(&op, "NodeCondition", &format!("node/{deadlock}")).await?;

    // Events: flapping and repeated system OOMs, each occurrence an Event object of its own
    // (as after a controller-manager failover, or a kubelet restart): 2 + 2 transitions and 3
    // OOMs with one message count 4 and 3, not one per reason.
    let (flappy, oomy) = (ctx.name("flap"), ctx.name("oom"));
    nodes::add_node(c, &flappy).await?;
    nodes::add_node(c, &oomy).await?;
    for _ in 0..2 {
        for reason in ["NodeNotReady", "NodeReady"] {
            let message = format!("Node {flappy} status is now: {reason}");
            node_event(c, &flappy, reason, &message, 1).await?;
        }
    }
    for _ in 0..3 {
        let message = "System OOM encountered, victim process: java, pid: 18212";
        node_event(c, &oomy, "SystemOOM", message, 1).await?;
    }
    expect(&op, "NodeFlapping", &format!("node/{flappy}")).await?;
    expect(&op, "SystemOOM", &format!("node/{oomy}")).await?;

    // HeartbeatLag: the node reads Ready but its Lease was last renewed 30 s ago.
    let laggy = ctx.name("lag");
    unmanaged_node(
        c,
        &laggy,
        json!([ready("True", "kubelet is posting ready status")]),
    )
    .await?;
    let leases: Api<Lease> = Api::namespaced(c.clone(), "kube-node-lease");
    let renew = (k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(30))
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": laggy},
        "spec": {"holderIdentity": laggy, "leaseDurationSeconds": 40, "renewTime": renew}}))?;
    leases.create(&PostParams::default(), &lease).await?;
    expect(&op, "HeartbeatLag", &format!("node/{laggy}")).await?;

    // NodeBlackHole: a Ready node whose three bound pods were scheduled 10 minutes ago and never started.
    let hole = ctx.name("hole");
    unmanaged_node(
        c,
        &hole,
        json!([ready("True", "kubelet is posting ready status")]),
    )
    .await?;
    let ns = ctx.namespace("bh").await?;
    let pods: Api<Pod> = Api::namespaced(c.clone(), &ns);
    for i in 0..3 {
        let name = format!("p{i}");
        pods.create(
            &PostParams::default(),
            &scenario_pod(&ns, &name, Some(&hole), &Scenario::Running),
        )
        .await?;
        pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": {"phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now_rfc3339(-600)}]}})))
            .await?;
    }
    expect(&op, "NodeBlackHole", &format!("node/{hole}")).await?;
    Ok(())
}

/// The operator's clock runs 30 s ahead (a test hook): every renewTime the kubelets write reads
/// 30 s old to it, past HeartbeatLag's 20 s. Heartbeats are aged from when the operator saw them
/// change, so healthy nodes stay quiet, and a Lease that really stopped is still found.
async fn skewed_clock(ctx: Ctx) -> anyhow::Result<()> {
    let c = &ctx.client;
    let healthy: Vec<String> = (0..3).map(|i| ctx.name(&format!("skew{i}"))).collect();
    nodes::add_nodes(c, &healthy, DETECT).await?;
    let mut args = DEBUG.to_vec();
    args.extend(["--test-clock-offset", "30"]);
    let op = Operator::start(&ctx.cluster, "skew", &args).await?;
    let stalled = ctx.name("stall");
    unmanaged_node(
        c,
        &stalled,
        json!([ready("True", "kubelet is posting ready status")]),
    )
    .await?;
    let leases: Api<Lease> = Api::namespaced(c.clone(), "kube-node-lease");
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": stalled},
        "spec": {"holderIdentity": stalled, "leaseDurationSeconds": 40, "renewTime": now_rfc3339(0)}}))?;
    leases.create(&PostParams::default(), &lease).await?;
    // Found 20 s after the operator first saw it: by then it has watched the healthy nodes'
    // Leases for longer than the threshold and the skew together.
    expect(&op, "HeartbeatLag", &format!("node/{stalled}")).await?;
    let log = op.log();
    for node in &healthy {
        ensure!(
            !log.contains(&format!("class=HeartbeatLag target=node/{node} ")),
            "HeartbeatLag on the healthy node {node}:\n{}",
            op.log_tail(20)
        );
    }
    Ok(())
}

async fn lost_and_orphaned(ctx: Ctx) -> anyhow::Result<()> {
    let op = Operator::start(&ctx.cluster, "lost", DEBUG).await?;
    let (lost, doomed) = (ctx.name("lost"), ctx.name("doomed"));
    nodes::add_node(&ctx.client, &lost).await?;
    nodes::add_node(&ctx.client, &doomed).await?;
    let ns = ctx.namespace("l").await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    pods.create(
        &PostParams::default(),
        &scenario_pod(&ns, "stranded", Some(&lost), &Scenario::Running),
    )
    .await?;
    pods.create(
        &PostParams::default(),
        &scenario_pod(&ns, "orphan", Some(&doomed), &Scenario::Running),
    )
    .await?;
    nodes::stop_heartbeats(&ctx.client, &lost).await?;
    expect(&op, "NodeUnreachable", &format!("node/{lost}")).await?;
    expect(&op, "NodeLost", &format!("pod/{ns}/stranded")).await?;
    Api::<Node>::all(ctx.client.clone())
        .delete(&doomed, &DeleteParams::default())
        .await?;
    expect(&op, "Orphaned", &format!("pod/{ns}/orphan")).await?;
    Ok(())
}

async fn event_pattern(ctx: Ctx) -> anyhow::Result<()> {
    let op = Operator::start(&ctx.cluster, "events", DEBUG).await?;
    let node = ctx.name("n");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("ev").await?;
    let policy: kube_healer_api::HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": ctx.name("mounts")},
        "spec": {"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
            "conditions": [{"class": "EventPattern", "reason": "FailedMount", "messagePattern": "timed out waiting for the condition", "count": 3, "window": "10m"}],
            "actions": [{"action": "Event"}], "safety": {"dryRun": true}},
    }))?;
    Api::<kube_healer_api::HealingPolicy>::all(ctx.client.clone())
        .create(&PostParams::default(), &policy)
        .await?;
    op.wait_log(&["policy loaded", &ctx.name("mounts")], DETECT)
        .await?;

    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    pods.create(
        &PostParams::default(),
        &scenario_pod(&ns, "mounty", Some(&node), &Scenario::Running),
    )
    .await?;
    pods.create(
        &PostParams::default(),
        &scenario_pod(&ns, "quiet", Some(&node), &Scenario::Running),
    )
    .await?;
    let events: Api<Event> = Api::namespaced(ctx.client.clone(), &ns);
    for (pod, count) in [("mounty", 3), ("quiet", 1)] {
        let event: Event = serde_json::from_value(json!({
            "metadata": {"generateName": format!("{pod}.")},
            "involvedObject": {"kind": "Pod", "namespace": ns, "name": pod},
            "reason": "FailedMount", "type": "Warning", "count": count,
            "message": "MountVolume.SetUp failed for volume \"data\" : rpc error: code = DeadlineExceeded desc = timed out waiting for the condition",
            "firstTimestamp": now_rfc3339(-60), "lastTimestamp": now_rfc3339(0),
        }))?;
        events.create(&PostParams::default(), &event).await?;
    }
    op.wait_log(
        &[
            "policy condition due",
            "class=EventPattern",
            &format!("target=pod/{ns}/mounty "),
        ],
        DETECT,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = op.log();
    let quiet_due: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("policy condition due") && l.contains(&format!("target=pod/{ns}/quiet ")))
        .collect();
    ensure!(
        quiet_due.is_empty(),
        "one event is below the policy's count of 3: {quiet_due:#?}"
    );
    Ok(())
}

async fn policy_status(ctx: Ctx) -> anyhow::Result<()> {
    let _op = Operator::start(&ctx.cluster, "status", DEBUG).await?;
    let node = ctx.name("n");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("st").await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    for name in ["web-1", "web-2", "db-1"] {
        let mut pod = scenario_pod(&ns, name, Some(&node), &Scenario::Running);
        let app = if name.starts_with("web") { "web" } else { "db" };
        pod.metadata
            .labels
            .get_or_insert_default()
            .insert("app".into(), app.into());
        pods.create(&PostParams::default(), &pod).await?;
    }
    let policies: Api<kube_healer_api::HealingPolicy> = Api::all(ctx.client.clone());
    let policy = |name: &str, pattern: &str| -> anyhow::Result<kube_healer_api::HealingPolicy> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy", "metadata": {"name": name},
            "spec": {"target": {"kind": "Pod", "namespaces": {"include": [ns]}, "selector": {"matchLabels": {"app": "web"}}},
                "conditions": [{"class": "EventPattern", "reason": "BackOff", "messagePattern": pattern}],
                "actions": [{"action": "Event"}], "safety": {"dryRun": true}},
        }))?)
    };
    let (good, bad) = (ctx.name("good"), ctx.name("bad"));
    policies
        .create(&PostParams::default(), &policy(&good, "restarting")?)
        .await?;
    // Go's RE2 (the API server's CEL) accepts \Q...\E; the operator's regex engine does not.
    policies
        .create(&PostParams::default(), &policy(&bad, "\\Qa.b\\E")?)
        .await?;

    let condition = |p: &kube_healer_api::HealingPolicy, type_: &str| {
        p.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_).cloned())
    };
    let status = wait::until("the valid policy's status", DETECT, || async {
        let p = policies.get(&good).await?;
        let ready = condition(&p, "Ready").is_some_and(|c| c.status == "True");
        let targets = p.status.as_ref().and_then(|s| s.targets_matched);
        Ok(
            (ready && targets == Some(2) && p.status.as_ref().and_then(|s| s.observed_generation) == Some(1))
                .then_some(p),
        )
    })
    .await?;
    ensure!(condition(&status, "Invalid").is_some_and(|c| c.status == "False"));
    let bad_status = wait::until("the invalid policy's status", DETECT, || async {
        let p = policies.get(&bad).await?;
        Ok(condition(&p, "Invalid").filter(|c| c.status == "True"))
    })
    .await?;
    ensure!(
        bad_status.message.contains("spec.conditions[0].messagePattern"),
        "{}",
        bad_status.message
    );

    policies
        .patch(
            &good,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"safety": {"suspend": true}}})),
        )
        .await?;
    wait::until("the Suspended condition", DETECT, || async {
        let p = policies.get(&good).await?;
        let suspended = condition(&p, "Suspended").is_some_and(|c| c.status == "True");
        Ok((suspended && p.status.as_ref().and_then(|s| s.observed_generation) == Some(2)).then_some(()))
    })
    .await?;
    Ok(())
}
