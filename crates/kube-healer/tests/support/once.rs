//! Healing done once: leaders among replicas, a stream of failing pods, and the check that each
//! was healed by exactly one recorded decision and one successful API call (the API server's
//! audit log counts the calls).

use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube_healer_testenv::harness::Ctx;
use serde_json::json;

use super::Operator;

/// A replica electing its leader on the chart's Lease, deciding on the test's policies only.
pub async fn replica(ctx: &Ctx, identity: String) -> anyhow::Result<Operator> {
    let selector = super::selector(ctx);
    let args = [
        "--leader-election-namespace",
        super::CHART_NAMESPACE,
        "--policy-selector",
        &selector,
        "--identity",
        &identity,
    ];
    Operator::start(&ctx.cluster, &identity, &args).await
}

/// Which of the replicas lead, by the kube_healer_leader metric.
pub async fn leaders(ops: &[&Operator]) -> anyhow::Result<Vec<bool>> {
    let mut out = Vec::new();
    for op in ops {
        out.push(op.metric("kube_healer_leader").await?.unwrap_or(0.0) == 1.0);
    }
    Ok(out)
}

/// Waits until exactly one of the replicas leads; returns its index.
pub async fn single_leader(ops: &[&Operator], within: Duration) -> anyhow::Result<usize> {
    let deadline = Instant::now() + within;
    loop {
        let l = leaders(ops).await?;
        if l.iter().filter(|x| **x).count() == 1 {
            return Ok(l.iter().position(|x| *x).unwrap_or(0));
        }
        if Instant::now() > deadline {
            bail!("no single leader within {within:?}: {l:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A policy deleting Evicted pods in `ns`, fast and with room for every pod.
pub async fn delete_evicted_policy(ctx: &Ctx, name: &str, ns: &str) -> anyhow::Result<()> {
    super::create_policy(
        ctx,
        name,
        json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
            "conditions": [{"class": "Evicted", "for": "1s"}], "actions": [{"action": "Delete"}],
            "safety": {"maxConcurrent": 2, "rate": {"actions": 1000, "per": "1m"}, "maxAttempts": 1}}),
    )
    .await
}

/// Evicted pods `<prefix>-NN`, one every `every`.
pub async fn evicted_pods(
    ctx: Ctx,
    ns: String,
    node: String,
    prefix: &str,
    count: usize,
    every: Duration,
) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    for i in 0..count {
        let name = format!("{prefix}-{i:02}");
        pods.create(
            &PostParams::default(),
            &kube_healer_testenv::scenario_pod(
                &ns,
                &name,
                Some(&node),
                &kube_healer_testenv::Scenario::evicted(),
            ),
        )
        .await?;
        tokio::time::sleep(every).await;
    }
    Ok(())
}

/// Every pod of `prefix` is gone, with exactly one decision recorded (Succeeded) and exactly one
/// delete the API server answered 200 (others, if any, found it gone); nothing else was decided.
pub async fn each_healed_once(
    ctx: &Ctx,
    policy: &str,
    ns: &str,
    prefix: &str,
    count: usize,
) -> anyhow::Result<String> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    kube_healer_testenv::wait::until("every failing pod deleted", Duration::from_secs(120), || async {
        let left = pods.list_metadata(&Default::default()).await?.items.len();
        Ok((left == 0).then_some(()))
    })
    .await?;
    // Removals decided together share a batch record: each pod is counted with its own outcome.
    let recs = super::records::records_naming(ctx, policy, count).await?;
    let by_pod = super::records::outcomes_by_pod(&recs);
    let mut extra_calls = 0;
    for i in 0..count {
        let name = format!("{prefix}-{i:02}");
        let decided = by_pod.get(&name).cloned().unwrap_or_default();
        ensure!(
            decided == ["Succeeded/Completed"],
            "{name}: decisions recorded {decided:?} (one Succeeded expected)"
        );
        let answers = ctx.cluster.operator_requests("delete", "pods", ns, &name)?;
        ensure!(
            answers.iter().filter(|c| **c == 200).count() == 1,
            "{name}: the API server answered the operator's deletes with {answers:?}"
        );
        extra_calls += answers.len() - 1;
    }
    let named: usize = by_pod.values().map(Vec::len).sum();
    ensure!(
        named == count,
        "{named} decisions recorded for {count} pods: {by_pod:?}"
    );
    Ok(format!(
        "{count} pods, {} records, {count} successful deletes, {extra_calls} repeated delete calls that found the pod gone",
        recs.len()
    ))
}
