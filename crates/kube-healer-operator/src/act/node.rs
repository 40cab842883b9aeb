//! Cordon and Taint, and the revert of what a policy holds on a node (Remediate's resources too). kube-healer marks what it changed with annotations naming
//! the policies that hold it, and reverts only that: a node cordoned by a person stays cordoned,
//! and a cordon or taint several policies hold is lifted only when the last of them lets go.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Taint};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube_healer_api::action::TaintParams;
use kube_healer_api::record::ActionPhase;
use kube_healer_api::{
    AVOID_TAINT, CORDON_LIFTED_ANNOTATION, CORDONED_BY_ANNOTATION, HealingActionSpec, JOB_BY_ANNOTATION,
    MARKED_AT_ANNOTATION, TAINTED_BY_ANNOTATION, reasons,
};
use serde_json::json;

use kube_healer_api::REMEDIATED_BY_ANNOTATION;
use kube_healer_api::remediate::RemediationRef;
use kube_healer_core::convert::{cordon_owners, job_owners, marked_at, remediation_owners, taint_owners};
use kube_healer_core::policy::CompiledPolicy;

use crate::act::{Outcome, remediate};
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
pub async fn update_node<F>(
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
        // Named, so that the API server records the cordon as kube-healer's (see core's
        // `unschedulable_set_by_other`).
        let params = PatchParams {
            field_manager: Some(kube_healer_core::marks::FIELD_MANAGER.into()),
            ..Default::default()
        };
        let merge = Patch::Merge(&patch);
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

/// Cordon's patch to the node as read (None: nothing to change), and what it did, said. A node
/// cordoned by a person is not claimed; one cordoned by other policies is held by this one too.
pub fn cordon_patch(node: &Node, spec: &HealingActionSpec) -> Option<(serde_json::Value, String)> {
    let (mut patch, said) = cordon_change(node, spec)?;
    stamp(&mut patch, node, spec);
    Some((patch, said))
}

/// The policy's generation, written beside its mark (see `MARKED_AT_ANNOTATION`): the spec the
/// mark was made under, so that an edited policy does not judge what an earlier spec did. An
/// entry left from an earlier mark is overwritten.
fn stamp(patch: &mut serde_json::Value, node: &Node, spec: &HealingActionSpec) {
    let Some(generation) = spec.policy_generation else {
        return;
    };
    let mut entries: Vec<String> = marked_at(node.metadata.annotations.as_ref())
        .into_iter()
        .filter(|(p, _)| *p != spec.policy)
        .map(|(p, g)| format!("{p}={g}"))
        .collect();
    entries.push(format!("{}={generation}", spec.policy));
    patch["metadata"]["annotations"][MARKED_AT_ANNOTATION] = json!(entries.join(","));
}

fn cordon_change(node: &Node, spec: &HealingActionSpec) -> Option<(serde_json::Value, String)> {
    let policy = spec.policy.as_str();
    let owners = cordon_owners(node.metadata.annotations.as_ref());
    if node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false) {
        // Cordoned by a person (no mark, or set again by someone since the mark): not ours to
        // claim. Cordoned by other policies: this one holds it too, so that it stays until none
        // of them needs it.
        let by_other = kube_healer_core::marks::cordon_is_others(&node.metadata);
        if owners.is_empty() || owners.contains(&policy) || by_other {
            return None;
        }
        let mut held = owners.clone();
        held.push(policy);
        return Some((
            json!({"metadata": {"annotations": {CORDONED_BY_ANNOTATION: held.join(",")}}}),
            format!(
                "{} was cordoned by {}: {policy} holds the cordon too",
                spec.target.reference,
                owners.join(", ")
            ),
        ));
    }
    Some((
        json!({"spec": {"unschedulable": true}, "metadata": {"annotations": {CORDONED_BY_ANNOTATION: policy}}}),
        format!("cordoned {}", spec.target.reference),
    ))
}

pub async fn cordon(client: &Client, spec: &HealingActionSpec) -> Outcome {
    let by_other = std::sync::atomic::AtomicBool::new(false);
    let result = update_node(client, &spec.target.name, Some(&spec.target.uid), |node| {
        let unschedulable = node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
        by_other.store(
            kube_healer_core::marks::cordoned_by_other(&node.metadata, unschedulable),
            std::sync::atomic::Ordering::Relaxed,
        );
        cordon_patch(node, spec)
    })
    .await;
    if matches!(result, Ok(None)) && by_other.load(std::sync::atomic::Ordering::Relaxed) {
        return already_done(format!(
            "{} was already cordoned by someone else: nothing changed, and the cordon is not kube-healer's",
            spec.target.reference
        ));
    }
    outcome(result, || {
        format!("{} was already cordoned", spec.target.reference)
    })
}

/// What the action would do was done by someone else: Skipped, nothing taken as kube-healer's.
fn already_done(message: String) -> Outcome {
    Outcome::new(ActionPhase::Skipped, reasons::ALREADY_DONE, message, 1)
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

/// A tainted-by annotation's entries, written back (None: no entry left).
fn taint_marker(entries: &[(&str, &str, &str)]) -> serde_json::Value {
    if entries.is_empty() {
        return serde_json::Value::Null;
    }
    let list: Vec<String> = entries.iter().map(|(p, k, e)| format!("{p}={k}:{e}")).collect();
    json!(list.join(","))
}

/// Taint's patch to the node as read (None: nothing to change), and what it did, said. A taint a
/// person put there is not claimed; one other policies put there is held by this one too.
pub fn taint_patch(
    node: &Node,
    spec: &HealingActionSpec,
    taint: &TaintParams,
) -> Option<(serde_json::Value, String)> {
    let (mut patch, said) = taint_change(node, spec, taint)?;
    stamp(&mut patch, node, spec);
    Some((patch, said))
}

fn taint_change(
    node: &Node,
    spec: &HealingActionSpec,
    taint: &TaintParams,
) -> Option<(serde_json::Value, String)> {
    let (policy, key, effect) = (spec.policy.as_str(), taint.key.as_str(), taint.effect.as_str());
    let mut taints = taints_without(node, |_| false);
    let mut entries = taint_owners(node.metadata.annotations.as_ref());
    let held = |p: &str| entries.contains(&(p, key, effect));
    if taints.iter().any(|t| t.key == key && t.effect == effect) {
        // Put there by a person, or held by this policy already: nothing to do. Held by
        // other policies: this one holds it too.
        if held(policy) || !entries.iter().any(|(_, k, e)| (*k, *e) == (key, effect)) {
            return None;
        }
        entries.push((policy, key, effect));
        return Some((
            json!({"metadata": {"annotations": {TAINTED_BY_ANNOTATION: taint_marker(&entries)}}}),
            format!(
                "{} had the taint {key}:{effect}: {policy} holds it too",
                spec.target.reference
            ),
        ));
    }
    taints.push(Taint {
        key: key.to_string(),
        value: taint.value.clone(),
        effect: effect.to_string(),
        time_added: None,
    });
    // Entries for a taint no longer there are stale: this policy's is the one now.
    entries.retain(|(_, k, e)| (*k, *e) != (key, effect));
    entries.push((policy, key, effect));
    Some((
        json!({"spec": {"taints": taints}, "metadata": {"annotations": {TAINTED_BY_ANNOTATION: taint_marker(&entries)}}}),
        format!("tainted {} {key}:{effect}", spec.target.reference),
    ))
}

pub async fn taint(client: &Client, spec: &HealingActionSpec, taint: &TaintParams) -> Outcome {
    let by_other = std::sync::atomic::AtomicBool::new(false);
    let result = update_node(client, &spec.target.name, Some(&spec.target.uid), |node| {
        let (key, effect) = (taint.key.as_str(), taint.effect.as_str());
        let present = taints_without(node, |_| false)
            .iter()
            .any(|t| t.key == key && t.effect == effect);
        let entries = taint_owners(node.metadata.annotations.as_ref());
        by_other.store(
            present && !entries.iter().any(|(_, k, e)| (*k, *e) == (key, effect)),
            std::sync::atomic::Ordering::Relaxed,
        );
        taint_patch(node, spec, taint)
    })
    .await;
    if matches!(result, Ok(None)) && by_other.load(std::sync::atomic::Ordering::Relaxed) {
        return already_done(format!(
            "{} already had the taint {}:{}, put there by someone else: nothing changed, and the taint is not kube-healer's",
            spec.target.reference,
            taint.key,
            taint.effect.as_str()
        ));
    }
    outcome(result, || {
        format!("{} already had the taint", spec.target.reference)
    })
}

/// The evidence a revert is sent on: the clear debounce, since when the engine saw the node
/// Ready (for a Ready condition that carries no transition time), and the node policies, which
/// take the last look at the node read afresh.
#[derive(Clone, Debug)]
pub struct Recovered {
    pub debounce: i64,
    pub ready_since: Option<i64>,
    pub now: i64,
    pub watch: Arc<[CompiledPolicy]>,
}

/// Why `policy`'s revert waits, on the node read afresh, if it does (the engine decided on its
/// store, which may lag behind a failure that came back):
/// - the node has not been Ready, with its status settled, for the debounce by its own
///   conditions' times (a Ready condition without a time is dated as the engine saw it, as the
///   recheck carries the decision's times);
/// - or a node policy sees a failure in its conditions: the policy itself, one that holds no
///   mark on the node, or, when the revert would take an effect off (a cordon or a taint the
///   policy holds alone), any. A policy that holds the node keeps it out by its own mark, but
///   only with its own effects: a taint comes off only once the node shows no failure at all.
pub fn revert_waits(n: &Node, policy: &str, r: &Recovered) -> Option<String> {
    let mut view = kube_healer_core::convert::node_view(n, &mut Default::default()).ok()?;
    if let Some(c) = view.conditions.iter_mut().find(|c| &*c.type_ == "Ready")
        && c.since.is_none()
    {
        c.since = r.ready_since;
    }
    match kube_healer_core::decide::settled_for(&view, r.debounce, r.now) {
        Ok(()) => {}
        Err(None) => return Some("read afresh, the node is not Ready".into()),
        Err(Some(at)) => {
            return Some(format!(
                "read afresh, the node has been Ready and unchanged for {}s only",
                r.debounce - (at - r.now)
            ));
        }
    }
    let lifts = lifts_alone(n, policy);
    let holds_it =
        |p: &CompiledPolicy| !lifts && p.name != policy && view.held_by.iter().any(|h| **h == *p.name);
    let mut asked = r.watch.iter().filter(|p| !holds_it(p));
    let (seer, found) = asked.find_map(|p| p.sees_on_the_node(&view, r.now).map(|f| (p, f)))?;
    Some(format!(
        "read afresh, the node shows {:?} ({}), which {} looks for",
        found.class, found.evidence.summary, seer.name
    ))
}

/// Whether the policy's revert would take an effect off the node, not only its mark: it holds
/// the cordon, or a taint, alone.
fn lifts_alone(n: &Node, policy: &str) -> bool {
    let annotations = n.metadata.annotations.as_ref();
    let cordoned = n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
    let cordon = cordoned && cordon_owners(annotations) == [policy];
    let taints = taint_owners(annotations);
    let held_by_another = |k: &str, e: &str| {
        taints
            .iter()
            .any(|(p, k2, e2)| *p != policy && (*k2, *e2) == (k, e))
    };
    let taint = taints
        .iter()
        .any(|(p, k, e)| *p == policy && !held_by_another(k, e));
    cordon || taint
}

/// The policy lets go of the node, once the node read afresh has been Ready for the debounce:
/// its hold on the cordon and on taints comes off, and what no other policy holds any more is
/// undone (only what kube-healer made).
pub async fn revert(
    client: &Client,
    recorder: &Recorder,
    (policy, node): (&str, &str),
    recovered: Recovered,
) {
    // The remediation resources the policy made for the node go first. The node then stops
    // naming only those that were deleted: if the node could not be read, none is.
    let nodes: Api<Node> = Api::all(client.clone());
    let (current, _) = retry::call(Backoff::ACTION, "get node", || nodes.get_opt(node)).await;
    if let Ok(Some(n)) = &current
        && let Some(why) = revert_waits(n, policy, &recovered)
    {
        tracing::info!(%policy, node, %why, "revert waits for the node's recovery");
        return;
    }
    let handed: Vec<RemediationRef> = match current {
        Ok(Some(n)) => remediation_owners(n.metadata.annotations.as_ref())
            .into_iter()
            .filter(|(p, _)| *p == policy)
            .map(|(_, r)| r)
            .collect(),
        _ => Vec::new(),
    };
    let standing = remediate::release(client, policy, node, &handed).await;
    let released: Vec<&RemediationRef> = handed.iter().filter(|r| !standing.contains(r)).collect();
    let result = update_node(client, node, None, |n| {
        revert_waits(n, policy, &recovered).map_or_else(|| revert_patch(n, policy, &released), |_| None)
    })
    .await;
    match result {
        Ok(Some(message)) => announce_revert(recorder, policy, node, &message).await,
        Ok(None) => {}
        Err(e) => tracing::warn!(%policy, node, error = %e, "reverting failed"),
    }
}

/// A revert's patch to the node as read (None: nothing of the policy's on it), and what it
/// undid, said: the policy's hold on the cordon, its taints and the remediations released come
/// off; what another policy or a person holds stays.
pub fn revert_patch(
    n: &Node,
    policy: &str,
    released: &[&RemediationRef],
) -> Option<(serde_json::Value, String)> {
    let mut patch = json!({"metadata": {"annotations": {}}});
    let mut undone = Vec::new();
    let mut change = Change {
        patch: &mut patch,
        undone: &mut undone,
    };
    change.remediations(n, policy, released);
    // A replacement asked for cannot be taken back: the node stays held (replaced-by) until
    // it is gone, or until Replace itself gives up on it.
    change.cordon(n, policy);
    change.taints(n, policy);
    change.job(n, policy);
    change.generation(n, policy);
    (!undone.is_empty()).then(|| (patch, undone.join(", ")))
}

/// A revert's patch to the node, and what it undid, said.
struct Change<'a> {
    patch: &'a mut serde_json::Value,
    undone: &'a mut Vec<String>,
}

impl Change<'_> {
    /// The remediations released stop being named on the node.
    fn remediations(&mut self, n: &Node, policy: &str, released: &[&RemediationRef]) {
        let remediations = remediation_owners(n.metadata.annotations.as_ref());
        let gone = |p: &str, r: &RemediationRef| p == policy && released.contains(&r);
        if !remediations.iter().any(|(p, r)| gone(p, r)) {
            return;
        }
        let kept: Vec<String> = remediations
            .iter()
            .filter(|(p, r)| !gone(p, r))
            .map(|(p, r)| r.entry(p))
            .collect();
        self.patch["metadata"]["annotations"][REMEDIATED_BY_ANNOTATION] = if kept.is_empty() {
            serde_json::Value::Null
        } else {
            json!(kept.join(","))
        };
        for (_, r) in remediations.iter().filter(|(p, r)| gone(p, r)) {
            self.undone
                .push(format!("deleted its {} in {}", r.kind, r.namespace));
        }
    }

    /// The policy's hold on the cordon comes off; uncordoned if no other policy holds it.
    fn cordon(&mut self, n: &Node, policy: &str) {
        let owners = cordon_owners(n.metadata.annotations.as_ref());
        if !owners.contains(&policy) {
            return;
        }
        let rest: Vec<&str> = owners.into_iter().filter(|p| *p != policy).collect();
        // A cordon someone set again over the mark is theirs (core's `stale_cordon`): only the
        // mark comes off.
        let theirs = kube_healer_core::marks::stale_cordon(&n.metadata, true);
        if rest.is_empty() && theirs {
            self.patch["metadata"]["annotations"][CORDONED_BY_ANNOTATION] = serde_json::Value::Null;
            self.undone
                .push("left the cordon to whoever set it again".to_string());
        } else if rest.is_empty() {
            self.patch["spec"]["unschedulable"] = json!(false);
            self.patch["metadata"]["annotations"][CORDONED_BY_ANNOTATION] = serde_json::Value::Null;
            self.undone.push("uncordoned".to_string());
        } else {
            self.patch["metadata"]["annotations"][CORDONED_BY_ANNOTATION] = json!(rest.join(","));
            self.undone
                .push(format!("left the cordon to {}", rest.join(", ")));
        }
    }

    /// A node Job's mark left behind (its operator gone before the Job ended) comes off with
    /// the rest: the node has recovered.
    fn job(&mut self, n: &Node, policy: &str) {
        if let Some((patch, said)) = job_done_patch(n, policy) {
            self.patch["metadata"]["annotations"][JOB_BY_ANNOTATION] =
                patch["metadata"]["annotations"][JOB_BY_ANNOTATION].clone();
            self.undone.push(said);
        }
    }

    /// With its cordon and taints undone, the policy's generation entry goes too.
    fn generation(&mut self, n: &Node, policy: &str) {
        let entries = marked_at(n.metadata.annotations.as_ref());
        if self.undone.is_empty() || !entries.iter().any(|(p, _)| *p == policy) {
            return;
        }
        let rest: Vec<String> = entries
            .iter()
            .filter(|(p, _)| *p != policy)
            .map(|(p, g)| format!("{p}={g}"))
            .collect();
        self.patch["metadata"]["annotations"][MARKED_AT_ANNOTATION] = match rest.is_empty() {
            true => serde_json::Value::Null,
            false => json!(rest.join(",")),
        };
    }

    /// The policy's taints come off, but those another policy still holds.
    fn taints(&mut self, n: &Node, policy: &str) {
        let entries = taint_owners(n.metadata.annotations.as_ref());
        let (mine, rest): (Vec<_>, Vec<_>) = entries.into_iter().partition(|(p, _, _)| *p == policy);
        if mine.is_empty() {
            return;
        }
        let lifted: Vec<(&str, &str)> = mine
            .iter()
            .map(|(_, k, e)| (*k, *e))
            .filter(|taint| !rest.iter().any(|(_, k, e)| (*k, *e) == *taint))
            .collect();
        let taints = taints_without(n, |t| lifted.contains(&(t.key.as_str(), t.effect.as_str())));
        self.patch["spec"]["taints"] = json!(taints);
        self.patch["metadata"]["annotations"][TAINTED_BY_ANNOTATION] = taint_marker(&rest);
        for (_, key, effect) in &mine {
            self.undone.push(match lifted.contains(&(*key, *effect)) {
                true => format!("removed the taint {key}:{effect}"),
                false => format!("left the taint {key}:{effect} to the policies that still hold it"),
            });
        }
    }
}

/// The node Job's mark, set before its Job is created (None: already there): the budget counts
/// the node for as long as the Job may run, across restarts.
pub fn job_mark_patch(n: &Node, policy: &str) -> Option<(serde_json::Value, String)> {
    let mut owners = job_owners(n.metadata.annotations.as_ref());
    if owners.contains(&policy) {
        return None;
    }
    owners.push(policy);
    Some((
        json!({"metadata": {"annotations": {JOB_BY_ANNOTATION: owners.join(",")}}}),
        format!("marked as running {policy}'s node job"),
    ))
}

/// The node Job's mark off, once the Job has ended (None: not there).
pub fn job_done_patch(n: &Node, policy: &str) -> Option<(serde_json::Value, String)> {
    let owners = job_owners(n.metadata.annotations.as_ref());
    if !owners.contains(&policy) {
        return None;
    }
    let rest: Vec<&str> = owners.into_iter().filter(|p| *p != policy).collect();
    let value = match rest.is_empty() {
        true => serde_json::Value::Null,
        false => json!(rest.join(",")),
    };
    Some((
        json!({"metadata": {"annotations": {JOB_BY_ANNOTATION: value}}}),
        "the node job's mark came off".to_string(),
    ))
}

/// The policies whose hold is on the node (its cordon's and its taints'), in order: what a
/// person may release (`kube-healer release`).
pub fn released_policies(n: &Node) -> Vec<String> {
    let annotations = n.metadata.annotations.as_ref();
    let mut policies: Vec<String> = cordon_owners(annotations)
        .into_iter()
        .chain(taint_owners(annotations).into_iter().map(|(p, _, _)| p))
        .map(str::to_string)
        .collect();
    policies.sort();
    policies.dedup();
    policies
}

/// A person's release of one policy's hold on the node (`kube-healer release`): what the
/// policy's revert would undo, undone at once, whatever the node's state and whether or not
/// the policy still exists. The release is recorded as a person's lift of the policy's work
/// (cordon-lifted, at `now`): the person wins, and a policy still there does not cordon or taint
/// the node again for that failure, nor within its cooldown. None: nothing of the policy's on it.
pub fn release_patch(n: &Node, policy: &str, now: i64) -> Option<(serde_json::Value, String)> {
    let (mut patch, undone) = revert_patch(n, policy, &[])?;
    let annotations = n.metadata.annotations.as_ref();
    {
        let mut lifted: Vec<String> = kube_healer_core::marks::cordon_lifted(annotations)
            .into_iter()
            .filter(|(p, _)| *p != policy)
            .map(|(p, at)| format!("{p}={at}"))
            .collect();
        lifted.push(format!("{policy}={now}"));
        patch["metadata"]["annotations"][CORDON_LIFTED_ANNOTATION] = json!(lifted.join(","));
    }
    Some((patch, undone))
}

/// The patch that records kube-healer's marks someone else undid (None: none is): a cordon of
/// kube-healer's lifted (its cordoned-by mark comes off, so that a later cordon by a person is
/// never taken for kube-healer's, and the cordon-lifted annotation names the policies whose
/// cordon it was and when, `now`, which keeps them from cordoning it again for that failure
/// and within their cooldown), and taint marks whose taint someone removed (they come off, so
/// that a later taint of the same key by a person is never taken for kube-healer's).
pub fn lifted_marks_patch(n: &Node, now: i64) -> Option<(serde_json::Value, String)> {
    let annotations = n.metadata.annotations.as_ref();
    let unschedulable = n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
    let mut patch = json!({"metadata": {"annotations": {}}});
    let mut said = Vec::new();
    if kube_healer_core::marks::stale_cordon(&n.metadata, unschedulable) {
        let owners = cordon_owners(annotations);
        let mut lifted: Vec<(&str, i64)> = kube_healer_core::marks::cordon_lifted(annotations)
            .into_iter()
            .filter(|(p, _)| !owners.contains(p))
            .collect();
        lifted.extend(owners.iter().map(|p| (*p, now)));
        let entries: Vec<String> = lifted.iter().map(|(p, at)| format!("{p}={at}")).collect();
        patch["metadata"]["annotations"][CORDONED_BY_ANNOTATION] = serde_json::Value::Null;
        patch["metadata"]["annotations"][CORDON_LIFTED_ANNOTATION] = json!(entries.join(","));
        said.push(format!(
            "someone uncordoned the node that {} had cordoned{}: the person wins, and the cordon is no longer kube-healer's",
            owners.join(", "),
            if unschedulable { " and cordoned it again" } else { "" }
        ));
    }
    let taints = taints_without(n, |_| false);
    let entries = taint_owners(annotations);
    let (kept, gone): (Vec<_>, Vec<_>) = entries
        .into_iter()
        .partition(|(_, k, e)| taints.iter().any(|t| t.key == *k && t.effect == *e));
    if !gone.is_empty() {
        patch["metadata"]["annotations"][TAINTED_BY_ANNOTATION] = taint_marker(&kept);
        let named: Vec<String> = gone.iter().map(|(p, k, e)| format!("{k}:{e} ({p})")).collect();
        said.push(format!(
            "someone removed kube-healer's taint {}: its mark comes off",
            named.join(", ")
        ));
    }
    (!said.is_empty()).then(|| (patch, said.join("; ")))
}

/// Records on the node that someone undid kube-healer's marks, and tells it as an event.
pub async fn acknowledge_lift(client: &Client, recorder: &Recorder, node: &str, now: i64) {
    match update_node(client, node, None, |n| lifted_marks_patch(n, now)).await {
        Ok(Some(message)) => {
            tracing::info!(node, %message, "marks undone by someone else");
            tell(recorder, node, ("HealingOverridden", "Acknowledge"), message).await;
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(node, error = %e, "recording the undone marks failed"),
    }
}

/// The revert, told on the node as a Normal event.
async fn announce_revert(recorder: &Recorder, policy: &str, node: &str, message: &str) {
    tracing::info!(%policy, node, %message, "reverted");
    let note = format!("the failure cleared; policy {policy}: {message}");
    tell(recorder, node, ("HealingReverted", "Revert"), note).await;
}

/// A Normal event on the node (the kubelet's convention: the node's name as its UID).
async fn tell(recorder: &Recorder, node: &str, (reason, action): (&str, &str), note: String) {
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(node.to_string()),
        uid: Some(node.to_string()),
        ..Default::default()
    };
    let event = Event {
        type_: EventType::Normal,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    let _ = recorder.publish(&event, &reference).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn node(unschedulable: bool, annotations: serde_json::Value, ready_since: Option<i64>) -> Node {
        let at = |t: i64| k8s_openapi::jiff::Timestamp::from_second(t).unwrap().to_string();
        let conditions = match ready_since {
            Some(t) => json!([{"type": "Ready", "status": "True", "lastTransitionTime": at(t)}]),
            None => json!([{"type": "Ready", "status": "Unknown", "lastTransitionTime": at(NOW - 5)}]),
        };
        serde_json::from_value(
            json!({"metadata": {"name": "n", "uid": "u", "annotations": annotations},
            "spec": {"unschedulable": unschedulable}, "status": {"conditions": conditions}}),
        )
        .unwrap()
    }

    fn spec(policy: &str) -> HealingActionSpec {
        serde_json::from_value(
            json!({"policy": policy, "target": {"kind": "Node", "name": "n", "uid": "u",
            "ref": "node/n"}, "class": "NodeUnreachable", "action": "Cordon", "step": 1,
            "decidedAt": "2026-12-07T00:00:00Z", "evidence": {"summary": "down"}}),
        )
        .unwrap()
    }

    /// A release lets go of one policy's hold at once, down or not (its cordon, left to another
    /// policy that holds it too; its taints), recorded as lifted by a person; other policies'
    /// holds stay.
    #[test]
    fn a_release_undoes_one_policy_s_hold_and_records_the_cordon_as_lifted() {
        let held = node(
            true,
            json!({CORDONED_BY_ANNOTATION: "p", TAINTED_BY_ANNOTATION: "q=k:NoSchedule",
                CORDON_LIFTED_ANNOTATION: "r=5"}),
            None,
        );
        assert_eq!(released_policies(&held), ["p", "q"]);
        let (patch, said) = release_patch(&held, "p", NOW).unwrap();
        assert_eq!(patch["spec"]["unschedulable"], json!(false), "{patch}");
        assert_eq!(
            patch["metadata"]["annotations"][CORDON_LIFTED_ANNOTATION],
            json!(format!("r=5,p={NOW}"))
        );
        assert!(patch["spec"].get("taints").is_none(), "q's taint stays: {patch}");
        assert!(said.contains("uncordoned"), "{said}");
        assert_eq!(release_patch(&held, "nobody", NOW), None);
        // A policy that only tainted: its release holds it off the node as a lifted cordon does.
        let (patch, _) = release_patch(&held, "q", NOW).unwrap();
        assert_eq!(
            patch["metadata"]["annotations"][CORDON_LIFTED_ANNOTATION],
            json!(format!("r=5,q={NOW}"))
        );
        let shared = node(true, json!({CORDONED_BY_ANNOTATION: "p,q"}), None);
        let (patch, said) = release_patch(&shared, "p", NOW).unwrap();
        assert_eq!(
            patch["metadata"]["annotations"][CORDONED_BY_ANNOTATION],
            json!("q")
        );
        assert!(said.contains("left the cordon to q"), "{said}");
    }

    fn recovered(ready_since: Option<i64>, watch: &[CompiledPolicy]) -> Recovered {
        Recovered {
            debounce: 60,
            ready_since,
            now: NOW,
            watch: watch.into(),
        }
    }

    /// A revert goes ahead only on the node read afresh having been Ready for the debounce.
    #[test]
    fn a_revert_waits_for_the_node_read_afresh_to_have_recovered() {
        let marked = json!({CORDONED_BY_ANNOTATION: "p"});
        let r = |ready_since| recovered(ready_since, &[]);
        assert_eq!(
            revert_waits(&node(true, marked.clone(), Some(NOW - 120)), "p", &r(None)),
            None
        );
        let why = revert_waits(
            &node(true, marked.clone(), Some(NOW - 10)),
            "p",
            &r(Some(NOW - 600)),
        )
        .unwrap();
        assert!(why.contains("unchanged for 10s only"), "its own time wins: {why}");
        let why = revert_waits(&node(true, marked.clone(), None), "p", &r(None)).unwrap();
        assert!(why.contains("not Ready"), "{why}");
        // A Ready condition with no time is dated as the engine saw it.
        let mut untimed = node(true, marked, Some(NOW));
        if let Some(c) = untimed.status.as_mut().and_then(|s| s.conditions.as_mut()) {
            c[0].last_transition_time = None;
        }
        assert_eq!(revert_waits(&untimed, "p", &r(Some(NOW - 120))), None);
        assert!(revert_waits(&untimed, "p", &r(None)).is_some());
    }

    fn deadlock_policy(name: &str) -> CompiledPolicy {
        let policy: kube_healer_api::HealingPolicy = serde_json::from_value(json!({
            "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy", "metadata": {"name": name},
            "spec": {"target": {"kind": "Node"},
                "conditions": [{"class": "NodeCondition", "conditionType": "KernelDeadlock"}],
                "actions": [{"action": "Cordon"}]}}))
        .unwrap();
        CompiledPolicy::compile(&policy).unwrap()
    }

    /// The engine may lag behind a failure of a Ready node that came since it decided (a
    /// restart, a slow watch): the node read afresh is judged by the node policies too. One
    /// that sees a failure there keeps the revert waiting, unless it holds the node by a mark
    /// of its own (the node stays held by that mark).
    #[test]
    fn a_revert_waits_while_a_node_policy_sees_a_failure_on_the_node_read_afresh() {
        let mut sick = node(true, json!({CORDONED_BY_ANNOTATION: "p"}), Some(NOW - 600));
        let deadlock = serde_json::from_value(json!({"type": "KernelDeadlock", "status": "True",
            "reason": "DockerHung", "lastTransitionTime": k8s_openapi::jiff::Timestamp::from_second(NOW - 300).unwrap().to_string()}))
        .unwrap();
        if let Some(c) = sick.status.as_mut().and_then(|s| s.conditions.as_mut()) {
            c.push(deadlock);
        }
        let watch = [deadlock_policy("deadlocked")];
        let why = revert_waits(&sick, "p", &recovered(None, &watch)).unwrap();
        assert!(
            why.contains("NodeCondition") && why.contains("deadlocked"),
            "{why}"
        );
        // Nobody looks for it: a condition long unchanged is no failure of anyone's.
        assert_eq!(revert_waits(&sick, "p", &recovered(None, &[])), None);
        // The policy that sees it holds the node: its mark keeps the node held, p lets go.
        sick.metadata.annotations =
            Some([(CORDONED_BY_ANNOTATION.to_string(), "p,deadlocked".to_string())].into());
        assert_eq!(revert_waits(&sick, "p", &recovered(None, &watch)), None);
        // Its own revert waits on it, whatever the engine's store said.
        assert!(revert_waits(&sick, "deadlocked", &recovered(None, &watch)).is_some());
        // p's taint is p's alone: taking it off is no mark's release but an effect lifted, and
        // waits for the node to show no failure at all.
        sick.metadata.annotations = Some(
            [
                (CORDONED_BY_ANNOTATION.to_string(), "deadlocked".to_string()),
                (TAINTED_BY_ANNOTATION.to_string(), "p=k:NoExecute".to_string()),
            ]
            .into(),
        );
        let why = revert_waits(&sick, "p", &recovered(None, &watch)).unwrap();
        assert!(why.contains("deadlocked"), "{why}");
    }

    /// A cordon a person lifted is recorded on the node as lifted, kube-healer's mark gone; a
    /// cordon still in place, or one that is not kube-healer's, is left alone.
    #[test]
    fn a_lifted_cordon_is_recorded_and_its_mark_comes_off() {
        let lifted = node(
            false,
            json!({CORDONED_BY_ANNOTATION: "a,b", CORDON_LIFTED_ANNOTATION: "c=5,a=1"}),
            Some(NOW),
        );
        let (patch, said) = lifted_marks_patch(&lifted, NOW).unwrap();
        let annotations = &patch["metadata"]["annotations"];
        assert_eq!(annotations[CORDONED_BY_ANNOTATION], serde_json::Value::Null);
        assert_eq!(
            annotations[CORDON_LIFTED_ANNOTATION],
            json!(format!("c=5,a={NOW},b={NOW}"))
        );
        assert!(said.contains("the person wins"), "{said}");
        assert_eq!(
            lifted_marks_patch(&node(true, json!({CORDONED_BY_ANNOTATION: "a"}), Some(NOW)), NOW),
            None
        );
        assert_eq!(lifted_marks_patch(&node(false, json!({}), Some(NOW)), NOW), None);
        // A taint mark whose taint someone removed comes off; the others stay.
        let untainted = node(
            true,
            json!({CORDONED_BY_ANNOTATION: "a", TAINTED_BY_ANNOTATION: "a=k:NoSchedule,b=j:NoExecute"}),
            Some(NOW),
        );
        let (patch, said) = lifted_marks_patch(&untainted, NOW).unwrap();
        assert_eq!(
            patch["metadata"]["annotations"][TAINTED_BY_ANNOTATION],
            serde_json::Value::Null
        );
        assert!(said.contains("k:NoSchedule (a)"), "{said}");
    }

    /// Cordon never claims a cordon it did not place: a person's stays the person's.
    #[test]
    fn a_mark_carries_the_generation_it_was_made_under_and_its_revert_removes_it() {
        let mut spec = spec("p");
        spec.policy_generation = Some(4);
        let (patch, _) = cordon_patch(
            &node(false, json!({MARKED_AT_ANNOTATION: "q=2,p=1"}), Some(NOW)),
            &spec,
        )
        .unwrap();
        assert_eq!(patch["metadata"]["annotations"][MARKED_AT_ANNOTATION], "q=2,p=4");
        let taint = TaintParams {
            key: "k".into(),
            value: None,
            effect: kube_healer_api::action::TaintEffect::NoSchedule,
            acknowledge_no_execute: false,
        };
        let (patch, _) = taint_patch(&node(false, json!({}), Some(NOW)), &spec, &taint).unwrap();
        assert_eq!(patch["metadata"]["annotations"][MARKED_AT_ANNOTATION], "p=4");
        let cordoned = node(
            true,
            json!({CORDONED_BY_ANNOTATION: "p", MARKED_AT_ANNOTATION: "q=2,p=4"}),
            Some(NOW),
        );
        let (patch, _) = revert_patch(&cordoned, "p", &[]).unwrap();
        assert_eq!(patch["metadata"]["annotations"][MARKED_AT_ANNOTATION], "q=2");
        let alone = node(
            true,
            json!({CORDONED_BY_ANNOTATION: "p", MARKED_AT_ANNOTATION: "p=4"}),
            Some(NOW),
        );
        let (patch, _) = revert_patch(&alone, "p", &[]).unwrap();
        assert_eq!(
            patch["metadata"]["annotations"][MARKED_AT_ANNOTATION],
            serde_json::Value::Null
        );
        assert_eq!(patch["spec"]["unschedulable"], json!(false));
        // Cordoned again by a person over the mark (managedFields): the mark goes, the cordon
        // stays.
        let mut theirs = alone.clone();
        theirs.metadata.managed_fields = Some(vec![
            serde_json::from_value(json!({"manager": "kubectl", "operation": "Update",
                "fieldsV1": {"f:spec": {"f:unschedulable": {}}}}))
            .unwrap(),
        ]);
        let (patch, said) = revert_patch(&theirs, "p", &[]).unwrap();
        assert_eq!(patch["spec"]["unschedulable"], serde_json::Value::Null, "{said}");
        assert_eq!(
            patch["metadata"]["annotations"][CORDONED_BY_ANNOTATION],
            serde_json::Value::Null
        );
    }

    #[test]
    fn a_node_job_marks_its_node_until_it_ends_or_the_node_recovers() {
        let (patch, _) =
            job_mark_patch(&node(false, json!({JOB_BY_ANNOTATION: "q"}), Some(NOW)), "p").unwrap();
        assert_eq!(patch["metadata"]["annotations"][JOB_BY_ANNOTATION], "q,p");
        let marked = node(false, json!({JOB_BY_ANNOTATION: "q,p"}), Some(NOW));
        assert_eq!(job_mark_patch(&marked, "p"), None, "marked already");
        let (patch, _) = job_done_patch(&marked, "p").unwrap();
        assert_eq!(patch["metadata"]["annotations"][JOB_BY_ANNOTATION], "q");
        let alone = node(false, json!({JOB_BY_ANNOTATION: "p"}), Some(NOW));
        let (patch, _) = job_done_patch(&alone, "p").unwrap();
        assert_eq!(
            patch["metadata"]["annotations"][JOB_BY_ANNOTATION],
            serde_json::Value::Null
        );
        assert_eq!(job_done_patch(&alone, "q"), None);
        // Left behind, the revert of a recovered node takes it off.
        let (patch, said) = revert_patch(&alone, "p", &[]).unwrap();
        assert_eq!(
            patch["metadata"]["annotations"][JOB_BY_ANNOTATION],
            serde_json::Value::Null
        );
        assert!(said.contains("node job"), "{said}");
    }

    #[test]
    fn a_cordon_never_claims_a_person_s() {
        assert_eq!(cordon_patch(&node(true, json!({}), Some(NOW)), &spec("p")), None);
        let (patch, _) = cordon_patch(&node(false, json!({}), Some(NOW)), &spec("p")).unwrap();
        assert_eq!(patch["spec"]["unschedulable"], json!(true));
        assert_eq!(
            patch["metadata"]["annotations"][CORDONED_BY_ANNOTATION],
            json!("p")
        );
        // Another policy's cordon, set again by a person since (managedFields): not claimed.
        let manager = |name: &str| {
            Some(vec![
                serde_json::from_value(json!({"manager": name, "operation": "Update",
                    "fieldsV1": {"f:spec": {"f:unschedulable": {}}}}))
                .unwrap(),
            ])
        };
        let mut theirs = node(true, json!({CORDONED_BY_ANNOTATION: "q"}), Some(NOW));
        theirs.metadata.managed_fields = manager("kubectl");
        assert_eq!(cordon_patch(&theirs, &spec("p")), None);
        // Set by the remediator kube-healer handed the node to: kube-healer's own doing, so the
        // policy holds it too (core's `cordon_is_others`, as the node's view tells it).
        let mut handed = node(
            true,
            json!({CORDONED_BY_ANNOTATION: "q",
                REMEDIATED_BY_ANNOTATION: "q=remediation.medik8s.io/v1alpha1/SelfNodeRemediation/ops"}),
            Some(NOW),
        );
        handed.metadata.managed_fields = manager("self-node-remediation");
        let (patch, _) = cordon_patch(&handed, &spec("p")).unwrap();
        assert_eq!(
            patch["metadata"]["annotations"][CORDONED_BY_ANNOTATION],
            json!("q,p")
        );
    }
}
