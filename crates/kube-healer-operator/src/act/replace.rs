//! Replace: the node's machine handed to its owner for replacement, read from the node right
//! before the call. Karpenter: its NodeClaim is deleted, and Karpenter drains the node (through
//! the Eviction API, within its NodePool's budgets) and terminates the instance. Cluster API: its
//! Machine is marked `cluster.x-k8s.io/remediate-machine` (the MachineHealthCheck and the
//! Machine's owner replace it by their rules), or deleted. The action then waits for the node to
//! go, so that a policy's maxConcurrent bounds the replacements in progress. The node carries
//! the policy in its replaced-by annotation meanwhile: it counts as kept out of service (the
//! cluster's disruption budget, maxUnhealthy) until it is gone.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use kube::runtime::wait::await_condition;
use kube_healer_api::record::ActionPhase;
use kube_healer_api::replace::{
    CLUSTER_API_GROUP, KARPENTER_GROUP, MachineOwner, MachineReplacement, REMEDIATE_MACHINE_ANNOTATION,
    ReplaceParams,
};
use kube_healer_api::{HealingActionSpec, REPLACED_BY_ANNOTATION, reasons};
use kube_healer_core::convert::replace_owners;
use serde_json::json;

use crate::act::Outcome;
use crate::act::discover::served;
use crate::act::failure::api_failure;
use crate::act::node::update_node;
use crate::protocol::Leading;
use crate::retry::{self, Backoff};

/// Why the machine's owner was not asked to replace it.
#[derive(Debug, thiserror::Error)]
enum HandOverError {
    /// No version of the owner's API is served: each version tried, and why.
    #[error("not served ({}): is its controller installed?", .0.join("; "))]
    NotServed(Vec<String>),
    /// The API server refused the call.
    #[error("{}", retry::describe(.0))]
    Refused(#[source] kube::Error),
}

/// The API resource of `kind` in `group`, at the first of `versions` the API server serves.
async fn discover(
    client: &Client,
    group: &str,
    versions: &[&str],
    kind: &str,
) -> Result<ApiResource, HandOverError> {
    let mut why = Vec::new();
    for version in versions {
        match served(client, &format!("{group}/{version}"), kind).await {
            Ok(resource) => return Ok(resource),
            Err(e) => why.push(format!("{group}/{version} {kind}: {}", retry::describe(&e))),
        }
    }
    Err(HandOverError::NotServed(why))
}

/// Asks the owner to replace the machine: what was done, or the API's refusal.
async fn hand_over(
    client: &Client,
    owner: &MachineOwner,
    how: MachineReplacement,
) -> Result<String, HandOverError> {
    match owner {
        MachineOwner::NodeClaim { name } => {
            let resource = discover(client, KARPENTER_GROUP, &["v1"], "NodeClaim").await?;
            let claims = Api::<DynamicObject>::all_with(client.clone(), &resource);
            let params = DeleteParams::default();
            let (deleted, _) = retry::call(Backoff::ACTION, "delete nodeclaim", || {
                claims.delete(name, &params)
            })
            .await;
            match deleted {
                Ok(_) => Ok(format!(
                    "deleted NodeClaim {name}: Karpenter drains the node and replaces it"
                )),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(format!("NodeClaim {name} was already gone")),
                Err(e) => Err(HandOverError::Refused(e)),
            }
        }
        MachineOwner::Machine { namespace, name } => {
            let resource = discover(client, CLUSTER_API_GROUP, &["v1beta2", "v1beta1"], "Machine").await?;
            let machines = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource);
            let reference = format!("Machine {namespace}/{name}");
            let (done, _) = match how {
                MachineReplacement::Annotate => {
                    let patch = json!({"metadata": {"annotations": {REMEDIATE_MACHINE_ANNOTATION: ""}}});
                    let (params, merge) = (PatchParams::default(), Patch::Merge(&patch));
                    let (patched, calls) = retry::call(Backoff::ACTION, "annotate machine", || {
                        machines.patch(name, &params, &merge)
                    })
                    .await;
                    (patched.map(|_| format!("marked {reference} {REMEDIATE_MACHINE_ANNOTATION}: its MachineHealthCheck and owner replace it")), calls)
                }
                MachineReplacement::Delete => {
                    let params = DeleteParams::default();
                    let (deleted, calls) = retry::call(Backoff::ACTION, "delete machine", || {
                        machines.delete(name, &params)
                    })
                    .await;
                    (
                        deleted.map(|_| format!("deleted {reference}: its MachineSet makes another")),
                        calls,
                    )
                }
            };
            match done {
                Ok(asked) => Ok(asked),
                // Gone already (the owner took it, or a leader before this one deleted it).
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(format!("{reference} was already gone")),
                Err(e) => Err(HandOverError::Refused(e)),
            }
        }
    }
}

/// The node no longer names the policy in its replaced-by annotation: nothing was handed over,
/// or the node outlived the wait.
async fn unmark(client: &Client, spec: &HealingActionSpec) {
    let policy = spec.policy.as_str();
    let result = update_node(client, &spec.target.name, Some(&spec.target.uid), |n| {
        let held = replace_owners(n.metadata.annotations.as_ref());
        if !held.contains(&policy) {
            return None;
        }
        let rest: Vec<&str> = held.into_iter().filter(|p| *p != policy).collect();
        let value = if rest.is_empty() {
            serde_json::Value::Null
        } else {
            json!(rest.join(","))
        };
        Some((
            json!({"metadata": {"annotations": {REPLACED_BY_ANNOTATION: value}}}),
            String::new(),
        ))
    })
    .await;
    match result {
        Ok(_) => {}
        // The node went meanwhile: nothing to unmark.
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => tracing::warn!(node = %spec.target.name, %policy, error = %e, "unmarking the node failed"),
    }
}

pub async fn replace(
    client: &Client,
    spec: &HealingActionSpec,
    params: &ReplaceParams,
    leading: &Leading,
) -> Outcome {
    let name = spec.target.name.as_str();
    let nodes: Api<Node> = Api::all(client.clone());
    let (read, calls) = retry::call(Backoff::ACTION, "get node", || nodes.get_opt(name)).await;
    let node = match read {
        Ok(Some(node)) if node.metadata.uid.as_deref() == Some(spec.target.uid.as_str()) => node,
        Ok(_) => {
            let message = format!("{} is already gone", spec.target.reference);
            return Outcome::new(ActionPhase::Succeeded, reasons::TARGET_GONE, message, calls);
        }
        Err(e) => return api_failure(&e, calls),
    };
    let Some(owner) = MachineOwner::of(&node.metadata) else {
        return Outcome::unsafe_because(format!(
            "{} has neither a Karpenter NodeClaim (owner reference) nor a Cluster API Machine (annotations cluster.x-k8s.io/machine and cluster-namespace): nothing owns its machine to replace it",
            spec.target.reference
        ));
    };
    // Held first, so that the node counts as out of service until it is gone, a crash included.
    if let Err(e) = mark(client, spec).await {
        return api_failure(&e, calls + 1);
    }
    let asked = match hand_over(client, &owner, params.machine).await {
        Ok(asked) => asked,
        Err(why) => {
            unmark(client, spec).await;
            let message = format!(
                "replacing {} through its owner failed: {why}",
                spec.target.reference
            );
            return Outcome::new(ActionPhase::Failed, reasons::API_ERROR, message, calls + 1);
        }
    };
    tracing::info!(node = name, %asked, "replacement handed to the machine's owner");
    let uid = node.metadata.uid.clone();
    let (phase, reason, message) = wait_gone(&nodes, spec, uid, params.timeout(), &asked, leading).await;
    // The node still there when Replace gives up: it no longer counts as going.
    if phase == ActionPhase::Failed {
        unmark(client, spec).await;
    }
    Outcome::new(phase, reason, message, calls + 1)
}

/// The node's replaced-by annotation names this policy (kept if it does).
async fn mark(client: &Client, spec: &HealingActionSpec) -> Result<(), kube::Error> {
    let policy = spec.policy.as_str();
    update_node(client, &spec.target.name, Some(&spec.target.uid), |n| {
        let mut held = replace_owners(n.metadata.annotations.as_ref());
        if held.contains(&policy) {
            return None;
        }
        held.push(policy);
        Some((
            json!({"metadata": {"annotations": {REPLACED_BY_ANNOTATION: held.join(",")}}}),
            String::new(),
        ))
    })
    .await
    .map(|_| ())
}

/// Waits for the node (this UID) to go, until the timeout or the loss of the leadership.
async fn wait_gone(
    nodes: &Api<Node>,
    spec: &HealingActionSpec,
    uid: Option<String>,
    timeout: Duration,
    asked: &str,
    leading: &Leading,
) -> (ActionPhase, &'static str, String) {
    let started = Instant::now();
    let gone = await_condition(nodes.clone(), &spec.target.name, move |n: Option<&Node>| {
        n.is_none_or(|n| n.metadata.uid != uid)
    });
    let Some(waited) = leading.within(timeout, gone).await else {
        let message =
            format!("{asked}; stopped waiting for the node to go: this replica lost the leadership");
        return (ActionPhase::Running, reasons::LEADERSHIP_LOST, message);
    };
    let target = &spec.target.reference;
    match waited {
        Ok(Ok(_)) => (
            ActionPhase::Succeeded,
            reasons::COMPLETED,
            format!("{asked}; {target} gone after {}s", started.elapsed().as_secs()),
        ),
        Ok(Err(e)) => (
            ActionPhase::Failed,
            reasons::API_ERROR,
            format!("{asked}; following the node: {e}"),
        ),
        Err(_) => (
            ActionPhase::Failed,
            reasons::TIMEOUT,
            format!("{asked}; {target} still there after {}s", timeout.as_secs()),
        ),
    }
}
