//! What keeps a node out of service is counted from marks on the nodes themselves, so a restart
//! starts from the truth (issue 32 (g)). A node Job running on one node (RunJob: no cordon) and a
//! deleted policy's cordon on another fill a disruption budget of 2. The operator restarts; past
//! the two minutes for which an action just sent counts in memory, a third node fails: it is
//! held (BudgetExceeded), not cordoned. The control: once the Job ends,
//! its mark comes off, and the third node is cordoned. Its own cluster: the budget counts every
//! node the operator holds, so another test's nodes would count.

mod support;

use std::time::Duration;

use anyhow::{Context, ensure};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube_healer_api::{HealingPolicy, JOB_BY_ANNOTATION, NODE_LABEL, NodeJob};
use kube_healer_testenv::harness::{Ctx, test};
use kube_healer_testenv::{ClusterOptions, wait};
use serde_json::json;
use support::{
    HEAL, JOBS_NAMESPACE, Operator, PostedNodes, create_policy, kernel_deadlock, now_rfc3339, phase_reason,
    records, selector,
};

fn main() -> std::process::ExitCode {
    kube_healer_testenv::harness::run(
        ClusterOptions::default(),
        vec![test(
            "a_node_job_and_a_deleted_policy_s_cordon_spend_the_budget_across_a_restart",
            marks,
        )],
    )
}

/// A Ready node's conditions with node-problem-detector's `condition`, True (`on`) or False.
fn reporting(condition: &str, on: bool) -> serde_json::Value {
    let mut conditions = kernel_deadlock(on, &now_rfc3339(if on { 0 } else { -3600 }));
    conditions[1]["type"] = json!(condition);
    conditions
}

fn annotation(n: &Node, key: &str) -> Option<String> {
    n.metadata.annotations.as_ref()?.get(key).cloned()
}

fn cordoned(n: &Node) -> bool {
    n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)
}

/// A node of its own reporting `condition`, and a policy taking `action` on it.
async fn failing(
    ctx: &Ctx,
    case: &str,
    condition: &str,
    action: serde_json::Value,
) -> anyhow::Result<(PostedNodes, String, String)> {
    let node = ctx.name(case);
    let labels = json!({"kube-healer.test/owner": ctx.id, "kube-healer.test/case": case});
    let posted = PostedNodes::create(
        &ctx.client,
        std::slice::from_ref(&node),
        labels,
        reporting(condition, false),
    )
    .await?;
    let policy = ctx.name(&format!("p-{case}"));
    create_policy(ctx, &policy, json!({"target": {"kind": "Node", "selector": {"matchLabels": {"kube-healer.test/case": case, "kube-healer.test/owner": ctx.id}}},
        "conditions": [{"class": "NodeCondition", "conditionType": condition, "for": "1s"}],
        "actions": [action], "safety": {"maxUnhealthy": "100%", "maxConcurrent": 5, "rate": {"actions": 10, "per": "1m"}}}))
    .await?;
    posted.set(&node, reporting(condition, true));
    Ok((posted, node, policy))
}

async fn until_node(
    api: &Api<Node>,
    node: &str,
    what: &str,
    check: impl Fn(&Node) -> bool,
) -> anyhow::Result<()> {
    wait::until(&format!("{node}: {what}"), HEAL, || async {
        Ok(check(&api.get(node).await?).then_some(()))
    })
    .await
    .map_err(Into::into)
}

async fn marks(ctx: Ctx) -> anyhow::Result<()> {
    let crds: Vec<_> = kube_healer_api::crds().into_iter().map(|(_, crd)| crd).collect();
    kube_healer_testenv::crds::install(&ctx.client, &crds).await?;
    let slow = ctx.name("slow");
    let definition: NodeJob = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "NodeJob", "metadata": {"name": slow},
        "spec": {"description": "runs long (its node has no kubelet: it never starts)", "activeDeadlineSeconds": 600,
            "podSpec": {"containers": [{"name": "wait", "image": "127.0.0.1:1/node-tools:1", "command": ["sleep", "600"]}]}}}))?;
    Api::<NodeJob>::all(ctx.client.clone())
        .create(&PostParams::default(), &definition)
        .await?;
    let selector = selector(&ctx);
    let args = ["--policy-selector", &selector, "--max-nodes-out-of-service", "2"];
    let first = Operator::start(&ctx.cluster, "marks", &args).await?;
    let api: Api<Node> = Api::all(ctx.client.clone());

    // One node runs a node Job: marked, not cordoned.
    let run_job = json!({"action": "RunJob", "runJob": {"nodeJob": slow}});
    let (_jobbed, job_node, job_policy) = failing(&ctx, "job", "FrequentKubeletRestart", run_job).await?;
    until_node(&api, &job_node, "marked as running its node job", |n| {
        annotation(n, JOB_BY_ANNOTATION).as_deref() == Some(job_policy.as_str())
    })
    .await?;
    ensure!(!cordoned(&api.get(&job_node).await?), "RunJob cordoned its node");
    // One node cordoned by a policy then deleted, the node still failing.
    let cordon = json!({"action": "Cordon"});
    let (_deleted, deleted_node, deleted_policy) =
        failing(&ctx, "deleted", "ReadonlyFilesystem", cordon.clone()).await?;
    until_node(&api, &deleted_node, "cordoned", cordoned).await?;
    Api::<HealingPolicy>::all(ctx.client.clone())
        .delete(&deleted_policy, &Default::default())
        .await?;

    // The next process knows nothing of what the first sent: only the nodes tell.
    drop(first);
    let second = Operator::start(&ctx.cluster, "marks-restarted", &args).await?;
    second
        .wait_log(&["every watch has listed: deciding"], HEAL)
        .await?;
    // Past the two minutes an action just sent is counted in memory (the resumed node Job was
    // sent again by this process): from here on only the nodes' marks count.
    tokio::time::sleep(Duration::from_secs(125)).await;
    let (_held, held_node, held_policy) = failing(&ctx, "held", "KernelDeadlock", cordon).await?;
    let held = records(&ctx, &held_policy, 1).await?;
    ensure!(
        phase_reason(&held[0]) == (kube_healer_api::ActionPhase::Skipped, "BudgetExceeded".into()),
        "the third node was not held by the budget: {:?}: {}",
        phase_reason(&held[0]),
        support::message(&held[0])
    );
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        ensure!(
            !cordoned(&api.get(&held_node).await?),
            "a third node was taken out of service past the budget of 2"
        );
    }

    // The control: the node Job ends; its mark comes off; the budget it frees goes to the
    // held node.
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), JOBS_NAMESPACE);
    let job = jobs
        .list(&ListParams::default().labels(&format!("{NODE_LABEL}={job_node}")))
        .await?
        .items
        .into_iter()
        .next()
        .context("the node Job")?;
    let name = job.metadata.name.context("job name")?;
    jobs.delete(&name, &DeleteParams::background()).await?;
    until_node(&api, &job_node, "the node job's mark off", |n| {
        annotation(n, JOB_BY_ANNOTATION).is_none()
    })
    .await?;
    until_node(&api, &held_node, "cordoned once the budget had room", cordoned).await?;
    ensure!(
        cordoned(&api.get(&deleted_node).await?),
        "the deleted policy's cordon was lifted while its node still failed"
    );
    println!(
        "    across a restart: the node job and the deleted policy's cordon held the third node; the job ended, the third was cordoned"
    );
    Ok(())
}
