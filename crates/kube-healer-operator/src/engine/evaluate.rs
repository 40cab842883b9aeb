//! One target through the data path: classify it (core), track its findings, feed correlation,
//! match the policies, send what is due to the gate, and set the target's next wake.

use kube_healer_api::FailureClass;
use kube_healer_api::reasons::HoldReason;
use kube_healer_core::classify::node::unstarted_since;
use kube_healer_core::decide::{DOWN_CLASSES, OutBy, count_unhealthy_nodes};
use kube_healer_core::view::{NodeView, Secs};
use kube_healer_core::{Finding, classify_node, classify_pod};

use super::Engine;
use crate::decide::{Context, Verdict, held_by_managed};
use crate::metrics::Metrics;
use crate::policy::DueMatch;
use crate::protocol::{TakesUp, Work};
use crate::target::Target;

/// How long a finding that may be one of many is known before it is decided (see `evaluate`).
pub const PEERS_SETTLE: Secs = 2;

/// The earlier of two optional times.
fn earliest(a: Option<Secs>, b: Option<Secs>) -> Option<Secs> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Engine {
    /// Whether decisions are made now: this replica leads, and every watch has listed its current
    /// state (a decision on a partial store could count too few nodes down, miss the event that
    /// explains a pod, or take a node not listed yet for one gone).
    pub(super) fn deciding(&self) -> bool {
        self.is_leader && self.synced.all()
    }

    /// A node went out of service or came back (whoever did it): the targets held by the
    /// cluster's disruption budget are decided again at once, on the new count (a person's
    /// uncordon frees a place as kube-healer's revert does). Tracked per node, so that a node's
    /// status posts that change nothing wake nobody.
    fn budget_changed(&mut self, node: &str, held: bool, now: Secs) {
        let by = self
            .stores
            .node_view(node)
            .and_then(|n| OutBy::of(n, held, &self.gate.planned));
        let before = match by {
            Some(by) => self.nodes_out.insert(node.into(), by),
            None => self.nodes_out.remove(node),
        };
        if before == by {
            return;
        }
        for by in [before, by].into_iter().flatten() {
            let count = self.nodes_out.values().filter(|b| **b == by).count();
            let gauge = self
                .metrics
                .nodes_out_of_service
                .get_or_create(&Metrics::reason(by.as_str()));
            gauge.set(count as i64);
        }
        if before.is_some() == by.is_some() || !self.deciding() {
            return;
        }
        let held: Vec<Target> = self
            .gate
            .holding
            .held_for(HoldReason::BudgetExceeded)
            .cloned()
            .collect();
        for target in held.into_iter().filter(|t| *t != Target::Node(node.into())) {
            self.timers.schedule(target, now);
        }
    }

    /// Classifies one target at `now`, decides on what is due, and schedules the next wake.
    pub fn evaluate(&mut self, target: &Target, now: Secs) {
        let mut findings: Vec<Finding> = Vec::new();
        let Some(mut next) = self.classify(target, now, &mut findings) else {
            return self.clear(target);
        };
        if let Target::Node(name) = target {
            next = earliest(next, self.expire_avoid(name, now));
            let managed = |p: &str| self.policies.get(p).is_some();
            let held = self
                .stores
                .node_view(name)
                .is_some_and(|n| held_by_managed(n, &managed));
            self.gate.node_seen(name, held);
            self.budget_changed(name, held, now);
        }
        next = earliest(next, self.findings.update(target, &findings, now, &self.metrics));
        self.correlation.update(target, &findings);
        let evaluation = self
            .policies
            .evaluate(target, &findings, &self.stores, now, self.clock.now_ms());
        next = earliest(next, evaluation.next);
        for policy in evaluation.cleared {
            self.recovered(target, policy);
        }
        if let Target::Node(name) = target {
            self.release_stale_marks(name, now);
        }
        if self.deciding() {
            for due in &evaluation.due_now {
                if due.newly_due {
                    let f = &due.finding;
                    self.metrics
                        .policy_due
                        .get_or_create(&Metrics::class(f.class))
                        .inc();
                    tracing::info!(policy = %due.policy, class = %f.class, target = %f.subject, since = f.since,
                        evidence = %f.evidence.summary, "policy condition due");
                }
            }
            self.policies.reported(target, now);
            for due in evaluation.due_now {
                // A finding that may be one of many (its class has a family) is decided only once
                // its peers had time to show: a burst seen at once (a relist after a watch gap or
                // a restart, a storm's changes arriving one by one) is correlated first, not
                // acted on target by target in the order its changes arrive.
                let class = due.finding.class;
                // Someone else's maintenance, unknown while a maintainer's watch has not
                // listed, is read by node decisions and by pods failing with their node: those
                // wait for it (they are decided again once it has listed); the rest do not.
                let reads_maintenance =
                    matches!(target, Target::Node(_)) || class.properties().inherits_node_cause;
                if reads_maintenance && !self.synced.maintainers() {
                    continue;
                }
                // A pod failing with its node may be one of a zone's too (found by the
                // invariants' histories: a node back for 0 s went down again with its zone, and
                // its lost pods' removal was decided on the first node's change).
                let one_of_many =
                    class.properties().family.is_some() || class.properties().inherits_node_cause;
                let seen = self.findings.seen(target, class).unwrap_or(now);
                if one_of_many && now < seen + PEERS_SETTLE {
                    next = earliest(next, Some(seen + PEERS_SETTLE));
                    continue;
                }
                next = earliest(next, self.decide(target, &due, now));
            }
        }
        if let Some(at) = next {
            self.timers.schedule(target.clone(), at);
        }
    }

    /// The target's findings at `now` (into `findings`) and when its classification may change
    /// on its own; None if the target is gone from the stores.
    fn classify(&mut self, target: &Target, now: Secs, findings: &mut Vec<Finding>) -> Option<Option<Secs>> {
        let mut next = None;
        match target {
            Target::Pod(ns, name) => {
                let pod = self.stores.pod_at(ns, name)?;
                classify_pod(pod, &self.stores, &self.knobs, now, findings);
                if let Some(deadline) = pod.deletion().filter(|d| *d > now) {
                    next = Some(deadline);
                }
                // A pod that stops starting may make its node a black hole.
                if let (Some(node), Some(since)) = (pod.node.clone(), unstarted_since(pod)) {
                    let at = since + self.knobs.blackhole_pod_age;
                    let node = Target::Node(node);
                    if at > now {
                        self.timers.schedule(node, at);
                    } else if !self.findings.has_any(&node, &[FailureClass::NodeBlackHole]) {
                        self.timers.schedule(node, now);
                    }
                }
            }
            Target::Node(name) => {
                let node = self.stores.node_view(name)?;
                classify_node(node, &self.stores, &self.knobs, now, findings);
                if let Some(heartbeat) = self.stores.lease_heartbeat(name) {
                    let late_at = heartbeat + self.knobs.heartbeat_lease_age;
                    if late_at > now {
                        next = Some(late_at);
                    }
                }
            }
        }
        Some(next)
    }

    /// Reschedule's avoid taint on a node: when it expires, or (expired, leading) its removal
    /// is sent, once; the node's next update brings it back here if the taint stayed.
    fn expire_avoid(&mut self, node: &str, now: Secs) -> Option<Secs> {
        let until = self.stores.avoid_until(node)?;
        if until > now {
            return Some(until);
        }
        if self.is_leader && self.action_tx.is_some() {
            self.stores.forget_avoid(node);
            self.send(Work::Unavoid {
                node: node.to_string(),
            });
        }
        None
    }

    /// Decides on one policy condition due on a target; sends the request, if any; returns when
    /// to look again.
    fn decide(&mut self, target: &Target, due: &DueMatch, now: Secs) -> Option<Secs> {
        self.refresh_correlation();
        let compiled = self.policies.get(&due.policy)?;
        let (stores, findings, policies) = (&self.stores, &self.findings, &self.policies);
        let unhealthy = |policy: &_| {
            let down = |n: &NodeView| findings.has_any(&Target::Node(n.name.clone()), DOWN_CLASSES);
            let failing = |n: &NodeView| {
                let matches = policies.matches(&Target::Node(n.name.clone()));
                matches.iter().any(|m| m.policy == due.policy)
            };
            count_unhealthy_nodes(stores.nodes(), policy, down, failing)
        };
        let ctx = Context {
            now,
            decided_at: self.clock.time(),
            stores,
            correlated: self.correlation.holding(),
            pods_alike: self.pods_alike,
            unhealthy_nodes: &unhealthy,
            managed: &|p: &str| self.policies.get(p).is_some(),
            episodes: &self.policies.episodes,
        };
        let verdict = self.gate.decide(target, due, compiled, &ctx);
        self.count_held();
        match verdict {
            Verdict::Dispatch { mut request, recheck } => {
                request.takes_up = self.taken_up(&request.name);
                self.send(Work::Act(request));
                recheck
            }
            Verdict::Queued => None,
            Verdict::Recheck(at) => at,
        }
    }

    /// What of a process that ended the decision `name` takes up: the marked batch naming it,
    /// or its own record left without an outcome.
    fn taken_up(&self, name: &str) -> TakesUp {
        match self.batch_marks.batch_of(name) {
            Some(batch) => TakesUp::Batch(batch.to_string()),
            None if self.unfinished.contains_key(name) => TakesUp::Own,
            None => TakesUp::Nothing,
        }
    }

    /// A policy's failure cleared on a target: on a node, what the policy changed (a cordon, a
    /// taint) is reverted, if kube-healer made it.
    fn recovered(&mut self, target: &Target, policy: String) {
        let acted = self.gate.recovered(target, &policy);
        self.count_held();
        if !acted || !self.is_leader {
            return;
        }
        if let Target::Node(node) = target {
            // A policy edited or deleted, or a condition that cleared, says nothing of the node:
            // its mark stays until the node shows it recovered (then it is a stale mark): Ready
            // and unchanged for the debounce, no policy seeing it fail (and, for a mark its
            // policy no longer judges, deleted or edited, no failure of any class).
            let now = self.clock.now();
            if let Err(again) = self.node_recovered(node, now) {
                tracing::info!(%policy, node = %node, "failure cleared, but the node has not shown it recovered: its cordon or taint stays");
                if let Some(at) = again {
                    self.timers.schedule(target.clone(), at);
                }
                return;
            }
            if self.retired_failure_shows(&policy, target) {
                return;
            }
            tracing::info!(%policy, node = %node, "failure cleared: reverting what the policy changed");
            self.releasing
                .insert((policy.as_str().into(), node.clone()), self.clock.now());
            self.send(self.revert(policy, node));
        }
    }

    /// Whether a mark its policy no longer judges must stay because its node still shows a
    /// failure. A deleted policy clears at once, on no evidence of the node's, and cannot say
    /// what it marked the node for; an edited one may no longer look for it
    /// (`decide::judges_its_mark`). A Ready node may still fail as it did (a KernelDeadlock):
    /// only a node with no finding of any class is evidence for any. (A policy judging its own
    /// mark decides by its own failure; a node that always shows a finding keeps the mark until
    /// a person releases it: `kube-healer release`.)
    pub(super) fn retired_failure_shows(&self, policy: &str, target: &Target) -> bool {
        let Target::Node(node) = target else {
            return false;
        };
        let generation = self.policies.get(policy).map(|p| p.policy.metadata.generation);
        let judged = match self.stores.node_view(node) {
            Some(view) => kube_healer_core::decide::judges_its_mark(view, policy, generation),
            None => generation.is_some(),
        };
        if judged {
            return false;
        }
        let findings = self.findings.on(target);
        if findings.is_empty() {
            return false;
        }
        let classes: Vec<String> = findings.iter().map(|(c, _, _)| c.to_string()).collect();
        tracing::debug!(policy, target = ?target, classes = ?classes, "a mark its policy no longer judges (deleted or edited) stays: the node still shows a failure (kube-healer release lets go of it)");
        true
    }

    /// The target is gone from the stores: everything kept about it goes (the gate's too).
    fn clear(&mut self, target: &Target) {
        self.policies.forget(target);
        self.correlation.update(target, &[]);
        self.findings.clear(target, &self.metrics);
        self.timers.remove(target);
        self.gate.target_gone(target);
        self.count_held();
        if let Target::Node(name) = target {
            self.lifts_sent.remove(&**name);
            self.releasing.retain(|(_, n), _| n != name);
            // A node gone is out of the count: its place may go to a held target.
            self.budget_changed(name, false, self.clock.now());
        }
    }

    /// The held targets gauge, by reason.
    pub(super) fn count_held(&self) {
        for (reason, count) in self.gate.holding.counts() {
            let gauge = self
                .metrics
                .held_targets
                .get_or_create(&Metrics::reason(reason.as_str()));
            gauge.set(count);
        }
    }
}
