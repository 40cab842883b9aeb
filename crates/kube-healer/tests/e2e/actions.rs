//! The workload actions on the real cluster: Reschedule (the pod recreated on another node),
//! RestartOwner (one rollout restart for several failing pods). Drain is in drain.rs, a lost
//! node's pods in lost_node.rs, node jobs in node_jobs.rs, crashes around the call in crash.rs.

use anyhow::{Context, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::{Scenario, nodes, scenario_pod, wait};
use serde_json::json;

use crate::support;
use support::{
    HEAL, Operator, create_policy, deployment, limits, now_rfc3339, phase_reason, records, selector,
};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![
        test("reschedule_recreates_the_pod_on_another_node", reschedule),
        test(
            "restart_owner_restarts_the_deployment_once_for_its_failing_pods",
            restart_owner,
        ),
    ]
}

pub(crate) async fn running_pods(pods: &Api<Pod>, app: &str) -> Result<Vec<Pod>, kube::Error> {
    let list = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
        .collect())
}

pub(crate) fn node_of(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

async fn reschedule(ctx: Ctx) -> anyhow::Result<()> {
    let op = Operator::start(
        &ctx.cluster,
        "reschedule",
        &["--policy-selector", &selector(&ctx)],
    )
    .await?;
    let (a, b) = (ctx.name("a"), ctx.name("b"));
    nodes::add_owned_nodes(&ctx.client, &[a.clone(), b.clone()], &ctx.id, HEAL).await?;
    let ns = ctx.namespace("rs").await?;
    let policy = ctx.name("mount");
    create_policy(
        &ctx,
        &policy,
        json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
        "conditions": [{"class": "EventPattern", "reason": "FailedMount", "for": "1s"}],
        "actions": [{"action": "Reschedule", "reschedule": {"avoidNode": true}}], "safety": limits()}),
    )
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let template = scenario_pod(&ns, "web", None, &Scenario::Running);
    deployments
        .create(
            &PostParams::default(),
            &deployment(&ctx, &ns, "web", 1, template)?,
        )
        .await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let first = wait::until("the web pod running", HEAL, || async {
        Ok(running_pods(&pods, "web").await?.into_iter().next())
    })
    .await?;
    let (name, bad_node) = (first.name_any(), node_of(&first));
    // The kubelet cannot mount its volume on this node.
    let events: Api<Event> = Api::namespaced(ctx.client.clone(), &ns);
    let event: Event = serde_json::from_value(json!({
        "metadata": {"generateName": format!("{name}.")},
        "involvedObject": {"kind": "Pod", "namespace": ns, "name": name, "uid": first.uid()},
        "reason": "FailedMount", "type": "Warning", "count": 1,
        "message": "MountVolume.SetUp failed for volume \"data\" : mount failed: exit status 32",
        "firstTimestamp": now_rfc3339(0), "lastTimestamp": now_rfc3339(0),
        "source": {"component": "kubelet", "host": bad_node},
    }))?;
    events.create(&PostParams::default(), &event).await?;

    let moved = wait::until("the replacement running on the other node", HEAL, || async {
        let running = running_pods(&pods, "web").await?;
        let old_left = pods.get_opt(&name).await?.is_some();
        Ok(running
            .into_iter()
            .find(|p| !old_left && p.name_any() != name && node_of(p) != bad_node))
    })
    .await;
    if let Err(e) = moved {
        anyhow::bail!("{e}; operator log:\n{}", op.log_tail(30));
    }
    let recs = records(&ctx, &policy, 1).await?;
    ensure!(recs.len() == 1, "{recs:#?}");
    let status = recs[0].status.as_ref().context("status")?;
    ensure!(
        phase_reason(&recs[0]) == (ActionPhase::Succeeded, "Completed".into()),
        "{status:?}"
    );
    let message = status.message.clone().unwrap_or_default();
    ensure!(
        message.contains("evicted") && message.contains(&format!("node {bad_node} avoided")),
        "{message}"
    );
    // The avoid taint: NoSchedule, with its expiry as the value.
    let node = Api::<Node>::all(ctx.client.clone()).get(&bad_node).await?;
    let taint = node
        .spec
        .and_then(|s| s.taints)
        .unwrap_or_default()
        .into_iter()
        .find(|t| t.key == kube_healer_api::AVOID_TAINT)
        .context("the avoid taint on the node")?;
    let until: i64 = taint.value.as_deref().unwrap_or_default().parse()?;
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    ensure!(
        taint.effect == "NoSchedule" && until > now + 500 && until <= now + 600,
        "{taint:?}"
    );
    Ok(())
}

async fn restart_owner(ctx: Ctx) -> anyhow::Result<()> {
    let _op = Operator::start(&ctx.cluster, "restart", &["--policy-selector", &selector(&ctx)]).await?;
    nodes::add_owned_nodes(&ctx.client, &[ctx.name("n")], &ctx.id, HEAL).await?;
    let ns = ctx.namespace("ro").await?;
    let policy = ctx.name("crashing");
    create_policy(
        &ctx,
        &policy,
        json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
        "conditions": [{"class": "CrashLoop", "for": "1s"}],
        "actions": [{"action": "RestartOwner"}],
        "safety": {"maxConcurrent": 5, "rate": {"actions": 10, "per": "1m"}, "cooldown": "10m"}}),
    )
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let template = scenario_pod(&ns, "api", None, &Scenario::crash_loop(7));
    deployments
        .create(
            &PostParams::default(),
            &deployment(&ctx, &ns, "api", 2, template)?,
        )
        .await?;
    // Both pods crash: two decisions, one restart.
    let recs = records(&ctx, &policy, 2).await?;
    let messages: Vec<String> = recs
        .iter()
        .map(|r| {
            r.status
                .as_ref()
                .and_then(|s| s.message.clone())
                .unwrap_or_default()
        })
        .collect();
    ensure!(
        recs.iter()
            .all(|r| phase_reason(r) == (ActionPhase::Succeeded, "Completed".into())),
        "{messages:?}"
    );
    let restarted = format!("restarted deployment/{ns}/api");
    ensure!(
        messages.iter().filter(|m| m.starts_with(&restarted)).count() == 1,
        "{messages:?}"
    );
    ensure!(
        messages.iter().any(|m| m.contains("already restarted")),
        "{messages:?}"
    );
    let d = deployments.get("api").await?;
    let annotations = d
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .unwrap_or_default();
    ensure!(
        annotations.contains_key("kubectl.kubernetes.io/restartedAt")
            && annotations
                .get(kube_healer_api::RESTARTED_BY_ANNOTATION)
                .is_some_and(|v| v.starts_with(&format!("{policy}@"))),
        "{annotations:?}"
    );
    Ok(())
}
