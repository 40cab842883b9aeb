//! Drain on the real cluster: a PodDisruptionBudget respected; DaemonSet, bare, emptyDir and
//! opted-out pods left and named in the record (kubectl drain's defaults); a clean timeout. And
//! one fencing rule (issue 32 (e)): a drain with `gracePeriodSeconds: 0` of a node not confirmed
//! down (its kubelet may still run its pods) never removes a StatefulSet's pod (its replacement would take its
//! identity and volume while it may still run): evicted with its own grace, it stays
//! Terminating; a ReplicaSet's pod beside it goes at once.

use std::collections::BTreeMap;

use anyhow::{Context, ensure};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::nodes::OWNER_LABEL;
use kube_healer_testenv::{Scenario, nodes, scenario_pod, wait};
use serde_json::json;

use crate::actions::running_pods;
use crate::support;
use support::{HEAL, Operator, create_policy, node_event, phase_reason, records, selector};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![
        test(
            "drain_respects_the_pdb_leaves_what_kubectl_drain_leaves_and_times_out_cleanly",
            drain,
        ),
        test(
            "a_drain_with_grace_0_never_removes_a_stateful_set_pod_of_a_node_not_confirmed_down",
            unfenced,
        ),
    ]
}

/// A controller's object of `kind` whose one pod is bound to `node` (no scheduler, no kubelet:
/// the node's kubelet is the test's, which runs nothing and ends nothing).
fn on_node(kind: &str, name: &str, node: &str) -> serde_json::Value {
    let labels = json!({"app": name});
    let mut spec = json!({"replicas": 1, "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": {"nodeName": node,
            "containers": [{"name": "app", "image": "127.0.0.1:1/app:1"}]}}});
    if kind == "StatefulSet" {
        spec["serviceName"] = json!(name);
        spec["updateStrategy"] = json!({"type": "OnDelete"});
    }
    json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec})
}

async fn unfenced(ctx: Ctx) -> anyhow::Result<()> {
    let _op = Operator::start(&ctx.cluster, "unfenced", &["--policy-selector", &selector(&ctx)]).await?;
    let node = ctx.name("nr");
    let labels = json!({"kube-healer.test/owner": ctx.id, "kube-healer.test/case": "unfenced"});
    // Its kubelet still posting, its runtime reported unhealthy: nothing says the node is down,
    // or its pods ended. (Ready, not NotReady: on this shared cluster, nodes down together are
    // one cause, and other tests leave down nodes behind.)
    let mut conditions = support::kernel_deadlock(true, &support::now_rfc3339(0));
    conditions[1]["type"] = json!("ContainerRuntimeUnhealthy");
    conditions[1]["message"] = json!("container runtime on the node is not responding");
    let _posted =
        support::PostedNodes::create(&ctx.client, std::slice::from_ref(&node), labels, conditions).await?;
    let ns = ctx.namespace("uf").await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let stateful: StatefulSet = serde_json::from_value(on_node("StatefulSet", "db", &node))?;
    Api::<StatefulSet>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &stateful)
        .await?;
    let replicated: ReplicaSet = serde_json::from_value(on_node("ReplicaSet", "web", &node))?;
    Api::<ReplicaSet>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &replicated)
        .await?;
    let web = wait::until("the ReplicaSet's pod", HEAL, || async {
        let list = pods.list(&ListParams::default().labels("app=web")).await?;
        Ok(list.items.into_iter().next().map(|p| p.name_any()))
    })
    .await?;
    let db_uid = wait::until("the StatefulSet's pod", HEAL, || async {
        Ok(pods.get_opt("db-0").await?.and_then(|p| p.metadata.uid))
    })
    .await?;

    let policy = ctx.name("hard-drain");
    create_policy(
        &ctx,
        &policy,
        json!({"target": {"kind": "Node", "selector": {"matchLabels": {"kube-healer.test/case": "unfenced", "kube-healer.test/owner": ctx.id}}},
        "conditions": [{"class": "NodeCondition", "conditionType": "ContainerRuntimeUnhealthy", "for": "1s"}],
        "actions": [{"action": "Drain", "drain": {"gracePeriodSeconds": 0, "timeout": "10s"}}],
        "safety": {"maxUnhealthy": "100%", "maxConcurrent": 1, "rate": {"actions": 5, "per": "1h"}}}),
    )
    .await?;
    let recs = records(&ctx, &policy, 1).await?;
    let message = support::message(&recs[0]);
    let web_gone = wait::until("the ReplicaSet's pod removed at once (grace 0)", HEAL, || async {
        Ok(pods.get_opt(&web).await?.is_none().then_some(()))
    })
    .await
    .with_context(|| format!("{:?}: {message}", phase_reason(&recs[0])));
    web_gone?;
    // Past the drain's end: the StatefulSet's pod is still there, Terminating with its own grace.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let db = pods
        .get_opt("db-0")
        .await?
        .with_context(|| format!("db-0 was removed unfenced: {message}"))?;
    ensure!(
        db.metadata.uid.as_ref() == Some(&db_uid),
        "db-0 was removed unfenced, and its StatefulSet made a second db-0 while the first may still run: {message}"
    );
    ensure!(
        db.metadata.deletion_timestamp.is_some(),
        "db-0 was not evicted at all: {message}"
    );
    let grace = db.metadata.deletion_grace_period_seconds;
    ensure!(
        grace.is_some_and(|g| g > 0),
        "db-0 was evicted with grace {grace:?}"
    );
    println!(
        "    {:?}: {message}; db-0 Terminating with its own grace ({grace:?} s), {web} removed at once",
        phase_reason(&recs[0])
    );
    Ok(())
}

async fn drain(ctx: Ctx) -> anyhow::Result<()> {
    let op = Operator::start(&ctx.cluster, "drain", &["--policy-selector", &selector(&ctx)]).await?;
    let node = ctx.name("oom");
    nodes::add_owned_nodes(&ctx.client, std::slice::from_ref(&node), &ctx.id, HEAL).await?;
    let ns = ctx.namespace("dn").await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    // A controller that no controller-manager loop runs (a ConfigMap): the pods count as managed
    // for the drain, and nothing adopts, releases or recreates them during the test.
    let owner = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner"}}))?,
        )
        .await?;
    let owned = |name: &str| -> anyhow::Result<Pod> {
        let mut pod = scenario_pod(&ns, name, Some(&node), &Scenario::Running);
        pod.metadata.owner_references = Some(vec![serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
            "uid": owner.metadata.uid.clone().context("uid")?, "controller": true}))?]);
        Ok(pod)
    };
    let free = owned("free")?;
    let mut guarded = owned("guarded")?;
    guarded
        .metadata
        .labels
        .get_or_insert_default()
        .insert("app".into(), "guarded".into());
    // What kubectl drain leaves by default, and a pod that opted out: none of them is evicted.
    let bare = scenario_pod(&ns, "bare", Some(&node), &Scenario::Running);
    let mut scratch = owned("scratch")?;
    scratch.spec.as_mut().context("spec")?.volumes = Some(vec![serde_json::from_value(
        json!({"name": "tmp", "emptyDir": {}}),
    )?]);
    let mut opted = owned("opted")?;
    opted
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(kube_healer_api::OPT_OUT_ANNOTATION.into(), "true".into());
    for pod in [free, guarded, bare, scratch, opted] {
        pods.create(&PostParams::default(), &pod).await?;
    }
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "guarded", "namespace": ns},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}}}))?;
    Api::<PodDisruptionBudget>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &pdb)
        .await?;
    let mut agent = scenario_pod(&ns, "agent", None, &Scenario::Running);
    agent.spec.as_mut().context("spec")?.node_selector = Some(BTreeMap::from([(
        "kubernetes.io/hostname".to_string(),
        node.clone(),
    )]));
    let agent_labels = json!({"app": "agent"});
    let mut agent_meta = serde_json::to_value(&agent.metadata)?;
    agent_meta["labels"]["app"] = json!("agent");
    agent_meta.as_object_mut().context("meta")?.remove("name");
    agent_meta.as_object_mut().context("meta")?.remove("namespace");
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "agent", "namespace": ns},
        "spec": {"selector": {"matchLabels": agent_labels}, "template": {"metadata": agent_meta, "spec": agent.spec}}}))?;
    Api::<DaemonSet>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &ds)
        .await?;
    for name in ["free", "guarded", "bare", "scratch", "opted"] {
        wait::pod_phase(&pods, name, "Running", HEAL).await?;
    }
    wait::until("the DaemonSet pod running", HEAL, || async {
        Ok(running_pods(&pods, "agent").await?.into_iter().next())
    })
    .await?;

    let policy = ctx.name("oomdrain");
    create_policy(
        &ctx,
        &policy,
        json!({"target": {"kind": "Node", "selector": {"matchLabels": {OWNER_LABEL: ctx.id}}},
        "conditions": [{"class": "SystemOOM", "for": "1s"}],
        "actions": [{"action": "Drain", "drain": {"timeout": "12s"}}],
        "safety": {"maxUnhealthy": "100%", "maxConcurrent": 1, "rate": {"actions": 5, "per": "1h"}}}),
    )
    .await?;
    node_event(
        &ctx.client,
        &node,
        "SystemOOM",
        "System OOM encountered, victim process: java, pid: 18212",
        3,
    )
    .await?;

    let recs = records(&ctx, &policy, 1).await;
    let recs = match recs {
        Ok(r) => r,
        Err(e) => anyhow::bail!("{e}; operator log:\n{}", op.log_tail(30)),
    };
    let status = recs[0].status.clone().context("status")?;
    let message = status.message.unwrap_or_default();
    ensure!(
        phase_reason(&recs[0]) == (ActionPhase::Failed, "Timeout".into()),
        "{message}"
    );
    ensure!(
        message.contains(&format!("{ns}/guarded"))
            && message.contains("evicted 1 of 2")
            && message.contains("1 DaemonSet")
            && message.contains("stays cordoned"),
        "{message}"
    );
    for (pod, why) in [
        ("bare", "no controller (force: true evicts it)"),
        ("scratch", "emptyDir data (deleteEmptyDirData: true evicts it)"),
        ("opted", "opted out"),
    ] {
        ensure!(
            message.contains(&format!("{why}: {ns}/{pod}")),
            "{pod} not named: {message}"
        );
        let left = pods.get(pod).await?;
        ensure!(left.metadata.deletion_timestamp.is_none(), "{pod} was evicted");
    }
    let n = Api::<Node>::all(ctx.client.clone()).get(&node).await?;
    ensure!(
        n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)
            && n.annotations().get(kube_healer_api::CORDONED_BY_ANNOTATION) == Some(&policy),
        "the node is not cordoned by the policy: {:?}",
        n.spec
    );
    let free_left = pods.get_opt("free").await?;
    ensure!(
        free_left.is_none_or(|p| p.metadata.deletion_timestamp.is_some()),
        "the unprotected pod was not evicted"
    );
    let guarded = pods.get("guarded").await?;
    ensure!(
        guarded.metadata.deletion_timestamp.is_none(),
        "the PDB-protected pod was evicted"
    );
    ensure!(
        !running_pods(&pods, "agent").await?.is_empty(),
        "the DaemonSet pod was evicted"
    );
    Ok(())
}
