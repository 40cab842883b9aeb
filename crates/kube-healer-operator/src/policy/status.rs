//! What a HealingPolicy's status says: observedGeneration, the Ready, Invalid and Suspended
//! conditions, how many targets the policy selects, and how many actions it took (counted on
//! from the status read back, so a restart or failover keeps the count).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube_healer_core::policy::PolicyError;

/// Why a policy cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// It does not compile: the field and the problem.
    #[error(transparent)]
    Invalid(#[from] PolicyError),
    /// It cannot be read as a HealingPolicy (the decoder's words).
    #[error("the policy cannot be read ({0}); it may have been stored under an older schema: apply it again")]
    Unreadable(String),
}

/// What the operator knows of a policy, to be written to its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyStatus {
    pub name: String,
    pub generation: Option<i64>,
    /// Err: why the policy cannot be used.
    pub validity: Result<(), Refused>,
    pub suspended: bool,
    pub targets_matched: i64,
    /// Actions carried out (changes made to the cluster) since the policy was created.
    pub actions_taken: i64,
    /// When the last one was carried out (Unix seconds).
    pub last_action: Option<i64>,
}

impl PolicyStatus {
    pub fn conditions(&self, now: &Time) -> Vec<Condition> {
        let condition = |type_: &str, status: bool, reason: &str, message: String| Condition {
            type_: type_.into(),
            status: if status { "True" } else { "False" }.into(),
            reason: reason.into(),
            message,
            last_transition_time: now.clone(),
            observed_generation: self.generation,
        };
        let (ready, invalid) = match &self.validity {
            Ok(()) => (
                condition(
                    "Ready",
                    true,
                    "Loaded",
                    format!("selects {} targets", self.targets_matched),
                ),
                condition("Invalid", false, "Valid", String::new()),
            ),
            Err(e) => (
                condition("Ready", false, "Invalid", e.to_string()),
                condition("Invalid", true, "Invalid", e.to_string()),
            ),
        };
        let suspended = if self.suspended {
            condition(
                "Suspended",
                true,
                "Suspended",
                "spec.safety.suspend is true: no action is taken".into(),
            )
        } else {
            condition("Suspended", false, "Active", String::new())
        };
        vec![ready, invalid, suspended]
    }
}
