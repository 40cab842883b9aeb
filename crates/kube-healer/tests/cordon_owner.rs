//! A cordon a person lifted and set again while the operator was down is the person's (issue 37:
//! OnlyOwnMarks and PlannedDisruption, found by the history checker). Its own cluster: every
//! leader acknowledges a lift it sees on any node, so another test's operator on the shared
//! cluster would see the person's uncordon that this scenario needs unseen.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube_healer_api::CORDONED_BY_ANNOTATION;
use kube_healer_testenv::harness::{Ctx, test};
use kube_healer_testenv::{ClusterOptions, wait};
use serde_json::json;
use support::{HEAL, Operator, create_policy, now_rfc3339, selector};

fn main() -> std::process::ExitCode {
    kube_healer_testenv::harness::run(
        ClusterOptions::default(),
        vec![test(
            "a_cordon_a_person_set_again_while_the_operator_was_down_is_the_person_s",
            set_again,
        )],
    )
}

/// Issue 37 (OnlyOwnMarks, PlannedDisruption; found by the history checker): kube-healer cordons
/// two nodes for a node condition. While the operator is down, both recover, and a person lifts
/// one node's cordon and cordons it again (kubectl's field manager): its annotations are as
/// kube-healer left them, only the API server's managedFields say whose cordon it is. The
/// restarted operator takes its mark off that node, records the lift, and leaves the cordon; the
/// control, the other node, whose cordon is still kube-healer's, is uncordoned.
async fn set_again(ctx: Ctx) -> anyhow::Result<()> {
    let args = ["--policy-selector".to_string(), selector(&ctx)];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let op = Operator::start(&ctx.cluster, "set-again", &args).await?;
    let api: Api<Node> = Api::all(ctx.client.clone());
    let (person_s, control) = (ctx.name("person"), ctx.name("control"));
    let both = [person_s.clone(), control.clone()];
    let labels = json!({"kube-healer.test/owner": ctx.id});
    // A condition of this test's own: the shared cluster's other tests' nodes reporting
    // KernelDeadlock are not one cause with these.
    let problem = |on: bool| {
        let status = if on { "True" } else { "False" };
        json!([support::ready("True", "kubelet is posting ready status"),
            {"type": "SetAgainProblem", "status": status, "reason": "Problem", "message": "set-again test problem",
                "lastTransitionTime": now_rfc3339(0), "lastHeartbeatTime": now_rfc3339(0)}])
    };
    let posted = support::PostedNodes::create(&ctx.client, &both, labels, problem(true)).await?;
    let policy = ctx.name("problem");
    create_policy(&ctx, &policy, json!({"target": {"kind": "Node", "selector": {"matchLabels": {"kube-healer.test/owner": ctx.id}}},
        "conditions": [{"class": "NodeCondition", "conditionType": "SetAgainProblem", "for": "1s"}], "actions": [{"action": "Cordon"}],
        "safety": {"maxUnhealthy": "100%", "maxConcurrent": 5, "rate": {"actions": 10, "per": "1m"}}}))
    .await?;
    for node in &both {
        wait::until(&format!("{node} cordoned by {policy}"), HEAL, || async {
            let (cordoned, owners) = support::cordon(&api, node).await?;
            Ok((cordoned && owners == policy).then_some(()))
        })
        .await?;
    }
    drop(op); // SIGKILL
    for node in &both {
        posted.set(node, problem(false));
    }
    let kubectl = PatchParams {
        field_manager: Some("kubectl".into()),
        ..Default::default()
    };
    for unschedulable in [json!(null), json!(true)] {
        let body = json!({"spec": {"unschedulable": unschedulable}});
        api.patch(&person_s, &kubectl, &Patch::Merge(body)).await?;
    }
    let (cordoned, owners) = support::cordon(&api, &person_s).await?;
    anyhow::ensure!(
        cordoned && owners == policy,
        "the mark is still there: {owners:?}"
    );

    let _again = Operator::start(&ctx.cluster, "set-again-restarted", &args).await?;
    wait::until(
        "the control uncordoned by the restarted operator",
        HEAL,
        || async { Ok((!support::cordon(&api, &control).await?.0).then_some(())) },
    )
    .await?;
    let lifted = wait::until(
        "the mark off the person's cordon, the lift recorded",
        HEAL,
        || async {
            let node = api.get(&person_s).await?;
            let annotations = node.metadata.annotations.unwrap_or_default();
            let lift = annotations
                .get(kube_healer_api::CORDON_LIFTED_ANNOTATION)
                .cloned();
            let unmarked = !annotations.contains_key(CORDONED_BY_ANNOTATION);
            Ok(lift.filter(|l| unmarked && l.contains(&policy)))
        },
    )
    .await?;
    // Past the clear debounce (2 s) many times over: the person's cordon stays.
    tokio::time::sleep(Duration::from_secs(8)).await;
    anyhow::ensure!(
        support::cordon(&api, &person_s).await?.0,
        "the restarted operator lifted the cordon a person set"
    );
    println!(
        "    the person's cordon over kube-healer's mark: the mark came off ({lifted}), the cordon stayed; the control uncordoned"
    );
    drop(posted);
    Ok(())
}
