//! `kube-healer classify`: offline diagnosis of Pods, Nodes, Events and Leases read from a file.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use kube_healer_core::convert::{ConvertError, Interner, event_view, lease_view, node_view, pod_view};
use kube_healer_core::trust::EventTrust;
use kube_healer_core::view::Secs;
use kube_healer_core::{Correlated, Finding, Snapshot, classify_snapshot};

use crate::input::read_objects;

#[derive(clap::Args)]
pub struct Args {
    /// The input: a kubectl List, multi-document YAML or JSON; `-` reads standard input.
    #[arg(short = 'f', long = "filename", default_value = "-")]
    file: PathBuf,
    /// The time to judge at (RFC 3339), for example the moment the input was captured.
    /// Default: now.
    #[arg(long)]
    now: Option<String>,
    /// json: one object per finding per line; table: for people.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    output: Format,
    /// The node label that names a node's pool (karpenter.sh/nodepool, ...): nodes failing
    /// together in a pool are one cause, as in a zone.
    #[arg(long, env = "KUBE_HEALER_NODE_POOL_LABEL")]
    node_pool_label: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Json,
    Table,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let now: Secs = match &args.now {
        Some(t) => t
            .parse::<k8s_openapi::jiff::Timestamp>()
            .with_context(|| format!("--now {t:?} is not an RFC 3339 time such as 2026-11-22T10:00:00Z"))?
            .as_second(),
        None => k8s_openapi::jiff::Timestamp::now().as_second(),
    };
    let (text, source) = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        (text, "stdin".to_string())
    } else {
        let text = std::fs::read_to_string(&args.file)
            .with_context(|| format!("reading {}", args.file.display()))?;
        (text, args.file.display().to_string())
    };
    let objects = read_objects(&text, &source)?;
    for skipped in &objects.skipped {
        eprintln!("warning: skipping {skipped}: classify reads Pods, Nodes, Events and Leases");
    }

    let mut interner = Interner::default();
    let mut problems = Vec::new();
    let pods = views(&objects.pods, &mut interner, pod_view, &source, &mut problems);
    let nodes = views(&objects.nodes, &mut interner, node_view, &source, &mut problems);
    // Evidence about nodes only from the node's own reporters, as the operator takes it.
    let trust = EventTrust::default();
    let trusted: Vec<_> = objects
        .events
        .iter()
        .filter(|e| trust.judge(e).is_ok())
        .cloned()
        .collect();
    if trusted.len() < objects.events.len() {
        eprintln!(
            "note: {} events about nodes ignored: not written in namespace default by the kubelet, the node lifecycle controller or node-problem-detector",
            objects.events.len() - trusted.len()
        );
    }
    let events = views(&trusted, &mut interner, event_view, &source, &mut problems);
    let leases = views(&objects.leases, &mut interner, lease_view, &source, &mut problems);
    if !problems.is_empty() {
        anyhow::bail!("unreadable objects:\n  {}", problems.join("\n  "));
    }
    let mut snapshot = Snapshot::new(pods, nodes, events, leases);
    snapshot.pool_label = args.node_pool_label.clone();
    snapshot.sick_nodes = kube_healer_core::classify::sick_nodes_of(&snapshot, now);
    let report = classify_snapshot(&snapshot, now);
    let due: Vec<&Finding> = report.due(now).collect();

    let mut out = std::io::stdout().lock();
    match args.output {
        Format::Json => {
            for f in &due {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string(&finding_json(f, &report.correlated, now))?
                )?;
            }
        }
        Format::Table => print_table(&mut out, &due, &report.correlated, now)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Converts every object, collecting the problems instead of stopping at the first.
fn views<T, V>(
    objects: &[T],
    interner: &mut Interner,
    convert: fn(&T, &mut Interner) -> Result<V, ConvertError>,
    source: &str,
    problems: &mut Vec<String>,
) -> Vec<V> {
    let mut out = Vec::with_capacity(objects.len());
    for object in objects {
        match convert(object, interner) {
            Ok(v) => out.push(v),
            Err(e) => problems.push(format!("{source}: {e}")),
        }
    }
    out
}

fn finding_json(f: &Finding, correlated: &[Correlated], now: Secs) -> serde_json::Value {
    let mut v = serde_json::json!({
        "class": f.class,
        "kind": f.subject.kind,
        "name": f.subject.name,
        "uid": f.subject.uid,
        "since": kube_healer_core::finding::time(f.since),
        "ageSeconds": now - f.since,
        "message": f.evidence.summary,
        "evidence": f.evidence,
    });
    if let Some(ns) = &f.subject.namespace {
        v["namespace"] = ns.as_str().into();
    }
    if let Some(node) = &f.subject.node {
        v["node"] = node.as_str().into();
    }
    if let Some(c) = correlated.iter().find(|c| c.covers(f)) {
        v["correlated"] = c.message.as_str().into();
    }
    v
}

fn print_table(
    out: &mut impl Write,
    due: &[&Finding],
    correlated: &[Correlated],
    now: Secs,
) -> std::io::Result<()> {
    if due.is_empty() {
        writeln!(out, "No findings past their threshold.")?;
    } else {
        let rows: Vec<[String; 5]> = due
            .iter()
            .map(|f| {
                [
                    f.class.to_string(),
                    f.subject.to_string(),
                    f.subject.node.clone().unwrap_or_default(),
                    kube_healer_core::classify::pod::human(now - f.since),
                    f.evidence.summary.clone(),
                ]
            })
            .collect();
        crate::table::write(out, ["CLASS", "TARGET", "NODE", "FOR", "EVIDENCE"], &rows)?;
    }
    for c in correlated {
        writeln!(out, "\nCORRELATED: {}", c.message)?;
    }
    Ok(())
}
