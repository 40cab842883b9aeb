//! A cordon held by two policies: one node fails two ways, each policy cordons it (the second
//! joins the first's cordon), one failure clears and the node stays cordoned for the other; the
//! other clears while the operator is down, and the restarted operator lets go of the cordon.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::wait;
use serde_json::json;

use crate::support;
use support::{HEAL, Operator, create_policy, now_rfc3339, selector};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![test(
        "a_cordon_two_policies_hold_stays_until_both_let_go_even_across_a_restart",
        two_owners,
    )]
}

const TYPES: [&str; 2] = ["KernelDeadlock", "ReadonlyFilesystem"];

/// The node's conditions: Ready, and each problem True or False since the time it last changed.
fn conditions(problems: &[(bool, String); 2]) -> serde_json::Value {
    let mut list = vec![support::ready("True", "kubelet is posting ready status")];
    for (t, (on, since)) in TYPES.iter().zip(problems) {
        let status = if *on { "True" } else { "False" };
        list.push(
            json!({"type": t, "status": status, "reason": "Problem", "message": format!("{t} is {status}"),
            "lastTransitionTime": since, "lastHeartbeatTime": now_rfc3339(0)}),
        );
    }
    json!(list)
}

async fn two_owners(ctx: Ctx) -> anyhow::Result<()> {
    let args = ["--policy-selector".to_string(), selector(&ctx)];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let op = Operator::start(&ctx.cluster, "owners", &args).await?;
    let api: Api<Node> = Api::all(ctx.client.clone());
    let name = ctx.name("two");
    let node: Node = serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"kube-healer.test/owner": ctx.id}}}),
    )?;
    api.create(&PostParams::default(), &node).await?;
    let problems = Arc::new(Mutex::new([
        (false, now_rfc3339(-3600)),
        (false, now_rfc3339(-3600)),
    ]));
    // No kubelet: the test posts the node's status every 2 s.
    let poster = {
        let (api, name, problems) = (api.clone(), name.clone(), problems.clone());
        tokio::spawn(async move {
            loop {
                let now = problems.lock().map(|p| p.clone()).ok();
                if let Some(now) = now {
                    let body = json!({"status": {"conditions": conditions(&now)}});
                    let _ = api
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(body))
                        .await;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        })
    };
    let set = |i: usize, on: bool| -> anyhow::Result<()> {
        let mut p = problems.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        p[i] = (on, now_rfc3339(0));
        Ok(())
    };
    let mut policies = Vec::new();
    for t in TYPES {
        let policy = ctx.name(&t.to_ascii_lowercase());
        create_policy(&ctx, &policy, json!({"target": {"kind": "Node", "selector": {"matchLabels": {"kube-healer.test/owner": ctx.id}}},
            "conditions": [{"class": "NodeCondition", "conditionType": t, "for": "1s"}], "actions": [{"action": "Cordon"}],
            "safety": {"maxUnhealthy": "100%", "maxConcurrent": 5, "rate": {"actions": 10, "per": "1m"}}}))
        .await?;
        policies.push(policy);
    }
    let (first, second) = (policies[0].clone(), policies[1].clone());
    let owned_by = |want: Vec<String>| {
        let (api, name) = (api.clone(), name.clone());
        async move {
            wait::until(&format!("the cordon held by {want:?}"), HEAL, || async {
                let (cordoned, owners) = support::cordon(&api, &name).await?;
                let mut owners: Vec<String> = owners
                    .split(',')
                    .filter(|o| !o.is_empty())
                    .map(str::to_string)
                    .collect();
                owners.sort();
                let mut want = want.clone();
                want.sort();
                let held = !want.is_empty();
                Ok((cordoned == held && owners == want).then_some(()))
            })
            .await
        }
    };

    set(0, true)?;
    owned_by(vec![first.clone()]).await?;
    set(1, true)?;
    owned_by(vec![first.clone(), second.clone()]).await?;
    // The first failure clears: the node stays cordoned, held by the second policy.
    set(0, false)?;
    owned_by(vec![second.clone()]).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    anyhow::ensure!(
        support::cordon(&api, &name).await?.0,
        "uncordoned while a policy still holds it"
    );

    // The second clears while the operator is down: the next one lets go at start-up.
    drop(op); // SIGKILL
    set(1, false)?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    anyhow::ensure!(
        support::cordon(&api, &name).await?.0,
        "uncordoned with no operator running"
    );
    let _again = Operator::start(&ctx.cluster, "owners-again", &args).await?;
    owned_by(Vec::new()).await?;
    println!(
        "    two policies held one cordon; it stayed when the first let go, and the restarted operator lifted it"
    );
    poster.abort();
    Ok(())
}
