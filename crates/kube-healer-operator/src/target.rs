//! What the engine classifies and decides on: a pod (by namespace and name) or a node.

use kube_healer_core::view::Shared;

/// A pod or a node, by name. Decisions and timers are kept per target.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Pod(Shared, Shared),
    Node(Shared),
}
