//! The gate: turns a policy condition due on a target into a verdict. It owns where each target
//! stands on each policy's ladder, each policy's budget, the holds already recorded and the
//! targets waiting for a place under maxConcurrent. The rules themselves are the core's
//! (`kube_healer_core::decide`); this module keeps their state between decisions. It returns a
//! value and sends nothing: the engine sends.

mod disruption;
mod forget;
mod holding;
mod in_flight;
pub mod removals;
mod request;
mod seen;
mod spent;
mod waiting;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube_healer_api::reasons::HoldReason;
use kube_healer_api::{ActionKind, HealingPolicySpec};
use kube_healer_core::decide::{
    Budget, Decision, Facts, InFlightMark, Ladder, PlannedSignals, WindowVerdict, WorkloadPods, Zone,
    cause_of, decide, guard, overridden, under_maintenance, unsafe_for_target, window_verdict,
};
use kube_healer_core::policy::{CompiledPolicy, TargetView};
use kube_healer_core::view::{Secs, Shared};
use kube_healer_core::{Correlated, CorrelatedCause, PodsKey};

use crate::policy::{DueMatch, Episodes};
use crate::protocol::{ActionRequest, Hold};
use crate::record::Mode;
use crate::store::Stores;
use crate::target::Target;
use disruption::SENT_COUNTS_FOR;
pub use disruption::held_by_managed;
pub use holding::Holding;
use in_flight::InFlight;
use removals::Removals;
use request::Decided;
use spent::Spent;
use waiting::WaitQueue;

/// How long after a decision could not be recorded it is made again.
pub const RECORD_RETRY: Secs = 10;

/// What to do with a policy condition due on a target.
#[derive(Debug)]
pub enum Verdict {
    /// Record this request (and carry it out unless it is held or a dry run); decide again at
    /// `recheck`.
    Dispatch {
        request: Box<ActionRequest>,
        recheck: Option<Secs>,
    },
    /// Waiting for a place under the policy's maxConcurrent: decided again when one frees.
    Queued,
    /// Nothing to send now; decide again then (None: only a change can change the verdict).
    Recheck(Option<Secs>),
}

/// The world a decision reads, right before it is made.
pub struct Context<'a> {
    pub now: Secs,
    /// The clock's time, written into the record.
    pub decided_at: Time,
    pub stores: &'a Stores,
    pub correlated: &'a [Correlated],
    /// The operator's pods-alike thresholds (a policy's own replace them): which causes of pods
    /// failing alike hold a policy.
    pub pods_alike: kube_healer_core::PodsAlike,
    /// (unhealthy, selected) nodes of a node policy.
    pub unhealthy_nodes: &'a dyn Fn(&CompiledPolicy) -> (usize, usize),
    /// Whether a policy is one of this operator's (its cordons count in the budget).
    pub managed: &'a dyn Fn(&str) -> bool,
    /// The records' episodes and steps: a ladder this replica does not hold is rebuilt from them.
    pub episodes: &'a Episodes,
}

/// A hold already recorded: one Skipped record per hold, not one per evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct HeldKey {
    policy: String,
    target: Target,
    episode: Secs,
    step: usize,
    reason: HoldReason,
    mode: Mode,
}

/// Where a target stands on a policy's ladder is kept per (policy, target, mode).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LadderKey {
    policy: String,
    target: Target,
    mode: Mode,
}

impl LadderKey {
    fn new(policy: &str, target: &Target, mode: Mode) -> Self {
        LadderKey {
            policy: policy.to_string(),
            target: target.clone(),
            mode,
        }
    }
}

/// The operator-wide switches.
#[derive(Clone, Debug, Default)]
pub struct Switches {
    pub dry_run: bool,
    pub paused: bool,
    /// The pause annotation on kube-healer's namespace, and its value.
    pub paused_by: Option<String>,
}

impl Switches {
    /// Whether kube-healer is paused, and by what.
    fn pause(&self) -> Option<String> {
        match (&self.paused, &self.paused_by) {
            (true, _) => Some("--pause".into()),
            (false, Some(why)) => Some(format!(
                "{} on its namespace: {why}",
                kube_healer_api::PAUSE_ANNOTATION
            )),
            (false, None) => None,
        }
    }
}

#[derive(Default)]
pub struct Gate {
    /// Where each (policy, target) stands on the policy's ladder.
    ladders: HashMap<LadderKey, Ladder>,
    /// Each policy's use of its limits.
    budgets: HashMap<String, Budget>,
    held: HashSet<HeldKey>,
    /// The causes of pods failing alike that a policy's held decision was recorded for: one
    /// record per cause and policy (and mode), not one per pod it holds. Bounded by the causes
    /// in force: an entry goes with its cause.
    held_causes: HashSet<(String, PodsKey, Secs, Mode)>,
    /// The nodes under planned disruption that a policy's held decision on one of their pods
    /// was recorded for: one record per node and policy (and mode), not one per pod a drain or
    /// a reboot leaves behind. An entry goes when its node is no longer under maintenance.
    held_maintenance: HashSet<(String, Shared, Mode)>,
    /// Targets whose decision waits for a place under their policy's maxConcurrent, by policy.
    waiting: HashMap<String, WaitQueue>,
    pub switches: Switches,
    /// The cluster's disruption budget, as configured ("10%", "3"); None: none.
    pub disruption_budget: Option<String>,
    /// In-house maintenance tooling's signals, beside the built-in ones.
    pub planned: Arc<PlannedSignals>,
    /// The time zone policies' windows are read in.
    pub time_zone: Zone,
    /// Nodes an out-of-service action was sent for, and when: kept out of service before their
    /// annotations come back through the watch.
    sent_out_of_service: HashMap<Shared, Secs>,
    /// Long actions in flight as their records show them (a leader that took over counts those
    /// it did not start).
    in_flight: InFlight,
    /// Each policy's recent actions by record, this replica's and those the records show: its
    /// rate, counted so that a restart or failover grants no fresh budget.
    spent: Spent,
    /// kube-healer's pod removals by workload still being replaced (maxDisruptedPerWorkload).
    removals: Removals,
    /// This replica's dry runs' removals, counted apart (a dry run removes nothing, so nothing
    /// answers them: each counts for SETTLE), so that a dry run holds as a live run would.
    dry_removals: Removals,
    /// Targets whose latest decision is held, and why.
    pub holding: Holding,
}

impl Gate {
    /// Decides on one policy condition due on a target.
    pub fn decide(
        &mut self,
        target: &Target,
        due: &DueMatch,
        compiled: &CompiledPolicy,
        ctx: &Context<'_>,
    ) -> Verdict {
        let spec = &compiled.policy.spec;
        let window = window_verdict(&spec.safety.windows, ctx.now, &self.time_zone.0);
        // A dry run's ladder is its own: switched to live, a policy starts at step 0. Inside a
        // RecordOnly window the policy runs dry.
        let record_only = window == WindowVerdict::RecordOnly;
        let mode = Mode::of(spec.safety.dry_run || self.switches.dry_run || record_only);
        let key = LadderKey::new(&due.policy, target, mode);
        let (mut ladder, replay) = self.ladder(&key, due, mode, spec.actions.len(), ctx);
        let (decision, inherited_until) = self.core_decision(target, due, compiled, &ladder, ctx, window);
        let (decided, recheck) = match decision {
            Decision::Wait { until } => return Verdict::Recheck(Some(until)),
            Decision::Act {
                step,
                action,
                dry_run,
            } => self.acted(
                target,
                spec,
                (&mut ladder, replay),
                (step, action, dry_run),
                mode,
                ctx.now,
            ),
            Decision::Hold {
                reason: HoldReason::MaxConcurrent,
                ..
            } => {
                // Not held back, only queued: decided again as soon as one of the policy's
                // actions in flight ends (a bulk clean-up must not leave a Skipped record per
                // target, nor wait for the target to change).
                // Those an earlier leader started end on their own: decided again at their
                // deadline at the latest (their records' marks coming off wake it sooner).
                self.waiting.entry(due.policy.clone()).or_default().push(target);
                return match inherited_until {
                    Some(at) => Verdict::Recheck(Some(at)),
                    None => Verdict::Queued,
                };
            }
            Decision::Hold {
                step,
                action,
                reason,
                message,
                retry_at,
            } => {
                if reason == HoldReason::Correlated && !self.first_of_its_cause(due, compiled, mode, ctx) {
                    return Verdict::Recheck(retry_at);
                }
                if reason == HoldReason::Maintenance
                    && !self.first_of_its_node(target, &due.policy, mode, ctx)
                {
                    return Verdict::Recheck(retry_at);
                }
                let hold = Hold { reason, message };
                match self.held_back(target, due, mode, (step, action, hold), &ladder, spec) {
                    Some(decided) => (decided, retry_at),
                    None => return Verdict::Recheck(retry_at),
                }
            }
        };
        tracing::info!(policy = %due.policy, target = %due.finding.subject, class = %due.finding.class, action = %decided.action,
            step = decided.step + 1, dry_run = decided.dry_run, hold = ?decided.hold.as_ref().map(|h| h.reason), "decision");
        // A held replay leaves the ladder to the records: taken up again next time, the replayed
        // step keeps its record's time.
        if decided.hold.is_none() || replay.is_none() {
            self.ladders.insert(key, ladder);
        }
        self.dispatch(target, due, compiled, decided, recheck, ctx)
    }

    /// Where the target stands: as this replica left it, else as the records of the episode say
    /// (a restart, a failover, a failure back within the cooldown), their latest step to be
    /// decided again (the replayed step and its time), else at the start.
    fn ladder(
        &self,
        key: &LadderKey,
        due: &DueMatch,
        mode: Mode,
        steps: usize,
        ctx: &Context<'_>,
    ) -> (Ladder, Option<(usize, Secs)>) {
        // The failure's episode (kept while it holds, carried across restarts by the records).
        let episode = due.episode;
        match self.ladders.get(key).filter(|l| l.episode == episode).cloned() {
            Some(ladder) => (ladder, None),
            None => ctx
                .episodes
                .ladder(&due.policy, &due.finding.subject.uid, episode, mode, steps)
                .unwrap_or_else(|| (Ladder::new(episode), None)),
        }
    }

    /// Core's decision on what the gate knows (its facts, the ladder, the policy's budget), the
    /// target's safety rule applied; the policy's budget and who is held are updated with it.
    /// Also when the in-flight actions an earlier leader started end, at the latest.
    fn core_decision(
        &mut self,
        target: &Target,
        due: &DueMatch,
        compiled: &CompiledPolicy,
        ladder: &Ladder,
        ctx: &Context<'_>,
        window: WindowVerdict,
    ) -> (Decision, Option<Secs>) {
        let now = ctx.now;
        let spec = &compiled.policy.spec;
        let finding = &due.finding;
        let for_secs = compiled.conditions[due.condition].for_secs;
        let mut facts = self.facts(target, due, compiled, ctx);
        facts.window = window;
        let dry = spec.safety.dry_run || self.switches.dry_run || window == WindowVerdict::RecordOnly;
        if dry && let Some(w) = facts.workload.as_mut() {
            w.removals = self.dry_removals.of(&w.workload, now);
        }
        let (inherited, inherited_until) = self.in_flight.inherited(&due.policy, &finding.subject.uid, now);
        facts.inherited_in_flight = inherited;
        let budget = self.budgets.entry(due.policy.clone()).or_default();
        budget.recent = self
            .spent
            .recent(&due.policy, now, spec.safety.rate_window_secs());
        let decision = decide(spec, due.episode.saturating_add(for_secs), ladder, budget, &facts);
        let decision = guard(decision, |step, action| {
            let view = match target {
                Target::Pod(ns, name) => ctx.stores.pod_at(ns, name).map(TargetView::Pod),
                Target::Node(name) => ctx.stores.node_view(name).map(TargetView::Node),
            }?;
            unsafe_for_target(
                spec,
                (step, action),
                view,
                ctx.stores,
                (&finding.subject, finding.class),
                now,
            )
        });
        budget.spend(&decision, now);
        match &decision {
            Decision::Hold { reason, .. } if *reason != HoldReason::MaxConcurrent => {
                self.holding.held(&due.policy, target, *reason)
            }
            Decision::Wait { .. } => {}
            _ => self.holding.released(&due.policy, target),
        }
        (decision, inherited_until)
    }

    /// A step to take: the ladder moves on (a replayed step at its record's time), a node sent
    /// out of service is counted at once; decided again when the step's escalateAfter passes.
    fn acted(
        &mut self,
        target: &Target,
        spec: &HealingPolicySpec,
        (ladder, replay): (&mut Ladder, Option<(usize, Secs)>),
        (step, action, dry_run): (usize, ActionKind, bool),
        mode: Mode,
        now: Secs,
    ) -> (Decided, Option<Secs>) {
        let before = ladder.last_action;
        // A replayed step was taken when its record was made.
        let at = replay.filter(|(s, _)| *s == step).map_or(now, |(_, at)| at);
        ladder.acted(step, spec.actions.len(), at);
        if let Target::Node(node) = target
            && action.properties().takes_node_out
            && !dry_run
        {
            self.sent_out_of_service
                .retain(|_, at| *at + SENT_COUNTS_FOR > now);
            self.sent_out_of_service.insert(node.clone(), now);
        }
        let again = at + spec.actions[step].escalate_after().as_std().as_secs() as Secs;
        let decided = Decided {
            step,
            action,
            attempt: ladder.attempts,
            hold: None,
            dry_run,
            before,
            mode,
        };
        (decided, Some(again))
    }

    /// Whether a decision held by a correlated cause is the first of its policy's held by that
    /// cause, when the cause is pods failing alike: only the first is recorded (the cause's
    /// record names the cause and counts its members), so a storm of any size writes one
    /// record per cause and policy. Node causes keep a record per node, as the budget and the
    /// node's marks are per node.
    fn first_of_its_cause(
        &mut self,
        due: &DueMatch,
        compiled: &CompiledPolicy,
        mode: Mode,
        ctx: &Context<'_>,
    ) -> bool {
        self.held_causes.retain(|(_, key, since, _)| {
            ctx.correlated
                .iter()
                .any(|c| c.since == *since && c.cause == CorrelatedCause::Pods(key.clone()))
        });
        let cause = cause_of(ctx.correlated, &due.finding, compiled, &ctx.pods_alike);
        match cause.map(|c| (&c.cause, c.since)) {
            Some((CorrelatedCause::Pods(key), since)) => {
                self.held_causes
                    .insert((due.policy.clone(), key.clone(), since, mode))
            }
            _ => true,
        }
    }

    /// Whether a pod's decision held by its node's planned disruption is the first of its
    /// policy's on that node: only the first is recorded (it names the node and the signal), so
    /// an upgrade of any size writes one record per node and policy. A node's own decisions
    /// keep theirs.
    fn first_of_its_node(&mut self, target: &Target, policy: &str, mode: Mode, ctx: &Context<'_>) -> bool {
        let Target::Pod(ns, name) = target else {
            return true;
        };
        let Some(node) = ctx.stores.pod_at(ns, name).and_then(|p| p.node.clone()) else {
            return true;
        };
        let planned = &self.planned;
        self.held_maintenance.retain(|(_, n, _)| {
            ctx.stores
                .node_view(n)
                .is_some_and(|v| kube_healer_core::decide::planned_disruption(v, planned).is_some())
        });
        self.held_maintenance.insert((policy.to_string(), node, mode))
    }

    /// A step held back, recorded once per episode, step and reason (None: recorded already,
    /// so it is only rechecked).
    fn held_back(
        &mut self,
        target: &Target,
        due: &DueMatch,
        mode: Mode,
        (step, action, hold): (usize, ActionKind, Hold),
        ladder: &Ladder,
        spec: &HealingPolicySpec,
    ) -> Option<Decided> {
        let held = HeldKey {
            policy: due.policy.clone(),
            target: target.clone(),
            episode: due.episode,
            step,
            reason: hold.reason,
            mode,
        };
        self.held.insert(held).then_some(Decided {
            step,
            action,
            attempt: ladder.attempts,
            hold: Some(hold),
            dry_run: spec.safety.dry_run,
            before: None,
            mode,
        })
    }

    /// The request for a decision, counted in flight and against the rate if it acts.
    fn dispatch(
        &mut self,
        target: &Target,
        due: &DueMatch,
        compiled: &CompiledPolicy,
        decided: Decided,
        recheck: Option<Secs>,
        ctx: &Context<'_>,
    ) -> Verdict {
        let mut request = request::build(
            compiled,
            target,
            due,
            decided,
            ctx.stores,
            ctx.decided_at.clone(),
            &self.planned,
        );
        if let (Target::Node(_), Some(seen)) = (target, request.seen.as_mut())
            && request.spec.action.properties().takes_node_out
        {
            seen.budget = self.disruption_budget.clone();
        }
        if request
            .hold
            .as_ref()
            .is_some_and(|h| h.reason == HoldReason::Correlated)
        {
            request.spec.cause = cause_of(ctx.correlated, &due.finding, compiled, &ctx.pods_alike)
                .map(request::cause_evidence);
        }
        if request.in_flight() {
            self.in_flight.started(&request.name);
        }
        if request.hold.is_none() {
            self.spent.spent(&due.policy, &request.name, ctx.now);
        }
        match crate::record::would_disrupt(&request.spec, request.hold.is_some()) {
            Some((workload, removal)) if request.spec.dry_run => {
                self.dry_removals.removed(workload, &request.name, removal, false);
            }
            Some((workload, removal)) => self.removals.removed(workload, &request.name, removal, true),
            None => {}
        }
        Verdict::Dispatch {
            request: Box::new(request),
            recheck,
        }
    }

    /// Why work cut short by an earlier process may not be carried on now (see core's
    /// `not_resumable`), if it may not.
    pub fn not_resumable(&self, compiled: &CompiledPolicy, now: Secs) -> Option<(&'static str, String)> {
        let spec = &compiled.policy.spec;
        let window = window_verdict(&spec.safety.windows, now, &self.time_zone.0);
        kube_healer_core::decide::not_resumable(spec, self.switches.pause(), self.switches.dry_run, window)
    }

    /// The facts a decision on this finding reads: the switches, the target's opt-out, the
    /// correlated cause covering it, someone else's work on its node, and (node policies) the
    /// unhealthy nodes and the cluster's disruption budget.
    fn facts(&self, target: &Target, due: &DueMatch, compiled: &CompiledPolicy, ctx: &Context<'_>) -> Facts {
        let finding = &due.finding;
        let view = match target {
            Target::Pod(ns, name) => ctx.stores.pod_at(ns, name).map(TargetView::Pod),
            Target::Node(name) => ctx.stores.node_view(name).map(TargetView::Node),
        };
        let opted_out = match view {
            Some(TargetView::Pod(p)) => p.opted_out,
            Some(TargetView::Node(n)) => n.opted_out,
            None => false,
        };
        let causes = (ctx.correlated, &ctx.pods_alike);
        let mut facts = Facts::about(ctx.now, compiled, finding, opted_out, causes, || {
            (ctx.unhealthy_nodes)(compiled)
        })
        .with_switches(self.switches.pause(), self.switches.dry_run);
        if let Some(TargetView::Pod(pod)) = view {
            let siblings = |w: &str| ctx.stores.workload_siblings(w);
            facts.workload = WorkloadPods::of(pod, finding.class, siblings, |w| self.removals.of(w, ctx.now));
        }
        if let Some(view) = view {
            let spec = &compiled.policy.spec;
            let when = (due.episode, ctx.now);
            facts.maintenance = under_maintenance(spec, finding, view, ctx.stores, &self.planned, when);
            facts.overridden = overridden(spec, &due.policy, view, when);
        }
        if let (Target::Node(node), Some(budget)) = (target, &self.disruption_budget) {
            facts.out_of_service = Some(self.out_of_service(node, budget, ctx));
        }
        facts
    }

    /// A policy's failure cleared on a target: its ladder ends. Returns whether the policy had
    /// acted on it in that episode (what it changed may need reverting).
    pub fn recovered(&mut self, target: &Target, policy: &str) -> bool {
        self.holding.released(policy, target);
        // Its held decisions were of the episode that ended: a new one records its own.
        self.held.retain(|h| h.policy != policy || h.target != *target);
        let mut acted = false;
        for mode in [Mode::Live, Mode::DryRun] {
            let key = LadderKey::new(policy, target, mode);
            acted |= self.ladders.remove(&key).is_some_and(|l| l.attempts > 0);
        }
        acted
    }

    /// One of the policy's actions in flight (its record named) ended: the places in flight now.
    pub fn finished(&mut self, policy: &str, record: &str, now: Secs) -> u32 {
        self.in_flight.ended(record);
        self.removals.done(record, now);
        let budget = self.budgets.entry(policy.to_string()).or_default();
        budget.finished();
        budget.in_flight
    }

    /// A record as the watch shows it, with its in-flight mark or without. Returns the policy
    /// whose long actions in flight may have dropped (a place may be free).
    pub fn record_seen(&mut self, record: &str, mark: Option<InFlightMark>) -> Option<String> {
        self.in_flight.seen(record, mark)
    }

    /// A record of an action (or dry run) decided at `at`, as the watch shows it: it counts
    /// against its policy's rate.
    pub fn record_spent(&mut self, policy: &str, record: &str, at: Secs) {
        self.spent.spent(policy, record, at);
    }

    /// A record of a pod removal its workload's controller replaces, as the watch shows it at
    /// `now`, with its in-flight mark (`ongoing`) or without: it counts against the workload's
    /// maxDisruptedPerWorkload. Another process's removal seen without the mark is done (this
    /// replica's own end through `finished`).
    pub fn record_disrupts(
        &mut self,
        workload: &str,
        record: &str,
        removal: kube_healer_core::decide::Removal,
        (ongoing, now): (bool, Secs),
    ) {
        self.removals.removed(workload, record, removal, ongoing);
        if !ongoing && !self.in_flight.is_own(record) {
            self.removals.done(record, now);
        }
    }

    /// A removal recorded under `record` was certainly not made: it counts no more. Its
    /// workload, if it counted.
    pub fn removal_not_made(&mut self, record: &str) -> Option<String> {
        self.removals.forget(record)
    }

    /// A record was deleted. Returns the policy it counted in flight for, if it did.
    pub fn record_gone(&mut self, record: &str) -> Option<String> {
        // A removal's record deleted by retention still counts until SETTLE has passed.
        self.spent.forget(record);
        self.in_flight.gone(record)
    }

    /// Whether the action recorded under this name is this replica's, in flight now.
    pub fn own_in_flight(&self, record: &str) -> bool {
        self.in_flight.is_own(record)
    }

    /// The policy's actions in flight (this replica's own).
    pub fn in_flight(&self, policy: &str) -> u32 {
        self.budgets.get(policy).map_or(0, |b| b.in_flight)
    }

    /// How many targets wait for a place under the policy's maxConcurrent.
    pub fn waiting(&self, policy: &str) -> usize {
        self.waiting.get(policy).map_or(0, WaitQueue::len)
    }

    /// The next target waiting for a place under the policy's maxConcurrent.
    pub fn next_waiting(&mut self, policy: &str) -> Option<Target> {
        self.waiting.get_mut(policy).and_then(WaitQueue::pop)
    }

    /// A decision that could not be recorded was not carried out: its ladder step is taken back
    /// and its holds forgotten. Returns its target, to be decided on again after
    /// [`RECORD_RETRY`], on the state of then.
    pub fn take_back(&mut self, policy: &str, req: &ActionRequest) -> Target {
        let target = &req.spec.target;
        let target = match target.kind {
            kube_healer_api::TargetKind::Pod => Target::Pod(
                target.namespace.as_deref().unwrap_or_default().into(),
                target.name.as_str().into(),
            ),
            kube_healer_api::TargetKind::Node => Target::Node(target.name.as_str().into()),
        };
        let step = (req.spec.step.max(1) - 1) as usize;
        let key = LadderKey::new(policy, &target, Mode::of(req.spec.dry_run));
        if req.hold.is_none()
            && let Some(ladder) = self.ladders.get_mut(&key)
            && ladder.last_action.is_some_and(|(s, _)| s == step)
        {
            ladder.take_back(step, req.before);
        }
        self.held.retain(|h| h.policy != policy || h.target != target);
        // The node's one record for its pods was not written: the next pod's decision writes it.
        self.held_maintenance.retain(|(p, _, _)| p != policy);
        self.holding.released(policy, &target);
        self.spent.taken_back(policy, &req.name);
        self.removals.forget(&req.name);
        self.dry_removals.forget(&req.name);
        target
    }

    /// A policy is gone (or unreadable): nothing waits under it.
    pub fn forget_policy(&mut self, policy: &str) {
        self.waiting.remove(policy);
        self.holding.policy_gone(policy);
        if self.budgets.get(policy).is_some_and(|b| b.in_flight == 0) {
            self.budgets.remove(policy);
        }
    }

    /// Lets go of the actions past every rate window (`window`: a policy's, by its records'
    /// label; None for a policy not here, whose records then count for a day): on a replica
    /// that does not lead, nothing decides, so nothing else prunes them.
    pub fn prune_spent(&mut self, now: Secs, window: impl Fn(&str) -> Option<Secs>) {
        self.spent.prune(now, window);
        self.removals.prune(now);
        self.dry_removals.prune(now);
    }

    /// Entries in the gate's maps, by name: ladders, held decisions, rate actions, removals.
    pub fn entries(&self) -> [(&'static str, usize); 5] {
        [
            ("ladders", self.ladders.len()),
            ("held_decisions", self.held.len()),
            ("rate_actions", self.spent.len()),
            ("workload_removals", self.removals.len()),
            ("dry_run_removals", self.dry_removals.len()),
        ]
    }

    /// Leadership was lost: the next leader decides on the waiting targets afresh (and this
    /// replica too, if it leads again).
    pub fn stop_waiting(&mut self) {
        self.waiting.clear();
    }
}
