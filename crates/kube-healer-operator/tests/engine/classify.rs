//! What the engine finds: deadlines, Ready flips, container states kept, orphans, correlated
//! storms, conditions without a transition time, heartbeats aged on the operator's clock.

use super::*;

#[test]
fn a_terminating_pod_is_found_at_its_deadline_and_due_a_minute_later() {
    let (mut e, clock) = engine();
    clock.set(T0);
    e.apply(pod(json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u", "creationTimestamp": at(T0 - 600), "deletionTimestamp": at(T0 + 10)},
        "spec": {"containers": []}, "status": {"phase": "Running"}})));
    let t = target("ns", "p");
    assert!(e.tracked(&t).is_empty(), "within its grace period");
    assert_eq!(
        e.next_wake(&t),
        Some(T0 + 10),
        "woken exactly at the deletionTimestamp"
    );

    clock.set(T0 + 10);
    e.fire_due_timers();
    assert_eq!(e.tracked(&t), [(FailureClass::StuckTerminating, T0 + 10, false)]);
    assert_eq!(
        e.next_wake(&t),
        Some(T0 + 70),
        "due after the class's 1m threshold"
    );

    clock.set(T0 + 70);
    e.fire_due_timers();
    assert_eq!(e.tracked(&t), [(FailureClass::StuckTerminating, T0 + 10, true)]);
}

#[test]
fn ready_flips_are_counted_as_flapping() {
    let (mut e, clock) = engine();
    for (i, status) in ["True", "False", "True", "False", "True"].iter().enumerate() {
        let t = T0 + 60 * i as Secs;
        clock.set(t);
        e.apply(node("n", status, t));
    }
    let flapping = e.tracked(&Target::Node("n".into()));
    assert!(
        flapping
            .iter()
            .any(|(c, since, _)| *c == FailureClass::NodeFlapping && *since == T0 + 60),
        "{flapping:?}"
    );
    assert_eq!(e.stores().node_view("n").unwrap().ready_transitions.len(), 4);
}

#[test]
fn a_container_state_keeps_the_time_it_began() {
    let (mut e, clock) = engine();
    let waiting = |reason: &str| {
        pod(
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u", "creationTimestamp": at(T0 - 3600)},
            "spec": {"nodeName": "n", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Pending", "startTime": at(T0 - 3600),
                "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": reason}}}]}}),
        )
    };
    clock.set(T0);
    e.apply(node("n", "True", T0 - 86400));
    e.apply(waiting("ContainerCreating"));
    clock.set(T0 + 50);
    e.apply(waiting("ImagePullBackOff"));
    clock.set(T0 + 80);
    e.apply(waiting("ImagePullBackOff"));
    assert_eq!(
        e.tracked(&target("ns", "p")),
        [(FailureClass::ImagePullFailure, T0 + 50, false)]
    );
    assert_eq!(e.next_wake(&target("ns", "p")), Some(T0 + 50 + 300));
}

#[test]
fn deleting_a_node_orphans_its_pods() {
    let (mut e, clock) = engine();
    clock.set(T0);
    e.apply(node("gone", "True", T0 - 86400));
    e.apply(Change::Node(Box::new(Event::InitDone)));
    e.apply(pod(json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u", "creationTimestamp": at(T0 - 600)},
        "spec": {"nodeName": "gone", "containers": []},
        "status": {"phase": "Running", "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {}}}]}})));
    assert!(e.tracked(&target("ns", "p")).is_empty());
    clock.set(T0 + 5);
    let n: Node = serde_json::from_value(json!({"metadata": {"name": "gone"}})).unwrap();
    e.apply(Change::Node(Box::new(Event::Delete(n))));
    assert_eq!(
        e.tracked(&target("ns", "p")),
        [(FailureClass::Orphaned, T0 + 5, false)]
    );
}

#[test]
fn many_nodes_down_together_is_one_correlated_finding() {
    let (mut e, clock) = engine();
    clock.set(T0);
    for i in 0..10 {
        e.apply(node(&format!("n{i}"), "True", T0 - 86400));
    }
    for i in 0..3 {
        e.apply(node(&format!("n{i}"), "Unknown", T0));
    }
    assert_eq!(e.correlated().len(), 1, "3 of 10 nodes (30%) down together");
    assert_eq!(e.correlated()[0].members.len(), 3);
    e.apply(node("n0", "True", T0 + 60));
    assert!(e.correlated().is_empty(), "2 of 10 are node faults");
}

#[test]
fn a_condition_without_transition_time_keeps_its_first_sight() {
    let (mut e, clock) = engine();
    let deadlock = || {
        let n: Node = serde_json::from_value(
            json!({"metadata": {"name": "kd", "uid": "kd"}, "status": {"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": at(T0 - 86400)},
            {"type": "KernelDeadlock", "status": "True", "reason": "DockerHung"}]}}),
        )
        .unwrap();
        Change::Node(Box::new(Event::Apply(n)))
    };
    clock.set(T0);
    e.apply(deadlock());
    clock.set(T0 + 90);
    e.apply(deadlock());
    let found = e.tracked(&Target::Node("kd".into()));
    assert!(
        found
            .iter()
            .any(|(c, since, _)| *c == FailureClass::NodeCondition && *since == T0),
        "{found:?}"
    );
}

fn lease(node: &str, renewed: Secs) -> Change {
    let t = k8s_openapi::jiff::Timestamp::from_second(renewed).unwrap();
    let l: k8s_openapi::api::coordination::v1::Lease = serde_json::from_value(json!({
        "metadata": {"name": node, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": t.strftime("%Y-%m-%dT%H:%M:%S.000000Z").to_string()}}))
    .unwrap();
    Change::Lease(Box::new(Event::Apply(l)))
}

fn lagging(e: &Engine, node: &str) -> bool {
    let found = e.tracked(&Target::Node(node.into()));
    found.iter().any(|(c, _, _)| *c == FailureClass::HeartbeatLag)
}

#[test]
fn heartbeats_are_aged_on_the_operators_clock_and_only_while_leases_flow() {
    let (mut e, clock) = engine();
    for n in ["steady", "stops"] {
        e.apply(node(n, "True", T0 - 3600));
    }
    // The kubelets' clocks are 35 s behind the operator's: every renewTime reads 35 s old.
    let skew = 35;
    for step in 0..=6 {
        let t = T0 + 5 * step;
        clock.set(t);
        e.apply(lease("steady", t - skew));
        if step <= 2 {
            e.apply(lease("stops", t - skew));
        }
        e.fire_due_timers();
    }
    assert!(
        !lagging(&e, "steady"),
        "renewing every 5 s, whatever its clock says"
    );
    // "stops" was last seen renewed at T0+10; at T0+30 its heartbeat is 20 s old.
    assert!(
        lagging(&e, "stops"),
        "{:?}",
        e.tracked(&Target::Node("stops".into()))
    );

    // No Lease renews at all for 20 s (a stalled watch, a control plane not writing): no node
    // can be told late, so none is.
    let (mut e, clock) = engine();
    e.apply(node("quiet", "True", T0 - 3600));
    e.apply(lease("quiet", T0 - skew));
    clock.set(T0 + 25);
    e.fire_due_timers();
    e.apply(node("quiet", "True", T0 - 3600));
    assert!(
        !lagging(&e, "quiet"),
        "{:?}",
        e.tracked(&Target::Node("quiet".into()))
    );
}
