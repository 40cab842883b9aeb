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
    pub events: Vec<EventEvidence>,
}

/// Counts the occurrences of the events that `keep` accepts and that were last seen at or after
/// `from`. A series counts whole when it began inside the window, else once (its earlier
/// occurrences fall outside).
pub fn tally<'a>(
    events: impl Iterator<Item = &'a EventView>,
    from: Secs,
    keep: impl Fn(&EventView) -> bool,
) -> Tally {
    let mut t = Tally::default();
    for e in events.filter(|e| e.last_seen >= from && keep(e)) {
        let n = if e.first_seen >= from { e.count.max(1) } else { 1 };
        t.count += n;
        let start = e.first_seen.max(from);
        t.first = Some(t.first.map_or(start, |f| f.min(start)));
        t.events.push(event_evidence(e, n));
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
        EventIndex::new(16, 3600)
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

    /// Adds an event, replacing the stored one of the same series (object, reason, message).
    pub fn insert(&mut self, event: EventView) {
        let list = self.by_name.entry(Box::from(&*event.object.name)).or_default();
        if let Some(existing) = list
            .iter_mut()
            .find(|e| e.object == event.object && e.reason == event.reason && e.message == event.message)
        {
            *existing = event;
            return;
        }
        list.push(event);
        self.len += 1;
        if list.len() > self.max_per_object {
            let oldest = list
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.last_seen)
                .map(|(i, _)| i)
                .unwrap_or(0);
            list.swap_remove(oldest);
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
