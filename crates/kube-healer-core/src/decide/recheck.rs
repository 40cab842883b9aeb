//! The recheck right before a destructive call: the target (and the node a pod decision depends
//! on) read afresh from the API server, reclassified by the same code that made the decision,
//! with the same condition. A decision can wait seconds or minutes between the gate and the call
//! (retries, the executor's queue, a PodDisruptionBudget); the call goes ahead only if the
//! failure still holds, in the same episode where the class has a stable start.

use kube_healer_api::{ActionKind, FailureClass, JudgedOn};

use crate::carry::{carry_lease, carry_node, carry_pod};
use crate::cluster::Snapshot;
use crate::decide::{
    PlannedSignals, ShutdownEvidence, futile_move, left_to_maintenance, planned_disruption, unsafe_for,
    unsafe_for_node,
};
use crate::finding::Subject;
use crate::policy::{CompiledCondition, TargetView};
use crate::view::{EventView, LeaseView, NodeView, PodView, Secs};

/// What the decision saw around its target, taken along to the call.
#[derive(Clone, Debug)]
pub struct Seen {
    pub condition: CompiledCondition,
    /// The failure's start, as decided (the episode).
    pub episode: Secs,
    /// The pod decided on (pod decisions).
    pub pod: Option<PodView>,
    /// The node decided on, or the pod's node.
    pub node: Option<NodeView>,
    pub lease: Option<LeaseView>,
    /// The events about the target (at most the index's cap per object).
    pub events: Vec<EventView>,
    /// Node decisions: the pods bound to the node (NodeBlackHole counts them).
    pub pods_on_node: Vec<PodView>,
    /// Node decisions: the node as the cause of its pods' failures, as correlation found it
    /// (NodeBlackHole reads it; its evidence, pods running fine on other nodes, is the
    /// cluster's, not the node's to read afresh).
    pub sick_node: Option<crate::classify::sick_node::SickNodeCause>,
    pub leases_seen_renewing: Option<Secs>,
    /// The step opted out of fencing (`forceDelete.withoutFencing`).
    pub without_fencing: bool,
    /// The evidence of a shutdown the step asks for (OutOfService).
    pub shutdown: ShutdownEvidence,
    /// In-house maintenance tooling's signals (node decisions, and pod decisions whose failure
    /// stems from their node, recheck planned disruption).
    pub planned: std::sync::Arc<PlannedSignals>,
    /// Until when a pod its node took down is left to the node's planned disruption (core's
    /// `maintenance_ends`, from the episode as the gate counts it, which a failure carried over
    /// a flap or a return keeps, unlike `episode`).
    pub maintenance_ends: Secs,
    /// The cluster's disruption budget as the operator was given it, for an action that takes a
    /// node out: the recheck counts it again on the nodes read afresh (`Tally`).
    pub budget: Option<String>,
}

/// A fresh read of an object.
#[derive(Clone, Debug)]
pub enum Read<T> {
    Found(T),
    /// The API server answered 404.
    Gone,
    /// Not read (the decision does not depend on it).
    NotRead,
}

/// The recheck's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fresh {
    /// The failure still holds: go ahead.
    Holds,
    /// The target is gone (404, or replaced by another UID).
    Gone(String),
    /// The failure holds, but the action is unsafe on what was read (a StatefulSet pod's node
    /// read back as present: ForceDelete waits).
    Unsafe(String),
    /// It does not: no call; the message says what was found instead.
    Cleared(String),
    /// The target opted out of healing since the decision (its owner's word: no call).
    OptedOut(String),
    /// The node was taken into someone else's planned disruption since the decision.
    Maintenance(String),
    /// Someone undid kube-healer's work on the node since the decision (the person wins).
    Overridden(String),
    /// Counted on the nodes read afresh, the cluster's disruption budget refuses the action.
    BudgetExceeded(String),
}

/// Whether a class's start can move while the failure lasts (counted over a sliding window):
/// only its presence is compared, not its start.
fn start_slides(class: FailureClass) -> bool {
    class.properties().judged_on == JudgedOn::CountedInWindow
}

/// Reclassifies a pod from its fresh read (and its node's, if read), and applies the action's
/// safety rule to what was read.
/// The version a pod's removal may carry as its precondition instead of a read and recheck before
/// it: a Delete or ForceDelete of a dead pod (Evicted, Failed, AdmissionRejected: a terminal
/// phase, which a pod never leaves) at the version the decision saw. Whatever else could change
/// the verdict (an opt-out annotation, labels, an owner, a deletion begun, another pod of the
/// name) changes the resourceVersion: the API server refuses a delete whose precondition names
/// an older one, atomically, and the read and recheck run then. The same pod object at the
/// same version is classified as it was (the class reads the pod alone, and its time only
/// grows), so the recheck it spares could only have agreed.
pub fn checked_by_version(seen: &Seen, action: ActionKind) -> Option<u64> {
    let pod = seen.pod.as_ref()?;
    let dead = seen.condition.class.properties().stopped_for_good;
    let removal = action.properties().removes_at_once();
    if dead && removal && pod.is_terminal() {
        pod.version
    } else {
        None
    }
}

pub fn recheck_pod(
    seen: &Seen,
    action: ActionKind,
    pod: Read<PodView>,
    node: Read<NodeView>,
    now: Secs,
) -> Fresh {
    let Some(decided) = &seen.pod else {
        return Fresh::Gone("the decision saw no pod".into());
    };
    let mut pod = match pod {
        Read::Found(p) if p.uid == decided.uid => p,
        Read::Found(_) => return Fresh::Gone("the pod was replaced (another UID)".into()),
        Read::Gone | Read::NotRead => return Fresh::Gone("the pod is gone".into()),
    };
    carry_pod(&mut pod, decided, now);
    let read_node = matches!(node, Read::Found(_));
    let (nodes, nodes_known) = match node {
        Read::Found(mut n) => {
            carry_node(&mut n, seen.node.as_ref(), now);
            (vec![n], true)
        }
        // A 404 is a node confirmed gone; not read, the node is as the decision saw it.
        Read::Gone => (vec![], true),
        Read::NotRead => (seen.node.clone().into_iter().collect(), seen.node.is_some()),
    };
    let mut snapshot = Snapshot::new(
        vec![pod],
        nodes,
        seen.events.clone(),
        seen.lease.clone().into_iter().collect(),
    );
    snapshot.nodes_known = nodes_known;
    snapshot.leases_seen_renewing = seen.leases_seen_renewing;
    let pod = &snapshot.pods[0];
    let subject = Subject::pod(pod);
    let fresh_node = snapshot.nodes.first().filter(|_| read_node);
    match verdict(seen, TargetView::Pod(pod), &snapshot, now) {
        Fresh::Holds if let Some(held) = left_to_its_node(seen, fresh_node, now) => {
            Fresh::Maintenance(format!("read afresh right before the call, {}", held.message))
        }
        Fresh::Holds => match futile_move(pod, &subject, seen.condition.class, action)
            .or_else(|| unsafe_for(pod, &snapshot, &subject, action, seen.without_fencing, now))
        {
            Some(why) => Fresh::Unsafe(why),
            None => Fresh::Holds,
        },
        other => other,
    }
}

/// The planned disruption the pod's node, read afresh, is under, which the pod is left to (as
/// the gate asked it of the node it knew): a maintenance begun since the decision, or one the
/// decision's lagging view missed.
fn left_to_its_node(seen: &Seen, node: Option<&NodeView>, now: Secs) -> Option<crate::decide::HeldFor> {
    left_to_maintenance(
        seen.condition.class,
        node?,
        &seen.planned,
        (seen.maintenance_ends, now),
    )
}

/// Reclassifies a node from its fresh read (and its Lease's, if read), and applies the action's
/// safety rule to what was read (OutOfService: the node still shut down, its Lease still expired).
pub fn recheck_node(
    seen: &Seen,
    action: ActionKind,
    node: Read<NodeView>,
    lease: Read<LeaseView>,
    now: Secs,
) -> Fresh {
    let mut node = match node {
        Read::Found(n) => n,
        Read::Gone | Read::NotRead => return Fresh::Gone("the node is gone".into()),
    };
    carry_node(&mut node, seen.node.as_ref(), now);
    let lease = match lease {
        Read::Found(mut l) => {
            carry_lease(&mut l, seen.lease.as_ref(), now);
            Some(l)
        }
        Read::Gone => None,
        Read::NotRead => seen.lease.clone(),
    };
    let mut snapshot = Snapshot::new(
        seen.pods_on_node.clone(),
        vec![node],
        seen.events.clone(),
        lease.into_iter().collect(),
    );
    snapshot.leases_seen_renewing = seen.leases_seen_renewing;
    if let Some(sick) = &seen.sick_node {
        let name = snapshot.nodes[0].name.to_string();
        snapshot.sick_nodes.insert(name, sick.clone());
    }
    let node = &snapshot.nodes[0];
    match verdict(seen, TargetView::Node(node), &snapshot, now) {
        Fresh::Holds => others_work(node, seen)
            .or_else(|| {
                unsafe_for_node(node, &snapshot, action, seen.shutdown, now)
                    .map(|why| Fresh::Unsafe(why.message))
            })
            .unwrap_or(Fresh::Holds),
        other => other,
    }
}

/// Someone else's work on the node, read afresh: a planned disruption begun, or kube-healer's
/// cordon lifted (or its hold released, `kube-healer release`), since the decision.
fn others_work(node: &NodeView, seen: &Seen) -> Option<Fresh> {
    if node.stale_cordon {
        return Some(Fresh::Overridden(
            "read afresh right before the call, someone had uncordoned it since kube-healer's cordon: the person wins".into(),
        ));
    }
    let latest_lift = |v: &NodeView| v.cordon_lifted.iter().map(|(_, at)| *at).max();
    if latest_lift(node) > seen.node.as_ref().and_then(latest_lift) {
        return Some(Fresh::Overridden(
            "read afresh right before the call, a person lifted kube-healer's hold on it since the decision: the person wins".into(),
        ));
    }
    planned_disruption(node, &seen.planned).map(|signal| {
        Fresh::Maintenance(format!(
            "read afresh right before the call, it is under planned disruption: {signal}"
        ))
    })
}

fn verdict(seen: &Seen, target: TargetView<'_>, snapshot: &Snapshot, now: Secs) -> Fresh {
    let opted_out = match target {
        TargetView::Pod(p) => p.opted_out,
        TargetView::Node(n) => n.opted_out,
    };
    if opted_out {
        return Fresh::OptedOut(format!(
            "read afresh right before the call, it carries {}=true",
            kube_healer_api::OPT_OUT_ANNOTATION
        ));
    }
    let class = seen.condition.class;
    match seen.condition.find(target, snapshot, now) {
        None => Fresh::Cleared(format!(
            "read afresh right before the call, it is no longer {class}"
        )),
        Some(f) if f.since != seen.episode && !start_slides(class) => Fresh::Cleared(format!(
            "read afresh right before the call, its {class} began anew (at {}, the decision's at {})",
            f.since, seen.episode
        )),
        Some(_) => Fresh::Holds,
    }
}

/// Whether a node shows it recovered: Ready, and its status settled, for `debounce`, as its own
/// conditions date it: Ready since then, and no other condition changed since (a Ready node
/// whose KernelDeadlock cleared a second ago has not shown it stays clear). Err: not yet, with
/// when it will have (None: not Ready). A hold (a cordon, a taint, a remediation) comes off only
/// on this evidence, read by the engine on its store and again by the revert on the node read
/// afresh right before it: a process that just started, or whose watch lags, may hold a view of
/// the node older than its latest failure.
pub fn settled_for(node: &NodeView, debounce: Secs, now: Secs) -> Result<(), Option<Secs>> {
    let ready = node
        .condition("Ready")
        .filter(|c| c.status == crate::view::Status::True)
        .ok_or(None)?;
    let others = node
        .conditions
        .iter()
        .filter(|c| &*c.type_ != "Ready")
        .filter_map(|c| c.since);
    let since = others.fold(ready.since.unwrap_or(now), Secs::max);
    match now >= since + debounce {
        true => Ok(()),
        false => Err(Some(since + debounce)),
    }
}

/// Whether a policy still judges the mark it left on a node: it is there (`generation`: its
/// present one, None if it is gone) and the mark was made under its present spec. An edited
/// policy is a different judge: it may no longer look for the failure its earlier spec marked
/// the node for, and its "no failure" is no evidence the node recovered. A mark made under
/// another spec, or by a deleted policy, comes off only when the node shows no failure of any
/// class. A mark with no generation beside it (made by a version that wrote none) is taken as
/// made under the present spec, as that version judged it.
pub fn judges_its_mark(node: &NodeView, policy: &str, generation: Option<Option<i64>>) -> bool {
    let Some(present) = generation else {
        return false;
    };
    match node.marked_at.iter().find(|(p, _)| &**p == policy) {
        None => true,
        Some((_, made)) => present == Some(*made),
    }
}
