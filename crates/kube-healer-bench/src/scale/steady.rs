//! Start-up and steady state: how long the operator takes to sync its stores, its memory, and
//! that in steady state it reads nothing from the API server (watches only), from the audit log,
//! next to every client's reads from the API server's own metrics.

use std::time::Duration;

use anyhow::Context;

use super::Bench;
use crate::measure::{self, Report};

/// The start-up row (stores synced in `sync` seconds), then the steady-state rows.
pub(super) async fn measure(bench: &Bench<'_>, sync: f64, report: &mut Report) -> anyhow::Result<()> {
    let (args, cluster, client) = (bench.args, bench.cluster, &bench.client);
    let user = bench.user.as_str();
    report.row(
        &format!(
            "start-up: stores synced ({} pods, {} nodes)",
            args.pods, args.nodes
        ),
        format!("{sync:.2} s"),
        "<= 5 s at 30,000 pods",
        Some(sync <= 5.0),
    );
    let (rss, _) = measure::memory_mib(bench.operator_pid).context("operator memory")?;
    println!("  operator RSS after sync: {rss:.1} MiB");

    // Steady state: no LIST and no GET from the operator (watches only).
    let before = measure::apiserver_requests(client).await?;
    let window_start = now_rfc3339();
    tokio::time::sleep(Duration::from_secs(args.steady_secs)).await;
    let after = measure::apiserver_requests(client).await?;
    let ours = measure::audit_requests(&cluster.audit_log(), user, &window_start)?;
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
    let (rss, _) = measure::memory_mib(bench.operator_pid).context("operator memory")?;
    report.row(
        &format!("operator RSS, {} nodes and {} pods", args.nodes, args.pods),
        format!("{rss:.1} MiB"),
        "<= 64 MiB",
        Some(rss <= 64.0),
    );
    Ok(())
}

fn now_rfc3339() -> String {
    // Audit timestamps are RFC 3339 with microseconds in UTC.
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}
