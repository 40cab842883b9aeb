//! Events by the object they are about, bounded three ways: series per object, age, and the
//! memory of the whole index. An event flood (a rollout of 150,000 pods is about 750,000 series)
//! costs at most the index's budget: past it, the series last seen longest ago go first.

use std::collections::HashMap;

use crate::view::{EventView, Secs, Shared, Uid};

/// Events by involved object. Bounded: at most `max_per_object` series per object (the most
/// recent kept), none older than `max_age` after [`EventIndex::prune`], and at most `max_bytes`
/// in all (estimated per series by [`weight`]).
#[derive(Clone, Debug)]
pub struct EventIndex {
    /// Keyed by the object's interned name (the key shares the views' allocation).
    by_name: HashMap<Shared, Vec<EventView>>,
    max_per_object: usize,
    max_age: Secs,
    max_bytes: usize,
    len: usize,
    bytes: usize,
    /// Series evicted by the memory budget, ever.
    evicted: u64,
}

impl Default for EventIndex {
    fn default() -> Self {
        EventIndex::new(16, EventIndex::DEFAULT_AGE)
    }
}

/// The share of the budget an eviction frees at once, in tenths: evicting a tenth at a time makes
/// the scan it costs (the whole index) amortized over as many inserts as it frees room for.
const EVICT_TENTHS: usize = 1;

/// What one series costs: its slot in its object's vector (the vector grows by one slot at a
/// time) and the heap its own strings take, in the allocator's 16-byte steps. Interned strings
/// (kinds, namespaces, names, reasons) are shared and not counted.
pub fn weight(e: &EventView) -> usize {
    let heap = |len: usize| if len == 0 { 0 } else { len.div_ceil(16) * 16 };
    let uid = |u: &Option<Uid>| match u {
        Some(Uid::Other(s)) => heap(s.len()),
        _ => 0,
    };
    heap(std::mem::size_of::<EventView>()) + heap(e.message.len()) + uid(&e.id) + uid(&e.object_uid)
}

/// What one object with events costs besides its series: the map's slot (key, vector header and
/// control byte: 41 bytes) at the load a growing map averages (about two thirds).
const PER_OBJECT: usize = 64;

impl EventIndex {
    pub fn new(max_per_object: usize, max_age: Secs) -> Self {
        EventIndex {
            by_name: HashMap::new(),
            max_per_object: max_per_object.max(1),
            max_age,
            max_bytes: Self::DEFAULT_BYTES,
            len: 0,
            bytes: 0,
            evicted: 0,
        }
    }

    /// Events are kept at least this long: the API server's default `--event-ttl`, and the
    /// longest default window.
    pub const DEFAULT_AGE: Secs = 3600;

    /// The memory budget by default: 64 MiB, about 300,000 series.
    pub const DEFAULT_BYTES: usize = 64 << 20;

    /// The index with a memory budget of `max_bytes` (at least 1 MiB).
    pub fn with_budget(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes.max(1 << 20);
        self
    }

    /// Keeps events for `window` when that is longer than the default: a policy that counts over
    /// six hours needs six hours of them.
    pub fn keep_for(&mut self, window: Secs) {
        self.max_age = window.max(Self::DEFAULT_AGE);
    }

    /// Adds an event, replacing the stored one of the same Event object (by uid, else by
    /// namespace/name). An event with no identity at all replaces the one of the same object,
    /// reason and message. At most `max_per_object` series are kept for each involved object:
    /// the one last seen longest ago goes. Past the memory budget, the series last seen longest
    /// ago in the whole index go.
    pub fn insert(&mut self, event: EventView) {
        let added = weight(&event);
        let list = match self.by_name.entry(event.object.name.clone()) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                self.bytes += PER_OBJECT;
                v.insert(Vec::with_capacity(1))
            }
        };
        let same = |e: &EventView| match (&event.id, &e.id) {
            (Some(a), Some(b)) => a == b,
            (None, None) => {
                e.object == event.object && e.reason == event.reason && e.message == event.message
            }
            _ => false,
        };
        if let Some(existing) = list.iter_mut().find(|e| same(e)) {
            self.bytes = self.bytes + added - weight(existing);
            *existing = event;
        } else {
            let object = event.object.clone();
            // One slot at a time: most objects have one or two series, and a doubling vector
            // would hold four.
            list.reserve_exact(1);
            list.push(event);
            self.len += 1;
            self.bytes += added;
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
                let gone = list.swap_remove(i);
                self.len -= 1;
                self.bytes -= weight(&gone);
            }
        }
        if self.bytes > self.max_bytes {
            self.evict();
        }
    }

    /// Frees a tenth of the budget, the series last seen longest ago first. The cutoff is read
    /// from a sample of at most 4,096 series' times (the scan that follows is the whole index);
    /// series of the cutoff's own second go only as far as needed.
    fn evict(&mut self) {
        let target = self.max_bytes - self.max_bytes / 10 * EVICT_TENTHS;
        // Each round frees at least the series of the sample's cutoff second; one round almost
        // always reaches the target, and a few are bounded work.
        for _ in 0..4 {
            if self.bytes <= target {
                break;
            }
            self.evict_round(target);
        }
    }

    fn evict_round(&mut self, target: usize) {
        let step = self.len / 4096 + 1;
        let mut sample: Vec<Secs> = self
            .by_name
            .values()
            .flatten()
            .step_by(step)
            .map(|e| e.last_seen)
            .collect();
        sample.sort_unstable();
        // The share to free, plus a margin: the sample is not the index.
        let share = (self.bytes - target) as f64 / self.bytes as f64 + 0.02;
        let at = ((sample.len() as f64 * share) as usize).min(sample.len().saturating_sub(1));
        let cutoff = sample.get(at).copied().unwrap_or(Secs::MAX);
        for pass_equal in [false, true] {
            if self.bytes <= target {
                break;
            }
            self.evicted += if pass_equal {
                self.drop_series(|e, bytes| bytes > target && e.last_seen == cutoff)
            } else {
                self.drop_series(|e, _| e.last_seen < cutoff)
            };
        }
    }

    /// Removes events last seen before `now - max_age`.
    pub fn prune(&mut self, now: Secs) {
        let cutoff = now - self.max_age;
        self.drop_series(|e, _| e.last_seen < cutoff);
    }

    /// Drops the series `goes` picks (given the bytes held as it goes), and the objects left
    /// with none; returns how many series went.
    fn drop_series(&mut self, mut goes: impl FnMut(&EventView, usize) -> bool) -> u64 {
        let (mut bytes, mut dropped) = (self.bytes, 0u64);
        self.by_name.retain(|_, list| {
            let before = list.len();
            list.retain(|e| {
                let gone = goes(e, bytes);
                if gone {
                    bytes -= weight(e);
                    dropped += 1;
                }
                !gone
            });
            if list.is_empty() {
                bytes -= PER_OBJECT;
                return false;
            }
            if list.len() < before {
                list.shrink_to_fit();
            }
            true
        });
        self.bytes = bytes;
        self.len -= dropped as usize;
        dropped
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

    /// The estimated bytes held, and the budget.
    pub fn bytes(&self) -> (usize, usize) {
        (self.bytes, self.max_bytes)
    }

    /// Series evicted by the memory budget so far.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}
