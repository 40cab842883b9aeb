//! A failing rollout is a cause (issue 30 (2)): a workload's pods of its new revision fail while
//! its pods of the old revision run fine.

mod common;

use common::*;
use kube_healer_core::{CorrelatedCause, PodsKey};
use serde_json::{Value, json};

/// A pod of Deployment web at revision `hash`, crash-looping or running fine. Revision 6f7c9
/// is the older (its pods made 20 minutes ago), 84bd2 the newer (10 minutes ago).
fn web(hash: &str, i: usize, crashing: bool) -> Value {
    let name = format!("web-{hash}-{i}");
    let created = if hash == "6f7c9" { -1200 } else { -600 };
    let mut p = json!({
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"), "creationTimestamp": at(created),
            "labels": {"app": "web", "pod-template-hash": hash},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("web-{hash}"),
                "uid": format!("rs-{hash}"), "controller": true}]},
        "spec": {"nodeName": format!("n{}", i % 2 + 1), "containers": [{"name": "app", "image": format!("registry.example/web:{hash}")}]},
    });
    p["status"] = if crashing {
        json!({"phase": "Running", "startTime": at(-600),
            "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
            "containerStatuses": [{"name": "app", "image": "", "imageID": "", "ready": false, "restartCount": 8,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": "unknown flag: --listen\n", "finishedAt": at(-60)}}}]})
    } else {
        json!({"phase": "Running", "startTime": at(created),
            "containerStatuses": [{"name": "app", "image": "", "imageID": "", "ready": true, "restartCount": 0,
                "started": true, "state": {"running": {"startedAt": at(created + 50)}}}]})
    };
    p
}

fn rollouts(pods: Vec<Value>) -> Vec<(String, String)> {
    let mut input = input();
    input.nodes = vec![ready_node("n1"), ready_node("n2")];
    input.pods = pods;
    input
        .report()
        .correlated
        .iter()
        .filter_map(|c| match &c.cause {
            CorrelatedCause::Pods(PodsKey::Rollout(key)) => Some((key.clone(), c.message.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_new_revision_failing_beside_the_old_one_running_fine_is_a_failing_rollout() {
    let found = rollouts(vec![
        web("6f7c9", 0, false),
        web("6f7c9", 1, false),
        web("84bd2", 2, true),
    ]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "Deployment shop/web@84bd2");
    assert!(
        found[0].1.contains("kubectl rollout undo deployment/web -n shop"),
        "{}",
        found[0].1
    );
    assert!(found[0].1.contains("revision 6f7c9 run fine"), "{}", found[0].1);
}

#[test]
fn a_revision_with_a_pod_running_fine_or_no_revision_running_fine_is_no_failing_rollout() {
    // One pod of the new revision runs fine: the failing one is its own trouble.
    assert!(
        rollouts(vec![
            web("6f7c9", 0, false),
            web("84bd2", 1, false),
            web("84bd2", 2, true)
        ])
        .is_empty()
    );
    // Nothing runs fine: no evidence the template is what fails.
    assert!(rollouts(vec![web("6f7c9", 0, true), web("84bd2", 1, true)]).is_empty());
    // The old revision fails while the new one runs fine (a rollout that fixes a crash): rolling
    // back would bring the crash back, so it is no failing rollout.
    assert!(
        rollouts(vec![
            web("6f7c9", 0, true),
            web("6f7c9", 1, true),
            web("84bd2", 2, false)
        ])
        .is_empty()
    );
}
