//! Which watches have listed their first state (readiness, and the decisions that wait for it).

use kube_healer_core::decide::Maintainer;

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
    /// Other tools' maintenance resources, in `Maintainer::ALL`'s order: which nodes are taken
    /// down on purpose. Only the decisions that read it wait for them (see `maintainers`).
    pub maintainers: [bool; Maintainer::ALL.len()],
}

impl Synced {
    /// The flag of a watch, by its resource name (None: a watch no decision waits for).
    pub fn flag(&mut self, resource: &str) -> Option<&mut bool> {
        if let Some(i) = Maintainer::ALL.iter().position(|m| m.resource() == resource) {
            return Some(&mut self.maintainers[i]);
        }
        match resource {
            "pods" => Some(&mut self.pods),
            "nodes" => Some(&mut self.nodes),
            "events" => Some(&mut self.events),
            "leases" => Some(&mut self.leases),
            "namespaces" => Some(&mut self.namespaces),
            "healingpolicies" => Some(&mut self.policies),
            "healingactions" => Some(&mut self.records),
            _ => None,
        }
    }

    /// The watches every decision waits for.
    pub fn all(self) -> bool {
        self.pods
            && self.nodes
            && self.events
            && self.leases
            && self.namespaces
            && self.policies
            && self.records
    }

    /// Whether which nodes are under someone else's maintenance is known: a node's decisions,
    /// and those of pods whose failure is their node's, wait for it. The rest do not: a tool's
    /// resources that cannot be listed (a 403, a conversion webhook down) hold no CrashLoop.
    pub fn maintainers(self) -> bool {
        self.maintainers.iter().all(|m| *m)
    }
}
