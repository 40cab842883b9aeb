//! PodDisruptionBudgets hold Delete and RestartOwner as the Eviction API would (issue 30 (c)).
//! Three Deployments crash-loop, each for its own reason (so no cause is shared):
//! - `guarded` (2 pods) under a Delete policy, with a budget of minAvailable 2: its pods are not
//!   Ready, the budget allows no disruption, and each pod's delete is held, naming the budget (a
//!   delete the budget refused is no removal: the other pod's is not held by
//!   maxDisruptedPerWorkload for it);
//! - `tolerant` (1 pod) under the same Delete policy, with a budget of minAvailable 1 and
//!   `unhealthyPodEvictionPolicy: AlwaysAllow`: its unhealthy pod may go, and is deleted (the
//!   control);
//! - `rolling` (2 pods) under a RestartOwner policy, with a budget of minAvailable 1 that allows
//!   no disruption: not restarted, the record naming the budget.

use anyhow::ensure;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, PostParams};
use kube_healer_api::HealingAction;
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::{Scenario, nodes, scenario_pod, wait};
use serde_json::json;

use crate::support;
use support::{HEAL, Operator, create_policy, deployment, message, phase_reason, selector};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![test(
        "delete_and_restart_owner_keep_pod_disruption_budgets_as_the_eviction_api_would",
        budgets,
    )]
}

fn budget(name: &str, min_available: i32, always_allow: bool) -> serde_json::Value {
    let mut spec = json!({"minAvailable": min_available, "selector": {"matchLabels": {"app": name}}});
    if always_allow {
        spec["unhealthyPodEvictionPolicy"] = json!("AlwaysAllow");
    }
    json!({"metadata": {"name": name}, "spec": spec})
}

/// The first final record of `policy` about a pod of `app` (one held by the workload limit
/// left out: the other guarded pod's may be, for as long as the first one's delete is being
/// refused).
async fn first_record(ctx: &Ctx, policy: &str, app: &str) -> anyhow::Result<HealingAction> {
    let records: Api<HealingAction> = Api::all(ctx.client.clone());
    let label = format!("{}={policy}", kube_healer_api::POLICY_LABEL);
    wait::until(&format!("a final record of {policy} on {app}"), HEAL, || async {
        let list = records.list(&ListParams::default().labels(&label)).await?;
        Ok(list.items.into_iter().find(|r| {
            r.spec.target.name.starts_with(&format!("{app}-"))
                && r.status.as_ref().is_some_and(|s| {
                    s.phase != ActionPhase::Pending
                        && s.phase != ActionPhase::Running
                        && s.reason.as_deref() != Some(kube_healer_api::reasons::WORKLOAD_LIMIT)
                })
        }))
    })
    .await
    .map_err(Into::into)
}

async fn budgets(ctx: Ctx) -> anyhow::Result<()> {
    let _op = Operator::start(&ctx.cluster, "budgets", &["--policy-selector", &selector(&ctx)]).await?;
    let node_names = [ctx.name("b0"), ctx.name("b1")];
    nodes::add_owned_nodes(&ctx.client, &node_names, &ctx.id, HEAL).await?;
    let ns = ctx.namespace("pdb").await?;
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &ns);
    for (name, min, always) in [
        ("guarded", 2, false),
        ("tolerant", 1, true),
        ("rolling", 1, false),
    ] {
        pdbs.create(
            &PostParams::default(),
            &serde_json::from_value(budget(name, min, always))?,
        )
        .await?;
    }
    let safety = json!({"maxConcurrent": 5, "rate": {"actions": 10, "per": "1m"}, "cooldown": "10m"});
    let deleting = ctx.name("delete");
    create_policy(&ctx, &deleting, json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]},
            "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["guarded", "tolerant"]}]}},
        "conditions": [{"class": "CrashLoop", "for": "3s"}], "actions": [{"action": "Delete"}], "safety": safety}))
    .await?;
    let restarting = ctx.name("restart");
    create_policy(&ctx, &restarting, json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]},
            "selector": {"matchLabels": {"app": "rolling"}}},
        "conditions": [{"class": "CrashLoop", "for": "3s"}], "actions": [{"action": "RestartOwner"}], "safety": safety}))
    .await?;
    let crashing = [
        ("guarded", 2, 3, "open /data/state: permission denied"),
        ("tolerant", 1, 4, "panic: runtime error: index out of range"),
        (
            "rolling",
            2,
            5,
            "error: migration 0042 failed: relation \"orders\" already exists",
        ),
    ];
    for (name, replicas, exit_code, last_words) in crashing {
        let scenario = Scenario::CrashLoop {
            restarts: 6,
            exit_code,
            message: last_words.into(),
        };
        let template = scenario_pod(&ns, name, None, &scenario);
        Api::<Deployment>::namespaced(ctx.client.clone(), &ns)
            .create(
                &PostParams::default(),
                &deployment(&ctx, &ns, name, replicas, template)?,
            )
            .await?;
    }

    // The control: the unhealthy pod the budget lets go is deleted.
    let tolerant = first_record(&ctx, &deleting, "tolerant").await?;
    ensure!(
        phase_reason(&tolerant) == (ActionPhase::Succeeded, "Completed".into()),
        "the pod its budget lets go (AlwaysAllow) was not deleted: {:?}: {}",
        phase_reason(&tolerant),
        message(&tolerant)
    );
    // The budget at its limit holds the delete, and the record names it.
    let guarded = first_record(&ctx, &deleting, "guarded").await?;
    ensure!(
        phase_reason(&guarded) == (ActionPhase::Skipped, "PDBBlocked".into())
            && message(&guarded).contains("disruption budget guarded"),
        "{:?}: {}",
        phase_reason(&guarded),
        message(&guarded)
    );
    // A delete the budget refused took no pod: the other guarded pod's is decided as its own
    // (the budget holds it too), not held for 10 minutes by the workload's limit.
    let records: Api<HealingAction> = Api::all(ctx.client.clone());
    let label = format!("{}={deleting}", kube_healer_api::POLICY_LABEL);
    wait::until(
        "both guarded pods' deletes held by their budget",
        HEAL,
        || async {
            let list = records.list(&ListParams::default().labels(&label)).await?;
            let blocked: std::collections::BTreeSet<String> = list
                .items
                .into_iter()
                .filter(|r| {
                    r.spec.target.name.starts_with("guarded-")
                        && r.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("PDBBlocked")
                })
                .map(|r| r.spec.target.name)
                .collect();
            Ok((blocked.len() == 2).then_some(()))
        },
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let left = pods.list(&ListParams::default().labels("app=guarded")).await?;
    ensure!(
        left.items.iter().all(|p| p.metadata.deletion_timestamp.is_none()),
        "a guarded pod was removed past its budget"
    );
    // RestartOwner: the workload is not restarted while its budget allows no disruption.
    let rolling = first_record(&ctx, &restarting, "rolling").await?;
    ensure!(
        phase_reason(&rolling) == (ActionPhase::Skipped, "PDBBlocked".into())
            && message(&rolling).contains("PodDisruptionBudget rolling"),
        "{:?}: {}",
        phase_reason(&rolling),
        message(&rolling)
    );
    ensure!(
        !support::restarted(&ctx, &ns, "rolling").await?,
        "rolling was restarted past its budget"
    );
    println!(
        "    held: {}; held: {}; deleted: {}",
        message(&guarded),
        message(&rolling),
        message(&tolerant)
    );
    Ok(())
}
