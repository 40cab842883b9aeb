//! The cluster's disruption budget: three policies cordon nodes for three different node
//! conditions, five nodes fail at once, and the operator may hold at most two nodes out of service
//! (`--max-nodes-out-of-service 2`). Never more than two nodes are cordoned at any moment; the
//! other three are recorded once each as Skipped/BudgetExceeded; when a cordoned node recovers
//! and is uncordoned, the budget it frees goes to a held node. Its own cluster: the budget counts
//! every node the operator holds, so another test's nodes would count.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::ClusterOptions;
use kube_healer_testenv::harness::{Ctx, test};
use serde_json::json;
use support::{Operator, create_policy, now_rfc3339, phase_reason, ready, records, selector};

fn main() -> std::process::ExitCode {
    kube_healer_testenv::harness::run(
        ClusterOptions::default(),
        vec![test(
            "three_policies_never_hold_more_nodes_out_of_service_than_the_cluster_budget",
            budget,
        )],
    )
}

const TYPES: [&str; 3] = [
    "KernelDeadlock",
    "ReadonlyFilesystem",
    "FrequentContainerdRestart",
];

/// A node's conditions: Ready, and its problem condition True or False since `since` (a
/// node-problem-detector keeps the transition time while the status stays).
fn conditions(problem: &str, status: &str, since: &str) -> serde_json::Value {
    json!([ready("True", "kubelet is posting ready status"),
        {"type": problem, "status": status, "reason": "Problem", "message": format!("{problem} is {status}"),
            "lastTransitionTime": since, "lastHeartbeatTime": now_rfc3339(0)}])
}

/// The nodes of `names` that are cordoned now.
async fn cordoned(api: &Api<Node>, names: &[String]) -> anyhow::Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for name in names {
        let node = kube_healer_testenv::wait::retried(|| api.get(name)).await?;
        if node.spec.and_then(|s| s.unschedulable) == Some(true) {
            out.insert(name.clone());
        }
    }
    Ok(out)
}

/// Polls until `done` holds on the cordoned set, failing if more than two are ever cordoned.
async fn watch_cordons(
    api: &Api<Node>,
    names: &[String],
    what: &str,
    done: impl Fn(&BTreeSet<String>) -> bool,
) -> anyhow::Result<BTreeSet<String>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = cordoned(api, names).await?;
        ensure!(
            now.len() <= 2,
            "{} nodes out of service at once: {now:?}",
            now.len()
        );
        if done(&now) {
            return Ok(now);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}: cordoned {now:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn budget(ctx: Ctx) -> anyhow::Result<()> {
    let (flight, [f1, f2]) = support::flight::recorder(&ctx.cluster);
    let args = [
        "--policy-selector",
        &selector(&ctx),
        "--max-nodes-out-of-service",
        "2",
        &f1,
        &f2,
    ];
    let _op = Operator::start(&ctx.cluster, "budget", &args).await?;
    let api: Api<Node> = Api::all(ctx.client.clone());
    let names: Vec<String> = (0..5).map(|i| ctx.name(&format!("b{i}"))).collect();
    let problem = |i: usize| TYPES[i % 3];
    let failing_since = now_rfc3339(-30);
    for (i, name) in names.iter().enumerate() {
        let node: Node = serde_json::from_value(
            json!({"metadata": {"name": name, "labels": {"kube-healer.test/owner": ctx.id}}}),
        )?;
        api.create(&PostParams::default(), &node).await?;
        let status = json!({"status": {"conditions": conditions(problem(i), "True", &failing_since)}});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await?;
    }
    // The nodes have no kubelet: their status is kept fresh here, so that the node lifecycle
    // controller does not mark them unreachable. `recovered` holds the node that got well, and
    // since when (its condition's transition time, as node-problem-detector writes it).
    let recovered = std::sync::Arc::new(std::sync::Mutex::new(None::<(String, String)>));
    let heartbeats = {
        let (api, names, recovered) = (api.clone(), names.clone(), recovered.clone());
        let failing_since = failing_since.clone();
        tokio::spawn(async move {
            loop {
                for (i, name) in names.iter().enumerate() {
                    let well = recovered.lock().ok().and_then(|r| {
                        r.as_ref()
                            .filter(|(n, _)| n == name)
                            .map(|(_, since)| since.clone())
                    });
                    let (status, since) = match &well {
                        Some(well_since) => ("False", well_since),
                        None => ("True", &failing_since),
                    };
                    let body = json!({"status": {"conditions": conditions(TYPES[i % 3], status, since)}});
                    let _ = api
                        .patch_status(name, &PatchParams::default(), &Patch::Merge(body))
                        .await;
                }
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        })
    };
    let mut policies = Vec::new();
    for t in TYPES {
        let policy = ctx.name(&t.to_ascii_lowercase());
        create_policy(
            &ctx,
            &policy,
            json!({"target": {"kind": "Node", "selector": {"matchLabels": {"kube-healer.test/owner": ctx.id}}},
            "conditions": [{"class": "NodeCondition", "conditionType": t, "for": "1s"}],
            "actions": [{"action": "Cordon"}],
            "safety": {"maxUnhealthy": "100%", "maxConcurrent": 10, "rate": {"actions": 10, "per": "1m"}}}),
        )
        .await?;
        policies.push(policy);
    }

    let first = watch_cordons(&api, &names, "two cordons", |c| c.len() == 2).await?;
    // Every failing node has its record: two cordons, three held by the budget, once each.
    let mut held = Vec::new();
    let mut cordons = 0;
    for (policy, expected) in policies.iter().zip([2, 2, 1]) {
        for r in records(&ctx, policy, expected).await? {
            match phase_reason(&r) {
                (ActionPhase::Succeeded, _) => cordons += 1,
                (ActionPhase::Skipped, reason) if reason == "BudgetExceeded" => {
                    let message = r
                        .status
                        .as_ref()
                        .and_then(|s| s.message.clone())
                        .unwrap_or_default();
                    ensure!(message.contains("disruption budget (2: 2 nodes)"), "{message}");
                    held.push(r.spec.target.name.clone());
                }
                other => bail!("{}: {other:?}", r.spec.target.name),
            }
        }
    }
    ensure!(
        cordons == 2 && held.len() == 3,
        "cordons {cordons}, held {held:?}"
    );
    println!("    cordoned {first:?}; held by the budget: {held:?}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    ensure!(
        cordoned(&api, &names).await? == first,
        "the cordons changed while nothing recovered"
    );

    // One cordoned node recovers: it is uncordoned, and the budget goes to a held node.
    let well = first.iter().next().cloned().unwrap_or_default();
    *recovered.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = Some((well.clone(), now_rfc3339(0)));
    let after = watch_cordons(&api, &names, "the budget to pass on", |c| {
        c.len() == 2 && !c.contains(&well)
    })
    .await?;
    let next: Vec<_> = after.difference(&first).cloned().collect();
    ensure!(
        next.len() == 1 && held.contains(&next[0]),
        "the freed place went to {next:?}"
    );
    println!(
        "    {well} recovered and was uncordoned; {} took its place",
        next[0]
    );
    let mut skipped = 0;
    let mut live = Vec::new();
    for policy in &policies {
        let list = records(&ctx, policy, 0).await?;
        skipped += list
            .iter()
            .filter(|r| phase_reason(r).0 == ActionPhase::Skipped)
            .count();
        live.extend(list);
    }
    ensure!(
        skipped == 3,
        "held decisions are recorded once each: {skipped} Skipped records"
    );
    // Replayed from the flight recording with the same budget: the same decisions.
    support::flight::replay_matches_live("budget", &flight, &live, &["--max-nodes-out-of-service", "2"])
        .await?;
    heartbeats.abort();
    Ok(())
}
