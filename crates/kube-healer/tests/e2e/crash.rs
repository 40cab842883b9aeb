//! A process that ends around its API call: between the record and the call (the next process
//! decides the same failure again, finds the record and carries it out once), and between the
//! call and its outcome (the pod is gone, so nothing decides it again: the next leader finishes
//! the record it finds unfinished, and calls nothing).

use std::time::Duration;

use anyhow::ensure;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::{Scenario, nodes, scenario_pod, wait};
use serde_json::json;

use crate::support;
use support::{HEAL, Operator, create_policy, limits, phase_reason, records, selector};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![
        test(
            "a_crash_between_record_and_call_is_finished_once_after_restart",
            crash_after_record,
        ),
        test(
            "a_crash_between_call_and_outcome_is_finished_without_a_second_call",
            crash_after_call,
        ),
        test(
            "a_record_finished_meanwhile_keeps_its_outcome",
            finished_meanwhile,
        ),
    ]
}

/// A policy deleting Evicted pods in `ns`, an operator stopping at `failpoint`, and one Evicted
/// pod `leftover`; returns once the operator has reached the failpoint and ended, with the
/// policy's records (exactly one, without a status).
async fn crash_at(ctx: &Ctx, ns: &str, policy: &str, failpoint: &str) -> anyhow::Result<()> {
    let node = ctx.name("n");
    nodes::add_node(&ctx.client, &node).await?;
    create_policy(ctx, policy, json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
        "conditions": [{"class": "Evicted", "for": "1s"}], "actions": [{"action": "Delete"}], "safety": limits()})).await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let first = Operator::start_with_env(
        &ctx.cluster,
        "crashing",
        &["--policy-selector", &selector(ctx)],
        &[("KUBE_HEALER_FAILPOINT", failpoint)],
    )
    .await?;
    pods.create(
        &PostParams::default(),
        &scenario_pod(ns, "leftover", Some(&node), &Scenario::evicted()),
    )
    .await?;
    first.wait_log(&["failpoint reached"], HEAL).await?;
    drop(first);
    let api: Api<kube_healer_api::HealingAction> = Api::all(ctx.client.clone());
    let lp = ListParams::default().labels(&format!("{}={policy}", kube_healer_api::POLICY_LABEL));
    let recorded = api.list(&lp).await?.items;
    ensure!(
        recorded.len() == 1 && recorded[0].status.is_none(),
        "one record, without a status: {recorded:#?}"
    );
    Ok(())
}

/// After the crash: one record, Succeeded/Completed, and no second one a moment later.
async fn finished_once(ctx: &Ctx, policy: &str) -> anyhow::Result<String> {
    let recs = records(ctx, policy, 1).await?;
    ensure!(recs.len() == 1, "recorded twice: {recs:#?}");
    ensure!(
        phase_reason(&recs[0]) == (ActionPhase::Succeeded, "Completed".into()),
        "{:?}",
        recs[0].status
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let api: Api<kube_healer_api::HealingAction> = Api::all(ctx.client.clone());
    let lp = ListParams::default().labels(&format!("{}={policy}", kube_healer_api::POLICY_LABEL));
    ensure!(
        api.list(&lp).await?.items.len() == 1,
        "a second decision was recorded"
    );
    let message = recs[0].status.as_ref().and_then(|s| s.message.clone());
    Ok(message.unwrap_or_default())
}

async fn crash_after_record(ctx: Ctx) -> anyhow::Result<()> {
    let ns = ctx.namespace("cr").await?;
    let policy = ctx.name("crash");
    crash_at(&ctx, &ns, &policy, "after-record").await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    ensure!(
        pods.get_opt("leftover").await?.is_some(),
        "the pod was deleted before the crash"
    );
    let second = Operator::start(
        &ctx.cluster,
        "after-crash",
        &["--policy-selector", &selector(&ctx)],
    )
    .await?;
    second
        .wait_log(&["not finished before a restart: finishing it"], HEAL)
        .await?;
    wait::until("the leftover pod to be gone", HEAL, || async {
        Ok(pods.get_opt("leftover").await?.is_none().then_some(()))
    })
    .await?;
    finished_once(&ctx, &policy).await?;
    Ok(())
}

async fn crash_after_call(ctx: Ctx) -> anyhow::Result<()> {
    let ns = ctx.namespace("cc").await?;
    let policy = ctx.name("crash");
    crash_at(&ctx, &ns, &policy, "after-call").await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    ensure!(
        pods.get_opt("leftover").await?.is_none(),
        "the pod is still there: the call was not made before the crash"
    );
    let _second = Operator::start(
        &ctx.cluster,
        "after-crash",
        &["--policy-selector", &selector(&ctx)],
    )
    .await?;
    let message = finished_once(&ctx, &policy).await?;
    // The delete the first process made, and no other: the pod was found gone.
    let answers = support::answered(ctx.cluster.operator_requests("delete", "pods", &ns, "leftover")?);
    ensure!(
        answers == [200],
        "the API server answered the operators' deletes with {answers:?}"
    );
    ensure!(
        message.contains("the process that decided it ended"),
        "finished by the record's own path, not a second decision: {message}"
    );
    println!("    finished by the next process: {message}");
    Ok(())
}

/// The next leader finishes a record at the version it read: a process still carrying the
/// decision out that writes its outcome first keeps it (the API server refuses the stale write).
async fn finished_meanwhile(ctx: Ctx) -> anyhow::Result<()> {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube_healer_api::record::{Evidence, TargetRef};
    use kube_healer_api::{ActionKind, FailureClass, HealingAction, HealingActionSpec, TargetKind};
    use kube_healer_operator::record::writer::{self, Finished};

    let crds: Vec<_> = kube_healer_api::crds().into_iter().map(|(_, crd)| crd).collect();
    kube_healer_testenv::crds::install(&ctx.client, &crds).await?;
    let api: Api<HealingAction> = Api::all(ctx.client.clone());
    let spec = HealingActionSpec {
        policy: ctx.name("meanwhile"),
        policy_generation: Some(1),
        target: TargetRef::new(TargetKind::Pod, Some("default"), "gone", "uid-gone", None),
        class: FailureClass::Evicted,
        action: ActionKind::Delete,
        step: 1,
        dry_run: false,
        failing_since: None,
        decided_at: Time(k8s_openapi::jiff::Timestamp::now()),
        evidence: Evidence {
            summary: "Failed (Evicted)".into(),
            ..Default::default()
        },
        members: Vec::new(),
        cause: None,
    };
    let finished = |message: &str| Finished {
        phase: ActionPhase::Succeeded,
        reason: "Completed",
        message: message.into(),
        calls: 1,
        start: Time(k8s_openapi::jiff::Timestamp::now()),
        finish: Time(k8s_openapi::jiff::Timestamp::now()),
    };
    for (name, meanwhile) in [(ctx.name("raced"), true), (ctx.name("alone"), false)] {
        // A CRD just installed answers 429 while its storage initializes.
        let new = HealingAction::new(&name, spec.clone());
        let record = wait::until("the record created", HEAL, || async {
            match api.create(&PostParams::default(), &new).await {
                Ok(r) => Ok(Some(r)),
                Err(kube::Error::Api(s)) if s.code == 429 => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
        .await?;
        let read_at = record.metadata.resource_version.clone().unwrap_or_default();
        if meanwhile {
            writer::finish(&api, &name, finished("the live writer's outcome")).await;
        }
        let wrote = writer::finish_at_version(&api, &name, finished("the next leader's"), &read_at).await?;
        let message = api.get(&name).await?.status.and_then(|s| s.message);
        let expected = if meanwhile {
            "the live writer's outcome"
        } else {
            "the next leader's"
        };
        ensure!(
            wrote != meanwhile && message.as_deref() == Some(expected),
            "finished meanwhile: {meanwhile}; written: {wrote}; the record says {message:?}"
        );
        api.delete(&name, &Default::default()).await?;
    }
    Ok(())
}
