//! Which events about nodes are evidence. Node classes (SystemOOM, NodeFlapping from
//! NodeReady/NodeNotReady events, event patterns on nodes) drive cordons, taints, drains and node
//! jobs, so whoever may write an Event about a node would borrow those verbs: many controllers
//! hold `events: create` cluster-wide. An event about a node counts only when it was written
//! where the node's own reporters write (the kubelet, the node lifecycle controller and
//! node-problem-detector post node events to `default`) and names one of them as its source or
//! reporting component. Everything else about nodes is ignored, and counted.
//!
//! Source and reporting component are written by the client, so a writer allowed to create
//! Events in `default` can still claim to be the kubelet: the namespace is the fence, and
//! SECURITY.md says so. Events about other objects (pods) count from anyone who may write them
//! in the pod's namespace.

use k8s_openapi::api::core::v1::Event;

/// The event sources trusted about nodes by default: the kubelet, the node lifecycle controller,
/// and node-problem-detector (by name, and by the source names of its stock monitors).
pub const DEFAULT_SOURCES: &[&str] = &[
    "kubelet",
    "node-controller",
    "node-problem-detector",
    "kernel-monitor",
    "docker-monitor",
    "systemd-monitor",
    "readonly-monitor",
    "abrt-adaptor",
    "custom-plugin-monitor",
    "health-checker",
];

/// Where those write their node events by default.
pub const DEFAULT_NAMESPACES: &[&str] = &["default"];

/// Why an event about a node was not taken as evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Untrusted {
    /// Written outside the trusted namespaces.
    Namespace,
    /// Its source and reporting component name no trusted reporter.
    Source,
}

impl Untrusted {
    pub fn as_str(self) -> &'static str {
        match self {
            Untrusted::Namespace => "namespace",
            Untrusted::Source => "source",
        }
    }
}

/// The trusted reporters of node events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventTrust {
    pub sources: Vec<String>,
    pub namespaces: Vec<String>,
}

impl Default for EventTrust {
    fn default() -> Self {
        EventTrust {
            sources: DEFAULT_SOURCES.iter().map(|s| s.to_string()).collect(),
            namespaces: DEFAULT_NAMESPACES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl EventTrust {
    /// Whether an event may count as evidence: one about a Node only from a trusted namespace
    /// and a trusted source (`source.component` or `reportingComponent`); any other as it is.
    pub fn judge(&self, event: &Event) -> Result<(), Untrusted> {
        if event.involved_object.kind.as_deref() != Some("Node") {
            return Ok(());
        }
        let namespace = event.metadata.namespace.as_deref().unwrap_or("default");
        if !self.namespaces.iter().any(|n| n == namespace) {
            return Err(Untrusted::Namespace);
        }
        let source = event.source.as_ref().and_then(|s| s.component.as_deref());
        let reporting = event.reporting_component.as_deref();
        let trusted = |name: Option<&str>| name.is_some_and(|n| self.sources.iter().any(|s| s == n));
        if trusted(source) || trusted(reporting) {
            Ok(())
        } else {
            Err(Untrusted::Source)
        }
    }
}
