//! A policy's windows (README, "Safety model": maintenance windows): it acts only inside its Act
//! windows, records only inside its RecordOnly ones, in the operator's time zone.

use kube_healer_api::policy::Window;
use kube_healer_api::{HealingPolicySpec, reasons};
use kube_healer_core::decide::{
    Budget, Decision, Facts, Ladder, WindowVerdict, Zone, decide, window_verdict,
};
use serde_json::json;

/// Friday 2027-01-15 08:00 UTC.
const FRIDAY_8: i64 = 1_800_000_000;
const HOUR: i64 = 3600;

fn windows(v: serde_json::Value) -> Vec<Window> {
    serde_json::from_value(v).unwrap()
}

fn utc(w: &[Window], at: i64) -> WindowVerdict {
    window_verdict(w, at, &Zone::default().0)
}

#[test]
fn a_policy_with_act_windows_acts_only_inside_them_and_waits_for_the_next() {
    assert_eq!(utc(&[], FRIDAY_8), WindowVerdict::Open);
    let nightly = windows(json!([{"start": "02:00", "end": "05:00"}]));
    // 08:00: closed until 02:00 the next day.
    assert_eq!(
        utc(&nightly, FRIDAY_8),
        WindowVerdict::Closed {
            opens: Some(FRIDAY_8 + 18 * HOUR)
        }
    );
    assert_eq!(utc(&nightly, FRIDAY_8 - 5 * HOUR), WindowVerdict::Open, "03:00");
    assert!(
        matches!(utc(&nightly, FRIDAY_8 - 3 * HOUR), WindowVerdict::Closed { .. }),
        "05:00 is closed"
    );
    // Past midnight: 22:00 to 02:00.
    let late = windows(json!([{"start": "22:00", "end": "02:00"}]));
    assert_eq!(
        utc(&late, FRIDAY_8 - 7 * HOUR),
        WindowVerdict::Open,
        "01:00, opened the day before"
    );
    assert_eq!(
        utc(&late, FRIDAY_8),
        WindowVerdict::Closed {
            opens: Some(FRIDAY_8 + 14 * HOUR)
        }
    );
    // Weekends only: on Friday morning it waits for Saturday 02:00.
    let weekend = windows(json!([{"days": ["Sat", "Sun"], "start": "02:00", "end": "05:00"}]));
    assert_eq!(
        utc(&weekend, FRIDAY_8),
        WindowVerdict::Closed {
            opens: Some(FRIDAY_8 + 18 * HOUR)
        }
    );
    let monday = windows(json!([{"days": ["Mon"], "start": "02:00", "end": "05:00"}]));
    assert_eq!(
        utc(&monday, FRIDAY_8),
        WindowVerdict::Closed {
            opens: Some(FRIDAY_8 + 66 * HOUR)
        }
    );
}

#[test]
fn inside_a_record_only_window_a_policy_only_records() {
    let office = windows(
        json!([{"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "07:00", "end": "19:00", "mode": "RecordOnly"}]),
    );
    assert_eq!(utc(&office, FRIDAY_8), WindowVerdict::RecordOnly);
    assert_eq!(
        utc(&office, FRIDAY_8 + 12 * HOUR),
        WindowVerdict::Open,
        "20:00: no Act window, so it acts"
    );
    // Both: recording wins where they overlap.
    let both = windows(json!([{"start": "00:00", "end": "23:59"},
        {"start": "07:00", "end": "19:00", "mode": "RecordOnly"}]));
    assert_eq!(utc(&both, FRIDAY_8), WindowVerdict::RecordOnly);
    assert_eq!(utc(&both, FRIDAY_8 - 2 * HOUR), WindowVerdict::Open);
}

#[test]
fn windows_are_read_in_the_operator_s_time_zone() {
    let Ok(berlin) = Zone::named("Europe/Berlin") else {
        // No time zone database on this system: the operator refuses the flag the same way.
        return;
    };
    let nightly = windows(json!([{"start": "02:00", "end": "05:00"}]));
    // 01:30 UTC is 02:30 in Berlin in January.
    let at = FRIDAY_8 - 6 * HOUR - 30 * 60;
    assert_eq!(window_verdict(&nightly, at, &berlin.0), WindowVerdict::Open);
    assert!(matches!(utc(&nightly, at), WindowVerdict::Closed { .. }));
    assert!(Zone::named("Mars/Olympus").is_err());
}

#[test]
fn outside_its_windows_a_decision_is_held_and_inside_a_record_only_one_it_runs_dry() {
    let spec: HealingPolicySpec = serde_json::from_value(json!({
        "target": {"kind": "Node"}, "conditions": [{"class": "NodeNotReady"}],
        "actions": [{"action": "Cordon"}]}))
    .unwrap();
    let decided = |window| {
        let facts = Facts {
            now: FRIDAY_8,
            window,
            ..Default::default()
        };
        decide(
            &spec,
            FRIDAY_8,
            &Ladder::new(FRIDAY_8),
            &Budget::default(),
            &facts,
        )
    };
    match decided(WindowVerdict::Closed {
        opens: Some(FRIDAY_8 + 60),
    }) {
        Decision::Hold {
            reason,
            retry_at,
            message,
            ..
        } => {
            assert_eq!(
                (reason.as_str(), retry_at),
                (reasons::OUTSIDE_WINDOW, Some(FRIDAY_8 + 60))
            );
            assert!(message.contains("next opens in 60s"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        decided(WindowVerdict::RecordOnly),
        Decision::Act { dry_run: true, .. }
    ));
    assert!(matches!(
        decided(WindowVerdict::Open),
        Decision::Act { dry_run: false, .. }
    ));
}
