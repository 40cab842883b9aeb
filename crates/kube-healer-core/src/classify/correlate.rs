//! Correlation: one cause behind many findings.

use std::collections::{HashMap, HashSet};

use kube_healer_api::FailureClass;

use crate::finding::{Correlated, CorrelatedCause, Finding};
use crate::thresholds::Knobs;

/// The registry host of an image reference (docker.io when the reference names none).
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// Finds the correlated causes among `findings`, given the number of nodes in the cluster.
pub fn correlate<'a>(
    findings: impl IntoIterator<Item = &'a Finding>,
    node_count: usize,
    knobs: &Knobs,
) -> Vec<Correlated> {
    let findings: Vec<&Finding> = findings.into_iter().collect();
    let mut out = Vec::new();

    // One registry failing pulls on many nodes.
    let mut by_registry: HashMap<&str, Vec<&Finding>> = HashMap::new();
    for f in findings
        .iter()
        .copied()
        .filter(|f| f.class == FailureClass::ImagePullFailure)
    {
        if let Some(image) = f.evidence.facts.get("image") {
            by_registry.entry(registry_of(image)).or_default().push(f);
        }
    }
    let mut registries: Vec<_> = by_registry.into_iter().collect();
    registries.sort_by(|a, b| a.0.cmp(b.0));
    for (registry, members) in registries {
        let nodes: HashSet<&str> = members.iter().filter_map(|f| f.subject.node.as_deref()).collect();
        if members.len() >= knobs.correlated_registry_pods && nodes.len() >= knobs.correlated_registry_nodes {
            out.push(Correlated {
                cause: CorrelatedCause::RegistryPullFailures {
                    registry: registry.to_string(),
                },
                classes: vec![FailureClass::ImagePullFailure],
                since: members.iter().map(|f| f.since).min().unwrap_or_default(),
                message: format!(
                    "{} pods on {} nodes fail to pull images from {registry}: the registry, not the pods",
                    members.len(),
                    nodes.len()
                ),
                members: members.iter().map(|f| f.subject.clone()).collect(),
            });
        }
    }

    // Many nodes down together.
    let down: Vec<&Finding> = findings
        .iter()
        .copied()
        .filter(|f| {
            matches!(
                f.class,
                FailureClass::NodeNotReady | FailureClass::NodeUnreachable
            )
        })
        .collect();
    let down_nodes: HashSet<&str> = down.iter().map(|f| f.subject.name.as_str()).collect();
    if node_count > 0
        && down_nodes.len() >= knobs.correlated_nodes_min
        && down_nodes.len() * 100 >= knobs.correlated_nodes_percent * node_count
    {
        out.push(Correlated {
            cause: CorrelatedCause::NodesDown,
            // The node findings, and the pod findings that stem from a node being down: a pod
            // lost with its node, stuck Terminating on it, or left by it.
            classes: vec![
                FailureClass::NodeNotReady,
                FailureClass::NodeUnreachable,
                FailureClass::PLEGUnhealthy,
                FailureClass::NodeLost,
                FailureClass::StuckTerminating,
                FailureClass::Orphaned,
            ],
            since: down.iter().map(|f| f.since).min().unwrap_or_default(),
            message: format!(
                "{} of {node_count} nodes are NotReady or unreachable together ({}%): likely a partition or a control-plane fault; per-node actions are held",
                down_nodes.len(),
                down_nodes.len() * 100 / node_count
            ),
            members: down.iter().map(|f| f.subject.clone()).collect(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::registry_of;

    #[test]
    fn registry_hosts() {
        assert_eq!(registry_of("nginx:1.27"), "docker.io");
        assert_eq!(registry_of("library/nginx"), "docker.io");
        assert_eq!(registry_of("registry.k8s.io/pause:3.10"), "registry.k8s.io");
        assert_eq!(registry_of("localhost:5000/app"), "localhost:5000");
        assert_eq!(registry_of("ghcr.io/org/app@sha256:abc"), "ghcr.io");
    }
}
