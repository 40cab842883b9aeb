//! Which decisions share one record: the removal of dead pods. A pod that stopped for good
//! (Evicted, Failed, AdmissionRejected: phase Failed, never to run again) removed by Delete or
//! ForceDelete is a leftover cleaned away; a bulk clean-up of 10,000 of them is one kind of work,
//! and one record per hundred pods tells it as well as one per pod, at a fraction of the writes.
//! A pod that may still run (StuckTerminating, Orphaned, NodeLost: its containers may be alive on
//! a node cut off) is never batched: each of those decisions is weighed alone and keeps its own
//! record.

use kube_healer_api::{ActionKind, FailureClass, TargetKind};

/// Whether a decision may share a batch record with others of its policy, class and action.
pub fn batchable(kind: TargetKind, class: FailureClass, action: ActionKind) -> bool {
    kind == TargetKind::Pod && action.properties().removes_at_once() && class.properties().stopped_for_good
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_removals_of_dead_pods_are_batched() {
        assert!(batchable(
            TargetKind::Pod,
            FailureClass::Evicted,
            ActionKind::Delete
        ));
        assert!(batchable(
            TargetKind::Pod,
            FailureClass::Failed,
            ActionKind::ForceDelete
        ));
        assert!(batchable(
            TargetKind::Pod,
            FailureClass::AdmissionRejected,
            ActionKind::Delete
        ));
        // A pod that may still run keeps a record of its own.
        for class in [
            FailureClass::StuckTerminating,
            FailureClass::Orphaned,
            FailureClass::NodeLost,
        ] {
            assert!(
                !batchable(TargetKind::Pod, class, ActionKind::ForceDelete),
                "{class}"
            );
        }
        // Any other action keeps a record of its own.
        assert!(!batchable(
            TargetKind::Pod,
            FailureClass::Evicted,
            ActionKind::Evict
        ));
        assert!(!batchable(
            TargetKind::Pod,
            FailureClass::Evicted,
            ActionKind::Event
        ));
        assert!(!batchable(
            TargetKind::Node,
            FailureClass::Failed,
            ActionKind::Delete
        ));
    }
}
