//! Actions that remove a pod: Evict, Delete and ForceDelete. Deletes and evictions carry the pod's UID as a precondition: a pod recreated under the same name is another
//! pod, and a second call for a pod already gone changes nothing.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::Eviction;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta};
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube_healer_api::record::ActionPhase;
use kube_healer_api::{HealingActionSpec, reasons};
use tokio::time::Instant;

use crate::act::Outcome;
use crate::act::failure::api_failure;
use crate::protocol::Leading;
use crate::retry::{self, Backoff};

/// How long a PodDisruptionBudget refusal is retried by default.
pub const DEFAULT_PDB_WAIT: Duration = Duration::from_secs(300);

/// How often a PodDisruptionBudget refusal is retried.
const PDB_RETRY: Duration = Duration::from_secs(5);

/// Why an eviction did not happen.
#[derive(Debug)]
pub enum EvictError {
    /// A PodDisruptionBudget refused it until the deadline: its message.
    Blocked(String),
    /// The pod is gone or was replaced.
    Gone,
    /// This replica lost the leadership before the next call.
    Stopped,
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
pub(crate) fn is_gone(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 || (s.code == 409 && !retry::conflict(e)))
}

/// The Eviction of the pod with this UID, with this grace (None: the pod's own). Written here,
/// not by kube's `Api::evict`: that one sends its delete options as `delete_options`, a key
/// the API server drops (the field is `deleteOptions`), so a drain's grace and the UID
/// precondition never reached it (found by the e2e test of a grace-0 drain: every pod was
/// evicted with its own grace).
fn eviction(name: &str, uid: &str, grace: Option<u32>) -> Eviction {
    Eviction {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        delete_options: Some(DeleteOptions {
            grace_period_seconds: grace.map(i64::from),
            preconditions: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..Default::default()
        }),
    }
}

/// Evicts one pod through the Eviction API, retrying a PodDisruptionBudget refusal (429) every
/// 5 s until `deadline`, as long as this replica leads. Returns the outcome and the number of
/// calls made.
pub async fn evict(
    pods: &Api<Pod>,
    name: &str,
    uid: &str,
    grace: Option<u32>,
    deadline: Instant,
    leading: &Leading,
) -> (Result<(), EvictError>, i32) {
    let body = eviction(name, uid, grace);
    let post = PostParams::default();
    let mut calls = 0;
    loop {
        if !leading.now() {
            return (Err(EvictError::Stopped), calls);
        }
        // A PodDisruptionBudget's 429 is waited on here; other passing failures are retried.
        let (result, made) = retry::call_when(
            Backoff::ACTION,
            "evict pod",
            |e| (retry::transient(e) && !is_429(e)) || retry::conflict(e),
            || pods.create_subresource::<_, serde_json::Value>("eviction", name, &post, &body),
        )
        .await;
        calls += made;
        match result {
            Ok(_) => return (Ok(()), calls),
            Err(kube::Error::Api(s)) if s.code == 429 => {
                if Instant::now() + PDB_RETRY > deadline {
                    return (Err(EvictError::Blocked(refusal(&s))), calls);
                }
                tokio::select! {
                    () = tokio::time::sleep(PDB_RETRY) => {}
                    () = leading.lost() => return (Err(EvictError::Stopped), calls),
                }
            }
            Err(e) if is_gone(&e) => return (Err(EvictError::Gone), calls),
            Err(e) => return (Err(EvictError::Api(e)), calls),
        }
    }
}

/// Evicts the target pod, waiting up to `pdb_wait` on a PodDisruptionBudget.
pub async fn evict_target(
    client: &Client,
    spec: &HealingActionSpec,
    pdb_wait: Duration,
    leading: &Leading,
) -> Outcome {
    let target = &spec.target;
    let pods: Api<Pod> = Api::namespaced(client.clone(), target.namespace.as_deref().unwrap_or_default());
    let deadline = Instant::now() + pdb_wait;
    let (result, calls) = evict(&pods, &target.name, &target.uid, None, deadline, leading).await;
    let wait = kube_healer_api::Duration::from_secs(pdb_wait.as_secs());
    match result {
        Ok(()) => Outcome::new(
            ActionPhase::Succeeded,
            reasons::COMPLETED,
            format!("evicted {}", target.reference),
            calls,
        ),
        Err(EvictError::Blocked(message)) => Outcome::new(
            ActionPhase::Failed,
            reasons::PDB_BLOCKED,
            format!("a PodDisruptionBudget refused the eviction for {wait}: {message}"),
            calls,
        ),
        Err(EvictError::Gone) => gone(spec, calls),
        Err(EvictError::Stopped) => Outcome::new(
            ActionPhase::Running,
            reasons::LEADERSHIP_LOST,
            format!(
                "stopped before evicting {}: this replica lost the leadership; the next leader resumes it",
                target.reference
            ),
            calls,
        ),
        Err(EvictError::Api(e)) => api_failure(&e, calls),
    }
}

fn gone(spec: &HealingActionSpec, calls: i32) -> Outcome {
    Outcome::new(
        ActionPhase::Failed,
        reasons::TARGET_GONE,
        format!("{} is gone or was replaced", spec.target.reference),
        calls,
    )
}

/// The API server's refusal of an eviction, with its causes: they name the budget ("The
/// disruption budget web needs 2 healthy pods and has 1 currently").
fn refusal(s: &kube::core::Status) -> String {
    let causes: Vec<&str> = s
        .details
        .iter()
        .flat_map(|d| d.causes.iter())
        .map(|c| c.message.as_str())
        .filter(|m| !m.is_empty())
        .collect();
    match causes.is_empty() {
        true => s.message.clone(),
        false => format!("{} {}", s.message, causes.join("; ")),
    }
}

/// Delete: the target pod removed with a grace period (None: the pod's own), through the
/// Eviction API, so that choosing Delete over Evict never bypasses a PodDisruptionBudget: the
/// API server applies each budget as for any eviction (its unhealthyPodEvictionPolicy too) and
/// decrements it atomically. A budget that allows no disruption now holds the delete at once
/// (Skipped/PDBBlocked, naming the budget): it is decided again later, and Evict is the action
/// that waits for a budget.
pub async fn delete_within_budgets(
    client: &Client,
    spec: &HealingActionSpec,
    grace: Option<u32>,
    leading: &Leading,
) -> Outcome {
    let target = &spec.target;
    let pods: Api<Pod> = Api::namespaced(client.clone(), target.namespace.as_deref().unwrap_or_default());
    let (result, calls) = evict(&pods, &target.name, &target.uid, grace, Instant::now(), leading).await;
    match result {
        Ok(()) => deleted(spec, grace, Ok(()), calls),
        Err(EvictError::Blocked(message)) => Outcome::new(
            ActionPhase::Skipped,
            reasons::PDB_BLOCKED,
            format!("not carried out: a PodDisruptionBudget allows no disruption now: {message}"),
            calls,
        ),
        Err(EvictError::Gone) => gone(spec, calls),
        Err(EvictError::Stopped) => Outcome::new(
            ActionPhase::Running,
            reasons::LEADERSHIP_LOST,
            format!(
                "stopped before deleting {}: this replica lost the leadership; the next leader resumes it",
                target.reference
            ),
            calls,
        ),
        Err(EvictError::Api(e)) => api_failure(&e, calls),
    }
}

/// Deletes the target pod with a grace period (None: the pod's own; Some(0): force).
pub async fn delete_target(client: &Client, spec: &HealingActionSpec, grace: Option<u32>) -> Outcome {
    let (result, calls) = delete(client, spec, grace, same_pod(&spec.target.uid), true).await;
    deleted(spec, grace, result, calls)
}

/// Deletes a dead pod only at the version its decision saw (core's `checked_by_version`): the
/// API server checks it, atomically, instead of a read before the call. Err(calls) when it
/// refused the precondition (the pod changed since, or another pod has its name now): the
/// caller reads and rechecks it.
pub async fn delete_at_version(
    client: &Client,
    spec: &HealingActionSpec,
    grace: Option<u32>,
    version: u64,
) -> Result<Outcome, i32> {
    let mut at = same_pod(&spec.target.uid);
    at.resource_version = Some(version.to_string());
    // A conflict is the version changed (the API server answers a resourceVersion precondition
    // as it does any stale write): never worth the same call again.
    let (result, calls) = delete(client, spec, grace, at, false).await;
    match result {
        Err(kube::Error::Api(s)) if s.code == 409 => Err(calls),
        // Gone at the first call: someone else removed it (no read came first to say so), and
        // nothing was carried out. Gone after a retried call: the earlier one may have taken
        // effect, and the aim is met either way.
        Err(e) if is_gone(&e) && calls <= 1 => Ok(Outcome::new(
            ActionPhase::Skipped,
            reasons::TARGET_GONE,
            format!("not carried out: {} is gone", spec.target.reference),
            calls,
        )),
        Err(e) if is_gone(&e) => Ok(Outcome::new(
            ActionPhase::Succeeded,
            reasons::COMPLETED,
            format!(
                "{} is gone after a retried delete: the earlier call took effect, or it was removed meanwhile",
                spec.target.reference
            ),
            calls,
        )),
        result => Ok(deleted(spec, grace, result, calls)),
    }
}

/// One pod deletion under `preconditions`, retried while the API server is overloaded, and if
/// `conflicts` says so while a concurrent writer conflicts (a failed UID precondition is not
/// retried).
async fn delete(
    client: &Client,
    spec: &HealingActionSpec,
    grace: Option<u32>,
    preconditions: Preconditions,
    conflicts: bool,
) -> (Result<(), kube::Error>, i32) {
    let target = &spec.target;
    let pods: Api<Pod> = Api::namespaced(client.clone(), target.namespace.as_deref().unwrap_or_default());
    let params = DeleteParams {
        grace_period_seconds: grace,
        preconditions: Some(preconditions),
        ..Default::default()
    };
    retry::call_when(
        Backoff::ACTION,
        "delete pod",
        |e| retry::transient(e) || conflicts && retry::conflict(e),
        || async { pods.delete(&target.name, &params).await.map(|_| ()) },
    )
    .await
}

/// What a pod deletion's answer means.
fn deleted(
    spec: &HealingActionSpec,
    grace: Option<u32>,
    result: Result<(), kube::Error>,
    calls: i32,
) -> Outcome {
    let target = &spec.target;
    match result {
        Ok(_) => Outcome::new(
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

#[cfg(test)]
mod tests {
    use super::eviction;

    #[test]
    fn an_eviction_carries_its_grace_and_the_pod_s_uid_as_the_api_server_reads_them() {
        let body = serde_json::to_value(eviction("p", "u-1", Some(0))).unwrap();
        assert_eq!(body["apiVersion"], "policy/v1");
        assert_eq!(body["kind"], "Eviction");
        assert_eq!(body["deleteOptions"]["gracePeriodSeconds"], 0);
        assert_eq!(body["deleteOptions"]["preconditions"]["uid"], "u-1");
        let own = serde_json::to_value(eviction("p", "u-1", None)).unwrap();
        assert!(own["deleteOptions"].get("gracePeriodSeconds").is_none());
    }
}
