//! Nothing on a store that is not current: no decision before every watch has listed, or while
//! a failed watch lists again.

use super::*;

/// No decision before every watch has listed: a leader elected while its node list still
/// streams must not take a node it has not seen for one gone. A StatefulSet pod stuck
/// Terminating on such a node would be force-deleted (two pods with one identity).
#[test]
fn nothing_is_decided_before_every_watch_has_listed() {
    let (mut e, clock, mut work) = acting();
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
        Change::Record(Box::new(Event::Init)),
        Change::Record(Box::new(Event::InitDone)),
        // The node list has begun and not ended: node n is not known yet.
        Change::Node(Box::new(Event::Init)),
    ]
    .into_iter()
    .chain(Change::no_maintainers())
    {
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
        hold.is_some_and(
            |(r, m)| r == kube_healer_api::reasons::HoldReason::Unsafe && m.contains("not confirmed gone")
        ),
        "{hold:?}"
    );
}

#[test]
fn a_failed_watch_holds_decisions_until_it_has_listed_again() {
    let (mut e, clock, mut work) = acting();
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
    // The records' watch fails: the rates and the actions in flight are counted from the
    // records, so decisions wait for it too, until it has listed again.
    e.apply(Change::WatchFailed("healingactions"));
    e.apply(evicted("gone-2"));
    clock.set(T0 + 7200);
    e.fire_due_timers();
    assert!(
        requests(&mut work).is_empty(),
        "decided while the records' watch was down"
    );
    e.apply(Change::Record(Box::new(Event::Init)));
    e.apply(Change::Record(Box::new(Event::InitDone)));
    let decided = requests(&mut work);
    assert!(
        decided.iter().any(|r| r.spec.target.name == "gone-2"),
        "{decided:?}"
    );
}

/// A record is the memory of a decision: retention keeps those of failures still in progress. A
/// new leader whose record list ends before its pod list must not take the pods it has not seen
/// yet for recovered: nothing is deleted until every watch has listed, then only the records of
/// failures that are over.
#[test]
fn retention_waits_for_every_watch_and_keeps_failures_in_progress() {
    use kube_healer_operator::record::Retention;
    let (e, _clock, mut work) = acting();
    let mut e = e.with_retention(Retention {
        max_age: std::time::Duration::from_secs(86400),
        max_per_policy: 2,
    });
    let record = |n: i64, uid: &str| {
        let meta: kube::core::PartialObjectMeta<kube_healer_api::HealingAction> =
            serde_json::from_value(json!({"apiVersion": "healing.kubehealer.io/v1alpha1",
                "kind": "HealingAction", "metadata": {"name": format!("leftovers-{n}"),
                "creationTimestamp": at(T0 - 1000 + n),
                "labels": {kube_healer_api::POLICY_LABEL: "leftovers",
                    kube_healer_api::TARGET_UID_LABEL: uid}}}))
            .unwrap();
        Change::Record(Box::new(Event::InitApply(meta)))
    };
    let deleted = |work: &mut tokio::sync::mpsc::UnboundedReceiver<Work>| {
        let mut out = Vec::new();
        while let Ok(w) = work.try_recv() {
            if let Work::DeleteRecord { name } = w {
                out.push(name);
            }
        }
        out
    };
    e.apply(Change::policy(Event::Init));
    e.apply(leftovers_policy(json!({"maxConcurrent": 5})));
    e.apply(Change::policy(Event::InitDone));
    // Three records: "a" still fails (Evicted, not yet deleted), "b" and "c" are over.
    e.apply(Change::Record(Box::new(Event::Init)));
    for (n, uid) in [(1, "a"), (2, "b"), (3, "c")] {
        e.apply(record(n, uid));
    }
    e.apply(Change::Record(Box::new(Event::InitDone)));
    assert!(
        deleted(&mut work).is_empty(),
        "records deleted before the pods were listed"
    );
    for change in [
        Change::Pod(Box::new(Event::Init)),
        evicted("a"),
        Change::Pod(Box::new(Event::InitDone)),
        Change::Node(Box::new(Event::Init)),
        Change::Node(Box::new(Event::InitDone)),
        Change::Event(Box::new(Event::Init)),
        Change::Event(Box::new(Event::InitDone)),
        Change::Lease(Box::new(Event::Init)),
        Change::Lease(Box::new(Event::InitDone)),
        Change::Namespace(Box::new(Event::Init)),
    ]
    .into_iter()
    .chain(Change::no_maintainers())
    {
        e.apply(change);
    }
    assert!(deleted(&mut work).is_empty(), "deleted while namespaces list");
    e.apply(Change::Namespace(Box::new(Event::InitDone)));
    assert_eq!(
        deleted(&mut work),
        ["leftovers-2"],
        "the oldest of the failures that are over goes; a's record stays"
    );
}
