//! A policy's own pods-alike thresholds (issue 30 (1)): `safety.podsAlike` says when pods
//! failing alike are one cause for that policy. In one namespace, two workloads' four pods
//! crash alike under a policy asking for 4 pods of 2 workloads: one cause, held, and no pod
//! deleted. In another, two other workloads' four pods crash alike (told differently) under a
//! policy with the operator's thresholds (5 pods of 3 workloads): not a cause for it, each pod
//! its own failure, and all four are healed. That is also the control: a failure beside a
//! cause found for another policy is still healed.

use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, PostParams};
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::{nodes, wait};
use serde_json::json;

use crate::support;
use support::{HEAL, Operator, all_records, create_policy, message, phase_reason, selector};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![test(
        "a_policy_s_own_pods_alike_thresholds_make_two_workloads_failing_alike_one_cause",
        own_thresholds,
    )]
}

/// Two workloads' two pods each (controlled by ConfigMaps: no controller recreates them),
/// crash-looping with `message`, across `nodes`.
async fn crash_alike(
    ctx: &Ctx,
    ns: &str,
    workloads: [&str; 2],
    nodes: &[String],
    message: &str,
) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let owners: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    for w in workloads {
        let owner = owners
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": w}}))?,
            )
            .await?;
        for i in 0..2 {
            let mut pod =
                support::lone_crash_loop(ns, &format!("{w}-{i}"), &nodes[i % nodes.len()], 1, message);
            pod.metadata.owner_references = Some(vec![serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "ConfigMap", "name": w,
                "uid": owner.metadata.uid.clone().context("uid")?, "controller": true}))?]);
            pods.create(&PostParams::default(), &pod).await?;
        }
    }
    Ok(())
}

async fn own_thresholds(ctx: Ctx) -> anyhow::Result<()> {
    let (flight, [f1, f2]) = support::flight::recorder_of(&ctx);
    let _op = Operator::start(
        &ctx.cluster,
        "pods-alike",
        &["--policy-selector", &selector(&ctx), &f1, &f2],
    )
    .await?;
    let names = [ctx.name("a0"), ctx.name("a1")];
    nodes::add_owned_nodes(&ctx.client, &names, &ctx.id, HEAL).await?;
    let (held_ns, healed_ns) = (ctx.namespace("own").await?, ctx.namespace("ops").await?);
    let safety =
        json!({"maxConcurrent": 10, "rate": {"actions": 20, "per": "1m"}, "maxDisruptedPerWorkload": "100%"});
    let own = ctx.name("own");
    let mut own_safety = safety.clone();
    own_safety["podsAlike"] = json!({"minPods": 4, "minWorkloads": 2});
    create_policy(&ctx, &own, json!({"target": {"kind": "Pod", "namespaces": {"include": [held_ns]}},
        "conditions": [{"class": "CrashLoop", "for": "3s"}], "actions": [{"action": "Delete"}], "safety": own_safety}))
    .await?;
    let operator_s = ctx.name("ops");
    create_policy(&ctx, &operator_s, json!({"target": {"kind": "Pod", "namespaces": {"include": [healed_ns]}},
        "conditions": [{"class": "CrashLoop", "for": "3s"}], "actions": [{"action": "Delete"}], "safety": safety}))
    .await?;

    // Each namespace's pods fail alike in words of their own (the shared e2e cluster's other
    // pods are not one cause with them).
    let held_says = "redis: connection refused by cache primary while loading session store";
    let healed_says = "tls: certificate signed by unknown authority for ledger gateway";
    crash_alike(&ctx, &held_ns, ["cart", "pay"], &names, held_says).await?;
    crash_alike(&ctx, &healed_ns, ["mail", "feed"], &names, healed_says).await?;

    // The control: under the operator's thresholds, each pod is its own failure, and healed.
    let healed_pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &healed_ns);
    wait::until(
        "the four pods under the operator's thresholds deleted",
        HEAL,
        || async {
            let left = healed_pods.list(&Default::default()).await?.items;
            Ok(left
                .iter()
                .all(|p| p.metadata.deletion_timestamp.is_some())
                .then_some(()))
        },
    )
    .await?;
    let held = wait::until("the policy's own cause held", HEAL, || async {
        let recs = all_records(&ctx, &own).await?;
        Ok(recs.into_iter().find(|r| r.status.is_some()))
    })
    .await?;
    ensure!(
        phase_reason(&held) == (ActionPhase::Skipped, "Correlated".into())
            && message(&held).contains("4 pods of 2 workloads"),
        "the policy's own thresholds did not make one cause: {:?}: {}",
        phase_reason(&held),
        message(&held)
    );
    // Past their `for` many times over: none of the held pods is deleted, one record.
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    let held_pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &held_ns);
    let items = held_pods.list(&Default::default()).await?.items;
    ensure!(
        items.len() == 4 && items.iter().all(|p| p.metadata.deletion_timestamp.is_none()),
        "a pod of the policy's own cause was removed"
    );
    let recs = all_records(&ctx, &own).await?;
    ensure!(recs.len() == 1, "{} records for one cause of 4 pods", recs.len());
    println!("    held: {}", message(&held));
    let mut live = recs;
    live.extend(all_records(&ctx, &operator_s).await?);
    support::flight::replay_matches_live("pods-alike", &flight, &live, &[]).await
}
