//! The fresh recheck right before a destructive call: GET the target (and the node a pod decision
//! depends on: any pod not stopped for good; or a node's Lease for HeartbeatLag and OutOfService), convert it as the stores do, and let core's
//! recheck reclassify it with the decision's condition. One or two GETs per destructive action,
//! none on the classification path.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, ListParams};
use kube_healer_api::{FailureClass, Fencing, JudgedOn, TargetKind};
use kube_healer_core::convert::{Interner, lease_view, node_view, pod_view};
use kube_healer_core::decide::{Fresh, Read, Seen, Tally, recheck_node, recheck_pod};
use kube_healer_core::view::Secs;

use crate::protocol::{ActionRequest, Maintained};
use crate::retry::{self, Backoff};

/// Pod classes judged on the pod's node: the recheck reads the node too. That is every class of
/// a pod not stopped for good besides those judged on the node itself: what a running pod's
/// status says is its kubelet's word, current only while its node is Ready (core's classify). A
/// restart served a stale node list would otherwise act on the last status of a node since cut
/// off (found by the invariants' histories).
fn depends_on_node(class: FailureClass) -> bool {
    let class = class.properties();
    class.judged_on == JudgedOn::StateAndNode || !class.stopped_for_good
}

/// Why the target, or what it is judged on, could not be read afresh.
#[derive(Debug, thiserror::Error)]
pub enum Unread {
    /// Read, but not into a view (a field the view needs is missing).
    #[error("{0} could not be read")]
    Unconvertible(String),
    #[error("{}", retry::describe(.0))]
    Api(#[source] kube::Error),
}

/// GETs an object: found or gone (404); an error says why it could not be read. Counts calls.
async fn read<K, V>(
    api: &Api<K>,
    name: &str,
    calls: &mut i32,
    convert: impl FnOnce(&K) -> Option<V>,
) -> Result<Read<V>, Unread>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let (got, n) = retry::call(Backoff::ACTION, "recheck", || api.get_opt(name)).await;
    *calls += n;
    match got {
        Ok(Some(object)) => convert(&object)
            .map(Read::Found)
            .ok_or_else(|| Unread::Unconvertible(name.to_string())),
        Ok(None) => Ok(Read::Gone),
        Err(e) => Err(Unread::Api(e)),
    }
}

/// The target read afresh and reclassified (Holds when the request changes nothing and needs no
/// recheck); Err when it could not be read: why, and the calls made.
/// Other tools' resources are not read here: what the engine last saw of them (`maintained`)
/// is set on the node read afresh.
pub async fn recheck(
    client: &Client,
    maintained: &Maintained,
    req: &ActionRequest,
    now: Secs,
) -> Result<Fresh, (Unread, i32)> {
    let mut calls = 0;
    fresh((client, maintained), req, now, &mut calls)
        .await
        .map_err(|e| (e, calls))
}

/// What the recheck reads besides its target: the node of a pod judged with its node, the Lease
/// of a node judged on it (HeartbeatLag) or fenced by its expiry (OutOfService).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reads {
    pub pods_node: bool,
    pub lease: bool,
}

pub fn reads(seen: &Seen, action: kube_healer_api::ActionKind) -> Reads {
    let class = seen.condition.class.properties();
    Reads {
        pods_node: depends_on_node(seen.condition.class),
        lease: class.judged_on == JudgedOn::Lease || action.properties().fencing == Fencing::NodeShutDown,
    }
}

async fn fresh(
    (client, maintained): (&Client, &Maintained),
    req: &ActionRequest,
    now: Secs,
    calls: &mut i32,
) -> Result<Fresh, Unread> {
    let Some(seen) = req.seen.as_deref() else {
        return Ok(Fresh::Holds);
    };
    let target = &req.spec.target;
    let mut interner = Interner::default();
    let mut node_view = |n: &Node| {
        let mut view = node_view(n, &mut interner).ok()?;
        view.maintained = maintained.of(&view.name);
        Some(view)
    };
    let nodes: Api<Node> = Api::all(client.clone());
    match target.kind {
        TargetKind::Pod => {
            let namespace = target.namespace.as_deref().unwrap_or_default();
            let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
            let pod = read(&pods, &target.name, calls, |p| {
                pod_view(p, &mut Interner::default()).ok()
            })
            .await?;
            let node = match seen.pod.as_ref().and_then(|p| p.node.as_deref()) {
                Some(node) if reads(seen, req.spec.action).pods_node => {
                    read(&nodes, node, calls, &mut node_view).await?
                }
                _ => Read::NotRead,
            };
            Ok(recheck_pod(seen, req.spec.action, pod, node, now))
        }
        TargetKind::Node => {
            let node = read(&nodes, &target.name, calls, &mut node_view).await?;
            let lease = if reads(seen, req.spec.action).lease {
                let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
                read(&leases, &target.name, calls, |l| {
                    lease_view(l, &mut Interner::default()).ok()
                })
                .await?
            } else {
                Read::NotRead
            };
            let counted = matches!(&node, Read::Found(n) if Tally::may_refuse(n, &seen.planned));
            match recheck_node(seen, req.spec.action, node, lease, now) {
                Fresh::Holds if counted => budget(client, seen, &target.name, calls).await,
                other => Ok(other),
            }
        }
    }
}

/// How many nodes a page of the budget's count lists.
const BUDGET_PAGE: u32 = 500;

/// The disruption budget counted again on the nodes listed afresh (a consistent read, in pages,
/// each page counted and dropped), for an action that takes a node out: the gate counted its
/// store, which a watch lagging silently may leave behind. One list per such action, which the
/// gate's limits bound (a storm is held before it gets here).
async fn budget(client: &Client, seen: &Seen, target: &str, calls: &mut i32) -> Result<Fresh, Unread> {
    let Some(configured) = seen.budget.as_deref() else {
        return Ok(Fresh::Holds);
    };
    let nodes: Api<Node> = Api::all(client.clone());
    let mut tally = Tally::default();
    let mut interner = Interner::default();
    let mut params = ListParams::default().limit(BUDGET_PAGE);
    loop {
        let (page, n) = retry::call(Backoff::ACTION, "recheck budget", || nodes.list(&params)).await;
        *calls += n;
        let page = page.map_err(Unread::Api)?;
        for node in &page.items {
            let view = node_view(node, &mut interner)
                .map_err(|_| Unread::Unconvertible(node.metadata.name.clone().unwrap_or_default()))?;
            tally.add(&view, target, &seen.planned);
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    Ok(match tally.refusal(configured) {
        Some(why) => Fresh::BudgetExceeded(why),
        None => Fresh::Holds,
    })
}
