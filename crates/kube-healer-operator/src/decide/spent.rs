//! Each policy's recent actions, by record: those this replica decided, and those the records
//! show (labelled `act` or `dry-run`), whoever decided them. A policy's rate is counted from
//! both, once per record, so a restarted operator or a new leader grants no fresh budget: the
//! actions of the last window are in the records it lists before it decides anything.
//!
//! Bounded: only actions within the policy's rate window are kept, however long it is (a
//! week's window keeps a week of them), pruned whenever the policy's rate is read.

use std::collections::HashMap;

use kube_healer_core::view::Secs;

use crate::record::label_value;

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

    /// The times of the policy's actions within its rate `window` at `now` (older ones
    /// forgotten).
    pub fn recent(&mut self, policy: &str, now: Secs, window: Secs) -> Vec<Secs> {
        let Some(records) = self.by_policy.get_mut(&label_value(policy)) else {
            return Vec::new();
        };
        records.retain(|_, at| *at > now - window);
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
        const DAY: Secs = 86_400;
        let mut recent = s.recent("p", 200, DAY);
        recent.sort_unstable();
        assert_eq!(recent, [50, 100]);
        s.taken_back("p", "p-1");
        assert_eq!(s.recent("p", 200, DAY), [50]);
        assert_eq!(
            s.recent("p", 50 + 2 * DAY, 3 * DAY),
            [50],
            "a window of three days keeps them three days"
        );
        assert!(
            s.recent("p", 50 + DAY, DAY).is_empty(),
            "a day's window, a day later"
        );
    }
}
