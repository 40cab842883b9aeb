//! The facts from outside a policy that its gates read: the operator-wide switches, the target's
//! opt-out, a correlated cause, and how many of the policy's nodes are down.

use kube_healer_api::{FailureClass, TargetKind};

use crate::finding::{Correlated, Finding};
use crate::policy::CompiledPolicy;
use crate::view::{NodeView, Secs};

/// The classes that make a node count as unhealthy for maxUnhealthy.
pub const DOWN_CLASSES: &[FailureClass] = &[FailureClass::NodeNotReady, FailureClass::NodeUnreachable];

/// Facts from outside the policy, read right before deciding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    pub now: Secs,
    /// The operator-wide pause.
    pub paused: bool,
    /// The operator-wide dry run.
    pub global_dry_run: bool,
    /// The target carries the opt-out annotation.
    pub opted_out: bool,
    /// A correlated finding covers this one (its message).
    pub correlated: Option<String>,
    /// Node policies: (unhealthy nodes, nodes the policy selects).
    pub unhealthy_nodes: Option<(usize, usize)>,
    /// Node policies under a cluster-wide disruption budget: how many nodes kube-healer holds
    /// out of service, and whether the target is one of them.
    pub out_of_service: Option<OutOfService>,
    /// The policy's long actions still in flight that an earlier leader started (see
    /// [`super::inherited_in_flight`]): they count against maxConcurrent.
    pub inherited_in_flight: u32,
}

/// The cluster-wide disruption budget: the nodes kube-healer may keep out of service at once
/// (cordoned, tainted, draining, or running a node job), across all its policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutOfService {
    /// Nodes kept out of service now.
    pub held: usize,
    /// The budget, as a node count.
    pub limit: usize,
    /// The budget as configured (for messages), e.g. "10%".
    pub configured: String,
    /// The target is one of the nodes held (acting on it again takes no more of the budget).
    pub target_held: bool,
}

impl Facts {
    /// The facts about one finding under one policy at `now`. `unhealthy_nodes` is asked only
    /// for a node policy (maxUnhealthy applies to nodes alone).
    pub fn about(
        now: Secs,
        policy: &CompiledPolicy,
        finding: &Finding,
        opted_out: bool,
        correlated: &[Correlated],
        unhealthy_nodes: impl FnOnce() -> (usize, usize),
    ) -> Facts {
        Facts {
            now,
            opted_out,
            correlated: correlated_message(correlated, finding),
            unhealthy_nodes: (policy.kind == TargetKind::Node).then(unhealthy_nodes),
            ..Default::default()
        }
    }

    /// The operator-wide pause and dry run.
    pub fn with_switches(mut self, paused: bool, global_dry_run: bool) -> Facts {
        self.paused = paused;
        self.global_dry_run = global_dry_run;
        self
    }
}

/// The message of the correlated cause that covers a finding, if one does.
pub fn correlated_message(correlated: &[Correlated], finding: &Finding) -> Option<String> {
    correlated
        .iter()
        .find(|c| c.covers(finding))
        .map(|c| c.message.clone())
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
