//! Reading figures: a process's memory, the API server's request counters, the audit log, the
//! operator's histograms, and a table to print them.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use kube::Client;

/// Resident and peak resident memory of a process, in MiB (VmRSS, VmHWM).
pub fn memory_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let kib: f64 = status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some(kib / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// apiserver_request_total summed by (verb, resource), from the API server's /metrics.
pub async fn apiserver_requests(client: &Client) -> anyhow::Result<BTreeMap<(String, String), f64>> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = client
        .request_text(request)
        .await
        .context("GET /metrics of the API server")?;
    let mut counts = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
        let Some((labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let label = |name: &str| -> String {
            labels
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or_default()
                .to_string()
        };
        let value: f64 = value.parse().unwrap_or(0.0);
        *counts.entry((label("verb"), label("resource"))).or_insert(0.0) += value;
    }
    Ok(counts)
}

/// `after - before` for the verbs given, by resource, leaving out zeros.
pub fn delta(
    before: &BTreeMap<(String, String), f64>,
    after: &BTreeMap<(String, String), f64>,
    verbs: &[&str],
) -> BTreeMap<(String, String), f64> {
    after
        .iter()
        .filter(|((verb, _), _)| verbs.contains(&verb.as_str()))
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d > 0.0)
        .collect()
}

/// Requests made as `user` (impersonated) from the audit log, by verb and resource, received at
/// or after `since` (RFC 3339, compared as text: both are UTC with the same layout).
pub fn audit_requests(
    log: &Path,
    user: &str,
    since: &str,
) -> anyhow::Result<BTreeMap<(String, String), usize>> {
    let text = std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    let mut counts = BTreeMap::new();
    for event in text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    {
        if event["impersonatedUser"]["username"] != user {
            continue;
        }
        let received = event["requestReceivedTimestamp"].as_str().unwrap_or_default();
        if received < since {
            continue;
        }
        let verb = event["verb"].as_str().unwrap_or("?").to_string();
        let resource = event["objectRef"]["resource"].as_str().unwrap_or("").to_string();
        *counts.entry((verb, resource)).or_insert(0) += 1;
    }
    Ok(counts)
}

/// When the API server received `user`'s (impersonated) requests with this verb on pods in
/// `namespace`, by pod name (Unix milliseconds; the last one per pod).
pub fn audit_times(
    log: &Path,
    user: &str,
    verb: &str,
    namespace: &str,
) -> anyhow::Result<BTreeMap<String, i64>> {
    let text = std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    let mut times = BTreeMap::new();
    for event in text
        .lines()
        .filter(|l| l.contains(namespace))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    {
        let object = &event["objectRef"];
        if event["impersonatedUser"]["username"] != user
            || event["verb"] != verb
            || object["resource"] != "pods"
            || object["namespace"] != namespace
        {
            continue;
        }
        let (Some(name), Some(at)) = (
            object["name"].as_str(),
            event["requestReceivedTimestamp"]
                .as_str()
                .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok()),
        ) else {
            continue;
        };
        times.insert(name.to_string(), at.as_millisecond());
    }
    Ok(times)
}

/// A histogram from OpenMetrics text: (upper bound, cumulative count) per bucket.
pub fn histogram(text: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, rest) = rest.split_once('"')?;
            let count: f64 = rest
                .trim_start_matches('}')
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count))
        })
        .collect()
}

/// The bucket bound at or under which `q` of the observations fall (a histogram gives no more).
pub fn quantile_bound(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    buckets.iter().find(|(_, c)| *c >= q * total).map(|(le, _)| *le)
}

/// Rows of (figure, value, target, verdict), printed as a table.
#[derive(Default)]
pub struct Report {
    rows: Vec<[String; 4]>,
}

impl Report {
    pub fn row(&mut self, figure: &str, value: String, target: &str, met: Option<bool>) {
        let verdict = match met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "",
        };
        println!("  {figure}: {value}  (target {target}) {verdict}");
        self.rows
            .push([figure.into(), value, target.into(), verdict.into()]);
    }

    pub fn print(&self, title: &str) {
        let widths: Vec<usize> = (0..4)
            .map(|i| self.rows.iter().map(|r| r[i].len()).max().unwrap_or(0).max(6))
            .collect();
        println!("\n{title}\n");
        let line = |cells: [&str; 4]| {
            let cells: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            println!("| {} |", cells.join(" | "));
        };
        line(["figure", "value", "target", "verdict"]);
        let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        println!("|-{}-|", dashes.join("-|-"));
        for r in &self.rows {
            line([&r[0], &r[1], &r[2], &r[3]]);
        }
    }
}
