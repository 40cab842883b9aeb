//! How soon a watch connects again after an error.

/// The pause before a watch connects again after an error: doubling from 250 ms up to 5 s, half
/// of it random. (kube's default reaches 30 s: an API server back from a restart would go
/// unnoticed for that long, and decisions would be made on the state from before.)
#[derive(Default)]
pub struct Reconnect {
    errors: u32,
}

impl Iterator for Reconnect {
    type Item = std::time::Duration;

    fn next(&mut self) -> Option<Self::Item> {
        self.errors = self.errors.saturating_add(1);
        let bound = std::time::Duration::from_millis(250)
            .saturating_mul(1 << (self.errors - 1).min(5))
            .min(std::time::Duration::from_secs(5));
        Some(bound / 2 + (bound / 2).mul_f64(fastrand::f64()))
    }
}

impl kube::runtime::utils::Backoff for Reconnect {
    fn reset(&mut self) {
        self.errors = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnects_come_within_five_seconds_and_start_fast() {
        let mut r = Reconnect::default();
        let pauses: Vec<_> = (0..20).map(|_| r.next().unwrap()).collect();
        assert!(pauses[0] <= std::time::Duration::from_millis(250));
        assert!(pauses.iter().all(|p| *p <= std::time::Duration::from_secs(5)));
        assert!(pauses[10] >= std::time::Duration::from_millis(2500));
        kube::runtime::utils::Backoff::reset(&mut r);
        assert!(r.next().unwrap() <= std::time::Duration::from_millis(250));
    }
}
