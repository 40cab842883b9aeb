//! ProbeFailure on the real cluster: a running pod whose readiness probe keeps failing is healed,
//! and its neighbour, unready with probes that only errored (which never make a container
//! unready), is left alone. kwok writes the pods' status as the kubelet would (Ready=False,
//! ContainersNotReady, the containers running and not restarting); the test posts the kubelet's
//! Unhealthy events with the kubelet's own texts (pkg/kubelet/prober/prober.go).

use anyhow::ensure;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::{Scenario, nodes, scenario_pod, wait};
use serde_json::json;

use crate::support;
use support::{HEAL, Operator, create_policy, now_rfc3339, phase_reason, records, selector};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![test(
        "a_pod_failing_its_readiness_probe_is_healed_and_one_whose_probe_errored_is_not",
        probe_failure,
    )]
}

const FAILED: &str = "Readiness probe failed: HTTP probe failed with statuscode: 503";
const ERRORED: &str = "Readiness probe errored and resulted in unknown state: rpc error: code = DeadlineExceeded desc = context deadline exceeded";

/// Posts the kubelet's Unhealthy event about `pod`'s container app, aggregated as its event
/// correlator does (one series, `count` occurrences since the container started).
async fn unhealthy(
    ctx: &Ctx,
    ns: &str,
    pod: &Pod,
    node: &str,
    message: &str,
    count: i32,
) -> anyhow::Result<()> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let event: Event = serde_json::from_value(json!({
        "metadata": {"generateName": format!("{name}.")},
        "involvedObject": {"kind": "Pod", "namespace": ns, "name": name, "uid": pod.metadata.uid,
            "apiVersion": "v1", "fieldPath": "spec.containers{app}"},
        "reason": "Unhealthy", "message": message, "count": count, "type": "Warning",
        "firstTimestamp": now_rfc3339(0), "lastTimestamp": now_rfc3339(0),
        "source": {"component": "kubelet", "host": node},
    }))?;
    Api::<Event>::namespaced(ctx.client.clone(), ns)
        .create(&PostParams::default(), &event)
        .await?;
    Ok(())
}

async fn probe_failure(ctx: Ctx) -> anyhow::Result<()> {
    let node = ctx.name("n");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("pr").await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    for name in ["failing", "errored"] {
        pods.create(
            &PostParams::default(),
            &scenario_pod(&ns, name, Some(&node), &Scenario::Unready),
        )
        .await?;
    }
    let mut running = Vec::new();
    for name in ["failing", "errored"] {
        wait::pod_phase(&pods, name, "Running", HEAL).await?;
        running.push(pods.get(name).await?);
    }
    unhealthy(&ctx, &ns, &running[0], &node, FAILED, 5).await?;
    unhealthy(&ctx, &ns, &running[1], &node, ERRORED, 5).await?;

    // `kube-healer explain` tells the finding and its evidence before any policy acts (it reads
    // HealingActions: the CRDs as the chart installs them).
    let crds: Vec<_> = kube_healer_api::crds().into_iter().map(|(_, crd)| crd).collect();
    kube_healer_testenv::crds::install(&ctx.client, &crds).await?;
    let actions: Api<kube_healer_api::HealingAction> = Api::all(ctx.client.clone());
    let policies: Api<kube_healer_api::HealingPolicy> = Api::all(ctx.client.clone());
    wait::until(
        "HealingActions and HealingPolicies to be served",
        HEAL,
        || async {
            let lp = ListParams::default().limit(1);
            Ok((actions.list(&lp).await.is_ok() && policies.list(&lp).await.is_ok()).then_some(()))
        },
    )
    .await?;
    let text = support::explain(&ctx, &format!("pod/{ns}/failing"))?;
    ensure!(
        text.lines()
            .any(|l| l.starts_with("ProbeFailure") && l.contains("failed 5 times") && l.contains(FAILED)),
        "explain shows the ProbeFailure and the kubelet's message:\n{text}"
    );

    let _op = Operator::start(&ctx.cluster, "probe", &["--policy-selector", &selector(&ctx)]).await?;
    let policy = ctx.name("probe");
    create_policy(
        &ctx,
        &policy,
        json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
            "conditions": [{"class": "ProbeFailure", "for": "3s", "minFailures": 3}],
            "actions": [{"action": "Delete"}], "safety": support::limits()}),
    )
    .await?;
    let recs = records(&ctx, &policy, 1).await?;
    ensure!(recs.len() == 1, "one decision: {recs:#?}");
    let rec = &recs[0];
    ensure!(rec.spec.target.name == "failing", "{:?}", rec.spec.target);
    ensure!(
        rec.spec.class == kube_healer_api::FailureClass::ProbeFailure,
        "{:?}",
        rec.spec.class
    );
    ensure!(phase_reason(rec).0 == ActionPhase::Succeeded, "{:?}", rec.status);
    ensure!(
        rec.spec.evidence.summary.contains(FAILED),
        "the record carries the kubelet's message: {}",
        rec.spec.evidence.summary
    );
    wait::until("the failing pod to be gone", HEAL, || async {
        Ok(pods.get_opt("failing").await?.is_none().then_some(()))
    })
    .await?;
    // The control: its probe only errored, and it is left running. Its `for` (3 s) has passed
    // twice over by now; a decision on it would be recorded within a second of it.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    ensure!(
        pods.get_opt("errored").await?.is_some(),
        "the pod whose probe errored was deleted"
    );
    let again = records(&ctx, &policy, 1).await?;
    ensure!(again.len() == 1, "a second decision: {again:#?}");
    Ok(())
}
