//! What classification may ask of the rest of the cluster, and a plain snapshot that answers it.

use std::collections::HashMap;

use crate::classify::sick_node::SickNodeCause;
use crate::events::EventIndex;
use crate::view::{EventView, LeaseView, NodeView, PodView, Secs, Shared, Uid};

/// The node a pod is bound to, as far as the input knows.
#[derive(Clone, Copy, Debug)]
pub enum NodeLookup<'a> {
    Present(&'a NodeView),
    /// The node does not exist (since when, if known).
    Gone {
        since: Option<Secs>,
    },
    /// The input holds no nodes: nothing can be said.
    Unknown,
}

/// The cluster around the object being classified. The operator's stores implement it; so does
/// [`Snapshot`], for offline input and tests.
pub trait ClusterView {
    fn node(&self, name: &str) -> NodeLookup<'_>;
    fn events<'a>(
        &'a self,
        kind: &'a str,
        namespace: Option<&'a str>,
        name: &str,
    ) -> impl Iterator<Item = &'a EventView> + 'a;
    /// The events about this very object, not a predecessor of the same name (a StatefulSet pod
    /// recreated as db-0 must not inherit the old db-0's events): those whose involvedObject.uid
    /// is the object's (the kubelet names a node by its name there), and, of those that carry no
    /// uid, the ones last seen since the object was created.
    fn events_of<'a>(
        &'a self,
        kind: &'a str,
        namespace: Option<&'a str>,
        name: &'a str,
        uid: &'a Uid,
        created: Option<Secs>,
    ) -> impl Iterator<Item = &'a EventView> + 'a {
        self.events(kind, namespace, name)
            .filter(move |e| match &e.object_uid {
                Some(u) => u == uid || (kind == "Node" && matches!(u, Uid::Other(text) if **text == *name)),
                None => created.is_none_or(|c| e.last_seen >= c),
            })
    }
    fn lease(&self, node: &str) -> Option<&LeaseView>;
    /// When any node Lease was last seen renewed, on the observer's clock (None: not observed,
    /// offline input). Older than a heartbeat's threshold, the Lease stream itself is stale (a
    /// watch that stopped delivering, a control plane that stopped writing), and no node can be
    /// told late from it.
    fn leases_seen_renewing(&self) -> Option<Secs> {
        None
    }
    fn pods_on<'a>(&'a self, node: &str) -> impl Iterator<Item = &'a PodView> + 'a;
    fn node_count(&self) -> usize;
    /// When the node was held by a correlated cause of nodes down together (from, to; to is
    /// `Secs::MAX` while it holds, its cool-off included): its Ready transitions then were the
    /// storm's, not the node's, and do not count toward NodeFlapping.
    fn held_together(&self, _node: &str) -> &[(Secs, Secs)] {
        &[]
    }
    /// The node is the cause of its pods' failures (core's sick-node rule, from the pods'
    /// findings): node classification reports it as NodeBlackHole.
    fn sick_node(&self, _node: &str) -> Option<&SickNodeCause> {
        None
    }
}

/// Everything in memory, as read from a file or built by a test.
#[derive(Default, Debug, Clone)]
pub struct Snapshot {
    pub pods: Vec<PodView>,
    pub nodes: Vec<NodeView>,
    pub events: EventIndex,
    pub leases: Vec<LeaseView>,
    /// Whether the input holds nodes at all (Orphaned and NodeLost are only judged if so).
    pub nodes_known: bool,
    /// When a Lease was last seen renewed, where the input was observed over time (a replay);
    /// None for a dump.
    pub leases_seen_renewing: Option<Secs>,
    /// Where the input was observed over time (a replay): when each node was held by nodes down
    /// together (see [`ClusterView::held_together`]); empty for a dump.
    pub held_together: HashMap<String, Vec<(Secs, Secs)>>,
    /// The nodes found the cause of their pods' failures (see [`ClusterView::sick_node`]):
    /// `classify_snapshot` finds them from the pods.
    pub sick_nodes: HashMap<String, SickNodeCause>,
    /// The node label that names a node's pool, if the cluster has one (nodes failing together
    /// in a pool are one cause, as in a zone).
    pub pool_label: Option<String>,
    node_index: HashMap<Shared, usize>,
    lease_index: HashMap<Shared, usize>,
    pods_by_node: HashMap<Shared, Vec<usize>>,
}

impl Snapshot {
    pub fn new(
        pods: Vec<PodView>,
        nodes: Vec<NodeView>,
        events: Vec<EventView>,
        leases: Vec<LeaseView>,
    ) -> Self {
        let mut index = EventIndex::new(64, Secs::MAX / 4);
        for e in events {
            index.insert(e);
        }
        let nodes_known = !nodes.is_empty();
        let node_index = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        let lease_index = leases
            .iter()
            .enumerate()
            .map(|(i, l)| (l.node.clone(), i))
            .collect();
        let mut pods_by_node: HashMap<Shared, Vec<usize>> = HashMap::new();
        for (i, p) in pods.iter().enumerate() {
            if let Some(node) = &p.node {
                pods_by_node.entry(node.clone()).or_default().push(i);
            }
        }
        Snapshot {
            pods,
            nodes,
            events: index,
            leases,
            nodes_known,
            leases_seen_renewing: None,
            held_together: HashMap::new(),
            sick_nodes: HashMap::new(),
            pool_label: None,
            node_index,
            lease_index,
            pods_by_node,
        }
    }
}

impl crate::classify::RunningFine for Snapshot {
    fn running_fine(
        &self,
        workloads: &std::collections::HashSet<String>,
    ) -> std::collections::HashMap<String, std::collections::HashSet<crate::classify::sick_node::Fine>> {
        crate::classify::running_fine_among(self.pods.iter(), workloads)
    }
}

impl ClusterView for Snapshot {
    fn node(&self, name: &str) -> NodeLookup<'_> {
        match self.node_index.get(name) {
            Some(&i) => NodeLookup::Present(&self.nodes[i]),
            None if self.nodes_known => NodeLookup::Gone { since: None },
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
        self.lease_index.get(node).map(|&i| &self.leases[i])
    }

    fn leases_seen_renewing(&self) -> Option<Secs> {
        self.leases_seen_renewing
    }

    fn pods_on<'a>(&'a self, node: &str) -> impl Iterator<Item = &'a PodView> + 'a {
        self.pods_by_node
            .get(node)
            .into_iter()
            .flatten()
            .map(|&i| &self.pods[i])
    }

    fn node_count(&self) -> usize {
        self.nodes.len()
    }

    fn held_together(&self, node: &str) -> &[(Secs, Secs)] {
        self.held_together.get(node).map_or(&[], Vec::as_slice)
    }

    fn sick_node(&self, node: &str) -> Option<&SickNodeCause> {
        self.sick_nodes.get(node)
    }
}
