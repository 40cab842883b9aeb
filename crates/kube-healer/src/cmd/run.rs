//! `kube-healer run`: the operator.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "KUBE_HEALER_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    http_addr: SocketAddr,
    /// Kubeconfig to use; default: in-cluster configuration, then $KUBECONFIG, then ~/.kube/config.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Elect a leader among replicas on a Lease in this namespace (the chart sets it to the
    /// release namespace). Without it, this replica always leads: run only one.
    #[arg(long, env = "KUBE_HEALER_LEADER_ELECTION_NAMESPACE")]
    leader_election_namespace: Option<String>,
    /// Operator-wide dry run: decide and record, change nothing.
    #[arg(long, env = "KUBE_HEALER_DRY_RUN")]
    dry_run: bool,
    /// Operator-wide pause: every decision is recorded as Skipped (Paused).
    #[arg(long, env = "KUBE_HEALER_PAUSE")]
    pause: bool,
    /// Only HealingPolicies matching this label selector (for canaries, or several operators on
    /// one cluster), for example `team=payments`.
    #[arg(long, env = "KUBE_HEALER_POLICY_SELECTOR")]
    policy_selector: Option<String>,
    /// The Lease that elects the leader.
    #[arg(
        long,
        env = "KUBE_HEALER_LEADER_ELECTION_LEASE",
        default_value = "kube-healer-leader"
    )]
    leader_election_lease: String,
    /// This replica's identity in the election; default: $POD_NAME, else host name and PID.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Log filter, for example `info` or `info,kube_healer_operator=debug` (findings as they
    /// appear and clear are logged at debug; findings that become due at info).
    #[arg(long = "log", env = "KUBE_HEALER_LOG", default_value = "info")]
    log_filter: String,
    /// Log format.
    #[arg(long, env = "KUBE_HEALER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// HealingActions older than this are deleted (a duration such as 168h or 30m).
    #[arg(long, env = "KUBE_HEALER_RECORD_MAX_AGE", default_value = "168h")]
    record_max_age: kube_healer_api::Duration,
    /// At most this many HealingActions are kept per policy; the oldest are deleted first.
    #[arg(long, env = "KUBE_HEALER_RECORDS_PER_POLICY", default_value_t = 1000)]
    records_per_policy: usize,
    /// Namespaces no policy touches unless it names them in spec.target.namespaces.include
    /// (comma-separated; an empty value protects none).
    #[arg(
        long,
        env = "KUBE_HEALER_PROTECTED_NAMESPACES",
        value_delimiter = ',',
        default_value = "kube-system"
    )]
    protected_namespaces: Vec<String>,
    /// The cluster's disruption budget, a floor on its availability: at most this many nodes, a
    /// count or a percent of the nodes (at least one), out of service at once, whoever took them
    /// out (kube-healer, a person's cordon, planned maintenance, a node not Ready). A node action
    /// that would take one more node out waits; one on a node already out adds nothing.
    #[arg(long, env = "KUBE_HEALER_MAX_NODES_OUT_OF_SERVICE", default_value = "10%", value_parser = parse_budget)]
    max_nodes_out_of_service: String,
    /// The node label that names a node's pool (karpenter.sh/nodepool,
    /// cloud.google.com/gke-nodepool, ...): nodes failing together in a pool are one cause, held
    /// as a zone's are. Unset: zones and the cluster only.
    #[arg(long, env = "KUBE_HEALER_NODE_POOL_LABEL")]
    node_pool_label: Option<String>,
    /// How long a failure must stay clear before it is over: until then its episode goes on (a
    /// failure back within it is the same failure) and its cordon or taint stays.
    #[arg(long, env = "KUBE_HEALER_CLEAR_DEBOUNCE", default_value = "60s")]
    clear_debounce: kube_healer_api::Duration,
    #[command(flatten)]
    pods_alike: super::PodsAlikeArgs,
    #[command(flatten)]
    maintenance: super::MaintenanceArgs,
    /// Whose events about nodes count as evidence: their `source.component` or
    /// `reportingComponent` (comma-separated). Others are ignored and counted
    /// (kube_healer_events_ignored_total).
    #[arg(
        long,
        env = "KUBE_HEALER_TRUSTED_EVENT_SOURCES",
        value_delimiter = ',',
        default_value = "kubelet,node-controller,node-problem-detector,kernel-monitor,docker-monitor,systemd-monitor,readonly-monitor,abrt-adaptor,custom-plugin-monitor,health-checker"
    )]
    trusted_event_sources: Vec<String>,
    /// The namespaces where those write events about nodes (comma-separated).
    #[arg(
        long,
        env = "KUBE_HEALER_TRUSTED_EVENT_NAMESPACES",
        value_delimiter = ',',
        default_value = "default"
    )]
    trusted_event_namespaces: Vec<String>,
    /// The memory the event index may take, in MiB: past it, the event series last seen longest
    /// ago are evicted first (kube_healer_events_evicted_total).
    #[arg(long, env = "KUBE_HEALER_EVENT_MEMORY_MIB", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    event_memory_mib: u32,
    /// The namespace RunJob's node jobs run in (its Pod Security level admits what the defined
    /// NodeJobs need; the chart creates it). It is protected like the operator's own.
    #[arg(long, env = "KUBE_HEALER_JOBS_NAMESPACE", default_value = "kube-healer-jobs")]
    jobs_namespace: String,
    /// The ServiceAccount node jobs run under, in the jobs namespace: never one a policy or a
    /// NodeJob names.
    #[arg(
        long,
        env = "KUBE_HEALER_JOBS_SERVICE_ACCOUNT",
        default_value = "kube-healer-node-jobs"
    )]
    jobs_service_account: String,
    /// The flight recorder: write what the watches see (trimmed, compressed, with times) to a
    /// ring of segments in this directory, for `kube-healer replay`. Off when unset.
    #[arg(long, env = "KUBE_HEALER_FLIGHT_RECORDER")]
    flight_recorder: Option<std::path::PathBuf>,
    /// The flight recorder's size on disk, in MiB: past it, the oldest segments go.
    #[arg(long, env = "KUBE_HEALER_FLIGHT_RECORDER_MAX_MIB", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..))]
    flight_recorder_max_mib: u64,
    /// The flight recorder's age: segments ended longer ago go.
    #[arg(long, env = "KUBE_HEALER_FLIGHT_RECORDER_MAX_AGE", default_value = "24h")]
    flight_recorder_max_age: kube_healer_api::Duration,
    /// Test hook: seconds added to this operator's clock (a skewed clock, as a misconfigured
    /// host has). Not for production.
    #[arg(long, hide = true, default_value_t = 0, allow_negative_numbers = true)]
    test_clock_offset: i64,
}

fn parse_budget(s: &str) -> Result<String, kube_healer_core::decide::BadBudget> {
    kube_healer_core::decide::budget_count(s, 1).map(|_| s.trim().to_string())
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_filter).with_context(|| {
        format!(
            "--log {:?} is not a log filter such as info or info,kube_healer_operator=debug",
            args.log_filter
        )
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let client_config = crate::cmd::client_config(args.kubeconfig.as_deref()).await?;
        let client = kube::Client::try_from(client_config.clone())?;
        // The election's calls answer within a few seconds or count as failed: a leader whose
        // renewal hangs steps down before its Lease can expire under it.
        let mut election_config = client_config;
        election_config.read_timeout = Some(kube_healer_operator::leader::CALL_TIMEOUT);
        election_config.reset_reader_on_write = true;
        let election_client = kube::Client::try_from(election_config)?;
        let leader_election = args.leader_election_namespace.as_ref().map(|namespace| {
            let identity = args.identity.clone().unwrap_or_else(default_identity);
            let mut election = kube_healer_operator::leader::LeaderElection::new(namespace, identity);
            election.lease_name = args.leader_election_lease.clone();
            election
        });
        let operator = kube_healer_operator::Config {
            http_addr: args.http_addr,
            dry_run: args.dry_run,
            paused: args.pause,
            own_namespace: Some(args.maintenance.namespace.clone()),
            policy_selector: args.policy_selector.clone(),
            leader_election,
            election_client: Some(election_client),
            retention: kube_healer_operator::record::Retention {
                max_age: args.record_max_age.as_std(),
                max_per_policy: args.records_per_policy,
            },
            protected_namespaces: protected(&args.protected_namespaces, &args.jobs_namespace),
            max_nodes_out_of_service: Some(args.max_nodes_out_of_service.clone()),
            node_pool_label: args.node_pool_label.clone().filter(|l| !l.is_empty()),
            clear_debounce: args.clear_debounce.as_std(),
            pods_alike: args.pods_alike.thresholds(),
            planned: args.maintenance.signals(),
            time_zone: args.maintenance.time_zone.clone(),
            event_trust: kube_healer_core::trust::EventTrust {
                sources: non_empty(&args.trusted_event_sources),
                namespaces: non_empty(&args.trusted_event_namespaces),
            },
            event_memory_bytes: (args.event_memory_mib as usize) << 20,
            node_jobs: kube_healer_operator::act::job::JobsPlace {
                namespace: args.jobs_namespace.clone(),
                service_account: args.jobs_service_account.clone(),
            },
            clock_offset_seconds: args.test_clock_offset,
            flight_recorder: args.flight_recorder.clone().map(|dir| {
                let bounds = kube_healer_operator::flight::Bounds {
                    max_bytes: args.flight_recorder_max_mib << 20,
                    max_age_ms: Some(args.flight_recorder_max_age.as_std().as_millis() as i64),
                };
                (dir, bounds)
            }),
        };
        tokio::select! {
            result = kube_healer_operator::run(client, operator) => result,
            signal = shutdown_signal() => {
                tracing::info!(signal, "stopping");
                Ok(())
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// SIGINT (Ctrl-C) or SIGTERM (the kubelet stopping the pod).
async fn shutdown_signal() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "kube-healer".into());
    format!("{}-{}", host.trim(), std::process::id())
}

/// The non-empty values of a comma-separated list.
/// The protected namespaces as given, and the jobs namespace: a node job is the operator's own,
/// never a pod a policy heals or a drain evicts.
fn protected(given: &[String], jobs_namespace: &str) -> Vec<String> {
    let mut namespaces = non_empty(given);
    let jobs = jobs_namespace.trim();
    if !jobs.is_empty() && !namespaces.iter().any(|n| n == jobs) {
        namespaces.push(jobs.to_string());
    }
    namespaces
}

fn non_empty(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}
