//! Writing HealingActions: each decision is recorded before its API call (begin) and finished
//! after it (skipped, running, finish). The record is the memory that keeps a decision from
//! being carried out twice, so a decision that cannot be recorded is not carried out.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube_healer_api::record::{ActionPhase, HealingActionStatus};
use kube_healer_api::{HealingAction, HealingActionSpec};

use crate::record::names::label_value;
use crate::retry::{self, Backoff};

/// What came of recording a decision.
#[derive(Debug)]
pub enum Begun {
    /// Recorded now: carry it out.
    New,
    /// Recorded before, by a process that ended before finishing it: finish it (every action is
    /// safe to repeat).
    Resumed,
    /// Recorded and finished before: nothing to do.
    Done,
    /// Not recorded (the API server refused, or did not answer for longer than the retries
    /// last): not to be carried out now.
    Failed(kube::Error),
}

/// Records a decision, labelled with its policy and target UID (how `explain`, retention and
/// `kubectl get -l` find it) and what it decided (act, dry-run or hold: a leader counts the
/// policy's rate from them), and for a long action with the time until which it may run (a
/// leader that takes over counts it in flight until it ends). A conflict means the decision was
/// recorded before: by this replica before a restart, or by a previous leader.
pub async fn begin(
    records: &Api<HealingAction>,
    name: &str,
    spec: &HealingActionSpec,
    held: bool,
    in_flight_until: Option<i64>,
) -> Begun {
    let mut record = HealingAction::new(name, spec.clone());
    let (labels, annotations) = metadata(spec, held, in_flight_until);
    record.metadata.labels = Some(labels);
    record.metadata.annotations = annotations;
    let params = PostParams::default();
    let created = retry::call(Backoff::RECORD, "create HealingAction", || {
        records.create(&params, &record)
    })
    .await
    .0;
    match created {
        Ok(_) => Begun::New,
        Err(kube::Error::Api(s)) if s.code == 409 => {
            match retry::call(Backoff::RECORD, "get HealingAction", || records.get(name))
                .await
                .0
            {
                Ok(existing) if unfinished(&existing) => Begun::Resumed,
                Ok(existing) => {
                    // Finished, but its leader ended before taking the in-flight mark off.
                    if in_flight(&existing) {
                        settle(records, name, (true, false)).await;
                    }
                    Begun::Done
                }
                Err(e) => Begun::Failed(e),
            }
        }
        Err(e) => Begun::Failed(e),
    }
}

/// Whether a record was left unfinished (no status, Pending or Running) by a process that ended.
fn unfinished(record: &HealingAction) -> bool {
    record
        .status
        .as_ref()
        .is_none_or(|s| matches!(s.phase, ActionPhase::Pending | ActionPhase::Running))
}

/// A record read afresh (None: deleted), retried while the API server is unavailable.
pub async fn read(records: &Api<HealingAction>, name: &str) -> Result<Option<HealingAction>, kube::Error> {
    retry::call(Backoff::RECORD, "get HealingAction", || records.get_opt(name))
        .await
        .0
}

/// Whether a record carries the in-flight mark of a long action.
pub fn in_flight(record: &HealingAction) -> bool {
    record
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(kube_healer_api::IN_FLIGHT_LABEL))
}

/// The action ended: a long action's in-flight mark comes off (`marked`), and a leader that
/// took over stops counting it; a removal certainly not made (`untouched`) stops naming its
/// workload (the `disrupts` annotation), so no process counts it against the workload's limit.
/// One write, only when there is one of them to take off. A mark left by a failed write stops
/// counting at its deadline, and a removal at its workload's SETTLE.
pub async fn settle(records: &Api<HealingAction>, name: &str, (marked, untouched): (bool, bool)) {
    let mut metadata = serde_json::Map::new();
    if marked {
        metadata.insert(
            "labels".into(),
            serde_json::json!({kube_healer_api::IN_FLIGHT_LABEL: null}),
        );
    }
    if untouched {
        metadata.insert(
            "annotations".into(),
            serde_json::json!({kube_healer_api::DISRUPTS_ANNOTATION: null}),
        );
    }
    let body = serde_json::json!({ "metadata": metadata });
    let what = "removing the in-flight mark or the disrupts annotation (each counts until its deadline)";
    merge_patch(records, name, &body, Part::Metadata, what).await;
}

/// Which part of a record a merge patch writes.
enum Part {
    Metadata,
    Status,
}

/// A merge patch of a record, retried; a failure is logged (`what` failed), never fatal.
async fn merge_patch(
    records: &Api<HealingAction>,
    name: &str,
    body: &serde_json::Value,
    part: Part,
    what: &str,
) {
    let (params, merge) = (PatchParams::default(), Patch::Merge(body));
    let (patched, _) = retry::call(Backoff::RECORD, what, || async {
        match part {
            Part::Metadata => records.patch(name, &params, &merge).await,
            Part::Status => records.patch_status(name, &params, &merge).await,
        }
    })
    .await;
    if let Err(e) = patched {
        tracing::warn!(record = name, error = %e, "{what} failed");
    }
}

/// The decision was not carried out (held back, or a dry run).
pub async fn skipped(records: &Api<HealingAction>, name: &str, reason: &str, message: &str, at: Time) {
    let status = HealingActionStatus {
        phase: ActionPhase::Skipped,
        reason: Some(reason.into()),
        message: Some(message.into()),
        start_time: None,
        finish_time: Some(at),
        attempts: 0,
        members: Vec::new(),
    };
    set_status(records, name, status).await;
}

/// The action began at `start` and may take a while.
pub async fn running(records: &Api<HealingAction>, name: &str, start: Time) {
    let status = HealingActionStatus {
        phase: ActionPhase::Running,
        reason: None,
        message: None,
        start_time: Some(start),
        finish_time: None,
        attempts: 1,
        members: Vec::new(),
    };
    set_status(records, name, status).await;
}

/// How an action ended.
pub struct Finished {
    pub phase: ActionPhase,
    pub reason: &'static str,
    pub message: String,
    pub calls: i32,
    pub start: Time,
    pub finish: Time,
}

pub async fn finish(records: &Api<HealingAction>, name: &str, finished: Finished) {
    finish_batch(records, name, finished, Vec::new()).await;
}

/// Finishes a record only if it is still at `version` (the resourceVersion it was read at): a
/// writer that finished it meanwhile (a process still carrying it out) keeps its outcome. Returns
/// whether this wrote it; a conflict is not retried.
pub async fn finish_at_version(
    records: &Api<HealingAction>,
    name: &str,
    finished: Finished,
    version: &str,
) -> Result<bool, kube::Error> {
    let mut status = status_of(finished, Vec::new());
    if let Some(message) = &mut status.message {
        kube_healer_api::evidence_bounds::cut(message, MESSAGE);
    }
    let body = serde_json::json!({"metadata": {"resourceVersion": version}, "status": status});
    let (params, merge) = (PatchParams::default(), Patch::Merge(&body));
    let (patched, _) = retry::call(Backoff::RECORD, "finishing a record at its version", || {
        records.patch_status(name, &params, &merge)
    })
    .await;
    match patched {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// A batch record's end: its phase, and each pod's outcome.
pub async fn finish_batch(
    records: &Api<HealingAction>,
    name: &str,
    finished: Finished,
    members: Vec<kube_healer_api::batch::MemberOutcome>,
) {
    set_status(records, name, status_of(finished, members)).await;
}

fn status_of(finished: Finished, members: Vec<kube_healer_api::batch::MemberOutcome>) -> HealingActionStatus {
    HealingActionStatus {
        phase: finished.phase,
        reason: Some(finished.reason.into()),
        message: Some(finished.message),
        start_time: Some(finished.start),
        finish_time: Some(finished.finish),
        attempts: finished.calls,
        members,
    }
}

/// Characters kept of a record's message (an API error can quote a large object).
const MESSAGE: usize = 4096;

/// A merge patch of the record's status: kube-healer alone writes its records, so server-side
/// apply's field ownership would buy nothing and cost the API server work on every record.
async fn set_status(records: &Api<HealingAction>, name: &str, mut status: HealingActionStatus) {
    if let Some(message) = &mut status.message {
        kube_healer_api::evidence_bounds::cut(message, MESSAGE);
    }
    let body = serde_json::json!({"status": status});
    merge_patch(
        records,
        name,
        &body,
        Part::Status,
        "updating the HealingAction status",
    )
    .await;
}

/// Deletes a record past its retention (gone already is fine).
pub async fn delete(records: &Api<HealingAction>, name: &str) {
    match records.delete(name, &Default::default()).await {
        Ok(_) => tracing::debug!(record = %name, "record past its retention deleted"),
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => tracing::warn!(record = %name, error = %e, "deleting a record past its retention failed"),
    }
}

/// A record's labels and annotations (the writer's, and a replay's records fed back to its
/// engine as the watch would show them).
pub fn metadata(
    spec: &HealingActionSpec,
    held: bool,
    in_flight_until: Option<i64>,
) -> (
    std::collections::BTreeMap<String, String>,
    Option<std::collections::BTreeMap<String, String>>,
) {
    let mut labels: std::collections::BTreeMap<String, String> = [
        (
            kube_healer_api::POLICY_LABEL.to_string(),
            label_value(&spec.policy),
        ),
        (
            kube_healer_api::TARGET_UID_LABEL.to_string(),
            label_value(&spec.target.uid),
        ),
    ]
    .into();
    let mut annotations: Option<std::collections::BTreeMap<String, String>> = None;
    let decision = match (spec.dry_run, held) {
        (_, true) => "hold",
        (true, false) => "dry-run",
        (false, false) => "act",
    };
    labels.insert(kube_healer_api::DECISION_LABEL.to_string(), decision.to_string());
    labels.insert(kube_healer_api::STEP_LABEL.to_string(), spec.step.to_string());
    // The failure's episode: a restarted operator continues it.
    if let Some(since) = &spec.failing_since {
        labels.insert(
            kube_healer_api::EPISODE_LABEL.to_string(),
            since.0.as_second().to_string(),
        );
    }
    if let Some(until) = in_flight_until {
        labels.insert(kube_healer_api::IN_FLIGHT_LABEL.to_string(), until.to_string());
    }
    // A batch: each pod's UID and episode, so that `kubectl get -l`, `explain` and a restarted
    // operator find every pod in it.
    if !spec.members.is_empty() {
        labels.insert(
            kube_healer_api::batch::BATCH_LABEL.to_string(),
            spec.members.len().to_string(),
        );
        for m in &spec.members {
            let episode = m.failing_since.as_ref().map_or(0, |t| t.0.as_second());
            labels.insert(
                kube_healer_api::batch::member_label(&m.target.uid),
                episode.to_string(),
            );
        }
        let members: Vec<String> = spec
            .members
            .iter()
            .map(|m| format!("{}={}", m.target.uid, m.record))
            .collect();
        annotations = Some(
            [(
                kube_healer_api::batch::MEMBERS_ANNOTATION.to_string(),
                members.join(","),
            )]
            .into(),
        );
    }
    if let Some((workload, removal)) = super::disrupts(spec, held) {
        annotations.get_or_insert_default().insert(
            kube_healer_api::DISRUPTS_ANNOTATION.to_string(),
            super::disrupts_value(workload, &removal),
        );
    }
    (labels, annotations)
}
