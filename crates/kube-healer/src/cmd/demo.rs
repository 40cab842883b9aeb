//! `kube-healer demo`: the operator healing real failures on an embedded local cluster (etcd,
//! kube-apiserver, kube-controller-manager, kube-scheduler, kwok), live. It builds the control
//! plane if needed, creates workloads that fail the ways the mission describes, runs the operator
//! in this process, streams each HealingAction as it is recorded, then prints
//! `kubectl get healingactions`. Ctrl-C stops everything it started.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube_healer_api::{HealingAction, HealingPolicy};
use kube_healer_testenv::{ClusterOptions, Scenario, TestCluster, nodes, scenario, scenario_pod};
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// Exit once everything is healed (or after --timeout) instead of waiting for Ctrl-C.
    #[arg(long)]
    exit: bool,
    /// How long to wait for the healing before printing the table anyway.
    #[arg(long, default_value = "3m")]
    timeout: kube_healer_api::Duration,
}

const NS: &str = "shop";

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "error,kube_client=off,kube_healer_operator::watch=off",
        ))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        tokio::select! {
            result = demo(&args) => result,
            _ = tokio::signal::ctrl_c() => {
                println!("\nstopped: the cluster and the operator are gone");
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// The demo's policies: short `for`s so that it runs in a minute or two (see examples/ for
/// production values).
fn policies() -> serde_json::Value {
    let pods = json!({"kind": "Pod", "namespaces": {"include": [NS]}});
    let limits = json!({"maxConcurrent": 5, "rate": {"actions": 20, "per": "1m"}, "cooldown": "5s"});
    json!([
        ["stuck-terminating", {"target": pods, "conditions": [{"class": "StuckTerminating", "for": "10s"}],
            "actions": [{"action": "ForceDelete"}], "safety": limits}],
        ["evicted-leftovers", {"target": pods, "conditions": [{"class": "Evicted", "for": "10s"}],
            "actions": [{"action": "Delete"}], "safety": limits}],
        ["image-pull", {"target": pods, "conditions": [{"class": "ImagePullFailure", "for": "10s"}],
            "actions": [{"action": "Event"}], "safety": limits}],
        ["lost-node-pods", {"target": pods, "conditions": [{"class": "NodeLost", "for": "5s"}],
            "actions": [{"action": "Delete", "escalateAfter": "8s"}, {"action": "ForceDelete"}], "safety": limits}],
        ["flapping-nodes", {"target": {"kind": "Node", "selector": {"matchLabels": {"demo.kube-healer.io/pool": "app"}}},
            "conditions": [{"class": "NodeFlapping", "for": "5s"}], "actions": [{"action": "Cordon"}],
            "safety": {"maxUnhealthy": "50%", "maxConcurrent": 1, "rate": {"actions": 2, "per": "10m"}}}],
    ])
}

/// The failures the demo expects healed: (policy, target name prefix).
const EXPECTED: &[(&str, &str)] = &[
    ("stuck-terminating", "checkout"),
    ("evicted-leftovers", "cart-0"),
    ("evicted-leftovers", "cart-1"),
    ("evicted-leftovers", "cart-2"),
    ("image-pull", "payments"),
    ("lost-node-pods", "search-0"),
    ("lost-node-pods", "search-1"),
    ("flapping-nodes", "flappy-node"),
];

async fn demo(args: &Args) -> anyhow::Result<ExitCode> {
    // Times are told apart: the control plane's build (first run only), the cluster's start, the
    // scene's set-up, and the healing, counted from the operator's start.
    let begun = Instant::now();
    println!("control plane binaries: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok");
    println!("(the first run builds them from the Go module proxy: about 8 minutes)");
    tokio::task::spawn_blocking(kube_healer_testenv::binaries::Binaries::locate).await??;
    let built_in = begun.elapsed();
    println!("binaries ready in {:.1}s", built_in.as_secs_f64());
    let cluster = TestCluster::start(ClusterOptions::default()).await?;
    let client = cluster.client()?;
    let crds: Vec<_> = kube_healer_api::crds().into_iter().map(|(_, c)| c).collect();
    kube_healer_testenv::crds::install(&client, &crds).await?;
    add_nodes(&client).await?;
    println!(
        "cluster ready in {:.1}s: 5 kwok nodes; kubeconfig {}",
        cluster.started_in.as_secs_f64(),
        cluster.kubeconfig_path().display()
    );
    create_workloads(&client).await?;
    fail_nodes(&client).await?;
    create_policies(&client).await?;

    // The operator, in this process.
    let port = kube_healer_testenv::process::free_port()?;
    let set_up_in = begun.elapsed() - built_in - cluster.started_in;
    let started = Instant::now();
    let operator = tokio::spawn(kube_healer_operator::run(client.clone(), operator_config(port)));
    println!(
        "operator running (metrics on http://127.0.0.1:{port}/metrics); HealingActions as they are recorded,\nin seconds since the operator started:\n"
    );
    let healed = follow_records(&client, started, args.timeout.as_std()).await;
    operator.abort();
    println!();
    let all_healed = healed.len() == EXPECTED.len();
    if all_healed {
        println!(
            "all {} failures healed in {}s after the operator started (before it: binaries {:.1}s, cluster {:.1}s, workloads and policies {:.1}s)",
            EXPECTED.len(),
            started.elapsed().as_secs(),
            built_in.as_secs_f64(),
            cluster.started_in.as_secs_f64(),
            set_up_in.as_secs_f64(),
        );
    } else {
        let missing: Vec<String> = EXPECTED
            .iter()
            .filter(|(p, t)| !healed.contains(&(p.to_string(), t.to_string())))
            .map(|(p, t)| format!("{t} ({p})"))
            .collect();
        println!("not healed within {}: {}", args.timeout, missing.join(", "));
    }
    let kubectl = cluster.binaries().path("kubectl");
    let table = std::process::Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(["get", "healingactions", "--sort-by=.metadata.creationTimestamp"])
        .output()
        .context("running kubectl")?;
    println!(
        "\n$ kubectl get healingactions\n{}",
        String::from_utf8_lossy(&table.stdout)
    );
    if args.exit {
        cluster.stop();
        return Ok(if all_healed {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    println!("explore (the cluster stays up until Ctrl-C):");
    println!("  export KUBECONFIG={}", cluster.kubeconfig_path().display());
    println!("  {} get healingpolicies", kubectl.display());
    println!("  {} describe node flappy-node", kubectl.display());
    println!("  cargo run -p kube-healer -- explain pod/{NS}/payments");
    println!("  cargo run -p kube-healer -- simulate -f examples/evicted-leftovers.yaml");
    std::future::pending().await
}

/// Five kwok nodes in the demo's pool.
async fn add_nodes(client: &kube::Client) -> anyhow::Result<()> {
    let node_names: Vec<String> = ["worker-0", "worker-1", "worker-2", "flappy-node", "dark-node"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    nodes::add_nodes(client, &node_names, Duration::from_secs(60)).await?;
    let label = json!({"metadata": {"labels": {"demo.kube-healer.io/pool": "app"}}});
    let nodes_api: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    for n in &node_names {
        nodes_api
            .patch(n, &Default::default(), &kube::api::Patch::Merge(&label))
            .await?;
    }
    Ok(())
}

/// The workloads, failing: healthy ones beside a stuck Terminating pod, Evicted leftovers, an
/// image that cannot be pulled, and pods on the node about to go dark.
async fn create_workloads(client: &kube::Client) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let mut scene: Vec<(String, &str, Scenario)> = Vec::new();
    for i in 0..3 {
        scene.push((
            format!("web-{i}"),
            ["worker-0", "worker-1", "worker-2"][i],
            Scenario::Running,
        ));
        scene.push((format!("cart-{i}"), "worker-1", Scenario::evicted()));
    }
    let pull = Scenario::image_pull_backoff("registry.example/payments:2.4.1");
    scene.push(("payments".into(), "worker-2", pull));
    for i in 0..2 {
        scene.push((format!("search-{i}"), "dark-node", Scenario::Running));
    }
    for (name, node, scenario) in &scene {
        let pod = scenario_pod(NS, name, Some(node), scenario);
        pods.create(&PostParams::default(), &pod).await?;
    }
    scenario::stuck_terminating_pod(&pods, NS, "checkout", "worker-0").await?;
    println!(
        "workloads in namespace {NS}: web-0..2 (healthy), checkout (stuck Terminating), cart-0..2 (Evicted),"
    );
    println!(
        "  payments (ImagePullBackOff), search-0..1 (on dark-node, whose kubelet is about to stop posting)"
    );
    Ok(())
}

/// The nodes, failing: one stops posting status; one flaps (NotReady/Ready events).
async fn fail_nodes(client: &kube::Client) -> anyhow::Result<()> {
    nodes::stop_heartbeats(client, "dark-node").await?;
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    for (reason, count) in [("NodeNotReady", 3), ("NodeReady", 3)] {
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let event: Event = serde_json::from_value(json!({
            "metadata": {"generateName": "flappy-node."},
            "involvedObject": {"kind": "Node", "name": "flappy-node", "uid": "flappy-node"},
            "reason": reason, "message": format!("Node flappy-node status is now: {reason}"), "count": count,
            "type": "Normal", "firstTimestamp": now, "lastTimestamp": now, "source": {"component": "node-controller"},
        }))?;
        events.create(&PostParams::default(), &event).await?;
    }
    println!("nodes: dark-node stopped posting status; flappy-node flaps between NotReady and Ready");
    Ok(())
}

async fn create_policies(client: &kube::Client) -> anyhow::Result<()> {
    let policy_api: Api<HealingPolicy> = Api::all(client.clone());
    let specs = policies();
    for entry in specs.as_array().context("policies")? {
        let policy: HealingPolicy = serde_json::from_value(json!({
            "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
            "metadata": {"name": entry[0]}, "spec": entry[1]}))?;
        policy_api.create(&PostParams::default(), &policy).await?;
    }
    let names: BTreeSet<&str> = EXPECTED.iter().map(|e| e.0).collect();
    println!("policies: {}", names.into_iter().collect::<Vec<_>>().join(", "));
    Ok(())
}

fn operator_config(port: u16) -> kube_healer_operator::Config {
    kube_healer_operator::Config {
        http_addr: ([127, 0, 0, 1], port).into(),
        dry_run: false,
        paused: false,
        own_namespace: None,
        policy_selector: None,
        leader_election: None,
        election_client: None,
        retention: Default::default(),
        protected_namespaces: vec!["kube-system".into()],
        // A handful of nodes, two of them failing on purpose: no disruption budget in the demo.
        max_nodes_out_of_service: None,
        node_pool_label: None,
        clear_debounce: std::time::Duration::from_secs(5),
        pods_alike: Default::default(),
        planned: Default::default(),
        time_zone: Default::default(),
        event_trust: Default::default(),
        event_memory_bytes: kube_healer_core::events::EventIndex::DEFAULT_BYTES,
        flight_recorder: None,
        node_jobs: Default::default(),
        clock_offset_seconds: 0,
    }
}

/// HealingActions, live: each final one printed, until every expected failure is healed or the
/// timeout. The (policy, target prefix) pairs healed.
async fn follow_records(
    client: &kube::Client,
    started: Instant,
    timeout: Duration,
) -> BTreeSet<(String, String)> {
    let records = watcher(
        Api::<HealingAction>::all(client.clone()),
        watcher::Config::default(),
    )
    .applied_objects()
    .default_backoff();
    let mut records = std::pin::pin!(records);
    let mut healed: BTreeSet<(String, String)> = BTreeSet::new();
    let mut shown: BTreeSet<String> = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while healed.len() < EXPECTED.len() {
        let record = match tokio::time::timeout_at(deadline, records.next()).await {
            Ok(Some(Ok(record))) => record,
            // A watch error is retried with backoff: a CRD just reported Established can still
            // answer 404 for a moment, and the demo once ended in 6 s on that.
            Ok(Some(Err(e))) => {
                eprintln!("watching HealingActions (retried): {e}");
                continue;
            }
            Ok(None) | Err(_) => break,
        };
        if record.status.as_ref().is_none_or(|s| !s.phase.is_final()) {
            continue;
        }
        if !shown.insert(record.metadata.name.clone().unwrap_or_default()) {
            continue;
        }
        print_record(&record, started.elapsed().as_secs());
        healed.extend(expected_healed(&record));
    }
    healed
}

/// One final record, as a line: a batch record (leftovers removed together) names its first pod
/// and counts the rest.
fn print_record(record: &HealingAction, elapsed: u64) {
    let Some(status) = record.status.as_ref() else {
        return;
    };
    let more = record.spec.members.len().saturating_sub(1);
    let target = match more {
        0 => record.spec.target.reference.clone(),
        n => format!("{} +{n}", record.spec.target.reference),
    };
    println!(
        "  {:>3}s  {:<12} {:<34} {:<10} {}",
        elapsed,
        record.spec.action.to_string(),
        target,
        format!("{:?}", status.phase),
        status.message.clone().unwrap_or_default()
    );
}

/// The expected failures a final record healed: its target, or each member of a batch removed
/// (the lost node's pods count once force-deleted, the ladder's last step).
fn expected_healed(record: &HealingAction) -> Vec<(String, String)> {
    use kube_healer_api::record::ActionPhase;
    let Some(status) = record.status.as_ref() else {
        return Vec::new();
    };
    let done: Vec<&str> = if record.spec.members.is_empty() {
        (status.phase == ActionPhase::Succeeded)
            .then_some(record.spec.target.name.as_str())
            .into_iter()
            .collect()
    } else {
        record
            .spec
            .members
            .iter()
            .filter(|m| {
                status
                    .members
                    .iter()
                    .any(|o| o.uid == m.target.uid && o.phase == ActionPhase::Succeeded)
            })
            .map(|m| m.target.name.as_str())
            .collect()
    };
    done.into_iter()
        .filter_map(|name| {
            EXPECTED
                .iter()
                .find(|(p, t)| record.spec.policy == *p && name.starts_with(t))
                .filter(|_| {
                    record.spec.policy != "lost-node-pods"
                        || record.spec.action == kube_healer_api::ActionKind::ForceDelete
                })
                .map(|(policy, prefix)| (policy.to_string(), prefix.to_string()))
        })
        .collect()
}
