//! Correlation: one cause behind many findings.

use std::collections::{HashMap, HashSet};

use kube_healer_api::FailureClass;

use crate::finding::{Correlated, CorrelatedCause, Finding};
use crate::thresholds::Knobs;

use super::node_families::{Topology, nodes_together};

/// The registry host of an image reference (docker.io when the reference names none).
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// Finds the correlated causes among `findings`, given where the cluster's nodes are.
pub fn correlate<'a>(
    findings: impl IntoIterator<Item = &'a Finding>,
    topology: &Topology,
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

    // Many nodes failing the same way together, by zone and cluster-wide.
    out.extend(nodes_together(&findings, topology, knobs));
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
