//! Findings: a failure class found on a subject, since when, and the evidence.

use kube_healer_api::record::{ConditionEvidence, ContainerEvidence, EventEvidence, TargetRef};
use kube_healer_api::{Evidence, FailureClass, TargetKind};

use crate::view::{
    ContainerState, ContainerView, EventView, NodeCondition, NodeView, PodCondition, PodView, Secs, Status,
};

/// The object a finding is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Subject {
    pub kind: TargetKind,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    /// The node itself, or the node the pod is bound to.
    pub node: Option<String>,
}

impl Subject {
    pub fn pod(pod: &PodView) -> Self {
        Subject {
            kind: TargetKind::Pod,
            namespace: Some(pod.namespace.to_string()),
            name: pod.name.to_string(),
            uid: pod.uid.to_string(),
            node: pod.node.as_deref().map(str::to_string),
        }
    }

    pub fn node(node: &NodeView) -> Self {
        Subject {
            kind: TargetKind::Node,
            namespace: None,
            name: node.name.to_string(),
            uid: node.uid.to_string(),
            node: Some(node.name.to_string()),
        }
    }

    pub fn target_ref(&self) -> TargetRef {
        TargetRef::new(
            self.kind,
            self.namespace.as_deref(),
            &self.name,
            &self.uid,
            self.node.as_deref(),
        )
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(
                f,
                "{}/{ns}/{}",
                self.kind.as_str().to_ascii_lowercase(),
                self.name
            ),
            None => write!(f, "{}/{}", self.kind.as_str().to_ascii_lowercase(), self.name),
        }
    }
}

/// A failure class found on a subject.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub class: FailureClass,
    pub subject: Subject,
    /// When the failure began (as far as the input tells).
    pub since: Secs,
    pub evidence: Evidence,
    /// What a pod's failure may share with other pods' (classes of the PodsAlike family only).
    pub alike: Option<Box<Alike>>,
}

/// What a pod's failure may share with other pods': see `classify::alike`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alike {
    pub workload: Workload,
    /// The failure as its class tells it, without the pod's own names and numbers: pods failing
    /// for one cause tell it alike.
    pub signature: String,
    /// When the failure began (a pod cut off with its node: when its containers' last state
    /// did, not when the node went).
    pub since: Secs,
    /// When the pod was created (a rollout's new pods are newer than its old ones).
    pub created: Secs,
}

/// The workload a pod belongs to, and its revision.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Workload {
    pub namespace: String,
    /// Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, Other, or Pod (a pod of its own).
    pub kind: &'static str,
    pub name: String,
    /// pod-template-hash or controller-revision-hash, when the pod carries one.
    pub revision: Option<String>,
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

impl Finding {
    /// When the finding becomes actionable for a condition holding `for_` seconds.
    pub fn due_at(&self, for_: Secs) -> Secs {
        self.since.saturating_add(for_)
    }

    pub fn age(&self, now: Secs) -> Secs {
        now - self.since
    }
}

/// What ties many findings to one cause.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CorrelatedCause {
    /// Many pods failing alike: the cause is what they share, not the pods.
    Pods(PodsKey),
    /// Many nodes of the cluster, or of one failure domain (a zone, a node pool), fail the same
    /// way together (down, late heartbeats, flapping, one condition, ...): one cause, not node
    /// faults.
    Nodes {
        family: crate::classify::NodeFamily,
        domain: Option<crate::classify::Domain>,
    },
    /// kube-healer's own API calls fail or crawl: the control plane is in trouble, and node
    /// signals cannot be trusted. Holds every node finding, and pod findings that stem from
    /// nodes.
    ControlPlane,
}

/// What many pods failing alike share.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PodsKey {
    /// Image pulls failing from one registry, on several nodes: the registry.
    Registry(String),
    /// One failure told the same way (its signature) by pods of several workloads: a
    /// dependency they share (DNS, a database, a ConfigMap, a certificate).
    Failure(String),
    /// Pods of several workloads failing on one node while their siblings run fine elsewhere:
    /// the node (see `classify::sick_node`).
    Node(String),
    /// A workload's pods of one revision failing while another revision's run fine: the
    /// rollout (`workload@revision`; see `classify::rollout`).
    Rollout(String),
}

impl PodsKey {
    /// The keys a pod finding is grouped by.
    pub fn of(finding: &Finding) -> Vec<PodsKey> {
        let Some(alike) = &finding.alike else {
            return Vec::new();
        };
        let mut keys = vec![PodsKey::Failure(alike.signature.clone())];
        if finding.class == FailureClass::ImagePullFailure
            && let Some(image) = finding.evidence.facts.get("image")
        {
            keys.push(PodsKey::Registry(
                crate::classify::correlate::registry_of(image).to_string(),
            ));
        }
        keys
    }
}

/// One finding standing for many: policies hold per-target actions back while it lasts.
#[derive(Clone, Debug, PartialEq)]
pub struct Correlated {
    pub cause: CorrelatedCause,
    /// The classes of the member findings.
    pub classes: Vec<FailureClass>,
    pub members: Vec<Subject>,
    pub since: Secs,
    pub message: String,
    /// Pods failing alike, told by a failure's signature: the largest bursts seen since the
    /// cause began, in each window bursts are counted in, none outdone in both pods and
    /// workloads by another of its window. A policy with pods-alike thresholds of its own is held
    /// by the cause only if one of its window meets them (see [`Correlated::holds_for`]). Empty
    /// for other causes.
    pub bursts: Vec<Burst>,
}

/// Pods failing alike that began within `window` seconds of each other: how many, of how many
/// workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Burst {
    pub window: Secs,
    pub pods: usize,
    pub workloads: usize,
}

impl Correlated {
    /// Whether the cause holds a policy whose pods-alike thresholds are `thresholds` (its own
    /// or the operator's): every cause does, but pods failing alike by a failure's signature
    /// only once a burst met them. Once met, it stays met while the cause lasts.
    pub fn holds_for(&self, thresholds: &crate::thresholds::PodsAlike) -> bool {
        if !matches!(self.cause, CorrelatedCause::Pods(PodsKey::Failure(_))) {
            return true;
        }
        // Counted in the policy's own window; else (thresholds nobody counted bursts for: a
        // CLI's defaults) in the shortest longer one, which holds on the safe side, or the
        // longest there is.
        let windows = self.bursts.iter().map(|b| b.window);
        let counted = windows
            .clone()
            .filter(|w| *w >= thresholds.window)
            .min()
            .or(windows.max());
        self.bursts
            .iter()
            .filter(|b| Some(b.window) == counted)
            .any(|b| thresholds.met_by((b.pods, b.workloads)))
    }

    /// Whether `finding` stems from this cause (its per-target action should be held back): it
    /// is one of the members; or, when nodes fail together, it is about a member node or (for
    /// the classes the cause holds: nodes down) a pod bound to one (a pod lost with its node is
    /// the same partition, not a pod fault). A node finding is covered only by a cause of its own
    /// family: a node in a KernelDeadlock storm that also turns ReadonlyFilesystem has a second
    /// failure, judged on its own (condition types do not add up, and do not hide each other).
    pub fn covers(&self, finding: &Finding) -> bool {
        // The control plane's cause holds every node finding, whatever its class (an event
        // pattern on nodes too).
        if self.cause == CorrelatedCause::ControlPlane && finding.subject.kind == TargetKind::Node {
            return true;
        }
        if !self.classes.contains(&finding.class) {
            return false;
        }
        match &self.cause {
            CorrelatedCause::Nodes { family, .. }
                if finding.subject.kind == TargetKind::Node
                    && crate::classify::NodeFamily::of(finding).as_ref() != Some(family) =>
            {
                false
            }
            CorrelatedCause::Nodes { .. } => finding.subject.node.as_deref().is_some_and(|node| {
                self.members
                    .iter()
                    .any(|m| m.kind == TargetKind::Node && m.name == node)
            }),
            CorrelatedCause::ControlPlane => true,
            // A sick node's members, and every pod failing there in its classes while it lasts.
            CorrelatedCause::Pods(PodsKey::Node(node)) => {
                self.members.iter().any(|m| m.uid == finding.subject.uid)
                    || (finding.subject.node.as_deref() == Some(node.as_str())
                        && crate::classify::SICK_NODE_CLASSES.contains(&finding.class))
            }
            // A failing rollout's members, and every pod of that revision failing while it lasts.
            CorrelatedCause::Pods(PodsKey::Rollout(key)) => {
                self.members.iter().any(|m| m.uid == finding.subject.uid)
                    || crate::classify::rollout::rollout_of(finding).is_some_and(|(k, _, _)| k == *key)
            }
            // Its members, and every pod failing alike while it lasts: held on sight.
            CorrelatedCause::Pods(key) => {
                self.members.iter().any(|m| m.uid == finding.subject.uid)
                    || PodsKey::of(finding).contains(key)
            }
        }
    }
}

/// Unix seconds as an API time.
pub fn time(secs: Secs) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    let ts =
        k8s_openapi::jiff::Timestamp::from_second(secs).unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts)
}

pub(crate) fn pod_condition_evidence(c: &PodCondition) -> ConditionEvidence {
    condition_evidence(
        &c.type_,
        c.status,
        c.reason.as_deref(),
        c.message.as_deref(),
        c.since,
    )
}

pub(crate) fn node_condition_evidence(c: &NodeCondition) -> ConditionEvidence {
    condition_evidence(
        &c.type_,
        c.status,
        c.reason.as_deref(),
        c.message.as_deref(),
        c.since,
    )
}

fn condition_evidence(
    type_: &str,
    status: Status,
    reason: Option<&str>,
    message: Option<&str>,
    since: Option<Secs>,
) -> ConditionEvidence {
    ConditionEvidence {
        type_: type_.to_string(),
        status: status.as_str().to_string(),
        reason: reason.map(str::to_string),
        message: message.map(str::to_string),
        last_transition_time: since.map(time),
    }
}

pub(crate) fn container_evidence(c: &ContainerView) -> ContainerEvidence {
    let (state, reason, message, exit_code) = match &c.state {
        ContainerState::Waiting { reason, message } => (
            "waiting",
            reason.as_deref(),
            message.as_deref().map(str::to_string),
            None,
        ),
        ContainerState::Running { .. } => ("running", None, None, None),
        ContainerState::Terminated {
            reason, exit_code, ..
        } => ("terminated", reason.as_deref(), None, Some(*exit_code)),
        ContainerState::Unknown => ("unknown", None, None, None),
    };
    ContainerEvidence {
        name: c.name.to_string(),
        init: c.init,
        state: state.to_string(),
        reason: reason.map(str::to_string),
        message,
        restart_count: c.restarts.min(i32::MAX as u32) as i32,
        exit_code,
    }
}

pub(crate) fn event_evidence(e: &EventView, count: u32, estimated: bool) -> EventEvidence {
    EventEvidence {
        reason: e.reason.to_string(),
        message: Some(e.message.to_string()),
        count: count.min(i32::MAX as u32) as i32,
        estimated,
        last_seen: Some(time(e.last_seen)),
    }
}
