//! Who holds a node, from kube-healer's own annotations on it: the policies whose cordon it
//! carries, the taints each put on it, the remediation resources each handed it to, and the replacements
//! each asked for. The node
//! itself is the truth, so that a restart or a failover counts the nodes kept out of service, and
//! lets go of them, from what the cluster shows.

use std::collections::BTreeMap;

use kube_healer_api::remediate::RemediationRef;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};

use crate::convert::Interner;
use crate::view::Shared;

/// The policies whose cordon a node carries: kube-healer's cordoned-by annotation, a set of
/// policy names separated by commas (one name, as earlier versions wrote it, is a set of one).
/// Several policies may hold one cordon; it is lifted only when none of them needs it.
pub fn cordon_owners(annotations: Option<&BTreeMap<String, String>>) -> Vec<&str> {
    policies_in(annotations, kube_healer_api::CORDONED_BY_ANNOTATION)
}

/// The policies that had the node's machine replaced: its replaced-by annotation, policy names
/// separated by commas. The node is kept out of service by them until it is gone.
pub fn replace_owners(annotations: Option<&BTreeMap<String, String>>) -> Vec<&str> {
    policies_in(annotations, kube_healer_api::REPLACED_BY_ANNOTATION)
}

/// The policies whose node Job runs on the node: its job-by annotation, policy names separated
/// by commas. The node is kept out of service by them until the Job has ended.
pub fn job_owners(annotations: Option<&BTreeMap<String, String>>) -> Vec<&str> {
    policies_in(annotations, kube_healer_api::JOB_BY_ANNOTATION)
}

fn policies_in<'a>(annotations: Option<&'a BTreeMap<String, String>>, key: &str) -> Vec<&'a str> {
    annotations
        .and_then(|a| a.get(key))
        .map(|v| v.split(',').map(str::trim).filter(|p| !p.is_empty()).collect())
        .unwrap_or_default()
}

/// The taints kube-healer put on a node and the policies holding each: its tainted-by
/// annotation, entries `policy=key:effect` separated by commas. A taint is removed only when no
/// entry holds it any more.
pub fn taint_owners(annotations: Option<&BTreeMap<String, String>>) -> Vec<(&str, &str, &str)> {
    let Some(marker) = annotations.and_then(|a| a.get(kube_healer_api::TAINTED_BY_ANNOTATION)) else {
        return Vec::new();
    };
    marker
        .split(',')
        .filter_map(|entry| {
            let (policy, taint) = entry.trim().split_once('=')?;
            let (key, effect) = taint.rsplit_once(':')?;
            (!policy.is_empty()).then_some((policy, key, effect))
        })
        .collect()
}

/// The policies that hold a node through kube-healer's cordoned-by, tainted-by, remediated-by,
/// replaced-by and job-by annotations. A mark is a policy's only while what it marks is there: a
/// cordon someone else lifted, or a taint someone else removed, holds nothing (see
/// [`stale_cordon`]).
pub(crate) fn held_by(
    annotations: Option<&BTreeMap<String, String>>,
    unschedulable: bool,
    taints: &[Shared],
    interner: &mut Interner,
) -> Box<[Shared]> {
    let mut policies: Vec<&str> = if unschedulable {
        cordon_owners(annotations)
    } else {
        Vec::new()
    };
    let tainted = |key: &str, effect: &str| taints.iter().any(|t| t.split_once(':') == Some((key, effect)));
    policies.extend(
        taint_owners(annotations)
            .into_iter()
            .filter(|(_, k, e)| tainted(k, e))
            .map(|(p, _, _)| p),
    );
    policies.extend(remediation_owners(annotations).into_iter().map(|(p, _)| p));
    policies.extend(replace_owners(annotations));
    policies.extend(job_owners(annotations));
    policies.sort_unstable();
    policies.dedup();
    policies.into_iter().map(|p| interner.str(p)).collect()
}

/// The field manager kube-healer's node patches carry: the API server names it the owner of the
/// `spec.unschedulable` it sets (managedFields).
pub const FIELD_MANAGER: &str = "kube-healer";

/// Owners of `spec.unschedulable` that may be kube-healer: its field manager, and `unknown`, the
/// name the API server gave the patches of versions that set none.
const OWN_MANAGERS: [&str; 2] = [FIELD_MANAGER, "unknown"];

/// Whether someone else set the node's `spec.unschedulable` last, as the API server's
/// managedFields say: a person who lifted kube-healer's cordon and cordoned the node again, both
/// unseen by kube-healer (a restart, a re-list), left its mark on a cordon that is theirs. The
/// annotations cannot tell; the field's owner can (an uncordon removes the field, a cordon gives
/// it to whoever set it). No owner recorded: not known to be someone else's.
pub fn unschedulable_set_by_other(meta: &ObjectMeta) -> bool {
    let owns = |m: &&ManagedFieldsEntry| {
        m.fields_v1
            .as_ref()
            .and_then(|f| f.0.get("f:spec"))
            .and_then(|s| s.get("f:unschedulable"))
            .is_some()
    };
    let mut owners = meta.managed_fields.iter().flatten().filter(owns).peekable();
    owners.peek().is_some()
        && owners.all(|m| !OWN_MANAGERS.contains(&m.manager.as_deref().unwrap_or("unknown")))
}

/// Whether the node's cordon, set last by someone else (see [`unschedulable_set_by_other`]), is
/// theirs: it is unless kube-healer handed the node to a remediator or a replacement, whose
/// cordon is kube-healer's own doing. One rule for the view, the cordon and the revert.
pub fn cordon_is_others(meta: &ObjectMeta) -> bool {
    unschedulable_set_by_other(meta) && !handed_over(meta.annotations.as_ref())
}

/// kube-healer's cordon mark on a node whose cordon is not kube-healer's: someone else lifted it
/// (schedulable), or set it again since ([`cordon_is_others`]). The mark must come off at once
/// (replaced by the cordon-lifted annotation), or the person's cordon would be taken for
/// kube-healer's and lifted by it.
pub fn stale_cordon(meta: &ObjectMeta, unschedulable: bool) -> bool {
    (!unschedulable || cordon_is_others(meta)) && !cordon_owners(meta.annotations.as_ref()).is_empty()
}

/// kube-healer's taint marks whose taint is no longer on the node: someone removed it. The
/// entries must come off at once, or a later taint of the same key and effect by a person would
/// be taken for kube-healer's (counted, and removed by its revert).
pub fn stale_taints(annotations: Option<&BTreeMap<String, String>>, taints: &[Shared]) -> bool {
    taint_owners(annotations)
        .iter()
        .any(|(_, k, e)| !taints.iter().any(|t| t.split_once(':') == Some((k, e))))
}

/// The node is handed by kube-healer to a remediator or a replacement: what they do to it (a
/// cordon, a drain, Karpenter's disruption taint, a NodeMaintenance's) is kube-healer's own
/// doing, not someone else's maintenance.
pub fn handed_over(annotations: Option<&BTreeMap<String, String>>) -> bool {
    !remediation_owners(annotations).is_empty() || !replace_owners(annotations).is_empty()
}

/// The node is cordoned by someone else: unschedulable with no kube-healer cordon mark (or with
/// one, but set last by someone else: [`cordon_is_others`]), and not handed by kube-healer to a
/// remediator or a replacement (which cordon the node themselves, on kube-healer's behalf).
/// kube-healer's taints say nothing of who cordoned it.
pub fn cordoned_by_other(meta: &ObjectMeta, unschedulable: bool) -> bool {
    let annotations = meta.annotations.as_ref();
    let unmarked = cordon_owners(annotations).is_empty() && !handed_over(annotations);
    unschedulable && (cordon_is_others(meta) || unmarked)
}

/// The policies whose cordon someone else lifted, and when kube-healer saw it: the node's
/// cordon-lifted annotation, `policy=unix-seconds` entries separated by commas.
pub fn cordon_lifted(annotations: Option<&BTreeMap<String, String>>) -> Vec<(&str, i64)> {
    numbered(annotations, kube_healer_api::CORDON_LIFTED_ANNOTATION)
}

/// The generation of each policy when it marked the node: its marked-at-generation annotation,
/// `policy=generation` entries separated by commas.
pub fn marked_at(annotations: Option<&BTreeMap<String, String>>) -> Vec<(&str, i64)> {
    numbered(annotations, kube_healer_api::MARKED_AT_ANNOTATION)
}

fn numbered<'a>(annotations: Option<&'a BTreeMap<String, String>>, key: &str) -> Vec<(&'a str, i64)> {
    annotations
        .and_then(|a| a.get(key))
        .map(|v| {
            v.split(',')
                .filter_map(|entry| {
                    let (policy, n) = entry.trim().split_once('=')?;
                    Some((policy, n.trim().parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The remediation resources kube-healer handed the node to, and the policy of each: its
/// remediated-by annotation, entries `policy=apiVersion/Kind/namespace` separated by commas.
pub fn remediation_owners(annotations: Option<&BTreeMap<String, String>>) -> Vec<(&str, RemediationRef)> {
    annotations
        .and_then(|a| a.get(kube_healer_api::REMEDIATED_BY_ANNOTATION))
        .map(|v| v.split(',').filter_map(RemediationRef::parse).collect())
        .unwrap_or_default()
}
