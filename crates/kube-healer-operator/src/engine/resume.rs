//! What a process that ended left unfinished, taken up by the next leader once it knows the
//! cluster (every watch listed): batches still marked in flight, and records of live decisions
//! with no outcome written. Only its own policies' (operators that share a cluster, each with
//! its --policy-selector, see every HealingAction, and must not finish each other's), and
//! never this replica's own actions in flight.

use kube_healer_core::view::Secs;

use super::Engine;
use crate::protocol::Work;

impl Engine {
    /// A new leader (after a restart, a failover, or a re-list) hands the executor:
    /// - each batch still marked in flight, finished once its deadline has passed (one finished
    ///   meanwhile is left alone; its own batches, made after this, it finishes itself);
    /// - each live record without an outcome that is not its own action in flight: finished if
    ///   its target is gone. A target still there is decided again under the record's name,
    ///   which resumes the record, so the decisions made just before this (on becoming leader,
    ///   or once listed) are in flight already and are skipped here.
    pub(super) fn resume_unfinished(&mut self) {
        if !self.is_leader || self.action_tx.is_none() || !self.synced.all() {
            return;
        }
        let ours = |label: &str| !self.policies.named_by_label(label).is_empty();
        let batches: Vec<(String, Secs)> = self
            .batch_marks
            .iter()
            .filter(|(_, (label, _))| ours(label))
            .map(|(n, (_, u))| (n.clone(), *u))
            .collect();
        let records: Vec<String> = self
            .unfinished
            .iter()
            .filter(|(name, label)| ours(label) && !self.gate.own_in_flight(name))
            .map(|(name, _)| name.clone())
            .collect();
        for (name, until) in batches {
            self.send(Work::ResumeBatch { name, until });
        }
        for name in records {
            self.send(Work::FinishUnfinished { name });
        }
    }
}
