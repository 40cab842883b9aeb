//! The failure taxonomy. These names are API: policies select them and records carry them.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The kind of object a policy heals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("maxLength" = 8))]
pub enum TargetKind {
    Pod,
    Node,
}

impl TargetKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            TargetKind::Pod => "Pod",
            TargetKind::Node => "Node",
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the rest of kube-healer asks of a failure class, declared with the class itself: a new
/// class must state each (the struct literal in `failure_classes!` does not compile without all
/// of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassProperties {
    /// How long it must hold, by default, before it is acted on (and reported by `classify`), in
    /// seconds. A policy's `for` overrides it.
    pub default_for: u64,
    /// What it is judged on. The recheck right before an action reads the target again, its node
    /// for StateAndNode and its Lease for Lease; events and bound pods are those the decision saw.
    pub judged_on: JudgedOn,
    /// What counts as the same cause when many targets show it at once (`None`: no family
    /// groups it).
    pub family: Option<Family>,
    /// A pod finding that stems from its node (lost with it, stuck terminating on it, left by
    /// it): while its node's cause holds (nodes down together, the control plane), it holds too.
    pub inherits_node_cause: bool,
    /// The pod stopped for good (a terminal phase it never leaves): removing it loses nothing
    /// that runs, so removals share batch records, need no Event, and may be checked by version.
    pub stopped_for_good: bool,
    /// The policy knobs it takes beside `for` (the API server refuses any other).
    pub knobs: &'static [Knob],
}

/// What a class is judged on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JudgedOn {
    /// The target's own state (phase, conditions, container states) and since when it holds.
    State,
    /// The target's state, and the kubelet's events about it since the state began (how many
    /// is a knob).
    StateAndEvents,
    /// A pod's state and its node's (or the node's absence).
    StateAndNode,
    /// Events or transitions counted over a sliding window: its start slides while it lasts, so
    /// only its presence is compared.
    CountedInWindow,
    /// The node's Lease renewals.
    Lease,
    /// The pods bound to the node.
    BoundPods,
}

/// How targets fail together: findings of one family on many targets at once are one cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// Nodes NotReady, unreachable or PLEG unhealthy.
    NodesDown,
    /// Node heartbeats (Leases) late.
    NodeHeartbeats,
    /// Node Ready flapping.
    NodesFlapping,
    /// One node condition type in its problem state (grouped by the type).
    NodeCondition,
    /// Node memory, disk or PID pressure.
    NodePressure,
    /// Ready nodes whose pods never start.
    NodeBlackHoles,
    /// System OOM kills on nodes.
    NodeSystemOOM,
    /// Pods failing alike: the same failure told the same way (the pod's own names, numbers,
    /// hashes and addresses left out) by pods of several workloads, or (image pulls) failing
    /// from one registry on several nodes. Every pod class that may share a cause with other
    /// pods' takes it: not those stopped for good (removing them disrupts nothing), nor those
    /// that stem from their node (their node's cause is theirs).
    PodsAlike,
}

impl Family {
    /// Whether the family groups nodes (by zone, pool and cluster).
    pub const fn of_nodes(self) -> bool {
        match self {
            Family::NodesDown
            | Family::NodeHeartbeats
            | Family::NodesFlapping
            | Family::NodeCondition
            | Family::NodePressure
            | Family::NodeBlackHoles
            | Family::NodeSystemOOM => true,
            Family::PodsAlike => false,
        }
    }
}

/// A knob of a policy's failure condition, by its JSON name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Knob {
    MinRestarts,
    Transitions,
    Window,
    Count,
    Reason,
    MessagePattern,
    ConditionType,
    ConditionStatus,
    MinPods,
    LeaseAge,
    MinFailures,
}

impl Knob {
    pub const ALL: &'static [Knob] = &[
        Knob::MinRestarts,
        Knob::Transitions,
        Knob::Window,
        Knob::Count,
        Knob::Reason,
        Knob::MessagePattern,
        Knob::ConditionType,
        Knob::ConditionStatus,
        Knob::MinPods,
        Knob::LeaseAge,
        Knob::MinFailures,
    ];

    /// Its name in a policy.
    pub const fn as_str(self) -> &'static str {
        match self {
            Knob::MinRestarts => "minRestarts",
            Knob::Transitions => "transitions",
            Knob::Window => "window",
            Knob::Count => "count",
            Knob::Reason => "reason",
            Knob::MessagePattern => "messagePattern",
            Knob::ConditionType => "conditionType",
            Knob::ConditionStatus => "conditionStatus",
            Knob::MinPods => "minPods",
            Knob::LeaseAge => "leaseAge",
            Knob::MinFailures => "minFailures",
        }
    }

    /// The classes that take it.
    pub fn classes(self) -> Vec<FailureClass> {
        FailureClass::ALL
            .iter()
            .copied()
            .filter(|c| c.properties().knobs.contains(&self))
            .collect()
    }
}

const MINUTE: u64 = 60;

macro_rules! failure_classes {
    ($($(#[doc = $doc:literal])* $name:ident: $kind:ident $props:tt,)*) => {
        /// A named failure class. Pod classes: Unschedulable, StuckPending, ImagePullFailure,
        /// StuckContainerCreating, StuckInitializing, ContainerStartFailure, CrashLoop,
        /// ProbeFailure, AdmissionRejected, StuckTerminating, Evicted, Failed, NodeLost,
        /// Orphaned. Node classes:
        /// NodeNotReady, NodeUnreachable, PLEGUnhealthy, NodeFlapping, NodePressure, NodeCondition,
        /// HeartbeatLag, SystemOOM, NodeBlackHole. Either kind: EventPattern.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        #[schemars(extend("maxLength" = 32))]
        pub enum FailureClass {
            $($(#[doc = $doc])* $name,)*
        }

        impl FailureClass {
            pub const ALL: &'static [FailureClass] = &[$(FailureClass::$name,)*];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(FailureClass::$name => stringify!($name),)*
                }
            }

            /// The kind this class applies to; `None` for classes that apply to both.
            pub const fn target_kind(self) -> Option<TargetKind> {
                match self {
                    $(FailureClass::$name => failure_classes!(@kind $kind),)*
                }
            }

            /// One line on what the class means (the first line of its documentation).
            pub fn describe(self) -> &'static str {
                match self {
                    $(FailureClass::$name => [$($doc),*][0].trim(),)*
                }
            }

            /// What the class is, as its declaration states.
            pub const fn properties(self) -> ClassProperties {
                match self {
                    $(FailureClass::$name => ClassProperties $props,)*
                }
            }
        }
    };
    (@kind Pod) => { Some(TargetKind::Pod) };
    (@kind Node) => { Some(TargetKind::Node) };
    (@kind Any) => { None };
}

failure_classes! {
    /// Pending and refused by the scheduler (PodScheduled=False, reason Unschedulable).
    Unschedulable: Pod {
        default_for: 10 * MINUTE, judged_on: JudgedOn::State, family: Some(Family::PodsAlike),
        inherits_node_cause: false, stopped_for_good: false, knobs: &[],
    },
    /// Pending, not bound to a node, without a scheduling verdict or any event: nothing is happening.
    StuckPending: Pod {
        default_for: 5 * MINUTE, judged_on: JudgedOn::State, family: Some(Family::PodsAlike),
        inherits_node_cause: false, stopped_for_good: false, knobs: &[],
    },
    /// A container waits on its image: ImagePullBackOff, ErrImagePull, ImageInspectError, ErrImageNeverPull, InvalidImageName.
    ImagePullFailure: Pod {
        default_for: 5 * MINUTE, judged_on: JudgedOn::State, family: Some(Family::PodsAlike),
        inherits_node_cause: false, stopped_for_good: false, knobs: &[],
    },
    /// A container waits in ContainerCreating (sandbox or volume setup never finishes).
    StuckContainerCreating: Pod {
        default_for: 10 * MINUTE, judged_on: JudgedOn::State, family: Some(Family::PodsAlike),
        inherits_node_cause: false, stopped_for_good: false, knobs: &[],
    },
    /// The pod stays in PodInitializing or its init containers never finish.
    StuckInitializing: Pod {
        default_for: 15 * MINUTE, judged_on: JudgedOn::State, family: Some(Family::PodsAlike),
        inherits_node_cause: false, stopped_for_good: false, knobs: &[],
    },
    /// A container cannot start: RunContainerError, CreateContainerError, CreateContainerConfigError, StartError.
    ContainerStartFailure: Pod {
        default_for: 5 * MINUTE, judged_on: JudgedOn::State, family: Some(Family::PodsAlike),
        inherits_node_cause: false, stopped_for_good: false, knobs: &[],
    },
    /// A container restarts again and again (CrashLoopBackOff with a restart count at or above the threshold).
    CrashLoop: Pod {
        default_for: 10 * MINUTE, judged_on: JudgedOn::State, family: Some(Family::PodsAlike),
        inherits_node_cause: false, stopped_for_good: false, knobs: &[Knob::MinRestarts],
    },
    /// Running, with a started container the kubelet's readiness probe keeps failing (Ready=False, ContainersNotReady, "Readiness probe failed" events), and not restarting.
    ProbeFailure: Pod {
        default_for: 10 * MINUTE, judged_on: JudgedOn::StateAndEvents, family: Some(Family::PodsAlike),
        inherits_node_cause: false, stopped_for_good: false, knobs: &[Knob::MinFailures],
    },
    /// The kubelet refused the pod at admission: OutOfcpu, OutOfmemory, OutOfpods, NodeAffinity, UnexpectedAdmissionError and the like.
    AdmissionRejected: Pod {
        default_for: MINUTE, judged_on: JudgedOn::State, family: None,
        inherits_node_cause: false, stopped_for_good: true, knobs: &[],
    },
    /// Still present after its deletionTimestamp (which already includes the grace period).
    StuckTerminating: Pod {
        default_for: MINUTE, judged_on: JudgedOn::StateAndNode, family: None,
        inherits_node_cause: true, stopped_for_good: false, knobs: &[],
    },
    /// Failed with reason Evicted: a leftover of kubelet node-pressure eviction.
    Evicted: Pod {
        default_for: 10 * MINUTE, judged_on: JudgedOn::State, family: None,
        inherits_node_cause: false, stopped_for_good: true, knobs: &[],
    },
    /// Failed for any other reason, and not a completed Job pod.
    Failed: Pod {
        default_for: 60 * MINUTE, judged_on: JudgedOn::State, family: None,
        inherits_node_cause: false, stopped_for_good: true, knobs: &[],
    },
    /// Bound to a node that is NotReady or Unknown.
    NodeLost: Pod {
        default_for: 5 * MINUTE, judged_on: JudgedOn::StateAndNode, family: None,
        inherits_node_cause: true, stopped_for_good: false, knobs: &[],
    },
    /// Bound to a node that no longer exists.
    Orphaned: Pod {
        default_for: MINUTE, judged_on: JudgedOn::StateAndNode, family: None,
        inherits_node_cause: true, stopped_for_good: false, knobs: &[],
    },
    /// Ready=False: the kubelet reports the node unhealthy.
    NodeNotReady: Node {
        default_for: 5 * MINUTE, judged_on: JudgedOn::State, family: Some(Family::NodesDown),
        inherits_node_cause: false, stopped_for_good: false, knobs: &[],
    },
    /// Ready=Unknown: the kubelet stopped posting node status.
    NodeUnreachable: Node {
        default_for: 2 * MINUTE, judged_on: JudgedOn::State, family: Some(Family::NodesDown),
        inherits_node_cause: false, stopped_for_good: false, knobs: &[],
    },
    /// The kubelet reports "PLEG is not healthy": the container runtime stopped answering.
    PLEGUnhealthy: Node {
        default_for: 3 * MINUTE, judged_on: JudgedOn::State, family: Some(Family::NodesDown),
        inherits_node_cause: false, stopped_for_good: false, knobs: &[],
    },
    /// Ready changed at least N times within a window, counted from conditions and NodeNotReady/NodeReady events.
    NodeFlapping: Node {
        default_for: 0, judged_on: JudgedOn::CountedInWindow, family: Some(Family::NodesFlapping),
        inherits_node_cause: false, stopped_for_good: false, knobs: &[Knob::Transitions, Knob::Window],
    },
    /// MemoryPressure, DiskPressure or PIDPressure is True.
    NodePressure: Node {
        default_for: 5 * MINUTE, judged_on: JudgedOn::State, family: Some(Family::NodePressure),
        inherits_node_cause: false, stopped_for_good: false, knobs: &[Knob::ConditionType],
    },
    /// Any other condition that signals a problem (KernelDeadlock, ReadonlyFilesystem, FrequentContainerdRestart, ...).
    NodeCondition: Node {
        default_for: 5 * MINUTE, judged_on: JudgedOn::State, family: Some(Family::NodeCondition),
        inherits_node_cause: false, stopped_for_good: false, knobs: &[Knob::ConditionType, Knob::ConditionStatus],
    },
    /// The node Lease is renewed late while the node still reads Ready: the warning before NotReady.
    HeartbeatLag: Node {
        default_for: 0, judged_on: JudgedOn::Lease, family: Some(Family::NodeHeartbeats),
        inherits_node_cause: false, stopped_for_good: false, knobs: &[Knob::LeaseAge],
    },
    /// Repeated SystemOOM events on the node within a window.
    SystemOOM: Node {
        default_for: 0, judged_on: JudgedOn::CountedInWindow, family: Some(Family::NodeSystemOOM),
        inherits_node_cause: false, stopped_for_good: false, knobs: &[Knob::Window, Knob::Count],
    },
    /// A Ready node whose bound pods do not start, or fail there while their workloads run fine on
    /// other nodes: several of them, not one.
    NodeBlackHole: Node {
        default_for: 10 * MINUTE, judged_on: JudgedOn::BoundPods, family: Some(Family::NodeBlackHoles),
        inherits_node_cause: false, stopped_for_good: false, knobs: &[Knob::MinPods],
    },
    /// Events with a given reason and message pattern, at least N within a window (only through policies).
    EventPattern: Any {
        default_for: 0, judged_on: JudgedOn::CountedInWindow, family: None,
        inherits_node_cause: false, stopped_for_good: false, knobs: &[Knob::Window, Knob::Count, Knob::Reason, Knob::MessagePattern],
    },
}

impl FailureClass {
    /// Whether the class can be used in a policy targeting `kind`.
    pub fn applies_to(self, kind: TargetKind) -> bool {
        self.target_kind().is_none_or(|k| k == kind)
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown class name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown failure class {0:?}")]
pub struct UnknownClass(pub String);

impl FromStr for FailureClass {
    type Err = UnknownClass;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FailureClass::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownClass(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_kinds_partition() {
        for class in FailureClass::ALL {
            assert_eq!(class.as_str().parse::<FailureClass>().unwrap(), *class);
            assert_eq!(serde_json::to_value(class).unwrap(), class.as_str());
            assert!(!class.describe().is_empty());
        }
        assert_eq!(FailureClass::ALL.len(), 24);
        assert!(FailureClass::EventPattern.applies_to(TargetKind::Pod));
        assert!(FailureClass::EventPattern.applies_to(TargetKind::Node));
        assert!(!FailureClass::CrashLoop.applies_to(TargetKind::Node));
        assert!(!FailureClass::NodeFlapping.applies_to(TargetKind::Pod));
    }

    #[test]
    fn declared_properties_fit_the_kind() {
        for &class in FailureClass::ALL {
            let p = class.properties();
            let pod = class.target_kind() == Some(TargetKind::Pod);
            let node = class.target_kind() == Some(TargetKind::Node);
            // What only a pod can be: stemming from its node, stopped for good.
            assert!(!p.inherits_node_cause || pod, "{class}");
            assert!(!p.stopped_for_good || pod, "{class}");
            assert!(p.judged_on != JudgedOn::StateAndNode || pod, "{class}");
            // What only a node can be judged on, and grouped by.
            assert!(
                !matches!(p.judged_on, JudgedOn::Lease | JudgedOn::BoundPods) || node,
                "{class}"
            );
            assert!(!p.family.is_some_and(Family::of_nodes) || node, "{class}");
            // Every pod that may share a cause with others is grouped by one.
            let may_share = pod && !p.stopped_for_good && !p.inherits_node_cause;
            assert_eq!(p.family == Some(Family::PodsAlike), may_share, "{class}");
            // Counted in a window: its window is a knob, so a policy can widen it.
            if p.judged_on == JudgedOn::CountedInWindow {
                assert!(p.knobs.contains(&Knob::Window), "{class}");
            }
        }
        for &knob in Knob::ALL {
            assert!(
                !knob.classes().is_empty(),
                "{} is taken by no class",
                knob.as_str()
            );
        }
    }
}
