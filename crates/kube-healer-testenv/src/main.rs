//! `kube-healer-testenv up`: keeps a local cluster running until Ctrl-C and prints how to reach it.

use std::time::Duration;

use clap::{Parser, Subcommand};
use kube_healer_testenv::{ClusterOptions, TestCluster, nodes};

#[derive(Parser)]
#[command(
    version,
    about = "A real local Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a cluster, print its kubeconfig path, and keep it up until Ctrl-C.
    Up {
        /// kwok nodes to create once the cluster is ready.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Keep the cluster directory (logs, kubeconfig) after stopping.
        #[arg(long)]
        keep: bool,
    },
    /// Build the control-plane binaries if needed and print where they are.
    Build,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Up { nodes, keep } => up(nodes, keep).await,
        Command::Build => {
            kube_healer_testenv::binaries::Binaries::locate().map(|b| println!("{}", b.dir.display()))
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kube-healer-testenv: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn up(node_count: usize, keep: bool) -> kube_healer_testenv::Result<()> {
    let cluster = TestCluster::start(ClusterOptions {
        keep_dir: keep,
        ..Default::default()
    })
    .await?;
    let client = cluster.client()?;
    let names: Vec<String> = (0..node_count).map(|i| format!("kwok-node-{i}")).collect();
    nodes::add_nodes(&client, &names, Duration::from_secs(60)).await?;
    println!(
        "cluster ready in {:.1}s with {node_count} kwok nodes",
        cluster.started_in.as_secs_f64()
    );
    println!("kubeconfig: {}", cluster.kubeconfig_path().display());
    println!("  export KUBECONFIG={}", cluster.kubeconfig_path().display());
    println!("  {} get nodes", cluster.binaries().path("kubectl").display());
    println!("logs: {}", cluster.dir().display());
    println!("Ctrl-C stops the cluster.");
    wait_for_signal().await;
    eprintln!("stopping the cluster");
    cluster.stop();
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
