//! Two replicas, one leader: the leader alone decides; when it is killed the other takes over
//! within 15 seconds.

mod support;

use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube_healer_testenv::harness::{Ctx, test};
use kube_healer_testenv::{ClusterOptions, nodes, scenario};
use serde_json::json;
use support::Operator;

fn main() -> std::process::ExitCode {
    kube_healer_testenv::harness::run(
        ClusterOptions::default(),
        vec![test(
            "only_the_leader_decides_and_a_follower_takes_over_when_it_dies",
            failover,
        )],
    )
}

async fn leaders(ops: &[&Operator]) -> anyhow::Result<Vec<bool>> {
    let mut out = Vec::new();
    for op in ops {
        out.push(op.metric("kube_healer_leader").await?.unwrap_or(0.0) == 1.0);
    }
    Ok(out)
}

async fn failover(ctx: Ctx) -> anyhow::Result<()> {
    let args = [
        "--leader-election-namespace",
        support::CHART_NAMESPACE,
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
    let policy: kube_healer_api::HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy", "metadata": {"name": ctx.name("stuck")},
        "spec": {"target": {"kind": "Pod", "namespaces": {"include": [ns]}}, "conditions": [{"class": "StuckTerminating", "for": "1s"}],
            "actions": [{"action": "ForceDelete"}], "safety": {"dryRun": true}},
    }))?;
    Api::<kube_healer_api::HealingPolicy>::all(ctx.client.clone())
        .create(&PostParams::default(), &policy)
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

    // Kill the leader (SIGKILL: it cannot release the lease); the follower takes over.
    let killed = Instant::now();
    drop(leader);
    loop {
        if follower.metric("kube_healer_leader").await? == Some(1.0) {
            break;
        }
        if killed.elapsed() > Duration::from_secs(15) {
            bail!("no takeover within 15 s:\n{}", follower.log_tail(20));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let takeover = killed.elapsed();
    println!(
        "    takeover after the leader was killed: {:.1} s",
        takeover.as_secs_f64()
    );
    follower.wait_log(&due, Duration::from_secs(10)).await?;
    Ok(())
}
