//! Other tools' resources that say a node is taken down on purpose: a Karpenter NodeClaim being
//! deleted, a Cluster API Machine being deleted or kept from remediation, a medik8s
//! NodeMaintenance. Each names its node in its own field; what one says is read here, once,
//! for the operator's watches, its recordings and their replays alike.

use serde_json::Value;

/// A kind of resource another tool takes nodes down with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Maintainer {
    /// Karpenter v1 (pkg/apis/v1/nodeclaim.go), and v1beta1: `status.nodeName`; a NodeClaim
    /// being deleted is its node being drained and terminated.
    NodeClaim,
    /// Cluster API (api/core/v1beta2 Machine): `status.nodeRef.name`; a Machine being deleted
    /// is its node being drained and removed. The annotations its MachineHealthCheck skips
    /// remediation for (docs/book tasks/healthcheck.md, "Skipping Remediation") keep every
    /// remediator off it.
    Machine,
    /// medik8s node-maintenance-operator (api/v1beta1): `spec.nodeName`; while one exists its
    /// node is cordoned and drained on purpose.
    NodeMaintenance,
}

/// Where a [`Maintainer`]'s resource is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaintainerApi {
    pub group: &'static str,
    /// Tried in order: the first the API server serves is watched.
    pub versions: &'static [&'static str],
    pub kind: &'static str,
}

/// The Machine annotations Cluster API's MachineHealthCheck skips remediation for.
pub const MACHINE_SKIP_ANNOTATIONS: &[&str] =
    &["cluster.x-k8s.io/skip-remediation", "cluster.x-k8s.io/paused"];

/// What one resource says about its node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaintainerSays {
    pub node: String,
    /// That the node is taken down on purpose, and how it says so (None: it names the node
    /// but takes it nowhere).
    pub signal: Option<String>,
}

impl Maintainer {
    pub const ALL: [Maintainer; 3] = [
        Maintainer::NodeClaim,
        Maintainer::Machine,
        Maintainer::NodeMaintenance,
    ];

    pub fn api(self) -> MaintainerApi {
        match self {
            Maintainer::NodeClaim => MaintainerApi {
                group: "karpenter.sh",
                // v1beta1: Karpenter 0.32 to 0.37 (the same status.nodeName).
                versions: &["v1", "v1beta1"],
                kind: "NodeClaim",
            },
            Maintainer::Machine => MaintainerApi {
                group: "cluster.x-k8s.io",
                versions: &["v1beta2", "v1beta1"],
                kind: "Machine",
            },
            Maintainer::NodeMaintenance => MaintainerApi {
                group: "nodemaintenance.medik8s.io",
                versions: &["v1beta1"],
                kind: "NodeMaintenance",
            },
        }
    }

    /// The resource's plural name: its watch goes by it.
    pub fn resource(self) -> &'static str {
        match self {
            Maintainer::NodeClaim => "nodeclaims",
            Maintainer::Machine => "machines",
            Maintainer::NodeMaintenance => "nodemaintenances",
        }
    }

    pub fn from_resource(resource: &str) -> Option<Maintainer> {
        Maintainer::ALL.into_iter().find(|m| m.resource() == resource)
    }

    /// The fields [`Maintainer::says`] reads (a recording keeps only these).
    pub fn read_paths(self) -> &'static [&'static [&'static str]] {
        match self {
            Maintainer::NodeClaim => &[&["status", "nodeName"]],
            Maintainer::Machine => &[&["status", "nodeRef", "name"]],
            Maintainer::NodeMaintenance => &[&["spec", "nodeName"], &["spec", "reason"]],
        }
    }

    /// What the object says about its node; None when it names none (a NodeClaim not yet
    /// launched, a Machine not yet joined).
    pub fn says(self, object: &Value) -> Option<MaintainerSays> {
        let at = |path: &[&str]| {
            path.iter()
                .try_fold(object, |v, k| v.get(k))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let node = at(self.read_paths()[0])?.to_string();
        let name = at(&["metadata", "name"]).unwrap_or("(unnamed)");
        let deleting = at(&["metadata", "deletionTimestamp"]).is_some();
        let signal = match self {
            Maintainer::NodeClaim => deleting.then(|| {
                format!("Karpenter is deleting NodeClaim {name} (it drains and terminates the node)")
            }),
            Maintainer::Machine => {
                let namespace = at(&["metadata", "namespace"]).unwrap_or_default();
                let annotations = object.pointer("/metadata/annotations").and_then(Value::as_object);
                let skip = MACHINE_SKIP_ANNOTATIONS
                    .iter()
                    .find(|a| annotations.is_some_and(|m| m.contains_key(**a)));
                match (deleting, skip) {
                    (true, _) => Some(format!(
                        "Cluster API is deleting Machine {namespace}/{name} (it drains and removes the node)"
                    )),
                    (false, Some(a)) => Some(format!(
                        "Cluster API Machine {namespace}/{name} carries {a}: it is not to be remediated"
                    )),
                    (false, None) => None,
                }
            }
            Maintainer::NodeMaintenance => Some(match at(&["spec", "reason"]) {
                Some(reason) => format!("medik8s NodeMaintenance {name} drains the node: {reason}"),
                None => format!("medik8s NodeMaintenance {name} drains the node"),
            }),
        };
        Some(MaintainerSays { node, signal })
    }
}
