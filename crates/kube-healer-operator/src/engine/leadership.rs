//! Following leadership: a new leader writes the statuses it holds and decides on every target
//! afresh; a replica that lost it stops deciding and lets go of its waiting targets.

use super::Engine;

impl Engine {
    pub(super) fn set_leader(&mut self, leading: bool) {
        if leading == self.is_leader {
            return;
        }
        self.is_leader = leading;
        self.metrics.leader.set(i64::from(leading));
        if leading {
            tracing::info!("became the leader: deciding and acting");
            for status in self.statuses.all_latest() {
                self.write_status(status);
            }
            let now = self.clock.now();
            for t in self.stores.targets() {
                self.evaluate(&t, now);
            }
            self.apply_retention(now);
            self.resume_unfinished();
        } else {
            self.gate.stop_waiting();
            // The batches cut short are the next leader's to take up.
            self.resuming.clear();
            tracing::warn!("lost the leadership: deciding nothing until it is back");
        }
    }
}
