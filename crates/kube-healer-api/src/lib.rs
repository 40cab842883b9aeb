//! kube-healer's custom resources: HealingPolicy, HealingAction and NodeJob
//! (healing.kubehealer.io/v1alpha1).
//!
//! Types only: no client, no logic beyond parsing and naming. The CRD manifests in crds/ are
//! generated from these types (`kube-healer crd`), and a test fails when they drift.

pub mod action;
pub mod batch;
pub mod class;
pub mod duration;
pub mod evidence_bounds;
pub mod node_job;
pub mod policy;
pub mod reasons;
pub mod record;
pub mod remediate;
pub mod replace;
mod schema;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use action::{ActionKind, ActionProperties, Fencing, HealingStep};
pub use class::{ClassProperties, FailureClass, Family, JudgedOn, Knob, TargetKind};
pub use duration::Duration;
pub use node_job::{NodeJob, NodeJobSpec};
pub use policy::{
    FailureCondition, HealingPolicy, HealingPolicySpec, HealingPolicyStatus, PodsAlikeThresholds,
    PolicyTarget, Safety,
};
pub use record::{ActionPhase, Evidence, HealingAction, HealingActionSpec, HealingActionStatus, TargetRef};

/// The API group of kube-healer's resources.
pub const GROUP: &str = "healing.kubehealer.io";

/// Set to "true" on a pod or node to keep kube-healer's hands off it (it is still diagnosed, and
/// actions are recorded as Skipped with reason OptedOut).
pub const OPT_OUT_ANNOTATION: &str = "healing.kubehealer.io/opt-out";
/// On the namespace kube-healer runs in: every policy is paused while it is there (its value
/// says why, and is recorded). For upgrades and other work that must not be healed.
pub const PAUSE_ANNOTATION: &str = "healing.kubehealer.io/pause";

/// On nodes kube-healer cordoned or tainted: the policy that did it, so that only those are
/// reverted on recovery.
pub const CORDONED_BY_ANNOTATION: &str = "healing.kubehealer.io/cordoned-by";
pub const TAINTED_BY_ANNOTATION: &str = "healing.kubehealer.io/tainted-by";
/// On nodes whose kube-healer cordon someone else lifted: `policy=unix-seconds` entries, the
/// policies whose cordon it was and when kube-healer saw it lifted. It replaces cordoned-by, so
/// that a later cordon by a person is never taken for kube-healer's, and it keeps the policy
/// from cordoning the node again for that failure and within its cooldown.
pub const CORDON_LIFTED_ANNOTATION: &str = "healing.kubehealer.io/cordon-lifted";
/// On nodes kube-healer cordoned or tainted: `policy=generation` entries, the policy's
/// generation when its mark was made. An edited policy is a different judge: a mark made under
/// an earlier spec comes off only when the node shows no failure of any class, as a deleted
/// policy's does.
pub const MARKED_AT_ANNOTATION: &str = "healing.kubehealer.io/marked-at-generation";
/// On nodes kube-healer handed to a remediator: `policy=apiVersion/Kind/namespace` entries, one
/// per remediation resource, deleted when the node has recovered.
pub const REMEDIATED_BY_ANNOTATION: &str = "healing.kubehealer.io/remediated-by";
/// On nodes a node Job (RunJob) runs on: the policies whose Job it is, set before the Job is
/// created and removed when it has been followed to its end, so that the disruption budget
/// counts the node across restarts and failovers for as long as the Job may run.
pub const JOB_BY_ANNOTATION: &str = "healing.kubehealer.io/job-by";
/// On nodes whose machine kube-healer had replaced: the policies that did, until the node is
/// gone (or its failure is over).
pub const REPLACED_BY_ANNOTATION: &str = "healing.kubehealer.io/replaced-by";

/// The taint Reschedule's `avoidNode` puts on the pod's node so that its replacement lands
/// elsewhere; its value is the Unix time (seconds) after which kube-healer removes it.
pub const AVOID_TAINT: &str = "healing.kubehealer.io/avoid";

/// On a workload's pod template after RestartOwner: the policy and the time of the restart, so
/// that several failing pods of one workload restart it once.
pub const RESTARTED_BY_ANNOTATION: &str = "healing.kubehealer.io/restarted-by";

/// On Jobs created by RunJob: the node the Job runs on.
pub const NODE_LABEL: &str = "healing.kubehealer.io/node";
/// On Jobs created by RunJob: the NodeJob they run.
pub const NODE_JOB_LABEL: &str = "healing.kubehealer.io/node-job";

/// On the HealingAction of a pod removal that its workload's controller replaces (Delete, Evict,
/// Reschedule): the workload (`Deployment namespace/name`), so that a restarted operator or a
/// new leader counts the pods being replaced against maxDisruptedPerWorkload from the records.
pub const DISRUPTS_ANNOTATION: &str = "healing.kubehealer.io/disrupts";

/// Labels on HealingActions, for selection.
pub const POLICY_LABEL: &str = "healing.kubehealer.io/policy";
/// On the operator's own pods (set by the chart): drains leave them where they are.
pub const OPERATOR_POD_LABEL: &str = "healing.kubehealer.io/operator";
pub const TARGET_UID_LABEL: &str = "healing.kubehealer.io/target-uid";
/// On every HealingAction: what the decision was, `act`, `dry-run` or `hold`. Actions and dry
/// runs count against their policy's rate, and a restarted or new leader counts them from the
/// records, so that a restart or a failover grants no fresh budget.
pub const DECISION_LABEL: &str = "healing.kubehealer.io/decision";

/// On every HealingAction: when the failure's episode began (Unix seconds). A restarted operator
/// or a new leader continues the episode of a failure that went on, so its ladder, cooldown and
/// maxAttempts go on too.
pub const EPISODE_LABEL: &str = "healing.kubehealer.io/episode";

/// On every HealingAction: its ladder step (1-based). With the decision and the episode it lets a
/// restarted operator or a new leader rebuild where each target stands on each policy's ladder
/// from the records' metadata alone.
pub const STEP_LABEL: &str = "healing.kubehealer.io/step";

/// On the HealingAction of a long action while it runs (an eviction waiting on a
/// PodDisruptionBudget, a drain, a rescheduling, a rollout restart, a node Job): the Unix time
/// (seconds) until which it may still be running, at the latest. Removed when the action ends; a
/// leader that takes over counts the records that carry it as actions in flight.
pub const IN_FLIGHT_LABEL: &str = "healing.kubehealer.io/in-flight-until";

/// The CRDs, in the order they are applied: (file name in crds/, definition).
pub fn crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("healingpolicies.yaml", HealingPolicy::crd()),
        ("healingactions.yaml", HealingAction::crd()),
        ("nodejobs.yaml", NodeJob::crd()),
    ]
}

/// The header of every generated manifest in crds/.
pub const GENERATED_HEADER: &str =
    "# Generated from crates/kube-healer-api by `cargo run -p kube-healer -- crd --dir crds`. Do not edit.\n";

/// A CRD as the YAML manifest committed in crds/.
pub fn crd_manifest(crd: &CustomResourceDefinition) -> String {
    let body = serde_yaml::to_string(crd).expect("a CustomResourceDefinition always serializes");
    format!("{GENERATED_HEADER}{body}")
}
