//! Each policy's recent actions, by record: those this replica decided, and those the records
//! show (labelled `act` or `dry-run`), whoever decided them. A policy's rate is counted from
//! both, once per record, so a restarted operator or a new leader grants no fresh budget: the
//! actions of the last window are in the records it lists before it decides anything.
//!
//! Bounded: only actions within the longest rate window are kept (a day, as the core's budget
//! keeps them), pruned whenever a policy's rate is read.

use std::collections::HashMap;

use kube_healer_core::view::Secs;

use crate::record::label_value;

/// How long an action is remembered: no rate window is longer.
const KEPT: Secs = 86_400;

#[derive(Debug, Default)]
pub struct Spent {
    /// Policy (as its records' label names it) -> record name -> when the action was decided.
    by_policy: HashMap<String, HashMap<String, Secs>>,
}

impl Spent {
    /// An action (or dry run) recorded under `record` at `at`, as this replica decided it or as
    /// the watch shows its record. The first time seen counts: this replica's own decision comes
    /// before its record.
    pub fn spent(&mut self, policy: &str, record: &str, at: Secs) {
        self.by_policy
            .entry(label_value(policy))
            .or_default()
            .entry(record.to_string())
            .or_insert(at);
    }

    /// A decision that could not be recorded was not carried out: it spent nothing.
    pub fn taken_back(&mut self, policy: &str, record: &str) {
        if let Some(records) = self.by_policy.get_mut(&label_value(policy)) {
            records.remove(record);
        }
    }

    /// The times of the policy's actions within the last day, at `now` (older ones forgotten).
    pub fn recent(&mut self, policy: &str, now: Secs) -> Vec<Secs> {
        let Some(records) = self.by_policy.get_mut(&label_value(policy)) else {
            return Vec::new();
        };
        records.retain(|_, at| *at > now - KEPT);
        records.values().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_record_counts_once_and_old_ones_are_forgotten() {
        let mut s = Spent::default();
        s.spent("p", "p-1", 100);
        // The watch shows the record this replica decided: no second count.
        s.spent("p", "p-1", 101);
        // Another leader's record.
        s.spent("p", "p-2", 50);
        s.spent("q", "q-1", 100);
        let mut recent = s.recent("p", 200);
        recent.sort_unstable();
        assert_eq!(recent, [50, 100]);
        s.taken_back("p", "p-1");
        assert_eq!(s.recent("p", 200), [50]);
        assert!(s.recent("p", 50 + KEPT).is_empty(), "a day later");
    }
}
