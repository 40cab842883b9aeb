//! A record left without an outcome by a process that ended between its call and the outcome's
//! write, whose target is gone. Nothing decides such a target again (a pod deleted is no longer
//! listed), so without this the record would say for good that the action never ended. The
//! leader finishes it: one GET of the record (it may have been finished meanwhile) and one of
//! the target's metadata, and no call on the target. A target still there is left alone: its
//! failure, decided again under the same name, resumes the record (`handle`).
//!
//! A target gone under such a record was removed by its call, or by someone since. When another
//! of the policy's records acted on the same target (the new leader decided it again into
//! another batch), that record removed it: the one left unfinished says so, Skipped/TargetGone,
//! and does not claim the removal too ([`removed_elsewhere`]). Otherwise nobody can tell, and a
//! removal counts as done.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use kube_healer_api::record::{ActionPhase, TargetRef};
use kube_healer_api::{HealingAction, TargetKind, reasons};

use kube_healer_core::decide::Acted;

use crate::act::handle::Io;
use crate::metrics::Metrics;
use crate::record::label_value;
use crate::record::writer::{self, Finished};
use crate::retry::{self, Backoff};

/// Finishes the record `name` if it still has no outcome and its target is gone.
pub async fn finish_if_gone(io: Io<'_>, name: &str) {
    let record = match writer::read(io.records, name).await {
        Ok(Some(record)) => record,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(record = %name, error = %e, "reading a record without an outcome failed: the next leader finishes it");
            return;
        }
    };
    // An outcome written meanwhile (or a long action's Running): not this one's to finish.
    if record.status.is_some() {
        return;
    }
    let target = &record.spec.target;
    match gone(io.client, target).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            let e = retry::describe(&e);
            tracing::warn!(record = %name, target = %target.reference, error = %e, "reading the target of a record without an outcome failed: the next leader finishes it");
            return;
        }
    }
    if !io.leading.now() {
        return;
    }
    let elsewhere = if record.spec.action.properties().removes_target {
        match removed_elsewhere(io.records, &record, &[target.uid.as_str()]).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(record = %name, error = %e, "listing the policy's records failed: the next leader finishes it");
                return;
            }
        }
    } else {
        Default::default()
    };
    let (phase, reason, message) = match elsewhere.get(&target.uid) {
        Some(other) => removed_under(&target.reference, other),
        None => outcome(&record),
    };
    let now = io.clock.time();
    let finished = Finished {
        phase,
        reason,
        message,
        calls: 0,
        start: record.metadata.creation_timestamp.clone().unwrap_or(now.clone()),
        finish: now,
    };
    // At the version read: a process still carrying the decision out (a leader that lost its
    // Lease mid-call, or this replica's own decision resumed since) keeps the outcome it writes.
    let version = record.metadata.resource_version.clone().unwrap_or_default();
    match writer::finish_at_version(io.records, name, finished, &version).await {
        Ok(true) => {
            tracing::warn!(record = %name, target = %target.reference, ?phase, reason, "decision recorded but not finished before its process ended; its target is gone: record finished");
        }
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(record = %name, error = %e, "finishing a record without an outcome failed: the next leader finishes it");
            return;
        }
    }
    if writer::in_flight(&record) {
        writer::settle(io.records, name, (true, false)).await;
    }
    io.metrics
        .actions
        .get_or_create(&Metrics::action(record.spec.action, phase, reason))
        .inc();
}

/// What a record whose target is gone says: an action that removes its target met its aim
/// (whoever removed it: the finishing of a batch and of a resumed decision say the same); any
/// other was not carried out as far as anyone can tell.
fn outcome(record: &HealingAction) -> (ActionPhase, &'static str, String) {
    let target = &record.spec.target.reference;
    if record.spec.action.properties().removes_target {
        (
            ActionPhase::Succeeded,
            reasons::COMPLETED,
            format!(
                "{target} is gone: the call made before the process that decided it ended took effect, or it was removed since"
            ),
        )
    } else {
        (
            ActionPhase::Skipped,
            reasons::TARGET_GONE,
            format!(
                "{target} is gone, and the process that decided it ended before recording whether its call was made"
            ),
        )
    }
}

/// Of `uids`, the targets another of `record`'s policy's records acted on and removed or is
/// still removing, each with that record's name (core's `removed_elsewhere`). One LIST of the
/// policy's records that decided to act, only when finishing what a process that ended left.
pub async fn removed_elsewhere(
    records: &Api<HealingAction>,
    record: &HealingAction,
    uids: &[&str],
) -> Result<BTreeMap<String, String>, kube::Error> {
    let selector = format!(
        "{}={},{}=act",
        kube_healer_api::POLICY_LABEL,
        label_value(&record.spec.policy),
        kube_healer_api::DECISION_LABEL
    );
    let lp = ListParams::default().labels(&selector);
    let (listed, _) = retry::call(Backoff::RECORD, "list HealingActions", || records.list(&lp)).await;
    let listed = listed?.items;
    let acted: Vec<Acted> = listed
        .iter()
        .filter(|r| r.spec.policy == record.spec.policy)
        .map(Acted::of)
        .collect();
    Ok(kube_healer_core::decide::removed_elsewhere(
        &Acted::of(record),
        uids,
        &acted,
    ))
}

/// What a record left unfinished says of a target another record removed or is removing.
pub fn removed_under(target: &str, other: &str) -> (ActionPhase, &'static str, String) {
    (
        ActionPhase::Skipped,
        reasons::TARGET_GONE,
        format!(
            "{target} left to record {other}, which decided it again after the process that decided this one ended, and removed it or is removing it"
        ),
    )
}

/// Whether the target is gone: not found, or found with another UID (a new object of the same
/// name). Metadata only.
async fn gone(client: &kube::Client, target: &TargetRef) -> Result<bool, kube::Error> {
    let uid = match target.kind {
        TargetKind::Pod => {
            let namespace = target.namespace.as_deref().unwrap_or_default();
            let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let get = || pods.get_metadata_opt(&target.name);
            let (found, _) = retry::call(Backoff::ACTION, "get pod metadata", get).await;
            found.map(|m| m.map(|m| m.metadata.uid))
        }
        TargetKind::Node => {
            let nodes: Api<Node> = Api::all(client.clone());
            let get = || nodes.get_metadata_opt(&target.name);
            let (found, _) = retry::call(Backoff::ACTION, "get node metadata", get).await;
            found.map(|m| m.map(|m| m.metadata.uid))
        }
    };
    match uid {
        Ok(None) => Ok(true),
        Ok(Some(uid)) => Ok(uid.as_deref() != Some(target.uid.as_str())),
        Err(e) => Err(e),
    }
}
