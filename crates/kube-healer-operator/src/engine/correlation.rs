//! The correlated causes in force: many pods failing alike (one failure told the same way by
//! several workloads' pods, or pulls failing from one registry on many nodes), many nodes failing
//! the same way together (down, late heartbeats, flapping, one condition, ...), in a zone or
//! across the cluster; the control plane itself, when the operator's own calls fail or crawl. Kept from the findings that may be part of one, and recomputed at most once a
//! second and before any decision, never once per change (its cost grows with the failing
//! targets, and a start-up list of thousands of failing pods would make that quadratic).

use std::collections::HashMap;

use kube_healer_core::classify::{NodeFamily, RunningFine, Topology};
use kube_healer_core::view::Secs;
use kube_healer_core::{Correlated, CorrelatedCause, Finding, Knobs};

use crate::metrics::Metrics;
use crate::target::Target;

/// Whether a finding may be part of a correlated cause: its class declares a family, or it
/// carries what a pod cut off with its node last said (see `classify_pod`).
fn input(finding: &Finding) -> bool {
    finding.class.properties().family.is_some() || finding.alike.is_some()
}

/// How long the members of a cause that cleared stay held: nodes recover one by one, and a node
/// whose status lags the others' must not be acted on as the cause clears.
pub const COOL_OFF: Secs = 60;

#[derive(Debug, Default)]
pub struct Correlation {
    /// Findings that may be part of a correlated cause, by target.
    inputs: HashMap<Target, Vec<Finding>>,
    /// The correlated causes in force.
    current: Vec<Correlated>,
    /// Causes that cleared, and when: their members stay held for [`COOL_OFF`].
    cooling: Vec<(Correlated, Secs)>,
    /// What decisions read: the causes in force and those cooling off.
    holding: Vec<Correlated>,
    /// The inputs changed since `current` was computed.
    dirty: bool,
}

impl Correlation {
    /// Takes note of a target's findings; marks the causes for recomputing only if the findings
    /// that matter changed.
    pub fn update(&mut self, target: &Target, findings: &[Finding]) {
        let relevant: Vec<Finding> = findings.iter().filter(|f| input(f)).cloned().collect();
        let same = |a: &[Finding], b: &[Finding]| {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| x.class == y.class && x.since == y.since && x.alike == y.alike)
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

    /// The causes are recomputed at the next refresh (their thresholds changed).
    pub fn invalidate(&mut self) {
        self.dirty = true;
    }

    /// Recomputes the causes if their inputs changed; logs those that appear and clear. A cause
    /// that clears at `now` cools off for [`COOL_OFF`]. Returns whether what holds may have
    /// changed.
    pub fn refresh(
        &mut self,
        (topology, fine): (impl FnOnce() -> Topology, &dyn RunningFine),
        control_plane: Option<Correlated>,
        knobs: &Knobs,
        metrics: &Metrics,
        now: Secs,
    ) -> bool {
        // The control plane's cause comes from the operator's own calls, not from findings: the
        // causes are recomputed when it appears or clears; while it holds, its message (counts)
        // is brought up to date in place, without recomputing the others.
        let was = self
            .current
            .iter()
            .position(|c| c.cause == CorrelatedCause::ControlPlane);
        match (was, &control_plane) {
            (Some(i), Some(now)) if self.current[i].message != now.message => {
                self.current[i].message = now.message.clone();
                self.hold();
            }
            (Some(_), None) | (None, Some(_)) => self.dirty = true,
            _ => {}
        }
        let cooled = self.cooling.len();
        self.cooling.retain(|(_, at)| *at + COOL_OFF > now);
        if !self.dirty {
            if self.cooling.len() != cooled {
                self.hold();
                return true;
            }
            return false;
        }
        self.dirty = false;
        let mut now_correlated = kube_healer_core::classify::correlate(
            self.inputs.values().flatten(),
            &topology(),
            knobs,
            &self.current,
            fine,
        );
        now_correlated.extend(control_plane);
        self.carry_nodes(&mut now_correlated);
        for c in &now_correlated {
            if !self.current.iter().any(|old| old.cause == c.cause) {
                tracing::warn!(cause = ?c.cause, members = c.members.len(), message = %c.message, "correlated finding: per-target actions of the policies it holds are held");
            }
        }
        for old in &self.current {
            if !now_correlated.iter().any(|c| c.cause == old.cause) {
                tracing::info!(cause = ?old.cause, cool_off = COOL_OFF, "correlated finding cleared: its members stay held for the cool-off");
                let mut cooling = old.clone();
                cooling.message = format!(
                    "{} (cleared at {now}; its members stay held for a {COOL_OFF}s cool-off while they recover)",
                    old.message
                );
                self.cooling.retain(|(c, _)| c.cause != old.cause);
                self.cooling.push((cooling, now));
            }
        }
        self.cooling
            .retain(|(c, _)| !now_correlated.iter().any(|n| n.cause == c.cause));
        metrics.correlated.set(now_correlated.len() as i64);
        self.current = now_correlated;
        self.hold();
        true
    }

    /// A cause keeps every node it held while it lasts, and cools off with all of them: nodes
    /// recover one by one, and the first to recover is as much the storm's as the last (a second
    /// wave must find it still held, not a node fault of its own). (A cause of pods failing
    /// alike keeps those still failing: core carries them over.)
    fn carry_nodes(&self, now_correlated: &mut [Correlated]) {
        for c in now_correlated
            .iter_mut()
            .filter(|c| matches!(c.cause, CorrelatedCause::Nodes { .. }))
        {
            if let Some(old) = self.current.iter().find(|old| old.cause == c.cause) {
                for member in &old.members {
                    if !c.members.iter().any(|m| m.uid == member.uid) {
                        c.members.push(member.clone());
                    }
                }
            }
        }
    }

    fn hold(&mut self) {
        self.holding = self
            .current
            .iter()
            .cloned()
            .chain(self.cooling.iter().map(|(c, _)| c.clone()))
            .collect();
    }

    /// The member nodes of the causes of nodes down together that hold now (in force or cooling
    /// off), each with when its cause began.
    pub fn down_together(&self) -> impl Iterator<Item = (&str, Secs)> {
        self.holding
            .iter()
            .filter(|c| {
                matches!(
                    &c.cause,
                    CorrelatedCause::Nodes {
                        family: NodeFamily::Down,
                        ..
                    }
                )
            })
            .flat_map(|c| {
                c.members
                    .iter()
                    .filter(|m| m.kind == kube_healer_api::TargetKind::Node)
                    .map(move |m| (m.name.as_str(), c.since))
            })
    }

    /// The causes as last computed.
    pub fn current(&self) -> &[Correlated] {
        &self.current
    }

    /// The causes decisions are held by: those in force and those cooling off.
    pub fn holding(&self) -> &[Correlated] {
        &self.holding
    }
}
