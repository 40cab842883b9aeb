//! The cluster, read once, for the CLI's `explain` and `simulate` (a CLI may list; the operator
//! only watches): every Pod, Node, Event and node Lease as the core's views, and namespace labels.

use std::collections::HashMap;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use kube::api::{Api, ListParams};
use kube_healer_core::Snapshot;
use kube_healer_core::convert::{Interner, event_view, lease_view, node_view, pod_view};

/// The cluster, read once (a CLI may list; the operator only watches).
pub struct ClusterRead {
    pub snapshot: Snapshot,
    /// Namespace labels, for namespaceSelectors.
    pub namespaces: HashMap<String, kube_healer_core::view::Labels>,
}

pub async fn read_cluster(client: &kube::Client) -> anyhow::Result<ClusterRead> {
    let lp = ListParams::default().limit(500);
    let mut interner = Interner::default();
    // Evidence about nodes only from the node's own reporters, as the operator takes it.
    let trust = kube_healer_core::trust::EventTrust::default();
    let pods: Vec<_> = list::<Pod>(Api::all(client.clone()), &lp)
        .await?
        .iter()
        .filter_map(|p| pod_view(p, &mut interner).ok())
        .collect();
    let nodes: Vec<_> = list::<Node>(Api::all(client.clone()), &lp)
        .await?
        .iter()
        .filter_map(|n| node_view(n, &mut interner).ok())
        .collect();
    let events: Vec<_> = list::<Event>(Api::all(client.clone()), &lp)
        .await?
        .iter()
        .filter(|e| trust.judge(e).is_ok())
        .filter_map(|e| event_view(e, &mut interner).ok())
        .collect();
    let leases: Vec<_> = list::<Lease>(Api::namespaced(client.clone(), "kube-node-lease"), &lp)
        .await?
        .iter()
        .filter_map(|l| lease_view(l, &mut interner).ok())
        .collect();
    let namespaces = list::<Namespace>(Api::all(client.clone()), &lp)
        .await?
        .iter()
        .map(|n| {
            (
                n.metadata.name.clone().unwrap_or_default(),
                interner.labels(n.metadata.labels.as_ref()),
            )
        })
        .collect();
    Ok(ClusterRead {
        snapshot: Snapshot::new(pods, nodes, events, leases),
        namespaces,
    })
}

/// Every object of a list, page by page.
pub async fn list<K>(api: Api<K>, params: &ListParams) -> anyhow::Result<Vec<K>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut params = params.clone();
    loop {
        let page = api.list(&params).await?;
        out.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params.continue_token = Some(token),
            _ => return Ok(out),
        }
    }
}
