//! A leader that took over counts the long actions an earlier leader left in flight (their
//! records carry the in-flight mark): maxConcurrent holds across the failover; and a restarted
//! operator or a new leader counts the policy's rate from the records: no fresh budget.

use kube::runtime::watcher::Event;
use kube_healer_api::reasons::HoldReason;
use kube_healer_api::{DECISION_LABEL, IN_FLIGHT_LABEL, TARGET_UID_LABEL};
use kube_healer_operator::watch::Change;
use serde_json::json;

use super::*;

/// Evicts Evicted pods (a long action: it may wait on a PodDisruptionBudget), one at a time.
fn one_eviction_at_a_time() -> Change {
    let policy: kube_healer_api::HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": "evictor", "generation": 1},
        "spec": {"target": {"kind": "Pod"}, "conditions": [{"class": "Evicted", "for": "1m"}],
            "actions": [{"action": "Evict"}],
            "safety": {"maxConcurrent": 1, "rate": {"actions": 100, "per": "1m"}}}}))
    .unwrap();
    Change::policy(Event::Apply(policy))
}

/// The evictor's record `name` on pod `uid`: with the in-flight mark until `until`, or without it.
fn record(name: &str, uid: &str, until: Option<Secs>) -> Change {
    let mut labels = json!({TARGET_UID_LABEL: uid, DECISION_LABEL: "act"});
    if let Some(until) = until {
        labels[IN_FLIGHT_LABEL] = json!(until.to_string());
    }
    record_of("evictor", name, T0 - 30, labels)
}

fn targets(work: &mut tokio::sync::mpsc::UnboundedReceiver<Work>) -> Vec<String> {
    requests(work)
        .into_iter()
        .map(|r| {
            assert!(
                r.hold.is_none(),
                "a waiting target is not recorded as held: {:?}",
                r.hold
            );
            r.spec.target.name
        })
        .collect()
}

/// An earlier leader's eviction of "a" is still in flight (its record's mark): "b" waits for it;
/// deciding on "a" resumes it; when its mark comes off, "b" takes the place.
#[test]
fn an_earlier_leaders_action_in_flight_takes_its_place_under_max_concurrent() {
    let (mut e, clock, mut work) = acting();
    listed(&mut e);
    e.apply(record("evictor-old-a", "a", Some(T0 + 600)));
    e.apply(one_eviction_at_a_time());
    e.apply(evicted("b"));
    clock.set(T0 + 61);
    e.fire_due_timers();
    assert!(
        targets(&mut work).is_empty(),
        "b acted beside the earlier leader's eviction of a (maxConcurrent 1)"
    );
    // Deciding on "a" itself is not held by its own record: the request resumes it.
    e.apply(evicted("a"));
    assert_eq!(targets(&mut work), ["a"]);
    // This replica's eviction of "a" ends; the earlier leader's record still carries its mark.
    e.action_done(ActionDone {
        policy: "evictor".into(),
        name: "evictor-old-a".into(),
        was_in_flight: true,
        carried_out: true,
        untouched: false,
        unrecorded: None,
    });
    assert!(targets(&mut work).is_empty(), "a's mark is still on its record");
    // The mark comes off: the place is free, and b takes it.
    e.apply(record("evictor-old-a", "a", None));
    assert_eq!(targets(&mut work), ["b"]);
}

/// A mark left behind (its leader ended before taking it off) counts until its deadline, no
/// longer: the waiting target is decided then, without any change to wake it.
#[test]
fn a_mark_left_behind_counts_until_its_deadline() {
    let (mut e, clock, mut work) = acting();
    listed(&mut e);
    e.apply(record("evictor-old-a", "a", Some(T0 + 200)));
    e.apply(one_eviction_at_a_time());
    e.apply(evicted("b"));
    clock.set(T0 + 61);
    e.fire_due_timers();
    assert!(targets(&mut work).is_empty(), "held while the mark counts");
    clock.set(T0 + 199);
    e.fire_due_timers();
    assert!(targets(&mut work).is_empty(), "held until the deadline");
    clock.set(T0 + 200);
    e.fire_due_timers();
    assert_eq!(targets(&mut work), ["b"]);
}

/// The records of the last window count against the rate, whoever made them: actions and dry
/// runs do, holds do not, and those older than the window do not.
#[test]
fn the_rate_is_counted_from_the_records_after_a_restart() {
    let (mut e, clock, mut work) = acting();
    listed(&mut e);
    for (name, created, decision) in [
        ("leftovers-a", T0 - 100, "act"),
        ("leftovers-b", T0 - 50, "dry-run"),
        ("leftovers-h", T0 - 40, "hold"),
        ("leftovers-old", T0 - 700, "act"),
    ] {
        e.apply(record_of(
            "leftovers",
            name,
            created,
            json!({TARGET_UID_LABEL: name, DECISION_LABEL: decision}),
        ));
    }
    e.apply(leftovers_policy(
        json!({"maxConcurrent": 5, "rate": {"actions": 3, "per": "10m"}}),
    ));
    e.apply(evicted("c"));
    e.apply(evicted("d"));
    clock.set(T0 + 61);
    e.fire_due_timers();
    let decided: Vec<_> = requests(&mut work)
        .into_iter()
        .map(|r| (r.spec.target.name, r.hold.map(|h| h.reason)))
        .collect();
    // a and b are within the 10 minutes: one place is left, and the other pod waits until a's
    // action leaves the window.
    assert_eq!(decided.len(), 2, "{decided:?}");
    assert_eq!(
        decided.iter().filter(|(_, h)| h.is_none()).count(),
        1,
        "{decided:?}"
    );
    assert!(
        decided.iter().any(|(_, h)| *h == Some(HoldReason::RateLimited)),
        "{decided:?}"
    );
}
