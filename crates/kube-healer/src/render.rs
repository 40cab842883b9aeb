//! One way to say a decision, for `explain` (what happens next) and `simulate` (what the policy
//! would do).

use kube_healer_core::classify::pod::human;
use kube_healer_core::decide::Decision;
use kube_healer_core::view::Secs;

/// How the sentence is put: `Next` for a target's next step (explain), `Would` for what a
/// policy would do (simulate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Voice {
    Next,
    Would,
}

/// A decision at `now`, in words. `waiting_action` names the step a Wait waits for.
pub fn decision(decision: &Decision, now: Secs, waiting_action: Option<&str>, voice: Voice) -> String {
    match (decision, voice) {
        (Decision::Wait { until }, Voice::Next) => {
            format!("{} in {}", waiting_action.unwrap_or_default(), human(until - now))
        }
        (Decision::Wait { until }, Voice::Would) => format!("wait {} (due then)", human(until - now)),
        (
            Decision::Act {
                step,
                action,
                dry_run,
            },
            voice,
        ) => {
            let (when, dry) = match voice {
                Voice::Next => (" now", ", as a dry run"),
                Voice::Would => ("", ", dry run"),
            };
            format!(
                "{action} (step {}){when}{}",
                step + 1,
                if *dry_run { dry } else { "" }
            )
        }
        (
            Decision::Hold {
                action,
                reason,
                message,
                ..
            },
            Voice::Next,
        ) => format!("{action} held: {reason} ({message})"),
        (
            Decision::Hold {
                action,
                reason,
                message,
                ..
            },
            Voice::Would,
        ) => format!("hold {action}: {reason} ({message})"),
    }
}

#[cfg(test)]
mod tests {
    use kube_healer_api::ActionKind;

    use super::*;

    #[test]
    fn each_decision_reads_in_both_voices() {
        let act = Decision::Act {
            step: 0,
            action: ActionKind::Delete,
            dry_run: true,
        };
        assert_eq!(
            decision(&act, 0, None, Voice::Next),
            "Delete (step 1) now, as a dry run"
        );
        assert_eq!(decision(&act, 0, None, Voice::Would), "Delete (step 1), dry run");
        let hold = Decision::Hold {
            step: 0,
            action: ActionKind::Delete,
            reason: kube_healer_api::reasons::HoldReason::Cooldown,
            message: "m".into(),
            retry_at: None,
        };
        assert_eq!(decision(&hold, 0, None, Voice::Next), "Delete held: Cooldown (m)");
        assert_eq!(
            decision(&hold, 0, None, Voice::Would),
            "hold Delete: Cooldown (m)"
        );
        let wait = Decision::Wait { until: 90 };
        assert_eq!(decision(&wait, 0, Some("Evict"), Voice::Next), "Evict in 90s");
        assert_eq!(decision(&wait, 0, None, Voice::Would), "wait 90s (due then)");
    }
}
