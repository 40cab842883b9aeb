//! The real local cluster at scale: kwok nodes, pods bound to them, the operator binary run as its
//! chart's ServiceAccount, and descheduler's RemoveFailedPods on the same kind of load.
//!
//! One run in phases, each adding its rows to the report, one file per phase so that a figure is
//! read next to how it is made:
//!
//! - `load`: the nodes, namespaces, pods and policies, created through the API;
//! - `operator`: the operator binary started as the chart's ServiceAccount, and its HTTP port;
//! - `steady`: start-up sync, memory, and the API requests of the steady state;
//! - `reaction`: Evicted pods one by one under load, from due to DELETE (audit log);
//! - `throughput`: a batch of Evicted pods cleaned by one policy, the same by a bare client (the
//!   physical limit), then by descheduler;
//! - `wait`: the polls that tell when a phase is done.
//!
//! This file: the options, and the phases in order.

mod load;
mod operator;
mod reaction;
mod steady;
mod throughput;
mod wait;

use std::time::{Duration, Instant};

use kube::Client;
use kube_healer_testenv::{ClusterOptions, TestCluster};

use crate::measure::Report;

#[derive(clap::Args)]
pub struct Args {
    /// kwok nodes.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Running pods, spread over the nodes and 50 namespaces.
    #[arg(long, default_value_t = 30_000)]
    pods: usize,
    /// Evicted pods cleaned by one policy (and, in a second batch, by descheduler).
    #[arg(long, default_value_t = 10_000)]
    evicted: usize,
    /// Evicted pods created one by one for the reaction-time figure.
    #[arg(long, default_value_t = 300)]
    reaction_pods: usize,
    /// Seconds of steady state over which API requests are counted.
    #[arg(long, default_value_t = 60)]
    steady_secs: u64,
    /// Skip the reaction run during a rollout restart of every pod.
    #[arg(long)]
    no_churn: bool,
    /// Skip the descheduler comparison.
    #[arg(long)]
    no_descheduler: bool,
    /// Concurrent requests used to create the load.
    #[arg(long, default_value_t = 48)]
    concurrency: usize,
}

const OPERATOR_NAMESPACE: &str = "kube-healer";
const REACT_NS: &str = "bench-react";
const REACT_CHURN_NS: &str = "bench-react-churn";
const EVICTED_NS: &str = "bench-evicted";
const DESCHEDULER_NS: &str = "bench-descheduler";
const BARE_NS: &str = "bench-bare";

/// What the phases measure: the cluster, its admin client, and the operator running on it.
struct Bench<'a> {
    args: &'a Args,
    cluster: &'a TestCluster,
    client: Client,
    /// The operator's user in the audit log (the chart's ServiceAccount).
    user: String,
    /// 127.0.0.1:port of the operator's /metrics and /readyz.
    http: String,
    operator_pid: u32,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(scale(args))
}

async fn scale(args: Args) -> anyhow::Result<()> {
    let operator_binary = operator::binary()?;
    let descheduler = if args.no_descheduler {
        None
    } else {
        Some(crate::descheduler::build()?)
    };
    let begun = Instant::now();
    let cluster = TestCluster::start(ClusterOptions {
        high_throughput: true,
        // kwok renews each node's Lease every quarter of this: 1,000 nodes, 25 writes a second.
        node_lease_duration_seconds: 160,
        node_monitor_grace_period: Duration::from_secs(240),
        ..Default::default()
    })
    .await?;
    let client = cluster.client()?;
    println!(
        "cluster up in {:.1}s ({})",
        cluster.started_in.as_secs_f64(),
        cluster.dir().display()
    );
    let mut report = Report::default();

    load::create(&client, &args).await?;
    let operator = operator::start(&cluster, &client, &operator_binary).await?;
    let bench = Bench {
        args: &args,
        cluster: &cluster,
        client,
        user: operator.user.clone(),
        http: operator.http.clone(),
        operator_pid: operator.process.pid(),
    };
    steady::measure(&bench, operator.synced_in, &mut report).await?;
    reaction::measure(&bench, &mut report).await?;
    if !args.no_churn {
        reaction::during_churn(&bench, &mut report).await?;
    }
    let ours = throughput::kube_healer(&bench, &mut report).await?;
    let vs_bare = throughput::bare_client(&bench, &mut report, ours.0).await?;

    // descheduler's RemoveFailedPods on a second batch of the same size.
    let mut reaper = operator.reaper;
    let vs_descheduler = match descheduler {
        Some(binary) => {
            let x = throughput::descheduler(&bench, &binary, &mut reaper, ours, &mut report).await?;
            format!("{x:.2}x faster than descheduler")
        }
        None => "descheduler not run".to_string(),
    };
    // The clean-up's two ratios on one line (the "ratio line").
    println!("clean-up vs bare client: {vs_bare:.0}%, {vs_descheduler}");
    drop(operator.process);
    reaper.disarm();
    report.print(&format!(
        "kube-healer scale benchmark: {} kwok nodes, {} pods, {} Evicted ({} cores, total {:.0} s)",
        args.nodes,
        args.pods,
        args.evicted,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        begun.elapsed().as_secs_f64()
    ));
    Ok(())
}
