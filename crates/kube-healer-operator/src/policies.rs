//! The HealingPolicies in force, the namespace labels their selectors read, and which policy
//! conditions hold on which targets.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kube::Resource;
use kube::api::DynamicObject;
use kube_healer_api::{HealingPolicy, TargetKind};
use kube_healer_core::Finding;
use kube_healer_core::policy::{CompiledPolicy, PROTECTED_NAMESPACES, PolicyError, Target as PolicyTarget};
use kube_healer_core::view::{Labels, Secs, Shared};

use crate::engine::Target;
use crate::metrics::Metrics;
use crate::store::Stores;

/// The wall clock in Unix milliseconds (for the reaction-time metric only; decisions use the
/// engine's clock).
fn now_ms() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_millisecond()
}

/// A HealingPolicy that cannot be read into its type: its name, generation and why.
#[derive(Debug)]
pub struct Unreadable {
    pub name: String,
    pub generation: Option<i64>,
    pub error: String,
}

/// Reads a HealingPolicy from its watch. The API server validates policies on admission, but an
/// object stored under an older or looser schema is served as it was stored: such a policy is
/// refused (with the field at fault named), never a reason to stop reading the others.
pub fn decode(object: DynamicObject) -> Result<HealingPolicy, Unreadable> {
    let name = object.metadata.name.clone().unwrap_or_default();
    let generation = object.metadata.generation;
    let mut value = serde_json::to_value(object).map_err(|e| Unreadable {
        name: name.clone(),
        generation,
        error: e.to_string(),
    })?;
    value["apiVersion"] = HealingPolicy::api_version(&()).into();
    value["kind"] = HealingPolicy::kind(&()).into();
    serde_path_to_error::deserialize(value).map_err(|e| Unreadable {
        name,
        generation,
        error: format!("{}: {}", e.path(), e.inner()),
    })
}

/// A policy condition holding on a target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    pub policy: String,
    pub condition: usize,
    pub since: Secs,
    pub due: Secs,
    pub due_reported: bool,
    /// When this operator first saw the condition hold (Unix milliseconds): a failure reported
    /// late (after its `for` elapsed) is due from then, not from before it was known.
    pub seen_ms: i64,
}

/// What evaluating the policies on one target found.
#[derive(Debug, Default)]
pub struct Evaluation {
    /// The earliest due time still ahead.
    pub next: Option<Secs>,
    /// Conditions due now (leader only).
    pub due_now: Vec<DueMatch>,
    /// Policies that matched the target before and no longer do: its failure cleared.
    pub cleared: Vec<String>,
}

/// A policy condition due now on a target.
#[derive(Clone, Debug)]
pub struct DueMatch {
    pub policy: String,
    pub condition: usize,
    pub finding: Finding,
    /// When it became due for this operator (Unix milliseconds): its `for` elapsed, and it was
    /// known.
    pub due_ms: i64,
}

pub struct PolicySet {
    policies: BTreeMap<String, CompiledPolicy>,
    protected_namespaces: Arc<[String]>,
    namespaces: HashMap<Shared, Labels>,
    matches: HashMap<Target, Vec<Match>>,
}

impl Default for PolicySet {
    fn default() -> Self {
        PolicySet {
            policies: BTreeMap::new(),
            protected_namespaces: PROTECTED_NAMESPACES.iter().map(|n| n.to_string()).collect(),
            namespaces: HashMap::new(),
            matches: HashMap::new(),
        }
    }
}

impl PolicySet {
    /// Namespaces no policy touches unless it names them (replaces the default, kube-system).
    pub fn set_protected_namespaces(&mut self, namespaces: Vec<String>) {
        self.protected_namespaces = namespaces.into();
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
                Ok((kind, changed))
            }
            Err(e) => {
                self.policies.remove(&name);
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
        self.policies.remove(name).map(|p| p.kind)
    }

    pub fn retain(&mut self, names: &std::collections::HashSet<String>) {
        self.policies.retain(|n, _| names.contains(n));
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

    /// Evaluates every policy on one target: returns the earliest due time still ahead, and the
    /// conditions due now (leader only) for the engine to decide on.
    pub fn evaluate(
        &mut self,
        target: &Target,
        findings: &[Finding],
        stores: &Stores,
        metrics: &Metrics,
        now: Secs,
        leader: bool,
    ) -> Evaluation {
        let view = match target {
            Target::Pod(ns, name) => {
                let key = crate::store::PodKey {
                    namespace: ns.clone(),
                    name: name.clone(),
                };
                stores.pod(&key).map(PolicyTarget::Pod)
            }
            Target::Node(name) => stores.node_view(name).map(PolicyTarget::Node),
        };
        let Some(view) = view else {
            self.matches.remove(target);
            return Evaluation::default();
        };
        let mut due_now = Vec::new();
        let previous = self.matches.remove(target).unwrap_or_default();
        let mut current = Vec::new();
        let mut next = None::<Secs>;
        for policy in self.policies.values() {
            let selected = match view {
                PolicyTarget::Pod(p) => policy.selects_pod(p, self.namespaces.get(&p.namespace)),
                PolicyTarget::Node(n) => policy.selects_node(n),
            };
            if !selected {
                continue;
            }
            for (condition, finding) in policy.findings_for(view, findings, stores, now) {
                let due = finding.due_at(policy.conditions[condition].for_secs);
                let before = previous.iter().find(|m| {
                    m.policy == policy.name && m.condition == condition && m.since == finding.since
                });
                let reported = before.is_some_and(|m| m.due_reported);
                let seen_ms = before.map_or_else(now_ms, |m| m.seen_ms);
                let mut m = Match {
                    policy: policy.name.clone(),
                    condition,
                    since: finding.since,
                    due,
                    due_reported: reported,
                    seen_ms,
                };
                if due <= now && !reported && leader {
                    m.due_reported = true;
                    metrics
                        .policy_due
                        .get_or_create(&Metrics::class(finding.class))
                        .inc();
                    tracing::info!(policy = %policy.name, class = %finding.class, target = %finding.subject, since = finding.since,
                        evidence = %finding.evidence.summary, "policy condition due");
                } else if due > now {
                    next = Some(next.map_or(due, |n| n.min(due)));
                }
                if due <= now && leader {
                    due_now.push(DueMatch {
                        policy: policy.name.clone(),
                        condition,
                        finding,
                        due_ms: (due * 1000).max(seen_ms),
                    });
                }
                current.push(m);
            }
        }
        let mut cleared: Vec<String> = previous
            .iter()
            .filter(|p| !current.iter().any(|c| c.policy == p.policy))
            .map(|p| p.policy.clone())
            .collect();
        cleared.dedup();
        if !current.is_empty() {
            self.matches.insert(target.clone(), current);
        }
        Evaluation {
            next,
            due_now,
            cleared,
        }
    }

    pub fn get(&self, name: &str) -> Option<&CompiledPolicy> {
        self.policies.get(name)
    }

    pub fn forget(&mut self, target: &Target) {
        self.matches.remove(target);
    }

    /// Every target with the policy conditions holding on it.
    pub fn all_matches(&self) -> impl Iterator<Item = (&Target, &[Match])> {
        self.matches.iter().map(|(t, m)| (t, m.as_slice()))
    }

    /// The policy conditions holding on a target.
    pub fn matches(&self, target: &Target) -> &[Match] {
        self.matches.get(target).map(Vec::as_slice).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(spec: serde_json::Value) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
            "metadata": {"name": "p", "generation": 3}, "spec": spec,
        }))
        .expect("a Kubernetes object")
    }

    #[test]
    fn a_policy_that_cannot_be_read_names_the_field() {
        let bad = object(serde_json::json!({"target": {"kind": "Pod"},
            "conditions": [{"class": "Evicted", "for": "1m"}], "actions": [{"action": "Reboot"}]}));
        let e = decode(bad).expect_err("Reboot is no action");
        assert_eq!((e.name.as_str(), e.generation), ("p", Some(3)));
        assert!(
            e.error
                .starts_with("spec.actions[0].action: unknown variant `Reboot`"),
            "{}",
            e.error
        );

        let no_spec: DynamicObject = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "q"}, "status": {"weird": true}}))
        .expect("a Kubernetes object");
        let e = decode(no_spec).expect_err("no spec");
        assert!(e.error.contains("spec"), "{}", e.error);

        let good = object(serde_json::json!({"target": {"kind": "Pod"},
            "conditions": [{"class": "Evicted", "for": "1m"}], "actions": [{"action": "Delete"}]}));
        assert_eq!(decode(good).expect("readable").metadata.generation, Some(3));
    }
}
