//! The HealingPolicies in force, the namespace labels their selectors read, and which policy
//! conditions hold on which targets. Also each policy's status: a book that computes it and a
//! writer that writes it (the leader's duty, checked by the engine at the I/O edge).

pub mod book;
mod decode;
mod episodes;
mod matching;
mod status;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kube_healer_api::{HealingPolicy, TargetKind};
use kube_healer_core::policy::{CompiledPolicy, PROTECTED_NAMESPACES, PolicyError};
use kube_healer_core::view::{Labels, Secs, Shared};

use crate::store::Stores;
use crate::target::Target;

pub use book::StatusBook;
pub use decode::{Unreadable, decode};
pub use episodes::{Episodes, RecordMeta};
pub use matching::{DueMatch, Evaluation, Match};
pub use status::{PolicyStatus, Refused};
pub use writer::writer;

pub struct PolicySet {
    policies: BTreeMap<String, CompiledPolicy>,
    /// The node policies, shared with the reverts that take their last look at a node with
    /// them (rebuilt when a policy changes, which is rare).
    node_policies: Arc<[CompiledPolicy]>,
    protected_namespaces: Arc<[String]>,
    namespaces: HashMap<Shared, Labels>,
    matches: HashMap<Target, Vec<Match>>,
    /// The failures' episodes as the records carry them (a restart continues them).
    pub episodes: Episodes,
    /// How long a policy condition must stay clear before its episode ends and what the policy
    /// changed is reverted.
    debounce: Secs,
}

impl Default for PolicySet {
    fn default() -> Self {
        PolicySet {
            policies: BTreeMap::new(),
            node_policies: Arc::new([]),
            protected_namespaces: PROTECTED_NAMESPACES.iter().map(|n| n.to_string()).collect(),
            namespaces: HashMap::new(),
            matches: HashMap::new(),
            episodes: Episodes::default(),
            debounce: 0,
        }
    }
}

impl PolicySet {
    /// Namespaces no policy touches unless it names them (replaces the default, kube-system).
    pub fn set_protected_namespaces(&mut self, namespaces: Vec<String>) {
        self.protected_namespaces = namespaces.into();
    }

    /// How long a policy condition must stay clear before its failure is over (its episode
    /// ends, its cordon or taint is lifted).
    /// How long a failure must stay clear before it is over.
    /// Targets with policy matches kept.
    pub fn match_entries(&self) -> usize {
        self.matches.len()
    }

    pub fn debounce(&self) -> Secs {
        self.debounce
    }

    pub fn set_debounce(&mut self, debounce: Secs) {
        self.debounce = debounce;
    }

    /// Compiles and stores a policy; an invalid one is removed and its error returned. Ok holds
    /// the target kind and whether the spec changed (a new generation).
    pub fn upsert(&mut self, policy: &HealingPolicy) -> Result<(TargetKind, bool), PolicyError> {
        let name = policy.metadata.name.clone().unwrap_or_default();
        match CompiledPolicy::compile(policy) {
            Ok(compiled) => {
                let compiled = compiled.protecting(self.protected_namespaces.clone());
                let kind = compiled.kind;
                let changed = self
                    .policies
                    .get(&name)
                    .is_none_or(|old| old.generation != compiled.generation);
                self.policies.insert(name, compiled);
                self.share_node_policies();
                Ok((kind, changed))
            }
            Err(e) => {
                self.policies.remove(&name);
                self.share_node_policies();
                Err(e)
            }
        }
    }

    /// How many targets the policy selects now.
    pub fn count_targets(&self, name: &str, stores: &Stores) -> i64 {
        let Some(policy) = self.policies.get(name) else {
            return 0;
        };
        match policy.kind {
            TargetKind::Pod => stores
                .pods()
                .filter(|p| policy.selects_pod(p, self.namespaces.get(&p.namespace)))
                .count() as i64,
            TargetKind::Node => stores.nodes().filter(|n| policy.selects_node(n)).count() as i64,
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<TargetKind> {
        let kind = self.policies.remove(name).map(|p| p.kind);
        self.share_node_policies();
        kind
    }

    pub fn retain(&mut self, names: &std::collections::HashSet<String>) {
        self.policies.retain(|n, _| names.contains(n));
        self.share_node_policies();
    }

    /// The node policies as they stand, for a revert's last look at its node.
    pub fn node_policies(&self) -> Arc<[CompiledPolicy]> {
        self.node_policies.clone()
    }

    fn share_node_policies(&mut self) {
        let nodes = self.policies.values().filter(|p| p.kind == TargetKind::Node);
        self.node_policies = nodes.cloned().collect();
    }

    /// Records a namespace's labels; returns whether they changed.
    pub fn set_namespace(&mut self, name: Shared, labels: Labels) -> bool {
        self.namespaces
            .insert(name, labels.clone())
            .is_none_or(|old| old != labels)
    }

    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&CompiledPolicy> {
        self.policies.get(name)
    }

    /// The policies a record's policy label names (a label value is cut to 63 characters, so a
    /// long name's label may stand for more than one).
    pub fn named_by_label(&self, label: &str) -> Vec<String> {
        self.policies
            .keys()
            .filter(|name| crate::record::label_value(name) == label)
            .cloned()
            .collect()
    }

    pub fn forget(&mut self, target: &Target) {
        self.matches.remove(target);
    }

    /// How far back any policy counts events.
    pub fn longest_event_window(&self) -> Secs {
        let windows = self.policies.values().flat_map(|p| &p.conditions);
        windows.map(|c| c.event_window()).max().unwrap_or(0)
    }

    /// Every policy's safety (its own pods-alike thresholds among them).
    pub fn safeties(&self) -> impl Iterator<Item = &kube_healer_api::Safety> + Clone {
        self.policies.values().map(|p| &p.policy.spec.safety)
    }

    /// Which Normal events the policies' event patterns may read (by reason, or all of them).
    pub fn normal_events(&self) -> kube_healer_core::events::NormalEvents {
        let patterns = self.policies.values().flat_map(|p| &p.conditions);
        kube_healer_core::events::NormalEvents::for_patterns(
            patterns
                .filter_map(|c| c.pattern.as_ref())
                .map(|p| p.reason.as_deref()),
        )
    }

    /// Every target with the policy conditions holding on it.
    pub fn all_matches(&self) -> impl Iterator<Item = (&Target, &[Match])> {
        self.matches.iter().map(|(t, m)| (t, m.as_slice()))
    }

    /// The policy conditions holding on a target, and those clearing (within the debounce).
    pub fn matches(&self, target: &Target) -> &[Match] {
        self.matches.get(target).map(Vec::as_slice).unwrap_or_default()
    }
}
