//! Failing pods on the test's nodes, driven there by kwok's scenario stages.

use kube::api::{Api, PostParams};
use kube_healer_testenv::harness::Ctx;

/// An Evicted pod (kwok drives it there) on `node`.
pub async fn evicted_pod(ctx: &Ctx, ns: &str, name: &str, node: &str) -> anyhow::Result<()> {
    Api::<k8s_openapi::api::core::v1::Pod>::namespaced(ctx.client.clone(), ns)
        .create(
            &PostParams::default(),
            &kube_healer_testenv::scenario_pod(
                ns,
                name,
                Some(node),
                &kube_healer_testenv::Scenario::evicted(),
            ),
        )
        .await?;
    Ok(())
}
