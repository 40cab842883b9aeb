//! The watches (Pods, Nodes, Events, node Leases, Namespaces, HealingPolicies, and HealingActions'
//! metadata), forwarded to the engine as changes. Each starts anew after an error (with backoff),
//! listing again, and says so to the engine first. Every list is a consistent read, in pages.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use kube::api::{ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, watcher};
use kube::{Api, Client};
use kube_healer_api::{HealingAction, HealingPolicy};
use tokio::sync::mpsc;

use crate::failpoint;
use crate::metrics::Metrics;

mod reconnect;

use reconnect::Reconnect;

/// A change seen by one of the watches.
/// (Boxed: a Pod is kilobytes; the channel holds pointers.)
pub enum Change {
    Pod(Box<watcher::Event<Pod>>),
    Node(Box<watcher::Event<Node>>),
    Event(Box<watcher::Event<Event>>),
    Lease(Box<watcher::Event<Lease>>),
    /// HealingPolicies, each decoded by the engine on its own: one that cannot be read (stored
    /// under an older schema, say) is refused in its status and does not stop the watch.
    Policy(Box<watcher::Event<DynamicObject>>),
    Namespace(Box<watcher::Event<Namespace>>),
    /// HealingActions, metadata only (for retention).
    Record(Box<watcher::Event<PartialObjectMeta<HealingAction>>>),
    /// A watch failed (by its resource name): its store is not current until it has listed again.
    WatchFailed(&'static str),
}

impl Change {
    /// Whether this change begins a (re)list of its watch.
    pub fn begins_list(&self) -> bool {
        use watcher::Event::Init;
        match self {
            Change::Pod(e) => matches!(**e, Init),
            Change::Node(e) => matches!(**e, Init),
            Change::Event(e) => matches!(**e, Init),
            Change::Lease(e) => matches!(**e, Init),
            Change::Policy(e) => matches!(**e, Init),
            Change::Namespace(e) => matches!(**e, Init),
            Change::Record(e) => matches!(**e, Init),
            Change::WatchFailed(_) => false,
        }
    }

    /// A HealingPolicy change as its watch delivers it (tests and benchmarks feed the engine so).
    pub fn policy(event: watcher::Event<HealingPolicy>) -> Change {
        let dynamic = |p: HealingPolicy| {
            serde_json::to_value(p)
                .and_then(serde_json::from_value::<DynamicObject>)
                .expect("a HealingPolicy is a Kubernetes object")
        };
        Change::Policy(Box::new(match event {
            watcher::Event::Apply(p) => watcher::Event::Apply(dynamic(p)),
            watcher::Event::InitApply(p) => watcher::Event::InitApply(dynamic(p)),
            watcher::Event::Delete(p) => watcher::Event::Delete(dynamic(p)),
            watcher::Event::Init => watcher::Event::Init,
            watcher::Event::InitDone => watcher::Event::InitDone,
        }))
    }
}

/// Starts the watches; they run until the receiver is dropped.
pub fn spawn(
    client: &Client,
    tx: mpsc::Sender<Change>,
    metrics: Arc<Metrics>,
    policy_selector: Option<&str>,
) {
    // Every list is a consistent read (resourceVersion unset), in pages of 500: never served
    // from a watch cache that may be behind, as resourceVersion 0 (a streaming list, or an
    // informer's first list) may be. A restarted replica decides on the cluster as it is, not
    // as it was: found by the invariants' histories, a restart served a pod list from before a
    // third workload broke decided on the other two's pods one by one (CorrelatedPods), one
    // served a record list from before its predecessor's last actions went past its policy's
    // rate (Limits). API servers since 1.31 serve consistent lists from their cache.
    let config = consistent_pages();
    let to = Sink { tx, metrics };
    watch_api("pods", Api::<Pod>::all(client.clone()), &config, Change::Pod, &to);
    watch_api(
        "nodes",
        Api::<Node>::all(client.clone()),
        &config,
        Change::Node,
        &to,
    );
    watch_api(
        "events",
        Api::<Event>::all(client.clone()),
        &config,
        Change::Event,
        &to,
    );
    let leases = Api::<Lease>::namespaced(client.clone(), "kube-node-lease");
    watch_api("leases", leases, &config, Change::Lease, &to);
    let namespaces = Api::<Namespace>::all(client.clone());
    watch_api("namespaces", namespaces, &config, Change::Namespace, &to);
    // kube-healer's own memory (its records: rates, attempts, what is in flight; its policies).
    let own = config;
    let records = Api::<PartialObjectMeta<HealingAction>>::all(client.clone());
    watch_api("healingactions", records, &own, Change::Record, &to);
    let policies = Api::<DynamicObject>::all_with(client.clone(), &ApiResource::erase::<HealingPolicy>(&()));
    let own = match policy_selector {
        Some(selector) => own.labels(selector),
        None => own,
    };
    watch_api("healingpolicies", policies, &own, Change::Policy, &to);
}

/// How every watch lists: pages of a consistent read.
fn consistent_pages() -> watcher::Config {
    watcher::Config::default()
        .page_size(500)
        .list_semantic(watcher::ListSemantic::MostRecent)
}

/// Where the watches send their changes, and count them.
struct Sink {
    tx: mpsc::Sender<Change>,
    metrics: Arc<Metrics>,
}

/// One watch of `api`, forwarded to the engine.
fn watch_api<K>(
    resource: &'static str,
    api: Api<K>,
    config: &watcher::Config,
    wrap: fn(Box<watcher::Event<K>>) -> Change,
    to: &Sink,
) where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    let config = config.clone();
    forward(
        resource,
        move || watcher(api.clone(), config.clone()),
        wrap,
        to.tx.clone(),
        to.metrics.clone(),
    );
}

/// Forwards one watch to the engine. On an error the watch is not resumed where it stood but
/// started anew, after a backoff: the engine is told at once that the store is no longer current
/// (decisions that depend on it wait), and the new watch lists before it streams, so the store is
/// current again exactly when that list ends. Resuming in place would give no such signal: an idle
/// watch (namespaces, policies) could stay silently broken, its store frozen, for hours.
fn forward<K, S>(
    resource: &'static str,
    make: impl Fn() -> S + Send + 'static,
    wrap: fn(Box<watcher::Event<K>>) -> Change,
    tx: mpsc::Sender<Change>,
    metrics: Arc<Metrics>,
) where
    K: Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        let label = Metrics::resource(resource);
        let mut backoff = Reconnect::default();
        let mut first_list = true;
        loop {
            let mut stream = std::pin::pin!(make());
            let error = loop {
                match stream.next().await {
                    Some(Ok(event)) => {
                        if matches!(event, watcher::Event::InitDone) {
                            kube::runtime::utils::Backoff::reset(&mut backoff);
                        }
                        metrics.watch_events.get_or_create(&label).inc();
                        let began = matches!(event, watcher::Event::Init);
                        if tx.send(wrap(Box::new(event))).await.is_err() {
                            return; // the engine stopped
                        }
                        if began && first_list && resource == "nodes" {
                            failpoint::pause("slow-node-list").await;
                        }
                        first_list &= !began;
                    }
                    Some(Err(e)) => break e,
                    None => return,
                }
            };
            metrics.watch_errors.get_or_create(&label).inc();
            tracing::warn!(resource, error = %error, "watch error: the store is not current until the watch has listed again");
            if tx.send(Change::WatchFailed(resource)).await.is_err() {
                return;
            }
            tokio::time::sleep(backoff.next().unwrap_or_default()).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use kube::runtime::watcher::{InitialListStrategy, ListSemantic};

    /// Nothing is listed from a cache that may be behind.
    #[test]
    fn lists_are_consistent_reads() {
        let own = super::consistent_pages();
        assert_eq!(own.list_semantic, ListSemantic::MostRecent);
        assert_eq!(own.initial_list_strategy, InitialListStrategy::ListWatch);
    }
}
