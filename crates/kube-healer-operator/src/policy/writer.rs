//! Writing policy statuses with server-side apply, coalesced.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube_healer_api::HealingPolicy;
use tokio::sync::mpsc;

use super::PolicyStatus;
use crate::clock::Clock;

/// Writes statuses as they arrive, the latest of each policy only: statuses that arrive while a
/// round of writes runs (or in the half second after it) are coalesced, so a bulk clean-up that
/// counts thousands of actions writes its policy's status a couple of times a second, not once
/// per action. A failed write is logged and left for the next change.
pub async fn writer(client: Client, mut rx: mpsc::UnboundedReceiver<PolicyStatus>, clock: Arc<dyn Clock>) {
    let api: Api<HealingPolicy> = Api::all(client);
    let params = PatchParams::apply("kube-healer").force();
    while let Some(first) = rx.recv().await {
        let mut latest = std::collections::BTreeMap::new();
        latest.insert(first.name.clone(), first);
        while let Ok(next) = rx.try_recv() {
            latest.insert(next.name.clone(), next);
        }
        for status in latest.into_values() {
            write(&api, &params, status, clock.time()).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

async fn write(api: &Api<HealingPolicy>, params: &PatchParams, status: PolicyStatus, now: Time) {
    let body = serde_json::json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1",
        "kind": "HealingPolicy",
        "status": {
            "observedGeneration": status.generation,
            "conditions": status.conditions(&now),
            "targetsMatched": status.targets_matched,
            "actionsTaken": status.actions_taken,
            "lastActionTime": status.last_action.map(kube_healer_core::finding::time),
        },
    });
    if let Err(e) = api.patch_status(&status.name, params, &Patch::Apply(&body)).await {
        tracing::warn!(policy = %status.name, error = %e, "writing the policy status failed");
    }
}
