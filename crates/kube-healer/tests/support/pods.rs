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

/// A Deployment of `replicas` pods like `template` (a scenario pod), kept on the test's nodes.
pub fn deployment(
    ctx: &Ctx,
    ns: &str,
    name: &str,
    replicas: i32,
    template: k8s_openapi::api::core::v1::Pod,
) -> anyhow::Result<k8s_openapi::api::apps::v1::Deployment> {
    let mut meta = template.metadata;
    meta.name = None;
    meta.namespace = None;
    meta.labels
        .get_or_insert_default()
        .insert("app".into(), name.into());
    let mut spec = anyhow::Context::context(template.spec, "scenario pods have a spec")?;
    spec.node_name = None;
    spec.node_selector = Some(std::collections::BTreeMap::from([(
        kube_healer_testenv::nodes::OWNER_LABEL.to_string(),
        ctx.id.clone(),
    )]));
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": meta, "spec": spec}},
    }))?)
}

/// A bare pod (no controller: nothing replaces it once healed) labelled `app: name`,
/// crash-looping by itself on `node` with `message`: a scenario's control.
pub fn lone_crash_loop(
    ns: &str,
    name: &str,
    node: &str,
    exit_code: i32,
    message: &str,
) -> k8s_openapi::api::core::v1::Pod {
    let mut pod = kube_healer_testenv::scenario_pod(
        ns,
        name,
        Some(node),
        &kube_healer_testenv::Scenario::CrashLoop {
            restarts: 6,
            exit_code,
            message: message.into(),
        },
    );
    pod.metadata
        .labels
        .get_or_insert_default()
        .insert("app".into(), name.into());
    pod
}
