//! The decision for one policy condition holding on one target: wait, act (which ladder step),
//! or hold back (which gate, until when). Pure: every input is a parameter, time included.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube_healer_api::policy::Safety;
use kube_healer_api::{ActionKind, HealingPolicySpec, TargetKind, reasons};

use crate::view::Secs;

/// Where a target stands on a policy's ladder, for one failure episode (one `since`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ladder {
    /// The `since` of the finding this ladder is for; a new episode starts a new ladder.
    pub episode: Secs,
    /// The next step to run (0-based).
    pub next_step: usize,
    /// Actions taken (or dry-run) in this episode.
    pub attempts: u32,
    /// The last step carried out, and when.
    pub last_action: Option<(usize, Secs)>,
}

impl Ladder {
    pub fn new(episode: Secs) -> Self {
        Ladder {
            episode,
            ..Default::default()
        }
    }

    /// Records that `step` was carried out (or dry-run) at `now`.
    pub fn acted(&mut self, step: usize, steps: usize, now: Secs) {
        self.attempts += 1;
        self.last_action = Some((step, now));
        self.next_step = (step + 1).min(steps.saturating_sub(1));
    }

    /// Takes back `acted(step, ..)` for a decision that was never recorded (and so never carried
    /// out): the ladder stands where it stood, `before` being its last action then.
    pub fn take_back(&mut self, step: usize, before: Option<(usize, Secs)>) {
        self.attempts = self.attempts.saturating_sub(1);
        self.last_action = before;
        self.next_step = step;
    }
}

/// A policy's use of its limits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Budget {
    /// Actions of the policy still in flight.
    pub in_flight: u32,
    /// When the policy's recent actions were taken (only those within the rate window matter).
    pub recent: Vec<Secs>,
}

/// Facts from outside the policy, read right before deciding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    pub now: Secs,
    /// The operator-wide pause.
    pub paused: bool,
    /// The operator-wide dry run.
    pub global_dry_run: bool,
    /// The target carries the opt-out annotation.
    pub opted_out: bool,
    /// A correlated finding covers this one (its message).
    pub correlated: Option<String>,
    /// Node policies: (unhealthy nodes, nodes the policy selects).
    pub unhealthy_nodes: Option<(usize, usize)>,
}

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
        reason: &'static str,
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
    let now = facts.now;
    if spec.actions.is_empty() {
        return Decision::Wait { until: Secs::MAX };
    }
    let step = ladder.next_step.min(spec.actions.len() - 1);
    let action = spec.actions[step].action;
    // When this step is due: the condition's `for`; after an action, that step's escalateAfter.
    let step_due = match ladder.last_action {
        None => due,
        Some((last_step, at)) => {
            let last_step = last_step.min(spec.actions.len() - 1);
            at + spec.actions[last_step].escalate_after().as_std().as_secs() as Secs
        }
    };
    if now < step_due {
        return Decision::Wait { until: step_due };
    }
    let safety = &spec.safety;
    let hold = |reason: &'static str, message: String, retry_at: Option<Secs>| Decision::Hold {
        step,
        action,
        reason,
        message,
        retry_at,
    };

    if facts.paused {
        return hold(
            reasons::PAUSED,
            "kube-healer is paused operator-wide".into(),
            None,
        );
    }
    if safety.suspend {
        return hold(
            reasons::SUSPENDED,
            "the policy is suspended (spec.safety.suspend)".into(),
            None,
        );
    }
    if facts.opted_out {
        return hold(
            reasons::OPTED_OUT,
            format!("the target carries {}=true", kube_healer_api::OPT_OUT_ANNOTATION),
            None,
        );
    }
    if let Some(message) = &facts.correlated {
        return hold(reasons::CORRELATED, message.clone(), None);
    }
    if spec.target.kind == TargetKind::Node
        && let Some((unhealthy, selected)) = facts.unhealthy_nodes
    {
        let limit = max_unhealthy(safety, selected);
        if unhealthy > limit {
            return hold(
                reasons::BUDGET_EXCEEDED,
                format!(
                    "{unhealthy} of {selected} selected nodes are unhealthy, more than maxUnhealthy allows ({limit}): node actions stop"
                ),
                None,
            );
        }
    }
    let max_attempts = safety.max_attempts.unwrap_or(Safety::DEFAULT_MAX_ATTEMPTS).max(1) as u32;
    if ladder.attempts >= max_attempts {
        return hold(
            reasons::MAX_ATTEMPTS,
            format!(
                "{} actions taken for this failure, the policy's maxAttempts: giving up on it",
                ladder.attempts
            ),
            None,
        );
    }
    let cooldown = safety
        .cooldown
        .unwrap_or(Safety::DEFAULT_COOLDOWN)
        .as_std()
        .as_secs() as Secs;
    if let Some((_, last)) = ladder.last_action
        && now < last + cooldown
    {
        return hold(
            reasons::COOLDOWN,
            format!(
                "last action on this target {}s ago; cooldown {cooldown}s",
                now - last
            ),
            Some(last + cooldown),
        );
    }
    let max_concurrent = safety
        .max_concurrent
        .unwrap_or(Safety::DEFAULT_MAX_CONCURRENT)
        .max(1) as u32;
    if budget.in_flight >= max_concurrent {
        return hold(
            reasons::MAX_CONCURRENT,
            format!(
                "{} actions of this policy in flight (maxConcurrent {max_concurrent})",
                budget.in_flight
            ),
            None,
        );
    }
    let rate = safety.rate.clone().unwrap_or(Safety::DEFAULT_RATE);
    let per = rate.per.as_std().as_secs() as Secs;
    let mut within: Vec<Secs> = budget.recent.iter().copied().filter(|t| *t > now - per).collect();
    if within.len() as i64 >= rate.actions.max(1) as i64 {
        within.sort_unstable();
        let frees_at = within[within.len() - rate.actions.max(1) as usize] + per;
        return hold(
            reasons::RATE_LIMITED,
            format!(
                "{} actions in the last {per}s (rate {} per {per}s)",
                within.len(),
                rate.actions
            ),
            Some(frees_at),
        );
    }
    Decision::Act {
        step,
        action,
        dry_run: safety.dry_run || facts.global_dry_run,
    }
}

/// maxUnhealthy as a node count, given the number of nodes a policy selects.
pub fn max_unhealthy(safety: &Safety, selected: usize) -> usize {
    match &safety.max_unhealthy {
        Some(IntOrString::Int(n)) => (*n).max(0) as usize,
        Some(IntOrString::String(s)) => {
            let percent: usize = s.trim_end_matches('%').parse().unwrap_or(0);
            selected * percent / 100
        }
        None => selected * Safety::DEFAULT_MAX_UNHEALTHY_PERCENT as usize / 100,
    }
}
