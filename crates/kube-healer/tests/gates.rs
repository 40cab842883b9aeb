//! Safety gates on the real cluster: each holds the action back, with a Skipped record naming the
//! reason, and the target untouched: cooldown, maxAttempts, the opt-out annotation, maxUnhealthy
//! (nodes down, and nodes failing the policy's own condition one at a time).
//! (Rate, dry run and the operator-wide switches are in e2e/heal.rs; the correlated storm in
//! storm.rs.) And retention: the oldest records beyond the count per policy are deleted, except
//! those of a failure in progress and those of policies the operator does not manage.
//!
//! Its own cluster: max_unhealthy expects BudgetExceeded on two NotReady nodes, and the operator
//! holds node actions as Correlated (checked first) once 3 nodes and 30% of the cluster's nodes are
//! NotReady or unreachable together; on a shared cluster, other tests' down nodes would count.

mod support;

use std::time::Duration;

use anyhow::ensure;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube_healer_api::HealingAction;
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::harness::{Ctx, test};
use kube_healer_testenv::{ClusterOptions, Scenario, nodes, scenario, scenario_pod, wait};
use serde_json::json;
use support::{
    HEAL, Operator, PostedNodes, create_policy, delete_evicted, kernel_deadlock, limits, now_rfc3339,
    phase_reason, ready, records, selector,
};

fn main() -> std::process::ExitCode {
    kube_healer_testenv::harness::run(
        ClusterOptions::default(),
        vec![
            test("cooldown_and_max_attempts_stop_the_ladder", cooldown_and_attempts),
            test("an_opted_out_pod_is_left_alone", opt_out),
            test(
                "max_unhealthy_stops_node_actions_when_too_many_are_down",
                max_unhealthy,
            ),
            test(
                "max_unhealthy_counts_the_nodes_failing_the_policy_s_own_condition",
                max_unhealthy_own,
            ),
            test(
                "records_beyond_the_count_per_policy_are_deleted_oldest_first",
                retention,
            ),
        ],
    )
}

/// (action, phase, reason) of every record, sorted by step then phase.
fn outcomes(recs: &[HealingAction]) -> Vec<(i32, String, ActionPhase, String)> {
    let mut v: Vec<_> = recs
        .iter()
        .map(|r| {
            let (phase, reason) = phase_reason(r);
            (r.spec.step, r.spec.action.to_string(), phase, reason)
        })
        .collect();
    v.sort_by_key(|o| format!("{o:?}"));
    v
}

async fn cooldown_and_attempts(ctx: Ctx) -> anyhow::Result<()> {
    let _op = Operator::start(&ctx.cluster, "ladder", &["--policy-selector", &selector(&ctx)]).await?;
    let node = ctx.name("n");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("lg").await?;
    let (cooling, attempts) = (ctx.name("cooling"), ctx.name("attempts"));
    let target = json!({"kind": "Pod", "namespaces": {"include": [ns]}});
    let conditions = json!([{"class": "StuckTerminating", "for": "1s"}]);
    // Step 2 is due a second after step 1, but the cooldown is an hour.
    create_policy(
        &ctx,
        &cooling,
        json!({"target": target, "conditions": conditions,
        "actions": [{"action": "Event", "escalateAfter": "1s"}, {"action": "Event"}],
        "safety": {"cooldown": "1h", "maxConcurrent": 5, "rate": {"actions": 10, "per": "1m"}}}),
    )
    .await?;
    // Three steps a second apart, but at most two attempts.
    create_policy(&ctx, &attempts, json!({"target": target, "conditions": conditions,
        "actions": [{"action": "Event", "escalateAfter": "1s"}, {"action": "Event", "escalateAfter": "1s"}, {"action": "Event"}],
        "safety": {"cooldown": "1s", "maxAttempts": 2, "maxConcurrent": 5, "rate": {"actions": 10, "per": "1m"}}})).await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    scenario::stuck_terminating_pod(&pods, &ns, "stuck", &node).await?;

    let done = |s: &str| (ActionPhase::Succeeded, s.to_string());
    let recs = records(&ctx, &cooling, 2).await?;
    let got = outcomes(&recs);
    ensure!(
        got.len() == 2
            && (got[0].2, got[0].3.clone()) == done("Completed")
            && got[1].0 == 2
            && (got[1].2, got[1].3.as_str()) == (ActionPhase::Skipped, "Cooldown"),
        "{got:?}"
    );
    let recs = records(&ctx, &attempts, 3).await?;
    let got = outcomes(&recs);
    ensure!(
        got.len() == 3
            && got[..2].iter().all(|o| (o.2, o.3.clone()) == done("Completed"))
            && got[2].0 == 3
            && (got[2].2, got[2].3.as_str()) == (ActionPhase::Skipped, "MaxAttempts"),
        "{got:?}"
    );
    // Held decisions are recorded once, not on every evaluation.
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(records(&ctx, &attempts, 3).await?.len() == 3);
    ensure!(records(&ctx, &cooling, 2).await?.len() == 2);

    // `kube-healer explain` tells the same story from the cluster.
    let text = support::explain(&ctx, &format!("pod/{ns}/stuck"))?;
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_default()
            .to_string()
    };
    ensure!(
        line("StuckTerminating").contains("past its deletionTimestamp"),
        "{text}"
    );
    ensure!(line(&format!("{cooling} ")).contains("held: Cooldown"), "{text}");
    ensure!(
        line(&format!("{attempts} ")).contains("held: MaxAttempts"),
        "{text}"
    );
    ensure!(
        text.lines().filter(|l| l.contains("Succeeded")).count() == 3,
        "{text}"
    );
    Ok(())
}

async fn opt_out(ctx: Ctx) -> anyhow::Result<()> {
    let _op = Operator::start(&ctx.cluster, "optout", &["--policy-selector", &selector(&ctx)]).await?;
    let node = ctx.name("n");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("oo").await?;
    let policy = ctx.name("leftovers");
    delete_evicted(&ctx, &policy, &ns, limits()).await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut keep = scenario_pod(&ns, "keep", Some(&node), &Scenario::evicted());
    keep.metadata
        .annotations
        .get_or_insert_default()
        .insert(kube_healer_api::OPT_OUT_ANNOTATION.into(), "true".into());
    pods.create(&PostParams::default(), &keep).await?;
    pods.create(
        &PostParams::default(),
        &scenario_pod(&ns, "clean", Some(&node), &Scenario::evicted()),
    )
    .await?;
    let recs = records(&ctx, &policy, 2).await?;
    for r in &recs {
        let expected = if r.spec.target.name == "keep" {
            (ActionPhase::Skipped, "OptedOut".to_string())
        } else {
            (ActionPhase::Succeeded, "Completed".to_string())
        };
        ensure!(
            phase_reason(r) == expected,
            "{}: {:?}",
            r.spec.target.name,
            r.status
        );
    }
    ensure!(
        pods.get_opt("keep").await?.is_some(),
        "the opted-out pod was deleted"
    );
    Ok(())
}

async fn max_unhealthy(ctx: Ctx) -> anyhow::Result<()> {
    let _op = Operator::start(&ctx.cluster, "budget", &["--policy-selector", &selector(&ctx)]).await?;
    let nodes_api: Api<Node> = Api::all(ctx.client.clone());
    let names: Vec<String> = (0..3).map(|i| ctx.name(&format!("m{i}"))).collect();
    // Posted every 2 s: unposted, the healthy one would go Unknown after the node lifecycle
    // controller's grace (20 s), and a decision made later on a loaded machine would count 3 of 3.
    let owner = json!({"kube-healer.test/owner": ctx.id});
    let down = "container runtime is down: PLEG is not healthy: pleg was last seen active 3m0s ago";
    let _down = PostedNodes::create(
        &ctx.client,
        &names[..2],
        owner.clone(),
        json!([ready("False", down)]),
    )
    .await?;
    let _up = PostedNodes::create(
        &ctx.client,
        &names[2..],
        owner,
        json!([ready("True", "kubelet is posting ready status")]),
    )
    .await?;
    let policy = ctx.name("notready");
    create_policy(
        &ctx,
        &policy,
        json!({"target": {"kind": "Node", "selector": {"matchLabels": {"kube-healer.test/owner": ctx.id}}},
        "conditions": [{"class": "NodeNotReady", "for": "1s"}], "actions": [{"action": "Cordon"}],
        "safety": {"maxUnhealthy": 1, "maxConcurrent": 5, "rate": {"actions": 10, "per": "1m"}}}),
    )
    .await?;
    let recs = records(&ctx, &policy, 2).await?;
    ensure!(recs.len() == 2, "{recs:#?}");
    for r in &recs {
        let status = r.status.as_ref();
        ensure!(
            phase_reason(r) == (ActionPhase::Skipped, "BudgetExceeded".into()),
            "{status:?}"
        );
        let message = status.and_then(|s| s.message.clone()).unwrap_or_default();
        ensure!(
            message.contains("2 of 3 selected nodes are unhealthy"),
            "{message}"
        );
    }
    for name in &names {
        let node = nodes_api.get(name).await?;
        ensure!(
            node.spec.and_then(|s| s.unschedulable) != Some(true),
            "{name} was cordoned"
        );
    }
    Ok(())
}

/// A condition spreading one node at a time, below what correlation counts as nodes failing
/// together (3 nodes): the policy's maxUnhealthy counts the nodes failing its own condition (not
/// only those down), so with maxUnhealthy 1 the first is cordoned and the second is held. Before,
/// only NotReady nodes counted and both were cordoned. The cluster budget is raised out of the way.
async fn max_unhealthy_own(ctx: Ctx) -> anyhow::Result<()> {
    let args = [
        "--policy-selector",
        &selector(&ctx),
        "--max-nodes-out-of-service",
        "100%",
    ];
    let _op = Operator::start(&ctx.cluster, "own-failures", &args).await?;
    let nodes_api: Api<Node> = Api::all(ctx.client.clone());
    let names: Vec<String> = (0..5).map(|i| ctx.name(&format!("k{i}"))).collect();
    let since = now_rfc3339(-3600);
    let owner = json!({"kube-healer.test/owner": ctx.id});
    let posted =
        PostedNodes::create(&ctx.client, &names, owner.clone(), kernel_deadlock(false, &since)).await?;
    let policy = ctx.name("deadlock");
    create_policy(
        &ctx,
        &policy,
        json!({"target": {"kind": "Node", "selector": {"matchLabels": owner}},
        "conditions": [{"class": "NodeCondition", "conditionType": "KernelDeadlock", "for": "1s"}],
        "actions": [{"action": "Cordon"}],
        "safety": {"maxUnhealthy": 1, "maxConcurrent": 5, "rate": {"actions": 10, "per": "1m"}}}),
    )
    .await?;
    posted.set(&names[0], kernel_deadlock(true, &now_rfc3339(0)));
    let first = records(&ctx, &policy, 1).await?;
    ensure!(
        phase_reason(&first[0]).0 == ActionPhase::Succeeded && first[0].spec.target.name == names[0],
        "{:?}",
        first[0].status
    );
    posted.set(&names[1], kernel_deadlock(true, &now_rfc3339(0)));
    let recs = records(&ctx, &policy, 2).await?;
    let second = recs
        .iter()
        .find(|r| r.spec.target.name == names[1])
        .ok_or_else(|| anyhow::anyhow!("no record on {}", names[1]))?;
    let message = second
        .status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    ensure!(
        phase_reason(second) == (ActionPhase::Skipped, "BudgetExceeded".into())
            && message.contains("2 of 5 selected nodes are unhealthy"),
        "{:?}: {message}",
        phase_reason(second)
    );
    for (name, cordoned) in [(&names[0], true), (&names[1], false)] {
        let node = nodes_api.get(name).await?;
        ensure!(
            (node.spec.and_then(|s| s.unschedulable) == Some(true)) == cordoned,
            "{name}: cordoned should be {cordoned}"
        );
    }
    Ok(())
}

async fn retention(ctx: Ctx) -> anyhow::Result<()> {
    let node = ctx.name("n");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("rt").await?;
    let (kept, other) = (ctx.name("kept"), ctx.name("other"));
    let spec = json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
        "conditions": [{"class": "Evicted", "for": "1s"}], "actions": [{"action": "Event"}],
        "safety": limits()});
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    // Five records, a second apart (creation times have a resolution of one second).
    let op = Operator::start(&ctx.cluster, "recording", &["--policy-selector", &selector(&ctx)]).await?;
    create_policy(&ctx, &kept, spec).await?;
    for i in 0..5 {
        let name = format!("e{i}");
        pods.create(
            &PostParams::default(),
            &scenario_pod(&ns, &name, Some(&node), &Scenario::evicted()),
        )
        .await?;
        records(&ctx, &kept, i + 1).await?;
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    drop(op);
    // Four of the failures are over (the pods are gone); e0 still fails: its record stays, as
    // the memory that keeps its decision from being carried out twice.
    for i in 1..5 {
        pods.delete(&format!("e{i}"), &Default::default()).await?;
    }
    wait::until("the pods gone", HEAL, || async {
        Ok((pods.list(&ListParams::default()).await?.items.len() == 1).then_some(()))
    })
    .await?;
    // Records of a policy this operator does not manage stay, however many.
    let api: Api<HealingAction> = Api::all(ctx.client.clone());
    let foreign: HealingAction = serde_json::from_value(json!({
        "metadata": {"name": format!("{other}-1"), "labels": {kube_healer_api::POLICY_LABEL: other}},
        "spec": {"policy": other, "target": {"kind": "Pod", "namespace": ns, "name": "x", "uid": "u", "ref": format!("pod/{ns}/x")},
            "class": "Evicted", "action": "Event", "step": 1, "decidedAt": support::now_rfc3339(0),
            "evidence": {"summary": "made by the test"}}}))?;
    api.create(&PostParams::default(), &foreign).await?;

    let _op = Operator::start(
        &ctx.cluster,
        "retaining",
        &["--policy-selector", &selector(&ctx), "--records-per-policy", "2"],
    )
    .await?;
    let lp = ListParams::default().labels(&format!("{}={kept}", kube_healer_api::POLICY_LABEL));
    let left = wait::until("two records of the policy left", HEAL, || async {
        let items = api.list(&lp).await?.items;
        Ok((items.len() == 2).then_some(items))
    })
    .await?;
    let mut targets: Vec<String> = left.iter().map(|r| r.spec.target.name.clone()).collect();
    targets.sort();
    let created: Vec<_> = left
        .iter()
        .map(|r| (r.spec.target.name.clone(), r.metadata.creation_timestamp.clone()))
        .collect();
    ensure!(
        targets == ["e0", "e4"],
        "the newest and the one still failing are kept: {created:?}"
    );
    ensure!(
        api.get_opt(&format!("{other}-1")).await?.is_some(),
        "a record of a policy this operator does not manage was deleted"
    );
    Ok(())
}
