//! Where time comes from. The operator reads the wall clock; tests, benchmarks and replays drive
//! a manual one. Everything that decides takes its time from a [`Clock`], never from the system.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use kube_healer_core::view::Secs;

pub trait Clock: Send + Sync + 'static {
    /// Unix milliseconds.
    fn now_ms(&self) -> i64;

    /// Unix seconds.
    fn now(&self) -> Secs {
        self.now_ms().div_euclid(1000)
    }

    /// As an API time.
    fn time(&self) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
        let ts = k8s_openapi::jiff::Timestamp::from_millisecond(self.now_ms())
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts)
    }
}

/// The system's clock (with an offset only where a test skews it).
#[derive(Clone, Copy, Debug, Default)]
pub struct WallClock {
    offset_ms: i64,
}

impl WallClock {
    /// The system's clock read `secs` ahead (behind, if negative): a host with a skewed clock.
    pub fn skewed_by(secs: Secs) -> Self {
        WallClock {
            offset_ms: secs.saturating_mul(1000),
        }
    }
}

impl Clock for WallClock {
    fn now_ms(&self) -> i64 {
        k8s_openapi::jiff::Timestamp::now().as_millisecond() + self.offset_ms
    }
}

/// A clock moved by hand; clones share one time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock reading `secs` (Unix seconds).
    pub fn at(secs: Secs) -> Self {
        ManualClock(Arc::new(AtomicI64::new(secs * 1000)))
    }

    /// Sets the time to `secs` (Unix seconds).
    pub fn set(&self, secs: Secs) {
        self.0.store(secs * 1000, Ordering::SeqCst);
    }

    /// Sets the time to `ms` (Unix milliseconds).
    pub fn set_ms(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    /// Moves the time on by `secs`.
    pub fn advance(&self, secs: Secs) {
        self.0.fetch_add(secs * 1000, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_of_a_manual_clock_share_its_time() {
        let a = ManualClock::at(100);
        let b = a.clone();
        a.advance(5);
        assert_eq!((b.now(), b.now_ms()), (105, 105_000));
        b.set(7);
        assert_eq!(a.now(), 7);
        let wall = WallClock::default().now();
        assert!(wall > 1_700_000_000);
        let skewed = WallClock::skewed_by(30).now() - wall;
        assert!((29..=31).contains(&skewed), "{skewed}");
    }
}
