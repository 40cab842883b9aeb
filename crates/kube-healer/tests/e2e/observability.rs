//! The chart's alerts and dashboard name only metrics a running operator exports: the operator's
//! /metrics is read after it healed one Evicted pod, and every `kube_healer_*` series a rule or a
//! panel queries must be one of its families (a counter's `_total`, a histogram's `_bucket`,
//! `_sum` and `_count`). A renamed metric fails here, not on a dark dashboard.

use std::collections::BTreeSet;

use anyhow::ensure;
use kube_healer_testenv::harness::{Ctx, E2eTest, test};

use crate::support::{Operator, create_policy, evicted_pod, limits, records, selector};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![test(
        "the_alerts_and_the_dashboard_name_only_exported_metrics",
        only_exported_metrics,
    )]
}

/// The series names a family of each `# TYPE` line exports.
fn exported(metrics: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in metrics.lines() {
        let mut words = line.split_whitespace();
        let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

/// Every `kube_healer_*` name in a text.
fn named(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("kube_healer_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

async fn only_exported_metrics(ctx: Ctx) -> anyhow::Result<()> {
    let op = Operator::start(&ctx.cluster, "metrics", &["--policy-selector", &selector(&ctx)]).await?;
    // One action, so that the decisions' families have series.
    let node = ctx.name("n");
    kube_healer_testenv::nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("obs").await?;
    let policy = ctx.name("leftovers");
    create_policy(&ctx, &policy, serde_json::json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
        "conditions": [{"class": "Evicted", "for": "1s"}], "actions": [{"action": "Delete"}], "safety": limits()}))
    .await?;
    evicted_pod(&ctx, &ns, "gone", &node).await?;
    records(&ctx, &policy, 1).await?;
    // The action is counted right after its record's outcome is written: read /metrics until it
    // shows (seen once in a full local run, read in between the two).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let body = loop {
        let (status, body) = op.get("/metrics").await?;
        ensure!(status == 200, "/metrics answered {status}");
        if body.contains("kube_healer_actions_total") || std::time::Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let exported = exported(&body);
    let root = kube_healer_testenv::binaries::repo_root().join("charts/kube-healer/files");
    for file in ["alerts/kube-healer.rules.yaml", "dashboards/kube-healer.json"] {
        let text = std::fs::read_to_string(root.join(file))?;
        let queried = named(&text);
        ensure!(queried.len() >= 5, "{file} names only {queried:?}");
        let missing: Vec<_> = queried.difference(&exported).collect();
        ensure!(
            missing.is_empty(),
            "{file} queries metrics the operator does not export: {missing:?}\nexported: {exported:?}"
        );
        println!("    {file}: {} metrics, all exported", queried.len());
    }
    Ok(())
}
