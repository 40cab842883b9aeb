//! The replay's own world of marked nodes. The operator counts the nodes it keeps out of service
//! from the nodes' kube-healer annotations (its disruption budget, its reverts). A recording
//! shows the live operator's marks; a replay must see its own instead, or the two worlds mix: a
//! node the live operator cordoned looks already held to the replay, which then "cordons" it
//! beside the ones it chose itself, past its budget. So each recorded node is shown to the
//! replay's engine without kube-healer's marks (a cordon they explain is lifted with them), and
//! with the replay's: a node it took out of service is shown cordoned by the policy, whatever
//! the action, until the engine reverts it.
//!
//! A change the replay makes is shown when the live operator's would have been seen: with the
//! node's next recorded change (the live call's own, when the policies are the same), or a
//! second after the decision at the latest. Until then the engine counts it as it does live (a
//! cordon just sent counts against the budget; a revert sent frees nothing until it is seen).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value};

/// The live operator's marks (and the generations they were made under), stripped.
const HOLDS: [&str; 6] = [
    kube_healer_api::CORDONED_BY_ANNOTATION,
    kube_healer_api::TAINTED_BY_ANNOTATION,
    kube_healer_api::REMEDIATED_BY_ANNOTATION,
    kube_healer_api::REPLACED_BY_ANNOTATION,
    kube_healer_api::MARKED_AT_ANNOTATION,
    kube_healer_api::JOB_BY_ANNOTATION,
];

#[derive(Default)]
pub struct Marks {
    /// The last recorded object of each node (trimmed: a few hundred bytes each).
    recorded: HashMap<String, Value>,
    /// The replay's marks: node -> the policies marking it.
    own: BTreeMap<String, BTreeSet<String>>,
    /// The marks the engine has been shown.
    shown: BTreeMap<String, BTreeSet<String>>,
    /// Nodes whose marks changed and are not shown yet, and when they will be (Unix ms).
    pending: BTreeMap<String, i64>,
}

/// How long after a decision its change is shown, at the latest.
const SHOWN_WITHIN_MS: i64 = 1000;

fn name(node: &Value) -> Option<String> {
    node.pointer("/metadata/name")?.as_str().map(str::to_string)
}

impl Marks {
    /// A recorded node, as the replay's engine sees it (and kept, to show it again when the
    /// replay's marks on it change).
    pub fn recorded(&mut self, node: &mut Value, deleted: bool) {
        let Some(name) = name(node) else {
            return;
        };
        self.pending.remove(&name);
        if deleted {
            self.recorded.remove(&name);
            self.own.remove(&name);
            self.shown.remove(&name);
        } else {
            self.recorded.insert(name.clone(), node.clone());
            match self.own.get(&name) {
                Some(own) => self.shown.insert(name.clone(), own.clone()),
                None => self.shown.remove(&name),
            };
        }
        self.show(&name, node);
    }

    /// The replay took `node` out of service for `policy` at `now_ms`.
    pub fn mark(&mut self, node: &str, policy: &str, now_ms: i64) {
        self.own
            .entry(node.to_string())
            .or_default()
            .insert(policy.to_string());
        self.pending
            .entry(node.to_string())
            .or_insert(now_ms + SHOWN_WITHIN_MS);
    }

    /// The replay let go of `node` for `policy` at `now_ms`.
    pub fn unmark(&mut self, node: &str, policy: &str, now_ms: i64) {
        let Some(held) = self.own.get_mut(node) else {
            return;
        };
        held.remove(policy);
        if held.is_empty() {
            self.own.remove(node);
        }
        self.pending
            .entry(node.to_string())
            .or_insert(now_ms + SHOWN_WITHIN_MS);
    }

    /// The nodes whose changes are due to be shown by `now_ms`, as the engine should now see
    /// them.
    pub fn due(&mut self, now_ms: i64) -> Vec<Value> {
        let due: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, at)| **at <= now_ms)
            .map(|(n, _)| n.clone())
            .collect();
        let mut out = Vec::new();
        for node in due {
            self.pending.remove(&node);
            match self.own.get(&node) {
                Some(own) => self.shown.insert(node.clone(), own.clone()),
                None => self.shown.remove(&node),
            };
            out.extend(self.current(&node));
        }
        out
    }

    /// Nodes the replay keeps out of service now.
    pub fn count(&self) -> usize {
        self.own.len()
    }

    fn current(&self, node: &str) -> Option<Value> {
        let mut v = self.recorded.get(node)?.clone();
        self.show(node, &mut v);
        Some(v)
    }

    fn show(&self, node: &str, v: &mut Value) {
        let Some(o) = v.as_object_mut() else {
            return;
        };
        let meta = o.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
        let annotations = meta.as_object_mut().map(|m| {
            m.entry("annotations")
                .or_insert_with(|| Value::Object(Map::new()))
        });
        let mut live_cordon = false;
        // The live operator's taints, as its tainted-by annotation lists them (key, effect).
        let mut live_taints: Vec<(String, String)> = Vec::new();
        if let Some(Value::Object(a)) = annotations {
            live_cordon = a.contains_key(kube_healer_api::CORDONED_BY_ANNOTATION);
            if let Some(marker) = a
                .get(kube_healer_api::TAINTED_BY_ANNOTATION)
                .and_then(Value::as_str)
            {
                for entry in marker.split(',') {
                    if let Some((key, effect)) = entry.split_once('=').and_then(|(_, t)| t.rsplit_once(':')) {
                        live_taints.push((key.trim().to_string(), effect.trim().to_string()));
                    }
                }
            }
            a.retain(|k, _| !HOLDS.contains(&k.as_str()));
            if let Some(own) = self.shown.get(node) {
                let policies: Vec<&str> = own.iter().map(String::as_str).collect();
                a.insert(
                    kube_healer_api::CORDONED_BY_ANNOTATION.into(),
                    Value::String(policies.join(",")),
                );
            }
        }
        let spec = o.entry("spec").or_insert_with(|| Value::Object(Map::new()));
        if let Some(spec) = spec.as_object_mut() {
            if self.shown.contains_key(node) {
                spec.insert("unschedulable".into(), Value::Bool(true));
            } else if live_cordon {
                // The live operator's cordon, not the replay's.
                spec.remove("unschedulable");
            }
            if let Some(taints) = spec.get_mut("taints").and_then(Value::as_array_mut) {
                taints.retain(|t| {
                    let field = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                    !live_taints.contains(&(field("key"), field("effect")))
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_live_marks_are_hidden_and_the_replays_shown_until_unmarked() {
        let mut marks = Marks::default();
        let mut live = json!({"metadata": {"name": "n1", "annotations": {kube_healer_api::CORDONED_BY_ANNOTATION: "live"}},
            "spec": {"unschedulable": true}});
        marks.recorded(&mut live, false);
        assert_eq!(live["spec"].get("unschedulable"), None);
        assert_eq!(
            live["metadata"]["annotations"].get(kube_healer_api::CORDONED_BY_ANNOTATION),
            None
        );
        marks.mark("n1", "mine", 10_000);
        assert_eq!(marks.count(), 1);
        assert!(marks.due(10_999).is_empty(), "shown a second later at the latest");
        let held = marks.due(11_000).pop().unwrap();
        assert_eq!(held["spec"]["unschedulable"], json!(true));
        assert_eq!(
            held["metadata"]["annotations"][kube_healer_api::CORDONED_BY_ANNOTATION],
            json!("mine")
        );
        marks.unmark("n1", "mine", 20_000);
        // The node's next recorded change shows it (the live call's own).
        let mut next = json!({"metadata": {"name": "n1"}, "spec": {}});
        marks.recorded(&mut next, false);
        assert_eq!(next["spec"].get("unschedulable"), None);
        assert!(marks.due(30_000).is_empty());
        // The live operator's taint goes with its annotation; another taint stays.
        let mut tainted = json!({"metadata": {"name": "n3", "annotations": {kube_healer_api::TAINTED_BY_ANNOTATION: "live=k:NoSchedule"}},
            "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}, {"key": "other", "effect": "NoExecute"}]}});
        marks.recorded(&mut tainted, false);
        assert_eq!(
            tainted["spec"]["taints"],
            json!([{"key": "other", "effect": "NoExecute"}])
        );
        // A cordon someone else made (no kube-healer annotation) stays.
        let mut manual = json!({"metadata": {"name": "n2"}, "spec": {"unschedulable": true}});
        marks.recorded(&mut manual, false);
        assert_eq!(manual["spec"]["unschedulable"], json!(true));
    }
}
