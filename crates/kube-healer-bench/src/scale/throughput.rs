//! Throughput: a batch of Evicted pods cleaned by one policy with a high rate, timed until all
//! are gone; then descheduler's RemoveFailedPods on a second batch of the same size, side by side.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use kube_healer_testenv::process::Reaper;

use super::load::{create_evicted, create_policy};
use super::wait::{count_pods, wait_failed, wait_pods_gone};
use super::{BARE_NS, Bench, DESCHEDULER_NS, EVICTED_NS};
use crate::measure::{self, Report};

/// kube-healer's clean-up: returns its time (seconds) and the operator's peak RSS (MiB).
pub(super) async fn kube_healer(bench: &Bench<'_>, report: &mut Report) -> anyhow::Result<(f64, f64)> {
    let (args, client) = (bench.args, &bench.client);
    // Throughput: N Evicted pods, then one policy with a high rate; time until all are gone.
    let t = Instant::now();
    create_evicted(client, EVICTED_NS, args.evicted, args.nodes, args.concurrency).await?;
    wait_failed(client, EVICTED_NS, args.evicted, Duration::from_secs(600)).await?;
    println!(
        "{} Evicted pods ready in {:.1}s",
        args.evicted,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    create_policy(client, "bench-evicted", EVICTED_NS, "1s").await?;
    wait_pods_gone(client, EVICTED_NS, Duration::from_secs(900)).await?;
    let ours_secs = t.elapsed().as_secs_f64();
    report.row(
        &format!("throughput: {} Evicted pods deleted by one policy", args.evicted),
        format!("{ours_secs:.1} s ({:.0} pods/s)", args.evicted as f64 / ours_secs),
        "<= 60 s for 10,000",
        Some(ours_secs <= 60.0 * args.evicted as f64 / 10_000.0),
    );
    let (_, operator_peak) = measure::memory_mib(bench.operator_pid).context("operator memory")?;
    report.row(
        "operator peak RSS (VmHWM), whole run",
        format!("{operator_peak:.1} MiB"),
        "",
        None,
    );
    Ok((ours_secs, operator_peak))
}

/// The policy's maxConcurrent (see `create_policy`): the bare client deletes as many at once.
const CONCURRENCY: usize = 100;

/// The physical limit on the same cluster: a bare client deleting a batch of the same size, as
/// many at once as the policy may, with no recheck and no records. Returns its time (seconds).
/// Returns kube-healer's rate as a percentage of the bare client's.
pub(super) async fn bare_client(
    bench: &Bench<'_>,
    report: &mut Report,
    ours_secs: f64,
) -> anyhow::Result<f64> {
    let n = bench.args.evicted;
    let (bare_secs, failed) = bare_run(bench).await?;
    report.row(
        &format!("bare client: the same {n} deletes, {CONCURRENCY} at once, no records ({failed} failed)"),
        format!("{bare_secs:.1} s ({:.0} pods/s)", n as f64 / bare_secs),
        "the physical limit",
        None,
    );
    let ratio = 100.0 * bare_secs / ours_secs;
    report.row(
        "clean-up vs bare client (kube-healer's rate as a share of the bare client's)",
        format!("{ratio:.0}%"),
        ">= 85%",
        Some(ratio >= 85.0),
    );
    Ok(ratio)
}

/// The bare client's deletes of `evicted` fresh Evicted pods: seconds until all are gone, and
/// how many calls failed.
async fn bare_run(bench: &Bench<'_>) -> anyhow::Result<(f64, usize)> {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, DeleteParams, ListParams, Preconditions};
    let (args, client) = (bench.args, &bench.client);
    create_evicted(client, BARE_NS, args.evicted, args.nodes, args.concurrency).await?;
    wait_failed(client, BARE_NS, args.evicted, Duration::from_secs(600)).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), BARE_NS);
    // The names and UIDs, as a controller's cache would hold them (not timed).
    let targets: Vec<(String, String)> = pods
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|p| Some((p.metadata.name?, p.metadata.uid?)))
        .collect();
    let t = Instant::now();
    let deletes = targets.into_iter().map(|(name, uid)| {
        let pods = pods.clone();
        async move {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..Default::default()
            };
            pods.delete(&name, &params).await.map(|_| ())
        }
    });
    let failed = futures::stream::iter(deletes)
        .buffer_unordered(CONCURRENCY)
        .filter(|r| std::future::ready(r.is_err()))
        .count()
        .await;
    wait_pods_gone(client, BARE_NS, Duration::from_secs(900)).await?;
    Ok((t.elapsed().as_secs_f64(), failed))
}

/// descheduler's clean-up of the same load, next to kube-healer's (`ours`: its time and peak RSS).
pub(super) async fn descheduler(
    bench: &Bench<'_>,
    binary: &Path,
    reaper: &mut Reaper,
    ours: (f64, f64),
    report: &mut Report,
) -> anyhow::Result<f64> {
    let (args, cluster, client) = (bench.args, bench.cluster, &bench.client);
    let (ours_secs, operator_peak) = ours;
    create_evicted(client, DESCHEDULER_NS, args.evicted, args.nodes, args.concurrency).await?;
    wait_failed(client, DESCHEDULER_NS, args.evicted, Duration::from_secs(600)).await?;
    let run = crate::descheduler::run_once(cluster, binary, DESCHEDULER_NS, reaper).await?;
    let left = count_pods(client, DESCHEDULER_NS).await?;
    report.row(
        &format!(
            "descheduler RemoveFailedPods: {} Evicted pods ({left} left)",
            args.evicted
        ),
        format!("{:.1} s, peak RSS {:.1} MiB", run.seconds, run.peak_mib),
        "side by side",
        None,
    );
    println!("clean-up vs descheduler: {:.2}x faster", run.seconds / ours_secs);
    report.row(
        "ratio descheduler / kube-healer: time to clean, peak RSS",
        format!(
            "{:.2}x, {:.2}x",
            run.seconds / ours_secs,
            run.peak_mib / operator_peak
        ),
        ">= 3x (time)",
        Some(run.seconds / ours_secs >= 3.0),
    );
    Ok(run.seconds / ours_secs)
}
