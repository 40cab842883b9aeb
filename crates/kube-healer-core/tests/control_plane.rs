//! The control plane as a cause (`classify::control_plane`): when enough of kube-healer's own
//! recent API calls fail or crawl, every node finding, and the pod findings that stem from
//! nodes, are held; pod failures of their own are not.

use kube_healer_api::{FailureClass, TargetKind};
use kube_healer_core::classify::{CallSample, control_plane};
use kube_healer_core::{CorrelatedCause, Finding, Knobs, Subject};

const NOW_MS: i64 = 1_800_000_000_000;

fn call(ago_s: i64, latency_ms: u64, failed: bool) -> CallSample {
    CallSample {
        at_ms: NOW_MS - ago_s * 1000,
        latency_ms,
        failed,
    }
}

fn finding(class: FailureClass, kind: TargetKind) -> Finding {
    Finding {
        class,
        subject: Subject {
            kind,
            namespace: (kind == TargetKind::Pod).then(|| "ns".into()),
            name: "x".into(),
            uid: "x".into(),
            node: Some("n1".into()),
        },
        since: 0,
        evidence: Default::default(),
        alike: None,
    }
}

#[test]
fn failing_calls_make_the_control_plane_a_cause_that_holds_node_findings() {
    let knobs = Knobs::default();
    let calls = [
        call(50, 40, true),
        call(40, 30, false),
        call(30, 2_000, true),
        call(10, 50, false),
    ];
    let cause = control_plane(&calls, NOW_MS, &knobs).expect("2 of 4 failed: a cause");
    assert_eq!(cause.cause, CorrelatedCause::ControlPlane);
    assert_eq!(cause.since, (NOW_MS - 50_000) / 1000, "since the first bad call");
    assert!(
        cause.message.contains("2 of the last 4 failed"),
        "{}",
        cause.message
    );
    for class in [
        FailureClass::NodeNotReady,
        FailureClass::NodeCondition,
        FailureClass::HeartbeatLag,
    ] {
        assert!(cause.covers(&finding(class, TargetKind::Node)), "{class}");
    }
    assert!(cause.covers(&finding(FailureClass::NodeLost, TargetKind::Pod)));
    assert!(cause.covers(&finding(FailureClass::StuckTerminating, TargetKind::Pod)));
    assert!(cause.covers(&finding(FailureClass::EventPattern, TargetKind::Node)));
    assert!(!cause.covers(&finding(FailureClass::Evicted, TargetKind::Pod)));
    assert!(!cause.covers(&finding(FailureClass::EventPattern, TargetKind::Pod)));
    assert!(!cause.covers(&finding(FailureClass::CrashLoop, TargetKind::Pod)));
}

#[test]
fn slow_calls_count_as_bad_ones() {
    let calls: Vec<_> = (1..=4).map(|i| call(i * 5, 6_000, false)).collect();
    let cause = control_plane(&calls, NOW_MS, &Knobs::default()).expect("4 calls of 6 s");
    assert!(cause.message.contains("4 took 5 s or more"), "{}", cause.message);
}

#[test]
fn a_few_bad_calls_or_a_minority_are_no_cause() {
    let knobs = Knobs::default();
    // Too few calls to judge.
    let few = [call(5, 10, true), call(4, 10, true), call(3, 10, true)];
    assert!(control_plane(&few, NOW_MS, &knobs).is_none());
    // 4 of 10 failed: below half.
    let mut calls: Vec<_> = (0..6).map(|i| call(i, 10, false)).collect();
    calls.extend((0..4).map(|i| call(i, 10, true)));
    assert!(control_plane(&calls, NOW_MS, &knobs).is_none());
    // Failures older than the quiet horizon do not count.
    let old: Vec<_> = (0..8).map(|i| call(301 + i, 10, true)).collect();
    assert!(control_plane(&old, NOW_MS, &knobs).is_none());
}

/// Holding node actions stops most calls: a cause clears on healthy calls, not on silence.
#[test]
fn the_cause_clears_on_healthy_calls_not_on_silence() {
    let knobs = Knobs::default();
    // Four failures two minutes ago, nothing since: still the control plane's cause.
    let mut calls: Vec<_> = (0..4).map(|i| call(125 - i, 10, true)).collect();
    assert!(control_plane(&calls, NOW_MS, &knobs).is_some());
    // Four healthy calls since: it clears.
    calls.extend((0..4).map(|i| call(20 - i, 10, false)));
    assert!(control_plane(&calls, NOW_MS, &knobs).is_none());
    // Five minutes of silence: nothing to judge, no cause.
    let quiet: Vec<_> = (0..4).map(|i| call(310 - i, 10, true)).collect();
    assert!(control_plane(&quiet, NOW_MS, &knobs).is_none());
}
