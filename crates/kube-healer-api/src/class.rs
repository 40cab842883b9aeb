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

macro_rules! failure_classes {
    ($($(#[doc = $doc:literal])* $name:ident: $kind:ident,)*) => {
        /// A named failure class. Pod classes: Unschedulable, StuckPending, ImagePullFailure,
        /// StuckContainerCreating, StuckInitializing, ContainerStartFailure, CrashLoop,
        /// AdmissionRejected, StuckTerminating, Evicted, Failed, NodeLost, Orphaned. Node classes:
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
        }
    };
    (@kind Pod) => { Some(TargetKind::Pod) };
    (@kind Node) => { Some(TargetKind::Node) };
    (@kind Any) => { None };
}

failure_classes! {
    /// Pending and refused by the scheduler (PodScheduled=False, reason Unschedulable).
    Unschedulable: Pod,
    /// Pending, not bound to a node, without a scheduling verdict or any event: nothing is happening.
    StuckPending: Pod,
    /// A container waits on its image: ImagePullBackOff, ErrImagePull, ImageInspectError, ErrImageNeverPull, InvalidImageName.
    ImagePullFailure: Pod,
    /// A container waits in ContainerCreating (sandbox or volume setup never finishes).
    StuckContainerCreating: Pod,
    /// The pod stays in PodInitializing or its init containers never finish.
    StuckInitializing: Pod,
    /// A container cannot start: RunContainerError, CreateContainerError, CreateContainerConfigError, StartError.
    ContainerStartFailure: Pod,
    /// A container restarts again and again (CrashLoopBackOff with a restart count at or above the threshold).
    CrashLoop: Pod,
    /// The kubelet refused the pod at admission: OutOfcpu, OutOfmemory, OutOfpods, NodeAffinity, UnexpectedAdmissionError and the like.
    AdmissionRejected: Pod,
    /// Still present after its deletionTimestamp (which already includes the grace period).
    StuckTerminating: Pod,
    /// Failed with reason Evicted: a leftover of kubelet node-pressure eviction.
    Evicted: Pod,
    /// Failed for any other reason, and not a completed Job pod.
    Failed: Pod,
    /// Bound to a node that is NotReady or Unknown.
    NodeLost: Pod,
    /// Bound to a node that no longer exists.
    Orphaned: Pod,
    /// Ready=False: the kubelet reports the node unhealthy.
    NodeNotReady: Node,
    /// Ready=Unknown: the kubelet stopped posting node status.
    NodeUnreachable: Node,
    /// The kubelet reports "PLEG is not healthy": the container runtime stopped answering.
    PLEGUnhealthy: Node,
    /// Ready changed at least N times within a window, counted from conditions and NodeNotReady/NodeReady events.
    NodeFlapping: Node,
    /// MemoryPressure, DiskPressure or PIDPressure is True.
    NodePressure: Node,
    /// Any other condition that signals a problem (KernelDeadlock, ReadonlyFilesystem, FrequentContainerdRestart, ...).
    NodeCondition: Node,
    /// The node Lease is renewed late while the node still reads Ready: the warning before NotReady.
    HeartbeatLag: Node,
    /// Repeated SystemOOM events on the node within a window.
    SystemOOM: Node,
    /// A Ready node whose bound pods do not start: several of them, not one.
    NodeBlackHole: Node,
    /// Events with a given reason and message pattern, at least N within a window (only through policies).
    EventPattern: Any,
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
        assert_eq!(FailureClass::ALL.len(), 23);
        assert!(FailureClass::EventPattern.applies_to(TargetKind::Pod));
        assert!(FailureClass::EventPattern.applies_to(TargetKind::Node));
        assert!(!FailureClass::CrashLoop.applies_to(TargetKind::Node));
        assert!(!FailureClass::NodeFlapping.applies_to(TargetKind::Pod));
    }
}
