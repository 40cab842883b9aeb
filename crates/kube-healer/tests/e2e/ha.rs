//! Two replicas, one leader: the leader alone decides; when it is killed the other takes over
//! within the bound its election settings give. Twenty SIGKILLs of a single operator at random points lose no action and
//! repeat none: every failing pod ends with one record of its decision and one successful API
//! call, as counted by the API server's audit log. (Ten failovers: tests/failovers.rs.)

use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::{nodes, scenario};
use serde_json::json;

use crate::support;
use support::Operator;
use support::once::{delete_evicted_policy, each_healed_once, evicted_pods, leaders, takeover_limit};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![
        test(
            "only_the_leader_decides_and_a_follower_takes_over_when_it_dies",
            failover,
        ),
        test(
            "twenty_kills_at_random_points_lose_no_action_and_repeat_none",
            twenty_kills,
        )
        .ignored(),
    ]
}

async fn failover(ctx: Ctx) -> anyhow::Result<()> {
    let selector = support::selector(&ctx);
    let args = [
        "--leader-election-namespace",
        support::CHART_NAMESPACE,
        "--policy-selector",
        &selector,
        "--log",
        "info",
    ];
    let a = Operator::start(
        &ctx.cluster,
        "replica-a",
        &[&args[..], &["--identity", "replica-a"]].concat(),
    )
    .await?;
    let b = Operator::start(
        &ctx.cluster,
        "replica-b",
        &[&args[..], &["--identity", "replica-b"]].concat(),
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let leading = loop {
        let l = leaders(&[&a, &b]).await?;
        if l.iter().filter(|x| **x).count() == 1 {
            break l;
        }
        if Instant::now() > deadline {
            bail!(
                "no single leader within 30 s: {l:?}\n--- a:\n{}\n--- b:\n{}",
                a.log_tail(15),
                b.log_tail(15)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (leader, follower) = if leading[0] { (a, b) } else { (b, a) };

    // A policy condition comes due: only the leader decides.
    let node = ctx.name("n");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("ha").await?;
    support::create_policy(
        &ctx,
        &ctx.name("stuck"),
        json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}}, "conditions": [{"class": "StuckTerminating", "for": "1s"}],
            "actions": [{"action": "ForceDelete"}], "safety": {"dryRun": true}}),
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    scenario::stuck_terminating_pod(&pods, &ns, "stuck", &node).await?;
    let due = ["policy condition due", "target=pod/"];
    leader.wait_log(&due, Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(
        !follower.log().contains("policy condition due"),
        "the follower decided:\n{}",
        follower.log_tail(20)
    );

    // Kill the leader (SIGKILL: it cannot release the lease); the follower takes over within
    // what the election's settings allow.
    let killed = Instant::now();
    drop(leader);
    let limit = takeover_limit();
    loop {
        if leaders(&[&follower]).await? == [true] {
            break;
        }
        if killed.elapsed() > limit {
            bail!("no takeover within {limit:?}:\n{}", follower.log_tail(20));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let takeover = killed.elapsed();
    println!(
        "    takeover after the leader was killed: {:.1} s",
        takeover.as_secs_f64()
    );
    follower.wait_log(&due, support::HEAL).await?;
    Ok(())
}

async fn twenty_kills(ctx: Ctx) -> anyhow::Result<()> {
    let selector = support::selector(&ctx);
    let node = ctx.name("n");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("kill").await?;
    let policy = ctx.name("evicted");
    delete_evicted_policy(&ctx, &policy, &ns).await?;
    const PODS: usize = 20;
    let stream = tokio::spawn(evicted_pods(
        ctx.clone(),
        ns.clone(),
        node,
        "k",
        PODS,
        Duration::from_millis(1500),
    ));
    for i in 0..20 {
        let op = Operator::start(
            &ctx.cluster,
            &format!("kill-{i}"),
            &["--policy-selector", &selector],
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(fastrand::u64(50..2500))).await;
        drop(op); // SIGKILL
    }
    stream.await??;
    let _last = Operator::start(&ctx.cluster, "kill-last", &["--policy-selector", &selector]).await?;
    let summary = each_healed_once(&ctx, &policy, &ns, "k", PODS).await?;
    println!("    20 SIGKILLs survived: {summary}");
    Ok(())
}
