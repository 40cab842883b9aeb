//! The polls that tell when a phase is done: pods gone from a namespace, pods Failed (kwok applies
//! its stages late under load).

use std::time::{Duration, Instant};

use anyhow::ensure;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams};

pub(super) async fn count_pods(client: &Client, ns: &str) -> anyhow::Result<usize> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    Ok(api.list_metadata(&ListParams::default()).await?.items.len())
}

pub(super) async fn wait_pods_gone(client: &Client, ns: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = count_pods(client, ns).await?;
        if left == 0 {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{left} pods left in {ns} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub(super) async fn wait_failed(
    client: &Client,
    ns: &str,
    count: usize,
    timeout: Duration,
) -> anyhow::Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let failed = ListParams::default().fields("status.phase=Failed");
    let deadline = Instant::now() + timeout;
    loop {
        let n = api.list_metadata(&failed).await?.items.len();
        if n >= count {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{n} of {count} pods Failed in {ns} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
