//! Polling helpers for tests: wait until a condition on the cluster holds.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Calls `check` every 200 ms until it returns `Some`, or fails after `timeout` naming `what`.
/// A transient error (throttled, 5xx, timed out: [`Error::is_transient`]) is retried like a
/// `None`, and named in the timeout's message if it was the last answer; any other error ends
/// the wait at once.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last_error = match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => None,
            Err(e) if e.is_transient() => Some(e),
            Err(e) => return Err(e),
        };
        if Instant::now() > deadline {
            let last = last_error.map_or(String::new(), |e| format!(" (last answer: {e})"));
            return Err(Error::Other(format!(
                "timed out after {timeout:?} waiting for {what}{last}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the pod `name` reports `phase` (Running, Failed, ...).
pub async fn pod_phase(
    pods: &kube::Api<k8s_openapi::api::core::v1::Pod>,
    name: &str,
    phase: &str,
    timeout: Duration,
) -> Result<()> {
    until(&format!("pod {name} to be {phase}"), timeout, || async {
        let current = pods
            .get_opt(name)
            .await?
            .and_then(|p| p.status)
            .and_then(|s| s.phase);
        Ok((current.as_deref() == Some(phase)).then_some(()))
    })
    .await
}

/// One API call, made again while its answer is transient ([`Error::is_transient`]: throttled,
/// 5xx, timed out) for up to 30 s: a test's poll that must not fail on a loaded API server's
/// passing refusal.
pub async fn retried<T, F, Fut>(mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, kube::Error>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match call().await.map_err(Error::from) {
            Err(e) if e.is_transient() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}
