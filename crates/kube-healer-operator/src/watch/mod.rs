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
use kube_healer_core::decide::Maintainer;
use tokio::sync::mpsc;

use crate::failpoint;
use crate::metrics::Metrics;

mod maintainers;
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
    /// Another tool's maintenance resources (see core's `Maintainer`), each read by the engine
    /// for the node it names; an empty list where the API server does not serve them.
    Maintainer(Maintainer, Box<watcher::Event<DynamicObject>>),
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
            Change::Maintainer(_, e) => matches!(**e, Init),
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

    /// Each maintainer's resource, listed empty: what an engine that is not given those
    /// watches (tests, benchmarks, a recording made before them) knows of them.
    pub fn no_maintainers() -> impl Iterator<Item = Change> {
        Maintainer::ALL.into_iter().flat_map(|m| {
            [watcher::Event::Init, watcher::Event::InitDone].map(|e| Change::Maintainer(m, Box::new(e)))
        })
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
    let own = config.clone();
    let records = Api::<PartialObjectMeta<HealingAction>>::all(client.clone());
    watch_api("healingactions", records, &own, Change::Record, &to);
    let policies = Api::<DynamicObject>::all_with(client.clone(), &ApiResource::erase::<HealingPolicy>(&()));
    let own = match policy_selector {
        Some(selector) => own.labels(selector),
        None => own,
    };
    watch_api("healingpolicies", policies, &own, Change::Policy, &to);
    maintainers::spawn(client, &config, &to.tx, &to.metrics);
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
        let mut pump = Pump::new(resource, tx, metrics);
        loop {
            if !pump.run(std::pin::pin!(make()), wrap).await {
                return;
            }
            if !pump.failed().await {
                return;
            }
        }
    });
}

/// Delivers one watch's events to the engine, and what becomes of the watch.
struct Pump {
    resource: &'static str,
    tx: mpsc::Sender<Change>,
    metrics: Arc<Metrics>,
    backoff: Reconnect,
    first_list: bool,
}

impl Pump {
    fn new(resource: &'static str, tx: mpsc::Sender<Change>, metrics: Arc<Metrics>) -> Self {
        Pump {
            resource,
            tx,
            metrics,
            backoff: Reconnect::default(),
            first_list: true,
        }
    }

    /// Sends the stream's events until it fails (true) or the engine or the stream stops.
    async fn run<K, S>(
        &mut self,
        mut stream: std::pin::Pin<&mut S>,
        wrap: impl Fn(Box<watcher::Event<K>>) -> Change,
    ) -> bool
    where
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    {
        let label = Metrics::resource(self.resource);
        loop {
            match stream.next().await {
                Some(Ok(event)) => {
                    if matches!(event, watcher::Event::InitDone) {
                        self.reset();
                    }
                    self.metrics.watch_events.get_or_create(&label).inc();
                    let began = matches!(event, watcher::Event::Init);
                    if !self.send(wrap(Box::new(event))).await {
                        return false; // the engine stopped
                    }
                    if began && self.first_list && self.resource == "nodes" {
                        failpoint::pause("slow-node-list").await;
                    }
                    self.first_list &= !began;
                }
                Some(Err(error)) => {
                    self.metrics.watch_errors.get_or_create(&label).inc();
                    tracing::warn!(resource = self.resource, error = %error, "watch error: the store is not current until the watch has listed again");
                    return true;
                }
                None => return false,
            }
        }
    }

    /// The watch failed: the engine is told (its store is not current), then the backoff.
    /// False when the engine stopped.
    async fn failed(&mut self) -> bool {
        if !self.send(Change::WatchFailed(self.resource)).await {
            return false;
        }
        tokio::time::sleep(self.backoff.next().unwrap_or_default()).await;
        true
    }

    /// The watch failed and stays unknown for `pause`: the engine is told. False when the engine
    /// stopped.
    async fn failed_for(&mut self, pause: std::time::Duration) -> bool {
        self.send(Change::WatchFailed(self.resource)).await && self.idle(pause).await
    }

    /// Waits `pause`, or until the engine stops (false).
    async fn idle(&self, pause: std::time::Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(pause) => true,
            _ = self.tx.closed() => false,
        }
    }

    /// The API server answered: the next error starts the backoff over.
    fn reset(&mut self) {
        kube::runtime::utils::Backoff::reset(&mut self.backoff);
    }

    async fn send(&self, change: Change) -> bool {
        self.tx.send(change).await.is_ok()
    }
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
