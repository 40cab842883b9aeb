//! Letting go of a remediation: the node stops naming it when nothing was handed over, and the
//! resources are deleted when the node has recovered.

use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::{Client, ResourceExt};
use kube_healer_api::remediate::RemediationRef;
use kube_healer_api::{HealingActionSpec, REMEDIATED_BY_ANNOTATION};
use kube_healer_core::convert::remediation_owners;
use serde_json::json;

use super::resource::selector;
use crate::act::discover::served;
use crate::act::node::update_node;
use crate::retry::{self, Backoff};

/// Nothing was handed over: the node no longer names the remediation (it is not held for it).
pub(super) async fn unmark(client: &Client, spec: &HealingActionSpec, held: &RemediationRef) {
    let policy = spec.policy.as_str();
    let result = update_node(client, &spec.target.name, Some(&spec.target.uid), |n| {
        let owners = remediation_owners(n.metadata.annotations.as_ref());
        if !owners.iter().any(|(p, r)| *p == policy && r == held) {
            return None;
        }
        let kept: Vec<String> = owners
            .iter()
            .filter(|(p, r)| *p != policy || r != held)
            .map(|(p, r)| r.entry(p))
            .collect();
        let value = if kept.is_empty() {
            serde_json::Value::Null
        } else {
            json!(kept.join(","))
        };
        Some((
            json!({"metadata": {"annotations": {REMEDIATED_BY_ANNOTATION: value}}}),
            String::new(),
        ))
    })
    .await;
    if let Err(e) = result {
        tracing::warn!(node = %spec.target.name, %policy, error = %e, "unmarking the node failed: its revert lets go of it");
    }
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
            let resource = match served(client, &r.api_version, &r.kind).await {
                Ok(resource) => resource,
                // The remediator is gone (its kind is no longer served): nothing left to delete.
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
                Err(kube::Error::Discovery(_)) => return Ok(()),
                Err(e) => return Err(e),
            };
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
