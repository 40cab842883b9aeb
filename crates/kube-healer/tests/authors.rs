//! Who may write which HealingPolicy, on the real API server: the chart's ClusterRoles and its
//! ValidatingAdmissionPolicy, applied as the chart renders them. Alice (group team-a) holds the
//! chart's edit role: she may write policies, but each risky one is refused with a message that
//! names its rule (a node job, kube-system, a drain, every node, a NoExecute taint, a force
//! delete, a remediation, a replacement), while a plain one is stored. Bob, in the admin group with the same role, may create
//! every one of them. NodeJobs, what RunJob may run, are the admin role's alone: alice may not
//! define one, bob may, and a definition that names its own ServiceAccount or node is refused.
//! The view role aggregates into the built-in view role.
//!
//! Its own cluster: the admission policy applies to every writer of policies in the cluster.

use std::time::Duration;

use anyhow::{Context, ensure};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, PostParams};
use kube_healer_api::{HealingPolicy, NodeJob};
use kube_healer_testenv::chart::{chart_dir, helm};
use kube_healer_testenv::harness::{Ctx, test};
use kube_healer_testenv::{ClusterOptions, wait};
use serde_json::json;

fn main() -> std::process::ExitCode {
    kube_healer_testenv::harness::run(
        ClusterOptions::default(),
        vec![test(
            "policy_authors_outside_the_admin_group_are_refused_risky_policies",
            authors,
        )],
    )
}

/// A client acting as `user` in `group`.
fn as_user(ctx: &Ctx, user: &str, group: &str) -> anyhow::Result<kube::Client> {
    let mut config = ctx.cluster.config().clone();
    config.auth_info.impersonate = Some(user.into());
    config.auth_info.impersonate_groups = Some(vec![group.into(), "system:authenticated".into()]);
    Ok(kube::Client::try_from(config)?)
}

fn policy(name: &str, spec: serde_json::Value) -> anyhow::Result<HealingPolicy> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": name}, "spec": spec}))?)
}

/// The risky policies: (rule the refusal names, spec).
fn risky() -> Vec<(&'static str, serde_json::Value)> {
    let pools = json!({"kind": "Node", "selector": {"matchLabels": {"pool": "batch"}}});
    let oom = json!([{"class": "SystemOOM"}]);
    vec![
        (
            "node-jobs",
            json!({"target": pools, "conditions": oom,
            "actions": [{"action": "RunJob", "runJob": {"nodeJob": "restart-runtime"}}]}),
        ),
        (
            "protected-namespaces",
            json!({"target": {"kind": "Pod", "namespaces": {"include": ["kube-system"]}},
            "conditions": [{"class": "Evicted"}], "actions": [{"action": "Delete"}]}),
        ),
        (
            "drains",
            json!({"target": pools, "conditions": oom, "actions": [{"action": "Drain"}]}),
        ),
        (
            "all-nodes",
            // With the explicit limits the CRD asks of a policy on every node.
            json!({"target": {"kind": "Node"}, "conditions": [{"class": "NodeNotReady"}],
            "actions": [{"action": "Cordon"}],
            "safety": {"maxConcurrent": 1, "rate": {"actions": 1, "per": "1h"}, "maxUnhealthy": 1}}),
        ),
        (
            "no-execute-taints",
            json!({"target": pools, "conditions": oom,
            "actions": [{"action": "Taint", "taint": {"key": "kube-healer/oom", "effect": "NoExecute", "acknowledgeNoExecute": true}}]}),
        ),
        (
            "force-deletes",
            json!({"target": {"kind": "Pod", "namespaces": {"include": ["team-a"]}},
            "conditions": [{"class": "StuckTerminating"}], "actions": [{"action": "ForceDelete"}]}),
        ),
        (
            "remediations",
            json!({"target": pools, "conditions": oom,
            "actions": [{"action": "Remediate", "remediate": {"template": {"apiVersion": "self-node-remediation.medik8s.io/v1alpha1",
                "kind": "SelfNodeRemediationTemplate", "name": "automatic", "namespace": "medik8s"}}}]}),
        ),
        (
            "replacements",
            json!({"target": pools, "conditions": oom, "actions": [{"action": "Replace"}]}),
        ),
    ]
}

async fn authors(ctx: Ctx) -> anyhow::Result<()> {
    let crds: Vec<_> = kube_healer_api::crds().into_iter().map(|(_, crd)| crd).collect();
    kube_healer_testenv::crds::install(&ctx.client, &crds).await?;
    let rendered = helm(
        &ctx.cluster,
        &[
            "template".as_ref(),
            "kube-healer".as_ref(),
            chart_dir().as_os_str(),
            "--namespace".as_ref(),
            "kube-healer".as_ref(),
            "--show-only".as_ref(),
            "templates/roles.yaml".as_ref(),
            "--show-only".as_ref(),
            "templates/admission.yaml".as_ref(),
        ],
    )?;
    let file = ctx.cluster.dir().join("authors.yaml");
    std::fs::write(&file, rendered)?;
    ctx.cluster
        .kubectl(&["apply", "-f", &file.display().to_string()])?;
    // The chart's edit role for team-a and for the admin group alike: RBAC lets both write
    // policies; the admission policy tells them apart.
    let binding: ClusterRoleBinding = serde_json::from_value(json!({"metadata": {"name": "policy-authors"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kube-healer-edit"},
        "subjects": [{"kind": "Group", "name": "team-a", "apiGroup": "rbac.authorization.k8s.io"},
            {"kind": "Group", "name": "kube-healer-admins", "apiGroup": "rbac.authorization.k8s.io"}]}))?;
    Api::<ClusterRoleBinding>::all(ctx.client.clone())
        .create(&PostParams::default(), &binding)
        .await?;
    let admins: ClusterRoleBinding = serde_json::from_value(json!({"metadata": {"name": "healing-admins"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kube-healer-admin"},
        "subjects": [{"kind": "Group", "name": "kube-healer-admins", "apiGroup": "rbac.authorization.k8s.io"}]}))?;
    Api::<ClusterRoleBinding>::all(ctx.client.clone())
        .create(&PostParams::default(), &admins)
        .await?;
    let alice: Api<HealingPolicy> = Api::all(as_user(&ctx, "alice", "team-a")?);
    let bob: Api<HealingPolicy> = Api::all(as_user(&ctx, "bob", "kube-healer-admins")?);
    // Alice's refusals are what this test is about (the harness fails a run on unexpected 403s).
    ctx.cluster.expect_refusals(Duration::from_secs(120));
    // The admission policy takes effect within seconds of being created.
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let (_, first) = &risky()[0];
    wait::until(
        "the admission policy in force",
        Duration::from_secs(60),
        || async {
            let refused = alice
                .create(&dry, &policy("probe", first.clone()).map_err(other)?)
                .await
                .is_err();
            Ok(refused.then_some(()))
        },
    )
    .await?;
    for (i, (rule, spec)) in risky().into_iter().enumerate() {
        let name = format!("risky-{i}");
        let refusal = match alice
            .create(&PostParams::default(), &policy(&name, spec.clone())?)
            .await
        {
            Ok(_) => anyhow::bail!("alice created a policy the rule {rule} refuses"),
            Err(kube::Error::Api(status)) => status,
            Err(e) => return Err(e).context("creating as alice"),
        };
        ensure!(
            refusal.code == 403
                && refusal.message.contains(&format!("rule {rule}:"))
                && refusal
                    .message
                    .contains("only members of system:masters, kube-healer-admins may"),
            "{rule}: {} {}",
            refusal.code,
            refusal.message
        );
        println!("    alice, {rule}: {}", refusal.message);
        bob.create(&PostParams::default(), &policy(&name, spec)?)
            .await
            .with_context(|| format!("bob (kube-healer-admins) creating the {rule} policy"))?;
    }
    node_jobs(&ctx).await?;
    // A plain policy is hers to write, and to change into a risky one is not.
    let plain = json!({"target": {"kind": "Pod", "namespaces": {"include": ["team-a"]}},
        "conditions": [{"class": "Evicted"}], "actions": [{"action": "Delete"}]});
    alice
        .create(&PostParams::default(), &policy("plain", plain)?)
        .await?;
    let mut changed = alice.get("plain").await?;
    changed.spec.actions = policy("x", risky()[5].1.clone())?.spec.actions;
    let refused = alice.replace("plain", &PostParams::default(), &changed).await;
    ensure!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.message.contains("rule force-deletes:")),
        "alice turned her plain policy into a force-deleting one: {refused:?}"
    );
    // The view role is part of the built-in view role.
    wait::until(
        "kube-healer-view aggregated into view",
        Duration::from_secs(30),
        || async {
            let view = Api::<ClusterRole>::all(ctx.client.clone()).get("view").await?;
            let rules = view.rules.unwrap_or_default();
            Ok(rules
                .iter()
                .any(|r| {
                    r.resources
                        .as_ref()
                        .is_some_and(|res| res.iter().any(|x| x == "healingactions"))
                })
                .then_some(()))
        },
    )
    .await?;
    println!(
        "    bob (kube-healer-admins) created all 8; alice's plain policy stored, its risky update refused"
    );
    Ok(())
}

fn node_job(name: &str, pod_spec: serde_json::Value) -> anyhow::Result<NodeJob> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "NodeJob",
        "metadata": {"name": name}, "spec": {"podSpec": pod_spec}}))?)
}

/// NodeJobs are the admin role's: alice (edit) may not define one, bob (admin) may; the API
/// server refuses a definition that names its own ServiceAccount or node.
async fn node_jobs(ctx: &Ctx) -> anyhow::Result<()> {
    let privileged = json!({"hostPID": true, "containers": [{"name": "restart", "image": "busybox",
        "securityContext": {"privileged": true}}]});
    let alice: Api<NodeJob> = Api::all(as_user(ctx, "alice", "team-a")?);
    let bob: Api<NodeJob> = Api::all(as_user(ctx, "bob", "kube-healer-admins")?);
    let job = node_job("restart-runtime", privileged.clone())?;
    let refused = alice.create(&PostParams::default(), &job).await;
    ensure!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.code == 403),
        "alice defined a node job: {refused:?}"
    );
    bob.create(&PostParams::default(), &job)
        .await
        .context("bob (kube-healer-admin) defining a node job")?;
    for (field, expected) in [
        (
            "serviceAccountName",
            "node jobs run under kube-healer's jobs ServiceAccount",
        ),
        ("nodeName", "kube-healer pins the Job to the failing node itself"),
    ] {
        let mut spec = privileged.clone();
        spec[field] = json!("kube-system-admin");
        let refused = bob
            .create(
                &PostParams::default(),
                &node_job(&format!("own-{}", field.to_lowercase()), spec)?,
            )
            .await;
        ensure!(
            matches!(&refused, Err(kube::Error::Api(s)) if s.code == 422 && s.message.contains(expected)),
            "{field}: {refused:?}"
        );
    }
    println!("    alice may not define a node job; bob may; one naming its own account or node is refused");
    Ok(())
}

fn other(e: anyhow::Error) -> kube_healer_testenv::Error {
    kube_healer_testenv::Error::Other(e.to_string())
}
