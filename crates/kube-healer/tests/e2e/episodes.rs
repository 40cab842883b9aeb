//! A failure counted from events that began before the policy's window, and goes on: one
//! episode, whatever the window says at each evaluation; the ladder escalates after its
//! escalateAfter and stops at maxAttempts, one record each (a new episode at every evaluation
//! used to restart the ladder, and wrote a record each time).

use std::time::Duration;

use anyhow::ensure;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::{Scenario, nodes, scenario_pod, wait};
use serde_json::json;

use crate::support;
use support::{HEAL, Operator, create_policy, now_rfc3339, phase_reason, records, selector};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![test(
        "an_event_series_begun_before_the_window_is_one_episode_escalated_and_capped",
        series,
    )]
}

async fn series(ctx: Ctx) -> anyhow::Result<()> {
    let _op = Operator::start(&ctx.cluster, "episodes", &["--policy-selector", &selector(&ctx)]).await?;
    let node = ctx.name("n");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("ep").await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pod = pods
        .create(
            &PostParams::default(),
            &scenario_pod(&ns, "mounting", Some(&node), &Scenario::Running),
        )
        .await?;
    wait::pod_phase(&pods, "mounting", "Running", HEAL).await?;
    let policy = ctx.name("mounts");
    // 3 FailedMount within 20 s; an Event, escalated after 10 s to a second, at most 3 actions.
    create_policy(&ctx, &policy, json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
        "conditions": [{"class": "EventPattern", "reason": "FailedMount", "count": 3, "window": "20s"}],
        "actions": [{"action": "Event", "escalateAfter": "10s"}, {"action": "Event", "escalateAfter": "10s"}],
        "safety": {"maxAttempts": 3, "maxConcurrent": 5, "cooldown": "5s", "rate": {"actions": 100, "per": "1m"}}}))
    .await?;
    // The kubelet's series on the pod: begun 2 minutes ago, long before the 20 s window, and
    // going on, one occurrence every 2 s, for 70 s.
    let events: Api<Event> = Api::namespaced(ctx.client.clone(), &ns);
    let event: Event = serde_json::from_value(json!({
        "metadata": {"name": "mounting.failedmount"},
        "involvedObject": {"kind": "Pod", "namespace": ns, "name": "mounting", "uid": pod.metadata.uid},
        "reason": "FailedMount", "type": "Warning",
        "message": "MountVolume.SetUp failed for volume \"data\": mount failed: exit status 32",
        "count": 60, "firstTimestamp": now_rfc3339(-120), "lastTimestamp": now_rfc3339(0),
        "source": {"component": "kubelet", "host": node}}))?;
    events.create(&PostParams::default(), &event).await?;
    for n in 0..35 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let body = json!({"count": 61 + n, "lastTimestamp": now_rfc3339(0)});
        events
            .patch(
                "mounting.failedmount",
                &PatchParams::default(),
                &Patch::Merge(body),
            )
            .await?;
    }
    let recs = records(&ctx, &policy, 4).await?;
    let mut steps: Vec<(i32, String, String)> = recs
        .iter()
        .map(|r| {
            let (phase, reason) = phase_reason(r);
            let since = r
                .spec
                .failing_since
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default();
            (r.spec.step, format!("{phase:?}/{reason}"), since)
        })
        .collect();
    steps.sort();
    let episodes: std::collections::BTreeSet<&String> = steps.iter().map(|s| &s.2).collect();
    ensure!(episodes.len() == 1, "one episode expected: {steps:?}");
    let outcomes: Vec<(i32, &str)> = steps.iter().map(|(s, o, _)| (*s, o.as_str())).collect();
    ensure!(
        outcomes
            == [
                (1, "Succeeded/Completed"),
                (2, "Skipped/MaxAttempts"),
                (2, "Succeeded/Completed"),
                (2, "Succeeded/Completed")
            ],
        "step 1, step 2 twice, then held by maxAttempts: {outcomes:?}"
    );
    println!(
        "    70 s of a series begun before its 20 s window: one episode, {} records",
        recs.len()
    );
    Ok(())
}
