//! The actions a policy's escalation ladder can take, with their parameters.

use std::fmt;

use kube::KubeSchema;
use kube::core::Rule;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::class::TargetKind;
use crate::duration::Duration;
pub use crate::node_job::RunJobParams;

/// What the rest of kube-healer asks of an action, declared with the action itself: a new action
/// must state each (the struct literal in `action_kinds!` does not compile without all of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActionProperties {
    /// Keeps its node out of service (unschedulable, tainted, drained, handed to a job, a
    /// remediator or a replacement), and so spends the cluster's disruption budget.
    pub takes_node_out: bool,
    /// Marks its node with kube-healer's hold (cordoned-by, tainted-by, remediated-by,
    /// replaced-by, job-by annotations), which outlives the process and is lifted on recovery
    /// (a node Job's when the Job has ended).
    pub marks_node: bool,
    /// Its aim is the target gone: a target already gone is the aim met.
    pub removes_target: bool,
    /// May take more than one quick call (waits, follows, several objects): it runs in the slow
    /// lane and its record carries how long it may run.
    pub takes_long: bool,
    /// Changes the cluster (everything but a record and an Event): a live one is rechecked on
    /// fresh reads right before its call.
    pub changes_cluster: bool,
    /// What must be known of the node before it runs, so that no copy of a workload runs twice.
    pub fencing: Fencing,
    /// Its aim is the pod running again elsewhere (its controller recreates it, the scheduler
    /// places it): futile for a pod that comes back on the same node (a DaemonSet's, a static
    /// pod) when the failure is its node's. ForceDelete's aim is the pod's object released when
    /// its kubelet cannot confirm the end: it stays allowed.
    pub moves_pod: bool,
}

impl ActionProperties {
    /// Its aim is the target gone, in one quick call (Delete, ForceDelete): a dead pod's removal
    /// may share a batch record and carry the version decided on instead of a read.
    pub const fn removes_at_once(&self) -> bool {
        self.removes_target && !self.takes_long
    }
}

/// What an action must know of the node first, so that no copy of a workload runs twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fencing {
    /// Nothing: the kubelet, or the controller, still has its say.
    None,
    /// The pod's node confirmed gone or shut down when a copy elsewhere could collide with a
    /// container still running there (a StatefulSet pod, a pod with claims): removing the pod
    /// without its kubelet's word.
    NodeGone,
    /// The node shut down: its Lease expired and it unreachable for long enough (the recheck
    /// reads the Lease). Kubernetes then force-deletes its pods and detaches their volumes.
    NodeShutDown,
}

macro_rules! action_kinds {
    ($($(#[doc = $doc:literal])* $name:ident: [$($kind:ident),*] $props:tt,)*) => {
        /// What a ladder step does. On pods: Event, Evict, Delete, ForceDelete, Reschedule,
        /// RestartOwner. On nodes: Event, Cordon, Taint, Drain, RunJob, OutOfService, Remediate,
        /// Replace.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        #[schemars(extend("maxLength" = 16))]
        pub enum ActionKind {
            $($(#[doc = $doc])* $name,)*
        }

        impl ActionKind {
            pub const ALL: &'static [ActionKind] = &[$(ActionKind::$name,)*];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ActionKind::$name => stringify!($name),)*
                }
            }

            /// Whether the action can be taken on objects of `kind`.
            pub fn applies_to(self, kind: TargetKind) -> bool {
                match self {
                    $(ActionKind::$name => [$(TargetKind::$kind),*].contains(&kind),)*
                }
            }

            /// What the action is, as its declaration states.
            pub const fn properties(self) -> ActionProperties {
                match self {
                    $(ActionKind::$name => ActionProperties $props,)*
                }
            }
        }
    };
}

action_kinds! {
    /// Record only: a HealingAction and a Kubernetes Event on the target, nothing changed.
    Event: [Pod, Node] {
        takes_node_out: false, marks_node: false, removes_target: false, takes_long: false,
        changes_cluster: false, fencing: Fencing::None, moves_pod: false
    },
    /// Evict the pod through the Eviction API, which honours PodDisruptionBudgets.
    Evict: [Pod] {
        takes_node_out: false, marks_node: false, removes_target: true, takes_long: true,
        changes_cluster: true, fencing: Fencing::None, moves_pod: true
    },
    /// Delete the pod with its grace period (or the one given in `delete`).
    Delete: [Pod] {
        takes_node_out: false, marks_node: false, removes_target: true, takes_long: false,
        changes_cluster: true, fencing: Fencing::None, moves_pod: true
    },
    /// Delete with grace period 0, only once the pod is past its deletionTimestamp; a StatefulSet
    /// pod only when its node is gone (deleted, or tainted node.kubernetes.io/out-of-service).
    ForceDelete: [Pod] {
        takes_node_out: false, marks_node: false, removes_target: true, takes_long: false,
        changes_cluster: true, fencing: Fencing::NodeGone, moves_pod: false
    },
    /// Evict or delete a controller-owned pod so that its controller recreates it, optionally away
    /// from its current node.
    Reschedule: [Pod] {
        takes_node_out: false, marks_node: false, removes_target: true, takes_long: true,
        changes_cluster: true, fencing: Fencing::None, moves_pod: true
    },
    /// Rollout-restart the pod's Deployment, StatefulSet or DaemonSet.
    RestartOwner: [Pod] {
        takes_node_out: false, marks_node: false, removes_target: false, takes_long: true,
        changes_cluster: true, fencing: Fencing::None, moves_pod: false
    },
    /// Mark the node unschedulable. Reverted when the node recovers, if kube-healer cordoned it.
    Cordon: [Node] {
        takes_node_out: true, marks_node: true, removes_target: false, takes_long: false,
        changes_cluster: true, fencing: Fencing::None, moves_pod: false
    },
    /// Add a taint to the node. Removed when the node recovers.
    Taint: [Node] {
        takes_node_out: true, marks_node: true, removes_target: false, takes_long: false,
        changes_cluster: true, fencing: Fencing::None, moves_pod: false
    },
    /// Cordon, then evict every pod except DaemonSet and mirror pods, within a timeout.
    Drain: [Node] {
        takes_node_out: true, marks_node: true, removes_target: false, takes_long: true,
        changes_cluster: true, fencing: Fencing::None, moves_pod: false
    },
    /// Run a node job (a NodeJob the cluster admin defined, named in `runJob`) pinned to the node.
    RunJob: [Node] {
        takes_node_out: true, marks_node: true, removes_target: false, takes_long: true,
        changes_cluster: true, fencing: Fencing::None, moves_pod: false
    },
    /// Taint the node node.kubernetes.io/out-of-service=nodeshutdown:NoExecute: Kubernetes'
    /// non-graceful node shutdown, in which the pod GC force-deletes the node's pods and their
    /// volumes are detached, so that StatefulSet pods and pods with volumes start elsewhere. Only
    /// for a node that is shut down: held Unsafe unless its Lease has expired for
    /// `outOfService.leaseExpiredFor` and it has been unreachable for
    /// `outOfService.unreachableFor`. Removed when the node is Ready again.
    OutOfService: [Node] {
        takes_node_out: true, marks_node: true, removes_target: false, takes_long: false,
        changes_cluster: true, fencing: Fencing::NodeShutDown, moves_pod: false
    },
    /// Hand the node to an external remediator through NodeHealthCheck's contract: a remediation
    /// resource made from `remediate.template`, followed to its Succeeded condition, deleted
    /// when the node has recovered.
    Remediate: [Node] {
        takes_node_out: true, marks_node: true, removes_target: false, takes_long: true,
        changes_cluster: true, fencing: Fencing::None, moves_pod: false
    },
    /// Have the node's machine replaced by its owner: a Karpenter NodeClaim deleted, a Cluster
    /// API Machine marked for remediation (or deleted); waits for the node to go.
    Replace: [Node] {
        takes_node_out: true, marks_node: true, removes_target: true, takes_long: true,
        changes_cluster: true, fencing: Fencing::None, moves_pod: false
    },
}

impl ActionKind {
    /// The names of the actions allowed on `kind`, as a CEL list literal.
    pub fn cel_list_for(kind: TargetKind) -> String {
        let names: Vec<String> = ActionKind::ALL
            .iter()
            .filter(|a| a.applies_to(kind))
            .map(|a| format!("'{}'", a.as_str()))
            .collect();
        format!("[{}]", names.join(", "))
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rung of the escalation ladder: an action, its parameters, and how long to wait for the
/// failure to clear before moving to the next rung.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = params_rule("evict", ActionKind::Evict))]
#[x_kube(validation = params_rule("delete", ActionKind::Delete))]
#[x_kube(validation = params_rule("forceDelete", ActionKind::ForceDelete))]
#[x_kube(validation = params_rule("reschedule", ActionKind::Reschedule))]
#[x_kube(validation = params_rule("taint", ActionKind::Taint))]
#[x_kube(validation = params_rule("drain", ActionKind::Drain))]
#[x_kube(validation = params_rule("runJob", ActionKind::RunJob))]
#[x_kube(validation = params_rule("outOfService", ActionKind::OutOfService))]
#[x_kube(validation = params_rule("remediate", ActionKind::Remediate))]
#[x_kube(validation = params_rule("replace", ActionKind::Replace))]
#[x_kube(validation = Rule::new("self.action != 'Remediate' || has(self.remediate)")
    .message("action Remediate needs remediate: {template: {apiVersion, kind, name, namespace}}, a remediation template such as Self Node Remediation's"))]
#[x_kube(validation = Rule::new("self.action != 'Taint' || has(self.taint)")
    .message("action Taint needs taint: {key, effect}, for example {key: kube-healer/unhealthy, effect: NoSchedule}"))]
#[x_kube(validation = Rule::new("self.action != 'RunJob' || has(self.runJob)")
    .message("action RunJob needs runJob: {nodeJob: <name of a NodeJob>}"))]
pub struct HealingStep {
    /// The action of this step. Pods: Event, Evict, Delete, ForceDelete, Reschedule, RestartOwner.
    /// Nodes: Event, Cordon, Taint, Drain, RunJob, OutOfService, Remediate, Replace.
    pub action: ActionKind,
    /// How long the failure may persist after this step acted before the next step runs
    /// (default 10m). On the last step it is the wait before the step is tried again, within
    /// spec.safety.maxAttempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_after: Option<Duration>,
    /// Parameters of Evict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evict: Option<EvictParams>,
    /// Parameters of Delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<DeleteParams>,
    /// Parameters of ForceDelete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_delete: Option<ForceDeleteParams>,
    /// Parameters of Reschedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule: Option<RescheduleParams>,
    /// Parameters of Taint (required for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taint: Option<TaintParams>,
    /// Parameters of Drain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainParams>,
    /// Parameters of RunJob (required for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_job: Option<RunJobParams>,
    /// Parameters of OutOfService: the evidence that the node is shut down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_service: Option<OutOfServiceParams>,
    /// Parameters of Remediate (required for it): the remediation template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediate: Option<crate::remediate::RemediateParams>,
    /// Parameters of Replace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace: Option<crate::replace::ReplaceParams>,
}

fn params_rule(field: &str, action: ActionKind) -> Rule {
    let action = action.as_str();
    Rule::new(format!("!has(self.{field}) || self.action == '{action}'")).message(
        format!("{field} parameters apply only to action {action}: remove them or set action: {action}")
            .as_str(),
    )
}

impl HealingStep {
    pub fn new(action: ActionKind) -> Self {
        HealingStep {
            action,
            escalate_after: None,
            evict: None,
            delete: None,
            force_delete: None,
            reschedule: None,
            taint: None,
            drain: None,
            run_job: None,
            out_of_service: None,
            remediate: None,
            replace: None,
        }
    }

    pub const DEFAULT_ESCALATE_AFTER: Duration = Duration::from_secs(600);

    pub fn escalate_after(&self) -> Duration {
        self.escalate_after.unwrap_or(Self::DEFAULT_ESCALATE_AFTER)
    }
}

/// Eviction through the Eviction API.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvictParams {
    /// How long to keep retrying while a PodDisruptionBudget refuses the eviction (HTTP 429)
    /// before giving up on this step (default 5m). The record then reads PDBBlocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdb_wait: Option<Duration>,
}

/// Force deletion of the pod (grace period 0, past its deletionTimestamp).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForceDeleteParams {
    /// Force-delete a pod with a PersistentVolumeClaim, or of a controller kube-healer does not
    /// know, even when its node is not Ready and not confirmed gone (deleted, or tainted
    /// node.kubernetes.io/out-of-service). Its volume may then be attached to a replacement while
    /// the old container still writes to it. Default false: such pods wait for the fencing.
    /// Never applies to StatefulSet pods, which always wait.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub without_fencing: bool,
}

/// Deletion of the pod.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteParams {
    /// Grace period for the deletion, in seconds; default: the pod's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub grace_period_seconds: Option<i64>,
}

/// How a pod is made to move.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RescheduleMethod {
    /// Through the Eviction API (honours PodDisruptionBudgets).
    #[default]
    Evict,
    /// Plain deletion (for pods whose budget is exhausted by the failure itself).
    Delete,
}

/// Moving a controller-owned pod.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RescheduleParams {
    /// Evict (default) or Delete.
    #[serde(default)]
    pub method: RescheduleMethod,
    /// Keep the replacement off the current node by tainting it
    /// healing.kubehealer.io/avoid=<pod-uid>:NoSchedule for a while (default false).
    #[serde(default)]
    pub avoid_node: bool,
}

/// A taint's effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl TaintEffect {
    pub const fn as_str(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

/// The taint to add.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.effect != 'NoExecute' || (has(self.acknowledgeNoExecute) && self.acknowledgeNoExecute)")
    .message("effect NoExecute makes the kubelet evict every pod that does not tolerate the taint at once, with no PodDisruptionBudget: set acknowledgeNoExecute: true to mean it, or use the Drain action, which respects them"))]
pub struct TaintParams {
    /// Taint key, a qualified name such as kube-healer/unhealthy.
    #[x_kube(validation = Rule::new(
        "self.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$')"
    ).message("must be a qualified name such as kube-healer/unhealthy"))]
    #[schemars(length(min = 1, max = 316))]
    pub key: String,
    /// Taint value (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub value: Option<String>,
    /// NoSchedule, PreferNoSchedule or NoExecute.
    pub effect: TaintEffect,
    /// Required (true) with effect NoExecute: such a taint evicts the pods that do not tolerate
    /// it at once, bypassing PodDisruptionBudgets.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub acknowledge_no_execute: bool,
}

/// Draining a node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrainParams {
    /// How long the drain may take before it stops, leaving the node cordoned and the record
    /// Failed with reason Timeout (default 10m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Grace period for the evicted pods, in seconds; default: each pod's own. 0 removes them
    /// without waiting for their kubelet, except the pods that need fencing first (a
    /// StatefulSet's, one with a PersistentVolumeClaim, one of a controller kube-healer does not
    /// know): those keep their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub grace_period_seconds: Option<i64>,
    /// Also evict pods that no controller owns, like `kubectl drain --force`: nothing recreates
    /// them (default false: they are left on the node and named in the record).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// Also evict pods with emptyDir volumes, like `kubectl drain --delete-emptydir-data`: their
    /// emptyDir data is lost (default false: they are left on the node and named in the record).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_emptydir_data: bool,
}

/// The evidence OutOfService needs that a node is shut down, not merely cut off: the taint makes
/// Kubernetes force-delete its pods and detach their volumes, so a node still running them would
/// run a StatefulSet pod twice, or have a volume written by two. A partition looks the same from
/// here; the storm guards hold the action when many nodes go down together.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutOfServiceParams {
    /// How long the node's Lease must have been expired (its last renewal, as this operator saw
    /// it, plus its leaseDurationSeconds), counted only while other nodes' Leases are seen
    /// renewing (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expired_for: Option<Duration>,
    /// How long the node must have been unreachable (Ready Unknown) (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable_for: Option<Duration>,
}

impl OutOfServiceParams {
    pub const DEFAULT_LEASE_EXPIRED_FOR: Duration = Duration::from_secs(300);
    pub const DEFAULT_UNREACHABLE_FOR: Duration = Duration::from_secs(300);

    pub fn lease_expired_for(&self) -> Duration {
        self.lease_expired_for.unwrap_or(Self::DEFAULT_LEASE_EXPIRED_FOR)
    }

    pub fn unreachable_for(&self) -> Duration {
        self.unreachable_for.unwrap_or(Self::DEFAULT_UNREACHABLE_FOR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_properties_fit_the_targets() {
        for &action in ActionKind::ALL {
            let p = action.properties();
            let on_nodes = action.applies_to(TargetKind::Node) && !action.applies_to(TargetKind::Pod);
            let on_pods = action.applies_to(TargetKind::Pod) && !action.applies_to(TargetKind::Node);
            // A mark is what keeps a node out of service, and every action that takes one out
            // leaves one (the budget counts it across restarts); only a node can be taken out.
            assert_eq!(p.marks_node, p.takes_node_out, "{action}");
            assert!(!p.takes_node_out || on_nodes, "{action}");
            // What changes nothing needs no fencing and takes nothing away.
            if !p.changes_cluster {
                assert!(
                    !p.takes_node_out && !p.removes_target && p.fencing == Fencing::None,
                    "{action}"
                );
            }
            match p.fencing {
                Fencing::None => {}
                Fencing::NodeGone => assert!(on_pods && p.removes_target, "{action}"),
                Fencing::NodeShutDown => assert!(on_nodes && p.takes_node_out, "{action}"),
            }
        }
        assert!(ActionKind::Delete.properties().removes_at_once());
        assert!(
            !ActionKind::Evict.properties().removes_at_once(),
            "an eviction waits on budgets"
        );
    }
}
