//! kube-healer's pod removals by workload, for maxDisruptedPerWorkload (core's
//! `decide::WorkloadPods`): those this replica decided, and those the records show (their
//! `disrupts` annotation names the workload), whoever decided them, once per record, so a
//! restarted operator or a new leader counts the pods still being replaced.
//!
//! Bounded: a removal counts for core's SETTLE at most, and is pruned past it.

use std::collections::HashMap;

use kube_healer_core::decide::{Removal, SETTLE};
use kube_healer_core::view::Secs;

#[derive(Debug, Default)]
pub struct Removals {
    /// Workload (`Deployment namespace/name`) -> record name -> the removal.
    by_workload: HashMap<String, HashMap<String, Removal>>,
}

impl Removals {
    /// A removal recorded under `record`; the first time seen counts.
    pub fn removed(&mut self, workload: &str, record: &str, removal: Removal) {
        self.by_workload
            .entry(workload.to_string())
            .or_default()
            .entry(record.to_string())
            .or_insert(removal);
    }

    /// A decision not recorded (so not carried out), or a record deleted: it counts no more.
    pub fn forget(&mut self, record: &str) {
        for records in self.by_workload.values_mut() {
            records.remove(record);
        }
        self.by_workload.retain(|_, records| !records.is_empty());
    }

    /// The workload's removals within SETTLE at `now`.
    pub fn of(&self, workload: &str, now: Secs) -> Vec<Removal> {
        self.by_workload
            .get(workload)
            .into_iter()
            .flat_map(|r| r.values())
            .filter(|r| r.at > now - SETTLE)
            .cloned()
            .collect()
    }

    /// Removals past SETTLE forgotten.
    pub fn prune(&mut self, now: Secs) {
        for records in self.by_workload.values_mut() {
            records.retain(|_, r| r.at > now - SETTLE);
        }
        self.by_workload.retain(|_, records| !records.is_empty());
    }

    pub fn len(&self) -> usize {
        self.by_workload.values().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removal_counts_once_until_settle_or_its_record_goes() {
        let mut r = Removals::default();
        let at = |at| Removal {
            at,
            pod: "uid".into(),
            pod_created: 0,
        };
        r.removed("Deployment a/web", "rec-1", at(100));
        r.removed("Deployment a/web", "rec-1", at(105));
        r.removed("Deployment a/web", "rec-2", at(110));
        assert_eq!(r.of("Deployment a/web", 120).len(), 2);
        r.forget("rec-2");
        assert_eq!(r.of("Deployment a/web", 120), vec![at(100)]);
        assert!(r.of("Deployment a/web", 100 + SETTLE).is_empty());
        r.prune(100 + SETTLE);
        assert_eq!(r.len(), 0);
    }
}
