//! Default thresholds: how long, how many and how often. Policies override them per condition
//! (`for`, `minRestarts`, `transitions`, `window`, `count`, `minPods`, `leaseAge`, `minFailures`).
//!
//! Each class declares its default `for` and the knobs it takes with its declaration
//! (`kube_healer_api::ClassProperties`); the knobs' defaults are [`Knobs::default`]: CrashLoop
//! minRestarts 5, NodeFlapping 4 transitions within 1h, NodeCondition status True, HeartbeatLag
//! leaseAge 20s, SystemOOM 3 within 1h, NodeBlackHole minPods 3, EventPattern 1 within 10m,
//! ProbeFailure minFailures 3.
//!
//! SystemOOM, 3 within 1h: the OOM loop of a DaemonSet pod killed and recreated until PLEG went
//! unhealthy was killed 8 times in 85 minutes, never more than 3 in any 10 (16:50, 16:52, 16:52,
//! 17:36, 17:38, 18:07, 18:15, 18:15), so a 10-minute window saw it for 8 minutes and then lost
//! it. An hour finds it from the third kill, and it is the API server's default `--event-ttl`:
//! a longer default would count events that a restarted operator can no longer list, and so
//! decide differently after a restart. Two OOMs hours apart stay quiet; a container killed at
//! its own memory limit is not a SystemOOM at all: the kubelet writes SystemOOM only when the
//! OOM killer acted for the node's root cgroup (kubernetes#88868), and a container's own OOM
//! shows as its OOMKilled termination instead.
//!
//! Correlation: 5 pods with ImagePullFailure from one registry on 3 or more nodes make one
//! correlated finding, and so do 5 pods of 3 or more workloads failing alike (one class, told
//! the same way), each beginning within 10 minutes; so do NotReady or Unreachable nodes when they are at least 3 and at least
//! 30% of the nodes.

use kube_healer_api::{FailureClass, FailureCondition};

use crate::view::{Secs, Status};

const MINUTE: Secs = 60;

/// How long a class must hold, by default, before it is acted on (and reported by `classify`):
/// as the class declares it.
pub const fn default_for(class: FailureClass) -> Secs {
    class.properties().default_for as Secs
}

/// The knobs that decide whether a finding exists at all (as opposed to `for`, which decides when
/// it is due).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Knobs {
    pub crashloop_min_restarts: u32,
    pub flapping_transitions: u32,
    pub flapping_window: Secs,
    pub system_oom_count: u32,
    pub system_oom_window: Secs,
    pub blackhole_min_pods: u32,
    /// How long a pod bound to a Ready node may go without starting before it counts towards
    /// NodeBlackHole.
    pub blackhole_pod_age: Secs,
    pub heartbeat_lease_age: Secs,
    /// ProbeFailure: the kubelet's failed readiness probes since the container started.
    pub probe_min_failures: u32,
    /// NodeCondition: only this type (None: any problem condition), with this status.
    pub node_condition_type: Option<String>,
    pub node_condition_status: Status,
    /// NodePressure: only this type (None: any of the three).
    pub pressure_type: Option<String>,
    /// Correlation thresholds.
    pub correlated_registry_pods: usize,
    pub correlated_registry_nodes: usize,
    pub pods_alike: PodsAlike,
    /// The windows bursts of pods failing alike are counted in: the operator's and each
    /// policy's own (`pods_alike`'s, the longest, among them). See [`Knobs::fit_pods_alike`].
    pub pods_alike_windows: Vec<Secs>,
    /// A sick node: at least `pods` pods of at least `workloads` workloads failing on it alone.
    pub sick_node: SickNode,
    pub correlated_nodes_min: usize,
    pub correlated_nodes_percent: usize,
    /// The control plane as a cause: over the last `control_plane_window` seconds, at least
    /// `control_plane_calls_min` of kube-healer's own calls, `control_plane_bad_percent` of them
    /// failed or slower than `control_plane_slow_ms`.
    pub control_plane_window: Secs,
    pub control_plane_calls_min: usize,
    pub control_plane_bad_percent: usize,
    pub control_plane_slow_ms: u64,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            crashloop_min_restarts: 5,
            flapping_transitions: 4,
            flapping_window: 60 * MINUTE,
            system_oom_count: 3,
            system_oom_window: 60 * MINUTE,
            blackhole_min_pods: 3,
            blackhole_pod_age: 5 * MINUTE,
            heartbeat_lease_age: 20,
            probe_min_failures: 3,
            node_condition_type: None,
            node_condition_status: Status::True,
            pressure_type: None,
            correlated_registry_pods: 5,
            correlated_registry_nodes: 3,
            pods_alike: PodsAlike::default(),
            pods_alike_windows: vec![PodsAlike::default().window],
            sick_node: SickNode {
                pods: 3,
                workloads: 3,
            },
            correlated_nodes_min: 3,
            correlated_nodes_percent: 30,
            control_plane_window: 60,
            control_plane_calls_min: 4,
            control_plane_bad_percent: 50,
            control_plane_slow_ms: 5_000,
        }
    }
}

/// When a node is the cause of its pods' failures: at least `pods` pods of at least
/// `workloads` workloads failing on it and on no other node, each with a sibling running fine
/// elsewhere. 3 of 3: one workload's pods failing on one node may be that workload's trouble;
/// three workloads failing only there, running fine elsewhere, share the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SickNode {
    pub pods: usize,
    pub workloads: usize,
}

/// When pods failing alike are one cause: at least `pods` pods of at least `workloads`
/// workloads, each beginning within `window` seconds (the operator's `--pods-alike-*` flags).
/// 5 of 3 within 10 minutes: one Deployment's replicas failing together are that workload's
/// own trouble; three workloads beginning to fail the same way within minutes share a cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodsAlike {
    pub pods: usize,
    pub workloads: usize,
    pub window: Secs,
}

impl PodsAlike {
    /// A policy's thresholds: its `safety.podsAlike`, the rest as `self` (the operator's).
    pub fn for_policy(&self, safety: &kube_healer_api::Safety) -> PodsAlike {
        let own = safety.pods_alike.as_ref();
        let count = |n: Option<i32>, default: usize| n.map_or(default, |n| n.max(1) as usize);
        PodsAlike {
            pods: count(own.and_then(|o| o.min_pods), self.pods),
            workloads: count(own.and_then(|o| o.min_workloads), self.workloads),
            window: own
                .and_then(|o| o.window)
                .map_or(self.window, |w| w.as_std().as_secs() as Secs),
        }
    }

    /// What finds every cause of pods failing alike that `self` (the operator's) or a policy
    /// with one of `safeties` asks for: the loosest of them. Causes are found at it, and each
    /// policy is held only by those its own thresholds meet (`Correlated::holds_for`).
    pub fn loosest_for<'a>(
        &self,
        safeties: impl IntoIterator<Item = &'a kube_healer_api::Safety>,
    ) -> PodsAlike {
        safeties
            .into_iter()
            .fold(*self, |loosest, s| loosest.loosest(&self.for_policy(s)))
    }

    /// The loosest of two: what finds every cause either asks for.
    pub fn loosest(&self, other: &PodsAlike) -> PodsAlike {
        PodsAlike {
            pods: self.pods.min(other.pods),
            workloads: self.workloads.min(other.workloads),
            window: self.window.max(other.window),
        }
    }

    /// Whether a burst of `pods` pods of `workloads` workloads meets these thresholds.
    pub fn met_by(&self, (pods, workloads): (usize, usize)) -> bool {
        pods >= self.pods && workloads >= self.workloads
    }
}

impl Default for PodsAlike {
    fn default() -> Self {
        PodsAlike {
            pods: 5,
            workloads: 3,
            window: 10 * MINUTE,
        }
    }
}

impl Knobs {
    /// Fits the pods-alike thresholds causes are found at to the operator's (`operator`) and
    /// the policies' own (`safeties`): the loosest of them finds every cause any of them asks
    /// for, and bursts are counted in each window one asks for, so that each policy is held only
    /// by a burst within its own (`Correlated::holds_for`). Whether they changed.
    pub fn fit_pods_alike<'a>(
        &mut self,
        operator: &PodsAlike,
        safeties: impl IntoIterator<Item = &'a kube_healer_api::Safety> + Clone,
    ) -> bool {
        let loosest = operator.loosest_for(safeties.clone());
        let mut windows: Vec<Secs> = safeties
            .into_iter()
            .map(|s| operator.for_policy(s).window)
            .chain([operator.window, loosest.window])
            .collect();
        windows.sort_unstable();
        windows.dedup();
        let changed = loosest != self.pods_alike || windows != self.pods_alike_windows;
        self.pods_alike = loosest;
        self.pods_alike_windows = windows;
        changed
    }

    /// The defaults with a policy condition's overrides.
    pub fn for_condition(condition: &FailureCondition) -> Self {
        let mut knobs = Knobs::default();
        let secs = |d: kube_healer_api::Duration| d.as_std().as_secs() as Secs;
        let count = |n: i32| n.max(1) as u32;
        match condition.class {
            FailureClass::CrashLoop => {
                if let Some(n) = condition.min_restarts {
                    knobs.crashloop_min_restarts = count(n);
                }
            }
            FailureClass::NodeFlapping => {
                if let Some(n) = condition.transitions {
                    knobs.flapping_transitions = count(n);
                }
                if let Some(w) = condition.window {
                    knobs.flapping_window = secs(w);
                }
            }
            FailureClass::SystemOOM => {
                if let Some(n) = condition.count {
                    knobs.system_oom_count = count(n);
                }
                if let Some(w) = condition.window {
                    knobs.system_oom_window = secs(w);
                }
            }
            FailureClass::NodeBlackHole => {
                if let Some(n) = condition.min_pods {
                    knobs.blackhole_min_pods = count(n);
                }
            }
            FailureClass::HeartbeatLag => {
                if let Some(d) = condition.lease_age {
                    knobs.heartbeat_lease_age = secs(d);
                }
            }
            FailureClass::NodeCondition => {
                knobs.node_condition_type = condition.condition_type.clone();
                if let Some(s) = condition.condition_status {
                    knobs.node_condition_status = Status::parse(s.as_str());
                }
            }
            FailureClass::NodePressure => knobs.pressure_type = condition.condition_type.clone(),
            FailureClass::ProbeFailure => {
                if let Some(n) = condition.min_failures {
                    knobs.probe_min_failures = count(n);
                }
            }
            // Classes without knobs of their own.
            FailureClass::Unschedulable
            | FailureClass::StuckPending
            | FailureClass::ImagePullFailure
            | FailureClass::StuckContainerCreating
            | FailureClass::StuckInitializing
            | FailureClass::ContainerStartFailure
            | FailureClass::AdmissionRejected
            | FailureClass::StuckTerminating
            | FailureClass::Evicted
            | FailureClass::Failed
            | FailureClass::NodeLost
            | FailureClass::Orphaned
            | FailureClass::NodeNotReady
            | FailureClass::NodeUnreachable
            | FailureClass::PLEGUnhealthy
            | FailureClass::EventPattern => {}
        }
        knobs
    }
}

/// A condition's `for`, or the class default.
pub fn for_of(condition: &FailureCondition) -> Secs {
    condition
        .for_
        .map_or(default_for(condition.class), |d| d.as_std().as_secs() as Secs)
}
