//! Outcomes of actions that failed on the API server's answer, or never started.

use kube_healer_api::reasons;
use kube_healer_api::record::ActionPhase;

use crate::act::Outcome;
use crate::retry;

/// An action that failed on an API error, after `calls` calls.
pub fn api_failure(e: &kube::Error, calls: i32) -> Outcome {
    let plural = if calls == 1 { "" } else { "s" };
    Outcome::new(
        ActionPhase::Failed,
        reasons::API_ERROR,
        format!("{} ({calls} call{plural})", retry::describe(e)),
        calls,
    )
}

/// A step whose parameters are missing (the API server's validation should have refused it).
pub fn missing(field: &str) -> Outcome {
    Outcome::unsafe_because(format!("spec.actions[].{field} is missing"))
}
