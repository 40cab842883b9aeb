//! The executor's answers: a finished action frees its place under maxConcurrent (the next
//! waiting target takes it), counts in the policy's status if it changed the cluster, a removal
//! certainly not made counts no more against its workload, and a decision that could not be
//! recorded is taken back and made again later.

use super::Engine;
use crate::decide::RECORD_RETRY;
use crate::protocol::ActionDone;

impl Engine {
    /// A record's in-flight mark came off, or the record went: a place may be free under the
    /// policies its label names.
    pub(super) fn places_freed(&mut self, label: &str) {
        for policy in self.policies.named_by_label(label) {
            self.place_freed(&policy);
        }
    }

    /// A place under the policy's maxConcurrent may be free (one of its actions ended, here or
    /// under an earlier leader): decide again on the targets queued behind it, until one of them
    /// takes it. Each waiting target is tried once: one held again goes back in the queue.
    pub(super) fn place_freed(&mut self, policy: &str) {
        let now = self.clock.now();
        let before = self.gate.in_flight(policy);
        for _ in 0..self.gate.waiting(policy) {
            let Some(target) = self.gate.next_waiting(policy) else {
                break;
            };
            self.evaluate(&target, now);
            if self.gate.in_flight(policy) > before {
                break;
            }
        }
    }

    pub fn action_done(&mut self, done: ActionDone) {
        if done.was_in_flight {
            let now = self.clock.now();
            self.gate.finished(&done.policy, &done.name, now);
            self.place_freed(&done.policy);
        }
        if done.untouched {
            self.removal_not_made(&done.name);
        }
        if let Some(req) = done.unrecorded {
            let target = self.gate.take_back(&done.policy, &req);
            self.count_held();
            let at = self.clock.now() + RECORD_RETRY;
            self.timers.schedule(target, at);
        }
        if done.carried_out
            && let Some(status) = self.statuses.carried_out(&done.policy, self.clock.now())
        {
            self.write_status(status);
        }
    }

    /// A removal recorded under `record` was certainly not made (never sent, or refused): it
    /// counts no more against its workload's limit, and the targets that limit holds in its
    /// workload are decided again now.
    pub(super) fn removal_not_made(&mut self, record: &str) {
        if let Some(workload) = self.gate.removal_not_made(record) {
            let now = self.clock.now();
            self.wake_held_in(&std::collections::HashSet::from([workload]), now);
        }
    }
}
