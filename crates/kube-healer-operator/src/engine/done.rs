//! The executor's answers: a finished action frees its place under maxConcurrent (the next
//! waiting target takes it), counts in the policy's status if it changed the cluster, and a
//! decision that could not be recorded is taken back and made again later.

use super::Engine;
use crate::decide::RECORD_RETRY;
use crate::protocol::ActionDone;

impl Engine {
    pub fn action_done(&mut self, done: ActionDone) {
        if done.was_in_flight {
            let freed = self.gate.finished(&done.policy);
            // A place is free: decide again on the targets queued behind maxConcurrent, until
            // one of them takes it.
            let now = self.clock.now();
            while let Some(target) = self.gate.next_waiting(&done.policy) {
                self.evaluate(&target, now);
                if self.gate.in_flight(&done.policy) > freed {
                    break;
                }
            }
        }
        if let Some(req) = done.unrecorded {
            let target = self.gate.take_back(&done.policy, &req);
            let at = self.clock.now() + RECORD_RETRY;
            self.timers.schedule(target, at);
        }
        if done.carried_out
            && let Some(status) = self.statuses.carried_out(&done.policy, self.clock.now())
        {
            self.write_status(status);
        }
    }
}
