//! A failing rollout is a cause. A workload's pods of one revision fail (every one of them),
//! while its pods of another revision run fine: the new template is what fails, and restarting
//! or deleting its pods cannot help (a rollout restart even makes another revision of the same
//! template). Their actions are held as one cause naming the workload and both revisions, and the
//! record says what helps: rolling back. Later failures of that revision are held on sight.

use std::collections::{BTreeMap, HashSet};

use kube_healer_api::class::Family;

use super::sick_node::{Fine, RunningFine};
use crate::finding::{Correlated, CorrelatedCause, Finding, PodsKey, Workload};

/// The workloads whose pods carry a revision a rollout changes.
const ROLLED: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];

/// The rollout key of a pod finding: its workload and revision, if it may be one.
pub fn rollout_of(f: &Finding) -> Option<(String, &Workload, &str)> {
    let alike = f.alike.as_ref()?;
    let w = &alike.workload;
    let revision = w.revision.as_deref()?;
    (ROLLED.contains(&w.kind) && f.class.properties().family == Some(Family::PodsAlike))
        .then(|| (format!("{w}@{revision}"), w, revision))
}

/// The failing rollouts among `findings`: for a workload, every pod of one revision that is
/// known fails, and a pod of another, older revision runs fine. A cause found before
/// (`previous`) lasts while any of its members still fails.
pub fn failing_rollouts(
    findings: &[&Finding],
    previous: &[Correlated],
    fine: &dyn RunningFine,
) -> Vec<Correlated> {
    let mut by_key: BTreeMap<String, (&Workload, &str, Vec<&Finding>)> = BTreeMap::new();
    for f in findings {
        if let Some((key, w, revision)) = rollout_of(f) {
            by_key.entry(key).or_insert((w, revision, Vec::new())).2.push(f);
        }
    }
    if by_key.is_empty() {
        return Vec::new();
    }
    let asked: HashSet<String> = by_key.values().map(|(w, _, _)| w.to_string()).collect();
    let running = fine.running_fine(&asked);
    let mut out = Vec::new();
    for (key, (workload, revision, members)) in by_key {
        let was = previous
            .iter()
            .any(|c| c.cause == CorrelatedCause::Pods(PodsKey::Rollout(key.clone())));
        let fine_pods = running.get(&workload.to_string());
        let revision_fine =
            |r: &str| fine_pods.is_some_and(|f| f.iter().any(|p| p.revision.as_deref() == Some(r)));
        // The failing revision is the new one: no pod of the others running fine is newer than
        // a pod of it (a rollout that fixes a crash has the old revision failing, and rolling
        // back would bring the crash back). Times are to the second: a tie is no evidence
        // against.
        let oldest_member = members
            .iter()
            .filter_map(|f| f.alike.as_ref())
            .map(|a| a.created)
            .min();
        let other: Vec<&Fine> = fine_pods
            .into_iter()
            .flatten()
            .filter(|p| p.revision.as_deref().is_some_and(|r| r != revision))
            .collect();
        let newer = oldest_member.is_some_and(|m| other.iter().all(|p| p.created <= m));
        let failing = !revision_fine(revision) && !other.is_empty() && newer;
        if !(failing || was) {
            continue;
        }
        let fine = other.first().and_then(|p| p.revision.as_deref());
        out.push(cause(key, workload, revision, fine, &members));
    }
    out
}

fn cause(key: String, w: &Workload, revision: &str, fine: Option<&str>, members: &[&Finding]) -> Correlated {
    let mut classes: Vec<_> = members.iter().map(|f| f.class).collect();
    classes.sort();
    classes.dedup();
    let undo = format!(
        "kubectl rollout undo {}/{} -n {}",
        w.kind.to_ascii_lowercase(),
        w.name,
        w.namespace
    );
    Correlated {
        message: format!(
            "{} pods of {w} at revision {revision} fail while its pods at revision {} run fine: a failing rollout, which restarting or deleting its pods cannot help; roll back ({undo}) or fix the template",
            members.len(),
            fine.unwrap_or("(earlier)"),
        ),
        cause: CorrelatedCause::Pods(PodsKey::Rollout(key)),
        classes,
        since: members.iter().map(|f| f.since).min().unwrap_or_default(),
        members: members.iter().map(|f| f.subject.clone()).collect(),
        bursts: Vec::new(),
    }
}
