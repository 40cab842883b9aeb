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

/// At most this many calls are kept.
pub const KEEP: usize = 1024;
/// No call older than this is kept (the rule looks back a minute).
pub const KEEP_FOR_MS: i64 = 5 * 60 * 1000;

#[derive(Debug, Default)]
pub struct ApiCalls {
    samples: Mutex<VecDeque<CallSample>>,
}

impl ApiCalls {
    /// The process's log, which `retry` writes.
    pub fn process() -> Arc<ApiCalls> {
        static LOG: OnceLock<Arc<ApiCalls>> = OnceLock::new();
        LOG.get_or_init(Default::default).clone()
    }

    /// A call answered now (wall clock), after `took`; `failed` for 429, 5xx, a transport error
    /// or no answer.
    pub fn answered(&self, took: Duration, failed: bool) {
        let now_ms = k8s_openapi::jiff::Timestamp::now().as_millisecond();
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
