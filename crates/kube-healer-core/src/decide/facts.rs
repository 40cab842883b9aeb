//! The facts from outside a policy that its gates read: the operator-wide switches, the target's
//! opt-out, a correlated cause, and how many of the policy's nodes are down.

use kube_healer_api::{FailureClass, TargetKind};

use super::planned::{HeldFor, PlannedSignals, planned_disruption};
use super::window::WindowVerdict;
use crate::finding::{Correlated, Finding};
use crate::policy::CompiledPolicy;
use crate::thresholds::PodsAlike;
use crate::view::{NodeView, Secs, Status};

/// The classes that make a node count as unhealthy for maxUnhealthy.
pub const DOWN_CLASSES: &[FailureClass] = &[FailureClass::NodeNotReady, FailureClass::NodeUnreachable];

/// Facts from outside the policy, read right before deciding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    pub now: Secs,
    /// The operator-wide pause, and by what (the flag, or the annotation and its reason).
    pub paused: Option<String>,
    /// The operator-wide dry run.
    pub global_dry_run: bool,
    /// The target carries the opt-out annotation.
    pub opted_out: bool,
    /// A correlated finding covers this one (its message).
    pub correlated: Option<String>,
    /// The target's node is under someone else's planned disruption (see
    /// [`super::under_maintenance`]).
    pub maintenance: Option<HeldFor>,
    /// Someone else undid the policy's work on the target (see [`super::overridden`]).
    pub overridden: Option<HeldFor>,
    /// Where now falls among the policy's windows.
    pub window: WindowVerdict,
    /// Node policies: (unhealthy nodes, nodes the policy selects).
    pub unhealthy_nodes: Option<(usize, usize)>,
    /// Node policies under a cluster-wide disruption budget: how many nodes kube-healer holds
    /// out of service, and whether the target is one of them.
    pub out_of_service: Option<OutOfService>,
    /// The policy's long actions still in flight that an earlier leader started (see
    /// [`super::inherited_in_flight`]): they count against maxConcurrent.
    pub inherited_in_flight: u32,
    /// Pod policies: the target's workload, for maxDisruptedPerWorkload (None: a pod no
    /// controller replaces, one being deleted already, or one stopped for good).
    pub workload: Option<super::WorkloadPods>,
}

/// The cluster-wide disruption budget, a floor on the cluster's availability: how many nodes
/// may be out of service at once, whoever took them out (kube-healer, a person, planned
/// maintenance, or a node not Ready). An action on a node already out adds nothing to the
/// count; one on a Ready, schedulable node adds one. And kube-healer itself never holds more
/// nodes than the budget, out already or not: six nodes failing one after another are not all
/// drained or replaced at once because each was NotReady first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutOfService {
    /// Nodes out of service now, by why.
    pub out: OutCount,
    /// The budget, as a node count.
    pub limit: usize,
    /// The budget as configured (for messages), e.g. "10%".
    pub configured: String,
    /// Why the target is out of service already, if it is: acting on it takes no more of the
    /// count, and none of kube-healer's share if kube-healer holds it.
    pub target: Option<OutBy>,
}

impl OutOfService {
    /// Why the budget refuses an action that takes the target out of service, if it does: one on
    /// a node still in service while as many nodes as the budget are out, whoever took them out;
    /// or one that would add to kube-healer's share once that share is the budget.
    pub fn refusal(&self) -> Option<String> {
        if self.target.is_none() && self.out.total() >= self.limit {
            return Some(format!(
                "{} nodes are out of service, the cluster's disruption budget ({}: {} nodes) counts them all: node actions on nodes still in service wait",
                self.out, self.configured, self.limit
            ));
        }
        if self.target != Some(OutBy::KubeHealer) && self.out.kube_healer >= self.limit {
            return Some(format!(
                "kube-healer keeps {} nodes out of service, the cluster's disruption budget ({}: {} nodes): node actions wait",
                self.out.kube_healer, self.configured, self.limit
            ));
        }
        None
    }
}

/// The disruption budget counted again on the nodes read afresh right before an action that
/// takes a node out (the gate counted its store, which a watch lagging silently may leave
/// behind: a zone gone down unseen). Any kube-healer mark counts as kube-healer's: what is read
/// afresh cannot tell this operator's policies from another's, and that is the cautious side.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    out: OutCount,
    target: Option<OutBy>,
    nodes: usize,
}

impl Tally {
    pub fn add(&mut self, node: &NodeView, target: &str, signals: &PlannedSignals) {
        self.nodes += 1;
        let Some(by) = OutBy::of(node, !node.held_by.is_empty(), signals) else {
            return;
        };
        self.out.add(by);
        if &*node.name == target {
            self.target = Some(by);
        }
    }

    /// Whether the count can refuse an action on `target`, read afresh: not once kube-healer
    /// keeps it out of service already (the action takes no more of the count, nor of
    /// kube-healer's share: see [`OutOfService::refusal`]). The recheck then lists no nodes.
    pub fn may_refuse(target: &NodeView, signals: &PlannedSignals) -> bool {
        OutBy::of(target, !target.held_by.is_empty(), signals) != Some(OutBy::KubeHealer)
    }

    /// The budget (`configured`, as the operator was given it) on the nodes counted: why it
    /// refuses the action, if it does.
    pub fn refusal(self, configured: &str) -> Option<String> {
        let budget = OutOfService {
            out: self.out,
            limit: super::budget_count(configured, self.nodes).unwrap_or(1),
            configured: configured.to_string(),
            target: self.target,
        };
        budget.refusal()
    }
}

/// Why a node is out of service, for the budget; the first that applies names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutBy {
    /// One of kube-healer's policies holds it (cordoned, tainted, handed to a remediator,
    /// replaced), or an out-of-service action was just sent for it.
    KubeHealer,
    /// Someone else's planned disruption: a cordon, a maintenance taint.
    Maintenance,
    /// Not Ready (its kubelet is silent or says so): it serves nothing.
    NotReady,
}

impl OutBy {
    pub const ALL: [OutBy; 3] = [OutBy::KubeHealer, OutBy::Maintenance, OutBy::NotReady];

    pub const fn as_str(self) -> &'static str {
        match self {
            OutBy::KubeHealer => "kube-healer",
            OutBy::Maintenance => "maintenance",
            OutBy::NotReady => "not-ready",
        }
    }

    /// Why the node is out of service, if it is. `held`: one of this operator's policies holds
    /// it (the caller knows which policies are its own, and what it just sent).
    pub fn of(node: &NodeView, held: bool, signals: &PlannedSignals) -> Option<OutBy> {
        if held {
            Some(OutBy::KubeHealer)
        } else if node.unschedulable || planned_disruption(node, signals).is_some() {
            Some(OutBy::Maintenance)
        } else if node.ready() != Status::True {
            Some(OutBy::NotReady)
        } else {
            None
        }
    }
}

/// Nodes out of service, by why.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutCount {
    pub kube_healer: usize,
    pub maintenance: usize,
    pub not_ready: usize,
}

impl OutCount {
    pub fn add(&mut self, by: OutBy) {
        *self.get_mut(by) += 1;
    }

    fn get_mut(&mut self, by: OutBy) -> &mut usize {
        match by {
            OutBy::KubeHealer => &mut self.kube_healer,
            OutBy::Maintenance => &mut self.maintenance,
            OutBy::NotReady => &mut self.not_ready,
        }
    }

    pub fn get(&self, by: OutBy) -> usize {
        match by {
            OutBy::KubeHealer => self.kube_healer,
            OutBy::Maintenance => self.maintenance,
            OutBy::NotReady => self.not_ready,
        }
    }

    pub fn total(&self) -> usize {
        self.kube_healer + self.maintenance + self.not_ready
    }
}

impl std::fmt::Display for OutCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = OutBy::ALL
            .iter()
            .filter(|by| self.get(**by) > 0)
            .map(|by| format!("{} {}", self.get(*by), by.as_str()))
            .collect();
        write!(f, "{} ({})", self.total(), parts.join(", "))
    }
}

impl Facts {
    /// The facts about one finding under one policy at `now`. `unhealthy_nodes` is asked only
    /// for a node policy (maxUnhealthy applies to nodes alone).
    /// `causes` are the correlated causes, and the operator's pods-alike thresholds (the
    /// policy's own, if it has any, replace them).
    pub fn about(
        now: Secs,
        policy: &CompiledPolicy,
        finding: &Finding,
        opted_out: bool,
        causes: (&[Correlated], &PodsAlike),
        unhealthy_nodes: impl FnOnce() -> (usize, usize),
    ) -> Facts {
        let (correlated, pods_alike) = causes;
        Facts {
            now,
            opted_out,
            correlated: cause_of(correlated, finding, policy, pods_alike).map(|c| c.message.clone()),
            unhealthy_nodes: (policy.kind == TargetKind::Node).then(unhealthy_nodes),
            ..Default::default()
        }
    }

    /// The operator-wide pause and dry run.
    pub fn with_switches(mut self, paused: Option<String>, global_dry_run: bool) -> Facts {
        self.paused = paused;
        self.global_dry_run = global_dry_run;
        self
    }
}

/// The correlated cause that holds a finding under a policy, if one does: it covers the finding
/// and holds for the policy's pods-alike thresholds (its own, else `pods_alike`, the
/// operator's).
pub fn cause_of<'a>(
    correlated: &'a [Correlated],
    finding: &Finding,
    policy: &CompiledPolicy,
    pods_alike: &PodsAlike,
) -> Option<&'a Correlated> {
    let thresholds = pods_alike.for_policy(&policy.policy.spec.safety);
    correlated
        .iter()
        .find(|c| c.covers(finding) && c.holds_for(&thresholds))
}

/// (unhealthy nodes, nodes) among those the policy selects, for its maxUnhealthy. A node counts
/// as unhealthy for the policy when it is down (a finding of [`DOWN_CLASSES`]), when one of the
/// policy's own conditions holds on it (due or not yet: a failure spreading at staggered moments
/// is counted as it spreads), or when the policy already keeps it out of service (its name in
/// the node's cordoned-by or tainted-by annotation: a cordon stays spent until it is lifted).
/// `down` and `failing` are asked of each selected node (the operator asks its tracked findings
/// and policy matches, the CLI classifies).
pub fn count_unhealthy_nodes<'a>(
    nodes: impl IntoIterator<Item = &'a NodeView>,
    policy: &CompiledPolicy,
    down: impl Fn(&NodeView) -> bool,
    failing: impl Fn(&NodeView) -> bool,
) -> (usize, usize) {
    let name = policy.policy.metadata.name.as_deref().unwrap_or_default();
    let mut selected = 0;
    let mut unhealthy = 0;
    for node in nodes.into_iter().filter(|n| policy.selects_node(n)) {
        selected += 1;
        let held = node.held_by.iter().any(|p| &**p == name);
        unhealthy += usize::from(held || down(node) || failing(node));
    }
    (unhealthy, selected)
}
