//! A Kubernetes Event on the target of each action, so that `kubectl describe` tells what
//! kube-healer did, held back, or failed to do.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use kube_healer_api::record::ActionPhase;
use kube_healer_api::{HealingActionSpec, reasons};

pub async fn announce(
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
