//! Policies compiled for matching: which targets a HealingPolicy selects and which of their
//! findings it acts on.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube_healer_api::action::TaintEffect;
use kube_healer_api::policy::NameFilter;
use kube_healer_api::{FailureClass, FailureCondition, HealingPolicy, TargetKind};
use regex::Regex;

use crate::classify::EventPattern;
use crate::cluster::ClusterView;
use crate::finding::{Finding, Subject};
use crate::thresholds::{Knobs, for_of};
use crate::view::{Labels, NodeView, PodView, Secs};
use crate::{classify_node, classify_pod};

/// Namespaces no policy touches unless it names them in spec.target.namespaces.include (the
/// default; the operator's --protected-namespaces replaces it).
pub const PROTECTED_NAMESPACES: &[&str] = &["kube-system"];

/// Why a policy cannot be used (reported in its status, condition Invalid).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct PolicyError {
    pub field: String,
    pub problem: String,
}

/// At most 40 characters of a text, for messages about it.
fn shorten(s: &str) -> String {
    if s.chars().count() <= 40 {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(40).collect::<String>())
    }
}

/// A label name or value part: at most 63 characters, alphanumeric at both ends, `-`, `_` and
/// `.` between (empty allowed for values).
fn label_part(s: &str) -> bool {
    s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.chars().next().is_none_or(|c| c.is_ascii_alphanumeric())
        && s.chars().last().is_none_or(|c| c.is_ascii_alphanumeric())
}

/// A label key or value a selector names that no label can have.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
enum BadLabel {
    #[error(
        "{shown:?} ({chars} characters) can never match a label: label values have at most 63 characters, alphanumeric at both ends, with -, _ and . between"
    )]
    Value { shown: String, chars: usize },
    #[error(
        "{shown:?} is no label key: a name of at most 63 characters, alphanumeric at both ends, optionally behind a DNS prefix and /"
    )]
    Key { shown: String },
}

fn check_label_value(v: &str) -> Result<(), BadLabel> {
    if label_part(v) {
        Ok(())
    } else {
        Err(BadLabel::Value {
            shown: shorten(v),
            chars: v.chars().count(),
        })
    }
}

fn check_label_key(k: &str) -> Result<(), BadLabel> {
    let (prefix, name) = k.rsplit_once('/').unwrap_or(("", k));
    let prefix_ok = prefix.len() <= 253
        && prefix
            .split('.')
            .all(|p| prefix.is_empty() || (!p.is_empty() && label_part(p) && !p.contains('_')));
    if !name.is_empty() && label_part(name) && prefix_ok {
        Ok(())
    } else {
        Err(BadLabel::Key { shown: shorten(k) })
    }
}

/// A label selector, checked once.
#[derive(Clone, Debug)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Clone, Debug)]
enum Requirement {
    Equals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Selector {
    pub fn compile(selector: &LabelSelector, field: &str) -> Result<Self, PolicyError> {
        let mut requirements = Vec::new();
        for (k, v) in selector.match_labels.iter().flatten() {
            let err = |problem: String| PolicyError {
                field: format!("{field}.matchLabels[{:?}]", shorten(k)),
                problem,
            };
            check_label_key(k).map_err(|p| err(p.to_string()))?;
            check_label_value(v).map_err(|p| err(p.to_string()))?;
            requirements.push(Requirement::Equals(k.clone(), v.clone()));
        }
        for (i, e) in selector.match_expressions.iter().flatten().enumerate() {
            let values = e.values.clone().unwrap_or_default();
            let err = |problem: &str| PolicyError {
                field: format!("{field}.matchExpressions[{i}]"),
                problem: problem.to_string(),
            };
            check_label_key(&e.key).map_err(|p| err(&p.to_string()))?;
            for v in &values {
                check_label_value(v).map_err(|p| err(&p.to_string()))?;
            }
            requirements.push(match e.operator.as_str() {
                "In" if !values.is_empty() => Requirement::In(e.key.clone(), values),
                "NotIn" if !values.is_empty() => Requirement::NotIn(e.key.clone(), values),
                "In" | "NotIn" => return Err(err("operators In and NotIn need values")),
                "Exists" if values.is_empty() => Requirement::Exists(e.key.clone()),
                "DoesNotExist" if values.is_empty() => Requirement::DoesNotExist(e.key.clone()),
                "Exists" | "DoesNotExist" => {
                    return Err(err("operators Exists and DoesNotExist take no values"));
                }
                other => {
                    return Err(err(&format!(
                        "unknown operator {other:?}: use In, NotIn, Exists or DoesNotExist"
                    )));
                }
            });
        }
        Ok(Selector { requirements })
    }

    pub fn everything() -> Self {
        Selector {
            requirements: Vec::new(),
        }
    }

    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        let get = |key: &str| labels.iter().find(|(k, _)| &**k == key).map(|(_, v)| &**v);
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|v| !vs.iter().any(|x| x == v)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        })
    }
}

/// One condition of a policy, ready to evaluate.
#[derive(Clone, Debug)]
pub struct CompiledCondition {
    pub class: FailureClass,
    /// Seconds the failure must hold.
    pub for_secs: Secs,
    pub knobs: Knobs,
    /// Whether the knobs differ from the defaults (the target is then reclassified with them).
    pub custom_knobs: bool,
    pub pattern: Option<EventPattern>,
}

impl CompiledCondition {
    /// This condition's finding on a target, classified with its own knobs (or its pattern).
    pub fn find(&self, target: TargetView<'_>, cluster: &impl ClusterView, now: Secs) -> Option<Finding> {
        if let Some(pattern) = &self.pattern {
            let (subject, created) = match target {
                TargetView::Pod(p) => (Subject::pod(p), Some(p.created())),
                TargetView::Node(n) => (Subject::node(n), None),
            };
            return pattern.find(&subject, created, cluster, now);
        }
        let mut found = Vec::new();
        match target {
            TargetView::Pod(p) => classify_pod(p, cluster, &self.knobs, now, &mut found),
            TargetView::Node(n) => classify_node(n, cluster, &self.knobs, now, &mut found),
        }
        found.into_iter().find(|f| f.class == self.class)
    }

    /// How far back this condition counts events (0 when it counts none).
    pub fn event_window(&self) -> Secs {
        match self.class {
            FailureClass::NodeFlapping => self.knobs.flapping_window,
            FailureClass::SystemOOM => self.knobs.system_oom_window,
            FailureClass::EventPattern => self.pattern.as_ref().map_or(0, |p| p.window),
            FailureClass::Unschedulable
            | FailureClass::StuckPending
            | FailureClass::ImagePullFailure
            | FailureClass::StuckContainerCreating
            | FailureClass::StuckInitializing
            | FailureClass::ContainerStartFailure
            | FailureClass::CrashLoop
            | FailureClass::AdmissionRejected
            | FailureClass::StuckTerminating
            | FailureClass::Evicted
            | FailureClass::Failed
            | FailureClass::NodeLost
            | FailureClass::Orphaned
            | FailureClass::NodeNotReady
            | FailureClass::NodeUnreachable
            | FailureClass::PLEGUnhealthy
            | FailureClass::NodePressure
            | FailureClass::NodeCondition
            | FailureClass::HeartbeatLag
            | FailureClass::NodeBlackHole => 0,
            // Counts since its container started, as long as it runs: the hour every event is
            // kept covers the failures that made it unready, and the recheck carries the ones
            // the decision saw.
            FailureClass::ProbeFailure => 0,
        }
    }
}

/// A HealingPolicy compiled for matching.
#[derive(Clone, Debug)]
pub struct CompiledPolicy {
    pub name: String,
    pub generation: Option<i64>,
    pub policy: HealingPolicy,
    pub kind: TargetKind,
    pub selector: Selector,
    pub namespace_selector: Option<Selector>,
    pub conditions: Vec<CompiledCondition>,
    /// Namespaces this policy leaves alone unless it names them.
    pub protected_namespaces: Arc<[String]>,
}

impl CompiledPolicy {
    pub fn compile(policy: &HealingPolicy) -> Result<Self, PolicyError> {
        let spec = &policy.spec;
        let selector = match &spec.target.selector {
            Some(s) => Selector::compile(s, "spec.target.selector")?,
            None => Selector::everything(),
        };
        let namespace_selector = spec
            .target
            .namespace_selector
            .as_ref()
            .map(|s| Selector::compile(s, "spec.target.namespaceSelector"))
            .transpose()?;
        let mut conditions = Vec::new();
        for (i, c) in spec.conditions.iter().enumerate() {
            conditions.push(compile_condition(c, &format!("spec.conditions[{i}]"))?);
        }
        // The API server refuses this too; a policy stored before the rule existed is refused
        // here, so that it does not act.
        for (i, step) in spec.actions.iter().enumerate() {
            if let Some(t) = &step.taint
                && t.effect == TaintEffect::NoExecute
                && !t.acknowledge_no_execute
            {
                return Err(PolicyError {
                    field: format!("spec.actions[{i}].taint.acknowledgeNoExecute"),
                    problem: "effect NoExecute evicts every pod that does not tolerate the taint at once, with no PodDisruptionBudget: set it to true to mean it, or use Drain".into(),
                });
            }
            if let Some(problem) = step.run_job.as_ref().and_then(|j| j.removed_fields()) {
                return Err(PolicyError {
                    field: format!("spec.actions[{i}].runJob"),
                    problem: problem.into(),
                });
            }
        }
        Ok(CompiledPolicy {
            name: policy.metadata.name.clone().unwrap_or_default(),
            generation: policy.metadata.generation,
            policy: policy.clone(),
            kind: spec.target.kind,
            selector,
            namespace_selector,
            conditions,
            protected_namespaces: PROTECTED_NAMESPACES.iter().map(|n| n.to_string()).collect(),
        })
    }

    /// Replaces the protected namespaces (default [`PROTECTED_NAMESPACES`]).
    pub fn protecting(mut self, namespaces: Arc<[String]>) -> Self {
        self.protected_namespaces = namespaces;
        self
    }

    /// Whether the policy selects this pod (`namespace_labels`: the labels of its namespace, if
    /// known; a namespaceSelector matches nothing while they are unknown).
    pub fn selects_pod(&self, pod: &PodView, namespace_labels: Option<&Labels>) -> bool {
        if self.kind != TargetKind::Pod || !self.selector.matches(&pod.labels) {
            return false;
        }
        let target = &self.policy.spec.target;
        let names_it = target
            .namespaces
            .as_ref()
            .is_some_and(|n| n.include.iter().any(|i| *i == *pod.namespace));
        if self.protected_namespaces.iter().any(|n| **n == *pod.namespace) && !names_it {
            return false;
        }
        if !target
            .namespaces
            .as_ref()
            .is_none_or(|n| n.admits(&pod.namespace))
        {
            return false;
        }
        if let Some(ns_selector) = &self.namespace_selector
            && !namespace_labels.is_some_and(|l| ns_selector.matches(l))
        {
            return false;
        }
        target
            .owner_kinds
            .as_ref()
            .is_none_or(|o: &NameFilter| o.admits(pod.owner.as_str()))
    }

    pub fn selects_node(&self, node: &NodeView) -> bool {
        self.kind == TargetKind::Node && self.selector.matches(&node.labels)
    }

    /// The failure this node policy sees on a node by the node's own status alone: its
    /// conditions, without the cluster around it (no Ready history, Lease or event). A revert's
    /// last look, on the node read afresh: the engine's store may lag behind a failure that
    /// came since, and a hold ends only on evidence of recovery.
    pub fn sees_on_the_node(&self, node: &NodeView, now: Secs) -> Option<Finding> {
        if !self.selects_node(node) {
            return None;
        }
        let alone = crate::cluster::Snapshot::default();
        let mut found = self.conditions.iter();
        found.find_map(|c| c.find(TargetView::Node(node), &alone, now))
    }

    /// The findings of this policy's conditions on a target, each with its condition index.
    /// `default_findings` are the target's findings with the default knobs; conditions with
    /// their own knobs reclassify the target, and event patterns are evaluated here.
    pub fn findings_for(
        &self,
        target: TargetView<'_>,
        default_findings: &[Finding],
        cluster: &impl ClusterView,
        now: Secs,
    ) -> Vec<(usize, Finding)> {
        let mut out = Vec::new();
        for (i, c) in self.conditions.iter().enumerate() {
            let wanted = |f: &Finding| f.class == c.class;
            if c.pattern.is_some() || c.custom_knobs {
                out.extend(c.find(target, cluster, now).map(|f| (i, f)));
            } else {
                out.extend(
                    default_findings
                        .iter()
                        .filter(|f| wanted(f))
                        .cloned()
                        .map(|f| (i, f)),
                );
            }
        }
        out
    }
}

/// A target's view, what a policy is matched against (the operator's `target::Target` names one).
#[derive(Clone, Copy, Debug)]
pub enum TargetView<'a> {
    Pod(&'a PodView),
    Node(&'a NodeView),
}

fn compile_condition(c: &FailureCondition, field: &str) -> Result<CompiledCondition, PolicyError> {
    let knobs = Knobs::for_condition(c);
    let custom_knobs = knobs != Knobs::default();
    let pattern = if c.class == FailureClass::EventPattern {
        let message = c
            .message_pattern
            .as_deref()
            .map(|p| {
                Regex::new(p).map_err(|e| PolicyError {
                    field: format!("{field}.messagePattern"),
                    problem: format!("not a valid regular expression: {e}"),
                })
            })
            .transpose()?;
        Some(EventPattern {
            reason: c.reason.clone(),
            message,
            count: c.count.map_or(EventPattern::DEFAULT_COUNT, |n| n.max(1) as u32),
            window: c
                .window
                .map_or(EventPattern::DEFAULT_WINDOW, |w| w.as_std().as_secs() as Secs),
        })
    } else {
        None
    };
    Ok(CompiledCondition {
        class: c.class,
        for_secs: for_of(c),
        knobs,
        custom_knobs,
        pattern,
    })
}
