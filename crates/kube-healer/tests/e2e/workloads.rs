//! Workload-aware limits (issue 30 (3)): a policy replaces at most maxDisruptedPerWorkload of
//! one workload's pods at once (default one pod or 25%). Deployment `web`'s four pods are all
//! stuck in ContainerCreating, its own trouble (one workload, so no shared cause holds them);
//! a Delete policy with room for 20 actions removes one, and the rest wait while its
//! replacement has not shown whether removing helped (it is stuck creating too): one pod
//! removed, the others held naming the workload and the limit. Deployment `api`, the same
//! under a policy allowing 100%, has all four removed at once. The control: a bare pod
//! crash-looping by itself is healed meanwhile.

use std::time::Duration;

use anyhow::ensure;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube_healer_api::HealingAction;
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::{Scenario, nodes, scenario_pod, wait};
use serde_json::json;

use crate::support;
use support::{HEAL, Operator, all_records, create_policy, deployment, message, selector};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![test(
        "one_workload_s_failing_pods_are_replaced_a_few_at_a_time_not_all_at_once",
        a_few_at_a_time,
    )]
}

fn acted(recs: &[HealingAction]) -> Vec<&HealingAction> {
    recs.iter()
        .filter(|r| {
            r.status
                .as_ref()
                .is_some_and(|s| s.phase == ActionPhase::Succeeded)
        })
        .collect()
}

async fn a_few_at_a_time(ctx: Ctx) -> anyhow::Result<()> {
    let _op = Operator::start(&ctx.cluster, "workloads", &["--policy-selector", &selector(&ctx)]).await?;
    let names = [ctx.name("w0"), ctx.name("w1")];
    nodes::add_owned_nodes(&ctx.client, &names, &ctx.id, HEAL).await?;
    let ns = ctx.namespace("wl").await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let mut policy = std::collections::BTreeMap::new();
    for (app, limit) in [("web", None), ("api", Some("100%"))] {
        let mut safety = json!({"maxConcurrent": 20, "rate": {"actions": 20, "per": "1m"}, "cooldown": "1m"});
        if let Some(limit) = limit {
            safety["maxDisruptedPerWorkload"] = json!(limit);
        }
        let name = ctx.name(&format!("stuck-{app}"));
        create_policy(&ctx, &name, json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]},
                "selector": {"matchLabels": {"app": app}}},
            "conditions": [{"class": "StuckContainerCreating", "for": "3s"}], "actions": [{"action": "Delete"}],
            "safety": safety}))
        .await?;
        policy.insert(app, name);
    }
    let lone = ctx.name("lone");
    create_policy(
        &ctx,
        &lone,
        json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]},
            "selector": {"matchLabels": {"app": "lonely"}}},
        "conditions": [{"class": "CrashLoop", "for": "3s"}], "actions": [{"action": "Delete"}]}),
    )
    .await?;

    for app in ["web", "api"] {
        // A message of its own: the cluster's other tests' pods stuck creating (the shared e2e
        // cluster) are not one cause with these.
        let creating = Scenario::ContainerWaiting {
            reason: "ContainerCreating".into(),
            message: format!(
                "MountVolume.SetUp failed for volume \"{app}-config\": configmap \"{app}-config\" not found"
            ),
            restarts: 0,
        };
        let template = scenario_pod(&ns, app, None, &creating);
        deployments
            .create(&PostParams::default(), &deployment(&ctx, &ns, app, 4, template)?)
            .await?;
    }
    let lonely = support::lone_crash_loop(
        &ns,
        "lonely",
        &names[0],
        1,
        "panic: runtime error: index out of range [3] with length 3",
    );
    pods.create(&PostParams::default(), &lonely).await?;

    support::healed(&ctx, &lone, HEAL).await?;
    let held = wait::until(
        "web's next removal held by its workload's limit",
        HEAL,
        || async {
            let recs = all_records(&ctx, &policy["web"]).await?;
            Ok(recs.into_iter().find(|r| {
                r.status.as_ref().is_some_and(|s| {
                    s.phase == ActionPhase::Skipped && s.reason.as_deref() == Some("WorkloadLimit")
                })
            }))
        },
    )
    .await?;
    ensure!(
        message(&held).contains(&format!("Deployment {ns}/web's 4 pods"))
            && message(&held).contains("maxDisruptedPerWorkload allows (default 25%: 1)"),
        "{}",
        message(&held)
    );
    wait::until("api's four pods removed at once", HEAL, || async {
        let recs = all_records(&ctx, &policy["api"]).await?;
        Ok((acted(&recs).len() >= 4).then_some(()))
    })
    .await?;
    // Past every `for` many times over: web's replacement is stuck too, and nothing more of web
    // is removed while it has not shown whether removing helped.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let recs = all_records(&ctx, &policy["web"]).await?;
    let web_acted = acted(&recs);
    ensure!(
        web_acted.len() == 1,
        "{} of web's pods removed at once, its limit is 1: {:#?}",
        web_acted.len(),
        recs.iter()
            .map(|r| (&r.spec.target.name, &r.status))
            .collect::<Vec<_>>()
    );
    let disrupts = web_acted[0]
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(kube_healer_api::DISRUPTS_ANNOTATION));
    ensure!(
        disrupts.is_some_and(|d| d.starts_with(&format!("Deployment {ns}/web@"))),
        "the removal's record names its workload for a restarted operator: {disrupts:?}"
    );
    println!("    web: 1 removed, {} held: {}", recs.len() - 1, message(&held));
    Ok(())
}
