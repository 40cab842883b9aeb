//! The engine: owns the stores, applies watch changes, classifies what changed, and wakes at the
//! exact time a finding becomes due (no polling).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::watcher::Event as W;
use kube_healer_api::{ActionKind, FailureClass, HealingActionSpec, reasons};
use kube_healer_core::classify::node::unstarted_since;
use kube_healer_core::convert::{event_view, lease_view, node_view, pod_view};
use kube_healer_core::decide::{Budget, Decision, Facts, Ladder, decide};
use kube_healer_core::thresholds::{Knobs, default_for};
use kube_healer_core::view::{OwnerKind, Secs, Shared};
use kube_healer_core::{ClusterView, Finding, classify_node, classify_pod};
use tokio::sync::{mpsc, watch};

use crate::actions::{ActionDone, ActionRequest, Work, record_name};
use crate::metrics::Metrics;
use crate::policies::{DueMatch, PolicySet};
use crate::retention::{Records, Retention};
use crate::status::PolicyStatus;
use crate::store::{PodKey, Stores};
use crate::watch::Change;

/// What classification is done on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Pod(Shared, Shared),
    Node(Shared),
}

impl Target {
    fn pod(key: &PodKey) -> Self {
        Target::Pod(key.namespace.clone(), key.name.clone())
    }
}

/// A finding the engine is tracking on a target.
#[derive(Clone, Debug)]
struct Tracked {
    class: FailureClass,
    since: Secs,
    due_reported: bool,
}

/// Which watches have completed their initial list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Synced {
    pub pods: bool,
    pub nodes: bool,
    pub events: bool,
    pub leases: bool,
    pub namespaces: bool,
    pub policies: bool,
}

impl Synced {
    pub fn all(self) -> bool {
        self.pods && self.nodes && self.events && self.leases && self.namespaces && self.policies
    }
}

pub struct Engine {
    stores: Stores,
    knobs: Knobs,
    tracked: HashMap<Target, Vec<Tracked>>,
    timers: BinaryHeap<Reverse<(Secs, Target)>>,
    scheduled: HashMap<Target, Secs>,
    policies: PolicySet,
    /// Findings that may be part of a correlated cause, by target.
    correlation_inputs: HashMap<Target, Vec<Finding>>,
    /// The correlated causes in force.
    correlated: Vec<kube_healer_core::Correlated>,
    /// The correlation inputs changed since `correlated` was computed.
    correlation_dirty: bool,
    /// Targets whose decision waits for a slot under their policy's maxConcurrent, by policy.
    waiting: HashMap<String, WaitQueue>,
    relist_policies: Option<HashSet<String>>,
    relist_pods: Option<HashSet<PodKey>>,
    relist_nodes: Option<HashSet<Shared>>,
    relist_leases: Option<HashSet<Shared>>,
    synced: Synced,
    synced_tx: watch::Sender<Synced>,
    status_tx: Option<mpsc::UnboundedSender<PolicyStatus>>,
    action_tx: Option<mpsc::UnboundedSender<Work>>,
    done_rx: Option<mpsc::UnboundedReceiver<ActionDone>>,
    /// Where each (policy, target) stands on the policy's ladder.
    ladders: HashMap<(String, Target), Ladder>,
    /// Each policy's use of its limits.
    budgets: HashMap<String, Budget>,
    global_dry_run: bool,
    paused: bool,
    /// Holds already recorded: (policy, target, episode, step, reason).
    held: HashSet<(String, Target, Secs, usize, &'static str)>,
    /// HealingActions known from the watch, for retention, and when retention runs next.
    records: Records,
    retention: Retention,
    retention_at: Option<Secs>,
    relist_records: Option<HashSet<String>>,
    /// Per policy: actions carried out and the last one's time, as last written to its status.
    taken: HashMap<String, (i64, Option<Secs>)>,
    /// Nodes carrying Reschedule's avoid taint, and when it expires.
    avoid_until: HashMap<Shared, Secs>,
    status_sent: HashMap<String, PolicyStatus>,
    status_latest: HashMap<String, PolicyStatus>,
    /// Leadership: only the leader decides and acts.
    leader: Option<watch::Receiver<bool>>,
    is_leader: bool,
    metrics: Arc<Metrics>,
    clock: fn() -> Secs,
    /// The same clock in milliseconds (timers sleep to the millisecond); None: the clock's
    /// seconds.
    clock_ms: Option<fn() -> i64>,
}

/// How long after a decision could not be recorded it is made again.
const RECORD_RETRY: Secs = 10;

/// Targets in the order they came to wait, each once.
#[derive(Default)]
struct WaitQueue {
    order: VecDeque<Target>,
    members: HashSet<Target>,
}

impl WaitQueue {
    fn push(&mut self, target: &Target) {
        if self.members.insert(target.clone()) {
            self.order.push_back(target.clone());
        }
    }

    fn pop(&mut self) -> Option<Target> {
        let target = self.order.pop_front()?;
        self.members.remove(&target);
        Some(target)
    }
}

/// The wall clock, in Unix seconds.
pub fn wall_clock() -> Secs {
    k8s_openapi::jiff::Timestamp::now().as_second()
}

impl Engine {
    pub fn new(metrics: Arc<Metrics>, synced_tx: watch::Sender<Synced>) -> Self {
        Engine {
            stores: Stores::default(),
            knobs: Knobs::default(),
            tracked: HashMap::new(),
            timers: BinaryHeap::new(),
            scheduled: HashMap::new(),
            policies: PolicySet::default(),
            correlation_inputs: HashMap::new(),
            correlated: Vec::new(),
            correlation_dirty: false,
            waiting: HashMap::new(),
            relist_policies: None,
            relist_pods: None,
            relist_nodes: None,
            relist_leases: None,
            synced: Synced::default(),
            synced_tx,
            status_tx: None,
            action_tx: None,
            done_rx: None,
            ladders: HashMap::new(),
            budgets: HashMap::new(),
            held: HashSet::new(),
            avoid_until: HashMap::new(),
            taken: HashMap::new(),
            records: Records::default(),
            retention: Retention::default(),
            retention_at: None,
            relist_records: None,
            global_dry_run: false,
            paused: false,
            status_sent: HashMap::new(),
            status_latest: HashMap::new(),
            leader: None,
            is_leader: true,
            metrics,
            clock: wall_clock,
            clock_ms: Some(|| k8s_openapi::jiff::Timestamp::now().as_millisecond()),
        }
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
            let next = self.timers.peek().map(|Reverse((at, _))| *at);
            let next = match (next, self.retention_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep = async {
                match next {
                    Some(at) => {
                        // To the millisecond: a timer due at second `at` fires as it begins.
                        let now_ms = self.clock_ms.map_or_else(|| (self.clock)() * 1000, |ms| ms());
                        let wait = (at * 1000 - now_ms).max(0) as u64;
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
                () = sleep => self.fire_timers(),
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
                _ = prune.tick() => {
                    self.stores.events.prune((self.clock)());
                    self.metrics.store_objects.get_or_create(&Metrics::resource("events")).set(self.stores.events.len() as i64);
                }
            }
        }
    }

    /// How long and how many HealingActions are kept.
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    fn apply_record(
        &mut self,
        event: W<kube::core::PartialObjectMeta<kube_healer_api::HealingAction>>,
        now: Secs,
    ) {
        match event {
            W::Apply(meta) | W::InitApply(meta) => {
                let meta = meta.metadata;
                let name = meta.name.unwrap_or_default();
                if let Some(seen) = &mut self.relist_records {
                    seen.insert(name.clone());
                }
                let mut labels = meta.labels.unwrap_or_default();
                let policy = labels.remove(kube_healer_api::POLICY_LABEL).unwrap_or_default();
                let uid = labels
                    .remove(kube_healer_api::TARGET_UID_LABEL)
                    .unwrap_or_default();
                let created = meta.creation_timestamp.map_or(now, |t| t.0.as_second());
                self.records.upsert(name, policy, created, uid);
                // Batched: retention looks at new records at most every 10 s.
                if self.relist_records.is_none() && self.retention_at.is_none_or(|at| at > now + 10) {
                    self.retention_at = Some(now + 10);
                }
            }
            W::Delete(meta) => self
                .records
                .remove(meta.metadata.name.as_deref().unwrap_or_default()),
            W::Init => self.relist_records = Some(HashSet::new()),
            W::InitDone => {
                if let Some(seen) = self.relist_records.take() {
                    self.records.retain(&seen);
                }
                self.apply_retention(now);
            }
        }
    }

    /// Deletes (through the executor) the records of this operator's policies past their
    /// retention, and sets when to look again. The leader's duty.
    fn apply_retention(&mut self, now: Secs) {
        if !self.is_leader {
            return;
        }
        let Some(tx) = &self.action_tx else { return };
        let policies = &self.policies;
        // Failures in progress: their records keep decisions from being carried out twice.
        let mut active: HashSet<(&str, String)> = HashSet::new();
        for (target, matches) in policies.all_matches() {
            let uid = match target {
                Target::Pod(ns, name) => self.stores.pod_at(ns, name).map(|p| p.uid.to_string()),
                Target::Node(name) => self.stores.node_view(name).map(|n| n.uid.to_string()),
            };
            if let Some(uid) = uid {
                active.extend(matches.iter().map(|m| (m.policy.as_str(), uid.clone())));
            }
        }
        let (doomed, next) = self.records.expired(
            now,
            self.retention,
            |p| policies.get(p).is_some(),
            |p, uid| active.contains(&(p, uid.to_string())),
        );
        if !doomed.is_empty() {
            tracing::info!(
                records = doomed.len(),
                "deleting HealingActions past their retention"
            );
        }
        for name in doomed {
            let _ = tx.send(Work::DeleteRecord { name });
        }
        self.retention_at = next;
    }

    /// An action finished: it frees its place in the policy's budget and, if it changed the
    /// cluster, counts in the policy's status.
    pub fn action_done(&mut self, done: ActionDone) {
        if done.was_in_flight {
            let budget = self.budgets.entry(done.policy.clone()).or_default();
            budget.in_flight = budget.in_flight.saturating_sub(1);
            let freed = budget.in_flight;
            // A slot is free: decide again on the targets queued behind maxConcurrent, until
            // one of them takes the slot.
            let now = (self.clock)();
            while let Some(target) = self.waiting.get_mut(&done.policy).and_then(WaitQueue::pop) {
                self.evaluate(&target, now);
                let in_flight = self.budgets.get(&done.policy).map_or(0, |b| b.in_flight);
                if in_flight > freed {
                    break;
                }
            }
        }
        if let Some(req) = done.unrecorded {
            self.take_back(&done.policy, &req);
        }
        if done.carried_out {
            let taken = self.taken.entry(done.policy.clone()).or_default();
            taken.0 += 1;
            taken.1 = Some((self.clock)());
            let taken = *taken;
            if let Some(mut status) = self.status_latest.get(&done.policy).cloned() {
                (status.actions_taken, status.last_action) = taken;
                self.write_status(status);
            }
        }
    }

    /// A decision that could not be recorded was not carried out: its ladder step is taken back
    /// and the target decided on again after [`RECORD_RETRY`], on the state of then.
    fn take_back(&mut self, policy: &str, req: &ActionRequest) {
        let target = &req.spec.target;
        let target = match target.kind {
            kube_healer_api::TargetKind::Pod => Target::Pod(
                target.namespace.as_deref().unwrap_or_default().into(),
                target.name.as_str().into(),
            ),
            kube_healer_api::TargetKind::Node => Target::Node(target.name.as_str().into()),
        };
        let step = (req.spec.step.max(1) - 1) as usize;
        if req.hold.is_none()
            && let Some(ladder) = self.ladders.get_mut(&(policy.to_string(), target.clone()))
            && ladder.last_action.is_some_and(|(s, _)| s == step)
        {
            ladder.take_back(step, req.before);
        }
        self.held.retain(|(p, t, ..)| p != policy || *t != target);
        let at = (self.clock)() + RECORD_RETRY;
        self.schedule(target, at);
    }

    fn fire_timers(&mut self) {
        let now = (self.clock)();
        if self.retention_at.is_some_and(|at| at <= now) {
            self.retention_at = None;
            self.apply_retention(now);
        }
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, target))) = self.timers.pop() else {
                break;
            };
            if self.scheduled.get(&target) == Some(&at) {
                self.scheduled.remove(&target);
                self.evaluate(&target, now);
            }
        }
    }

    /// Follows a leadership channel: decisions are made only while it reads true.
    pub fn with_leadership(mut self, leader: watch::Receiver<bool>) -> Self {
        self.is_leader = *leader.borrow();
        self.leader = Some(leader);
        self
    }

    fn set_leader(&mut self, leading: bool) {
        if leading == self.is_leader {
            return;
        }
        self.is_leader = leading;
        self.metrics.leader.set(i64::from(leading));
        if leading {
            tracing::info!("became the leader: deciding and acting");
            let statuses: Vec<PolicyStatus> = self.status_latest.values().cloned().collect();
            for status in statuses {
                self.write_status(status);
            }
            let now = (self.clock)();
            let targets: Vec<Target> = self
                .stores
                .pods()
                .map(|p| Target::Pod(p.namespace.clone(), p.name.clone()))
                .chain(self.stores.nodes().map(|n| Target::Node(n.name.clone())))
                .collect();
            for t in targets {
                self.evaluate(&t, now);
            }
            self.apply_retention(now);
        } else {
            // The next leader decides on them afresh (and this replica too, if it leads again).
            self.waiting.clear();
            tracing::warn!("lost the leadership: deciding nothing until it is back");
        }
    }

    /// Replaces the clock (tests drive time by hand).
    pub fn with_clock(mut self, clock: fn() -> Secs) -> Self {
        self.clock = clock;
        self.clock_ms = None;
        self
    }

    /// The findings tracked on a target: (class, since, due reported).
    pub fn tracked(&self, target: &Target) -> Vec<(FailureClass, Secs, bool)> {
        self.tracked
            .get(target)
            .map(|v| v.iter().map(|t| (t.class, t.since, t.due_reported)).collect())
            .unwrap_or_default()
    }

    /// When the target is next evaluated, if a timer is set.
    pub fn next_wake(&self, target: &Target) -> Option<Secs> {
        self.scheduled.get(target).copied()
    }

    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// Fires the timers due at the clock's time (the run loop calls it when it wakes).
    pub fn fire_due_timers(&mut self) {
        self.fire_timers();
    }

    pub fn apply(&mut self, change: Change) {
        let now = (self.clock)();
        match change {
            Change::Pod(event) => self.apply_pod(*event, now),
            Change::Node(event) => self.apply_node(*event, now),
            Change::Event(event) => self.apply_event(*event, now),
            Change::Lease(event) => self.apply_lease(*event, now),
            Change::Policy(event) => self.apply_policy(*event, now),
            Change::Namespace(event) => self.apply_namespace(*event, now),
            Change::Record(event) => self.apply_record(*event, now),
        }
        self.metrics
            .store_objects
            .get_or_create(&Metrics::resource("pods"))
            .set(self.stores.pod_count() as i64);
        self.metrics
            .store_objects
            .get_or_create(&Metrics::resource("nodes"))
            .set(ClusterView::node_count(&self.stores) as i64);
        self.metrics
            .store_objects
            .get_or_create(&Metrics::resource("events"))
            .set(self.stores.events.len() as i64);
    }

    fn apply_pod(&mut self, event: W<k8s_openapi::api::core::v1::Pod>, now: Secs) {
        match event {
            W::Apply(pod) | W::InitApply(pod) => {
                let view = match pod_view(&pod, &mut self.stores.interner) {
                    Ok(v) => v,
                    Err(e) => return tracing::warn!(error = %e, "skipping an unreadable pod"),
                };
                let key = self.stores.upsert_pod(view, now);
                if let Some(seen) = &mut self.relist_pods {
                    seen.insert(key.clone());
                }
                self.evaluate(&Target::pod(&key), now);
            }
            W::Delete(pod) => {
                let key = PodKey {
                    namespace: self
                        .stores
                        .interner
                        .str(pod.metadata.namespace.as_deref().unwrap_or_default()),
                    name: pod.metadata.name.as_deref().unwrap_or_default().into(),
                };
                self.stores.remove_pod(&key);
                self.clear(&Target::pod(&key));
            }
            W::Init => self.relist_pods = Some(HashSet::new()),
            W::InitDone => {
                if let Some(seen) = self.relist_pods.take() {
                    for key in self.stores.retain_pods(&seen) {
                        self.clear(&Target::pod(&key));
                    }
                }
                self.synced.pods = true;
                self.publish_synced();
            }
        }
    }

    fn apply_node(&mut self, event: W<k8s_openapi::api::core::v1::Node>, now: Secs) {
        match event {
            W::Apply(node) | W::InitApply(node) => {
                let view = match node_view(&node, &mut self.stores.interner) {
                    Ok(v) => v,
                    Err(e) => return tracing::warn!(error = %e, "skipping an unreadable node"),
                };
                let name = view.name.clone();
                match crate::node_actions::avoid_expiry(&node) {
                    Some(until) => self.avoid_until.insert(name.clone(), until),
                    None => self.avoid_until.remove(&name),
                };
                let ready_changed = self.stores.upsert_node(view, now);
                if let Some(seen) = &mut self.relist_nodes {
                    seen.insert(name.clone());
                }
                self.evaluate(&Target::Node(name.clone()), now);
                if ready_changed {
                    self.evaluate_pods_on(&name, now);
                }
            }
            W::Delete(node) => {
                let name = self
                    .stores
                    .interner
                    .str(node.metadata.name.as_deref().unwrap_or_default());
                self.stores.remove_node(&name, now);
                self.clear(&Target::Node(name.clone()));
                self.evaluate_pods_on(&name, now);
            }
            W::Init => self.relist_nodes = Some(HashSet::new()),
            W::InitDone => {
                if let Some(seen) = self.relist_nodes.take() {
                    for name in self.stores.retain_nodes(&seen, now) {
                        self.clear(&Target::Node(name.clone()));
                        self.evaluate_pods_on(&name, now);
                    }
                }
                let first = !self.stores.nodes_synced;
                self.stores.nodes_synced = true;
                if first {
                    // Orphaned pods can only be judged once the nodes are known.
                    let targets: Vec<Target> = self
                        .stores
                        .pods()
                        .map(|p| Target::Pod(p.namespace.clone(), p.name.clone()))
                        .collect();
                    for t in targets {
                        self.evaluate(&t, now);
                    }
                }
                self.synced.nodes = true;
                self.publish_synced();
            }
        }
    }

    fn apply_event(&mut self, event: W<k8s_openapi::api::core::v1::Event>, now: Secs) {
        match event {
            W::Apply(e) | W::InitApply(e) => {
                let view = match event_view(&e, &mut self.stores.interner) {
                    Ok(v) => v,
                    Err(err) => return tracing::debug!(error = %err, "skipping an unreadable event"),
                };
                let target = match &*view.object.kind {
                    "Pod" => view
                        .object
                        .namespace
                        .clone()
                        .map(|ns| Target::Pod(ns, view.object.name.clone())),
                    "Node" => Some(Target::Node(view.object.name.clone())),
                    _ => None,
                };
                let Some(target) = target else { return };
                self.stores.add_event(view);
                self.evaluate(&target, now);
            }
            W::Delete(_) | W::Init => {}
            W::InitDone => {
                self.stores.events.prune(now);
                self.synced.events = true;
                self.publish_synced();
            }
        }
    }

    fn apply_lease(&mut self, event: W<k8s_openapi::api::coordination::v1::Lease>, now: Secs) {
        match event {
            W::Apply(l) | W::InitApply(l) => {
                let Ok(view) = lease_view(&l, &mut self.stores.interner) else {
                    return;
                };
                let node = view.node.clone();
                if let Some(seen) = &mut self.relist_leases {
                    seen.insert(node.clone());
                }
                self.stores.upsert_lease(view);
                self.evaluate(&Target::Node(node), now);
            }
            W::Delete(l) => {
                if let Some(name) = l.metadata.name.as_deref() {
                    self.stores.remove_lease(name);
                }
            }
            W::Init => self.relist_leases = Some(HashSet::new()),
            W::InitDone => {
                if let Some(seen) = self.relist_leases.take() {
                    self.stores.retain_leases(&seen);
                }
                self.synced.leases = true;
                self.publish_synced();
            }
        }
    }

    fn apply_policy(&mut self, event: W<kube::api::DynamicObject>, now: Secs) {
        match event {
            W::Apply(object) | W::InitApply(object) => {
                let name = object.metadata.name.clone().unwrap_or_default();
                if let Some(seen) = &mut self.relist_policies {
                    seen.insert(name.clone());
                }
                let policy = match crate::policies::decode(object) {
                    Ok(policy) => policy,
                    Err(unreadable) => return self.refuse_unreadable(unreadable, now),
                };
                let validity = match self.policies.upsert(&policy) {
                    Ok((kind, changed)) => {
                        if changed {
                            tracing::info!(policy = %name, generation = ?policy.metadata.generation, "policy loaded");
                            self.evaluate_kind(kind, now);
                            // Its records may have arrived before it.
                            self.apply_retention(now);
                        }
                        Ok(())
                    }
                    Err(e) => {
                        tracing::warn!(policy = %name, error = %e, "policy refused");
                        Err(e.to_string())
                    }
                };
                // Counted on from the status read back: another replica may have written it last.
                let observed = policy.status.as_ref().map_or((0, None), |s| {
                    (
                        s.actions_taken.unwrap_or(0),
                        s.last_action_time.as_ref().map(|t| t.0.as_second()),
                    )
                });
                let taken = self.taken.entry(name.clone()).or_default();
                if observed.0 > taken.0 {
                    *taken = observed;
                }
                let (actions_taken, last_action) = *taken;
                let status = PolicyStatus {
                    actions_taken,
                    last_action,
                    targets_matched: self.policies.count_targets(&name, &self.stores),
                    name,
                    generation: policy.metadata.generation,
                    validity,
                    suspended: policy.spec.safety.suspend,
                };
                self.write_status(status);
            }
            W::Delete(policy) => {
                let name = policy.metadata.name.unwrap_or_default();
                self.status_latest.remove(&name);
                self.status_sent.remove(&name);
                self.taken.remove(&name);
                self.waiting.remove(&name);
                if let Some(kind) = self.policies.remove(&name) {
                    tracing::info!(policy = %name, "policy removed");
                    self.evaluate_kind(kind, now);
                }
            }
            W::Init => self.relist_policies = Some(HashSet::new()),
            W::InitDone => {
                if let Some(seen) = self.relist_policies.take() {
                    self.policies.retain(&seen);
                }
                self.synced.policies = true;
                self.publish_synced();
            }
        }
    }

    /// A policy that cannot be read: whatever was loaded under its name stops, and its status
    /// says why.
    fn refuse_unreadable(&mut self, unreadable: crate::policies::Unreadable, now: Secs) {
        let crate::policies::Unreadable {
            name,
            generation,
            error,
        } = unreadable;
        tracing::warn!(policy = %name, %error, "policy cannot be read: refused");
        if let Some(kind) = self.policies.remove(&name) {
            self.evaluate_kind(kind, now);
        }
        self.waiting.remove(&name);
        let (actions_taken, last_action) = self.taken.get(&name).copied().unwrap_or_default();
        self.write_status(PolicyStatus {
            name,
            generation,
            validity: Err(format!(
                "the policy cannot be read ({error}); it may have been stored under an older schema: apply it again"
            )),
            suspended: false,
            targets_matched: 0,
            actions_taken,
            last_action,
        });
    }

    fn apply_namespace(&mut self, event: W<k8s_openapi::api::core::v1::Namespace>, now: Secs) {
        match event {
            W::Apply(ns) | W::InitApply(ns) => {
                let name = self
                    .stores
                    .interner
                    .str(ns.metadata.name.as_deref().unwrap_or_default());
                let labels = self.stores.interner.labels(ns.metadata.labels.as_ref());
                if self.policies.set_namespace(name.clone(), labels) && !self.policies.is_empty() {
                    let targets: Vec<Target> = self
                        .stores
                        .pods()
                        .filter(|p| p.namespace == name)
                        .map(|p| Target::Pod(p.namespace.clone(), p.name.clone()))
                        .collect();
                    for t in targets {
                        self.evaluate(&t, now);
                    }
                }
            }
            W::Delete(ns) => self
                .policies
                .remove_namespace(ns.metadata.name.as_deref().unwrap_or_default()),
            W::Init => {}
            W::InitDone => {
                self.synced.namespaces = true;
                self.publish_synced();
            }
        }
    }

    /// Records a policy's status and sends it to the writer if this replica leads and it differs
    /// from the last one sent.
    fn write_status(&mut self, status: PolicyStatus) {
        self.status_latest.insert(status.name.clone(), status.clone());
        let Some(tx) = &self.status_tx else { return };
        if !self.is_leader || self.status_sent.get(&status.name) == Some(&status) {
            return;
        }
        if tx.send(status.clone()).is_ok() {
            self.status_sent.insert(status.name.clone(), status);
        }
    }

    /// The operator-wide dry run and pause.
    pub fn with_switches(mut self, dry_run: bool, paused: bool) -> Self {
        self.global_dry_run = dry_run;
        self.paused = paused;
        self
    }

    /// Namespaces no policy touches unless it names them (default: kube-system).
    pub fn with_protected_namespaces(mut self, namespaces: Vec<String>) -> Self {
        self.policies.set_protected_namespaces(namespaces);
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

    /// Decides on one policy condition due on a target, sends the decision to the executor, and
    /// returns when to look again.
    fn decide(&mut self, target: &Target, due: DueMatch, now: Secs) -> Option<Secs> {
        self.refresh_correlation();
        let policy = self.policies.get(&due.policy)?.policy.clone();
        let finding = &due.finding;
        let steps = policy.spec.actions.len();
        let key = (due.policy.clone(), target.clone());
        let for_secs = self
            .policies
            .get(&due.policy)
            .map_or(0, |p| p.conditions[due.condition].for_secs);
        let opted_out = self.opted_out(target);
        let facts = Facts {
            now,
            paused: self.paused,
            global_dry_run: self.global_dry_run,
            opted_out,
            correlated: self
                .correlated
                .iter()
                .find(|c| c.covers(finding))
                .map(|c| c.message.clone()),
            unhealthy_nodes: (policy.spec.target.kind == kube_healer_api::TargetKind::Node)
                .then(|| self.unhealthy_nodes(&due.policy)),
        };
        let mut ladder = self
            .ladders
            .get(&key)
            .filter(|l| l.episode == finding.since)
            .cloned()
            .unwrap_or_else(|| Ladder::new(finding.since));
        let budget = self.budgets.entry(due.policy.clone()).or_default();
        budget.recent.retain(|t| *t > now - 86400);
        let mut decision = decide(&policy.spec, finding.due_at(for_secs), &ladder, budget, &facts);
        if let Decision::Act { step, action, .. } = decision
            && let Some(message) = self.unsafe_for(target, finding, action)
        {
            decision = Decision::Hold {
                step,
                action,
                reason: reasons::UNSAFE,
                message,
                retry_at: None,
            };
        }
        let budget = self.budgets.entry(due.policy.clone()).or_default();
        let mut before = None;
        let (step, action, hold, dry_run, retry) = match decision {
            Decision::Wait { until } => return Some(until),
            Decision::Act {
                step,
                action,
                dry_run,
            } => {
                before = ladder.last_action;
                ladder.acted(step, steps, now);
                budget.recent.push(now);
                if !dry_run {
                    budget.in_flight += 1;
                }
                let again = now + policy.spec.actions[step].escalate_after().as_std().as_secs() as Secs;
                (step, action, None, dry_run, Some(again))
            }
            Decision::Hold {
                reason: reasons::MAX_CONCURRENT,
                ..
            } => {
                // Not held back, only queued: decided again as soon as one of the policy's
                // actions in flight ends (a bulk clean-up must not leave a Skipped record per
                // target, nor wait for the target to change).
                self.waiting.entry(due.policy.clone()).or_default().push(target);
                return None;
            }
            Decision::Hold {
                step,
                action,
                reason,
                message,
                retry_at,
            } => {
                let held = (due.policy.clone(), target.clone(), finding.since, step, reason);
                if !self.held.insert(held) {
                    return retry_at;
                }
                (
                    step,
                    action,
                    Some((reason, message)),
                    policy.spec.safety.dry_run,
                    retry_at,
                )
            }
        };
        let attempt = ladder.attempts;
        self.ladders.insert(key, ladder);
        let owner = match target {
            Target::Pod(ns, name) => self
                .stores
                .pod_at(ns, name)
                .and_then(|p| p.owner_name.as_ref().map(|n| (p.owner, n.to_string()))),
            Target::Node(_) => None,
        };
        let cooldown = policy
            .spec
            .safety
            .cooldown
            .unwrap_or(kube_healer_api::policy::Safety::DEFAULT_COOLDOWN);
        let name = record_name(
            &due.policy,
            &finding.subject.uid,
            finding.since,
            step,
            attempt,
            hold.as_ref().map(|h| h.0),
        );
        let spec = HealingActionSpec {
            policy: due.policy.clone(),
            policy_generation: policy.metadata.generation,
            target: finding.subject.target_ref(),
            class: finding.class,
            action,
            step: step as i32 + 1,
            dry_run,
            failing_since: Some(kube_healer_core::finding::time(finding.since)),
            decided_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ),
            evidence: finding.evidence.clone(),
        };
        tracing::info!(policy = %due.policy, target = %finding.subject, class = %finding.class, %action, step = step + 1, dry_run,
            hold = ?hold.as_ref().map(|h| h.0), "decision");
        if let Some(tx) = &self.action_tx {
            let _ = tx.send(Work::Act(Box::new(ActionRequest {
                name,
                spec,
                step: policy.spec.actions[step].clone(),
                hold,
                owner,
                cooldown: cooldown.as_std(),
                before,
                due_ms: (step == 0).then_some(due.due_ms),
            })));
        }
        retry
    }

    /// A policy's failure cleared on a target: its ladder ends, and on a node what the policy
    /// changed (a cordon, a taint) is reverted, if kube-healer made it.
    fn recovered(&mut self, target: &Target, policy: String) {
        let Some(ladder) = self.ladders.remove(&(policy.clone(), target.clone())) else {
            return;
        };
        if ladder.attempts == 0 || !self.is_leader {
            return;
        }
        if let Target::Node(node) = target {
            tracing::info!(%policy, node = %node, "failure cleared: reverting what the policy changed");
            if let Some(tx) = &self.action_tx {
                let _ = tx.send(Work::Revert {
                    policy,
                    node: node.to_string(),
                });
            }
        }
    }

    /// Whether the target carries the opt-out annotation (fresh state, right before acting).
    fn opted_out(&self, target: &Target) -> bool {
        match target {
            Target::Pod(ns, name) => self.stores.pod_at(ns, name).is_some_and(|p| p.opted_out),
            Target::Node(name) => self.stores.node_view(name).is_some_and(|n| n.opted_out),
        }
    }

    /// Why the decided action is unsafe for this target now, if it is: ForceDelete only past the
    /// deletionTimestamp, and a StatefulSet pod only when its node is confirmed gone; Reschedule
    /// only a pod its controller recreates elsewhere; RestartOwner only a workload's pod.
    fn unsafe_for(&self, target: &Target, finding: &Finding, action: ActionKind) -> Option<String> {
        let Target::Pod(ns, name) = target else {
            return None;
        };
        let pod = self.stores.pod_at(ns, name)?;
        match action {
            ActionKind::ForceDelete => {
                let now = (self.clock)();
                if pod.deletion().is_none_or(|d| d > now) {
                    return Some(format!(
                        "{} is not past its deletionTimestamp: ForceDelete waits for it",
                        finding.subject
                    ));
                }
                if pod.owner == OwnerKind::StatefulSet {
                    let node_gone = match pod.node.as_deref() {
                        None => true,
                        Some(n) => self
                            .stores
                            .node_view(n)
                            .is_none_or(|v| v.has_taint("node.kubernetes.io/out-of-service")),
                    };
                    if !node_gone {
                        return Some(format!(
                            "{} belongs to a StatefulSet and its node is not confirmed gone (deleted, or tainted node.kubernetes.io/out-of-service)",
                            finding.subject
                        ));
                    }
                }
                None
            }
            ActionKind::Reschedule => crate::pod_actions::rescheduled_by_controller(pod.owner)
                .err()
                .map(|why| format!("{}: {why}", finding.subject)),
            ActionKind::RestartOwner => crate::pod_actions::restartable_owner(pod.owner)
                .err()
                .map(|why| format!("{}: {why}", finding.subject)),
            _ => None,
        }
    }

    /// (NotReady or unreachable nodes, nodes) among those the policy selects.
    fn unhealthy_nodes(&self, policy: &str) -> (usize, usize) {
        let Some(compiled) = self.policies.get(policy) else {
            return (0, 0);
        };
        let mut selected = 0;
        let mut down = 0;
        for node in self.stores.nodes().filter(|n| compiled.selects_node(n)) {
            selected += 1;
            let unhealthy = self
                .tracked
                .get(&Target::Node(node.name.clone()))
                .is_some_and(|f| {
                    f.iter().any(|f| {
                        matches!(
                            f.class,
                            FailureClass::NodeNotReady | FailureClass::NodeUnreachable
                        )
                    })
                });
            down += usize::from(unhealthy);
        }
        (down, selected)
    }

    /// Writes policy statuses through `tx` (the leader's duty).
    pub fn with_status_writer(mut self, tx: mpsc::UnboundedSender<PolicyStatus>) -> Self {
        self.status_tx = Some(tx);
        self
    }

    /// Re-evaluates every target of a kind (after a policy change).
    fn evaluate_kind(&mut self, kind: kube_healer_api::TargetKind, now: Secs) {
        let targets: Vec<Target> = match kind {
            kube_healer_api::TargetKind::Pod => self
                .stores
                .pods()
                .map(|p| Target::Pod(p.namespace.clone(), p.name.clone()))
                .collect(),
            kube_healer_api::TargetKind::Node => self
                .stores
                .nodes()
                .map(|n| Target::Node(n.name.clone()))
                .collect(),
        };
        for t in targets {
            self.evaluate(&t, now);
        }
    }

    /// The policy conditions holding on a target.
    pub fn policy_matches(&self, target: &Target) -> &[crate::policies::Match] {
        self.policies.matches(target)
    }

    fn publish_synced(&self) {
        self.synced_tx.send_replace(self.synced);
        if self.synced.all() {
            tracing::info!(
                pods = self.stores.pod_count(),
                nodes = ClusterView::node_count(&self.stores),
                "stores synced"
            );
        }
    }

    fn evaluate_pods_on(&mut self, node: &str, now: Secs) {
        for key in self.stores.pod_keys_on(node) {
            self.evaluate(&Target::pod(&key), now);
        }
    }

    /// Classifies one target at `now`, updates the tracked findings, and schedules the next wake.
    pub fn evaluate(&mut self, target: &Target, now: Secs) {
        let mut findings: Vec<Finding> = Vec::new();
        let mut next_change: Option<Secs> = None;
        match target {
            Target::Pod(ns, name) => {
                let Some(pod) = self.stores.pod_at(ns, name) else {
                    return self.clear(target);
                };
                classify_pod(pod, &self.stores, &self.knobs, now, &mut findings);
                if let Some(deadline) = pod.deletion().filter(|d| *d > now) {
                    next_change = Some(deadline);
                }
                // A pod that stops starting may make its node a black hole.
                if let (Some(node), Some(since)) = (pod.node.clone(), unstarted_since(pod)) {
                    let at = since + self.knobs.blackhole_pod_age;
                    if at > now {
                        self.schedule(Target::Node(node), at);
                    } else if !self
                        .tracked
                        .get(&Target::Node(node.clone()))
                        .is_some_and(|t| t.iter().any(|f| f.class == FailureClass::NodeBlackHole))
                    {
                        self.schedule(Target::Node(node), now);
                    }
                }
            }
            Target::Node(name) => {
                let Some(node) = self.stores.node_view(name) else {
                    return self.clear(target);
                };
                classify_node(node, &self.stores, &self.knobs, now, &mut findings);
                if let Some(&until) = self.avoid_until.get(name) {
                    if until > now {
                        next_change = Some(until);
                    } else if self.is_leader
                        && let Some(tx) = &self.action_tx
                    {
                        // Sent once; the node's next update brings the taint back here if it stayed.
                        self.avoid_until.remove(name);
                        let _ = tx.send(Work::Unavoid {
                            node: name.to_string(),
                        });
                    }
                }
                if let Some(renewed) = self.stores.lease_renewed(name) {
                    let late_at = renewed + self.knobs.heartbeat_lease_age;
                    if late_at > now {
                        next_change = Some(late_at);
                    }
                }
            }
        }

        let previous = self.tracked.remove(target).unwrap_or_default();
        let mut current: Vec<Tracked> = Vec::with_capacity(findings.len());
        for f in &findings {
            let old = previous.iter().find(|t| t.class == f.class);
            if old.is_none() {
                self.metrics
                    .findings
                    .get_or_create(&Metrics::class(f.class))
                    .inc();
                tracing::debug!(class = %f.class, target = %f.subject, since = f.since, evidence = %f.evidence.summary, "finding detected");
            }
            let mut tracked = Tracked {
                class: f.class,
                since: f.since,
                due_reported: old.is_some_and(|o| o.due_reported && o.since == f.since),
            };
            let due = f.due_at(default_for(f.class));
            if due <= now {
                if !tracked.due_reported {
                    tracked.due_reported = true;
                    self.metrics
                        .findings_due
                        .get_or_create(&Metrics::class(f.class))
                        .inc();
                    tracing::info!(class = %f.class, target = %f.subject, since = f.since, evidence = %f.evidence.summary, "finding due");
                }
            } else {
                next_change = Some(next_change.map_or(due, |n| n.min(due)));
            }
            current.push(tracked);
        }
        for old in &previous {
            if !current.iter().any(|t| t.class == old.class) {
                self.metrics
                    .findings
                    .get_or_create(&Metrics::class(old.class))
                    .dec();
                tracing::debug!(class = %old.class, target = ?target, "finding cleared");
            }
        }
        if !current.is_empty() {
            self.tracked.insert(target.clone(), current);
        }
        self.update_correlation(target, &findings);
        let evaluation = self.policies.evaluate(
            target,
            &findings,
            &self.stores,
            &self.metrics,
            now,
            self.is_leader,
        );
        if let Some(due) = evaluation.next {
            next_change = Some(next_change.map_or(due, |n| n.min(due)));
        }
        for policy in evaluation.cleared {
            self.recovered(target, policy);
        }
        let due_now = evaluation.due_now;
        for due in due_now {
            if let Some(at) = self.decide(target, due, now) {
                next_change = Some(next_change.map_or(at, |n| n.min(at)));
            }
        }
        if let Some(at) = next_change {
            self.schedule(target.clone(), at);
        }
    }

    /// Keeps the correlated causes current: one registry failing pulls on many nodes, many
    /// nodes down together. Recomputed only when a target's relevant findings change.
    fn update_correlation(&mut self, target: &Target, findings: &[Finding]) {
        let relevant: Vec<Finding> = findings
            .iter()
            .filter(|f| {
                matches!(
                    f.class,
                    FailureClass::ImagePullFailure
                        | FailureClass::NodeNotReady
                        | FailureClass::NodeUnreachable
                )
            })
            .cloned()
            .collect();
        let previous = self.correlation_inputs.get(target);
        let same = |a: &[Finding], b: &[Finding]| {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| x.class == y.class && x.since == y.since)
        };
        if previous.map_or(relevant.is_empty(), |p| same(p, &relevant)) {
            return;
        }
        if relevant.is_empty() {
            self.correlation_inputs.remove(target);
        } else {
            self.correlation_inputs.insert(target.clone(), relevant);
        }
        self.correlation_dirty = true;
    }

    /// Recomputes the correlated causes if their inputs changed: at most once a second, and
    /// before any decision; never once per change (its cost grows with the failing targets, and
    /// a start-up list of thousands of failing pods would make that quadratic).
    fn refresh_correlation(&mut self) {
        if !self.correlation_dirty {
            return;
        }
        self.correlation_dirty = false;
        let now_correlated = kube_healer_core::classify::correlate(
            self.correlation_inputs.values().flatten(),
            ClusterView::node_count(&self.stores),
            &self.knobs,
        );
        for c in &now_correlated {
            if !self.correlated.iter().any(|old| old.cause == c.cause) {
                tracing::warn!(cause = ?c.cause, members = c.members.len(), message = %c.message, "correlated finding: per-target actions are held");
            }
        }
        for old in &self.correlated {
            if !now_correlated.iter().any(|c| c.cause == old.cause) {
                tracing::info!(cause = ?old.cause, "correlated finding cleared");
            }
        }
        self.metrics.correlated.set(now_correlated.len() as i64);
        self.correlated = now_correlated;
    }

    /// The correlated causes in force.
    pub fn correlated(&mut self) -> &[kube_healer_core::Correlated] {
        self.refresh_correlation();
        &self.correlated
    }

    fn schedule(&mut self, target: Target, at: Secs) {
        if self
            .scheduled
            .get(&target)
            .is_some_and(|&existing| existing <= at)
        {
            return;
        }
        self.scheduled.insert(target.clone(), at);
        self.timers.push(Reverse((at, target)));
    }

    fn clear(&mut self, target: &Target) {
        self.policies.forget(target);
        self.update_correlation(target, &[]);
        if let Some(previous) = self.tracked.remove(target) {
            for old in previous {
                self.metrics
                    .findings
                    .get_or_create(&Metrics::class(old.class))
                    .dec();
                tracing::debug!(class = %old.class, target = ?target, "finding cleared: target gone");
            }
        }
        self.scheduled.remove(target);
    }
}
