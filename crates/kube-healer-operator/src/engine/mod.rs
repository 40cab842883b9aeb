//! The engine: the loop that routes. Watch changes go into the stores (or the policy set, or the
//! record book); the targets they touched are classified again; due policy conditions go to the
//! gate; its verdicts go to the executor; the executor's answers come back to the gate. Timers
//! wake a target exactly when something about it becomes due (no polling).
//!
//! Leadership is checked here, at the I/O edge: every replica keeps its stores and findings warm,
//! only the leader decides, sends work and writes statuses.

mod batch_marks;
mod correlation;
mod done;
mod evaluate;
mod findings;
mod leadership;
mod policies;
mod records;
mod resume;
mod route;
mod stale_marks;
mod timers;

use std::sync::Arc;
use std::time::Duration;

use kube_healer_api::FailureClass;
use kube_healer_core::classify::sick_node::SickNodeCause;
use kube_healer_core::view::{Secs, Shared};
use kube_healer_core::{Correlated, Knobs};
use tokio::sync::{mpsc, watch};

use crate::api_health::ApiCalls;
use crate::clock::{Clock, WallClock};
use crate::decide::{Gate, Switches};
use crate::metrics::Metrics;
use crate::policy::{Match, PolicySet, PolicyStatus, StatusBook};
use crate::protocol::{ActionDone, Work};
use crate::record::{Records, Retention};
use crate::store::{Relist, Stores, Synced};
use crate::target::Target;
use crate::watch::Change;
use correlation::Correlation;
use findings::FindingTracker;
use timers::DueQueue;

pub struct Engine {
    stores: Stores,
    /// Classification's thresholds (pods alike: the loosest any policy asks for).
    knobs: Knobs,
    /// The operator's pods-alike thresholds (`--pods-alike-*`): a policy's unless it has its own.
    pods_alike: kube_healer_core::PodsAlike,
    findings: FindingTracker,
    timers: DueQueue<Target>,
    policies: PolicySet,
    relist_policies: Relist<String>,
    correlation: Correlation,
    /// The node label that names a node's pool (correlated as zones are), if configured.
    pool_label: Option<String>,
    /// The operator's own API calls, as the control plane answered them.
    api_calls: Arc<ApiCalls>,
    gate: Gate,
    synced: Synced,
    synced_tx: watch::Sender<Synced>,
    status_tx: Option<mpsc::UnboundedSender<PolicyStatus>>,
    action_tx: Option<mpsc::UnboundedSender<Work>>,
    done_rx: Option<mpsc::UnboundedReceiver<ActionDone>>,
    statuses: StatusBook,
    /// HealingActions known from the watch, for retention, and when retention runs next.
    records: Records,
    relist_records: Relist<String>,
    /// Batch records still marked in flight (see `resume_unfinished`).
    batch_marks: batch_marks::BatchMarks,
    /// Batches cut short, to be carried on or settled once their deadline has passed (see
    /// `resume_due_batches`); bounded by the batch marks.
    resuming: std::collections::HashMap<String, Secs>,
    /// Live records with no outcome written yet: their policy label (see `resume_unfinished`).
    unfinished: std::collections::HashMap<String, String>,
    retention: Retention,
    retention_at: Option<Secs>,
    /// Leadership: only the leader decides and acts.
    leader: Option<watch::Receiver<bool>>,
    is_leader: bool,
    /// Holds on nodes (cordons, taints) of policies whose failure is over, let go of and not yet
    /// seen gone: (policy, node) -> when the revert was sent.
    releasing: std::collections::HashMap<(Shared, Shared), Secs>,
    /// Nodes whose lifted cordon was sent to be recorded, and when (one entry per such node,
    /// gone once the node shows it).
    lifts_sent: std::collections::HashMap<Shared, Secs>,
    /// The nodes out of service as last seen, whoever took them out (bounded by the nodes): a
    /// change wakes the targets the disruption budget holds.
    nodes_out: std::collections::HashMap<Shared, kube_healer_core::decide::OutBy>,
    /// Policies deleted while this process ran: their marks are let go as their nodes recover.
    retired: std::collections::HashSet<String>,
    /// The namespace kube-healer runs in: its pause annotation pauses every policy.
    own_namespace: Option<String>,
    /// Whether the namespace list under way has shown kube-healer's namespace.
    own_namespace_listed: bool,
    /// What other tools' resources say of the nodes, shared with the executor's recheck.
    maintained: crate::protocol::Maintained,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
}

impl Engine {
    pub fn new(metrics: Arc<Metrics>, synced_tx: watch::Sender<Synced>) -> Self {
        Engine {
            stores: Stores::default(),
            knobs: Knobs::default(),
            pods_alike: kube_healer_core::PodsAlike::default(),
            findings: FindingTracker::default(),
            timers: DueQueue::default(),
            policies: PolicySet::default(),
            relist_policies: Relist::default(),
            correlation: Correlation::default(),
            pool_label: None,
            api_calls: ApiCalls::process(),
            gate: Gate::default(),
            synced: Synced::default(),
            synced_tx,
            status_tx: None,
            action_tx: None,
            done_rx: None,
            statuses: StatusBook::default(),
            records: Records::default(),
            relist_records: Relist::default(),
            batch_marks: Default::default(),
            resuming: Default::default(),
            unfinished: Default::default(),
            retention: Retention::default(),
            retention_at: None,
            leader: None,
            is_leader: true,
            releasing: Default::default(),
            lifts_sent: Default::default(),
            nodes_out: Default::default(),
            retired: Default::default(),
            own_namespace: None,
            own_namespace_listed: false,
            maintained: Default::default(),
            metrics,
            clock: Arc::new(WallClock::default()),
        }
    }

    /// Replaces the clock (tests drive time by hand).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Follows a leadership channel: decisions are made only while it reads true.
    pub fn with_leadership(mut self, leader: watch::Receiver<bool>) -> Self {
        self.is_leader = *leader.borrow();
        self.leader = Some(leader);
        self
    }

    /// Writes policy statuses through `tx` (the leader's duty).
    pub fn with_status_writer(mut self, tx: mpsc::UnboundedSender<PolicyStatus>) -> Self {
        self.status_tx = Some(tx);
        self
    }

    /// Carries out decisions through an executor (the leader's duty).
    pub fn with_executor(
        mut self,
        tx: mpsc::UnboundedSender<Work>,
        done: mpsc::UnboundedReceiver<ActionDone>,
    ) -> Self {
        self.action_tx = Some(tx);
        self.done_rx = Some(done);
        self
    }

    /// The operator-wide dry run and pause.
    pub fn with_switches(mut self, dry_run: bool, paused: bool) -> Self {
        self.gate.switches = Switches {
            dry_run,
            paused,
            paused_by: None,
        };
        self
    }

    /// Where what other tools' resources say of the nodes is shared with the executor.
    pub fn with_maintained(mut self, maintained: crate::protocol::Maintained) -> Self {
        self.maintained = maintained;
        self
    }

    /// The namespace kube-healer runs in, whose pause annotation pauses every policy.
    pub fn with_own_namespace(mut self, namespace: Option<String>) -> Self {
        self.own_namespace = namespace;
        self
    }

    /// Namespaces no policy touches unless it names them (default: kube-system).
    pub fn with_protected_namespaces(mut self, namespaces: Vec<String>) -> Self {
        self.policies.set_protected_namespaces(namespaces);
        self
    }

    /// The cluster's disruption budget: a count or a percent of the nodes ("10%").
    pub fn with_disruption_budget(mut self, budget: Option<String>) -> Self {
        self.gate.disruption_budget = budget;
        self
    }

    /// The node label that names a node's pool, grouped as zones are for correlation.
    pub fn with_pool_label(mut self, label: Option<String>) -> Self {
        self.pool_label = label;
        self
    }

    /// Whose events about nodes are evidence (default: the kubelet, the node lifecycle controller
    /// and node-problem-detector, in `default`).
    pub fn with_event_trust(mut self, trust: kube_healer_core::trust::EventTrust) -> Self {
        self.stores.trust = trust;
        self
    }

    /// The memory the event index may take (default 64 MiB): past it, the event series last
    /// seen longest ago go.
    pub fn with_event_budget(mut self, bytes: usize) -> Self {
        self.stores.set_event_budget(bytes);
        self
    }

    /// Where the operator's own API calls are noted (default: the process's log).
    pub fn with_api_calls(mut self, calls: Arc<ApiCalls>) -> Self {
        self.api_calls = calls;
        self
    }

    /// When pods failing alike are one cause (default: core's).
    pub fn with_planned(mut self, planned: kube_healer_core::decide::PlannedSignals) -> Self {
        self.gate.planned = std::sync::Arc::new(planned);
        self
    }

    pub fn with_time_zone(mut self, zone: kube_healer_core::decide::Zone) -> Self {
        self.gate.time_zone = zone;
        self
    }

    pub fn with_pods_alike(mut self, pods_alike: kube_healer_core::PodsAlike) -> Self {
        self.pods_alike = pods_alike;
        self.fit_pods_alike();
        self
    }

    /// Pods failing alike are found at the loosest thresholds any policy asks for (the
    /// operator's, or a policy's own `safety.podsAlike`), their bursts counted in each window one
    /// asks for; each policy is then held only by the causes its own thresholds meet
    /// (`Correlated::holds_for`).
    pub(super) fn fit_pods_alike(&mut self) {
        if self
            .knobs
            .fit_pods_alike(&self.pods_alike, self.policies.safeties())
        {
            self.correlation.invalidate();
        }
    }

    /// How long a failure must stay clear before it is over (default 0: at once).
    pub fn with_clear_debounce(mut self, debounce: Duration) -> Self {
        self.policies.set_debounce(debounce.as_secs() as Secs);
        self
    }

    /// How long and how many HealingActions are kept.
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Applies changes and fires timers until the change channel closes.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Change>) {
        self.metrics.leader.set(i64::from(self.is_leader));
        let mut leader = self.leader.take();
        // Events age out of the index locally: no list, no get.
        let mut prune = tokio::time::interval(Duration::from_secs(60));
        prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut correlate = tokio::time::interval(Duration::from_secs(1));
        correlate.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // The next target timer, retention run, or deadline of a batch cut short.
            let next = [
                self.timers.next(),
                self.retention_at,
                self.resuming.values().min().copied(),
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = async {
                match next {
                    Some(at) => {
                        // To the millisecond: a timer due at second `at` fires as it begins.
                        let wait = (at * 1000 - self.clock.now_ms()).max(0) as u64;
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                change = rx.recv() => match change {
                    Some(change) => self.apply(change),
                    None => return,
                },
                () = sleep => self.fire_due_timers(),
                done = async {
                    match self.done_rx.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => if let Some(done) = done {
                    self.action_done(done);
                },
                changed = async {
                    match leader.as_mut() {
                        Some(l) => l.changed().await.map(|()| *l.borrow_and_update()),
                        None => std::future::pending().await,
                    }
                } => match changed {
                    Ok(leading) => self.set_leader(leading),
                    Err(_) => {
                        // The election ended; the process exits through run()'s select. Stop deciding.
                        leader = None;
                        self.set_leader(false);
                    }
                },
                _ = correlate.tick() => self.refresh_correlation(),
                _ = prune.tick() => self.prune_events(),
            }
        }
    }

    /// Fires the timers due at the clock's time (the run loop calls it when it wakes).
    pub fn fire_due_timers(&mut self) {
        let now = self.clock.now();
        if self.retention_at.is_some_and(|at| at <= now) {
            self.retention_at = None;
            self.apply_retention(now);
        }
        while let Some(target) = self.timers.pop_due(now) {
            self.evaluate(&target, now);
        }
        self.resume_due_batches(now);
    }

    /// The minute's upkeep of what grows with time: events age out of the index, deleted nodes
    /// no pod names are forgotten, and actions past every rate window (on a replica that does
    /// not lead, nothing else prunes them).
    pub fn prune_events(&mut self) {
        let now = self.clock.now();
        self.stores.prune_events(now);
        self.stores.prune_gone_nodes();
        let policies = &self.policies;
        self.gate.prune_spent(now, |p| {
            policies.get(p).map(|c| c.policy.spec.safety.rate_window_secs())
        });
        self.count_stores();
    }

    /// Sends work to the executor, if there is one.
    fn send(&self, work: Work) {
        if let Some(tx) = &self.action_tx {
            let _ = tx.send(work);
        }
    }

    fn refresh_correlation(&mut self) {
        let stores = &self.stores;
        // Where the nodes are, counted only when the causes are recomputed.
        let pool = self.pool_label.as_deref();
        let topology = || kube_healer_core::classify::Topology::by(stores.nodes(), pool);
        let now = self.clock.now();
        let calls = self.api_calls.recent();
        let control = kube_healer_core::classify::control_plane(&calls, self.clock.now_ms(), &self.knobs);
        let before: Vec<_> = self
            .correlation
            .holding()
            .iter()
            .map(|c| c.cause.clone())
            .collect();
        if !self
            .correlation
            .refresh((topology, &self.stores), control, &self.knobs, &self.metrics, now)
        {
            return;
        }
        // A cause that no longer holds (cooled off) lets its targets go: those whose failure
        // goes on unchanged are decided again now, not at their next change.
        let holding = self.correlation.holding();
        if before.iter().any(|b| !holding.iter().any(|c| c.cause == *b)) {
            let failing: Vec<Target> = self.policies.all_matches().map(|(t, _)| t.clone()).collect();
            for target in failing {
                self.timers.schedule(target, now);
            }
        }
        // A sick node is reported to node policies (as NodeBlackHole): the nodes whose cause
        // began, changed or ended are classified again now.
        let sick = self
            .correlation
            .current()
            .iter()
            .filter_map(SickNodeCause::of)
            .map(|(node, cause)| (node.to_string(), cause))
            .collect();
        for node in self.stores.set_sick_nodes(sick) {
            self.timers.schedule(Target::Node(node.into()), now);
        }
        // The storm's Ready transitions are not the nodes' own flapping.
        let held: Vec<(Shared, Secs)> = self
            .correlation
            .down_together()
            .map(|(node, since)| (Shared::from(node), since))
            .collect();
        self.stores
            .held_together
            .update(held.iter().map(|(n, s)| (n, *s)), now);
    }

    /// The correlated causes in force.
    pub fn correlated(&mut self) -> &[Correlated] {
        self.refresh_correlation();
        self.correlation.current()
    }

    /// The findings tracked on a target: (class, since, due reported).
    pub fn tracked(&self, target: &Target) -> Vec<(FailureClass, Secs, bool)> {
        self.findings.on(target)
    }

    /// When the target is next evaluated, if a timer is set.
    pub fn next_wake(&self, target: &Target) -> Option<Secs> {
        self.timers.due(target)
    }

    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// Per-target entries the gate keeps (ladders, held decisions).
    pub fn gate_entries(&self) -> usize {
        self.gate.per_target_entries()
    }

    /// The policy conditions holding on a target.
    pub fn policy_matches(&self, target: &Target) -> &[Match] {
        self.policies.matches(target)
    }
}
