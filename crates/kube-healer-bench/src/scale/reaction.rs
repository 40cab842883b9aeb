//! Reaction under load: Evicted pods one by one on a busy cluster, each timed from the moment its
//! policy's `for` elapsed to the DELETE the API server received (its audit log), and the
//! operator's own histogram of the same.

use std::time::{Duration, Instant};

use anyhow::ensure;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use serde_json::json;

use super::load::create_policy;
use super::operator::http_get;
use super::wait::wait_pods_gone;
use super::{Bench, REACT_CHURN_NS, REACT_NS};
use crate::measure::{self, Report};

/// Where a reaction run happens, and what its rows say.
struct Run {
    namespace: &'static str,
    policy: &'static str,
    node: &'static str,
    /// Appended to the rows' names ("" on a quiet cluster).
    during: &'static str,
}

pub(super) async fn measure(bench: &Bench<'_>, report: &mut Report) -> anyhow::Result<()> {
    let run = Run {
        namespace: REACT_NS,
        policy: "bench-react",
        node: "bench-static",
        during: "",
    };
    measure_in(bench, report, &run).await
}

/// The same reaction run while every running pod is replaced (a rollout restart of the whole
/// cluster: each pod deleted and a new one created, `concurrency` at a time), so that the
/// operator's watches carry the churn while the failures come due.
pub(super) async fn during_churn(bench: &Bench<'_>, report: &mut Report) -> anyhow::Result<()> {
    let replaced = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let churn = tokio::spawn(super::load::restart_all(
        bench.client.clone(),
        bench.args.pods,
        bench.args.nodes,
        bench.args.concurrency,
        replaced.clone(),
    ));
    // Let the churn get going first.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = replaced.load(std::sync::atomic::Ordering::Relaxed);
    let run = Run {
        namespace: REACT_CHURN_NS,
        policy: "bench-react-churn",
        node: "bench-static-churn",
        during: " during a rollout restart of every pod",
    };
    let result = measure_in(bench, report, &run).await;
    let during = replaced.load(std::sync::atomic::Ordering::Relaxed) - before;
    churn.abort();
    report.row(
        "pods replaced by the rollout restart while the failures came due",
        format!("{during}"),
        "",
        None,
    );
    result
}

async fn measure_in(bench: &Bench<'_>, report: &mut Report, run: &Run) -> anyhow::Result<()> {
    let (args, cluster, client) = (bench.args, bench.cluster, &bench.client);
    let (user, http) = (bench.user.as_str(), bench.http.as_str());
    // Reaction under load: Evicted pods appear one by one, 20 a second; the policy deletes each
    // once it has been Evicted for 2 s. Their status is written here (as a kubelet would, on a
    // node kwok does not manage), so the failure time is known exactly: kwok, busy with 1,000
    // nodes, applies its stages seconds late and in batches. Reaction is measured per pod from
    // the API server's audit log: DELETE received minus the moment the 2 s had elapsed.
    create_policy(client, run.policy, run.namespace, "2s").await?;
    let static_node = run.node;
    let node: Node = serde_json::from_value(json!({"metadata": {"name": static_node}}))?;
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await?;
    let t = Instant::now();
    let due = evict_one_by_one(client, run, args.reaction_pods).await?;
    wait_pods_gone(client, run.namespace, Duration::from_secs(300)).await?;
    println!(
        "{} reaction pods deleted {:.1}s after the first",
        args.reaction_pods,
        t.elapsed().as_secs_f64()
    );
    let deletes = measure::audit_times(&cluster.audit_log(), user, "delete", run.namespace)?;
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
    let p50 = latency_rows(report, &latencies, run.during);
    if run.during.is_empty() {
        recheck_cost(bench, report, &deletes, p50)?;
    }
    let (_, metrics) = http_get(http, "/metrics").await?;
    let buckets = measure::histogram(&metrics, "kube_healer_due_to_action_seconds");
    println!(
        "  the operator's own histogram (due -> call, bucket bounds): p50 <= {:?} s, p99 <= {:?} s",
        measure::quantile_bound(&buckets, 0.5),
        measure::quantile_bound(&buckets, 0.99)
    );
    Ok(())
}

/// Pods that go Evicted one by one, 20 a second, on a node kwok does not manage: their status
/// written here, as a kubelet would. When each is due (Unix ms), by name.
async fn evict_one_by_one(
    client: &kube::Client,
    run: &Run,
    count: usize,
) -> anyhow::Result<std::collections::BTreeMap<String, i64>> {
    let react_pods: Api<Pod> = Api::namespaced(client.clone(), run.namespace);
    let mut due = std::collections::BTreeMap::new();
    for i in 0..count {
        let name = format!("r-{i:05}");
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"nodeName": run.node, "containers": [{"name": "app", "image": "registry.example/app:1"}]},
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
    Ok(due)
}

/// The reaction's p50 and p99 rows (the p50 target is the quiet cluster's; during the churn only
/// the p99 has one). The p50, in seconds.
fn latency_rows(report: &mut Report, latencies: &[f64], during: &str) -> f64 {
    let quantile = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    let (p50, p99) = (quantile(0.5), quantile(0.99));
    let quiet = during.is_empty();
    report.row(
        &format!("reaction: due -> DELETE received by the API server, p50 (audit log){during}"),
        format!("{:.0} ms", p50 * 1000.0),
        if quiet { "<= 100 ms" } else { "" },
        quiet.then_some(p50 <= 0.1),
    );
    report.row(
        &format!("reaction: due -> DELETE received by the API server, p99 (audit log){during}"),
        format!(
            "{:.0} ms (max {:.0} ms)",
            p99 * 1000.0,
            latencies[latencies.len() - 1] * 1000.0
        ),
        "<= 1 s",
        Some(p99 <= 1.0),
    );
    p50
}

/// What the recheck right before each call costs. A dead pod's delete carries the version its
/// decision saw as its precondition, so the API server checks it and no read comes first: the
/// audit log then shows no GET of those pods, and the recheck adds no request and no time of
/// its own (its share is 0). Any pod read before its DELETE (the precondition refused: the pod
/// changed since) is timed from its GET to its DELETE, against the reaction's p50.
fn recheck_cost(
    bench: &Bench<'_>,
    report: &mut Report,
    deletes: &std::collections::BTreeMap<String, i64>,
    reaction_p50: f64,
) -> anyhow::Result<()> {
    let gets = measure::audit_times(&bench.cluster.audit_log(), &bench.user, "get", REACT_NS)?;
    let mut costs: Vec<f64> = deletes
        .iter()
        .filter_map(|(name, delete)| gets.get(name).map(|get| (delete - get) as f64 / 1000.0))
        .collect();
    report.row(
        "recheck: pods read (GET) before their DELETE; the others' DELETE carried the version decided on",
        format!("{} of {}", costs.len(), deletes.len()),
        "",
        None,
    );
    if costs.is_empty() {
        report.row(
            "recheck's share of reaction p50 (no read: the API server checks the version)",
            "0%".to_string(),
            "<= 10%",
            Some(true),
        );
        return Ok(());
    }
    costs.sort_by(f64::total_cmp);
    let quantile = |q: f64| costs[((costs.len() - 1) as f64 * q).round() as usize];
    let (p50, p99) = (quantile(0.5), quantile(0.99));
    // Spread over every delete: the pods not read cost the recheck nothing.
    let mean_extra = costs.iter().sum::<f64>() / deletes.len().max(1) as f64;
    let share = if reaction_p50 > 0.0 {
        mean_extra / reaction_p50
    } else {
        0.0
    };
    report.row(
        "recheck of the pods read: GET -> DELETE received, p50 / p99 (audit log)",
        format!("{:.0} ms / {:.0} ms", p50 * 1000.0, p99 * 1000.0),
        "",
        None,
    );
    report.row(
        "recheck's share of reaction p50 (its mean time per delete)",
        format!("{:.0}%", share * 100.0),
        "<= 10%",
        Some(share <= 0.10),
    );
    Ok(())
}
