//! Ten failovers during a steady stream of failures: two replicas elect a leader, the leader is
//! killed (SIGKILL, so it cannot release the Lease) ten times at random moments while Evicted pods
//! keep arriving, and a new replica joins each time. No action may be lost or repeated: every pod
//! ends deleted with one recorded decision and one successful delete, counted by the API server's
//! audit log. A failure prints what the test saw (leadership over time, takeovers, each pod's
//! decisions, records and delete answers), enough to tell a slow takeover from a lost action.
//! Its own binary: the election uses the chart's one Lease, on which ha's failover
//! (in the shared e2e binary) and lease.rs elect too.

mod support;

use std::time::{Duration, Instant};

use anyhow::Context;
use kube_healer_testenv::harness::{Ctx, test};
use kube_healer_testenv::{ClusterOptions, nodes};
use support::Operator;
use support::once::{
    Story, delete_evicted_policy, each_healed_once, evicted_pods, replica, single_leader, takeover_limit,
};

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
    let story = Story::default();
    let mut takeovers = Vec::new();
    let healed = failovers(&ctx, &story, &mut takeovers).await;
    let told = || {
        format!(
            "what the test saw:\n{}\ntakeovers: {takeovers:.1?} s",
            story.told()
        )
    };
    let summary = healed.with_context(told)?;
    let worst = takeovers.iter().cloned().fold(0.0, f64::max);
    println!(
        "    10 failovers survived: takeovers in {:.1} s on average, {worst:.1} s at worst (limit {:.1} s); {summary}",
        takeovers.iter().sum::<f64>() / takeovers.len() as f64,
        takeover_limit().as_secs_f64()
    );
    Ok(())
}

/// The leader is killed ten times while pods keep failing; each takeover's seconds are pushed to
/// `takeovers`, and every step is told in `story`.
async fn failovers(ctx: &Ctx, story: &Story, takeovers: &mut Vec<f64>) -> anyhow::Result<String> {
    let start = |i: usize| {
        story.say(format!("replica-{i} starting"));
        replica(ctx, format!("replica-{i}"))
    };
    let node = ctx.name("n");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("fo").await?;
    let mut replicas = vec![start(0).await?, start(1).await?];
    let policy = ctx.name("evicted");
    delete_evicted_policy(ctx, &policy, &ns).await?;
    const PODS: usize = 40;
    let stream = tokio::spawn(evicted_pods(
        ctx.clone(),
        ns.clone(),
        node,
        "e",
        PODS,
        Duration::from_millis(2500),
    ));
    for next in 2..12 {
        let refs: Vec<&Operator> = replicas.iter().collect();
        let leader = single_leader(&refs, Duration::from_secs(30), story).await?;
        // Let it work a moment, then SIGKILL it: it cannot release the lease.
        tokio::time::sleep(Duration::from_millis(fastrand::u64(500..3000))).await;
        let killed = Instant::now();
        let gone = replicas.remove(leader);
        story.say(format!("{} killed (SIGKILL)", gone.name()));
        drop(gone);
        let refs: Vec<&Operator> = replicas.iter().collect();
        let taken = single_leader(&refs, takeover_limit(), story).await;
        let logs = || {
            let tails: Vec<String> = refs
                .iter()
                .map(|op| format!("--- {}:\n{}", op.name(), op.log_tail(15)))
                .collect();
            tails.join("\n")
        };
        taken.with_context(logs)?;
        // The poll may overrun its deadline (a replica slow to answer is asked again).
        anyhow::ensure!(
            killed.elapsed() <= takeover_limit(),
            "takeover in {:.1} s, over the limit\n{}",
            killed.elapsed().as_secs_f64(),
            logs()
        );
        takeovers.push(killed.elapsed().as_secs_f64());
        story.say(format!("takeover in {:.1} s", killed.elapsed().as_secs_f64()));
        replicas.push(start(next).await?);
    }
    stream.await??;
    story.say("every pod created");
    each_healed_once(ctx, &policy, &ns, "e", PODS).await
}
