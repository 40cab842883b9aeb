//! `kube-healer-bench`: kube-healer at scale.
//!
//! - `scale`: the real local cluster (kwok nodes, pods bound to them), the operator binary run as
//!   its chart's ServiceAccount: start-up sync, memory, API load in steady state (from the API
//!   server's own metrics and audit log), reaction time under load, Evicted-pod clean-up
//!   throughput, and the same clean-up by descheduler's RemoveFailedPods, side by side.
//! - `synthetic`: the operator's engine fed watch events in-process, for sizes the local API server
//!   cannot hold (5,000 nodes, 150,000 pods): memory and time to absorb the start-up lists, pod
//!   updates, and an event flood of a million events.
//! - `replay`: the flight recorder writing an hour of a 1,000-node cluster, and the replay of it:
//!   the recording's size, the replay's time.
//!
//! - `invariants`: the safety invariants over many generated histories, run through the engine
//!   in process; violations per invariant, each with its first history shrunk.
//!
//! Figures are printed, never asserted: BENCHMARKS.md holds the results and how to reproduce them.

mod descheduler;
mod flood;
mod invariants;
mod measure;
mod replay;
mod scale;
mod synthetic;

use std::process::ExitCode;

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "kube-healer at scale: memory, API load, reaction time, throughput"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The real local cluster with kwok nodes and pods, the operator binary, and descheduler.
    Scale(scale::Args),
    /// The operator's engine fed synthetic watch events in-process.
    Synthetic(synthetic::Args),
    /// The flight recorder writing an hour of a large cluster, and its replay.
    Replay(replay::Args),
    /// The safety invariants over generated cluster histories.
    Invariants(invariants::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The invariants' histories hold nodes and pods by the thousand: the engine's warnings on
    // them are what is judged, not news.
    let quiet = matches!(cli.command, Command::Invariants(_));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                if quiet {
                    "error".into()
                } else {
                    "warn,kube_client::client::builder=off".into()
                }
            }),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let result = match cli.command {
        Command::Scale(args) => scale::run(args),
        Command::Synthetic(args) => synthetic::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Invariants(args) => invariants::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kube-healer-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
