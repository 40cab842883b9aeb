//! HealingAction records: their names, writing them around each action, and retention.

pub mod names;
pub mod retention;
pub mod writer;

pub use names::{Mode, batch_name, label_value, record_name};
pub use retention::{Records, Retention};

use kube_healer_core::decide::Removal;
use kube_healer_core::view::Secs;

/// The workload a record's action takes a pod from for its controller to replace (a live
/// Delete, Evict or Reschedule of a controlled pod that may still run), and the removal: it
/// counts against maxDisruptedPerWorkload, and the record says so in its `disrupts` annotation.
pub fn disrupts(spec: &kube_healer_api::HealingActionSpec, held: bool) -> Option<(&str, Removal)> {
    would_disrupt(spec, held).filter(|_| !spec.dry_run)
}

/// The removal a decision makes, or (a dry run) would make, as [`disrupts`] tells it.
pub fn would_disrupt(spec: &kube_healer_api::HealingActionSpec, held: bool) -> Option<(&str, Removal)> {
    let removes = !held && kube_healer_core::decide::disrupts_workload(spec.class, spec.action);
    let workload = spec.target.workload.as_deref().filter(|_| removes)?;
    let removal = Removal {
        at: spec.decided_at.0.as_second(),
        pod: spec.target.uid.clone(),
        pod_created: spec.target.created.as_ref().map_or(0, |t| t.0.as_second()),
    };
    Some((workload, removal))
}

/// The `disrupts` annotation's value: the workload, and when the pod removed was created.
pub fn disrupts_value(workload: &str, removal: &Removal) -> String {
    format!("{workload}@{}", removal.pod_created)
}

/// A `disrupts` annotation read back, the removal of pod `pod` decided at `at` (a value without
/// a creation time reads as a pod created long before).
pub fn parse_disrupts<'a>(value: &'a str, at: Secs, pod: &str) -> (&'a str, Removal) {
    let (workload, created) = value
        .rsplit_once('@')
        .and_then(|(w, c)| Some((w, c.parse().ok()?)))
        .unwrap_or((value, 0));
    let removal = Removal {
        at,
        pod: pod.to_string(),
        pod_created: created,
    };
    (workload, removal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disrupts_annotation_reads_back_as_written() {
        let removal = Removal {
            at: 50,
            pod: "uid-1".into(),
            pod_created: 40,
        };
        let value = disrupts_value("Deployment shop/web", &removal);
        assert_eq!(
            parse_disrupts(&value, 50, "uid-1"),
            ("Deployment shop/web", removal)
        );
        assert_eq!(
            parse_disrupts("Deployment shop/web", 50, "uid-1").1.pod_created,
            0
        );
    }
}
