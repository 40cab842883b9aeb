//! kube-healer's safety model as invariants, checked at every step of generated cluster
//! histories (Sieve's perturbations among them: a view that goes back in time after a restart,
//! changes a watch missed, a crash between two steps of one change).
//!
//! - [`history`]: what a history is made of, and proptest's strategies (shrinking included).
//! - [`world`]: the simulated cluster, with the truth kube-healer never sees.
//! - [`harness`]: the operator's own engine run through a history, in process.
//! - [`executor`]: the act step on the simulated cluster, with the live executor's rules.
//! - [`invariants`]: the rules, judged on the truth.

pub mod executor;
pub mod harness;
pub mod history;
pub mod invariants;
pub mod objects;
pub mod policies;
pub mod recording;
pub mod world;

use std::collections::BTreeMap;
use std::ops::Range;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRng, TestRunner};

pub use harness::{Run, Setup};
pub use history::{Scope, Step};
pub use invariants::{Invariant, Violation};

/// A history run: what broke, and how much was run.
pub struct Outcome {
    pub violations: Vec<Violation>,
    pub steps: usize,
    pub seconds: u64,
    pub requests: usize,
}

impl Outcome {
    /// The violations of invariants whose rule is built (those awaiting an open issue apart).
    pub fn binding(&self) -> Vec<&Violation> {
        self.violations
            .iter()
            .filter(|v| v.invariant.awaits().is_none())
            .collect()
    }
}

/// Runs one history (and its control) through the engine.
pub fn check(setup: Setup, steps: &[Step]) -> Outcome {
    let run = Run::history(setup, steps);
    Outcome {
        violations: run.judge.violations,
        steps: steps.len(),
        seconds: run.seconds,
        requests: run.requests,
    }
}

/// What a long run found.
#[derive(Default)]
pub struct Report {
    pub cases: usize,
    pub steps: usize,
    pub seconds: u64,
    pub requests: usize,
    /// Violations by invariant: how many, and the first case's history shrunk.
    pub violations: BTreeMap<Invariant, (usize, Vec<Step>, Violation)>,
}

/// Runs `cases` generated histories from `seed`; the first history that breaks each invariant
/// is shrunk to a minimal one.
pub fn explore(cases: usize, scope: Scope, len: Range<usize>, seed: u64, setup: Setup) -> Report {
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &seed_bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = history::history(scope, len);
    let mut report = Report::default();
    for _ in 0..cases {
        let Ok(mut tree) = strategy.new_tree(&mut runner) else {
            continue;
        };
        let steps = tree.current();
        let outcome = check(setup, &steps);
        report.cases += 1;
        report.steps += outcome.steps;
        report.seconds += outcome.seconds;
        report.requests += outcome.requests;
        let mut seen = std::collections::BTreeSet::new();
        for v in outcome.violations {
            if !seen.insert(v.invariant) {
                continue;
            }
            match report.violations.get_mut(&v.invariant) {
                Some(entry) => entry.0 += 1,
                None => {
                    let invariant = v.invariant;
                    let (shrunk, violation) =
                        shrink(&mut tree, setup, invariant).unwrap_or((steps.clone(), v));
                    report.violations.insert(invariant, (1, shrunk, violation));
                    // The tree was shrunk: the rest of this case's violations are not counted.
                    break;
                }
            }
        }
    }
    report
}

/// The smallest history the tree shrinks to that still breaks `invariant`, and its violation.
pub fn shrink(
    tree: &mut impl ValueTree<Value = Vec<Step>>,
    setup: Setup,
    invariant: Invariant,
) -> Option<(Vec<Step>, Violation)> {
    let breaks = |steps: &[Step]| {
        check(setup, steps)
            .violations
            .into_iter()
            .find(|v| v.invariant == invariant)
    };
    let mut best = breaks(&tree.current()).map(|v| (tree.current(), v))?;
    let mut tries = 0;
    if !tree.simplify() {
        return Some(best);
    }
    while tries < 500 {
        tries += 1;
        let candidate = tree.current();
        let more = match breaks(&candidate) {
            Some(v) => {
                best = (candidate, v);
                tree.simplify()
            }
            None => tree.complicate(),
        };
        if !more {
            break;
        }
    }
    Some(best)
}
