//! Remediate hands a node to an external remediator through NodeHealthCheck's contract, here
//! with CRDs shaped like Self Node Remediation's (SelfNodeRemediationTemplate and
//! SelfNodeRemediation, namespaced, conditions in the status) and the test playing the
//! remediator. A node whose kernel deadlocks gets a SelfNodeRemediation named after it, made
//! from the template's spec.template.spec with NodeHealthCheck's annotations; it is held out of
//! service (remediated-by) while it lasts; the remediator reports Processing, then Succeeded,
//! and the record follows; the node recovers and the resource is deleted. A second node whose
//! remediation never finishes is marked timed out (remediation.medik8s.io/nhc-timed-out) and its
//! record fails.

use std::time::Duration;

use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube_healer_api::record::ActionPhase;
use kube_healer_api::remediate::{NODE_NAME_ANNOTATION, TEMPLATE_NAME_ANNOTATION, TIMED_OUT_ANNOTATION};
use kube_healer_api::{NODE_LABEL, REMEDIATED_BY_ANNOTATION};
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::wait;
use serde_json::json;

use crate::support;
use support::{
    HEAL, Operator, PostedNodes, create_policy, kernel_deadlock, now_rfc3339, phase_reason, records, selector,
};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![test(
        "remediate_hands_the_node_to_a_remediator_follows_it_and_cleans_up",
        remediate,
    )]
}

pub const GROUP: &str = "self-node-remediation.medik8s.io";

/// A namespaced CRD of `kind` in the Self Node Remediation group, with a status subresource.
fn crd(kind: &str, plural: &str) -> anyhow::Result<CustomResourceDefinition> {
    support::shaped_crd(GROUP, "v1alpha1", kind, plural, "Namespaced")
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1alpha1", kind), plural)
}

/// The remediator's report: the conditions Self Node Remediation sets, on the status.
async fn report(
    api: &Api<DynamicObject>,
    name: &str,
    processing: &str,
    succeeded: &str,
    reason: &str,
) -> anyhow::Result<()> {
    let now = now_rfc3339(0);
    let status = json!({"status": {"conditions": [
        {"type": "Processing", "status": processing, "reason": reason, "message": "", "lastTransitionTime": now},
        {"type": "Succeeded", "status": succeeded, "reason": reason, "message": "", "lastTransitionTime": now}]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    Ok(())
}

/// The SelfNodeRemediation kube-healer made for `node`, once there.
async fn made_for(api: &Api<DynamicObject>, node: &str) -> anyhow::Result<DynamicObject> {
    let lp = ListParams::default().labels(&format!("{NODE_LABEL}={node}"));
    wait::until(&format!("a SelfNodeRemediation for {node}"), HEAL, || async {
        Ok(api.list(&lp).await.ok().and_then(|l| l.items.into_iter().next()))
    })
    .await
    .map_err(Into::into)
}

async fn remediate(ctx: Ctx) -> anyhow::Result<()> {
    let crds = [
        crd("SelfNodeRemediationTemplate", "selfnoderemediationtemplates")?,
        crd("SelfNodeRemediation", "selfnoderemediations")?,
    ];
    kube_healer_testenv::crds::install(&ctx.client, &crds).await?;
    let ns = ctx.namespace("snr").await?;
    let templates: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        &ns,
        &resource("SelfNodeRemediationTemplate", "selfnoderemediationtemplates"),
    );
    let snrs: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        &ns,
        &resource("SelfNodeRemediation", "selfnoderemediations"),
    );
    let template: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{GROUP}/v1alpha1"), "kind": "SelfNodeRemediationTemplate",
        "metadata": {"name": "automatic", "namespace": ns},
        "spec": {"template": {"spec": {"remediationStrategy": "Automatic"}}}}))?;
    wait::until("the template CRD to serve", HEAL, || async {
        Ok(templates.create(&PostParams::default(), &template).await.ok())
    })
    .await?;

    let args = ["--policy-selector", &selector(&ctx)];
    let op = Operator::start(&ctx.cluster, "remediate", &args).await?;
    let (healed, stuck) = (ctx.name("healed"), ctx.name("stuck"));
    let labels = |role: &str| json!({"kube-healer.test/owner": ctx.id, "kube-healer.test/role": role});
    let mut posted = Vec::new();
    for (node, role) in [(&healed, "healed"), (&stuck, "stuck")] {
        let clear = kernel_deadlock(false, &now_rfc3339(-3600));
        posted.push(PostedNodes::create(&ctx.client, std::slice::from_ref(node), labels(role), clear).await?);
    }
    let template_ref = json!({"apiVersion": format!("{GROUP}/v1alpha1"), "kind": "SelfNodeRemediationTemplate",
        "name": "automatic", "namespace": ns});
    let policy = |role: &str, timeout: &str| {
        json!({"target": {"kind": "Node", "selector": {"matchLabels": labels(role)}},
            "conditions": [{"class": "NodeCondition", "conditionType": "KernelDeadlock", "for": "1s"}],
            "actions": [{"action": "Remediate", "remediate": {"template": template_ref, "timeout": timeout}}],
            "safety": {"maxUnhealthy": "100%", "maxConcurrent": 2, "rate": {"actions": 5, "per": "1m"}}})
    };
    let (p_healed, p_stuck) = (ctx.name("reboot"), ctx.name("reboot-slow"));
    create_policy(&ctx, &p_healed, policy("healed", "2m")).await?;
    create_policy(&ctx, &p_stuck, policy("stuck", "8s")).await?;
    // One node at a time: with the other tests' nodes, never 3 with one condition together (a
    // correlated cause, which would hold them all).
    posted[0].set(&healed, kernel_deadlock(true, &now_rfc3339(0)));

    // Handed over as NodeHealthCheck would: named after the node, the template's spec, its
    // annotations; the node held out of service while it lasts.
    let snr = made_for(&snrs, &healed).await?;
    let name = snr.metadata.name.clone().context("a name")?;
    let annotations = snr.metadata.annotations.clone().unwrap_or_default();
    ensure!(
        name == healed
            && snr.data["spec"] == json!({"remediationStrategy": "Automatic"})
            && annotations.get(NODE_NAME_ANNOTATION) == Some(&healed)
            && annotations.get(TEMPLATE_NAME_ANNOTATION).map(String::as_str) == Some("automatic"),
        "{snr:?}"
    );
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let held = nodes.get(&healed).await?.metadata.annotations.unwrap_or_default();
    ensure!(
        held.get(REMEDIATED_BY_ANNOTATION)
            == Some(&format!("{p_healed}={GROUP}/v1alpha1/SelfNodeRemediation/{ns}")),
        "the node names its remediation: {held:?}"
    );
    // The remediator at work, then done; the node recovered.
    report(&snrs, &name, "True", "Unknown", "RemediationStarted").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    report(&snrs, &name, "False", "True", "RemediationFinishedSuccessfully").await?;
    posted[0].set(&healed, kernel_deadlock(false, &now_rfc3339(0)));
    let recs = match records(&ctx, &p_healed, 1).await {
        Ok(r) => r,
        Err(e) => anyhow::bail!("{e}; operator log:\n{}", op.log_tail(30)),
    };
    let message = recs[0]
        .status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    ensure!(
        phase_reason(&recs[0]).0 == ActionPhase::Succeeded
            && message.contains("succeeded (RemediationFinishedSuccessfully)"),
        "{message}"
    );
    // Recovered: past the debounce the resource is deleted and the node no longer held.
    wait::until("the remediation deleted and the node let go", HEAL, || async {
        let gone = snrs.get_opt(&name).await?.is_none();
        let node = nodes.get(&healed).await?;
        let free = !node
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key(REMEDIATED_BY_ANNOTATION);
        Ok((gone && free).then_some(()))
    })
    .await?;

    // The remediation that never finishes: timed out, marked so, the record failed.
    posted[1].set(&stuck, kernel_deadlock(true, &now_rfc3339(0)));
    let slow = made_for(&snrs, &stuck).await?;
    report(
        &snrs,
        &slow.metadata.name.clone().unwrap_or_default(),
        "True",
        "Unknown",
        "RemediationStarted",
    )
    .await?;
    let recs = records(&ctx, &p_stuck, 1).await?;
    let (phase, reason) = phase_reason(&recs[0]);
    ensure!(
        phase == ActionPhase::Failed && reason == "Timeout",
        "{:?}",
        recs[0].status
    );
    let marked = snrs.get(&stuck).await?.metadata.annotations.unwrap_or_default();
    ensure!(
        marked.contains_key(TIMED_OUT_ANNOTATION),
        "marked timed out: {marked:?}"
    );
    println!(
        "    {healed}: {message}; {stuck}: {:?}",
        recs[0].status.as_ref().and_then(|s| s.message.clone())
    );
    drop(posted);
    Ok(())
}
