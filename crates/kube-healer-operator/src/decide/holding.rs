//! Which targets are held right now, and why: each (policy, target) whose latest decision was a
//! hold, until it is acted on, recovers or goes, or its policy does. Counted by reason for the
//! `kube_healer_held_targets` gauge, so that an alert can say "actions held by the cluster budget
//! (or a correlated cause) for more than 15 minutes" from one series. Bounded by the targets that
//! fail: an entry goes with its failure.

use std::collections::{BTreeMap, HashMap};

use kube_healer_api::reasons::HoldReason;

use crate::target::Target;

#[derive(Debug, Default)]
pub struct Holding {
    reasons: HashMap<(String, Target), HoldReason>,
    counts: BTreeMap<HoldReason, i64>,
}

impl Holding {
    /// The policy's latest decision on the target is held for `reason`.
    pub fn held(&mut self, policy: &str, target: &Target, reason: HoldReason) {
        let before = self.reasons.insert((policy.to_string(), target.clone()), reason);
        if let Some(before) = before {
            *self.counts.entry(before).or_default() -= 1;
        }
        *self.counts.entry(reason).or_default() += 1;
    }

    /// The policy's target is no longer held (acted on, recovered, gone).
    pub fn released(&mut self, policy: &str, target: &Target) {
        if let Some(reason) = self.reasons.remove(&(policy.to_string(), target.clone())) {
            *self.counts.entry(reason).or_default() -= 1;
        }
    }

    /// Every target of the policy is released (the policy is gone).
    pub fn policy_gone(&mut self, policy: &str) {
        let counts = &mut self.counts;
        self.reasons.retain(|(p, _), reason| {
            let keep = p != policy;
            if !keep {
                *counts.entry(*reason).or_default() -= 1;
            }
            keep
        });
    }

    /// The target is gone: no policy holds it.
    pub fn target_gone(&mut self, target: &Target) {
        let counts = &mut self.counts;
        self.reasons.retain(|(_, t), reason| {
            let keep = t != target;
            if !keep {
                *counts.entry(*reason).or_default() -= 1;
            }
            keep
        });
    }

    /// Whether any target is held for `reason`.
    pub fn any(&self, reason: HoldReason) -> bool {
        self.counts.get(&reason).is_some_and(|n| *n > 0)
    }

    /// The targets some policy's latest decision holds for `reason`.
    pub fn held_for(&self, reason: HoldReason) -> impl Iterator<Item = &Target> + '_ {
        self.reasons
            .iter()
            .filter(move |(_, r)| **r == reason)
            .map(|((_, t), _)| t)
    }

    /// Held targets by reason (every reason ever held, so that a count back at 0 is reported).
    pub fn counts(&self) -> impl Iterator<Item = (HoldReason, i64)> + '_ {
        self.counts.iter().map(|(r, n)| (*r, *n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(h: &Holding) -> Vec<(&'static str, i64)> {
        let mut counts: Vec<_> = h.counts().map(|(r, n)| (r.as_str(), n)).collect();
        counts.sort();
        counts
    }

    #[test]
    fn a_target_counts_once_under_its_latest_reason_until_released() {
        let mut h = Holding::default();
        let (a, b) = (Target::Node("a".into()), Target::Node("b".into()));
        h.held("p", &a, HoldReason::Correlated);
        h.held("p", &b, HoldReason::Correlated);
        h.held("q", &a, HoldReason::BudgetExceeded);
        assert_eq!(counts(&h), [("BudgetExceeded", 1), ("Correlated", 2)]);
        // Decided again: held for another reason, counted once.
        h.held("p", &a, HoldReason::BudgetExceeded);
        assert_eq!(counts(&h), [("BudgetExceeded", 2), ("Correlated", 1)]);
        h.released("p", &a);
        h.released("p", &a);
        assert_eq!(counts(&h), [("BudgetExceeded", 1), ("Correlated", 1)]);
        h.target_gone(&b);
        h.policy_gone("q");
        assert_eq!(counts(&h), [("BudgetExceeded", 0), ("Correlated", 0)]);
    }
}
