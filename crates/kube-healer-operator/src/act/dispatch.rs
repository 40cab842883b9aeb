//! The API call(s) of each action kind: one exhaustive match, so a new action kind cannot be
//! added without saying how it is carried out.

use std::time::Duration;

use kube::Client;
use kube_healer_api::ActionKind;
use kube_healer_api::node_job::MAX_DEADLINE_SECONDS;
use kube_healer_api::reasons;
use kube_healer_api::record::ActionPhase;
use kube_healer_api::remediate::RemediateParams;
use kube_healer_api::replace::ReplaceParams;

use crate::act::failure::missing;
use crate::act::job::JobsPlace;
use crate::act::{Outcome, drain, job, node, pod, remediate, replace, reschedule, restart};
use crate::clock::Clock;
use crate::protocol::{ActionRequest, Leading};

pub async fn carry_out(
    client: &Client,
    req: &ActionRequest,
    clock: &dyn Clock,
    jobs: &JobsPlace,
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
        ActionKind::Delete if asks_budgets(spec) => {
            pod::delete_within_budgets(client, spec, removal_grace(req), leading).await
        }
        ActionKind::Delete | ActionKind::ForceDelete => {
            pod::delete_target(client, spec, removal_grace(req)).await
        }
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
            Some(params) => job::run_job(client, &req.name, spec, &params.node_job, jobs, leading).await,
            None => missing("runJob"),
        },
        ActionKind::OutOfService => node::taint(client, spec, &node::out_of_service()).await,
        ActionKind::Remediate => match &step.remediate {
            Some(params) => remediate::remediate(client, spec, params, leading, clock).await,
            None => missing("remediate"),
        },
        ActionKind::Replace => {
            let params = step.replace.clone().unwrap_or_default();
            replace::replace(client, spec, &params, leading).await
        }
    }
}

/// Whether removing the target pod asks its PodDisruptionBudgets first (through the Eviction
/// API, which applies each budget atomically). Evict does; Delete does, so that choosing it over
/// Evict never bypasses a budget, unless its pod stopped for good (no budget counts one, and the
/// Eviction API would delete it without asking; a plain delete is one call). ForceDelete does
/// not: its pod's node is gone, no budget can be kept by leaving the pod (its kubelet cannot end
/// it), and the Eviction API would not let it go. The others remove no pod themselves (Drain
/// and Reschedule evict theirs; RestartOwner asks the budgets itself).
pub fn asks_budgets(spec: &kube_healer_api::HealingActionSpec) -> bool {
    match spec.action {
        ActionKind::Evict => true,
        ActionKind::Delete => !spec.class.properties().stopped_for_good,
        ActionKind::ForceDelete
        | ActionKind::Event
        | ActionKind::Reschedule
        | ActionKind::RestartOwner
        | ActionKind::Cordon
        | ActionKind::Taint
        | ActionKind::Drain
        | ActionKind::RunJob
        | ActionKind::OutOfService
        | ActionKind::Remediate
        | ActionKind::Replace => false,
    }
}

/// Room for a long action's retries and record writes beyond its own deadline.
const LONG_ACTION_SLACK: Duration = Duration::from_secs(120);

/// How long a long action may run at most (its PDB wait, drain timeout or Job deadline, plus
/// room for retries): the in-flight mark on its record counts no longer than this. None for
/// one-call actions.
pub fn longest(req: &ActionRequest) -> Option<Duration> {
    let step = &req.step;
    let own = match req.spec.action {
        ActionKind::Evict => step
            .evict
            .as_ref()
            .and_then(|e| e.pdb_wait)
            .map_or(pod::DEFAULT_PDB_WAIT, |w| w.as_std()),
        ActionKind::Reschedule => pod::DEFAULT_PDB_WAIT,
        ActionKind::RestartOwner => Duration::ZERO,
        ActionKind::Drain => step
            .drain
            .as_ref()
            .and_then(|d| d.timeout)
            .map_or(drain::DEFAULT_TIMEOUT, |t| t.as_std()),
        // The definition is read only when the Job is created: the longest a NodeJob may run.
        ActionKind::RunJob => Duration::from_secs(MAX_DEADLINE_SECONDS as u64 + 60),
        ActionKind::Remediate => step
            .remediate
            .as_ref()
            .map_or(RemediateParams::DEFAULT_TIMEOUT, |r| r.timeout()),
        ActionKind::Replace => step
            .replace
            .as_ref()
            .map_or(ReplaceParams::DEFAULT_TIMEOUT, |r| r.timeout()),
        ActionKind::Event
        | ActionKind::Delete
        | ActionKind::ForceDelete
        | ActionKind::Cordon
        | ActionKind::Taint
        | ActionKind::OutOfService => return None,
    };
    Some(own + LONG_ACTION_SLACK)
}

/// A pod deletion's grace period: ForceDelete's 0, or Delete's own (None: the pod's).
pub fn removal_grace(req: &ActionRequest) -> Option<u32> {
    match req.spec.action {
        ActionKind::ForceDelete => Some(0),
        // Delete's own; the others delete no pod through this path and read nothing from it.
        ActionKind::Event
        | ActionKind::Evict
        | ActionKind::Delete
        | ActionKind::Reschedule
        | ActionKind::RestartOwner
        | ActionKind::Cordon
        | ActionKind::Taint
        | ActionKind::Drain
        | ActionKind::RunJob
        | ActionKind::OutOfService
        | ActionKind::Remediate
        | ActionKind::Replace => req
            .step
            .delete
            .as_ref()
            .and_then(|d| d.grace_period_seconds)
            .map(|g| g.clamp(0, u32::MAX as i64) as u32),
    }
}

#[cfg(test)]
mod tests {
    use kube_healer_api::{FailureClass, HealingActionSpec, TargetKind, TargetRef};

    use super::*;

    /// Every action that takes long has a bound on how long (its record's in-flight mark), and
    /// no one-call action has one: the executor's lanes and the marks agree.
    #[test]
    fn long_actions_and_their_bounds_agree() {
        for &action in ActionKind::ALL {
            let req = ActionRequest {
                name: "r".into(),
                spec: HealingActionSpec {
                    policy: "p".into(),
                    policy_generation: None,
                    target: TargetRef::new(TargetKind::Node, None, "n", "u", None),
                    class: FailureClass::SystemOOM,
                    action,
                    step: 1,
                    dry_run: false,
                    failing_since: None,
                    decided_at: crate::clock::ManualClock::at(0).time(),
                    evidence: Default::default(),
                    members: Vec::new(),
                    cause: None,
                },
                step: serde_json::from_value(serde_json::json!({"action": action.as_str()})).expect("a step"),
                hold: None,
                owner: None,
                cooldown: Duration::from_secs(60),
                protected_namespaces: Vec::new().into(),
                seen: None,
                before: None,
                due_ms: None,
                takes_up: Default::default(),
            };
            assert_eq!(
                action.properties().takes_long,
                longest(&req).is_some(),
                "{action}"
            );
        }
    }
}
