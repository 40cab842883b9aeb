//! Drain on the real cluster: a PodDisruptionBudget respected; DaemonSet, bare, emptyDir and
//! opted-out pods left and named in the record (kubectl drain's defaults); a clean timeout.

use std::collections::BTreeMap;

use anyhow::{Context, ensure};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
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
    vec![test(
        "drain_respects_the_pdb_leaves_what_kubectl_drain_leaves_and_times_out_cleanly",
        drain,
    )]
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
