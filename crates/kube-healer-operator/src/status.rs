//! HealingPolicy status, written by the leader with server-side apply: observedGeneration, the
//! Ready, Invalid and Suspended conditions, how many targets the policy selects, and how many
//! actions it took (counted on from the status read back, so a restart or failover keeps the count).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube_healer_api::HealingPolicy;
use tokio::sync::mpsc;

/// What the operator knows of a policy, to be written to its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyStatus {
    pub name: String,
    pub generation: Option<i64>,
    /// Err: why the policy cannot be used.
    pub validity: Result<(), String>,
    pub suspended: bool,
    pub targets_matched: i64,
    /// Actions carried out (changes made to the cluster) since the policy was created.
    pub actions_taken: i64,
    /// When the last one was carried out (Unix seconds).
    pub last_action: Option<i64>,
}

impl PolicyStatus {
    fn conditions(&self, now: &Time) -> Vec<Condition> {
        let condition = |type_: &str, status: bool, reason: &str, message: String| Condition {
            type_: type_.into(),
            status: if status { "True" } else { "False" }.into(),
            reason: reason.into(),
            message,
            last_transition_time: now.clone(),
            observed_generation: self.generation,
        };
        let (ready, invalid) = match &self.validity {
            Ok(()) => (
                condition(
                    "Ready",
                    true,
                    "Loaded",
                    format!("selects {} targets", self.targets_matched),
                ),
                condition("Invalid", false, "Valid", String::new()),
            ),
            Err(e) => (
                condition("Ready", false, "Invalid", e.clone()),
                condition("Invalid", true, "Invalid", e.clone()),
            ),
        };
        let suspended = if self.suspended {
            condition(
                "Suspended",
                true,
                "Suspended",
                "spec.safety.suspend is true: no action is taken".into(),
            )
        } else {
            condition("Suspended", false, "Active", String::new())
        };
        vec![ready, invalid, suspended]
    }
}

/// Writes statuses as they arrive, the latest of each policy only: statuses that arrive while a
/// round of writes runs (or in the half second after it) are coalesced, so a bulk clean-up that
/// counts thousands of actions writes its policy's status a couple of times a second, not once
/// per action. A failed write is logged and left for the next change.
pub async fn writer(client: Client, mut rx: mpsc::UnboundedReceiver<PolicyStatus>) {
    let api: Api<HealingPolicy> = Api::all(client);
    let params = PatchParams::apply("kube-healer").force();
    while let Some(first) = rx.recv().await {
        let mut latest = std::collections::BTreeMap::new();
        latest.insert(first.name.clone(), first);
        while let Ok(next) = rx.try_recv() {
            latest.insert(next.name.clone(), next);
        }
        for status in latest.into_values() {
            write(&api, &params, status).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

async fn write(api: &Api<HealingPolicy>, params: &PatchParams, status: PolicyStatus) {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
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
