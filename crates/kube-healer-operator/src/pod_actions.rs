//! Actions on pods: Evict, Delete, ForceDelete, Reschedule and RestartOwner. Deletes and
//! evictions carry the pod's UID as a precondition: a pod recreated under the same name is another
//! pod, and a second call for a pod already gone changes nothing.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, EvictParams, Patch, PatchParams, Preconditions,
};
use kube_healer_api::action::RescheduleMethod;
use kube_healer_api::record::ActionPhase;
use kube_healer_api::{HealingActionSpec, RESTARTED_BY_ANNOTATION, reasons};
use kube_healer_core::view::OwnerKind;
use serde_json::json;
use tokio::time::Instant;

use crate::actions::{ActionRequest, Outcome, api_failure};
use crate::node_actions;
use crate::retry::{self, Backoff};

/// How long a PodDisruptionBudget refusal is retried by default.
pub const DEFAULT_PDB_WAIT: Duration = Duration::from_secs(300);

/// How often a PodDisruptionBudget refusal is retried.
const PDB_RETRY: Duration = Duration::from_secs(5);

/// How long Reschedule's avoidNode taint keeps replacements off the node.
pub const AVOID_FOR: Duration = Duration::from_secs(600);

/// Why an eviction did not happen.
#[derive(Debug)]
pub enum EvictError {
    /// A PodDisruptionBudget refused it until the deadline: its message.
    Blocked(String),
    /// The pod is gone or was replaced.
    Gone,
    Api(kube::Error),
}

fn is_429(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 429)
}

fn same_pod(uid: &str) -> Preconditions {
    Preconditions {
        uid: Some(uid.to_string()),
        resource_version: None,
    }
}

/// The pod is gone (404), or its UID precondition failed (409: another pod has its name now).
fn is_gone(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 || (s.code == 409 && !retry::conflict(e)))
}

/// Evicts one pod through the Eviction API, retrying a PodDisruptionBudget refusal (429) every
/// 5 s until `deadline`. Returns the outcome and the number of calls made.
pub async fn evict(
    pods: &Api<Pod>,
    name: &str,
    uid: &str,
    grace: Option<u32>,
    deadline: Instant,
) -> (Result<(), EvictError>, i32) {
    let params = EvictParams {
        delete_options: Some(DeleteParams {
            grace_period_seconds: grace,
            preconditions: Some(same_pod(uid)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut calls = 0;
    loop {
        // A PodDisruptionBudget's 429 is waited on here; other passing failures are retried.
        let (result, made) = retry::call_when(
            Backoff::ACTION,
            "evict pod",
            |e| (retry::transient(e) && !is_429(e)) || retry::conflict(e),
            || pods.evict(name, &params),
        )
        .await;
        calls += made;
        match result {
            Ok(_) => return (Ok(()), calls),
            Err(kube::Error::Api(s)) if s.code == 429 => {
                if Instant::now() + PDB_RETRY > deadline {
                    return (Err(EvictError::Blocked(s.message)), calls);
                }
                tokio::time::sleep(PDB_RETRY).await;
            }
            Err(e) if is_gone(&e) => return (Err(EvictError::Gone), calls),
            Err(e) => return (Err(EvictError::Api(e)), calls),
        }
    }
}

/// Evicts the target pod, waiting up to `pdb_wait` on a PodDisruptionBudget.
pub async fn evict_target(client: &Client, spec: &HealingActionSpec, pdb_wait: Duration) -> Outcome {
    let target = &spec.target;
    let pods: Api<Pod> = Api::namespaced(client.clone(), target.namespace.as_deref().unwrap_or_default());
    let deadline = Instant::now() + pdb_wait;
    let (result, calls) = evict(&pods, &target.name, &target.uid, None, deadline).await;
    let wait = kube_healer_api::Duration::from_secs(pdb_wait.as_secs());
    match result {
        Ok(()) => (
            ActionPhase::Succeeded,
            reasons::COMPLETED,
            format!("evicted {}", target.reference),
            calls,
        ),
        Err(EvictError::Blocked(message)) => (
            ActionPhase::Failed,
            reasons::PDB_BLOCKED,
            format!("a PodDisruptionBudget refused the eviction for {wait}: {message}"),
            calls,
        ),
        Err(EvictError::Gone) => gone(spec, calls),
        Err(EvictError::Api(e)) => api_failure(&e, calls),
    }
}

fn gone(spec: &HealingActionSpec, calls: i32) -> Outcome {
    (
        ActionPhase::Failed,
        reasons::TARGET_GONE,
        format!("{} is gone or was replaced", spec.target.reference),
        calls,
    )
}

/// Deletes the target pod with a grace period (None: the pod's own; Some(0): force).
pub async fn delete_target(client: &Client, spec: &HealingActionSpec, grace: Option<u32>) -> Outcome {
    let target = &spec.target;
    let pods: Api<Pod> = Api::namespaced(client.clone(), target.namespace.as_deref().unwrap_or_default());
    let params = DeleteParams {
        grace_period_seconds: grace,
        preconditions: Some(same_pod(&target.uid)),
        ..Default::default()
    };
    let (result, calls) = retry::call_when(
        Backoff::ACTION,
        "delete pod",
        |e| retry::transient(e) || retry::conflict(e),
        || pods.delete(&target.name, &params),
    )
    .await;
    match result {
        Ok(_) => (
            ActionPhase::Succeeded,
            reasons::COMPLETED,
            format!(
                "deleted {}{}",
                target.reference,
                if grace == Some(0) { " (grace period 0)" } else { "" }
            ),
            calls,
        ),
        Err(e) if is_gone(&e) => gone(spec, calls),
        Err(e) => api_failure(&e, calls),
    }
}

/// Evicts or deletes a controller-owned pod so that its controller recreates it; with avoidNode,
/// first taints its node so that the replacement lands elsewhere (removed after [`AVOID_FOR`]).
pub async fn reschedule(client: &Client, req: &ActionRequest) -> Outcome {
    let spec = &req.spec;
    let params = req.step.reschedule.clone().unwrap_or_default();
    let mut avoided = String::new();
    if params.avoid_node
        && let Some(node) = spec.target.node.as_deref()
    {
        let until = k8s_openapi::jiff::Timestamp::now().as_second() + AVOID_FOR.as_secs() as i64;
        match node_actions::avoid(client, node, until).await {
            Ok(()) => {
                avoided = format!(
                    ", node {node} avoided for {}",
                    kube_healer_api::Duration::from_secs(AVOID_FOR.as_secs())
                )
            }
            Err(e) => {
                return (
                    ActionPhase::Failed,
                    reasons::API_ERROR,
                    format!("tainting node {node} to keep the replacement off it failed: {e}"),
                    0,
                );
            }
        }
    }
    let (phase, reason, message, calls) = match params.method {
        RescheduleMethod::Evict => evict_target(client, spec, DEFAULT_PDB_WAIT).await,
        RescheduleMethod::Delete => delete_target(client, spec, None).await,
    };
    let message = if phase == ActionPhase::Succeeded {
        format!("{message}; its controller recreates it{avoided}")
    } else {
        message
    };
    (phase, reason, message, calls)
}

/// Whether a pod's controller recreates it elsewhere when it is evicted.
pub fn rescheduled_by_controller(owner: OwnerKind) -> Result<(), String> {
    match owner {
        OwnerKind::ReplicaSet | OwnerKind::StatefulSet | OwnerKind::Job => Ok(()),
        OwnerKind::DaemonSet => {
            Err("a DaemonSet pod is recreated on the same node: rescheduling it moves nothing".into())
        }
        OwnerKind::Node => Err("a static pod's mirror cannot be rescheduled".into()),
        OwnerKind::None | OwnerKind::Other => {
            Err("the pod has no controller that would recreate it: rescheduling would only delete it".into())
        }
    }
}

/// The workload kinds RestartOwner restarts.
pub fn restartable_owner(owner: OwnerKind) -> Result<(), String> {
    match owner {
        OwnerKind::ReplicaSet | OwnerKind::StatefulSet | OwnerKind::DaemonSet => Ok(()),
        _ => Err(
            "RestartOwner needs a pod owned by a Deployment's ReplicaSet, a StatefulSet or a DaemonSet"
                .into(),
        ),
    }
}

/// A rollout restart of the pod's workload, like `kubectl rollout restart`: the pod template gets
/// a new `kubectl.kubernetes.io/restartedAt`, and the controller replaces the pods in its own
/// rolling way. Several failing pods of one workload restart it once per `window`.
pub async fn restart_owner(client: &Client, req: &ActionRequest, window: Duration) -> Outcome {
    let spec = &req.spec;
    let namespace = spec.target.namespace.as_deref().unwrap_or_default();
    let Some((owner, owner_name)) = req.owner.clone() else {
        return unsafe_outcome("the pod has no controller".into());
    };
    if let Err(why) = restartable_owner(owner) {
        return unsafe_outcome(why);
    }
    let (resource, name) = match owner {
        OwnerKind::ReplicaSet => {
            let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
            let (set, _) = retry::call(Backoff::ACTION, "get replicaset", || sets.get(&owner_name)).await;
            let set = match set {
                Ok(set) => set,
                Err(e) => {
                    return (
                        ActionPhase::Failed,
                        reasons::API_ERROR,
                        format!("reading ReplicaSet {namespace}/{owner_name}: {e}"),
                        1,
                    );
                }
            };
            let deployment = set
                .metadata
                .owner_references
                .unwrap_or_default()
                .into_iter()
                .find(|o| o.controller == Some(true) && o.kind == "Deployment");
            match deployment {
                Some(d) => (ApiResource::erase::<Deployment>(&()), d.name),
                None => {
                    return unsafe_outcome(format!(
                        "ReplicaSet {namespace}/{owner_name} has no Deployment to restart"
                    ));
                }
            }
        }
        OwnerKind::StatefulSet => (ApiResource::erase::<StatefulSet>(&()), owner_name),
        _ => (ApiResource::erase::<DaemonSet>(&()), owner_name),
    };
    let reference = format!("{}/{namespace}/{name}", resource.kind.to_ascii_lowercase());
    let workloads: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    // Read, then patch with the resourceVersion read: a concurrent restart (for another of the
    // workload's pods) makes the patch conflict, and the next read sees that restart.
    let mut calls = 1;
    for _ in 0..3 {
        let (workload, made) = retry::call(Backoff::ACTION, "get workload", || workloads.get(&name)).await;
        calls += made;
        let workload = match workload {
            Ok(w) => w,
            Err(e) if is_gone(&e) => {
                return (
                    ActionPhase::Failed,
                    reasons::TARGET_GONE,
                    format!("{reference} is gone"),
                    calls,
                );
            }
            Err(e) => return api_failure(&e, calls),
        };
        let now = k8s_openapi::jiff::Timestamp::now();
        let previous = workload.data["spec"]["template"]["metadata"]["annotations"][RESTARTED_BY_ANNOTATION]
            .as_str()
            .and_then(|v| v.rsplit_once('@'))
            .and_then(|(_, at)| at.parse::<k8s_openapi::jiff::Timestamp>().ok());
        if let Some(at) = previous
            && now.duration_since(at).as_secs() < window.as_secs() as i64
        {
            return (
                ActionPhase::Succeeded,
                reasons::COMPLETED,
                format!("{reference} was already restarted by kube-healer at {at}: not restarted again"),
                calls,
            );
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
            workloads.patch(&name, &params, &merge)
        })
        .await;
        calls += made;
        match patched {
            Ok(_) => {
                return (
                    ActionPhase::Succeeded,
                    reasons::COMPLETED,
                    format!(
                        "restarted {reference} (rollout restart), which replaces {}",
                        spec.target.reference
                    ),
                    calls,
                );
            }
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return api_failure(&e, calls),
        }
    }
    (
        ActionPhase::Failed,
        reasons::API_ERROR,
        format!("{reference} kept changing while being restarted; the next decision looks again"),
        calls,
    )
}

fn unsafe_outcome(why: String) -> Outcome {
    (ActionPhase::Failed, reasons::UNSAFE, why, 0)
}
