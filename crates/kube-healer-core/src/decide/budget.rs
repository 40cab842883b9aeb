//! A policy's use of its limits, and what a decision spends of it.

use super::Decision;
use crate::view::Secs;

/// A policy's use of its limits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Budget {
    /// Actions of the policy still in flight.
    pub in_flight: u32,
    /// When the policy's recent actions were taken (only those within the rate window matter).
    pub recent: Vec<Secs>,
}

impl Budget {
    /// What a decision made at `now` spends: an action (a dry run too) counts against the rate;
    /// only a real action is in flight, and so counts against maxConcurrent (a dry run changes
    /// nothing and ends at once). Holds and waits spend nothing.
    pub fn spend(&mut self, decision: &Decision, now: Secs) {
        if let Decision::Act { dry_run, .. } = decision {
            self.recent.push(now);
            if !dry_run {
                self.in_flight += 1;
            }
        }
    }

    /// An action in flight ended.
    pub fn finished(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Forgets action times older than the policy's rate window, however long it is.
    pub fn prune(&mut self, now: Secs, window: Secs) {
        self.recent.retain(|t| *t > now - window);
    }
}
