//! Gates on the engine: maxConcurrent queues, an unrecorded decision is made again, a dry run's
//! ladder is its own, a cleared storm's members cool off, the pause annotation holds everything
//! until it is removed.

use super::*;

/// maxConcurrent queues decisions instead of holding them back: no Skipped record per waiting
/// target, and the next one is decided as soon as an action in flight ends.
#[test]
fn targets_over_max_concurrent_wait_for_a_free_slot() {
    let (mut e, clock, mut work) = acting();
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
            name: format!("done-{round}"),
            was_in_flight: true,
            carried_out: true,
            untouched: false,
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
    let (mut e, clock, mut work) = acting();
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
        name: first[0].name.clone(),
        was_in_flight: true,
        carried_out: false,
        untouched: false,
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

/// A dry run's steps are its own ladder: a policy switched from dryRun to live starts its live
/// ladder at step 1, under record names of its own (not the dry run's, which would collide).
#[test]
fn a_policy_switched_from_dry_run_to_live_starts_at_the_first_step() {
    let (mut e, clock, mut work) = acting();
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
    // Decided once known PEERS_SETTLE (a pod stuck with its node may be one of many).
    clock.set(T0 + 2);
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
    let (mut e, clock, mut work) = acting();
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
        held.iter().all(|(_, h)| h
            .as_ref()
            .is_some_and(|h| h.0 == kube_healer_api::reasons::HoldReason::Correlated)),
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

fn namespace(name: &str, annotations: serde_json::Value) -> Change {
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": name, "annotations": annotations}})).unwrap();
    Change::Namespace(Box::new(Event::Apply(ns)))
}

/// The pause annotation on kube-healer's own namespace holds every decision (Paused, with the
/// annotation's reason); on any other namespace it does nothing. Once removed, what it held is
/// decided again at once, not at the next change of each target.
#[test]
fn the_pause_annotation_on_its_namespace_holds_every_decision_until_it_is_removed() {
    let (e, clock, mut work) = acting();
    let mut e = e.with_own_namespace(Some("kube-healer".into()));
    listed(&mut e);
    let pause = json!({kube_healer_api::PAUSE_ANNOTATION: "upgrading to 1.37"});
    e.apply(namespace("elsewhere", pause.clone()));
    e.apply(namespace("kube-healer", pause));
    e.apply(leftovers_policy(json!({"rate": {"actions": 100, "per": "1m"}})));
    e.apply(evicted("a"));
    clock.set(T0 + 61);
    e.fire_due_timers();
    let held = requests(&mut work);
    assert_eq!(held.len(), 1, "{held:?}");
    let hold = held[0].hold.as_ref().expect("held");
    assert_eq!(hold.reason, kube_healer_api::reasons::HoldReason::Paused);
    assert!(hold.message.contains("upgrading to 1.37"), "{}", hold.message);

    e.apply(namespace("elsewhere", json!({})));
    assert!(
        requests(&mut work).is_empty(),
        "another namespace's change lifts nothing"
    );
    e.apply(namespace("kube-healer", json!({})));
    let acted = requests(&mut work);
    assert_eq!(
        acted.len(),
        1,
        "decided again once the pause is removed: {acted:?}"
    );
    assert!(acted[0].hold.is_none(), "{:?}", acted[0].hold);
}

/// A namespace list that does not show kube-healer's namespace says it is gone, and its pause
/// with it (a whole list is evidence; a failed watch is not, and keeps the pause).
#[test]
fn a_namespace_list_without_its_namespace_lifts_the_pause() {
    let (e, clock, mut work) = acting();
    let mut e = e.with_own_namespace(Some("kube-healer".into()));
    listed(&mut e);
    e.apply(namespace(
        "kube-healer",
        json!({kube_healer_api::PAUSE_ANNOTATION: "upgrade"}),
    ));
    e.apply(leftovers_policy(json!({"rate": {"actions": 100, "per": "1m"}})));
    e.apply(evicted("a"));
    clock.set(T0 + 61);
    e.fire_due_timers();
    assert!(requests(&mut work).iter().all(|r| r.hold.is_some()), "paused");
    e.apply(Change::WatchFailed("namespaces"));
    e.apply(Change::Namespace(Box::new(Event::Init)));
    e.apply(Change::Namespace(Box::new(Event::InitDone)));
    let acted = requests(&mut work);
    assert!(
        acted.len() == 1 && acted[0].hold.is_none(),
        "decided again once the list showed the namespace gone: {acted:?}"
    );
}

/// While a maintenance resource's watch has not listed, whether a node is taken down on
/// purpose is unknown: the node's decisions wait (no record), the rest do not. Once it has
/// listed, the node is decided.
#[test]
fn node_decisions_wait_for_the_maintenance_watches_and_the_rest_do_not() {
    let (mut e, clock, mut work) = acting();
    listed(&mut e);
    e.apply(Change::Maintainer(
        kube_healer_core::decide::Maintainer::Machine,
        Box::new(Event::Init),
    ));
    e.apply(deadlock_policy());
    e.apply(leftovers_policy(json!({"rate": {"actions": 100, "per": "1m"}})));
    let deadlocked: Node = serde_json::from_value(json!({"metadata": {"name": "n1", "uid": "n1"},
        "status": {"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": at(T0 - 86400)},
            {"type": "KernelDeadlock", "status": "True", "lastTransitionTime": at(T0 - 3600)}]}}))
    .unwrap();
    e.apply(Change::Node(Box::new(Event::Apply(deadlocked))));
    e.apply(evicted("a"));
    clock.set(T0 + 61);
    e.fire_due_timers();
    let decided: Vec<String> = requests(&mut work)
        .into_iter()
        .map(|r| r.spec.target.name)
        .collect();
    assert_eq!(decided, ["a"], "the pod's leftover is decided, the node waits");
    e.apply(Change::Maintainer(
        kube_healer_core::decide::Maintainer::Machine,
        Box::new(Event::InitDone),
    ));
    let decided: Vec<String> = requests(&mut work)
        .into_iter()
        .map(|r| r.spec.target.name)
        .collect();
    assert_eq!(decided, ["n1"], "the node is decided once the watch has listed");
}
