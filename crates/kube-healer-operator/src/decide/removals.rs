//! kube-healer's pod removals by workload, for maxDisruptedPerWorkload (core's
//! `decide::WorkloadPods`): those this replica decided, and those the records show (their
//! `disrupts` annotation names the workload), whoever decided them, once per record, so a
//! restarted operator or a new leader counts the pods still being replaced.
//!
//! A removal still being carried out (an eviction waiting on a budget) counts as made now: its
//! pod has not left, so nothing answers it yet. Once done it counts from then, whatever came of
//! it: a removal that failed counts too, for SETTLE at most. Its outcome is not evidence enough
//! (a resumed action reports none, and a pod still in a lagging store may be gone), and unknown
//! is never clear. A record deleted by retention keeps counting here until SETTLE has passed.
//!
//! Bounded: a removal counts for core's SETTLE after it is done at most, and is pruned past it;
//! those still ongoing are the actions in flight.

use std::collections::HashMap;

use kube_healer_core::decide::{Removal, SETTLE};
use kube_healer_core::view::Secs;

#[derive(Debug)]
struct Entry {
    removal: Removal,
    /// Still being carried out.
    ongoing: bool,
}

#[derive(Debug, Default)]
pub struct Removals {
    /// Workload (`Deployment namespace/name`) -> record name -> the removal.
    by_workload: HashMap<String, HashMap<String, Entry>>,
    /// Record name -> its workload (a record forgotten without a scan).
    workload_of: HashMap<String, String>,
}

impl Removals {
    /// A removal recorded under `record`, still being carried out or not; the first time seen
    /// counts.
    pub fn removed(&mut self, workload: &str, record: &str, removal: Removal, ongoing: bool) {
        self.by_workload
            .entry(workload.to_string())
            .or_default()
            .entry(record.to_string())
            .or_insert(Entry { removal, ongoing });
        self.workload_of
            .entry(record.to_string())
            .or_insert_with(|| workload.to_string());
    }

    /// The removal recorded under `record` ended at `now`: it counts from now.
    pub fn done(&mut self, record: &str, now: Secs) {
        let Some(workload) = self.workload_of.get(record) else {
            return;
        };
        let entry = self.by_workload.get_mut(workload).and_then(|r| r.get_mut(record));
        if let Some(e) = entry.filter(|e| e.ongoing) {
            e.ongoing = false;
            e.removal.at = e.removal.at.max(now);
        }
    }

    /// A removal not made after all (a decision not recorded, so not carried out; a call never
    /// sent, or refused): it counts no more. Its workload, if it counted.
    pub fn forget(&mut self, record: &str) -> Option<String> {
        let workload = self.workload_of.remove(record)?;
        if let Some(records) = self.by_workload.get_mut(&workload) {
            records.remove(record);
            if records.is_empty() {
                self.by_workload.remove(&workload);
            }
        }
        Some(workload)
    }

    /// The workload's removals that count at `now`: those done within SETTLE, and those still
    /// ongoing (as made now).
    pub fn of(&self, workload: &str, now: Secs) -> Vec<Removal> {
        self.by_workload
            .get(workload)
            .into_iter()
            .flat_map(|r| r.values())
            .filter_map(|e| match e.ongoing {
                true => Some(Removal {
                    at: now,
                    ..e.removal.clone()
                }),
                false => (e.removal.at > now - SETTLE).then(|| e.removal.clone()),
            })
            .collect()
    }

    /// Removals done past SETTLE forgotten.
    pub fn prune(&mut self, now: Secs) {
        let workload_of = &mut self.workload_of;
        for records in self.by_workload.values_mut() {
            records.retain(|record, e| {
                let keep = e.ongoing || e.removal.at > now - SETTLE;
                if !keep {
                    workload_of.remove(record);
                }
                keep
            });
        }
        self.by_workload.retain(|_, records| !records.is_empty());
    }

    /// The removals the records show at `now`, counted as a process that starts now counts
    /// them (as the engine's record watch does): those marked in flight (a mark that reads) as
    /// ongoing, the rest from when they were decided. For `explain`, which reads the records
    /// once.
    pub fn from_records<'a>(
        records: impl IntoIterator<Item = &'a kube::core::ObjectMeta>,
        now: Secs,
    ) -> Removals {
        let mut out = Removals::default();
        for meta in records {
            let annotations = meta.annotations.as_ref();
            let Some(value) = annotations.and_then(|a| a.get(kube_healer_api::DISRUPTS_ANNOTATION)) else {
                continue;
            };
            let labels = meta.labels.as_ref();
            let label = |key: &str| labels.and_then(|l| l.get(key)).cloned().unwrap_or_default();
            let (name, uid) = (
                meta.name.clone().unwrap_or_default(),
                label(kube_healer_api::TARGET_UID_LABEL),
            );
            let created = meta.creation_timestamp.as_ref().map_or(now, |t| t.0.as_second());
            let (workload, removal) = crate::record::parse_disrupts(value, created, &uid);
            let mark = label(kube_healer_api::IN_FLIGHT_LABEL);
            let ongoing = kube_healer_core::decide::parse_until(&mark).is_some();
            out.removed(workload, &name, removal, ongoing);
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.by_workload.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_workload.values().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at: Secs, pod: &str) -> Removal {
        Removal {
            at,
            pod: pod.into(),
            pod_created: 0,
        }
    }

    const W: &str = "Deployment a/web";

    #[test]
    fn a_removal_counts_once_until_settle_or_its_decision_is_taken_back() {
        let mut r = Removals::default();
        r.removed(W, "rec-1", at(100, "a"), false);
        r.removed(W, "rec-1", at(105, "a"), false);
        r.removed(W, "rec-2", at(110, "b"), false);
        assert_eq!(r.of(W, 120).len(), 2);
        assert_eq!(r.forget("rec-2").as_deref(), Some(W));
        assert_eq!(r.forget("rec-2"), None, "forgotten once");
        assert_eq!(r.of(W, 120), vec![at(100, "a")]);
        assert!(r.of(W, 100 + SETTLE).is_empty());
        r.prune(100 + SETTLE);
        assert_eq!(r.len(), 0);
        assert!(r.workload_of.is_empty(), "pruned from both indexes");
    }

    #[test]
    fn a_removal_certainly_not_made_counts_no_more_even_while_ongoing() {
        let mut r = Removals::default();
        r.removed(W, "refused", at(100, "a"), true);
        r.removed(W, "made", at(100, "b"), true);
        assert_eq!(r.of(W, 110).len(), 2);
        assert!(r.forget("refused").is_some());
        r.done("refused", 120);
        assert_eq!(r.of(W, 120), vec![at(120, "b")]);
    }

    #[test]
    fn an_ongoing_removal_counts_as_made_now_then_from_when_it_ended() {
        let mut r = Removals::default();
        r.removed(W, "evict", at(100, "a"), true);
        r.removed(W, "delete", at(100, "b"), true);
        // An eviction waiting on its budget past SETTLE still counts, as made now.
        let later = 100 + 2 * SETTLE;
        r.prune(later);
        let mut ongoing = r.of(W, later);
        ongoing.sort_by(|x, y| x.pod.cmp(&y.pod));
        assert_eq!(ongoing, vec![at(later, "a"), at(later, "b")]);
        // Done: each counts from then, for SETTLE.
        r.done("evict", later);
        r.done("delete", later + 5);
        assert_eq!(r.of(W, later + SETTLE).len(), 1);
        assert!(r.of(W, later + 5 + SETTLE).is_empty());
    }
}
