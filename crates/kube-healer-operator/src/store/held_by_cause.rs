//! When each node was held by a correlated cause of nodes down together, as the engine's
//! correlation saw it: open while the cause holds (its cool-off included), closed when it lets
//! go. Classification reads it (`ClusterView::held_together`) so that the Ready transitions of a
//! storm do not count as the node's own flapping. Bounded: closed periods are kept only as long
//! as any flapping window could reach back (a day), per node, and go with the node.

use std::collections::{HashMap, HashSet};

use kube_healer_core::view::{Secs, Shared};

/// How long a closed period is kept.
const KEPT: Secs = 86_400;

#[derive(Debug, Default)]
pub struct HeldByCause {
    /// Node -> periods (from, to), oldest first; the last is open (to = Secs::MAX) while held.
    periods: HashMap<Shared, Vec<(Secs, Secs)>>,
}

impl HeldByCause {
    /// The nodes held now, each with when its cause began: open their periods; close those of
    /// the nodes no longer held.
    pub fn update<'a>(&mut self, held: impl IntoIterator<Item = (&'a Shared, Secs)>, now: Secs) {
        let mut seen: HashSet<&Shared> = HashSet::new();
        for (node, since) in held {
            seen.insert(node);
            let periods = self.periods.entry(node.clone()).or_default();
            if periods.last().is_none_or(|(_, to)| *to != Secs::MAX) {
                periods.push((since.min(now), Secs::MAX));
            }
        }
        for (node, periods) in self.periods.iter_mut() {
            if !seen.contains(node)
                && let Some(last) = periods.last_mut()
                && last.1 == Secs::MAX
            {
                last.1 = now;
            }
            periods.retain(|(_, to)| *to > now - KEPT);
        }
        self.periods.retain(|_, p| !p.is_empty());
    }

    pub fn of(&self, node: &str) -> &[(Secs, Secs)] {
        self.periods.get(node).map_or(&[], Vec::as_slice)
    }

    /// The node is gone.
    pub fn forget(&mut self, node: &str) {
        self.periods.remove(node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_open_while_held_and_close_after() {
        let mut h = HeldByCause::default();
        let n: Shared = "n1".into();
        h.update([(&n, 100)], 130);
        assert_eq!(h.of("n1"), [(100, Secs::MAX)]);
        h.update([(&n, 100)], 140);
        assert_eq!(h.of("n1"), [(100, Secs::MAX)], "one period while it holds");
        h.update([], 200);
        assert_eq!(h.of("n1"), [(100, 200)]);
        h.update([(&n, 300)], 310);
        assert_eq!(h.of("n1"), [(100, 200), (300, Secs::MAX)]);
        h.update([], 320);
        h.update([], 200 + KEPT);
        assert_eq!(h.of("n1"), [(300, 320)], "the old period forgotten");
        h.forget("n1");
        assert!(h.of("n1").is_empty());
    }
}
