//! The status book: what each policy's status should say (computed here, from the engine's
//! changes), and what was last sent to the writer. Sending is the leader's duty; the engine
//! checks leadership at that edge.

use std::collections::HashMap;

use kube_healer_core::view::Secs;

use super::PolicyStatus;

/// Actions a policy carried out, and when the last one was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Taken {
    pub count: i64,
    pub last: Option<Secs>,
}

#[derive(Debug, Default)]
pub struct StatusBook {
    /// Per policy: actions carried out and the last one's time, as last written to its status.
    taken: HashMap<String, Taken>,
    latest: HashMap<String, PolicyStatus>,
    sent: HashMap<String, PolicyStatus>,
}

impl StatusBook {
    /// The count read back from a policy's stored status: another replica may have written it
    /// last, so the higher count wins.
    pub fn observed(&mut self, policy: &str, observed: Taken) -> Taken {
        let taken = self.taken.entry(policy.to_string()).or_default();
        if observed.count > taken.count {
            *taken = observed;
        }
        *taken
    }

    pub fn taken(&self, policy: &str) -> Taken {
        self.taken.get(policy).copied().unwrap_or_default()
    }

    /// An action of the policy was carried out at `now`: its status, updated, if one is known.
    pub fn carried_out(&mut self, policy: &str, now: Secs) -> Option<PolicyStatus> {
        let taken = self.taken.entry(policy.to_string()).or_default();
        taken.count += 1;
        taken.last = Some(now);
        let taken = *taken;
        let mut status = self.latest.get(policy).cloned()?;
        (status.actions_taken, status.last_action) = (taken.count, taken.last);
        Some(status)
    }

    /// Keeps `status` as the policy's latest; returns it if it should be sent (it differs from
    /// the last one sent).
    pub fn update(&mut self, status: PolicyStatus) -> Option<PolicyStatus> {
        self.latest.insert(status.name.clone(), status.clone());
        (self.sent.get(&status.name) != Some(&status)).then_some(status)
    }

    /// The status was handed to the writer.
    pub fn sent(&mut self, status: PolicyStatus) {
        self.sent.insert(status.name.clone(), status);
    }

    /// Every latest status (a new leader writes them all).
    pub fn all_latest(&self) -> Vec<PolicyStatus> {
        self.latest.values().cloned().collect()
    }

    /// Policies known, as (active, refused).
    pub fn counts(&self) -> (i64, i64) {
        let refused = self.latest.values().filter(|s| s.validity.is_err()).count() as i64;
        (self.latest.len() as i64 - refused, refused)
    }

    pub fn forget(&mut self, policy: &str) {
        self.latest.remove(policy);
        self.sent.remove(policy);
        self.taken.remove(policy);
    }
}
