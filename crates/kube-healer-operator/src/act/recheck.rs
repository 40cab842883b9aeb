//! The fresh recheck right before a destructive call: GET the target (and the node a pod decision
//! depends on, or a node's Lease for HeartbeatLag and OutOfService), convert it as the stores do, and let core's
//! recheck reclassify it with the decision's condition. One or two GETs per destructive action,
//! none on the classification path.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::Api;
use kube_healer_api::{ActionKind, FailureClass, TargetKind};
use kube_healer_core::convert::{Interner, lease_view, node_view, pod_view};
use kube_healer_core::decide::{Fresh, Read, recheck_node, recheck_pod};
use kube_healer_core::view::Secs;

use crate::protocol::ActionRequest;
use crate::retry::{self, Backoff};

/// Pod classes judged on the pod's node: the recheck reads the node too.
fn depends_on_node(class: FailureClass) -> bool {
    matches!(
        class,
        FailureClass::NodeLost | FailureClass::Orphaned | FailureClass::StuckTerminating
    )
}

/// GETs an object: found or gone (404); an error says why it could not be read. Counts calls.
async fn read<K, V>(
    api: &Api<K>,
    name: &str,
    calls: &mut i32,
    convert: impl FnOnce(&K) -> Option<V>,
) -> Result<Read<V>, String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let (got, n) = retry::call(Backoff::ACTION, "recheck", || api.get_opt(name)).await;
    *calls += n;
    match got {
        Ok(Some(object)) => convert(&object)
            .map(Read::Found)
            .ok_or_else(|| format!("{name} could not be read")),
        Ok(None) => Ok(Read::Gone),
        Err(e) => Err(retry::describe(&e)),
    }
}

/// The target read afresh and reclassified (Holds when the request changes nothing and needs no
/// recheck); Err when it could not be read: why, and the calls made.
pub async fn recheck(client: &Client, req: &ActionRequest, now: Secs) -> Result<Fresh, (String, i32)> {
    let mut calls = 0;
    fresh(client, req, now, &mut calls).await.map_err(|e| (e, calls))
}

async fn fresh(client: &Client, req: &ActionRequest, now: Secs, calls: &mut i32) -> Result<Fresh, String> {
    let Some(seen) = req.seen.as_deref() else {
        return Ok(Fresh::Holds);
    };
    let target = &req.spec.target;
    let mut interner = Interner::default();
    let nodes: Api<Node> = Api::all(client.clone());
    match target.kind {
        TargetKind::Pod => {
            let namespace = target.namespace.as_deref().unwrap_or_default();
            let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let pod = read(&pods, &target.name, calls, |p| pod_view(p, &mut interner).ok()).await?;
            let node = match seen.pod.as_ref().and_then(|p| p.node.as_deref()) {
                Some(node) if depends_on_node(seen.condition.class) => {
                    read(&nodes, node, calls, |n| node_view(n, &mut interner).ok()).await?
                }
                _ => Read::NotRead,
            };
            Ok(recheck_pod(seen, req.spec.action, pod, node, now))
        }
        TargetKind::Node => {
            let node = read(&nodes, &target.name, calls, |n| node_view(n, &mut interner).ok()).await?;
            // HeartbeatLag is judged on the Lease, and OutOfService needs it expired.
            let on_lease = seen.condition.class == FailureClass::HeartbeatLag
                || req.spec.action == ActionKind::OutOfService;
            let lease = if on_lease {
                let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
                read(&leases, &target.name, calls, |l| {
                    lease_view(l, &mut interner).ok()
                })
                .await?
            } else {
                Read::NotRead
            };
            Ok(recheck_node(seen, req.spec.action, node, lease, now))
        }
    }
}
