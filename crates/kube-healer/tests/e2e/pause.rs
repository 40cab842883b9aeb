//! The operator-wide pause by annotation: while the namespace kube-healer runs in carries
//! healing.kubehealer.io/pause, a due decision is recorded Skipped (Paused) with the annotation's
//! reason and nothing is changed; once a person removes it, the held target is healed without
//! any change of its own.

use anyhow::ensure;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, Patch, PatchParams};
use kube_healer_api::PAUSE_ANNOTATION;
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::{nodes, wait};
use serde_json::json;

use crate::support;
use support::{HEAL, Operator, delete_evicted, evicted_pod, message, phase_reason, records, selector};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![test(
        "the_pause_annotation_on_its_namespace_holds_every_action_until_removed",
        pause,
    )]
}

async fn pause(ctx: Ctx) -> anyhow::Result<()> {
    // The operator's own namespace is the test's, so that no other test's operator pauses.
    let own = ctx.namespace("healer").await?;
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let annotate = |why: Option<&str>| json!({"metadata": {"annotations": {PAUSE_ANNOTATION: why}}});
    namespaces
        .patch(
            &own,
            &PatchParams::default(),
            &Patch::Merge(annotate(Some("cluster upgrade to 1.37"))),
        )
        .await?;
    let selector = selector(&ctx);
    let _op = Operator::start(
        &ctx.cluster,
        "pause",
        &["--policy-selector", &selector, "--namespace", &own],
    )
    .await?;
    let node = ctx.name("n");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("work").await?;
    evicted_pod(&ctx, &ns, "left", &node).await?;
    let policy = ctx.name("leftovers");
    delete_evicted(&ctx, &policy, &ns, json!({"rate": {"actions": 10, "per": "1m"}})).await?;

    let held = records(&ctx, &policy, 1).await?;
    let (phase, reason) = phase_reason(&held[0]);
    let message = message(&held[0]);
    ensure!(
        phase == ActionPhase::Skipped && reason == "Paused" && message.contains("cluster upgrade to 1.37"),
        "{phase:?}/{reason}: {message}"
    );
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    ensure!(
        pods.get_opt("left").await?.is_some(),
        "the pod was deleted while paused"
    );

    namespaces
        .patch(&own, &PatchParams::default(), &Patch::Merge(annotate(None)))
        .await?;
    wait::until("the held pod deleted once the pause is removed", HEAL, || async {
        Ok(pods.get_opt("left").await?.is_none().then_some(()))
    })
    .await?;
    println!("    paused: {message}; healed once the annotation was removed");
    Ok(())
}
