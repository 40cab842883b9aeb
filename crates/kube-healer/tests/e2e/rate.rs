//! A policy's rate on the real cluster: Evicted leftovers deleted within it, the rest held, and
//! a restart that grants no fresh budget (the rate is counted from the records).

use std::time::Duration;

use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::{Scenario, nodes, scenario_pod, wait};
use serde_json::json;

use crate::support;
use support::{HEAL, Operator, delete_evicted, phase_reason, records};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![test(
        "evicted_leftovers_are_deleted_within_the_rate_the_rest_held_even_across_a_restart",
        evicted_with_rate,
    )]
}

/// One deletion per 10 minutes: one of three Evicted pods goes, two are held RateLimited; and a
/// restarted operator counts the rate from the records, so it deletes no more (a restart used to
/// grant a fresh budget, and the next pod went at once).
async fn evicted_with_rate(ctx: Ctx) -> anyhow::Result<()> {
    let op = Operator::start(
        &ctx.cluster,
        "evicted",
        &["--policy-selector", &format!("kube-healer.test/owner={}", ctx.id)],
    )
    .await?;
    let node = ctx.name("n");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("ev").await?;
    let policy = ctx.name("leftovers");
    delete_evicted(
        &ctx,
        &policy,
        &ns,
        json!({"maxConcurrent": 5, "rate": {"actions": 1, "per": "10m"}}),
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    for name in ["e1", "e2", "e3"] {
        pods.create(
            &PostParams::default(),
            &scenario_pod(&ns, name, Some(&node), &Scenario::evicted()),
        )
        .await?;
    }
    let recs = records(&ctx, &policy, 3).await?;
    let mut outcomes: Vec<(ActionPhase, String)> = recs.iter().map(phase_reason).collect();
    outcomes.sort_by_key(|o| format!("{o:?}"));
    ensure!(
        outcomes
            == [
                (ActionPhase::Skipped, "RateLimited".into()),
                (ActionPhase::Skipped, "RateLimited".into()),
                (ActionPhase::Succeeded, "Completed".into())
            ],
        "{outcomes:?}"
    );
    let deleted = recs
        .iter()
        .find(|r| phase_reason(r).0 == ActionPhase::Succeeded)
        .context("the deleted one")?;
    wait::until("the deleted pod to be gone", HEAL, || async {
        Ok(pods
            .get_opt(&deleted.spec.target.name)
            .await?
            .is_none()
            .then_some(()))
    })
    .await?;
    let left = pods.list(&ListParams::default()).await?.items.len();
    ensure!(left == 2, "the rate allowed one deletion; {left} pods left");

    // Restarted mid-rate: the new process lists the records before it decides, and holds.
    drop(op); // SIGKILL
    let again = Operator::start(
        &ctx.cluster,
        "evicted-again",
        &["--policy-selector", &format!("kube-healer.test/owner={}", ctx.id)],
    )
    .await?;
    again
        .wait_log(&["every watch has listed: deciding"], HEAL)
        .await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut deletes = 0;
    for name in ["e1", "e2", "e3"] {
        let answers = ctx.cluster.operator_requests("delete", "pods", &ns, name)?;
        deletes += answers.iter().filter(|c| **c == 200).count();
    }
    let left = pods.list(&ListParams::default()).await?.items.len();
    ensure!(
        deletes == 1 && left == 2,
        "after the restart: {deletes} deletions in the audit log, {left} pods left (the rate allows one per 10 minutes)"
    );
    Ok(())
}
