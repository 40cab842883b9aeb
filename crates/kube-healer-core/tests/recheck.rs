//! The recheck right before a call: the target read afresh, reclassified with the decision's
//! condition; the call goes ahead only if the failure holds in the same episode and the action
//! is safe on what was read.

mod common;

use common::*;
use kube_healer_api::{ActionKind, HealingPolicy};
use kube_healer_core::convert::{Interner, node_view, pod_view};
use kube_healer_core::decide::{Fresh, Read, Seen, checked_by_version, recheck_node, recheck_pod};
use kube_healer_core::policy::{CompiledCondition, CompiledPolicy};
use kube_healer_core::view::{NodeView, PodView, Secs};
use serde_json::{Value, json};

fn condition(kind: &str, class: &str) -> CompiledCondition {
    let policy: HealingPolicy = serde_json::from_value(json!({"apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": "p"}, "spec": {"target": {"kind": kind}, "conditions": [{"class": class}], "actions": [{"action": "Event"}]}}))
    .unwrap();
    CompiledPolicy::compile(&policy).unwrap().conditions.remove(0)
}

fn pod_of(v: Value) -> PodView {
    pod_view(&serde_json::from_value(v).unwrap(), &mut Interner::default()).unwrap()
}

fn node_of(v: Value) -> NodeView {
    node_view(&serde_json::from_value(v).unwrap(), &mut Interner::default()).unwrap()
}

/// What a decision on `pod` (on `node`) saw, with its finding's start.
fn seen_pod(condition: CompiledCondition, pod: &PodView, node: Option<&NodeView>) -> Seen {
    let snapshot = kube_healer_core::Snapshot::new(
        vec![pod.clone()],
        node.cloned().into_iter().collect(),
        vec![],
        vec![],
    );
    let found = condition
        .find(
            kube_healer_core::policy::TargetView::Pod(&snapshot.pods[0]),
            &snapshot,
            NOW,
        )
        .expect("the decision's finding");
    Seen {
        planned: Default::default(),
        maintenance_ends: 0,
        budget: None,
        condition,
        episode: found.since,
        pod: Some(pod.clone()),
        node: node.cloned(),
        lease: None,
        events: vec![],
        pods_on_node: vec![],
        sick_node: None,
        leases_seen_renewing: None,
        without_fencing: false,
        shutdown: Default::default(),
    }
}

fn pulling() -> Value {
    pod(
        "web",
        Some("n1"),
        waiting(
            "ImagePullBackOff",
            "Back-off pulling image \"registry.example/app:1.0\"",
            0,
        ),
    )
}

#[test]
fn a_pod_that_recovered_or_was_replaced_is_not_acted_on() {
    let decided = pod_of(pulling());
    let seen = seen_pod(condition("Pod", "ImagePullFailure"), &decided, None);
    let still = recheck_pod(
        &seen,
        ActionKind::Delete,
        Read::Found(decided.clone()),
        Read::NotRead,
        NOW + 30,
    );
    assert_eq!(still, Fresh::Holds);
    let healthy = pod_of(pod("web", Some("n1"), running(0, -10)));
    match recheck_pod(
        &seen,
        ActionKind::Delete,
        Read::Found(healthy),
        Read::NotRead,
        NOW + 30,
    ) {
        Fresh::Cleared(why) => assert!(why.contains("no longer ImagePullFailure"), "{why}"),
        other => panic!("{other:?}"),
    }
    let mut other = pulling();
    other["metadata"]["uid"] = json!("uid-another");
    let replaced = recheck_pod(
        &seen,
        ActionKind::Delete,
        Read::Found(pod_of(other)),
        Read::NotRead,
        NOW + 30,
    );
    assert!(matches!(replaced, Fresh::Gone(_)), "{replaced:?}");
    assert!(matches!(
        recheck_pod(&seen, ActionKind::Delete, Read::Gone, Read::NotRead, NOW),
        Fresh::Gone(_)
    ));
}

#[test]
fn a_node_that_recovered_or_failed_anew_is_not_acted_on() {
    let not_ready = |since: Secs| {
        node(
            "w1",
            json!([{"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "PLEG is not healthy: pleg was last seen active 3m0s ago", "lastTransitionTime": at(since)}]),
        )
    };
    let decided = node_of(not_ready(-900));
    let seen = Seen {
        planned: Default::default(),
        maintenance_ends: 0,
        budget: None,
        condition: condition("Node", "NodeNotReady"),
        episode: NOW - 900,
        pod: None,
        node: Some(decided.clone()),
        lease: None,
        events: vec![],
        pods_on_node: vec![],
        sick_node: None,
        leases_seen_renewing: None,
        without_fencing: false,
        shutdown: Default::default(),
    };
    assert_eq!(
        recheck_node(
            &seen,
            ActionKind::Cordon,
            Read::Found(decided),
            Read::NotRead,
            NOW
        ),
        Fresh::Holds
    );
    let ready = node_of(ready_node("w1"));
    assert!(matches!(
        recheck_node(&seen, ActionKind::Cordon, Read::Found(ready), Read::NotRead, NOW),
        Fresh::Cleared(_)
    ));
    // Ready for a moment in between, NotReady again since: another episode, decided afresh.
    match recheck_node(
        &seen,
        ActionKind::Cordon,
        Read::Found(node_of(not_ready(-400))),
        Read::NotRead,
        NOW,
    ) {
        Fresh::Cleared(why) => assert!(why.contains("began anew"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        recheck_node(&seen, ActionKind::Cordon, Read::Gone, Read::NotRead, NOW),
        Fresh::Gone(_)
    ));
}

#[test]
fn a_sick_node_is_still_a_black_hole_when_read_afresh_while_its_cause_was_seen() {
    use kube_healer_core::classify::sick_node::SickNodeCause;
    let decided = node_of(ready_node("w1"));
    let cause = SickNodeCause {
        since: NOW - 300,
        pods: 4,
        message: "4 pods of 4 workloads fail on node w1 while their workloads' pods run fine on other nodes"
            .into(),
    };
    let mut seen = Seen {
        planned: Default::default(),
        maintenance_ends: 0,
        budget: None,
        condition: condition("Node", "NodeBlackHole"),
        episode: NOW - 300,
        pod: None,
        node: Some(decided.clone()),
        lease: None,
        events: vec![],
        pods_on_node: vec![],
        sick_node: Some(cause),
        leases_seen_renewing: None,
        without_fencing: false,
        shutdown: Default::default(),
    };
    let fresh = |seen: &Seen| {
        recheck_node(
            seen,
            ActionKind::Cordon,
            Read::Found(decided.clone()),
            Read::NotRead,
            NOW,
        )
    };
    // Its evidence (siblings running fine elsewhere) is the cluster's: carried from the
    // decision, the node read afresh still shows it.
    assert_eq!(fresh(&seen), Fresh::Holds);
    // No cause seen and no pod unstarted there: nothing holds.
    seen.sick_node = None;
    assert!(matches!(fresh(&seen), Fresh::Cleared(_)), "{:?}", fresh(&seen));
}

#[test]
fn force_deleting_a_stateful_set_pod_waits_while_its_node_reads_back_present() {
    let mut stuck = pod("db-0", Some("gone"), json!({"phase": "Running"}));
    stuck["metadata"]["deletionTimestamp"] = json!(at(-600));
    stuck["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "sts", "controller": true}]);
    let decided = pod_of(stuck);
    let seen = seen_pod(condition("Pod", "StuckTerminating"), &decided, None);
    // The decision saw no such node; read afresh, the node is there (partitioned, not gone).
    let present = node_of(node(
        "gone",
        json!([{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown", "lastTransitionTime": at(-700)}]),
    ));
    match recheck_pod(
        &seen,
        ActionKind::ForceDelete,
        Read::Found(decided.clone()),
        Read::Found(present),
        NOW,
    ) {
        Fresh::Unsafe(why) => assert!(why.contains("out-of-service"), "{why}"),
        other => panic!("{other:?}"),
    }
    // A 404 confirms it gone: ForceDelete goes ahead.
    let gone = recheck_pod(
        &seen,
        ActionKind::ForceDelete,
        Read::Found(decided),
        Read::Gone,
        NOW,
    );
    assert_eq!(gone, Fresh::Holds);
}

/// A pod lost with its node is left to a planned disruption the node, read afresh right before
/// the call, is under (a person cordoned it since the decision, or a lagging view missed it), as
/// the gate leaves it; past the policy's maintenanceGrace, the maintenance went wrong and the
/// call goes ahead. A pod whose failure is its own is not held.
#[test]
fn a_pod_lost_with_a_node_taken_into_maintenance_since_the_decision_is_left_to_it() {
    let down = |spec: Value| {
        let mut n = node(
            "n1",
            json!([{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown", "lastTransitionTime": at(-600)}]),
        );
        n["spec"] = spec;
        node_of(n)
    };
    let lost = pod_of(pod("web-1", Some("n1"), json!({"phase": "Running"})));
    let mut seen = seen_pod(condition("Pod", "NodeLost"), &lost, Some(&down(json!({}))));
    seen.maintenance_ends = NOW + 600;
    let fresh = |seen: &Seen, node: NodeView| {
        recheck_pod(
            seen,
            ActionKind::Delete,
            Read::Found(lost.clone()),
            Read::Found(node),
            NOW,
        )
    };
    assert_eq!(fresh(&seen, down(json!({}))), Fresh::Holds);
    let cordoned = || down(json!({"unschedulable": true}));
    match fresh(&seen, cordoned()) {
        Fresh::Maintenance(why) => {
            assert!(
                why.contains("cordoned by someone else") && why.contains("maintenanceGrace"),
                "{why}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Past the grace, the maintenance went wrong: healed. The grace ends as the gate counts it
    // (from an episode carried over a flap or a return), whatever the failure's latest start.
    seen.maintenance_ends = NOW;
    assert_eq!(fresh(&seen, cordoned()), Fresh::Holds);
    seen.episode = NOW - 60;
    seen.maintenance_ends = NOW + 600;
    let later = pod_of(pod("web-1", Some("n1"), json!({"phase": "Running"})));
    let ready_again = |t: i64| {
        let mut n = node(
            "n1",
            json!([{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown", "lastTransitionTime": at(t)}]),
        );
        n["spec"] = json!({"unschedulable": true});
        node_of(n)
    };
    // The failure's latest start at -60 (it returned), the grace counted from long before: held
    // until the counted end, and not after it.
    let recheck = |seen: &Seen| {
        recheck_pod(
            seen,
            ActionKind::Delete,
            Read::Found(later.clone()),
            Read::Found(ready_again(-60)),
            NOW,
        )
    };
    assert!(
        matches!(recheck(&seen), Fresh::Maintenance(_)),
        "{:?}",
        recheck(&seen)
    );
    seen.maintenance_ends = NOW - 1;
    assert_eq!(recheck(&seen), Fresh::Holds);
}

/// A pod at `version`, with `status`.
fn versioned(status: Value, version: &str) -> PodView {
    let mut v = pod("web", Some("n1"), status);
    v["metadata"]["resourceVersion"] = json!(version);
    pod_of(v)
}

fn evicted_status() -> Value {
    json!({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory.", "startTime": at(-1800)})
}

#[test]
fn only_a_dead_pods_removal_is_checked_by_its_version_instead_of_a_read() {
    let dead = versioned(evicted_status(), "4711");
    let seen = seen_pod(condition("Pod", "Evicted"), &dead, None);
    assert_eq!(checked_by_version(&seen, ActionKind::Delete), Some(4711));
    assert_eq!(checked_by_version(&seen, ActionKind::ForceDelete), Some(4711));
    // Any other action, even on a dead pod, reads and rechecks it first.
    for action in [ActionKind::Evict, ActionKind::Reschedule, ActionKind::Event] {
        assert_eq!(checked_by_version(&seen, action), None, "{action:?}");
    }
    // A version that is not a canonical number is opaque: never sent back.
    for opaque in ["0047", "a1", ""] {
        let pod = versioned(evicted_status(), opaque);
        let seen = seen_pod(condition("Pod", "Evicted"), &pod, None);
        assert_eq!(checked_by_version(&seen, ActionKind::Delete), None, "{opaque:?}");
    }
    // A live pod's failure can clear: it is read and rechecked.
    let live = versioned(waiting("ImagePullBackOff", "Back-off pulling image", 0), "4711");
    let seen = seen_pod(condition("Pod", "ImagePullFailure"), &live, None);
    assert_eq!(checked_by_version(&seen, ActionKind::Delete), None);
}

#[test]
fn a_target_that_opted_out_since_the_decision_is_not_acted_on() {
    let decided = versioned(evicted_status(), "10");
    let seen = seen_pod(condition("Pod", "Evicted"), &decided, None);
    let mut opted = pod("web", Some("n1"), evicted_status());
    opted["metadata"]["annotations"] = json!({kube_healer_api::OPT_OUT_ANNOTATION: "true"});
    match recheck_pod(
        &seen,
        ActionKind::Delete,
        Read::Found(pod_of(opted)),
        Read::NotRead,
        NOW + 5,
    ) {
        Fresh::OptedOut(why) => assert!(why.contains("opt-out"), "{why}"),
        other => panic!("{other:?}"),
    }
}

/// Running, its container started at `started` and unready since `unready`.
fn unready_at(started: Secs, unready: Secs) -> Value {
    let not_ready = json!({"type": "Ready", "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": at(unready)});
    pod(
        "web",
        Some("n1"),
        json!({"phase": "Running", "startTime": at(-7200), "conditions": [not_ready],
            "containerStatuses": [{"name": "app", "image": "registry.example/app:1.0", "imageID": "", "ready": false,
                "started": true, "restartCount": 0, "state": {"running": {"startedAt": at(started)}}}]}),
    )
}

#[test]
fn a_probe_failure_is_rechecked_on_the_events_the_decision_saw() {
    let decided = pod_of(unready_at(-1500, -1200));
    let failed = event(
        "Pod",
        "web",
        "Unhealthy",
        "Readiness probe failed: HTTP probe failed with statuscode: 503",
        120,
        -1490,
        -5,
    );
    let mut interner = Interner::default();
    let events = vec![
        kube_healer_core::convert::event_view(&serde_json::from_value(failed).unwrap(), &mut interner)
            .unwrap(),
    ];
    let seen = Seen {
        planned: Default::default(),
        maintenance_ends: 0,
        budget: None,
        condition: condition("Pod", "ProbeFailure"),
        episode: NOW - 1200,
        pod: Some(decided),
        // Judged only while its node is Ready: the decision saw it so.
        node: Some(node_of(ready_node("n1"))),
        lease: None,
        events,
        pods_on_node: vec![],
        sick_node: None,
        leases_seen_renewing: None,
        without_fencing: false,
        shutdown: Default::default(),
    };
    let at = |fresh: Value| {
        recheck_pod(
            &seen,
            ActionKind::Delete,
            Read::Found(pod_of(fresh)),
            Read::NotRead,
            NOW + 30,
        )
    };
    assert_eq!(at(unready_at(-1500, -1200)), Fresh::Holds);
    match at(pod("web", Some("n1"), running(0, -1500))) {
        Fresh::Cleared(why) => assert!(why.contains("no longer ProbeFailure"), "{why}"),
        other => panic!("ready again: {other:?}"),
    }
    // Restarted (a liveness probe) and failing since: the run began anew.
    match at(unready_at(-100, -1200)) {
        Fresh::Cleared(why) => assert!(why.contains("began anew"), "{why}"),
        other => panic!("restarted: {other:?}"),
    }
    // Restarted, and no failure since: not (yet) a ProbeFailure.
    match at(unready_at(10, -1200)) {
        Fresh::Cleared(why) => assert!(why.contains("no longer ProbeFailure"), "{why}"),
        other => panic!("restarted: {other:?}"),
    }
}

/// A node cordoned by `p`, with `marked` as its marked-at-generation annotation (if any).
fn marked(marked: Option<&str>) -> NodeView {
    let mut node = ready_node("n");
    node["spec"] = json!({"unschedulable": true});
    node["metadata"]["annotations"] = json!({kube_healer_api::CORDONED_BY_ANNOTATION: "p"});
    if let Some(m) = marked {
        node["metadata"]["annotations"][kube_healer_api::MARKED_AT_ANNOTATION] = json!(m);
    }
    node_of(node)
}

#[test]
fn a_policy_judges_only_the_marks_made_under_its_present_spec() {
    use kube_healer_core::decide::judges_its_mark;
    // Made under generation 3: generation 3 judges it; an edit (4) or a delete does not.
    let node = marked(Some("q=9,p=3"));
    assert!(judges_its_mark(&node, "p", Some(Some(3))));
    assert!(!judges_its_mark(&node, "p", Some(Some(4))));
    assert!(!judges_its_mark(&node, "p", None));
    // A policy with no generation (read from a file) does not judge a mark made under one.
    assert!(!judges_its_mark(&node, "p", Some(None)));
    // Another policy's entry is its own.
    assert!(judges_its_mark(&node, "q", Some(Some(9))));
    // A mark with no generation beside it is judged by the policy as it is (an earlier
    // version wrote none), unless the policy is gone.
    let unstamped = marked(None);
    assert!(judges_its_mark(&unstamped, "p", Some(Some(7))));
    assert!(!judges_its_mark(&unstamped, "p", None));
}

/// A node shows it recovered only once it is Ready and its status has settled for the debounce:
/// a KernelDeadlock that cleared a moment ago on a node Ready for an hour is no evidence yet (the
/// invariants' histories: a deleted policy's cordon came off the second the condition cleared).
#[test]
fn a_node_recovered_is_ready_and_unchanged_for_the_debounce() {
    use kube_healer_core::decide::settled_for;
    let settled = |cleared: Secs| {
        node_of(node(
            "n1",
            json!([{"type": "Ready", "status": "True", "lastTransitionTime": at(-3600)},
                {"type": "KernelDeadlock", "status": "False", "lastTransitionTime": at(cleared)}]),
        ))
    };
    assert_eq!(settled_for(&settled(-1), 60, NOW), Err(Some(NOW - 1 + 60)));
    assert_eq!(settled_for(&settled(-60), 60, NOW), Ok(()));
    // Ready for a moment only: not yet, whatever the rest says.
    let back = node_of(node(
        "n1",
        json!([{"type": "Ready", "status": "True", "lastTransitionTime": at(-5)}]),
    ));
    assert_eq!(settled_for(&back, 60, NOW), Err(Some(NOW - 5 + 60)));
    // Not Ready: no time yet.
    let down = node_of(node(
        "n1",
        json!([{"type": "Ready", "status": "Unknown", "lastTransitionTime": at(-3600)}]),
    ));
    assert_eq!(settled_for(&down, 60, NOW), Err(None));
}
