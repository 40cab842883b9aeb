//! A failure that drops and comes back is not a new failure each time. KernelDeadlock on a node
//! goes off and on every few seconds for 40 s (shorter gaps than the 10 s debounce): one episode,
//! the node cordoned once and never uncordoned while it flaps. Then it stays off: uncordoned once
//! the debounce has passed. Then it comes back within the policy's cooldown: the same episode
//! goes on to step 2 (held by the cooldown), and the node is not cordoned again at step 1.
//! Before the debounce and the ladder rebuilt from the records, each return was a new episode:
//! a cordon and an uncordon per flap.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::ensure;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube_healer_api::HealingAction;
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::wait;
use serde_json::json;

use crate::support;
use support::{HEAL, Operator, PostedNodes, create_policy, kernel_deadlock, now_rfc3339, records, selector};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![test(
        "a_failure_that_drops_and_returns_is_one_episode_and_goes_on_up_its_ladder",
        returns,
    )]
}

/// The node's cordon as seen every half second: how many times it was cordoned and uncordoned.
fn watch_cordon(api: Api<Node>, name: String) -> (Arc<Mutex<(u32, u32)>>, tokio::task::JoinHandle<()>) {
    let counts = Arc::new(Mutex::new((0u32, 0u32)));
    let seen = counts.clone();
    let task = tokio::spawn(async move {
        let mut was = false;
        loop {
            if let Ok(node) = api.get(&name).await {
                let now = node.spec.and_then(|s| s.unschedulable) == Some(true);
                if now != was
                    && let Ok(mut c) = seen.lock()
                {
                    if now { c.0 += 1 } else { c.1 += 1 }
                }
                was = now;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    (counts, task)
}

/// (step, reason) of each record, by step.
fn steps(recs: &[HealingAction]) -> Vec<(i32, String)> {
    let mut out: Vec<_> = recs
        .iter()
        .map(|r| (r.spec.step, support::phase_reason(r).1))
        .collect();
    out.sort();
    out
}

async fn returns(ctx: Ctx) -> anyhow::Result<()> {
    let args = ["--policy-selector", &selector(&ctx), "--clear-debounce", "10s"];
    let _op = Operator::start(&ctx.cluster, "returns", &args).await?;
    let api: Api<Node> = Api::all(ctx.client.clone());
    let name = ctx.name("k");
    let owner = json!({"kube-healer.test/owner": ctx.id});
    let posted = PostedNodes::create(
        &ctx.client,
        std::slice::from_ref(&name),
        owner.clone(),
        kernel_deadlock(false, &now_rfc3339(-3600)),
    )
    .await?;
    let (counts, watcher) = watch_cordon(api.clone(), name.clone());
    let policy = ctx.name("deadlock");
    create_policy(
        &ctx,
        &policy,
        json!({"target": {"kind": "Node", "selector": {"matchLabels": owner}},
        "conditions": [{"class": "NodeCondition", "conditionType": "KernelDeadlock", "for": "2s"}],
        "actions": [{"action": "Cordon", "escalateAfter": "5s"}, {"action": "Event"}],
        "safety": {"maxUnhealthy": "100%", "cooldown": "3m", "maxAttempts": 3, "maxConcurrent": 5}}),
    )
    .await?;
    // On 8 s, off 4 s, five times: gaps shorter than the debounce.
    let start = Instant::now();
    for _ in 0..5 {
        posted.set(&name, kernel_deadlock(true, &now_rfc3339(0)));
        tokio::time::sleep(Duration::from_secs(8)).await;
        posted.set(&name, kernel_deadlock(false, &now_rfc3339(0)));
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    let flapping = counts.lock().map(|c| *c).unwrap_or_default();
    ensure!(
        flapping == (1, 0),
        "while it flapped: cordoned {} times, uncordoned {} times (want once, never)",
        flapping.0,
        flapping.1
    );
    // Off for good: lifted after the debounce.
    wait::until("the node uncordoned", HEAL, || async {
        Ok((counts.lock().map(|c| c.1).unwrap_or_default() == 1).then_some(()))
    })
    .await?;
    let cleared = start.elapsed();
    // Back within the cooldown: the episode goes on at step 2, held by the cooldown.
    posted.set(&name, kernel_deadlock(true, &now_rfc3339(0)));
    let recs = records(&ctx, &policy, 2).await?;
    let episodes: std::collections::BTreeSet<_> = recs.iter().map(|r| r.spec.failing_since.clone()).collect();
    ensure!(
        steps(&recs) == [(1, "Completed".to_string()), (2, "Cooldown".to_string())] && episodes.len() == 1,
        "records (step, reason): {:?}, episodes {episodes:?}",
        steps(&recs)
    );
    // A node's record carries its timeline too: the condition that failed, with its time.
    ensure!(
        recs.iter().all(|r| r
            .spec
            .evidence
            .timeline
            .iter()
            .any(|m| m.kind == "condition" && m.detail == "KernelDeadlock=True (DockerHung)")),
        "the records' timelines: {:#?}",
        recs.iter().map(|r| &r.spec.evidence.timeline).collect::<Vec<_>>()
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    let after = counts.lock().map(|c| *c).unwrap_or_default();
    ensure!(after == (1, 1), "cordoned again on its return: {after:?}");
    println!(
        "    5 flaps in 60 s: cordoned once, lifted {:.0} s in (debounce 10 s); back within the cooldown: step 2 held, not a new step 1",
        cleared.as_secs_f64()
    );
    watcher.abort();
    Ok(())
}
