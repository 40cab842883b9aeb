//! Whether an action is safe for a target right now, whatever its policy says: the last word
//! before a decision is carried out.

use kube_healer_api::ActionKind;

use super::Decision;
use crate::cluster::{ClusterView, NodeLookup};
use crate::finding::Subject;
use crate::view::{OwnerKind, PodView, Secs};

/// The taint that confirms a node is shut down (non-graceful node shutdown).
const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

/// Why the decided action is unsafe for this pod now, if it is: ForceDelete only past the
/// deletionTimestamp, and a StatefulSet pod only when its node is confirmed gone; Reschedule
/// only a pod its controller recreates elsewhere; RestartOwner only a workload's pod.
pub fn unsafe_for(
    pod: &PodView,
    cluster: &impl ClusterView,
    subject: &Subject,
    action: ActionKind,
    now: Secs,
) -> Option<String> {
    match action {
        ActionKind::ForceDelete => {
            if pod.deletion().is_none_or(|d| d > now) {
                return Some(format!(
                    "{subject} is not past its deletionTimestamp: ForceDelete waits for it"
                ));
            }
            if pod.owner == OwnerKind::StatefulSet {
                let node_gone = match pod.node.as_deref() {
                    None => true,
                    Some(n) => match cluster.node(n) {
                        NodeLookup::Present(v) => v.has_taint(OUT_OF_SERVICE),
                        NodeLookup::Gone { .. } => true,
                        // Nodes not listed yet: unknown is never gone.
                        NodeLookup::Unknown => false,
                    },
                };
                if !node_gone {
                    return Some(format!(
                        "{subject} belongs to a StatefulSet and its node is not confirmed gone (deleted, or tainted {OUT_OF_SERVICE})"
                    ));
                }
            }
            None
        }
        ActionKind::Reschedule => rescheduled_by_controller(pod.owner)
            .err()
            .map(|why| format!("{subject}: {why}")),
        ActionKind::RestartOwner => restartable_owner(pod.owner)
            .err()
            .map(|why| format!("{subject}: {why}")),
        _ => None,
    }
}

/// A decision to act, held back (reason Unsafe) if `unsafe_for` names why the action is unsafe
/// for the target now.
pub fn guard(decision: Decision, unsafe_for: impl FnOnce(ActionKind) -> Option<String>) -> Decision {
    match decision {
        Decision::Act { step, action, .. } => match unsafe_for(action) {
            Some(message) => Decision::Hold {
                step,
                action,
                reason: kube_healer_api::reasons::UNSAFE,
                message,
                retry_at: None,
            },
            None => decision,
        },
        other => other,
    }
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
