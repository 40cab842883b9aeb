//! What the gate keeps per target goes with the target: once a pod or node is gone from the
//! stores (deleted, or not listed again), its ladders, its held decisions and its holds are
//! forgotten, so that these maps stay bounded by the targets that exist. A target of the same
//! name later is a new failure: its ladder starts from its own episode, or from the records.

use super::Gate;
use crate::target::Target;

impl Gate {
    pub fn target_gone(&mut self, target: &Target) {
        self.ladders.retain(|k, _| k.target != *target);
        self.held.retain(|h| h.target != *target);
        self.holding.target_gone(target);
    }

    /// Per-target entries kept (ladders and held decisions), for tests and benchmarks.
    pub fn per_target_entries(&self) -> usize {
        self.ladders.len() + self.held.len()
    }
}
