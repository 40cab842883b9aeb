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

use crate::clock::Clock;
use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Client, ResourceExt};
use kube_healer_api::record::ActionPhase;
use kube_healer_api::remediate::{RemediateParams, RemediationRef, TIMED_OUT_ANNOTATION};
use kube_healer_api::{HealingActionSpec, REMEDIATED_BY_ANNOTATION, reasons};
use kube_healer_core::convert::remediation_owners;
use serde_json::json;

mod release;
mod resource;

pub use release::release;
use release::unmark;
use resource::{condition, is_spent, not_found, remediation, selector};

use crate::act::Outcome;
use crate::act::discover::served;
use crate::act::failure::api_failure;
use crate::act::node::update_node;
use crate::protocol::Leading;
use crate::retry::{self, Backoff};

pub async fn remediate(
    client: &Client,
    spec: &HealingActionSpec,
    params: &RemediateParams,
    leading: &Leading,
    clock: &dyn Clock,
) -> Outcome {
    let (policy, node) = (spec.policy.as_str(), spec.target.name.as_str());
    let t = &params.template;
    let held = RemediationRef::from(t);
    let kind = held.kind.clone();
    let (templates, remediations) = match (
        served(client, &t.api_version, &t.kind).await,
        served(client, &t.api_version, &kind).await,
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
    // A spent one (finished, timed out, being deleted: an earlier attempt's) is deleted, and
    // this attempt gets a resource of its own.
    let found = match existing {
        Ok(list) => {
            let (spent, live): (Vec<_>, Vec<_>) = list.items.into_iter().partition(is_spent);
            let params = DeleteParams::default();
            for old in spent {
                let old = old.name_any();
                let (gone, more) = retry::call(Backoff::ACTION, "delete spent remediation", || {
                    remediations.delete(&old, &params)
                })
                .await;
                calls += more;
                if let Err(e) = gone.map(|_| ()).or_else(not_found) {
                    return api_failure(&e, calls);
                }
            }
            live.into_iter().next()
        }
        Err(e) => return api_failure(&e, calls),
    };
    let name = match found {
        Some(found) => found.name_any(),
        None => {
            let object = match remediation(&template, &kind, policy, node) {
                Ok(object) => object,
                Err(why) => {
                    unmark(client, spec, &held).await;
                    return Outcome::unsafe_because(why);
                }
            };
            let post = PostParams::default();
            let (created, made) = retry::call(Backoff::ACTION, "create remediation", || {
                remediations.create(&post, &object)
            })
            .await;
            calls += made;
            match created {
                Ok(created) => created.name_any(),
                Err(e) => {
                    unmark(client, spec, &held).await;
                    return api_failure(&e, calls);
                }
            }
        }
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
        Err(_) => timed_out(&remediations, &name, &reference, timeout, calls, clock).await,
    }
}
/// Past its timeout: marked timed out, as NodeHealthCheck marks it, so that the remediator stops.
async fn timed_out(
    remediations: &Api<DynamicObject>,
    name: &str,
    reference: &str,
    timeout: Duration,
    calls: i32,
    clock: &dyn Clock,
) -> Outcome {
    let now = clock.time().0.to_string();
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
