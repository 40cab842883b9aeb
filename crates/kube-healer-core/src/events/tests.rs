//! The event index's bounds and the counting of occurrences.
use super::index::weight;
use super::*;
use crate::view::{ObjectKey, Uid};

fn ev(
    id: Option<&str>,
    kind: &str,
    ns: Option<&str>,
    name: &str,
    count: u32,
    first: Secs,
    last: Secs,
) -> EventView {
    EventView {
        id: id.map(|s| Uid::Other(s.into())),
        object: ObjectKey {
            kind: kind.into(),
            namespace: ns.map(Into::into),
            name: name.into(),
        },
        object_uid: None,
        reason: "SystemOOM".into(),
        message: "System OOM encountered".into(),
        count,
        first_seen: first,
        last_seen: last,
    }
}

#[test]
fn within_counts_whole_series_and_estimates_straddling_ones() {
    let e = ev(None, "Node", None, "n", 5, 100, 500);
    assert_eq!(within(&e, 100), Some((5, 100, false)));
    assert_eq!(within(&e, 501), None, "all before the window");
    // Occurrences at 100, 200, 300, 400, 500: from 250 on, 3 of them, the first at 300.
    assert_eq!(within(&e, 250), Some((3, 300, true)));
    assert_eq!(within(&e, 300), Some((3, 300, true)));
    assert_eq!(within(&e, 500), Some((1, 500, true)));
    // One occurrence with inconsistent times: it is placed at its last time.
    assert_eq!(
        within(&ev(None, "Node", None, "n", 1, 100, 500), 250),
        Some((1, 500, false))
    );
}

#[test]
fn separate_objects_are_separate_series_and_an_object_replaces_itself() {
    let mut index = EventIndex::new(16, 3600);
    index.insert(ev(Some("a"), "Node", None, "n", 1, 10, 10));
    index.insert(ev(Some("b"), "Node", None, "n", 1, 20, 20));
    assert_eq!(index.len(), 2);
    index.insert(ev(Some("a"), "Node", None, "n", 2, 10, 30));
    assert_eq!(index.len(), 2);
    let t = tally(index.about("Node", None, "n"), 0, |_| true);
    assert_eq!(t.count, 3);
    // Without an identity, one object, reason and message is one series (the old shape).
    index.insert(ev(None, "Node", None, "n", 4, 10, 40));
    index.insert(ev(None, "Node", None, "n", 5, 10, 50));
    assert_eq!(index.len(), 3);
}

#[test]
fn the_cap_is_per_involved_object() {
    let mut index = EventIndex::new(2, 3600);
    index.insert(ev(Some("node-1"), "Node", None, "web", 1, 10, 10));
    for (i, t) in [(1, 20), (2, 30), (3, 40)] {
        index.insert(ev(Some(&format!("pod-{i}")), "Pod", Some("shop"), "web", 1, t, t));
    }
    assert_eq!(
        index.len(),
        3,
        "two for the pod, one for the node of the same name"
    );
    assert_eq!(
        index.about("Node", None, "web").count(),
        1,
        "the pod's events left the node's alone"
    );
    let kept: Vec<Secs> = index
        .about("Pod", Some("shop"), "web")
        .map(|e| e.last_seen)
        .collect();
    assert!(
        kept.contains(&30) && kept.contains(&40),
        "the most recent kept: {kept:?}"
    );
}

#[test]
fn keep_for_never_shortens_below_the_default() {
    let mut index = EventIndex::default();
    index.insert(ev(Some("a"), "Node", None, "n", 1, 0, 0));
    index.keep_for(60);
    index.prune(3000);
    assert_eq!(index.len(), 1, "kept for the default hour");
    index.keep_for(6 * 3600);
    index.prune(5 * 3600);
    assert_eq!(index.len(), 1, "kept for the six hours a policy counts over");
    index.prune(7 * 3600);
    assert!(index.is_empty());
}

fn flood(i: usize, last: Secs) -> EventView {
    let mut e = ev(
        Some(&format!("ev-{i}")),
        "Pod",
        Some("shop"),
        &format!("web-{i}"),
        1,
        last,
        last,
    );
    e.reason = "BackOff".into();
    e.message = "Back-off restarting failed container app in pod web".into();
    e
}

#[test]
fn the_memory_budget_holds_and_the_least_recently_seen_go_first() {
    let mut index = EventIndex::new(16, Secs::MAX / 4).with_budget(1 << 20);
    // A series seen recently, inserted first: insertion order is not what evicts.
    index.insert(flood(0, 1_000_000));
    for i in 1..50_000 {
        index.insert(flood(i, i as Secs));
        let (bytes, budget) = index.bytes();
        assert!(bytes <= budget, "{bytes} > {budget} after {i} series");
    }
    assert!(index.evicted() > 30_000, "evicted {}", index.evicted());
    assert_eq!(index.len() as u64 + index.evicted(), 50_000);
    assert_eq!(
        index.about("Pod", Some("shop"), "web-0").count(),
        1,
        "the recently seen one stays"
    );
    assert_eq!(
        index.about("Pod", Some("shop"), "web-49999").count(),
        1,
        "the latest stays"
    );
    assert_eq!(
        index.about("Pod", Some("shop"), "web-1").count(),
        0,
        "the oldest went"
    );
    // What is kept is the most recently seen: no kept series older than an evicted one.
    let kept_oldest = (1..50_000)
        .find(|i| index.about("Pod", Some("shop"), &format!("web-{i}")).count() == 1)
        .unwrap();
    assert!(
        (kept_oldest..50_000).all(|i| index.about("Pod", Some("shop"), &format!("web-{i}")).count() == 1)
    );
}

#[test]
fn a_flood_within_one_second_is_bounded_too() {
    let mut index = EventIndex::new(16, Secs::MAX / 4).with_budget(1 << 20);
    for i in 0..20_000 {
        index.insert(flood(i, 500));
    }
    let (bytes, budget) = index.bytes();
    assert!(bytes <= budget && bytes > budget / 2, "{bytes} of {budget}");
    assert_eq!(index.len() as u64 + index.evicted(), 20_000);
}

#[test]
fn bytes_follow_replacements_prunes_and_the_per_object_cap() {
    let mut index = EventIndex::new(2, 3600);
    index.insert(ev(Some("a"), "Node", None, "n", 1, 10, 10));
    let first = index.bytes().0;
    let one = weight(&ev(Some("a"), "Node", None, "n", 1, 10, 10));
    assert!(first > one, "the object's own cost on top of its series");
    index.insert(ev(Some("a"), "Node", None, "n", 2, 10, 20));
    assert_eq!(index.bytes().0, first, "a replaced series costs the same");
    index.insert(ev(Some("b"), "Node", None, "n", 1, 30, 30));
    index.insert(ev(Some("c"), "Node", None, "n", 1, 40, 40));
    assert_eq!(
        (index.len(), index.bytes().0),
        (2, first + one),
        "the per-object cap gave back its bytes"
    );
    index.prune(40 + 3600 + 1);
    assert_eq!((index.len(), index.bytes().0), (0, 0));
}
