//! The real local cluster at scale: kwok nodes, pods bound to them, the operator binary run as its
//! chart's ServiceAccount, and descheduler's RemoveFailedPods on the same kind of load.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use kube_healer_api::HealingPolicy;
use kube_healer_testenv::process::{ManagedProcess, Reaper, free_port};
use kube_healer_testenv::{ClusterOptions, Scenario, TestCluster, chart, nodes, scenario_pod};
use serde_json::json;

use crate::measure::{self, Report};

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
    /// Skip the descheduler comparison.
    #[arg(long)]
    no_descheduler: bool,
    /// Concurrent requests used to create the load.
    #[arg(long, default_value_t = 48)]
    concurrency: usize,
}

const OPERATOR_NAMESPACE: &str = "kube-healer";
const REACT_NS: &str = "bench-react";
const EVICTED_NS: &str = "bench-evicted";
const DESCHEDULER_NS: &str = "bench-descheduler";

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(scale(args))
}

async fn scale(args: Args) -> anyhow::Result<()> {
    let operator_binary = operator_binary()?;
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

    // Load: nodes, then pods bound to them (kwok runs them).
    let t = Instant::now();
    create_nodes(&client, args.nodes, args.concurrency).await?;
    println!("{} nodes Ready in {:.1}s", args.nodes, t.elapsed().as_secs_f64());
    let t = Instant::now();
    for i in 0..50 {
        create_namespace(&client, &format!("team-{i}")).await?;
    }
    for ns in [REACT_NS, EVICTED_NS, DESCHEDULER_NS] {
        create_namespace(&client, ns).await?;
    }
    let pods = (0..args.pods).map(|i| {
        let mut pod = scenario_pod(
            &format!("team-{}", i % 50),
            &format!("web-{i:06}"),
            Some(&node_name(i % args.nodes)),
            &Scenario::Running,
        );
        let labels = pod.metadata.labels.get_or_insert_default();
        labels.insert("app".into(), format!("web-{}", i % 200));
        labels.insert("tier".into(), "frontend".into());
        pod
    });
    create_pods(&client, pods, args.concurrency).await?;
    println!("{} pods created in {:.1}s", args.pods, t.elapsed().as_secs_f64());

    // The operator, as the chart's ServiceAccount, its CRDs installed as the chart does.
    let crds: Vec<_> = kube_healer_api::crds().into_iter().map(|(_, crd)| crd).collect();
    kube_healer_testenv::crds::install(&client, &crds).await?;
    let kubeconfig = chart::operator_identity(&cluster, "kube-healer", OPERATOR_NAMESPACE, &[]).await?;
    let user = format!("system:serviceaccount:{OPERATOR_NAMESPACE}:kube-healer");
    let port = free_port()?;
    let mut reaper = Reaper::start()?;
    let started = Instant::now();
    let operator = ManagedProcess::spawn(
        "kube-healer",
        &operator_binary,
        &[
            "run".into(),
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
            "--http-addr".into(),
            format!("127.0.0.1:{port}"),
            "--records-per-policy".into(),
            "100000".into(),
            "--log".into(),
            "warn".into(),
        ],
        cluster.dir().join("operator.log"),
        &mut reaper,
    )?;
    let http = format!("127.0.0.1:{port}");
    if let Err(e) = wait_http(&http, "/readyz", Duration::from_secs(120)).await {
        anyhow::bail!("{e}; operator log:\n{}", operator.log_tail(30));
    }
    let sync = started.elapsed().as_secs_f64();
    report.row(
        &format!(
            "start-up: stores synced ({} pods, {} nodes)",
            args.pods, args.nodes
        ),
        format!("{sync:.2} s"),
        "<= 5 s at 30,000 pods",
        Some(sync <= 5.0),
    );
    let (rss, _) = measure::memory_mib(operator.pid()).context("operator memory")?;
    println!("  operator RSS after sync: {rss:.1} MiB");

    // Steady state: no LIST and no GET from the operator (watches only).
    let before = measure::apiserver_requests(&client).await?;
    let window_start = now_rfc3339();
    tokio::time::sleep(Duration::from_secs(args.steady_secs)).await;
    let after = measure::apiserver_requests(&client).await?;
    let ours = measure::audit_requests(&cluster.audit_log(), &user, &window_start)?;
    let reads: usize = ours
        .iter()
        .filter(|((verb, _), _)| verb == "list" || verb == "get")
        .map(|(_, n)| n)
        .sum();
    report.row(
        &format!(
            "operator LIST+GET in {} s of steady state (audit log)",
            args.steady_secs
        ),
        format!("{reads}"),
        "0",
        Some(reads == 0),
    );
    let all = measure::delta(&before, &after, &["LIST", "GET"]);
    let all_reads: f64 = all
        .iter()
        .filter(|((_, resource), _)| !resource.is_empty())
        .fold(0.0, |sum, (_, n)| sum + n);
    println!("  every client's LIST/GET in the window (apiserver_request_total): {all:?}");
    report.row(
        "every client's LIST+GET on resources, same window (apiserver_request_total)",
        format!("{all_reads:.0}"),
        "informational (kwok, controllers)",
        None,
    );
    let (rss, _) = measure::memory_mib(operator.pid()).context("operator memory")?;
    report.row(
        &format!("operator RSS, {} nodes and {} pods", args.nodes, args.pods),
        format!("{rss:.1} MiB"),
        "<= 64 MiB",
        Some(rss <= 64.0),
    );

    // Reaction under load: Evicted pods appear one by one, 20 a second; the policy deletes each
    // once it has been Evicted for 2 s. Their status is written here (as a kubelet would, on a
    // node kwok does not manage), so the failure time is known exactly: kwok, busy with 1,000
    // nodes, applies its stages seconds late and in batches. Reaction is measured per pod from
    // the API server's audit log: DELETE received minus the moment the 2 s had elapsed.
    create_policy(&client, "bench-react", REACT_NS, "2s").await?;
    let static_node = "bench-static";
    let node: Node = serde_json::from_value(json!({"metadata": {"name": static_node}}))?;
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await?;
    let t = Instant::now();
    let react_pods: Api<Pod> = Api::namespaced(client.clone(), REACT_NS);
    let mut due = std::collections::BTreeMap::new();
    for i in 0..args.reaction_pods {
        let name = format!("r-{i:05}");
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"nodeName": static_node, "containers": [{"name": "app", "image": "registry.example/app:1"}]},
        }))?;
        react_pods.create(&PostParams::default(), &pod).await?;
        // Kubernetes times have whole seconds: the failure is stamped with the second it
        // happened in, and is due 2 s after that stamp.
        let failed =
            k8s_openapi::jiff::Timestamp::from_second(k8s_openapi::jiff::Timestamp::now().as_second())?;
        let stamp = failed.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        react_pods
            .patch_status(
                &name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(json!({"status": {"phase": "Failed", "reason": "Evicted",
                    "message": "The node was low on resource: memory.", "startTime": stamp,
                    "conditions": [{"type": "Ready", "status": "False", "reason": "PodFailed", "lastTransitionTime": stamp}]}})),
            )
            .await?;
        due.insert(name, failed.as_millisecond() + 2000);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_pods_gone(&client, REACT_NS, Duration::from_secs(300)).await?;
    println!(
        "{} reaction pods deleted {:.1}s after the first",
        args.reaction_pods,
        t.elapsed().as_secs_f64()
    );
    let deletes = measure::audit_times(&cluster.audit_log(), &user, "delete", REACT_NS)?;
    let mut latencies: Vec<f64> = due
        .iter()
        .filter_map(|(name, due)| deletes.get(name).map(|at| (at - due) as f64 / 1000.0))
        .collect();
    latencies.sort_by(f64::total_cmp);
    ensure!(
        latencies.len() == args.reaction_pods,
        "{} of {} reaction pods were deleted by the operator",
        latencies.len(),
        args.reaction_pods
    );
    let quantile = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    let (p50, p99) = (quantile(0.5), quantile(0.99));
    report.row(
        "reaction: due -> DELETE received by the API server, p50 (audit log)",
        format!("{:.0} ms", p50 * 1000.0),
        "<= 100 ms",
        Some(p50 <= 0.1),
    );
    report.row(
        "reaction: due -> DELETE received by the API server, p99 (audit log)",
        format!(
            "{:.0} ms (max {:.0} ms)",
            p99 * 1000.0,
            latencies[latencies.len() - 1] * 1000.0
        ),
        "<= 1 s",
        Some(p99 <= 1.0),
    );
    let (_, metrics) = http_get(&http, "/metrics").await?;
    let buckets = measure::histogram(&metrics, "kube_healer_due_to_action_seconds");
    println!(
        "  the operator's own histogram (due -> call, bucket bounds): p50 <= {:?} s, p99 <= {:?} s",
        measure::quantile_bound(&buckets, 0.5),
        measure::quantile_bound(&buckets, 0.99)
    );

    // Throughput: N Evicted pods, then one policy with a high rate; time until all are gone.
    let t = Instant::now();
    create_evicted(&client, EVICTED_NS, args.evicted, args.nodes, args.concurrency).await?;
    wait_failed(&client, EVICTED_NS, args.evicted, Duration::from_secs(600)).await?;
    println!(
        "{} Evicted pods ready in {:.1}s",
        args.evicted,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    create_policy(&client, "bench-evicted", EVICTED_NS, "1s").await?;
    wait_pods_gone(&client, EVICTED_NS, Duration::from_secs(900)).await?;
    let ours_secs = t.elapsed().as_secs_f64();
    report.row(
        &format!("throughput: {} Evicted pods deleted by one policy", args.evicted),
        format!("{ours_secs:.1} s ({:.0} pods/s)", args.evicted as f64 / ours_secs),
        "<= 60 s for 10,000",
        Some(ours_secs <= 60.0 * args.evicted as f64 / 10_000.0),
    );
    let (_, operator_peak) = measure::memory_mib(operator.pid()).context("operator memory")?;
    report.row(
        "operator peak RSS (VmHWM), whole run",
        format!("{operator_peak:.1} MiB"),
        "",
        None,
    );

    // descheduler's RemoveFailedPods on a second batch of the same size.
    if let Some(binary) = descheduler {
        create_evicted(
            &client,
            DESCHEDULER_NS,
            args.evicted,
            args.nodes,
            args.concurrency,
        )
        .await?;
        wait_failed(&client, DESCHEDULER_NS, args.evicted, Duration::from_secs(600)).await?;
        let run = crate::descheduler::run_once(&cluster, &binary, DESCHEDULER_NS, &mut reaper).await?;
        let left = count_pods(&client, DESCHEDULER_NS).await?;
        report.row(
            &format!(
                "descheduler RemoveFailedPods: {} Evicted pods ({left} left)",
                args.evicted
            ),
            format!("{:.1} s, peak RSS {:.1} MiB", run.seconds, run.peak_mib),
            "side by side",
            None,
        );
        report.row(
            "ratio descheduler / kube-healer: time to clean, peak RSS",
            format!(
                "{:.2}x, {:.2}x",
                run.seconds / ours_secs,
                run.peak_mib / operator_peak
            ),
            "",
            None,
        );
    }
    drop(operator);
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

/// The release build of `kube-healer` next to this binary, built first if missing.
fn operator_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let binary = exe.with_file_name("kube-healer");
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let profile = if exe.to_string_lossy().contains("/release/") {
            "--release"
        } else {
            "--profile=dev"
        };
        let status = std::process::Command::new(cargo)
            .args(["build", profile, "-p", "kube-healer"])
            .status()
            .context("building kube-healer")?;
        ensure!(status.success(), "building kube-healer failed");
    }
    ensure!(binary.exists(), "{} not found", binary.display());
    Ok(binary)
}

fn node_name(i: usize) -> String {
    format!("kwok-{i:05}")
}

async fn create_nodes(client: &Client, count: usize, concurrency: usize) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    futures::stream::iter((0..count).map(|i| {
        let api = api.clone();
        async move {
            api.create(&PostParams::default(), &nodes::kwok_node(&node_name(i)))
                .await
        }
    }))
    .buffer_unordered(concurrency)
    .try_collect::<Vec<_>>()
    .await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let list = api.list(&ListParams::default()).await?;
        let ready = list
            .items
            .iter()
            .filter(|n| nodes::ready_status(n).as_deref() == Some("True"))
            .count();
        if ready >= count {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{ready} of {count} nodes Ready after 600 s"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn create_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    // The ServiceAccount admission plugin refuses pods until the default account exists.
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), name);
    kube_healer_testenv::wait::until(
        &format!("default account in {name}"),
        Duration::from_secs(60),
        || async { Ok(accounts.get_opt("default").await?.map(|_| ())) },
    )
    .await?;
    Ok(())
}

async fn create_pods(
    client: &Client,
    pods: impl Iterator<Item = Pod>,
    concurrency: usize,
) -> anyhow::Result<()> {
    futures::stream::iter(pods.map(|pod| {
        let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        async move {
            loop {
                match api.create(&PostParams::default(), &pod).await {
                    Ok(_) => return Ok(()),
                    Err(kube::Error::Api(s)) if s.code == 429 || s.code >= 500 => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }))
    .buffer_unordered(concurrency)
    .try_collect::<Vec<()>>()
    .await?;
    Ok(())
}

async fn create_evicted(
    client: &Client,
    ns: &str,
    count: usize,
    nodes: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let pods = (0..count).map(|i| {
        scenario_pod(
            ns,
            &format!("e-{i:06}"),
            Some(&node_name(i % nodes)),
            &Scenario::evicted(),
        )
    });
    create_pods(client, pods, concurrency).await
}

async fn create_policy(client: &Client, name: &str, namespace: &str, for_: &str) -> anyhow::Result<()> {
    let policy: HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": name},
        "spec": {"target": {"kind": "Pod", "namespaces": {"include": [namespace]}},
            "conditions": [{"class": "Evicted", "for": for_}], "actions": [{"action": "Delete"}],
            "safety": {"maxConcurrent": 100, "rate": {"actions": 100000, "per": "1m"}}},
    }))?;
    Api::<HealingPolicy>::all(client.clone())
        .create(&PostParams::default(), &policy)
        .await?;
    Ok(())
}

async fn count_pods(client: &Client, ns: &str) -> anyhow::Result<usize> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    Ok(api.list_metadata(&ListParams::default()).await?.items.len())
}

async fn wait_pods_gone(client: &Client, ns: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = count_pods(client, ns).await?;
        if left == 0 {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{left} pods left in {ns} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn wait_failed(client: &Client, ns: &str, count: usize, timeout: Duration) -> anyhow::Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let failed = ListParams::default().fields("status.phase=Failed");
    let deadline = Instant::now() + timeout;
    loop {
        let n = api.list_metadata(&failed).await?.items.len();
        if n >= count {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{n} of {count} pods Failed in {ns} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn now_rfc3339() -> String {
    // Audit timestamps are RFC 3339 with microseconds in UTC.
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

async fn wait_http(addr: &str, path: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok((200, _)) = http_get(addr, path).await {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "{path} not 200 within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GET http://addr/path (127.0.0.1): status and body.
pub async fn http_get(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let (addr, path) = (addr.to_string(), path.to_string());
    Ok(tokio::task::spawn_blocking(move || kube_healer_testenv::http::get(&addr, &path)).await??)
}
