//! A sick node is the cause of its pods' failures (issue 30 (d)). Four workloads each run one
//! pod fine on one node and have one stuck in ContainerCreating on another: the node is the
//! cause, its pods are held (the record names the node), and none is deleted. The node is
//! reported to node policies as NodeBlackHole long before its pods count as unstarted (5
//! minutes): a NodeBlackHole policy cordons it, and no other node. The control: a lone
//! crash-looping pod on a third node is healed meanwhile.

use std::time::Duration;

use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, PostParams};
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::{Scenario, nodes, scenario_pod, wait};
use serde_json::json;

use crate::support;
use support::{HEAL, Operator, all_records, create_policy, message, phase_reason, selector};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![test(
        "pods_of_four_workloads_stuck_on_one_node_while_their_siblings_run_are_the_node_s",
        sick_node,
    )]
}

const WORKLOADS: [&str; 4] = ["cart", "pay", "search", "auth"];

/// A pod of `workload` (a controller no controller-manager loop runs: nothing recreates or
/// adopts it) on `node`, as `scenario` says.
fn owned(ns: &str, workload: &ConfigMap, name: &str, node: &str, scenario: &Scenario) -> anyhow::Result<Pod> {
    let mut pod = scenario_pod(ns, name, Some(node), scenario);
    pod.metadata.owner_references = Some(vec![serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "name": workload.metadata.name.clone().context("name")?,
        "uid": workload.metadata.uid.clone().context("uid")?, "controller": true}))?]);
    Ok(pod)
}

async fn sick_node(ctx: Ctx) -> anyhow::Result<()> {
    let (flight, [f1, f2]) = support::flight::recorder_of(&ctx);
    let _op = Operator::start(
        &ctx.cluster,
        "sick-node",
        &["--policy-selector", &selector(&ctx), &f1, &f2],
    )
    .await?;
    let (fine, sick, lone_node) = (ctx.name("fine"), ctx.name("sick"), ctx.name("lone"));
    nodes::add_owned_nodes(
        &ctx.client,
        &[fine.clone(), sick.clone(), lone_node.clone()],
        &ctx.id,
        HEAL,
    )
    .await?;
    let ns = ctx.namespace("sick").await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let safety = json!({"maxConcurrent": 5, "rate": {"actions": 10, "per": "1m"}});
    let stuck_policy = ctx.name("stuck");
    create_policy(&ctx, &stuck_policy, json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
        "conditions": [{"class": "StuckContainerCreating", "for": "3s"}], "actions": [{"action": "Delete"}], "safety": safety}))
    .await?;
    let node_policy = ctx.name("node");
    create_policy(
        &ctx,
        &node_policy,
        json!({"target": {"kind": "Node", "selector": {"matchLabels": {nodes::OWNER_LABEL: ctx.id}}},
        "conditions": [{"class": "NodeBlackHole", "for": "3s"}], "actions": [{"action": "Cordon"}],
        // One of the test's three nodes: past the default 30%.
        "safety": {"maxUnhealthy": 1}}),
    )
    .await?;
    let lone_policy = ctx.name("lone");
    create_policy(&ctx, &lone_policy, json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
        "conditions": [{"class": "CrashLoop", "for": "3s"}], "actions": [{"action": "Delete"}], "safety": safety}))
    .await?;

    // Each workload's pod runs fine on one node...
    let owners: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let mut workloads = Vec::new();
    for w in WORKLOADS {
        let owner = owners
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": w}}))?,
            )
            .await?;
        pods.create(
            &PostParams::default(),
            &owned(&ns, &owner, &format!("{w}-fine"), &fine, &Scenario::Running)?,
        )
        .await?;
        workloads.push(owner);
    }
    for w in WORKLOADS {
        wait::pod_phase(&pods, &format!("{w}-fine"), "Running", HEAL).await?;
    }
    // ... and another never gets past ContainerCreating on the sick node.
    let creating = Scenario::ContainerWaiting {
        reason: "ContainerCreating".into(),
        message: String::new(),
        restarts: 0,
    };
    for (w, owner) in WORKLOADS.iter().zip(&workloads) {
        pods.create(
            &PostParams::default(),
            &owned(&ns, owner, &format!("{w}-stuck"), &sick, &creating)?,
        )
        .await?;
    }
    let lone = Scenario::CrashLoop {
        restarts: 6,
        exit_code: 3,
        message: "panic: assignment to entry in nil map".into(),
    };
    pods.create(
        &PostParams::default(),
        &scenario_pod(&ns, "lonely", Some(&lone_node), &lone),
    )
    .await?;

    // The control: the lone crash loop is healed.
    wait::until("the lonely pod deleted", HEAL, || async {
        Ok(pods.get_opt("lonely").await?.is_none().then_some(()))
    })
    .await?;
    let held = wait::until("the sick node's pods held", HEAL, || async {
        let recs = all_records(&ctx, &stuck_policy).await?;
        Ok(recs.into_iter().find(|r| r.status.is_some()))
    })
    .await?;
    ensure!(
        phase_reason(&held) == (ActionPhase::Skipped, "Correlated".into()) && message(&held).contains(&sick),
        "the sick node's pods were not held as the node's: {:?}: {}",
        phase_reason(&held),
        message(&held)
    );
    // Past their `for` long since: no stuck pod is deleted.
    tokio::time::sleep(Duration::from_secs(10)).await;
    for w in WORKLOADS {
        let stuck = pods.get_opt(&format!("{w}-stuck")).await?;
        ensure!(
            stuck.is_some_and(|p| p.metadata.deletion_timestamp.is_none()),
            "{w}-stuck was removed: its node is the cause"
        );
    }
    let recs = all_records(&ctx, &stuck_policy).await?;
    ensure!(
        recs.len() == 1,
        "{} records for one sick node's 4 pods",
        recs.len()
    );
    println!("    held: {}", message(&held));
    // Node policies learn of it: the sick node is cordoned, the others are not.
    let all_nodes: Api<Node> = Api::all(ctx.client.clone());
    let cordoned = |n: &Node| n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true);
    wait::until("the sick node cordoned", HEAL, || async {
        Ok(all_nodes.get(&sick).await.ok().filter(cordoned).map(|_| ()))
    })
    .await?;
    let node_recs = all_records(&ctx, &node_policy).await?;
    ensure!(
        node_recs.len() == 1
            && node_recs[0].spec.target.name == sick
            && node_recs[0].spec.class == kube_healer_api::FailureClass::NodeBlackHole,
        "one NodeBlackHole record for the sick node, not {:?}",
        node_recs
            .iter()
            .map(|r| (&r.spec.target.name, r.spec.class))
            .collect::<Vec<_>>()
    );
    for other in [&fine, &lone_node] {
        ensure!(!cordoned(&all_nodes.get(other).await?), "{other} was cordoned");
    }
    println!("    node policy: {}", message(&node_recs[0]));
    let mut live = all_records(&ctx, &stuck_policy).await?;
    live.extend(all_records(&ctx, &lone_policy).await?);
    live.extend(node_recs);
    support::flight::replay_matches_live("sick-node", &flight, &live, &[]).await
}
