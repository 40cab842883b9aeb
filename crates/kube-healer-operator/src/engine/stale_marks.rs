//! Cordons and taints a policy left on a node (its marks) whose failure is over, found on the node itself.
//! A failure that cleared while the operator was down, or while another replica led, left its
//! cordon behind with no ladder in memory to say so: once every watch has listed, the leader lets
//! go of every mark (the node's cordoned-by and tainted-by annotations) of one of its policies
//! that no longer fails on the node, once the node has been Ready for the clear debounce by its
//! Ready condition's own time; a deleted policy's, or one made under an edited policy's earlier
//! spec, only once the node also shows no failure at all (neither can say what the node was
//! marked for, and a Ready node may still have it: see `retired_failure_shows`). The revert undoes only what no other policy still marks; a person
//! may release the rest (`kube-healer release`).
//! A revert that did not take (the API server refused it, or did not answer for longer than its
//! retries) is sent again when the node is next seen still held, a minute later at the soonest.

use kube_healer_core::view::{Secs, Shared};

use super::Engine;
use crate::protocol::Work;
use crate::target::Target;

/// How long a revert sent is given to show on the node before it is sent again.
const REVERT_AGAIN_AFTER: Secs = 60;

/// How many deleted policies' names are kept, so that their marks are let go as the nodes
/// recover (beyond it, a deleted policy's marks stay for a person to lift).
const RETIRED_KEPT: usize = 1024;

impl Engine {
    /// Whether the node shows it recovered: Ready, its status settled, for the clear debounce,
    /// as its own conditions date it (core's `settled_for`). Err: not yet, with when it will have (None: not Ready). A process
    /// that just started has no memory of when it saw the node healthy, a node seen Ready a
    /// moment ago may be going down again, and a policy edited or deleted says nothing of the
    /// node: a mark comes off only on the node's own evidence (found by the invariants'
    /// histories: a restart lifted the cordon of a node up for 0 s, a policy deleted lifted
    /// the cordon of a node still down).
    ///
    /// Nor may a policy see the node failing that does not hold it yet: a node back Ready with
    /// the KernelDeadlock another policy is about to cordon it for has not recovered (found by
    /// the invariants' histories: a policy's cordon came off, and the other's went on 30 s
    /// later). A policy that holds the node keeps it out itself (the revert undoes only what no
    /// other policy marks), but only with its own effects: the revert's last look on the node
    /// read afresh waits while any policy sees a failure if it would take a cordon or a taint
    /// off (`act::node::revert_waits`). That failure clearing is the node's next change, which
    /// asks again.
    pub(super) fn node_recovered(&self, node: &str, now: Secs) -> Result<(), Option<Secs>> {
        let view = self.stores.node_view(node).ok_or(None)?;
        let target = Target::Node(view.name.clone());
        let unheld = |m: &&crate::policy::Match| {
            m.clear_since.is_none() && !view.held_by.iter().any(|p| **p == *m.policy)
        };
        if let Some(m) = self.policies.matches(&target).iter().find(unheld) {
            tracing::debug!(node, policy = %m.policy, "not recovered: a policy sees the node failing");
            return Err(None);
        }
        kube_healer_core::decide::settled_for(view, self.policies.debounce(), now)
    }

    /// The revert of a policy's marks on a node, with the evidence it is sent on: the debounce,
    /// and since when the node has been Ready as this process saw it (a Ready condition that
    /// carries no transition time is dated by when it was first seen, as in the recheck).
    pub(super) fn revert(&self, policy: String, node: &str) -> Work {
        let ready_since = self
            .stores
            .node_view(node)
            .and_then(|v| v.condition("Ready"))
            .and_then(|c| c.since);
        Work::Revert {
            policy,
            node: node.to_string(),
            debounce: self.policies.debounce(),
            ready_since,
            watch: self.policies.node_policies(),
        }
    }

    /// A policy was deleted: its marks are let go as their nodes recover.
    pub(super) fn retire(&mut self, policy: &str) {
        if self.retired.len() < RETIRED_KEPT {
            self.retired.insert(policy.to_string());
        }
    }

    /// Someone undid kube-healer's marks (lifted its cordon, the node schedulable with the
    /// mark still there; removed its taint, the mark naming a taint no longer there): the person
    /// wins. The marks come off at once (a lifted cordon recorded on the node as lifted), so
    /// that a person's next cordon or taint is never taken for kube-healer's; sent again if it
    /// has not shown within a minute.
    fn acknowledge_lift(&mut self, node: &Shared, stale: bool, now: Secs) {
        if !stale {
            self.lifts_sent.remove(node);
            return;
        }
        if self
            .lifts_sent
            .get(node)
            .is_some_and(|sent| now < sent + REVERT_AGAIN_AFTER)
        {
            return;
        }
        self.lifts_sent.insert(node.clone(), now);
        tracing::info!(node = %node, "someone lifted kube-healer's cordon: recording it on the node");
        self.send(Work::MarksLifted {
            node: node.to_string(),
        });
    }

    pub(super) fn release_stale_marks(&mut self, node: &str, now: Secs) {
        if !self.deciding() || self.action_tx.is_none() {
            return;
        }
        let Some(view) = self.stores.node_view(node) else {
            self.releasing.retain(|(_, n), _| &**n != node);
            self.lifts_sent.remove(node);
            return;
        };
        self.acknowledge_lift(&view.name.clone(), view.stale_cordon || view.stale_taint, now);
        let Some(view) = self.stores.node_view(node) else {
            return;
        };
        // Releases sent that took effect are forgotten, and so are those that did not take
        // within a minute: they are sent again.
        self.releasing.retain(|(p, n), sent| {
            &**n != node || (view.held_by.contains(p) && now < *sent + REVERT_AGAIN_AFTER)
        });
        let target = Target::Node(view.name.clone());
        let failing = self.policies.matches(&target);
        let ours = |p: &str| self.policies.get(p).is_some() || self.retired.contains(p);
        let stale: Vec<Shared> = view
            .held_by
            .iter()
            .filter(|p| ours(p) && !failing.iter().any(|m| m.policy == ***p))
            .cloned()
            .collect();
        if stale.is_empty() {
            return;
        }
        if let Err(again) = self.node_recovered(node, now) {
            if let Some(at) = again {
                self.timers.schedule(target, at);
            }
            return;
        }
        for policy in stale {
            // Its next evaluation, once the node shows no failure, tries again.
            if self.retired_failure_shows(&policy, &target) {
                continue;
            }
            let key = (policy.clone(), view.name.clone());
            if let std::collections::hash_map::Entry::Vacant(sent) = self.releasing.entry(key) {
                sent.insert(now);
                tracing::info!(%policy, node, "the policy marked the node, but its failure is over: letting go");
                self.send(self.revert(policy.to_string(), node));
            }
        }
    }
}
