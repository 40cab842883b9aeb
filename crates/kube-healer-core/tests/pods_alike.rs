//! Pods failing alike: many pods of several workloads failing the same way, beginning together,
//! are one cause (issue 30); a lone failure beside them is not part of it.

mod common;

use common::*;
use kube_healer_api::FailureClass::*;
use kube_healer_core::classify::Topology;
use kube_healer_core::classify::correlate;
use kube_healer_core::{Correlated, CorrelatedCause, Finding, Knobs, PodsKey};
use serde_json::{Value, json};

/// A pod of Deployment `deployment` in `namespace` (its ReplicaSet `<deployment>-5c8d7b9f4d`),
/// its container `container` crash-looping since `since` and last ended with `exit` and
/// `message`.
fn crashing(
    namespace: &str,
    deployment: &str,
    i: usize,
    container: &str,
    since: i64,
    exit: i32,
    message: &str,
) -> Value {
    let hash = "5c8d7b9f4d";
    let name = format!("{deployment}-{hash}-x{i}");
    json!({
        "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{namespace}-{name}"),
            "creationTimestamp": at(since - 60),
            "labels": {"app": deployment, "pod-template-hash": hash},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{deployment}-{hash}"),
                "uid": format!("rs-{deployment}"), "controller": true}]},
        "spec": {"nodeName": format!("n{}", i % 3 + 1), "containers": [{"name": container, "image": format!("registry.example/{deployment}:1.0")}]},
        "status": {"phase": "Running", "startTime": at(since),
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": at(since)}],
            "containerStatuses": [{"name": container, "image": format!("registry.example/{deployment}:1.0"), "imageID": "",
                "ready": false, "restartCount": 9,
                "state": {"waiting": {"reason": "CrashLoopBackOff",
                    "message": format!("back-off 5m0s restarting failed container={container} pod={name}_{namespace}(uid-{name})")}},
                "lastState": {"terminated": {"exitCode": exit, "reason": "Error",
                    "message": format!("connecting to db.{namespace}.svc\n{message}\n")}}}]},
    })
}

const DNS: &str = "dial tcp: lookup db.internal on 10.96.0.10:53: i/o timeout";

fn three_nodes() -> Input {
    let mut input = input();
    input.nodes = vec![ready_node("n1"), ready_node("n2"), ready_node("n3")];
    input
}

/// Five Deployments in two namespaces crash alike (each its own container name and message
/// head); a sixth crashes alone, for its own reason.
fn storm() -> Input {
    let mut input = three_nodes();
    for (d, deployment) in ["cart", "pay", "search", "auth", "mail"].iter().enumerate() {
        let namespace = if d % 2 == 0 { "shop" } else { "billing" };
        for i in 0..2 {
            input.pods.push(crashing(
                namespace,
                deployment,
                i,
                &format!("{deployment}-srv"),
                -900 + d as i64 * 20,
                1,
                DNS,
            ));
        }
    }
    input.pods.push(crashing(
        "tools",
        "lonely",
        0,
        "app",
        -880,
        2,
        "panic: config key missing",
    ));
    input
}

fn pods_causes(report: &[Correlated]) -> Vec<&Correlated> {
    report
        .iter()
        .filter(|c| matches!(c.cause, CorrelatedCause::Pods(_)))
        .collect()
}

fn finding<'a>(findings: &'a [Finding], name_prefix: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.subject.name.starts_with(name_prefix) && f.class == CrashLoop)
        .unwrap_or_else(|| panic!("no CrashLoop for {name_prefix}"))
}

#[test]
fn many_workloads_failing_alike_are_one_cause_and_a_lone_failure_is_not_part_of_it() {
    let report = storm().report();
    let causes = pods_causes(&report.correlated);
    assert_eq!(causes.len(), 1, "{causes:#?}");
    let cause = causes[0];
    assert!(matches!(&cause.cause, CorrelatedCause::Pods(PodsKey::Failure(_))));
    assert_eq!(cause.members.len(), 10);
    assert_eq!(cause.classes, [CrashLoop]);
    assert!(
        cause.message.contains("10 pods of 5 workloads"),
        "{}",
        cause.message
    );
    assert!(
        cause.message.contains("i/o timeout"),
        "the shared failure is named: {}",
        cause.message
    );
    for f in report
        .findings
        .iter()
        .filter(|f| f.subject.name != "lonely-5c8d7b9f4d-x0")
    {
        assert!(cause.covers(f), "{} is the cause's", f.subject);
    }
    let lone = finding(&report.findings, "lonely");
    assert!(!cause.covers(lone), "a crash of its own is judged on its own");
}

#[test]
fn the_workload_is_the_deployment_and_its_revision() {
    let report = storm().report();
    let alike = finding(&report.findings, "cart")
        .alike
        .as_deref()
        .expect("a pod class groups");
    assert_eq!(alike.workload.kind, "Deployment");
    assert_eq!(alike.workload.name, "cart");
    assert_eq!(alike.workload.revision.as_deref(), Some("5c8d7b9f4d"));
}

#[test]
fn too_few_workloads_or_pods_far_apart_are_no_cause() {
    let mut two = three_nodes();
    for deployment in ["cart", "pay"] {
        for i in 0..4 {
            two.pods
                .push(crashing("shop", deployment, i, "app", -900, 1, DNS));
        }
    }
    assert!(
        pods_causes(&two.report().correlated).is_empty(),
        "8 pods of 2 workloads: each its own"
    );

    let mut apart = three_nodes();
    for (d, deployment) in ["cart", "pay", "search", "auth", "mail"].iter().enumerate() {
        // Each began 11 minutes after the one before: never 3 workloads within 10 minutes.
        apart.pods.push(crashing(
            "shop",
            deployment,
            0,
            "app",
            -3000 + d as i64 * 660,
            1,
            DNS,
        ));
        apart.pods.push(crashing(
            "shop",
            deployment,
            1,
            "app",
            -3000 + d as i64 * 660,
            1,
            DNS,
        ));
    }
    assert!(
        pods_causes(&apart.report().correlated).is_empty(),
        "failures far apart did not begin together"
    );
}

/// A watch that lagged (a restart, a slow API server) sees a crash loop late, and a view dates
/// a waiting state by when it first saw it. The kubelet's own word, when the container last
/// ended, dates it instead: a third workload's pods seen 650 s after the first two began, but
/// ended 20 s after them, are the same cause, not failures of their own.
#[test]
fn a_crash_loop_seen_late_begins_when_its_container_last_ended() {
    let late_seen = |ended: Option<i64>| {
        let mut input = three_nodes();
        for deployment in ["cart", "pay", "search"] {
            for i in 0..2 {
                let mut pod = crashing("shop", deployment, i, "app", -900, 1, DNS);
                if deployment == "search" {
                    let last = &mut pod["status"]["containerStatuses"][0]["lastState"]["terminated"];
                    last["finishedAt"] = ended.map_or(Value::Null, |t| json!(at(t)));
                }
                input.pods.push(pod);
            }
        }
        let mut snapshot = input.snapshot();
        for pod in snapshot.pods.iter_mut().filter(|p| p.name.starts_with("search")) {
            let mut containers = pod.containers.to_vec();
            containers[0].state_since = Some(NOW - 250);
            pod.containers = containers.into();
        }
        let report = kube_healer_core::classify_snapshot(&snapshot, NOW);
        pods_causes(&report.correlated).len()
    };
    assert_eq!(late_seen(Some(-880)), 1, "ended within the window: one cause");
    assert_eq!(
        late_seen(None),
        0,
        "dated only by when it was seen: outside the window"
    );
}

#[test]
fn a_cause_lasts_while_any_member_fails_and_holds_later_ones_on_sight() {
    let input = storm();
    let report = input.report();
    let topology = Topology::default();
    let knobs = Knobs::default();
    let first = correlate(&report.findings, &topology, &knobs, &[], &());
    let cause = pods_causes(&first)[0].clone();

    // All but one member recovered: fewer than it takes to begin, and still the cause.
    let cart = finding(&report.findings, "cart").clone();
    let left = correlate([&cart], &topology, &knobs, &first, &());
    assert_eq!(pods_causes(&left).len(), 1);
    assert_eq!(pods_causes(&left)[0].members.len(), 1);

    // A new pod failing alike after the cause began is held on sight.
    let mut later = three_nodes();
    later
        .pods
        .push(crashing("shop", "cart", 7, "cart-srv", -60, 1, DNS));
    let newcomer = later
        .report()
        .findings
        .into_iter()
        .find(|f| f.class == CrashLoop)
        .unwrap();
    assert!(cause.covers(&newcomer));

    // Every member recovered: the cause is over.
    assert!(pods_causes(&correlate([], &topology, &knobs, &first, &())).is_empty());
}

#[test]
fn a_registry_cause_is_not_reported_again_as_pods_failing_alike() {
    let mut input = three_nodes();
    for (d, deployment) in ["cart", "pay", "search"].iter().enumerate() {
        for i in 0..2 {
            let mut p = crashing("shop", deployment, i + d * 2, "app", -900, 1, DNS);
            p["status"]["containerStatuses"][0]["state"] = json!({"waiting": {"reason": "ErrImagePull", "message": "failed to pull: 503 Service Unavailable"}});
            input.pods.push(p);
        }
    }
    let report = input.report();
    let causes = pods_causes(&report.correlated);
    assert_eq!(causes.len(), 1, "{causes:#?}");
    assert_eq!(
        causes[0].cause,
        CorrelatedCause::Pods(PodsKey::Registry("registry.example".into()))
    );
    assert_eq!(
        report
            .findings
            .iter()
            .filter(|f| f.class == ImagePullFailure)
            .count(),
        6
    );
}

/// A policy with a Safety of its own pods-alike thresholds.
fn safety(min_pods: i32, min_workloads: i32) -> kube_healer_api::Safety {
    kube_healer_api::Safety {
        pods_alike: Some(kube_healer_api::PodsAlikeThresholds {
            min_pods: Some(min_pods),
            min_workloads: Some(min_workloads),
            window: None,
        }),
        ..Default::default()
    }
}

fn burst(window: i64, pods: usize, workloads: usize) -> kube_healer_core::Burst {
    kube_healer_core::Burst {
        window,
        pods,
        workloads,
    }
}

#[test]
fn a_policy_s_own_thresholds_decide_which_causes_hold_it() {
    // 8 pods of 2 workloads failing alike: no cause at the operator's 5 of 3.
    let mut two = three_nodes();
    for deployment in ["cart", "pay"] {
        for i in 0..4 {
            two.pods
                .push(crashing("shop", deployment, i, "app", -900, 1, DNS));
        }
    }
    let findings = two.report().findings;
    let (topology, operator) = (Topology::default(), Knobs::default());
    assert!(pods_causes(&correlate(&findings, &topology, &operator, &[], &())).is_empty());

    // A policy asking for 4 of 2: found at the loosest thresholds any policy asks for...
    let strict = operator.pods_alike;
    let loose = strict.for_policy(&safety(4, 2));
    assert_eq!((loose.pods, loose.workloads, loose.window), (4, 2, strict.window));
    let mut knobs = operator.clone();
    assert!(knobs.fit_pods_alike(&strict, [&safety(4, 2)]));
    assert_eq!(knobs.pods_alike, strict.loosest(&loose));
    let found = correlate(&findings, &topology, &knobs, &[], &());
    let causes = pods_causes(&found);
    assert_eq!(causes.len(), 1, "{causes:#?}");
    assert_eq!(causes[0].bursts, [burst(strict.window, 8, 2)]);
    // ... it holds that policy, and not one at the operator's thresholds, nor one asking for
    // more workloads than failed.
    assert!(causes[0].holds_for(&loose));
    assert!(!causes[0].holds_for(&strict));
    assert!(!causes[0].holds_for(&strict.for_policy(&safety(4, 3))));
    // Policies without thresholds of their own take the operator's.
    let none = kube_healer_api::Safety::default();
    assert_eq!(strict.for_policy(&none), strict);
    // Other causes hold every policy, whatever its thresholds.
    let mut registry = causes[0].clone();
    registry.cause = CorrelatedCause::Pods(PodsKey::Registry("registry.example".into()));
    registry.bursts.clear();
    assert!(registry.holds_for(&strict.for_policy(&safety(1000, 1000))));
}

#[test]
fn once_a_burst_met_a_policy_s_thresholds_it_stays_met_while_the_cause_lasts() {
    let report = storm().report();
    let (topology, knobs) = (Topology::default(), Knobs::default());
    let first = correlate(&report.findings, &topology, &knobs, &[], &());
    let cause = pods_causes(&first)[0].clone();
    // Ten pods of five workloads within the window; none outdoes (10, 5).
    assert_eq!(cause.bursts, [burst(knobs.pods_alike.window, 10, 5)]);
    let five_of_five = knobs.pods_alike.for_policy(&safety(10, 5));
    assert!(cause.holds_for(&five_of_five));

    // All but one member recovered: the cause lasts, and so does what its bursts met (a
    // policy's hold is not lifted because fewer pods fail now).
    let cart = finding(&report.findings, "cart").clone();
    let left = correlate([&cart], &topology, &knobs, &first, &());
    let lasting = pods_causes(&left)[0];
    assert_eq!(lasting.members.len(), 1);
    assert!(lasting.holds_for(&five_of_five));
    assert!(!lasting.holds_for(&knobs.pods_alike.for_policy(&safety(11, 5))));
}

/// A policy's own window: bursts are counted in it too, and the policy is held only by one that
/// began within it. Five workloads' pods begin to fail 4 minutes apart: within the operator's
/// 10 minutes they are one cause; a policy asking for 3 workloads within 5 minutes never saw
/// more than 2 begin together, and heals them pod by pod; one asking within 20 minutes is held
/// as the operator's are.
#[test]
fn a_policy_s_own_window_counts_its_bursts() {
    let mut input = three_nodes();
    for (d, deployment) in ["cart", "pay", "search", "auth", "mail"].iter().enumerate() {
        for i in 0..2 {
            let since = -2000 + d as i64 * 240;
            input
                .pods
                .push(crashing("shop", deployment, i, "app", since, 1, DNS));
        }
    }
    let findings = input.report().findings;
    let within = |minutes: u64| kube_healer_api::Safety {
        pods_alike: Some(kube_healer_api::PodsAlikeThresholds {
            window: Some(kube_healer_api::Duration::from(std::time::Duration::from_secs(
                minutes * 60,
            ))),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (short, long) = (within(5), within(20));
    let mut knobs = Knobs::default();
    let operator = knobs.pods_alike;
    knobs.fit_pods_alike(&operator, [&short, &long]);
    assert_eq!(knobs.pods_alike_windows, [300, 600, 1200]);
    assert_eq!(knobs.pods_alike.window, 1200, "found at the longest");
    let found = correlate(&findings, &Topology::default(), &knobs, &[], &());
    let causes = pods_causes(&found);
    assert_eq!(causes.len(), 1, "{causes:#?}");
    let cause = causes[0];
    assert!(cause.holds_for(&operator), "3 workloads within 10 minutes");
    assert!(cause.holds_for(&operator.for_policy(&long)));
    assert!(
        !cause.holds_for(&operator.for_policy(&short)),
        "{:?}",
        cause.bursts
    );
    // Thresholds nobody counted bursts for are read in the shortest longer window (the safe
    // side): 7 minutes reads the 10-minute bursts.
    let seven = kube_healer_core::PodsAlike {
        window: 420,
        ..operator
    };
    assert!(cause.holds_for(&seven));
}
