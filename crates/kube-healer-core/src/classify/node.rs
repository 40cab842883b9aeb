//! Node classes.

use kube_healer_api::FailureClass;

use super::pod::{human, rfc3339, summary};
use crate::cluster::ClusterView;
use crate::events::tally;
use crate::finding::{Finding, Subject, node_condition_evidence};
use crate::thresholds::Knobs;
use crate::view::{ContainerState, LeaseView, NodeView, PodPhase, PodView, Secs, Status};

pub const PRESSURE_TYPES: &[&str] = &["MemoryPressure", "DiskPressure", "PIDPressure"];

/// The substring of the kubelet's Ready message when the pod lifecycle event generator stalls.
pub const PLEG_MESSAGE: &str = "PLEG is not healthy";

/// Appends the findings of one node to `out`. Allocates nothing for a healthy node.
pub fn classify_node(
    node: &NodeView,
    cluster: &impl ClusterView,
    knobs: &Knobs,
    now: Secs,
    out: &mut Vec<Finding>,
) {
    let ready = node.condition("Ready");
    let ready_status = node.ready();
    match (ready_status, ready) {
        (Status::False, Some(c)) => {
            let since = c.since.unwrap_or(now);
            let mut evidence = summary(format!(
                "NotReady: {}",
                c.message.as_deref().unwrap_or("no message")
            ));
            evidence.conditions.push(node_condition_evidence(c));
            if c.message.as_deref().is_some_and(|m| m.contains(PLEG_MESSAGE)) {
                let mut pleg = evidence.clone();
                pleg.summary = format!(
                    "the container runtime stopped answering: {}",
                    c.message.as_deref().unwrap_or("")
                );
                out.push(finding(FailureClass::PLEGUnhealthy, node, since, pleg));
            }
            out.push(finding(FailureClass::NodeNotReady, node, since, evidence));
        }
        // A node that has not reported a Ready condition yet is registering, not lost.
        (Status::Unknown, Some(_)) => {
            let since = ready.and_then(|c| c.since).unwrap_or(now);
            let mut evidence = summary(format!(
                "unreachable: {}",
                ready
                    .and_then(|c| c.message.as_deref())
                    .unwrap_or("the node reports no Ready condition")
            ));
            evidence.conditions.extend(ready.map(node_condition_evidence));
            if let Some(heartbeat) = ready.and_then(|c| c.heartbeat) {
                evidence
                    .facts
                    .insert("lastHeartbeatTime".into(), rfc3339(heartbeat));
            }
            add_lease(&mut evidence, cluster, node, now);
            out.push(finding(FailureClass::NodeUnreachable, node, since, evidence));
        }
        _ => {}
    }

    classify_conditions(node, knobs, now, out);
    classify_flapping(node, cluster, knobs, now, out);
    if ready_status == Status::True {
        classify_heartbeat_lag(node, cluster, knobs, now, out);
        classify_black_hole(node, cluster, knobs, now, out);
    }
    classify_system_oom(node, cluster, knobs, now, out);
}

fn classify_conditions(node: &NodeView, knobs: &Knobs, now: Secs, out: &mut Vec<Finding>) {
    let pressures = node.conditions.iter().filter(|c| {
        PRESSURE_TYPES.contains(&&*c.type_)
            && c.status == Status::True
            && knobs.pressure_type.as_deref().is_none_or(|t| t == &*c.type_)
    });
    let mut pressure = None;
    for c in pressures {
        let (since, evidence) = pressure.get_or_insert_with(|| (Secs::MAX, summary(String::new())));
        *since = (*since).min(c.since.unwrap_or(now));
        evidence.conditions.push(node_condition_evidence(c));
    }
    if let Some((since, mut evidence)) = pressure {
        let types: Vec<&str> = evidence.conditions.iter().map(|c| c.type_.as_str()).collect();
        evidence.summary = format!("under pressure: {}", types.join(", "));
        out.push(finding(FailureClass::NodePressure, node, since, evidence));
    }

    for c in node.conditions.iter() {
        let standard = &*c.type_ == "Ready" || PRESSURE_TYPES.contains(&&*c.type_);
        let wanted = match &knobs.node_condition_type {
            Some(t) => t == &*c.type_,
            // Without a type: any non-standard condition in its problem state. NetworkUnavailable
            // and node-problem-detector's conditions are problems when True.
            None => !standard,
        };
        // Without a type, a condition named `...Ready` (EKS's node monitoring agent's
        // KernelReady, NetworkingReady, ...) is healthy when True and a problem when False: read
        // with the NPD convention, every healthy node of such a cluster would show a failure.
        let problem = match (&knobs.node_condition_type, c.type_.ends_with("Ready")) {
            (None, true) => crate::view::Status::False,
            _ => knobs.node_condition_status,
        };
        if wanted && c.status == problem {
            let mut evidence = summary(format!(
                "{}={}: {}",
                c.type_,
                c.status.as_str(),
                c.message
                    .as_deref()
                    .or(c.reason.as_deref())
                    .unwrap_or("no message")
            ));
            evidence.conditions.push(node_condition_evidence(c));
            out.push(finding(
                FailureClass::NodeCondition,
                node,
                c.since.unwrap_or(now),
                evidence,
            ));
        }
    }
}

/// Ready transitions within the window: from the watcher's history of the Ready condition and
/// from NodeReady/NodeNotReady events (which also catch blips shorter than a watch resync); the
/// larger count wins, so one transition seen both ways is not counted twice.
fn classify_flapping(
    node: &NodeView,
    cluster: &impl ClusterView,
    knobs: &Knobs,
    now: Secs,
    out: &mut Vec<Finding>,
) {
    let from = now - knobs.flapping_window;
    // Transitions while the node was down with many others (a partition, a slow control plane)
    // were the storm's, not the node's own flapping.
    let storm = cluster.held_together(&node.name);
    let own = |t: Secs| !storm.iter().any(|(a, b)| (*a..=*b).contains(&t));
    let history: Vec<Secs> = node
        .ready_transitions
        .iter()
        .copied()
        .filter(|&t| t >= from && own(t))
        .collect();
    let events = tally(
        cluster.events_of("Node", None, &node.name, &node.uid, None),
        from,
        |e| matches!(&*e.reason, "NodeReady" | "NodeNotReady") && own(e.last_seen),
    );
    let from_history = history.len() as u32;
    let (count, said, since) = if from_history >= events.count {
        (from_history, from_history.to_string(), history.first().copied())
    } else {
        (events.count, events.said(), events.first)
    };
    if count >= knobs.flapping_transitions {
        let mut evidence = summary(format!(
            "Ready changed {said} times in the last {} (threshold {})",
            human(knobs.flapping_window),
            knobs.flapping_transitions
        ));
        evidence.events = events.events;
        evidence
            .facts
            .insert("readyTransitions".into(), count.to_string());
        if let Some(c) = node.condition("Ready") {
            evidence.conditions.push(node_condition_evidence(c));
        }
        out.push(finding(
            FailureClass::NodeFlapping,
            node,
            since.unwrap_or(now),
            evidence,
        ));
    }
}

fn classify_heartbeat_lag(
    node: &NodeView,
    cluster: &impl ClusterView,
    knobs: &Knobs,
    now: Secs,
    out: &mut Vec<Finding>,
) {
    let Some(heartbeat) = cluster.lease(&node.name).and_then(LeaseView::heartbeat) else {
        return;
    };
    let stream_stale = cluster
        .leases_seen_renewing()
        .is_some_and(|last| now - last >= knobs.heartbeat_lease_age);
    let age = now - heartbeat;
    if age >= knobs.heartbeat_lease_age && !stream_stale {
        let mut evidence = summary(format!(
            "node Lease last renewed {} ago (threshold {}) while the node still reads Ready",
            human(age),
            human(knobs.heartbeat_lease_age)
        ));
        add_lease(&mut evidence, cluster, node, now);
        out.push(finding(
            FailureClass::HeartbeatLag,
            node,
            heartbeat + knobs.heartbeat_lease_age,
            evidence,
        ));
    }
}

fn classify_system_oom(
    node: &NodeView,
    cluster: &impl ClusterView,
    knobs: &Knobs,
    now: Secs,
    out: &mut Vec<Finding>,
) {
    let from = now - knobs.system_oom_window;
    let t = tally(
        cluster.events_of("Node", None, &node.name, &node.uid, None),
        from,
        |e| &*e.reason == "SystemOOM",
    );
    if t.count >= knobs.system_oom_count {
        let mut evidence = summary(format!(
            "{} SystemOOM events in the last {} (threshold {})",
            t.said(),
            human(knobs.system_oom_window),
            knobs.system_oom_count
        ));
        evidence.events = t.events;
        out.push(finding(
            FailureClass::SystemOOM,
            node,
            t.first.unwrap_or(now),
            evidence,
        ));
    }
}

/// A pod bound to the node that has not started: Pending with no container status, or every
/// container waiting in ContainerCreating. Returns since when.
pub fn unstarted_since(pod: &PodView) -> Option<Secs> {
    if pod.phase != PodPhase::Pending || pod.deletion().is_some() || pod.node.is_none() {
        return None;
    }
    let creating = pod.containers.iter().all(|c| {
        matches!(&c.state, ContainerState::Waiting { reason: Some(r), .. } if &**r == "ContainerCreating")
            || c.state == ContainerState::Unknown
    });
    creating.then(|| pod.scheduled().unwrap_or(pod.created()))
}

fn classify_black_hole(
    node: &NodeView,
    cluster: &impl ClusterView,
    knobs: &Knobs,
    now: Secs,
    out: &mut Vec<Finding>,
) {
    let mut stuck: Vec<(Secs, &PodView)> = cluster
        .pods_on(&node.name)
        .filter_map(|p| unstarted_since(p).map(|s| (s, p)))
        .filter(|(s, _)| now - s >= knobs.blackhole_pod_age)
        .collect();
    let min = knobs.blackhole_min_pods as usize;
    // Pods that fail there while their workloads run fine elsewhere tell the same.
    let sick = cluster.sick_node(&node.name).and_then(|s| s.finding(node, min));
    if stuck.len() < min.max(1) {
        out.extend(sick);
        return;
    }
    stuck.sort_by_key(|(s, _)| *s);
    // Told both ways, it began when the first did (its episode does not move when the
    // unstarted pods come to count).
    let since = (stuck[min.max(1) - 1].0 + knobs.blackhole_pod_age).min(sick.map_or(Secs::MAX, |f| f.since));
    let names: Vec<String> = stuck
        .iter()
        .take(10)
        .map(|(_, p)| format!("{}/{}", p.namespace, p.name))
        .collect();
    let mut evidence = summary(format!(
        "Ready, but {} pods bound to it have not started for {} or more: {}{}",
        stuck.len(),
        human(knobs.blackhole_pod_age),
        names.join(", "),
        if stuck.len() > 10 { ", ..." } else { "" }
    ));
    evidence
        .facts
        .insert("unstartedPods".into(), stuck.len().to_string());
    out.push(finding(FailureClass::NodeBlackHole, node, since, evidence));
}

fn add_lease(
    evidence: &mut kube_healer_api::Evidence,
    cluster: &impl ClusterView,
    node: &NodeView,
    now: Secs,
) {
    if let Some(lease) = cluster.lease(&node.name) {
        if let Some(renewed) = lease.renewed {
            evidence.facts.insert("leaseRenewTime".into(), rfc3339(renewed));
        }
        if let Some(heartbeat) = lease.heartbeat() {
            evidence.facts.insert("leaseAge".into(), human(now - heartbeat));
        }
        if let Some(d) = lease.duration_seconds {
            evidence
                .facts
                .insert("leaseDurationSeconds".into(), d.to_string());
        }
    }
}

fn finding(
    class: FailureClass,
    node: &NodeView,
    since: Secs,
    evidence: kube_healer_api::Evidence,
) -> Finding {
    Finding {
        class,
        subject: Subject::node(node),
        since,
        evidence,
        alike: None,
    }
}
