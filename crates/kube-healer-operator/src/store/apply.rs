//! Watch events into the stores, one function per kind. Each returns the targets it touched (to
//! be classified again) and whether it ended the watch's first list.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::runtime::watcher::Event as W;
use kube_healer_core::convert::{avoid_expiry, event_view, lease_view, node_view, pod_view};
use kube_healer_core::decide::OUT_OF_SERVICE;
use kube_healer_core::events::NORMAL_MARKER;
use kube_healer_core::trust::Untrusted;
use kube_healer_core::view::Secs;

use super::{PodKey, Stores};
use crate::target::Target;

/// What applying one watch event did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Targets to classify again (one gone from the stores is cleared when classified).
    pub targets: Vec<Target>,
    /// The event ended a (re)list: the watch is synced.
    pub listed: bool,
    /// An event about a node from an untrusted writer, ignored (and why).
    pub ignored: Option<Untrusted>,
}

impl Applied {
    fn targets(targets: Vec<Target>) -> Self {
        Applied {
            targets,
            listed: false,
            ignored: None,
        }
    }

    fn listed(targets: Vec<Target>) -> Self {
        Applied {
            targets,
            listed: true,
            ignored: None,
        }
    }
}

pub(super) fn pod_target(key: &PodKey) -> Target {
    Target::Pod(key.namespace.clone(), key.name.clone())
}

impl Stores {
    /// Every node but `except`, by name: when the disruption budget frees a place, the nodes it
    /// held are decided again in this order, so the same node takes the place whichever
    /// process decides (a map's order differs from one process to the next, and a replay must
    /// decide as the live operator did).
    fn nodes_in_order(&self, except: Option<&kube_healer_core::view::Shared>) -> Vec<Target> {
        let mut names: Vec<_> = self.nodes.keys().filter(|n| Some(*n) != except).collect();
        names.sort();
        names.into_iter().map(|n| Target::Node(n.clone())).collect()
    }

    pub fn apply_pod(&mut self, event: W<Pod>, now: Secs) -> Applied {
        match event {
            W::Apply(pod) | W::InitApply(pod) => {
                let view = match pod_view(&pod, &mut self.interner) {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(error = %e, "skipping an unreadable pod");
                        return Applied::default();
                    }
                };
                let key = self.upsert_pod(view, now);
                self.relist_pods.saw(&key);
                Applied::targets(vec![pod_target(&key)])
            }
            W::Delete(pod) => {
                let key = PodKey {
                    namespace: self
                        .interner
                        .str(pod.metadata.namespace.as_deref().unwrap_or_default()),
                    name: pod.metadata.name.as_deref().unwrap_or_default().into(),
                };
                self.remove_pod(&key);
                Applied::targets(vec![pod_target(&key)])
            }
            W::Init => {
                self.relist_pods.begin();
                Applied::default()
            }
            W::InitDone => {
                let stale = match self.relist_pods.finish() {
                    Some(seen) => self.retain_pods(&seen),
                    None => Vec::new(),
                };
                Applied::listed(stale.iter().map(pod_target).collect())
            }
        }
    }

    pub fn apply_node(&mut self, event: W<Node>, now: Secs) -> Applied {
        match event {
            W::Apply(node) | W::InitApply(node) => {
                let view = match node_view(&node, &mut self.interner) {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(error = %e, "skipping an unreadable node");
                        return Applied::default();
                    }
                };
                let name = view.name.clone();
                match avoid_expiry(&node) {
                    Some(until) => self.avoid_until.insert(name.clone(), until),
                    None => self.avoid_until.remove(&name),
                };
                // A node kube-healer let go of frees the disruption budget: the node decisions
                // it held are made again. A node fenced or let go (the out-of-service taint):
                // the pods a ForceDelete held for it are decided again.
                let (freed, fencing_changed) = self.nodes.get(&name).map_or((false, false), |old| {
                    (
                        old.held_by.len() > view.held_by.len(),
                        old.has_taint(OUT_OF_SERVICE) != view.has_taint(OUT_OF_SERVICE),
                    )
                });
                let ready_changed = self.upsert_node(view, now);
                self.relist_nodes.saw(&name);
                let mut targets = vec![Target::Node(name.clone())];
                if ready_changed || fencing_changed {
                    targets.extend(self.pod_keys_on(&name).iter().map(pod_target));
                }
                if freed {
                    targets.extend(self.nodes_in_order(Some(&name)));
                }
                Applied::targets(targets)
            }
            W::Delete(node) => {
                let name = self
                    .interner
                    .str(node.metadata.name.as_deref().unwrap_or_default());
                let freed = self.nodes.get(&name).is_some_and(|old| !old.held_by.is_empty());
                self.remove_node(&name, now);
                let mut targets = vec![Target::Node(name.clone())];
                targets.extend(self.pod_keys_on(&name).iter().map(pod_target));
                if freed {
                    targets.extend(self.nodes_in_order(None));
                }
                Applied::targets(targets)
            }
            W::Init => {
                self.relist_nodes.begin();
                Applied::default()
            }
            W::InitDone => {
                let mut targets = Vec::new();
                if let Some(seen) = self.relist_nodes.finish() {
                    for name in self.retain_nodes(&seen, now) {
                        targets.push(Target::Node(name.clone()));
                        targets.extend(self.pod_keys_on(&name).iter().map(pod_target));
                    }
                }
                let first = !self.nodes_synced;
                self.nodes_synced = true;
                if first {
                    // Orphaned pods can only be judged once the nodes are known.
                    targets.extend(
                        self.pods
                            .values()
                            .map(|p| Target::Pod(p.namespace.clone(), p.name.clone())),
                    );
                }
                Applied::listed(targets)
            }
        }
    }

    pub fn apply_event(&mut self, event: W<Event>, now: Secs) -> Applied {
        match event {
            W::Apply(e) | W::InitApply(e) => {
                // Evidence about nodes only from the node's own reporters (see core's `trust`).
                if let Err(why) = self.trust.judge(&e) {
                    return Applied {
                        ignored: Some(why),
                        ..Default::default()
                    };
                }
                let mut view = match event_view(&e, &mut self.interner) {
                    Ok(v) => v,
                    Err(err) => {
                        tracing::debug!(error = %err, "skipping an unreadable event");
                        return Applied::default();
                    }
                };
                let target = match &*view.object.kind {
                    "Pod" => view
                        .object
                        .namespace
                        .clone()
                        .map(|ns| Target::Pod(ns, view.object.name.clone())),
                    "Node" => Some(Target::Node(view.object.name.clone())),
                    _ => None,
                };
                let Some(target) = target else {
                    return Applied::default();
                };
                // A Normal event no class or policy reads leaves only a marker: the object had
                // events (see core's `events::normal`).
                if e.type_.as_deref() == Some("Normal") && !self.normal.keeps(&view.reason) {
                    view.reason = self.interner.str(NORMAL_MARKER);
                    view.message = "".into();
                    view.id = None;
                }
                self.add_event(view);
                Applied::targets(vec![target])
            }
            W::Delete(_) | W::Init => Applied::default(),
            W::InitDone => {
                self.events.prune(now);
                Applied::listed(Vec::new())
            }
        }
    }

    pub fn apply_lease(&mut self, event: W<Lease>, now: Secs) -> Applied {
        match event {
            W::Apply(l) | W::InitApply(l) => {
                let Ok(view) = lease_view(&l, &mut self.interner) else {
                    return Applied::default();
                };
                let node = view.node.clone();
                self.relist_leases.saw(&node);
                self.upsert_lease(view, now);
                Applied::targets(vec![Target::Node(node)])
            }
            W::Delete(l) => {
                if let Some(name) = l.metadata.name.as_deref() {
                    self.remove_lease(name);
                }
                Applied::default()
            }
            W::Init => {
                self.relist_leases.begin();
                Applied::default()
            }
            W::InitDone => {
                if let Some(seen) = self.relist_leases.finish() {
                    self.retain_leases(&seen);
                }
                Applied::listed(Vec::new())
            }
        }
    }
}
