//! Forged evidence: a ServiceAccount that may create Events anywhere (as many controllers may)
//! writes 10 SystemOOM events about a healthy node in kube-system through events.k8s.io,
//! claiming to be the kubelet (the API server takes new-style events about cluster-scoped objects
//! in `default` and `kube-system`), and 4 NodeNotReady events in `default` under its own name.
//! None is evidence: no finding, no record, the node untouched, and the operator counts the 14
//! events it ignored (kube_healer_events_ignored_total: 10 more for the namespace, 4 more for the
//! source; exactly 10 and 4 when the test runs alone).
//! Before, the 10 SystemOOM events made a SystemOOM finding and the node was cordoned.

use std::time::Duration;

use anyhow::ensure;
use k8s_openapi::api::core::v1::{Event, Node, ServiceAccount};
use k8s_openapi::api::events::v1::Event as NewEvent;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, PostParams};
use kube_healer_api::HealingAction;
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::nodes;
use serde_json::json;

use crate::support;
use support::{Operator, create_policy, now_rfc3339, selector};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![test("forged_events_about_a_node_are_ignored_and_counted", forged)]
}

/// A client acting as `forger` in `ns`, allowed to create Events in every namespace.
async fn forger(ctx: &Ctx, ns: &str) -> anyhow::Result<kube::Client> {
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "forger", "namespace": ns}}))?;
    Api::<ServiceAccount>::namespaced(ctx.client.clone(), ns)
        .create(&PostParams::default(), &sa)
        .await?;
    let role = ctx.name("forger");
    let cluster_role: ClusterRole = serde_json::from_value(json!({"metadata": {"name": role},
        "rules": [{"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create"]}]}))?;
    Api::<ClusterRole>::all(ctx.client.clone())
        .create(&PostParams::default(), &cluster_role)
        .await?;
    let binding: ClusterRoleBinding = serde_json::from_value(json!({"metadata": {"name": role},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "forger", "namespace": ns}]}))?;
    Api::<ClusterRoleBinding>::all(ctx.client.clone())
        .create(&PostParams::default(), &binding)
        .await?;
    let mut config = ctx.cluster.config().clone();
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{ns}:forger"));
    Ok(kube::Client::try_from(config)?)
}

/// A core/v1 event about `node`, written in `namespace` with this source component.
fn event_about(
    node: &str,
    namespace: &str,
    reason: &str,
    message: &str,
    source: &str,
) -> anyhow::Result<Event> {
    Ok(serde_json::from_value(json!({
        "metadata": {"generateName": format!("{node}."), "namespace": namespace},
        "involvedObject": {"kind": "Node", "name": node, "uid": node},
        "reason": reason, "message": message, "count": 1, "type": "Warning",
        "firstTimestamp": now_rfc3339(0), "lastTimestamp": now_rfc3339(0),
        "source": {"component": source, "host": node},
    }))?)
}

/// An events.k8s.io event about `node` in `namespace`, reported as by `controller`.
fn new_event_about(
    node: &str,
    namespace: &str,
    reason: &str,
    note: &str,
    controller: &str,
) -> anyhow::Result<NewEvent> {
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    Ok(serde_json::from_value(json!({
        "metadata": {"generateName": format!("{node}-"), "namespace": namespace},
        "regarding": {"kind": "Node", "name": node, "uid": node},
        "reason": reason, "note": note, "type": "Warning", "action": "Killing",
        "eventTime": now, "reportingController": controller, "reportingInstance": node,
    }))?)
}

/// The sum of a labelled counter's series, by label value.
async fn ignored(op: &Operator) -> anyhow::Result<(f64, f64)> {
    let (_, body) = op.get("/metrics").await?;
    let value = |reason: &str| {
        let series = format!("kube_healer_events_ignored_total{{reason=\"{reason}\"}}");
        body.lines()
            .find(|l| l.starts_with(&series))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0.0)
    };
    Ok((value("namespace"), value("source")))
}

async fn forged(ctx: Ctx) -> anyhow::Result<()> {
    let op = Operator::start(&ctx.cluster, "forged", &["--policy-selector", &selector(&ctx)]).await?;
    let node = ctx.name("n");
    nodes::add_owned_nodes(
        &ctx.client,
        std::slice::from_ref(&node),
        &ctx.id,
        Duration::from_secs(60),
    )
    .await?;
    let ns = ctx.namespace("forge").await?;
    let selects = json!({"kind": "Node", "selector": {"matchLabels": {nodes::OWNER_LABEL: ctx.id}}});
    let (oom, flapping) = (ctx.name("oom"), ctx.name("flapping"));
    let safety = json!({"maxUnhealthy": "100%"});
    create_policy(
        &ctx,
        &oom,
        json!({"target": selects, "conditions": [{"class": "SystemOOM", "for": "1s"}],
            "actions": [{"action": "Cordon"}], "safety": safety}),
    )
    .await?;
    create_policy(
        &ctx,
        &flapping,
        json!({"target": selects, "conditions": [{"class": "NodeFlapping", "transitions": 2, "window": "1h"}],
            "actions": [{"action": "Cordon"}], "safety": safety}),
    )
    .await?;
    let client = forger(&ctx, &ns).await?;
    let before = ignored(&op).await?;
    for i in 0..10 {
        let message = format!(
            "System OOM encountered, victim process: java, pid: {}",
            18_200 + i
        );
        let event = new_event_about(&node, "kube-system", "SystemOOM", &message, "kubelet")?;
        Api::<NewEvent>::namespaced(client.clone(), "kube-system")
            .create(&PostParams::default(), &event)
            .await?;
    }
    for _ in 0..4 {
        let message = format!("Node {node} status is now: NodeNotReady");
        let event = event_about(&node, "default", "NodeNotReady", &message, "forger")?;
        Api::<Event>::namespaced(client.clone(), "default")
            .create(&PostParams::default(), &event)
            .await?;
    }
    // Other tests' nodes on this shared cluster have untrusted events of their own (the
    // controller-manager's CIDR allocator writes some): ours are counted on top of them.
    let want = (before.0 + 10.0, before.1 + 4.0);
    kube_healer_testenv::wait::until(
        "14 more ignored events counted",
        Duration::from_secs(30),
        || async {
            let counted = ignored(&op)
                .await
                .map_err(|e| kube_healer_testenv::Error::Other(e.to_string()))?;
            Ok((counted.0 >= want.0 && counted.1 >= want.1).then_some(()))
        },
    )
    .await?;
    // Time enough for a finding to come due and be decided (for: 1s).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let records = Api::<HealingAction>::all(ctx.client.clone())
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|r| r.spec.policy == oom || r.spec.policy == flapping)
        .count();
    let cordoned = Api::<Node>::all(ctx.client.clone())
        .get(&node)
        .await?
        .spec
        .and_then(|s| s.unschedulable)
        == Some(true);
    ensure!(
        records == 0 && !cordoned,
        "{records} records; cordoned: {cordoned}"
    );
    let after = ignored(&op).await?;
    println!(
        "    10 SystemOOM (kube-system, as the kubelet) and 4 NodeNotReady (default, untrusted source) forged: ignored; counted {} (namespace) + {} (source) more during the test; no record, node not cordoned",
        after.0 - before.0,
        after.1 - before.1
    );
    Ok(())
}
