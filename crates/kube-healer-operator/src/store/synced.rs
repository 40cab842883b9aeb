//! Which watches have listed their first state (readiness, and the decisions that wait for it).

/// Which watches have completed their initial list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Synced {
    pub pods: bool,
    pub nodes: bool,
    pub events: bool,
    pub leases: bool,
    pub namespaces: bool,
    pub policies: bool,
    /// HealingActions: the actions a restarted or new leader counts against rates and
    /// maxConcurrent.
    pub records: bool,
    /// Other tools' maintenance resources (NodeClaims, Machines, NodeMaintenances): which
    /// nodes are taken down on purpose.
    pub nodeclaims: bool,
    pub machines: bool,
    pub nodemaintenances: bool,
}

impl Synced {
    /// The flag of a watch, by its resource name (None: a watch no decision waits for).
    pub fn flag(&mut self, resource: &str) -> Option<&mut bool> {
        match resource {
            "pods" => Some(&mut self.pods),
            "nodes" => Some(&mut self.nodes),
            "events" => Some(&mut self.events),
            "leases" => Some(&mut self.leases),
            "namespaces" => Some(&mut self.namespaces),
            "healingpolicies" => Some(&mut self.policies),
            "healingactions" => Some(&mut self.records),
            "nodeclaims" => Some(&mut self.nodeclaims),
            "machines" => Some(&mut self.machines),
            "nodemaintenances" => Some(&mut self.nodemaintenances),
            _ => None,
        }
    }

    pub fn all(self) -> bool {
        self.pods
            && self.nodes
            && self.events
            && self.leases
            && self.namespaces
            && self.policies
            && self.records
            && self.nodeclaims
            && self.machines
            && self.nodemaintenances
    }
}
