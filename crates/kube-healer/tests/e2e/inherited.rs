//! What a policy did outlives the policy (issue 32 (a), (h)). Two nodes reporting a problem
//! condition (node-problem-detector's, the node still Ready) are cordoned, each by a policy of
//! its own; then:
//! - (a) the first policy is deleted while its node still fails: the cordon stays (a Ready node
//!   is no evidence that a failure it still shows is over), and is lifted once the node shows
//!   no failure;
//! - (h) the second is deleted, and a person releases the node with `kube-healer release`: the
//!   cordon comes off at once, recorded (Released, with the reason), and counts as lifted by a
//!   person;
//! - (b) the third is edited to look for another condition, its node still failing as it was:
//!   the edited policy no longer judges the cordon its earlier spec made, which stays until the
//!   node shows no failure.

use std::time::Duration;

use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube_healer_api::{
    CORDON_LIFTED_ANNOTATION, CORDONED_BY_ANNOTATION, HealingAction, HealingPolicy, POLICY_LABEL,
};
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::wait;
use serde_json::json;

use crate::support;
use support::{
    HEAL, Operator, PostedNodes, create_policy, kernel_deadlock, message, now_rfc3339, phase_reason, selector,
};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![test(
        "a_deleted_or_edited_policy_s_cordon_stays_until_the_node_recovers_or_a_person_releases_it",
        inherited,
    )]
}

/// A Ready node's conditions with node-problem-detector's `condition`, True (`on`) or False.
fn reporting(condition: &str, on: bool) -> serde_json::Value {
    let mut conditions = kernel_deadlock(on, &now_rfc3339(if on { 0 } else { -3600 }));
    conditions[1]["type"] = json!(condition);
    conditions
}

fn cordoned_by(n: &Node) -> Option<String> {
    let held = n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
    held.then(|| {
        n.metadata
            .annotations
            .as_ref()?
            .get(CORDONED_BY_ANNOTATION)
            .cloned()
    })
    .flatten()
}

async fn cordoned(api: &Api<Node>, node: &str, policy: &str) -> anyhow::Result<()> {
    wait::until(&format!("{policy}'s cordon on {node}"), HEAL, || async {
        Ok((cordoned_by(&api.get(node).await?).as_deref() == Some(policy)).then_some(()))
    })
    .await
    .map_err(Into::into)
}

async fn uncordoned(api: &Api<Node>, node: &str) -> anyhow::Result<Node> {
    wait::until(&format!("{node} uncordoned"), HEAL, || async {
        let n = api.get(node).await?;
        Ok((n.spec.as_ref().and_then(|s| s.unschedulable) != Some(true)).then_some(n))
    })
    .await
    .map_err(Into::into)
}

/// Ten seconds in which the node must stay cordoned by `policy`.
async fn stays(api: &Api<Node>, node: &str, policy: &str, why: &str) -> anyhow::Result<()> {
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        ensure!(
            cordoned_by(&api.get(node).await?).as_deref() == Some(policy),
            "{node}: {why}"
        );
    }
    Ok(())
}

async fn inherited(ctx: Ctx) -> anyhow::Result<()> {
    let _op = Operator::start(&ctx.cluster, "inherited", &["--policy-selector", &selector(&ctx)]).await?;
    let api: Api<Node> = Api::all(ctx.client.clone());
    let policies: Api<HealingPolicy> = Api::all(ctx.client.clone());
    // Each reports a condition of its own: nodes reporting one condition together may be held
    // as one cause (the detector, or a dependency they share).
    let cases = [
        ("deleted", "KernelDeadlock"),
        ("released", "ReadonlyFilesystem"),
        ("edited", "FrequentContainerdRestart"),
    ];
    let mut posted = Vec::new();
    let (mut nodes, mut names) = (Vec::new(), Vec::new());
    for (case, condition) in cases {
        let node = ctx.name(case);
        let labels = json!({"kube-healer.test/owner": ctx.id, "kube-healer.test/case": case});
        posted.push(
            PostedNodes::create(
                &ctx.client,
                std::slice::from_ref(&node),
                labels,
                reporting(condition, false),
            )
            .await?,
        );
        let policy = ctx.name(&format!("p-{case}"));
        create_policy(&ctx, &policy, json!({"target": {"kind": "Node", "selector": {"matchLabels": {"kube-healer.test/case": case, "kube-healer.test/owner": ctx.id}}},
            "conditions": [{"class": "NodeCondition", "conditionType": condition, "for": "1s"}],
            "actions": [{"action": "Cordon"}], "safety": {"maxUnhealthy": "100%", "maxConcurrent": 5, "rate": {"actions": 10, "per": "1m"}}}))
        .await?;
        // One at a time: nodes failing together would be a storm of their own.
        posted
            .last()
            .context("posted")?
            .set(&node, reporting(condition, true));
        if let Err(e) = cordoned(&api, &node, &policy).await {
            let records: Api<HealingAction> = Api::all(ctx.client.clone());
            let said: Vec<String> = records
                .list(&ListParams::default().labels(&format!("{POLICY_LABEL}={policy}")))
                .await?
                .items
                .iter()
                .map(|r| format!("{:?}: {}", phase_reason(r), message(r)))
                .collect();
            anyhow::bail!("{e}: {said:?}");
        }
        nodes.push(node);
        names.push(policy);
    }

    // (a) The policy deleted, its node still failing: the cordon stays; it recovers: lifted.
    policies.delete(&names[0], &Default::default()).await?;
    stays(
        &api,
        &nodes[0],
        &names[0],
        "the deleted policy's cordon was lifted while its node still failed",
    )
    .await?;
    posted[0].set(&nodes[0], reporting("KernelDeadlock", false));
    uncordoned(&api, &nodes[0]).await?;

    // (h) The second policy deleted, its node still deadlocked: a person releases it.
    policies.delete(&names[1], &Default::default()).await?;
    stays(
        &api,
        &nodes[1],
        &names[1],
        "the deleted policy's cordon was lifted while its node still failed",
    )
    .await?;
    let reason = "the deadlock is a known kernel bug, patched tonight";
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kube-healer"))
        .args([
            "release",
            &format!("node/{}", nodes[1]),
            "--reason",
            reason,
            "--kubeconfig",
        ])
        .arg(ctx.cluster.kubeconfig_path())
        .output()?;
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "release failed: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let released = uncordoned(&api, &nodes[1]).await?;
    let lifted = released
        .metadata
        .annotations
        .unwrap_or_default()
        .get(CORDON_LIFTED_ANNOTATION)
        .cloned();
    ensure!(
        lifted
            .as_deref()
            .is_some_and(|l| l.starts_with(&format!("{}=", names[1]))),
        "the release counts as lifted by a person: {lifted:?}"
    );
    let records: Api<HealingAction> = Api::all(ctx.client.clone());
    let record = records
        .list(&ListParams::default().labels(&format!("{POLICY_LABEL}={}", names[1])))
        .await?
        .items
        .into_iter()
        .find(|r| phase_reason(r).1 == "Released")
        .context("no Released record")?;
    ensure!(message(&record).contains(reason), "{}", message(&record));
    println!(
        "    a deleted policy's cordon held while its node failed, lifted on recovery; released by hand: {said}"
    );
    edited(&ctx, &api, &posted[2], &nodes[2], &names[2]).await
}

/// (b) The policy edited so that it no longer matches, its node still failing as its earlier
/// spec saw: the cordon stays; the node recovers: lifted.
async fn edited(
    ctx: &Ctx,
    api: &Api<Node>,
    posted: &PostedNodes,
    node: &str,
    policy: &str,
) -> anyhow::Result<()> {
    let policies: Api<HealingPolicy> = Api::all(ctx.client.clone());
    let patch = json!({"spec": {"conditions": [{"class": "NodeCondition", "conditionType": "CorruptDockerOverlay2", "for": "1s"}]}});
    policies
        .patch(policy, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    stays(
        api,
        node,
        policy,
        "an edited policy's cordon was lifted while its node still failed as the earlier spec saw",
    )
    .await?;
    posted.set(node, reporting("FrequentContainerdRestart", false));
    uncordoned(api, node).await?;
    println!("    an edited policy's cordon held while its node failed, lifted on recovery");
    Ok(())
}
