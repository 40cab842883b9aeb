//! Whether a node is shut down enough for the out-of-service taint. The taint is Kubernetes'
//! non-graceful node shutdown: the pod GC force-deletes the node's pods and the attach-detach
//! controller detaches their volumes at once. On a node that still runs them, a StatefulSet pod
//! would run twice and a volume be written by two. kube-healer cannot see a node's power, so it
//! asks for the two signs a node that is off gives and a flaky one rarely does for long: its
//! kubelet stopped renewing its Lease, and the node lifecycle controller marked it unreachable.
//! A partition gives the same signs; many nodes going down together is held by the storm guards.

use kube_healer_api::action::OutOfServiceParams;
use kube_healer_api::{ActionKind, Fencing, HealingPolicySpec};

use super::safety::Unsafe;
use crate::classify::pod::human;
use crate::cluster::ClusterView;
use crate::view::{NodeView, Secs, Status};

/// The lease duration the kubelet writes when a Lease says none (its default).
const DEFAULT_LEASE_SECONDS: Secs = 40;

/// How soon to look again when the expiry is due but the Lease stream has not shown it.
const STALLED_RETRY: Secs = 10;

/// The evidence a policy step asks for before it takes a node out of service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownEvidence {
    pub lease_expired_for: Secs,
    pub unreachable_for: Secs,
}

impl ShutdownEvidence {
    /// The evidence step `step` of the policy asks for (its defaults when it sets none).
    pub fn of(spec: &HealingPolicySpec, step: usize) -> Self {
        let params = spec.actions.get(step).and_then(|s| s.out_of_service.as_ref());
        ShutdownEvidence::of_params(params.unwrap_or(&OutOfServiceParams::default()))
    }

    pub fn of_params(p: &OutOfServiceParams) -> Self {
        ShutdownEvidence {
            lease_expired_for: p.lease_expired_for().as_std().as_secs() as Secs,
            unreachable_for: p.unreachable_for().as_std().as_secs() as Secs,
        }
    }
}

impl Default for ShutdownEvidence {
    fn default() -> Self {
        ShutdownEvidence::of_params(&OutOfServiceParams::default())
    }
}

/// Why the decided node action is unsafe for this node now, if it is. Only OutOfService has a
/// rule: the node unreachable (Ready Unknown) for `unreachable_for`, and its Lease expired for
/// `lease_expired_for`. The Lease's expiry is counted on this operator's clock (when it saw the
/// renewal), and only up to the last time any Lease was seen renewing: while the Lease stream
/// itself is stalled, no node's Lease can be told expired. A node with no Lease is unknown, and
/// unknown is never shut down.
pub fn unsafe_for_node(
    node: &NodeView,
    cluster: &impl ClusterView,
    action: ActionKind,
    evidence: ShutdownEvidence,
    now: Secs,
) -> Option<Unsafe> {
    if action.properties().fencing != Fencing::NodeShutDown {
        return None;
    }
    let name = &node.name;
    let hold = |why: String, retry_at: Option<Secs>| {
        Some(Unsafe {
            message: format!(
                "node {name} {why}: the out-of-service taint force-deletes its pods and detaches their volumes, so it is only for a node that is shut down"
            ),
            retry_at,
        })
    };
    let ready = node.condition("Ready");
    if node.ready() != Status::Unknown || ready.is_none() {
        let status = node.ready();
        return hold(format!("is not unreachable (Ready is {status:?})"), None);
    }
    let since = ready.and_then(|c| c.since).unwrap_or(now);
    if now - since < evidence.unreachable_for {
        return hold(
            format!(
                "has been unreachable for {}, not yet {}",
                human(now - since),
                human(evidence.unreachable_for)
            ),
            Some(since + evidence.unreachable_for),
        );
    }
    let Some(lease) = cluster.lease(name) else {
        let why = "has no Lease in view, so its kubelet is not known to have stopped";
        return hold(why.into(), None);
    };
    let Some(heartbeat) = lease.heartbeat() else {
        let why = "has a Lease never renewed, so its kubelet is not known to have stopped";
        return hold(why.into(), None);
    };
    let duration = lease.duration_seconds.map_or(DEFAULT_LEASE_SECONDS, Secs::from);
    let counted_until = cluster.leases_seen_renewing().map_or(now, |seen| seen.min(now));
    let expired = counted_until - (heartbeat + duration);
    if expired < evidence.lease_expired_for {
        return hold(
            format!(
                "has a Lease expired for {} as far as the Lease stream shows, not yet {}",
                human(expired.max(0)),
                human(evidence.lease_expired_for)
            ),
            // Counted only while Leases flow: with the stream stalled, look again shortly.
            Some((heartbeat + duration + evidence.lease_expired_for).max(now + STALLED_RETRY)),
        );
    }
    None
}
