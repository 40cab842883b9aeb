//! Compact views of Pods, Nodes, Events and Leases: only what classification and policy matching
//! read. Strings shared by many objects (namespaces, node names, label sets) are interned by the
//! caller, so a healthy pod costs a few hundred bytes. Times are Unix seconds.

use std::sync::Arc;

/// Unix time in seconds.
pub type Secs = i64;

/// A time stored in 4 bytes: seconds since 2000-01-01 (times outside 2000..2136 are clamped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Stamp(Option<std::num::NonZeroU32>);

const EPOCH_2000: Secs = 946_684_800;

impl Stamp {
    pub fn new(t: Option<Secs>) -> Self {
        Stamp(
            t.and_then(|t| std::num::NonZeroU32::new((t - EPOCH_2000 + 1).clamp(1, u32::MAX as i64) as u32)),
        )
    }

    pub fn get(self) -> Option<Secs> {
        self.0.map(|v| v.get() as Secs - 1 + EPOCH_2000)
    }
}

/// An interned string.
pub type Shared = Arc<str>;

/// Label pairs, sorted by key and interned as a whole: replicas share one allocation.
pub type Labels = Arc<[(Shared, Shared)]>;

/// An object UID: 16 bytes when it is a UUID (as the API server makes them), else the text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Uid {
    Uuid([u8; 16]),
    Other(Box<str>),
}

impl Uid {
    pub fn parse(s: &str) -> Self {
        let hex: Vec<u8> = s.bytes().filter(|&b| b != b'-').collect();
        let dashes_ok = s.len() == 36 && [8, 13, 18, 23].iter().all(|&i| s.as_bytes()[i] == b'-');
        if dashes_ok
            && hex.len() == 32
            && hex.iter().all(u8::is_ascii_hexdigit)
            && hex.iter().all(|b| !b.is_ascii_uppercase())
        {
            let mut out = [0u8; 16];
            for (i, pair) in hex.chunks(2).enumerate() {
                let text = std::str::from_utf8(pair).unwrap_or("00");
                out[i] = u8::from_str_radix(text, 16).unwrap_or(0);
            }
            Uid::Uuid(out)
        } else {
            Uid::Other(s.into())
        }
    }
}

impl Uid {
    /// Whether `text` names this UID, without allocating (it runs for every event of every
    /// object classified).
    pub fn is(&self, text: &str) -> bool {
        match self {
            Uid::Other(s) => **s == *text,
            Uid::Uuid(b) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let text = text.as_bytes();
                let mut at = 0;
                text.len() == 36
                    && b.iter().enumerate().all(|(i, byte)| {
                        if matches!(i, 4 | 6 | 8 | 10) {
                            if text[at] != b'-' {
                                return false;
                            }
                            at += 1;
                        }
                        let ok = text[at] == HEX[(byte >> 4) as usize]
                            && text[at + 1] == HEX[(byte & 15) as usize];
                        at += 2;
                        ok
                    })
            }
        }
    }
}

impl std::fmt::Display for Uid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Uid::Other(s) => f.write_str(s),
            Uid::Uuid(b) => {
                for (i, byte) in b.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        f.write_str("-")?;
                    }
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// The pod phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

/// The kind of a pod's controller (its controller owner reference).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OwnerKind {
    None,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    Job,
    /// A static pod's mirror (owned by its Node).
    Node,
    Other,
}

impl OwnerKind {
    pub fn parse(kind: &str) -> Self {
        match kind {
            "ReplicaSet" => OwnerKind::ReplicaSet,
            "StatefulSet" => OwnerKind::StatefulSet,
            "DaemonSet" => OwnerKind::DaemonSet,
            "Job" => OwnerKind::Job,
            "Node" => OwnerKind::Node,
            _ => OwnerKind::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OwnerKind::None => "None",
            OwnerKind::ReplicaSet => "ReplicaSet",
            OwnerKind::StatefulSet => "StatefulSet",
            OwnerKind::DaemonSet => "DaemonSet",
            OwnerKind::Job => "Job",
            OwnerKind::Node => "Node",
            OwnerKind::Other => "Other",
        }
    }
}

/// A condition's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    pub fn parse(s: &str) -> Self {
        match s {
            "True" => Status::True,
            "False" => Status::False,
            _ => Status::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

/// A container's state, reduced to what tells a failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerState {
    /// Waiting, with the kubelet's reason (ImagePullBackOff, ContainerCreating, ...).
    Waiting {
        reason: Option<Shared>,
        message: Option<Box<str>>,
    },
    Running {
        started: Option<Secs>,
    },
    Terminated {
        reason: Option<Shared>,
        exit_code: i32,
        finished: Option<Secs>,
    },
    /// No state reported yet.
    Unknown,
}

/// One container's status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerView {
    pub name: Shared,
    /// The image as the kubelet reports it (interned: replicas share it).
    pub image: Shared,
    pub init: bool,
    pub ready: bool,
    pub restarts: u32,
    pub state: ContainerState,
    /// How the container last ended, kept while it is not running (a crash loop's evidence;
    /// boxed, as running containers keep none).
    pub last_terminated: Option<Box<LastTermination>>,
    /// When the container was first seen in its current state, if the watcher knows (it does
    /// when it sees the state change); otherwise classification falls back on the pod's times.
    pub state_since: Option<Secs>,
}

/// How a container last ended (its lastState.terminated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastTermination {
    /// StartError, OOMKilled, Error, ...
    pub reason: Option<Shared>,
    pub exit_code: i32,
    /// Its termination message (the log's tail with FallbackToLogsOnError): what a crash
    /// loop's pods have in common when one cause makes them crash.
    pub message: Option<Box<str>>,
    /// When it ended, as the kubelet wrote it: a crash loop's back-off began then, though a
    /// watch that lagged may have seen it later.
    pub finished: Option<Secs>,
}

/// A pod condition (PodScheduled, Initialized, Ready, ...), reduced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodCondition {
    pub type_: Shared,
    pub status: Status,
    pub reason: Option<Shared>,
    pub message: Option<Box<str>>,
    pub since: Option<Secs>,
}

/// What classification and policy matching need of a Pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodView {
    pub uid: Uid,
    pub namespace: Shared,
    /// Shared with the store's keys and indexes (not interned: names are unique).
    pub name: Shared,
    pub labels: Labels,
    pub owner: OwnerKind,
    pub owner_name: Option<Shared>,
    pub node: Option<Shared>,
    pub phase: PodPhase,
    /// The pod-level reason (Evicted, OutOfcpu, NodeAffinity, ...) and message; boxed, as
    /// healthy pods have none.
    pub status_reason: Option<Box<StatusReason>>,
    /// Times, 4 bytes each: read them through created(), scheduled(), started(), deletion().
    pub created_at: Stamp,
    /// When the pod was bound to its node (PodScheduled=True).
    pub scheduled_at: Stamp,
    pub started_at: Stamp,
    pub deletion_at: Stamp,
    pub grace_seconds: Option<u32>,
    pub opted_out: bool,
    pub has_init_containers: bool,
    /// The pod mounts a PersistentVolumeClaim (or a generic ephemeral volume, which is one):
    /// data a replacement could attach while this pod may still write it.
    pub has_claims: bool,
    /// The pod can run on its node only (see `convert::pinned`): moving it cannot help.
    pub pinned: bool,
    /// Only the conditions that are not True: a healthy pod keeps none.
    pub conditions: Box<[PodCondition]>,
    pub containers: Box<[ContainerView]>,
    /// What the watcher saw happen to the pod (kept only once it is in trouble).
    pub timeline: crate::timeline::Timeline,
    /// metadata.resourceVersion when a canonical number (else opaque, and absent): only ever sent
    /// back as a delete's precondition (`checked_by_version`), never compared for order.
    pub version: Option<u64>,
}

/// A pod's status.reason and status.message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusReason {
    pub reason: Option<Shared>,
    pub message: Option<Box<str>>,
}

impl PodView {
    /// Running with every container ready (the view keeps the conditions that are not True, so
    /// a Ready pod shows none of them False): it serves.
    pub fn serving(&self) -> bool {
        self.phase == PodPhase::Running
            && self.containers.iter().any(|c| !c.init)
            && self.containers.iter().filter(|c| !c.init).all(|c| c.ready)
            && !self
                .conditions
                .iter()
                .any(|c| &*c.type_ == "Ready" && c.status != Status::True)
    }

    /// metadata.creationTimestamp (0 when absent).
    pub fn created(&self) -> Secs {
        self.created_at.get().unwrap_or(0)
    }

    pub fn scheduled(&self) -> Option<Secs> {
        self.scheduled_at.get()
    }

    pub fn started(&self) -> Option<Secs> {
        self.started_at.get()
    }

    /// metadata.deletionTimestamp: when the grace period ends.
    pub fn deletion(&self) -> Option<Secs> {
        self.deletion_at.get()
    }

    pub fn reason(&self) -> Option<&str> {
        self.status_reason.as_ref().and_then(|s| s.reason.as_deref())
    }

    pub fn message(&self) -> Option<&str> {
        self.status_reason.as_ref().and_then(|s| s.message.as_deref())
    }

    pub fn condition(&self, type_: &str) -> Option<&PodCondition> {
        self.conditions.iter().find(|c| &*c.type_ == type_)
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self.phase, PodPhase::Succeeded | PodPhase::Failed)
    }
}

/// A node condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeCondition {
    pub type_: Shared,
    pub status: Status,
    pub reason: Option<Shared>,
    pub message: Option<Box<str>>,
    pub since: Option<Secs>,
    pub heartbeat: Option<Secs>,
}

/// What classification and policy matching need of a Node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    pub uid: Uid,
    pub name: Shared,
    pub labels: Labels,
    pub unschedulable: bool,
    pub opted_out: bool,
    /// The policies whose cordon or taint keeps the node out of service (kube-healer's
    /// cordoned-by and tainted-by annotations, while the cordon or taint is there).
    pub held_by: Box<[Shared]>,
    /// kube-healer's cordon mark is on the node, but the node is schedulable: someone else
    /// lifted the cordon.
    pub stale_cordon: bool,
    /// The node is cordoned by someone else (see `marks::cordoned_by_other`).
    pub cordoned_by_other: bool,
    /// kube-healer's taint marks name a taint no longer on the node (see `marks::stale_taints`).
    pub stale_taint: bool,
    /// kube-healer handed the node to a remediator or a replacement (see `marks::handed_over`).
    pub handed_over: bool,
    /// The policies whose cordon someone else lifted, and when that was seen.
    pub cordon_lifted: Box<[(Shared, Secs)]>,
    /// The generation of each policy when it marked the node (see `marks::marked_at`).
    pub marked_at: Box<[(Shared, i64)]>,
    /// The node's annotation keys (their presence is what planned-disruption signals read).
    pub annotations: Box<[Shared]>,
    /// Another tool's resource says the node is taken down on purpose, and how (see
    /// `decide::Maintainer`; set by whoever also watches those resources, None offline).
    pub maintained: Option<Shared>,
    /// Taint keys with their effects, `key:Effect`.
    pub taints: Box<[Shared]>,
    pub conditions: Box<[NodeCondition]>,
    /// Times at which Ready changed, oldest first, as the watcher saw them (bounded by the
    /// watcher; may be empty offline).
    pub ready_transitions: Box<[Secs]>,
}

impl NodeView {
    pub fn condition(&self, type_: &str) -> Option<&NodeCondition> {
        self.conditions.iter().find(|c| &*c.type_ == type_)
    }

    /// Ready status; a node that reports no Ready condition is Unknown.
    pub fn ready(&self) -> Status {
        self.condition("Ready").map_or(Status::Unknown, |c| c.status)
    }

    pub fn has_annotation(&self, key: &str) -> bool {
        self.annotations.iter().any(|a| &**a == key)
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| &**k == key).map(|(_, v)| &**v)
    }

    pub fn has_taint(&self, key: &str) -> bool {
        self.taints
            .iter()
            .any(|t| t.split_once(':').map_or(&**t, |(k, _)| k) == key)
    }
}

/// The object an event is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: Shared,
    pub namespace: Option<Shared>,
    pub name: Shared,
}

/// An event, reduced: one series (same object, reason and message) with its count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventView {
    /// The Event object itself (its uid, else namespace/name): separate objects are separate
    /// series, even with the same reason and message.
    pub id: Option<Uid>,
    pub object: ObjectKey,
    /// involvedObject.uid: 16 bytes inline when a UUID (the kubelet writes a node's name).
    pub object_uid: Option<Uid>,
    pub reason: Shared,
    pub message: Box<str>,
    pub count: u32,
    pub first_seen: Secs,
    pub last_seen: Secs,
}

/// A node Lease (kube-node-lease/<node>).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseView {
    pub node: Shared,
    /// spec.renewTime, as the kubelet's clock wrote it.
    pub renewed: Option<Secs>,
    pub duration_seconds: Option<i32>,
    /// When this operator saw `renewed` change, on its own clock (None offline: a dump has only
    /// the kubelet's times). Heartbeats are aged from it, as the node lifecycle controller ages
    /// them from its own probe time: a kubelet's clock skewed by 30 s is no late heartbeat.
    pub observed: Option<Secs>,
}

impl LeaseView {
    /// When the last heartbeat came: seen by this operator, else as the kubelet wrote it.
    pub fn heartbeat(&self) -> Option<Secs> {
        self.observed.or(self.renewed)
    }
}

#[cfg(test)]
mod tests;
