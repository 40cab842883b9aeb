//! The pod lifecycle timeline: what is kept, for which pods, how far, and how it reads.

mod common;

use common::*;
use kube_healer_core::carry::carry_pod;
use kube_healer_core::convert::{Interner, event_view, pod_view};
use kube_healer_core::timeline::{self, MOMENTS_KEPT};
use kube_healer_core::view::{PodView, Secs};
use serde_json::{Value, json};

fn view(v: Value, interner: &mut Interner) -> PodView {
    pod_view(&serde_json::from_value(v).unwrap(), interner).unwrap()
}

/// Feeds the statuses to a pod as the watcher would, each `step` seconds apart.
fn watched(statuses: &[Value], interner: &mut Interner) -> PodView {
    let mut last: Option<PodView> = None;
    for (i, status) in statuses.iter().enumerate() {
        let mut v = view(pod("web-1", Some("n1"), status.clone()), interner);
        let now = NOW - 600 + 10 * i as Secs;
        match &last {
            Some(old) => carry_pod(&mut v, old, now),
            None => timeline::carry(&mut v, None, now),
        }
        last = Some(v);
    }
    last.unwrap()
}

fn details(v: &PodView) -> Vec<String> {
    timeline::evidence(v, std::iter::empty(), NOW)
        .into_iter()
        .map(|e| e.detail)
        .collect()
}

/// Pending, its container waiting (Ready=False, as the kubelet reports it then).
fn waiting_for(reason: &str, restarts: i32) -> Value {
    json!({"phase": "Pending", "startTime": at(-1800), "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": at(-1800)},
        {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": at(-1800)}],
        "containerStatuses": [{"name": "app", "image": "registry.example/app:1.0", "imageID": "", "ready": false, "restartCount": restarts,
        "state": {"waiting": {"reason": reason, "message": "..."}}}]})
}

fn creating() -> Value {
    waiting_for("ContainerCreating", 0)
}

/// Running, its container in CrashLoopBackOff.
fn crashing(restarts: i32) -> Value {
    json!({"phase": "Running", "startTime": at(-1800), "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
        "containerStatuses": [{"name": "app", "image": "registry.example/app:1.0", "imageID": "", "ready": false, "restartCount": restarts,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}}]})
}

fn ready(started: Secs) -> Value {
    json!({"phase": "Running", "startTime": at(-1800), "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "app", "image": "registry.example/app:1.0", "imageID": "", "ready": true, "restartCount": 0,
        "state": {"running": {"startedAt": at(started)}}}]})
}

#[test]
fn a_pod_that_starts_cleanly_keeps_nothing() {
    let mut interner = Interner::default();
    let v = watched(&[creating(), creating(), ready(-560)], &mut interner);
    assert!(v.timeline.is_empty());
    // Its story is still told, from the object itself.
    let story = details(&v);
    assert_eq!(story.first().map(String::as_str), Some("created"));
    assert!(story.iter().any(|d| d == "container app running"), "{story:?}");
}

#[test]
fn trouble_starts_a_history_that_keeps_each_change_the_object_forgets() {
    let mut interner = Interner::default();
    let v = watched(
        &[
            creating(),
            waiting_for("ErrImagePull", 0),
            waiting_for("ImagePullBackOff", 0),
            waiting_for("ErrImagePull", 0),
            ready(-560),
        ],
        &mut interner,
    );
    assert!(!v.timeline.is_empty());
    let story = details(&v);
    let container: Vec<&str> = story
        .iter()
        .filter(|d| d.starts_with("container "))
        .map(String::as_str)
        .collect();
    assert_eq!(
        container,
        [
            "container app waiting: ContainerCreating",
            "container app waiting: ErrImagePull",
            "container app waiting: ImagePullBackOff",
            "container app waiting: ErrImagePull",
            "container app running",
        ]
    );
    // The pod became Running: the phase change and the Ready condition clearing are kept.
    assert!(story.iter().any(|d| d == "phase Running"), "{story:?}");
    assert!(story.iter().any(|d| d == "Ready=True"), "{story:?}");
    // Oldest first.
    let times: Vec<_> = timeline::evidence(&v, std::iter::empty(), NOW)
        .into_iter()
        .map(|e| e.at.0)
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

#[test]
fn a_crash_loop_keeps_its_first_moment_and_its_latest_within_the_bound() {
    let mut interner = Interner::default();
    let statuses: Vec<Value> = (0..40)
        // Each run starts as the watcher sees it (statuses come 10 s apart from NOW - 600).
        .flat_map(|i| [crashing(i), running(i + 1, -600 + 10 * (2 * i as Secs + 1))])
        .collect();
    let v = watched(&statuses, &mut interner);
    let (kept, dropped) = v.timeline.moments();
    assert_eq!(kept.len(), MOMENTS_KEPT);
    assert!(dropped > 0);
    let story = details(&v);
    assert_eq!(story[0], "created");
    assert_eq!(story[1], format!("{dropped} changes left out"));
    let last_container = story.iter().rev().find(|d| d.starts_with("container "));
    assert_eq!(last_container.unwrap(), "container app running (40 restarts)");
}

#[test]
fn a_pod_already_in_trouble_when_first_seen_starts_from_its_view() {
    let mut interner = Interner::default();
    let v = watched(&[waiting_for("ImagePullBackOff", 0)], &mut interner);
    let (kept, _) = v.timeline.moments();
    assert!(!kept.is_empty());
    assert!(details(&v).contains(&"container app waiting: ImagePullBackOff".to_string()));
}

#[test]
fn a_pod_recreated_under_the_same_name_does_not_inherit_the_history() {
    let mut interner = Interner::default();
    let old = watched(&[creating(), waiting_for("ErrImagePull", 0)], &mut interner);
    assert!(!old.timeline.is_empty());
    let mut fresh = view(pod("web-1", Some("n1"), creating()), &mut interner);
    fresh.uid = kube_healer_core::view::Uid::parse("another-uid");
    carry_pod(&mut fresh, &old, NOW);
    assert!(fresh.timeline.is_empty());
}

#[test]
fn unschedulable_is_trouble_and_its_clearing_is_kept() {
    let mut interner = Interner::default();
    let pending = json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/3 nodes are available", "lastTransitionTime": at(-3000)}]});
    let unbound = |status: Value| view(pod("web-1", None, status), &mut Interner::default());
    let mut first = unbound(pending);
    timeline::carry(&mut first, None, NOW - 100);
    let mut bound = view(pod("web-1", Some("n1"), creating()), &mut interner);
    carry_pod(&mut bound, &first, NOW - 50);
    let story = details(&bound);
    assert!(
        story.contains(&"PodScheduled=False (Unschedulable)".to_string()),
        "{story:?}"
    );
    assert!(story.contains(&"PodScheduled=True".to_string()), "{story:?}");
    assert!(story.contains(&"scheduled to n1".to_string()), "{story:?}");
}

#[test]
fn events_are_merged_in_time_order_with_their_counts() {
    let mut interner = Interner::default();
    let v = watched(&[creating(), waiting_for("ErrImagePull", 0)], &mut interner);
    let events: Vec<_> = [
        event(
            "Pod",
            "web-1",
            "Failed",
            "Failed to pull image: denied",
            7,
            -590,
            -30,
        ),
        event(
            "Pod",
            "web-1",
            "Scheduled",
            "Successfully assigned shop/web-1 to n1",
            1,
            -3599,
            -3599,
        ),
    ]
    .into_iter()
    .map(|e| event_view(&serde_json::from_value(e).unwrap(), &mut interner).unwrap())
    .collect();
    let entries = timeline::evidence(&v, events.iter(), NOW);
    let kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds[..3], ["created", "phase", "event"], "{entries:?}");
    let failed = entries.iter().find(|e| e.detail.starts_with("Failed")).unwrap();
    assert!(
        failed.detail.starts_with("Failed (x7, last "),
        "{}",
        failed.detail
    );
    assert!(entries.windows(2).all(|w| w[0].at.0 <= w[1].at.0));
}

#[test]
fn tellings_merge_into_one_story_without_repeats() {
    let mut interner = Interner::default();
    let watched_pod = watched(
        &[
            creating(),
            waiting_for("ErrImagePull", 0),
            waiting_for("ImagePullBackOff", 0),
        ],
        &mut interner,
    );
    let failed = |count: i32, last: Secs| {
        event_view(
            &serde_json::from_value(event("Pod", "web-1", "Failed", "denied", count, -590, last)).unwrap(),
            &mut Interner::default(),
        )
        .unwrap()
    };
    let recorded = timeline::evidence(&watched_pod, [failed(2, -560)].iter(), NOW - 500);
    // Now, from a dump: the object shows only its last state, and the event has gone on.
    let dumped = view(
        pod("web-1", Some("n1"), waiting_for("ImagePullBackOff", 0)),
        &mut interner,
    );
    let now = timeline::evidence(&dumped, [failed(9, -10)].iter(), NOW);
    let story = timeline::merge(recorded.into_iter().chain(now));
    let said: Vec<&str> = story.iter().map(|e| e.detail.as_str()).collect();
    let waits: Vec<&&str> = said.iter().filter(|d| d.starts_with("container ")).collect();
    assert_eq!(
        waits,
        [
            &"container app waiting: ContainerCreating",
            &"container app waiting: ErrImagePull",
            &"container app waiting: ImagePullBackOff"
        ],
        "{said:#?}"
    );
    assert_eq!(said.iter().filter(|d| **d == "created").count(), 1, "{said:#?}");
    let events: Vec<&&str> = said.iter().filter(|d| d.starts_with("Failed")).collect();
    assert_eq!(events.len(), 1, "{said:#?}");
    assert!(events[0].starts_with("Failed (x9, "), "{said:#?}");
}

#[test]
fn a_nodes_timeline_tells_its_ready_transitions_failing_conditions_and_events() {
    use kube_healer_core::carry::carry_node;
    use kube_healer_core::convert::node_view;
    let mut interner = Interner::default();
    let node_at = |ready: &str, since: Secs, interner: &mut Interner| {
        let v = node(
            "n1",
            json!([{"type": "Ready", "status": ready, "reason": if ready == "True" { "KubeletReady" } else { "KubeletNotReady" },
                "lastTransitionTime": at(since)},
               {"type": "MemoryPressure", "status": "False", "lastTransitionTime": at(-86400)},
               {"type": "KernelDeadlock", "status": "True", "reason": "DockerHung", "lastTransitionTime": at(-300)}]),
        );
        node_view(&serde_json::from_value(v).unwrap(), interner).unwrap()
    };
    let mut v = node_at("True", -86400, &mut interner);
    carry_node(&mut v, None, NOW - 400);
    for (i, (ready, since)) in [("False", -200), ("True", -100), ("False", -50)]
        .into_iter()
        .enumerate()
    {
        let mut next = node_at(ready, since, &mut interner);
        carry_node(&mut next, Some(&v), NOW - 200 + 50 * i as Secs + 1);
        v = next;
    }
    let deadlock = event(
        "Node",
        "n1",
        "KernelOops",
        "kernel: BUG: unable to handle",
        1,
        -290,
        -290,
    );
    let events = [event_view(&serde_json::from_value(deadlock).unwrap(), &mut interner).unwrap()];
    let said: Vec<String> = timeline::node_evidence(&v, events.iter(), NOW)
        .into_iter()
        .map(|e| e.detail)
        .collect();
    assert_eq!(
        said,
        [
            "KernelDeadlock=True (DockerHung)",
            "KernelOops: kernel: BUG: unable to handle",
            "Ready changed",
            "Ready changed",
            "Ready=False (KubeletNotReady)",
        ],
        "{said:#?}"
    );
}

#[test]
fn a_pod_condition_without_a_transition_time_is_dated_when_first_seen() {
    use kube_healer_core::carry::carry_pod_conditions;
    let status = |ready: &str| {
        json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"containers": [{"name": "app", "image": "app:1"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": ready, "reason": "ContainersNotReady"}]}})
    };
    let view = |v| pod_view(&serde_json::from_value(v).unwrap(), &mut Interner::default()).unwrap();
    let mut first = view(status("False"));
    carry_pod_conditions(&mut first, None, NOW - 600);
    assert_eq!(first.conditions[0].since, Some(NOW - 600));
    let mut later = view(status("False"));
    carry_pod(&mut later, &first, NOW);
    assert_eq!(later.conditions[0].since, Some(NOW - 600), "kept while it holds");
    let mut changed = view(status("Unknown"));
    carry_pod(&mut changed, &later, NOW);
    assert_eq!(changed.conditions[0].since, Some(NOW), "a new status starts anew");
}
