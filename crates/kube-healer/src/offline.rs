//! The operator's decision, made on a cluster read once (`explain`, `simulate`): the same facts,
//! gates and target safety rules as the operator's gate, from the core.

use kube_healer_core::decide::{Budget, decide as core_decide};
use kube_healer_core::decide::{
    DOWN_CLASSES, Decision, Facts, Ladder, count_unhealthy_nodes, guard, unsafe_for,
};
use kube_healer_core::policy::{CompiledPolicy, Target};
use kube_healer_core::view::Secs;
use kube_healer_core::{Correlated, Finding, Knobs, Snapshot, classify_node};

/// One decision on a given ladder, through the same rules as the operator's gate: the facts, the
/// gates, and the target's own safety.
#[allow(clippy::too_many_arguments)]
pub fn decide(
    compiled: &CompiledPolicy,
    snapshot: &Snapshot,
    correlated: &[Correlated],
    target: Target<'_>,
    finding: &Finding,
    due: Secs,
    ladder: &Ladder,
    budget: &Budget,
    now: Secs,
) -> Decision {
    let opted_out = match target {
        Target::Pod(p) => p.opted_out,
        Target::Node(n) => n.opted_out,
    };
    let facts = Facts::about(now, compiled, finding, opted_out, correlated, || {
        unhealthy_nodes(snapshot, compiled, now)
    });
    let decision = core_decide(&compiled.policy.spec, due, ladder, budget, &facts);
    guard(decision, |action| match target {
        Target::Pod(pod) => unsafe_for(pod, snapshot, &finding.subject, action, now),
        Target::Node(_) => None,
    })
}

/// (NotReady or unreachable nodes, nodes) among those the policy selects, each node classified.
pub fn unhealthy_nodes(snapshot: &Snapshot, policy: &CompiledPolicy, now: Secs) -> (usize, usize) {
    let knobs = Knobs::default();
    count_unhealthy_nodes(&snapshot.nodes, policy, |node| {
        let mut findings = Vec::new();
        classify_node(node, snapshot, &knobs, now, &mut findings);
        findings.iter().any(|f| DOWN_CLASSES.contains(&f.class))
    })
}
