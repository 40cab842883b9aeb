//! Carrying out decisions: the HealingAction record is written before the API call and updated
//! after it. Record names are derived from the decision, so a decision recorded once (by this
//! replica before a crash, or by a previous leader) is never carried out again.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::api::{Api, DeleteParams, EvictParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube_healer_api::record::{ActionPhase, HealingActionStatus};
use kube_healer_api::{ActionKind, HealingAction, HealingActionSpec, HealingStep, reasons};
use tokio::sync::{Semaphore, mpsc};

use crate::metrics::Metrics;
use crate::node_actions;

/// A decision to record (and, unless held or dry, to carry out).
#[derive(Clone, Debug)]
pub struct ActionRequest {
    pub name: String,
    pub spec: HealingActionSpec,
    pub step: HealingStep,
    /// Held back: the reason and message (recorded as Skipped).
    pub hold: Option<(&'static str, String)>,
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
}

/// What came of a request (for the engine's budget).
#[derive(Clone, Debug)]
pub struct ActionDone {
    pub policy: String,
    /// Whether the request counted as in flight (a real action, neither held nor a dry run).
    pub was_in_flight: bool,
    pub carried_out: bool,
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
            let carried_out = handle(&client, &records, &recorder, &metrics, req).await;
            let _ = done.send(ActionDone {
                policy,
                was_in_flight,
                carried_out,
            });
            drop(permit);
        });
    }
}

/// Actions carried out at the same time, at most.
const MAX_PARALLEL_ACTIONS: usize = 16;

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

async fn set_status(records: &Api<HealingAction>, name: &str, status: HealingActionStatus) {
    let body = serde_json::json!({"apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingAction", "status": status});
    if let Err(e) = records
        .patch_status(
            name,
            &PatchParams::apply("kube-healer").force(),
            &Patch::Apply(&body),
        )
        .await
    {
        tracing::warn!(record = name, error = %e, "updating the HealingAction status failed");
    }
}

/// Returns whether a change was made to the cluster.
async fn handle(
    client: &Client,
    records: &Api<HealingAction>,
    recorder: &Recorder,
    metrics: &Metrics,
    req: ActionRequest,
) -> bool {
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
    match create_with_retries(records, &record).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {
            tracing::info!(record = %req.name, "decision already recorded: not carried out again");
            return false;
        }
        Err(e) => {
            tracing::warn!(record = %req.name, error = %e, "recording the decision failed: not acting");
            return false;
        }
    }
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
        return false;
    }
    let decided = req.spec.decided_at.0;
    metrics.decision_latency.observe(
        k8s_openapi::jiff::Timestamp::now()
            .duration_since(decided)
            .as_secs_f64()
            .max(0.0),
    );
    set_status(
        records,
        &req.name,
        HealingActionStatus {
            phase: ActionPhase::Running,
            reason: None,
            message: None,
            start_time: Some(start.clone()),
            finish_time: None,
            attempts: 1,
        },
    )
    .await;
    let (phase, reason, message, attempts) = carry_out(client, &req).await;
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
    announce(recorder, &req.spec, phase, reason, &message_for_event).await;
    phase == ActionPhase::Succeeded
}

/// Creates the record, retrying transient refusals (429, 5xx, timeouts) with backoff for about
/// 30 s; a conflict (409) is returned at once: the decision was recorded before.
async fn create_with_retries(
    records: &Api<HealingAction>,
    record: &HealingAction,
) -> Result<HealingAction, kube::Error> {
    let mut delay = Duration::from_millis(250);
    let mut tries = 0;
    loop {
        tries += 1;
        match records.create(&PostParams::default(), record).await {
            Err(kube::Error::Api(s)) if (s.code == 429 || s.code >= 500) && tries < 8 => {}
            Err(kube::Error::HyperError(_) | kube::Error::Service(_)) if tries < 8 => {}
            other => return other,
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(8));
    }
}

fn label_value(s: &str) -> String {
    let v: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(63)
        .collect();
    v.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}

/// The API call(s) of one action: (phase, reason, message, attempts).
async fn carry_out(client: &Client, req: &ActionRequest) -> (ActionPhase, &'static str, String, i32) {
    let target = &req.spec.target;
    let ns = target.namespace.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    // Only the very object decided on: a pod recreated under the same name is another pod.
    let same_pod = Preconditions {
        uid: Some(target.uid.clone()),
        resource_version: None,
    };
    let gone = |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 404 || s.code == 409);
    match req.spec.action {
        ActionKind::Evict => {
            let wait = req
                .step
                .evict
                .as_ref()
                .and_then(|e| e.pdb_wait)
                .unwrap_or(kube_healer_api::Duration::from_secs(300));
            let deadline = tokio::time::Instant::now() + wait.as_std();
            let params = EvictParams {
                delete_options: Some(DeleteParams {
                    preconditions: Some(same_pod),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let mut attempts = 0;
            loop {
                attempts += 1;
                match pods.evict(&target.name, &params).await {
                    Ok(_) => {
                        return (
                            ActionPhase::Succeeded,
                            reasons::COMPLETED,
                            format!("evicted {}", target.reference),
                            attempts,
                        );
                    }
                    Err(kube::Error::Api(s)) if s.code == 429 => {
                        if tokio::time::Instant::now() + Duration::from_secs(5) > deadline {
                            return (
                                ActionPhase::Failed,
                                reasons::PDB_BLOCKED,
                                format!(
                                    "a PodDisruptionBudget refused the eviction for {wait}: {}",
                                    s.message
                                ),
                                attempts,
                            );
                        }
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    Err(e) if gone(&e) => {
                        return (
                            ActionPhase::Failed,
                            reasons::TARGET_GONE,
                            format!("{} is gone or was replaced", target.reference),
                            attempts,
                        );
                    }
                    Err(e) => return (ActionPhase::Failed, reasons::API_ERROR, e.to_string(), attempts),
                }
            }
        }
        ActionKind::Delete | ActionKind::ForceDelete => {
            let grace = match req.spec.action {
                ActionKind::ForceDelete => Some(0),
                _ => req
                    .step
                    .delete
                    .as_ref()
                    .and_then(|d| d.grace_period_seconds)
                    .map(|g| g as u32),
            };
            let params = DeleteParams {
                grace_period_seconds: grace,
                preconditions: Some(same_pod),
                ..Default::default()
            };
            match pods.delete(&target.name, &params).await {
                Ok(_) => (
                    ActionPhase::Succeeded,
                    reasons::COMPLETED,
                    format!(
                        "deleted {}{}",
                        target.reference,
                        if grace == Some(0) { " (grace period 0)" } else { "" }
                    ),
                    1,
                ),
                Err(e) if gone(&e) => (
                    ActionPhase::Failed,
                    reasons::TARGET_GONE,
                    format!("{} is gone or was replaced", target.reference),
                    1,
                ),
                Err(e) => (ActionPhase::Failed, reasons::API_ERROR, e.to_string(), 1),
            }
        }
        ActionKind::Event => (
            ActionPhase::Succeeded,
            reasons::COMPLETED,
            format!("recorded: {}", req.spec.evidence.summary),
            0,
        ),
        ActionKind::Cordon => node_actions::cordon(client, &req.spec).await,
        ActionKind::Taint => match &req.step.taint {
            Some(taint) => node_actions::taint(client, &req.spec, taint).await,
            None => (
                ActionPhase::Failed,
                reasons::UNSAFE,
                "Taint without spec.actions[].taint".into(),
                0,
            ),
        },
        other => (
            ActionPhase::Failed,
            reasons::UNSAFE,
            format!("{other} is not carried out by this version"),
            0,
        ),
    }
}
