//! Bounded retries of the API calls that actions and records make. A call that fails for a
//! passing reason (429 Too Many Requests, 500, 502, 503, 504, a transport error, no answer within
//! [`CALL_TIMEOUT`]) is tried again after an exponential backoff with full jitter, at most
//! [`Backoff::tries`] times in all; anything else is returned at once. Never a hot loop: the
//! number of calls is bounded and returned, so records can say how many were made.

use std::future::Future;
use std::time::Duration;

/// How long one API call may take before it counts as failed (and is retried).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How often and how patiently a call is retried.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// The backoff before the second call; it doubles for each call after.
    pub first: Duration,
    /// The longest backoff.
    pub cap: Duration,
    /// Calls in all, the first included.
    pub tries: u32,
}

impl Backoff {
    /// Action calls: 5 calls within about 10 s at most.
    pub const ACTION: Backoff = Backoff {
        first: Duration::from_millis(250),
        cap: Duration::from_secs(4),
        tries: 5,
    };
    /// Writing a record (before any action): more patient, the action waits on it.
    pub const RECORD: Backoff = Backoff {
        first: Duration::from_millis(250),
        cap: Duration::from_secs(8),
        tries: 8,
    };

    /// The pause after call number `call` (1-based): uniformly random up to the exponential
    /// bound ("full jitter"), so that many replicas or actions failing together do not retry in
    /// lockstep.
    pub fn pause(&self, call: u32) -> Duration {
        let bound = self
            .first
            .saturating_mul(1u32 << call.saturating_sub(1).min(16))
            .min(self.cap);
        bound.mul_f64(fastrand::f64())
    }
}

/// An API error for people: code, reason and message (kube's own text repeats the status).
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
        e => e.to_string(),
    }
}

/// A 409 that is not a failed precondition: a concurrent writer, worth another call. (A failed
/// UID or resourceVersion precondition means the object is another one now: not retried.)
pub fn conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 && !s.message.contains("Precondition failed"))
}

/// Whether an error is worth another call: the API server was overloaded, failed, or did not
/// answer. 409 Conflict is the caller's to judge (a precondition, or a concurrent writer).
pub fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => matches!(s.code, 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Whether an error says the control plane is failing (overloaded, erroring, not answering), as
/// opposed to refusing this call for a reason of the cluster's: a PodDisruptionBudget's 429 is
/// the Eviction API working as meant.
pub fn control_plane_failure(e: &kube::Error) -> bool {
    transient(e) && !budget_refusal(e)
}

/// An eviction refused by a PodDisruptionBudget (429, cause DisruptionBudget).
pub fn budget_refusal(e: &kube::Error) -> bool {
    let kube::Error::Api(s) = e else {
        return false;
    };
    let by_cause = s
        .details
        .as_ref()
        .is_some_and(|d| d.causes.iter().any(|c| c.reason == "DisruptionBudget"));
    s.code == 429 && (by_cause || s.message.to_ascii_lowercase().contains("disruption budget"))
}

/// Calls `call` until it succeeds, fails for good, or `backoff.tries` calls were made; returns
/// the last result and the number of calls.
pub async fn call<T, F, Fut>(backoff: Backoff, what: &str, call: F) -> (Result<T, kube::Error>, i32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    call_when(backoff, what, transient, call).await
}

/// Like [`call`], with the caller's judgement of which errors are worth another call.
pub async fn call_when<T, F, Fut>(
    backoff: Backoff,
    what: &str,
    retry_on: impl Fn(&kube::Error) -> bool,
    mut call: F,
) -> (Result<T, kube::Error>, i32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut calls = 0u32;
    let log = crate::api_health::ApiCalls::process();
    loop {
        calls += 1;
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(CALL_TIMEOUT, call()).await {
            Ok(result) => result,
            Err(elapsed) => Err(kube::Error::Service(Box::new(elapsed))),
        };
        // What the control plane's answer says of it (whatever the caller retries on).
        log.answered(
            started.elapsed(),
            result.as_ref().err().is_some_and(control_plane_failure),
        );
        match result {
            Err(e) if retry_on(&e) && calls < backoff.tries => {
                let pause = backoff.pause(calls);
                tracing::warn!(call = what, error = %e, attempt = calls, retry_in_ms = pause.as_millis() as u64,
                    "API call failed for a passing reason: trying again");
                tokio::time::sleep(pause).await;
            }
            other => return (other, calls as i32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("injected", "Injected")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn pauses_grow_to_the_cap_and_stay_under_it() {
        let b = Backoff::ACTION;
        for call in 1..40 {
            let bound = b.first.saturating_mul(1 << (call - 1).min(16)).min(b.cap);
            for _ in 0..50 {
                assert!(b.pause(call) <= bound);
            }
        }
        // Jitter: not always the same pause.
        let pauses: std::collections::HashSet<_> = (0..20).map(|_| b.pause(3)).collect();
        assert!(pauses.len() > 1);
    }

    #[test]
    fn a_disruption_budget_s_refusal_is_no_control_plane_failure() {
        let pdb = kube::Error::Api(
            kube::core::Status::failure(
                "Cannot evict pod as it would violate the pod's disruption budget.",
                "TooManyRequests",
            )
            .with_code(429)
            .boxed(),
        );
        assert!(transient(&pdb) && budget_refusal(&pdb) && !control_plane_failure(&pdb));
        let throttled = status(429);
        assert!(control_plane_failure(&throttled) && !budget_refusal(&throttled));
        assert!(control_plane_failure(&status(503)));
        assert!(!control_plane_failure(&status(404)));
    }

    #[test]
    fn only_passing_failures_are_retried() {
        for code in [429, 500, 502, 503, 504] {
            assert!(transient(&status(code)), "{code}");
        }
        for code in [400, 403, 404, 409, 410, 422] {
            assert!(!transient(&status(code)), "{code}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_is_made_at_most_tries_times() {
        let b = Backoff::ACTION;
        let mut made = 0;
        let (result, calls) = call(b, "test", || {
            made += 1;
            async { Err::<(), _>(status(500)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!((made, calls), (5, 5));

        let mut made = 0;
        let (result, calls) = call(b, "test", || {
            made += 1;
            let fail = made < 3;
            async move { if fail { Err(status(503)) } else { Ok(7) } }
        })
        .await;
        assert_eq!((result.unwrap(), calls), (7, 3));

        let (result, calls) = call(b, "test", || async { Err::<(), _>(status(404)) }).await;
        assert!(result.is_err());
        assert_eq!(calls, 1, "a lasting failure is not retried");
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_without_an_answer_times_out_and_is_retried() {
        let mut made = 0;
        let (result, calls) = call(Backoff::ACTION, "test", || {
            made += 1;
            let hang = made == 1;
            async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                Ok(1)
            }
        })
        .await;
        assert_eq!((result.unwrap(), calls), (1, 2));
    }
}
