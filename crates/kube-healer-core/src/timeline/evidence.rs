//! The timeline as a record's evidence and as `explain` prints it: moments in words, with the
//! target's events, and several tellings of one story merged.

use k8s_openapi::jiff::Timestamp;
use kube_healer_api::record::TimelineEvidence;

use super::{Change, Run, of};
use crate::finding::time;
use crate::view::{EventView, NodeView, PodView, Secs};

/// Characters of an event's message kept in a timeline (the record's events carry it whole).
const EVENT_MESSAGE: usize = 200;

/// The pod's timeline as evidence: its story ([`of`]) and its events (each series at its first
/// occurrence), oldest first. A record keeps the latest (see `Evidence::bounded`).
pub fn evidence<'a>(
    view: &PodView,
    events: impl Iterator<Item = &'a EventView>,
    now: Secs,
) -> Vec<TimelineEvidence> {
    let mut out: Vec<(Secs, TimelineEvidence)> = of(view, now)
        .iter()
        .map(|m| {
            let at = m.at.get().unwrap_or(now);
            let (kind, detail) = describe(&m.change);
            (at, entry(at, kind, subject(&m.change), detail))
        })
        .collect();
    if let (Some((first, _)), (_, dropped @ 1..)) = (out.first(), view.timeline.moments()) {
        // Said right after the first moment: the story kept its beginning and its latest.
        let at = *first;
        out.insert(
            1,
            (at, entry(at, "cut", None, format!("{dropped} changes left out"))),
        );
    }
    with_events(out, events)
}

/// A node's timeline as evidence, told from what the operator keeps of it anyway (no history of
/// its own): the Ready transitions the watcher saw, its conditions that are not as a healthy
/// node's, and its events, oldest first.
pub fn node_evidence<'a>(
    node: &NodeView,
    events: impl Iterator<Item = &'a EventView>,
    now: Secs,
) -> Vec<TimelineEvidence> {
    let ready = node.condition("Ready");
    let mut out: Vec<(Secs, TimelineEvidence)> = Vec::new();
    let transitions = &node.ready_transitions;
    for (i, at) in transitions.iter().enumerate() {
        // The last transition led to the status the node reports now; the direction of the
        // earlier ones is not kept.
        let detail = match ready {
            Some(c) if i + 1 == transitions.len() => match &c.reason {
                Some(r) => format!("Ready={} ({r})", c.status.as_str()),
                None => format!("Ready={}", c.status.as_str()),
            },
            _ => "Ready changed".to_string(),
        };
        out.push((*at, entry(*at, "condition", Some("Ready".into()), detail)));
    }
    for c in node.conditions.iter() {
        let healthy = match &*c.type_ {
            "Ready" => c.status == crate::view::Status::True || !transitions.is_empty(),
            _ => c.status == crate::view::Status::False,
        };
        if healthy {
            continue;
        }
        let at = c.since.unwrap_or(now);
        let detail = match &c.reason {
            Some(r) => format!("{}={} ({r})", c.type_, c.status.as_str()),
            None => format!("{}={}", c.type_, c.status.as_str()),
        };
        out.push((at, entry(at, "condition", Some(c.type_.to_string()), detail)));
    }
    with_events(out, events)
}

/// Adds the events (each series at its first occurrence) and sorts, oldest first.
fn with_events<'a>(
    mut out: Vec<(Secs, TimelineEvidence)>,
    events: impl Iterator<Item = &'a EventView>,
) -> Vec<TimelineEvidence> {
    // A marker of Normal events not kept says nothing a reader needs.
    for e in events.filter(|e| &*e.reason != crate::events::NORMAL_MARKER) {
        let mut message: String = e.message.chars().take(EVENT_MESSAGE).collect();
        if e.message.chars().count() > EVENT_MESSAGE {
            message.push_str("...");
        }
        let detail = if e.count > 1 {
            let last = Timestamp::from_second(e.last_seen)
                .map_or_else(|_| e.last_seen.to_string(), |t| t.to_string());
            format!("{} (x{}, last {last}): {message}", e.reason, e.count)
        } else {
            format!("{}: {message}", e.reason)
        };
        let reason = Some(e.reason.to_string());
        out.push((e.first_seen, entry(e.first_seen, "event", reason, detail)));
    }
    // Stable: moments of one instant keep the order they happened in.
    out.sort_by_key(|(at, _)| *at);
    out.into_iter().map(|(_, e)| e).collect()
}

fn entry(at: Secs, kind: &str, subject: Option<String>, detail: String) -> TimelineEvidence {
    TimelineEvidence {
        at: time(at),
        kind: kind.to_string(),
        subject,
        detail,
    }
}

fn subject(change: &Change) -> Option<String> {
    match change {
        Change::Condition { type_, .. } => Some(type_.to_string()),
        Change::Container { name, init, .. } => Some(if *init {
            format!("init:{name}")
        } else {
            name.to_string()
        }),
        _ => None,
    }
}

/// One story from several tellings of it: the timelines kept in a pod's records (what the
/// operator saw happen, older first) and the one its object and events tell now. Oldest first;
/// a moment that only repeats the last one kept about the same thing (the same container in the
/// same state, the same condition) is dropped, and of an event series told twice (the same
/// reason, first seen at the same time) the last telling is kept: it counts more occurrences.
pub fn merge(tellings: impl IntoIterator<Item = TimelineEvidence>) -> Vec<TimelineEvidence> {
    let mut all: Vec<TimelineEvidence> = tellings.into_iter().collect();
    // Stable: of one instant, the later telling stays later.
    all.sort_by_key(|e| e.at.0);
    let mut out: Vec<TimelineEvidence> = Vec::with_capacity(all.len());
    for e in all {
        if e.kind == "event" {
            let told = out
                .iter()
                .rposition(|o| o.kind == "event" && o.subject == e.subject && o.at == e.at);
            if let Some(i) = told {
                out[i] = e;
                continue;
            }
        } else {
            let last = out
                .iter()
                .rev()
                .find(|o| o.kind == e.kind && o.subject == e.subject);
            if last.is_some_and(|o| o.detail == e.detail) {
                continue;
            }
        }
        out.push(e);
    }
    out
}

/// A change's kind and its words.
pub fn describe(change: &Change) -> (&'static str, String) {
    match change {
        Change::Created => ("created", "created".into()),
        Change::Scheduled(node) => ("scheduled", format!("scheduled to {node}")),
        Change::Phase(p) => ("phase", format!("phase {p:?}")),
        Change::Condition {
            type_,
            status,
            reason,
        } => (
            "condition",
            match reason {
                Some(r) => format!("{type_}={} ({r})", status.as_str()),
                None => format!("{type_}={}", status.as_str()),
            },
        ),
        Change::Container {
            name,
            init,
            state,
            reason,
            exit_code,
            restarts,
        } => {
            let who = if *init { "init container" } else { "container" };
            let mut s = match (state, reason) {
                (Run::Waiting, Some(r)) => format!("{who} {name} waiting: {r}"),
                (Run::Waiting, None) => format!("{who} {name} waiting"),
                (Run::Running, _) => format!("{who} {name} running"),
                (Run::Terminated, Some(r)) => format!("{who} {name} terminated: {r}, exit {exit_code}"),
                (Run::Terminated, None) => format!("{who} {name} terminated, exit {exit_code}"),
                (Run::Unknown, _) => format!("{who} {name} state unknown"),
            };
            if *restarts > 0 {
                s.push_str(&format!(" ({restarts} restarts)"));
            }
            ("container", s)
        }
        Change::Deleting => ("deleting", "deletion requested".into()),
    }
}
