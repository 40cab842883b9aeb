//! What a decision saw around its target, taken along to the call for the fresh recheck (core's
//! `recheck_pod` / `recheck_node`): the views it was made on, the events that explain it, the
//! node and Lease it depends on. A few kilobytes per destructive action, dropped when the action
//! ends; the recheck's GETs replace the target's and the node's views with what the API server
//! holds at the call.

use kube_healer_api::HealingPolicySpec;
use kube_healer_core::cluster::ClusterView;
use std::sync::Arc;

use kube_healer_core::decide::{PlannedSignals, Seen, ShutdownEvidence, without_fencing};
use kube_healer_core::policy::CompiledCondition;
use kube_healer_core::view::Secs;

use crate::store::Stores;
use crate::target::Target;

/// `(episode, counted)`: the finding's start (the recheck finds the failure in it), and the episode as the
/// policy counts it (maintenanceGrace runs from it, as at the gate).
pub fn seen(
    condition: &CompiledCondition,
    (episode, counted): (Secs, Secs),
    (spec, step): (&HealingPolicySpec, usize),
    target: &Target,
    stores: &Stores,
    planned: &Arc<PlannedSignals>,
) -> Option<Seen> {
    let mut seen = Seen {
        planned: planned.clone(),
        maintenance_ends: kube_healer_core::decide::maintenance_ends(spec, counted),
        budget: None,
        without_fencing: without_fencing(spec, step),
        shutdown: ShutdownEvidence::of(spec, step),
        condition: condition.clone(),
        episode,
        pod: None,
        node: None,
        lease: None,
        events: Vec::new(),
        pods_on_node: Vec::new(),
        sick_node: None,
        leases_seen_renewing: stores.leases_seen_renewing(),
    };
    match target {
        Target::Pod(ns, name) => {
            let pod = stores.pod_at(ns, name)?;
            seen.events = stores.events("Pod", Some(ns), name).cloned().collect();
            if let Some(node) = &pod.node {
                seen.node = stores.node_view(node).cloned();
                seen.lease = stores.lease(node).cloned();
            }
            seen.pod = Some(pod.clone());
        }
        Target::Node(name) => {
            seen.node = Some(stores.node_view(name)?.clone());
            seen.lease = stores.lease(name).cloned();
            seen.events = stores.events("Node", None, name).cloned().collect();
            seen.pods_on_node = stores.pods_on(name).cloned().collect();
            seen.sick_node = stores.sick_node(name).cloned();
        }
    }
    Some(seen)
}
