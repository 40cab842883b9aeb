//! A failure's episode is where it began when the operator first saw it, kept while it holds:
//! an event series that began before the policy's window, and goes on, is one episode (one
//! ladder, its escalation and maxAttempts), however the window slides.

use k8s_openapi::api::core::v1::Event as K8sEvent;
use kube::runtime::watcher::Event;
use kube_healer_api::reasons;
use kube_healer_operator::watch::Change;
use serde_json::json;

use super::*;

/// Two Event steps 5 minutes apart, at most 3 actions, on pods with 3 FailedMount events within
/// 10 minutes.
fn mount_policy() -> Change {
    let policy: kube_healer_api::HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": "mounts", "generation": 1},
        "spec": {"target": {"kind": "Pod"},
            "conditions": [{"class": "EventPattern", "reason": "FailedMount", "count": 3, "window": "10m"}],
            "actions": [{"action": "Event", "escalateAfter": "5m"}, {"action": "Event", "escalateAfter": "5m"}],
            "safety": {"maxAttempts": 3, "maxConcurrent": 10, "cooldown": "1m", "rate": {"actions": 100, "per": "1m"}}}}))
    .unwrap();
    Change::policy(Event::Apply(policy))
}

/// The kubelet's FailedMount series on pod p: begun an hour before T0, seen `count` times, the
/// last at `last`.
fn mounting(count: i32, last: Secs) -> Change {
    let event: K8sEvent = serde_json::from_value(json!({
        "metadata": {"name": "p.mount", "namespace": "ns", "uid": "ev-1"},
        "involvedObject": {"kind": "Pod", "namespace": "ns", "name": "p", "uid": "p"},
        "reason": "FailedMount", "type": "Warning",
        "message": "MountVolume.SetUp failed for volume \"data\": mount failed: exit status 32",
        "count": count, "firstTimestamp": at(T0 - 3600), "lastTimestamp": at(last)}))
    .unwrap();
    Change::Event(Box::new(Event::Apply(event)))
}

#[test]
fn an_event_series_begun_before_the_window_is_one_episode() {
    let (mut e, clock, mut work) = acting();
    listed(&mut e);
    e.apply(mount_policy());
    e.apply(pod(
        json!({"metadata": {"name": "p", "namespace": "ns", "uid": "p", "creationTimestamp": at(T0 - 7200)},
        "spec": {"nodeName": "n1", "containers": []}, "status": {"phase": "Pending"}}),
    ));
    // An hour of the series going on, a new occurrence every minute.
    let mut decided = Vec::new();
    for minute in 0..60 {
        let now = T0 + minute * 60;
        clock.set(now);
        e.apply(mounting(60 + minute as i32, now));
        e.fire_due_timers();
        decided.extend(requests(&mut work));
    }
    let episodes: std::collections::BTreeSet<_> =
        decided.iter().map(|r| r.spec.failing_since.clone()).collect();
    assert_eq!(episodes.len(), 1, "one episode: {episodes:?}");
    let steps: Vec<(i32, Option<&str>)> = decided
        .iter()
        .map(|r| (r.spec.step, r.hold.as_ref().map(|h| h.reason.as_str())))
        .collect();
    // Step 1, step 2 five minutes later, step 2 again, then held by maxAttempts, once.
    assert_eq!(
        steps,
        [(1, None), (2, None), (2, None), (2, Some(reasons::MAX_ATTEMPTS))],
        "{steps:?}"
    );
    println!("an hour of the series: {} records", decided.len());
}
