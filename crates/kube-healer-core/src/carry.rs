//! What a view carries over from the view of the same object before it: the times the API does
//! not hold. A container state or a node condition reported without a transition time keeps the
//! time it was first seen (so its failure has a stable start: one episode, not one per update);
//! a node keeps its Ready transitions; a Lease keeps when its renewal was seen. The operator's
//! stores apply these on every watch update, and the fresh recheck before an action applies the
//! same rules to what it reads, so both classify the same object the same way.

use crate::view::{ContainerState, LeaseView, NodeView, PodView, Secs};

/// How many Ready transitions are remembered per node.
pub const TRANSITIONS_KEPT: usize = 64;

/// Carries over, from the same pod's previous view (same UID), when each container entered its
/// current state, where the status does not say, and the pod's timeline.
pub fn carry_pod(view: &mut PodView, old: &PodView, now: Secs) {
    // The times first: the timeline dates a container's change by them.
    carry_container_times(view, old, now);
    carry_pod_conditions(view, Some(old), now);
    crate::timeline::carry(view, Some(old), now);
}

/// Conditions without lastTransitionTime are dated when first seen in their status, carried
/// over from the pod's previous view (a pod first seen: now), as a node's are: a condition of
/// unknown age never counts as old.
pub fn carry_pod_conditions(view: &mut PodView, old: Option<&PodView>, now: Secs) {
    if view.conditions.iter().all(|c| c.since.is_some()) {
        return;
    }
    let old = old.filter(|o| o.uid == view.uid);
    let mut conditions = view.conditions.to_vec();
    for c in conditions.iter_mut().filter(|c| c.since.is_none()) {
        let before = old
            .and_then(|o| o.conditions.iter().find(|b| b.type_ == c.type_))
            .filter(|b| b.status == c.status);
        c.since = Some(before.and_then(|b| b.since).unwrap_or(now));
    }
    view.conditions = conditions.into();
}

fn carry_container_times(view: &mut PodView, old: &PodView, now: Secs) {
    if old.uid != view.uid {
        return;
    }
    for c in view.containers.iter_mut().filter(|c| c.state_since.is_none()) {
        let previous = old
            .containers
            .iter()
            .find(|o| o.name == c.name && o.init == c.init);
        c.state_since = match previous {
            Some(o) if same_state(&o.state, &c.state) => o.state_since,
            _ => Some(now),
        };
    }
}

/// Carries over, from the node's previous view, the first-seen times of conditions without
/// lastTransitionTime and the Ready transitions, appending one if Ready changed. Returns whether
/// Ready changed.
pub fn carry_node(view: &mut NodeView, old: Option<&NodeView>, now: Secs) -> bool {
    let mut conditions = view.conditions.to_vec();
    for c in conditions.iter_mut().filter(|c| c.since.is_none()) {
        let before = old
            .and_then(|o| o.condition(&c.type_))
            .filter(|o| o.status == c.status);
        c.since = Some(before.and_then(|o| o.since).unwrap_or(now));
    }
    view.conditions = conditions.into();
    let changed = old.is_some_and(|o| o.ready() != view.ready());
    let mut transitions: Vec<Secs> = old.map(|o| o.ready_transitions.to_vec()).unwrap_or_default();
    if changed {
        // The reported lastTransitionTime, unless it goes back before the transition seen last
        // or into the future: some agents (kwok among them) report a fixed time, and a transition
        // dated before the one it follows would escape the windows it belongs to. Then the time
        // it was seen.
        let reported = view.condition("Ready").and_then(|c| c.since).unwrap_or(now);
        let plausible = reported <= now && transitions.last().is_none_or(|last| reported >= *last);
        transitions.push(if plausible { reported } else { now });
        if transitions.len() > TRANSITIONS_KEPT {
            transitions.remove(0);
        }
    }
    view.ready_transitions = transitions.into();
    changed
}

/// A renewTime that changed is a heartbeat seen `now`; one that did not keeps the time it was
/// first seen (a relist, or another field's update, is no heartbeat). A Lease seen for the first
/// time counts as renewed now, as the node lifecycle controller counts it: its renewTime is the
/// kubelet's clock, not ours. Returns whether it was seen renewed now.
pub fn carry_lease(lease: &mut LeaseView, old: Option<&LeaseView>, now: Secs) -> bool {
    let unchanged = old.filter(|b| b.renewed == lease.renewed);
    lease.observed = Some(unchanged.and_then(|b| b.observed).unwrap_or(now));
    unchanged.is_none()
}

fn same_state(a: &ContainerState, b: &ContainerState) -> bool {
    match (a, b) {
        (ContainerState::Waiting { reason: ra, .. }, ContainerState::Waiting { reason: rb, .. }) => ra == rb,
        (ContainerState::Running { started: a }, ContainerState::Running { started: b }) => a == b,
        (ContainerState::Terminated { finished: a, .. }, ContainerState::Terminated { finished: b, .. }) => {
            a == b
        }
        (ContainerState::Unknown, ContainerState::Unknown) => true,
        _ => false,
    }
}
