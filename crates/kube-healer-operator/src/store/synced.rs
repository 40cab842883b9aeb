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
}

impl Synced {
    pub fn all(self) -> bool {
        self.pods && self.nodes && self.events && self.leases && self.namespaces && self.policies
    }
}
