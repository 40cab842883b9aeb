//! RunJob runs only node jobs the cluster admin defined, with exactly the privilege they define.
//! A policy names a NodeJob; the Job runs in the chart's jobs namespace (privileged here, as the
//! chart sets it for privileged definitions) under the chart's jobs ServiceAccount, pinned to the
//! node after its cordon. A policy that names an undefined job runs nothing, and one that still
//! carries a pod spec of its own is refused by the API server with the way forward.

use anyhow::{Context, ensure};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, PodSpec};
use kube::api::{Api, ListParams, PostParams};
use kube_healer_api::record::ActionPhase;
use kube_healer_api::{NODE_JOB_LABEL, NODE_LABEL, NodeJob, reasons};
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::nodes;
use serde_json::json;

use crate::support;
use support::{
    HEAL, JOBS_NAMESPACE, JOBS_SERVICE_ACCOUNT, Operator, create_policy, node_event, phase_reason, records,
    selector,
};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![test(
        "only_defined_node_jobs_run_with_exactly_their_privilege",
        only_defined_jobs_run,
    )]
}

const IMAGE: &str = "registry.example/node-tools:1.0";

/// A plain job (no host access), and a privileged one: the host's PID namespace, a privileged
/// container and the host's /var/log.
fn definitions(ctx: &Ctx) -> [(String, serde_json::Value); 2] {
    [
        (
            ctx.name("drop-caches"),
            json!({"description": "drops the page cache", "activeDeadlineSeconds": 120,
                "podSpec": {"containers": [{"name": "drop", "image": IMAGE, "command": ["sync"]}]}}),
        ),
        (
            ctx.name("restart-runtime"),
            json!({"description": "restarts the container runtime", "activeDeadlineSeconds": 120,
                "podSpec": {"hostPID": true,
                    "volumes": [{"name": "logs", "hostPath": {"path": "/var/log"}}],
                    "containers": [{"name": "restart", "image": IMAGE,
                        "command": ["nsenter", "-t", "1", "-m", "--", "systemctl", "restart", "containerd"],
                        "securityContext": {"privileged": true},
                        "volumeMounts": [{"name": "logs", "mountPath": "/host/var/log"}]}]}}),
        ),
    ]
}

/// Fails the node: NodeFlapping (2 NotReady, 2 Ready), or SystemOOM. Two flapping nodes and one
/// out of memory: no family has the 3 nodes a correlated cause needs, on a cluster of any size.
async fn fail(ctx: &Ctx, node: &str, class: &str) -> anyhow::Result<()> {
    if class == "SystemOOM" {
        let message = "System OOM encountered, victim process: java, pid: 18212";
        return node_event(&ctx.client, node, "SystemOOM", message, 3).await;
    }
    for (reason, count) in [("NodeNotReady", 2), ("NodeReady", 2)] {
        let message = format!("Node {node} status is now: {reason}");
        node_event(&ctx.client, node, reason, &message, count).await?;
    }
    Ok(())
}

async fn only_defined_jobs_run(ctx: Ctx) -> anyhow::Result<()> {
    let crds: Vec<_> = kube_healer_api::crds().into_iter().map(|(_, crd)| crd).collect();
    kube_healer_testenv::crds::install(&ctx.client, &crds).await?;
    let node_jobs: Api<NodeJob> = Api::all(ctx.client.clone());
    let defined = definitions(&ctx);
    for (name, spec) in &defined {
        let job: NodeJob = serde_json::from_value(json!({
            "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "NodeJob",
            "metadata": {"name": name}, "spec": spec}))?;
        node_jobs.create(&PostParams::default(), &job).await?;
    }
    // A policy that still carries a pod spec of its own is refused, with the way forward.
    let refused = create_policy(
        &ctx,
        &ctx.name("own-spec"),
        json!({
        "target": {"kind": "Node", "selector": {"matchLabels": {"kubernetes.io/hostname": "nowhere"}}},
        "conditions": [{"class": "NodeFlapping"}],
        "actions": [{"action": "RunJob", "runJob": {"namespace": "default",
            "podSpec": {"hostNetwork": true, "containers": [{"name": "x", "image": IMAGE}]}}}]}),
    )
    .await
    .expect_err("a policy's own pod spec is refused");
    ensure!(
        format!("{refused:#}").contains("runJob no longer takes a pod spec")
            && format!("{refused:#}").contains("runJob: {nodeJob: <name>}"),
        "{refused:#}"
    );

    let args = ["--policy-selector", &selector(&ctx)];
    let _op = Operator::start(&ctx.cluster, "jobs", &args).await?;
    let undefined = ctx.name("never-defined");
    let names = [ctx.name("plain"), ctx.name("priv"), ctx.name("undef")];
    nodes::add_owned_nodes(&ctx.client, &names, &ctx.id, HEAL).await?;
    let jobs_per_node = [
        (&defined[0].0, "NodeFlapping"),
        (&defined[1].0, "NodeFlapping"),
        (&undefined, "SystemOOM"),
    ];
    let mut policies = Vec::new();
    for (node, (job, class)) in names.iter().zip(jobs_per_node) {
        let policy = format!("{node}-p");
        create_policy(&ctx, &policy, json!({
            "target": {"kind": "Node", "selector": {"matchLabels": {"kubernetes.io/hostname": node}}},
            "conditions": [{"class": class, "for": "1s"}],
            "actions": [{"action": "Cordon", "escalateAfter": "1s"}, {"action": "RunJob", "runJob": {"nodeJob": job}}],
            "safety": {"maxUnhealthy": "100%", "cooldown": "1s", "maxConcurrent": 1, "rate": {"actions": 5, "per": "1m"}}}))
        .await?;
        policies.push(policy);
    }
    for (node, (_, class)) in names.iter().zip(jobs_per_node) {
        fail(&ctx, node, class).await?;
    }

    // The records: both defined jobs completed; the undefined one ran nothing.
    let mut outcomes = Vec::new();
    for policy in &policies {
        let recs = records(&ctx, policy, 2).await?;
        let job = recs
            .iter()
            .find(|r| r.spec.action.to_string() == "RunJob")
            .context("a RunJob record")?;
        let message = job
            .status
            .as_ref()
            .and_then(|s| s.message.clone())
            .unwrap_or_default();
        outcomes.push((phase_reason(job), message));
    }
    println!("    RunJob records: {outcomes:?}");
    for (i, ((phase, _), message)) in outcomes.iter().take(2).enumerate() {
        ensure!(
            *phase == ActionPhase::Succeeded
                && message.contains(&format!("(NodeJob {}) completed", defined[i].0)),
            "{outcomes:?}"
        );
    }
    let ((phase, reason), message) = &outcomes[2];
    ensure!(
        *phase == ActionPhase::Failed
            && reason == reasons::NODE_JOB_UNDEFINED
            && message.contains(&format!("NodeJob {undefined} is not defined")),
        "{outcomes:?}"
    );

    // The Jobs: in the jobs namespace, under the jobs ServiceAccount, pinned, with exactly the
    // definition's host access and privilege, and none for the undefined job.
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), JOBS_NAMESPACE);
    let pod_spec = |job: &Job| -> anyhow::Result<PodSpec> {
        job.spec
            .as_ref()
            .and_then(|s| s.template.spec.clone())
            .context("pod spec")
    };
    let mut specs = Vec::new();
    for node in &names {
        let list = jobs
            .list(&ListParams::default().labels(&format!("{NODE_LABEL}={node}")))
            .await?;
        specs.push(
            list.items
                .iter()
                .map(pod_spec)
                .collect::<anyhow::Result<Vec<_>>>()?,
        );
    }
    ensure!(
        specs[0].len() == 1 && specs[1].len() == 1 && specs[2].is_empty(),
        "one Job each for the defined jobs, none for the undefined: {:?}",
        specs.iter().map(Vec::len).collect::<Vec<_>>()
    );
    for (node, spec) in names.iter().zip(&specs).take(2) {
        let spec = &spec[0];
        ensure!(
            spec.node_name.as_deref() == Some(node.as_str())
                && spec.restart_policy.as_deref() == Some("Never")
                && spec.service_account_name.as_deref() == Some(JOBS_SERVICE_ACCOUNT)
                && spec.automount_service_account_token == Some(false)
                && spec
                    .tolerations
                    .iter()
                    .flatten()
                    .any(|t| t.operator.as_deref() == Some("Exists")),
            "pinned, under the jobs ServiceAccount, tolerating the node's taints: {spec:?}"
        );
    }
    let (plain, privileged) = (&specs[0][0], &specs[1][0]);
    ensure!(
        plain.host_pid.is_none()
            && plain.volumes.is_none()
            && plain.containers.iter().all(|c| c.security_context.is_none()),
        "the plain job has no host access nor privilege: {plain:?}"
    );
    let defined_spec: PodSpec = serde_json::from_value(defined[1].1["podSpec"].clone())?;
    // The API server defaults a hostPath's type: compare what the definition says.
    let host_paths = |spec: &PodSpec| -> Vec<(String, Option<String>)> {
        let volumes = spec.volumes.iter().flatten();
        volumes
            .map(|v| (v.name.clone(), v.host_path.as_ref().map(|h| h.path.clone())))
            .collect()
    };
    ensure!(
        privileged.host_pid == Some(true)
            && host_paths(privileged) == host_paths(&defined_spec)
            && privileged.containers[0].security_context == defined_spec.containers[0].security_context,
        "the privileged job has exactly its definition's privilege: {privileged:?}"
    );
    let labelled = jobs
        .list(&ListParams::default().labels(&format!("{NODE_JOB_LABEL}={}", defined[1].0)))
        .await?;
    ensure!(labelled.items.len() == 1, "the Job names its NodeJob");
    for node in &names {
        let n = Api::<Node>::all(ctx.client.clone()).get(node).await?;
        ensure!(
            n.spec.and_then(|s| s.unschedulable) == Some(true),
            "{node} not cordoned"
        );
    }
    Ok(())
}
