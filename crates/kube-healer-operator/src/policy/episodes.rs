//! Where a failure's episode began, as the records carry it. An episode is the identity of a
//! failure on a target under a policy: its ladder, its cooldown and maxAttempts, its record
//! names. While a policy condition keeps holding, its episode keeps the start it had (the
//! matching carries it over, whatever window arithmetic says now). Across a restart or a
//! failover the records carry it: each is labelled with its episode, and a condition that starts
//! holding in a new process continues the episode of the policy's latest record on the target if
//! the failure, as classified now, began no later than that record was made.
//!
//! Bounded by the records (their creation, episode and name, per policy and target), and
//! forgotten with them.

use std::collections::HashMap;

use kube_healer_core::view::Secs;

use crate::record::label_value;

/// A record's episode: (created, episode start, record name).
type Carried = (Secs, Secs, String);

#[derive(Debug, Default)]
pub struct Episodes {
    /// (policy label, target UID) -> the records' episodes.
    by_target: HashMap<(String, String), Vec<Carried>>,
}

impl Episodes {
    /// A record of `policy` on `target_uid`, made at `created`, in the episode begun at `episode`.
    pub fn recorded(&mut self, policy: &str, target_uid: &str, record: &str, created: Secs, episode: Secs) {
        let list = self
            .by_target
            .entry((label_value(policy), target_uid.to_string()))
            .or_default();
        if !list.iter().any(|(_, _, n)| n == record) {
            list.push((created, episode, record.to_string()));
        }
    }

    /// A record was deleted.
    pub fn forget(&mut self, policy: &str, target_uid: &str, record: &str) {
        let key = (label_value(policy), target_uid.to_string());
        if let Some(list) = self.by_target.get_mut(&key) {
            list.retain(|(_, _, n)| n != record);
            if list.is_empty() {
                self.by_target.remove(&key);
            }
        }
    }

    /// The episode a condition that starts holding continues: that of the policy's latest record
    /// on the target, if the failure (since `since`) began no later than that record was made and
    /// not before its episode; else its own start.
    pub fn carried(&self, policy: &str, target_uid: &str, since: Secs) -> Secs {
        let key = (label_value(policy), target_uid.to_string());
        let latest = self
            .by_target
            .get(&key)
            .and_then(|list| list.iter().max_by_key(|(created, _, _)| *created));
        match latest {
            Some((created, episode, _)) if *episode <= since && since <= *created => *episode,
            _ => since,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_that_went_on_continues_its_recorded_episode() {
        let mut e = Episodes::default();
        e.recorded("p", "u", "p-1", 1_000, 400);
        e.recorded("p", "u", "p-2", 2_000, 400);
        // The window moved on: the failure seems to begin at 1,500, before the latest record.
        assert_eq!(e.carried("p", "u", 1_500), 400);
        // It began after the latest record: a new failure, a new episode.
        assert_eq!(e.carried("p", "u", 2_500), 2_500);
        // Another policy or target has its own.
        assert_eq!(e.carried("q", "u", 1_500), 1_500);
        e.forget("p", "u", "p-2");
        e.forget("p", "u", "p-1");
        assert_eq!(e.carried("p", "u", 900), 900);
    }
}
