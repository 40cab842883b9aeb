//! The cluster's disruption budget, as the gate counts it: the nodes this operator's policies
//! keep out of service, from the nodes' own kube-healer annotations (so a restart or failover
//! starts from the truth), plus the nodes an out-of-service action was just sent for.

use std::collections::HashSet;

use kube_healer_core::decide::{OutOfService, budget_count};
use kube_healer_core::view::{NodeView, Secs};

use super::{Context, Gate};

/// Whether one of this operator's policies keeps the node out of service.
pub fn held_by_managed(node: &NodeView, managed: &dyn Fn(&str) -> bool) -> bool {
    node.held_by.iter().any(|p| managed(p))
}

/// How long a node an out-of-service action was sent for counts as held before the watch shows
/// it (the action's call has been made or failed by then).
pub(super) const SENT_COUNTS_FOR: Secs = 120;

impl Gate {
    /// The watch shows a node: once it shows the node kept out of service by one of this
    /// operator's policies, its annotations tell, and the node no longer counts as just sent.
    pub fn node_seen(&mut self, node: &str, held: bool) {
        if held {
            self.sent_out_of_service.remove(node);
        }
    }

    /// The nodes this operator's policies keep out of service: those whose kube-healer
    /// annotations name one of its policies, and those an out-of-service action was just sent
    /// for. Counted from the nodes themselves, so a restart or failover starts from the truth.
    pub(super) fn out_of_service(&self, node: &str, budget: &str, ctx: &Context<'_>) -> OutOfService {
        let mut held: HashSet<&str> = ctx
            .stores
            .nodes()
            .filter(|n| held_by_managed(n, ctx.managed))
            .map(|n| &*n.name)
            .collect();
        held.extend(
            self.sent_out_of_service
                .iter()
                .filter(|(_, at)| **at + SENT_COUNTS_FOR > ctx.now)
                .map(|(n, _)| &**n),
        );
        let total = kube_healer_core::ClusterView::node_count(ctx.stores);
        OutOfService {
            held: held.len(),
            limit: budget_count(budget, total).unwrap_or(1),
            configured: budget.to_string(),
            target_held: held.contains(node),
        }
    }
}
