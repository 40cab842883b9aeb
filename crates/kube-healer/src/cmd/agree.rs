//! `simulate` and `explain` decide through `offline::Decider` (core's decide, facts and target
//! safety rules), the operator and `replay` through the engine's gate. Here both are given the
//! same cluster and a policy for each action kind, and must decide alike: the same action,
//! taken or held back for the same reason. A rule listed again on one side (as replay once
//! listed which actions take a node out of service) shows up as a difference.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::watcher::Event;
use kube_healer_api::reasons::HoldReason;
use kube_healer_api::{ActionKind, HealingPolicy, TargetKind};
use kube_healer_core::Snapshot;
use kube_healer_core::convert::{Interner, node_view, pod_view};
use kube_healer_core::decide::Decision;
use kube_healer_core::policy::CompiledPolicy;
use kube_healer_core::view::Secs;
use kube_healer_operator::clock::ManualClock;
use kube_healer_operator::engine::Engine;
use kube_healer_operator::metrics::Metrics;
use kube_healer_operator::protocol::Work;
use kube_healer_operator::store::Synced;
use kube_healer_operator::watch::Change;
use serde_json::{Value, json};

use crate::cmd::simulate::plan;
use crate::read_cluster::ClusterRead;

const T0: Secs = 1_800_000_000;

fn at(secs: Secs) -> String {
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .unwrap()
        .to_string()
}

/// A decision as both sides can tell it: the target, the action, whether a dry run, and why it
/// was held (None: taken).
type Told = (String, ActionKind, bool, Option<HoldReason>);

/// A ready node, or one NotReady for an hour.
fn node(name: &str, ready: bool) -> Node {
    let (status, reason) = if ready {
        ("True", "KubeletReady")
    } else {
        ("False", "KubeletNotReady")
    };
    serde_json::from_value(json!({"metadata": {"name": name, "uid": name, "creationTimestamp": at(T0 - 86_400)},
        "status": {"conditions": [{"type": "Ready", "status": status, "reason": reason, "lastTransitionTime": at(T0 - 3600)}]}}))
    .unwrap()
}

/// A pod on n1 whose image cannot be pulled for an hour, owned by a ReplicaSet or by nothing.
fn pulling(name: &str, owned: bool) -> Pod {
    let owners = if owned {
        json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f", "uid": "rs", "controller": true}])
    } else {
        json!([])
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns", "uid": name, "creationTimestamp": at(T0 - 3600), "ownerReferences": owners},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}], "nodeName": "n1"},
        "status": {"phase": "Pending", "startTime": at(T0 - 3600),
            "containerStatuses": [{"name": "app", "image": "registry.example/app:1", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}}))
    .unwrap()
}

/// The step for `action`, with the parameters it needs.
fn step(action: ActionKind) -> Value {
    let mut step = json!({"action": action.as_str()});
    if action == ActionKind::RunJob {
        step["runJob"] = json!({"nodeJob": "restart-containerd"});
    }
    if action == ActionKind::Remediate {
        step["remediate"] = json!({"template": {
            "apiVersion": "self-node-remediation.medik8s.io/v1alpha1", "kind": "SelfNodeRemediationTemplate",
            "name": "automatic", "namespace": "medik8s"}});
    }
    step
}

fn policy(action: ActionKind, kind: TargetKind) -> HealingPolicy {
    let (target, class) = match kind {
        TargetKind::Pod => (
            json!({"kind": "Pod", "namespaces": {"include": ["ns"]}}),
            "ImagePullFailure",
        ),
        TargetKind::Node => (json!({"kind": "Node"}), "NodeNotReady"),
    };
    serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": format!("every-{}", action.as_str().to_lowercase()), "generation": 1},
        "spec": {"target": target, "conditions": [{"class": class, "for": "1m"}], "actions": [step(action)],
            "safety": {"maxConcurrent": 10, "rate": {"actions": 100, "per": "1m"}}}}))
    .unwrap()
}

/// What the operator's engine decides, fed the objects as its watches would, on a manual clock.
fn by_engine(policy: &HealingPolicy, pods: &[Pod], nodes: &[Node], now: Secs) -> Vec<Told> {
    let (synced, _) = tokio::sync::watch::channel(Synced::default());
    let (work_tx, mut work) = tokio::sync::mpsc::unbounded_channel();
    let (_done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel();
    let clock = ManualClock::at(T0);
    let mut engine = Engine::new(Arc::new(Metrics::default()), synced)
        .with_clock(clock.clone())
        .with_executor(work_tx, done_rx);
    // Every watch lists first, as at start-up (the engine decides only once all have).
    engine.apply(Change::policy(Event::Init));
    engine.apply(Change::policy(Event::InitApply(policy.clone())));
    engine.apply(Change::policy(Event::InitDone));
    engine.apply(Change::Pod(Box::new(Event::Init)));
    for pod in pods {
        engine.apply(Change::Pod(Box::new(Event::InitApply(pod.clone()))));
    }
    engine.apply(Change::Pod(Box::new(Event::InitDone)));
    engine.apply(Change::Node(Box::new(Event::Init)));
    for node in nodes {
        engine.apply(Change::Node(Box::new(Event::InitApply(node.clone()))));
    }
    engine.apply(Change::Node(Box::new(Event::InitDone)));
    engine.apply(Change::Event(Box::new(Event::Init)));
    engine.apply(Change::Event(Box::new(Event::InitDone)));
    engine.apply(Change::Lease(Box::new(Event::Init)));
    engine.apply(Change::Lease(Box::new(Event::InitDone)));
    engine.apply(Change::Namespace(Box::new(Event::Init)));
    engine.apply(Change::Namespace(Box::new(Event::InitDone)));
    Change::no_maintainers().for_each(|c| engine.apply(c));
    engine.apply(Change::Record(Box::new(Event::Init)));
    engine.apply(Change::Record(Box::new(Event::InitDone)));
    clock.set(now);
    engine.fire_due_timers();
    let mut told = Vec::new();
    while let Ok(w) = work.try_recv() {
        if let Work::Act(req) = w {
            let held = req.hold.as_ref().map(|h| h.reason);
            told.push((
                req.spec.target.name.clone(),
                req.spec.action,
                req.spec.dry_run,
                held,
            ));
        }
    }
    told.sort();
    told
}

/// What `simulate` decides on the same objects read once.
fn by_simulate(policy: &HealingPolicy, pods: &[Pod], nodes: &[Node], now: Secs) -> Vec<Told> {
    let mut interner = Interner::default();
    let pods = pods.iter().map(|p| pod_view(p, &mut interner).unwrap()).collect();
    let nodes = nodes
        .iter()
        .map(|n| node_view(n, &mut interner).unwrap())
        .collect();
    let cluster = ClusterRead {
        snapshot: Snapshot::new(pods, nodes, Vec::new(), Vec::new()),
        namespaces: Default::default(),
    };
    let compiled = CompiledPolicy::compile(policy).unwrap();
    let dry_run = policy.spec.safety.dry_run;
    let mut told: Vec<Told> = plan(&compiled, &cluster, now)
        .decisions
        .iter()
        .map(|(f, d)| match d {
            Decision::Act { action, dry_run, .. } => (f.subject.name.to_string(), *action, *dry_run, None),
            Decision::Hold { action, reason, .. } => {
                (f.subject.name.to_string(), *action, dry_run, Some(*reason))
            }
            Decision::Wait { .. } => panic!("{} is due: {d:?}", f.subject),
        })
        .collect();
    told.sort();
    told
}

#[test]
fn simulate_and_the_engine_decide_alike_for_every_action_kind() {
    let pods = [pulling("bare", false), pulling("owned", true)];
    // One node down among five: under maxUnhealthy and no correlated cause, so node actions go
    // as far as each action's own rules let them.
    let nodes = [
        node("n1", true),
        node("n2", true),
        node("n3", true),
        node("n4", true),
        node("down", false),
    ];
    let now = T0 + 120;
    let mut held_by_a_rule = Vec::new();
    for &action in ActionKind::ALL {
        for kind in [TargetKind::Pod, TargetKind::Node] {
            if !action.applies_to(kind) {
                continue;
            }
            let policy = policy(action, kind);
            let engine = by_engine(&policy, &pods, &nodes, now);
            let simulate = by_simulate(&policy, &pods, &nodes, now);
            assert!(
                !engine.is_empty(),
                "{action} on {kind}: the engine decided nothing"
            );
            assert_eq!(simulate, engine, "{action} on {kind}");
            held_by_a_rule.extend(
                engine
                    .iter()
                    .filter(|t| t.3.is_some())
                    .map(|t| (action, t.0.clone())),
            );
        }
    }
    // The comparison is not empty on either side of a rule: some actions are held back by a
    // target rule (Reschedule and RestartOwner of a pod with no controller), the rest taken.
    assert!(
        held_by_a_rule.contains(&(ActionKind::RestartOwner, "bare".to_string())),
        "{held_by_a_rule:?}"
    );
    assert!(
        !held_by_a_rule.contains(&(ActionKind::Delete, "bare".to_string())),
        "{held_by_a_rule:?}"
    );
}

/// An Evicted pod on n1, ten minutes old.
fn evicted(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns", "uid": name, "creationTimestamp": at(T0 - 600)},
        "spec": {"containers": [], "nodeName": "n1"},
        "status": {"phase": "Failed", "reason": "Evicted", "message": "low on memory", "startTime": at(T0 - 600)}}))
    .unwrap()
}

/// A dry run changes nothing and ends at once, so it takes no place in flight: under
/// maxConcurrent every target is dry-run (simulate once counted each dry run as in flight, and
/// showed the rest held by maxConcurrent).
#[test]
fn simulate_and_the_engine_agree_on_dry_runs_under_max_concurrent() {
    let policy: HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": "leftovers", "generation": 1},
        "spec": {"target": {"kind": "Pod", "namespaces": {"include": ["ns"]}},
            "conditions": [{"class": "Evicted", "for": "1m"}], "actions": [{"action": "Delete"}],
            "safety": {"dryRun": true, "maxConcurrent": 1, "rate": {"actions": 100, "per": "1m"}}}}))
    .unwrap();
    let pods = ["a", "b", "c"].map(evicted);
    let now = T0 + 61;
    let engine = by_engine(&policy, &pods, &[], now);
    assert_eq!(engine.len(), 3, "{engine:?}");
    assert!(engine.iter().all(|d| d.2 && d.3.is_none()), "{engine:?}");
    assert_eq!(by_simulate(&policy, &pods, &[], now), engine);
}

/// maxDisruptedPerWorkload: of one ReplicaSet's four failing pods, one is deleted and the rest
/// wait on the workload's limit (25% of 4), in simulate as in the engine (simulate once showed
/// all four deleted: it did not read the workload's pods nor count its own removals).
#[test]
fn simulate_and_the_engine_agree_on_a_workload_s_limit() {
    let policy = policy(ActionKind::Delete, TargetKind::Pod);
    let pods = ["w-a", "w-b", "w-c", "w-d"].map(|n| pulling(n, true));
    let now = T0 + 120;
    let engine = by_engine(&policy, &pods, &[node("n1", true)], now);
    let held = engine
        .iter()
        .filter(|d| d.3 == Some(HoldReason::WorkloadLimit))
        .count();
    assert_eq!((engine.len(), held), (4, 3), "{engine:?}");
    assert_eq!(by_simulate(&policy, &pods, &[node("n1", true)], now), engine);
}

/// A dry run holds as a live run would: of the same four pods under a dry-run Delete policy,
/// one is dry-run and three wait on the workload's limit (the dry runs' removals counted apart
/// from live ones), in simulate as in the engine.
#[test]
fn simulate_and_the_engine_agree_on_a_workload_s_limit_in_a_dry_run() {
    let mut policy = policy(ActionKind::Delete, TargetKind::Pod);
    policy.spec.safety.dry_run = true;
    let pods = ["w-a", "w-b", "w-c", "w-d"].map(|n| pulling(n, true));
    let now = T0 + 120;
    let engine = by_engine(&policy, &pods, &[node("n1", true)], now);
    let dry_runs = engine.iter().filter(|d| d.2 && d.3.is_none()).count();
    let held = engine
        .iter()
        .filter(|d| d.3 == Some(HoldReason::WorkloadLimit))
        .count();
    assert_eq!((dry_runs, held), (1, 3), "{engine:?}");
    assert_eq!(by_simulate(&policy, &pods, &[node("n1", true)], now), engine);
}
