//! Compact stores of Pods, Nodes, Events and Leases, fed by watches. Full objects are converted
//! on arrival and dropped; only views are kept. The stores answer the core's [`ClusterView`], so
//! classification reads them as it reads a snapshot.

mod apply;
mod held_by_cause;
mod maintainers;
mod relist;
mod synced;

use std::collections::{HashMap, HashSet};

use kube_healer_core::carry::{carry_lease, carry_node, carry_pod};
use kube_healer_core::classify::sick_node::SickNodeCause;
use kube_healer_core::cluster::{ClusterView, NodeLookup};
use kube_healer_core::convert::Interner;
use kube_healer_core::events::{EventIndex, NormalEvents};
use kube_healer_core::trust::EventTrust;
use kube_healer_core::view::{EventView, LeaseView, NodeView, PodView, Secs, Shared};

pub use apply::Applied;

use crate::target::Target;
pub use held_by_cause::HeldByCause;
pub use relist::Relist;
pub use synced::Synced;

/// Identifies a pod in the store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PodKey {
    pub namespace: Shared,
    pub name: Shared,
}

/// Below this many interned entries the interner is not pruned (small clusters never need it).
const INTERNER_PRUNE_FLOOR: usize = 4096;

#[derive(Default)]
pub struct Stores {
    interner: Interner,
    /// The interner's size when it was last pruned, and the pods and nodes removed since.
    interned_after_prune: usize,
    removed_since_prune: usize,
    pods: HashMap<PodKey, PodView>,
    pods_by_node: HashMap<Shared, HashSet<PodKey>>,
    /// Controlled pods by workload (`Deployment namespace/name`), for maxDisruptedPerWorkload.
    pods_by_workload: HashMap<Shared, HashSet<PodKey>>,
    nodes: HashMap<Shared, NodeView>,
    /// Nodes deleted while watched, and when.
    gone_nodes: HashMap<Shared, Secs>,
    events: EventIndex,
    leases: HashMap<Shared, LeaseView>,
    /// When a node Lease was last seen renewed (this operator's clock).
    leases_renewing: Option<Secs>,
    /// What other tools' maintenance resources say of the nodes they take down.
    maintainers: maintainers::Maintainers,
    /// Nodes carrying Reschedule's avoid taint, and when it expires.
    avoid_until: HashMap<Shared, Secs>,
    /// Whether the node watch has listed once (before that, Orphaned cannot be judged).
    nodes_synced: bool,
    relist_pods: Relist<PodKey>,
    relist_nodes: Relist<Shared>,
    relist_leases: Relist<Shared>,
    /// When each node was held by nodes down together (its transitions then were the storm's).
    pub held_together: HeldByCause,
    /// The nodes found the cause of their pods' failures, as correlation last found them.
    sick_nodes: HashMap<String, SickNodeCause>,
    /// Whose events about nodes are evidence.
    pub trust: EventTrust,
    /// Which Normal events are kept whole (the rest leave a marker per object).
    pub normal: NormalEvents,
}

impl Stores {
    pub fn new(events: EventIndex) -> Self {
        Stores {
            events,
            ..Default::default()
        }
    }

    /// The strings shared by every view (converting an object into a view needs it).
    pub fn interner_mut(&mut self) -> &mut Interner {
        &mut self.interner
    }

    /// Forgets the interned strings and label sets no view uses any more (a deleted Job's unique
    /// labels, an evicted event's object name), once the interner has doubled since it was last
    /// pruned, or half as many pods and nodes as there are (1,024 at least) have gone since: a
    /// prune costs the interner's size, paid for by as many changes, so the work per change
    /// stays constant and a churn leaves no more than about twice what the views use.
    pub fn prune_interner(&mut self) {
        let len = self.interner.len();
        let churned = (self.pods.len() + self.nodes.len()) / 2;
        let due = len >= 2 * self.interned_after_prune || self.removed_since_prune >= churned.max(1024);
        if len >= INTERNER_PRUNE_FLOOR && due {
            self.interner.prune();
            self.interned_after_prune = self.interner.len();
            self.removed_since_prune = 0;
        }
    }

    /// Forgets when each deleted node went once no pod names it any more: the date is for the
    /// pods left bound to it (bounded by the nodes those pods name).
    pub fn prune_gone_nodes(&mut self) {
        let bound = &self.pods_by_node;
        self.gone_nodes.retain(|name, _| bound.contains_key(name));
    }

    /// Deleted nodes whose going is remembered.
    pub fn gone_nodes(&self) -> usize {
        self.gone_nodes.len()
    }

    /// Strings and label sets interned.
    pub fn interned(&self) -> usize {
        self.interner.len()
    }

    pub fn pod(&self, key: &PodKey) -> Option<&PodView> {
        self.pods.get(key)
    }

    /// The events held (each a series), and forgetting those past their age.
    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    /// The event index's memory budget.
    pub fn set_event_budget(&mut self, bytes: usize) {
        let events = std::mem::take(&mut self.events);
        self.events = events.with_budget(bytes);
    }

    /// The event index's estimated bytes and budget, and the series evicted by it so far.
    pub fn event_memory(&self) -> (usize, usize, u64) {
        let (bytes, budget) = self.events.bytes();
        (bytes, budget, self.events.evicted())
    }

    /// Keeps events as long as the longest window a policy counts them over.
    pub fn keep_events_for(&mut self, window: Secs) {
        self.events.keep_for(window);
    }

    pub fn prune_events(&mut self, now: Secs) {
        self.events.prune(now);
    }

    /// When the node's avoid taint expires, if it carries one.
    pub fn avoid_until(&self, node: &str) -> Option<Secs> {
        self.avoid_until.get(node).copied()
    }

    /// The avoid taint's removal was asked for: not again, unless the node's next update shows
    /// it stayed.
    pub fn forget_avoid(&mut self, node: &str) {
        self.avoid_until.remove(node);
    }

    pub fn pod_at(&self, namespace: &Shared, name: &Shared) -> Option<&PodView> {
        self.pods.get(&PodKey {
            namespace: namespace.clone(),
            name: name.clone(),
        })
    }

    pub fn node_view(&self, name: &str) -> Option<&NodeView> {
        self.nodes.get(name)
    }

    pub fn pods(&self) -> impl Iterator<Item = &PodView> {
        self.pods.values()
    }

    pub fn nodes(&self) -> impl Iterator<Item = &NodeView> {
        self.nodes.values()
    }

    /// Every pod and node, in a fixed order (pods by namespace and name, then nodes by name):
    /// a new leader, or a replica whose watches have all listed again, decides in the same order
    /// whatever the maps hold, so what it does is reproducible.
    pub fn targets(&self) -> Vec<Target> {
        let mut targets: Vec<Target> = self
            .pods
            .values()
            .map(|p| Target::Pod(p.namespace.clone(), p.name.clone()))
            .chain(self.nodes.values().map(|n| Target::Node(n.name.clone())))
            .collect();
        targets.sort_unstable();
        targets
    }

    /// Workloads whose pods are indexed.
    pub fn workload_count(&self) -> usize {
        self.pods_by_workload.len()
    }

    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    pub fn pod_keys_on(&self, node: &str) -> Vec<PodKey> {
        self.pods_by_node
            .get(node)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Stores a pod view, carrying over when each container entered its current state.
    pub fn upsert_pod(&mut self, mut view: PodView, now: Secs) -> PodKey {
        let key = PodKey {
            namespace: view.namespace.clone(),
            name: view.name.clone(),
        };
        // Indexed anew only when what names its workload changed (most updates are status).
        let old = self.pods.get(&key);
        let reindex = !old.is_some_and(|o| {
            o.owner == view.owner && o.owner_name == view.owner_name && o.labels == view.labels
        });
        if reindex && let Some(w) = old.and_then(kube_healer_core::decide::workload_of) {
            self.unindex_workload(&key, &w);
        }
        match self.pods.get(&key) {
            Some(old) => {
                carry_pod(&mut view, old, now);
                if old.node != view.node {
                    self.unindex(&key, old.node.clone());
                }
            }
            // A pod already in trouble when first seen starts its timeline from its view.
            None => {
                kube_healer_core::carry::carry_pod_conditions(&mut view, None, now);
                kube_healer_core::timeline::carry(&mut view, None, now)
            }
        }
        if let Some(node) = &view.node {
            self.pods_by_node
                .entry(node.clone())
                .or_default()
                .insert(key.clone());
        }
        if reindex && let Some(w) = kube_healer_core::decide::workload_of(&view) {
            let w = self.interner.str(&w);
            self.pods_by_workload.entry(w).or_default().insert(key.clone());
        }
        self.pods.insert(key.clone(), view);
        key
    }

    fn unindex_workload(&mut self, key: &PodKey, workload: &str) {
        if let Some(set) = self.pods_by_workload.get_mut(workload) {
            set.remove(key);
            if set.is_empty() {
                self.pods_by_workload.remove(workload);
            }
        }
    }

    /// A workload's pods (`Deployment namespace/name`), from the index.
    pub fn workload_siblings(&self, workload: &str) -> Vec<&PodView> {
        let keys = self.pods_by_workload.get(workload).into_iter().flatten();
        keys.filter_map(|k| self.pods.get(k)).collect()
    }

    pub fn remove_pod(&mut self, key: &PodKey) -> Option<PodView> {
        let old = self.pods.remove(key)?;
        self.removed_since_prune += 1;
        self.unindex(key, old.node.clone());
        if let Some(w) = kube_healer_core::decide::workload_of(&old) {
            self.unindex_workload(key, &w);
        }
        Some(old)
    }

    fn unindex(&mut self, key: &PodKey, node: Option<Shared>) {
        if let Some(node) = node
            && let Some(set) = self.pods_by_node.get_mut(&node)
        {
            set.remove(key);
            if set.is_empty() {
                self.pods_by_node.remove(&node);
            }
        }
    }

    /// Stores a node view, appending a Ready transition when the status changed. Returns whether
    /// Ready changed (pods on the node must then be reclassified).
    pub fn upsert_node(&mut self, mut view: NodeView, now: Secs) -> bool {
        self.gone_nodes.remove(&view.name);
        view.maintained = self.maintainers.signal(&view.name);
        let old = self.nodes.get(&view.name);
        let is_new = old.is_none();
        let changed = carry_node(&mut view, old, now);
        self.nodes.insert(view.name.clone(), view);
        changed || is_new
    }

    pub fn remove_node(&mut self, name: &str, now: Secs) {
        self.held_together.forget(name);
        self.avoid_until.remove(name);
        if let Some(node) = self.nodes.remove(name) {
            self.removed_since_prune += 1;
            self.gone_nodes.insert(node.name, now);
        }
    }

    /// Stores a Lease seen at `now`, keeping when its renewal was seen (core's `carry_lease`).
    pub fn upsert_lease(&mut self, mut lease: LeaseView, now: Secs) {
        let node = lease.node.clone();
        if carry_lease(&mut lease, self.leases.get(&node), now) {
            self.leases_renewing = Some(self.leases_renewing.map_or(now, |t| t.max(now)));
        }
        self.leases.insert(lease.node.clone(), lease);
    }

    pub fn remove_lease(&mut self, node: &str) {
        self.leases.remove(node);
    }

    pub fn add_event(&mut self, event: EventView) {
        self.events.insert(event);
    }

    /// Drops what is not in `keep` (after a relist).
    pub fn retain_pods(&mut self, keep: &HashSet<PodKey>) -> Vec<PodKey> {
        let stale: Vec<PodKey> = self.pods.keys().filter(|k| !keep.contains(*k)).cloned().collect();
        for key in &stale {
            self.remove_pod(key);
        }
        stale
    }

    pub fn retain_nodes(&mut self, keep: &HashSet<Shared>, now: Secs) -> Vec<Shared> {
        let stale: Vec<Shared> = self
            .nodes
            .keys()
            .filter(|k| !keep.contains(*k))
            .cloned()
            .collect();
        for name in &stale {
            self.remove_node(name, now);
        }
        stale
    }

    pub fn retain_leases(&mut self, keep: &HashSet<Shared>) {
        self.leases.retain(|k, _| keep.contains(k));
    }

    /// The sick nodes as correlation found them now; returns the nodes whose entry changed (their
    /// node classification may have).
    pub fn set_sick_nodes(&mut self, now: HashMap<String, SickNodeCause>) -> Vec<String> {
        let mut changed: Vec<String> = self
            .sick_nodes
            .iter()
            .filter(|(node, was)| now.get(*node) != Some(*was))
            .map(|(node, _)| node.clone())
            .collect();
        changed.extend(
            now.keys()
                .filter(|node| !self.sick_nodes.contains_key(*node))
                .cloned(),
        );
        self.sick_nodes = now;
        changed
    }

    /// When the node's last heartbeat was seen.
    pub fn lease_heartbeat(&self, node: &str) -> Option<Secs> {
        self.leases.get(node).and_then(LeaseView::heartbeat)
    }
}

/// Where workloads' pods run fine: one pass over the pods, made only when a node may be the
/// cause of its pods' failures (core's sick-node rule asks), at most once a second.
impl kube_healer_core::classify::RunningFine for Stores {
    fn running_fine(
        &self,
        workloads: &HashSet<String>,
    ) -> HashMap<String, HashSet<kube_healer_core::classify::sick_node::Fine>> {
        kube_healer_core::classify::running_fine_among(self.pods.values(), workloads)
    }
}

impl ClusterView for Stores {
    fn node(&self, name: &str) -> NodeLookup<'_> {
        match self.nodes.get(name) {
            Some(n) => NodeLookup::Present(n),
            None if self.nodes_synced => NodeLookup::Gone {
                since: self.gone_nodes.get(name).copied(),
            },
            None => NodeLookup::Unknown,
        }
    }

    fn events<'a>(
        &'a self,
        kind: &'a str,
        namespace: Option<&'a str>,
        name: &str,
    ) -> impl Iterator<Item = &'a EventView> + 'a {
        self.events.about(kind, namespace, name)
    }

    fn lease(&self, node: &str) -> Option<&LeaseView> {
        self.leases.get(node)
    }

    fn leases_seen_renewing(&self) -> Option<Secs> {
        self.leases_renewing
    }

    fn pods_on<'a>(&'a self, node: &str) -> impl Iterator<Item = &'a PodView> + 'a {
        self.pods_by_node
            .get(node)
            .into_iter()
            .flatten()
            .filter_map(|k| self.pods.get(k))
    }

    fn node_count(&self) -> usize {
        self.nodes.len()
    }

    fn held_together(&self, node: &str) -> &[(Secs, Secs)] {
        self.held_together.of(node)
    }

    fn sick_node(&self, node: &str) -> Option<&SickNodeCause> {
        self.sick_nodes.get(node)
    }
}
