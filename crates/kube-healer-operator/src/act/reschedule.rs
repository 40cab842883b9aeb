//! Reschedule: evict or delete a controller-owned pod so that its controller recreates it,
//! optionally keeping the replacement off the pod's node for a while.

use std::time::Duration;

use kube::Client;
use kube_healer_api::action::RescheduleMethod;
use kube_healer_api::reasons;
use kube_healer_api::record::ActionPhase;
use kube_healer_core::view::Secs;

use crate::act::{Outcome, node, pod};
use crate::protocol::{ActionRequest, Leading};

/// How long Reschedule's avoidNode taint keeps replacements off the node.
pub const AVOID_FOR: Duration = Duration::from_secs(600);

/// Evicts or deletes a controller-owned pod so that its controller recreates it; with avoidNode,
/// first taints its node so that the replacement lands elsewhere (removed after [`AVOID_FOR`]).
pub async fn reschedule(client: &Client, req: &ActionRequest, now: Secs, leading: &Leading) -> Outcome {
    let spec = &req.spec;
    let params = req.step.reschedule.clone().unwrap_or_default();
    let mut avoided = String::new();
    if params.avoid_node
        && let Some(node) = spec.target.node.as_deref()
    {
        let until = now + AVOID_FOR.as_secs() as Secs;
        match node::avoid(client, node, until).await {
            Ok(()) => {
                avoided = format!(
                    ", node {node} avoided for {}",
                    kube_healer_api::Duration::from_secs(AVOID_FOR.as_secs())
                )
            }
            Err(e) => {
                return Outcome::new(
                    ActionPhase::Failed,
                    reasons::API_ERROR,
                    format!("tainting node {node} to keep the replacement off it failed: {e}"),
                    0,
                );
            }
        }
    }
    let mut outcome = match params.method {
        RescheduleMethod::Evict => pod::evict_target(client, spec, pod::DEFAULT_PDB_WAIT, leading).await,
        RescheduleMethod::Delete => pod::delete_target(client, spec, None).await,
    };
    if outcome.succeeded() {
        outcome.message = format!("{}; its controller recreates it{avoided}", outcome.message);
    }
    outcome
}
