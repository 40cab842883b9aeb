//! Where each failure's episode began and where its ladder stands, as the records carry them.
//! An episode is the identity of a failure on a target under a policy: its ladder, its cooldown
//! and maxAttempts, its record names. While a policy condition keeps holding (and through the
//! debounce after it clears), its episode keeps the start it had: the matching carries it over,
//! whatever window arithmetic says now. Otherwise the core's rule (`decide::episode_of`) reads
//! the records: each is labelled with its episode, decision and step, so a condition that starts
//! holding in a new process, or a failure that returns within the policy's cooldown, continues
//! its episode, and its ladder is rebuilt from the steps recorded in it.
//!
//! Bounded by the records (their creation, episode, decision, step and name, per policy and
//! target), and forgotten with them.

use std::collections::HashMap;

use kube_healer_core::decide::{Ladder, Recorded, episode_of};
use kube_healer_core::view::Secs;

use crate::record::{Mode, label_value};

/// What a record's metadata says of its decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    pub name: String,
    pub created: Secs,
    pub episode: Secs,
    /// The decision: Some(mode) for an action (live) or a dry run, None for a hold.
    pub acted: Option<Mode>,
    /// The ladder step (0-based), when the record carries it (records made before the step
    /// label did not).
    pub step: Option<usize>,
}

#[derive(Debug, Default)]
pub struct Episodes {
    /// (policy label, target UID) -> its records.
    by_target: HashMap<(String, String), Vec<RecordMeta>>,
}

impl Episodes {
    /// A record of `policy` on `target_uid`, as its watch shows it.
    pub fn recorded(&mut self, policy: &str, target_uid: &str, record: RecordMeta) {
        let list = self
            .by_target
            .entry((label_value(policy), target_uid.to_string()))
            .or_default();
        if !list.iter().any(|r| r.name == record.name) {
            list.push(record);
        }
    }

    /// A record was deleted.
    pub fn forget(&mut self, policy: &str, target_uid: &str, record: &str) {
        let key = (label_value(policy), target_uid.to_string());
        if let Some(list) = self.by_target.get_mut(&key) {
            list.retain(|r| r.name != record);
            if list.is_empty() {
                self.by_target.remove(&key);
            }
        }
    }

    fn records(&self, policy: &str, target_uid: &str) -> &[RecordMeta] {
        let key = (label_value(policy), target_uid.to_string());
        self.by_target.get(&key).map(Vec::as_slice).unwrap_or_default()
    }

    /// The episode a condition that starts holding belongs to (the failure began at `since`):
    /// the core's rule on the policy's records of the target, `reopen` being its cooldown.
    pub fn carried(&self, policy: &str, target_uid: &str, since: Secs, reopen: Secs) -> Secs {
        let records = self.records(policy, target_uid).iter().map(|r| Recorded {
            created: r.created,
            episode: r.episode,
            acted: r.acted.is_some(),
        });
        episode_of(records, since, reopen)
    }

    /// The ladder of an episode on the `mode` ladder, taken up from the steps its records carry
    /// (the core's `Ladder::resuming`), and its latest step, to be decided again. None when no
    /// record of it says its step (none, or only records older than the label): the ladder
    /// starts afresh and the record names recognise what was done.
    pub fn ladder(
        &self,
        policy: &str,
        target_uid: &str,
        episode: Secs,
        mode: Mode,
        steps: usize,
    ) -> Option<(Ladder, Option<(usize, Secs)>)> {
        let taken: Vec<(usize, Secs)> = self
            .records(policy, target_uid)
            .iter()
            .filter(|r| r.episode == episode && r.acted == Some(mode))
            .filter_map(|r| r.step.map(|s| (s, r.created)))
            .collect();
        (!taken.is_empty()).then(|| Ladder::resuming(taken, episode, steps))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, created: Secs, episode: Secs, acted: Option<Mode>, step: usize) -> RecordMeta {
        RecordMeta {
            name: name.into(),
            created,
            episode,
            acted,
            step: Some(step),
        }
    }

    #[test]
    fn a_failure_that_went_on_continues_its_recorded_episode() {
        let mut e = Episodes::default();
        e.recorded("p", "u", meta("p-1", 1_000, 400, None, 0));
        e.recorded("p", "u", meta("p-2", 2_000, 400, None, 0));
        // The window moved on: the failure seems to begin at 1,500, before the latest record.
        assert_eq!(e.carried("p", "u", 1_500, 0), 400);
        // It began after the latest record: a new failure, a new episode.
        assert_eq!(e.carried("p", "u", 2_500, 600), 2_500);
        // Another policy or target has its own.
        assert_eq!(e.carried("q", "u", 1_500, 0), 1_500);
        e.forget("p", "u", "p-2");
        e.forget("p", "u", "p-1");
        assert_eq!(e.carried("p", "u", 900, 0), 900);
    }

    #[test]
    fn a_failure_returning_within_the_cooldown_goes_on_up_its_ladder() {
        let mut e = Episodes::default();
        let live = Some(Mode::Live);
        e.recorded("p", "u", meta("p-1", 1_000, 400, live, 0));
        e.recorded("p", "u", meta("p-2", 1_300, 400, live, 1));
        // Back 200 s after the last action, cooldown 600 s: the same episode, at step 3.
        assert_eq!(e.carried("p", "u", 1_500, 600), 400);
        // Taken up at its latest step (decided again under its own name), the one before taken.
        let (ladder, latest) = e.ladder("p", "u", 400, Mode::Live, 3).unwrap();
        assert_eq!(
            (ladder.attempts, ladder.next_step, ladder.last_action),
            (1, 1, Some((0, 1_000)))
        );
        assert_eq!(latest, Some((1, 1_300)));
        // The dry-run ladder is another; an unknown episode has none.
        assert!(e.ladder("p", "u", 400, Mode::DryRun, 3).is_none());
        assert!(e.ladder("p", "u", 1_500, Mode::Live, 3).is_none());
        // Back after the cooldown: a new episode.
        assert_eq!(e.carried("p", "u", 2_000, 600), 2_000);
    }
}
