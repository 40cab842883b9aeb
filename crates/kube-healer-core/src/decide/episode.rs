//! Which episode a failure belongs to. An episode is the identity of one failure of a target
//! under a policy: its ladder (step, attempts, cooldown) and its record names go by it. It must
//! never come from window arithmetic (a series counted over a sliding window seems to begin anew
//! at every slide) and must survive restarts, so the records carry it, and a policy condition
//! that starts holding continues an earlier episode in two cases:
//!
//! - the failure went on: it began (as classified now) no later than the policy's latest record
//!   on the target, and not before that record's episode;
//! - it returned soon: it began within `reopen` (the policy's cooldown) of the policy's latest
//!   action on the target. A failure that clears and comes back every few minutes then goes on
//!   up its ladder under its cooldown and maxAttempts, instead of starting at step 1 each time.
//!
//! Otherwise it is a new episode, begun when the failure began. (While a condition holds, and
//! through the debounce after it clears, the operator keeps its episode without asking.)

use crate::view::Secs;

/// A record of the policy on the target, as the episode rule reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// When the record was made.
    pub created: Secs,
    /// The episode it belongs to.
    pub episode: Secs,
    /// An action or dry run was recorded (not a hold).
    pub acted: bool,
}

/// The episode of a failure that began at `since` and starts holding now, given the policy's
/// records on the target (any order).
pub fn episode_of(records: impl IntoIterator<Item = Recorded>, since: Secs, reopen: Secs) -> Secs {
    let mut latest: Option<Recorded> = None;
    let mut latest_action: Option<Recorded> = None;
    for r in records {
        if latest.is_none_or(|l| r.created >= l.created) {
            latest = Some(r);
        }
        if r.acted && latest_action.is_none_or(|l| r.created >= l.created) {
            latest_action = Some(r);
        }
    }
    if let Some(l) = latest
        && l.episode <= since
        && since <= l.created
    {
        return l.episode;
    }
    if let Some(a) = latest_action
        && a.created < since
        && since <= a.created.saturating_add(reopen)
    {
        return a.episode;
    }
    since
}
