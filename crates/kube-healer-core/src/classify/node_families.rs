//! Many nodes failing the same way at the same time: one cause, not many node faults. A slow
//! etcd delays every kubelet's status, a partition cuts a zone off, a bad node-problem-detector
//! rollout raises one condition everywhere, a runtime upgrade makes nodes flap: healing each node
//! on its own would cordon or drain a large share of the cluster, making the outage worse. So the
//! node findings are grouped by family (how they fail) and by failure domain (zone, and node pool
//! when a label for pools is configured), and a group with at least
//! `correlated_nodes_min` nodes and `correlated_nodes_percent` of the nodes it is drawn from is
//! one correlated cause: its members' actions are held while it lasts (and a cool-off after).
//!
//! Zones first: a group that is explained by its zone (say 3 of a zone's 3 nodes down) is that
//! zone's cause, and a single node failing in another zone is still healed. Then pools, for what
//! no zone explained (a bad image rolled out to one pool fails it across zones). What no domain
//! explains is counted against the whole cluster.

use std::collections::{BTreeMap, HashMap};

use kube_healer_api::{FailureClass, Family, TargetKind};

use crate::finding::{Correlated, CorrelatedCause, Finding};
use crate::thresholds::Knobs;
use crate::view::NodeView;

/// The node label that names a node's zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// The classes of node findings some family groups (as each class declares its family).
pub fn node_family_classes() -> impl Iterator<Item = FailureClass> {
    FailureClass::ALL
        .iter()
        .copied()
        .filter(|c| c.properties().family.is_some_and(Family::of_nodes))
}

/// How a node fails, for correlation: findings of one family on many nodes at once are one cause.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeFamily {
    /// NotReady, unreachable or PLEG unhealthy.
    Down,
    /// Heartbeats (Leases) late.
    Heartbeat,
    /// Ready flapping.
    Flapping,
    /// One condition type in its problem state (node-problem-detector's, NetworkUnavailable).
    Condition(String),
    /// Memory, disk or PID pressure.
    Pressure,
    /// Ready, but the pods sent there never start.
    BlackHole,
    /// System OOM kills.
    SystemOOM,
}

impl NodeFamily {
    /// The family of a node finding (None: not a node finding, or one no family groups).
    pub fn of(finding: &Finding) -> Option<NodeFamily> {
        if finding.subject.kind != TargetKind::Node {
            return None;
        }
        Some(match finding.class.properties().family? {
            Family::NodesDown => NodeFamily::Down,
            Family::NodeHeartbeats => NodeFamily::Heartbeat,
            Family::NodesFlapping => NodeFamily::Flapping,
            Family::NodeCondition => NodeFamily::Condition(
                finding
                    .evidence
                    .conditions
                    .first()
                    .map_or_else(String::new, |c| c.type_.clone()),
            ),
            Family::NodePressure => NodeFamily::Pressure,
            Family::NodeBlackHoles => NodeFamily::BlackHole,
            Family::NodeSystemOOM => NodeFamily::SystemOOM,
            // Pods: another correlation groups them.
            Family::PodsAlike => return None,
        })
    }

    /// The family each class of it declares.
    fn declared(&self) -> Family {
        match self {
            NodeFamily::Down => Family::NodesDown,
            NodeFamily::Heartbeat => Family::NodeHeartbeats,
            NodeFamily::Flapping => Family::NodesFlapping,
            NodeFamily::Condition(_) => Family::NodeCondition,
            NodeFamily::Pressure => Family::NodePressure,
            NodeFamily::BlackHole => Family::NodeBlackHoles,
            NodeFamily::SystemOOM => Family::NodeSystemOOM,
        }
    }

    /// The classes a cause of this family holds on its member nodes. Nodes down also hold the
    /// findings of the pods bound to them: a pod lost with its node, stuck Terminating on it, or
    /// left by it is the same partition, not a pod fault.
    pub fn classes(&self) -> Vec<FailureClass> {
        let family = self.declared();
        let down = family == Family::NodesDown;
        FailureClass::ALL
            .iter()
            .copied()
            .filter(|c| {
                let p = c.properties();
                p.family == Some(family) || (down && p.inherits_node_cause)
            })
            .collect()
    }

    /// What the members have in common, and what it likely means.
    fn said(&self) -> String {
        match self {
            NodeFamily::Down => {
                "NotReady or unreachable together: likely a partition or a control-plane fault".into()
            }
            NodeFamily::Heartbeat => {
                "late with their heartbeats together: likely a slow control plane or etcd".into()
            }
            NodeFamily::Flapping => "flapping together: likely a shared dependency, not the nodes".into(),
            NodeFamily::Condition(t) => {
                format!("reporting {t} together: likely the detector or a shared dependency")
            }
            NodeFamily::Pressure => "under pressure together: likely a workload or a rollout".into(),
            NodeFamily::BlackHole => {
                "not starting their pods together: likely the runtime, images or admission".into()
            }
            NodeFamily::SystemOOM => "killing processes for memory together: likely a workload".into(),
        }
    }
}

/// A failure domain: the nodes that share a value of one topology label (a zone, a node pool).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Domain {
    /// The label (`topology.kubernetes.io/zone`, or the node-pool label configured).
    pub label: String,
    pub value: String,
}

impl Domain {
    /// The zone `value`.
    pub fn zone(value: &str) -> Domain {
        Domain {
            label: ZONE_LABEL.into(),
            value: value.into(),
        }
    }
}

impl std::fmt::Display for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.label == ZONE_LABEL {
            write!(f, "zone {}", self.value)
        } else {
            write!(f, "pool {} ({})", self.value, self.label)
        }
    }
}

/// One topology label's domains: each node's value, and how many nodes each value has.
#[derive(Clone, Debug, Default)]
struct Domains {
    label: String,
    of: HashMap<String, String>,
    count: HashMap<String, usize>,
}

/// How many nodes there are, in the cluster and in each failure domain (zone first, then the
/// node pool if a label names it), and each node's domains.
#[derive(Clone, Debug, Default)]
pub struct Topology {
    pub nodes: usize,
    domains: Vec<Domains>,
}

impl Topology {
    /// The topology of these nodes by zone (`topology.kubernetes.io/zone`).
    pub fn of<'a>(nodes: impl IntoIterator<Item = &'a NodeView>) -> Topology {
        Topology::by(nodes, None)
    }

    /// The topology of these nodes by zone, then by the node-pool label if one is given
    /// (`karpenter.sh/nodepool`, `cloud.google.com/gke-nodepool`, ...): a bad image rolled out to
    /// one pool fails its nodes across zones.
    pub fn by<'a>(nodes: impl IntoIterator<Item = &'a NodeView>, pool_label: Option<&str>) -> Topology {
        let labels = std::iter::once(ZONE_LABEL).chain(pool_label.filter(|l| *l != ZONE_LABEL));
        let mut t = Topology {
            nodes: 0,
            domains: labels
                .map(|label| Domains {
                    label: label.to_string(),
                    ..Default::default()
                })
                .collect(),
        };
        for node in nodes {
            t.nodes += 1;
            for d in &mut t.domains {
                if let Some((_, value)) = node.labels.iter().find(|(k, _)| **k == *d.label) {
                    d.of.insert(node.name.to_string(), value.to_string());
                    *d.count.entry(value.to_string()).or_default() += 1;
                }
            }
        }
        t
    }

    /// `nodes` nodes, no zones.
    pub fn flat(nodes: usize) -> Topology {
        Topology {
            nodes,
            ..Default::default()
        }
    }
}

/// Whether `members` of `total` nodes are many enough, and a large enough share, to be one cause.
fn together(members: usize, total: usize, knobs: &Knobs) -> bool {
    total > 0
        && members >= knobs.correlated_nodes_min
        && members * 100 >= knobs.correlated_nodes_percent * total
}

/// The causes among the node findings: by family, per zone first, then cluster-wide for what
/// no zone explains.
pub fn nodes_together(findings: &[&Finding], topology: &Topology, knobs: &Knobs) -> Vec<Correlated> {
    // Each family's member nodes, in name order (one finding per node: the earliest).
    let mut families: BTreeMap<NodeFamily, BTreeMap<&str, &Finding>> = BTreeMap::new();
    for f in findings {
        if let Some(family) = NodeFamily::of(f) {
            let members = families.entry(family).or_default();
            let kept = members.entry(f.subject.name.as_str()).or_insert(f);
            if f.since < kept.since {
                *kept = f;
            }
        }
    }
    let mut out = Vec::new();
    for (family, members) in families {
        // Domain by domain (zones, then pools): a domain is judged on all its failing members
        // (a pool whose nodes are half in a zone already held is still failing as a pool), and
        // its cause holds those no earlier domain explained.
        let mut explained: Vec<&str> = Vec::new();
        for domains in &topology.domains {
            let mut by_value: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
            for (node, f) in &members {
                if let Some(value) = domains.of.get(*node) {
                    by_value.entry(value).or_default().push(f);
                }
            }
            for (value, inside) in by_value {
                let total = domains.count.get(value).copied().unwrap_or(0);
                // A domain that is the whole cluster is the cluster.
                if total >= topology.nodes || !together(inside.len(), total, knobs) {
                    continue;
                }
                let held: Vec<&Finding> = inside
                    .iter()
                    .copied()
                    .filter(|f| !explained.contains(&f.subject.name.as_str()))
                    .collect();
                if held.is_empty() {
                    continue;
                }
                explained.extend(held.iter().map(|f| f.subject.name.as_str()));
                let domain = Domain {
                    label: domains.label.clone(),
                    value: value.to_string(),
                };
                out.push(cause(&family, Some(domain), &held, inside.len(), total));
            }
        }
        let rest: Vec<&Finding> = members
            .iter()
            .filter(|(node, _)| !explained.contains(node))
            .map(|(_, f)| *f)
            .collect();
        if together(rest.len(), topology.nodes, knobs) {
            out.push(cause(&family, None, &rest, rest.len(), topology.nodes));
        }
    }
    out
}

/// The cause of `failing` nodes of `total` in a domain (or the cluster), holding `members`.
fn cause(
    family: &NodeFamily,
    domain: Option<Domain>,
    members: &[&Finding],
    failing: usize,
    total: usize,
) -> Correlated {
    let place = domain.as_ref().map_or_else(String::new, |d| format!(" in {d}"));
    Correlated {
        cause: CorrelatedCause::Nodes {
            family: family.clone(),
            domain,
        },
        classes: family.classes(),
        since: members.iter().map(|f| f.since).min().unwrap_or_default(),
        message: format!(
            "{failing} of {total} nodes{place} are {} ({}%); per-node actions are held",
            family.said(),
            failing * 100 / total.max(1)
        ),
        members: members.iter().map(|f| f.subject.clone()).collect(),
        bursts: Vec::new(),
    }
}
