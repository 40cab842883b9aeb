//! Someone else's work on a node: planned disruption (a person's cordon, a drain, kured,
//! Karpenter, cluster-autoscaler, a NodeMaintenance), and a kube-healer cordon a person lifted.
//! A node taken down on purpose looks like a failing one (its kubelet goes silent, its pods go
//! Terminating, it is cordoned); acting on it fights the administrator and spends the cluster's
//! disruption twice. And a person who undoes kube-healer's work wins.

use kube_healer_api::{FailureClass, HealingPolicySpec};

use crate::cluster::{ClusterView, NodeLookup};
use crate::finding::Finding;
use crate::policy::TargetView;
use crate::view::{NodeView, Secs};

/// Taints that tools put on a node they take down on purpose, each with its source.
pub const PLANNED_TAINTS: &[(&str, &str)] = &[
    // Karpenter v1 (pkg/apis/v1/taints.go, DisruptedNoScheduleTaint): disruption or deletion
    // of the node's NodeClaim under way.
    ("karpenter.sh/disrupted", "Karpenter is disrupting the node"),
    // Karpenter v1beta1 (karpenter.sh/disruption=disrupting:NoSchedule).
    ("karpenter.sh/disruption", "Karpenter is disrupting the node"),
    // cluster-autoscaler (utils/taints, ToBeDeletedTaint): scale-down removes the node.
    (
        "ToBeDeletedByClusterAutoscaler",
        "cluster-autoscaler is removing the node",
    ),
    // medik8s node-maintenance-operator (internal/controller/taint.go): a NodeMaintenance
    // drains the node.
    ("medik8s.io/drain", "a medik8s NodeMaintenance drains the node"),
];

/// Annotations that tools put on a node they take down on purpose, each with its source.
pub const PLANNED_ANNOTATIONS: &[(&str, &str)] = &[
    // kured with --annotate-nodes (cmd/kured/main.go): set before the drain, removed after the
    // reboot. kured also cordons the node it reboots, which is a signal of its own.
    (
        "weave.works/kured-reboot-in-progress",
        "kured is rebooting the node",
    ),
];

/// Labels that say a node is not to be remediated, each with its source.
pub const PLANNED_LABELS: &[(&str, &str)] = &[
    // medik8s (common/pkg/labels): set by the node-maintenance-operator before it drains, and
    // honoured by medik8s remediators.
    (
        "remediation.medik8s.io/exclude-from-remediation=true",
        "the node is excluded from remediation (medik8s, as a NodeMaintenance sets it)",
    ),
];

/// In-house maintenance tooling's signals, configured: a taint key, an annotation key, a label
/// key or `key=value`. Their presence on a node says it is taken down on purpose.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlannedSignals {
    pub taints: Vec<String>,
    pub annotations: Vec<String>,
    pub labels: Vec<String>,
}

/// Why a decision is held for someone else's work, and when it may pass (None: only a change
/// of the node can let it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldFor {
    pub message: String,
    pub retry_at: Option<Secs>,
}

/// The signal that the node is under someone else's planned disruption, said, if it is. A
/// cordon counts when it is not kube-healer's (nor that of a remediator kube-healer handed the
/// node to).
pub fn planned_disruption(node: &NodeView, signals: &PlannedSignals) -> Option<String> {
    if node.handed_over {
        // Replace deleted its NodeClaim (Karpenter then taints it), a remediator drains it:
        // kube-healer's own doing.
        return None;
    }
    if let Some(says) = &node.maintained {
        return Some(says.to_string());
    }
    let taint = |key: &str| node.has_taint(key);
    if let Some((key, who)) = PLANNED_TAINTS.iter().find(|(k, _)| taint(k)) {
        return Some(format!("{who} (taint {key})"));
    }
    if let Some((key, who)) = PLANNED_ANNOTATIONS.iter().find(|(k, _)| node.has_annotation(k)) {
        return Some(format!("{who} (annotation {key})"));
    }
    if let Some((label, who)) = PLANNED_LABELS.iter().find(|(l, _)| has_label(node, l)) {
        return Some(format!("{who} (label {label})"));
    }
    if let Some(key) = signals.taints.iter().find(|k| taint(k)) {
        return Some(format!("maintenance taint {key}, as configured"));
    }
    if let Some(key) = signals.annotations.iter().find(|k| node.has_annotation(k)) {
        return Some(format!("maintenance annotation {key}, as configured"));
    }
    if let Some(label) = signals.labels.iter().find(|l| has_label(node, l)) {
        return Some(format!("maintenance label {label}, as configured"));
    }
    node.cordoned_by_other
        .then(|| "cordoned by someone else (unschedulable without kube-healer's mark)".to_string())
}

/// A label given as `key` (any value) or `key=value`.
fn has_label(node: &NodeView, label: &str) -> bool {
    match label.split_once('=') {
        Some((key, value)) => node.label(key) == Some(value),
        None => node.label(label).is_some(),
    }
}

/// Why a decision on this finding waits for someone else's maintenance, if it does. A node
/// under planned disruption gets no node action while it lasts. A pod whose failure stems from
/// its node (lost with it, stuck terminating on it, left by it) is left to that maintenance for
/// the policy's maintenanceGrace from the failure's start; past it, the maintenance has gone
/// wrong and the pod is healed.
pub fn under_maintenance(
    spec: &HealingPolicySpec,
    finding: &Finding,
    target: TargetView<'_>,
    cluster: &impl ClusterView,
    signals: &PlannedSignals,
    (episode, now): (Secs, Secs),
) -> Option<HeldFor> {
    match target {
        TargetView::Node(node) => planned_disruption(node, signals).map(|signal| HeldFor {
            message: format!(
                "{} is under planned disruption: {signal}; no node action while it lasts",
                finding.subject
            ),
            retry_at: None,
        }),
        TargetView::Pod(pod) => {
            let name = pod.node.as_deref()?;
            let NodeLookup::Present(node) = cluster.node(name) else {
                return None;
            };
            let until = maintenance_ends(spec, episode);
            left_to_maintenance(finding.class, node, signals, (until, now))
        }
    }
}

/// Until when the pods a node took down with it are left to its planned disruption: the
/// policy's maintenanceGrace from the failure's episode as the policy counts it.
pub fn maintenance_ends(spec: &HealingPolicySpec, episode: Secs) -> Secs {
    episode.saturating_add(spec.safety.maintenance_grace_secs())
}

/// Why a pod failing with `class` on `node` is left to the node's planned disruption, if it is:
/// its failure stems from its node, and it is not yet `until` (see [`maintenance_ends`]). The
/// gate asks it of the node it knows; the recheck, of the node read afresh right before the call
/// (a maintenance begun since the decision holds it too).
pub fn left_to_maintenance(
    class: FailureClass,
    node: &NodeView,
    signals: &PlannedSignals,
    (until, now): (Secs, Secs),
) -> Option<HeldFor> {
    if !class.properties().inherits_node_cause {
        return None;
    }
    let signal = planned_disruption(node, signals)?;
    (now < until).then(|| HeldFor {
        message: format!(
            "its node {} is under planned disruption: {signal}; the pods it took down with it are left to it for {}s (maintenanceGrace)",
            node.name,
            until - now
        ),
        retry_at: Some(until),
    })
}

/// Why a node policy may not act on the node again, if someone else lifted its cordon: the
/// person wins. The ladder stops for the failure during which it was lifted, and a later
/// failure is not acted on within the policy's cooldown of the lift. A lift seen on the node
/// but not yet recorded on it (the mark still there) holds every policy until it is.
pub fn overridden(
    spec: &HealingPolicySpec,
    policy: &str,
    target: TargetView<'_>,
    (episode, now): (Secs, Secs),
) -> Option<HeldFor> {
    let TargetView::Node(node) = target else {
        return None;
    };
    if node.stale_cordon {
        return Some(HeldFor {
            message: "someone uncordoned the node kube-healer had cordoned: the person wins".into(),
            retry_at: None,
        });
    }
    let at = node
        .cordon_lifted
        .iter()
        .filter(|(p, _)| &**p == policy)
        .map(|(_, at)| *at)
        .max()?
        // A time to come (an edited annotation) is taken as now: no hold is pinned by it.
        .min(now);
    let until = at.saturating_add(spec.safety.cooldown_secs());
    let message = format!(
        "someone uncordoned the node this policy had cordoned ({}s ago): the person wins",
        now - at
    );
    if episode <= at {
        return Some(HeldFor {
            message: format!("{message}; no action on it for this failure"),
            retry_at: None,
        });
    }
    (now < until).then(|| HeldFor {
        message: format!("{message}; none within the policy's cooldown"),
        retry_at: Some(until),
    })
}
