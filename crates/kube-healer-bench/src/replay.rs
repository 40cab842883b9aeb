//! The flight recorder and replay at size: an hour of a 1,000-node, 30,000-pod cluster written
//! through the recorder's ring (leases renewed every 10 s, node status every 5 minutes, pods
//! replaced and their events, a zone's nodes down for 8 minutes half way), then replayed by the
//! engine on a simulated clock. Prints the recording's size and the replay's time.

use std::time::Instant;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::watcher::Event as W;
use kube_healer_api::HealingPolicy;
use kube_healer_operator::flight::replay::{Replay, Setup};
use kube_healer_operator::flight::{Bounds, Frame, Ring, read};
use kube_healer_operator::watch::Change;
use serde_json::json;

use crate::measure::Report;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    #[arg(long, default_value_t = 30_000)]
    pods: usize,
    /// Minutes of the cluster's life recorded.
    #[arg(long, default_value_t = 60)]
    minutes: i64,
    /// Pods replaced each second.
    #[arg(long, default_value_t = 5)]
    churn: usize,
}

const T0: i64 = 1_800_000_000;

fn rfc(secs: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn lease(i: usize, at: i64) -> Lease {
    serde_json::from_value(json!({"metadata": {"name": format!("node-{i}"), "namespace": "kube-node-lease",
        "uid": format!("lease-{i}")},
        "spec": {"holderIdentity": format!("node-{i}"), "leaseDurationSeconds": 40,
            "renewTime": k8s_openapi::jiff::Timestamp::from_second(at).unwrap_or_default().strftime("%Y-%m-%dT%H:%M:%S.000000Z").to_string()}}))
    .expect("a lease")
}

fn node_at(i: usize, ready: bool, since: i64, heartbeat: i64) -> Node {
    let mut n = crate::synthetic::node(i, &rfc(since));
    if let Some(c) = n
        .status
        .as_mut()
        .and_then(|s| s.conditions.as_mut())
        .and_then(|c| c.first_mut())
    {
        c.status = if ready { "True" } else { "Unknown" }.into();
        if !ready {
            c.reason = Some("NodeStatusUnknown".into());
            c.message = Some("Kubelet stopped posting node status.".into());
        }
        c.last_heartbeat_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::from_second(heartbeat).unwrap_or_default(),
        ));
    }
    n
}

fn policies() -> Vec<HealingPolicy> {
    let pod = |name: &str, class: &str| {
        json!({"apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
            "metadata": {"name": name, "generation": 1},
            "spec": {"target": {"kind": "Pod"}, "conditions": [{"class": class, "for": "10m"}],
                "actions": [{"action": "Delete"}]}})
    };
    let nodes = json!({"apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": "unreachable", "generation": 1},
        "spec": {"target": {"kind": "Node"}, "conditions": [{"class": "NodeUnreachable", "for": "2m"}],
            "actions": [{"action": "Cordon"}]}});
    [
        pod("image-pulls", "ImagePullFailure"),
        pod("node-lost", "NodeLost"),
        nodes,
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).expect("a policy"))
    .collect()
}

/// The hour, as the watches would deliver it, written through `write`.
fn generate(args: &Args, mut write: impl FnMut(Change, i64)) {
    start_up_lists(args, &mut write);
    // A zone's tenth of the nodes stops posting status half way, for 8 minutes.
    let start = T0;
    let down = |i: usize, s: i64| {
        let half = start + args.minutes * 30;
        i.is_multiple_of(30) && (half..half + 480).contains(&s)
    };
    let mut next_pod = args.pods;
    let mut event = 0usize;
    for s in start + 1..start + args.minutes * 60 {
        for i in 0..args.nodes {
            node_second(i, s, (down(i, s - 1), down(i, s), down(i, s - 40)), &mut write);
        }
        // Pods replaced: the old one deleted, a new one created, its events.
        for k in 0..args.churn {
            let at = s * 1000 + k as i64;
            let old = next_pod - args.pods;
            write(
                Change::Pod(Box::new(W::Delete(crate::synthetic::pod(old, args.nodes)))),
                at,
            );
            let new = crate::synthetic::pod(next_pod, args.nodes);
            write(Change::Pod(Box::new(W::Apply(new))), at);
            for _ in 0..5 {
                let e = crate::flood::event(event, args.pods, args.nodes, s);
                write(Change::Event(Box::new(W::Apply(e))), at);
                event += 1;
            }
            next_pod += 1;
        }
    }
}

/// The start-up lists at T0: the policies, namespaces, nodes, Leases, pods and events.
fn start_up_lists(args: &Args, write: &mut impl FnMut(Change, i64)) {
    let start = T0;
    let at = start * 1000;
    write(Change::policy(W::Init), at);
    for p in policies() {
        write(Change::policy(W::InitApply(p)), at);
    }
    write(Change::policy(W::InitDone), at);
    write(Change::Namespace(Box::new(W::Init)), at);
    write(Change::Namespace(Box::new(W::InitDone)), at);
    Change::no_maintainers().for_each(|c| write(c, at));
    write(Change::Node(Box::new(W::Init)), at);
    for i in 0..args.nodes {
        write(
            Change::Node(Box::new(W::InitApply(node_at(i, true, start - 86_400, start)))),
            at,
        );
    }
    write(Change::Node(Box::new(W::InitDone)), at);
    write(Change::Lease(Box::new(W::Init)), at);
    for i in 0..args.nodes {
        write(Change::Lease(Box::new(W::InitApply(lease(i, start)))), at);
    }
    write(Change::Lease(Box::new(W::InitDone)), at);
    write(Change::Pod(Box::new(W::Init)), at);
    for i in 0..args.pods {
        write(
            Change::Pod(Box::new(W::InitApply(crate::synthetic::pod(i, args.nodes)))),
            at,
        );
    }
    write(Change::Pod(Box::new(W::InitDone)), at);
    write(Change::Event(Box::new(W::Init)), at);
    write(Change::Event(Box::new(W::InitDone)), at);
}

/// Node `i` in second `s`: its Lease renewed every 10 s unless it is down; marked NotReady by
/// the node lifecycle controller 40 s after its last renewal; its status posted every 5 minutes,
/// and when it is back. `(was, is, was_40s_ago)`: whether it was down then.
fn node_second(i: usize, s: i64, (was, is, before): (bool, bool, bool), write: &mut impl FnMut(Change, i64)) {
    if !is && (i as i64 % 10 == s % 10) {
        write(
            Change::Lease(Box::new(W::Apply(lease(i, s)))),
            s * 1000 + (i as i64 % 1000),
        );
    }
    if is && !before {
        write(
            Change::Node(Box::new(W::Apply(node_at(i, false, s, s - 40)))),
            s * 1000,
        );
    } else if !is && (was || i as i64 % 300 == s % 300) {
        write(
            Change::Node(Box::new(W::Apply(node_at(i, true, s - 86_400, s)))),
            s * 1000,
        );
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut report = Report::default();
    let dir = tempfile::tempdir()?;
    record(&args, dir.path(), &mut report)?;
    let t = Instant::now();
    let mut replay = Replay::new(
        Setup {
            max_nodes_out_of_service: Some("10%".into()),
            ..Setup::default()
        },
        None,
    );
    let mut reader = read::open(dir.path())?;
    for frame in reader.by_ref() {
        replay.feed(frame?)?;
    }
    let took = t.elapsed();
    let s = replay.summary();
    report.row(
        "replay of the recording, the engine on a simulated clock",
        format!(
            "{:.1} s ({:.0} frames/s)",
            took.as_secs_f64(),
            s.frames as f64 / took.as_secs_f64()
        ),
        "seconds, not minutes",
        Some(took.as_secs() < 60),
    );
    report.row(
        "what the replay decided",
        format!(
            "{} decisions ({} acted, {} held), {} correlated causes, at most {} nodes out",
            s.decisions,
            s.acted,
            s.held.values().sum::<usize>(),
            s.causes,
            s.nodes_out_peak
        ),
        "",
        None,
    );
    report.print(&format!(
        "flight recorder and replay: {} nodes, {} pods, {} minutes",
        args.nodes, args.pods, args.minutes
    ));
    Ok(())
}

/// The hour recorded into a ring in `dir`, as the flight recorder writes it; its rows.
fn record(args: &Args, dir: &std::path::Path, report: &mut Report) -> anyhow::Result<()> {
    let bounds = Bounds {
        max_bytes: 4 << 30,
        max_age_ms: None,
    };
    let mut ring = Ring::open(dir, bounds, T0 * 1000)?;
    let t = Instant::now();
    let mut frames = 0usize;
    let mut failed = None;
    generate(args, |change, at| {
        if let Some(frame) = Frame::of(&change, at) {
            frames += 1;
            if let Err(e) = ring.write(&frame) {
                failed.get_or_insert(e);
            }
        }
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    let state = ring.state_bytes();
    ring.finish()?;
    let recorded = t.elapsed();
    let bytes = ring.bytes();
    report.row(
        &format!("recording: {} minutes, {frames} frames, written in", args.minutes),
        format!(
            "{:.1} s ({:.0} frames/s)",
            recorded.as_secs_f64(),
            frames as f64 / recorded.as_secs_f64()
        ),
        "",
        None,
    );
    let per_hour = bytes as f64 * 60.0 / args.minutes as f64 / (1 << 20) as f64;
    report.row(
        "recording on disk, per hour (gzip segments)",
        format!("{per_hour:.1} MiB"),
        "",
        None,
    );
    report.row(
        "recorder's copy of the state (the segments' opening)",
        format!("{:.1} MiB", state as f64 / (1 << 20) as f64),
        "",
        None,
    );
    Ok(())
}
