//! Cordons and taints a policy holds on a node whose failure is over, found on the node itself.
//! A failure that cleared while the operator was down, or while another replica led, left its
//! cordon behind with no ladder in memory to say so: once every watch has listed, the leader lets
//! go of every hold (the node's cordoned-by and tainted-by annotations) of one of its policies
//! that no longer fails on the node. The revert undoes only what no other policy still holds.

use kube_healer_core::view::Shared;

use super::Engine;
use crate::protocol::Work;
use crate::target::Target;

impl Engine {
    pub(super) fn release_stale_holds(&mut self, node: &str) {
        if !self.deciding() || self.action_tx.is_none() {
            return;
        }
        let Some(view) = self.stores.node_view(node) else {
            self.releasing.retain(|(_, n)| &**n != node);
            return;
        };
        // Releases sent that took effect are forgotten.
        self.releasing
            .retain(|(p, n)| &**n != node || view.held_by.contains(p));
        let target = Target::Node(view.name.clone());
        let failing = self.policies.matches(&target);
        let stale: Vec<Shared> = view
            .held_by
            .iter()
            .filter(|p| self.policies.get(p).is_some() && !failing.iter().any(|m| m.policy == ***p))
            .cloned()
            .collect();
        for policy in stale {
            if self.releasing.insert((policy.clone(), view.name.clone())) {
                tracing::info!(%policy, node, "the policy holds the node, but its failure is over: letting go");
                self.send(Work::Revert {
                    policy: policy.to_string(),
                    node: node.to_string(),
                });
            }
        }
    }
}
