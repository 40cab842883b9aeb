//! Pod classes.

use kube_healer_api::{Evidence, FailureClass, Family};

use crate::cluster::{ClusterView, NodeLookup};
use crate::events::tally;
use crate::finding::{
    Finding, Subject, container_evidence, node_condition_evidence, pod_condition_evidence, time,
};
use crate::thresholds::Knobs;
use crate::view::{ContainerState, ContainerView, EventView, OwnerKind, PodPhase, PodView, Secs, Status};

/// Waiting reasons of a container that cannot get its image.
pub const IMAGE_PULL_REASONS: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "ImageInspectError",
    "ErrImageNeverPull",
    "InvalidImageName",
    "RegistryUnavailable",
];

/// Waiting reasons of a container that cannot be created or started.
pub const START_FAILURE_REASONS: &[&str] = &[
    "RunContainerError",
    "CreateContainerError",
    "CreateContainerConfigError",
    "StartError",
    "PreStartHookError",
    "PostStartHookError",
];

/// Termination reasons that mean the container never ran.
const NEVER_RAN_REASONS: &[&str] = &["StartError", "ContainerCannotRun"];

/// Pod-level reasons the kubelet gives when it refuses a pod at admission.
pub fn is_admission_reason(reason: &str) -> bool {
    reason.starts_with("OutOf")
        || matches!(
            reason,
            "UnexpectedAdmissionError"
                | "NodeAffinity"
                | "NodeSelectorMismatch"
                | "InvalidNodeInfo"
                | "Taint"
                | "NodePorts"
                | "UnknownReason"
        )
}

/// Appends the findings of one pod to `out`. Allocates nothing for a healthy pod.
pub fn classify_pod(
    pod: &PodView,
    cluster: &impl ClusterView,
    knobs: &Knobs,
    now: Secs,
    out: &mut Vec<Finding>,
) {
    if let Some(deadline) = pod.deletion() {
        if now >= deadline {
            let mut evidence = summary(format!(
                "terminating for {} past its deletionTimestamp (grace period {}s)",
                human(now - deadline),
                pod.grace_seconds.unwrap_or(30)
            ));
            evidence
                .facts
                .insert("deletionTimestamp".into(), rfc3339(deadline));
            add_containers(&mut evidence, pod, |_| true);
            out.push(finding(FailureClass::StuckTerminating, pod, deadline, evidence));
        }
        // A pod deleted on a lost node stays lost: no kubelet will finish its termination.
        if let Some(node) = pod.node.as_deref() {
            classify_binding(pod, node, cluster, knobs, out);
        }
        return;
    }
    match pod.phase {
        PodPhase::Succeeded => return,
        PodPhase::Failed => return classify_failed(pod, out),
        PodPhase::Pending | PodPhase::Running | PodPhase::Unknown => {}
    }
    let Some(node) = pod.node.as_deref() else {
        return classify_unbound(pod, cluster, out);
    };
    classify_binding(pod, node, cluster, knobs, out);
    if kubelet_silent(node, cluster) {
        return;
    }
    classify_containers(pod, knobs, out);
    classify_probes(pod, node, cluster, knobs, now, out);
    classify_silent(pod, node, cluster, out);
}

/// Whether the pod's status is its kubelet's last word rather than its current one: its node is
/// not Ready (the kubelet silent or failing) or gone. The pod is then NodeLost's or Orphaned's,
/// and a container class read from that status (a crash loop that may have ended, a pull that
/// may have succeeded) would act on a failure nobody sees, on the node of a cause shared by
/// many (found by the invariants' histories: a crash-looping pod deleted on a node of a zone
/// cut off, while the zone's own pods were held). With no nodes in the input, nothing is known
/// and the status is judged as it stands.
fn kubelet_silent(node: &str, cluster: &impl ClusterView) -> bool {
    match cluster.node(node) {
        NodeLookup::Present(n) => n.ready() != Status::True,
        NodeLookup::Gone { .. } => true,
        NodeLookup::Unknown => false,
    }
}

/// The kubelet's event for a failed readiness probe (pkg/kubelet/prober/prober.go: a Warning,
/// reason `events.ContainerUnhealthy`, message "%s probe failed: %s" with the probe type and its
/// output). A probe that errored ("Readiness probe errored and resulted in unknown state") is
/// thrown away by the kubelet's worker and never makes a container unready, so it is not counted.
pub const PROBE_FAILED_REASON: &str = "Unhealthy";
pub const READINESS_FAILED: &str = "Readiness probe failed:";
/// client-go's event correlator writes the 11th distinct message of one reason within 10 minutes
/// and those after it with this prefix (a pod whose probes' output varies).
const COMBINED: &str = "(combined from similar events): ";

/// Whether an event tells a failed readiness probe.
fn readiness_failed(e: &EventView) -> bool {
    let message = e.message.strip_prefix(COMBINED).unwrap_or(&e.message);
    &*e.reason == PROBE_FAILED_REASON && message.starts_with(READINESS_FAILED)
}

/// ProbeFailure: Running on a Ready node, with running containers the kubelet holds unready
/// (Ready=False, ContainersNotReady) and its readiness probe failing them at least
/// `probe_min_failures` times since they started. It begins when the pod went unready, or when
/// the last of those containers (re)started, whichever is later: a container restarting (a
/// liveness probe, a crash) begins the run anew, so a restart loop is CrashLoop's to judge, never
/// this class's. On a node that is not Ready the kubelet's word is stale (the pod is NodeLost's).
/// Events do not say which container they are about here, so a pod's unready containers are
/// judged together.
fn classify_probes(
    pod: &PodView,
    node: &str,
    cluster: &impl ClusterView,
    knobs: &Knobs,
    now: Secs,
    out: &mut Vec<Finding>,
) {
    if pod.phase != PodPhase::Running
        || !matches!(cluster.node(node), NodeLookup::Present(n) if n.ready() == Status::True)
    {
        return;
    }
    let Some(ready) = pod.conditions.iter().find(|c| {
        &*c.type_ == "Ready" && c.status == Status::False && c.reason.as_deref() == Some("ContainersNotReady")
    }) else {
        return;
    };
    let unready =
        |c: &ContainerView| !c.init && !c.ready && matches!(c.state, ContainerState::Running { .. });
    let started = pod
        .containers
        .iter()
        .filter(|c| unready(c))
        .map(|c| match c.state {
            ContainerState::Running { started } => started
                .or(c.state_since)
                .or(pod.started())
                .unwrap_or(pod.created()),
            _ => pod.created(),
        });
    let Some(started) = started.max() else {
        return;
    };
    let failures = tally(
        cluster.events_of(
            "Pod",
            Some(&pod.namespace),
            &pod.name,
            &pod.uid,
            Some(pod.created()),
        ),
        started,
        readiness_failed,
    );
    if failures.count < knobs.probe_min_failures {
        return;
    }
    let names: Vec<&str> = pod
        .containers
        .iter()
        .filter(|c| unready(c))
        .map(|c| &*c.name)
        .collect();
    let mut evidence = summary(format!(
        "running but not ready: the kubelet's readiness probe failed {} {} (threshold {}) since {} started{}",
        failures.said(),
        if failures.count == 1 { "time" } else { "times" },
        knobs.probe_min_failures,
        names.join(", "),
        failures
            .events
            .last()
            .and_then(|e| e.message.as_deref())
            .map_or(String::new(), |m| format!(": {m}")),
    ));
    evidence.conditions.push(pod_condition_evidence(ready));
    add_containers(&mut evidence, pod, unready);
    evidence.events = failures.events;
    // Unready since unknown (no lastTransitionTime, and not carried): now, never long ago.
    let since = ready.since.unwrap_or(now).max(started);
    out.push(finding(FailureClass::ProbeFailure, pod, since, evidence));
}

/// Orphaned (the node is gone) or NodeLost (the node is NotReady or unreachable). Each carries
/// what the pod's containers last said of a failure, if they did: not judged (the kubelet is
/// silent), but evidence that the pod failed alike with others before its node went (a cause
/// whose pods are cut off with their nodes is still their cause, and still holds the rest).
fn classify_binding(
    pod: &PodView,
    node: &str,
    cluster: &impl ClusterView,
    knobs: &Knobs,
    out: &mut Vec<Finding>,
) {
    let before = out.len();
    bound_to_lost_node(pod, node, cluster, out);
    if out.len() > before {
        let said = last_said(pod, knobs);
        for f in &mut out[before..] {
            f.alike = said.clone();
        }
    }
}

/// What a pod's containers last said of a failure that may be shared: the alike of its first
/// container class.
fn last_said(pod: &PodView, knobs: &Knobs) -> Option<Box<crate::finding::Alike>> {
    pod.containers.iter().find_map(|c| {
        let class = container_class(pod, c, knobs)?;
        let since = c.state_since.or(pod.started()).unwrap_or(pod.created());
        Some(Box::new(super::alike::alike(
            class,
            pod,
            &container_summary(class, c),
            since,
        )))
    })
}

fn bound_to_lost_node(pod: &PodView, node: &str, cluster: &impl ClusterView, out: &mut Vec<Finding>) {
    match cluster.node(node) {
        NodeLookup::Gone { since } => {
            let mut evidence = summary(format!("bound to node {node}, which no longer exists"));
            evidence.facts.insert("node".into(), node.to_string());
            out.push(finding(
                FailureClass::Orphaned,
                pod,
                since.unwrap_or(pod.created()),
                evidence,
            ));
        }
        NodeLookup::Present(n) if n.ready() != Status::True => {
            let ready = n.condition("Ready");
            let mut evidence = summary(format!(
                "bound to node {node}, which is {}",
                if ready.is_some_and(|c| c.status == Status::False) {
                    "NotReady"
                } else {
                    "unreachable (Ready=Unknown)"
                }
            ));
            evidence.conditions.extend(ready.map(node_condition_evidence));
            let since = ready
                .and_then(|c| c.since)
                .unwrap_or(pod.created())
                .max(pod.created());
            out.push(finding(FailureClass::NodeLost, pod, since, evidence));
        }
        NodeLookup::Present(_) | NodeLookup::Unknown => {}
    }
}

/// StuckPending: bound, yet no container status and no event.
fn classify_silent(pod: &PodView, node: &str, cluster: &impl ClusterView, out: &mut Vec<Finding>) {
    if pod.phase == PodPhase::Pending && pod.containers.is_empty() && !has_events(pod, cluster) {
        let since = pod.scheduled().unwrap_or(pod.created());
        let mut evidence = summary(format!(
            "bound to {node} but the kubelet reported no container status and no event"
        ));
        evidence.facts.insert("phase".into(), "Pending".into());
        out.push(finding(FailureClass::StuckPending, pod, since, evidence));
    }
}

fn classify_failed(pod: &PodView, out: &mut Vec<Finding>) {
    let reason = pod.reason().unwrap_or("");
    let class = if reason == "Evicted" {
        FailureClass::Evicted
    } else if is_admission_reason(reason) {
        FailureClass::AdmissionRejected
    } else if pod.owner == OwnerKind::Job {
        return; // a failed Job pod is the Job's to count (backoffLimit), not a leftover
    } else {
        FailureClass::Failed
    };
    let finished = pod
        .containers
        .iter()
        .filter_map(|c| match c.state {
            ContainerState::Terminated { finished, .. } => finished,
            _ => None,
        })
        .max()
        .or_else(|| pod.condition("Ready").and_then(|c| c.since))
        .or(pod.started())
        .unwrap_or(pod.created());
    let what = if reason.is_empty() {
        "Failed".to_string()
    } else {
        format!("Failed ({reason})")
    };
    let mut evidence = summary(match pod.message() {
        Some(m) => format!("{what}: {m}"),
        None => what,
    });
    evidence.facts.insert("phase".into(), "Failed".into());
    if !reason.is_empty() {
        evidence.facts.insert("reason".into(), reason.to_string());
    }
    add_containers(&mut evidence, pod, |c| {
        matches!(c.state, ContainerState::Terminated { .. })
    });
    out.push(finding(class, pod, finished, evidence));
}

fn classify_unbound(pod: &PodView, cluster: &impl ClusterView, out: &mut Vec<Finding>) {
    if pod.phase != PodPhase::Pending {
        return;
    }
    match pod.condition("PodScheduled") {
        Some(c) if c.status == Status::False && c.reason.as_deref() == Some("Unschedulable") => {
            let mut evidence = summary(format!(
                "not schedulable: {}",
                c.message
                    .as_deref()
                    .unwrap_or("the scheduler found no fitting node")
            ));
            evidence.conditions.push(pod_condition_evidence(c));
            out.push(finding(
                FailureClass::Unschedulable,
                pod,
                c.since.unwrap_or(pod.created()),
                evidence,
            ));
        }
        Some(c) if c.status == Status::False => {}
        _ if !has_events(pod, cluster) => {
            let evidence =
                summary("Pending, not bound to a node, with no scheduling verdict and no event".to_string());
            out.push(finding(FailureClass::StuckPending, pod, pod.created(), evidence));
        }
        _ => {}
    }
}

fn classify_containers(pod: &PodView, knobs: &Knobs, out: &mut Vec<Finding>) {
    let mut seen = std::collections::BTreeSet::new();
    for c in pod.containers.iter() {
        let Some(class) = container_class(pod, c, knobs) else {
            continue;
        };
        if !seen.insert(class) {
            continue; // one finding per class and pod; its evidence lists every container
        }
        let since = c.state_since.or(pod.started()).unwrap_or(pod.created());
        let mut evidence = summary(container_summary(class, c));
        add_containers(&mut evidence, pod, |other| {
            container_class(pod, other, knobs) == Some(class)
        });
        if let Some(image) = Some(&c.image).filter(|i| !i.is_empty()) {
            evidence.facts.insert("image".into(), image.to_string());
        }
        out.push(finding(class, pod, since, evidence));
    }
}

/// The class a container's state signals, if any.
fn container_class(pod: &PodView, c: &ContainerView, knobs: &Knobs) -> Option<FailureClass> {
    match &c.state {
        ContainerState::Waiting {
            reason: Some(reason), ..
        } => {
            let reason = &**reason;
            if IMAGE_PULL_REASONS.contains(&reason) {
                Some(FailureClass::ImagePullFailure)
            } else if START_FAILURE_REASONS.contains(&reason)
                || (reason == "CrashLoopBackOff"
                    && c.last_terminated
                        .as_ref()
                        .and_then(|t| t.reason.as_deref())
                        .is_some_and(|r| NEVER_RAN_REASONS.contains(&r)))
            {
                Some(FailureClass::ContainerStartFailure)
            } else if reason == "CrashLoopBackOff" {
                (c.restarts >= knobs.crashloop_min_restarts).then_some(FailureClass::CrashLoop)
            } else if reason == "ContainerCreating" && pod.phase == PodPhase::Pending {
                Some(FailureClass::StuckContainerCreating)
            } else if reason == "PodInitializing" && pod.phase == PodPhase::Pending {
                Some(FailureClass::StuckInitializing)
            } else {
                None
            }
        }
        // An init container still running keeps the pod initializing; it counts once `for` passes.
        ContainerState::Running { .. } if c.init && pod.phase == PodPhase::Pending => {
            Some(FailureClass::StuckInitializing)
        }
        _ => None,
    }
}

fn container_summary(class: FailureClass, c: &ContainerView) -> String {
    let kind = if c.init { "init container" } else { "container" };
    match &c.state {
        ContainerState::Waiting { reason, message } => {
            let reason = reason.as_deref().unwrap_or("Waiting");
            let restarts = if class == FailureClass::CrashLoop {
                format!(" after {} restarts", c.restarts)
            } else {
                String::new()
            };
            match message {
                Some(m) => format!("{kind} {} waiting in {reason}{restarts}: {m}", c.name),
                None => format!("{kind} {} waiting in {reason}{restarts}", c.name),
            }
        }
        _ => format!(
            "{kind} {} still running; the pod has not finished initializing",
            c.name
        ),
    }
}

fn has_events(pod: &PodView, cluster: &impl ClusterView) -> bool {
    cluster
        .events_of(
            "Pod",
            Some(&pod.namespace),
            &pod.name,
            &pod.uid,
            Some(pod.created()),
        )
        .next()
        .is_some()
}

fn add_containers(evidence: &mut Evidence, pod: &PodView, keep: impl Fn(&ContainerView) -> bool) {
    evidence
        .containers
        .extend(pod.containers.iter().filter(|c| keep(c)).map(container_evidence));
}

fn finding(class: FailureClass, pod: &PodView, since: Secs, evidence: Evidence) -> Finding {
    let alike = (class.properties().family == Some(Family::PodsAlike))
        .then(|| Box::new(super::alike::alike(class, pod, &evidence.summary, since)));
    Finding {
        class,
        subject: Subject::pod(pod),
        since,
        evidence,
        alike,
    }
}

pub(crate) fn summary(text: String) -> Evidence {
    Evidence {
        summary: text,
        ..Default::default()
    }
}

pub(crate) fn rfc3339(secs: Secs) -> String {
    time(secs).0.to_string()
}

/// A duration for people: 45s, 3m, 2h5m.
pub fn human(secs: Secs) -> String {
    let secs = secs.max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 && s % 3600 < 60 => format!("{}h", s / 3600),
        s if s < 86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        s if s % 86400 < 3600 => format!("{}d", s / 86400),
        s => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}
