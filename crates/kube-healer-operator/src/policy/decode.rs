//! Reading HealingPolicies from their watch, one by one: a policy that cannot be read is
//! refused (with the field at fault named), never a reason to stop reading the others.

use kube::Resource;
use kube::api::DynamicObject;
use kube_healer_api::HealingPolicy;

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
