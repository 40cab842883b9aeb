//! Whether an action is safe for a target right now, whatever its policy says: the last word
//! before a decision is carried out.

use kube_healer_api::{ActionKind, FailureClass, Fencing, HealingPolicySpec};

use super::Decision;
use super::shutdown::{ShutdownEvidence, unsafe_for_node};
use crate::cluster::{ClusterView, NodeLookup};
use crate::finding::Subject;
use crate::policy::TargetView;
use crate::view::{OwnerKind, PodView, Secs, Status};

/// Why an action is unsafe for its target now, and when it may be safe (None: only a change of
/// the target can make it so).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsafe {
    pub message: String,
    pub retry_at: Option<Secs>,
}

/// Why step `step`'s action is unsafe for the target now, if it is: the one safety rule of the
/// operator's gate and the CLI (`unsafe_for` for pods, `unsafe_for_node` for nodes).
pub fn unsafe_for_target(
    spec: &HealingPolicySpec,
    (step, action): (usize, ActionKind),
    target: TargetView<'_>,
    cluster: &impl ClusterView,
    (subject, class): (&Subject, FailureClass),
    now: Secs,
) -> Option<Unsafe> {
    match target {
        TargetView::Pod(pod) => {
            let unfenced = without_fencing(spec, step);
            let message = futile_move(pod, subject, class, action)
                .or_else(|| unsafe_for(pod, cluster, subject, action, unfenced, now))?;
            Some(Unsafe {
                message,
                retry_at: None,
            })
        }
        TargetView::Node(node) => {
            let evidence = ShutdownEvidence::of(spec, step);
            unsafe_for_node(node, cluster, action, evidence, now)
        }
    }
}

/// Why moving this pod off its node cannot help, if it cannot: its failure is its node's (lost
/// with it, stuck terminating on it, left by it), and what owns it brings it back on that same
/// node (a DaemonSet's pod, a static pod's mirror), or it is pinned there (a nodeSelector or
/// required affinity naming that node alone, see `convert::pinned`). Its replacement would be
/// made for that same node, so the failure is the node's to heal (a node policy), not the
/// pod's. ForceDelete, whose aim is the pod's object released, is not a move.
pub fn futile_move(
    pod: &PodView,
    subject: &Subject,
    class: FailureClass,
    action: ActionKind,
) -> Option<String> {
    if !action.properties().moves_pod || !class.properties().inherits_node_cause {
        return None;
    }
    let why = match pod.owner {
        OwnerKind::DaemonSet => "a DaemonSet recreates its pod on the same node",
        OwnerKind::Node => "a static pod comes back on the same node",
        _ if pod.pinned => {
            "it is pinned to that node (a nodeSelector or required node affinity naming it alone): its replacement would wait for the same node"
        }
        _ => return None,
    };
    Some(format!(
        "{subject}: its failure ({class}) is its node's, and {why}: {action} cannot help; the node's own policies heal it"
    ))
}

/// The taint that confirms a node is shut down (non-graceful node shutdown).
pub const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

/// Why the decided action is unsafe for this pod now, if it is: ForceDelete only past the
/// deletionTimestamp, and a pod that needs fencing only when its node is confirmed gone;
/// Reschedule only a pod its controller recreates elsewhere; RestartOwner only a workload's pod.
/// `unfenced`: the policy's step opted out of fencing (never for a StatefulSet pod).
pub fn unsafe_for(
    pod: &PodView,
    cluster: &impl ClusterView,
    subject: &Subject,
    action: ActionKind,
    unfenced: bool,
    now: Secs,
) -> Option<String> {
    let own = match action {
        ActionKind::ForceDelete => pod
            .deletion()
            .is_none_or(|d| d > now)
            .then(|| format!("{subject} is not past its deletionTimestamp: ForceDelete waits for it")),
        ActionKind::Reschedule => rescheduled_by_controller(pod.owner)
            .err()
            .map(|why| format!("{subject}: {why}")),
        ActionKind::RestartOwner => restartable_owner(pod.owner)
            .err()
            .map(|why| format!("{subject}: {why}")),
        ActionKind::Event
        | ActionKind::Evict
        | ActionKind::Delete
        | ActionKind::Cordon
        | ActionKind::Taint
        | ActionKind::Drain
        | ActionKind::RunJob
        | ActionKind::OutOfService
        | ActionKind::Remediate
        | ActionKind::Replace => None,
    };
    own.or_else(|| unfenced_removal(pod, cluster, subject, action, unfenced))
}

/// An action that needs the pod's node confirmed gone (its fencing, as it declares): why it waits,
/// if the pod needs fencing and its node is not confirmed gone.
fn unfenced_removal(
    pod: &PodView,
    cluster: &impl ClusterView,
    subject: &Subject,
    action: ActionKind,
    unfenced: bool,
) -> Option<String> {
    if action.properties().fencing != Fencing::NodeGone {
        return None;
    }
    let why = needs_fencing(pod, cluster, unfenced)?;
    if node_confirmed_gone(pod, cluster) {
        return None;
    }
    Some(format!(
        "{subject} {why}, and its node is not confirmed gone (deleted, or tainted {OUT_OF_SERVICE}=nodeshutdown:NoExecute, Kubernetes' non-graceful node shutdown): {action} waits for that{}",
        if pod.owner == OwnerKind::StatefulSet {
            ""
        } else {
            " (forceDelete.withoutFencing: true in the policy step acts anyway)"
        }
    ))
}

/// Why force-deleting this pod needs its node fenced first, if it does. A StatefulSet pod: its
/// replacement takes the same identity, so two would run at once. On a node that is not Ready
/// (its kubelet cannot be trusted to have stopped anything): a pod with a PersistentVolumeClaim,
/// whose volume the replacement would get (force-detached) while the old container may still
/// write it, and a pod of a controller kube-healer does not know (an operator's own pod set),
/// which may recreate it under the same identity. A ReplicaSet, Job or DaemonSet pod without
/// claims, or a bare one (nothing recreates it), needs none.
fn needs_fencing(pod: &PodView, cluster: &impl ClusterView, unfenced: bool) -> Option<&'static str> {
    if pod.owner == OwnerKind::StatefulSet {
        return Some("belongs to a StatefulSet");
    }
    if unfenced {
        return None;
    }
    let node_ready = pod.node.as_deref().is_some_and(|n| match cluster.node(n) {
        NodeLookup::Present(v) => v.ready() == Status::True,
        NodeLookup::Gone { .. } | NodeLookup::Unknown => false,
    });
    if node_ready {
        return None;
    }
    if pod.has_claims {
        return Some("has a PersistentVolumeClaim");
    }
    (pod.owner == OwnerKind::Other).then_some("belongs to a controller kube-healer does not know")
}

/// The pod's node is deleted or tainted out-of-service. A node no list has shown is unknown, and
/// unknown is never gone.
fn node_confirmed_gone(pod: &PodView, cluster: &impl ClusterView) -> bool {
    match pod.node.as_deref() {
        None => true,
        Some(n) => match cluster.node(n) {
            NodeLookup::Present(v) => v.has_taint(OUT_OF_SERVICE),
            NodeLookup::Gone { .. } => true,
            NodeLookup::Unknown => false,
        },
    }
}

/// Whether the policy's step opted out of fencing (`forceDelete.withoutFencing`).
pub fn without_fencing(spec: &HealingPolicySpec, step: usize) -> bool {
    let params = spec.actions.get(step).and_then(|s| s.force_delete.as_ref());
    params.is_some_and(|f| f.without_fencing)
}

/// A decision to act, held back (reason Unsafe) if `unsafe_for` names why the action is unsafe
/// for the target now.
pub fn guard(decision: Decision, unsafe_for: impl FnOnce(usize, ActionKind) -> Option<Unsafe>) -> Decision {
    match decision {
        Decision::Act { step, action, .. } => match unsafe_for(step, action) {
            Some(Unsafe { message, retry_at }) => Decision::Hold {
                step,
                action,
                reason: kube_healer_api::reasons::HoldReason::Unsafe,
                message,
                retry_at,
            },
            None => decision,
        },
        other => other,
    }
}

/// Why what owns a pod makes an action on it pointless or unsafe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OwnerUnfit {
    #[error("a DaemonSet pod is recreated on the same node: rescheduling it moves nothing")]
    RecreatedInPlace,
    #[error("a static pod's mirror cannot be rescheduled")]
    StaticPod,
    #[error("the pod has no controller that would recreate it: rescheduling would only delete it")]
    NotRecreated,
    #[error("RestartOwner needs a pod owned by a Deployment's ReplicaSet, a StatefulSet or a DaemonSet")]
    NotRestartable,
}

/// Whether a pod's controller recreates it elsewhere when it is evicted.
pub fn rescheduled_by_controller(owner: OwnerKind) -> Result<(), OwnerUnfit> {
    match owner {
        OwnerKind::ReplicaSet | OwnerKind::StatefulSet | OwnerKind::Job => Ok(()),
        OwnerKind::DaemonSet => Err(OwnerUnfit::RecreatedInPlace),
        OwnerKind::Node => Err(OwnerUnfit::StaticPod),
        OwnerKind::None | OwnerKind::Other => Err(OwnerUnfit::NotRecreated),
    }
}

/// The workload kinds RestartOwner restarts.
pub fn restartable_owner(owner: OwnerKind) -> Result<(), OwnerUnfit> {
    match owner {
        OwnerKind::ReplicaSet | OwnerKind::StatefulSet | OwnerKind::DaemonSet => Ok(()),
        OwnerKind::Job | OwnerKind::Node | OwnerKind::None | OwnerKind::Other => {
            Err(OwnerUnfit::NotRestartable)
        }
    }
}
