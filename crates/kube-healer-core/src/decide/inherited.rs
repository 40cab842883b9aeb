//! Actions in flight that another leader started: a long action (an eviction waiting on a
//! PodDisruptionBudget, a drain, a rescheduling, a rollout restart, a node Job) is recorded with
//! a mark saying until when, at the latest, it may still be running. The mark is removed when the
//! action ends. A leader that took over counts the marked records of a policy it did not start
//! itself as that policy's actions in flight, so maxConcurrent holds across a failover: a
//! `maxConcurrent: 1` drain policy never runs a second drain beside the one the old leader left.
//!
//! The mark bounds itself: a record whose leader died between finishing the action and removing
//! the mark stops counting at its deadline, so a lost write cannot hold a policy for good.

use crate::view::Secs;

/// A record of a long action that may still be running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlightMark {
    pub policy: String,
    /// The target's UID (the record's target-uid label).
    pub target_uid: String,
    /// Until when (Unix seconds) it may be running, at the latest.
    pub until: Secs,
}

/// Parses a mark's deadline, as the record's label carries it (Unix seconds).
pub fn parse_until(label: &str) -> Option<Secs> {
    label.trim().parse().ok()
}

/// How many of `marks` count as `policy`'s actions in flight for a decision on `target_uid` at
/// `now`: those of the policy, not past their deadline, not of this replica's own making (`own`
/// names them by record; those are counted where they were started), and not on the target
/// decided on (deciding on it again resumes that very record, or follows it). Also returns the
/// earliest deadline among them: when the count drops at the latest.
pub fn inherited_in_flight<'a>(
    marks: impl IntoIterator<Item = (&'a str, &'a InFlightMark)>,
    policy: &str,
    target_uid: &str,
    now: Secs,
    own: impl Fn(&str) -> bool,
) -> (u32, Option<Secs>) {
    let mut count = 0;
    let mut earliest: Option<Secs> = None;
    for (record, mark) in marks {
        if mark.policy != policy || mark.target_uid == target_uid || mark.until <= now || own(record) {
            continue;
        }
        count += 1;
        earliest = Some(earliest.map_or(mark.until, |e| e.min(mark.until)));
    }
    (count, earliest)
}
