//! The simulated cluster: its objects, the changes its watches deliver, and the truth behind
//! them (which failures were made, and which share a cause), which kube-healer never sees and
//! the invariants judge it by. What a controller of the control plane would do (a ReplicaSet
//! replacing its pods, the node lifecycle controller marking the pods of a silent node not
//! Ready, a kubelet finishing a graceful delete) the world does itself, after every step.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::Event as W;
use kube_healer_api::{HealingAction, HealingPolicy};
use kube_healer_core::view::Secs;
use kube_healer_operator::watch::Change;

use crate::objects::{self, PodStatus, Said};

/// The namespace the workloads run in.
pub const NS: &str = "shop";

/// What a failure shares with others: nothing, or one cause behind all of them (a zone cut
/// off, a dependency every workload needs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cause {
    Alone,
    Shared(u32),
}

#[derive(Clone, Debug)]
pub struct SimNode {
    pub obj: Node,
    pub zone: usize,
    /// Down (its kubelet silent) since, and why.
    pub down: Option<(Secs, Cause)>,
    /// Cordoned by a person (kube-healer must never take it over, nor lift it).
    pub person_cordon: bool,
    /// Up and posting since (meaningful while not down).
    pub up_since: Secs,
    /// Its kernel hung (KernelDeadlock) since, while it stays Ready.
    pub problem: Option<Secs>,
    /// Its last problem cleared at.
    pub problem_cleared: Secs,
}

impl SimNode {
    /// Whether the node is truly failing, as far as kube-healer can know: down, or Ready with
    /// its kernel hung while a policy names that condition (no class says a KernelDeadlock is a
    /// failure unless a policy does).
    pub fn failing(&self, policies: &BTreeMap<String, HealingPolicy>) -> bool {
        let named = policies.values().any(|p| {
            p.spec
                .conditions
                .iter()
                .any(|c| c.condition_type.as_deref() == Some(objects::PROBLEM))
        });
        self.down.is_some() || (self.problem.is_some() && named)
    }

    /// Healthy (up and without a problem) since (meaningful while not failing).
    pub fn healthy_since(&self) -> Secs {
        self.up_since.max(self.problem_cleared)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trouble {
    None,
    Evicted(Secs),
    Crashing(Secs, Cause),
}

#[derive(Clone, Debug)]
pub struct SimPod {
    pub obj: Pod,
    pub workload: usize,
    pub trouble: Trouble,
    /// A graceful delete asked for at this moment (the pod is Terminating).
    pub deleting: Option<Secs>,
}

#[derive(Clone, Debug)]
pub struct Workload {
    pub name: String,
    pub replicas: usize,
    /// A StatefulSet: each pod's replacement takes its name (its identity), so it is made only
    /// once the old pod is gone.
    pub stateful: bool,
    /// A shared cause its containers fail on while it lasts (new pods crash too).
    pub broken_by: Option<u32>,
    /// Its PodDisruptionBudget's minAvailable (the default unhealthyPodEvictionPolicy,
    /// IfHealthyBudget).
    pub min_available: usize,
}

/// A HealingAction as kube-healer wrote it: its metadata (what the operator's watch reads) and
/// whether its outcome was written.
#[derive(Clone, Debug)]
pub struct Record {
    pub meta: PartialObjectMeta<HealingAction>,
    pub finished: bool,
}

#[derive(Clone, Debug)]
pub struct World {
    pub now: Secs,
    pub nodes: BTreeMap<String, SimNode>,
    /// By namespace/name.
    pub pods: BTreeMap<String, SimPod>,
    pub workloads: Vec<Workload>,
    pub policies: BTreeMap<String, HealingPolicy>,
    pub records: BTreeMap<String, Record>,
    /// Changes made since the watches last took them, in order.
    pub changes: Feed,
    serial: u64,
    /// The shared causes whose crashing pods were ever many (see `many_pods`), until fixed.
    pods_alike: BTreeSet<u32>,
    /// The pods' changes reach kube-healer (its pod watch is neither failed nor lagging).
    pub pods_delivered: bool,
    /// How many times each shared cause of pods began (it breaks workloads when none is broken
    /// by it): its episodes.
    pub cause_episodes: BTreeMap<u32, u32>,
}

/// The changes not yet delivered. A copy of the world (a view kept for a stale restart) starts
/// with none.
#[derive(Default)]
pub struct Feed(pub Vec<Change>);

impl Clone for Feed {
    fn clone(&self) -> Feed {
        Feed::default()
    }
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} changes", self.0.len())
    }
}

impl World {
    /// `zones` zones of `per_zone` nodes, and `workloads` workloads of `replicas` pods spread
    /// over them, all healthy since an hour before `now`.
    pub fn new(now: Secs, zones: usize, per_zone: usize, workloads: usize, replicas: usize) -> World {
        let mut world = World {
            now,
            nodes: BTreeMap::new(),
            pods: BTreeMap::new(),
            workloads: Vec::new(),
            policies: BTreeMap::new(),
            records: BTreeMap::new(),
            changes: Feed::default(),
            serial: 0,
            pods_alike: BTreeSet::new(),
            pods_delivered: true,
            cause_episodes: BTreeMap::new(),
        };
        for z in 0..zones {
            for i in 0..per_zone {
                let name = format!("z{z}-n{i}");
                let obj = objects::node(&name, &name, &format!("zone-{z}"), now - 3600);
                let node = SimNode {
                    obj,
                    zone: z,
                    down: None,
                    person_cordon: false,
                    up_since: now - 3600,
                    problem: None,
                    problem_cleared: now - 3600,
                };
                world.nodes.insert(name, node);
            }
        }
        for w in 0..workloads {
            // The last workload is a StatefulSet.
            let stateful = w + 1 == workloads;
            world.workloads.push(Workload {
                name: format!("w{w}"),
                replicas,
                stateful,
                broken_by: None,
                // One pod may be disrupted at a time.
                min_available: replicas.saturating_sub(1),
            });
        }
        world.reconcile();
        world.changes.0.clear();
        world
    }

    fn bump(&mut self) -> String {
        self.serial += 1;
        self.serial.to_string()
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    /// The node changed: its new version, delivered to the watch.
    pub fn node_changed(&mut self, name: &str) {
        let rv = self.bump();
        if let Some(n) = self.nodes.get_mut(name) {
            n.obj.metadata.resource_version = Some(rv);
            self.changes
                .0
                .push(Change::Node(Box::new(W::Apply(n.obj.clone()))));
        }
    }

    pub fn pod_changed(&mut self, key: &str) {
        let rv = self.bump();
        if let Some(p) = self.pods.get_mut(key) {
            p.obj.metadata.resource_version = Some(rv);
            self.changes
                .0
                .push(Change::Pod(Box::new(W::Apply(p.obj.clone()))));
        }
    }

    pub fn pod_removed(&mut self, key: &str) {
        if let Some(p) = self.pods.remove(key) {
            self.changes.0.push(Change::Pod(Box::new(W::Delete(p.obj))));
        }
    }

    /// The node's kubelet stops posting (Ready=Unknown), for `cause`.
    pub fn node_down(&mut self, name: &str, cause: Cause) {
        let now = self.now;
        let Some(n) = self.nodes.get_mut(name).filter(|n| n.down.is_none()) else {
            return;
        };
        n.down = Some((now, cause));
        objects::set_ready(&mut n.obj, "Unknown", now);
        self.node_changed(name);
    }

    /// The node's kernel hangs (its kubelet still posts: Ready), or is sound again.
    pub fn node_problem(&mut self, name: &str, on: bool) {
        let now = self.now;
        let Some(n) = self.nodes.get_mut(name).filter(|n| n.problem.is_some() != on) else {
            return;
        };
        match on {
            true => n.problem = Some(now),
            false => {
                n.problem = None;
                n.problem_cleared = now;
            }
        }
        objects::set_problem(&mut n.obj, on, now);
        self.node_changed(name);
    }

    /// The node's kubelet posts again.
    pub fn node_up(&mut self, name: &str) {
        let now = self.now;
        let Some(n) = self.nodes.get_mut(name).filter(|n| n.down.is_some()) else {
            return;
        };
        n.down = None;
        n.up_since = now;
        objects::set_ready(&mut n.obj, "True", now);
        self.node_changed(name);
        self.kubelet_back(name);
    }

    /// A kubelet back posts its pods' status as they are: crashing if their workload is broken
    /// now, running if their trouble ended while it was silent.
    fn kubelet_back(&mut self, node: &str) {
        let now = self.now;
        let keys: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, p)| {
                p.deleting.is_none() && p.obj.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let p = &self.pods[&key];
            match (
                p.trouble.clone(),
                self.workloads.get(p.workload).and_then(|w| w.broken_by),
            ) {
                (Trouble::None, Some(cause)) => self.crash(&key, Cause::Shared(cause)),
                (Trouble::None, None) => self.set_pod_status(&key, PodStatus::Running(now)),
                (Trouble::Evicted(_) | Trouble::Crashing(..), _) => {}
            }
        }
    }

    /// A person cordons the node, or lifts the cordon (theirs or anyone's, as `kubectl
    /// uncordon` does).
    pub fn person_cordon(&mut self, name: &str, cordon: bool) {
        let Some(n) = self.nodes.get_mut(name) else {
            return;
        };
        // Cordoning a node already cordoned changes nothing: the cordon stays whoever's it was.
        if cordon && objects::unschedulable(&n.obj) {
            return;
        }
        n.person_cordon = cordon;
        objects::set_unschedulable(&mut n.obj, cordon, "kubectl");
        self.node_changed(name);
    }

    /// The pod's status as its kubelet would write it now.
    fn set_pod_status(&mut self, key: &str, status: PodStatus) {
        if let Some(p) = self.pods.get_mut(key) {
            objects::set_status(&mut p.obj, status);
            self.pod_changed(key);
        }
    }

    /// The kubelet evicts the pod (its ReplicaSet makes another).
    pub fn evict_by_kubelet(&mut self, key: &str) {
        let now = self.now;
        let Some(p) = self
            .pods
            .get_mut(key)
            .filter(|p| p.trouble == Trouble::None && p.deleting.is_none())
        else {
            return;
        };
        p.trouble = Trouble::Evicted(now);
        self.set_pod_status(key, PodStatus::Evicted(now));
    }

    /// The pod's container starts crashing, for `cause`.
    pub fn crash(&mut self, key: &str, cause: Cause) {
        let now = self.now;
        let Some(p) = self
            .pods
            .get_mut(key)
            .filter(|p| p.trouble == Trouble::None && p.deleting.is_none())
        else {
            return;
        };
        p.trouble = Trouble::Crashing(now, cause);
        let said = match cause {
            Cause::Shared(c) => Said::Shared(c),
            Cause::Alone => Said::Own(p.workload),
        };
        self.set_pod_status(key, PodStatus::Crashing(now, said));
    }

    /// A shared cause breaks these workloads: each of their pods crashes, and so will the new
    /// ones, until the cause is fixed. A silent node's pods are told when it is back.
    pub fn break_workloads(&mut self, cause: u32, workloads: &[usize]) {
        if !self.workloads.iter().any(|w| w.broken_by == Some(cause)) {
            *self.cause_episodes.entry(cause).or_default() += 1;
        }
        for &w in workloads {
            if let Some(wl) = self.workloads.get_mut(w) {
                wl.broken_by = Some(cause);
            }
        }
        let keys: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, p)| workloads.contains(&p.workload) && self.node_up_for(p))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.crash(&key, Cause::Shared(cause));
        }
    }

    /// The shared cause is fixed: its pods run again.
    pub fn fix(&mut self, cause: u32) {
        self.pods_alike.remove(&cause);
        for wl in &mut self.workloads {
            if wl.broken_by == Some(cause) {
                wl.broken_by = None;
            }
        }
        let now = self.now;
        let keys: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, p)| matches!(p.trouble, Trouble::Crashing(_, Cause::Shared(c)) if c == cause))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let Some(p) = self.pods.get_mut(&key) else {
                continue;
            };
            p.trouble = Trouble::None;
            // A silent node's kubelet posts the pod's status when it is back.
            if self.node_up_for(&self.pods[&key]) {
                self.set_pod_status(&key, PodStatus::Running(now));
            }
        }
    }

    /// Whether the pod's node is up (posting status).
    pub fn node_up_for(&self, pod: &SimPod) -> bool {
        let node = pod.obj.spec.as_ref().and_then(|s| s.node_name.as_deref());
        node.and_then(|n| self.nodes.get(n))
            .is_some_and(|n| n.down.is_none())
    }

    /// What the control plane's controllers and the kubelets do on their own, as time passes:
    /// graceful deletes finish where a kubelet runs; the pods of a silent node are marked not
    /// Ready; each ReplicaSet keeps its replicas.
    pub fn reconcile(&mut self) {
        let now = self.now;
        let finished: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, p)| p.deleting.is_some_and(|at| now >= at + 2) && self.node_up_for(p))
            .map(|(k, _)| k.clone())
            .collect();
        for key in finished {
            self.pod_removed(&key);
        }
        let unready: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, p)| !self.node_up_for(p) && objects::pod_ready(&p.obj))
            .map(|(k, _)| k.clone())
            .collect();
        for key in unready {
            if let Some(p) = self.pods.get_mut(&key) {
                objects::mark_not_ready(&mut p.obj, now);
            }
            self.pod_changed(&key);
        }
        for w in 0..self.workloads.len() {
            self.keep_replicas(w);
        }
    }

    /// The ReplicaSet makes pods until it has its replicas (Evicted and Terminating ones do not
    /// count), on the Ready, schedulable node with the fewest of them. A StatefulSet makes each
    /// ordinal's pod again only once the old one is gone.
    fn keep_replicas(&mut self, w: usize) {
        let names: Vec<String> = if self.workloads[w].stateful {
            (0..self.workloads[w].replicas)
                .map(|i| format!("{}-{i}", self.workloads[w].name))
                .filter(|name| !self.pods.contains_key(&format!("{NS}/{name}")))
                .collect()
        } else {
            let active = self
                .pods
                .values()
                .filter(|p| {
                    p.workload == w && p.deleting.is_none() && !matches!(p.trouble, Trouble::Evicted(_))
                })
                .count();
            let serial = self.serial;
            (active..self.workloads[w].replicas)
                .map(|i| format!("{}-{}", self.workloads[w].name, serial + 1 + i as u64))
                .collect()
        };
        for name in names {
            let Some(node) = self.schedulable_node() else {
                return;
            };
            self.make_pod(w, &name, &node);
        }
    }

    fn make_pod(&mut self, w: usize, name: &str, node: &str) {
        let now = self.now;
        self.serial += 1;
        let uid = format!("{}-{}", self.workloads[w].name, self.serial);
        let workload = &self.workloads[w];
        let (status, trouble) = match workload.broken_by {
            Some(c) => (
                PodStatus::Crashing(now, Said::Shared(c)),
                Trouble::Crashing(now, Cause::Shared(c)),
            ),
            None => (PodStatus::Running(now), Trouble::None),
        };
        let obj = objects::pod(
            NS,
            name,
            &uid,
            node,
            (&workload.name, workload.stateful),
            now,
            status,
        );
        let key = format!("{NS}/{name}");
        self.pods.insert(
            key.clone(),
            SimPod {
                obj,
                workload: w,
                trouble,
                deleting: None,
            },
        );
        self.pod_changed(&key);
    }

    /// The Eviction API's answer for the pod, as the API server gives it: a pod that stopped for
    /// good (or is being deleted already) goes without asking; a healthy pod (Ready) only if its
    /// workload's PodDisruptionBudget allows a disruption now; an unhealthy one only if the
    /// budget is met (IfHealthyBudget). Healthy pods are counted as the disruption controller
    /// counts them: Ready, and not being deleted. Err: the refusal.
    pub fn eviction(&self, key: &str) -> Result<(), String> {
        let Some(pod) = self.pods.get(key) else {
            return Ok(());
        };
        let terminal = pod.obj.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed");
        let Some(workload) = self.workloads.get(pod.workload) else {
            return Ok(());
        };
        if terminal || pod.deleting.is_some() {
            return Ok(());
        }
        let healthy = self
            .pods
            .values()
            .filter(|p| p.workload == pod.workload && p.deleting.is_none() && objects::pod_ready(&p.obj))
            .count();
        let desired = workload.min_available;
        let allowed = match objects::pod_ready(&pod.obj) {
            true => healthy > desired,
            false => healthy >= desired,
        };
        match allowed {
            true => Ok(()),
            false => Err(format!(
                "the disruption budget {} needs {desired} healthy pods and has {healthy}",
                workload.name
            )),
        }
    }

    /// The scheduler's pick: a Ready, schedulable node with the fewest pods.
    fn schedulable_node(&self) -> Option<String> {
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for p in self.pods.values() {
            if let Some(n) = p.obj.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
                *count.entry(n).or_default() += 1;
            }
        }
        self.nodes
            .iter()
            .filter(|(_, n)| n.down.is_none() && !objects::unschedulable(&n.obj))
            .min_by_key(|(name, _)| (count.get(name.as_str()).copied().unwrap_or(0), name.to_string()))
            .map(|(name, _)| name.clone())
    }

    /// Whether the pod is truly in trouble: evicted, crashing, on a silent node, or stuck
    /// Terminating there.
    pub fn pod_in_trouble(&self, key: &str) -> bool {
        self.pods
            .get(key)
            .is_some_and(|p| p.trouble != Trouble::None || !self.node_up_for(p))
    }

    /// The shared cause of what the pod truly suffers, if one. On a silent node (unless it is
    /// a dead pod already) that is the
    /// node's trouble (whatever its last status said), and the cause its node's; elsewhere the
    /// pod's own.
    pub fn pod_cause(&self, key: &str) -> Option<u32> {
        let p = self.pods.get(key)?;
        // A pod the kubelet evicted is a dead object whatever its node now: removing it takes
        // nothing away.
        if matches!(p.trouble, Trouble::Evicted(_)) {
            return None;
        }
        if !self.node_up_for(p) {
            let node = p.obj.spec.as_ref().and_then(|s| s.node_name.as_deref())?;
            return match self.nodes.get(node)?.down {
                Some((_, Cause::Shared(c))) if self.many_nodes(c) => Some(c),
                _ => None,
            };
        }
        match p.trouble {
            Trouble::Crashing(_, Cause::Shared(c)) if self.many_pods(c) => Some(c),
            _ => None,
        }
    }

    /// Whether a shared cause's crashing pods are, or were since it broke them, as many as the
    /// safety model counts as one cause (README: at least 5 pods of 3 workloads, seen crashing
    /// within 10 minutes). A cause that broke one workload looks like that workload's trouble.
    /// Counted only from what reached kube-healer: while its pod watch lags, pods that break
    /// are not seen (the recheck of the target itself guards those moments).
    pub fn many_pods(&self, cause: u32) -> bool {
        self.pods_alike.contains(&cause) || (self.pods_delivered && self.pods_alike_now(cause))
    }

    /// Notes the shared causes whose crashing pods are many now, as kube-healer's watch
    /// delivers them: they stay a cause until fixed.
    pub fn note_pod_causes(&mut self) {
        if !self.pods_delivered {
            return;
        }
        let causes: BTreeSet<u32> = self
            .pods
            .values()
            .filter_map(|p| match p.trouble {
                Trouble::Crashing(_, Cause::Shared(c)) => Some(c),
                _ => None,
            })
            .collect();
        for c in causes {
            if self.pods_alike_now(c) {
                self.pods_alike.insert(c);
            }
        }
    }

    /// At least the threshold's pods and workloads crashing for `cause`, seen (their kubelet
    /// posting) and beginning within the window.
    fn pods_alike_now(&self, cause: u32) -> bool {
        let alike = kube_healer_core::thresholds::Knobs::default().pods_alike;
        let mut seen: Vec<(Secs, usize)> = self
            .pods
            .values()
            .filter(|p| p.deleting.is_none() && self.node_up_for(p))
            .filter_map(|p| match p.trouble {
                Trouble::Crashing(since, Cause::Shared(c)) if c == cause => Some((since, p.workload)),
                _ => None,
            })
            .collect();
        seen.sort_unstable();
        (0..seen.len()).any(|start| {
            let window: Vec<&(Secs, usize)> = seen[start..]
                .iter()
                .take_while(|(since, _)| *since <= seen[start].0 + alike.window)
                .collect();
            let workloads: BTreeSet<usize> = window.iter().map(|(_, w)| *w).collect();
            window.len() >= alike.pods && workloads.len() >= alike.workloads
        })
    }

    /// Whether a cause keeps many nodes down: as many as the safety model counts as one cause
    /// (README: at least 3 nodes and 30% of their zone). Two nodes of a zone down together look
    /// like two faults, and are healed as such.
    pub fn many_nodes(&self, cause: u32) -> bool {
        let knobs = kube_healer_core::thresholds::Knobs::default();
        let members: Vec<&SimNode> = self
            .nodes
            .values()
            .filter(|n| n.down.is_some_and(|(_, c)| c == Cause::Shared(cause)))
            .collect();
        let Some(zone) = members.first().map(|n| n.zone) else {
            return false;
        };
        let domain = self.nodes.values().filter(|n| n.zone == zone).count();
        members.len() >= knobs.correlated_nodes_min
            && members.len() * 100 >= knobs.correlated_nodes_percent * domain
    }

    /// Whether the pod's replacement would take its identity (a StatefulSet's).
    pub fn stateful(&self, pod: &SimPod) -> bool {
        self.workloads.get(pod.workload).is_some_and(|w| w.stateful)
    }

    /// The nodes out of service now, whoever took them out: cordoned, or not Ready.
    pub fn nodes_out_of_service(&self) -> usize {
        self.nodes
            .values()
            .filter(|n| n.down.is_some() || objects::unschedulable(&n.obj))
            .count()
    }

    /// A policy created or changed (its generation moves on), delivered to the watch.
    pub fn apply_policy(&mut self, mut policy: HealingPolicy) {
        let name = policy.metadata.name.clone().unwrap_or_default();
        let generation = self
            .policies
            .get(&name)
            .and_then(|p| p.metadata.generation)
            .unwrap_or(0)
            + 1;
        policy.metadata.generation = Some(generation);
        policy.metadata.resource_version = Some(self.bump());
        self.changes.0.push(Change::policy(W::Apply(policy.clone())));
        self.policies.insert(name, policy);
    }

    pub fn delete_policy(&mut self, name: &str) {
        if let Some(p) = self.policies.remove(name) {
            self.changes.0.push(Change::policy(W::Delete(p)));
        }
    }

    /// A record written or changed, delivered to the watch.
    pub fn put_record(&mut self, name: &str, record: Record) {
        self.changes
            .0
            .push(Change::Record(Box::new(W::Apply(record.meta.clone()))));
        self.records.insert(name.to_string(), record);
    }

    /// Every watch's list, as a restarted operator's watches would deliver it now: each
    /// watch's Init, its objects, and InitDone.
    pub fn lists(&self) -> Vec<Change> {
        let mut out = self.cluster_lists();
        out.extend(self.own_lists());
        out
    }

    /// The lists of the cluster's own objects (which a restart may be served stale).
    pub fn cluster_lists(&self) -> Vec<Change> {
        let mut out = Vec::new();
        out.push(Change::Pod(Box::new(W::Init)));
        out.extend(
            self.pods
                .values()
                .map(|p| Change::Pod(Box::new(W::InitApply(p.obj.clone())))),
        );
        out.push(Change::Pod(Box::new(W::InitDone)));
        out.push(Change::Node(Box::new(W::Init)));
        out.extend(
            self.nodes
                .values()
                .map(|n| Change::Node(Box::new(W::InitApply(n.obj.clone())))),
        );
        out.push(Change::Node(Box::new(W::InitDone)));
        out.push(Change::Event(Box::new(W::Init)));
        out.push(Change::Event(Box::new(W::InitDone)));
        out.push(Change::Lease(Box::new(W::Init)));
        out.push(Change::Lease(Box::new(W::InitDone)));
        out.push(Change::Namespace(Box::new(W::Init)));
        out.push(Change::Namespace(Box::new(W::InitDone)));
        out.extend(Change::no_maintainers());
        out
    }

    /// The lists of kube-healer's own objects, its policies and records: always a consistent
    /// read (the operator lists them with the most recent semantic).
    pub fn own_lists(&self) -> Vec<Change> {
        let mut out = Vec::new();
        out.push(Change::policy(W::Init));
        out.extend(
            self.policies
                .values()
                .map(|p| Change::policy(W::InitApply(p.clone()))),
        );
        out.push(Change::policy(W::InitDone));
        out.push(Change::Record(Box::new(W::Init)));
        out.extend(
            self.records
                .values()
                .map(|r| Change::Record(Box::new(W::InitApply(r.meta.clone())))),
        );
        out.push(Change::Record(Box::new(W::InitDone)));
        out
    }

    /// The pods' and nodes' lists alone (a relist after a watch gap).
    pub fn relist(&self, pods: bool) -> Vec<Change> {
        let mut out = Vec::new();
        if pods {
            out.push(Change::Pod(Box::new(W::Init)));
            out.extend(
                self.pods
                    .values()
                    .map(|p| Change::Pod(Box::new(W::InitApply(p.obj.clone())))),
            );
            out.push(Change::Pod(Box::new(W::InitDone)));
        } else {
            out.push(Change::Node(Box::new(W::Init)));
            out.extend(
                self.nodes
                    .values()
                    .map(|n| Change::Node(Box::new(W::InitApply(n.obj.clone())))),
            );
            out.push(Change::Node(Box::new(W::InitDone)));
        }
        out
    }
}
