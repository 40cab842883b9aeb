//! OutOfService on the real cluster: a node whose kubelet stopped is tainted
//! node.kubernetes.io/out-of-service only once it has been unreachable and its Lease expired for
//! the policy's times (held Unsafe before), then Kubernetes' non-graceful node shutdown does the
//! rest: the taint manager evicts the StatefulSet pod, PodGC force-deletes it, the StatefulSet
//! starts it on the other node. When the node is back, the taint is removed.
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
        vec![test(
            "a_node_shut_down_is_taken_out_of_service_on_the_evidence_and_its_stateful_pod_moves",
            shut_down,
        )],
    )
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
    // A one-replica StatefulSet on the test's nodes: db-0 lands on the only one.
    let mut template = scenario_pod(&ns, "db", None, &Scenario::Running);
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
    Api::<StatefulSet>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &sts)
        .await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let on = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default()
    };
    let running_on = |node: String| {
        let pods = pods.clone();
        async move {
            let pod = pods.get_opt("db-0").await?;
            let running = pod.as_ref().is_some_and(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            });
            Ok((running && pod.as_ref().is_some_and(|p| on(p) == node)).then_some(()))
        }
    };
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
