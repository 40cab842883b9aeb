//! OutOfService, Kubernetes' non-graceful node shutdown, only on the evidence of a shutdown: the
//! node unreachable for long enough and its Lease expired for long enough, counted only while the
//! Lease stream shows other Leases renewing; the recheck applies the same rule to fresh reads.

mod common;

use common::*;
use kube_healer_api::ActionKind;
use kube_healer_core::Snapshot;
use kube_healer_core::convert::{Interner, lease_view, node_view};
use kube_healer_core::decide::{Fresh, Read, Seen, ShutdownEvidence, recheck_node, unsafe_for_node};
use kube_healer_core::policy::CompiledPolicy;
use kube_healer_core::view::{LeaseView, NodeView, Secs};
use serde_json::json;

const EVIDENCE: ShutdownEvidence = ShutdownEvidence {
    lease_expired_for: 300,
    unreachable_for: 300,
};

/// A node Ready Unknown since `since` (offset from NOW).
fn unreachable(since: Secs) -> NodeView {
    let v = node(
        "w1",
        json!([{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
            "message": "Kubelet stopped posting node status.", "lastTransitionTime": at(since)}]),
    );
    node_view(&serde_json::from_value(v).unwrap(), &mut Interner::default()).unwrap()
}

fn lease_of(renewed: Secs) -> LeaseView {
    let v = lease("w1", renewed);
    lease_view(&serde_json::from_value(v).unwrap(), &mut Interner::default()).unwrap()
}

fn cluster(node: &NodeView, lease: Option<LeaseView>, stream: Option<Secs>) -> Snapshot {
    let mut s = Snapshot::new(vec![], vec![node.clone()], vec![], lease.into_iter().collect());
    s.leases_seen_renewing = stream.map(|t| NOW + t);
    s
}

fn verdict(
    node: &NodeView,
    lease: Option<LeaseView>,
    stream: Option<Secs>,
) -> Option<(String, Option<Secs>)> {
    let c = cluster(node, lease, stream);
    unsafe_for_node(node, &c, ActionKind::OutOfService, EVIDENCE, NOW).map(|u| (u.message, u.retry_at))
}

#[test]
fn a_node_unreachable_with_its_lease_long_expired_may_be_taken_out_of_service() {
    // Unreachable 10 minutes, Lease last renewed 11 minutes ago (expired 10m20s), other Leases
    // renewing a second ago.
    assert_eq!(verdict(&unreachable(-600), Some(lease_of(-660)), Some(-1)), None);
    // Offline (no Lease stream observed), the same.
    assert_eq!(verdict(&unreachable(-600), Some(lease_of(-660)), None), None);
}

#[test]
fn not_yet_unreachable_long_enough_holds_until_it_is() {
    let (why, retry) = verdict(&unreachable(-120), Some(lease_of(-660)), Some(-1)).unwrap();
    assert!(why.contains("unreachable for 2m, not yet 5m"), "{why}");
    assert_eq!(
        retry,
        Some(NOW - 120 + 300),
        "decided again when the evidence is due"
    );
}

#[test]
fn a_lease_renewed_recently_holds_it_the_kubelet_is_alive() {
    // Unreachable (the node lifecycle controller has not seen the status), yet the Lease was
    // renewed 60 s ago: expired for 19 s when other Leases were last seen renewing.
    let (why, retry) = verdict(&unreachable(-600), Some(lease_of(-60)), Some(-1)).unwrap();
    assert!(why.contains("Lease expired for 19s"), "{why}");
    assert_eq!(retry, Some(NOW - 60 + 40 + 300));
}

#[test]
fn a_stalled_lease_stream_counts_no_expiry_past_its_last_renewal() {
    // No Lease at all seen renewing for 8 minutes (a stalled watch, a control plane not writing):
    // the Lease expired 20 s before the stream stopped, as far as anyone can tell.
    let (why, retry) = verdict(&unreachable(-600), Some(lease_of(-540)), Some(-480)).unwrap();
    assert!(
        why.contains("Lease expired for 20s as far as the Lease stream shows"),
        "{why}"
    );
    assert!(
        retry.is_some_and(|r| r > NOW),
        "looked at again later, never in the past: {retry:?}"
    );
}

#[test]
fn no_lease_or_a_ready_node_is_never_shut_down() {
    let (why, retry) = verdict(&unreachable(-600), None, Some(-1)).unwrap();
    assert!(why.contains("has no Lease"), "{why}");
    assert_eq!(retry, None, "only a change can lift it");
    let ready = node_view(
        &serde_json::from_value(ready_node("w1")).unwrap(),
        &mut Interner::default(),
    )
    .unwrap();
    let (why, _) = verdict(&ready, Some(lease_of(-660)), Some(-1)).unwrap();
    assert!(why.contains("is not unreachable (Ready is True)"), "{why}");
    // Other actions have no such rule.
    let c = cluster(&ready, None, None);
    assert!(unsafe_for_node(&ready, &c, ActionKind::Cordon, EVIDENCE, NOW).is_none());
}

#[test]
fn the_policy_step_sets_the_evidence_and_defaults_to_five_minutes_each() {
    let policy: kube_healer_api::HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy", "metadata": {"name": "p"},
        "spec": {"target": {"kind": "Node"}, "conditions": [{"class": "NodeUnreachable"}],
            "actions": [{"action": "OutOfService"},
                {"action": "OutOfService", "outOfService": {"leaseExpiredFor": "30s", "unreachableFor": "1m"}}]}}))
    .unwrap();
    let compiled = CompiledPolicy::compile(&policy).unwrap();
    let spec = &compiled.policy.spec;
    assert_eq!(ShutdownEvidence::of(spec, 0), EVIDENCE);
    assert_eq!(
        ShutdownEvidence::of(spec, 1),
        ShutdownEvidence {
            lease_expired_for: 30,
            unreachable_for: 60
        }
    );
}

#[test]
fn the_recheck_holds_it_when_the_lease_reads_back_renewed() {
    let decided = unreachable(-600);
    let policy: kube_healer_api::HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy", "metadata": {"name": "p"},
        "spec": {"target": {"kind": "Node"}, "conditions": [{"class": "NodeUnreachable"}],
            "actions": [{"action": "OutOfService"}]}}))
    .unwrap();
    let seen = Seen {
        planned: Default::default(),
        maintenance_ends: 0,
        budget: None,
        condition: CompiledPolicy::compile(&policy).unwrap().conditions.remove(0),
        episode: NOW - 600,
        pod: None,
        node: Some(decided.clone()),
        // As the operator's store holds it: seen renewed then.
        lease: Some(LeaseView {
            observed: Some(NOW - 660),
            ..lease_of(-660)
        }),
        events: vec![],
        pods_on_node: vec![],
        sick_node: None,
        leases_seen_renewing: Some(NOW - 1),
        without_fencing: false,
        shutdown: EVIDENCE,
    };
    let fresh = |lease: Read<LeaseView>| {
        recheck_node(
            &seen,
            ActionKind::OutOfService,
            Read::Found(decided.clone()),
            lease,
            NOW,
        )
    };
    assert_eq!(fresh(Read::Found(lease_of(-660))), Fresh::Holds);
    // The kubelet came back between the decision and the call: its Lease renewed 5 s ago.
    match fresh(Read::Found(lease_of(-5))) {
        Fresh::Unsafe(why) => assert!(why.contains("Lease expired for"), "{why}"),
        other => panic!("{other:?}"),
    }
    // The Lease is gone (its node object was deleted and recreated, or someone removed it).
    match fresh(Read::Gone) {
        Fresh::Unsafe(why) => assert!(why.contains("has no Lease"), "{why}"),
        other => panic!("{other:?}"),
    }
}
