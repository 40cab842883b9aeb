//! Pods failing alike through the engine: a burst that arrives one change at a time (a watch
//! that lagged, then delivered) is one cause before any of it is acted on, recorded once; a
//! lone crash beside it, told otherwise, is healed.

use super::*;
use kube_healer_api::reasons::HoldReason;

fn crashing_policy() -> Change {
    let policy: kube_healer_api::HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": "crashing", "generation": 1},
        "spec": {"target": {"kind": "Pod"}, "conditions": [{"class": "CrashLoop", "for": "1m"}],
            "actions": [{"action": "Delete"}],
            "safety": {"maxConcurrent": 20, "rate": {"actions": 20, "per": "1m"}}}}))
    .unwrap();
    Change::policy(Event::Apply(policy))
}

/// A pod of `workload` crash-looping for an hour, last ended with `exit` and `message`.
fn crashing(workload: &str, i: usize, exit: i32, message: &str) -> Change {
    let name = format!("{workload}-{i}");
    pod(json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "creationTimestamp": at(T0 - 7200),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": workload, "uid": format!("rs-{workload}"), "controller": true}]},
        "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "img:1"}]},
        "status": {"phase": "Running", "startTime": at(T0 - 3600),
            "containerStatuses": [{"name": "app", "image": "img:1", "imageID": "", "ready": false, "restartCount": 12,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}},
                "lastState": {"terminated": {"exitCode": exit, "reason": "Error", "message": message}}}]}}))
}

#[test]
fn a_burst_arriving_change_by_change_is_one_cause_before_any_of_it_is_acted_on() {
    let (mut e, clock, mut work) = acting();
    listed(&mut e);
    e.apply(node("n1", "True", T0 - 86_400));
    e.apply(crashing_policy());
    // Six pods of three workloads, failing alike for an hour, delivered one by one (each already
    // past the policy's `for`), and a seventh crashing for its own reason.
    for workload in ["cart", "pay", "mail"] {
        for i in 0..2 {
            e.apply(crashing(
                workload,
                i,
                1,
                "dial tcp: lookup db on 10.96.0.10:53: i/o timeout",
            ));
        }
    }
    e.apply(crashing("lonely", 0, 2, "panic: missing key"));
    assert!(
        requests(&mut work).is_empty(),
        "decided before the burst's peers could show"
    );
    clock.set(T0 + 2);
    e.fire_due_timers();
    let decided: Vec<(String, Option<HoldReason>)> = requests(&mut work)
        .into_iter()
        .map(|r| (r.spec.target.name.clone(), r.hold.map(|h| h.reason)))
        .collect();
    // One record for the cause (its first member held), none for the five others; the lone
    // crash loop acted on.
    assert_eq!(decided.len(), 2, "{decided:?}");
    for (name, hold) in &decided {
        let expected = (!name.starts_with("lonely")).then_some(HoldReason::Correlated);
        assert_eq!(*hold, expected, "{name}: {decided:?}");
    }
    // The others are held all the same, and stay so: nothing is sent for them later.
    clock.set(T0 + 600);
    e.fire_due_timers();
    assert!(requests(&mut work).is_empty());
    assert_eq!(e.correlated().len(), 1);
}
