//! The request a decision becomes: the HealingAction's spec (what, why, on what evidence) and
//! what the executor needs to carry it out.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube_healer_api::policy::Safety;
use kube_healer_api::record::{Evidence, TargetRef};
use kube_healer_api::{ActionKind, HealingActionSpec};
use kube_healer_core::cluster::ClusterView;
use kube_healer_core::decide::PlannedSignals;
use kube_healer_core::policy::CompiledPolicy;
use kube_healer_core::view::Secs;

use super::seen::seen;
use crate::policy::DueMatch;
use crate::protocol::{ActionRequest, Hold};
use crate::record::{Mode, record_name};
use crate::store::Stores;
use crate::target::Target;

/// One decided step, to be recorded.
pub struct Decided {
    pub step: usize,
    pub action: ActionKind,
    pub attempt: u32,
    pub hold: Option<Hold>,
    pub dry_run: bool,
    /// The ladder's last action before this decision (to take it back if unrecorded).
    pub before: Option<(usize, Secs)>,
    /// The ladder it is on.
    pub mode: Mode,
}

pub fn build(
    policy: &CompiledPolicy,
    target: &Target,
    due: &DueMatch,
    decided: Decided,
    stores: &Stores,
    decided_at: Time,
    planned: &Arc<PlannedSignals>,
) -> ActionRequest {
    let spec = &policy.policy.spec;
    let finding = &due.finding;
    let owner = match target {
        Target::Pod(ns, name) => stores
            .pod_at(ns, name)
            .and_then(|p| p.owner_name.as_ref().map(|n| (p.owner, n.to_string()))),
        Target::Node(_) => None,
    };
    let name = record_name(
        &due.policy,
        &finding.subject.uid,
        due.episode,
        decided.step,
        decided.attempt,
        decided.hold.as_ref().map(|h| h.reason.as_str()),
        decided.mode,
    );
    let evidence = with_timeline(finding.evidence.clone(), target, stores, decided_at.0.as_second());
    let record = HealingActionSpec {
        policy: due.policy.clone(),
        policy_generation: policy.policy.metadata.generation,
        target: with_workload(finding.subject.target_ref(), target, stores),
        class: finding.class,
        action: decided.action,
        step: decided.step as i32 + 1,
        dry_run: decided.dry_run,
        failing_since: Some(kube_healer_core::finding::time(due.episode)),
        decided_at,
        evidence: evidence.bounded(),
        members: Vec::new(),
        cause: None,
    };
    // A call that changes the cluster is rechecked on fresh reads right before it.
    let changes = decided.hold.is_none() && !decided.dry_run && decided.action.properties().changes_cluster;
    let seen = changes
        .then(|| policy.conditions.get(due.condition))
        .flatten()
        .and_then(|c| {
            seen(
                c,
                (finding.since, due.episode),
                (spec, decided.step),
                target,
                stores,
                planned,
            )
        })
        .map(Box::new);
    ActionRequest {
        name,
        spec: record,
        step: spec.actions[decided.step].clone(),
        hold: decided.hold,
        owner,
        cooldown: spec.safety.cooldown.unwrap_or(Safety::DEFAULT_COOLDOWN).as_std(),
        protected_namespaces: policy.protected_namespaces.clone(),
        seen,
        before: decided.before,
        due_ms: (decided.step == 0).then_some(due.due_ms),
        takes_up: Default::default(),
    }
}

/// What a held decision's record says of the shared cause that held it: how many targets it
/// has, and a bounded sample of them.
pub fn cause_evidence(cause: &kube_healer_core::Correlated) -> kube_healer_api::record::CauseEvidence {
    use kube_healer_api::record::CauseEvidence;
    CauseEvidence {
        members: i32::try_from(cause.members.len()).unwrap_or(i32::MAX),
        sample: cause
            .members
            .iter()
            .take(CauseEvidence::SAMPLE)
            .map(ToString::to_string)
            .collect(),
    }
}

/// A live controlled pod's workload and creation, for maxDisruptedPerWorkload. A pod being
/// deleted already is not taken from its workload by this action.
fn with_workload(mut target_ref: TargetRef, target: &Target, stores: &Stores) -> TargetRef {
    let Target::Pod(ns, name) = target else {
        return target_ref;
    };
    let pod = stores.pod_at(ns, name).filter(|p| p.deletion().is_none());
    if let Some((pod, workload)) = pod.and_then(|p| Some((p, kube_healer_core::decide::workload_of(p)?))) {
        target_ref.workload = Some(workload);
        target_ref.created = Some(kube_healer_core::finding::time(pod.created()));
    }
    target_ref
}

/// The evidence carries the target's timeline up to the decision: for a pod, what the watcher saw
/// happen to it; for a node, its Ready transitions and conditions; and their events.
fn with_timeline(mut evidence: Evidence, target: &Target, stores: &Stores, now: Secs) -> Evidence {
    use kube_healer_core::timeline;
    match target {
        Target::Pod(ns, name) => {
            if let Some(pod) = stores.pod_at(ns, name) {
                let events = stores.events_of("Pod", Some(ns), name, &pod.uid, Some(pod.created()));
                evidence.timeline = timeline::evidence(pod, events, now);
            }
        }
        Target::Node(name) => {
            if let Some(node) = stores.node_view(name) {
                let events = stores.events_of("Node", None, name, &node.uid, None);
                evidence.timeline = timeline::node_evidence(node, events, now);
            }
        }
    }
    evidence
}
