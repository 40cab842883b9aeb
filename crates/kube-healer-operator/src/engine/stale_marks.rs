//! Cordons and taints a policy left on a node (its marks) whose failure is over, found on the node itself.
//! A failure that cleared while the operator was down, or while another replica led, left its
//! cordon behind with no ladder in memory to say so: once every watch has listed, the leader lets
//! go of every mark (the node's cordoned-by and tainted-by annotations) of one of its policies
//! that no longer fails on the node. The revert undoes only what no other policy still marks.
//! A revert that did not take (the API server refused it, or did not answer for longer than its
//! retries) is sent again when the node is next seen still held, a minute later at the soonest.

use kube_healer_core::view::{Secs, Shared};

use super::Engine;
use crate::protocol::Work;
use crate::target::Target;

/// How long a revert sent is given to show on the node before it is sent again.
const REVERT_AGAIN_AFTER: Secs = 60;

impl Engine {
    pub(super) fn release_stale_marks(&mut self, node: &str, now: Secs) {
        if !self.deciding() || self.action_tx.is_none() {
            return;
        }
        let Some(view) = self.stores.node_view(node) else {
            self.releasing.retain(|(_, n), _| &**n != node);
            return;
        };
        // Releases sent that took effect are forgotten, and so are those that did not take
        // within a minute: they are sent again.
        self.releasing.retain(|(p, n), sent| {
            &**n != node || (view.held_by.contains(p) && now < *sent + REVERT_AGAIN_AFTER)
        });
        let target = Target::Node(view.name.clone());
        let failing = self.policies.matches(&target);
        let stale: Vec<Shared> = view
            .held_by
            .iter()
            .filter(|p| self.policies.get(p).is_some() && !failing.iter().any(|m| m.policy == ***p))
            .cloned()
            .collect();
        for policy in stale {
            let key = (policy.clone(), view.name.clone());
            if let std::collections::hash_map::Entry::Vacant(sent) = self.releasing.entry(key) {
                sent.insert(now);
                tracing::info!(%policy, node, "the policy marked the node, but its failure is over: letting go");
                self.send(Work::Revert {
                    policy: policy.to_string(),
                    node: node.to_string(),
                });
            }
        }
    }
}
