//! A policy's windows: when it acts, and when it only records, in the operator's time zone (as
//! kured schedules reboots). Pure: the time and the zone are parameters.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use kube_healer_api::policy::{Window, WindowMode};

use crate::view::Secs;

/// The time zone windows are read in (UTC unless set).
#[derive(Clone, Debug)]
pub struct Zone(pub TimeZone);

impl Default for Zone {
    fn default() -> Self {
        Zone(TimeZone::UTC)
    }
}

impl Zone {
    /// A zone by its IANA name (the system's time zone database), `UTC`, or `Local` (the
    /// system's own zone).
    pub fn named(name: &str) -> Result<Zone, String> {
        match name {
            "UTC" | "" => Ok(Zone::default()),
            "Local" => Ok(Zone(TimeZone::system())),
            _ => TimeZone::get(name)
                .map(Zone)
                .map_err(|e| format!("time zone {name:?}: {e}")),
        }
    }
}

/// Where `now` falls among a policy's windows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WindowVerdict {
    /// No window keeps the policy from acting.
    #[default]
    Open,
    /// Inside a RecordOnly window: decisions are dry runs.
    RecordOnly,
    /// Outside every Act window: held until the next opens (None: none opens within a week,
    /// which only windows with no valid time can make).
    Closed { opens: Option<Secs> },
}

/// Where `now` falls among `windows` in `tz`. A RecordOnly window wins over an Act window that
/// overlaps it; with no Act window declared, the policy acts whenever no RecordOnly one is open.
pub fn window_verdict(windows: &[Window], now: Secs, tz: &TimeZone) -> WindowVerdict {
    if windows.is_empty() {
        return WindowVerdict::Open;
    }
    let inside = |mode: WindowMode| {
        windows
            .iter()
            .filter(|w| w.mode == mode)
            .flat_map(|w| openings(w, now, tz, -1..=0))
            .any(|(start, end)| start <= now && now < end)
    };
    if inside(WindowMode::RecordOnly) {
        return WindowVerdict::RecordOnly;
    }
    let acts: Vec<&Window> = windows.iter().filter(|w| w.mode == WindowMode::Act).collect();
    if acts.is_empty() || inside(WindowMode::Act) {
        return WindowVerdict::Open;
    }
    let opens = acts
        .iter()
        .flat_map(|w| openings(w, now, tz, 0..=7))
        .map(|(start, _)| start)
        .filter(|start| *start > now)
        .min();
    WindowVerdict::Closed { opens }
}

/// The window's openings (start, end) on the days `days` away from `now`'s date, in `tz`.
fn openings(
    w: &Window,
    now: Secs,
    tz: &TimeZone,
    days: std::ops::RangeInclusive<i64>,
) -> impl Iterator<Item = (Secs, Secs)> {
    let today = Timestamp::from_second(now)
        .ok()
        .map(|t| t.to_zoned(tz.clone()).date());
    let minutes = w.minutes();
    days.filter_map(move |d| {
        let (start, end) = minutes?;
        let date = today?.checked_add(jiff::Span::new().days(d)).ok()?;
        let weekday = date.weekday().to_monday_zero_offset() as u8;
        if !w.days.is_empty() && !w.days.iter().any(|day| day.index() == weekday) {
            return None;
        }
        let end_date = if end <= start {
            date.checked_add(jiff::Span::new().days(1)).ok()?
        } else {
            date
        };
        Some((instant(date, start, tz)?, instant(end_date, end, tz)?))
    })
}

/// A date's time of day (minutes after midnight) in `tz`, as Unix seconds.
fn instant(date: Date, minutes: u16, tz: &TimeZone) -> Option<Secs> {
    let at = date.at((minutes / 60) as i8, (minutes % 60) as i8, 0, 0);
    Some(at.to_zoned(tz.clone()).ok()?.timestamp().as_second())
}
