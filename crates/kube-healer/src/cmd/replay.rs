//! `kube-healer replay -f RECORDING [--policy p.yaml ...]`: what policies would have done during
//! a recorded stretch of a cluster's life (an incident, say). The operator's own engine runs on
//! the recording with a simulated clock; every decision, hold and correlated cause is printed in
//! time order, then a summary. It never talks to a cluster.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use kube_healer_api::HealingPolicy;
use kube_healer_core::policy::CompiledPolicy;
use kube_healer_core::view::Secs;
use kube_healer_operator::flight::read;
use kube_healer_operator::flight::replay::{Cause, Decided, Replay, Setup, Summary};
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// The recording: a directory written by `kube-healer record` or `run --flight-recorder`,
    /// or one of its segment files.
    #[arg(short = 'f', long = "filename")]
    recording: PathBuf,
    /// Policies to replay instead of the recorded ones (YAML or JSON, several documents per
    /// file allowed; the flag repeats).
    #[arg(long = "policy", value_name = "FILE")]
    policies: Vec<PathBuf>,
    /// Report from this time on (RFC 3339); what comes before still builds the state.
    #[arg(long)]
    from: Option<String>,
    /// Stop at this time (RFC 3339); past the recording's end, what comes due after it is
    /// decided too. Default: the recording's last moment.
    #[arg(long)]
    to: Option<String>,
    /// How fast: `max` (as fast as it goes), or a factor of real time (`60`: an hour a minute).
    #[arg(long, default_value = "max", value_parser = parse_speed)]
    speed: Speed,
    /// json: one object per line (decisions, causes, then the summary); table: for people.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    output: Format,
    /// As the operator's flag of the same name.
    #[arg(long, default_value = "10%")]
    max_nodes_out_of_service: String,
    /// As the operator's flag of the same name.
    #[arg(long)]
    node_pool_label: Option<String>,
    /// As the operator's flag of the same name.
    #[arg(long, value_delimiter = ',', default_value = "kube-system")]
    protected_namespaces: Vec<String>,
    /// As the operator's flag of the same name.
    #[arg(long, default_value = "60s")]
    clear_debounce: kube_healer_api::Duration,
    #[command(flatten)]
    pods_alike: super::PodsAlikeArgs,
    #[command(flatten)]
    maintenance: super::MaintenanceArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Json,
    Table,
}

#[derive(Clone, Copy, Debug)]
enum Speed {
    Max,
    Times(f64),
}

/// A speed that is neither `max` nor a positive factor.
#[derive(Debug, thiserror::Error)]
#[error("{0:?}: `max` or a positive factor of real time, such as 60")]
struct BadSpeed(String);

fn parse_speed(s: &str) -> Result<Speed, BadSpeed> {
    if s == "max" {
        return Ok(Speed::Max);
    }
    match s.parse::<f64>() {
        Ok(f) if f > 0.0 && f.is_finite() => Ok(Speed::Times(f)),
        _ => Err(BadSpeed(s.to_string())),
    }
}

fn time(flag: &str, t: &Option<String>) -> anyhow::Result<Option<Secs>> {
    t.as_ref()
        .map(|t| {
            t.parse::<k8s_openapi::jiff::Timestamp>()
                .map(|t| t.as_second())
                .with_context(|| {
                    format!("--{flag} {t:?} is not an RFC 3339 time such as 2026-11-22T10:00:00Z")
                })
        })
        .transpose()
}

/// The policies in a file: each document a HealingPolicy the core can use.
pub fn read_policies(path: &Path) -> anyhow::Result<Vec<HealingPolicy>> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let policy = HealingPolicy::deserialize(doc).map_err(|e| {
            let line = e.location().map_or(0, |l| l.line());
            anyhow::anyhow!(
                "{}: document {}, line {line}: not a HealingPolicy: {e}",
                path.display(),
                i + 1
            )
        })?;
        CompiledPolicy::compile(&policy).map_err(|e| {
            anyhow::anyhow!(
                "{}: document {}: the policy cannot be used: {e}",
                path.display(),
                i + 1
            )
        })?;
        out.push(policy);
    }
    Ok(out)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (from, to) = (time("from", &args.from)?, time("to", &args.to)?);
    let policies = if args.policies.is_empty() {
        None
    } else {
        let mut all = Vec::new();
        for p in &args.policies {
            all.extend(read_policies(p)?);
        }
        Some(all)
    };
    let setup = Setup {
        policies,
        protected_namespaces: Some(args.protected_namespaces.clone()),
        max_nodes_out_of_service: Some(args.max_nodes_out_of_service.clone()),
        node_pool_label: args.node_pool_label.clone(),
        clear_debounce_secs: args.clear_debounce.as_std().as_secs(),
        pods_alike: args.pods_alike.thresholds(),
        planned: args.maintenance.signals(),
        time_zone: args.maintenance.time_zone.clone(),
        own_namespace: Some(args.maintenance.namespace.clone()),
    };
    let mut replay = Replay::new(setup, from);
    let mut reader = read::open(&args.recording)?;
    let started = Instant::now();
    let mut first: Option<i64> = None;
    for frame in reader.by_ref() {
        let frame = frame?;
        if to.is_some_and(|to| frame.t.div_euclid(1000) > to) {
            break;
        }
        if let Speed::Times(factor) = args.speed {
            let from_start = ((frame.t - *first.get_or_insert(frame.t)) as f64 / 1000.0 / factor).max(0.0);
            let wait = Duration::from_secs_f64(from_start).saturating_sub(started.elapsed());
            std::thread::sleep(wait);
        }
        let at = frame.t;
        replay
            .feed(frame)
            .with_context(|| format!("{}: the frame at {at} ms", args.recording.display()))?;
    }
    if let Some(to) = to {
        replay.run_until(to);
    }
    for note in &reader.notes {
        eprintln!("note: {note}");
    }
    let elapsed = started.elapsed();
    let mut out = std::io::stdout().lock();
    match args.output {
        Format::Table => table(&mut out, &replay)?,
        Format::Json => json_lines(&mut out, &replay)?,
    }
    eprintln!(
        "replayed {} frames in {:.2} s",
        replay.summary().frames,
        elapsed.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn stamp(at: Secs) -> String {
    k8s_openapi::jiff::Timestamp::from_second(at).map_or_else(|_| at.to_string(), |t| t.to_string())
}

/// Decisions and causes, merged in time order (a cause first at a tie: it explains the holds).
enum Line<'a> {
    Cause(&'a Cause),
    Decided(&'a Decided),
}

fn lines(replay: &Replay) -> Vec<(Secs, Line<'_>)> {
    let mut lines: Vec<(Secs, Line<'_>)> = replay.causes().iter().map(|c| (c.at, Line::Cause(c))).collect();
    lines.extend(replay.decisions().iter().map(|d| (d.at, Line::Decided(d))));
    lines.sort_by_key(|(at, line)| (*at, matches!(line, Line::Decided(_))));
    lines
}

fn would(d: &Decided) -> String {
    match d.verdict {
        "hold" => format!(
            "hold {} ({}): {}",
            d.action,
            d.reason.unwrap_or(""),
            d.message.as_deref().unwrap_or("")
        ),
        "dry-run" => format!("{} (dry run), step {}", d.action, d.step),
        _ => format!("{}, step {}", d.action, d.step),
    }
}

fn table(out: &mut impl Write, replay: &Replay) -> anyhow::Result<()> {
    let rows: Vec<[String; 5]> = lines(replay)
        .into_iter()
        .map(|(at, line)| match line {
            Line::Cause(c) => [
                stamp(at),
                "-".into(),
                format!("{} members", c.members),
                "correlated cause".into(),
                c.message.clone(),
            ],
            Line::Decided(d) => [
                stamp(at),
                d.policy.clone(),
                format!("{} {}", d.kind.as_str().to_ascii_lowercase(), d.target()),
                d.class.clone(),
                would(d),
            ],
        })
        .collect();
    if rows.is_empty() {
        writeln!(out, "no decisions")?;
    } else {
        crate::table::write(out, ["TIME", "POLICY", "TARGET", "CLASS", "WOULD"], &rows)?;
    }
    let s = replay.summary();
    let span = replay.now().map(stamp).unwrap_or_default();
    writeln!(out)?;
    writeln!(
        out,
        "summary (to {span}): {} decisions: {} acted, {} dry runs, {} held; {} pods removed; at most {} nodes out of service at once; {} correlated causes",
        s.decisions,
        s.acted,
        s.dry_runs,
        s.held.values().sum::<usize>(),
        s.pods_removed,
        s.nodes_out_peak,
        s.causes
    )?;
    for (reason, n) in &s.held {
        writeln!(out, "  held by {reason}: {n}")?;
    }
    Ok(())
}

fn json_lines(out: &mut impl Write, replay: &Replay) -> anyhow::Result<()> {
    for (_, line) in lines(replay) {
        let value = match line {
            Line::Cause(c) => json!({"type": "cause", "time": stamp(c.at), "cause": c}),
            Line::Decided(d) => json!({"type": "decision", "time": stamp(d.at), "decision": d}),
        };
        writeln!(out, "{value}")?;
    }
    let s: Summary = replay.summary();
    writeln!(out, "{}", json!({"type": "summary", "summary": s}))?;
    Ok(())
}
