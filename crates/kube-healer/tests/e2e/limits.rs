//! A policy's limits hold across restarts, whatever their length (issue 32 (d)): a rate window
//! longer than a day is counted from the records by the next process (it used to keep a day of
//! actions, so one restarted 25 hours on granted a fresh budget), and maxAttempts reached before
//! a restart is still reached after it.

use std::time::Duration;

use anyhow::ensure;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::{nodes, scenario, wait};
use serde_json::json;

use crate::support;
use support::{HEAL, Operator, create_policy, delete_evicted, evicted_pod, phase_reason, records, selector};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![test(
        "limits_longer_than_a_day_and_max_attempts_hold_across_restarts",
        limits,
    )]
}

/// A day and an hour, as the restarted operator's clock is set on.
const LATER: &str = "90000";

async fn limits(ctx: Ctx) -> anyhow::Result<()> {
    let node = ctx.name("n");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("lim").await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let (rate, attempts) = (ctx.name("weekly"), ctx.name("attempts"));
    let first = Operator::start(&ctx.cluster, "limits", &["--policy-selector", &selector(&ctx)]).await?;
    // One deletion per 48 hours.
    delete_evicted(
        &ctx,
        &rate,
        &ns,
        json!({"maxConcurrent": 5, "rate": {"actions": 1, "per": "48h"}}),
    )
    .await?;
    evicted_pod(&ctx, &ns, "first", &node).await?;
    wait::until("the first leftover removed", HEAL, || async {
        Ok(pods.get_opt("first").await?.is_none().then_some(()))
    })
    .await?;
    evicted_pod(&ctx, &ns, "second", &node).await?;
    let held = records(&ctx, &rate, 2).await?;
    ensure!(
        held.iter()
            .any(|r| phase_reason(r) == (ActionPhase::Skipped, "RateLimited".into())),
        "the second is held by the rate: {:?}",
        held.iter().map(phase_reason).collect::<Vec<_>>()
    );
    // Three steps a second apart, at most two attempts.
    create_policy(&ctx, &attempts, json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
        "conditions": [{"class": "StuckTerminating", "for": "1s"}],
        "actions": [{"action": "Event", "escalateAfter": "1s"}, {"action": "Event", "escalateAfter": "1s"}, {"action": "Event"}],
        "safety": {"cooldown": "1s", "maxAttempts": 2, "maxConcurrent": 5, "rate": {"actions": 10, "per": "1m"}}}))
    .await?;
    scenario::stuck_terminating_pod(&pods, &ns, "stuck", &node).await?;
    let ladder = records(&ctx, &attempts, 3).await?;
    let reasons: Vec<_> = ladder.iter().map(phase_reason).collect();
    ensure!(
        reasons.contains(&(ActionPhase::Skipped, "MaxAttempts".into())),
        "{reasons:?}"
    );
    drop(first);

    // The next process, a day and an hour on: the week's rate still counts the first deletion,
    // and the stuck pod's two attempts are still its two.
    let second = Operator::start(
        &ctx.cluster,
        "limits-restarted",
        &["--policy-selector", &selector(&ctx), "--test-clock-offset", LATER],
    )
    .await?;
    second
        .wait_log(&["every watch has listed: deciding"], HEAL)
        .await?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    ensure!(
        pods.get_opt("second").await?.is_some(),
        "a restart a day later granted the 48h rate a fresh budget"
    );
    let after = records(&ctx, &attempts, 3).await?;
    ensure!(
        after.len() == 3,
        "a third attempt after the restart: {:?}",
        after.iter().map(phase_reason).collect::<Vec<_>>()
    );
    let deleted = records(&ctx, &rate, 2).await?;
    ensure!(
        deleted.len() == 2,
        "{:?}",
        deleted.iter().map(phase_reason).collect::<Vec<_>>()
    );
    println!("    a day and an hour on, after a restart: the 48h rate and maxAttempts still hold");
    Ok(())
}
