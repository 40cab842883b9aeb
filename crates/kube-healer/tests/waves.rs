//! The storm of the mission, as a new user would meet it: 10 nodes and a 20-replica Deployment,
//! three policies written from the README (NodeFlapping -> Cordon, NodeUnreachable -> Cordon,
//! NodeLost -> Delete), and 6 of the 10 nodes losing their heartbeats 4 s apart, recovering, losing
//! them again and recovering (a slow etcd delaying every kubelet's status). Nothing may be
//! cordoned and no pod deleted, during the storm or after it, and each held target is recorded
//! once per policy and wave. (Before the storm guard covered every node family, and before a
//! storm's transitions stopped counting as flapping, all 6 nodes were cordoned and 14 pods
//! deleted.) Its own cluster: correlation counts every node of the cluster.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, PostParams};
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::harness::{Ctx, test};
use kube_healer_testenv::nodes::OWNER_LABEL;
use kube_healer_testenv::{ClusterOptions, Scenario, nodes, scenario_pod, wait};
use serde_json::json;
use support::{HEAL, Operator, create_policy, phase_reason, records, selector};

fn main() -> std::process::ExitCode {
    kube_healer_testenv::harness::run(
        ClusterOptions::default(),
        vec![test(
            "two_staggered_waves_of_lost_heartbeats_cordon_nothing_and_delete_nothing",
            waves,
        )],
    )
}

/// Polls the cordons while `until` has not come: fails on the first cordoned node.
async fn never_cordoned(api: &Api<Node>, names: &[String], for_: Duration) -> anyhow::Result<()> {
    let end = std::time::Instant::now() + for_;
    while std::time::Instant::now() < end {
        for name in names {
            let node = kube_healer_testenv::wait::retried(|| api.get(name)).await?;
            ensure!(
                node.spec.and_then(|s| s.unschedulable) != Some(true),
                "{name} was cordoned"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// One wave: the nodes lose their heartbeats 4 s apart, are all marked Unknown, then recover 4 s
/// apart and are all Ready again; the cordons are watched throughout.
async fn wave(ctx: &Ctx, api: &Api<Node>, names: &[String], down: &[String]) -> anyhow::Result<()> {
    for name in down {
        nodes::stop_heartbeats(&ctx.client, name).await?;
        never_cordoned(api, names, Duration::from_secs(4)).await?;
    }
    for name in down {
        nodes::wait_node_ready_status(&ctx.client, name, "Unknown", Duration::from_secs(90)).await?;
    }
    never_cordoned(api, names, Duration::from_secs(5)).await?;
    for name in down {
        nodes::resume_heartbeats(&ctx.client, name).await?;
        never_cordoned(api, names, Duration::from_secs(4)).await?;
    }
    for name in down {
        nodes::wait_node_ready_status(&ctx.client, name, "True", Duration::from_secs(90)).await?;
    }
    Ok(())
}

async fn waves(ctx: Ctx) -> anyhow::Result<()> {
    let (flight, [f1, f2]) = support::flight::recorder(&ctx.cluster);
    let op = Operator::start(
        &ctx.cluster,
        "waves",
        &["--policy-selector", &selector(&ctx), &f1, &f2],
    )
    .await?;
    let names: Vec<String> = (0..10).map(|i| ctx.name(&format!("w{i}"))).collect();
    nodes::add_owned_nodes(&ctx.client, &names, &ctx.id, HEAL).await?;
    let ns = ctx.namespace("shop").await?;
    let template = scenario_pod(&ns, "web", None, &Scenario::Running);
    let mut meta = serde_json::to_value(&template.metadata)?;
    meta["labels"]["app"] = json!("web");
    for key in ["name", "namespace"] {
        meta.as_object_mut().context("meta")?.remove(key);
    }
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"replicas": 20, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": meta, "spec": template.spec}}}))?;
    Api::<Deployment>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &deployment)
        .await?;
    wait::until("20 replicas available", HEAL, || async {
        let d = Api::<Deployment>::namespaced(ctx.client.clone(), &ns)
            .get("web")
            .await?;
        let ready = d.status.and_then(|s| s.available_replicas).unwrap_or(0);
        Ok((ready == 20).then_some(()))
    })
    .await?;

    let selects = json!({"matchLabels": {OWNER_LABEL: ctx.id}});
    let (flapping, unreachable, lost) = (ctx.name("flapping"), ctx.name("unreachable"), ctx.name("lost"));
    create_policy(&ctx, &flapping, json!({"target": {"kind": "Node", "selector": selects},
        "conditions": [{"class": "NodeFlapping", "transitions": 3, "window": "1h"}], "actions": [{"action": "Cordon"}],
        "safety": {"maxUnhealthy": "20%", "cooldown": "1h", "maxConcurrent": 2, "rate": {"actions": 10, "per": "10m"}}}))
    .await?;
    create_policy(
        &ctx,
        &unreachable,
        json!({"target": {"kind": "Node", "selector": selects},
        "conditions": [{"class": "NodeUnreachable", "for": "15s"}], "actions": [{"action": "Cordon"}],
        "safety": {"maxUnhealthy": "30%"}}),
    )
    .await?;
    create_policy(
        &ctx,
        &lost,
        json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
        "conditions": [{"class": "NodeLost", "for": "15s"}], "actions": [{"action": "Delete"}]}),
    )
    .await?;

    let api: Api<Node> = Api::all(ctx.client.clone());
    let down = &names[..6];
    let storm = async {
        wave(&ctx, &api, &names, down).await?;
        wave(&ctx, &api, &names, down).await?;
        // After the storm: nodes flapping together stay one cause, and the cool-off holds the rest.
        never_cordoned(&api, &names, Duration::from_secs(30)).await
    };
    if let Err(e) = storm.await {
        let log = op.log();
        let decisions: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("decision") || l.contains("correlated") || l.contains("NodeFlapping"))
            .map(|l| l.get(..400).unwrap_or(l))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .take(30)
            .collect();
        anyhow::bail!("{e:#}; the operator's last decisions:\n{}", decisions.join("\n"));
    }

    let mut deletes = 0;
    for event in ctx.cluster.audit_events()? {
        let o = &event["objectRef"];
        if event["impersonatedUser"]["username"].is_string()
            && event["verb"] == "delete"
            && o["resource"] == "pods"
            && o["namespace"] == ns.as_str()
        {
            deletes += 1;
        }
    }
    ensure!(
        deletes == 0,
        "{deletes} pods deleted by the operator during the storm"
    );
    // Each held target recorded once per policy and wave (a wave is an episode of its own), not
    // once per evaluation.
    let mut held: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut summary = Vec::new();
    let mut live = Vec::new();
    for policy in [&flapping, &unreachable, &lost] {
        let recs = records(&ctx, policy, 0).await?;
        live.extend(recs.clone());
        for r in &recs {
            let (phase, reason) = phase_reason(r);
            ensure!(
                phase == ActionPhase::Skipped,
                "{policy} on {}: {phase:?}/{reason}",
                r.spec.target.name
            );
            *held
                .entry((policy.to_string(), r.spec.target.name.clone()))
                .or_default() += 1;
        }
        summary.push(format!("{}: {} held", policy, recs.len()));
    }
    let repeated: Vec<_> = held.iter().filter(|(_, n)| **n > 2).collect();
    ensure!(repeated.is_empty(), "held more than once a wave: {repeated:?}");
    println!("    0 cordoned, 0 deleted; {}", summary.join(", "));
    // Replayed from the flight recording: the same decisions.
    support::flight::replay_matches_live("waves", &flight, &live, &[]).await?;
    drop(op);
    Ok(())
}
