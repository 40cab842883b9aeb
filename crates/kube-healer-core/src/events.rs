//! A bounded index of events by the object they are about.

use std::collections::HashMap;

use kube_healer_api::record::EventEvidence;

use crate::finding::event_evidence;
use crate::view::{EventView, Secs};

/// Occurrences of some events within a window: how many, since when, and their evidence.
#[derive(Debug, Default)]
pub struct Tally {
    pub count: u32,
    pub first: Option<Secs>,
    /// Some of `count` is estimated (a series that began before the window).
    pub estimated: bool,
    pub events: Vec<EventEvidence>,
}

impl Tally {
    /// The count as a person reads it: "about 8" when part of it is estimated.
    pub fn said(&self) -> String {
        if self.estimated {
            format!("about {}", self.count)
        } else {
            self.count.to_string()
        }
    }
}

/// The occurrences of one series at or after `from`, and the first of them; `estimated` when the
/// series began before `from`. A series is `count` occurrences from `first_seen` to `last_seen`
/// (both of them occurrences); where it straddles the window its occurrences are taken as evenly
/// spaced, which is what a loop on a timer or a steady retry produces.
pub fn within(e: &EventView, from: Secs) -> Option<(u32, Secs, bool)> {
    if e.last_seen < from {
        return None;
    }
    let count = e.count.max(1);
    if e.first_seen >= from {
        return Some((count, e.first_seen, false));
    }
    if count == 1 {
        // first_seen < from <= last_seen with one occurrence: the times disagree; the last one
        // is the occurrence we can place.
        return Some((1, e.last_seen, false));
    }
    let span = (e.last_seen - e.first_seen) as u128;
    let gaps = (count - 1) as u128;
    // Occurrence k (0-based) is at first + k * span / gaps; the first inside the window is the
    // smallest k with k * span >= (from - first) * gaps.
    let behind = (from - e.first_seen) as u128 * gaps;
    let k = behind.div_ceil(span.max(1)).min(gaps) as u32;
    let at = e.first_seen + ((k as u128 * span) / gaps) as Secs;
    Some((count - k, at.max(from), true))
}

/// Counts the occurrences of the events that `keep` accepts within the window that starts at
/// `from`. Each stored series (one per Event object) adds its own count; a series that began
/// before the window adds the estimate of [`within`].
pub fn tally<'a>(
    events: impl Iterator<Item = &'a EventView>,
    from: Secs,
    keep: impl Fn(&EventView) -> bool,
) -> Tally {
    let mut t = Tally::default();
    for e in events.filter(|e| keep(e)) {
        let Some((n, start, estimated)) = within(e, from) else {
            continue;
        };
        t.count += n;
        t.estimated |= estimated;
        t.first = Some(t.first.map_or(start, |f| f.min(start)));
        t.events.push(event_evidence(e, n, estimated));
    }
    t
}

/// Events by involved object. Bounded: at most `max_per_object` series per object (the most
/// recent kept) and none older than `max_age` after [`EventIndex::prune`].
#[derive(Clone, Debug)]
pub struct EventIndex {
    by_name: HashMap<Box<str>, Vec<EventView>>,
    max_per_object: usize,
    max_age: Secs,
    len: usize,
}

impl Default for EventIndex {
    fn default() -> Self {
        EventIndex::new(16, EventIndex::DEFAULT_AGE)
    }
}

impl EventIndex {
    pub fn new(max_per_object: usize, max_age: Secs) -> Self {
        EventIndex {
            by_name: HashMap::new(),
            max_per_object: max_per_object.max(1),
            max_age,
            len: 0,
        }
    }

    /// Events are kept at least this long: the API server's default `--event-ttl`, and the
    /// longest default window.
    pub const DEFAULT_AGE: Secs = 3600;

    /// Keeps events for `window` when that is longer than the default: a policy that counts over
    /// six hours needs six hours of them.
    pub fn keep_for(&mut self, window: Secs) {
        self.max_age = window.max(Self::DEFAULT_AGE);
    }

    /// Adds an event, replacing the stored one of the same Event object (by uid, else by
    /// namespace/name). An event with no identity at all replaces the one of the same object,
    /// reason and message. At most `max_per_object` series are kept for each involved object:
    /// the one last seen longest ago goes.
    pub fn insert(&mut self, event: EventView) {
        let list = self.by_name.entry(Box::from(&*event.object.name)).or_default();
        let same = |e: &EventView| match (&event.id, &e.id) {
            (Some(a), Some(b)) => a == b,
            (None, None) => {
                e.object == event.object && e.reason == event.reason && e.message == event.message
            }
            _ => false,
        };
        if let Some(existing) = list.iter_mut().find(|e| same(e)) {
            *existing = event;
            return;
        }
        let object = event.object.clone();
        list.push(event);
        self.len += 1;
        // The cap is per involved object, not per name: a Pod in one namespace cannot push out
        // the evidence about a Node or a Pod of the same name elsewhere.
        let (kept, oldest) = list.iter().enumerate().filter(|(_, e)| e.object == object).fold(
            (0, None::<(usize, Secs)>),
            |(n, oldest), (i, e)| {
                let older = oldest.is_none_or(|(_, t)| e.last_seen < t);
                (n + 1, if older { Some((i, e.last_seen)) } else { oldest })
            },
        );
        if kept > self.max_per_object
            && let Some((i, _)) = oldest
        {
            list.swap_remove(i);
            self.len -= 1;
        }
    }

    /// Removes events last seen before `now - max_age`.
    pub fn prune(&mut self, now: Secs) {
        let cutoff = now - self.max_age;
        let mut removed = 0;
        self.by_name.retain(|_, list| {
            let before = list.len();
            list.retain(|e| e.last_seen >= cutoff);
            removed += before - list.len();
            !list.is_empty()
        });
        self.len -= removed;
    }

    /// The events about one object.
    pub fn about<'a>(
        &'a self,
        kind: &'a str,
        namespace: Option<&'a str>,
        name: &str,
    ) -> impl Iterator<Item = &'a EventView> + 'a {
        self.by_name
            .get(name)
            .into_iter()
            .flatten()
            .filter(move |e| &*e.object.kind == kind && e.object.namespace.as_deref() == namespace)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
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
}
