//! Replace has the node's machine replaced by its owner, found on the node itself, with CRDs
//! shaped like Karpenter's NodeClaim and Cluster API's Machine. A Karpenter node (owned by its
//! NodeClaim) has the NodeClaim deleted, and goes (the garbage collector removes it, as
//! Karpenter's finalizer would after its drain). A Cluster API node (its Machine in the
//! cluster.x-k8s.io/machine and cluster-namespace annotations) has its Machine marked
//! cluster.x-k8s.io/remediate-machine; the test, as the MachineSet, deletes the Machine and the
//! node; meanwhile the node is held out of service (replaced-by). A node nobody owns is not
//! touched, and its record says why.

use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube_healer_api::REPLACED_BY_ANNOTATION;
use kube_healer_api::record::ActionPhase;
use kube_healer_api::replace::{
    MACHINE_ANNOTATION, MACHINE_NAMESPACE_ANNOTATION, REMEDIATE_MACHINE_ANNOTATION,
};
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::wait;
use serde_json::json;

use crate::support;
use support::{
    HEAL, Operator, PostedNodes, create_policy, kernel_deadlock, now_rfc3339, phase_reason, records,
    selector, shaped_crd,
};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![test(
        "replace_hands_the_machine_to_karpenter_or_cluster_api",
        replace,
    )]
}

async fn replace(ctx: Ctx) -> anyhow::Result<()> {
    let crds = [
        shaped_crd("karpenter.sh", "v1", "NodeClaim", "nodeclaims", "Cluster")?,
        shaped_crd("cluster.x-k8s.io", "v1beta1", "Machine", "machines", "Namespaced")?,
    ];
    kube_healer_testenv::crds::install(&ctx.client, &crds).await?;
    let ns = ctx.namespace("capi").await?;
    let claims: Api<DynamicObject> = Api::all_with(
        ctx.client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("karpenter.sh", "v1", "NodeClaim"),
            "nodeclaims",
        ),
    );
    let machines: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        &ns,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("cluster.x-k8s.io", "v1beta1", "Machine"),
            "machines",
        ),
    );
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let (claim_name, machine_name) = (ctx.name("claim"), ctx.name("machine"));
    let claim: DynamicObject = serde_json::from_value(
        json!({"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
        "metadata": {"name": claim_name}, "spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"}}}),
    )?;
    let claim = wait::until("the NodeClaim CRD to serve", HEAL, || async {
        Ok(claims.create(&PostParams::default(), &claim).await.ok())
    })
    .await?;
    let machine: DynamicObject = serde_json::from_value(
        json!({"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Machine",
        "metadata": {"name": machine_name, "namespace": ns}, "spec": {"clusterName": "prod"}}),
    )?;
    wait::until("the Machine CRD to serve", HEAL, || async {
        Ok(machines.create(&PostParams::default(), &machine).await.ok())
    })
    .await?;

    let args = ["--policy-selector", &selector(&ctx)];
    let op = Operator::start(&ctx.cluster, "replace", &args).await?;
    let labels = |role: &str| json!({"kube-healer.test/owner": ctx.id, "kube-healer.test/role": role});
    let mut posted = Vec::new();
    let mut names = Vec::new();
    for role in ["karpenter", "capi", "unowned"] {
        let name = ctx.name(role);
        let clear = kernel_deadlock(false, &now_rfc3339(-3600));
        posted
            .push(PostedNodes::create(&ctx.client, std::slice::from_ref(&name), labels(role), clear).await?);
        let policy = ctx.name(&format!("replace-{role}"));
        create_policy(
            &ctx,
            &policy,
            json!({"target": {"kind": "Node", "selector": {"matchLabels": labels(role)}},
            "conditions": [{"class": "NodeCondition", "conditionType": "KernelDeadlock", "for": "1s"}],
            "actions": [{"action": "Replace", "replace": {"timeout": "2m"}}],
            "safety": {"maxUnhealthy": "100%", "maxConcurrent": 1, "rate": {"actions": 5, "per": "1m"}}}),
        )
        .await?;
        names.push((name, policy));
    }
    // Owned as Karpenter and Cluster API own their nodes.
    let owner = json!({"metadata": {"ownerReferences": [{"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
        "name": claim_name, "uid": claim.metadata.uid, "blockOwnerDeletion": true}]}});
    nodes
        .patch(&names[0].0, &PatchParams::default(), &Patch::Merge(&owner))
        .await?;
    let annotations = json!({"metadata": {"annotations": {MACHINE_ANNOTATION: machine_name,
        MACHINE_NAMESPACE_ANNOTATION: ns, "cluster.x-k8s.io/cluster-name": "prod"}}});
    nodes
        .patch(&names[1].0, &PatchParams::default(), &Patch::Merge(&annotations))
        .await?;

    // Karpenter: the NodeClaim deleted; the node goes with it.
    posted[0].set(&names[0].0, kernel_deadlock(true, &now_rfc3339(0)));
    let recs = match records(&ctx, &names[0].1, 1).await {
        Ok(r) => r,
        Err(e) => anyhow::bail!("{e}; operator log:\n{}", op.log_tail(30)),
    };
    let karpenter = recs[0]
        .status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    ensure!(
        phase_reason(&recs[0]).0 == ActionPhase::Succeeded
            && karpenter.contains(&format!("deleted NodeClaim {claim_name}"))
            && karpenter.contains("gone after"),
        "{karpenter}"
    );
    ensure!(
        claims.get_opt(&claim_name).await?.is_none(),
        "the NodeClaim is gone"
    );

    // Cluster API: the Machine marked for remediation; its owner (here the test) replaces it.
    posted[1].set(&names[1].0, kernel_deadlock(true, &now_rfc3339(0)));
    wait::until("the Machine marked remediate-machine", HEAL, || async {
        let m = machines.get(&machine_name).await?;
        Ok(m.metadata
            .annotations
            .unwrap_or_default()
            .contains_key(REMEDIATE_MACHINE_ANNOTATION)
            .then_some(()))
    })
    .await?;
    let held = nodes
        .get(&names[1].0)
        .await?
        .metadata
        .annotations
        .unwrap_or_default();
    ensure!(
        held.get(REPLACED_BY_ANNOTATION) == Some(&names[1].1),
        "held out of service until it is gone: {held:?}"
    );
    machines.delete(&machine_name, &DeleteParams::default()).await?;
    nodes.delete(&names[1].0, &DeleteParams::default()).await?;
    let recs = records(&ctx, &names[1].1, 1).await?;
    let capi = recs[0]
        .status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    ensure!(
        phase_reason(&recs[0]).0 == ActionPhase::Succeeded
            && capi.contains(&format!(
                "marked Machine {ns}/{machine_name} {REMEDIATE_MACHINE_ANNOTATION}"
            )),
        "{capi}"
    );

    // Nobody owns it: nothing is touched.
    posted[2].set(&names[2].0, kernel_deadlock(true, &now_rfc3339(0)));
    let recs = records(&ctx, &names[2].1, 1).await?;
    let (phase, reason) = phase_reason(&recs[0]);
    let unowned = recs[0]
        .status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    ensure!(
        phase == ActionPhase::Failed && reason == "Unsafe" && unowned.contains("nothing owns its machine"),
        "{phase:?} {reason} {unowned}"
    );
    nodes.get(&names[2].0).await.context("the unowned node stays")?;
    println!("    karpenter: {karpenter}\n    cluster api: {capi}\n    unowned: {unowned}");
    Ok(())
}
