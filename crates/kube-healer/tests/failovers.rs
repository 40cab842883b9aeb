//! Ten failovers during a steady stream of failures: two replicas elect a leader, the leader is
//! killed (SIGKILL, so it cannot release the Lease) ten times at random moments while Evicted pods
//! keep arriving, and a new replica joins each time. No action may be lost or repeated: every pod
//! ends deleted with one recorded decision and one successful delete, counted by the API server's
//! audit log. Its own binary: the election uses the chart's one Lease, on which ha's failover
//! (in the shared e2e binary) and lease.rs elect too.

mod support;

use std::time::{Duration, Instant};

use kube_healer_testenv::harness::{Ctx, test};
use kube_healer_testenv::{ClusterOptions, nodes};
use support::Operator;
use support::once::{delete_evicted_policy, each_healed_once, evicted_pods, replica, single_leader};

fn main() -> std::process::ExitCode {
    kube_healer_testenv::harness::run(
        ClusterOptions::default(),
        vec![
            test(
                "ten_failovers_during_healing_lose_no_action_and_repeat_none",
                ten_failovers,
            )
            .ignored(),
        ],
    )
}

async fn ten_failovers(ctx: Ctx) -> anyhow::Result<()> {
    let start = |i: usize| replica(&ctx, format!("replica-{i}"));
    let node = ctx.name("n");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("fo").await?;
    let mut replicas = vec![start(0).await?, start(1).await?];
    let policy = ctx.name("evicted");
    delete_evicted_policy(&ctx, &policy, &ns).await?;
    const PODS: usize = 40;
    let stream = tokio::spawn(evicted_pods(
        ctx.clone(),
        ns.clone(),
        node,
        "e",
        PODS,
        Duration::from_millis(2500),
    ));
    let mut takeovers = Vec::new();
    for next in 2..12 {
        let refs: Vec<&Operator> = replicas.iter().collect();
        let leader = single_leader(&refs, Duration::from_secs(30)).await?;
        // Let it work a moment, then SIGKILL it: it cannot release the lease.
        tokio::time::sleep(Duration::from_millis(fastrand::u64(500..3000))).await;
        let killed = Instant::now();
        drop(replicas.remove(leader));
        let refs: Vec<&Operator> = replicas.iter().collect();
        single_leader(&refs, Duration::from_secs(15)).await?;
        takeovers.push(killed.elapsed().as_secs_f64());
        replicas.push(start(next).await?);
    }
    stream.await??;
    let summary = each_healed_once(&ctx, &policy, &ns, "e", PODS).await?;
    let worst = takeovers.iter().cloned().fold(0.0, f64::max);
    println!(
        "    10 failovers survived: takeovers in {:.1} s on average, {worst:.1} s at worst; {summary}",
        takeovers.iter().sum::<f64>() / takeovers.len() as f64
    );
    Ok(())
}
