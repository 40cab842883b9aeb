//! maxDisruptedPerWorkload: how many of one workload's pods kube-healer may be replacing at once.

use kube_healer_api::{ActionKind, HealingPolicySpec, reasons};
use kube_healer_core::decide::{
    Budget, Decision, Facts, Ladder, Removal, SETTLE, WorkloadPods, decide, max_disrupted, settled,
};
use kube_healer_core::view::PodView;
use serde_json::json;

mod common;

const T: i64 = 1_800_000_000;

fn spec(action: &str, limit: serde_json::Value) -> HealingPolicySpec {
    let mut safety = json!({"maxConcurrent": 10, "rate": {"actions": 100, "per": "10m"}});
    if !limit.is_null() {
        safety["maxDisruptedPerWorkload"] = limit;
    }
    serde_json::from_value(json!({
        "target": {"kind": "Pod"},
        "conditions": [{"class": "CrashLoop", "for": "1m"}],
        "actions": [{"action": action}],
        "safety": safety,
    }))
    .unwrap()
}

/// Removals decided at the times given, each of a pod created long before; settled pods
/// created at the times given.
fn workload(pods: usize, removals: &[i64], settled: &[i64]) -> WorkloadPods {
    WorkloadPods {
        workload: "Deployment shop/web".into(),
        pods,
        removals: removals
            .iter()
            .enumerate()
            .map(|(i, at)| Removal {
                at: *at,
                pod: format!("old-{i}"),
                pod_created: T - 3600,
            })
            .collect(),
        settled: settled
            .iter()
            .enumerate()
            .map(|(i, created)| (format!("new-{i}"), *created))
            .collect(),
    }
}

fn decide_at(s: &HealingPolicySpec, w: WorkloadPods, now: i64) -> Decision {
    let facts = Facts {
        now,
        workload: Some(w),
        ..Default::default()
    };
    decide(s, T, &Ladder::new(T - 60), &Budget::default(), &facts)
}

fn is_held(d: &Decision) -> bool {
    matches!(d, Decision::Hold { reason, .. } if reason.as_str() == reasons::WORKLOAD_LIMIT)
}

#[test]
fn the_default_is_one_pod_or_a_quarter_whichever_is_larger() {
    let s = spec("Delete", json!(null)).safety;
    assert_eq!(max_disrupted(&s, 1), 1);
    assert_eq!(max_disrupted(&s, 4), 1);
    assert_eq!(max_disrupted(&s, 8), 2);
    assert_eq!(max_disrupted(&s, 10), 2);
    assert_eq!(max_disrupted(&s, 100), 25);
    assert_eq!(max_disrupted(&spec("Delete", json!(3)).safety, 2), 3);
    assert_eq!(max_disrupted(&spec("Delete", json!("50%")).safety, 10), 5);
    assert_eq!(max_disrupted(&spec("Delete", json!("10%")).safety, 4), 1);
}

#[test]
fn a_removal_being_replaced_holds_the_next_of_its_workload() {
    let s = spec("Delete", json!(null));
    // Nothing replaced yet: the first removal goes.
    assert!(matches!(
        decide_at(&s, workload(4, &[], &[]), T),
        Decision::Act { .. }
    ));
    // One pod of four being replaced (the default allows one): the next waits, saying why, and
    // is decided again when the removal's place frees at the latest.
    let d = decide_at(&s, workload(4, &[T - 5], &[T - 3600]), T);
    assert!(is_held(&d), "{d:?}");
    let Decision::Hold {
        message, retry_at, ..
    } = &d
    else {
        unreachable!()
    };
    assert!(
        message.contains("Deployment shop/web")
            && message.contains("maxDisruptedPerWorkload allows (default 25%: 1)"),
        "{message}"
    );
    assert_eq!(*retry_at, Some(T - 5 + SETTLE));
    // A replacement created after the removal settled (Ready, or failing on its own): the place
    // is free again.
    assert!(matches!(
        decide_at(&s, workload(4, &[T - 5], &[T - 3]), T),
        Decision::Act { .. }
    ));
    // A replacement that never settles frees it after SETTLE.
    assert!(matches!(
        decide_at(&s, workload(4, &[T - SETTLE], &[]), T),
        Decision::Act { .. }
    ));
    // A replacement that showed its fate and was removed in turn: the first removal's place is
    // free, the second's is taken (its own replacement has not shown anything yet).
    let mut w = workload(1, &[T - 60], &[]);
    w.removals.push(Removal {
        at: T - 20,
        pod: "new-0".into(),
        pod_created: T - 55,
    });
    assert!(is_held(&decide_at(&s, w.clone(), T)));
    w.settled.push(("new-1".into(), T - 15));
    assert!(matches!(decide_at(&s, w.clone(), T), Decision::Act { .. }));
    // A settled replacement whose own removal is decided (still there, not yet seen through)
    // is one pod, not two.
    let mut w = workload(1, &[T - 60], &[T - 55]);
    w.removals.push(Removal {
        at: T - 1,
        pod: "new-0".into(),
        pod_created: T - 55,
    });
    assert!(is_held(&decide_at(&s, w, T)));
    // An Evict escalated to a Delete of the same pod is one removal.
    let mut w = workload(8, &[T - 30], &[]);
    let pod = w.removals[0].pod.clone();
    w.removals.push(Removal {
        at: T - 5,
        pod,
        pod_created: T - 3600,
    });
    assert!(!is_held(&decide_at(&s, w, T)));
    // Eight pods: two at once.
    assert!(!is_held(&decide_at(&s, workload(8, &[T - 5], &[]), T)));
    assert!(is_held(&decide_at(
        &s,
        workload(8, &[T - 5, T - 4], &[T - 3600]),
        T
    )));
}

#[test]
fn only_actions_that_take_a_pod_for_its_controller_to_replace_are_limited() {
    let w = || workload(4, &[T - 5], &[]);
    for action in ["Delete", "Evict", "Reschedule"] {
        assert!(
            is_held(&decide_at(&spec(action, json!(null)), w(), T)),
            "{action}"
        );
    }
    for action in ["Event", "RestartOwner", "ForceDelete"] {
        assert!(
            !is_held(&decide_at(&spec(action, json!(null)), w(), T)),
            "{action}"
        );
    }
    // A pod no controller replaces has no workload to limit.
    let facts = Facts {
        now: T,
        ..Default::default()
    };
    let d = decide(
        &spec("Delete", json!(null)),
        T,
        &Ladder::new(T - 60),
        &Budget::default(),
        &facts,
    );
    assert!(matches!(
        d,
        Decision::Act {
            action: ActionKind::Delete,
            ..
        }
    ));
}

fn view(status: serde_json::Value) -> PodView {
    let pod = serde_json::from_value(common::pod("web-1", Some("n1"), status)).unwrap();
    kube_healer_core::convert::pod_view(&pod, &mut Default::default()).unwrap()
}

#[test]
fn a_pod_settles_when_ready_or_failing_on_its_own_not_while_starting() {
    let ready = view(
        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "image": "i", "imageID": "", "state": {"running": {}}}]}),
    );
    assert!(settled(&ready));
    let creating = view(json!({"phase": "Pending",
        "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
            "state": {"waiting": {"reason": "ContainerCreating"}}}]}));
    assert!(!settled(&creating));
    let crashing = view(json!({"phase": "Running",
        "containerStatuses": [{"name": "app", "ready": false, "restartCount": 2, "image": "i", "imageID": "",
            "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}));
    assert!(settled(&crashing));
    let pulling_fails = view(json!({"phase": "Pending",
        "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
            "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}));
    assert!(settled(&pulling_fails));
}

#[test]
fn a_stopped_replacement_settles_only_a_job_s_removal() {
    // A ReplicaSet's replacement evicted by its kubelet: the ReplicaSet replaces it again, and
    // the workload is still a pod short (the invariants' WorkloadLimit found it: the next pod
    // was removed while the first removal's replacement was a leftover).
    let owned_by = |kind: &str| {
        let mut pod = common::pod(
            "web-1",
            Some("n1"),
            json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory"}),
        );
        pod["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "apps/v1", "kind": kind, "name": "web", "uid": "w", "controller": true}]);
        let pod = serde_json::from_value(pod).unwrap();
        kube_healer_core::convert::pod_view(&pod, &mut Default::default()).unwrap()
    };
    assert!(!settled(&owned_by("ReplicaSet")));
    // A Job's pod that ran to its end has shown what it does.
    assert!(settled(&owned_by("Job")));
}

#[test]
fn cleaning_away_a_pod_stopped_for_good_takes_nothing_from_its_workload() {
    use kube_healer_api::FailureClass;
    use kube_healer_core::decide::disrupts_workload;
    assert!(disrupts_workload(FailureClass::CrashLoop, ActionKind::Delete));
    assert!(disrupts_workload(
        FailureClass::StuckContainerCreating,
        ActionKind::Evict
    ));
    assert!(!disrupts_workload(FailureClass::Evicted, ActionKind::Delete));
    assert!(!disrupts_workload(FailureClass::Failed, ActionKind::Delete));
    assert!(!disrupts_workload(
        FailureClass::CrashLoop,
        ActionKind::RestartOwner
    ));
}

/// An eviction's leftovers (stopped pods) are not in the limit's share: a 3-pod ReplicaSet
/// with 5 Evicted pods not yet cleaned away is 3 pods, not 8 (the history checker found a
/// second removal let through on a share of 8).
#[test]
fn an_eviction_s_leftovers_do_not_raise_the_limit_s_share() {
    use kube_healer_api::FailureClass;
    let owned = |name: &str, status: serde_json::Value| {
        let mut pod = common::pod(name, Some("n1"), status);
        pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "w", "controller": true}]);
        kube_healer_core::convert::pod_view(&serde_json::from_value(pod).unwrap(), &mut Default::default())
            .unwrap()
    };
    let mut pods: Vec<PodView> = (0..3)
        .map(|i| owned(&format!("web-{i}"), json!({"phase": "Running"})))
        .collect();
    for i in 0..5 {
        let evicted = json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory"});
        pods.push(owned(&format!("left-{i}"), evicted));
    }
    let w = WorkloadPods::of(
        &pods[0],
        FailureClass::CrashLoop,
        |_| pods.iter().collect(),
        |_| Vec::new(),
    )
    .unwrap();
    assert_eq!(w.pods, 3);
    assert_eq!(max_disrupted(&spec("Delete", json!(null)).safety, w.pods), 1);
}
