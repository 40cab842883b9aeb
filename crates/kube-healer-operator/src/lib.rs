//! kube-healer's I/O shell. The folders name the data path:
//!
//! ```text
//! watch -> store -> (core: classify) -> policy -> decide -> act -> record
//!                 \________________ engine routes _______________/
//! ```
//!
//! Decisions are the core's rules; this crate feeds them and carries out what they say. The
//! dependency rule (checked by `tests::dependencies`, see ARCHITECTURE.md): leaves (target,
//! clock, protocol, metrics, api_health) import nothing from the crate, retry only api_health,
//! and `act` never imports the engine, the gate, the policies or the stores.

pub mod act;
pub mod api_health;
pub mod clock;
pub mod decide;
pub mod engine;
pub mod failpoint;
pub mod flight;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod policy;
pub mod protocol;
pub mod record;
pub mod retry;
pub mod store;
pub mod target;
pub mod watch;

#[cfg(test)]
mod dependencies;

use std::net::SocketAddr;
use std::sync::Arc;

use kube::Client;
use tokio::sync::{mpsc, watch as tokio_watch};

/// How the operator runs.
#[derive(Clone)]
pub struct Config {
    /// Where /metrics, /healthz and /readyz are served.
    pub http_addr: SocketAddr,
    /// Operator-wide dry run: decisions are recorded, nothing is changed.
    pub dry_run: bool,
    /// Operator-wide pause: decisions are recorded as Skipped (Paused).
    pub paused: bool,
    /// The namespace kube-healer runs in: its pause annotation pauses every policy.
    pub own_namespace: Option<String>,
    /// Only HealingPolicies with these labels (a label selector), for canaries and for running
    /// several operators on one cluster.
    pub policy_selector: Option<String>,
    /// Leader election among replicas; None: a single replica that always leads.
    pub leader_election: Option<leader::LeaderElection>,
    /// The client the election uses, with a short read timeout (a renewal that hangs must count
    /// as failed before the Lease expires); None: the operator's client.
    pub election_client: Option<Client>,
    /// How long and how many HealingActions are kept.
    pub retention: record::Retention,
    /// Namespaces no policy touches unless it names them in spec.target.namespaces.include.
    pub protected_namespaces: Vec<String>,
    /// The cluster's disruption budget (a count, or a percent of the nodes such as "10%"): the
    /// nodes this operator's policies may keep out of service at once. None: no budget.
    pub max_nodes_out_of_service: Option<String>,
    /// The node label that names a node's pool: nodes failing together in a pool are one cause.
    pub node_pool_label: Option<String>,
    /// How long a failure must stay clear before it is over (its episode ends, its cordon or
    /// taint is lifted).
    pub clear_debounce: std::time::Duration,
    /// When pods failing alike are one cause.
    pub pods_alike: kube_healer_core::PodsAlike,
    /// In-house maintenance tooling's signals, beside the built-in ones.
    pub planned: kube_healer_core::decide::PlannedSignals,
    /// The time zone policies' windows are read in.
    pub time_zone: kube_healer_core::decide::Zone,
    /// Whose events about nodes are evidence.
    pub event_trust: kube_healer_core::trust::EventTrust,
    /// The memory the event index may take, in bytes.
    pub event_memory_bytes: usize,
    /// Where RunJob's node jobs run: the jobs namespace and ServiceAccount.
    pub node_jobs: act::job::JobsPlace,
    /// Seconds added to the wall clock (a test hook: a host whose clock is skewed).
    pub clock_offset_seconds: i64,
    /// Where the flight recorder writes what the watches see, and its bounds (None: off).
    pub flight_recorder: Option<(std::path::PathBuf, flight::Bounds)>,
}

/// Runs the operator until the engine stops (which only happens when every watch ends) or the
/// leader election fails.
pub async fn run(client: Client, config: Config) -> anyhow::Result<()> {
    let metrics = Arc::new(metrics::Metrics::default());
    let (synced_tx, synced_rx) = tokio_watch::channel(store::Synced::default());
    let (alive_tx, alive_rx) = tokio_watch::channel(true);
    // Watch changes carry whole objects until the engine has read them: a short queue keeps
    // that memory small (the watches wait, the API server keeps their place).
    let (tx, rx) = mpsc::channel(128);
    let (_single_leader, mut election_task, leader_rx) = leadership(&client, &config).await?;
    let wall = clock::WallClock::skewed_by(config.clock_offset_seconds);
    let clock: Arc<dyn clock::Clock> = Arc::new(wall);
    // The process's log of its own API calls is stamped by the clock the engine judges it by.
    api_health::ApiCalls::process().set_clock(clock.clone());
    let watches_tx = through_recorder(&config, tx, &clock)?;
    watch::spawn(
        &client,
        watches_tx,
        metrics.clone(),
        config.policy_selector.as_deref(),
    );
    let http = tokio::spawn(http::serve(
        config.http_addr,
        metrics.clone(),
        synced_rx,
        alive_rx,
    ));
    let (status_tx, status_rx) = mpsc::unbounded_channel();
    tokio::spawn(policy::writer(client.clone(), status_rx, clock.clone()));
    let (action_tx, action_rx) = mpsc::unbounded_channel();
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let maintained = protocol::Maintained::default();
    let acting = act::Acting {
        instance: config
            .leader_election
            .as_ref()
            .map_or_else(|| "kube-healer".to_string(), |e| e.identity.clone()),
        jobs: config.node_jobs.clone(),
        maintained: maintained.clone(),
    };
    let leading = protocol::Leading::new(leader_rx.clone());
    tokio::spawn(act::executor(
        client.clone(),
        action_rx,
        done_tx,
        metrics.clone(),
        acting,
        clock,
        leading,
    ));
    let engine = engine::Engine::new(metrics, synced_tx)
        .with_clock(wall)
        .with_leadership(leader_rx)
        .with_status_writer(status_tx)
        .with_executor(action_tx, done_rx)
        .with_maintained(maintained);
    let engine = configured(engine, config);
    let election_ended = async {
        match election_task.as_mut() {
            Some(task) => task.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = engine.run(rx) => {
            alive_tx.send_replace(false);
            anyhow::bail!("the engine stopped: every watch ended")
        }
        served = http => {
            anyhow::bail!("the HTTP server stopped: {served:?}")
        }
        ended = election_ended => {
            // Without a live election this replica cannot know whether it leads: exit, so that
            // it is restarted while another replica takes over.
            anyhow::bail!("the leader election task ended ({ended:?}): exiting")
        }
    }
}

/// Who leads: the election on the Lease when configured (its task ends only with an error),
/// else this replica, always (the sender kept so that the channel stays open).
async fn leadership(
    client: &Client,
    config: &Config,
) -> anyhow::Result<(
    Option<tokio_watch::Sender<bool>>,
    Option<tokio::task::JoinHandle<Result<(), kube_lease_manager::LeaseManagerError>>>,
    tokio_watch::Receiver<bool>,
)> {
    Ok(match &config.leader_election {
        Some(election) => {
            let election_client = config.election_client.clone().unwrap_or_else(|| client.clone());
            let (leader_rx, task) = leader::start(election_client, election).await?;
            tracing::info!(lease = %election.lease_name, namespace = %election.namespace,
                identity = %election.identity, "leader election started");
            (None, Some(task), leader_rx)
        }
        None => {
            let (tx, rx) = leader::always();
            tracing::info!("leader election off: this replica always leads");
            (Some(tx), None, rx)
        }
    })
}

/// With the flight recorder on, the watches' changes pass through it on their way: the sender
/// the watches write to.
fn through_recorder(
    config: &Config,
    tx: mpsc::Sender<watch::Change>,
    clock: &Arc<dyn clock::Clock>,
) -> anyhow::Result<mpsc::Sender<watch::Change>> {
    let Some((dir, bounds)) = &config.flight_recorder else {
        return Ok(tx);
    };
    let ring = flight::Ring::open(dir, bounds.clone(), clock.now_ms())
        .map_err(|e| anyhow::anyhow!("the flight recorder cannot write to {}: {e}", dir.display()))?;
    tracing::info!(dir = %dir.display(), max_bytes = bounds.max_bytes, "flight recorder on");
    let (watches_tx, watches_rx) = mpsc::channel(128);
    flight::tee(watches_rx, tx, flight::Recorder::start(ring, clock.clone()));
    Ok(watches_tx)
}

/// The engine with the configuration's switches, limits and trust.
fn configured(engine: engine::Engine, config: Config) -> engine::Engine {
    engine
        .with_switches(config.dry_run, config.paused)
        .with_own_namespace(config.own_namespace)
        .with_retention(config.retention)
        .with_protected_namespaces(config.protected_namespaces)
        .with_disruption_budget(config.max_nodes_out_of_service)
        .with_pool_label(config.node_pool_label)
        .with_clear_debounce(config.clear_debounce)
        .with_pods_alike(config.pods_alike)
        .with_planned(config.planned)
        .with_time_zone(config.time_zone)
        .with_event_trust(config.event_trust)
        .with_event_budget(config.event_memory_bytes)
}
