//! Events: a bounded index of them by the object they are about, which Normal events are worth
//! keeping, and how occurrences are counted within a window.

mod index;
mod normal;

use kube_healer_api::record::EventEvidence;

pub use index::EventIndex;
pub use normal::{NORMAL_MARKER, NormalEvents};

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

#[cfg(test)]
mod tests;
