//! Correlation: one cause behind many findings: pods failing alike, nodes failing together.

use std::collections::{BTreeMap, HashMap, HashSet};

use kube_healer_api::FailureClass;

use crate::finding::{Burst, Correlated, CorrelatedCause, Finding, PodsKey};
use crate::thresholds::Knobs;
use crate::view::Secs;

use super::node_families::{Topology, nodes_together};

/// The registry host of an image reference (docker.io when the reference names none).
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// Finds the correlated causes among `findings`, given where the cluster's nodes are and the
/// causes found last time (`previous`: a cause of pods failing alike lasts while any of its
/// members still fails, though fewer than it took to begin).
/// `fine` tells where workloads' pods run fine (a sick node's pods fail while their siblings
/// run fine elsewhere).
pub fn correlate<'a>(
    findings: impl IntoIterator<Item = &'a Finding>,
    topology: &Topology,
    knobs: &Knobs,
    previous: &[Correlated],
    fine: &dyn super::RunningFine,
) -> Vec<Correlated> {
    let findings: Vec<&Finding> = findings.into_iter().collect();
    let mut out = pods_alike(&findings, knobs, previous);
    // A sick node's pods, a failing rollout's: those a cause that holds every policy holds
    // already (a registry's) are not reported again. Pods failing alike by a failure's
    // signature hold only the policies their bursts meet (found at the loosest thresholds any
    // policy asks for), so they stand beside these, never for them.
    let sick = super::sick_node::sick_nodes(&findings, knobs, previous, fine);
    let rollouts = super::rollout::failing_rollouts(&findings, previous, fine);
    for sick in sick.into_iter().chain(rollouts) {
        let holds_all = |c: &&Correlated| !matches!(c.cause, CorrelatedCause::Pods(PodsKey::Failure(_)));
        let held = |m: &crate::finding::Subject| {
            out.iter()
                .filter(holds_all)
                .any(|c| c.members.iter().any(|o| o.uid == m.uid))
        };
        if !sick.members.iter().all(held) {
            out.push(sick);
        }
    }
    // Many nodes failing the same way together, by zone and cluster-wide.
    out.extend(nodes_together(&findings, topology, knobs));
    out
}

/// Pods failing alike (see `PodsKey`): a cause begins when, within the `pods_alike` window,
/// enough pods begin to fail alike across enough of what tells them apart (workloads for a
/// failure's signature, nodes for a registry). The window says only when a cause begins: its
/// members are every pod failing alike while it lasts, whenever each began (one that began
/// before the others is the first the cause broke, not a failure of its own).
fn pods_alike(findings: &[&Finding], knobs: &Knobs, previous: &[Correlated]) -> Vec<Correlated> {
    let mut by_key: BTreeMap<PodsKey, Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        for key in PodsKey::of(f) {
            by_key.entry(key).or_default().push(f);
        }
    }
    let mut out = Vec::new();
    for (key, mut members) in by_key {
        members.sort_by_key(|f| began(f));
        let cause = CorrelatedCause::Pods(key.clone());
        let was = previous.iter().find(|c| c.cause == cause);
        let Some(since) = was.map(|c| c.since).or_else(|| burst(&key, &members, knobs)) else {
            continue;
        };
        if members.is_empty() {
            continue;
        }
        // One cause per set of pods: one whose pods another already holds (a registry's pulls
        // told alike) is not reported again.
        let held = |f: &&Finding| {
            out.iter()
                .any(|c: &Correlated| c.members.iter().any(|m| m.uid == f.subject.uid))
        };
        if was.is_none() && members.iter().all(held) {
            continue;
        }
        let mut classes: Vec<FailureClass> = members.iter().map(|f| f.class).collect();
        classes.sort();
        classes.dedup();
        let before = was.map_or(&[][..], |c| &c.bursts);
        out.push(Correlated {
            message: message(&key, &members),
            bursts: bursts(&key, &members, &knobs.pods_alike_windows, before),
            cause,
            classes,
            since,
            members: members.iter().map(|f| f.subject.clone()).collect(),
        });
    }
    out
}

/// When a pod's failure began: as its alike says (a pod cut off with its node: when its
/// containers' last state did).
fn began(f: &Finding) -> Secs {
    f.alike.as_ref().map_or(f.since, |a| a.since)
}

/// What tells apart the pods of a key: their workloads for a failure's signature (many
/// workloads failing alike share a dependency), their nodes for a registry (pulls failing on
/// many nodes are the registry's).
fn spread(key: &PodsKey, f: &Finding) -> String {
    match key {
        PodsKey::Registry(_) => f.subject.node.clone().unwrap_or_default(),
        PodsKey::Failure(_) | PodsKey::Node(_) | PodsKey::Rollout(_) => f
            .alike
            .as_ref()
            .map(|a| a.workload.to_string())
            .unwrap_or_default(),
    }
}

/// When the first burst of `members` (sorted by since) began: within the window, at least the
/// pods and the spread the key's thresholds ask for.
fn burst(key: &PodsKey, members: &[&Finding], knobs: &Knobs) -> Option<Secs> {
    let (min_pods, min_spread) = match key {
        PodsKey::Registry(_) => (knobs.correlated_registry_pods, knobs.correlated_registry_nodes),
        PodsKey::Failure(_) => (knobs.pods_alike.pods, knobs.pods_alike.workloads),
        // Built by their own rules (classify::sick_node, classify::rollout), never keyed here.
        PodsKey::Node(_) | PodsKey::Rollout(_) => return None,
    };
    windows(key, members, knobs.pods_alike.window)
        .into_iter()
        .find(|w| w.pods >= min_pods && w.spread >= min_spread)
        .map(|w| w.began)
}

/// A run of members beginning within the window: when its first began, how many pods, and
/// across how many of what tells them apart.
struct Run {
    began: Secs,
    pods: usize,
    spread: usize,
}

/// The longest run of `members` (sorted by since) beginning within `window` that ends at each
/// member.
fn windows(key: &PodsKey, members: &[&Finding], window: Secs) -> Vec<Run> {
    let spreads: Vec<String> = members.iter().map(|f| spread(key, f)).collect();
    let mut in_window: HashMap<&str, usize> = HashMap::new();
    let mut start = 0;
    let mut out = Vec::with_capacity(members.len());
    for (end, f) in members.iter().enumerate() {
        *in_window.entry(&spreads[end]).or_default() += 1;
        while began(members[start]) + window < began(f) {
            let s = &spreads[start];
            if let Some(n) = in_window.get_mut(s.as_str()) {
                *n -= 1;
                if *n == 0 {
                    in_window.remove(s.as_str());
                }
            }
            start += 1;
        }
        out.push(Run {
            began: began(members[start]),
            pods: end + 1 - start,
            spread: in_window.len(),
        });
    }
    out
}

/// The bursts of a failure's signature (see `Correlated::bursts`): those of `members` now, in
/// each of `windows`, and those the cause had seen (`before`), none outdone in both pods and
/// workloads by another of its window.
fn bursts(key: &PodsKey, members: &[&Finding], windows: &[Secs], before: &[Burst]) -> Vec<Burst> {
    if !matches!(key, PodsKey::Failure(_)) {
        return Vec::new();
    }
    let now = windows.iter().flat_map(|&window| {
        let runs = self::windows(key, members, window).into_iter();
        runs.map(move |r| Burst {
            window,
            pods: r.pods,
            workloads: r.spread,
        })
    });
    let mut all: Vec<Burst> = now.chain(before.iter().copied()).collect();
    // By window, most pods first (most workloads first among equals): each kept only if it
    // spans more workloads than every burst of its window with more pods.
    all.sort_by(|a, b| (a.window, b.pods, b.workloads).cmp(&(b.window, a.pods, a.workloads)));
    let mut front: Vec<Burst> = Vec::new();
    for b in all {
        let outdone = front
            .last()
            .is_some_and(|last| last.window == b.window && b.workloads <= last.workloads);
        if !outdone {
            front.push(b);
        }
    }
    front
}

/// The cause in a line: how many pods, across how many of what, and what they share.
fn message(key: &PodsKey, members: &[&Finding]) -> String {
    let spread: HashSet<String> = members.iter().map(|f| spread(key, f)).collect();
    match key {
        // Their own rules tell these (classify::sick_node, classify::rollout).
        PodsKey::Node(_) | PodsKey::Rollout(_) => format!("{} pods fail together", members.len()),
        PodsKey::Registry(registry) => format!(
            "{} pods on {} nodes fail to pull images from {registry}: the registry, not the pods",
            members.len(),
            spread.len()
        ),
        PodsKey::Failure(signature) => {
            let mut named: Vec<&String> = spread.iter().collect();
            named.sort();
            let more = named.len().saturating_sub(3);
            let named: Vec<&str> = named.iter().take(3).map(|s| s.as_str()).collect();
            format!(
                "{} pods of {} workloads ({}{}) fail alike ({signature}): a cause they share, not the pods",
                members.len(),
                spread.len(),
                named.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            )
        }
    }
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
