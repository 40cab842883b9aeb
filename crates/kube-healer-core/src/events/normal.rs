//! Which Normal events are worth keeping. Warning events are evidence; most Normal events
//! (Scheduled, Pulling, Pulled, Created, Started, Killing, ...) are not, and they are most of the
//! volume: a rollout writes about five per pod. A Normal event is kept whole only if its reason
//! is one a class reads (the node controller's NodeReady and NodeNotReady) or one a policy's
//! EventPattern names; any other leaves a marker, one per object, that says the object had
//! events (a pod Pending with no event at all is StuckPending, and a kubelet's Normal event is
//! the sign that it is not).

use std::collections::BTreeSet;

/// The reason of the marker a Normal event leaves (no event reason has parentheses).
pub const NORMAL_MARKER: &str = "(Normal)";

/// The Normal reasons the classes read.
const CLASS_REASONS: &[&str] = &["NodeReady", "NodeNotReady"];

/// Which Normal events are kept whole.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NormalEvents {
    /// Reasons the policies' event patterns name.
    reasons: BTreeSet<String>,
    /// A policy's pattern names no reason (a message pattern alone): every event may match it.
    all: bool,
}

impl NormalEvents {
    /// From the event patterns of the policies: each one's reason, if it names one.
    pub fn for_patterns<'a>(reasons: impl IntoIterator<Item = Option<&'a str>>) -> Self {
        let mut out = NormalEvents::default();
        for reason in reasons {
            match reason {
                Some(r) => {
                    out.reasons.insert(r.to_string());
                }
                None => out.all = true,
            }
        }
        out
    }

    /// Whether a Normal event of this reason is kept whole.
    pub fn keeps(&self, reason: &str) -> bool {
        self.all || CLASS_REASONS.contains(&reason) || self.reasons.contains(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_reasons_and_policy_reasons_are_kept_and_a_message_pattern_keeps_all() {
        let none = NormalEvents::default();
        assert!(none.keeps("NodeNotReady") && none.keeps("NodeReady"));
        assert!(!none.keeps("Pulled") && !none.keeps("Scheduled"));
        let some = NormalEvents::for_patterns([Some("Killing")]);
        assert!(some.keeps("Killing") && !some.keeps("Pulled"));
        let all = NormalEvents::for_patterns([Some("Killing"), None]);
        assert!(all.keeps("Pulled"));
    }
}
