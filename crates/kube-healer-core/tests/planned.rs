//! Someone else's work (README, "Safety model": planned disruption, the person wins, an honest
//! disruption budget): a node taken down on purpose gets no node action and its pods are left
//! to the maintenance for a grace; a cordon a person lifted is not put back for the failure nor
//! within the cooldown; only what kube-healer placed is its own; the budget counts every node
//! out of service, whoever took it out.

mod common;

use common::*;
use kube_healer_api::{
    ActionKind, CORDON_LIFTED_ANNOTATION, CORDONED_BY_ANNOTATION, FailureClass, HealingPolicySpec,
    REMEDIATED_BY_ANNOTATION, TAINTED_BY_ANNOTATION, reasons,
};
use kube_healer_core::convert::{Interner, node_view, pod_view};
use kube_healer_core::decide::{
    Budget, Decision, Facts, Fresh, Ladder, Maintainer, OutBy, OutCount, OutOfService, PlannedSignals, Read,
    Seen, ShutdownEvidence, Tally, decide, overridden, planned_disruption, recheck_node, under_maintenance,
};
use kube_healer_core::policy::{CompiledPolicy, TargetView};
use kube_healer_core::view::{NodeView, Secs};
use kube_healer_core::{Finding, Snapshot, Subject};
use serde_json::{Value, json};

/// A Ready node with this metadata and spec merged in.
fn node_with(metadata: Value, spec: Value) -> NodeView {
    let mut v = ready_node("w1");
    for (k, val) in metadata.as_object().unwrap() {
        v["metadata"][k] = val.clone();
    }
    v["spec"] = spec;
    node_view(&serde_json::from_value(v).unwrap(), &mut Interner::default()).unwrap()
}

fn cordoned(annotations: Value) -> NodeView {
    node_with(
        json!({"annotations": annotations}),
        json!({"unschedulable": true}),
    )
}

fn tainted(key: &str) -> NodeView {
    node_with(
        json!({}),
        json!({"taints": [{"key": key, "effect": "NoSchedule"}]}),
    )
}

fn signal(node: &NodeView) -> Option<String> {
    planned_disruption(node, &PlannedSignals::default())
}

#[test]
fn each_tool_s_signal_and_a_person_s_cordon_say_a_node_is_taken_down_on_purpose() {
    assert_eq!(signal(&node_with(json!({}), json!({}))), None);
    for (key, who) in [
        ("karpenter.sh/disrupted", "Karpenter"),
        ("karpenter.sh/disruption", "Karpenter"),
        ("ToBeDeletedByClusterAutoscaler", "cluster-autoscaler"),
        ("medik8s.io/drain", "NodeMaintenance"),
    ] {
        let said = signal(&tainted(key)).unwrap_or_else(|| panic!("{key} is not a signal"));
        assert!(said.contains(who) && said.contains(key), "{said}");
    }
    let kured = node_with(
        json!({"annotations": {"weave.works/kured-reboot-in-progress": "2026-12-06T00:00:00Z"}}),
        json!({}),
    );
    assert!(signal(&kured).unwrap().contains("kured"));
    let medik8s = node_with(
        json!({"labels": {"remediation.medik8s.io/exclude-from-remediation": "true"}}),
        json!({}),
    );
    assert!(signal(&medik8s).unwrap().contains("medik8s"));
    // A soft taint that only prefers other nodes says nothing of the node's fate.
    assert_eq!(signal(&tainted("DeletionCandidateOfClusterAutoscaler")), None);

    // A person's cordon (kubectl drain, kured, Cluster API) is planned; kube-healer's own is
    // not, nor one by the remediator kube-healer handed the node to. kube-healer's taint on a
    // node says nothing of who cordoned it.
    assert!(
        signal(&cordoned(json!({})))
            .unwrap()
            .contains("cordoned by someone else")
    );
    assert_eq!(
        signal(&cordoned(json!({CORDONED_BY_ANNOTATION: "down-nodes"}))),
        None
    );
    assert_eq!(
        signal(&cordoned(
            json!({REMEDIATED_BY_ANNOTATION: "p=remediation.medik8s.io/v1alpha1/SelfNodeRemediation/ops"})
        )),
        None
    );
    let person_over_taint = node_with(
        json!({"annotations": {TAINTED_BY_ANNOTATION: "t=healing.kubehealer.io/down:NoSchedule"}}),
        json!({"unschedulable": true, "taints": [{"key": "healing.kubehealer.io/down", "effect": "NoSchedule"}]}),
    );
    assert!(signal(&person_over_taint).is_some());
}

#[test]
fn other_tools_resources_say_their_node_is_taken_down_while_they_delete_or_maintain_it() {
    let says = |m: Maintainer, o: Value| m.says(&o).map(|s| (s.node, s.signal));
    let claim = json!({"metadata": {"name": "c1"}, "status": {"nodeName": "w1"}});
    assert_eq!(
        says(Maintainer::NodeClaim, claim.clone()),
        Some(("w1".into(), None))
    );
    let mut deleting = claim.clone();
    deleting["metadata"]["deletionTimestamp"] = json!("2026-12-07T00:00:00Z");
    let (_, said) = says(Maintainer::NodeClaim, deleting).unwrap();
    assert!(said.unwrap().contains("Karpenter is deleting NodeClaim c1"));
    assert_eq!(
        says(
            Maintainer::NodeClaim,
            json!({"metadata": {"name": "c2"}, "status": {}})
        ),
        None,
        "a NodeClaim not launched names no node"
    );

    let machine = |annotations: Value, deleting: bool| {
        let mut m = json!({"metadata": {"name": "m1", "namespace": "capi", "annotations": annotations},
            "status": {"nodeRef": {"name": "w1"}}});
        if deleting {
            m["metadata"]["deletionTimestamp"] = json!("2026-12-07T00:00:00Z");
        }
        says(Maintainer::Machine, m).unwrap().1
    };
    assert_eq!(machine(json!({}), false), None);
    assert!(
        machine(json!({}), true)
            .unwrap()
            .contains("deleting Machine capi/m1")
    );
    for a in kube_healer_core::decide::MACHINE_SKIP_ANNOTATIONS {
        assert!(machine(json!({*a: ""}), false).unwrap().contains(a), "{a}");
    }

    let maintenance =
        json!({"metadata": {"name": "nm"}, "spec": {"nodeName": "w1", "reason": "kernel 6.12"}});
    let (node, said) = says(Maintainer::NodeMaintenance, maintenance).unwrap();
    assert_eq!(node, "w1");
    assert!(
        said.unwrap()
            .contains("NodeMaintenance nm drains the node: kernel 6.12")
    );

    // The node view carries it (the operator's store sets it), and it holds as any signal does;
    // not on a node kube-healer handed over (its own Replace deleted the NodeClaim).
    let mut node = node_with(json!({}), json!({}));
    node.maintained = Some("Karpenter is deleting NodeClaim c1".into());
    assert_eq!(
        signal(&node).as_deref(),
        Some("Karpenter is deleting NodeClaim c1")
    );
    let mut handed = node_with(
        json!({"annotations": {kube_healer_api::REPLACED_BY_ANNOTATION: "p"}}),
        json!({}),
    );
    handed.maintained = node.maintained.clone();
    assert_eq!(signal(&handed), None);
}

#[test]
fn in_house_signals_are_configured_taints_annotations_and_labels() {
    let signals = PlannedSignals {
        taints: vec!["example.com/maintenance".into()],
        annotations: vec!["example.com/rebooting".into()],
        labels: vec!["example.com/state=draining".into(), "example.com/frozen".into()],
    };
    let said = |n: &NodeView| planned_disruption(n, &signals);
    assert!(
        said(&tainted("example.com/maintenance"))
            .unwrap()
            .contains("example.com/maintenance")
    );
    let annotated = node_with(json!({"annotations": {"example.com/rebooting": ""}}), json!({}));
    assert!(said(&annotated).unwrap().contains("example.com/rebooting"));
    let label = |value: &str| node_with(json!({"labels": {"example.com/state": value}}), json!({}));
    assert!(said(&label("draining")).is_some());
    assert_eq!(said(&label("serving")), None, "key=value matches the value");
    let frozen = node_with(json!({"labels": {"example.com/frozen": "any"}}), json!({}));
    assert!(said(&frozen).is_some(), "a key alone matches any value");
    assert_eq!(
        planned_disruption(&tainted("example.com/maintenance"), &PlannedSignals::default()),
        None
    );
}

/// A mark is kube-healer's only while what it marks is there: a cordon someone lifted, or a
/// taint someone removed, holds nothing, and a lifted cordon is seen as such.
#[test]
fn a_mark_whose_cordon_or_taint_someone_removed_holds_nothing() {
    let marks = json!({CORDONED_BY_ANNOTATION: "down-nodes", TAINTED_BY_ANNOTATION: "t=gone:NoSchedule"});
    let lifted = node_with(json!({"annotations": marks}), json!({}));
    assert!(lifted.held_by.is_empty(), "{:?}", lifted.held_by);
    assert!(lifted.stale_cordon && !lifted.cordoned_by_other);
    let held = cordoned(json!({CORDONED_BY_ANNOTATION: "down-nodes"}));
    assert_eq!(&*held.held_by, [std::sync::Arc::from("down-nodes")]);
    assert!(!held.stale_cordon && !held.cordoned_by_other);
    let recorded = node_with(
        json!({"annotations": {CORDON_LIFTED_ANNOTATION: "down-nodes=1799999000,x=bad"}}),
        json!({}),
    );
    assert_eq!(recorded.cordon_lifted.len(), 1);
    assert_eq!(recorded.cordon_lifted[0].1, 1_799_999_000);
}

/// kube-healer's cordon, lifted and set again by a person, both unseen (a restart): the mark is
/// still there, but the API server names the person's field manager as the owner of
/// `spec.unschedulable`. The cordon is the person's (planned disruption), the mark is stale, and
/// it holds nothing. Owned by kube-healer's field manager, or by `unknown` (versions that named
/// none), or with no owner recorded, the mark is believed.
#[test]
fn a_cordon_a_person_set_again_over_kube_healer_s_mark_is_the_person_s() {
    let owned_by = |manager: &str| {
        node_with(
            json!({"annotations": {CORDONED_BY_ANNOTATION: "down-nodes"},
                "managedFields": [{"manager": manager, "operation": "Update",
                    "fieldsV1": {"f:spec": {"f:unschedulable": {}}}},
                  {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:spec": {"f:taints": {}}}}]}),
            json!({"unschedulable": true}),
        )
    };
    let person = owned_by("kubectl");
    assert!(person.cordoned_by_other && person.stale_cordon, "{person:?}");
    assert!(person.held_by.is_empty(), "{:?}", person.held_by);
    assert!(signal(&person).is_some_and(|s| s.contains("cordoned by someone else")));
    for ours in [kube_healer_core::marks::FIELD_MANAGER, "unknown"] {
        let node = owned_by(ours);
        assert!(!node.cordoned_by_other && !node.stale_cordon, "{ours}");
        assert_eq!(&*node.held_by, [std::sync::Arc::from("down-nodes")]);
    }
    let unrecorded = cordoned(json!({CORDONED_BY_ANNOTATION: "down-nodes"}));
    assert!(!unrecorded.cordoned_by_other && !unrecorded.stale_cordon);
    // Handed to a remediator, which cordons the node itself: kube-healer's own doing.
    let handed = node_with(
        json!({"annotations": {CORDONED_BY_ANNOTATION: "down-nodes",
                REMEDIATED_BY_ANNOTATION: "down-nodes=remediation.medik8s.io/v1alpha1/SelfNodeRemediation/ops"},
            "managedFields": [{"manager": "self-node-remediation", "operation": "Update",
                "fieldsV1": {"f:spec": {"f:unschedulable": {}}}}]}),
        json!({"unschedulable": true}),
    );
    assert!(!handed.cordoned_by_other && !handed.stale_cordon, "{handed:?}");
    assert!(handed.held_by.iter().any(|p| &**p == "down-nodes"));
}

fn node_policy(extra: Value) -> (CompiledPolicy, HealingPolicySpec) {
    let mut spec = json!({
        "target": {"kind": "Node"},
        "conditions": [{"class": "NodeUnreachable"}],
        "actions": [{"action": "Cordon"}],
        "safety": {"cooldown": "10m"},
    });
    for (k, v) in extra.as_object().unwrap() {
        spec["safety"][k] = v.clone();
    }
    let policy = serde_json::from_value(json!({"apiVersion": "healing.kubehealer.io/v1alpha1",
        "kind": "HealingPolicy", "metadata": {"name": "down-nodes"}, "spec": spec}))
    .unwrap();
    let compiled = CompiledPolicy::compile(&policy).unwrap();
    let spec = compiled.policy.spec.clone();
    (compiled, spec)
}

fn finding(class: FailureClass, subject: Subject, since: Secs) -> Finding {
    Finding {
        class,
        subject,
        since,
        evidence: Default::default(),
        alike: None,
    }
}

#[test]
fn a_node_under_maintenance_gets_no_node_action_and_its_lost_pods_wait_for_the_grace() {
    let (_, spec) = node_policy(json!({"maintenanceGrace": "30m"}));
    let node = cordoned(json!({}));
    let snapshot = Snapshot::new(vec![], vec![node.clone()], vec![], vec![]);
    let signals = PlannedSignals::default();
    let on_node = finding(FailureClass::NodeUnreachable, Subject::node(&node), NOW - 60);
    let held = under_maintenance(
        &spec,
        &on_node,
        TargetView::Node(&node),
        &snapshot,
        &signals,
        (NOW - 60, NOW),
    )
    .unwrap();
    assert!(
        held.message.contains("cordoned by someone else"),
        "{}",
        held.message
    );
    assert_eq!(
        held.retry_at, None,
        "only a change of the node lets a node action through"
    );

    let pod = pod_view(
        &serde_json::from_value(pod("lost", Some("w1"), json!({"phase": "Running"}))).unwrap(),
        &mut Interner::default(),
    )
    .unwrap();
    let lost = finding(FailureClass::NodeLost, Subject::pod(&pod), NOW - 60);
    let when = |since: Secs| (since, NOW);
    let held = under_maintenance(
        &spec,
        &lost,
        TargetView::Pod(&pod),
        &snapshot,
        &signals,
        when(NOW - 60),
    )
    .unwrap();
    assert_eq!(held.retry_at, Some(NOW - 60 + 1800));
    assert!(
        held.message.contains("its node w1 is under planned disruption"),
        "{}",
        held.message
    );
    // Past the grace, the maintenance has gone wrong: the pod is healed.
    assert_eq!(
        under_maintenance(
            &spec,
            &lost,
            TargetView::Pod(&pod),
            &snapshot,
            &signals,
            when(NOW - 1800)
        ),
        None
    );
    // A failure of the pod's own (a crash loop) is not the node's maintenance.
    let crash = finding(FailureClass::CrashLoop, Subject::pod(&pod), NOW - 60);
    assert_eq!(
        under_maintenance(
            &spec,
            &crash,
            TargetView::Pod(&pod),
            &snapshot,
            &signals,
            when(NOW - 60)
        ),
        None
    );
    // On a node nobody maintains, nothing waits.
    let up = node_with(json!({}), json!({}));
    let free = Snapshot::new(vec![], vec![up.clone()], vec![], vec![]);
    assert_eq!(
        under_maintenance(
            &spec,
            &lost,
            TargetView::Pod(&pod),
            &free,
            &signals,
            when(NOW - 60)
        ),
        None
    );
    assert_eq!(
        under_maintenance(
            &spec,
            &on_node,
            TargetView::Node(&up),
            &free,
            &signals,
            when(NOW - 60)
        ),
        None
    );
}

#[test]
fn a_cordon_a_person_lifted_stays_lifted_for_the_failure_and_the_cooldown() {
    let (_, spec) = node_policy(json!({}));
    let lift = NOW - 120;
    let node = node_with(
        json!({"annotations": {CORDON_LIFTED_ANNOTATION: format!("other=1,down-nodes={lift}")}}),
        json!({}),
    );
    let target = TargetView::Node(&node);
    // The failure during which it was lifted: never again.
    let same = overridden(&spec, "down-nodes", target, (lift - 600, NOW)).unwrap();
    assert_eq!(same.retry_at, None);
    assert!(same.message.contains("the person wins"), "{}", same.message);
    // A later failure: not within the cooldown (10m) of the lift.
    let later = overridden(&spec, "down-nodes", target, (lift + 60, NOW)).unwrap();
    assert_eq!(later.retry_at, Some(lift + 600));
    assert_eq!(
        overridden(&spec, "down-nodes", target, (lift + 60, lift + 600)),
        None
    );
    // Another policy's lift is that policy's.
    assert_eq!(overridden(&spec, "taints", target, (lift - 600, NOW)), None);
    // Seen lifted but not yet recorded on the node (the mark still there): every policy waits.
    let unrecorded = node_with(
        json!({"annotations": {CORDONED_BY_ANNOTATION: "down-nodes"}}),
        json!({}),
    );
    assert!(overridden(&spec, "taints", TargetView::Node(&unrecorded), (NOW, NOW)).is_some());
}

#[test]
fn someone_else_s_work_holds_with_its_own_reason() {
    let (_, spec) = node_policy(json!({}));
    let held = |facts: Facts| match decide(&spec, NOW, &Ladder::new(NOW), &Budget::default(), &facts) {
        Decision::Hold { reason, retry_at, .. } => (reason.as_str(), retry_at),
        other => panic!("{other:?}"),
    };
    let hold = |message: &str, retry_at| {
        Some(kube_healer_core::decide::HeldFor {
            message: message.into(),
            retry_at,
        })
    };
    let maintenance = Facts {
        now: NOW,
        maintenance: hold("drained", Some(NOW + 5)),
        overridden: hold("lifted", None),
        ..Default::default()
    };
    assert_eq!(held(maintenance), (reasons::MAINTENANCE, Some(NOW + 5)));
    let lifted = Facts {
        now: NOW,
        overridden: hold("lifted", None),
        ..Default::default()
    };
    assert_eq!(held(lifted), (reasons::OVERRIDDEN, None));
}

/// The budget is a floor on the cluster's availability: every node out of service counts,
/// whoever took it out, and an action on a node already out adds nothing.
#[test]
fn the_disruption_budget_counts_every_node_out_of_service_whoever_took_it_out() {
    let signals = PlannedSignals::default();
    let by = |n: &NodeView, held: bool| OutBy::of(n, held, &signals);
    let serving = node_with(json!({}), json!({}));
    assert_eq!(by(&serving, false), None);
    assert_eq!(by(&serving, true), Some(OutBy::KubeHealer));
    assert_eq!(by(&cordoned(json!({})), false), Some(OutBy::Maintenance));
    assert_eq!(
        by(&tainted("karpenter.sh/disrupted"), false),
        Some(OutBy::Maintenance)
    );
    let silent = node_view(
        &serde_json::from_value(node(
            "w1",
            json!([{"type": "Ready", "status": "Unknown", "lastTransitionTime": at(-60)}]),
        ))
        .unwrap(),
        &mut Interner::default(),
    )
    .unwrap();
    assert_eq!(by(&silent, false), Some(OutBy::NotReady));

    let (_, spec) = node_policy(json!({}));
    let facts = |out: OutCount, target_out: bool| Facts {
        now: NOW,
        out_of_service: Some(OutOfService {
            out,
            limit: 2,
            configured: "20%".into(),
            target: target_out.then_some(OutBy::NotReady),
        }),
        ..Default::default()
    };
    let two_by_a_person = OutCount {
        maintenance: 2,
        ..Default::default()
    };
    let decided = |f: Facts| decide(&spec, NOW, &Ladder::new(NOW), &Budget::default(), &f);
    match decided(facts(two_by_a_person, false)) {
        Decision::Hold { reason, message, .. } => {
            assert_eq!(reason.as_str(), reasons::BUDGET_EXCEEDED);
            assert!(message.contains("2 (2 maintenance)"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        decided(facts(two_by_a_person, true)),
        Decision::Act { .. }
    ));
    assert!(matches!(
        decided(facts(
            OutCount {
                not_ready: 1,
                ..Default::default()
            },
            false
        )),
        Decision::Act { .. }
    ));
    // kube-healer's own share: with 2 nodes it holds, a third NotReady node waits too (it is
    // out already, but kube-healer would hold one more); one it holds goes on.
    let two_of_ours = OutCount {
        kube_healer: 2,
        ..Default::default()
    };
    match decided(facts(two_of_ours, true)) {
        Decision::Hold { reason, message, .. } => {
            assert_eq!(reason.as_str(), reasons::BUDGET_EXCEEDED);
            assert!(
                message.contains("kube-healer keeps 2 nodes out of service"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let mut ours = facts(two_of_ours, true);
    if let Some(o) = ours.out_of_service.as_mut() {
        o.target = Some(OutBy::KubeHealer);
    }
    assert!(matches!(decided(ours), Decision::Act { .. }));
    assert!(ActionKind::Cordon.properties().takes_node_out);

    // The recheck's count, on nodes read afresh: a target kube-healer keeps out already is never
    // refused, however many are out, so its count is never listed.
    let held = cordoned(json!({CORDONED_BY_ANNOTATION: "down-nodes"}));
    assert!(!Tally::may_refuse(&held, &signals));
    let mut tally = Tally::default();
    for name in ["a", "b", "c"] {
        let mut other = cordoned(json!({CORDONED_BY_ANNOTATION: "p"}));
        other.name = name.into();
        tally.add(&other, &held.name, &signals);
    }
    tally.add(&held, &held.name, &signals);
    assert_eq!(tally.refusal("1"), None, "the target is kube-healer's already");
    for target in [serving, cordoned(json!({})), silent] {
        assert!(Tally::may_refuse(&target, &signals), "{target:?}");
    }
}

/// Right before the call, the node read afresh: a maintenance begun, or kube-healer's cordon
/// lifted, since the decision stops it.
#[test]
fn the_recheck_stops_an_action_on_a_node_taken_into_maintenance_since_the_decision() {
    let (compiled, _) = node_policy(json!({}));
    let unreachable = |metadata: Value, spec: Value| {
        let mut v = node(
            "w1",
            json!([{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
            "message": "Kubelet stopped posting node status.", "lastTransitionTime": at(-600)}]),
        );
        for (k, val) in metadata.as_object().unwrap() {
            v["metadata"][k] = val.clone();
        }
        v["spec"] = spec;
        node_view(&serde_json::from_value(v).unwrap(), &mut Interner::default()).unwrap()
    };
    let decided_on = unreachable(json!({}), json!({}));
    let seen = Seen {
        planned: Default::default(),
        maintenance_ends: 0,
        budget: None,
        condition: compiled.conditions[0].clone(),
        episode: NOW - 600,
        pod: None,
        node: Some(decided_on.clone()),
        lease: None,
        events: vec![],
        pods_on_node: vec![],
        sick_node: None,
        leases_seen_renewing: None,
        without_fencing: false,
        shutdown: ShutdownEvidence {
            lease_expired_for: 300,
            unreachable_for: 300,
        },
    };
    let fresh = |n: NodeView| recheck_node(&seen, ActionKind::Cordon, Read::Found(n), Read::NotRead, NOW);
    assert_eq!(fresh(decided_on), Fresh::Holds);
    match fresh(unreachable(json!({}), json!({"unschedulable": true}))) {
        Fresh::Maintenance(why) => assert!(why.contains("cordoned by someone else"), "{why}"),
        other => panic!("{other:?}"),
    }
    match fresh(unreachable(
        json!({"annotations": {CORDONED_BY_ANNOTATION: "down-nodes"}}),
        json!({}),
    )) {
        Fresh::Overridden(why) => assert!(why.contains("the person wins"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Released by a person (kube-healer release) since the decision: the mark is gone, the
    // lift recorded.
    let lift = format!("down-nodes={NOW}");
    match fresh(unreachable(
        json!({"annotations": {CORDON_LIFTED_ANNOTATION: lift}}),
        json!({}),
    )) {
        Fresh::Overridden(why) => assert!(why.contains("lifted kube-healer's hold"), "{why}"),
        other => panic!("{other:?}"),
    }
}

/// Moving a pod (Delete, Evict, Reschedule) whose failure is its node's cannot help when its
/// owner brings it back on that node: a DaemonSet's pod. ForceDelete stays allowed (fenced),
/// and a failure of the pod's own (a crash loop) may still be met by a fresh pod.
#[test]
fn moving_a_daemonset_pod_lost_with_its_node_cannot_help() {
    use kube_healer_core::decide::futile_move;
    let owned = |kind: &str| {
        let mut v = pod("agent-x", Some("w1"), json!({"phase": "Running"}));
        v["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": kind, "name": "agent",
            "uid": "u", "controller": true}]);
        pod_view(&serde_json::from_value(v).unwrap(), &mut Interner::default()).unwrap()
    };
    let agent = owned("DaemonSet");
    let subject = Subject::pod(&agent);
    for action in [ActionKind::Delete, ActionKind::Evict, ActionKind::Reschedule] {
        let why = futile_move(&agent, &subject, FailureClass::NodeLost, action).unwrap();
        assert!(
            why.contains("DaemonSet recreates its pod on the same node"),
            "{why}"
        );
    }
    assert_eq!(
        futile_move(&agent, &subject, FailureClass::NodeLost, ActionKind::ForceDelete),
        None
    );
    assert_eq!(
        futile_move(&agent, &subject, FailureClass::CrashLoop, ActionKind::Delete),
        None
    );
    let web = owned("ReplicaSet");
    assert_eq!(
        futile_move(
            &web,
            &Subject::pod(&web),
            FailureClass::NodeLost,
            ActionKind::Delete
        ),
        None
    );
}

/// A pod pinned to its node, by a nodeSelector on the hostname or a required affinity naming
/// that node alone in every term, is moved in vain as a DaemonSet's is; one that may go to
/// another node is not pinned.
#[test]
fn moving_a_pod_pinned_to_its_lost_node_cannot_help() {
    use kube_healer_core::decide::futile_move;
    let placed = |spec: Value| {
        let mut v = pod("web-x", Some("w1"), json!({"phase": "Running"}));
        v["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
            "uid": "u", "controller": true}]);
        for (k, val) in spec.as_object().unwrap() {
            v["spec"][k] = val.clone();
        }
        pod_view(&serde_json::from_value(v).unwrap(), &mut Interner::default()).unwrap()
    };
    let term = |key: &str, field: bool, values: Value| {
        let list = if field { "matchFields" } else { "matchExpressions" };
        json!({list: [{"key": key, "operator": "In", "values": values}]})
    };
    let required = |terms: Vec<Value>| json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}});
    let pinned = [
        json!({"nodeSelector": {"kubernetes.io/hostname": "w1", "disk": "ssd"}}),
        required(vec![term("metadata.name", true, json!(["w1"]))]),
        required(vec![term("kubernetes.io/hostname", false, json!(["w1"]))]),
    ];
    for spec in pinned {
        let p = placed(spec.clone());
        let why = futile_move(&p, &Subject::pod(&p), FailureClass::NodeLost, ActionKind::Delete);
        assert!(why.is_some_and(|w| w.contains("pinned to that node")), "{spec}");
    }
    let free = [
        json!({}),
        json!({"nodeSelector": {"disk": "ssd"}}),
        json!({"nodeSelector": {"kubernetes.io/hostname": "w2"}}),
        required(vec![term("kubernetes.io/hostname", false, json!(["w1", "w2"]))]),
        required(vec![
            term("metadata.name", true, json!(["w1"])),
            term("topology.kubernetes.io/zone", false, json!(["a"])),
        ]),
    ];
    for spec in free {
        let p = placed(spec.clone());
        assert!(!p.pinned, "{spec}");
        assert_eq!(
            futile_move(&p, &Subject::pod(&p), FailureClass::NodeLost, ActionKind::Delete),
            None
        );
    }
}
