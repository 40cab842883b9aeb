//! A cluster history: the steps a generated case is made of, and proptest's strategies for
//! them. Steps name pods, nodes and zones by index, taken modulo what exists when the step runs,
//! so that every history shrinks to one that still runs.

use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use crate::policies::TEMPLATES;

/// One step of a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Seconds pass (the operator ticks through each).
    Pass(u32),
    /// The kubelet evicts a pod (a leftover, Evicted).
    Evict(usize),
    /// A pod's container crash-loops on its own.
    Crash(usize),
    /// A lone crash-looping pod runs again.
    Recover(usize),
    /// A node's kubelet stops posting, alone.
    NodeDown(usize),
    NodeUp(usize),
    /// A Ready node's kernel hangs (node-problem-detector's KernelDeadlock), or is sound again.
    NodeProblem(usize),
    NodeProblemGone(usize),
    /// A whole zone is cut off: one cause behind all its nodes.
    ZoneDown(usize),
    ZoneUp(usize),
    /// One cause (a dependency down) breaks several workloads at once: their pods crash, and
    /// the new ones too, until it is fixed.
    Break(Vec<usize>),
    /// Every shared cause is fixed.
    Fix,
    /// A person cordons a node (maintenance), or uncordons it.
    PersonCordon(usize),
    PersonUncordon(usize),
    /// A policy template created, or edited (its other variant).
    Policy {
        template: usize,
        variant: bool,
    },
    DeletePolicy(usize),
    /// The operator restarts or fails over: a new engine lists everything afresh.
    Restart,
    /// A restart whose lists are current (every list is a consistent read), whose cluster
    /// watches then lag: what happens in the next `lag` seconds arrives only then, listed again.
    LaggingRestart {
        lag: u32,
    },
    /// A watch (pods, or nodes) misses what happens for `secs` seconds, then lists again.
    WatchGap {
        pods: bool,
        secs: u32,
    },
    /// The executor's API calls fail (or work again).
    ApiErrors(bool),
}

/// Which kinds of trouble a history may draw (a rule not yet built is left out of the quick run,
/// and its invariant's violations are counted apart).
#[derive(Clone, Copy, Debug)]
pub struct Scope {
    /// One cause behind many pods (issue 30).
    pub pod_storms: bool,
    /// People cordoning (planned disruption, issue 31).
    pub person_cordons: bool,
}

impl Scope {
    pub const ALL: Scope = Scope {
        pod_storms: true,
        person_cordons: true,
    };
}

fn index() -> impl Strategy<Value = usize> {
    0usize..64
}

/// One step, drawn with the weights of a busy cluster: time passes most.
pub fn step(scope: Scope) -> impl Strategy<Value = Step> {
    let templates = TEMPLATES.len();
    let storms = if scope.pod_storms { 2 } else { 0 };
    let cordons = if scope.person_cordons { 2 } else { 0 };
    prop_oneof![
        12 => (1u32..=150).prop_map(Step::Pass),
        3 => index().prop_map(Step::Evict),
        3 => index().prop_map(Step::Crash),
        1 => index().prop_map(Step::Recover),
        3 => index().prop_map(Step::NodeDown),
        2 => index().prop_map(Step::NodeUp),
        2 => index().prop_map(Step::NodeProblem),
        1 => index().prop_map(Step::NodeProblemGone),
        1 => index().prop_map(Step::ZoneDown),
        1 => index().prop_map(Step::ZoneUp),
        storms => proptest::collection::vec(index(), 3..6).prop_map(Step::Break),
        storms => Just(Step::Fix),
        cordons => index().prop_map(Step::PersonCordon),
        cordons => index().prop_map(Step::PersonUncordon),
        3 => (0..templates, any::<bool>()).prop_map(|(template, variant)| Step::Policy { template, variant }),
        1 => (0..templates).prop_map(Step::DeletePolicy),
        1 => Just(Step::Restart),
        1 => (1u32..90).prop_map(|lag| Step::LaggingRestart { lag }),
        1 => (any::<bool>(), 1u32..120).prop_map(|(pods, secs)| Step::WatchGap { pods, secs }),
        1 => any::<bool>().prop_map(Step::ApiErrors),
    ]
}

/// A history: every policy template created first (a history may edit or delete them), then
/// `len` steps.
pub fn history(scope: Scope, len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(step(scope), len).prop_map(|steps| {
        let mut all: Vec<Step> = (0..TEMPLATES.len())
            .map(|template| Step::Policy {
                template,
                variant: false,
            })
            .collect();
        all.extend(steps);
        all
    })
}
