//! The policies a history creates, edits and deletes: those the README teaches, each in two
//! variants (an edit switches between them), and the control's own.

use kube_healer_api::HealingPolicy;
use serde_json::{Value, json};

/// (name, target, condition, steps, safety) with the `for` of each variant in seconds.
pub struct Template {
    pub name: &'static str,
    pub spec: fn(for_secs: u32) -> Value,
    pub variants: [u32; 2],
}

fn pods() -> Value {
    json!({"kind": "Pod", "namespaces": {"include": [crate::world::NS]}})
}

pub const TEMPLATES: &[Template] = &[
    Template {
        name: "leftovers",
        spec: |f| {
            json!({"target": pods(), "conditions": [{"class": "Evicted", "for": format!("{f}s")}],
            "actions": [{"action": "Delete"}],
            "safety": {"maxConcurrent": 5, "rate": {"actions": 10, "per": "1m"}}})
        },
        variants: [60, 30],
    },
    Template {
        name: "crashing",
        spec: |f| {
            json!({"target": pods(), "conditions": [{"class": "CrashLoop", "for": format!("{f}s")}],
            "actions": [{"action": "Delete"}],
            "safety": {"maxConcurrent": 3, "rate": {"actions": 5, "per": "10m"}, "cooldown": "5m", "maxAttempts": 2}})
        },
        variants: [120, 60],
    },
    Template {
        name: "down-nodes",
        spec: |f| {
            json!({"target": {"kind": "Node"}, "conditions": [{"class": "NodeUnreachable", "for": format!("{f}s")}],
            "actions": [{"action": "Cordon"}],
            "safety": {"maxUnhealthy": "50%", "maxConcurrent": 2, "rate": {"actions": 3, "per": "10m"}}})
        },
        variants: [60, 90],
    },
    Template {
        name: "lost-pods",
        spec: |f| {
            json!({"target": pods(), "conditions": [{"class": "NodeLost", "for": format!("{f}s")}],
            "actions": [{"action": "Delete", "escalateAfter": "2m"}, {"action": "ForceDelete"}],
            "safety": {"maxConcurrent": 10, "rate": {"actions": 20, "per": "1m"}}})
        },
        variants: [120, 60],
    },
    Template {
        name: "down-taint",
        spec: |f| {
            json!({"target": {"kind": "Node"}, "conditions": [{"class": "NodeUnreachable", "for": format!("{f}s")}],
            "actions": [{"action": "Taint", "taint": {"key": "kube-healer.io/down", "effect": "NoSchedule"}}],
            "safety": {"maxUnhealthy": "40%", "maxConcurrent": 1, "rate": {"actions": 2, "per": "10m"}}})
        },
        variants: [180, 120],
    },
    Template {
        name: "deadlocked-nodes",
        spec: |f| {
            json!({"target": {"kind": "Node"}, "conditions": [{"class": "NodeCondition", "conditionType": crate::objects::PROBLEM, "for": format!("{f}s")}],
            "actions": [{"action": "Cordon"}],
            "safety": {"maxConcurrent": 2, "rate": {"actions": 4, "per": "10m"}}})
        },
        variants: [60, 30],
    },
];

/// The control's policy: Evicted pods of its own namespace, deleted a minute on.
pub const CONTROL: &str = "control";
pub const CONTROL_NS: &str = "control";
pub const CONTROL_FOR: u32 = 60;

fn policy(name: &str, spec: Value) -> HealingPolicy {
    serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": name}, "spec": spec}))
    .expect("a template is a policy")
}

/// The template's policy in the variant asked for.
pub fn template(index: usize, variant: bool) -> HealingPolicy {
    let t = &TEMPLATES[index % TEMPLATES.len()];
    policy(t.name, (t.spec)(t.variants[usize::from(variant)]))
}

pub fn control() -> HealingPolicy {
    policy(
        CONTROL,
        json!({"target": {"kind": "Pod", "namespaces": {"include": [CONTROL_NS]}},
            "conditions": [{"class": "Evicted", "for": format!("{CONTROL_FOR}s")}],
            "actions": [{"action": "Delete"}],
            "safety": {"maxConcurrent": 1, "rate": {"actions": 1, "per": "1m"}}}),
    )
}
