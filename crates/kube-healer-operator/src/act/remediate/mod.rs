//! Remediate: the node handed to an external remediator, as medik8s' NodeHealthCheck does it. A
//! remediation resource of the template's kind minus "Template" is created in the template's
//! namespace from its `spec.template.spec`, named after the node (or from it, when the template
//! supports several), with NodeHealthCheck's node-name and template-name annotations, so that
//! Self Node Remediation, Fence Agents Remediation or Machine Deletion Remediation act on it as
//! they would for NodeHealthCheck. Its Succeeded condition ends the action (True: succeeded,
//! False: failed); past the timeout it is marked timed out (NodeHealthCheck's annotation, on
//! which the remediators stop). The node carries the resource in its remediated-by annotation,
//! so that it counts as kept out of service and the resource is deleted when the node has
//! recovered (a restart or another leader included).

use crate::clock::Clock;
use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Client, ResourceExt};
use kube_healer_api::record::ActionPhase;
use kube_healer_api::remediate::{RemediateParams, RemediationRef, TIMED_OUT_ANNOTATION, TemplateRef};
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
    let (templates, remediations) = match apis(client, t, &kind).await {
        Ok(apis) => apis,
        Err(outcome) => return outcome,
    };
    let mut calls = 0;
    let template = match read_template(&templates, t, &mut calls).await {
        Ok(template) => template,
        Err(outcome) => return outcome,
    };
    // Held first, so that the node counts as out of service from now on, a crash included.
    if let Err(e) = mark(client, spec, &held).await {
        return api_failure(&e, calls + 1);
    }
    // One already made (before a restart, or by the leader before) is followed, not made again.
    let found = match live_remediation(&remediations, policy, node, &mut calls).await {
        Ok(found) => found,
        Err(outcome) => return outcome,
    };
    let name = match found {
        Some(found) => found.name_any(),
        None => match create(client, spec, (&template, &held), &remediations, &mut calls).await {
            Ok(name) => name,
            Err(outcome) => return outcome,
        },
    };
    let reference = format!("{kind} {}/{name}", t.namespace);
    tracing::info!(%reference, node, %policy, "remediation handed over");
    follow(
        &remediations,
        (&name, &reference),
        node,
        params.timeout(),
        leading,
        calls,
        clock,
    )
    .await
}

/// The template's kind and the remediation's, both served, or why not.
async fn apis(
    client: &Client,
    t: &TemplateRef,
    kind: &str,
) -> Result<(Api<DynamicObject>, Api<DynamicObject>), Outcome> {
    match (
        served(client, &t.api_version, &t.kind).await,
        served(client, &t.api_version, kind).await,
    ) {
        (Ok(a), Ok(b)) => Ok((
            Api::<DynamicObject>::namespaced_with(client.clone(), &t.namespace, &a),
            Api::<DynamicObject>::namespaced_with(client.clone(), &t.namespace, &b),
        )),
        (Err(e), _) | (_, Err(e)) => {
            let message = format!(
                "{} or {kind} is not served ({}): is the remediator installed?",
                t.kind,
                retry::describe(&e)
            );
            Err(Outcome::new(ActionPhase::Failed, reasons::API_ERROR, message, 1))
        }
    }
}

/// The remediation template, read.
async fn read_template(
    templates: &Api<DynamicObject>,
    t: &TemplateRef,
    calls: &mut i32,
) -> Result<DynamicObject, Outcome> {
    let (template, n) = retry::call(Backoff::ACTION, "get template", || templates.get_opt(&t.name)).await;
    *calls += n;
    match template {
        Ok(Some(template)) => Ok(template),
        Ok(None) => {
            let message = format!(
                "the remediation template {}/{}/{} is not there",
                t.kind, t.namespace, t.name
            );
            Err(Outcome::new(
                ActionPhase::Failed,
                reasons::API_ERROR,
                message,
                *calls,
            ))
        }
        Err(e) => Err(api_failure(&e, *calls)),
    }
}

/// The node's remediated-by annotation names this policy's remediation (kept if it does).
async fn mark(client: &Client, spec: &HealingActionSpec, held: &RemediationRef) -> Result<(), kube::Error> {
    let policy = spec.policy.as_str();
    let entry = held.entry(policy);
    update_node(client, &spec.target.name, Some(&spec.target.uid), |n| {
        let owners = remediation_owners(n.metadata.annotations.as_ref());
        if owners.iter().any(|(p, r)| *p == policy && r == held) {
            return None;
        }
        let mut entries: Vec<String> = owners.iter().map(|(p, r)| r.entry(p)).collect();
        entries.push(entry.clone());
        Some((
            json!({"metadata": {"annotations": {REMEDIATED_BY_ANNOTATION: entries.join(",")}}}),
            String::new(),
        ))
    })
    .await
    .map(|_| ())
}

/// The policy's remediation of the node still under way, if any. A spent one (finished, timed
/// out, being deleted: an earlier attempt's) is deleted, and this attempt gets one of its own.
async fn live_remediation(
    remediations: &Api<DynamicObject>,
    policy: &str,
    node: &str,
    calls: &mut i32,
) -> Result<Option<DynamicObject>, Outcome> {
    let lp = ListParams::default().labels(&selector(policy, node));
    let (existing, listed) =
        retry::call(Backoff::ACTION, "list remediations", || remediations.list(&lp)).await;
    *calls += listed;
    let list = existing.map_err(|e| api_failure(&e, *calls))?;
    let (spent, live): (Vec<_>, Vec<_>) = list.items.into_iter().partition(is_spent);
    let params = DeleteParams::default();
    for old in spent {
        let old = old.name_any();
        let (gone, more) = retry::call(Backoff::ACTION, "delete spent remediation", || {
            remediations.delete(&old, &params)
        })
        .await;
        *calls += more;
        gone.map(|_| ())
            .or_else(not_found)
            .map_err(|e| api_failure(&e, *calls))?;
    }
    Ok(live.into_iter().next())
}

/// A remediation made from the template; the node's mark taken back if it cannot be.
async fn create(
    client: &Client,
    spec: &HealingActionSpec,
    (template, held): (&DynamicObject, &RemediationRef),
    remediations: &Api<DynamicObject>,
    calls: &mut i32,
) -> Result<String, Outcome> {
    let object = match remediation(template, &held.kind, &spec.policy, &spec.target.name) {
        Ok(object) => object,
        Err(why) => {
            unmark(client, spec, held).await;
            return Err(Outcome::unsafe_because(why.to_string()));
        }
    };
    let post = PostParams::default();
    let (created, made) = retry::call(Backoff::ACTION, "create remediation", || {
        remediations.create(&post, &object)
    })
    .await;
    *calls += made;
    match created {
        Ok(created) => Ok(created.name_any()),
        Err(e) => {
            unmark(client, spec, held).await;
            Err(api_failure(&e, *calls))
        }
    }
}

/// Follows the remediation to its Succeeded condition, its deletion, the timeout or the loss of
/// the leadership (the next leader follows it then).
async fn follow(
    remediations: &Api<DynamicObject>,
    (name, reference): (&str, &str),
    node: &str,
    timeout: Duration,
    leading: &Leading,
    calls: i32,
    clock: &dyn Clock,
) -> Outcome {
    let ended = await_condition(remediations.clone(), name, |o: Option<&DynamicObject>| {
        o.is_none_or(|o| condition(o, "Succeeded").is_some_and(|(s, _)| s != "Unknown"))
    });
    let Some(followed) = leading.within(timeout, ended).await else {
        let message = format!(
            "stopped following {reference}: this replica lost the leadership; the next leader follows it"
        );
        return Outcome::new(ActionPhase::Running, reasons::LEADERSHIP_LOST, message, calls);
    };
    let (phase, reason, message) = match followed {
        Ok(Ok(Some(object))) => {
            let (status, reason) = condition(&object, "Succeeded").unwrap_or_default();
            match status.as_str() {
                "True" => (
                    ActionPhase::Succeeded,
                    reasons::COMPLETED,
                    format!("{reference} succeeded ({reason}) on node {node}"),
                ),
                _ => (
                    ActionPhase::Failed,
                    reasons::API_ERROR,
                    format!("{reference} failed ({reason}) on node {node}"),
                ),
            }
        }
        Ok(Ok(None)) => (
            ActionPhase::Failed,
            reasons::TARGET_GONE,
            format!("{reference} was deleted before it succeeded"),
        ),
        Ok(Err(e)) => (
            ActionPhase::Failed,
            reasons::API_ERROR,
            format!("following {reference}: {e}"),
        ),
        Err(_) => return timed_out(remediations, name, reference, timeout, calls, clock).await,
    };
    Outcome::new(phase, reason, message, calls)
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
