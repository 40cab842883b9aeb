//! A failure is over only once it has stayed clear for the debounce: a node's condition that
//! drops and comes back within it is the same failure (no revert, no new ladder). And a failure
//! that comes back within its policy's cooldown after the revert continues its episode: its
//! ladder is taken up from the records (step, decision, episode labels), so it goes on to the
//! next step under the cooldown instead of starting at step 1 again.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::runtime::watcher::Event;
use kube_healer_api::{DECISION_LABEL, EPISODE_LABEL, STEP_LABEL, TARGET_UID_LABEL};
use kube_healer_operator::protocol::Work;
use kube_healer_operator::watch::Change;
use serde_json::json;

use super::*;

/// Cordon, then an Event 5 minutes on, a 10-minute cooldown, on KernelDeadlock for 1 minute.
fn deadlock_ladder() -> Change {
    let policy: kube_healer_api::HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": "deadlock", "generation": 1},
        "spec": {"target": {"kind": "Node"},
            "conditions": [{"class": "NodeCondition", "conditionType": "KernelDeadlock", "for": "1m"}],
            "actions": [{"action": "Cordon", "escalateAfter": "5m"}, {"action": "Event"}],
            "safety": {"maxUnhealthy": "100%", "cooldown": "10m", "maxAttempts": 3, "maxConcurrent": 10}}}))
    .unwrap();
    Change::policy(Event::Apply(policy))
}

/// Node n1 with KernelDeadlock `status` since `since`, cordoned by the policy once it was.
fn n1(status: &str, since: Secs, cordoned: bool) -> Change {
    let annotations = match cordoned {
        true => json!({kube_healer_api::CORDONED_BY_ANNOTATION: "deadlock"}),
        false => json!({}),
    };
    let node: Node = serde_json::from_value(
        json!({"metadata": {"name": "n1", "uid": "n1", "annotations": annotations},
        "spec": {"unschedulable": cordoned},
        "status": {"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": at(T0 - 86_400)},
            {"type": "KernelDeadlock", "status": status, "lastTransitionTime": at(since)}]}}),
    )
    .unwrap();
    Change::Node(Box::new(Event::Apply(node)))
}

/// The work sent since the last call: (kind, step, episode) for actions, ("revert", 0, 0).
fn sent(work: &mut tokio::sync::mpsc::UnboundedReceiver<Work>) -> Vec<(String, i32, Secs)> {
    let mut out = Vec::new();
    while let Ok(w) = work.try_recv() {
        match w {
            Work::Act(req) => {
                let episode = req.spec.failing_since.as_ref().map_or(0, |t| t.0.as_second());
                let what = match &req.hold {
                    Some(h) => h.reason.to_string(),
                    None => req.spec.action.to_string(),
                };
                out.push((what, req.spec.step, episode));
            }
            Work::Revert { .. } => out.push(("revert".into(), 0, 0)),
            _ => {}
        }
    }
    out
}

#[test]
fn a_failure_is_over_after_its_debounce_and_one_back_within_the_cooldown_goes_on() {
    let (e, clock, mut work) = acting();
    let mut e = e.with_clear_debounce(Duration::from_secs(60));
    listed(&mut e);
    e.apply(deadlock_ladder());
    let episode = T0 - 3600;
    e.apply(n1("True", episode, false));
    // Decided once it has been known PEERS_SETTLE (2 s).
    clock.set(T0 + 2);
    e.fire_due_timers();
    assert_eq!(sent(&mut work), [("Cordon".to_string(), 1, episode)]);
    // The record of it, as the watch shows it.
    e.apply(record_of(
        "deadlock",
        "deadlock-1",
        T0,
        json!({TARGET_UID_LABEL: "n1", DECISION_LABEL: "act", EPISODE_LABEL: episode.to_string(), STEP_LABEL: "1"}),
    ));
    // Clear for 20 s, back, clear again: within the debounce, the same failure; nothing sent.
    clock.set(T0 + 10);
    e.apply(n1("False", T0 + 10, true));
    clock.set(T0 + 30);
    e.apply(n1("True", T0 + 30, true));
    clock.set(T0 + 40);
    e.apply(n1("False", T0 + 40, true));
    clock.set(T0 + 99);
    e.fire_due_timers();
    assert!(sent(&mut work).is_empty(), "reverted within the debounce");
    // Clear for the whole debounce: over, and the cordon is lifted.
    clock.set(T0 + 100);
    e.fire_due_timers();
    assert_eq!(sent(&mut work), [("revert".to_string(), 0, 0)]);
    e.apply(n1("False", T0 + 40, false));

    // Back at T0 + 200, within the 10-minute cooldown of the cordon: the same episode, taken up
    // from the record. Its latest step is decided again under its record's name (the executor
    // finds it done: a crash could have cut it short) and counts as taken at T0; step 2 is due
    // at the cordon + 5 m, held by the cooldown until T0 + 600.
    clock.set(T0 + 200);
    e.apply(n1("True", T0 + 200, false));
    let mut seen = sent(&mut work);
    for t in [T0 + 300, T0 + 600] {
        clock.set(t);
        e.fire_due_timers();
        seen.extend(sent(&mut work));
    }
    assert_eq!(
        seen,
        [
            ("Cordon".to_string(), 1, episode),
            ("Cooldown".to_string(), 2, episode),
            ("Event".to_string(), 2, episode)
        ],
        "went on up the ladder of its episode"
    );
}

/// A failure that blinks within the debounce (a crash loop's container runs between its
/// back-offs) keeps counting its `for` from its start: each blink must not push it back, or a
/// crash loop would never be due. A return is seen anew, so it is decided only once its peers
/// had time to show (PEERS_SETTLE), not in the instant it comes back.
#[test]
fn a_blinking_failure_keeps_its_for_and_a_return_waits_for_its_peers() {
    let (e, clock, mut work) = acting();
    let mut e = e.with_clear_debounce(Duration::from_secs(60));
    listed(&mut e);
    e.apply(deadlock_ladder());
    e.apply(n1("True", T0, false));
    let mut blink = |at: Secs| {
        clock.set(T0 + at);
        e.apply(n1("False", T0 + at, false));
        clock.set(T0 + at + 2);
        e.apply(n1("True", T0 + at + 2, false));
        e.fire_due_timers();
    };
    for at in [10, 20, 30, 40, 50, 58] {
        blink(at);
    }
    assert!(
        sent(&mut work).is_empty(),
        "due within its for, or the instant it came back"
    );
    // Known again since T0 + 60: decided once settled (PEERS_SETTLE), from its start's `for`.
    clock.set(T0 + 62);
    e.fire_due_timers();
    assert_eq!(
        sent(&mut work),
        [("Cordon".to_string(), 1, T0)],
        "due on time from its start"
    );
}
