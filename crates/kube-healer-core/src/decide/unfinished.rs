//! Finishing what a process that ended left: a record written before its call, whose outcome
//! was never written. Its target gone, the call may have removed it, or another record may have:
//! the next leader, not seeing the first batch finished, decides the same pods again into
//! another batch. Each removal is claimed by one record only: a record left unfinished yields
//! every target another removal of its policy carried out (Succeeded), or is still carrying out
//! if it was decided later (a later decision is the one that goes on: two records left
//! unfinished never yield to each other, and a pod never ends up with nobody to remove it).

use std::collections::BTreeMap;

use kube_healer_api::HealingAction;
use kube_healer_api::record::ActionPhase;

/// What one record acted on: each target's UID with its outcome's phase, if written yet.
#[derive(Clone, Debug)]
pub struct Acted<'a> {
    pub record: &'a str,
    /// When it was written (Unix seconds): with the name, which of two came later.
    pub created: i64,
    /// Whether its action removes its targets (an Event or a restart on the same pod removed
    /// nothing).
    pub removes: bool,
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
            created: record
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(0, |t| t.0.as_second()),
            removes: record.spec.action.properties().removes_target,
            targets,
        }
    }
}

/// Of `uids` (targets of the record `own`, left unfinished), those another removal in `others`
/// carried out (Succeeded), or is carrying out and was decided after `own`, each with that
/// record's name. A final outcome other than success removed nothing.
pub fn removed_elsewhere(own: &Acted, uids: &[&str], others: &[Acted]) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let later = |o: &Acted| (o.created, o.record) > (own.created, own.record);
    for other in others.iter().filter(|o| o.record != own.record && o.removes) {
        for (uid, phase) in &other.targets {
            let removes = match phase {
                Some(p) if p.is_final() => *p == ActionPhase::Succeeded,
                _ => later(other),
            };
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
        // Decided in this order, a second apart.
        const ORDER: &[&str] = &[
            "first", "single", "a", "a-batch", "second", "batch", "b", "b-batch", "third",
        ];
        let created = ORDER.iter().position(|r| *r == record).unwrap_or(ORDER.len()) as i64;
        Acted {
            record,
            created,
            removes: true,
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
        let found = removed_elsewhere(&first, &["a", "b"], &[second]);
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
        let found = removed_elsewhere(&single, &["e-08"], &[batch]);
        assert_eq!(found, BTreeMap::from([("e-08".to_string(), "batch".to_string())]));
    }

    #[test]
    fn a_removal_still_under_way_and_decided_later_is_left_to_it() {
        let first = acted("first", &[("b", None), ("c", None)]);
        let running = acted("second", &[("b", Some(ActionPhase::Running))]);
        let unwritten = acted("third", &[("c", None)]);
        let found = removed_elsewhere(&first, &["b", "c"], &[running, unwritten]);
        assert_eq!(found.len(), 2, "{found:?}");
    }

    /// Two records left unfinished by two killed leaders name the same pod: only the earlier
    /// yields, so one of them removes it (before, each yielded to the other and nobody did).
    #[test]
    fn two_records_left_unfinished_never_yield_to_each_other() {
        let (a, b) = (acted("a-batch", &[("p", None)]), acted("b-batch", &[("p", None)]));
        assert_eq!(removed_elsewhere(&a, &["p"], std::slice::from_ref(&b)).len(), 1);
        assert!(removed_elsewhere(&b, &["p"], std::slice::from_ref(&a)).is_empty());
    }

    /// An Event recorded on the same pod removed nothing: a removal left unfinished still claims it.
    #[test]
    fn a_record_that_removes_nothing_is_no_removal_elsewhere() {
        let own = acted("a", &[("p", None)]);
        let mut event = acted("b", &[("p", Some(ActionPhase::Succeeded))]);
        event.removes = false;
        assert!(removed_elsewhere(&own, &["p"], &[event]).is_empty());
    }

    #[test]
    fn a_removal_that_failed_or_was_skipped_elsewhere_removed_nothing() {
        let first = acted("first", &[("b", None)]);
        let failed = acted("second", &[("b", Some(ActionPhase::Failed))]);
        let skipped = acted("third", &[("b", Some(ActionPhase::Skipped))]);
        assert!(removed_elsewhere(&first, &["b"], &[failed, skipped]).is_empty());
    }

    #[test]
    fn a_record_never_yields_to_itself_nor_to_records_of_other_targets() {
        let own = acted("first", &[("a", Some(ActionPhase::Succeeded))]);
        let other = acted("second", &[("z", Some(ActionPhase::Succeeded))]);
        assert!(removed_elsewhere(&own, &["a"], &[own.clone(), other]).is_empty());
    }
}
