//! What other tools' maintenance resources say of the nodes they name (see core's
//! `Maintainer`). Only a resource that takes its node down is kept, as one line: bounded by
//! the nodes under maintenance, not by the resources.

use std::collections::{BTreeMap, HashMap};

use kube::api::DynamicObject;
use kube::runtime::watcher::Event as W;
use kube_healer_core::decide::Maintainer;
use kube_healer_core::view::Shared;

use super::{Applied, Relist, Stores};
use crate::target::Target;

/// A maintainer's resource by kind and namespace/name.
type Key = (Maintainer, Box<str>);

#[derive(Default)]
pub struct Maintainers {
    /// Each resource that takes its node down: the node and how it says so.
    signals: HashMap<Key, (Shared, Shared)>,
    /// The same, by node (the first, in the keys' order, is the one a node shows).
    by_node: HashMap<Shared, BTreeMap<Key, Shared>>,
    relists: HashMap<Maintainer, Relist<Box<str>>>,
}

impl Maintainers {
    /// What takes the node down, if a resource does.
    pub fn signal(&self, node: &str) -> Option<Shared> {
        self.by_node.get(node)?.values().next().cloned()
    }

    /// Keeps what the resource says (or forgets it): the nodes whose signal changed (none when
    /// it says what it said before, as a draining NodeClaim's status updates do).
    fn set(&mut self, key: Key, says: Option<(Shared, Shared)>) -> Vec<Shared> {
        if self.signals.get(&key) == says.as_ref() {
            return Vec::new();
        }
        let mut nodes: Vec<Shared> = self
            .signals
            .get(&key)
            .into_iter()
            .chain(says.as_ref())
            .map(|(n, _)| n.clone())
            .collect();
        nodes.dedup();
        let before: Vec<Option<Shared>> = nodes.iter().map(|n| self.signal(n)).collect();
        if let Some((node, _)) = self.signals.remove(&key)
            && let Some(of_node) = self.by_node.get_mut(&node)
        {
            of_node.remove(&key);
            if of_node.is_empty() {
                self.by_node.remove(&node);
            }
        }
        if let Some((node, signal)) = says {
            self.by_node
                .entry(node.clone())
                .or_default()
                .insert(key.clone(), signal.clone());
            self.signals.insert(key, (node, signal));
        }
        nodes
            .into_iter()
            .zip(before)
            .filter(|(node, before)| self.signal(node) != *before)
            .map(|(node, _)| node)
            .collect()
    }

    fn keys_of(&self, maintainer: Maintainer) -> Vec<Key> {
        self.signals
            .keys()
            .filter(|(m, _)| *m == maintainer)
            .cloned()
            .collect()
    }
}

impl Stores {
    /// Applies a maintainer's watch event: the targets to decide again, and each node whose
    /// signal changed with what it is now (known or not to the stores).
    pub fn apply_maintainer(
        &mut self,
        maintainer: Maintainer,
        event: W<DynamicObject>,
    ) -> (Applied, Vec<(Shared, Option<Shared>)>) {
        let mut touched = Vec::new();
        let mut listed = false;
        match event {
            W::Apply(o) | W::InitApply(o) => {
                let key = (maintainer, object_key(&o));
                self.maintainers
                    .relists
                    .entry(maintainer)
                    .or_default()
                    .saw(&key.1);
                let says = self.says(maintainer, &o);
                touched = self.maintainers.set(key, says);
            }
            W::Delete(o) => touched = self.maintainers.set((maintainer, object_key(&o)), None),
            W::Init => self.maintainers.relists.entry(maintainer).or_default().begin(),
            W::InitDone => {
                listed = true;
                let seen = self.maintainers.relists.entry(maintainer).or_default().finish();
                if let Some(seen) = seen {
                    for key in self.maintainers.keys_of(maintainer) {
                        if !seen.contains(&key.1) {
                            touched.extend(self.maintainers.set(key, None));
                        }
                    }
                }
            }
        }
        let mut targets = Vec::new();
        let mut changed = Vec::new();
        for node in touched {
            let signal = self.maintainers.signal(&node);
            if let Some(view) = self.nodes.get_mut(&node) {
                view.maintained = signal.clone();
                targets.push(Target::Node(node.clone()));
                targets.extend(self.pod_keys_on(&node).iter().map(super::apply::pod_target));
            }
            changed.push((node, signal));
        }
        let applied = Applied {
            targets,
            listed,
            ignored: None,
        };
        (applied, changed)
    }

    /// The node the object names and how it takes it down, if it does.
    fn says(&mut self, maintainer: Maintainer, object: &DynamicObject) -> Option<(Shared, Shared)> {
        let value = serde_json::to_value(object).ok()?;
        let says = maintainer.says(&value)?;
        let signal = says.signal?;
        Some((self.interner.str(&says.node), signal.into()))
    }
}

fn object_key(o: &DynamicObject) -> Box<str> {
    let name = o.metadata.name.as_deref().unwrap_or_default();
    match o.metadata.namespace.as_deref() {
        Some(ns) => format!("{ns}/{name}").into(),
        None => name.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claim(name: &str, node: &str, deleting: bool) -> DynamicObject {
        let mut o = json!({"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
            "metadata": {"name": name}, "status": {"nodeName": node}});
        if deleting {
            o["metadata"]["deletionTimestamp"] = json!("2026-12-07T00:00:00Z");
        }
        serde_json::from_value(o).unwrap()
    }

    #[test]
    fn a_node_shows_what_takes_it_down_until_the_last_resource_that_does_lets_go() {
        let mut s = Stores::default();
        let node: k8s_openapi::api::core::v1::Node =
            serde_json::from_value(json!({"metadata": {"name": "n1", "uid": "n1"}})).unwrap();
        s.apply_node(W::Apply(node), 0);
        let m = Maintainer::NodeClaim;
        s.apply_maintainer(m, W::Apply(claim("a", "n1", false)));
        assert_eq!(
            s.maintainers.signal("n1"),
            None,
            "a NodeClaim not being deleted takes nothing down"
        );
        let (first, _) = s.apply_maintainer(m, W::Apply(claim("a", "n1", true)));
        assert_eq!(
            first.targets,
            [Target::Node("n1".into())],
            "the node is decided again"
        );
        let (again, _) = s.apply_maintainer(m, W::Apply(claim("a", "n1", true)));
        assert!(again.targets.is_empty(), "the same said again changes nothing");
        assert!(
            s.maintainers
                .signal("n1")
                .unwrap()
                .contains("deleting NodeClaim a")
        );
        s.apply_maintainer(m, W::Init);
        s.apply_maintainer(m, W::InitApply(claim("b", "n2", true)));
        s.apply_maintainer(m, W::InitDone);
        assert_eq!(
            s.maintainers.signal("n1"),
            None,
            "what a relist did not see is gone"
        );
        assert_eq!(
            s.node_view("n1").unwrap().maintained,
            None,
            "and the node shows it"
        );
        assert!(s.maintainers.signal("n2").is_some());
        s.apply_maintainer(m, W::Delete(claim("b", "n2", true)));
        assert_eq!(s.maintainers.signal("n2"), None);
        assert!(s.maintainers.signals.is_empty() && s.maintainers.by_node.is_empty());
    }
}
