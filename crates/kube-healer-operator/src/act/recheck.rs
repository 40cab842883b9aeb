//! The fresh recheck right before a destructive call: GET the target (and the node a pod decision
//! depends on, or a node's Lease for HeartbeatLag), convert it as the stores do, and let core's
//! recheck reclassify it with the decision's condition. One or two GETs per destructive action,
//! none on the classification path.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::Api;
use kube_healer_api::{FailureClass, TargetKind};
use kube_healer_core::convert::{Interner, lease_view, node_view, pod_view};
use kube_healer_core::decide::{Fresh, Read, recheck_node, recheck_pod};
use kube_healer_core::view::Secs;

use crate::protocol::ActionRequest;
use crate::retry::{self, Backoff};

/// What the recheck found.
pub enum Rechecked {
    /// The failure still holds (or the request changes nothing and needs no recheck).
    Go,
    /// It cleared: no call; why.
    Cleared(String),
    /// The target is gone: no call; how.
    Gone(String),
    /// Unsafe on what was read: no call; why.
    Unsafe(String),
    /// The fresh state could not be read: no call either; the error, and the calls made.
    Unread(String, i32),
}

/// Pod classes judged on the pod's node: the recheck reads the node too.
fn depends_on_node(class: FailureClass) -> bool {
    matches!(
        class,
        FailureClass::NodeLost | FailureClass::Orphaned | FailureClass::StuckTerminating
    )
}

/// GETs an object: found, gone (404), or the error; and the calls made.
async fn read<K, V>(
    api: &Api<K>,
    name: &str,
    convert: impl FnOnce(&K) -> Option<V>,
) -> (Result<Read<V>, String>, i32)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let (got, calls) = retry::call(Backoff::ACTION, "recheck", || api.get_opt(name)).await;
    let read = match got {
        Ok(Some(object)) => match convert(&object) {
            Some(view) => Ok(Read::Found(view)),
            None => Err(format!("{name} could not be read")),
        },
        Ok(None) => Ok(Read::Gone),
        Err(e) => Err(retry::describe(&e)),
    };
    (read, calls)
}

pub async fn recheck(client: &Client, req: &ActionRequest, now: Secs) -> Rechecked {
    let Some(seen) = req.seen.as_deref() else {
        return Rechecked::Go;
    };
    let target = &req.spec.target;
    let mut interner = Interner::default();
    let nodes: Api<Node> = Api::all(client.clone());
    let mut calls = 0;
    let fresh = match target.kind {
        TargetKind::Pod => {
            let namespace = target.namespace.as_deref().unwrap_or_default();
            let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let (pod, n) = read(&pods, &target.name, |p| pod_view(p, &mut interner).ok()).await;
            calls += n;
            let pod = match pod {
                Ok(p) => p,
                Err(e) => return Rechecked::Unread(e, calls),
            };
            let node_name = seen.pod.as_ref().and_then(|p| p.node.clone());
            let node = match node_name {
                Some(node) if depends_on_node(seen.condition.class) => {
                    let (node, n) = read(&nodes, &node, |n| node_view(n, &mut interner).ok()).await;
                    calls += n;
                    match node {
                        Ok(n) => n,
                        Err(e) => return Rechecked::Unread(e, calls),
                    }
                }
                _ => Read::NotRead,
            };
            recheck_pod(seen, req.spec.action, pod, node, now)
        }
        TargetKind::Node => {
            let (node, n) = read(&nodes, &target.name, |n| node_view(n, &mut interner).ok()).await;
            calls += n;
            let node = match node {
                Ok(n) => n,
                Err(e) => return Rechecked::Unread(e, calls),
            };
            let lease = if seen.condition.class == FailureClass::HeartbeatLag {
                let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
                let (lease, n) = read(&leases, &target.name, |l| lease_view(l, &mut interner).ok()).await;
                calls += n;
                match lease {
                    Ok(l) => l,
                    Err(e) => return Rechecked::Unread(e, calls),
                }
            } else {
                Read::NotRead
            };
            recheck_node(seen, node, lease, now)
        }
    };
    match fresh {
        Fresh::Holds => Rechecked::Go,
        Fresh::Cleared(why) => Rechecked::Cleared(why),
        Fresh::Gone(how) => Rechecked::Gone(how),
        Fresh::Unsafe(why) => Rechecked::Unsafe(why),
    }
}
