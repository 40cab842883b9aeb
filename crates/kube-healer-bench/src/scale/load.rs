//! The load, created through the API as fast as the API server takes it: kwok nodes, namespaces,
//! Running pods bound to the nodes, batches of Evicted pods, and the policies that clean them.

use std::time::{Duration, Instant};

use anyhow::ensure;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use kube_healer_api::HealingPolicy;
use kube_healer_testenv::{Scenario, nodes, scenario_pod};
use serde_json::json;

use super::{Args, BARE_NS, DESCHEDULER_NS, EVICTED_NS, REACT_CHURN_NS, REACT_NS};

/// Load: nodes, then pods bound to them (kwok runs them).
pub(super) async fn create(client: &Client, args: &Args) -> anyhow::Result<()> {
    let t = Instant::now();
    create_nodes(client, args.nodes, args.concurrency).await?;
    println!("{} nodes Ready in {:.1}s", args.nodes, t.elapsed().as_secs_f64());
    let t = Instant::now();
    for i in 0..50 {
        create_namespace(client, &format!("team-{i}")).await?;
    }
    for ns in [REACT_NS, REACT_CHURN_NS, EVICTED_NS, BARE_NS, DESCHEDULER_NS] {
        create_namespace(client, ns).await?;
    }
    let pods = (0..args.pods).map(|i| {
        let mut pod = scenario_pod(
            &format!("team-{}", i % 50),
            &format!("web-{i:06}"),
            Some(&node_name(i % args.nodes)),
            &Scenario::Running,
        );
        let labels = pod.metadata.labels.get_or_insert_default();
        labels.insert("app".into(), format!("web-{}", i % 200));
        labels.insert("tier".into(), "frontend".into());
        pod
    });
    create_pods(client, pods, args.concurrency).await?;
    println!("{} pods created in {:.1}s", args.pods, t.elapsed().as_secs_f64());
    Ok(())
}

/// A rollout restart of every running pod: each deleted and a new one (a new name, as a
/// ReplicaSet makes) created in its place, `concurrency` at a time, until aborted or done.
/// Counts the pods replaced.
pub(super) async fn restart_all(
    client: Client,
    pods: usize,
    nodes: usize,
    concurrency: usize,
    replaced: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> anyhow::Result<()> {
    futures::stream::iter((0..pods).map(|i| {
        let (client, replaced) = (client.clone(), replaced.clone());
        async move {
            let ns = format!("team-{}", i % 50);
            let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client, &ns);
            api.delete(&format!("web-{i:06}"), &Default::default()).await?;
            let mut pod = scenario_pod(
                &ns,
                &format!("web-{i:06}-r"),
                Some(&node_name(i % nodes)),
                &Scenario::Running,
            );
            let labels = pod.metadata.labels.get_or_insert_default();
            labels.insert("app".into(), format!("web-{}", i % 200));
            labels.insert("tier".into(), "frontend".into());
            api.create(&PostParams::default(), &pod).await?;
            replaced.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok::<(), kube::Error>(())
        }
    }))
    .buffer_unordered(concurrency)
    .try_collect::<Vec<()>>()
    .await?;
    Ok(())
}

fn node_name(i: usize) -> String {
    format!("kwok-{i:05}")
}

async fn create_nodes(client: &Client, count: usize, concurrency: usize) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    futures::stream::iter((0..count).map(|i| {
        let api = api.clone();
        async move {
            api.create(&PostParams::default(), &nodes::kwok_node(&node_name(i)))
                .await
        }
    }))
    .buffer_unordered(concurrency)
    .try_collect::<Vec<_>>()
    .await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let list = api.list(&ListParams::default()).await?;
        let ready = list
            .items
            .iter()
            .filter(|n| nodes::ready_status(n).as_deref() == Some("True"))
            .count();
        if ready >= count {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{ready} of {count} nodes Ready after 600 s"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn create_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    // The ServiceAccount admission plugin refuses pods until the default account exists.
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), name);
    kube_healer_testenv::wait::until(
        &format!("default account in {name}"),
        Duration::from_secs(60),
        || async { Ok(accounts.get_opt("default").await?.map(|_| ())) },
    )
    .await?;
    Ok(())
}

async fn create_pods(
    client: &Client,
    pods: impl Iterator<Item = Pod>,
    concurrency: usize,
) -> anyhow::Result<()> {
    futures::stream::iter(pods.map(|pod| {
        let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
        async move {
            loop {
                match api.create(&PostParams::default(), &pod).await {
                    Ok(_) => return Ok(()),
                    Err(kube::Error::Api(s)) if s.code == 429 || s.code >= 500 => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }))
    .buffer_unordered(concurrency)
    .try_collect::<Vec<()>>()
    .await?;
    Ok(())
}

pub(super) async fn create_evicted(
    client: &Client,
    ns: &str,
    count: usize,
    nodes: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let pods = (0..count).map(|i| {
        scenario_pod(
            ns,
            &format!("e-{i:06}"),
            Some(&node_name(i % nodes)),
            &Scenario::evicted(),
        )
    });
    create_pods(client, pods, concurrency).await
}

pub(super) async fn create_policy(
    client: &Client,
    name: &str,
    namespace: &str,
    for_: &str,
) -> anyhow::Result<()> {
    let policy: HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": name},
        "spec": {"target": {"kind": "Pod", "namespaces": {"include": [namespace]}},
            "conditions": [{"class": "Evicted", "for": for_}], "actions": [{"action": "Delete"}],
            "safety": {"maxConcurrent": 100, "rate": {"actions": 100000, "per": "1m"}}},
    }))?;
    Api::<HealingPolicy>::all(client.clone())
        .create(&PostParams::default(), &policy)
        .await?;
    Ok(())
}
