//! When each target is next looked at: one due time per target, the earliest wins (as in
//! kube-runtime's scheduler). A later request for a target already due sooner changes nothing;
//! an earlier one replaces it. The heap keeps stale entries; they are skipped when popped.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;

use kube_healer_core::view::Secs;

#[derive(Debug)]
pub struct DueQueue<T: Ord + Hash + Clone> {
    heap: BinaryHeap<Reverse<(Secs, T)>>,
    due: HashMap<T, Secs>,
}

impl<T: Ord + Hash + Clone> Default for DueQueue<T> {
    fn default() -> Self {
        DueQueue {
            heap: BinaryHeap::new(),
            due: HashMap::new(),
        }
    }
}

impl<T: Ord + Hash + Clone> DueQueue<T> {
    /// Asks for `item` to be due at `at`, unless it is due sooner already.
    pub fn schedule(&mut self, item: T, at: Secs) {
        if self.due.get(&item).is_some_and(|&existing| existing <= at) {
            return;
        }
        self.due.insert(item.clone(), at);
        self.heap.push(Reverse((at, item)));
        // Bounded: stale entries (a target due sooner since, or forgotten) past twice the live
        // ones are dropped by rebuilding the heap from what is due.
        if self.heap.len() > 2 * self.due.len() + 1024 {
            self.heap = self
                .due
                .iter()
                .map(|(item, at)| Reverse((*at, item.clone())))
                .collect();
        }
    }

    /// When `item` is due, if it is scheduled.
    pub fn due(&self, item: &T) -> Option<Secs> {
        self.due.get(item).copied()
    }

    /// The earliest due time (perhaps of a stale entry, which only wakes the loop early).
    pub fn next(&self) -> Option<Secs> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes out the next item due by `now`, if any.
    pub fn pop_due(&mut self, now: Secs) -> Option<T> {
        while let Some(Reverse((at, _))) = self.heap.peek() {
            if *at > now {
                return None;
            }
            let Reverse((at, item)) = self.heap.pop()?;
            if self.due.get(&item) == Some(&at) {
                self.due.remove(&item);
                return Some(item);
            }
        }
        None
    }

    /// Entries in the heap, stale ones included.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Forgets `item` (its heap entry goes stale).
    pub fn remove(&mut self, item: &T) {
        self.due.remove(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_entries_are_bounded() {
        let mut q = DueQueue::default();
        for at in (0..10_000).rev() {
            q.schedule("a", at);
        }
        assert!(q.len() <= 2 + 1024, "{} entries for one item", q.len());
        assert_eq!(q.pop_due(0), Some("a"));
    }

    #[test]
    fn the_earliest_time_wins_and_stale_entries_are_skipped() {
        let mut q = DueQueue::default();
        q.schedule("a", 20);
        q.schedule("a", 30);
        assert_eq!(q.due(&"a"), Some(20), "a later time changes nothing");
        q.schedule("a", 10);
        q.schedule("b", 15);
        assert_eq!(q.next(), Some(10));
        assert_eq!(q.pop_due(9), None);
        assert_eq!(q.pop_due(16), Some("a"));
        assert_eq!(q.pop_due(16), Some("b"));
        assert_eq!(q.pop_due(100), None, "a's entry at 20 is stale");
        q.schedule("c", 5);
        q.remove(&"c");
        assert_eq!(q.pop_due(100), None);
        assert_eq!(q.due(&"c"), None);
    }
}
