//! kube-healer: a cluster-wide self-healing operator for Kubernetes.

mod cmd;
mod input;
mod offline;
mod read_cluster;
mod render;
mod table;

use std::process::ExitCode;

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "kube-healer",
    version,
    about = "A cluster-wide self-healing operator for Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions (HealingPolicy, HealingAction) as YAML, or write them
    /// to a directory.
    Crd(cmd::crd::Args),
    /// Run the operator: watch the cluster, classify failures, heal them as policies say.
    Run(Box<cmd::run::Args>),
    /// Show what a policy would do to the cluster right now, without acting.
    Simulate(cmd::simulate::Args),
    /// Explain one target: its findings, the policies that select it, where their ladders stand,
    /// what happens next or why not, and its latest HealingActions.
    Explain(cmd::explain::Args),
    /// The operator healing real failures on an embedded local cluster, live (Ctrl-C stops it).
    Demo(cmd::demo::Args),
    /// Diagnose Pods, Nodes, Events and Leases offline, for example
    /// `kubectl get pods,nodes,events -A -o yaml | kube-healer classify -f -`.
    Classify(cmd::classify::Args),
    /// Record what the operator's watches see to a bounded ring of compressed segments (or turn
    /// a cluster dump into a recording of one instant), for `replay`.
    Record(cmd::record::Args),
    /// What policies would have done during a recording (last night's incident): the
    /// operator's engine on the recording with a simulated clock. Never talks to a cluster.
    Replay(cmd::replay::Args),
    /// Let go, on purpose, of what kube-healer holds a node with (its cordon and taints, also a
    /// deleted policy's), recorded with the reason; a released cordon counts as lifted by a
    /// person.
    Release(cmd::release::Args),
}

/// The kubectl plugin's name: `kubectl healer ...` runs `kubectl-healer` from PATH (a link to
/// this binary).
const PLUGIN: &str = "kubectl-healer";

/// The command line, named as it was invoked: `kubectl healer` when run as the kubectl plugin,
/// so that usage and errors show what the user typed.
fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let invoked = std::env::args_os().next().map(std::path::PathBuf::from);
    let as_plugin = invoked
        .as_deref()
        .and_then(|p| p.file_stem())
        .is_some_and(|n| n == PLUGIN);
    let mut command = Cli::command();
    if as_plugin {
        command = command.name(PLUGIN).bin_name("kubectl healer");
    }
    Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit())
}

fn main() -> ExitCode {
    let cli = parse();
    let result = match cli.command {
        Command::Crd(args) => cmd::crd::run(args),
        Command::Run(args) => cmd::run::run(*args),
        Command::Simulate(args) => cmd::simulate::run(args),
        Command::Explain(args) => cmd::explain::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Classify(args) => cmd::classify::run(args),
        Command::Record(args) => cmd::record::run(args),
        Command::Replay(args) => cmd::replay::run(args),
        Command::Release(args) => cmd::release::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kube-healer: {e:#}");
            ExitCode::FAILURE
        }
    }
}
