//! RestartOwner: a rollout restart of the failing pod's workload, once per cooldown however many
//! of its pods fail.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube_healer_api::record::ActionPhase;
use kube_healer_api::{HealingActionSpec, RESTARTED_BY_ANNOTATION, reasons};
use kube_healer_core::decide::restartable_owner;
use kube_healer_core::view::OwnerKind;
use serde_json::json;

use crate::act::Outcome;
use crate::act::failure::api_failure;
use crate::act::pod::is_gone;
use crate::clock::Clock;
use crate::protocol::ActionRequest;
use crate::retry::{self, Backoff};

/// A rollout restart of the pod's workload, like `kubectl rollout restart`: the pod template gets
/// a new `kubectl.kubernetes.io/restartedAt`, and the controller replaces the pods in its own
/// rolling way. Several failing pods of one workload restart it once per `window`.
pub async fn restart_owner(
    client: &Client,
    req: &ActionRequest,
    window: Duration,
    clock: &dyn Clock,
) -> Outcome {
    let spec = &req.spec;
    let namespace = spec.target.namespace.as_deref().unwrap_or_default();
    let Some((owner, owner_name)) = req.owner.clone() else {
        return Outcome::unsafe_because("the pod has no controller".into());
    };
    if let Err(why) = restartable_owner(owner) {
        return Outcome::unsafe_because(why.to_string());
    }
    let (resource, name) = match workload_of(client, namespace, owner, owner_name).await {
        Ok(workload) => workload,
        Err(outcome) => return outcome,
    };
    let reference = format!("{}/{namespace}/{name}", resource.kind.to_ascii_lowercase());
    let workloads: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), namespace);
    // Read, then patch with the resourceVersion read: a concurrent restart (for another of the
    // workload's pods) makes the patch conflict, and the next read sees that restart.
    let mut calls = 1;
    for _ in 0..3 {
        let workload = (&workloads, &budgets, name.as_str(), reference.as_str());
        if let Some(outcome) = restart_once(workload, spec, window, clock, &mut calls).await {
            return outcome;
        }
    }
    Outcome::new(
        ActionPhase::Failed,
        reasons::API_ERROR,
        format!("{reference} kept changing while being restarted; the next decision looks again"),
        calls,
    )
}

/// The workload that owns the pod's controller: a ReplicaSet's Deployment, a StatefulSet, a
/// DaemonSet.
async fn workload_of(
    client: &Client,
    namespace: &str,
    owner: OwnerKind,
    owner_name: String,
) -> Result<(ApiResource, String), Outcome> {
    match owner {
        OwnerKind::ReplicaSet => {
            let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
            let (set, _) = retry::call(Backoff::ACTION, "get replicaset", || sets.get(&owner_name)).await;
            let set = set.map_err(|e| {
                let message = format!("reading ReplicaSet {namespace}/{owner_name}: {e}");
                Outcome::new(ActionPhase::Failed, reasons::API_ERROR, message, 1)
            })?;
            let deployment = set
                .metadata
                .owner_references
                .unwrap_or_default()
                .into_iter()
                .find(|o| o.controller == Some(true) && o.kind == "Deployment");
            match deployment {
                Some(d) => Ok((ApiResource::erase::<Deployment>(&()), d.name)),
                None => Err(Outcome::unsafe_because(format!(
                    "ReplicaSet {namespace}/{owner_name} has no Deployment to restart"
                ))),
            }
        }
        OwnerKind::StatefulSet => Ok((ApiResource::erase::<StatefulSet>(&()), owner_name)),
        _ => Ok((ApiResource::erase::<DaemonSet>(&()), owner_name)),
    }
}

/// A rollout restart the workload's PodDisruptionBudgets would not allow now (core's
/// `restart_refused_by`): held (Skipped/PDBBlocked, naming the budget), and decided again later.
/// One list of the namespace's budgets: a restart is rare and bounded by the policy's rate.
async fn refused_by_budget(
    budgets: &Api<PodDisruptionBudget>,
    workload: &DynamicObject,
    reference: &str,
    calls: &mut i32,
) -> Option<Outcome> {
    let all = ListParams::default();
    let (listed, made) = retry::call(Backoff::ACTION, "list pdbs", || budgets.list(&all)).await;
    *calls += made;
    let listed = match listed {
        Ok(list) => list.items,
        Err(e) => return Some(api_failure(&e, *calls)),
    };
    let labels: std::collections::BTreeMap<String, String> =
        serde_json::from_value(workload.data["spec"]["template"]["metadata"]["labels"].clone())
            .unwrap_or_default();
    let why = kube_healer_core::decide::restart_refused_by(&listed, &labels)?;
    Some(Outcome::new(
        ActionPhase::Skipped,
        reasons::PDB_BLOCKED,
        format!("not carried out: {reference} was not restarted: {why}"),
        *calls,
    ))
}

/// One read and patch of the workload's template; None when the patch conflicted (read again).
async fn restart_once(
    (workloads, budgets, name, reference): (&Api<DynamicObject>, &Api<PodDisruptionBudget>, &str, &str),
    spec: &HealingActionSpec,
    window: Duration,
    clock: &dyn Clock,
    calls: &mut i32,
) -> Option<Outcome> {
    let (workload, made) = retry::call(Backoff::ACTION, "get workload", || workloads.get(name)).await;
    *calls += made;
    let workload = match workload {
        Ok(w) => w,
        Err(e) if is_gone(&e) => {
            let message = format!("{reference} is gone");
            return Some(Outcome::new(
                ActionPhase::Failed,
                reasons::TARGET_GONE,
                message,
                *calls,
            ));
        }
        Err(e) => return Some(api_failure(&e, *calls)),
    };
    let now = clock.time().0;
    let previous = workload.data["spec"]["template"]["metadata"]["annotations"][RESTARTED_BY_ANNOTATION]
        .as_str()
        .and_then(|v| v.rsplit_once('@'))
        .and_then(|(_, at)| at.parse::<k8s_openapi::jiff::Timestamp>().ok());
    if let Some(at) = previous
        && now.duration_since(at).as_secs() < window.as_secs() as i64
    {
        let message =
            format!("{reference} was already restarted by kube-healer at {at}: not restarted again");
        return Some(Outcome::new(
            ActionPhase::Succeeded,
            reasons::COMPLETED,
            message,
            *calls,
        ));
    }
    if let Some(outcome) = refused_by_budget(budgets, &workload, reference, calls).await {
        return Some(outcome);
    }
    let stamp = now.to_string();
    let patch = json!({
        "metadata": {"resourceVersion": workload.metadata.resource_version},
        "spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": stamp,
            RESTARTED_BY_ANNOTATION: format!("{}@{stamp}", spec.policy),
        }}}},
    });
    let (params, merge) = (PatchParams::default(), Patch::Merge(&patch));
    let (patched, made) = retry::call(Backoff::ACTION, "patch workload", || {
        workloads.patch(name, &params, &merge)
    })
    .await;
    *calls += made;
    match patched {
        Ok(_) => {
            let message = format!(
                "restarted {reference} (rollout restart), which replaces {}",
                spec.target.reference
            );
            Some(Outcome::new(
                ActionPhase::Succeeded,
                reasons::COMPLETED,
                message,
                *calls,
            ))
        }
        Err(kube::Error::Api(s)) if s.code == 409 => None,
        Err(e) => Some(api_failure(&e, *calls)),
    }
}
