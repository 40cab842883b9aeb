//! Cordon and Taint, and their revert. kube-healer marks what it changed with annotations naming
//! the policy, and reverts only that: a node cordoned by a person stays cordoned.

use k8s_openapi::api::core::v1::{Node, Taint};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube_healer_api::action::TaintParams;
use kube_healer_api::record::ActionPhase;
use kube_healer_api::{
    AVOID_TAINT, CORDONED_BY_ANNOTATION, HealingActionSpec, TAINTED_BY_ANNOTATION, reasons,
};
use serde_json::json;

use crate::act::Outcome;
use crate::retry::{self, Backoff};

/// Succeeded with the change made, or with nothing to change (`unchanged`), or failed.
fn outcome(result: Result<Option<String>, kube::Error>, unchanged: impl FnOnce() -> String) -> Outcome {
    match result {
        Ok(Some(message)) => Outcome::new(ActionPhase::Succeeded, reasons::COMPLETED, message, 1),
        Ok(None) => Outcome::new(ActionPhase::Succeeded, reasons::COMPLETED, unchanged(), 1),
        Err(e) => failed(e),
    }
}

fn failed(e: kube::Error) -> Outcome {
    match e {
        kube::Error::Api(s) if s.code == 404 => Outcome::new(
            ActionPhase::Failed,
            reasons::TARGET_GONE,
            "the node is gone".into(),
            1,
        ),
        e => crate::act::failure::api_failure(&e, 1),
    }
}

/// Patches a node read just before, with its resourceVersion: a concurrent change makes the
/// API server answer 409 and the change is tried again on the fresh node (at most 5 times).
async fn update_node<F>(
    client: &Client,
    name: &str,
    uid: Option<&str>,
    change: F,
) -> Result<Option<String>, kube::Error>
where
    F: Fn(&Node) -> Option<(serde_json::Value, String)>,
{
    let nodes: Api<Node> = Api::all(client.clone());
    let mut tries = 0;
    loop {
        tries += 1;
        let node = retry::call(Backoff::ACTION, "get node", || nodes.get(name))
            .await
            .0?;
        if uid.is_some_and(|u| node.metadata.uid.as_deref() != Some(u)) {
            return Err(kube::Error::Api(
                kube::core::Status::failure("the node was replaced", "NotFound")
                    .with_code(404)
                    .boxed(),
            ));
        }
        let Some((mut patch, message)) = change(&node) else {
            return Ok(None);
        };
        patch["metadata"]["resourceVersion"] = json!(node.metadata.resource_version);
        let (params, merge) = (PatchParams::default(), Patch::Merge(&patch));
        let (patched, _) = retry::call(Backoff::ACTION, "patch node", || {
            nodes.patch(name, &params, &merge)
        })
        .await;
        match patched {
            Ok(_) => return Ok(Some(message)),
            Err(kube::Error::Api(s)) if s.code == 409 && tries < 5 => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The node's taints, except those `drop` picks.
fn taints_without(node: &Node, drop: impl Fn(&Taint) -> bool) -> Vec<Taint> {
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    taints.iter().filter(|t| !drop(t)).cloned().collect()
}

pub async fn cordon(client: &Client, spec: &HealingActionSpec) -> Outcome {
    let result = update_node(client, &spec.target.name, Some(&spec.target.uid), |node| {
        if node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false) {
            return None; // already cordoned (perhaps by a person): not ours to claim
        }
        Some((
            json!({"spec": {"unschedulable": true}, "metadata": {"annotations": {CORDONED_BY_ANNOTATION: spec.policy}}}),
            format!("cordoned {}", spec.target.reference),
        ))
    })
    .await;
    outcome(result, || {
        format!("{} was already cordoned", spec.target.reference)
    })
}

/// The taint of Kubernetes' non-graceful node shutdown, as its documentation writes it.
pub fn out_of_service() -> TaintParams {
    TaintParams {
        key: kube_healer_core::decide::OUT_OF_SERVICE.into(),
        value: Some("nodeshutdown".into()),
        effect: kube_healer_api::action::TaintEffect::NoExecute,
        acknowledge_no_execute: true,
    }
}

pub async fn taint(client: &Client, spec: &HealingActionSpec, taint: &TaintParams) -> Outcome {
    let effect = taint.effect.as_str();
    let result = update_node(client, &spec.target.name, Some(&spec.target.uid), |node| {
        let mut taints = taints_without(node, |_| false);
        if taints.iter().any(|t| t.key == taint.key && t.effect == effect) {
            return None;
        }
        taints.push(Taint {
            key: taint.key.clone(),
            value: taint.value.clone(),
            effect: effect.to_string(),
            time_added: None,
        });
        let marker = format!("{}={}:{effect}", spec.policy, taint.key);
        Some((
            json!({"spec": {"taints": taints}, "metadata": {"annotations": {TAINTED_BY_ANNOTATION: marker}}}),
            format!("tainted {} {}:{effect}", spec.target.reference, taint.key),
        ))
    })
    .await;
    outcome(result, || {
        format!("{} already had the taint", spec.target.reference)
    })
}

/// Undoes the policy's cordon and taint on the node, if kube-healer made them for this policy.
pub async fn revert(client: &Client, recorder: &Recorder, policy: &str, node: &str) {
    let result = update_node(client, node, None, |n| {
        let annotations = n.metadata.annotations.clone().unwrap_or_default();
        let mut patch = json!({"metadata": {"annotations": {}}});
        let mut undone = Vec::new();
        if annotations.get(CORDONED_BY_ANNOTATION).map(String::as_str) == Some(policy) {
            patch["spec"]["unschedulable"] = json!(false);
            patch["metadata"]["annotations"][CORDONED_BY_ANNOTATION] = serde_json::Value::Null;
            undone.push("uncordoned".to_string());
        }
        if let Some(marker) = annotations.get(TAINTED_BY_ANNOTATION)
            && let Some((owner, taint)) = marker.split_once('=')
            && owner == policy
            && let Some((key, effect)) = taint.rsplit_once(':')
        {
            let taints = taints_without(n, |t| t.key == key && t.effect == effect);
            patch["spec"]["taints"] = json!(taints);
            patch["metadata"]["annotations"][TAINTED_BY_ANNOTATION] = serde_json::Value::Null;
            undone.push(format!("removed the taint {key}:{effect}"));
        }
        (!undone.is_empty()).then(|| (patch, undone.join(", ")))
    })
    .await;
    match result {
        Ok(Some(message)) => {
            tracing::info!(%policy, node, %message, "reverted");
            let reference = k8s_openapi::api::core::v1::ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node.to_string()),
                uid: Some(node.to_string()),
                ..Default::default()
            };
            let event = Event {
                type_: EventType::Normal,
                reason: "HealingReverted".into(),
                note: Some(format!("the failure cleared; policy {policy}: {message}")),
                action: "Revert".into(),
                secondary: None,
            };
            let _ = recorder.publish(&event, &reference).await;
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(%policy, node, error = %e, "reverting failed"),
    }
}

/// Puts (or extends) the avoid taint on a node: NoSchedule until the Unix time `until`.
pub async fn avoid(client: &Client, node: &str, until: i64) -> Result<(), kube::Error> {
    update_node(client, node, None, |n| {
        let mut taints = taints_without(n, |_| false);
        if let Some(t) = taints.iter_mut().find(|t| t.key == AVOID_TAINT) {
            if t.value
                .as_deref()
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v >= until)
            {
                return None;
            }
            t.value = Some(until.to_string());
        } else {
            taints.push(Taint {
                key: AVOID_TAINT.into(),
                value: Some(until.to_string()),
                effect: "NoSchedule".into(),
                time_added: None,
            });
        }
        Some((json!({"spec": {"taints": taints}}), String::new()))
    })
    .await
    .map(|_| ())
}

/// Removes the node's avoid taint if it expired by `now`.
pub async fn remove_expired_avoid(client: &Client, node: &str, now: i64) {
    let result = update_node(client, node, None, |n| {
        if kube_healer_core::convert::avoid_expiry(n).is_none_or(|until| until > now) {
            return None;
        }
        let taints = taints_without(n, |t| t.key == AVOID_TAINT);
        Some((json!({"spec": {"taints": taints}}), String::new()))
    })
    .await;
    match result {
        Ok(Some(_)) => tracing::info!(node, "the avoid taint expired: removed"),
        Ok(None) => {}
        Err(e) => tracing::warn!(node, error = %e, "removing the expired avoid taint failed"),
    }
}
