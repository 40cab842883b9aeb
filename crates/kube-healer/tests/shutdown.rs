//! OutOfService on the real cluster: a node whose kubelet stopped is tainted
//! node.kubernetes.io/out-of-service only once it has been unreachable and its Lease expired for
//! the policy's times (held Unsafe before), then Kubernetes' non-graceful node shutdown does the
//! rest: the taint manager evicts the StatefulSet pod, PodGC force-deletes it, the StatefulSet
//! starts it on the other node. When the node is back, the taint is removed.
//!
//! And a replica whose node list stalls (a test hook holds it, as a large cluster or a slow API
//! server would) decides nothing, not even a hold, until it has listed: a StatefulSet pod stuck
//! Terminating on a node it has not seen yet is never taken for one on a gone node.
//!
//! Its own cluster: the e2e cluster's tests act on no node that is down (see e2e/main.rs).

mod support;

use std::time::Duration;

use anyhow::{Context, ensure};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::harness::{Ctx, test};
use kube_healer_testenv::nodes::OWNER_LABEL;
use kube_healer_testenv::{ClusterOptions, Scenario, nodes, scenario_pod, wait};
use serde_json::json;
use support::{HEAL, Operator, create_policy, phase_reason, records, selector};

const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

fn main() -> std::process::ExitCode {
    kube_healer_testenv::harness::run(
        ClusterOptions::default(),
        vec![
            test(
                "a_node_shut_down_is_taken_out_of_service_on_the_evidence_and_its_stateful_pod_moves",
                shut_down,
            ),
            test(
                "a_replica_whose_node_list_stalls_decides_nothing_until_it_has_listed",
                slow_node_list,
            ),
        ],
    )
}

/// A one-replica StatefulSet on the test's nodes: db-0 lands on one of them.
async fn stateful_db(ctx: &Ctx, ns: &str) -> anyhow::Result<()> {
    let mut template = scenario_pod(ns, "db", None, &Scenario::Running);
    let spec = template.spec.as_mut().context("spec")?;
    spec.node_name = None;
    spec.node_selector = Some([(OWNER_LABEL.to_string(), ctx.id.clone())].into());
    let labels = [("app".to_string(), "db".to_string())].into();
    template.metadata = kube::api::ObjectMeta {
        labels: Some(labels),
        ..Default::default()
    };
    let sts: StatefulSet = serde_json::from_value(json!({"metadata": {"name": "db"},
        "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "template": template}}))?;
    Api::<StatefulSet>::namespaced(ctx.client.clone(), ns)
        .create(&PostParams::default(), &sts)
        .await?;
    Ok(())
}

/// db-0 running (not Terminating) on `node`.
async fn db_running_on(pods: Api<Pod>, node: String) -> kube_healer_testenv::Result<Option<()>> {
    let pod = pods.get_opt("db-0").await?;
    let on = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default()
    };
    let running = pod.as_ref().is_some_and(|p| {
        p.metadata.deletion_timestamp.is_none()
            && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    });
    Ok((running && pod.as_ref().is_some_and(|p| on(p) == node)).then_some(()))
}

fn tainted(node: &Node) -> bool {
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref());
    taints.unwrap_or_default().iter().any(|t| t.key == OUT_OF_SERVICE)
}

async fn shut_down(ctx: Ctx) -> anyhow::Result<()> {
    let op = Operator::start(&ctx.cluster, "shutdown", &["--policy-selector", &selector(&ctx)]).await?;
    let (dead, spare) = (ctx.name("dead"), ctx.name("spare"));
    nodes::add_owned_nodes(&ctx.client, std::slice::from_ref(&dead), &ctx.id, HEAL).await?;
    let ns = ctx.namespace("sd").await?;
    let policy = ctx.name("shutdown");
    let (lease_for, unreachable_for) = (15, 5);
    create_policy(
        &ctx,
        &policy,
        json!({"target": {"kind": "Node", "selector": {"matchLabels": {OWNER_LABEL: ctx.id}}},
        "conditions": [{"class": "NodeUnreachable", "for": "1s"}],
        "actions": [{"action": "OutOfService", "escalateAfter": "1h",
            "outOfService": {"leaseExpiredFor": format!("{lease_for}s"), "unreachableFor": format!("{unreachable_for}s")}}],
        "safety": {"maxUnhealthy": "100%", "maxConcurrent": 1, "rate": {"actions": 5, "per": "1h"}}}),
    )
    .await?;
    stateful_db(&ctx, &ns).await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let running_on = |node: String| db_running_on(pods.clone(), node);
    wait::until("db-0 running", HEAL, || running_on(dead.clone())).await?;
    nodes::add_owned_nodes(&ctx.client, std::slice::from_ref(&spare), &ctx.id, HEAL).await?;

    // The kubelet stops: no status, no Lease renewal.
    nodes::stop_heartbeats(&ctx.client, &dead).await?;
    let node_api: Api<Node> = Api::all(ctx.client.clone());
    let taken = wait::until(
        "the node tainted out-of-service",
        Duration::from_secs(120),
        || async { Ok(node_api.get(&dead).await.ok().filter(tainted)) },
    )
    .await;
    if let Err(e) = taken {
        anyhow::bail!("{e}; operator log:\n{}", op.log_tail(30));
    }
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), "kube-node-lease");
    let lease = leases.get(&dead).await?.spec.context("lease spec")?;
    let renewed = lease.renew_time.context("renewTime")?.0.as_second();
    let duration = i64::from(lease.lease_duration_seconds.unwrap_or(40));

    // First held (not unreachable long enough, or the Lease not expired long enough), then done.
    let recs = records(&ctx, &policy, 2).await?;
    let mut got: Vec<_> = recs.iter().map(|r| (phase_reason(r), r)).collect();
    got.sort_by_key(|((phase, _), _)| *phase == ActionPhase::Succeeded);
    let phases: Vec<_> = got.iter().map(|(p, _)| p.clone()).collect();
    ensure!(
        phases
            == [
                (ActionPhase::Skipped, "Unsafe".to_string()),
                (ActionPhase::Succeeded, "Completed".to_string())
            ],
        "{phases:?}"
    );
    let held = got[0]
        .1
        .status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    ensure!(held.contains("only for a node that is shut down"), "{held}");
    // Decided no sooner than the Lease had been expired for leaseExpiredFor (the operator saw
    // the last renewal no sooner than it was written).
    let decided = got[1].1.spec.decided_at.0.as_second();
    ensure!(
        decided >= renewed + duration + lease_for,
        "tainted at {decided}, the Lease renewed at {renewed} expired at {} and needed {lease_for}s more",
        renewed + duration
    );

    // Kubernetes' non-graceful shutdown: db-0 evicted by the taint, force-deleted by PodGC,
    // started again by its StatefulSet on the spare node.
    wait::until("db-0 running on the spare node", Duration::from_secs(90), || {
        running_on(spare.clone())
    })
    .await?;

    // The node is back: the taint goes.
    nodes::resume_heartbeats(&ctx.client, &dead).await?;
    wait::until("the out-of-service taint removed", HEAL, || async {
        Ok(node_api.get(&dead).await.ok().filter(|n| !tainted(n)).map(|_| ()))
    })
    .await?;
    Ok(())
}

async fn slow_node_list(ctx: Ctx) -> anyhow::Result<()> {
    let cut = ctx.name("cut");
    nodes::add_owned_nodes(&ctx.client, std::slice::from_ref(&cut), &ctx.id, HEAL).await?;
    let ns = ctx.namespace("sl").await?;
    stateful_db(&ctx, &ns).await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    wait::until("db-0 running", HEAL, || db_running_on(pods.clone(), cut.clone())).await?;
    // The node is cut off, and db-0, deleted, stays Terminating on it past its deadline.
    nodes::stop_heartbeats(&ctx.client, &cut).await?;
    nodes::wait_node_ready_status(&ctx.client, &cut, "Unknown", HEAL).await?;
    let grace = kube::api::DeleteParams {
        grace_period_seconds: Some(1),
        ..Default::default()
    };
    pods.delete("db-0", &grace).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let policy = ctx.name("stuck");
    create_policy(
        &ctx,
        &policy,
        json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
        "conditions": [{"class": "StuckTerminating", "for": "1s"}], "actions": [{"action": "ForceDelete"}],
        "safety": support::limits()}),
    )
    .await?;
    // The operator starts (the leader: no election) and its node list stalls for 12 s.
    let pause = 12;
    let started = k8s_openapi::jiff::Timestamp::now().as_second();
    let op = Operator::start_with_env(
        &ctx.cluster,
        "slow-nodes",
        &["--policy-selector", &selector(&ctx)],
        &[
            ("KUBE_HEALER_FAILPOINT", "slow-node-list"),
            ("KUBE_HEALER_FAILPOINT_PAUSE_SECONDS", &pause.to_string()),
        ],
    )
    .await?;
    op.wait_log(&["failpoint reached: pausing"], HEAL).await?;
    let recs = records(&ctx, &policy, 1).await?;
    let decided = recs[0].spec.decided_at.0.as_second();
    ensure!(
        decided >= started + pause,
        "decided at {decided}, while the node list stalled ({started} to {})",
        started + pause
    );
    // Listed: the node is there and not confirmed gone, so the StatefulSet pod waits.
    let (phase, reason) = phase_reason(&recs[0]);
    ensure!(
        (phase, reason.as_str()) == (ActionPhase::Skipped, "Unsafe"),
        "{phase:?} {reason}"
    );
    ensure!(
        pods.get_opt("db-0")
            .await?
            .is_some_and(|p| p.metadata.deletion_timestamp.is_some()),
        "db-0 was force-deleted on a node that may still run it"
    );
    Ok(())
}
