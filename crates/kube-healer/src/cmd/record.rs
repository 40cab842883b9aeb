//! `kube-healer record -o DIR`: the flight recorder on its own, for clusters where the operator
//! does not run with `--flight-recorder`: the operator's watches, no engine, writing a bounded
//! ring until Ctrl-C or `--for`. `--from-dump FILE` turns a cluster dump (the input `classify`
//! reads) into a recording of one instant instead, so offline classify and replay share a format.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use kube::runtime::watcher::Event as W;
use kube_healer_operator::clock::{Clock, WallClock};
use kube_healer_operator::flight::{Bounds, Frame, Recorder, Ring};
use kube_healer_operator::watch::Change;

use crate::input::read_objects;

#[derive(clap::Args)]
pub struct Args {
    /// The recording's directory (created if missing; a recording there is continued).
    #[arg(short = 'o', long = "output-dir")]
    dir: PathBuf,
    /// Its size on disk, in MiB: past it, the oldest segments go.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..))]
    max_mib: u64,
    /// Its age: segments ended longer ago go.
    #[arg(long, default_value = "24h")]
    max_age: kube_healer_api::Duration,
    /// Stop after this long (default: at Ctrl-C).
    #[arg(long = "for")]
    run_for: Option<kube_healer_api::Duration>,
    /// Record only HealingPolicies with these labels (as the operator's --policy-selector).
    #[arg(long, env = "KUBE_HEALER_POLICY_SELECTOR")]
    policy_selector: Option<String>,
    /// Make a recording of one instant from a cluster dump (a kubectl List, multi-document YAML
    /// or JSON of Pods, Nodes, Events and Leases) instead of watching a cluster.
    #[arg(long, value_name = "FILE")]
    from_dump: Option<PathBuf>,
    /// The instant of a dump (RFC 3339), for example when it was captured. Default: now.
    #[arg(long, requires = "from_dump")]
    at: Option<String>,
    /// Kubeconfig to use; default: $KUBECONFIG, then ~/.kube/config.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let bounds = Bounds {
        max_bytes: args.max_mib << 20,
        max_age_ms: Some(args.max_age.as_std().as_millis() as i64),
    };
    let now = WallClock::default().now_ms();
    let ring = Ring::open(&args.dir, bounds, now)
        .with_context(|| format!("opening the recording {}", args.dir.display()))?;
    if let Some(dump) = &args.from_dump {
        return from_dump(dump, args.at.as_deref(), ring);
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(record(args, ring))
}

async fn record(args: Args, ring: Ring) -> anyhow::Result<ExitCode> {
    let client = crate::cmd::client(args.kubeconfig.as_deref()).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(128);
    let metrics = Arc::new(kube_healer_operator::metrics::Metrics::default());
    kube_healer_operator::watch::spawn(&client, tx, metrics, args.policy_selector.as_deref());
    let mut recorder = Recorder::start(ring, Arc::new(WallClock::default()));
    eprintln!("recording to {} (Ctrl-C stops)", args.dir.display());
    let until = async {
        match args.run_for {
            Some(d) => tokio::time::sleep(d.as_std()).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until);
    let mut frames = 0u64;
    loop {
        tokio::select! {
            change = rx.recv() => match change {
                Some(change) => {
                    recorder.note(&change);
                    frames += 1;
                }
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
            () = &mut until => break,
        }
    }
    let bytes = tokio::task::spawn_blocking(move || recorder.finish()).await??;
    eprintln!("recorded {frames} watch events; the recording holds {bytes} bytes");
    Ok(ExitCode::SUCCESS)
}

/// One instant: each kind listed; the pods' namespaces without labels (a dump has none of its
/// own), no maintenance resources, and no HealingPolicies (replay takes its policies from
/// --policy).
fn from_dump(path: &std::path::Path, at: Option<&str>, mut ring: Ring) -> anyhow::Result<ExitCode> {
    let t = match at {
        Some(t) => t
            .parse::<k8s_openapi::jiff::Timestamp>()
            .with_context(|| format!("--at {t:?} is not an RFC 3339 time such as 2026-11-22T10:00:00Z"))?
            .as_millisecond(),
        None => WallClock::default().now_ms(),
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let objects = read_objects(&text, &path.display().to_string())?;
    for skipped in &objects.skipped {
        eprintln!("warning: skipping {skipped}: a recording holds Pods, Nodes, Events and Leases");
    }
    let mut changes: Vec<Change> = Vec::new();
    fn list<K>(out: &mut Vec<Change>, wrap: fn(Box<W<K>>) -> Change, items: Vec<K>) {
        out.push(wrap(Box::new(W::Init)));
        out.extend(items.into_iter().map(|k| wrap(Box::new(W::InitApply(k)))));
        out.push(wrap(Box::new(W::InitDone)));
    }
    let counts = (
        objects.pods.len(),
        objects.nodes.len(),
        objects.events.len(),
        objects.leases.len(),
    );
    let namespaces: std::collections::BTreeSet<String> = objects
        .pods
        .iter()
        .filter_map(|p| p.metadata.namespace.clone())
        .collect();
    list(&mut changes, Change::Node, objects.nodes);
    list(&mut changes, Change::Lease, objects.leases);
    list(&mut changes, Change::Pod, objects.pods);
    list(&mut changes, Change::Event, objects.events);
    let namespaces = namespaces
        .into_iter()
        .map(|name| k8s_openapi::api::core::v1::Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some(name),
                ..Default::default()
            },
            ..Default::default()
        })
        .collect();
    list(&mut changes, Change::Namespace, namespaces);
    // A dump holds no maintenance resources (NodeClaims, Machines, NodeMaintenances): none
    // are known, or its node decisions would wait for them for ever.
    changes.extend(Change::no_maintainers());
    changes.push(Change::policy(W::Init));
    changes.push(Change::policy(W::InitDone));
    for change in &changes {
        if let Some(frame) = Frame::of(change, t) {
            ring.write(&frame)?;
        }
    }
    ring.finish()?;
    let (pods, nodes, events, leases) = counts;
    eprintln!(
        "recorded one instant: {pods} pods, {nodes} nodes, {events} events, {leases} leases ({} bytes)",
        ring.bytes()
    );
    Ok(ExitCode::SUCCESS)
}
