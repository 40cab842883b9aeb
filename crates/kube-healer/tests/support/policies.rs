//! The test's own policies: labelled with its id, picked by its operator's `--policy-selector`,
//! so that tests side by side on one cluster never act on each other's policies.

use kube::api::{Api, PostParams};
use kube_healer_api::HealingPolicy;
use kube_healer_testenv::harness::Ctx;
use serde_json::json;

/// A policy owned by the test (`kube-healer.test/owner` = the test's id), for an operator started
/// with `--policy-selector kube-healer.test/owner=<id>`.
pub async fn create_policy(ctx: &Ctx, name: &str, spec: serde_json::Value) -> anyhow::Result<()> {
    // The CRDs, as the chart installs them (a no-op when they are: tests may start their
    // operator after their policies).
    let crds: Vec<_> = kube_healer_api::crds().into_iter().map(|(_, crd)| crd).collect();
    kube_healer_testenv::crds::install(&ctx.client, &crds).await?;
    let policy: HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": name, "labels": {"kube-healer.test/owner": ctx.id}}, "spec": spec,
    }))?;
    Api::<HealingPolicy>::all(ctx.client.clone())
        .create(&PostParams::default(), &policy)
        .await?;
    Ok(())
}
/// The `--policy-selector` that picks the test's own policies.
pub fn selector(ctx: &Ctx) -> String {
    format!("kube-healer.test/owner={}", ctx.id)
}

/// Limits that let a test's few actions through.
pub fn limits() -> serde_json::Value {
    json!({"maxConcurrent": 5, "rate": {"actions": 10, "per": "1m"}})
}

/// The test's policy `name` deleting the Evicted pods of namespace `ns` (due after 1 s), with
/// these safety limits.
pub async fn delete_evicted(
    ctx: &Ctx,
    name: &str,
    ns: &str,
    safety: serde_json::Value,
) -> anyhow::Result<()> {
    create_policy(
        ctx,
        name,
        json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
        "conditions": [{"class": "Evicted", "for": "1s"}], "actions": [{"action": "Delete"}],
        "safety": safety}),
    )
    .await
}
