//! Polling helpers for tests: wait until a condition on the cluster holds.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Calls `check` every 200 ms until it returns `Some`, or fails after `timeout` naming `what`.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(Error::Other(format!(
                "timed out after {timeout:?} waiting for {what}"
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
