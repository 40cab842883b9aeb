//! The rules the operator's gate, `explain` and `simulate` share: what a decision spends, the
//! ladder read back from records, the facts, counting unhealthy nodes, and the target safety
//! guard.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube_healer_api::{ActionKind, FailureClass, HealingAction, HealingPolicy, reasons};
use kube_healer_core::convert::{Interner, node_view, pod_view};
use kube_healer_core::decide::{
    Budget, DOWN_CLASSES, Decision, Facts, Ladder, OUT_OF_SERVICE, count_unhealthy_nodes, guard, unsafe_for,
};
use kube_healer_core::policy::CompiledPolicy;
use kube_healer_core::{Finding, Snapshot, Subject};
use serde_json::json;

const T: i64 = 1_800_000_000;

fn at(secs: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .unwrap()
        .to_string()
}

fn act(dry_run: bool) -> Decision {
    Decision::Act {
        step: 0,
        action: ActionKind::Delete,
        dry_run,
    }
}

#[test]
fn a_dry_run_spends_the_rate_but_takes_no_place_in_flight() {
    let mut budget = Budget::default();
    budget.spend(&act(true), T);
    assert_eq!((budget.in_flight, budget.recent.clone()), (0, vec![T]));
    budget.spend(&act(false), T + 1);
    assert_eq!((budget.in_flight, budget.recent.len()), (1, 2));
    let hold = Decision::Hold {
        step: 0,
        action: ActionKind::Delete,
        reason: kube_healer_api::reasons::HoldReason::Cooldown,
        message: String::new(),
        retry_at: None,
    };
    budget.spend(&hold, T + 2);
    budget.spend(&Decision::Wait { until: T + 9 }, T + 2);
    assert_eq!(
        (budget.in_flight, budget.recent.len()),
        (1, 2),
        "holds and waits spend nothing"
    );
    budget.finished();
    budget.finished();
    assert_eq!(budget.in_flight, 0, "never below zero");
    budget.prune(T + 86_400, 86_400);
    assert_eq!(budget.recent, vec![T + 1], "the window's actions are kept");
    budget.prune(T + 30 * 86_400, 30 * 86_400);
    assert_eq!(
        budget.recent,
        vec![T + 1],
        "a month's window keeps them a month, not a day"
    );
    budget.prune(T + 30 * 86_400 + 1, 30 * 86_400);
    assert!(budget.recent.is_empty());
}

fn record(step: i32, episode: i64, decided: i64, phase: &str, reason: &str) -> HealingAction {
    record_in(step, episode, decided, phase, reason, reason == reasons::DRY_RUN)
}

fn record_in(
    step: i32,
    episode: i64,
    decided: i64,
    phase: &str,
    reason: &str,
    dry_run: bool,
) -> HealingAction {
    serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingAction",
        "metadata": {"name": format!("r-{step}-{decided}")},
        "spec": {"policy": "p", "target": {"kind": "Pod", "namespace": "ns", "name": "x", "uid": "u", "ref": "pod/ns/x"},
            "class": "StuckTerminating", "action": "Evict", "step": step, "dryRun": dry_run,
            "failingSince": at(episode), "decidedAt": at(decided),
            "evidence": {"summary": "s"}},
        "status": {"phase": phase, "reason": reason, "attempts": 1}}))
    .unwrap()
}

#[test]
fn a_ladder_is_read_back_from_its_episode_s_steps_taken_or_dry_run_not_holds() {
    let records = [
        record(1, T, T + 10, "Succeeded", "Completed"),
        record(2, T, T + 400, "Skipped", reasons::DRY_RUN),
        record(2, T, T + 500, "Skipped", reasons::COOLDOWN),
        record(1, T - 999, T - 900, "Succeeded", "Completed"),
    ];
    let ladder = Ladder::from_records(&records, T, 3, false);
    assert_eq!(ladder.attempts, 1, "the live ladder: {ladder:?}");
    assert_eq!(ladder.last_action, Some((0, T + 10)));
    let dry = Ladder::from_records(&records, T, 3, true);
    assert_eq!(dry.attempts, 1, "the dry-run ladder: {dry:?}");
    assert_eq!((dry.last_action, dry.next_step), (Some((1, T + 400)), 2));
    let both = [
        record_in(1, T, T + 10, "Succeeded", "Completed", false),
        record_in(2, T, T + 90, "Succeeded", "Completed", false),
    ];
    let ladder = Ladder::from_records(&both, T, 3, false);
    assert_eq!((ladder.attempts, ladder.next_step), (2, 2));
    assert_eq!(
        Ladder::from_records(&records, T + 1, 3, false),
        Ladder::new(T + 1)
    );
}

fn node(name: &str, pool: &str, taints: serde_json::Value) -> Node {
    serde_json::from_value(json!({"metadata": {"name": name, "uid": name, "labels": {"pool": pool}},
        "spec": {"taints": taints},
        "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": at(T - 86_400)}]}}))
    .unwrap()
}

fn node_policy() -> CompiledPolicy {
    let policy: HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy", "metadata": {"name": "n"},
        "spec": {"target": {"kind": "Node", "selector": {"matchLabels": {"pool": "a"}}},
            "conditions": [{"class": "NodeNotReady"}], "actions": [{"action": "Cordon"}]}}))
    .unwrap();
    CompiledPolicy::compile(&policy).unwrap()
}

#[test]
fn unhealthy_nodes_are_counted_among_those_the_policy_selects_and_only_for_node_policies() {
    let mut interner = Interner::default();
    let nodes: Vec<_> = [("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b")]
        .iter()
        .map(|(n, p)| node_view(&node(n, p, json!([])), &mut interner).unwrap())
        .collect();
    let policy = node_policy();
    let down = |n: &kube_healer_core::view::NodeView| &*n.name == "a1" || &*n.name == "b1";
    let failing = |_: &kube_healer_core::view::NodeView| false;
    assert_eq!(count_unhealthy_nodes(&nodes, &policy, down, failing), (1, 3));
    // The policy's own condition holding on a2 counts too, down or not.
    let failing = |n: &kube_healer_core::view::NodeView| &*n.name == "a2";
    assert_eq!(count_unhealthy_nodes(&nodes, &policy, down, failing), (2, 3));
    // And a node the policy holds (cordoned in its name), though its failure is no longer seen;
    // another policy's hold is that policy's.
    let mut held = nodes.clone();
    let ours = serde_json::from_value(json!({"metadata": {"name": "a3", "labels": {"pool": "a"},
        "annotations": {kube_healer_api::CORDONED_BY_ANNOTATION: "other,n"}}, "spec": {"unschedulable": true}}))
    .unwrap();
    held[2] = node_view(&ours, &mut interner).unwrap();
    let never = |_: &kube_healer_core::view::NodeView| false;
    assert_eq!(count_unhealthy_nodes(&held, &policy, never, never), (1, 3));
    let theirs = serde_json::from_value(json!({"metadata": {"name": "a3", "labels": {"pool": "a"},
        "annotations": {kube_healer_api::CORDONED_BY_ANNOTATION: "other"}}, "spec": {"unschedulable": true}}))
    .unwrap();
    held[2] = node_view(&theirs, &mut interner).unwrap();
    assert_eq!(count_unhealthy_nodes(&held, &policy, never, never), (0, 3));
    assert_eq!(
        DOWN_CLASSES,
        [FailureClass::NodeNotReady, FailureClass::NodeUnreachable]
    );

    let finding = Finding {
        class: FailureClass::NodeNotReady,
        subject: Subject::node(&nodes[0]),
        since: T,
        evidence: Default::default(),
        alike: None,
    };
    let facts = Facts::about(T, &policy, &finding, true, (&[], &Default::default()), || (1, 3))
        .with_switches(Some("--pause".into()), false);
    assert_eq!(
        (
            facts.unhealthy_nodes,
            facts.opted_out,
            facts.paused.is_some(),
            facts.correlated
        ),
        (Some((1, 3)), true, true, None)
    );
}

fn terminating_statefulset_pod(node: &str, deletion: i64) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": "db-0", "namespace": "ns", "uid": "u",
            "creationTimestamp": at(T - 3600), "deletionTimestamp": at(deletion),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "s", "controller": true}]},
        "spec": {"nodeName": node, "containers": []}, "status": {"phase": "Running"}}))
    .unwrap()
}

#[test]
fn force_delete_waits_for_the_deadline_and_a_statefulset_pod_for_its_node_confirmed_gone() {
    let mut interner = Interner::default();
    let pod = pod_view(&terminating_statefulset_pod("n", T - 60), &mut interner).unwrap();
    let subject = Subject::pod(&pod);
    let running = node_view(&node("n", "a", json!([])), &mut interner).unwrap();
    let fenced = node_view(
        &node(
            "n",
            "a",
            json!([{"key": "node.kubernetes.io/out-of-service", "effect": "NoExecute"}]),
        ),
        &mut interner,
    )
    .unwrap();
    let on = |nodes: Vec<_>| Snapshot::new(vec![pod.clone()], nodes, Vec::new(), Vec::new());

    let why = unsafe_for(
        &pod,
        &on(vec![running]),
        &subject,
        ActionKind::ForceDelete,
        false,
        T,
    );
    assert!(why.is_some_and(|w| w.contains("not confirmed gone")));
    assert_eq!(
        unsafe_for(
            &pod,
            &on(vec![fenced]),
            &subject,
            ActionKind::ForceDelete,
            false,
            T
        ),
        None
    );
    let unknown = unsafe_for(&pod, &on(Vec::new()), &subject, ActionKind::ForceDelete, false, T);
    assert!(
        unknown.is_some_and(|w| w.contains("not confirmed gone")),
        "no nodes known (none listed): unknown is never gone"
    );
    let early = unsafe_for(
        &pod,
        &on(Vec::new()),
        &subject,
        ActionKind::ForceDelete,
        false,
        T - 61,
    );
    assert!(early.is_some_and(|w| w.contains("deletionTimestamp")));
    let restart = unsafe_for(
        &pod,
        &on(Vec::new()),
        &subject,
        ActionKind::RestartOwner,
        false,
        T,
    );
    assert_eq!(restart, None, "a StatefulSet is a workload to restart");

    // The guard turns an act into an Unsafe hold, and leaves everything else alone.
    let held = guard(act(false), |_, _| Some(unsafe_("no")));
    assert!(
        matches!(
            held,
            Decision::Hold {
                reason: kube_healer_api::reasons::HoldReason::Unsafe,
                ..
            }
        ),
        "{held:?}"
    );
    assert_eq!(guard(act(true), |_, _| None), act(true));
    let wait = Decision::Wait { until: T };
    assert_eq!(guard(wait.clone(), |_, _| Some(unsafe_("no"))), wait);
}

#[test]
fn force_deleting_a_pod_with_a_claim_or_of_an_unknown_controller_waits_for_fencing() {
    let mut interner = Interner::default();
    let pod = |owner: serde_json::Value, volumes: serde_json::Value| {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u",
            "creationTimestamp": at(T - 3600), "deletionTimestamp": at(T - 60), "ownerReferences": owner},
            "spec": {"nodeName": "n", "containers": [], "volumes": volumes}, "status": {"phase": "Running"}}))
        .unwrap();
        pod_view(&p, &mut Interner::default()).unwrap()
    };
    let rs = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "r", "controller": true}]);
    let operator = json!([{"apiVersion": "db.example/v1", "kind": "Cluster", "name": "pg", "uid": "c", "controller": true}]);
    let claim = json!([{"name": "data", "persistentVolumeClaim": {"claimName": "data-p"}}]);
    let unreachable = |taints: serde_json::Value| {
        let mut n = node("n", "a", taints);
        n.status = Some(
            serde_json::from_value(json!({"conditions": [{"type": "Ready", "status": "Unknown"}]})).unwrap(),
        );
        node_view(&n, &mut Interner::default()).unwrap()
    };
    let (down, fenced) = (
        unreachable(json!([])),
        unreachable(json!([{"key": OUT_OF_SERVICE, "value": "nodeshutdown", "effect": "NoExecute"}])),
    );
    let ready = node_view(&node("n", "a", json!([])), &mut interner).unwrap();
    let why = |p: &kube_healer_core::view::PodView, n: &kube_healer_core::view::NodeView, unfenced: bool| {
        let snapshot = Snapshot::new(vec![p.clone()], vec![n.clone()], Vec::new(), Vec::new());
        unsafe_for(
            p,
            &snapshot,
            &Subject::pod(p),
            ActionKind::ForceDelete,
            unfenced,
            T,
        )
    };
    let with_claim = pod(rs.clone(), claim.clone());
    let held = why(&with_claim, &down, false).expect("held");
    assert!(
        held.contains("PersistentVolumeClaim") && held.contains(OUT_OF_SERVICE),
        "{held}"
    );
    assert!(held.contains("withoutFencing"), "names the opt-in: {held}");
    assert_eq!(
        why(&with_claim, &fenced, false),
        None,
        "the out-of-service taint fences it"
    );
    assert_eq!(why(&with_claim, &down, true), None, "the policy opted in");
    assert_eq!(
        why(&with_claim, &ready, false),
        None,
        "a Ready node's kubelet unmounts first"
    );
    let foreign = pod(operator, json!([]));
    assert!(why(&foreign, &down, false).is_some_and(|w| w.contains("does not know")));
    assert_eq!(
        why(&pod(rs, json!([])), &down, false),
        None,
        "a stateless ReplicaSet pod"
    );
    assert_eq!(
        why(&pod(json!([]), json!([])), &down, false),
        None,
        "a bare pod: nothing recreates it"
    );
    // A StatefulSet pod waits whatever the policy says.
    let sts = pod_view(&terminating_statefulset_pod("n", T - 60), &mut interner).unwrap();
    assert!(why(&sts, &down, true).is_some_and(|w| w.contains("StatefulSet")));
}

fn finding_on(class: FailureClass, kind: kube_healer_api::TargetKind, name: &str, node: &str) -> Finding {
    Finding {
        class,
        subject: Subject {
            kind,
            namespace: (kind == kube_healer_api::TargetKind::Pod).then(|| "ns".to_string()),
            name: name.into(),
            uid: format!("uid-{name}"),
            node: Some(node.into()),
        },
        since: T,
        evidence: Default::default(),
        alike: None,
    }
}

#[test]
fn nodes_down_together_hold_the_pods_lost_with_them_and_only_those() {
    use kube_healer_api::TargetKind::{Node, Pod};
    let down: Vec<Finding> = ["n0", "n1", "n2"]
        .iter()
        .map(|n| finding_on(FailureClass::NodeUnreachable, Node, n, n))
        .collect();
    let five = kube_healer_core::classify::Topology::flat(5);
    let causes = kube_healer_core::classify::correlate(&down, &five, &Default::default(), &[], &());
    assert_eq!(causes.len(), 1, "3 of 5 nodes down together: {causes:?}");
    let cause = &causes[0];
    assert!(cause.covers(&down[0]), "a member node");
    for class in [FailureClass::NodeLost, FailureClass::StuckTerminating] {
        assert!(
            cause.covers(&finding_on(class, Pod, "p", "n1")),
            "{class} on a member node"
        );
        assert!(
            !cause.covers(&finding_on(class, Pod, "p", "n4")),
            "{class} on a healthy node"
        );
    }
    let pull = finding_on(FailureClass::ImagePullFailure, Pod, "p", "n1");
    assert!(!cause.covers(&pull), "not a failure that stems from the node");
}

#[test]
fn a_node_is_held_by_the_policies_its_kube_healer_annotations_name() {
    let mut interner = Interner::default();
    // A mark holds while what it marks is there: the node is cordoned and carries the taint.
    let mut n = node(
        "h",
        "a",
        json!([{"key": "kube-healer/unhealthy", "effect": "NoSchedule"}]),
    );
    n.spec.as_mut().unwrap().unschedulable = Some(true);
    n.metadata.annotations = Some(
        [
            (
                kube_healer_api::CORDONED_BY_ANNOTATION.to_string(),
                "cordoner".to_string(),
            ),
            (
                kube_healer_api::TAINTED_BY_ANNOTATION.to_string(),
                "tainter=kube-healer/unhealthy:NoSchedule".to_string(),
            ),
        ]
        .into(),
    );
    let view = node_view(&n, &mut interner).unwrap();
    let held: Vec<&str> = view.held_by.iter().map(|p| &**p).collect();
    assert_eq!(held, ["cordoner", "tainter"]);
    // Someone uncordoned it and removed the taint: the marks hold nothing.
    n.spec = None;
    assert!(node_view(&n, &mut interner).unwrap().held_by.is_empty());
    let plain = node_view(&node("p", "a", json!([])), &mut interner).unwrap();
    assert!(plain.held_by.is_empty());
}

/// A cordon or a taint may be held by several policies: the annotations list each, and the node
/// is held by all of them (lifted only when the last lets go).
#[test]
fn a_cordon_and_a_taint_may_be_held_by_several_policies() {
    use kube_healer_core::convert::{cordon_owners, taint_owners};
    let annotations: std::collections::BTreeMap<String, String> = [
        (
            kube_healer_api::CORDONED_BY_ANNOTATION.to_string(),
            "flapping, deadlock".to_string(),
        ),
        (
            kube_healer_api::TAINTED_BY_ANNOTATION.to_string(),
            "oom=kube-healer/unhealthy:NoSchedule,disk=kube-healer/unhealthy:NoSchedule,bad".to_string(),
        ),
    ]
    .into();
    assert_eq!(cordon_owners(Some(&annotations)), ["flapping", "deadlock"]);
    assert_eq!(
        taint_owners(Some(&annotations)),
        [
            ("oom", "kube-healer/unhealthy", "NoSchedule"),
            ("disk", "kube-healer/unhealthy", "NoSchedule")
        ],
        "an entry that does not parse is left out"
    );
    let mut n = node(
        "m",
        "a",
        json!([{"key": "kube-healer/unhealthy", "effect": "NoSchedule"}]),
    );
    n.spec.as_mut().unwrap().unschedulable = Some(true);
    n.metadata.annotations = Some(annotations);
    let view = node_view(&n, &mut Interner::default()).unwrap();
    let held: Vec<&str> = view.held_by.iter().map(|p| &**p).collect();
    assert_eq!(held, ["deadlock", "disk", "flapping", "oom"]);
    assert!(cordon_owners(None).is_empty() && taint_owners(None).is_empty());
}

/// A node handed to a remediator is held by the policy that did it (counted out of service, let
/// go when its failure is over), and the annotation names each remediation resource to delete.
#[test]
fn a_remediated_node_is_held_by_the_policy_that_handed_it_over() {
    use kube_healer_core::convert::remediation_owners;
    let annotations: std::collections::BTreeMap<String, String> = [(
        kube_healer_api::REMEDIATED_BY_ANNOTATION.to_string(),
        "reboot=self-node-remediation.medik8s.io/v1alpha1/SelfNodeRemediation/medik8s,broken".to_string(),
    )]
    .into();
    let owners = remediation_owners(Some(&annotations));
    assert_eq!(owners.len(), 1, "an entry that does not parse is left out");
    assert_eq!(owners[0].0, "reboot");
    assert_eq!(owners[0].1.kind, "SelfNodeRemediation");
    let mut n = node(
        "m",
        "a",
        json!([{"key": "kube-healer/unhealthy", "effect": "NoSchedule"}]),
    );
    n.spec.as_mut().unwrap().unschedulable = Some(true);
    n.metadata.annotations = Some(annotations);
    let view = node_view(&n, &mut Interner::default()).unwrap();
    let held: Vec<&str> = view.held_by.iter().map(|p| &**p).collect();
    assert_eq!(held, ["reboot"]);
    // A node whose machine a policy had replaced is held by it until it is gone.
    let mut n = node("r", "a", json!([]));
    n.metadata.annotations = Some(
        [(
            kube_healer_api::REPLACED_BY_ANNOTATION.to_string(),
            "pleg, ".to_string(),
        )]
        .into(),
    );
    let view = node_view(&n, &mut Interner::default()).unwrap();
    let held: Vec<&str> = view.held_by.iter().map(|p| &**p).collect();
    assert_eq!(held, ["pleg"]);
    // A node a policy's node Job runs on is held by it until the Job has ended.
    let mut n = node("j", "a", json!([]));
    n.metadata.annotations = Some(
        [(
            kube_healer_api::JOB_BY_ANNOTATION.to_string(),
            "restart-runtime".to_string(),
        )]
        .into(),
    );
    let view = node_view(&n, &mut Interner::default()).unwrap();
    let held: Vec<&str> = view.held_by.iter().map(|p| &**p).collect();
    assert_eq!(held, ["restart-runtime"]);
}

fn unsafe_(message: &str) -> kube_healer_core::decide::Unsafe {
    kube_healer_core::decide::Unsafe {
        message: message.into(),
        retry_at: None,
    }
}
