//! Targets waiting for a place under their policy's maxConcurrent, in the order they came.

use std::collections::{HashSet, VecDeque};

use crate::target::Target;

/// Targets in the order they came to wait, each once.
#[derive(Debug, Default)]
pub struct WaitQueue {
    order: VecDeque<Target>,
    members: HashSet<Target>,
}

impl WaitQueue {
    pub fn push(&mut self, target: &Target) {
        if self.members.insert(target.clone()) {
            self.order.push_back(target.clone());
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn pop(&mut self) -> Option<Target> {
        let target = self.order.pop_front()?;
        self.members.remove(&target);
        Some(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_target_waits_once_in_the_order_it_came() {
        let mut q = WaitQueue::default();
        for name in ["a", "b", "a", "c"] {
            q.push(&Target::Node(name.into()));
        }
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, ["a", "b", "c"].map(|n| Target::Node(n.into())).to_vec());
    }
}
