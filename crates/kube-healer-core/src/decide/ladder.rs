//! Where a target stands on a policy's ladder, and how to read that back from its records.

use kube_healer_api::record::ActionPhase;
use kube_healer_api::{HealingAction, reasons};

use crate::view::Secs;

/// Where a target stands on a policy's ladder, for one failure episode (one `since`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ladder {
    /// The `since` of the finding this ladder is for; a new episode starts a new ladder.
    pub episode: Secs,
    /// The next step to run (0-based).
    pub next_step: usize,
    /// Actions taken (or dry-run) in this episode.
    pub attempts: u32,
    /// The last step carried out, and when.
    pub last_action: Option<(usize, Secs)>,
}

impl Ladder {
    pub fn new(episode: Secs) -> Self {
        Ladder {
            episode,
            ..Default::default()
        }
    }

    /// Records that `step` was carried out (or dry-run) at `now`.
    pub fn acted(&mut self, step: usize, steps: usize, now: Secs) {
        self.attempts += 1;
        self.last_action = Some((step, now));
        self.next_step = (step + 1).min(steps.saturating_sub(1));
    }

    /// Takes back `acted(step, ..)` for a decision that was never recorded (and so never carried
    /// out): the ladder stands where it stood, `before` being its last action then.
    pub fn take_back(&mut self, step: usize, before: Option<(usize, Secs)>) {
        self.attempts = self.attempts.saturating_sub(1);
        self.last_action = before;
        self.next_step = step;
    }

    /// The ladder of one policy on one target in one failure episode, read back from that
    /// policy's records of the target: every step taken (or, on the dry-run ladder, dry-run)
    /// counts; holds do not. A dry run's steps are never the live ladder's.
    pub fn from_records<'a>(
        records: impl IntoIterator<Item = &'a HealingAction>,
        episode: Secs,
        steps: usize,
        dry_run: bool,
    ) -> Ladder {
        let taken = records
            .into_iter()
            .filter(|r| r.spec.failing_since.as_ref().map(|t| t.0.as_second()) == Some(episode))
            .filter(|r| r.spec.dry_run == dry_run)
            .filter(|r| Ladder::took_step(r))
            .map(|r| ((r.spec.step.max(1) - 1) as usize, r.spec.decided_at.0.as_second()));
        Ladder::from_steps(taken, episode, steps)
    }

    /// The ladder of one episode as a restarted operator (or a new leader, or a failure back
    /// within its cooldown) takes it up from the steps its records show: every step but the
    /// latest counts as taken; the latest, whose record may have been cut short by a crash
    /// between the record and the call, is returned to be decided again. Decided again, it has
    /// the same record name: finished if it was cut short, found done if not, and counted as
    /// taken when it was (so the cooldown and escalation keep their times).
    pub fn resuming(
        taken: impl IntoIterator<Item = (usize, Secs)>,
        episode: Secs,
        steps: usize,
    ) -> (Ladder, Option<(usize, Secs)>) {
        let mut taken: Vec<(usize, Secs)> = taken.into_iter().collect();
        taken.sort_by_key(|(step, at)| (*at, *step));
        let latest = taken.pop();
        (Ladder::from_steps(taken, episode, steps), latest)
    }

    /// Whether a record is of a step taken (or dry-run), not of a hold.
    pub fn took_step(record: &HealingAction) -> bool {
        record
            .status
            .as_ref()
            .is_none_or(|s| s.phase != ActionPhase::Skipped || s.reason.as_deref() == Some(reasons::DRY_RUN))
    }

    /// The ladder of one episode from the steps taken in it (0-based step, when), in any order:
    /// what the operator reads back from its records' metadata (their step, decision and
    /// episode labels) after a restart, a failover, or a failure that returned.
    pub fn from_steps(taken: impl IntoIterator<Item = (usize, Secs)>, episode: Secs, steps: usize) -> Ladder {
        let mut ladder = Ladder::new(episode);
        let mut taken: Vec<(usize, Secs)> = taken.into_iter().collect();
        taken.sort_by_key(|(step, at)| (*at, *step));
        for (step, at) in taken {
            ladder.acted(step, steps, at);
        }
        ladder
    }
}
