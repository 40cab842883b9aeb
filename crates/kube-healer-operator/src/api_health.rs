//! kube-healer's own API calls as the control plane answered them: when each answer came, how
//! long the call took, and whether it failed for a reason of the control plane's. Every call an
//! action or a record makes goes through `retry`, which notes each one here; the engine reads the
//! recent ones to judge whether the control plane is a cause (the core's `control_plane` rule).
//!
//! One log per process, because every call path shares the one API server; the engine may be
//! given its own (tests). Bounded: the last [`KEEP`] calls, and none older than [`KEEP_FOR_MS`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use kube_healer_core::classify::CallSample;

use crate::clock::{Clock, WallClock};

/// At most this many calls are kept.
pub const KEEP: usize = 1024;
/// No call older than this is kept (the rule looks back a minute).
pub const KEEP_FOR_MS: i64 = 5 * 60 * 1000;

#[derive(Default)]
pub struct ApiCalls {
    samples: Mutex<VecDeque<CallSample>>,
    /// The engine's clock, which judges the samples: they are stamped by it (a skewed or manual
    /// clock stamps and judges alike). The wall clock until an engine gives its own.
    clock: Mutex<Option<Arc<dyn Clock>>>,
}

impl std::fmt::Debug for ApiCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiCalls")
            .field("samples", &self.samples)
            .finish_non_exhaustive()
    }
}

impl ApiCalls {
    /// The process's log, which `retry` writes.
    pub fn process() -> Arc<ApiCalls> {
        static LOG: OnceLock<Arc<ApiCalls>> = OnceLock::new();
        LOG.get_or_init(Default::default).clone()
    }

    /// Stamps the calls from now on with `clock` (the engine's).
    pub fn set_clock(&self, clock: Arc<dyn Clock>) {
        if let Ok(mut c) = self.clock.lock() {
            *c = Some(clock);
        }
    }

    /// A call answered now (by the engine's clock), after `took`; `failed` for 429, 5xx, a
    /// transport error or no answer.
    pub fn answered(&self, took: Duration, failed: bool) {
        let clock = self.clock.lock().ok().and_then(|c| c.clone());
        let now_ms = clock.map_or_else(|| WallClock::default().now_ms(), |c| c.now_ms());
        self.note(CallSample {
            at_ms: now_ms,
            latency_ms: took.as_millis() as u64,
            failed,
        });
    }

    /// Notes a call's answer.
    pub fn note(&self, sample: CallSample) {
        let Ok(mut samples) = self.samples.lock() else {
            return;
        };
        samples.push_back(sample);
        while samples.len() > KEEP
            || samples
                .front()
                .is_some_and(|s| s.at_ms < sample.at_ms - KEEP_FOR_MS)
        {
            samples.pop_front();
        }
    }

    /// The calls kept, oldest first.
    pub fn recent(&self) -> Vec<CallSample> {
        self.samples
            .lock()
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule judges the samples by the engine's clock: they are stamped by it too (a manual
    /// clock in a replay, a skewed one on a host whose clock is off).
    #[test]
    fn calls_are_stamped_by_the_engines_clock() {
        let log = ApiCalls::default();
        let clock = crate::clock::ManualClock::at(1_000);
        log.set_clock(Arc::new(clock.clone()));
        log.answered(Duration::from_millis(5), false);
        clock.advance(60);
        log.answered(Duration::from_millis(7), true);
        let at: Vec<i64> = log.recent().iter().map(|s| s.at_ms).collect();
        assert_eq!(at, [1_000_000, 1_060_000]);
    }

    #[test]
    fn the_log_is_bounded_by_count_and_age() {
        let log = ApiCalls::default();
        for i in 0..(KEEP as i64 + 10) {
            log.note(CallSample {
                at_ms: i,
                latency_ms: 1,
                failed: false,
            });
        }
        assert_eq!(log.recent().len(), KEEP);
        log.note(CallSample {
            at_ms: KEEP_FOR_MS + 2_000,
            latency_ms: 1,
            failed: true,
        });
        assert_eq!(log.recent().len(), 1, "older than {KEEP_FOR_MS} ms: gone");
    }
}
