//! Storms of every kind, grouped by zone: 9 nodes in zones a, b and c. (c) Zone a goes NotReady
//! together while one node of zone b fails alone: zone a is one correlated cause, its nodes are
//! held (Skipped/Correlated, none cordoned), and the node in zone b is cordoned. (b) A bad
//! node-problem-detector rollout raises KernelDeadlock on 4 of the 9 nodes, spread over zones:
//! one cause for the cluster, nothing cordoned. Pools (`--node-pool-label`): ReadonlyFilesystem on
//! the 3 nodes of pool gpu (one per zone) and on one node of another pool: the pool is one cause,
//! held, and the other node is cordoned (without the pool label, 4 of 9 would hold them all). Its
//! own cluster: correlation counts every node of the cluster, of each zone and of each pool.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::ClusterOptions;
use kube_healer_testenv::harness::{Ctx, test};
use serde_json::json;
use support::{Operator, create_policy, now_rfc3339, phase_reason, records, selector};

fn main() -> std::process::ExitCode {
    kube_healer_testenv::harness::run(
        ClusterOptions::default(),
        vec![test(
            "a_zone_down_is_held_in_its_zone_and_a_condition_rollout_across_zones_is_held",
            families,
        )],
    )
}

const ZONES: [&str; 3] = ["a", "b", "c"];
/// Pools by thirds: w0-w2 gpu, w3-w5 cpu, w6-w8 mem (each across the three zones).
const POOLS: [&str; 3] = ["gpu", "cpu", "mem"];
const POOL_LABEL: &str = "kube-healer.test/pool";

/// What the test says of each node: Ready's status and a KernelDeadlock condition, each with
/// the time it last changed (a condition that stays keeps its start).
#[derive(Clone)]
struct Health {
    not_ready: bool,
    deadlock: bool,
    readonly: bool,
    ready_since: String,
    deadlock_since: String,
    readonly_since: String,
}

/// The node's conditions as a kubelet and node-problem-detector would post them.
fn conditions(h: &Health) -> serde_json::Value {
    let ready = if h.not_ready { "False" } else { "True" };
    let deadlock = if h.deadlock { "True" } else { "False" };
    let readonly = if h.readonly { "True" } else { "False" };
    json!([{"type": "Ready", "status": ready, "reason": "KubeletReady", "message": format!("kubelet Ready={ready}"),
            "lastTransitionTime": h.ready_since, "lastHeartbeatTime": now_rfc3339(0)},
        {"type": "KernelDeadlock", "status": deadlock, "reason": "DockerHung",
            "message": "kernel: INFO: task docker:20744 blocked for more than 120 seconds.",
            "lastTransitionTime": h.deadlock_since, "lastHeartbeatTime": now_rfc3339(0)},
        {"type": "ReadonlyFilesystem", "status": readonly, "reason": "FilesystemIsReadOnly",
            "message": "Filesystem is read-only", "lastTransitionTime": h.readonly_since,
            "lastHeartbeatTime": now_rfc3339(0)}])
}

async fn cordoned(api: &Api<Node>, name: &str) -> anyhow::Result<bool> {
    Ok(api.get(name).await?.spec.and_then(|s| s.unschedulable) == Some(true))
}

/// The records of `policy` by node: (phase, reason, message).
async fn outcomes(
    ctx: &Ctx,
    policy: &str,
    count: usize,
) -> anyhow::Result<BTreeMap<String, (ActionPhase, String, String)>> {
    Ok(records(ctx, policy, count)
        .await?
        .iter()
        .map(|r| {
            let (phase, reason) = phase_reason(r);
            let message = r
                .status
                .as_ref()
                .and_then(|s| s.message.clone())
                .unwrap_or_default();
            (r.spec.target.name.clone(), (phase, reason, message))
        })
        .collect())
}

async fn families(ctx: Ctx) -> anyhow::Result<()> {
    let args = [
        "--policy-selector",
        &selector(&ctx),
        "--node-pool-label",
        POOL_LABEL,
    ];
    let _op = Operator::start(&ctx.cluster, "families", &args).await?;
    let api: Api<Node> = Api::all(ctx.client.clone());
    // w0, w3, w6 in zone a; w1, w4, w7 in b; w2, w5, w8 in c.
    let names: Vec<String> = (0..9).map(|i| ctx.name(&format!("w{i}"))).collect();
    let well = Health {
        not_ready: false,
        deadlock: false,
        readonly: false,
        ready_since: now_rfc3339(-3600),
        deadlock_since: now_rfc3339(-3600),
        readonly_since: now_rfc3339(-3600),
    };
    let health: Arc<Mutex<Vec<Health>>> = Arc::new(Mutex::new(vec![well; 9]));
    for (i, name) in names.iter().enumerate() {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": name, "labels": {
            "kube-healer.test/owner": ctx.id, "topology.kubernetes.io/zone": ZONES[i % 3],
            POOL_LABEL: POOLS[i / 3]}}}))?;
        api.create(&PostParams::default(), &node).await?;
    }
    // No kubelets: the test posts every node's status every 2 s, so that the node lifecycle
    // controller sees them alive, with the health the test gives them.
    let poster = {
        let (api, names, health) = (api.clone(), names.clone(), health.clone());
        tokio::spawn(async move {
            loop {
                let now: Vec<Health> = health.lock().map(|h| h.clone()).unwrap_or_default();
                for (name, h) in names.iter().zip(now) {
                    let body = json!({"status": {"conditions": conditions(&h)}});
                    let _ = api
                        .patch_status(name, &PatchParams::default(), &Patch::Merge(body))
                        .await;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        })
    };
    let set = |nodes: &[usize], f: fn(&mut Health, String)| -> anyhow::Result<()> {
        let mut h = health.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        for i in nodes {
            f(&mut h[*i], now_rfc3339(0));
        }
        Ok(())
    };
    let selects = json!({"matchLabels": {"kube-healer.test/owner": ctx.id}});
    let limits = json!({"maxUnhealthy": "100%", "maxConcurrent": 10, "rate": {"actions": 10, "per": "1m"}});

    // (c) Zone a down, and one node of zone b.
    let down_policy = ctx.name("notready");
    create_policy(&ctx, &down_policy, json!({"target": {"kind": "Node", "selector": selects},
        "conditions": [{"class": "NodeNotReady", "for": "5s"}], "actions": [{"action": "Cordon"}], "safety": limits}))
    .await?;
    set(&[0, 3, 6, 1], |h, at| {
        h.not_ready = true;
        h.ready_since = at;
    })?;
    let seen = outcomes(&ctx, &down_policy, 4).await?;
    for i in [0, 3, 6] {
        let (phase, reason, message) = seen.get(&names[i]).context("a record on each node of zone a")?;
        ensure!(
            (*phase, reason.as_str()) == (ActionPhase::Skipped, "Correlated")
                && message.contains("3 of 3 nodes in zone a"),
            "{}: {phase:?}/{reason}: {message}",
            names[i]
        );
        ensure!(!cordoned(&api, &names[i]).await?, "{} cordoned", names[i]);
    }
    let (phase, reason, _) = seen.get(&names[1]).context("a record on the node of zone b")?;
    ensure!(
        *phase == ActionPhase::Succeeded && cordoned(&api, &names[1]).await?,
        "the node failing alone in zone b was not cordoned: {phase:?}/{reason}"
    );
    println!("    zone a down: 3 held as one cause; the node down in zone b cordoned");
    set(&[0, 3, 6, 1], |h, at| {
        h.not_ready = false;
        h.ready_since = at;
    })?;

    // (b) KernelDeadlock on 4 of the 9 nodes, two in zone b and two in c: no zone explains it,
    // the cluster does (4 of 9).
    let deadlock_policy = ctx.name("deadlock");
    create_policy(
        &ctx,
        &deadlock_policy,
        json!({"target": {"kind": "Node", "selector": selects},
        "conditions": [{"class": "NodeCondition", "conditionType": "KernelDeadlock", "for": "5s"}],
        "actions": [{"action": "Cordon"}], "safety": limits}),
    )
    .await?;
    let rollout = [4, 7, 2, 5];
    set(&rollout, |h, at| {
        h.deadlock = true;
        h.deadlock_since = at;
    })?;
    let seen = outcomes(&ctx, &deadlock_policy, 4).await?;
    for i in rollout {
        let (phase, reason, message) = seen.get(&names[i]).context("a record on each node")?;
        ensure!(
            (*phase, reason.as_str()) == (ActionPhase::Skipped, "Correlated")
                && message.contains("4 of 9 nodes are reporting KernelDeadlock together"),
            "{}: {phase:?}/{reason}: {message}",
            names[i]
        );
        ensure!(!cordoned(&api, &names[i]).await?, "{} cordoned", names[i]);
    }
    // Held once each, not once per evaluation (the status is posted every 2 s).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let again = outcomes(&ctx, &deadlock_policy, 4).await?;
    ensure!(again.len() == 4, "{} records for 4 held nodes", again.len());
    println!("    KernelDeadlock on 4 of 9 nodes across zones: one cause, 4 held once each, none cordoned");

    // Pool gpu (w0, w1, w2, one per zone) gets ReadonlyFilesystem, and w4 of pool cpu: no zone
    // explains it (two at most in b), the pool does; w4 alone is a node fault.
    let readonly_policy = ctx.name("readonly");
    create_policy(
        &ctx,
        &readonly_policy,
        json!({"target": {"kind": "Node", "selector": selects},
        "conditions": [{"class": "NodeCondition", "conditionType": "ReadonlyFilesystem", "for": "5s"}],
        "actions": [{"action": "Cordon"}], "safety": limits}),
    )
    .await?;
    set(&[0, 1, 2, 4], |h, at| {
        h.readonly = true;
        h.readonly_since = at;
    })?;
    let seen = outcomes(&ctx, &readonly_policy, 4).await?;
    for i in [0, 1, 2] {
        let (phase, reason, message) = seen.get(&names[i]).context("a record on each node of pool gpu")?;
        ensure!(
            (*phase, reason.as_str()) == (ActionPhase::Skipped, "Correlated")
                && message.contains("3 of 3 nodes in pool gpu (kube-healer.test/pool)"),
            "{}: {phase:?}/{reason}: {message}",
            names[i]
        );
        ensure!(!cordoned(&api, &names[i]).await?, "{} cordoned", names[i]);
    }
    let (phase, reason, message) = seen.get(&names[4]).context("a record on w4")?;
    ensure!(
        *phase == ActionPhase::Succeeded && cordoned(&api, &names[4]).await?,
        "the node failing alone in pool cpu was not cordoned: {phase:?}/{reason}: {message}"
    );
    println!(
        "    pool gpu read-only across zones: 3 held as the pool's cause; the node in pool cpu cordoned"
    );
    poster.abort();
    Ok(())
}
