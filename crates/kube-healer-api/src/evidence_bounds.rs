//! Evidence bounded in size: a record must always be writable, however large the failing
//! object's messages are (the API server refuses objects over its request limit, and a record
//! refused is a decision never carried out). Each text is cut with a marker that says so.

use crate::record::Evidence;

/// Characters kept of one text.
pub const TEXT: usize = 1024;
/// Entries kept of each list (conditions, containers, events) and of the facts.
pub const ENTRIES: usize = 16;

/// `s` cut to `max` characters, with a marker naming what was cut.
pub fn cut(s: &mut String, max: usize) {
    if let Some((at, _)) = s.char_indices().nth(max) {
        let dropped = s.len() - at;
        s.truncate(at);
        s.push_str(&format!("... [cut: {dropped} more bytes]"));
    }
}

fn cut_opt(s: &mut Option<String>) {
    if let Some(s) = s {
        cut(s, TEXT);
    }
}

impl Evidence {
    /// The evidence, every text at most [`TEXT`] characters and every list at most [`ENTRIES`]
    /// entries (the timeline's latest); what was left out is counted in the fact `evidenceCut`.
    pub fn bounded(mut self) -> Evidence {
        let mut dropped = 0;
        cut(&mut self.summary, TEXT);
        dropped += self.conditions.len().saturating_sub(ENTRIES);
        self.conditions.truncate(ENTRIES);
        for c in &mut self.conditions {
            cut(&mut c.type_, TEXT);
            cut(&mut c.status, TEXT);
            cut_opt(&mut c.reason);
            cut_opt(&mut c.message);
        }
        dropped += self.containers.len().saturating_sub(ENTRIES);
        self.containers.truncate(ENTRIES);
        for c in &mut self.containers {
            cut(&mut c.name, TEXT);
            cut(&mut c.state, TEXT);
            cut_opt(&mut c.reason);
            cut_opt(&mut c.message);
        }
        dropped += self.events.len().saturating_sub(ENTRIES);
        self.events.truncate(ENTRIES);
        for e in &mut self.events {
            cut(&mut e.reason, TEXT);
            cut_opt(&mut e.message);
        }
        // The latest moments are the ones nearest the decision.
        let early = self.timeline.len().saturating_sub(ENTRIES);
        dropped += early;
        self.timeline.drain(..early);
        for m in &mut self.timeline {
            cut(&mut m.kind, TEXT);
            cut(&mut m.detail, TEXT);
        }
        if self.facts.len() > ENTRIES {
            dropped += self.facts.len() - ENTRIES;
            let keep: Vec<String> = self.facts.keys().take(ENTRIES).cloned().collect();
            self.facts.retain(|k, _| keep.contains(k));
        }
        let facts = std::mem::take(&mut self.facts);
        self.facts = facts
            .into_iter()
            .map(|(mut k, mut v)| {
                cut(&mut k, TEXT);
                cut(&mut v, TEXT);
                (k, v)
            })
            .collect();
        if dropped > 0 {
            self.facts
                .insert("evidenceCut".into(), format!("{dropped} entries left out"));
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{ContainerEvidence, EventEvidence, TimelineEvidence};

    #[test]
    fn huge_evidence_is_cut_with_markers_and_small_evidence_is_kept() {
        let small = Evidence {
            summary: "short".into(),
            ..Default::default()
        };
        assert_eq!(small.clone().bounded(), small);

        let huge = Evidence {
            summary: "é".repeat(100_000),
            containers: vec![
                ContainerEvidence {
                    message: Some("x".repeat(100_000)),
                    ..Default::default()
                };
                40
            ],
            events: vec![
                EventEvidence {
                    message: Some("y".repeat(5000)),
                    ..Default::default()
                };
                3
            ],
            facts: (0..100).map(|i| (format!("f{i:03}"), "v".repeat(2000))).collect(),
            ..Default::default()
        }
        .bounded();
        assert_eq!(huge.summary.chars().take_while(|c| *c == 'é').count(), TEXT);
        assert!(
            huge.summary.ends_with("... [cut: 197952 more bytes]"),
            "{}",
            &huge.summary[2000..]
        );
        assert_eq!(huge.containers.len(), ENTRIES);
        assert!(
            huge.events[0]
                .message
                .as_deref()
                .unwrap()
                .contains("[cut: 3976 more bytes]")
        );
        assert_eq!(huge.facts["evidenceCut"], "108 entries left out");
        let size = serde_json::to_string(&huge).unwrap().len();
        assert!(size < 128 * 1024, "{size} bytes");
    }

    #[test]
    fn a_long_timeline_keeps_its_latest_moments_up_to_the_decision() {
        let moment = |i: i64| TimelineEvidence {
            at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(1_800_000_000 + i).unwrap(),
            ),
            kind: "event".into(),
            subject: None,
            detail: format!("moment {i} {}", "z".repeat(3000)),
        };
        let evidence = Evidence {
            timeline: (0..40).map(moment).collect(),
            ..Default::default()
        }
        .bounded();
        assert_eq!(evidence.timeline.len(), ENTRIES);
        assert!(evidence.timeline[0].detail.starts_with("moment 24 "));
        assert!(evidence.timeline[ENTRIES - 1].detail.starts_with("moment 39 "));
        assert!(evidence.timeline[0].detail.contains("[cut: "));
        assert_eq!(evidence.facts["evidenceCut"], "24 entries left out");
    }
}
