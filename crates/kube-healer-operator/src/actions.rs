//! Carrying out decisions: the HealingAction record is written before the API call and updated
//! after it. Record names are derived from the decision, so a decision recorded once (by this
//! replica before a crash, or by a previous leader) is never carried out again.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube_healer_api::record::{ActionPhase, HealingActionStatus};
use kube_healer_api::{ActionKind, FailureClass, HealingAction, HealingActionSpec, HealingStep, reasons};
use tokio::sync::{Semaphore, mpsc};

use crate::metrics::Metrics;
use crate::retry::{self, Backoff};
use crate::{drain, job, node_actions, pod_actions};

/// What an action came to: phase, reason, message and the number of API calls it made.
pub type Outcome = (ActionPhase, &'static str, String, i32);

/// A decision to record (and, unless held or dry, to carry out).
#[derive(Clone, Debug)]
pub struct ActionRequest {
    pub name: String,
    pub spec: HealingActionSpec,
    pub step: HealingStep,
    /// Held back: the reason and message (recorded as Skipped).
    pub hold: Option<(&'static str, String)>,
    /// The pod's controller (kind, name), for RestartOwner.
    pub owner: Option<(kube_healer_core::view::OwnerKind, String)>,
    /// The policy's cooldown: RestartOwner restarts a workload once within it.
    pub cooldown: Duration,
    /// The ladder's last action before this decision, to take the decision back if it cannot
    /// be recorded.
    pub before: Option<(usize, i64)>,
    /// For a ladder's first step: when the failure became due for this operator (Unix
    /// milliseconds), for the reaction time metric.
    pub due_ms: Option<i64>,
}

/// Work for the executor.
#[derive(Clone, Debug)]
pub enum Work {
    Act(Box<ActionRequest>),
    /// The policy's failure cleared on the node: undo its cordon and taints, if kube-healer made them.
    Revert {
        policy: String,
        node: String,
    },
    /// Reschedule's avoid taint on the node expired: remove it.
    Unavoid {
        node: String,
    },
    /// A HealingAction past its retention: delete it.
    DeleteRecord {
        name: String,
    },
}

/// What came of a request (for the engine's budget).
#[derive(Clone, Debug)]
pub struct ActionDone {
    pub policy: String,
    /// Whether the request counted as in flight (a real action, neither held nor a dry run).
    pub was_in_flight: bool,
    pub carried_out: bool,
    /// The decision could not be recorded (the API server refused or did not answer for longer
    /// than the retries last), so it was not carried out either: the engine takes it back and
    /// decides again later, on fresh state.
    pub unrecorded: Option<Box<ActionRequest>>,
}

/// The record name of a decision: policy, target UID, failure episode, step and attempt.
pub fn record_name(
    policy: &str,
    uid: &str,
    episode: i64,
    step: usize,
    attempt: u32,
    hold: Option<&str>,
) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (uid, episode, step, attempt, hold).hash(&mut h);
    let prefix: String = policy.chars().take(200).collect();
    format!("{prefix}-{:016x}", h.finish())
}

/// Runs requests one after another until the channel closes.
pub async fn executor(
    client: Client,
    mut rx: mpsc::UnboundedReceiver<Work>,
    done: mpsc::UnboundedSender<ActionDone>,
    metrics: Arc<Metrics>,
    instance: String,
) {
    let records: Api<HealingAction> = Api::all(client.clone());
    let reporter = Reporter {
        controller: "kube-healer".into(),
        instance: Some(instance),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    // An eviction may wait minutes on a PodDisruptionBudget: actions run side by side, bounded.
    let slots = Arc::new(Semaphore::new(MAX_PARALLEL_ACTIONS));
    while let Some(work) = rx.recv().await {
        let req = match work {
            Work::Act(req) => *req,
            Work::Revert { policy, node } => {
                let (client, recorder) = (client.clone(), recorder.clone());
                tokio::spawn(async move { node_actions::revert(&client, &recorder, &policy, &node).await });
                continue;
            }
            Work::DeleteRecord { name } => {
                match records.delete(&name, &Default::default()).await {
                    Ok(_) => tracing::debug!(record = %name, "record past its retention deleted"),
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => {
                        tracing::warn!(record = %name, error = %e, "deleting a record past its retention failed")
                    }
                }
                continue;
            }
            Work::Unavoid { node } => {
                let client = client.clone();
                let now = k8s_openapi::jiff::Timestamp::now().as_second();
                tokio::spawn(async move { node_actions::remove_expired_avoid(&client, &node, now).await });
                continue;
            }
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (client, records, recorder, done, metrics) = (
            client.clone(),
            records.clone(),
            recorder.clone(),
            done.clone(),
            metrics.clone(),
        );
        tokio::spawn(async move {
            let policy = req.spec.policy.clone();
            let was_in_flight = req.hold.is_none() && !req.spec.dry_run;
            let handled = handle(&client, &records, &recorder, &metrics, req).await;
            let _ = done.send(ActionDone {
                policy,
                was_in_flight,
                carried_out: matches!(handled, Handled::CarriedOut),
                unrecorded: match handled {
                    Handled::Unrecorded(req) => Some(req),
                    _ => None,
                },
            });
            drop(permit);
        });
    }
}

/// Actions carried out at the same time, at most (each policy's maxConcurrent applies within).
const MAX_PARALLEL_ACTIONS: usize = 64;

/// A Kubernetes Event on the target, so that `kubectl describe` tells what kube-healer did.
async fn announce(
    recorder: &Recorder,
    spec: &HealingActionSpec,
    phase: ActionPhase,
    reason: &str,
    message: &str,
) {
    let target = &spec.target;
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some(target.kind.as_str().into()),
        namespace: target.namespace.clone(),
        name: Some(target.name.clone()),
        uid: Some(target.uid.clone()),
        ..Default::default()
    };
    let (type_, event_reason) = match (phase, reason) {
        (ActionPhase::Succeeded, _) => (EventType::Normal, "Healed"),
        (ActionPhase::Skipped, r) if r == reasons::DRY_RUN => (EventType::Normal, "HealingDryRun"),
        (ActionPhase::Skipped, _) => (EventType::Warning, "HealingHeld"),
        _ => (EventType::Warning, "HealingFailed"),
    };
    let note: String = format!(
        "{} ({}, policy {}): {message}",
        spec.action, spec.class, spec.policy
    )
    .chars()
    .take(1000)
    .collect();
    let event = Event {
        type_,
        reason: event_reason.into(),
        note: Some(note),
        action: spec.action.as_str().into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &reference).await {
        tracing::debug!(target = %target.reference, error = %e, "publishing the Event failed");
    }
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// A merge patch of the record's status: kube-healer alone writes its records, so server-side
/// apply's field ownership would buy nothing and cost the API server work on every record.
async fn set_status(records: &Api<HealingAction>, name: &str, status: HealingActionStatus) {
    let body = serde_json::json!({"status": status});
    let (params, merge) = (PatchParams::default(), Patch::Merge(&body));
    let (patched, _) = retry::call(Backoff::RECORD, "update HealingAction status", || {
        records.patch_status(name, &params, &merge)
    })
    .await;
    if let Err(e) = patched {
        tracing::warn!(record = name, error = %e, "updating the HealingAction status failed");
    }
}

/// What came of handling a request.
enum Handled {
    /// Recorded and carried out: the cluster was changed.
    CarriedOut,
    /// Recorded; held, dry run, failed, or recorded before.
    NotCarriedOut,
    /// Not recorded, so not carried out: the request, to be taken back.
    Unrecorded(Box<ActionRequest>),
}

async fn handle(
    client: &Client,
    records: &Api<HealingAction>,
    recorder: &Recorder,
    metrics: &Metrics,
    req: ActionRequest,
) -> Handled {
    let mut record = HealingAction::new(&req.name, req.spec.clone());
    record.metadata.labels = Some(
        [
            (
                kube_healer_api::POLICY_LABEL.to_string(),
                label_value(&req.spec.policy),
            ),
            (
                kube_healer_api::TARGET_UID_LABEL.to_string(),
                label_value(&req.spec.target.uid),
            ),
        ]
        .into(),
    );
    let mut resumed = false;
    match create_with_retries(records, &record).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {
            // Recorded before: by this replica before a restart, or by a previous leader. Carried
            // out (or held) already, unless the record never got past Pending or Running: the
            // process ended between the record and the call, or during the call. Those are
            // finished now; every action is safe to repeat (UID preconditions, the node's own
            // state, deterministic Job names, one restart per workload and cooldown).
            match retry::call(Backoff::RECORD, "get HealingAction", || records.get(&req.name))
                .await
                .0
            {
                Ok(existing) if unfinished(&existing) => {
                    tracing::warn!(record = %req.name, "decision recorded but not finished before a restart: finishing it");
                    resumed = true;
                }
                Ok(_) => {
                    tracing::info!(record = %req.name, "decision already recorded: not carried out again");
                    return Handled::NotCarriedOut;
                }
                Err(e) => {
                    tracing::warn!(record = %req.name, error = %e, "reading the earlier record failed: not acting now");
                    return Handled::Unrecorded(Box::new(req));
                }
            }
        }
        Err(e) => {
            tracing::warn!(record = %req.name, error = %e, "recording the decision failed: not acting now, deciding again later");
            return Handled::Unrecorded(Box::new(req));
        }
    }
    failpoint("after-record");
    let target = &req.spec.target;
    let start = now();
    // Held back, or a dry run: recorded as Skipped, nothing changed.
    let skipped = match req.hold.clone() {
        Some((reason, message)) => Some((reason, message)),
        None if req.spec.dry_run => Some((
            reasons::DRY_RUN,
            format!("dry run: would {} {}", req.spec.action, target.reference),
        )),
        None => None,
    };
    if let Some((reason, message)) = skipped {
        tracing::info!(record = %req.name, target = %target.reference, reason, %message, "not carried out");
        let status = HealingActionStatus {
            phase: ActionPhase::Skipped,
            reason: Some(reason.into()),
            message: Some(message.clone()),
            start_time: None,
            finish_time: Some(start),
            attempts: 0,
        };
        set_status(records, &req.name, status).await;
        metrics
            .actions
            .get_or_create(&Metrics::action(req.spec.action, ActionPhase::Skipped, reason))
            .inc();
        announce(recorder, &req.spec, ActionPhase::Skipped, reason, &message).await;
        return Handled::NotCarriedOut;
    }
    let calling = k8s_openapi::jiff::Timestamp::now();
    metrics.decision_latency.observe(
        calling
            .duration_since(req.spec.decided_at.0)
            .as_secs_f64()
            .max(0.0),
    );
    if let Some(due) = req.due_ms {
        let since_due = (calling.as_millisecond() - due) as f64 / 1000.0;
        metrics.due_latency.observe(since_due.max(0.0));
    }
    // An action that takes long (an eviction waiting on a PodDisruptionBudget, a drain, a
    // Job) shows Running meanwhile; the call does not wait for that write, and the final phase is
    // written after both. One-call actions skip it: a record without a final phase is finished
    // after a crash either way, and in a bulk clean-up every write to the API server counts.
    let running = async {
        if takes_long(req.spec.action) {
            let status = HealingActionStatus {
                phase: ActionPhase::Running,
                reason: None,
                message: None,
                start_time: Some(start.clone()),
                finish_time: None,
                attempts: 1,
            };
            set_status(records, &req.name, status).await;
        }
    };
    let ((), outcome) = tokio::join!(running, carry_out(client, &req));
    let (phase, reason, message, attempts) = match outcome {
        // Finishing a decision of a process that ended: its call may have been made already.
        (ActionPhase::Failed, reasons::TARGET_GONE, _, calls)
            if resumed && removes_target(req.spec.action) =>
        {
            (
                ActionPhase::Succeeded,
                reasons::COMPLETED,
                format!(
                    "{} is gone: the call made before the restart took effect, or it was removed since",
                    target.reference
                ),
                calls,
            )
        }
        outcome => outcome,
    };
    tracing::info!(record = %req.name, target = %target.reference, action = %req.spec.action, ?phase, reason, %message, "action finished");
    let message_for_event = message.clone();
    let status = HealingActionStatus {
        phase,
        reason: Some(reason.into()),
        message: Some(message),
        start_time: Some(start),
        finish_time: Some(now()),
        attempts,
    };
    set_status(records, &req.name, status).await;
    metrics
        .actions
        .get_or_create(&Metrics::action(req.spec.action, phase, reason))
        .inc();
    // A leftover (a pod that had stopped for good) cleaned away needs no Event: its record tells
    // the story, and a bulk clean-up would write one Event per pod. Everything else is
    // announced on the target.
    let leftover_removed = phase == ActionPhase::Succeeded
        && removes_target(req.spec.action)
        && matches!(
            req.spec.class,
            FailureClass::Evicted | FailureClass::Failed | FailureClass::AdmissionRejected
        );
    if !leftover_removed {
        announce(recorder, &req.spec, phase, reason, &message_for_event).await;
    }
    if phase == ActionPhase::Succeeded {
        Handled::CarriedOut
    } else {
        Handled::NotCarriedOut
    }
}

/// Whether an action may take more than one quick call (waits, follows, several objects).
fn takes_long(action: ActionKind) -> bool {
    matches!(
        action,
        ActionKind::Evict
            | ActionKind::Reschedule
            | ActionKind::RestartOwner
            | ActionKind::Drain
            | ActionKind::RunJob
    )
}

/// Whether the action's aim is the target pod gone (so that a pod already gone is the aim met).
fn removes_target(action: ActionKind) -> bool {
    matches!(
        action,
        ActionKind::Evict | ActionKind::Delete | ActionKind::ForceDelete | ActionKind::Reschedule
    )
}

/// Whether a record was left unfinished (no status, Pending or Running) by a process that ended.
fn unfinished(record: &HealingAction) -> bool {
    record
        .status
        .as_ref()
        .is_none_or(|s| matches!(s.phase, ActionPhase::Pending | ActionPhase::Running))
}

/// Crash tests: `KUBE_HEALER_FAILPOINT=after-record` aborts the process right after a decision is
/// recorded and before its API call.
fn failpoint(name: &str) {
    static FAILPOINT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    if FAILPOINT
        .get_or_init(|| std::env::var("KUBE_HEALER_FAILPOINT").ok())
        .as_deref()
        == Some(name)
    {
        tracing::error!(failpoint = name, "failpoint reached: aborting");
        std::process::abort();
    }
}

/// Creates the record, retrying passing failures (429, 5xx, timeouts) with backoff; a conflict
/// (409) is returned at once: the decision was recorded before.
async fn create_with_retries(
    records: &Api<HealingAction>,
    record: &HealingAction,
) -> Result<HealingAction, kube::Error> {
    let params = PostParams::default();
    retry::call(Backoff::RECORD, "create HealingAction", || {
        records.create(&params, record)
    })
    .await
    .0
}

pub fn label_value(s: &str) -> String {
    let v: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(63)
        .collect();
    v.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}

/// The API call(s) of one action.
async fn carry_out(client: &Client, req: &ActionRequest) -> Outcome {
    let spec = &req.spec;
    let step = &req.step;
    match spec.action {
        ActionKind::Event => (
            ActionPhase::Succeeded,
            reasons::COMPLETED,
            format!("recorded: {}", spec.evidence.summary),
            0,
        ),
        ActionKind::Evict => {
            let wait = step.evict.as_ref().and_then(|e| e.pdb_wait);
            let wait = wait.map_or(pod_actions::DEFAULT_PDB_WAIT, |w| w.as_std());
            pod_actions::evict_target(client, spec, wait).await
        }
        ActionKind::Delete => {
            let grace = step.delete.as_ref().and_then(|d| d.grace_period_seconds);
            pod_actions::delete_target(client, spec, grace.map(|g| g as u32)).await
        }
        ActionKind::ForceDelete => pod_actions::delete_target(client, spec, Some(0)).await,
        ActionKind::Reschedule => pod_actions::reschedule(client, req).await,
        ActionKind::RestartOwner => pod_actions::restart_owner(client, req, req.cooldown).await,
        ActionKind::Cordon => node_actions::cordon(client, spec).await,
        ActionKind::Taint => match &step.taint {
            Some(taint) => node_actions::taint(client, spec, taint).await,
            None => missing("taint"),
        },
        ActionKind::Drain => drain::drain(client, spec, &step.drain.clone().unwrap_or_default()).await,
        ActionKind::RunJob => match &step.run_job {
            Some(params) => job::run_job(client, &req.name, spec, params).await,
            None => missing("runJob"),
        },
    }
}

/// An action that failed on an API error, after `calls` calls.
pub fn api_failure(e: &kube::Error, calls: i32) -> Outcome {
    let plural = if calls == 1 { "" } else { "s" };
    (
        ActionPhase::Failed,
        reasons::API_ERROR,
        format!("{} ({calls} call{plural})", retry::describe(e)),
        calls,
    )
}

fn missing(field: &str) -> Outcome {
    (
        ActionPhase::Failed,
        reasons::UNSAFE,
        format!("spec.actions[].{field} is missing"),
        0,
    )
}
