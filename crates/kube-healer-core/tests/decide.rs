//! The ladder and the gates.

use kube_healer_api::{ActionKind, HealingPolicySpec, reasons};
use kube_healer_core::decide::{Budget, Decision, Facts, Ladder, decide, max_unhealthy};
use serde_json::json;

const T: i64 = 1_800_000_000;

fn spec(extra_safety: serde_json::Value) -> HealingPolicySpec {
    let mut safety =
        json!({"maxConcurrent": 2, "rate": {"actions": 3, "per": "10m"}, "cooldown": "1m", "maxAttempts": 3});
    for (k, v) in extra_safety.as_object().unwrap() {
        safety[k] = v.clone();
    }
    serde_json::from_value(json!({
        "target": {"kind": "Pod", "namespaces": {"include": ["shop"]}},
        "conditions": [{"class": "StuckTerminating", "for": "2m"}],
        "actions": [{"action": "Evict", "escalateAfter": "5m"}, {"action": "ForceDelete", "escalateAfter": "10m"}],
        "safety": safety,
    }))
    .unwrap()
}

fn node_spec(max_unhealthy: serde_json::Value) -> HealingPolicySpec {
    serde_json::from_value(json!({
        "target": {"kind": "Node", "selector": {"matchLabels": {"pool": "a"}}},
        "conditions": [{"class": "NodeNotReady"}],
        "actions": [{"action": "Cordon"}],
        "safety": {"maxUnhealthy": max_unhealthy},
    }))
    .unwrap()
}

fn at(now: i64) -> Facts {
    Facts {
        now,
        ..Default::default()
    }
}

fn held(d: &Decision) -> (&'static str, Option<i64>) {
    match d {
        Decision::Hold { reason, retry_at, .. } => (reason.as_str(), *retry_at),
        other => panic!("expected a hold, got {other:?}"),
    }
}

#[test]
fn the_ladder_waits_acts_escalates_and_gives_up() {
    let s = spec(json!({}));
    let due = T + 120;
    let mut ladder = Ladder::new(T);
    let budget = Budget::default();
    assert_eq!(
        decide(&s, due, &ladder, &budget, &at(T + 60)),
        Decision::Wait { until: due }
    );
    assert_eq!(
        decide(&s, due, &ladder, &budget, &at(due)),
        Decision::Act {
            step: 0,
            action: ActionKind::Evict,
            dry_run: false
        }
    );
    ladder.acted(0, 2, due);
    // Step 2 waits for step 1's escalateAfter (5m).
    assert_eq!(
        decide(&s, due, &ladder, &budget, &at(due + 60)),
        Decision::Wait { until: due + 300 }
    );
    assert_eq!(
        decide(&s, due, &ladder, &budget, &at(due + 300)),
        Decision::Act {
            step: 1,
            action: ActionKind::ForceDelete,
            dry_run: false
        }
    );
    ladder.acted(1, 2, due + 300);
    // The last rung is retried after its own escalateAfter (10m), until maxAttempts (3).
    assert_eq!(
        decide(&s, due, &ladder, &budget, &at(due + 600)),
        Decision::Wait { until: due + 900 }
    );
    assert_eq!(
        decide(&s, due, &ladder, &budget, &at(due + 900)),
        Decision::Act {
            step: 1,
            action: ActionKind::ForceDelete,
            dry_run: false
        }
    );
    ladder.acted(1, 2, due + 900);
    let d = decide(&s, due, &ladder, &budget, &at(due + 1500));
    assert_eq!(held(&d), (reasons::MAX_ATTEMPTS, None));
}

#[test]
fn cooldown_rate_and_concurrency_hold_with_a_retry_time() {
    let s = spec(json!({"cooldown": "15m"}));
    let mut ladder = Ladder::new(T);
    ladder.acted(0, 2, T);
    let d = decide(&s, T, &ladder, &Budget::default(), &at(T + 300));
    assert_eq!(held(&d), (reasons::COOLDOWN, Some(T + 900)));

    let s = spec(json!({}));
    let fresh = Ladder::new(T);
    let busy = Budget {
        in_flight: 2,
        recent: vec![],
    };
    assert_eq!(
        held(&decide(&s, T, &fresh, &busy, &at(T))).0,
        reasons::MAX_CONCURRENT
    );
    let spent = Budget {
        in_flight: 0,
        recent: vec![T - 700, T - 500, T - 400, T - 100],
    };
    // 3 within the 10m window (T-700 fell out): the oldest of them frees a slot at T-500+600.
    assert_eq!(
        held(&decide(&s, T, &fresh, &spent, &at(T))),
        (reasons::RATE_LIMITED, Some(T + 100))
    );
}

#[test]
fn dry_run_acts_without_changing_anything() {
    let fresh = Ladder::new(T);
    let d = decide(
        &spec(json!({"dryRun": true})),
        T,
        &fresh,
        &Budget::default(),
        &at(T),
    );
    assert_eq!(
        d,
        Decision::Act {
            step: 0,
            action: ActionKind::Evict,
            dry_run: true
        }
    );
    let global = Facts {
        global_dry_run: true,
        ..at(T)
    };
    assert!(matches!(
        decide(&spec(json!({})), T, &fresh, &Budget::default(), &global),
        Decision::Act { dry_run: true, .. }
    ));
}

#[test]
fn pause_suspend_opt_out_and_correlation_hold_until_lifted() {
    let fresh = Ladder::new(T);
    let b = Budget::default();
    assert_eq!(
        held(&decide(
            &spec(json!({})),
            T,
            &fresh,
            &b,
            &Facts {
                paused: Some("--pause".into()),
                ..at(T)
            }
        ))
        .0,
        reasons::PAUSED
    );
    assert_eq!(
        held(&decide(&spec(json!({"suspend": true})), T, &fresh, &b, &at(T))).0,
        reasons::SUSPENDED
    );
    assert_eq!(
        held(&decide(
            &spec(json!({})),
            T,
            &fresh,
            &b,
            &Facts {
                opted_out: true,
                ..at(T)
            }
        ))
        .0,
        reasons::OPTED_OUT
    );
    let storm = Facts {
        correlated: Some("6 of 10 nodes are NotReady together".into()),
        ..at(T)
    };
    let d = decide(&spec(json!({})), T, &fresh, &b, &storm);
    assert_eq!(held(&d), (reasons::CORRELATED, None));
}

#[test]
fn max_unhealthy_stops_node_actions() {
    let fresh = Ladder::new(T);
    let b = Budget::default();
    let facts = |unhealthy| Facts {
        unhealthy_nodes: Some((unhealthy, 10)),
        ..at(T)
    };
    assert!(matches!(
        decide(&node_spec(json!("30%")), T, &fresh, &b, &facts(3)),
        Decision::Act { .. }
    ));
    assert_eq!(
        held(&decide(&node_spec(json!("30%")), T, &fresh, &b, &facts(4))).0,
        reasons::BUDGET_EXCEEDED
    );
    assert!(matches!(
        decide(&node_spec(json!(1)), T, &fresh, &b, &facts(1)),
        Decision::Act { .. }
    ));
    assert_eq!(
        held(&decide(&node_spec(json!(1)), T, &fresh, &b, &facts(2))).0,
        reasons::BUDGET_EXCEEDED
    );
    assert_eq!(
        max_unhealthy(&node_spec(json!(null)).safety, 10),
        3,
        "default 30%"
    );
    // A percent rounds down, never below one node: a policy over one or two nodes may heal one.
    assert_eq!(max_unhealthy(&node_spec(json!(null)).safety, 1), 1);
    assert_eq!(max_unhealthy(&node_spec(json!("40%")).safety, 2), 1);
    assert_eq!(max_unhealthy(&node_spec(json!("40%")).safety, 10), 4);
    // 0% and 0 mean no node action at all.
    assert_eq!(max_unhealthy(&node_spec(json!("0%")).safety, 10), 0);
    assert_eq!(max_unhealthy(&node_spec(json!(0)).safety, 10), 0);
}

#[test]
fn the_cluster_disruption_budget_holds_new_nodes_out_of_service_and_lets_held_ones_go_on() {
    use kube_healer_core::decide::{OutBy, OutCount, OutOfService, budget_count};
    let s = node_spec(json!("100%"));
    let budget = |held: usize, target_out: bool| Facts {
        now: T,
        out_of_service: Some(OutOfService {
            out: OutCount {
                kube_healer: held,
                ..Default::default()
            },
            limit: 2,
            configured: "2".into(),
            target: target_out.then_some(OutBy::KubeHealer),
        }),
        ..Default::default()
    };
    let ladder = Ladder::new(T);
    let d = decide(&s, T, &ladder, &Budget::default(), &budget(2, false));
    assert_eq!(held(&d), (reasons::BUDGET_EXCEEDED, None), "{d:?}");
    let Decision::Hold { message, .. } = &d else {
        unreachable!()
    };
    assert!(message.contains("disruption budget (2: 2 nodes)"), "{message}");
    for facts in [budget(2, true), budget(1, false)] {
        let d = decide(&s, T, &ladder, &Budget::default(), &facts);
        assert!(matches!(d, Decision::Act { .. }), "{d:?}");
    }
    assert!(ActionKind::Cordon.properties().takes_node_out);
    assert!(ActionKind::RunJob.properties().takes_node_out);
    assert!(ActionKind::Remediate.properties().takes_node_out);
    assert!(ActionKind::Replace.properties().takes_node_out);
    assert!(!ActionKind::Evict.properties().takes_node_out);
    assert_eq!(budget_count("10%", 30), Ok(3));
    assert_eq!(budget_count("10%", 5), Ok(1), "a percent is at least one node");
    assert_eq!(budget_count("2", 100), Ok(2));
    assert!(budget_count("ten", 5).is_err());
}

/// Long actions an earlier leader left in flight count against maxConcurrent: those of the
/// policy, past none of their deadlines, not this replica's own, and not on the target decided on.
#[test]
fn actions_an_earlier_leader_left_in_flight_count_against_max_concurrent() {
    use kube_healer_core::decide::{InFlightMark, inherited_in_flight, parse_until};
    let mark = |policy: &str, uid: &str, until: i64| InFlightMark {
        policy: policy.into(),
        target_uid: uid.into(),
        until,
    };
    let marks = [
        ("p-a", mark("p", "a", T + 300)),
        ("p-b", mark("p", "b", T + 100)),
        ("p-c", mark("p", "c", T)),
        ("q-d", mark("q", "d", T + 300)),
        ("p-e", mark("p", "e", T + 600)),
    ];
    let of = |target: &str, own: &[&str]| {
        inherited_in_flight(marks.iter().map(|(n, m)| (*n, m)), "p", target, T, |r| {
            own.contains(&r)
        })
    };
    // a, b and e count (c is past its deadline, d is another policy's); the earliest deadline is b's.
    assert_eq!(of("x", &[]), (3, Some(T + 100)));
    // Deciding on a again resumes its own record: it does not hold itself back.
    assert_eq!(of("a", &[]), (2, Some(T + 100)));
    // This replica's own actions count in its budget, not again here.
    assert_eq!(of("x", &["p-b", "p-e"]), (1, Some(T + 300)));
    assert_eq!(parse_until(" 1800000300 "), Some(T + 300));
    assert_eq!(parse_until("soon"), None);

    // The gate adds them to the policy's own actions in flight (maxConcurrent 2).
    let s = spec(json!({}));
    let one = Budget {
        in_flight: 1,
        recent: vec![],
    };
    let inherited = |n| Facts {
        now: T,
        inherited_in_flight: n,
        ..Default::default()
    };
    let fresh = Ladder::new(T);
    assert!(matches!(
        decide(&s, T, &fresh, &one, &inherited(0)),
        Decision::Act { .. }
    ));
    let d = decide(&s, T, &fresh, &one, &inherited(1));
    assert_eq!(held(&d).0, reasons::MAX_CONCURRENT);
    let Decision::Hold { message, .. } = d else {
        unreachable!()
    };
    assert!(
        message.contains("2 actions of this policy in flight, 1 of them started by an earlier leader"),
        "{message}"
    );
}

/// Work cut short by an earlier process (a batch) is carried on only if the policy could
/// decide it now: not paused, not suspended, not a dry run, inside its windows.
#[test]
fn work_cut_short_is_carried_on_only_while_the_policy_could_decide_it() {
    use kube_healer_core::decide::{WindowVerdict, not_resumable};
    let open = WindowVerdict::Open;
    assert_eq!(not_resumable(&spec(json!({})), None, false, open), None);
    let reason = |s: HealingPolicySpec, paused: Option<String>, dry: bool, w: WindowVerdict| {
        not_resumable(&s, paused, dry, w).map(|(r, _)| r)
    };
    assert_eq!(
        reason(spec(json!({})), Some("--pause".into()), false, open),
        Some(reasons::PAUSED)
    );
    assert_eq!(
        reason(spec(json!({"suspend": true})), None, false, open),
        Some(reasons::SUSPENDED)
    );
    assert_eq!(
        reason(spec(json!({"dryRun": true})), None, false, open),
        Some(reasons::DRY_RUN)
    );
    assert_eq!(reason(spec(json!({})), None, true, open), Some(reasons::DRY_RUN));
    assert_eq!(
        reason(spec(json!({})), None, false, WindowVerdict::RecordOnly),
        Some(reasons::DRY_RUN)
    );
    assert_eq!(
        reason(
            spec(json!({})),
            None,
            false,
            WindowVerdict::Closed { opens: Some(5) }
        ),
        Some(reasons::OUTSIDE_WINDOW)
    );
}
