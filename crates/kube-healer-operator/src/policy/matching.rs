//! Which policy conditions hold on a target, since when, and which are due.

use kube_healer_core::Finding;
use kube_healer_core::policy::{CompiledPolicy, TargetView};
use kube_healer_core::view::Secs;

use super::PolicySet;
use crate::store::Stores;
use crate::target::Target;

/// A policy condition holding on a target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    pub policy: String,
    pub condition: usize,
    pub since: Secs,
    pub due: Secs,
    pub due_reported: bool,
    /// When this operator first saw the condition hold (Unix milliseconds): a failure reported
    /// late (after its `for` elapsed) is due from then, not from before it was known.
    pub seen_ms: i64,
    /// The condition no longer holds, since then: its episode ends, and what the policy changed
    /// is reverted, only once it has stayed clear for the debounce. Until then it keeps its
    /// episode (a failure back within the debounce is the same failure), its cordon, and its
    /// place in maxUnhealthy, and nothing is decided on it.
    pub clear_since: Option<Secs>,
    /// Since when the condition holds in this operator's reckoning: its episode's start, or, for
    /// a failure back that continues an earlier episode, its return. Its `for` counts from here.
    pub held_from: Secs,
}

/// What evaluating the policies on one target found.
#[derive(Debug, Default)]
pub struct Evaluation {
    /// The earliest due time still ahead.
    pub next: Option<Secs>,
    /// Conditions due now.
    pub due_now: Vec<DueMatch>,
    /// Policies that matched the target before and no longer do: its failure cleared.
    pub cleared: Vec<String>,
}

/// A policy condition due now on a target.
#[derive(Clone, Debug)]
pub struct DueMatch {
    pub policy: String,
    pub condition: usize,
    pub finding: Finding,
    /// When the failure's episode began: the finding's start when the condition began to hold,
    /// kept while it holds (and carried by the records across restarts), whatever window
    /// arithmetic says of the finding now. The ladder, the record names and the due time go by
    /// it; the recheck before a call goes by the finding's own start.
    pub episode: Secs,
    /// When it became due for this operator (Unix milliseconds): its `for` elapsed, and it was
    /// known.
    pub due_ms: i64,
    /// Not reported due before (see [`PolicySet::reported`]).
    pub newly_due: bool,
}

impl PolicySet {
    /// Evaluates every policy on one target at `now` (`now_ms`: the same in milliseconds):
    /// returns the earliest due time still ahead, the conditions due now for the engine to
    /// decide on (if it leads), and the policies whose failure cleared.
    pub fn evaluate(
        &mut self,
        target: &Target,
        findings: &[Finding],
        stores: &Stores,
        now: Secs,
        now_ms: i64,
    ) -> Evaluation {
        let view = match target {
            Target::Pod(ns, name) => stores.pod_at(ns, name).map(TargetView::Pod),
            Target::Node(name) => stores.node_view(name).map(TargetView::Node),
        };
        let Some(view) = view else {
            self.matches.remove(target);
            return Evaluation::default();
        };
        let mut due_now = Vec::new();
        let previous = self.matches.remove(target).unwrap_or_default();
        let mut current = Vec::new();
        let mut next = None::<Secs>;
        for policy in self.policies.values() {
            let selected = match view {
                TargetView::Pod(p) => policy.selects_pod(p, self.namespaces.get(&p.namespace)),
                TargetView::Node(n) => policy.selects_node(n),
            };
            if !selected {
                continue;
            }
            for (condition, finding) in policy.findings_for(view, findings, stores, now) {
                let m = self.matched((policy, condition), &finding, &previous, now_ms);
                if m.due > now {
                    next = Some(next.map_or(m.due, |n| n.min(m.due)));
                } else {
                    due_now.push(DueMatch {
                        policy: policy.name.clone(),
                        condition,
                        finding,
                        episode: m.since,
                        due_ms: (m.due * 1000).max(m.seen_ms),
                        newly_due: !m.due_reported,
                    });
                }
                current.push(m);
            }
        }
        if let Some(ends) = self.still_clearing(&previous, &mut current, now) {
            next = Some(next.map_or(ends, |n| n.min(ends)));
        }
        let mut cleared: Vec<String> = previous
            .iter()
            .filter(|p| !current.iter().any(|c| c.policy == p.policy))
            .map(|p| p.policy.clone())
            .collect();
        cleared.dedup();
        if !current.is_empty() {
            self.matches.insert(target.clone(), current);
        }
        Evaluation {
            next,
            due_now,
            cleared,
        }
    }

    /// A policy's condition holding on the target: its episode, kept while it holds, else
    /// carried by the records; due once it has held its `for`.
    fn matched(
        &self,
        (policy, condition): (&CompiledPolicy, usize),
        finding: &Finding,
        previous: &[Match],
        now_ms: i64,
    ) -> Match {
        let before = previous
            .iter()
            .find(|m| m.policy == policy.name && m.condition == condition);
        let episode = match before {
            Some(m) => m.since.min(finding.since),
            None => {
                let reopen = policy.policy.spec.safety.cooldown_secs();
                let uid = &finding.subject.uid;
                self.episodes.carried(&policy.name, uid, finding.since, reopen)
            }
        };
        // Due once it has held its `for`: kept while it holds; for a condition that starts
        // holding again (a failure back within the cooldown continues its episode), counted
        // from its return, so a blip never escalates a ladder.
        let held_from = before.map_or(episode.max(finding.since), |m| m.held_from);
        Match {
            policy: policy.name.clone(),
            condition,
            since: episode,
            due: held_from.saturating_add(policy.conditions[condition].for_secs),
            due_reported: before.is_some_and(|m| m.due_reported),
            seen_ms: before.map_or(now_ms, |m| m.seen_ms),
            clear_since: None,
            held_from,
        }
    }

    /// Conditions that no longer hold stay, clearing, through the debounce: kept in `current`;
    /// the earliest end of a debounce still running.
    fn still_clearing(&self, previous: &[Match], current: &mut Vec<Match>, now: Secs) -> Option<Secs> {
        let mut next = None::<Secs>;
        for mut m in previous.iter().cloned() {
            let holds = |c: &Match| c.policy == m.policy && c.condition == m.condition;
            if current.iter().any(holds) || !self.policies.contains_key(&m.policy) {
                continue;
            }
            let clear_since = *m.clear_since.get_or_insert(now);
            let ends = clear_since.saturating_add(self.debounce);
            if now < ends {
                next = Some(next.map_or(ends, |n| n.min(ends)));
                current.push(m);
            }
        }
        next
    }

    /// The conditions due on a target were reported (by the leader): they are not newly due
    /// again until their failure starts over.
    pub fn reported(&mut self, target: &Target, now: Secs) {
        if let Some(matches) = self.matches.get_mut(target) {
            for m in matches.iter_mut().filter(|m| m.due <= now) {
                m.due_reported = true;
            }
        }
    }
}
