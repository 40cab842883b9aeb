//! What a process that ended left unfinished, taken up by the next leader once it knows the
//! cluster (every watch listed): batches still marked in flight, and records of live decisions
//! with no outcome written. Only its own policies' (operators that share a cluster, each with
//! its --policy-selector, see every HealingAction, and must not finish each other's), and
//! never this replica's own actions in flight. A batch is carried on only once its deadline has
//! passed and only if its policy could decide it then (not paused, suspended, in dry run or
//! outside its windows): work resumed passes the gate again, never around it.

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
            .filter(|(_, label, _)| ours(label))
            .map(|(n, _, u)| (n.to_string(), u))
            .collect();
        self.resuming.extend(batches);
        let records: Vec<String> = self
            .unfinished
            .iter()
            .filter(|(name, label)| ours(label) && !self.gate.own_in_flight(name))
            .map(|(name, _)| name.clone())
            .collect();
        for name in records {
            self.send(Work::FinishUnfinished { name });
        }
        self.resume_due_batches(self.clock.now());
    }

    /// The batches cut short whose deadline has passed (their earlier process could be at
    /// them until then): each carried on if its policy could decide it now, else taken back
    /// as not done, with why. One whose mark came off meanwhile (finished) is left alone.
    pub(super) fn resume_due_batches(&mut self, now: Secs) {
        if self.resuming.is_empty() || !self.deciding() {
            return;
        }
        let due: Vec<(String, Secs)> = self
            .resuming
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(n, u)| (n.clone(), *u))
            .collect();
        for (name, until) in due {
            self.resuming.remove(&name);
            let Some(label) = self.batch_marks.policy(&name) else {
                continue;
            };
            let policy = self.policies.named_by_label(label).into_iter().next();
            let Some(compiled) = policy.and_then(|p| self.policies.get(&p)) else {
                continue;
            };
            match self.gate.not_resumable(compiled, now) {
                Some((reason, message)) => self.send(Work::SettleBatch {
                    name,
                    reason,
                    message,
                }),
                None => self.send(Work::ResumeBatch { name, until }),
            }
        }
    }
}
