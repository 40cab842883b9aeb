//! What an action came to. A leaf: every action returns one, the executor records it.

use kube_healer_api::reasons;
use kube_healer_api::record::ActionPhase;

/// An action's end: its phase, reason (one of `kube_healer_api::reasons`), a message for the
/// record, and the number of API calls it made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub phase: ActionPhase,
    pub reason: &'static str,
    pub message: String,
    pub calls: i32,
}

impl Outcome {
    pub fn new(phase: ActionPhase, reason: &'static str, message: String, calls: i32) -> Self {
        Outcome {
            phase,
            reason,
            message,
            calls,
        }
    }

    /// Refused before any call: the action would be unsafe, or its parameters are missing.
    pub fn unsafe_because(why: String) -> Self {
        Outcome::new(ActionPhase::Failed, reasons::UNSAFE, why, 0)
    }

    pub fn succeeded(&self) -> bool {
        self.phase == ActionPhase::Succeeded
    }
}
