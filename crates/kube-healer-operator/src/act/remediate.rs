//! Remediate: the node handed to an external remediator, as medik8s' NodeHealthCheck does it. A
//! remediation resource of the template's kind minus "Template" is created in the template's
//! namespace from its `spec.template.spec`, named after the node (or from it, when the template
//! supports several), with NodeHealthCheck's node-name and template-name annotations, so that
//! Self Node Remediation, Fence Agents Remediation or Machine Deletion Remediation act on it as
//! they would for NodeHealthCheck. Its Succeeded condition ends the action (True: succeeded,
//! False: failed); past the timeout it is marked timed out (NodeHealthCheck's annotation, on
//! which the remediators stop). The node carries the resource in its remediated-by annotation,
//! so that it counts as held out of service and the resource is deleted when the node has
//! recovered (a restart or another leader included).

use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, pinned_kind};
use kube::runtime::wait::await_condition;
use kube::{Client, ResourceExt};
use kube_healer_api::record::ActionPhase;
use kube_healer_api::remediate::{
    MULTIPLE_TEMPLATES_ANNOTATION, NODE_NAME_ANNOTATION, RemediateParams, RemediationRef,
    TEMPLATE_NAME_ANNOTATION, TIMED_OUT_ANNOTATION,
};
use kube_healer_api::{HealingActionSpec, NODE_LABEL, POLICY_LABEL, REMEDIATED_BY_ANNOTATION, reasons};
use kube_healer_core::convert::remediation_owners;
use serde_json::json;

use crate::act::Outcome;
use crate::act::failure::api_failure;
use crate::act::node::update_node;
use crate::protocol::Leading;
use crate::record::label_value;
use crate::retry::{self, Backoff};

/// The API resource of `kind` in `api_version`, as the API server serves it (one discovery call:
/// an action's, never a hot path's).
async fn discover(client: &Client, api_version: &str, kind: &str) -> Result<ApiResource, kube::Error> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (found, _) = retry::call(Backoff::ACTION, "discover", || pinned_kind(client, &gvk)).await;
    found.map(|(resource, _)| resource)
}

/// The labels kube-healer puts on a remediation resource, to find it again.
fn selector(policy: &str, node: &str) -> String {
    format!(
        "{POLICY_LABEL}={},{NODE_LABEL}={}",
        label_value(policy),
        label_value(node)
    )
}

/// The condition `type_`'s status and reason on a remediation resource.
fn condition(object: &DynamicObject, type_: &str) -> Option<(String, String)> {
    let conditions = object.data["status"]["conditions"].as_array()?;
    let found = conditions.iter().find(|c| c["type"] == type_)?;
    let status = found["status"].as_str()?.to_string();
    Some((status, found["reason"].as_str().unwrap_or_default().to_string()))
}

/// The remediation resource for a node: the template's spec.template.spec, NodeHealthCheck's
/// annotations, kube-healer's labels.
fn remediation(
    template: &DynamicObject,
    kind: &str,
    policy: &str,
    node: &str,
) -> Result<DynamicObject, String> {
    let spec = template.data["spec"]["template"]["spec"].clone();
    if !spec.is_object() {
        return Err(format!(
            "the remediation template {} has no spec.template.spec",
            template.name_any()
        ));
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
    .map_err(|e| format!("the remediation resource cannot be made: {e}"))
}

pub async fn remediate(
    client: &Client,
    spec: &HealingActionSpec,
    params: &RemediateParams,
    leading: &Leading,
) -> Outcome {
    let (policy, node) = (spec.policy.as_str(), spec.target.name.as_str());
    let t = &params.template;
    let held = RemediationRef::from(t);
    let kind = held.kind.clone();
    let (templates, remediations) = match (
        discover(client, &t.api_version, &t.kind).await,
        discover(client, &t.api_version, &kind).await,
    ) {
        (Ok(a), Ok(b)) => (
            Api::<DynamicObject>::namespaced_with(client.clone(), &t.namespace, &a),
            Api::<DynamicObject>::namespaced_with(client.clone(), &t.namespace, &b),
        ),
        (Err(e), _) | (_, Err(e)) => {
            let message = format!(
                "{} or {kind} is not served ({}): is the remediator installed?",
                t.kind,
                retry::describe(&e)
            );
            return Outcome::new(ActionPhase::Failed, reasons::API_ERROR, message, 1);
        }
    };
    let (template, mut calls) =
        retry::call(Backoff::ACTION, "get template", || templates.get_opt(&t.name)).await;
    let template = match template {
        Ok(Some(template)) => template,
        Ok(None) => {
            let message = format!(
                "the remediation template {}/{}/{} is not there",
                t.kind, t.namespace, t.name
            );
            return Outcome::new(ActionPhase::Failed, reasons::API_ERROR, message, calls);
        }
        Err(e) => return api_failure(&e, calls),
    };
    // Held first, so that the node counts as out of service from now on, a crash included.
    let entry = held.entry(policy);
    let marked = update_node(client, node, Some(&spec.target.uid), |n| {
        let owners = remediation_owners(n.metadata.annotations.as_ref());
        if owners.iter().any(|(p, r)| *p == policy && *r == held) {
            return None;
        }
        let mut entries: Vec<String> = owners.iter().map(|(p, r)| r.entry(p)).collect();
        entries.push(entry.clone());
        Some((
            json!({"metadata": {"annotations": {REMEDIATED_BY_ANNOTATION: entries.join(",")}}}),
            String::new(),
        ))
    })
    .await;
    if let Err(e) = marked {
        return api_failure(&e, calls + 1);
    }
    // One already made (before a restart, or by the leader before) is followed, not made again.
    let lp = ListParams::default().labels(&selector(policy, node));
    let (existing, listed) =
        retry::call(Backoff::ACTION, "list remediations", || remediations.list(&lp)).await;
    calls += listed;
    let name = match existing.map(|l| l.items.into_iter().next()) {
        Ok(Some(found)) => found.name_any(),
        Ok(None) => {
            let object = match remediation(&template, &kind, policy, node) {
                Ok(object) => object,
                Err(why) => return Outcome::unsafe_because(why),
            };
            let post = PostParams::default();
            let (created, made) = retry::call(Backoff::ACTION, "create remediation", || {
                remediations.create(&post, &object)
            })
            .await;
            calls += made;
            match created {
                Ok(created) => created.name_any(),
                Err(e) => return api_failure(&e, calls),
            }
        }
        Err(e) => return api_failure(&e, calls),
    };
    let reference = format!("{kind} {}/{name}", t.namespace);
    tracing::info!(%reference, node, %policy, "remediation handed over");
    let timeout = params.timeout();
    let ended = await_condition(remediations.clone(), &name, |o: Option<&DynamicObject>| {
        o.is_none_or(|o| condition(o, "Succeeded").is_some_and(|(s, _)| s != "Unknown"))
    });
    let followed = tokio::select! {
        ended = tokio::time::timeout(timeout, ended) => ended,
        () = leading.lost() => {
            let message = format!("stopped following {reference}: this replica lost the leadership; the next leader follows it");
            return Outcome::new(ActionPhase::Running, reasons::LEADERSHIP_LOST, message, calls);
        }
    };
    match followed {
        Ok(Ok(Some(object))) => {
            let (status, reason) = condition(&object, "Succeeded").unwrap_or_default();
            match status.as_str() {
                "True" => Outcome::new(
                    ActionPhase::Succeeded,
                    reasons::COMPLETED,
                    format!("{reference} succeeded ({reason}) on node {node}"),
                    calls,
                ),
                _ => Outcome::new(
                    ActionPhase::Failed,
                    reasons::API_ERROR,
                    format!("{reference} failed ({reason}) on node {node}"),
                    calls,
                ),
            }
        }
        Ok(Ok(None)) => Outcome::new(
            ActionPhase::Failed,
            reasons::TARGET_GONE,
            format!("{reference} was deleted before it succeeded"),
            calls,
        ),
        Ok(Err(e)) => Outcome::new(
            ActionPhase::Failed,
            reasons::API_ERROR,
            format!("following {reference}: {e}"),
            calls,
        ),
        Err(_) => timed_out(&remediations, &name, &reference, timeout, calls).await,
    }
}

/// Past its timeout: marked timed out, as NodeHealthCheck marks it, so that the remediator stops.
async fn timed_out(
    remediations: &Api<DynamicObject>,
    name: &str,
    reference: &str,
    timeout: Duration,
    calls: i32,
) -> Outcome {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let patch = json!({"metadata": {"annotations": {TIMED_OUT_ANNOTATION: now}}});
    let (params, merge) = (PatchParams::default(), Patch::Merge(&patch));
    let (marked, more) = retry::call(Backoff::ACTION, "mark timed out", || {
        remediations.patch(name, &params, &merge)
    })
    .await;
    let how = match marked {
        Ok(_) => format!("marked timed out ({TIMED_OUT_ANNOTATION})"),
        Err(e) => format!("marking it timed out failed: {}", retry::describe(&e)),
    };
    let message = format!("{reference} did not succeed within {}s; {how}", timeout.as_secs());
    Outcome::new(ActionPhase::Failed, reasons::TIMEOUT, message, calls + more)
}

/// The policy lets go of the node: the remediation resources it made for it are deleted.
/// Returns those it could not delete (kept in the node's annotation, tried again at the next
/// revert).
pub async fn release(
    client: &Client,
    policy: &str,
    node: &str,
    held: &[RemediationRef],
) -> Vec<RemediationRef> {
    let mut standing = Vec::new();
    for r in held {
        let deleted = async {
            let resource = discover(client, &r.api_version, &r.kind).await?;
            let api = Api::<DynamicObject>::namespaced_with(client.clone(), &r.namespace, &resource);
            let lp = ListParams::default().labels(&selector(policy, node));
            let (list, _) = retry::call(Backoff::ACTION, "list remediations", || api.list(&lp)).await;
            for object in list? {
                let name = object.name_any();
                let params = DeleteParams::default();
                let (gone, _) = retry::call(Backoff::ACTION, "delete remediation", || {
                    api.delete(&name, &params)
                })
                .await;
                match gone {
                    Ok(_) => {
                        tracing::info!(kind = %r.kind, namespace = %r.namespace, %name, node, %policy, "remediation deleted: the node has recovered")
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            Ok::<(), kube::Error>(())
        };
        if let Err(e) = deleted.await {
            tracing::warn!(kind = %r.kind, namespace = %r.namespace, node, %policy, error = %e, "deleting the remediation failed: kept for the next revert");
            standing.push(r.clone());
        }
    }
    standing
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
