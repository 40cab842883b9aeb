//! A sick node is the cause of its pods' failures. Pods of several workloads fail on one node
//! (stuck creating, failing to start, crash-looping, failing their probes) while the same
//! workloads' pods run fine on other nodes: what those pods share is the node, and deleting or
//! restarting them there cannot help. Their actions are held as one cause, and later failures of
//! those classes on the node are held on sight. The reverse holds too: a workload whose pods fail
//! on more than one node is its own cause, not its nodes', and does not count for any node.
//!
//! "Fine elsewhere" is evidence, not the absence of a finding: a sibling Running and Ready on
//! another node (a pod of its own, with no siblings, never counts).

use std::collections::{BTreeMap, HashMap, HashSet};

use kube_healer_api::FailureClass;

use crate::finding::{Correlated, CorrelatedCause, Finding, PodsKey, Subject};
use crate::thresholds::Knobs;
use crate::view::{NodeView, PodView, Secs};

/// The pod classes a sick node shows in its pods.
pub const SICK_NODE_CLASSES: [FailureClass; 4] = [
    FailureClass::StuckContainerCreating,
    FailureClass::ContainerStartFailure,
    FailureClass::CrashLoop,
    FailureClass::ProbeFailure,
];

/// A pod running fine: Running, every container ready.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fine {
    pub node: String,
    /// Its revision of its workload (pod-template-hash, controller-revision-hash).
    pub revision: Option<String>,
    /// When the pod was created.
    pub created: Secs,
}

/// Where workloads' pods run fine: for each of `workloads` (as `Workload`'s Display names it,
/// without its revision), its pods Running and Ready, by node and revision.
pub trait RunningFine {
    fn running_fine(&self, workloads: &HashSet<String>) -> HashMap<String, HashSet<Fine>>;
}

/// Nothing is known to run fine (a test's, or a view with no pods).
impl RunningFine for () {
    fn running_fine(&self, _: &HashSet<String>) -> HashMap<String, HashSet<Fine>> {
        HashMap::new()
    }
}

/// `running_fine` over a set of pods: one pass, whatever the number of workloads asked.
pub fn running_fine_among<'a>(
    pods: impl Iterator<Item = &'a PodView>,
    workloads: &HashSet<String>,
) -> HashMap<String, HashSet<Fine>> {
    let mut out: HashMap<String, HashSet<Fine>> = HashMap::new();
    for pod in pods {
        let ready = pod.serving();
        let Some(node) = pod.node.as_deref().filter(|_| ready) else {
            continue;
        };
        let workload = super::alike::workload(pod);
        let name = workload.to_string();
        if workloads.contains(&name) {
            out.entry(name).or_default().insert(Fine {
                node: node.to_string(),
                revision: workload.revision,
                created: pod.created(),
            });
        }
    }
    out
}

/// A candidate pod: of a sick-node class, on a node, of a workload with siblings.
fn candidate(f: &Finding) -> Option<(&str, String)> {
    let alike = f.alike.as_ref()?;
    let node = f.subject.node.as_deref()?;
    (SICK_NODE_CLASSES.contains(&f.class) && alike.workload.kind != "Pod")
        .then(|| (node, alike.workload.to_string()))
}

/// The sick nodes among `findings`: at least `knobs.sick_node.pods` pods of at least
/// `knobs.sick_node.workloads` workloads failing on the node and on no other, each with a
/// sibling running fine on another node. A cause found before (`previous`) lasts while any of
/// its members still fails there.
pub fn sick_nodes(
    findings: &[&Finding],
    knobs: &Knobs,
    previous: &[Correlated],
    fine: &dyn RunningFine,
) -> Vec<Correlated> {
    let mut nodes_of: HashMap<String, HashSet<&str>> = HashMap::new();
    for (node, workload) in findings.iter().filter_map(|f| candidate(f)) {
        nodes_of.entry(workload).or_default().insert(node);
    }
    // Confined to one node: the node's, if anyone's.
    let mut by_node: BTreeMap<&str, Vec<(&Finding, String)>> = BTreeMap::new();
    for f in findings {
        if let Some((node, workload)) = candidate(f)
            && nodes_of.get(&workload).is_some_and(|n| n.len() == 1)
        {
            by_node.entry(node).or_default().push((f, workload));
        }
    }
    let was = |node: &str| {
        previous
            .iter()
            .any(|c| c.cause == CorrelatedCause::Pods(PodsKey::Node(node.to_string())))
    };
    let enough = |members: &[(&Finding, String)], node: &str| {
        let workloads: HashSet<&String> = members.iter().map(|(_, w)| w).collect();
        (members.len() >= knobs.sick_node.pods && workloads.len() >= knobs.sick_node.workloads)
            || (was(node) && !members.is_empty())
    };
    by_node.retain(|node, members| enough(members, node));
    if by_node.is_empty() {
        return Vec::new();
    }
    let asked: HashSet<String> = by_node.values().flatten().map(|(_, w)| w.clone()).collect();
    let running = fine.running_fine(&asked);
    let mut out = Vec::new();
    for (node, mut members) in by_node {
        members.retain(|(_, w)| running.get(w).is_some_and(|on| on.iter().any(|f| f.node != node)));
        if !enough(&members, node) {
            continue;
        }
        let mut sick = cause(node, &members);
        // It began when it was first found (the node's NodeBlackHole keeps its episode while
        // members come and go).
        if let Some(was) = previous.iter().find(|c| c.cause == sick.cause) {
            sick.since = sick.since.min(was.since);
        }
        out.push(sick);
    }
    out
}

fn cause(node: &str, members: &[(&Finding, String)]) -> Correlated {
    let mut classes: Vec<FailureClass> = members.iter().map(|(f, _)| f.class).collect();
    classes.sort();
    classes.dedup();
    let mut workloads: Vec<&String> = members.iter().map(|(_, w)| w).collect();
    workloads.sort();
    workloads.dedup();
    let more = workloads.len().saturating_sub(3);
    let named: Vec<&str> = workloads.iter().take(3).map(|s| s.as_str()).collect();
    Correlated {
        message: format!(
            "{} pods of {} workloads ({}{}) fail on node {node} while their workloads' pods run fine on other nodes: the node, not the pods",
            members.len(),
            workloads.len(),
            named.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ),
        cause: CorrelatedCause::Pods(PodsKey::Node(node.to_string())),
        classes,
        since: members.iter().map(|(f, _)| f.since).min().unwrap_or_default(),
        members: members.iter().map(|(f, _)| f.subject.clone()).collect(),
        bursts: Vec::new(),
    }
}

/// A sick node as node policies see it: the cause found by [`sick_nodes`], read by node
/// classification (`ClusterView::sick_node`) and reported as the node's NodeBlackHole (a Ready
/// node whose pods do not start, generalised: whose pods fail there, whatever the pod class,
/// while their workloads run fine elsewhere).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SickNodeCause {
    pub since: Secs,
    /// The cause's member pods.
    pub pods: usize,
    pub message: String,
}

impl SickNodeCause {
    /// The node a correlated cause names as sick, and what node classification reads of it.
    pub fn of(cause: &Correlated) -> Option<(&str, SickNodeCause)> {
        let CorrelatedCause::Pods(PodsKey::Node(node)) = &cause.cause else {
            return None;
        };
        Some((
            node.as_str(),
            SickNodeCause {
                since: cause.since,
                pods: cause.members.len(),
                message: cause.message.clone(),
            },
        ))
    }

    /// The node's NodeBlackHole finding, when the cause counts at least `min_pods` pods (the
    /// condition's minPods).
    pub fn finding(&self, node: &NodeView, min_pods: usize) -> Option<Finding> {
        if self.pods < min_pods.max(1) {
            return None;
        }
        let mut evidence = super::pod::summary(format!("Ready, but {}", self.message));
        evidence.facts.insert("failingPods".into(), self.pods.to_string());
        Some(Finding {
            class: FailureClass::NodeBlackHole,
            subject: Subject::node(node),
            since: self.since,
            evidence,
            alike: None,
        })
    }
}
