//! The reasons a HealingAction's status can give, one word each.

/// Dry run: decided and recorded, nothing changed.
pub const DRY_RUN: &str = "DryRun";
/// The action was carried out.
pub const COMPLETED: &str = "Completed";
/// The policy's rate (actions per window) is used up.
pub const RATE_LIMITED: &str = "RateLimited";
/// The policy's maxConcurrent actions are in flight.
pub const MAX_CONCURRENT: &str = "MaxConcurrent";
/// The target was acted on within the policy's cooldown.
pub const COOLDOWN: &str = "Cooldown";
/// The target reached the policy's maxAttempts for this failure.
pub const MAX_ATTEMPTS: &str = "MaxAttempts";
/// More nodes are unhealthy than the policy's maxUnhealthy allows.
pub const BUDGET_EXCEEDED: &str = "BudgetExceeded";
/// As many of the workload's pods as the policy's maxDisruptedPerWorkload allows are being
/// replaced by kube-healer already.
pub const WORKLOAD_LIMIT: &str = "WorkloadLimit";
/// A PodDisruptionBudget refused the eviction past the step's pdbWait.
pub const PDB_BLOCKED: &str = "PDBBlocked";
/// The target no longer exists (or was replaced: another UID).
pub const TARGET_GONE: &str = "TargetGone";
/// The failure cleared before the action.
pub const RECOVERED: &str = "Recovered";
/// The target carries the opt-out annotation.
pub const OPTED_OUT: &str = "OptedOut";
/// The policy is suspended.
pub const SUSPENDED: &str = "Suspended";
/// The operator is paused globally.
pub const PAUSED: &str = "Paused";
/// The target's namespace is protected (kube-system, the operator's own) and the policy does not name it.
pub const PROTECTED: &str = "Protected";
/// One cause hits many targets at once (a correlated finding); per-target actions are held.
pub const CORRELATED: &str = "Correlated";
/// The node is under planned disruption (someone else's maintenance: a person's cordon, a drain,
/// kured, Karpenter, cluster-autoscaler, a NodeMaintenance); the message names the signal.
pub const MAINTENANCE: &str = "Maintenance";
/// A person (or another tool) undid what kube-healer did on the target: the person wins, and the
/// policy does not do it again for the failure, nor within its cooldown.
pub const OVERRIDDEN: &str = "Overridden";
/// What the action would do was already done by someone else (a node cordoned or tainted by a
/// person): nothing changed, and kube-healer did not take it as its own.
pub const ALREADY_DONE: &str = "AlreadyDone";
/// The policy acts only inside its windows, and it is outside them.
pub const OUTSIDE_WINDOW: &str = "OutsideWindow";
/// A safety rule of the action itself refused it (for example ForceDelete of a StatefulSet pod
/// whose node is not confirmed gone).
pub const UNSAFE: &str = "Unsafe";
/// RunJob named a NodeJob that is not defined (only node jobs the cluster admin defined run).
pub const NODE_JOB_UNDEFINED: &str = "NodeJobUndefined";
/// The API call failed; see the message.
pub const API_ERROR: &str = "APIError";
/// The action did not finish within its timeout (a drain, a Job).
pub const TIMEOUT: &str = "Timeout";
/// A person released what kube-healer held the target with (`kube-healer release`); the
/// message says why.
pub const RELEASED: &str = "Released";
/// The operator restarted between recording and acting; the action was not repeated.
pub const INTERRUPTED: &str = "Interrupted";
/// This replica lost the leadership while the action ran: it stopped at the next step (the
/// next leader decides again).
pub const LEADERSHIP_LOST: &str = "LeadershipLost";

/// Why a decision was held back, before any call: the gate that held it. A record of a held
/// decision carries it as its reason, spelled as the constants above (records and alerts written
/// before this type match still).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HoldReason {
    /// The operator is paused operator-wide.
    Paused,
    /// The policy is suspended.
    Suspended,
    /// The target carries the opt-out annotation.
    OptedOut,
    /// One cause hits many targets at once: per-target actions are held.
    Correlated,
    /// The node (the target, or the pod's node) is under someone else's planned disruption.
    Maintenance,
    /// A person undid what the policy did on the target: the person wins.
    Overridden,
    /// The policy acts only inside its windows, and it is outside them.
    OutsideWindow,
    /// The cluster's or the policy's disruption budget is spent.
    BudgetExceeded,
    /// The target reached the policy's maxAttempts for this failure.
    MaxAttempts,
    /// The target was acted on within the policy's cooldown.
    Cooldown,
    /// The policy's maxConcurrent actions are in flight.
    MaxConcurrent,
    /// As many of the workload's pods as the policy's maxDisruptedPerWorkload allows are being
    /// replaced already.
    WorkloadLimit,
    /// The policy's rate (actions per window) is used up.
    RateLimited,
    /// A safety rule of the action itself refused it.
    Unsafe,
}

impl HoldReason {
    pub const ALL: &'static [HoldReason] = &[
        HoldReason::Paused,
        HoldReason::Suspended,
        HoldReason::OptedOut,
        HoldReason::Correlated,
        HoldReason::Maintenance,
        HoldReason::Overridden,
        HoldReason::OutsideWindow,
        HoldReason::BudgetExceeded,
        HoldReason::MaxAttempts,
        HoldReason::Cooldown,
        HoldReason::MaxConcurrent,
        HoldReason::WorkloadLimit,
        HoldReason::RateLimited,
        HoldReason::Unsafe,
    ];

    /// The word a record's status carries.
    pub const fn as_str(self) -> &'static str {
        match self {
            HoldReason::Paused => PAUSED,
            HoldReason::Suspended => SUSPENDED,
            HoldReason::OptedOut => OPTED_OUT,
            HoldReason::Correlated => CORRELATED,
            HoldReason::Maintenance => MAINTENANCE,
            HoldReason::Overridden => OVERRIDDEN,
            HoldReason::OutsideWindow => OUTSIDE_WINDOW,
            HoldReason::BudgetExceeded => BUDGET_EXCEEDED,
            HoldReason::MaxAttempts => MAX_ATTEMPTS,
            HoldReason::Cooldown => COOLDOWN,
            HoldReason::MaxConcurrent => MAX_CONCURRENT,
            HoldReason::WorkloadLimit => WORKLOAD_LIMIT,
            HoldReason::RateLimited => RATE_LIMITED,
            HoldReason::Unsafe => UNSAFE,
        }
    }
}

impl std::fmt::Display for HoldReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records and alerts match on these words: each reason keeps its spelling, and no two share one.
    #[test]
    fn hold_reasons_keep_their_spelling() {
        let words: Vec<&str> = HoldReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            words,
            [
                "Paused",
                "Suspended",
                "OptedOut",
                "Correlated",
                "Maintenance",
                "Overridden",
                "OutsideWindow",
                "BudgetExceeded",
                "MaxAttempts",
                "Cooldown",
                "MaxConcurrent",
                "WorkloadLimit",
                "RateLimited",
                "Unsafe"
            ]
        );
    }
}
