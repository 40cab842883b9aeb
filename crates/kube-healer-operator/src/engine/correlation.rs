//! The correlated causes in force: one registry failing pulls on many nodes, many nodes down
//! together. Kept from the findings that may be part of one, and recomputed at most once a
//! second and before any decision, never once per change (its cost grows with the failing
//! targets, and a start-up list of thousands of failing pods would make that quadratic).

use std::collections::HashMap;

use kube_healer_api::FailureClass;
use kube_healer_core::{Correlated, Finding, Knobs};

use crate::metrics::Metrics;
use crate::target::Target;

/// The classes that may be part of a correlated cause.
const INPUT_CLASSES: &[FailureClass] = &[
    FailureClass::ImagePullFailure,
    FailureClass::NodeNotReady,
    FailureClass::NodeUnreachable,
];

#[derive(Debug, Default)]
pub struct Correlation {
    /// Findings that may be part of a correlated cause, by target.
    inputs: HashMap<Target, Vec<Finding>>,
    /// The correlated causes in force.
    current: Vec<Correlated>,
    /// The inputs changed since `current` was computed.
    dirty: bool,
}

impl Correlation {
    /// Takes note of a target's findings; marks the causes for recomputing only if the findings
    /// that matter changed.
    pub fn update(&mut self, target: &Target, findings: &[Finding]) {
        let relevant: Vec<Finding> = findings
            .iter()
            .filter(|f| INPUT_CLASSES.contains(&f.class))
            .cloned()
            .collect();
        let same = |a: &[Finding], b: &[Finding]| {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| x.class == y.class && x.since == y.since)
        };
        let previous = self.inputs.get(target);
        if previous.map_or(relevant.is_empty(), |p| same(p, &relevant)) {
            return;
        }
        if relevant.is_empty() {
            self.inputs.remove(target);
        } else {
            self.inputs.insert(target.clone(), relevant);
        }
        self.dirty = true;
    }

    /// Recomputes the causes if their inputs changed; logs those that appear and clear.
    pub fn refresh(&mut self, node_count: usize, knobs: &Knobs, metrics: &Metrics) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let now_correlated =
            kube_healer_core::classify::correlate(self.inputs.values().flatten(), node_count, knobs);
        for c in &now_correlated {
            if !self.current.iter().any(|old| old.cause == c.cause) {
                tracing::warn!(cause = ?c.cause, members = c.members.len(), message = %c.message, "correlated finding: per-target actions are held");
            }
        }
        for old in &self.current {
            if !now_correlated.iter().any(|c| c.cause == old.cause) {
                tracing::info!(cause = ?old.cause, "correlated finding cleared");
            }
        }
        metrics.correlated.set(now_correlated.len() as i64);
        self.current = now_correlated;
    }

    /// The causes as last computed.
    pub fn current(&self) -> &[Correlated] {
        &self.current
    }
}
