//! HealingAction retention: records older than the maximum age, and the oldest beyond the
//! maximum count per policy, are deleted by the leader. The records are known from a
//! metadata-only watch (name, labels, creation time); nothing is listed periodically.
//!
//! A record is also the memory that keeps a decision from being carried out twice: the records
//! of a failure still in progress (the policy still matches the target) are never deleted. And
//! it is the memory of a policy's rate: a record within its policy's rate window is never
//! deleted either, so that a restarted operator counts a week's window from a week of records
//! whatever the maximum age or count.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use kube_healer_core::view::Secs;

/// How long and how many records are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Records older than this are deleted.
    pub max_age: Duration,
    /// At most this many records per policy (the oldest go first).
    pub max_per_policy: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_per_policy: 1000,
        }
    }
}

/// The records of each policy by creation time.
#[derive(Debug, Default)]
pub struct Records {
    by_policy: HashMap<String, BTreeSet<(Secs, String)>>,
    /// name -> (policy, created, target UID).
    index: HashMap<String, (String, Secs, String)>,
    /// A batch record's pods: name -> (UID, the pod's own decision name).
    batches: HashMap<String, Vec<(String, String)>>,
}

impl Records {
    pub fn upsert(&mut self, name: String, policy: String, created: Secs, target_uid: String) {
        self.remove(&name);
        self.by_policy
            .entry(policy.clone())
            .or_default()
            .insert((created, name.clone()));
        self.index.insert(name, (policy, created, target_uid));
    }

    /// A batch record, with its pods (UID, own decision name); `first` is its first pod's UID.
    pub fn upsert_batch(
        &mut self,
        name: String,
        policy: String,
        created: Secs,
        first: String,
        members: Vec<(String, String)>,
    ) {
        self.batches.insert(name.clone(), members);
        self.upsert(name, policy, created, first);
    }

    /// A batch record's pods (empty for a record of one), forgotten here.
    pub fn take_batch(&mut self, name: &str) -> Vec<(String, String)> {
        self.batches.remove(name).unwrap_or_default()
    }

    /// Forgets a record; returns what was known of it: (policy, created, target UID).
    pub fn remove(&mut self, name: &str) -> Option<(String, Secs, String)> {
        let removed = self.index.remove(name)?;
        if let Some(set) = self.by_policy.get_mut(&removed.0) {
            set.remove(&(removed.1, name.to_string()));
            if set.is_empty() {
                self.by_policy.remove(&removed.0);
            }
        }
        Some(removed)
    }

    /// Keeps only the named records (after a re-list); returns the others, with what was
    /// known of them.
    pub fn retain(
        &mut self,
        names: &std::collections::HashSet<String>,
    ) -> Vec<(String, (String, Secs, String))> {
        let gone: Vec<String> = self
            .index
            .keys()
            .filter(|n| !names.contains(*n))
            .cloned()
            .collect();
        gone.into_iter()
            .filter_map(|name| self.remove(&name).map(|known| (name, known)))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The records of managed policies to delete at `now`, oldest first, except those of
    /// targets `active` for their policy (policy, target UID) and those within their policy's
    /// rate window; they are forgotten here (their delete events confirm it). `window` gives a
    /// policy's rate window, None for a policy this operator does not manage. Also returns when
    /// to look again (the next record to come of age).
    pub fn expired(
        &mut self,
        now: Secs,
        retention: Retention,
        window: impl Fn(&str) -> Option<Secs>,
        active: impl Fn(&str, &str) -> bool,
    ) -> (Vec<String>, Option<Secs>) {
        let max_age = retention.max_age.as_secs() as Secs;
        let mut doomed = Vec::new();
        let mut next: Option<Secs> = None;
        for (policy, set) in &self.by_policy {
            let Some(window) = window(policy) else {
                continue;
            };
            let mut over = set.len().saturating_sub(retention.max_per_policy);
            for (created, name) in set {
                let aged = *created + max_age <= now;
                let counted = *created + window > now;
                if (over == 0 && !aged) || counted {
                    // Kept, as are the younger ones after it: until out of its policy's window,
                    // and (unless over the count) of age.
                    let out = *created + window;
                    let at = if over == 0 {
                        out.max(*created + max_age)
                    } else {
                        out
                    };
                    next = Some(next.map_or(at, |n| n.min(at)));
                    break;
                }
                let uid = self.index.get(name).map_or("", |(_, _, uid)| uid.as_str());
                if active(policy, uid) {
                    continue;
                }
                doomed.push(name.clone());
                over = over.saturating_sub(1);
            }
        }
        for name in &doomed {
            self.remove(name);
        }
        (doomed, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retention(days: u64, count: usize) -> Retention {
        Retention {
            max_age: Duration::from_secs(days * 86400),
            max_per_policy: count,
        }
    }

    #[test]
    fn the_oldest_beyond_the_count_and_the_too_old_go_only_for_managed_policies() {
        let mut r = Records::default();
        for i in 0..5 {
            r.upsert(format!("a-{i}"), "a".into(), 1000 + i, format!("u{i}"));
            r.upsert(format!("b-{i}"), "b".into(), 1000 + i, format!("u{i}"));
        }
        r.upsert("old".into(), "c".into(), 0, "u".into());
        let none_active = |_: &str, _: &str| false;
        let managed = |p: &str| (p != "b").then_some(60);
        let (doomed, next) = r.expired(2000, retention(1, 3), managed, none_active);
        assert_eq!(doomed.len(), 2, "{doomed:?}");
        assert!(doomed.contains(&"a-0".to_string()) && doomed.contains(&"a-1".to_string()));
        assert_eq!(next, Some(86400), "the record of c comes of age first");
        assert_eq!(r.len(), 9);
        let all = |_: &str| Some(60);
        let (doomed, _) = r.expired(1000 + 86400, retention(1, 3), all, none_active);
        assert!(doomed.contains(&"old".to_string()) && doomed.contains(&"b-0".to_string()));
        let (doomed, _) = r.expired(1000 + 86400, retention(1, 3), all, none_active);
        assert!(doomed.is_empty(), "forgotten once doomed: {doomed:?}");
    }

    #[test]
    fn records_of_a_failure_in_progress_are_kept_and_the_next_oldest_go() {
        let mut r = Records::default();
        for i in 0..4 {
            r.upsert(format!("a-{i}"), "a".into(), 1000 + i, format!("u{i}"));
        }
        // u0 still fails under policy a: its record is the memory of the decision.
        let (doomed, _) = r.expired(
            2000,
            retention(1, 2),
            |_| Some(60),
            |p, uid| p == "a" && uid == "u0",
        );
        assert_eq!(doomed, ["a-1", "a-2"]);
    }

    /// A policy's rate counts its records: those within its window stay past the maximum age
    /// and the count, and go once out of it.
    #[test]
    fn records_within_their_policy_s_rate_window_are_kept_past_age_and_count() {
        let mut r = Records::default();
        let week = 7 * 86400;
        for i in 0..4 {
            r.upsert(format!("a-{i}"), "a".into(), i * 86400, format!("u{i}"));
        }
        let none_active = |_: &str, _: &str| false;
        // Day 5, a one-day maximum age and two records at most: all four are in the week.
        let (doomed, next) = r.expired(5 * 86400, retention(1, 2), |_| Some(week), none_active);
        assert!(doomed.is_empty(), "{doomed:?}");
        assert_eq!(next, Some(week), "the first leaves the window after a week");
        let (doomed, _) = r.expired(week + 86400, retention(1, 2), |_| Some(week), none_active);
        assert_eq!(
            doomed,
            ["a-0", "a-1"],
            "out of the window: age and count apply again"
        );
    }

    #[test]
    fn a_deleted_record_is_forgotten() {
        let mut r = Records::default();
        r.upsert("x".into(), "p".into(), 5, "u".into());
        r.upsert("x".into(), "p".into(), 5, "u".into());
        assert_eq!(r.len(), 1);
        r.remove("x");
        assert!(r.is_empty());
        let (doomed, next) = r.expired(10, retention(1, 0), |_| Some(60), |_, _| false);
        assert!(doomed.is_empty() && next.is_none());
    }
}
