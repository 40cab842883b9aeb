//! A failing rollout is a cause (issue 30 (b)). Deployment `web` runs four pods fine; its
//! template is changed to one that crashes, and the rollout stalls with its new pods
//! crash-looping beside the old ones running. A RestartOwner policy on its pods must not restart
//! it (another revision of the same template cannot help): the decision is held, one record
//! naming the new revision and saying to roll back. The control: pod `api`, crash-looping by
//! itself, is healed by its Delete policy meanwhile.

use std::time::Duration;

use anyhow::{Context, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::{Scenario, nodes, scenario_pod, wait};
use serde_json::json;

use crate::support;
use support::{
    HEAL, Operator, all_records, create_policy, deployment, message, phase_reason, restarted, selector,
};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![test(
        "a_rollout_whose_new_pods_crash_is_not_restarted_and_its_record_names_the_revision",
        rollout,
    )]
}

async fn rollout(ctx: Ctx) -> anyhow::Result<()> {
    let (flight, [f1, f2]) = support::flight::recorder_of(&ctx);
    let _op = Operator::start(
        &ctx.cluster,
        "rollout",
        &["--policy-selector", &selector(&ctx), &f1, &f2],
    )
    .await?;
    let names = [ctx.name("r0"), ctx.name("r1")];
    nodes::add_owned_nodes(&ctx.client, &names, &ctx.id, HEAL).await?;
    let ns = ctx.namespace("ro").await?;
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let safety = json!({"maxConcurrent": 5, "rate": {"actions": 10, "per": "1m"}, "cooldown": "10m"});
    let restart = ctx.name("restart-web");
    create_policy(&ctx, &restart, json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]},
            "selector": {"matchLabels": {"app": "web"}}},
        "conditions": [{"class": "CrashLoop", "for": "3s"}], "actions": [{"action": "RestartOwner"}], "safety": safety}))
    .await?;
    let delete = ctx.name("delete-api");
    create_policy(&ctx, &delete, json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]},
            "selector": {"matchLabels": {"app": "api"}}},
        "conditions": [{"class": "CrashLoop", "for": "3s"}], "actions": [{"action": "Delete"}], "safety": safety}))
    .await?;

    let fine = scenario_pod(&ns, "web", None, &Scenario::Running);
    deployments
        .create(&PostParams::default(), &deployment(&ctx, &ns, "web", 4, fine)?)
        .await?;
    wait::until("web's four pods running", HEAL, || async {
        let list = pods.list(&ListParams::default().labels("app=web")).await?;
        let running = list
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        Ok((running == 4).then_some(()))
    })
    .await?;
    // The new template crashes: its pods say so as they die.
    let crashing = scenario_pod(
        &ns,
        "web",
        None,
        &Scenario::CrashLoop {
            restarts: 6,
            exit_code: 2,
            message: "flag provided but not defined: -listen-addr".into(),
        },
    );
    let template = json!({"spec": {"template": {"metadata": {
        "labels": crashing.metadata.labels, "annotations": crashing.metadata.annotations}}}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(&template))
        .await?;
    // The control: a pod crash-looping by itself (bare, so nothing replaces it once healed).
    let api = support::lone_crash_loop(
        &ns,
        "api",
        &names[0],
        3,
        "panic: open /etc/api/config.yaml: no such file or directory",
    );
    pods.create(&PostParams::default(), &api).await?;

    support::healed(&ctx, &delete, HEAL).await?;
    let held = wait::until("web's decision held", HEAL, || async {
        Ok(all_records(&ctx, &restart)
            .await?
            .into_iter()
            .find(|r| r.status.is_some()))
    })
    .await?;
    let new_revision = pods
        .list(&ListParams::default().labels("app=web"))
        .await?
        .items
        .into_iter()
        .find(|p| {
            p.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.values().any(|v| v.contains("-listen-addr")))
        })
        .and_then(|p| p.metadata.labels?.get("pod-template-hash").cloned())
        .context("a pod of the new revision")?;
    ensure!(
        phase_reason(&held) == (ActionPhase::Skipped, "Correlated".into())
            && message(&held).contains(&format!("revision {new_revision}"))
            && message(&held).contains("kubectl rollout undo deployment/web"),
        "{:?}: {}",
        phase_reason(&held),
        message(&held)
    );
    tokio::time::sleep(Duration::from_secs(8)).await;
    ensure!(
        !restarted(&ctx, &ns, "web").await?,
        "the failing rollout was restarted"
    );
    let recs = all_records(&ctx, &restart).await?;
    ensure!(recs.len() == 1, "{} records for one failing rollout", recs.len());
    // A person reading the pod sees the same: `kubectl describe` shows the hold and the way out.
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(ctx.client.clone(), &ns);
    wait::until("a HealingHeld Event saying to roll back", HEAL, || async {
        let list = events
            .list(&ListParams::default().fields("reason=HealingHeld"))
            .await?;
        Ok(list.items.into_iter().find(|e| {
            e.message
                .as_deref()
                .is_some_and(|m| m.contains("kubectl rollout undo deployment/web"))
        }))
    })
    .await?;
    println!("    held: {}", message(&held));
    let mut live = all_records(&ctx, &restart).await?;
    live.extend(all_records(&ctx, &delete).await?);
    support::flight::replay_matches_live("rollout", &flight, &live, &[]).await
}
