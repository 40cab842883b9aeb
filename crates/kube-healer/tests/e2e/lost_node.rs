//! A node that stopped posting, on the real cluster: its pods deleted, then force-deleted only
//! where that is safe. A StatefulSet pod and a pod with a ReadWriteOnce claim wait, held Unsafe,
//! until the node is fenced with the out-of-service taint.

use std::time::Duration;

use anyhow::{Context, ensure};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::{Scenario, nodes, scenario_pod, wait};
use serde_json::json;

use crate::actions::{node_of, running_pods};
use crate::support;
use support::{HEAL, Operator, create_policy, deployment, phase_reason, records, selector};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![test(
        "pods_of_a_node_that_stopped_posting_are_deleted_then_force_deleted_safely",
        lost_node,
    )]
}

async fn lost_node(ctx: Ctx) -> anyhow::Result<()> {
    let op = Operator::start(&ctx.cluster, "lost", &["--policy-selector", &selector(&ctx)]).await?;
    let (dead, spare) = (ctx.name("dead"), ctx.name("spare"));
    nodes::add_owned_nodes(&ctx.client, std::slice::from_ref(&dead), &ctx.id, HEAL).await?;
    let ns = ctx.namespace("ln").await?;
    let policy = ctx.name("lost");
    // Delete first (the pod's grace period: 5 s), then ForceDelete once past its deletionTimestamp.
    create_policy(
        &ctx,
        &policy,
        json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
        "conditions": [{"class": "NodeLost", "for": "1s"}],
        "actions": [{"action": "Delete", "escalateAfter": "6s"}, {"action": "ForceDelete"}],
        "safety": {"cooldown": "1s", "maxConcurrent": 5, "rate": {"actions": 10, "per": "1m"}}}),
    )
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let template = scenario_pod(&ns, "web", None, &Scenario::Running);
    deployments
        .create(
            &PostParams::default(),
            &deployment(&ctx, &ns, "web", 1, template)?,
        )
        .await?;
    let db = deployment(
        &ctx,
        &ns,
        "db",
        1,
        scenario_pod(&ns, "db", None, &Scenario::Running),
    )?;
    let mut db = serde_json::to_value(db)?;
    db["spec"]["serviceName"] = json!("db");
    db["kind"] = json!("StatefulSet");
    let db: StatefulSet = serde_json::from_value(db)?;
    Api::<StatefulSet>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &db)
        .await?;
    // A Deployment whose pod holds a ReadWriteOnce claim (a hostPath volume, bound by the
    // controller-manager's binder): force-deleted only once its node is fenced.
    let volume = format!("{ns}-data");
    let pv: PersistentVolume = serde_json::from_value(json!({"metadata": {"name": volume},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
            "hostPath": {"path": "/var/lib/data"}, "claimRef": {"namespace": ns, "name": "data"}}}))?;
    Api::<PersistentVolume>::all(ctx.client.clone())
        .create(&PostParams::default(), &pv)
        .await?;
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({"metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": volume,
            "resources": {"requests": {"storage": "1Gi"}}}}))?;
    Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &pvc)
        .await?;
    let mut vol = scenario_pod(&ns, "vol", None, &Scenario::Running);
    vol.spec.as_mut().context("spec")?.volumes = Some(vec![serde_json::from_value(
        json!({"name": "data", "persistentVolumeClaim": {"claimName": "data"}}),
    )?]);
    deployments
        .create(&PostParams::default(), &deployment(&ctx, &ns, "vol", 1, vol)?)
        .await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let (web, vol) = wait::until("web, db and vol running", HEAL, || async {
        let web = running_pods(&pods, "web").await?;
        let db = running_pods(&pods, "db").await?;
        let vol = running_pods(&pods, "vol").await?;
        let both = web.into_iter().next().zip(vol.into_iter().next());
        Ok((!db.is_empty()).then_some(both).flatten())
    })
    .await?;
    // A second node for the replacement, then the kubelet of the first one stops posting.
    nodes::add_owned_nodes(&ctx.client, std::slice::from_ref(&spare), &ctx.id, HEAL).await?;
    nodes::stop_heartbeats(&ctx.client, &dead).await?;

    let replaced = wait::until(
        "web replaced on the spare node",
        Duration::from_secs(90),
        || async {
            let old_gone = pods.get_opt(&web.name_any()).await?.is_none();
            let running = running_pods(&pods, "web").await?;
            Ok((old_gone && running.iter().any(|p| node_of(p) == spare)).then_some(()))
        },
    )
    .await;
    if let Err(e) = replaced {
        anyhow::bail!("{e}; operator log:\n{}", op.log_tail(30));
    }
    let recs = records(&ctx, &policy, 6).await?;
    let mut got: Vec<(String, String, ActionPhase, String)> = recs
        .iter()
        .map(|r| {
            let (phase, reason) = phase_reason(r);
            let pod = r
                .spec
                .target
                .name
                .split('-')
                .next()
                .unwrap_or_default()
                .to_string();
            (pod, r.spec.action.to_string(), phase, reason)
        })
        .collect();
    got.sort_by_key(|o| format!("{o:?}"));
    let expected = [
        ("db", "Delete", ActionPhase::Succeeded, "Completed"),
        ("db", "ForceDelete", ActionPhase::Skipped, "Unsafe"),
        ("vol", "Delete", ActionPhase::Succeeded, "Completed"),
        ("vol", "ForceDelete", ActionPhase::Skipped, "Unsafe"),
        ("web", "Delete", ActionPhase::Succeeded, "Completed"),
        ("web", "ForceDelete", ActionPhase::Succeeded, "Completed"),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(p, a, ph, r)| (p.to_string(), a.to_string(), *ph, r.to_string()))
        .collect();
    ensure!(got == expected, "{got:#?}");
    // The StatefulSet pod stays (Terminating) until its node is confirmed gone: two pods with
    // one identity must never run at once.
    let db_pod = pods.get_opt("db-0").await?;
    ensure!(
        db_pod.is_some_and(|p| p.metadata.deletion_timestamp.is_some()),
        "the StatefulSet pod was force-deleted while its node may still run it"
    );
    // So does the pod with the claim, and its record names the fencing it waits for.
    let vol_name = vol.name_any();
    let held = pods.get_opt(&vol_name).await?;
    ensure!(
        held.is_some_and(|p| p.metadata.deletion_timestamp.is_some()),
        "the pod with a ReadWriteOnce claim was force-deleted on an unfenced node"
    );
    let unsafe_message = recs
        .iter()
        .filter(|r| r.spec.target.name == vol_name && phase_reason(r).1 == "Unsafe")
        .find_map(|r| r.status.as_ref()?.message.clone())
        .unwrap_or_default();
    ensure!(
        unsafe_message.contains("PersistentVolumeClaim")
            && unsafe_message.contains("node.kubernetes.io/out-of-service"),
        "{unsafe_message}"
    );

    // Fenced: the out-of-service taint (non-graceful node shutdown) lets both go.
    Api::<Node>::all(ctx.client.clone())
        .patch(
            &dead,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": [
            {"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}]}})),
        )
        .await?;
    wait::until("db-0 and the old vol pod gone once fenced", HEAL, || async {
        let db_left = pods.get_opt("db-0").await?.is_some_and(|p| node_of(&p) == dead);
        let vol_left = pods.get_opt(&vol_name).await?.is_some();
        Ok((!db_left && !vol_left).then_some(()))
    })
    .await?;
    // kube-healer force-deleted them (or, racing it, PodGC did: the record then reads TargetGone).
    let recs = records(&ctx, &policy, 6).await?;
    let failed: Vec<_> = recs
        .iter()
        .filter(|r| phase_reason(r).0 == ActionPhase::Failed)
        .collect();
    ensure!(failed.is_empty(), "{failed:#?}");
    Ok(())
}
