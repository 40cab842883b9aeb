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

    /// Whether the target was certainly left as it was: no call was sent (Skipped: rechecked,
    /// gone already), or the API server refused it (a PodDisruptionBudget; refused before any
    /// call). A failure that may have taken effect (a timeout, a retried call) is not.
    pub fn untouched(&self) -> bool {
        self.phase == ActionPhase::Skipped
            || self.reason == reasons::PDB_BLOCKED
            || (self.reason == reasons::UNSAFE && self.calls == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_call_never_sent_or_refused_leaves_the_target_certainly_untouched() {
        let o = |phase, reason, calls| Outcome::new(phase, reason, String::new(), calls);
        assert!(o(ActionPhase::Skipped, reasons::RECOVERED, 0).untouched());
        assert!(o(ActionPhase::Skipped, reasons::PDB_BLOCKED, 1).untouched());
        assert!(o(ActionPhase::Failed, reasons::PDB_BLOCKED, 12).untouched());
        assert!(Outcome::unsafe_because("no".into()).untouched());
        // A failed call may have taken effect; a success did.
        assert!(!o(ActionPhase::Failed, reasons::API_ERROR, 3).untouched());
        assert!(!o(ActionPhase::Succeeded, reasons::COMPLETED, 1).untouched());
    }
}
