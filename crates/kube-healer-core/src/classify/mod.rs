//! Classification: from compact views and a given `now` to findings with evidence.

pub mod alike;
pub mod control_plane;
pub mod correlate;
pub mod node;
pub mod node_families;
pub mod pod;
pub mod rollout;
pub mod sick_node;

use regex::Regex;

use kube_healer_api::FailureClass;

use crate::cluster::{ClusterView, Snapshot};
use crate::events::tally;
use crate::finding::{Correlated, Finding, Subject};
use crate::thresholds::{Knobs, default_for};
use crate::view::{Secs, Uid};

pub use control_plane::{CallSample, control_plane};
pub use correlate::correlate;
pub use node::classify_node;
pub use node_families::{Domain, NodeFamily, Topology, ZONE_LABEL, node_family_classes};
pub use pod::classify_pod;
pub use sick_node::{RunningFine, SICK_NODE_CLASSES, running_fine_among};

/// Findings and correlated causes of a whole snapshot.
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub correlated: Vec<Correlated>,
}

/// Classifies everything in `snapshot` with the default knobs (its sick nodes as
/// [`sick_nodes_of`] filled them in, if it was asked).
pub fn classify_snapshot(snapshot: &Snapshot, now: Secs) -> Report {
    classify_snapshot_with(snapshot, &Knobs::default(), now)
}

/// [`classify_snapshot`] with these knobs (a policy's pods-alike thresholds, say).
pub fn classify_snapshot_with(snapshot: &Snapshot, knobs: &Knobs, now: Secs) -> Report {
    let mut findings = Vec::new();
    for node in &snapshot.nodes {
        classify_node(node, snapshot, knobs, now, &mut findings);
    }
    for pod in &snapshot.pods {
        classify_pod(pod, snapshot, knobs, now, &mut findings);
    }
    let correlated = correlate(
        &findings,
        &Topology::by(&snapshot.nodes, snapshot.pool_label.as_deref()),
        knobs,
        &[],
        snapshot,
    );
    Report { findings, correlated }
}

/// The nodes that are the cause of their pods' failures in `snapshot` at `now` (core's sick-node
/// rule on its pods' findings), for [`Snapshot::sick_nodes`]: node classification reads them
/// there, as the operator's reads its stores'.
pub fn sick_nodes_of(
    snapshot: &Snapshot,
    now: Secs,
) -> std::collections::HashMap<String, sick_node::SickNodeCause> {
    let knobs = Knobs::default();
    let mut findings = Vec::new();
    for pod in &snapshot.pods {
        classify_pod(pod, snapshot, &knobs, now, &mut findings);
    }
    let nowhere = Topology::by(std::iter::empty(), None);
    correlate(&findings, &nowhere, &knobs, &[], snapshot)
        .iter()
        .filter_map(sick_node::SickNodeCause::of)
        .map(|(node, cause)| (node.to_string(), cause))
        .collect()
}

impl Report {
    /// The findings that have held for at least their class's default threshold.
    pub fn due(&self, now: Secs) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(move |f| f.due_at(default_for(f.class)) <= now)
    }
}

/// An event pattern of a policy: reason and message regex, at least `count` within `window`.
#[derive(Clone, Debug)]
pub struct EventPattern {
    pub reason: Option<String>,
    pub message: Option<Regex>,
    pub count: u32,
    pub window: Secs,
}

impl EventPattern {
    pub const DEFAULT_COUNT: u32 = 1;
    pub const DEFAULT_WINDOW: Secs = 600;

    /// The finding for `subject` (kind "Pod" or "Node", created at `created` if known) if its
    /// events match.
    pub fn find(
        &self,
        subject: &Subject,
        created: Option<Secs>,
        cluster: &impl ClusterView,
        now: Secs,
    ) -> Option<Finding> {
        let from = now - self.window;
        let kind = subject.kind.as_str();
        let uid = Uid::parse(&subject.uid);
        let t = tally(
            cluster.events_of(kind, subject.namespace.as_deref(), &subject.name, &uid, created),
            from,
            |e| {
                &*e.reason != crate::events::NORMAL_MARKER
                    && self.reason.as_deref().is_none_or(|r| r == &*e.reason)
                    && self.message.as_ref().is_none_or(|re| re.is_match(&e.message))
            },
        );
        let first = t.first.unwrap_or(now);
        (t.count >= self.count && t.count > 0).then(|| {
            let mut evidence = pod::summary(format!(
                "{} matching events in the last {} (threshold {})",
                t.said(),
                pod::human(self.window),
                self.count
            ));
            evidence.events = t.events;
            Finding {
                class: FailureClass::EventPattern,
                subject: subject.clone(),
                since: first,
                evidence,
                alike: None,
            }
        })
    }
}
