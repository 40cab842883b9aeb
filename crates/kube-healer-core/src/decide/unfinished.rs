//! Finishing what a process that ended left: a record written before its call, whose outcome
//! was never written. Its target gone, the call may have removed it, or another record may have:
//! the next leader, not seeing the first batch finished, decides the same pods again into
//! another batch. Each removal is claimed by one record only: a record left unfinished yields
//! every target another record of its policy removed or is still removing, and says so.

use std::collections::BTreeMap;

use kube_healer_api::HealingAction;
use kube_healer_api::record::ActionPhase;

/// What one record acted on: each target's UID with its outcome's phase, if written yet.
pub struct Acted<'a> {
    pub record: &'a str,
    pub targets: Vec<(&'a str, Option<ActionPhase>)>,
}

impl<'a> Acted<'a> {
    /// A record's targets: its own, or each member of a batch with the member's outcome.
    pub fn of(record: &'a HealingAction) -> Self {
        let status = record.status.as_ref();
        let targets = if record.spec.members.is_empty() {
            vec![(record.spec.target.uid.as_str(), status.map(|s| s.phase))]
        } else {
            let member = |uid: &str| {
                status
                    .and_then(|s| s.members.iter().find(|o| o.uid == uid))
                    .map(|o| o.phase)
            };
            let uids = record.spec.members.iter().map(|m| m.target.uid.as_str());
            uids.map(|uid| (uid, member(uid))).collect()
        };
        Acted {
            record: record.metadata.name.as_deref().unwrap_or_default(),
            targets,
        }
    }
}

/// Of `uids` (targets of the record `own`, left unfinished), those another record in `others`
/// removed or may still be removing, each with that record's name. A final outcome other than
/// success removed nothing; an outcome not final yet (or none) may still.
pub fn removed_elsewhere(own: &str, uids: &[&str], others: &[Acted]) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for other in others.iter().filter(|o| o.record != own) {
        for (uid, phase) in &other.targets {
            let removes = phase.is_none_or(|p| !p.is_final() || p == ActionPhase::Succeeded);
            if removes && uids.contains(uid) {
                found.insert(uid.to_string(), other.record.to_string());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acted<'a>(record: &'a str, targets: &[(&'a str, Option<ActionPhase>)]) -> Acted<'a> {
        Acted {
            record,
            targets: targets.to_vec(),
        }
    }

    /// The history a failover test caught: a leader recorded a batch of a and b, deleted a and
    /// died; the next leader decided b again with a new pod c into another batch and removed
    /// both. The first batch, finished past its deadline, finds a and b gone: a was its own
    /// removal, b the second batch's, and only one of them may claim b.
    #[test]
    fn a_batch_cut_short_yields_the_pods_another_batch_removed() {
        let first = acted("first", &[("a", None), ("b", None)]);
        let second = acted(
            "second",
            &[
                ("b", Some(ActionPhase::Succeeded)),
                ("c", Some(ActionPhase::Succeeded)),
            ],
        );
        let found = removed_elsewhere("first", &["a", "b"], &[first, second]);
        assert_eq!(found, BTreeMap::from([("b".to_string(), "second".to_string())]));
    }

    /// The history the failover test caught next: a leader recorded its decision on e-08 alone
    /// and died before the call; the next leader decided e-08 again with e-09 into a batch and
    /// removed both. The single record, finished afterwards, yields e-08 to the batch.
    #[test]
    fn a_record_cut_short_yields_its_pod_to_the_batch_that_removed_it() {
        let single = acted("single", &[("e-08", None)]);
        let batch = acted(
            "batch",
            &[
                ("e-08", Some(ActionPhase::Succeeded)),
                ("e-09", Some(ActionPhase::Succeeded)),
            ],
        );
        let found = removed_elsewhere("single", &["e-08"], &[single, batch]);
        assert_eq!(found, BTreeMap::from([("e-08".to_string(), "batch".to_string())]));
    }

    #[test]
    fn a_removal_still_under_way_elsewhere_is_left_to_it() {
        let running = acted("second", &[("b", Some(ActionPhase::Running))]);
        let unwritten = acted("third", &[("c", None)]);
        let found = removed_elsewhere("first", &["b", "c"], &[running, unwritten]);
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn a_removal_that_failed_or_was_skipped_elsewhere_removed_nothing() {
        let failed = acted("second", &[("b", Some(ActionPhase::Failed))]);
        let skipped = acted("third", &[("b", Some(ActionPhase::Skipped))]);
        assert!(removed_elsewhere("first", &["b"], &[failed, skipped]).is_empty());
    }

    #[test]
    fn a_record_never_yields_to_itself_nor_to_records_of_other_targets() {
        let own = acted("first", &[("a", Some(ActionPhase::Succeeded))]);
        let other = acted("second", &[("z", Some(ActionPhase::Succeeded))]);
        assert!(removed_elsewhere("first", &["a"], &[own, other]).is_empty());
    }
}
