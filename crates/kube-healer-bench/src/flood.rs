//! An event flood fed to the engine in-process, after the synthetic start-up lists: a million
//! events over the cluster's pods and nodes, as a rollout, crash loops and node trouble write
//! them. Most are Normal (Scheduled, Pulling, Pulled, Created, Started); each is its own Event
//! object. Measured: how fast the engine absorbs them (conversion, the index, reclassifying the
//! object each is about) and what memory the process holds after.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::runtime::watcher::Event as W;
use kube_healer_operator::engine::Engine;
use kube_healer_operator::watch::Change;

/// Events generated and then applied per batch (generation is not timed).
const BATCH: usize = 10_000;

const POD_NORMAL: [(&str, &str); 5] = [
    (
        "Scheduled",
        "Successfully assigned team/web-7d9f8c6b5-00000 to node-17",
    ),
    ("Pulling", "Pulling image \"registry.example/shop/web:1.4.2\""),
    (
        "Pulled",
        "Successfully pulled image \"registry.example/shop/web:1.4.2\" in 1.2s (1.2s including waiting). Image size: 52 MB bytes.",
    ),
    ("Created", "Created container: web"),
    ("Started", "Started container web"),
];
const POD_WARNING: [(&str, &str); 3] = [
    (
        "BackOff",
        "Back-off restarting failed container web in pod web-7d9f8c6b5-00000_team(0a1b2c3d)",
    ),
    (
        "Unhealthy",
        "Readiness probe failed: Get \"http://10.0.0.1:8080/healthz\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
    ),
    (
        "FailedMount",
        "MountVolume.SetUp failed for volume \"config\" : configmap \"web-config\" not found",
    ),
];
const NODE: [(&str, &str, &str); 4] = [
    (
        "Normal",
        "NodeNotReady",
        "Node node-17 status is now: NodeNotReady",
    ),
    ("Normal", "Starting", "Starting kubelet."),
    (
        "Warning",
        "SystemOOM",
        "System OOM encountered, victim process: java, pid: 4242",
    ),
    (
        "Warning",
        "Rebooted",
        "Node node-17 has been rebooted, boot id: 9f1c2b3a-0d4e-4f5a-8b6c-7d8e9f0a1b2c",
    ),
];

/// What the flood measured.
pub struct Flooded {
    pub events: usize,
    pub applying: Duration,
    pub kept: usize,
    pub index_bytes: usize,
    pub budget: usize,
    pub evicted: u64,
}

/// Applies `events` events over `pods` pods and `nodes` nodes (named as the synthetic lists name
/// them), spread over the hour before `now`.
pub fn flood(engine: &mut Engine, events: usize, pods: usize, nodes: usize, now: i64) -> Flooded {
    let mut applying = Duration::ZERO;
    let mut batch = Vec::with_capacity(BATCH);
    for start in (0..events).step_by(BATCH) {
        batch.clear();
        batch.extend((start..(start + BATCH).min(events)).map(|i| {
            let at = now - 3600 + (i as i64 * 3600) / events as i64;
            event(i, pods, nodes, at)
        }));
        let t = Instant::now();
        for e in batch.drain(..) {
            engine.apply(Change::Event(Box::new(W::Apply(e))));
        }
        applying += t.elapsed();
    }
    let (index_bytes, budget, evicted) = engine.stores().event_memory();
    Flooded {
        events,
        applying,
        kept: engine.stores().event_count(),
        index_bytes,
        budget,
        evicted,
    }
}

/// Event `i`: nine in ten about a pod (seven of those Normal), one in ten about a node.
pub(crate) fn event(i: usize, pods: usize, nodes: usize, at: i64) -> Event {
    let time = Time(k8s_openapi::jiff::Timestamp::from_second(at).unwrap_or_default());
    let (kind, namespace, name, type_, reason, message) = if i % 10 == 9 {
        let (type_, reason, message) = NODE[(i / 10) % NODE.len()];
        let node = format!("node-{}", (i * 31) % nodes);
        ("Node", "default".to_string(), node, type_, reason, message)
    } else {
        let p = (i * 7919) % pods;
        let name = format!("web-7d9f8c6b5-{p:06x}");
        let (type_, (reason, message)) = if i % 10 < 7 {
            ("Normal", POD_NORMAL[i % POD_NORMAL.len()])
        } else {
            ("Warning", POD_WARNING[i % POD_WARNING.len()])
        };
        ("Pod", format!("team-{}", p % 50), name, type_, reason, message)
    };
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{i:x}")),
            namespace: Some(namespace.clone()),
            uid: Some(format!("{i:08x}-5e6f-4a7b-8c9d-0e1f2a3b4c5d")),
            ..Default::default()
        },
        involved_object: ObjectReference {
            kind: Some(kind.into()),
            namespace: (kind == "Pod").then_some(namespace),
            name: Some(name),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message.into()),
        type_: Some(type_.into()),
        count: Some(1),
        first_timestamp: Some(time.clone()),
        last_timestamp: Some(time),
        source: Some(EventSource {
            component: Some("kubelet".into()),
            host: None,
        }),
        ..Default::default()
    }
}
