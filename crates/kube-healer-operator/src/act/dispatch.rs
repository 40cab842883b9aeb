//! The API call(s) of each action kind: one exhaustive match, so a new action kind cannot be
//! added without saying how it is carried out.

use kube::Client;
use kube_healer_api::ActionKind;
use kube_healer_api::reasons;
use kube_healer_api::record::ActionPhase;

use crate::act::failure::missing;
use crate::act::{Outcome, drain, job, node, pod, reschedule, restart};
use crate::clock::Clock;
use crate::protocol::{ActionRequest, Leading};

pub async fn carry_out(
    client: &Client,
    req: &ActionRequest,
    clock: &dyn Clock,
    leading: &Leading,
) -> Outcome {
    let spec = &req.spec;
    let step = &req.step;
    match spec.action {
        ActionKind::Event => Outcome::new(
            ActionPhase::Succeeded,
            reasons::COMPLETED,
            format!("recorded: {}", spec.evidence.summary),
            0,
        ),
        ActionKind::Evict => {
            let wait = step.evict.as_ref().and_then(|e| e.pdb_wait);
            let wait = wait.map_or(pod::DEFAULT_PDB_WAIT, |w| w.as_std());
            pod::evict_target(client, spec, wait, leading).await
        }
        ActionKind::Delete => {
            let grace = step.delete.as_ref().and_then(|d| d.grace_period_seconds);
            pod::delete_target(client, spec, grace.map(|g| g as u32)).await
        }
        ActionKind::ForceDelete => pod::delete_target(client, spec, Some(0)).await,
        ActionKind::Reschedule => reschedule::reschedule(client, req, clock.now(), leading).await,
        ActionKind::RestartOwner => restart::restart_owner(client, req, req.cooldown, clock).await,
        ActionKind::Cordon => node::cordon(client, spec).await,
        ActionKind::Taint => match &step.taint {
            Some(taint) => node::taint(client, spec, taint).await,
            None => missing("taint"),
        },
        ActionKind::Drain => {
            let params = step.drain.clone().unwrap_or_default();
            drain::drain(client, spec, &params, &req.protected_namespaces, leading).await
        }
        ActionKind::RunJob => match &step.run_job {
            Some(params) => job::run_job(client, &req.name, spec, params, leading).await,
            None => missing("runJob"),
        },
        ActionKind::OutOfService => node::taint(client, spec, &node::out_of_service()).await,
    }
}

/// Whether an action may take more than one quick call (waits, follows, several objects).
pub fn takes_long(action: ActionKind) -> bool {
    match action {
        ActionKind::Evict
        | ActionKind::Reschedule
        | ActionKind::RestartOwner
        | ActionKind::Drain
        | ActionKind::RunJob => true,
        ActionKind::Event
        | ActionKind::Delete
        | ActionKind::ForceDelete
        | ActionKind::Cordon
        | ActionKind::Taint
        | ActionKind::OutOfService => false,
    }
}

/// Whether the action's aim is the target pod gone (so that a pod already gone is the aim met).
pub fn removes_target(action: ActionKind) -> bool {
    match action {
        ActionKind::Evict | ActionKind::Delete | ActionKind::ForceDelete | ActionKind::Reschedule => true,
        ActionKind::Event
        | ActionKind::RestartOwner
        | ActionKind::Cordon
        | ActionKind::Taint
        | ActionKind::Drain
        | ActionKind::RunJob
        | ActionKind::OutOfService => false,
    }
}
