//! A watch's relist (Init, InitApply..., InitDone): what was seen during it, so that what was not
//! seen can be dropped at its end. One type for every store instead of one field per kind.

use std::collections::HashSet;
use std::hash::Hash;

#[derive(Debug)]
pub struct Relist<K>(Option<HashSet<K>>);

impl<K> Default for Relist<K> {
    fn default() -> Self {
        Relist(None)
    }
}

impl<K: Hash + Eq + Clone> Relist<K> {
    /// A relist begins (Init).
    pub fn begin(&mut self) {
        self.0 = Some(HashSet::new());
    }

    /// An object was seen (during a relist or after it).
    pub fn saw(&mut self, key: &K) {
        if let Some(seen) = &mut self.0 {
            seen.insert(key.clone());
        }
    }

    /// Whether a relist is under way.
    pub fn active(&self) -> bool {
        self.0.is_some()
    }

    /// The relist ended (InitDone): what it saw, if it had begun.
    pub fn finish(&mut self) -> Option<HashSet<K>> {
        self.0.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_a_relist_saw_is_returned_at_its_end() {
        let mut r = Relist::<u8>::default();
        r.saw(&1);
        assert!(!r.active());
        assert_eq!(r.finish(), None, "no relist began");
        r.begin();
        r.saw(&2);
        r.saw(&3);
        assert!(r.active());
        assert_eq!(r.finish(), Some(HashSet::from([2, 3])));
        assert!(!r.active());
    }
}
