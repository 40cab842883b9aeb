//! The HealingActions known from their metadata-only watch, and retention: the leader deletes
//! (through the executor) the records of this operator's policies past their age or count,
//! except those of failures still in progress (they keep decisions from being repeated).

use std::collections::HashSet;

use kube::core::PartialObjectMeta;
use kube::runtime::watcher::Event as W;
use kube_healer_api::HealingAction;
use kube_healer_core::decide::{InFlightMark, parse_until};
use kube_healer_core::view::Secs;

use super::Engine;
use crate::policy::RecordMeta;
use crate::protocol::Work;
use crate::record::Mode;
use crate::target::Target;

/// New records are looked at by retention at most this often.
const RETENTION_BATCH: Secs = 10;

impl Engine {
    pub(super) fn apply_record(&mut self, event: W<PartialObjectMeta<HealingAction>>, now: Secs) {
        match event {
            W::Apply(meta) | W::InitApply(meta) => self.record_seen(meta, now),
            W::Delete(meta) => self.record_deleted(meta.metadata.name.as_deref().unwrap_or_default()),
            W::Init => self.relist_records.begin(),
            W::InitDone => self.records_relisted(now),
        }
    }

    /// A record created or changed: what it says of its target's episode and ladder, its policy's
    /// rate and actions in flight, and whether it is left unfinished.
    fn record_seen(&mut self, meta: PartialObjectMeta<HealingAction>, now: Secs) {
        let meta = meta.metadata;
        let outcome_written = outcome_written(&meta);
        let name = meta.name.unwrap_or_default();
        self.relist_records.saw(&name);
        let mut labels = meta.labels.unwrap_or_default();
        let policy = labels.remove(kube_healer_api::POLICY_LABEL).unwrap_or_default();
        if labels.contains_key(kube_healer_api::batch::BATCH_LABEL) {
            let created = meta.creation_timestamp.map_or(now, |t| t.0.as_second());
            let annotations = meta.annotations.unwrap_or_default();
            self.apply_batch_record(name, policy, created, &labels, &annotations, now);
            return;
        }
        let uid = labels
            .remove(kube_healer_api::TARGET_UID_LABEL)
            .unwrap_or_default();
        let created = meta.creation_timestamp.map_or(now, |t| t.0.as_second());
        // A long action in flight (perhaps another leader's): it counts against its
        // policy's maxConcurrent until its mark comes off.
        let mark = labels
            .remove(kube_healer_api::IN_FLIGHT_LABEL)
            .and_then(|until| parse_until(&until))
            .map(|until| InFlightMark {
                policy: policy.clone(),
                target_uid: uid.clone(),
                until,
            });
        let ongoing = mark.is_some();
        let freed = self.gate.record_seen(&name, mark);
        let disrupts = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(kube_healer_api::DISRUPTS_ANNOTATION));
        self.record_removal(
            &name,
            disrupts.map(String::as_str),
            (created, &uid),
            (ongoing, now),
        );
        let acted = match labels.get(kube_healer_api::DECISION_LABEL).map(String::as_str) {
            Some("act") => Some(Mode::Live),
            Some("dry-run") => Some(Mode::DryRun),
            _ => None,
        };
        if acted == Some(Mode::Live) && !outcome_written {
            self.unfinished.insert(name.clone(), policy.clone());
        } else {
            self.unfinished.remove(&name);
        }
        if let Some(episode) = labels
            .get(kube_healer_api::EPISODE_LABEL)
            .and_then(|e| e.parse().ok())
        {
            let step = labels
                .get(kube_healer_api::STEP_LABEL)
                .and_then(|s| s.parse::<usize>().ok())
                .map(|s| s.max(1) - 1);
            let record = RecordMeta {
                name: name.clone(),
                created,
                episode,
                acted,
                step,
            };
            self.policies.episodes.recorded(&policy, &uid, record);
        }
        // An action or dry run counts against its policy's rate, whoever decided it.
        if acted.is_some() {
            self.gate.record_spent(&policy, &name, created);
        }
        self.records.upsert(name, policy, created, uid);
        if let Some(policy) = freed {
            self.places_freed(&policy);
        }
        let batch = now + RETENTION_BATCH;
        if !self.relist_records.active() && self.retention_at.is_none_or(|at| at > batch) {
            self.retention_at = Some(batch);
        }
    }

    /// The pod removal a record names in its `disrupts` annotation (made at `created`, of the pod
    /// `uid`), counted against its workload's limit; an eviction still waiting (its in-flight
    /// mark on) as ongoing. A record without it (the executor took it off) names a removal
    /// certainly not made.
    fn record_removal(
        &mut self,
        name: &str,
        disrupts: Option<&str>,
        (created, uid): (Secs, &str),
        ongoing_at: (bool, Secs),
    ) {
        match disrupts {
            Some(value) => {
                let (workload, removal) = crate::record::parse_disrupts(value, created, uid);
                self.gate.record_disrupts(workload, name, removal, ongoing_at);
            }
            None => self.removal_not_made(name),
        }
    }

    /// A record deleted: forgotten with the batches it named.
    fn record_deleted(&mut self, name: &str) {
        self.batch_marks.unmark(name);
        self.unfinished.remove(name);
        let members = self.records.take_batch(name);
        if let Some((policy, _, uid)) = self.records.remove(name) {
            self.policies.episodes.forget(&policy, &uid, name);
            for (uid, record) in members {
                self.policies.episodes.forget(&policy, &uid, &record);
            }
        }
        if let Some(policy) = self.gate.record_gone(name) {
            self.places_freed(&policy);
        }
    }

    /// The records listed anew: those gone meanwhile forgotten, then retention.
    fn records_relisted(&mut self, now: Secs) {
        if let Some(seen) = self.relist_records.finish() {
            for (gone, (policy, _, uid)) in self.records.retain(&seen) {
                self.gate.record_gone(&gone);
                self.batch_marks.unmark(&gone);
                self.unfinished.remove(&gone);
                self.policies.episodes.forget(&policy, &uid, &gone);
                for (uid, record) in self.records.take_batch(&gone) {
                    self.policies.episodes.forget(&policy, &uid, &record);
                }
            }
        }
        self.apply_retention(now);
    }

    /// Deletes the records past their retention, and sets when to look again. The leader's duty.
    /// Only on current stores: a failure in progress is known from the pods and nodes listed,
    /// and a target not listed yet is unknown, not recovered; its record must stay. (Once every
    /// watch has listed, retention runs: see `synced_changed`.)
    pub(super) fn apply_retention(&mut self, now: Secs) {
        if !self.is_leader || self.action_tx.is_none() || !self.synced.all() {
            return;
        }
        let policies = &self.policies;
        // Failures in progress: their records keep decisions from being carried out twice.
        let mut active: HashSet<(&str, String)> = HashSet::new();
        for (target, matches) in policies.all_matches() {
            let uid = match target {
                Target::Pod(ns, name) => self.stores.pod_at(ns, name).map(|p| p.uid.to_string()),
                Target::Node(name) => self.stores.node_view(name).map(|n| n.uid.to_string()),
            };
            if let Some(uid) = uid {
                active.extend(matches.iter().map(|m| (m.policy.as_str(), uid.clone())));
            }
        }
        let (doomed, next) = self.records.expired(
            now,
            self.retention,
            |p| policies.get(p).map(|c| c.policy.spec.safety.rate_window_secs()),
            |p, uid| active.contains(&(p, uid.to_string())),
        );
        if !doomed.is_empty() {
            tracing::info!(
                records = doomed.len(),
                "deleting HealingActions past their retention"
            );
        }
        for name in doomed {
            self.send(Work::DeleteRecord { name });
        }
        self.retention_at = next;
    }
}

/// Whether a record's status was ever written (its outcome, or a long action's Running), as its
/// managed fields tell: the watch is metadata-only, and a status write is the one write to the
/// status subresource. Costs no call and keeps nothing.
fn outcome_written(meta: &kube::core::ObjectMeta) -> bool {
    meta.managed_fields
        .iter()
        .flatten()
        .any(|f| f.subresource.as_deref() == Some("status"))
}

/// A batch record's pods: (UID, episode, the name of the pod's own decision), from its member
/// labels and its members annotation.
fn batch_members(
    labels: &std::collections::BTreeMap<String, String>,
    annotations: &std::collections::BTreeMap<String, String>,
) -> Vec<(String, Secs, String)> {
    let records: std::collections::HashMap<&str, &str> = annotations
        .get(kube_healer_api::batch::MEMBERS_ANNOTATION)
        .map(|a| a.split(',').filter_map(|pair| pair.split_once('=')).collect())
        .unwrap_or_default();
    labels
        .iter()
        .filter_map(|(key, episode)| {
            let uid = key.strip_prefix(kube_healer_api::batch::MEMBER_LABEL_PREFIX)?;
            let record = records.get(uid)?;
            Some((uid.to_string(), episode.parse().ok()?, record.to_string()))
        })
        .collect()
}

impl Engine {
    /// A batch record (a bulk clean-up of leftovers): each pod's action counts on its ladder and
    /// against its policy's rate under the pod's own decision name, as a record of its own
    /// would (and once, with this replica's own decision of that name). A batch still marked in
    /// flight may have been left unfinished by a process that ended: the leader finishes it
    /// past its deadline (`resume_unfinished`). The mark is not counted against maxConcurrent.
    fn apply_batch_record(
        &mut self,
        name: String,
        policy: String,
        created: Secs,
        labels: &std::collections::BTreeMap<String, String>,
        annotations: &std::collections::BTreeMap<String, String>,
        now: Secs,
    ) {
        let members = batch_members(labels, annotations);
        let acted = match labels.get(kube_healer_api::DECISION_LABEL).map(String::as_str) {
            Some("act") => Some(Mode::Live),
            Some("dry-run") => Some(Mode::DryRun),
            _ => None,
        };
        let step = labels
            .get(kube_healer_api::STEP_LABEL)
            .and_then(|s| s.parse::<usize>().ok())
            .map(|s| s.max(1) - 1);
        for (uid, episode, record) in &members {
            let meta = RecordMeta {
                name: record.clone(),
                created,
                episode: *episode,
                acted,
                step,
            };
            self.policies.episodes.recorded(&policy, uid, meta);
            if acted.is_some() {
                self.gate.record_spent(&policy, record, created);
            }
        }
        match labels
            .get(kube_healer_api::IN_FLIGHT_LABEL)
            .and_then(|until| parse_until(until))
        {
            Some(until) => {
                let decisions = members.iter().map(|m| m.2.clone()).collect();
                self.batch_marks.mark(&name, &policy, until, decisions);
            }
            None => self.batch_marks.unmark(&name),
        }
        let first = members.first().map(|m| m.0.clone()).unwrap_or_default();
        let pairs = members
            .into_iter()
            .map(|(uid, _, record)| (uid, record))
            .collect();
        self.records.upsert_batch(name, policy, created, first, pairs);
        let batch = now + RETENTION_BATCH;
        if !self.relist_records.active() && self.retention_at.is_none_or(|at| at > batch) {
            self.retention_at = Some(batch);
        }
    }
}
