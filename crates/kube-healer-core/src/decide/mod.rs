//! The decision for one policy condition holding on one target: wait, act (which ladder step),
//! or hold back (which gate, until when). Pure: every input is a parameter, time included.
//!
//! The operator's engine, `kube-healer explain` and `kube-healer simulate` all decide through
//! this module: the ladder, the budget, the facts and the target safety rules have one home.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube_healer_api::policy::Safety;
use kube_healer_api::reasons::HoldReason;
use kube_healer_api::{ActionKind, HealingPolicySpec, TargetKind};

use crate::view::Secs;

mod batch;
mod budget;
mod drain;
mod episode;
mod facts;
mod inherited;
mod ladder;
mod maintainers;
mod pdb;
mod planned;
mod recheck;
mod safety;
mod shutdown;
mod unfinished;
mod window;
mod workload;

pub use batch::batchable;
pub use budget::Budget;
pub use drain::{LeftAlone, drain_grace, left_alone};
pub use episode::{Recorded, episode_of};
pub use facts::{DOWN_CLASSES, Facts, OutBy, OutCount, OutOfService, Tally, cause_of, count_unhealthy_nodes};
pub use inherited::{InFlightMark, inherited_in_flight, parse_until};
pub use ladder::Ladder;
pub use maintainers::{MACHINE_SKIP_ANNOTATIONS, Maintainer, MaintainerApi, MaintainerSays};
pub use pdb::restart_refused_by;
pub use planned::{
    HeldFor, PLANNED_ANNOTATIONS, PLANNED_LABELS, PLANNED_TAINTS, PlannedSignals, left_to_maintenance,
    maintenance_ends, overridden, planned_disruption, under_maintenance,
};
pub use recheck::{
    Fresh, Read, Seen, checked_by_version, judges_its_mark, recheck_node, recheck_pod, settled_for,
};
pub use safety::{
    OUT_OF_SERVICE, OwnerUnfit, Unsafe, futile_move, guard, rescheduled_by_controller, restartable_owner,
    unsafe_for, unsafe_for_target, without_fencing,
};
pub use shutdown::{ShutdownEvidence, unsafe_for_node};
pub use unfinished::{Acted, removed_elsewhere};
pub use window::{WindowVerdict, Zone, window_verdict};
pub use workload::{Removal, SETTLE, WorkloadPods, disrupts_workload, max_disrupted, settled, workload_of};

/// What to do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing yet: the condition or the next step is not due until then.
    Wait { until: Secs },
    /// Carry out this step (a dry run records it without changing anything).
    Act {
        step: usize,
        action: ActionKind,
        dry_run: bool,
    },
    /// Held back by a gate; `retry_at` when it may pass (None: only a change can lift it).
    Hold {
        step: usize,
        action: ActionKind,
        reason: HoldReason,
        message: String,
        retry_at: Option<Secs>,
    },
}

/// Decides for one policy condition that holds on one target since `since` and is due at `due`.
pub fn decide(
    spec: &HealingPolicySpec,
    due: Secs,
    ladder: &Ladder,
    budget: &Budget,
    facts: &Facts,
) -> Decision {
    if spec.actions.is_empty() {
        return Decision::Wait { until: Secs::MAX };
    }
    let step = ladder.next_step.min(spec.actions.len() - 1);
    let action = spec.actions[step].action;
    let step_due = step_due(spec, due, ladder);
    if facts.now < step_due {
        return Decision::Wait { until: step_due };
    }
    let closed = switched_off(spec, facts)
        .or_else(|| others_work(facts))
        .or_else(|| outside_window(facts))
        .or_else(|| held_by_cause_or_budget(spec, action, facts))
        .or_else(|| target_limits(&spec.safety, ladder, facts.now))
        .or_else(|| {
            let w = facts.workload.as_ref()?;
            workload::workload_limit(&spec.safety, action, w, facts.now)
        })
        .or_else(|| policy_limits(&spec.safety, budget, facts));
    match closed {
        Some(Closed {
            reason,
            message,
            retry_at,
        }) => Decision::Hold {
            step,
            action,
            reason,
            message,
            retry_at,
        },
        None => Decision::Act {
            step,
            action,
            dry_run: spec.safety.dry_run || facts.global_dry_run || facts.window == WindowVerdict::RecordOnly,
        },
    }
}

/// A gate that did not let the step through: why, and when it may (None: only a change can).
struct Closed {
    reason: HoldReason,
    message: String,
    retry_at: Option<Secs>,
}

impl Closed {
    fn until_changed(reason: HoldReason, message: String) -> Option<Closed> {
        Some(Closed {
            reason,
            message,
            retry_at: None,
        })
    }
}

/// When the next step is due: the condition's `for`; after an action, that step's escalateAfter.
fn step_due(spec: &HealingPolicySpec, due: Secs, ladder: &Ladder) -> Secs {
    match ladder.last_action {
        None => due,
        Some((last_step, at)) => {
            let last_step = last_step.min(spec.actions.len() - 1);
            at + spec.actions[last_step].escalate_after().as_std().as_secs() as Secs
        }
    }
}

/// Why work an earlier process recorded and did not finish (a batch cut short) may not be
/// carried on now, if it may not: its policy could not decide it now. Paused, suspended, in dry
/// run (the operator's, the policy's, or a RecordOnly window's), or outside its windows: the
/// work is taken back as not done (reason and message), and what still fails is decided afresh
/// through the whole gate.
pub fn not_resumable(
    spec: &HealingPolicySpec,
    paused: Option<String>,
    global_dry_run: bool,
    window: WindowVerdict,
) -> Option<(&'static str, String)> {
    let facts = Facts {
        paused,
        ..Facts::default()
    };
    if let Some(closed) = switched_off(spec, &facts) {
        return Some((closed.reason.as_str(), closed.message));
    }
    let not_now =
        |why: &str| format!("{why}: the work cut short is not carried on; what still fails is decided again");
    if global_dry_run || spec.safety.dry_run || window == WindowVerdict::RecordOnly {
        return Some((
            kube_healer_api::reasons::DRY_RUN,
            not_now("the policy runs as a dry run now"),
        ));
    }
    if let WindowVerdict::Closed { .. } = window {
        return Some((
            HoldReason::OutsideWindow.as_str(),
            not_now("the policy is outside its windows"),
        ));
    }
    None
}

/// Switched off: kube-healer paused, the policy suspended, the target opted out.
fn switched_off(spec: &HealingPolicySpec, facts: &Facts) -> Option<Closed> {
    if let Some(by) = &facts.paused {
        return Closed::until_changed(
            HoldReason::Paused,
            format!("kube-healer is paused operator-wide: {by}"),
        );
    }
    if spec.safety.suspend {
        return Closed::until_changed(
            HoldReason::Suspended,
            "the policy is suspended (spec.safety.suspend)".into(),
        );
    }
    if facts.opted_out {
        return Closed::until_changed(
            HoldReason::OptedOut,
            format!("the target carries {}=true", kube_healer_api::OPT_OUT_ANNOTATION),
        );
    }
    None
}

/// Someone else's work: the node's planned disruption, a person undoing the policy's work.
fn others_work(facts: &Facts) -> Option<Closed> {
    let closed = |reason, held: &HeldFor| Closed {
        reason,
        message: held.message.clone(),
        retry_at: held.retry_at,
    };
    let maintenance = facts
        .maintenance
        .as_ref()
        .map(|h| closed(HoldReason::Maintenance, h));
    maintenance.or_else(|| {
        facts
            .overridden
            .as_ref()
            .map(|h| closed(HoldReason::Overridden, h))
    })
}

/// Outside the policy's Act windows: held until the next opens.
fn outside_window(facts: &Facts) -> Option<Closed> {
    let WindowVerdict::Closed { opens } = facts.window else {
        return None;
    };
    Some(Closed {
        reason: HoldReason::OutsideWindow,
        message: match opens {
            Some(at) => format!(
                "the policy acts only inside its windows (safety.windows); the next opens in {}s",
                at - facts.now
            ),
            None => "the policy acts only inside its windows (safety.windows), and none opens within a week"
                .into(),
        },
        retry_at: opens,
    })
}

/// A cause shared with other targets, the policy's maxUnhealthy, the cluster's disruption budget.
fn held_by_cause_or_budget(spec: &HealingPolicySpec, action: ActionKind, facts: &Facts) -> Option<Closed> {
    if let Some(message) = &facts.correlated {
        return Closed::until_changed(HoldReason::Correlated, message.clone());
    }
    if spec.target.kind == TargetKind::Node
        && let Some((unhealthy, selected)) = facts.unhealthy_nodes
    {
        let limit = max_unhealthy(&spec.safety, selected);
        if unhealthy > limit {
            return Closed::until_changed(
                HoldReason::BudgetExceeded,
                format!(
                    "{unhealthy} of {selected} selected nodes are unhealthy, more than maxUnhealthy allows ({limit}): node actions stop"
                ),
            );
        }
    }
    let budget = facts
        .out_of_service
        .as_ref()
        .filter(|_| action.properties().takes_node_out)?;
    let refusal = budget.refusal()?;
    Closed::until_changed(HoldReason::BudgetExceeded, refusal)
}

/// This target's own limits: maxAttempts for the failure, the cooldown after its last action.
fn target_limits(safety: &Safety, ladder: &Ladder, now: Secs) -> Option<Closed> {
    let max_attempts = safety.max_attempts.unwrap_or(Safety::DEFAULT_MAX_ATTEMPTS).max(1) as u32;
    if ladder.attempts >= max_attempts {
        return Closed::until_changed(
            HoldReason::MaxAttempts,
            format!(
                "{} actions taken for this failure, the policy's maxAttempts: giving up on it",
                ladder.attempts
            ),
        );
    }
    let cooldown = safety.cooldown_secs();
    if let Some((_, last)) = ladder.last_action
        && now < last + cooldown
    {
        return Some(Closed {
            reason: HoldReason::Cooldown,
            message: format!(
                "last action on this target {}s ago; cooldown {cooldown}s",
                now - last
            ),
            retry_at: Some(last + cooldown),
        });
    }
    None
}

/// The policy's limits over all its targets: maxConcurrent in flight, the rate.
fn policy_limits(safety: &Safety, budget: &Budget, facts: &Facts) -> Option<Closed> {
    let max_concurrent = safety
        .max_concurrent
        .unwrap_or(Safety::DEFAULT_MAX_CONCURRENT)
        .max(1) as u32;
    let in_flight = budget.in_flight + facts.inherited_in_flight;
    if in_flight >= max_concurrent {
        let inherited = match facts.inherited_in_flight {
            0 => String::new(),
            n => format!(", {n} of them started by an earlier leader"),
        };
        return Closed::until_changed(
            HoldReason::MaxConcurrent,
            format!(
                "{in_flight} actions of this policy in flight{inherited} (maxConcurrent {max_concurrent})"
            ),
        );
    }
    let now = facts.now;
    let rate = safety.rate.clone().unwrap_or(Safety::DEFAULT_RATE);
    let per = rate.per.as_std().as_secs() as Secs;
    let mut within: Vec<Secs> = budget.recent.iter().copied().filter(|t| *t > now - per).collect();
    if within.len() as i64 >= rate.actions.max(1) as i64 {
        within.sort_unstable();
        let frees_at = within[within.len() - rate.actions.max(1) as usize] + per;
        return Some(Closed {
            reason: HoldReason::RateLimited,
            message: format!(
                "{} actions in the last {per}s (rate {} per {per}s)",
                within.len(),
                rate.actions
            ),
            retry_at: Some(frees_at),
        });
    }
    None
}

/// A budget given as a count or a percent ("10%") as a node count out of `total`: a percent
/// rounds down, but never below one node.
pub fn budget_count(budget: &str, total: usize) -> Result<usize, BadBudget> {
    let bad = |_| BadBudget(budget.to_string());
    match budget.strip_suffix('%') {
        Some(percent) => {
            let p: usize = percent.trim().parse().map_err(bad)?;
            Ok((total * p / 100).max(1))
        }
        None => budget.trim().parse().map_err(bad),
    }
}

/// A budget that is neither a count nor a percent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a count or a percent such as 10%")]
pub struct BadBudget(pub String);

/// maxUnhealthy as a node count, given the number of nodes a policy selects: a percent rounds
/// down but never below one node (as the cluster's disruption budget), so a policy over a small
/// pool may still heal its one failing node; a count, or 0%, is taken as given (0: no node
/// action).
pub fn max_unhealthy(safety: &Safety, selected: usize) -> usize {
    let percent_of = |percent: usize| match percent {
        0 => 0,
        p => (selected * p / 100).max(1),
    };
    match &safety.max_unhealthy {
        Some(IntOrString::Int(n)) => (*n).max(0) as usize,
        Some(IntOrString::String(s)) => percent_of(s.trim_end_matches('%').parse().unwrap_or(0)),
        None => percent_of(Safety::DEFAULT_MAX_UNHEALTHY_PERCENT as usize),
    }
}
