//! The engine on hand-fed watch events and a hand-driven clock: timers fire at the due time, Ready
//! transitions are remembered, container states keep the time they began.

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

const T0: Secs = 1_800_000_000;

fn at(secs: Secs) -> String {
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .unwrap()
        .to_string()
}

/// An engine on a manual clock, at T0.
fn engine() -> (Engine, ManualClock) {
    let (tx, _rx) = tokio::sync::watch::channel(Synced::default());
    let clock = ManualClock::at(T0);
    let engine = Engine::new(Arc::new(Metrics::default()), tx).with_clock(clock.clone());
    (engine, clock)
}

/// The requests the engine sent to its executor since the last call.
fn requests(work: &mut tokio::sync::mpsc::UnboundedReceiver<Work>) -> Vec<ActionRequest> {
    let mut out = Vec::new();
    while let Ok(w) = work.try_recv() {
        if let Work::Act(req) = w {
            out.push(*req);
        }
    }
    out
}

/// Every watch lists (nothing): the engine decides only once all have listed.
fn listed(e: &mut Engine) {
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
    e.apply(Change::policy(Event::Init));
    e.apply(Change::policy(Event::InitDone));
}

fn pod(value: serde_json::Value) -> Change {
    Change::Pod(Box::new(Event::Apply(
        serde_json::from_value::<Pod>(value).unwrap(),
    )))
}

fn node(name: &str, ready: &str, since: Secs) -> Change {
    let n: Node = serde_json::from_value(json!({"metadata": {"name": name, "uid": name},
        "status": {"conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": at(since)}]}}))
    .unwrap();
    Change::Node(Box::new(Event::Apply(n)))
}

fn target(ns: &str, name: &str) -> Target {
    Target::Pod(ns.into(), name.into())
}

#[test]
fn a_terminating_pod_is_found_at_its_deadline_and_due_a_minute_later() {
    let (mut e, clock) = engine();
    clock.set(T0);
    e.apply(pod(json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u", "creationTimestamp": at(T0 - 600), "deletionTimestamp": at(T0 + 10)},
        "spec": {"containers": []}, "status": {"phase": "Running"}})));
    let t = target("ns", "p");
    assert!(e.tracked(&t).is_empty(), "within its grace period");
    assert_eq!(
        e.next_wake(&t),
        Some(T0 + 10),
        "woken exactly at the deletionTimestamp"
    );

    clock.set(T0 + 10);
    e.fire_due_timers();
    assert_eq!(e.tracked(&t), [(FailureClass::StuckTerminating, T0 + 10, false)]);
    assert_eq!(
        e.next_wake(&t),
        Some(T0 + 70),
        "due after the class's 1m threshold"
    );

    clock.set(T0 + 70);
    e.fire_due_timers();
    assert_eq!(e.tracked(&t), [(FailureClass::StuckTerminating, T0 + 10, true)]);
}

#[test]
fn ready_flips_are_counted_as_flapping() {
    let (mut e, clock) = engine();
    for (i, status) in ["True", "False", "True", "False", "True"].iter().enumerate() {
        let t = T0 + 60 * i as Secs;
        clock.set(t);
        e.apply(node("n", status, t));
    }
    let flapping = e.tracked(&Target::Node("n".into()));
    assert!(
        flapping
            .iter()
            .any(|(c, since, _)| *c == FailureClass::NodeFlapping && *since == T0 + 60),
        "{flapping:?}"
    );
    assert_eq!(e.stores().node_view("n").unwrap().ready_transitions.len(), 4);
}

#[test]
fn a_container_state_keeps_the_time_it_began() {
    let (mut e, clock) = engine();
    let waiting = |reason: &str| {
        pod(
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u", "creationTimestamp": at(T0 - 3600)},
            "spec": {"nodeName": "n", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Pending", "startTime": at(T0 - 3600),
                "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": reason}}}]}}),
        )
    };
    clock.set(T0);
    e.apply(node("n", "True", T0 - 86400));
    e.apply(waiting("ContainerCreating"));
    clock.set(T0 + 50);
    e.apply(waiting("ImagePullBackOff"));
    clock.set(T0 + 80);
    e.apply(waiting("ImagePullBackOff"));
    assert_eq!(
        e.tracked(&target("ns", "p")),
        [(FailureClass::ImagePullFailure, T0 + 50, false)]
    );
    assert_eq!(e.next_wake(&target("ns", "p")), Some(T0 + 50 + 300));
}

#[test]
fn deleting_a_node_orphans_its_pods() {
    let (mut e, clock) = engine();
    clock.set(T0);
    e.apply(node("gone", "True", T0 - 86400));
    e.apply(Change::Node(Box::new(Event::InitDone)));
    e.apply(pod(json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u", "creationTimestamp": at(T0 - 600)},
        "spec": {"nodeName": "gone", "containers": []},
        "status": {"phase": "Running", "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {}}}]}})));
    assert!(e.tracked(&target("ns", "p")).is_empty());
    clock.set(T0 + 5);
    let n: Node = serde_json::from_value(json!({"metadata": {"name": "gone"}})).unwrap();
    e.apply(Change::Node(Box::new(Event::Delete(n))));
    assert_eq!(
        e.tracked(&target("ns", "p")),
        [(FailureClass::Orphaned, T0 + 5, false)]
    );
}

#[test]
fn many_nodes_down_together_is_one_correlated_finding() {
    let (mut e, clock) = engine();
    clock.set(T0);
    for i in 0..10 {
        e.apply(node(&format!("n{i}"), "True", T0 - 86400));
    }
    for i in 0..3 {
        e.apply(node(&format!("n{i}"), "Unknown", T0));
    }
    assert_eq!(e.correlated().len(), 1, "3 of 10 nodes (30%) down together");
    assert_eq!(e.correlated()[0].members.len(), 3);
    e.apply(node("n0", "True", T0 + 60));
    assert!(e.correlated().is_empty(), "2 of 10 are node faults");
}

#[test]
fn a_condition_without_transition_time_keeps_its_first_sight() {
    let (mut e, clock) = engine();
    let deadlock = || {
        let n: Node = serde_json::from_value(
            json!({"metadata": {"name": "kd", "uid": "kd"}, "status": {"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": at(T0 - 86400)},
            {"type": "KernelDeadlock", "status": "True", "reason": "DockerHung"}]}}),
        )
        .unwrap();
        Change::Node(Box::new(Event::Apply(n)))
    };
    clock.set(T0);
    e.apply(deadlock());
    clock.set(T0 + 90);
    e.apply(deadlock());
    let found = e.tracked(&Target::Node("kd".into()));
    assert!(
        found
            .iter()
            .any(|(c, since, _)| *c == FailureClass::NodeCondition && *since == T0),
        "{found:?}"
    );
}

/// A policy deleting Evicted pods after 1 minute, with these safety limits.
fn leftovers_policy(safety: serde_json::Value) -> Change {
    let policy: kube_healer_api::HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": "leftovers", "generation": 1},
        "spec": {"target": {"kind": "Pod"}, "conditions": [{"class": "Evicted", "for": "1m"}],
            "actions": [{"action": "Delete"}], "safety": safety}}))
    .unwrap();
    Change::policy(Event::Apply(policy))
}

/// A pod Evicted 10 minutes before T0.
fn evicted(name: &str) -> Change {
    pod(
        json!({"metadata": {"name": name, "namespace": "ns", "uid": name, "creationTimestamp": at(T0 - 600)},
        "spec": {"containers": [], "nodeName": "n1"},
        "status": {"phase": "Failed", "reason": "Evicted", "message": "low on memory", "startTime": at(T0 - 600)}}),
    )
}

/// maxConcurrent queues decisions instead of holding them back: no Skipped record per waiting
/// target, and the next one is decided as soon as an action in flight ends.
#[test]
fn targets_over_max_concurrent_wait_for_a_free_slot() {
    let (tx, mut work) = tokio::sync::mpsc::unbounded_channel();
    let (_done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel();
    let (e, clock) = engine();
    let mut e = e.with_executor(tx, done_rx);
    listed(&mut e);
    clock.set(T0);
    e.apply(leftovers_policy(
        json!({"maxConcurrent": 1, "rate": {"actions": 100, "per": "1m"}}),
    ));
    for name in ["a", "b", "c"] {
        e.apply(evicted(name));
    }
    clock.set(T0 + 61);
    e.fire_due_timers();
    let mut acted = Vec::new();
    let drain = |work: &mut tokio::sync::mpsc::UnboundedReceiver<Work>, acted: &mut Vec<String>| {
        while let Ok(w) = work.try_recv() {
            if let Work::Act(req) = w {
                assert!(
                    req.hold.is_none(),
                    "a waiting target is not recorded as held: {:?}",
                    req.hold
                );
                acted.push(req.spec.target.name.clone());
            }
        }
    };
    drain(&mut work, &mut acted);
    assert_eq!(acted.len(), 1, "one slot: {acted:?}");
    for round in 2..=3 {
        e.action_done(ActionDone {
            policy: "leftovers".into(),
            was_in_flight: true,
            carried_out: true,
            unrecorded: None,
        });
        drain(&mut work, &mut acted);
        assert_eq!(
            acted.len(),
            round,
            "the next target takes the freed slot: {acted:?}"
        );
    }
    acted.sort();
    assert_eq!(acted, ["a", "b", "c"]);
}

/// A decision that could not be recorded (the API server refused or did not answer the record)
/// was not carried out: it is taken back and made again, under the same record name, once
/// RECORD_RETRY has passed; not before.
#[test]
fn a_decision_that_could_not_be_recorded_is_made_again_later() {
    let (tx, mut work) = tokio::sync::mpsc::unbounded_channel();
    let (_done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel();
    let (e, clock) = engine();
    let mut e = e.with_executor(tx, done_rx);
    listed(&mut e);
    clock.set(T0);
    e.apply(leftovers_policy(
        json!({"maxConcurrent": 5, "rate": {"actions": 100, "per": "1m"}, "cooldown": "1h"}),
    ));
    e.apply(evicted("a"));
    clock.set(T0 + 61);
    e.fire_due_timers();
    let acts = requests;
    let first = acts(&mut work);
    assert_eq!(first.len(), 1, "one decision");
    e.action_done(ActionDone {
        policy: "leftovers".into(),
        was_in_flight: true,
        carried_out: false,
        unrecorded: Some(Box::new(first[0].clone())),
    });
    // Not at once (the API server is struggling), and the cooldown of the untaken action holds
    // nothing back.
    e.fire_due_timers();
    assert!(acts(&mut work).is_empty(), "decided again at once");
    clock.set(T0 + 61 + 10);
    e.fire_due_timers();
    let again = acts(&mut work);
    assert_eq!(again.len(), 1, "decided again after RECORD_RETRY");
    assert!(again[0].hold.is_none(), "not held: {:?}", again[0].hold);
    assert_eq!(again[0].name, first[0].name, "the same decision, the same record");
}

/// No decision before every watch has listed: a leader elected while its node list still
/// streams must not take a node it has not seen for one gone. A StatefulSet pod stuck
/// Terminating on such a node would be force-deleted (two pods with one identity).
#[test]
fn nothing_is_decided_before_every_watch_has_listed() {
    let (tx, mut work) = tokio::sync::mpsc::unbounded_channel();
    let (_done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel();
    let (e, clock) = engine();
    let mut e = e.with_executor(tx, done_rx);
    let policy: kube_healer_api::HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": "stuck", "generation": 1},
        "spec": {"target": {"kind": "Pod"}, "conditions": [{"class": "StuckTerminating", "for": "1m"}],
            "actions": [{"action": "ForceDelete"}]}}))
    .unwrap();
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "db-0", "namespace": "ns", "uid": "u",
            "creationTimestamp": at(T0 - 3600), "deletionTimestamp": at(T0 - 600),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "s", "controller": true}]},
        "spec": {"nodeName": "n", "containers": []}, "status": {"phase": "Running"}}))
    .unwrap();
    for change in [
        Change::policy(Event::Init),
        Change::policy(Event::InitApply(policy)),
        Change::policy(Event::InitDone),
        Change::Pod(Box::new(Event::Init)),
        Change::Pod(Box::new(Event::InitApply(pod))),
        Change::Pod(Box::new(Event::InitDone)),
        Change::Event(Box::new(Event::Init)),
        Change::Event(Box::new(Event::InitDone)),
        Change::Lease(Box::new(Event::Init)),
        Change::Lease(Box::new(Event::InitDone)),
        Change::Namespace(Box::new(Event::Init)),
        Change::Namespace(Box::new(Event::InitDone)),
        // The node list has begun and not ended: node n is not known yet.
        Change::Node(Box::new(Event::Init)),
    ] {
        e.apply(change);
    }
    clock.set(T0 + 60);
    e.fire_due_timers();
    let decided = requests;
    assert!(
        decided(&mut work).is_empty(),
        "decided before the node list ended"
    );

    // The list ends with node n present and Ready: the pod's node is not gone, so ForceDelete
    // is held Unsafe.
    e.apply(node("n", "True", T0 - 86400));
    e.apply(Change::Node(Box::new(Event::InitDone)));
    let after = decided(&mut work);
    assert_eq!(after.len(), 1, "decided once every watch has listed: {after:?}");
    let hold = after[0].hold.as_ref().map(|h| (h.reason, h.message.as_str()));
    assert!(
        hold.is_some_and(|(r, m)| r == kube_healer_api::reasons::UNSAFE && m.contains("not confirmed gone")),
        "{hold:?}"
    );
}

/// A dry run's steps are its own ladder: a policy switched from dryRun to live starts its live
/// ladder at step 1, under record names of its own (not the dry run's, which would collide).
#[test]
fn a_policy_switched_from_dry_run_to_live_starts_at_the_first_step() {
    let (tx, mut work) = tokio::sync::mpsc::unbounded_channel();
    let (_done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel();
    let (e, clock) = engine();
    let mut e = e.with_executor(tx, done_rx);
    listed(&mut e);
    let policy = |generation: i64, dry_run: bool| {
        let policy: kube_healer_api::HealingPolicy = serde_json::from_value(json!({
            "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
            "metadata": {"name": "stuck", "generation": generation},
            "spec": {"target": {"kind": "Pod"}, "conditions": [{"class": "StuckTerminating", "for": "1m"}],
                "actions": [{"action": "Evict", "escalateAfter": "1m"}, {"action": "ForceDelete"}],
                "safety": {"dryRun": dry_run, "cooldown": "1m", "rate": {"actions": 100, "per": "1m"}}}}))
        .unwrap();
        Change::policy(Event::Apply(policy))
    };
    let acts = |work: &mut tokio::sync::mpsc::UnboundedReceiver<Work>| {
        requests(work)
            .into_iter()
            .map(|req| {
                (
                    req.spec.step,
                    req.spec.dry_run,
                    req.hold.is_some(),
                    req.name.clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    e.apply(policy(1, true));
    e.apply(pod(
        json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u",
            "creationTimestamp": at(T0 - 3600), "deletionTimestamp": at(T0 - 120)},
        "spec": {"containers": []}, "status": {"phase": "Running"}}),
    ));
    clock.set(T0 + 1);
    e.fire_due_timers();
    clock.set(T0 + 62);
    e.fire_due_timers();
    let dry = acts(&mut work);
    let steps: Vec<_> = dry.iter().map(|a| (a.0, a.1, a.2)).collect();
    assert_eq!(
        steps,
        [(1, true, false), (2, true, false)],
        "the dry run climbs its ladder"
    );

    e.apply(policy(2, false));
    let live = acts(&mut work);
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(
        (live[0].0, live[0].1, live[0].2),
        (1, false, false),
        "live starts at step 1: {live:?}"
    );
    assert!(dry.iter().all(|d| d.3 != live[0].3), "a record name of its own");
}

/// Nodes recover one by one: when a storm's correlated cause clears, a member whose status still
/// lags is not acted on until a cool-off has passed (the storm's stragglers were cordoned the
/// moment the cause cleared).
#[test]
fn members_of_a_cleared_storm_are_held_through_a_cool_off() {
    let (tx, mut work) = tokio::sync::mpsc::unbounded_channel();
    let (_done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel();
    let (e, clock) = engine();
    let mut e = e.with_executor(tx, done_rx);
    listed(&mut e);
    let policy: kube_healer_api::HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": "unreachable", "generation": 1},
        "spec": {"target": {"kind": "Node"}, "conditions": [{"class": "NodeUnreachable", "for": "1s"}],
            "actions": [{"action": "Cordon"}],
            "safety": {"maxUnhealthy": "100%", "maxConcurrent": 10, "rate": {"actions": 100, "per": "1m"}}}}))
    .unwrap();
    e.apply(Change::policy(Event::Apply(policy)));
    for i in 0..10 {
        e.apply(node(&format!("n{i}"), "True", T0 - 86400));
    }
    for i in 0..3 {
        e.apply(node(&format!("n{i}"), "Unknown", T0));
    }
    let acts = |work: &mut tokio::sync::mpsc::UnboundedReceiver<Work>| {
        requests(work)
            .into_iter()
            .map(|req| {
                (
                    req.spec.target.name.clone(),
                    req.hold.map(|h| (h.reason, h.message)),
                )
            })
            .collect::<Vec<_>>()
    };
    clock.set(T0 + 2);
    e.fire_due_timers();
    let held = acts(&mut work);
    assert_eq!(held.len(), 3, "{held:?}");
    assert!(
        held.iter()
            .all(|(_, h)| h.as_ref().is_some_and(|h| h.0 == "Correlated")),
        "{held:?}"
    );

    // n0 recovers: 2 of 10 down is no storm; n1 and n2 still lag.
    clock.set(T0 + 5);
    e.apply(node("n0", "True", T0 + 5));
    assert!(e.correlated().is_empty(), "the cause cleared");
    clock.set(T0 + 6);
    e.apply(node("n1", "Unknown", T0));
    e.fire_due_timers();
    assert!(
        acts(&mut work).is_empty(),
        "a straggler of the storm is not cordoned as it clears"
    );

    // After the cool-off, a node still down is a node fault of its own.
    clock.set(T0 + 5 + 61);
    e.apply(node("n1", "Unknown", T0));
    let after = acts(&mut work);
    assert_eq!(after, [("n1".to_string(), None)], "{after:?}");
}

fn lease(node: &str, renewed: Secs) -> Change {
    let t = k8s_openapi::jiff::Timestamp::from_second(renewed).unwrap();
    let l: k8s_openapi::api::coordination::v1::Lease = serde_json::from_value(json!({
        "metadata": {"name": node, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": t.strftime("%Y-%m-%dT%H:%M:%S.000000Z").to_string()}}))
    .unwrap();
    Change::Lease(Box::new(Event::Apply(l)))
}

fn lagging(e: &Engine, node: &str) -> bool {
    let found = e.tracked(&Target::Node(node.into()));
    found.iter().any(|(c, _, _)| *c == FailureClass::HeartbeatLag)
}

#[test]
fn heartbeats_are_aged_on_the_operators_clock_and_only_while_leases_flow() {
    let (mut e, clock) = engine();
    for n in ["steady", "stops"] {
        e.apply(node(n, "True", T0 - 3600));
    }
    // The kubelets' clocks are 35 s behind the operator's: every renewTime reads 35 s old.
    let skew = 35;
    for step in 0..=6 {
        let t = T0 + 5 * step;
        clock.set(t);
        e.apply(lease("steady", t - skew));
        if step <= 2 {
            e.apply(lease("stops", t - skew));
        }
        e.fire_due_timers();
    }
    assert!(
        !lagging(&e, "steady"),
        "renewing every 5 s, whatever its clock says"
    );
    // "stops" was last seen renewed at T0+10; at T0+30 its heartbeat is 20 s old.
    assert!(
        lagging(&e, "stops"),
        "{:?}",
        e.tracked(&Target::Node("stops".into()))
    );

    // No Lease renews at all for 20 s (a stalled watch, a control plane not writing): no node
    // can be told late, so none is.
    let (mut e, clock) = engine();
    e.apply(node("quiet", "True", T0 - 3600));
    e.apply(lease("quiet", T0 - skew));
    clock.set(T0 + 25);
    e.fire_due_timers();
    e.apply(node("quiet", "True", T0 - 3600));
    assert!(
        !lagging(&e, "quiet"),
        "{:?}",
        e.tracked(&Target::Node("quiet".into()))
    );
}

#[test]
fn a_failed_watch_holds_decisions_until_it_has_listed_again() {
    let (tx, mut work) = tokio::sync::mpsc::unbounded_channel();
    let (_done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel();
    let (e, clock) = engine();
    let mut e = e.with_executor(tx, done_rx);
    listed(&mut e);
    e.apply(leftovers_policy(json!({"maxConcurrent": 5})));
    // The node watch fails (a 403, a disconnect): its store is not current.
    e.apply(Change::WatchFailed("nodes"));
    e.apply(evicted("gone-1"));
    clock.set(T0 + 3600);
    e.fire_due_timers();
    assert!(
        requests(&mut work).is_empty(),
        "decided on a store whose watch failed"
    );
    // The new watch lists: current again, and what became due meanwhile is decided.
    e.apply(Change::Node(Box::new(Event::Init)));
    assert!(
        requests(&mut work).is_empty(),
        "decided while the node list streams"
    );
    e.apply(Change::Node(Box::new(Event::InitDone)));
    let decided = requests(&mut work);
    assert_eq!(decided.len(), 1, "{decided:?}");
    // A watch no decision waits for (the records') fails: nothing stops.
    e.apply(Change::WatchFailed("healingactions"));
    e.apply(evicted("gone-2"));
    clock.set(T0 + 7200);
    e.fire_due_timers();
    let decided = requests(&mut work);
    assert!(
        decided.iter().any(|r| r.spec.target.name == "gone-2"),
        "{decided:?}"
    );
}
