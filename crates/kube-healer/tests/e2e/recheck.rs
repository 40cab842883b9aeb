//! The recheck right before a call, on the real cluster: a decision that waits between its record
//! and its call (a test hook pauses it there, as a queue or retries would) while its failure
//! clears makes no call, and its record says why. A dead pod's removal is checked by the API
//! server instead (its delete carries the version decided on): a pod opted out meanwhile is
//! refused by that precondition, read again, and left alone. A pod lost with its node is left
//! to a maintenance a person began on the node while its decision waited.

use anyhow::ensure;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube_healer_api::HealingAction;
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::{Scenario, nodes, scenario_pod, wait};
use serde_json::json;

use crate::support;
use support::{HEAL, Operator, create_policy, limits, now_rfc3339, phase_reason, records, selector};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![
        test(
            "a_failure_that_clears_before_the_call_is_not_acted_on",
            cleared_before_call,
        ),
        test(
            "a_dead_pod_opted_out_before_the_call_is_refused_by_its_version_and_left",
            opted_out_before_call,
        ),
        test(
            "a_pod_lost_with_a_node_a_person_cordons_before_the_call_is_left_to_the_maintenance",
            cordoned_before_call,
        ),
    ]
}

async fn cleared_before_call(ctx: Ctx) -> anyhow::Result<()> {
    let node = ctx.name("n");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("rc").await?;
    let policy = ctx.name("recheck");
    create_policy(&ctx, &policy, json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
        "conditions": [{"class": "ImagePullFailure", "for": "1s"}], "actions": [{"action": "Delete"}], "safety": limits()})).await?;
    let op = Operator::start_with_env(
        &ctx.cluster,
        "recheck",
        &["--policy-selector", &selector(&ctx)],
        &[
            ("KUBE_HEALER_FAILPOINT", "before-recheck"),
            ("KUBE_HEALER_FAILPOINT_PAUSE_SECONDS", "8"),
        ],
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let image = "registry.example/app:1.0";
    pods.create(
        &PostParams::default(),
        &scenario_pod(&ns, "web", Some(&node), &Scenario::image_pull_backoff(image)),
    )
    .await?;
    op.wait_log(&["failpoint reached: pausing"], HEAL).await?;
    // The registry is back while the decision waits: the image is pulled, the container runs.
    let running = json!({"status": {"phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now_rfc3339(0)}],
        "containerStatuses": [{"name": "app", "image": image, "imageID": "", "ready": true, "restartCount": 0,
            "state": {"running": {"startedAt": now_rfc3339(0)}}}]}});
    pods.patch_status("web", &PatchParams::default(), &Patch::Strategic(running))
        .await?;
    let recs = match records(&ctx, &policy, 1).await {
        Ok(r) => r,
        Err(e) => anyhow::bail!("{e}; operator log:\n{}", op.log_tail(30)),
    };
    let message = recs[0]
        .status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    ensure!(
        phase_reason(&recs[0]) == (ActionPhase::Skipped, "Recovered".into()),
        "{:?}: {message}",
        phase_reason(&recs[0])
    );
    ensure!(message.contains("no longer ImagePullFailure"), "{message}");
    let pod = pods.get("web").await?;
    ensure!(
        pod.metadata.deletion_timestamp.is_none(),
        "the recovered pod was deleted"
    );
    Ok(())
}

async fn opted_out_before_call(ctx: Ctx) -> anyhow::Result<()> {
    let node = ctx.name("n");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("ro").await?;
    let policy = ctx.name("version");
    create_policy(&ctx, &policy, json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
        "conditions": [{"class": "Evicted", "for": "1s"}], "actions": [{"action": "Delete"}], "safety": limits()})).await?;
    let op = Operator::start_with_env(
        &ctx.cluster,
        "version",
        &["--policy-selector", &selector(&ctx)],
        &[
            ("KUBE_HEALER_FAILPOINT", "before-recheck"),
            ("KUBE_HEALER_FAILPOINT_PAUSE_SECONDS", "6"),
        ],
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    for name in ["kept", "removed"] {
        pods.create(
            &PostParams::default(),
            &scenario_pod(&ns, name, Some(&node), &Scenario::evicted()),
        )
        .await?;
    }
    // The pod's decision recorded: it waits at the failpoint now, for 6 s.
    decided_on(&ctx, &policy, "kept", &op).await?;
    // Its owner opts the pod out while the decision waits.
    let opt_out = json!({"metadata": {"annotations": {kube_healer_api::OPT_OUT_ANNOTATION: "true"}}});
    pods.patch("kept", &PatchParams::default(), &Patch::Merge(opt_out))
        .await?;
    let expected = [
        ("kept", ActionPhase::Skipped, "OptedOut"),
        ("removed", ActionPhase::Succeeded, "Completed"),
    ];
    outcomes(&ctx, &policy, &op, &expected).await?;
    ensure!(
        pods.get_opt("kept")
            .await?
            .is_some_and(|p| p.metadata.deletion_timestamp.is_none()),
        "the opted-out pod was deleted"
    );
    wait::until("the other pod gone", HEAL, || async {
        Ok(pods.get_opt("removed").await?.is_none().then_some(()))
    })
    .await?;
    // One delete each, at the version decided on: refused (409) for the pod that changed, and
    // no read before the one that went through.
    let kept = support::answered(ctx.cluster.operator_requests("delete", "pods", &ns, "kept")?);
    let removed = support::answered(ctx.cluster.operator_requests("delete", "pods", &ns, "removed")?);
    let read = support::answered(ctx.cluster.operator_requests("get", "pods", &ns, "removed")?);
    ensure!(
        kept == [409] && removed == [200] && read.is_empty(),
        "deletes answered: kept {kept:?}, removed {removed:?}; reads of the removed pod: {read:?}"
    );
    println!(
        "    opted out while its delete waited: refused by its version (409), read, left; the other deleted without a read"
    );
    Ok(())
}

/// Issue 37 (PlannedDisruption, found by the history checker after a lagging restart): the
/// decision on a pod lost with its node saw no maintenance; a person cordons the node while it
/// waits. The recheck reads the node afresh and leaves the pod to the maintenance (Skipped,
/// Maintenance), within the policy's maintenanceGrace. The control: a pod lost with another
/// node nobody cordoned, decided on at the same time, is deleted.
async fn cordoned_before_call(ctx: Ctx) -> anyhow::Result<()> {
    let (maintained, lost) = (ctx.name("maint"), ctx.name("lost"));
    let both = [maintained.clone(), lost.clone()];
    nodes::add_owned_nodes(&ctx.client, &both, &ctx.id, HEAL).await?;
    let ns = ctx.namespace("rm").await?;
    let policy = ctx.name("lostpods");
    create_policy(
        &ctx,
        &policy,
        json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
        "conditions": [{"class": "NodeLost", "for": "1s"}], "actions": [{"action": "Delete"}],
        "safety": {"maxConcurrent": 5, "rate": {"actions": 10, "per": "1m"}, "maintenanceGrace": "30m"}}),
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    for (name, node) in [("kept", &maintained), ("healed", &lost)] {
        pods.create(
            &PostParams::default(),
            &scenario_pod(&ns, name, Some(node), &Scenario::Running),
        )
        .await?;
    }
    let op = Operator::start_with_env(
        &ctx.cluster,
        "recheck-maintenance",
        &["--policy-selector", &selector(&ctx)],
        &[
            ("KUBE_HEALER_FAILPOINT", "before-recheck"),
            ("KUBE_HEALER_FAILPOINT_PAUSE_SECONDS", "8"),
        ],
    )
    .await?;
    for node in &both {
        nodes::stop_heartbeats(&ctx.client, node).await?;
    }
    // The decision on kept recorded: it waits at the failpoint now, and its node is cordoned.
    decided_on(&ctx, &policy, "kept", &op).await?;
    let cordon = json!({"spec": {"unschedulable": true}});
    Api::<k8s_openapi::api::core::v1::Node>::all(ctx.client.clone())
        .patch(&maintained, &PatchParams::default(), &Patch::Merge(cordon))
        .await?;
    let expected = [
        ("kept", ActionPhase::Skipped, "Maintenance"),
        ("healed", ActionPhase::Succeeded, "Completed"),
    ];
    let recs = outcomes(&ctx, &policy, &op, &expected).await?;
    let kept = recs.iter().find(|r| r.spec.target.name == "kept");
    let message = kept
        .and_then(|r| r.status.as_ref())
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    ensure!(
        message.contains("cordoned by someone else") && message.contains("maintenanceGrace"),
        "{message}"
    );
    ensure!(
        pods.get_opt("kept")
            .await?
            .is_some_and(|p| p.metadata.deletion_timestamp.is_none()),
        "the pod left to the maintenance was deleted"
    );
    println!("    cordoned while its delete waited: left to the maintenance; the control deleted");
    Ok(())
}

/// Waits until a decision of `policy` on the pod `pod` is recorded (alone or in a batch): under
/// the `before-recheck` failpoint, it waits there now.
async fn decided_on(ctx: &Ctx, policy: &str, pod: &str, op: &Operator) -> anyhow::Result<()> {
    let api: Api<HealingAction> = Api::all(ctx.client.clone());
    let lp = ListParams::default().labels(&format!("{}={policy}", kube_healer_api::POLICY_LABEL));
    let names =
        |r: &HealingAction| r.spec.target.name == pod || r.spec.members.iter().any(|m| m.target.name == pod);
    let recorded = wait::until(&format!("the decision on {pod} recorded"), HEAL, || async {
        Ok(api.list(&lp).await?.items.iter().any(names).then_some(()))
    })
    .await;
    recorded.map_err(|e| anyhow::anyhow!("{e}; operator log:\n{}", op.log_tail(30)))
}

/// The final records of `policy` once they name each pod of `expected`, each pod's outcome
/// (phase, reason) as expected.
async fn outcomes(
    ctx: &Ctx,
    policy: &str,
    op: &Operator,
    expected: &[(&str, ActionPhase, &str)],
) -> anyhow::Result<Vec<HealingAction>> {
    let recs = match support::records_naming(ctx, policy, expected.len()).await {
        Ok(r) => r,
        Err(e) => anyhow::bail!("{e}; operator log:\n{}", op.log_tail(30)),
    };
    for (pod, phase, reason) in expected {
        let outcome = support::pod_outcome(&recs, pod).map(|(p, r, _)| (p, r));
        ensure!(
            outcome == Some((*phase, reason.to_string())),
            "{pod}: {outcome:?}, {phase:?}/{reason} expected"
        );
    }
    Ok(recs)
}
