//! HealingAction: the record of one decision, taken or held back, and of its outcome.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::action::ActionKind;
use crate::class::{FailureClass, TargetKind};

/// One decision of kube-healer about one target: what it saw, what it did or held back, and how
/// it ended. Records outlive their targets; retention is by age and count.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "healing.kubehealer.io",
    version = "v1alpha1",
    kind = "HealingAction",
    shortname = "ha",
    status = "HealingActionStatus",
    doc = "HealingAction records one decision of kube-healer: the policy, the target, the failure class, the action and ladder step, the evidence, and the outcome.",
    printcolumn = r#"{"name":"Policy","type":"string","jsonPath":".spec.policy"}"#,
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".spec.target.ref"}"#,
    printcolumn = r#"{"name":"Class","type":"string","jsonPath":".spec.class"}"#,
    printcolumn = r#"{"name":"Action","type":"string","jsonPath":".spec.action"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.reason"}"#,
    printcolumn = r#"{"name":"Members","type":"integer","jsonPath":".spec.cause.members","description":"Targets of the shared cause this held decision was recorded for"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.message","priority":1}"#,
    printcolumn = r#"{"name":"Dry-Run","type":"boolean","jsonPath":".spec.dryRun","priority":1}"#,
    selectable = ".spec.policy",
    selectable = ".spec.class",
    selectable = ".spec.action",
    selectable = ".spec.target.name",
    selectable = ".spec.target.node"
)]
#[serde(rename_all = "camelCase")]
pub struct HealingActionSpec {
    /// The HealingPolicy that decided.
    pub policy: String,
    /// The policy's generation at the time of the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_generation: Option<i64>,
    /// The object acted on.
    pub target: TargetRef,
    /// The failure class found.
    pub class: FailureClass,
    /// The action decided.
    pub action: ActionKind,
    /// The ladder step, 1 for the policy's first action.
    pub step: i32,
    /// True when the policy or the operator ran in dry-run mode: nothing was changed.
    #[serde(default)]
    pub dry_run: bool,
    /// When the failure began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<Time>,
    /// When the decision was made.
    pub decided_at: Time,
    /// What the decision rested on.
    pub evidence: Evidence,
    /// A batch record's pods (the first is also `target`): one record for a bulk clean-up of
    /// leftovers. Empty for every other record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<crate::batch::BatchMember>,
    /// A decision held by a cause many targets share (Correlated): one record per cause and
    /// policy stands for all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<CauseEvidence>,
}

/// The targets of a shared cause, when its record was written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CauseEvidence {
    /// How many targets fail for it.
    pub members: i32,
    /// Some of them (kind/namespace/name), at most [`CauseEvidence::SAMPLE`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub sample: Vec<String>,
}

impl CauseEvidence {
    pub const SAMPLE: usize = 10;
}

/// The object acted on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// Pod or Node.
    pub kind: TargetKind,
    /// The pod's namespace (absent for nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    /// The UID, so that a recreated object of the same name is never confused with this one.
    pub uid: String,
    /// The node: the node itself, or the node the pod is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// kind/namespace/name (pod/default/web-1, node/worker-3), for display.
    #[serde(rename = "ref")]
    pub reference: String,
    /// A pod's workload, its controller (`Deployment namespace/name`), when it has one and the
    /// pod was not being deleted already.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// With the workload: when the pod was created (a removed pod created after an earlier
    /// removal was its replacement, and showed its fate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Time>,
}

impl TargetRef {
    pub fn new(kind: TargetKind, namespace: Option<&str>, name: &str, uid: &str, node: Option<&str>) -> Self {
        let reference = match namespace {
            Some(ns) => format!("{}/{ns}/{name}", kind.as_str().to_ascii_lowercase()),
            None => format!("{}/{name}", kind.as_str().to_ascii_lowercase()),
        };
        TargetRef {
            kind,
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
            uid: uid.to_string(),
            node: node.map(str::to_string),
            reference,
            workload: None,
            created: None,
        }
    }
}

/// What the decision rested on, as a person reads it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// One sentence: what is wrong.
    pub summary: String,
    /// Conditions of the pod or node that matter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ConditionEvidence>,
    /// Container states that matter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<ContainerEvidence>,
    /// Events that matter, with their counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventEvidence>,
    /// Other facts: phase, deletionTimestamp, lease renewal, transition counts, ...
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, String>,
    /// A pod's story up to the decision, oldest first: its phase, condition and container-state
    /// changes and its events, with times (the latest kept when it is long).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<TimelineEvidence>,
}

/// One moment of a pod's timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEvidence {
    pub at: Time,
    /// created, scheduled, phase, condition, container, deleting, event, or cut (moments left out).
    pub kind: String,
    /// What the moment is about, where a pod has several: the container, the condition's type,
    /// the event's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// What changed, as a person reads it ("container app waiting: ImagePullBackOff").
    pub detail: String,
}

/// A pod or node condition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConditionEvidence {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

/// A container's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerEvidence {
    pub name: String,
    /// True for an init container.
    #[serde(default)]
    pub init: bool,
    /// waiting, running or terminated.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default)]
    pub restart_count: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

/// An event about the target.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventEvidence {
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Occurrences counted within the class's window.
    pub count: i32,
    /// True when `count` is estimated: the series began before the window, so the occurrences
    /// inside it are worked out from its count and its first and last times.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub estimated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Time>,
}

/// Where a decision stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ActionPhase {
    /// Decided and recorded; the API call has not been made yet.
    Pending,
    /// The API call was made; the outcome is awaited (an eviction, a drain, a Job).
    Running,
    /// Done.
    Succeeded,
    /// Tried and failed; see reason and message.
    Failed,
    /// Held back by a gate or a dry run; see reason.
    Skipped,
}

impl ActionPhase {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ActionPhase::Succeeded | ActionPhase::Failed | ActionPhase::Skipped
        )
    }
}

/// The outcome of the decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealingActionStatus {
    pub phase: ActionPhase,
    /// One word: DryRun, RateLimited, BudgetExceeded, PDBBlocked, TargetGone, Recovered, ...
    /// (see kube_healer_api::reasons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What happened, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Time>,
    /// API calls made for this action (retries included).
    #[serde(default)]
    pub attempts: i32,
    /// A batch record's outcome for each of its pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<crate::batch::MemberOutcome>,
}
