//! The engine on hand-fed watch events and a hand-driven clock: timers fire at the due time, Ready
//! transitions are remembered, container states keep the time they began; gates queue or hold;
//! nothing is decided, and no record deleted, before every watch has listed; a failure ends only
//! after its debounce, and one back within its cooldown goes on up its ladder.

mod bounded;
mod classify;
mod control_plane;
mod debounce;
mod episodes;
mod gates;
mod measured;
mod pods_alike;
mod resume;
mod stale_marks;
mod storm;
mod sync;
mod takeover;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::watcher::Event;
use kube_healer_api::FailureClass;
use kube_healer_core::view::Secs;
use kube_healer_operator::clock::ManualClock;
use kube_healer_operator::engine::Engine;
use kube_healer_operator::metrics::Metrics;
use kube_healer_operator::protocol::{ActionDone, ActionRequest, Work};
use kube_healer_operator::store::Synced;
use kube_healer_operator::target::Target;
use kube_healer_operator::watch::Change;
use serde_json::json;

pub const T0: Secs = 1_800_000_000;

pub fn at(secs: Secs) -> String {
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .unwrap()
        .to_string()
}

/// An engine on a manual clock, at T0.
pub fn engine() -> (Engine, ManualClock) {
    let (tx, _rx) = tokio::sync::watch::channel(Synced::default());
    let clock = ManualClock::at(T0);
    let engine = Engine::new(Arc::new(Metrics::default()), tx).with_clock(clock.clone());
    (engine, clock)
}

/// Like [`acting`], with the engine's metrics.
pub fn acting_measured() -> (
    Engine,
    ManualClock,
    tokio::sync::mpsc::UnboundedReceiver<Work>,
    Arc<Metrics>,
) {
    let (tx, work) = tokio::sync::mpsc::unbounded_channel();
    let (_done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel();
    let (synced, _) = tokio::sync::watch::channel(Synced::default());
    let clock = ManualClock::at(T0);
    let metrics = Arc::new(Metrics::default());
    let e = Engine::new(metrics.clone(), synced)
        .with_clock(clock.clone())
        .with_executor(tx, done_rx);
    (e, clock, work, metrics)
}

/// An engine on a manual clock, at T0, sending its work to the returned receiver.
pub fn acting() -> (Engine, ManualClock, tokio::sync::mpsc::UnboundedReceiver<Work>) {
    let (tx, work) = tokio::sync::mpsc::unbounded_channel();
    let (_done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel();
    let (e, clock) = engine();
    (e.with_executor(tx, done_rx), clock, work)
}

/// The requests the engine sent to its executor since the last call.
pub fn requests(work: &mut tokio::sync::mpsc::UnboundedReceiver<Work>) -> Vec<ActionRequest> {
    let mut out = Vec::new();
    while let Ok(w) = work.try_recv() {
        if let Work::Act(req) = w {
            out.push(*req);
        }
    }
    out
}

/// Every watch lists (nothing): the engine decides only once all have listed.
pub fn listed(e: &mut Engine) {
    listed_with(e, Vec::new(), Vec::new());
}

/// Every watch lists, the policies' and the records' with these objects (`Apply` changes,
/// delivered as the list's).
pub fn listed_with(e: &mut Engine, policies: Vec<Change>, records: Vec<Change>) {
    e.apply(Change::Pod(Box::new(Event::Init)));
    e.apply(Change::Pod(Box::new(Event::InitDone)));
    e.apply(Change::Node(Box::new(Event::Init)));
    e.apply(Change::Node(Box::new(Event::InitDone)));
    e.apply(Change::Event(Box::new(Event::Init)));
    e.apply(Change::Event(Box::new(Event::InitDone)));
    e.apply(Change::Lease(Box::new(Event::Init)));
    e.apply(Change::Lease(Box::new(Event::InitDone)));
    e.apply(Change::Namespace(Box::new(Event::Init)));
    e.apply(Change::Namespace(Box::new(Event::InitDone)));
    Change::no_maintainers().for_each(|c| e.apply(c));
    e.apply(Change::policy(Event::Init));
    for p in policies {
        if let Change::Policy(p) = p
            && let Event::Apply(p) = *p
        {
            e.apply(Change::Policy(Box::new(Event::InitApply(p))));
        }
    }
    e.apply(Change::policy(Event::InitDone));
    e.apply(Change::Record(Box::new(Event::Init)));
    for r in records {
        if let Change::Record(r) = r
            && let Event::Apply(r) = *r
        {
            e.apply(Change::Record(Box::new(Event::InitApply(r))));
        }
    }
    e.apply(Change::Record(Box::new(Event::InitDone)));
}

pub fn pod(value: serde_json::Value) -> Change {
    Change::Pod(Box::new(Event::Apply(
        serde_json::from_value::<Pod>(value).unwrap(),
    )))
}

pub fn node(name: &str, ready: &str, since: Secs) -> Change {
    let n: Node = serde_json::from_value(json!({"metadata": {"name": name, "uid": name},
        "status": {"conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": at(since)}]}}))
    .unwrap();
    Change::Node(Box::new(Event::Apply(n)))
}

pub fn target(ns: &str, name: &str) -> Target {
    Target::Pod(ns.into(), name.into())
}

/// A policy deleting Evicted pods after 1 minute, with these safety limits.
pub fn leftovers_policy(safety: serde_json::Value) -> Change {
    let policy: kube_healer_api::HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": "leftovers", "generation": 1},
        "spec": {"target": {"kind": "Pod"}, "conditions": [{"class": "Evicted", "for": "1m"}],
            "actions": [{"action": "Delete"}], "safety": safety}}))
    .unwrap();
    Change::policy(Event::Apply(policy))
}

/// A pod Evicted 10 minutes before T0.
pub fn evicted(name: &str) -> Change {
    pod(
        json!({"metadata": {"name": name, "namespace": "ns", "uid": name, "creationTimestamp": at(T0 - 600)},
        "spec": {"containers": [], "nodeName": "n1"},
        "status": {"phase": "Failed", "reason": "Evicted", "message": "low on memory", "startTime": at(T0 - 600)}}),
    )
}

/// A record of `policy` as the metadata watch shows it, created at `created`, with these labels
/// beside its policy's.
pub fn record_of(policy: &str, name: &str, created: Secs, mut labels: serde_json::Value) -> Change {
    labels[kube_healer_api::POLICY_LABEL] = json!(policy);
    let meta: kube::core::PartialObjectMeta<kube_healer_api::HealingAction> = serde_json::from_value(
        json!({"apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingAction",
            "metadata": {"name": name, "creationTimestamp": at(created), "labels": labels}}),
    )
    .unwrap();
    Change::Record(Box::new(Event::Apply(meta)))
}

/// Cordons a node with KernelDeadlock (at once), whatever share of the nodes fails.
pub fn deadlock_policy() -> Change {
    let policy: kube_healer_api::HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": "deadlock", "generation": 1},
        "spec": {"target": {"kind": "Node"},
            "conditions": [{"class": "NodeCondition", "conditionType": "KernelDeadlock"}],
            "actions": [{"action": "Cordon"}], "safety": {"maxUnhealthy": "100%"}}}))
    .unwrap();
    Change::policy(Event::Apply(policy))
}
