//! The findings tracked on each target: which classes, since when, and whether each was reported
//! due. Their count by class is the kube_healer_findings gauge.

use std::collections::HashMap;

use kube_healer_api::FailureClass;
use kube_healer_core::view::Secs;
use kube_healer_core::{Finding, default_for};

use crate::metrics::Metrics;
use crate::target::Target;

/// A finding the engine is tracking on a target.
#[derive(Clone, Debug)]
struct Tracked {
    class: FailureClass,
    since: Secs,
    /// When this process first saw it (a failure that began long ago may be seen only now,
    /// after a restart or a watch gap).
    seen: Secs,
    due_reported: bool,
}

#[derive(Debug, Default)]
pub struct FindingTracker {
    tracked: HashMap<Target, Vec<Tracked>>,
}

impl FindingTracker {
    /// Replaces the findings on a target with those classified at `now`; counts and logs what
    /// appeared, became due and cleared. Returns the earliest due time still ahead.
    pub fn update(
        &mut self,
        target: &Target,
        findings: &[Finding],
        now: Secs,
        metrics: &Metrics,
    ) -> Option<Secs> {
        let previous = self.tracked.remove(target).unwrap_or_default();
        let mut next: Option<Secs> = None;
        let mut current: Vec<Tracked> = Vec::with_capacity(findings.len());
        for f in findings {
            let old = previous.iter().find(|t| t.class == f.class);
            if old.is_none() {
                metrics.findings.get_or_create(&Metrics::class(f.class)).inc();
                tracing::debug!(class = %f.class, target = %f.subject, since = f.since, evidence = %f.evidence.summary, "finding detected");
            }
            let mut tracked = Tracked {
                class: f.class,
                since: f.since,
                seen: old.map_or(now, |o| o.seen),
                due_reported: old.is_some_and(|o| o.due_reported && o.since == f.since),
            };
            let due = f.due_at(default_for(f.class));
            if due <= now {
                if !tracked.due_reported {
                    tracked.due_reported = true;
                    metrics.findings_due.get_or_create(&Metrics::class(f.class)).inc();
                    tracing::info!(class = %f.class, target = %f.subject, since = f.since, evidence = %f.evidence.summary, "finding due");
                }
            } else {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
            current.push(tracked);
        }
        for old in &previous {
            if !current.iter().any(|t| t.class == old.class) {
                metrics.findings.get_or_create(&Metrics::class(old.class)).dec();
                tracing::debug!(class = %old.class, target = ?target, "finding cleared");
            }
        }
        if !current.is_empty() {
            self.tracked.insert(target.clone(), current);
        }
        next
    }

    /// The target is gone: its findings clear.
    pub fn clear(&mut self, target: &Target, metrics: &Metrics) {
        if let Some(previous) = self.tracked.remove(target) {
            for old in previous {
                metrics.findings.get_or_create(&Metrics::class(old.class)).dec();
                tracing::debug!(class = %old.class, target = ?target, "finding cleared: target gone");
            }
        }
    }

    /// Whether the target has a finding of one of these classes.
    pub fn has_any(&self, target: &Target, classes: &[FailureClass]) -> bool {
        self.tracked
            .get(target)
            .is_some_and(|f| f.iter().any(|t| classes.contains(&t.class)))
    }

    /// When this process first saw the target's finding of this class.
    pub fn seen(&self, target: &Target, class: FailureClass) -> Option<Secs> {
        self.tracked
            .get(target)?
            .iter()
            .find(|t| t.class == class)
            .map(|t| t.seen)
    }

    /// The findings on a target: (class, since, due reported).
    pub fn on(&self, target: &Target) -> Vec<(FailureClass, Secs, bool)> {
        self.tracked
            .get(target)
            .map(|v| v.iter().map(|t| (t.class, t.since, t.due_reported)).collect())
            .unwrap_or_default()
    }
}
