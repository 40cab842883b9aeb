//! A pod storm (issue 30): one shared cause (a DNS lookup timing out) makes every pod of five
//! Deployments in two namespaces crash-loop at once, under a RestartOwner policy in one namespace
//! and a Delete policy in the other. Restarting or deleting those pods cannot help: kube-healer
//! must see one cause and hold them (at most 2 actions, at most 5 pods replaced), and name the
//! cause in a record. The control: a lone Deployment crash-looping at the same time in a third
//! namespace, for its own reason, is healed. Runs on its own cluster: a cause counts every pod
//! of the cluster. `--pods-alike-min-pods 1000` turns the rule off (the scenario then fails:
//! every pod of the storm is acted on).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, ensure};
use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube_healer_api::HealingAction;
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::harness::{Ctx, test};
use kube_healer_testenv::{ClusterOptions, Scenario, nodes, scenario_pod};
use serde_json::json;
use support::{HEAL, Operator, all_records, create_policy, deployment, phase_reason};

fn main() -> std::process::ExitCode {
    kube_healer_testenv::harness::run(
        ClusterOptions::default(),
        vec![test(
            "pods_of_many_workloads_failing_alike_are_one_cause_and_a_lone_failure_is_healed",
            pod_storm,
        )],
    )
}

/// What the storm's pods say as they die (their termination message), as a Go client says it.
const DNS: &str =
    "dial tcp: lookup db.internal on 10.96.0.10:53: read udp 10.244.1.7:41234->10.96.0.10:53: i/o timeout";
/// The storm: Deployments of two replicas, by namespace suffix.
const STORM: [(&str, &str); 5] = [
    ("restart", "cart"),
    ("restart", "pay"),
    ("restart", "search"),
    ("delete", "auth"),
    ("delete", "mail"),
];

async fn pod_storm(ctx: Ctx) -> anyhow::Result<()> {
    let selector = format!("kube-healer.test/owner={}", ctx.id);
    let (flight, [f1, f2]) = support::flight::recorder(&ctx.cluster);
    let extra: Vec<String> = std::env::var("KUBE_HEALER_TEST_OPERATOR_FLAGS")
        .map(|f| f.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let mut flags = vec!["--policy-selector", &selector, &f1, &f2];
    flags.extend(extra.iter().map(String::as_str));
    let op = Operator::start(&ctx.cluster, "pod-storm", &flags).await?;
    let names: Vec<String> = (0..3).map(|i| ctx.name(&format!("n{i}"))).collect();
    nodes::add_owned_nodes(&ctx.client, &names, &ctx.id, HEAL).await?;
    let mut ns = BTreeMap::new();
    for suffix in ["restart", "delete", "lone"] {
        ns.insert(suffix, ctx.namespace(suffix).await?);
    }
    let safety = json!({"maxConcurrent": 20, "rate": {"actions": 20, "per": "1m"}, "cooldown": "1m"});
    let policies = [
        ("restart", "RestartOwner"),
        ("delete", "Delete"),
        ("lone", "Delete"),
    ];
    let mut policy = BTreeMap::new();
    for (suffix, action) in policies {
        let name = ctx.name(&format!("crashloop-{suffix}"));
        create_policy(
            &ctx,
            &name,
            json!({"target": {"kind": "Pod", "namespaces": {"include": [ns[suffix]]}},
            "conditions": [{"class": "CrashLoop", "for": "5s"}], "actions": [{"action": action}],
            "safety": safety}),
        )
        .await?;
        policy.insert(suffix, name);
    }
    let storm_ns: Vec<String> = vec![ns["restart"].clone(), ns["delete"].clone()];
    let seen = seen_pods(&ctx, &storm_ns);

    let storm = Scenario::CrashLoop {
        restarts: 7,
        exit_code: 1,
        message: DNS.into(),
    };
    let own = Scenario::CrashLoop {
        restarts: 7,
        exit_code: 2,
        message: "panic: config key payments.url is missing".into(),
    };
    let mut deployments = vec![(ns["lone"].clone(), "lonely", 1, own)];
    for (suffix, name) in STORM {
        deployments.push((ns[suffix].clone(), name, 2, storm.clone()));
    }
    for (namespace, name, replicas, scenario) in deployments {
        let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
        let template = scenario_pod(&namespace, name, None, &scenario);
        api.create(
            &PostParams::default(),
            &deployment(&ctx, &namespace, name, replicas, template)?,
        )
        .await?;
    }

    // The control first: the lone failure is healed (its pod deleted) while the storm is on.
    let lone = support::healed(&ctx, &policy["lone"], Duration::from_secs(90)).await?;
    println!("  the lone crash loop: {} record(s), healed", lone.len());
    // The storm's pods came due long ago (`for` 5 s): give a storm of actions time to show.
    tokio::time::sleep(Duration::from_secs(20)).await;

    let mut storm_records = all_records(&ctx, &policy["restart"]).await?;
    storm_records.extend(all_records(&ctx, &policy["delete"]).await?);
    let acted: Vec<String> = storm_records
        .iter()
        .filter(|r| r.status.as_ref().is_some_and(|s| s.phase != ActionPhase::Skipped))
        .map(|r| format!("{} {}", r.spec.action, r.spec.target.name))
        .collect();
    let replaced = seen.lock().expect("not poisoned").len().saturating_sub(10);
    let held: Vec<&HealingAction> = storm_records
        .iter()
        .filter(|r| r.status.is_some() && phase_reason(r) == (ActionPhase::Skipped, "Correlated".into()))
        .collect();
    println!(
        "  the storm: {} actions, {replaced} pods replaced, {} records holding it",
        acted.len(),
        held.len()
    );
    ensure!(acted.len() <= 2, "actions on the storm's pods: {acted:#?}");
    ensure!(replaced <= 5, "{replaced} of the storm's pods replaced");
    // One record per policy for the cause, not one per pod it holds.
    ensure!(
        storm_records.len() <= 2 + acted.len(),
        "{} records for a storm of 10 pods under 2 policies",
        storm_records.len()
    );
    let named = held.iter().find_map(|r| {
        r.status
            .as_ref()
            .and_then(|s| s.message.clone())
            .filter(|m| m.contains("fail alike") && m.contains("i/o timeout"))
    });
    let named = named.with_context(|| format!("no record names the cause: {storm_records:#?}"))?;
    println!("  the cause, as a record names it: {named}");
    // The record counts the cause's targets (a column of `kubectl get ha`) and names some.
    for r in &held {
        let cause = r
            .spec
            .cause
            .as_ref()
            .context("a held record of the cause says so")?;
        ensure!(
            cause.members >= 5 && !cause.sample.is_empty() && cause.sample.len() <= 10,
            "{cause:?}"
        );
    }

    let mut live = storm_records;
    live.extend(all_records(&ctx, &policy["lone"]).await?);
    let flags: Vec<&str> = extra.iter().map(String::as_str).collect();
    support::flight::replay_matches_live("pod-storm", &flight, &live, &flags).await?;
    drop(op);
    Ok(())
}

/// Every pod ever seen in these namespaces, by UID: how many the storm's pods were replaced by.
fn seen_pods(ctx: &Ctx, namespaces: &[String]) -> Arc<Mutex<BTreeSet<String>>> {
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    for namespace in namespaces {
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
        let seen = seen.clone();
        tokio::spawn(async move {
            let stream = watcher(api, watcher::Config::default()).applied_objects();
            let _ = stream
                .try_for_each(|p| {
                    if let Some(uid) = p.metadata.uid {
                        seen.lock().expect("not poisoned").insert(uid);
                    }
                    futures::future::ready(Ok(()))
                })
                .await;
        });
    }
    seen
}
