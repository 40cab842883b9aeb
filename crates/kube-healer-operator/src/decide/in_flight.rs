//! The long actions in flight as the HealingActions' in-flight marks show them, and which of
//! them this replica started. A leader that took over counts the others against maxConcurrent
//! (the rule is core's `inherited_in_flight`). Bounded by the records carrying a mark: long
//! actions running now, or marks left behind, which stop counting at their deadline and go
//! with their records.

use std::collections::{HashMap, HashSet};

use kube_healer_core::decide::{InFlightMark, inherited_in_flight};
use kube_healer_core::view::Secs;

use crate::record::label_value;

#[derive(Debug, Default)]
pub struct InFlight {
    /// Record name -> its mark.
    marks: HashMap<String, InFlightMark>,
    /// Records of this replica's actions in flight (counted in its own budget).
    own: HashSet<String>,
}

impl InFlight {
    /// A record as the watch shows it: with its mark, or without (ended, or never long). Returns
    /// the policy whose count may have dropped.
    pub fn seen(&mut self, record: &str, mark: Option<InFlightMark>) -> Option<String> {
        match mark {
            Some(mark) => {
                self.marks.insert(record.to_string(), mark);
                None
            }
            None => self.gone(record),
        }
    }

    /// A record is gone (deleted, or its mark taken off). Returns the policy it counted for.
    pub fn gone(&mut self, record: &str) -> Option<String> {
        self.marks.remove(record).map(|m| m.policy)
    }

    /// This replica sent an action in flight under this record.
    pub fn started(&mut self, record: &str) {
        self.own.insert(record.to_string());
    }

    /// Whether this replica's action under this record is in flight.
    pub fn is_own(&self, record: &str) -> bool {
        self.own.contains(record)
    }

    /// This replica's action under this record ended.
    pub fn ended(&mut self, record: &str) {
        self.own.remove(record);
    }

    /// The policy's long actions in flight that another leader started, for a decision on the
    /// target `target_uid`, and when the count drops at the latest.
    pub fn inherited(&self, policy: &str, target_uid: &str, now: Secs) -> (u32, Option<Secs>) {
        if self.marks.is_empty() {
            return (0, None);
        }
        // Records name their policy by label (cut to a label value's length).
        inherited_in_flight(
            self.marks.iter().map(|(n, m)| (n.as_str(), m)),
            &label_value(policy),
            target_uid,
            now,
            |record| self.own.contains(record),
        )
    }
}
