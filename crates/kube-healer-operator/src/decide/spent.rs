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

/// How long the actions of a policy not here are kept (a policy recreated under its name counts
/// them again; the records themselves stay for retention).
const DAY: Secs = 86_400;

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

    /// A record deleted (by retention, past every window it counted in, or by a person): it
    /// counts no more.
    pub fn forget(&mut self, record: &str) {
        for records in self.by_policy.values_mut() {
            records.remove(record);
        }
        self.by_policy.retain(|_, records| !records.is_empty());
    }

    /// Every policy's actions past its window at `now` forgotten (`window` by the records'
    /// policy label; None: a policy not here, kept a day).
    pub fn prune(&mut self, now: Secs, window: impl Fn(&str) -> Option<Secs>) {
        for (policy, records) in &mut self.by_policy {
            let window = window(policy).unwrap_or(DAY);
            records.retain(|_, at| *at > now - window);
        }
        self.by_policy.retain(|_, records| !records.is_empty());
    }

    /// Actions kept, over every policy.
    pub fn len(&self) -> usize {
        self.by_policy.values().map(HashMap::len).sum()
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
    fn a_deleted_record_and_actions_past_every_window_are_let_go() {
        let mut s = Spent::default();
        s.spent("p", "p-1", 100);
        s.spent("p", "p-2", 5000);
        s.spent("gone", "gone-1", 100);
        s.forget("p-2");
        assert_eq!(s.len(), 2);
        // p's window is an hour; a policy not here is kept a day.
        s.prune(3_800, |p| (p == "p").then_some(3600));
        assert_eq!(s.len(), 1, "p-1 is past p's hour");
        s.prune(100 + DAY, |p| (p == "p").then_some(3600));
        assert_eq!(s.len(), 0, "a policy not here is kept a day");
    }

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
