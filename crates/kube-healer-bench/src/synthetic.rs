//! The operator's engine fed watch events in-process (the same `Change`s its watches send): the
//! start-up lists of a cluster the local API server cannot hold, then a stream of pod updates.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::watcher::Event;
use kube_healer_api::HealingPolicy;
use kube_healer_operator::engine::Engine;
use kube_healer_operator::metrics::Metrics;
use kube_healer_operator::watch::Change;
use kube_healer_testenv::fixtures::realistic_pod;
use serde_json::json;

use crate::measure::{self, Report};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    #[arg(long, default_value_t = 150_000)]
    pods: usize,
    /// Pod updates streamed after the start-up lists.
    #[arg(long, default_value_t = 300_000)]
    updates: usize,
    /// Events streamed after the updates (an event flood; 0: none).
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let pid = std::process::id();
    let (rss_before, _) = measure::memory_mib(pid).unwrap_or_default();
    let (synced_tx, _synced_rx) = tokio::sync::watch::channel(Default::default());
    let mut engine = Engine::new(Arc::new(Metrics::default()), synced_tx);
    let now = k8s_openapi::jiff::Timestamp::now();

    let t = Instant::now();
    start_up_lists(&mut engine, &args, now)?;
    let sync_secs = t.elapsed().as_secs_f64();
    let (rss_after, _) = measure::memory_mib(pid).unwrap_or_default();

    let t = Instant::now();
    stream_updates(&mut engine, &args);
    let update_secs = t.elapsed().as_secs_f64();
    let (rss_end, peak) = measure::memory_mib(pid).unwrap_or_default();
    let flooded = (args.events > 0)
        .then(|| crate::flood::flood(&mut engine, args.events, args.pods, args.nodes, now.as_second()));
    let (rss_flood, peak_flood) = measure::memory_mib(pid).unwrap_or_default();

    let mut report = Report::default();
    report.row(
        &format!(
            "start-up lists absorbed ({} nodes + leases, {} pods)",
            args.nodes, args.pods
        ),
        format!(
            "{sync_secs:.2} s ({:.0} objects/s)",
            (2 * args.nodes + args.pods) as f64 / sync_secs
        ),
        "",
        None,
    );
    report.row(
        "process RSS after the lists (engine, stores, indexes, runtime)",
        format!(
            "{rss_after:.1} MiB ({:.0} bytes per pod above the empty process)",
            (rss_after - rss_before) * 1048576.0 / args.pods as f64
        ),
        "<= 256 MiB at 5,000 nodes and 150,000 pods",
        Some(rss_after <= 256.0),
    );
    report.row(
        &format!(
            "pod updates classified and matched against 3 policies ({})",
            args.updates
        ),
        format!("{:.0} updates/s", args.updates as f64 / update_secs),
        "",
        None,
    );
    report.row(
        "RSS after the updates / peak",
        format!("{rss_end:.1} / {peak:.1} MiB"),
        "",
        None,
    );
    if let Some(f) = flooded {
        flood_rows(&mut report, &f, (rss_flood, peak_flood));
    }
    report.print(&format!(
        "kube-healer engine, in-process: {} nodes, {} pods, one core",
        args.nodes, args.pods
    ));
    Ok(())
}

/// The start-up lists, as the watches send them: three dry-run policies, the nodes and their
/// Leases, the pods, and the empty lists of the other watches (decisions wait for every list).
fn start_up_lists(engine: &mut Engine, args: &Args, now: k8s_openapi::jiff::Timestamp) -> anyhow::Result<()> {
    let rfc = |t: k8s_openapi::jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let started = rfc(now - k8s_openapi::jiff::SignedDuration::from_hours(24));
    engine.apply(Change::policy(Event::Init));
    for (name, class) in [
        ("image-pulls", "ImagePullFailure"),
        ("crash-loops", "CrashLoop"),
        ("evicted", "Evicted"),
    ] {
        let policy: HealingPolicy = serde_json::from_value(json!({
            "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
            "metadata": {"name": name, "generation": 1},
            "spec": {"target": {"kind": "Pod"}, "conditions": [{"class": class, "for": "10m"}],
                "actions": [{"action": "Delete"}], "safety": {"dryRun": true}}}))?;
        engine.apply(Change::policy(Event::InitApply(policy)));
    }
    engine.apply(Change::policy(Event::InitDone));
    engine.apply(Change::Node(Box::new(Event::Init)));
    for i in 0..args.nodes {
        engine.apply(Change::Node(Box::new(Event::InitApply(node(i, &started)))));
    }
    engine.apply(Change::Node(Box::new(Event::InitDone)));
    engine.apply(Change::Lease(Box::new(Event::Init)));
    for i in 0..args.nodes {
        let lease: Lease = serde_json::from_value(
            json!({"metadata": {"name": format!("node-{i}"), "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": format!("node-{i}"), "leaseDurationSeconds": 40,
                     "renewTime": now.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()}}),
        )?;
        engine.apply(Change::Lease(Box::new(Event::InitApply(lease))));
    }
    engine.apply(Change::Lease(Box::new(Event::InitDone)));
    engine.apply(Change::Pod(Box::new(Event::Init)));
    for i in 0..args.pods {
        engine.apply(Change::Pod(Box::new(Event::InitApply(pod(i, args.nodes)))));
    }
    engine.apply(Change::Pod(Box::new(Event::InitDone)));
    engine.apply(Change::Event(Box::new(Event::Init)));
    engine.apply(Change::Event(Box::new(Event::InitDone)));
    engine.apply(Change::Namespace(Box::new(Event::Init)));
    engine.apply(Change::Namespace(Box::new(Event::InitDone)));
    Change::no_maintainers().for_each(|c| engine.apply(c));
    engine.apply(Change::Record(Box::new(Event::Init)));
    engine.apply(Change::Record(Box::new(Event::InitDone)));
    engine.correlated();
    Ok(())
}

/// A stream of updates: status updates to every pod in turn, the 2% that fail flipping between
/// ImagePullBackOff and running on alternate passes (the failing share stays <= 2%).
fn stream_updates(engine: &mut Engine, args: &Args) {
    let mut last_correlation = Instant::now();
    for u in 0..args.updates {
        let i = (u * 7919) % args.pods;
        let pass = u / args.pods;
        let p = realistic_pod_named(i, args.nodes, i.is_multiple_of(50) && pass % 2 == 1);
        engine.apply(Change::Pod(Box::new(Event::Apply(p))));
        // The run loop recomputes correlations (when their inputs changed) once a second.
        if last_correlation.elapsed() >= std::time::Duration::from_secs(1) {
            engine.correlated();
            last_correlation = Instant::now();
        }
    }
}

/// The event flood's rows: its rate, the index after it, the process's memory.
fn flood_rows(report: &mut Report, f: &crate::flood::Flooded, (rss, peak): (f64, f64)) {
    let rate = f.events as f64 / f.applying.as_secs_f64();
    report.row(
        &format!(
            "events absorbed ({} over the pods and nodes, 70% Normal)",
            f.events
        ),
        format!("{rate:.0} events/s"),
        ">= 50,000 events/s",
        Some(rate >= 50_000.0),
    );
    report.row(
        "event index after the flood",
        format!(
            "{} series, {:.1} MiB estimated, {} evicted by its budget",
            f.kept,
            f.index_bytes as f64 / 1048576.0,
            f.evicted
        ),
        "<= its budget (64 MiB)",
        Some(f.index_bytes <= f.budget),
    );
    report.row(
        "process RSS after the flood / peak",
        format!("{rss:.1} / {peak:.1} MiB"),
        "<= 256 MiB",
        Some(peak <= 256.0),
    );
}

pub(crate) fn node(i: usize, since: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": format!("node-{i}"), "uid": format!("node-uid-{i}"),
            "labels": {"kubernetes.io/hostname": format!("node-{i}"), "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": "m6i.2xlarge", "topology.kubernetes.io/zone": format!("zone-{}", i % 3)}},
        "spec": {"podCIDR": "10.244.0.0/24"},
        "status": {"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": since, "lastHeartbeatTime": since, "reason": "KubeletReady"},
            {"type": "MemoryPressure", "status": "False", "lastTransitionTime": since},
            {"type": "DiskPressure", "status": "False", "lastTransitionTime": since},
            {"type": "PIDPressure", "status": "False", "lastTransitionTime": since}],
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "allocatable": {"cpu": "7800m", "memory": "31Gi", "pods": "110"}},
    }))
    .expect("a node")
}

pub(crate) fn pod(i: usize, nodes: usize) -> Pod {
    realistic_pod_named(i, nodes, i.is_multiple_of(50))
}

/// Pod `i` (2% in ImagePullBackOff by default), on node `i % nodes`.
fn realistic_pod_named(i: usize, nodes: usize, failing: bool) -> Pod {
    let mut p = realistic_pod(i, failing);
    p.metadata.name = Some(format!("web-7d9f8c6b5-{i:06x}"));
    p.metadata.uid = Some(format!("{i:08x}-1d2c-4e5f-8a9b-0c1d2e3f4a5b"));
    if let Some(spec) = p.spec.as_mut() {
        spec.node_name = Some(format!("node-{}", i % nodes));
    }
    p
}
