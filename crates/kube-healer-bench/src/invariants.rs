//! The safety invariants over many generated histories: each history runs through the
//! operator's engine in process (kube-healer-invariants), every invariant checked at every
//! step. Prints the cases run, cases per second, steps and simulated time, and the violations per
//! invariant (those whose rule waits for an open issue marked so), each with its first history
//! shrunk; `--keep DIR` writes each shrunk history and its recording there.

use std::path::PathBuf;
use std::time::Instant;

use kube_healer_invariants::{Invariant, Scope, Setup, explore, recording};

#[derive(clap::Args)]
pub struct Args {
    /// Histories to run.
    #[arg(long, default_value_t = 1000)]
    cases: usize,
    /// The generator's seed (the same seed runs the same histories).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The most steps in a history.
    #[arg(long, default_value_t = 40)]
    max_steps: usize,
    /// Writes each invariant's shrunk history (history.json) and its recording here.
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Runs this one history (a history.json) instead, and prints what it broke; with
    /// KH_INVARIANTS_TRACE set, each request the engine sent too.
    #[arg(long, conflicts_with_all = ["cases", "seed", "max_steps"])]
    history: Option<PathBuf>,
}

fn one(path: &std::path::Path) -> anyhow::Result<()> {
    let steps = recording::read(path).map_err(anyhow::Error::msg)?;
    let outcome = kube_healer_invariants::check(Setup::default(), &steps);
    println!(
        "{}: {} steps, {} simulated seconds, {} requests",
        path.display(),
        outcome.steps,
        outcome.seconds,
        outcome.requests
    );
    for v in &outcome.violations {
        let awaits = v
            .invariant
            .awaits()
            .map(|i| format!(" (its rule: issue {i})"))
            .unwrap_or_default();
        println!(
            "  {} at +{}s{awaits}: {}",
            v.invariant,
            v.at - kube_healer_invariants::harness::T0,
            v.what
        );
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(path) = &args.history {
        return one(path);
    }
    let setup = Setup::default();
    let started = Instant::now();
    let report = explore(args.cases, Scope::ALL, 5..args.max_steps.max(6), args.seed, setup);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "invariants: {} cases in {secs:.1}s ({:.1} cases/s), {} steps, {} simulated hours, {} requests decided",
        report.cases,
        report.cases as f64 / secs.max(1e-9),
        report.steps,
        report.seconds / 3600,
        report.requests
    );
    for &invariant in Invariant::ALL {
        let awaits = invariant
            .awaits()
            .map(|i| format!(" (its rule: issue {i})"))
            .unwrap_or_default();
        match report.violations.get(&invariant) {
            None => println!("  {invariant:<18} 0 violations{awaits}"),
            Some((cases, shrunk, first)) => {
                println!("  {invariant:<18} violated in {cases} cases{awaits}");
                println!("      first, shrunk to {} steps: {}", shrunk.len(), first.what);
                println!("      {}", serde_json::to_string(shrunk)?);
                if let Some(dir) = &args.keep {
                    recording::keep(&dir.join(invariant.to_string()), setup, shrunk)?;
                }
            }
        }
    }
    Ok(())
}
