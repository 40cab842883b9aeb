//! From API objects to compact views, sharing repeated strings through an [`Interner`].

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Node, Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};

use crate::marks::held_by;
pub use crate::marks::{
    cordon_owners, job_owners, marked_at, remediation_owners, replace_owners, taint_owners,
};
use crate::view::{
    ContainerState, ContainerView, EventView, Labels, LastTermination, LeaseView, NodeCondition, NodeView,
    ObjectKey, OwnerKind, PodCondition, PodPhase, PodView, Secs, Shared, Stamp, Status, StatusReason, Uid,
};

/// Why an object could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {name}: {problem}")]
pub struct ConvertError {
    pub kind: &'static str,
    pub name: String,
    pub problem: String,
}

/// Shares equal strings and label sets between views.
#[derive(Default, Debug)]
pub struct Interner {
    strings: HashSet<Shared>,
    label_sets: HashSet<Labels>,
}

impl Interner {
    pub fn str(&mut self, s: &str) -> Shared {
        if let Some(existing) = self.strings.get(s) {
            return existing.clone();
        }
        let shared: Shared = Arc::from(s);
        self.strings.insert(shared.clone());
        shared
    }

    pub fn labels(&mut self, labels: Option<&std::collections::BTreeMap<String, String>>) -> Labels {
        let pairs: Vec<(Shared, Shared)> = labels
            .into_iter()
            .flatten()
            .map(|(k, v)| (self.str(k), self.str(v)))
            .collect();
        if let Some(existing) = self.label_sets.get(pairs.as_slice()) {
            return existing.clone();
        }
        let set: Labels = Arc::from(pairs);
        self.label_sets.insert(set.clone());
        set
    }

    /// Forgets what no view uses any more.
    pub fn prune(&mut self) {
        self.label_sets.retain(|s| Arc::strong_count(s) > 1);
        self.strings.retain(|s| Arc::strong_count(s) > 1);
    }

    pub fn len(&self) -> usize {
        self.strings.len() + self.label_sets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub fn secs(t: &Time) -> Secs {
    t.0.as_second()
}

pub fn micro_secs(t: &MicroTime) -> Secs {
    t.0.as_second()
}

fn non_empty(s: Option<&String>) -> Option<&str> {
    s.map(String::as_str).filter(|s| !s.is_empty())
}

fn opted_out(annotations: Option<&std::collections::BTreeMap<String, String>>) -> bool {
    annotations
        .and_then(|a| a.get(kube_healer_api::OPT_OUT_ANNOTATION))
        .is_some_and(|v| v == "true")
}

pub fn pod_view(pod: &Pod, interner: &mut Interner) -> Result<PodView, ConvertError> {
    let meta = &pod.metadata;
    let name = non_empty(meta.name.as_ref()).ok_or_else(|| ConvertError {
        kind: "Pod",
        name: "(unnamed)".into(),
        problem: "metadata.name is missing".into(),
    })?;
    let status = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    let phase = match status.and_then(|s| s.phase.as_deref()) {
        Some("Running") => PodPhase::Running,
        Some("Succeeded") => PodPhase::Succeeded,
        Some("Failed") => PodPhase::Failed,
        Some("Unknown") => PodPhase::Unknown,
        _ => PodPhase::Pending,
    };
    let conditions = pod_conditions(status, interner);
    let containers = container_views(status, interner);
    Ok(PodView {
        uid: Uid::parse(meta.uid.as_deref().unwrap_or_default()),
        namespace: interner.str(meta.namespace.as_deref().unwrap_or("default")),
        name: Arc::from(name),
        labels: interner.labels(meta.labels.as_ref()),
        owner: controller.map_or(OwnerKind::None, |o| OwnerKind::parse(&o.kind)),
        owner_name: controller.map(|o| interner.str(&o.name)),
        node: non_empty(spec.and_then(|s| s.node_name.as_ref())).map(|n| interner.str(n)),
        phase,
        status_reason: status_reason(status, interner),
        created_at: Stamp::new(meta.creation_timestamp.as_ref().map(secs)),
        scheduled_at: Stamp::new(scheduled(status)),
        started_at: Stamp::new(status.and_then(|s| s.start_time.as_ref()).map(secs)),
        deletion_at: Stamp::new(meta.deletion_timestamp.as_ref().map(secs)),
        grace_seconds: meta
            .deletion_grace_period_seconds
            .or(spec.and_then(|s| s.termination_grace_period_seconds))
            .map(|g| g.clamp(0, u32::MAX as i64) as u32),
        opted_out: opted_out(meta.annotations.as_ref()),
        has_init_containers: spec
            .and_then(|s| s.init_containers.as_ref())
            .is_some_and(|i| !i.is_empty()),
        has_claims: spec.and_then(|s| s.volumes.as_ref()).is_some_and(|v| {
            v.iter()
                .any(|v| v.persistent_volume_claim.is_some() || v.ephemeral.is_some())
        }),
        pinned: pinned(spec),
        conditions,
        containers,
        timeline: Default::default(),
        version: meta.resource_version.as_deref().and_then(canonical_number),
    })
}

/// The label the kubelet sets to its host name, which nodeSelectors pin pods with.
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// Whether the pod can run on the node it is on and no other: a nodeSelector on the hostname
/// label, or a required node affinity each of whose terms admits that one node, by name (as a
/// DaemonSet pins its pods) or by hostname, naming the node it is on. The host name is taken
/// to be the node's name, as it is unless the kubelet is told otherwise. (A pod created with
/// nodeName and no scheduler cannot be told from the pod itself: only its owner's template
/// says so.)
pub fn pinned(spec: Option<&k8s_openapi::api::core::v1::PodSpec>) -> bool {
    let Some((spec, node)) = spec.and_then(|s| Some((s, s.node_name.as_deref()?))) else {
        return false;
    };
    let only_this = |operator: &str, values: Option<&Vec<String>>| {
        operator == "In" && values.is_some_and(|v| v.len() == 1 && v[0] == node)
    };
    let by_selector = spec
        .node_selector
        .as_ref()
        .and_then(|s| s.get(HOSTNAME_LABEL))
        .is_some_and(|h| h == node);
    let terms = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| n.required_during_scheduling_ignored_during_execution.as_ref())
        .map(|r| r.node_selector_terms.as_slice())
        .unwrap_or_default();
    // Terms are alternatives: pinned only when every one of them admits this node alone.
    let by_affinity = !terms.is_empty()
        && terms.iter().all(|term| {
            let fields = term
                .match_fields
                .iter()
                .flatten()
                .filter(|r| r.key == "metadata.name");
            let labels = term
                .match_expressions
                .iter()
                .flatten()
                .filter(|r| r.key == HOSTNAME_LABEL);
            fields
                .chain(labels)
                .any(|r| only_this(&r.operator, r.values.as_ref()))
        });
    by_selector || by_affinity
}

/// The pod's conditions that are not True (a healthy pod keeps none).
fn pod_conditions(status: Option<&PodStatus>, interner: &mut Interner) -> Box<[PodCondition]> {
    status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.status != "True")
        .map(|c| PodCondition {
            type_: interner.str(&c.type_),
            status: Status::parse(&c.status),
            reason: non_empty(c.reason.as_ref()).map(|r| interner.str(r)),
            message: non_empty(c.message.as_ref()).map(Box::from),
            since: c.last_transition_time.as_ref().map(secs),
        })
        .collect()
}

/// The init containers' statuses, then the containers'.
fn container_views(status: Option<&PodStatus>, interner: &mut Interner) -> Box<[ContainerView]> {
    let mut containers = Vec::new();
    for (init, list) in [
        (true, status.and_then(|s| s.init_container_statuses.as_ref())),
        (false, status.and_then(|s| s.container_statuses.as_ref())),
    ] {
        for c in list.into_iter().flatten() {
            containers.push(container_view(c, init, interner));
        }
    }
    containers.into()
}

/// status.reason and status.message, if either is set.
fn status_reason(status: Option<&PodStatus>, interner: &mut Interner) -> Option<Box<StatusReason>> {
    let reason = non_empty(status.and_then(|s| s.reason.as_ref())).map(|r| interner.str(r));
    let message = non_empty(status.and_then(|s| s.message.as_ref())).map(Box::from);
    (reason.is_some() || message.is_some()).then(|| Box::new(StatusReason { reason, message }))
}

/// When the pod was bound to its node (PodScheduled=True).
fn scheduled(status: Option<&PodStatus>) -> Option<Secs> {
    status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "True")
        })
        .and_then(|c| c.last_transition_time.as_ref())
        .map(secs)
}

/// A resourceVersion as a number, if writing the number back gives the same text (a
/// precondition must name exactly the version seen).
fn canonical_number(version: &str) -> Option<u64> {
    version.parse::<u64>().ok().filter(|n| n.to_string() == version)
}

fn container_view(c: &ContainerStatus, init: bool, interner: &mut Interner) -> ContainerView {
    let (state, state_since) = match c.state.as_ref() {
        Some(s) if s.waiting.is_some() => {
            let w = s.waiting.as_ref().expect("checked");
            (
                ContainerState::Waiting {
                    reason: non_empty(w.reason.as_ref()).map(|r| interner.str(r)),
                    message: non_empty(w.message.as_ref()).map(Box::from),
                },
                None,
            )
        }
        Some(s) if s.running.is_some() => {
            let started = s.running.as_ref().and_then(|r| r.started_at.as_ref()).map(secs);
            (ContainerState::Running { started }, started)
        }
        Some(s) if s.terminated.is_some() => {
            let t = s.terminated.as_ref().expect("checked");
            let finished = t.finished_at.as_ref().map(secs);
            (
                ContainerState::Terminated {
                    reason: non_empty(t.reason.as_ref()).map(|r| interner.str(r)),
                    exit_code: t.exit_code,
                    finished,
                },
                finished,
            )
        }
        _ => (ContainerState::Unknown, None),
    };
    let running = matches!(state, ContainerState::Running { .. });
    let last_terminated = c
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .filter(|_| !running)
        .map(|t| {
            Box::new(LastTermination {
                reason: non_empty(t.reason.as_ref()).map(|r| interner.str(r)),
                exit_code: t.exit_code,
                message: t.message.as_deref().and_then(termination_line).map(Box::from),
                finished: t.finished_at.as_ref().map(secs),
            })
        });
    ContainerView {
        name: interner.str(&c.name),
        image: interner.str(&c.image),
        init,
        ready: c.ready,
        restarts: c.restart_count.max(0) as u32,
        state,
        last_terminated,
        state_since,
    }
}

/// What is kept of a termination message (a log's tail with FallbackToLogsOnError): its last
/// line (the error is last), at most 256 characters, every token holding a digit left out (see
/// `classify::alike::fingerprint`). A crash loop's evidence, kept small, and without the
/// numbers a log line may hold (counts, addresses, and secrets as often as not); the flight
/// recorder keeps the same.
pub fn termination_line(message: &str) -> Option<String> {
    let line = message.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let line = match line.char_indices().nth(256) {
        Some((at, _)) => &line[..at],
        None => line,
    };
    Some(crate::classify::alike::fingerprint(line, &[]))
}

pub fn node_view(node: &Node, interner: &mut Interner) -> Result<NodeView, ConvertError> {
    let meta = &node.metadata;
    let name = non_empty(meta.name.as_ref()).ok_or_else(|| ConvertError {
        kind: "Node",
        name: "(unnamed)".into(),
        problem: "metadata.name is missing".into(),
    })?;
    let spec = node.spec.as_ref();
    let taints: Vec<Shared> = spec
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .map(|t| interner.str(&format!("{}:{}", t.key, t.effect)))
        .collect();
    let conditions: Vec<NodeCondition> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .map(|c| NodeCondition {
            type_: interner.str(&c.type_),
            status: Status::parse(&c.status),
            reason: non_empty(c.reason.as_ref()).map(|r| interner.str(r)),
            message: non_empty(c.message.as_ref()).map(Box::from),
            since: c.last_transition_time.as_ref().map(secs),
            heartbeat: c.last_heartbeat_time.as_ref().map(secs),
        })
        .collect();
    let unschedulable = spec.and_then(|s| s.unschedulable).unwrap_or(false);
    let annotations = meta.annotations.as_ref();
    // A cordon someone else set last holds nothing of kube-healer's, whatever its marks say.
    let others_cordon = crate::marks::cordon_is_others(meta);
    let cordon_lifted: Vec<(Shared, Secs)> = crate::marks::cordon_lifted(annotations)
        .into_iter()
        .map(|(p, at)| (interner.str(p), at))
        .collect();
    Ok(NodeView {
        uid: Uid::parse(meta.uid.as_deref().unwrap_or_default()),
        name: interner.str(name),
        labels: interner.labels(meta.labels.as_ref()),
        unschedulable,
        opted_out: opted_out(annotations),
        held_by: held_by(annotations, unschedulable && !others_cordon, &taints, interner),
        stale_cordon: crate::marks::stale_cordon(meta, unschedulable),
        cordoned_by_other: crate::marks::cordoned_by_other(meta, unschedulable),
        stale_taint: crate::marks::stale_taints(annotations, &taints),
        handed_over: crate::marks::handed_over(annotations),
        cordon_lifted: cordon_lifted.into(),
        marked_at: crate::marks::marked_at(annotations)
            .into_iter()
            .map(|(p, g)| (interner.str(p), g))
            .collect(),
        annotations: annotations
            .into_iter()
            .flat_map(|a| a.keys())
            .map(|k| interner.str(k))
            .collect(),
        maintained: None,
        taints: taints.into(),
        conditions: conditions.into(),
        ready_transitions: Box::new([]),
    })
}

pub fn event_view(event: &Event, interner: &mut Interner) -> Result<EventView, ConvertError> {
    let obj = &event.involved_object;
    let name = non_empty(obj.name.as_ref()).ok_or_else(|| ConvertError {
        kind: "Event",
        name: event.metadata.name.clone().unwrap_or_else(|| "(unnamed)".into()),
        problem: "involvedObject.name is missing".into(),
    })?;
    let created = event.metadata.creation_timestamp.as_ref().map(secs);
    let first_seen = event
        .first_timestamp
        .as_ref()
        .map(secs)
        .or(event.event_time.as_ref().map(micro_secs))
        .or(created)
        .unwrap_or(0);
    // An event written through events.k8s.io carries `series`; one written through core/v1 the
    // deprecated count and lastTimestamp; some carry both, for the same occurrences. Each
    // occurrence counts once: the larger count and the later time, never their sum.
    let series = event.series.as_ref();
    let last_seen = [
        series.and_then(|s| s.last_observed_time.as_ref()).map(micro_secs),
        event.last_timestamp.as_ref().map(secs),
        event.event_time.as_ref().map(micro_secs),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(first_seen)
    .max(first_seen);
    let count = series
        .and_then(|s| s.count)
        .into_iter()
        .chain(event.count)
        .max()
        .unwrap_or(1)
        .max(1) as u32;
    let id = non_empty(event.metadata.uid.as_ref())
        .map(Uid::parse)
        .or_else(|| {
            let name = non_empty(event.metadata.name.as_ref())?;
            let namespace = event.metadata.namespace.as_deref().unwrap_or("");
            Some(Uid::Other(format!("{namespace}/{name}").into()))
        });
    Ok(EventView {
        id,
        object: ObjectKey {
            kind: interner.str(obj.kind.as_deref().unwrap_or("")),
            namespace: non_empty(obj.namespace.as_ref()).map(|n| interner.str(n)),
            name: interner.str(name),
        },
        object_uid: non_empty(obj.uid.as_ref()).map(Uid::parse),
        reason: interner.str(event.reason.as_deref().unwrap_or("")),
        message: event.message.as_deref().unwrap_or("").into(),
        count,
        first_seen,
        last_seen,
    })
}

pub fn lease_view(lease: &Lease, interner: &mut Interner) -> Result<LeaseView, ConvertError> {
    let name = non_empty(lease.metadata.name.as_ref()).ok_or_else(|| ConvertError {
        kind: "Lease",
        name: "(unnamed)".into(),
        problem: "metadata.name is missing".into(),
    })?;
    let spec = lease.spec.as_ref();
    Ok(LeaseView {
        node: interner.str(name),
        renewed: spec.and_then(|s| s.renew_time.as_ref()).map(micro_secs),
        duration_seconds: spec.and_then(|s| s.lease_duration_seconds),
        observed: None,
    })
}

/// When the node's Reschedule avoid taint expires (Unix seconds; its value), if it has one. An
/// unreadable value counts as expired long ago.
pub fn avoid_expiry(node: &Node) -> Option<Secs> {
    node.spec
        .as_ref()?
        .taints
        .as_ref()?
        .iter()
        .find(|t| t.key == kube_healer_api::AVOID_TAINT)
        .map(|t| t.value.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0))
}
