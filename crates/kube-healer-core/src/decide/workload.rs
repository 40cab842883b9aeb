//! How many of one workload's pods kube-healer may be replacing at once (the policy's
//! maxDisruptedPerWorkload; default one pod or 25%, whichever is larger). A Delete, Evict or
//! Reschedule removes a pod for its controller to replace: while as many removals as the limit
//! allows are still being replaced, the next waits, so a workload whose pods all fail alike is
//! healed a few pods at a time, each replacement showing whether healing helps before the next.
//!
//! A removal counts until a pod of the workload created after it has settled: Ready, or
//! failing in its own right (a container restarted, or waiting on an error); each such pod
//! answers one removal. A replacement that never settles frees its place after [`SETTLE`], so a
//! workload is never held for ever. The removals are read from the records (each carries its
//! workload and the pod it removed), so a restarted operator counts them as the one before it
//! did.

use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube_healer_api::policy::Safety;
use kube_healer_api::{ActionKind, FailureClass};

use super::{Closed, HoldReason};
use crate::view::{ContainerState, PodPhase, PodView, Secs};

/// How long a removal counts at most: a Deployment's default progress deadline.
pub const SETTLE: Secs = 600;

/// The waiting reasons of a container on its way up: a pod waiting only on these has not
/// shown yet whether it works.
const STARTING: [&str; 2] = ["ContainerCreating", "PodInitializing"];

/// One workload's pods as a pod removal's limit reads them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadPods {
    /// `Deployment namespace/name`.
    pub workload: String,
    /// Its pods not being deleted and not stopped (an eviction's leftovers serve nothing, and
    /// would raise the limit's share: found by the history checker).
    pub pods: usize,
    /// kube-healer's removals of its pods within [`SETTLE`].
    pub removals: Vec<Removal>,
    /// Its pods that settled: UID, and when each was created.
    pub settled: Vec<(String, Secs)>,
}

/// A controlled pod's workload (`Deployment namespace/name`); None for a pod of its own.
pub fn workload_of(pod: &PodView) -> Option<String> {
    let w = crate::classify::alike::workload(pod);
    (w.kind != "Pod").then(|| w.to_string())
}

impl WorkloadPods {
    /// The target pod's workload as a decision on a finding of `class` reads it: its pods not
    /// being deleted (`siblings` gives the workload's pods, the target among them), when each
    /// that settled was created, and kube-healer's `removals` of them. None for a pod no
    /// controller replaces, one being deleted already, or one stopped for good (cleaning it away
    /// takes nothing from its workload: see [`disrupts_workload`]).
    pub fn of<'a>(
        pod: &PodView,
        class: FailureClass,
        siblings: impl FnOnce(&str) -> Vec<&'a PodView>,
        removals: impl FnOnce(&str) -> Vec<Removal>,
    ) -> Option<WorkloadPods> {
        if pod.deletion().is_some() || class.properties().stopped_for_good {
            return None;
        }
        let workload = workload_of(pod)?;
        let live: Vec<&PodView> = siblings(&workload)
            .into_iter()
            .filter(|p| p.deletion().is_none())
            .collect();
        Some(WorkloadPods {
            removals: removals(&workload),
            pods: live.iter().filter(|p| !p.is_terminal()).count(),
            settled: live
                .iter()
                .filter(|p| settled(p))
                .map(|p| (p.uid.to_string(), p.created()))
                .collect(),
            workload,
        })
    }
}

/// One of kube-healer's removals of a workload's pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Removal {
    /// When it was decided.
    pub at: Secs,
    /// The pod removed: its UID, and when it was created.
    pub pod: String,
    pub pod_created: Secs,
}

impl WorkloadPods {
    /// When the removals still being replaced at `now` were decided: those within [`SETTLE`]
    /// that no pod created after them has answered. Each pod that has shown its fate (settled,
    /// or itself removed since: a replacement removed was failing, it showed it) answers one
    /// removal made before it was created, latest removals first: a pod the controller made
    /// for something else (an Evicted pod's replacement, a scale-up) answers at most one.
    pub fn replacing(&self, now: Secs) -> Vec<Secs> {
        // One removal per pod (an Evict that escalates to Delete removes one pod), its latest.
        let mut by_pod: HashMap<&str, Secs> = HashMap::new();
        for r in self.removals.iter().filter(|r| r.at > now - SETTLE) {
            let at = by_pod.entry(r.pod.as_str()).or_insert(r.at);
            *at = (*at).max(r.at);
        }
        let mut open: Vec<Secs> = by_pod.into_values().collect();
        // Each pod once: a settled pod whose removal is decided but not yet seen through.
        let mut shown: HashMap<&str, Secs> = self.settled.iter().map(|(uid, c)| (uid.as_str(), *c)).collect();
        shown.extend(self.removals.iter().map(|r| (r.pod.as_str(), r.pod_created)));
        let mut created: Vec<Secs> = shown.into_values().collect();
        created.sort_unstable();
        open.sort_unstable_by(|a, b| b.cmp(a));
        // Latest removal first: every pod that may answer it may answer an earlier one too.
        let mut used = 0;
        open.retain(|at| {
            let eligible = created.len() - created.partition_point(|c| c < at);
            let answered = eligible > used;
            used += usize::from(answered);
            !answered
        });
        open.reverse();
        open
    }
}

/// Whether acting on a pod failing with `class` takes one of its workload's pods for the
/// controller to replace: an action that moves the pod (Delete, Evict, Reschedule) of a pod that
/// may still run. Cleaning away a pod stopped for good (Evicted, Failed) takes nothing that
/// serves: its controller replaced it already.
pub fn disrupts_workload(class: FailureClass, action: ActionKind) -> bool {
    action.properties().moves_pod && !class.properties().stopped_for_good
}

/// Whether a pod has shown what it does: Ready, done, or failing in its own right. A stopped
/// pod (Succeeded, Failed) has only if it is a Job's: any other controller replaces it again
/// (a ReplicaSet's pod fails only as its node makes it, evicted or lost), so its workload is
/// still a pod short and the removal it would answer is still being replaced.
pub fn settled(pod: &PodView) -> bool {
    if matches!(pod.phase, PodPhase::Succeeded | PodPhase::Failed) {
        return crate::classify::alike::workload(pod).kind == "Job";
    }
    if pod.serving() {
        return true;
    }
    pod.containers.iter().any(|c| {
        c.restarts > 0
            || match &c.state {
                ContainerState::Waiting { reason: Some(r), .. } => !STARTING.contains(&&**r),
                ContainerState::Terminated { .. } => true,
                _ => false,
            }
    })
}

/// maxDisruptedPerWorkload as a pod count for a workload of `pods` pods: a percent rounds down,
/// and either way at least one pod (a workload of one pod can still be healed).
pub fn max_disrupted(safety: &Safety, pods: usize) -> usize {
    let percent = |p: usize| (pods * p / 100).max(1);
    match &safety.max_disrupted_per_workload {
        Some(IntOrString::Int(n)) => (*n).max(1) as usize,
        Some(IntOrString::String(s)) => percent(s.trim_end_matches('%').parse().unwrap_or(0)),
        None => percent(Safety::DEFAULT_MAX_DISRUPTED_PER_WORKLOAD_PERCENT as usize),
    }
}

/// Held when the action removes a pod for its controller to replace and the workload has as
/// many removals still being replaced as the limit allows; decided again when the oldest
/// frees its place at the latest (a settled replacement frees it sooner, seen on the next
/// decision).
pub(super) fn workload_limit(
    safety: &Safety,
    action: ActionKind,
    w: &WorkloadPods,
    now: Secs,
) -> Option<Closed> {
    if !action.properties().moves_pod {
        return None;
    }
    let limit = max_disrupted(safety, w.pods);
    let replacing = w.replacing(now);
    if replacing.len() < limit {
        return None;
    }
    let configured = match &safety.max_disrupted_per_workload {
        Some(IntOrString::Int(n)) => n.to_string(),
        Some(IntOrString::String(s)) => s.clone(),
        None => format!("default {}%", Safety::DEFAULT_MAX_DISRUPTED_PER_WORKLOAD_PERCENT),
    };
    Some(Closed {
        reason: HoldReason::WorkloadLimit,
        message: format!(
            "{} of {}'s {} pods are being replaced by kube-healer, as many as maxDisruptedPerWorkload allows ({configured}: {limit}): waits until a replacement is Ready or shows its own failure",
            replacing.len(),
            w.workload,
            w.pods,
        ),
        retry_at: Some(replacing[0] + SETTLE),
    })
}
