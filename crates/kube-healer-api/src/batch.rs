//! One HealingAction for many leftovers. A bulk clean-up of dead pods (Evicted, Failed,
//! AdmissionRejected) decided together by one policy, for one class and action, is recorded once:
//! the record names every pod it removes, is written before the calls, and finished after them
//! with each pod's outcome. Every other decision keeps a record of its own.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::record::{ActionPhase, TargetRef};

/// On a batch record: how many pods it names.
pub const BATCH_LABEL: &str = "healing.kubehealer.io/batch";

/// On a batch record, one per pod it names: `member.healing.kubehealer.io/<pod UID>`, its value
/// the pod's failure episode (Unix seconds). `kubectl get ha -l member.healing.kubehealer.io/<uid>`
/// finds the batch a pod was in; a restarted operator rebuilds each pod's ladder from it.
pub const MEMBER_LABEL_PREFIX: &str = "member.healing.kubehealer.io/";

/// On a batch record: its pods' decisions, `<pod UID>=<decision name>` comma-separated (the
/// engine's record watch reads metadata alone).
pub const MEMBERS_ANNOTATION: &str = "healing.kubehealer.io/members";

/// The most pods one batch record names.
pub const MAX_MEMBERS: usize = 100;

/// The member label of a pod UID.
pub fn member_label(uid: &str) -> String {
    format!("{MEMBER_LABEL_PREFIX}{uid}")
}

/// One pod of a batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchMember {
    pub target: TargetRef,
    /// The name this pod's decision has on its own: a restarted operator counts the pod's
    /// action under it, once.
    pub record: String,
    /// When its failure began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<Time>,
    /// What was wrong with it, in one sentence.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
}

/// What came of one pod of a batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberOutcome {
    pub uid: String,
    pub phase: ActionPhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// API calls made for this pod (its recheck and its removal, retries included).
    #[serde(default)]
    pub attempts: i32,
}
