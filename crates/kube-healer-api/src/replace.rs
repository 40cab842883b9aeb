//! Replace: the node's machine replaced by whoever owns it, with that owner's own rules. A
//! Karpenter node's NodeClaim is deleted (Karpenter drains the node through the Eviction API,
//! within its NodePool's disruption budgets, and terminates the instance); a Cluster API node's
//! Machine is marked for remediation (its MachineHealthCheck and owner, a MachineSet or a
//! KubeadmControlPlane, replace it by their rules) or deleted. kube-healer reinvents neither.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;

/// On a Cluster API node: the name of its Machine.
pub const MACHINE_ANNOTATION: &str = "cluster.x-k8s.io/machine";
/// On a Cluster API node: the namespace of its Machine (and Cluster).
pub const MACHINE_NAMESPACE_ANNOTATION: &str = "cluster.x-k8s.io/cluster-namespace";
/// On a Machine: remediate it (its MachineHealthCheck marks it unhealthy; its owner replaces it).
pub const REMEDIATE_MACHINE_ANNOTATION: &str = "cluster.x-k8s.io/remediate-machine";
/// The API group of Cluster API's Machines, and of Karpenter's NodeClaims.
pub const CLUSTER_API_GROUP: &str = "cluster.x-k8s.io";
pub const KARPENTER_GROUP: &str = "karpenter.sh";

/// Parameters of Replace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplaceParams {
    /// For a Cluster API node: Annotate (default) puts cluster.x-k8s.io/remediate-machine on its
    /// Machine, so that its MachineHealthCheck and owner replace it by their rules (its
    /// remediation limits included); Delete deletes the Machine (its MachineSet makes another).
    #[serde(default)]
    pub machine: MachineReplacement,
    /// How long the node may take to go (default 30m). The action waits for it, so that
    /// maxConcurrent bounds the replacements in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

impl ReplaceParams {
    pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1800);

    pub fn timeout(&self) -> std::time::Duration {
        self.timeout.map_or(Self::DEFAULT_TIMEOUT, |t| t.as_std())
    }
}

/// How a Cluster API Machine is replaced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MachineReplacement {
    #[default]
    Annotate,
    Delete,
}

/// Who owns a node's machine, as the node tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MachineOwner {
    /// A Karpenter NodeClaim (cluster-scoped), from the node's owner reference.
    NodeClaim { name: String },
    /// A Cluster API Machine, from the node's annotations.
    Machine { namespace: String, name: String },
}

impl MachineOwner {
    /// The node's machine owner: a NodeClaim owner reference (karpenter.sh), else Cluster API's
    /// machine and cluster-namespace annotations; None when neither is there.
    pub fn of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<MachineOwner> {
        let claim = meta
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.kind == "NodeClaim" && o.api_version.split('/').next() == Some(KARPENTER_GROUP));
        if let Some(claim) = claim {
            return Some(MachineOwner::NodeClaim {
                name: claim.name.clone(),
            });
        }
        let annotations = meta.annotations.as_ref()?;
        let name = annotations.get(MACHINE_ANNOTATION).filter(|n| !n.is_empty())?;
        let namespace = annotations
            .get(MACHINE_NAMESPACE_ANNOTATION)
            .filter(|n| !n.is_empty())?;
        Some(MachineOwner::Machine {
            namespace: namespace.clone(),
            name: name.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(value: serde_json::Value) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_owner_is_read_from_the_node() {
        let karpenter = meta(serde_json::json!({"name": "n", "ownerReferences": [
            {"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim", "name": "default-x7k2p", "uid": "u"}]}));
        assert_eq!(
            MachineOwner::of(&karpenter),
            Some(MachineOwner::NodeClaim {
                name: "default-x7k2p".into()
            })
        );
        let capi = meta(serde_json::json!({"name": "n", "annotations": {
            MACHINE_ANNOTATION: "md-0-abc", MACHINE_NAMESPACE_ANNOTATION: "clusters", "cluster.x-k8s.io/cluster-name": "prod"}}));
        assert_eq!(
            MachineOwner::of(&capi),
            Some(MachineOwner::Machine {
                namespace: "clusters".into(),
                name: "md-0-abc".into()
            })
        );
        // A machine name without its namespace, another owner, nothing: no owner.
        let half = meta(serde_json::json!({"name": "n", "annotations": {MACHINE_ANNOTATION: "m"}}));
        let other = meta(serde_json::json!({"name": "n", "ownerReferences": [
            {"apiVersion": "example.com/v1", "kind": "NodeClaim", "name": "x", "uid": "u"}]}));
        for none in [half, other, meta(serde_json::json!({"name": "n"}))] {
            assert_eq!(MachineOwner::of(&none), None);
        }
    }
}
