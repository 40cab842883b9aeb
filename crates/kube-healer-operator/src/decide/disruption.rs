//! The cluster's disruption budget, as the gate counts it: every node out of service, whoever
//! took it out (see `OutOfService`), from the nodes themselves (so a restart or failover starts
//! from the truth), plus the nodes an out-of-service action was just sent for.

use std::collections::HashSet;

use kube_healer_core::decide::{OutBy, OutCount, OutOfService, budget_count};
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

    /// The nodes out of service, whoever took them out: those one of this operator's policies
    /// holds (by their kube-healer annotations, and those an out-of-service action was just
    /// sent for), those under someone else's planned disruption, and those not Ready. Counted
    /// from the nodes themselves, so a restart or failover starts from the truth.
    pub(super) fn out_of_service(&self, node: &str, budget: &str, ctx: &Context<'_>) -> OutOfService {
        let sent: HashSet<&str> = self
            .sent_out_of_service
            .iter()
            .filter(|(_, at)| **at + SENT_COUNTS_FOR > ctx.now)
            .map(|(n, _)| &**n)
            .collect();
        let mut out = OutCount::default();
        let mut target = None;
        for n in ctx.stores.nodes() {
            let held = held_by_managed(n, ctx.managed) || sent.contains(&*n.name);
            if let Some(by) = OutBy::of(n, held, &self.planned) {
                out.add(by);
                if *n.name == *node {
                    target = Some(by);
                }
            }
        }
        let total = kube_healer_core::ClusterView::node_count(ctx.stores);
        OutOfService {
            out,
            limit: budget_count(budget, total).unwrap_or(1),
            configured: budget.to_string(),
            target,
        }
    }
}
