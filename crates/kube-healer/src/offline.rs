//! The operator's decision, made on a cluster read once (`explain`, `simulate`): the same facts,
//! gates and target safety rules as the operator's gate, from the core.

use std::collections::HashMap;

use kube_healer_core::decide::{Budget, decide as core_decide};
use kube_healer_core::decide::{
    DOWN_CLASSES, Decision, Facts, Ladder, PlannedSignals, Removal, WorkloadPods, Zone,
    count_unhealthy_nodes, guard, overridden, under_maintenance, unsafe_for_target, window_verdict,
    workload_of,
};
use kube_healer_core::policy::{CompiledPolicy, TargetView};
use kube_healer_core::view::{NodeView, PodView, Secs};
use kube_healer_core::{Correlated, Finding, Knobs, Snapshot, classify_node};

/// A policy deciding on a cluster read once, at `now`.
pub struct Decider<'a> {
    pub policy: &'a CompiledPolicy,
    pub snapshot: &'a Snapshot,
    pub correlated: &'a [Correlated],
    /// The snapshot's pods by workload ([`workloads`]).
    pub workloads: &'a Workloads<'a>,
    pub now: Secs,
}

/// Pods by workload: a pod's siblings, for maxDisruptedPerWorkload.
pub type Workloads<'a> = HashMap<String, Vec<&'a PodView>>;

/// The snapshot's pods by workload, indexed once for every decision on it (not a scan of every
/// pod per decision: a plan on a large cluster decides thousands).
pub fn workloads(snapshot: &Snapshot) -> Workloads<'_> {
    let mut out: Workloads<'_> = HashMap::new();
    for pod in &snapshot.pods {
        if let Some(w) = workload_of(pod) {
            out.entry(w).or_default().push(pod);
        }
    }
    out
}

impl Decider<'_> {
    /// The decision on one of the policy's conditions (`condition`, by index) holding on a
    /// target, given where its ladder stands, the policy's budget, and kube-healer's removals
    /// by workload (for maxDisruptedPerWorkload).
    pub fn decide(
        &self,
        target: TargetView<'_>,
        finding: &Finding,
        condition: usize,
        (ladder, budget): (&Ladder, &Budget),
        removals: &dyn Fn(&str) -> Vec<Removal>,
    ) -> Decision {
        let (policy, snapshot, now) = (self.policy, self.snapshot, self.now);
        let opted_out = match target {
            TargetView::Pod(p) => p.opted_out,
            TargetView::Node(n) => n.opted_out,
        };
        // The operator's thresholds are its flags, not known here: their defaults.
        let causes = (self.correlated, &kube_healer_core::PodsAlike::default());
        let mut facts = Facts::about(now, policy, finding, opted_out, causes, || {
            unhealthy_nodes(snapshot, policy, now)
        });
        // Someone else's work on the node, by the built-in signals (the operator's configured
        // ones are its flags, not known here), in the failure's episode as the ladder holds it
        // (explain reads it back from the records, as the operator does).
        let (spec, name) = (&policy.policy.spec, policy.policy.metadata.name.as_deref());
        let signals = PlannedSignals::default();
        let when = (ladder.episode, now);
        facts.maintenance = under_maintenance(spec, finding, target, snapshot, &signals, when);
        facts.overridden = overridden(spec, name.unwrap_or_default(), target, when);
        if let TargetView::Pod(pod) = target {
            let siblings = |w: &str| self.workloads.get(w).cloned().unwrap_or_default();
            facts.workload = WorkloadPods::of(pod, finding.class, siblings, removals);
        }
        // Windows in UTC (the operator's --time-zone is not known here).
        facts.window = window_verdict(&spec.safety.windows, now, &Zone::default().0);
        let due = finding.due_at(policy.conditions[condition].for_secs);
        let decision = core_decide(&policy.policy.spec, due, ladder, budget, &facts);
        guard(decision, |step, action| {
            let spec = &policy.policy.spec;
            let about = (&finding.subject, finding.class);
            unsafe_for_target(spec, (step, action), target, snapshot, about, now)
        })
    }
}

/// (unhealthy nodes, nodes) among those the policy selects, each node classified: down, failing
/// one of the policy's conditions, or kept out of service by it (the core's rule).
pub fn unhealthy_nodes(snapshot: &Snapshot, policy: &CompiledPolicy, now: Secs) -> (usize, usize) {
    let knobs = Knobs::default();
    let findings = |node: &NodeView| {
        let mut findings = Vec::new();
        classify_node(node, snapshot, &knobs, now, &mut findings);
        findings
    };
    count_unhealthy_nodes(
        &snapshot.nodes,
        policy,
        |node| findings(node).iter().any(|f| DOWN_CLASSES.contains(&f.class)),
        |node| {
            let found = findings(node);
            !policy
                .findings_for(TargetView::Node(node), &found, snapshot, now)
                .is_empty()
        },
    )
}
