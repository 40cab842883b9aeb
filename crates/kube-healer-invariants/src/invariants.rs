//! The safety model, written once as invariants and judged on the simulated cluster's truth
//! (what really failed, and why), never on what kube-healer saw. Each is checked at the moment
//! it can be broken: when a request is sent, right before a call changes the cluster, right
//! after it, when a hold is lifted, and at the end of the history (liveness).

use std::collections::BTreeMap;
use std::fmt;

use kube_healer_api::{ActionKind, TargetKind};
use kube_healer_core::view::Secs;
use kube_healer_operator::protocol::ActionRequest;
use serde::Serialize;

use crate::objects;
use crate::world::{SimPod, World};

/// How many records one engine may write for one policy and one episode of a shared cause of
/// pods: one names the cause; a cause that ends and forms again within the episode (its pods
/// replaced, seen again) writes another.
const RECORDS_PER_CAUSE: usize = 3;

/// One invariant of the safety model (README, "Safety model").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Invariant {
    /// No node action takes the cluster past its disruption budget, counting every node out
    /// of service, whoever took it out.
    DisruptionBudget,
    /// No action on a node under planned disruption (cordoned by a person), nor on the pods it
    /// took down with it.
    PlannedDisruption,
    /// No action decided from unsynced or stale data: every call is made on a target that
    /// truly fails, by an operator whose watches have all listed.
    FreshData,
    /// No action on a member of a cause shared by many nodes (as many as the README's rule
    /// counts as one cause), or on their pods.
    CorrelatedNodes,
    /// No action on a pod whose trouble is a cause shared by many workloads, and the records a
    /// cause's held pods write stay bounded (one per policy, not one per pod).
    CorrelatedPods,
    /// A hold (cordon or taint) is lifted only after its node was seen healthy for the debounce.
    LiftOnEvidence,
    /// kube-healer lifts only what it placed, and never takes another's cordon as its own.
    OnlyOwnMarks,
    /// No removal of a pod whose replacement takes its identity without waiting for its kubelet,
    /// unless its node is confirmed gone.
    Fencing,
    /// Rate limits hold across restarts and failovers, and no decision is carried out twice.
    Limits,
    /// No more of one workload's pods are being replaced by kube-healer at once than the
    /// policy's maxDisruptedPerWorkload allows, counted on the cluster's truth, across restarts
    /// and failovers.
    WorkloadLimit,
    /// No PodDisruptionBudget broken by Delete or Evict: a pod they remove is one the Eviction
    /// API would let go (whichever way the call went).
    PodDisruptionBudget,
    /// Every change to the cluster has its record, written before it.
    Recorded,
    /// A lone failure with no cause, no maintenance and room in its limits is healed within
    /// its policy's time.
    Liveness,
}

impl Invariant {
    pub const ALL: &[Invariant] = &[
        Invariant::DisruptionBudget,
        Invariant::PlannedDisruption,
        Invariant::FreshData,
        Invariant::CorrelatedNodes,
        Invariant::CorrelatedPods,
        Invariant::LiftOnEvidence,
        Invariant::OnlyOwnMarks,
        Invariant::Fencing,
        Invariant::Limits,
        Invariant::WorkloadLimit,
        Invariant::PodDisruptionBudget,
        Invariant::Recorded,
        Invariant::Liveness,
    ];

    /// The open issue whose rule this invariant waits for (its violations are counted, and do
    /// not fail the quick run, until then).
    pub fn awaits(self) -> Option<u32> {
        match self {
            Invariant::LiftOnEvidence
            | Invariant::DisruptionBudget
            | Invariant::PlannedDisruption
            | Invariant::OnlyOwnMarks
            | Invariant::FreshData
            | Invariant::CorrelatedPods
            | Invariant::CorrelatedNodes
            | Invariant::Fencing
            | Invariant::Limits
            | Invariant::WorkloadLimit
            | Invariant::PodDisruptionBudget
            | Invariant::Recorded
            | Invariant::Liveness => None,
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// An invariant broken: which, when, and what happened.
#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    pub invariant: Invariant,
    pub at: Secs,
    pub what: String,
}

/// The invariants' memory across a history: what was carried out, by policy and record.
#[derive(Default)]
pub struct Judge {
    pub violations: Vec<Violation>,
    /// Calls made, by policy: when.
    calls: BTreeMap<String, Vec<Secs>>,
    /// Records whose decision was carried out.
    carried: std::collections::BTreeSet<String>,
    /// Pods removed for their workload's controller to replace, by workload.
    removals: BTreeMap<usize, Vec<kube_healer_core::decide::Removal>>,
    /// Records of pods held for a shared cause, by (policy, cause, its episode, the engine that
    /// wrote them).
    held_for_cause: BTreeMap<(String, u32, u32, u32), usize>,
    /// The cluster-wide disruption budget, as a node count.
    pub budget: usize,
    pub debounce: Secs,
}

/// The world's key of a request's pod target.
pub fn pod_key(req: &ActionRequest) -> String {
    let t = &req.spec.target;
    format!("{}/{}", t.namespace.as_deref().unwrap_or_default(), t.name)
}

impl Judge {
    pub fn new(budget: usize, debounce: Secs) -> Judge {
        Judge {
            budget,
            debounce,
            ..Default::default()
        }
    }

    fn broke(&mut self, invariant: Invariant, at: Secs, what: String) {
        self.violations.push(Violation { invariant, at, what });
    }

    /// A request sent to the executor: never a real one before every watch has listed.
    pub fn on_request(&mut self, req: &ActionRequest, synced: bool, now: Secs) {
        if req.in_flight() && !synced {
            self.broke(
                Invariant::FreshData,
                now,
                format!(
                    "{} {} decided before every watch had listed",
                    req.spec.action, req.spec.target.reference
                ),
            );
        }
    }

    /// Right before a call that changes the cluster, on the world as it truly is.
    pub fn before_call(&mut self, world: &World, req: &ActionRequest) {
        let now = world.now;
        let spec = &req.spec;
        let what = format!("{} {} by {}", spec.action, spec.target.reference, spec.policy);
        if !world.records.contains_key(&req.name) {
            self.broke(
                Invariant::Recorded,
                now,
                format!("{what} without its record {}", req.name),
            );
        }
        if !self.carried.insert(req.name.clone()) {
            self.broke(
                Invariant::Limits,
                now,
                format!("{what}: decision {} carried out twice", req.name),
            );
        }
        self.rate(world, req, &what);
        match spec.target.kind {
            TargetKind::Node => self.before_node_call(world, req, &what),
            TargetKind::Pod => self.before_pod_call(world, req, &what),
        }
    }

    /// The policy's rate limit, over every call made in its window (whichever process made it).
    fn rate(&mut self, world: &World, req: &ActionRequest, what: &str) {
        let now = world.now;
        let policy = &req.spec.policy;
        let calls = self.calls.entry(policy.clone()).or_default();
        calls.push(now);
        let Some(rate) = world
            .policies
            .get(policy)
            .and_then(|p| p.spec.safety.rate.clone())
        else {
            return;
        };
        let per = rate.per.as_std().as_secs() as Secs;
        let within = calls.iter().filter(|&&t| t > now - per).count();
        if within > rate.actions as usize {
            self.broke(
                Invariant::Limits,
                now,
                format!(
                    "{what}: {within} calls within {per}s, the policy's rate allows {}",
                    rate.actions
                ),
            );
        }
    }

    fn before_node_call(&mut self, world: &World, req: &ActionRequest, what: &str) {
        let now = world.now;
        let Some(node) = world.nodes.get(&req.spec.target.name) else {
            return;
        };
        match node.down {
            None if node.problem.is_none() => {
                self.broke(Invariant::FreshData, now, format!("{what}: the node is healthy"))
            }
            None => {}
            // A cause explains its members' down failures; a node's own failure that began
            // before (a KernelDeadlock, with the node down with its zone since) is not the
            // cause's, and acting on it takes no node out that was in service.
            Some((_, crate::world::Cause::Shared(c)))
                if world.many_nodes(c)
                    && kube_healer_core::decide::DOWN_CLASSES.contains(&req.spec.class) =>
            {
                self.broke(
                    Invariant::CorrelatedNodes,
                    now,
                    format!("{what}: the node is down with its zone (cause {c})"),
                )
            }
            Some(_) => {}
        }
        if node.person_cordon {
            self.broke(
                Invariant::PlannedDisruption,
                now,
                format!("{what}: a person cordoned the node"),
            );
        }
    }

    fn before_pod_call(&mut self, world: &World, req: &ActionRequest, what: &str) {
        let now = world.now;
        let key = pod_key(req);
        let Some(pod) = world.pods.get(&key) else {
            return;
        };
        if pod.obj.metadata.uid.as_deref() != Some(req.spec.target.uid.as_str()) {
            return;
        }
        if !world.pod_in_trouble(&key) {
            self.broke(Invariant::FreshData, now, format!("{what}: the pod runs fine"));
        }
        let node = pod
            .obj
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(|n| world.nodes.get(n));
        if let Some(node) = node.filter(|n| {
            n.person_cordon && n.down.is_some() && !matches!(pod.trouble, crate::world::Trouble::Evicted(_))
        }) {
            self.broke(
                Invariant::PlannedDisruption,
                now,
                format!(
                    "{what}: its node {} is down under a person's cordon (maintenance)",
                    node.obj.metadata.name.as_deref().unwrap_or_default()
                ),
            );
        }
        self.workload_limit(world, req, pod, what);
        if let Some(cause) = world.pod_cause(&key) {
            let node_cause = !world.node_up_for(pod);
            let invariant = if node_cause {
                Invariant::CorrelatedNodes
            } else {
                Invariant::CorrelatedPods
            };
            self.broke(
                invariant,
                now,
                format!("{what}: its trouble has a shared cause ({cause})"),
            );
        }
    }

    /// A pod taken from its workload for the controller to replace: the workload's removals
    /// whose replacement has not yet shown its fate (every pod of the simulated cluster shows it
    /// at once: Ready, or crashing) stay under the policy's maxDisruptedPerWorkload.
    fn workload_limit(&mut self, world: &World, req: &ActionRequest, pod: &SimPod, what: &str) {
        let spec = &req.spec;
        let live = pod.deleting.is_none() && !matches!(pod.trouble, crate::world::Trouble::Evicted(_));
        if !live || !kube_healer_core::decide::disrupts_workload(spec.class, spec.action) {
            return;
        }
        let Some(policy) = world.policies.get(&spec.policy) else {
            return;
        };
        let created = |p: &SimPod| {
            p.obj
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(0, |t| t.0.as_second())
        };
        let siblings: Vec<&SimPod> = world
            .pods
            .values()
            .filter(|p| p.workload == pod.workload && p.deleting.is_none())
            .collect();
        // Only calls that took their pod count (one refused by an API error took nothing): the
        // rule may count more, never fewer.
        let live = |uid: &str| {
            world
                .pods
                .values()
                .any(|p| p.deleting.is_none() && p.obj.metadata.uid.as_deref() == Some(uid))
        };
        let removals = self.removals.entry(pod.workload).or_default();
        let taken: Vec<kube_healer_core::decide::Removal> =
            removals.iter().filter(|r| !live(&r.pod)).cloned().collect();
        // The share is of the workload's size, its ReplicaSet's replicas: a pod being deleted
        // by a removal is one of them until replaced.
        let w = kube_healer_core::decide::WorkloadPods {
            workload: String::new(),
            pods: world
                .workloads
                .get(pod.workload)
                .map_or(siblings.len(), |w| w.replicas),
            removals: taken,
            settled: siblings
                .iter()
                .map(|p| (p.obj.metadata.uid.clone().unwrap_or_default(), created(p)))
                .collect(),
        };
        let limit = kube_healer_core::decide::max_disrupted(&policy.spec.safety, w.pods);
        let replacing = w.replacing(world.now).len();
        // A call tried again (after an API error) is the same removal.
        let uid = pod.obj.metadata.uid.clone().unwrap_or_default();
        if !removals.iter().any(|r| r.pod == uid) {
            removals.push(kube_healer_core::decide::Removal {
                at: world.now,
                pod: uid,
                pod_created: created(pod),
            });
        }
        if replacing >= limit {
            self.broke(
                Invariant::WorkloadLimit,
                world.now,
                format!(
                    "{what}: {replacing} of the workload's pods being replaced already, the limit is {limit}"
                ),
            );
        }
    }

    /// A record written: a shared cause's pods held are recorded once per policy (by the first
    /// held member), whatever the cause's size, by each engine (a restarted one may not know
    /// the record its predecessor wrote names the cause).
    pub fn on_recorded(&mut self, world: &World, req: &ActionRequest, engine: u32) {
        let held = req
            .hold
            .as_ref()
            .is_some_and(|h| h.reason == kube_healer_api::reasons::HoldReason::Correlated);
        // Only a failure pods-alike causes group: a pod lost with its node is held by the
        // node's cause, which records each held target once by design, whatever the pod's own
        // trouble turns out to be once the node is back (a lagging engine decides on the lost
        // pod after the world has moved on).
        let grouped = req.spec.class.properties().family == Some(kube_healer_api::Family::PodsAlike);
        if !held || !grouped || req.spec.target.kind != TargetKind::Pod {
            return;
        }
        let Some(pod) = world.pods.get(&pod_key(req)) else {
            return;
        };
        let crate::world::Trouble::Crashing(_, crate::world::Cause::Shared(cause)) = pod.trouble else {
            return;
        };
        if !world.node_up_for(pod) {
            return;
        }
        let episode = world.cause_episodes.get(&cause).copied().unwrap_or(0);
        let count = self
            .held_for_cause
            .entry((req.spec.policy.clone(), cause, episode, engine))
            .or_default();
        *count += 1;
        let count = *count;
        if count > RECORDS_PER_CAUSE {
            self.broke(
                Invariant::CorrelatedPods,
                world.now,
                format!(
                    "{} records of {} for cause {cause} (episode {episode}) by one engine, the latest for {}",
                    count, req.spec.policy, req.spec.target.reference
                ),
            );
        }
    }

    /// A pod removed by Delete or Evict: one the Eviction API lets go (`eviction`, its answer
    /// on the cluster's truth right before the removal), whichever way the call went.
    pub fn budget_kept(&mut self, world: &World, req: &ActionRequest, eviction: Result<(), String>) {
        let action = req.spec.action;
        if !matches!(action, ActionKind::Delete | ActionKind::Evict) {
            return;
        }
        if let Err(refusal) = eviction {
            self.broke(
                Invariant::PodDisruptionBudget,
                world.now,
                format!(
                    "{action} {} by {}: {refusal}",
                    req.spec.target.reference, req.spec.policy
                ),
            );
        }
    }

    /// A pod removed without waiting for its kubelet: one whose replacement takes its identity
    /// (a StatefulSet's) only once its node is confirmed gone (deleted, or tainted out of
    /// service). A ReplicaSet's pod on a silent node may go (README, "ForceDelete").
    pub fn forced(&mut self, world: &World, req: &ActionRequest, pod: &SimPod) {
        if !world.stateful(pod) {
            return;
        }
        let node = pod.obj.spec.as_ref().and_then(|s| s.node_name.as_deref());
        let Some(node) = node.and_then(|n| world.nodes.get(n)) else {
            return;
        };
        let shut_down = node
            .obj
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|ts| {
                ts.iter()
                    .any(|t| t.key == kube_healer_core::decide::OUT_OF_SERVICE)
            });
        if !shut_down {
            self.broke(
                Invariant::Fencing,
                world.now,
                format!(
                    "{} {} (a StatefulSet's) removed at once while its node {} still exists",
                    req.spec.action,
                    req.spec.target.reference,
                    node.obj.metadata.name.as_deref().unwrap_or_default()
                ),
            );
        }
    }

    /// After a call that may take a node out of service: the budget counts every node out.
    pub fn after_node_call(&mut self, world: &World, req: &ActionRequest, was_out: bool) {
        let takes_out = req.spec.action.properties().takes_node_out;
        let out = world.nodes_out_of_service();
        if takes_out && !was_out && out > self.budget {
            self.broke(
                Invariant::DisruptionBudget,
                world.now,
                format!(
                    "{} {}: {out} nodes out of service, the budget is {}",
                    req.spec.action, req.spec.target.reference, self.budget
                ),
            );
        }
    }

    /// A policy let go of a node: `lifted` says whether its cordon or a taint came off.
    pub fn on_revert(&mut self, world: &World, node: &str, policy: &str, lifted: bool) {
        let now = world.now;
        let Some(n) = world.nodes.get(node) else {
            return;
        };
        if n.person_cordon && !objects::unschedulable(&n.obj) {
            self.broke(
                Invariant::OnlyOwnMarks,
                now,
                format!("{policy} lifted the cordon a person put on {node}"),
            );
        }
        if !lifted {
            return;
        }
        if n.failing(&world.policies) {
            self.broke(
                Invariant::LiftOnEvidence,
                now,
                format!(
                    "{policy} lifted its hold on {node}, which is down or reports {}",
                    objects::PROBLEM
                ),
            );
        } else if now - n.healthy_since() < self.debounce {
            self.broke(
                Invariant::LiftOnEvidence,
                now,
                format!(
                    "{policy} lifted its hold on {node}, healthy for {}s only",
                    now - n.healthy_since()
                ),
            );
        }
    }

    /// A cordon claimed: never another's.
    pub fn on_cordon(&mut self, world: &World, req: &ActionRequest, person_before: bool) {
        let Some(n) = world.nodes.get(&req.spec.target.name) else {
            return;
        };
        let owners = kube_healer_core::convert::cordon_owners(n.obj.metadata.annotations.as_ref());
        if person_before && owners.contains(&req.spec.policy.as_str()) {
            self.broke(
                Invariant::OnlyOwnMarks,
                world.now,
                format!(
                    "{} marked the cordon a person put on {} as its own",
                    req.spec.policy, req.spec.target.name
                ),
            );
        }
    }

    pub fn liveness(&mut self, now: Secs, what: String) {
        self.broke(Invariant::Liveness, now, what);
    }
}
