//! A bulk clean-up of leftovers under one record. Decisions that remove dead pods (core's
//! `batchable`) and reach the executor together, for one policy, class and action, are recorded
//! as one HealingAction naming every pod (at most `MAX_MEMBERS`), written before the calls and
//! finished after them with each pod's outcome: two record writes for up to a hundred pods,
//! where one record each costs two per pod.
//!
//! Each member is still rechecked on a fresh read and acted on alone. A batch whose process ended
//! before finishing it is finished by the next one: its pods still there are decided again (the
//! latest step of a ladder is, under its own name), the same pods make the same batch name, and
//! the record is found and finished. Should they batch otherwise (some were removed meanwhile),
//! the record's in-flight mark outlives its deadline and the leader finishes it (`resume`): its
//! pods another record decided again are left to it (Skipped/TargetGone, naming it), those
//! already gone otherwise count as done, the others are read afresh and removed if still dead.
//! Each pod's removal is one call and one Succeeded outcome, whichever record makes it.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube_healer_api::batch::{BatchMember, MemberOutcome};
use kube_healer_api::record::{ActionPhase, Evidence};
use kube_healer_api::{ActionKind, FailureClass, HealingAction, HealingActionSpec, reasons};

use crate::act::Outcome;
use crate::act::announce::announce;
use crate::act::handle::{Handled, Io, act_on, count};
use crate::act::unfinished;
use crate::failpoint;
use crate::protocol::{ActionRequest, TakesUp};
use crate::record::batch_name;
use crate::record::writer::{self, Begun, Finished};

/// How long a batch may run before the next leader takes it for abandoned and finishes it.
/// A hundred pods take a few seconds (two calls each, sixteen at a time); a resume that overlaps
/// a slow batch costs nothing but a read (the pod is gone, or its removal is repeated under the
/// same UID precondition).
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Members acted on at once within a batch: as many as a lane carries out at once (the policy's
/// maxConcurrent bounds them too: the engine sends no more than that in flight).
const PARALLEL: usize = 64;

/// What decisions of a batch share: the policy, the class and the action, and the batch cut
/// short that named them, if one did.
pub type BatchKey = (String, FailureClass, ActionKind, Option<String>);

/// The batch a request may join: a live removal of a dead pod, unless it takes up a record of
/// its own (see `TakesUp`).
pub fn key(req: &ActionRequest) -> Option<BatchKey> {
    let spec = &req.spec;
    let batchable =
        req.in_flight() && kube_healer_core::decide::batchable(spec.target.kind, spec.class, spec.action);
    let cut_short = match &req.takes_up {
        TakesUp::Own => return None,
        TakesUp::Batch(name) => Some(name.clone()),
        TakesUp::Nothing => None,
    };
    batchable.then(|| (spec.policy.clone(), spec.class, spec.action, cut_short))
}

/// The batch record's spec: the first member's decision, naming them all.
fn spec(reqs: &[ActionRequest]) -> HealingActionSpec {
    let mut spec = reqs[0].spec.clone();
    let members: Vec<BatchMember> = reqs
        .iter()
        .map(|r| BatchMember {
            target: r.spec.target.clone(),
            record: r.name.clone(),
            failing_since: r.spec.failing_since.clone(),
            summary: r.spec.evidence.summary.clone(),
        })
        .collect();
    let shown: Vec<&str> = members
        .iter()
        .take(3)
        .map(|m| m.target.reference.as_str())
        .collect();
    let more = members.len().saturating_sub(shown.len());
    let mut summary = format!(
        "{} leftover pods ({}) removed together: {}",
        members.len(),
        spec.class,
        shown.join(", ")
    );
    if more > 0 {
        summary.push_str(&format!(" and {more} more"));
    }
    spec.evidence = Evidence {
        summary,
        ..Default::default()
    };
    spec.members = members;
    spec
}

/// Records the batch, carries out each member, and finishes the record. Each member is answered
/// (`answer`) as soon as its own call is done, so that the engine's next decisions come while the
/// rest of the batch runs; the record is finished once all are.
pub async fn handle_batch(
    io: Io<'_>,
    reqs: Vec<ActionRequest>,
    answer: &(dyn Fn(&ActionRequest, Handled) + Sync),
) {
    let answer_all = |handled: &dyn Fn(&ActionRequest) -> Handled| {
        for r in &reqs {
            answer(r, handled(r));
        }
    };
    let spec = spec(&reqs);
    let name = batch_name(&spec.policy, reqs.iter().map(|r| r.name.as_str()));
    let until = io.clock.now() + DEADLINE.as_secs() as i64;
    let resumed = match writer::begin(io.records, &name, &spec, false, Some(until)).await {
        Begun::New => false,
        Begun::Resumed => {
            // The same pods decided again after a restart make the same batch.
            tracing::warn!(record = %name, members = reqs.len(), "batch recorded but not finished before a restart: finishing it");
            true
        }
        Begun::Done => {
            answer_all(&|_| Handled::NotCarriedOut);
            return;
        }
        Begun::Failed(e) => {
            io.metrics.records_unwritten.inc();
            tracing::warn!(record = %name, error = %e, members = reqs.len(), "recording the batch failed: not acting now, deciding again later");
            answer_all(&|r| Handled::Unrecorded(Box::new(r.clone())));
            return;
        }
    };
    tracing::info!(record = %name, members = reqs.len(), resumed, "batch recorded");
    failpoint::abort("after-batch-record");
    if !io.leading.now() {
        tracing::warn!(record = %name, "leadership lost before the calls: the batch is left for the next leader");
        answer_all(&|_| Handled::NotCarriedOut);
        return;
    }
    let start = io.clock.time();
    let outcomes = each(&io, &reqs, resumed, &start, |req, outcome| {
        answer(
            req,
            if outcome.succeeded() {
                Handled::CarriedOut
            } else {
                Handled::NotCarriedOut
            },
        );
    })
    .await;
    let members: Vec<MemberOutcome> = reqs
        .iter()
        .zip(&outcomes)
        .map(|(r, o)| member_outcome(&r.spec.target.uid, o))
        .collect();
    finish(&io, &name, &outcomes, members, &start).await;
    for (req, outcome) in reqs.iter().zip(&outcomes) {
        count(io.metrics, req, outcome.phase, outcome.reason);
        // A leftover removed needs no Event (its record tells it); anything else is announced.
        if !outcome.succeeded() {
            announce(
                io.recorder,
                &req.spec,
                outcome.phase,
                outcome.reason,
                &outcome.message,
            )
            .await;
        }
    }
}

/// Finishes a batch a process that ended left unfinished (its in-flight mark outlived its
/// deadline): each pod is read afresh; one gone counts as done (the call before the end took
/// effect, or it was removed since), one still there is removed (a dead pod stays dead; the UID
/// precondition spares a new pod of the same name). A batch finished meanwhile is left alone.
pub async fn resume(io: Io<'_>, name: &str) {
    let Some(record) = left_unfinished(&io, name).await else {
        return;
    };
    tracing::warn!(record = %name, members = record.spec.members.len(), "batch recorded but not finished before a restart: finishing it");
    let Some(reqs) = member_requests(&record, name) else {
        return;
    };
    // Members the new leader decided again into another record are that record's to remove.
    let uids: Vec<&str> = reqs.iter().map(|r| r.spec.target.uid.as_str()).collect();
    let elsewhere = match unfinished::removed_elsewhere(io.records, &record, &uids).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(record = %name, error = %e, "listing the policy's records failed: the next leader finishes the batch");
            return;
        }
    };
    let mine: Vec<ActionRequest> = reqs
        .iter()
        .filter(|r| !elsewhere.contains_key(&r.spec.target.uid))
        .cloned()
        .collect();
    let start = io.clock.time();
    let mut acted = each(&io, &mine, true, &start, |_, _| {}).await.into_iter();
    let outcomes: Vec<Outcome> = reqs
        .iter()
        .map(|r| match elsewhere.get(&r.spec.target.uid) {
            Some(other) => {
                let (phase, reason, message) = unfinished::removed_under(&r.spec.target.reference, other);
                Outcome::new(phase, reason, message, 0)
            }
            None => acted.next().unwrap_or_else(|| {
                Outcome::new(ActionPhase::Failed, reasons::INTERRUPTED, "no outcome".into(), 0)
            }),
        })
        .collect();
    let members = reqs
        .iter()
        .zip(&outcomes)
        .map(|(r, o)| member_outcome(&r.spec.target.uid, o))
        .collect();
    finish(&io, name, &outcomes, members, &start).await;
    for (req, outcome) in reqs.iter().zip(&outcomes) {
        count(io.metrics, req, outcome.phase, outcome.reason);
    }
}

/// Takes back a batch a process that ended left unfinished, without carrying it on: its policy
/// could not decide it now (paused, suspended, a dry run, outside its windows). If every pod of
/// it is still there, nothing of it was done: the decision is taken back as an unrecorded one
/// is (its record deleted, at the version read: it spends no rate and ends no ladder), and what
/// still fails is decided afresh by the whole gate, on records of its own. If some are gone (the
/// process ended midway), the record stays the record of what was done: those count as done,
/// the rest as not done, with why.
pub async fn take_back_cut_short(io: Io<'_>, name: &str, reason: &'static str, message: &str) {
    let Some(record) = left_unfinished(&io, name).await else {
        return;
    };
    let mut present = Vec::with_capacity(record.spec.members.len());
    for m in &record.spec.members {
        present.push(still_there(io.client, &m.target).await);
    }
    if present.iter().all(|p| *p == Some(true)) {
        tracing::warn!(record = %name, members = present.len(), reason, %message,
            "batch recorded but not finished before a restart: not carried on, taken back");
        let params = kube::api::DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                resource_version: record.metadata.resource_version.clone(),
                uid: None,
            }),
            ..Default::default()
        };
        if let Err(e) = io.records.delete(name, &params).await {
            tracing::warn!(record = %name, error = %e, "taking the batch back failed: the next leader looks at it again");
        }
        return;
    }
    tracing::warn!(record = %name, reason, %message, "batch recorded but not finished before a restart: not carried on; some of its pods were removed before");
    let start = io.clock.time();
    let outcomes: Vec<Outcome> = present
        .iter()
        .map(|p| match p {
            Some(false) => Outcome::new(
                ActionPhase::Succeeded,
                reasons::COMPLETED,
                "removed before the restart".into(),
                0,
            ),
            _ => Outcome::new(ActionPhase::Skipped, reason, message.to_string(), 0),
        })
        .collect();
    let members = record
        .spec
        .members
        .iter()
        .zip(&outcomes)
        .map(|(m, o)| member_outcome(&m.target.uid, o))
        .collect();
    finish(&io, name, &outcomes, members, &start).await;
}

/// Whether the pod is still there (the same UID): None when it could not be read.
async fn still_there(client: &kube::Client, target: &kube_healer_api::record::TargetRef) -> Option<bool> {
    let namespace = target.namespace.as_deref().unwrap_or_default();
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client.clone(), namespace);
    let (got, _) = crate::retry::call(crate::retry::Backoff::ACTION, "get pod", || {
        pods.get_opt(&target.name)
    })
    .await;
    match got {
        Ok(found) => Some(found.is_some_and(|p| p.metadata.uid.as_deref() == Some(target.uid.as_str()))),
        Err(_) => None,
    }
}

/// The batch record, if it is still left unfinished and marked in flight; a finished one keeps
/// no mark.
async fn left_unfinished(io: &Io<'_>, name: &str) -> Option<HealingAction> {
    let record = match writer::read(io.records, name).await {
        Ok(found) => found?,
        Err(e) => {
            tracing::warn!(record = %name, error = %e, "reading an unfinished batch failed: the next leader finishes it");
            return None;
        }
    };
    let marked = writer::in_flight(&record);
    let finished = record.status.as_ref().is_some_and(|s| s.phase.is_final());
    if finished && marked {
        writer::settle(io.records, name, (true, false)).await;
    }
    (marked && !finished).then_some(record)
}

/// The batch's members as requests of their own, with no decision's view to recheck against: a
/// dead pod stays dead, and the call's UID precondition is the check.
fn member_requests(record: &HealingAction, name: &str) -> Option<Vec<ActionRequest>> {
    let step = serde_json::from_value::<kube_healer_api::HealingStep>(
        serde_json::json!({"action": record.spec.action}),
    )
    .ok()?;
    let reqs = record.spec.members.iter().map(|m| {
        let mut spec = record.spec.clone();
        spec.target = m.target.clone();
        spec.failing_since = m.failing_since.clone();
        spec.members = Vec::new();
        ActionRequest {
            name: name.to_string(),
            spec,
            step: step.clone(),
            hold: None,
            owner: None,
            cooldown: Duration::ZERO,
            protected_namespaces: Vec::new().into(),
            seen: None,
            before: None,
            due_ms: None,
            takes_up: Default::default(),
        }
    });
    Some(reqs.collect())
}

/// Each member carried out, `PARALLEL` at a time; `settled` hears of each as it ends. The
/// outcomes, in the members' order.
async fn each(
    io: &Io<'_>,
    reqs: &[ActionRequest],
    resumed: bool,
    start: &Time,
    mut settled: impl FnMut(&ActionRequest, &Outcome),
) -> Vec<Outcome> {
    let calls: Vec<_> = reqs
        .iter()
        .enumerate()
        .map(|(i, req)| async move { (i, act_on(io, req, resumed, start).await) })
        .collect();
    let mut running = futures::stream::iter(calls).buffer_unordered(PARALLEL);
    let mut outcomes: Vec<Option<Outcome>> = vec![None; reqs.len()];
    while let Some((i, outcome)) = running.next().await {
        settled(&reqs[i], &outcome);
        outcomes[i] = Some(outcome);
    }
    outcomes.into_iter().flatten().collect()
}

fn member_outcome(uid: &str, o: &Outcome) -> MemberOutcome {
    MemberOutcome {
        uid: uid.to_string(),
        phase: o.phase,
        reason: Some(o.reason.to_string()),
        message: (!o.succeeded()).then(|| o.message.clone()),
        attempts: o.calls,
    }
}

/// The batch's phase from its members' (phase, reason): Failed if any failed (with the first
/// failure's reason), Succeeded if any was removed, Skipped if none was; the message counts them.
fn summed(members: &[(ActionPhase, &'static str)]) -> (ActionPhase, &'static str, String) {
    let n = |phase| members.iter().filter(|m| m.0 == phase).count();
    let (done, skipped, failed) = (
        n(ActionPhase::Succeeded),
        n(ActionPhase::Skipped),
        n(ActionPhase::Failed),
    );
    let message = format!(
        "{done} removed, {skipped} skipped, {failed} failed of {}",
        members.len()
    );
    match members.iter().find(|m| m.0 == ActionPhase::Failed) {
        Some((_, reason)) => (ActionPhase::Failed, reason, message),
        None if done > 0 => (ActionPhase::Succeeded, reasons::COMPLETED, message),
        None => (ActionPhase::Skipped, reasons::TARGET_GONE, message),
    }
}

/// Writes the batch's outcome and takes its in-flight mark off.
async fn finish(io: &Io<'_>, name: &str, outcomes: &[Outcome], members: Vec<MemberOutcome>, start: &Time) {
    let phases: Vec<(ActionPhase, &'static str)> = outcomes.iter().map(|o| (o.phase, o.reason)).collect();
    let (phase, reason, message) = summed(&phases);
    tracing::info!(record = %name, ?phase, %message, "batch finished");
    let finished = Finished {
        phase,
        reason,
        message,
        calls: outcomes.iter().map(|o| o.calls).sum(),
        start: start.clone(),
        finish: io.clock.time(),
    };
    writer::finish_batch(io.records, name, finished, members).await;
    writer::settle(io.records, name, (true, false)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_fails_if_a_member_failed_and_succeeds_if_one_was_removed() {
        let done = (ActionPhase::Succeeded, reasons::COMPLETED);
        let gone = (ActionPhase::Skipped, reasons::TARGET_GONE);
        let failed = (ActionPhase::Failed, reasons::API_ERROR);
        assert_eq!(
            summed(&[done, gone]),
            (
                ActionPhase::Succeeded,
                reasons::COMPLETED,
                "1 removed, 1 skipped, 0 failed of 2".into()
            )
        );
        assert_eq!(
            summed(&[done, failed]),
            (
                ActionPhase::Failed,
                reasons::API_ERROR,
                "1 removed, 0 skipped, 1 failed of 2".into()
            )
        );
        assert_eq!(summed(&[gone]).0, ActionPhase::Skipped);
    }
}
