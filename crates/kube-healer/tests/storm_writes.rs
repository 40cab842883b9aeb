//! A storm of any size writes a bounded number of records (issue 30 (e)). One shared cause (a
//! certificate that expired) makes 500 pods of ten Deployments in two namespaces crash-loop at
//! once, under a Delete policy in each namespace. kube-healer holds them as one cause and writes
//! at most 3 HealingActions for them (one per policy that meets the cause), not one per pod; it
//! deletes none. The control: a lone Deployment crash-looping for its own reason in a third
//! namespace is healed. The operator's own writes during the storm, counted from the API
//! server's audit log, are printed. Its own cluster: a cause counts every pod of the cluster.
//! The operator runs the flight recorder, and the replay of its recording must decide what the
//! live run decided.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::ensure;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::harness::{Ctx, test};
use kube_healer_testenv::{ClusterOptions, Scenario, nodes, scenario_pod, wait};
use serde_json::json;
use support::{HEAL, Operator, all_records, create_policy, deployment, phase_reason};

fn main() -> std::process::ExitCode {
    kube_healer_testenv::harness::run(
        ClusterOptions::default(),
        vec![test(
            "five_hundred_pods_held_by_one_cause_write_at_most_three_records",
            storm_writes,
        )],
    )
}

/// What the storm's pods say as they die.
const EXPIRED: &str = "x509: certificate has expired or is not yet valid: current time 2026-12-07T06:41:09Z is after 2026-12-07T00:00:00Z";
/// Ten Deployments of fifty pods, in two namespaces.
const WORKLOADS: usize = 10;
const REPLICAS: i32 = 50;

/// The operator's writes (create, update, patch, delete) in the audit log, by resource.
fn operator_writes(ctx: &Ctx, from: usize) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut writes = BTreeMap::new();
    for e in &ctx.cluster.audit_events()?[from..] {
        let verb = e["verb"].as_str().unwrap_or_default();
        if e["impersonatedUser"]["username"].is_string()
            && matches!(verb, "create" | "update" | "patch" | "delete")
        {
            let o = &e["objectRef"];
            let sub = o["subresource"]
                .as_str()
                .map(|s| format!("/{s}"))
                .unwrap_or_default();
            *writes
                .entry(format!(
                    "{verb} {}{sub}",
                    o["resource"].as_str().unwrap_or_default()
                ))
                .or_insert(0) += 1;
        }
    }
    Ok(writes)
}

async fn storm_writes(ctx: Ctx) -> anyhow::Result<()> {
    let selector = format!("kube-healer.test/owner={}", ctx.id);
    let (flight, [f1, f2]) = support::flight::recorder(&ctx.cluster);
    // KUBE_HEALER_TEST_OPERATOR_FLAGS="--pods-alike-min-pods 1000" turns the rule off (the
    // scenario then fails: every pod is decided on alone).
    let extra: Vec<String> = std::env::var("KUBE_HEALER_TEST_OPERATOR_FLAGS")
        .map(|f| f.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let mut flags = vec!["--policy-selector", &selector, &f1, &f2];
    flags.extend(extra.iter().map(String::as_str));
    let op = Operator::start(&ctx.cluster, "storm-writes", &flags).await?;
    let names: Vec<String> = (0..6).map(|i| ctx.name(&format!("n{i}"))).collect();
    nodes::add_owned_nodes(&ctx.client, &names, &ctx.id, HEAL).await?;
    let mut ns = BTreeMap::new();
    let mut policy = BTreeMap::new();
    let safety = json!({"maxConcurrent": 20, "rate": {"actions": 100, "per": "1m"}, "cooldown": "1m"});
    for suffix in ["a", "b", "lone"] {
        ns.insert(suffix, ctx.namespace(suffix).await?);
        let name = ctx.name(&format!("delete-{suffix}"));
        create_policy(&ctx, &name, json!({"target": {"kind": "Pod", "namespaces": {"include": [ns[suffix]]}},
            "conditions": [{"class": "CrashLoop", "for": "5s"}], "actions": [{"action": "Delete"}], "safety": safety}))
        .await?;
        policy.insert(suffix, name);
    }
    let audit_before = ctx.cluster.audit_events()?.len();
    let storm = Scenario::CrashLoop {
        restarts: 5,
        exit_code: 1,
        message: EXPIRED.into(),
    };
    let own = Scenario::CrashLoop {
        restarts: 5,
        exit_code: 2,
        message: "panic: config key payments.url is missing".into(),
    };
    let mut deployments = vec![(ns["lone"].clone(), "lonely".to_string(), 1, own)];
    for i in 0..WORKLOADS {
        let suffix = if i % 2 == 0 { "a" } else { "b" };
        deployments.push((ns[suffix].clone(), format!("svc{i}"), REPLICAS, storm.clone()));
    }
    let started = Instant::now();
    for (namespace, name, replicas, scenario) in &deployments {
        let template = scenario_pod(namespace, name, None, scenario);
        Api::<Deployment>::namespaced(ctx.client.clone(), namespace)
            .create(
                &PostParams::default(),
                &deployment(&ctx, namespace, name, *replicas, template)?,
            )
            .await?;
    }
    // Every storm pod crash-looping (seen through the API server, as the operator sees them).
    let storm_pods = WORKLOADS * REPLICAS as usize;
    wait::until(
        "the storm's pods crash-looping",
        Duration::from_secs(180),
        || async {
            let mut crashing = 0;
            for suffix in ["a", "b"] {
                let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns[suffix]);
                crashing += pods
                    .list(&ListParams::default())
                    .await?
                    .items
                    .iter()
                    .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                    .count();
            }
            Ok((crashing >= storm_pods).then_some(()))
        },
    )
    .await?;
    println!(
        "    {storm_pods} pods crash-looping {:.0} s after the Deployments",
        started.elapsed().as_secs_f64()
    );

    // The control: the lone crash loop is healed while the storm is on.
    support::healed(&ctx, &policy["lone"], Duration::from_secs(90)).await?;
    // The storm's pods came due long ago (`for` 5 s): give a storm of records time to show.
    tokio::time::sleep(Duration::from_secs(20)).await;

    let mut storm_records = all_records(&ctx, &policy["a"]).await?;
    storm_records.extend(all_records(&ctx, &policy["b"]).await?);
    let said: Vec<String> = storm_records
        .iter()
        .map(|r| format!("{} {:?}", r.spec.target.name, phase_reason(r)))
        .collect();
    let writes = operator_writes(&ctx, audit_before)?;
    println!("    the storm: {} records: {said:?}", storm_records.len());
    println!("    the operator's writes during the storm and its control: {writes:?}");
    ensure!(
        storm_records.len() <= 3,
        "{} records for a storm of {storm_pods} pods: {said:#?}",
        storm_records.len()
    );
    let acted = storm_records
        .iter()
        .filter(|r| r.status.as_ref().is_some_and(|s| s.phase != ActionPhase::Skipped))
        .count();
    ensure!(acted == 0, "{acted} of the storm's pods were acted on: {said:#?}");
    let storm_ns = [ns["a"].clone(), ns["b"].clone()];
    let removed = ctx.cluster.audit_events()?[audit_before..]
        .iter()
        .filter(|e| e["impersonatedUser"]["username"].is_string())
        .filter(|e| {
            let o = &e["objectRef"];
            o["resource"] == "pods"
                && (e["verb"] == "delete" || (e["verb"] == "create" && o["subresource"] == "eviction"))
                && storm_ns.iter().any(|n| o["namespace"] == n.as_str())
        })
        .count();
    ensure!(removed == 0, "the operator removed {removed} of the storm's pods");
    let mut live = storm_records;
    live.extend(all_records(&ctx, &policy["lone"]).await?);
    let flags: Vec<&str> = extra.iter().map(String::as_str).collect();
    support::flight::replay_matches_live("storm-writes", &flight, &live, &flags).await?;
    drop(op);
    Ok(())
}
