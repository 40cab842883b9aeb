//! The remediation resource as NodeHealthCheck makes it, how kube-healer finds it again (its
//! labels) and reads it (its conditions, whether its attempt is over).

use kube::ResourceExt;
use kube::api::DynamicObject;
use kube_healer_api::remediate::{
    MULTIPLE_TEMPLATES_ANNOTATION, NODE_NAME_ANNOTATION, TEMPLATE_NAME_ANNOTATION, TIMED_OUT_ANNOTATION,
};
use kube_healer_api::{NODE_LABEL, POLICY_LABEL};
use serde_json::json;

use crate::record::label_value;

/// The labels kube-healer puts on a remediation resource, to find it again.
pub(super) fn selector(policy: &str, node: &str) -> String {
    format!(
        "{POLICY_LABEL}={},{NODE_LABEL}={}",
        label_value(policy),
        label_value(node)
    )
}
/// The condition `type_`'s status and reason on a remediation resource.
pub(super) fn condition(object: &DynamicObject, type_: &str) -> Option<(String, String)> {
    let conditions = object.data["status"]["conditions"].as_array()?;
    let found = conditions.iter().find(|c| c["type"] == type_)?;
    let status = found["status"].as_str()?.to_string();
    Some((status, found["reason"].as_str().unwrap_or_default().to_string()))
}
/// Whether a remediation resource belongs to an attempt that is over: its Succeeded condition
/// is decided, it was marked timed out, or it is being deleted.
pub(super) fn is_spent(object: &DynamicObject) -> bool {
    object.metadata.deletion_timestamp.is_some()
        || object.annotations().contains_key(TIMED_OUT_ANNOTATION)
        || condition(object, "Succeeded").is_some_and(|(s, _)| s != "Unknown")
}
/// A 404 is the aim met (the object is gone).
pub(super) fn not_found(e: kube::Error) -> Result<(), kube::Error> {
    match e {
        kube::Error::Api(s) if s.code == 404 => Ok(()),
        e => Err(e),
    }
}
/// Why a remediation template makes no remediation resource.
#[derive(Debug, thiserror::Error)]
pub(super) enum BadTemplate {
    #[error("the remediation template {0} has no spec.template.spec")]
    NoSpec(String),
    #[error("the remediation resource cannot be made: {0}")]
    Unmade(#[source] serde_json::Error),
}

/// The remediation resource for a node: the template's spec.template.spec, NodeHealthCheck's
/// annotations, kube-healer's labels.
pub(super) fn remediation(
    template: &DynamicObject,
    kind: &str,
    policy: &str,
    node: &str,
) -> Result<DynamicObject, BadTemplate> {
    let spec = template.data["spec"]["template"]["spec"].clone();
    if !spec.is_object() {
        return Err(BadTemplate::NoSpec(template.name_any()));
    }
    let several = template.annotations().contains_key(MULTIPLE_TEMPLATES_ANNOTATION);
    let (name, generate) = match several {
        true => (None, Some(format!("{node}-"))),
        false => (Some(node.to_string()), None),
    };
    let api_version = template
        .types
        .as_ref()
        .map(|t| t.api_version.clone())
        .unwrap_or_default();
    serde_json::from_value(json!({
        "apiVersion": api_version, "kind": kind,
        "metadata": {"name": name, "generateName": generate, "namespace": template.namespace(),
            "labels": {POLICY_LABEL: label_value(policy), NODE_LABEL: label_value(node),
                "app.kubernetes.io/part-of": "kube-healer"},
            "annotations": {NODE_NAME_ANNOTATION: node, TEMPLATE_NAME_ANNOTATION: template.name_any()}},
        "spec": spec,
    }))
    .map_err(BadTemplate::Unmade)
}
#[cfg(test)]
mod tests {
    use super::*;

    fn template(annotations: serde_json::Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "self-node-remediation.medik8s.io/v1alpha1", "kind": "SelfNodeRemediationTemplate",
            "metadata": {"name": "automatic", "namespace": "medik8s", "annotations": annotations},
            "spec": {"template": {"spec": {"remediationStrategy": "Automatic"}}}}))
        .unwrap()
    }

    /// An earlier attempt's resource is not followed again: finished, timed out or being
    /// deleted, it is replaced; one still in progress is followed (a restart, a new leader).
    #[test]
    fn a_spent_remediation_is_replaced_and_a_live_one_followed() {
        let with = |status: serde_json::Value, meta: serde_json::Value| -> DynamicObject {
            let mut object = json!({"apiVersion": "self-node-remediation.medik8s.io/v1alpha1",
                "kind": "SelfNodeRemediation", "metadata": {"name": "n1", "namespace": "medik8s"}, "status": status});
            for (k, v) in meta.as_object().unwrap() {
                object["metadata"][k] = v.clone();
            }
            serde_json::from_value(object).unwrap()
        };
        let conditions = |succeeded: &str| json!({"conditions": [{"type": "Processing", "status": "True"}, {"type": "Succeeded", "status": succeeded}]});
        assert!(!is_spent(&with(json!({}), json!({}))));
        assert!(!is_spent(&with(conditions("Unknown"), json!({}))));
        assert!(is_spent(&with(conditions("True"), json!({}))));
        assert!(is_spent(&with(conditions("False"), json!({}))));
        assert!(is_spent(&with(
            json!({}),
            json!({"annotations": {TIMED_OUT_ANNOTATION: "2026-12-03T10:00:00Z"}})
        )));
        assert!(is_spent(&with(
            json!({}),
            json!({"deletionTimestamp": "2026-12-03T10:00:00Z"})
        )));
    }

    /// As NodeHealthCheck makes it: the template's spec.template.spec, named after the node (or
    /// from it, for a template that supports several), its annotations, kube-healer's labels.
    #[test]
    fn the_remediation_is_made_as_node_health_check_makes_it() {
        let made = remediation(&template(json!({})), "SelfNodeRemediation", "reboot", "n1").unwrap();
        let value = serde_json::to_value(&made).unwrap();
        assert_eq!(value["kind"], "SelfNodeRemediation");
        assert_eq!(value["apiVersion"], "self-node-remediation.medik8s.io/v1alpha1");
        assert_eq!(value["metadata"]["name"], "n1");
        assert_eq!(value["metadata"]["namespace"], "medik8s");
        assert_eq!(value["spec"], json!({"remediationStrategy": "Automatic"}));
        assert_eq!(value["metadata"]["annotations"][NODE_NAME_ANNOTATION], "n1");
        assert_eq!(
            value["metadata"]["annotations"][TEMPLATE_NAME_ANNOTATION],
            "automatic"
        );
        assert_eq!(value["metadata"]["labels"][POLICY_LABEL], "reboot");
        let several = template(json!({MULTIPLE_TEMPLATES_ANNOTATION: "true"}));
        let made =
            serde_json::to_value(remediation(&several, "SelfNodeRemediation", "reboot", "n1").unwrap())
                .unwrap();
        assert_eq!(made["metadata"]["generateName"], "n1-");
        assert!(made["metadata"]["name"].is_null());
        let mut empty = template(json!({}));
        empty.data["spec"] = json!({});
        assert!(remediation(&empty, "SelfNodeRemediation", "reboot", "n1").is_err());
    }
}
