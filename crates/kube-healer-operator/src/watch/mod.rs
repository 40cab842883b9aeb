//! The watches (Pods, Nodes, Events, node Leases, Namespaces, HealingPolicies, and HealingActions'
//! metadata), forwarded to the engine as changes. Each
//! resumes on its own after errors (with backoff); start-up lists are streamed from the API
//! server's watch cache (watch-list), or paged.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use kube::api::{ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, watcher};
use kube::{Api, Client};
use kube_healer_api::{HealingAction, HealingPolicy};
use tokio::sync::mpsc;

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
    paged_lists: bool,
) {
    // Start-up lists stream from the API server's watch cache (watch-list, on by default since
    // Kubernetes 1.32: no pages to wait for, no whole page in memory at once), or come in pages
    // of 500 where the API server does not stream.
    let config = watcher::Config::default().page_size(500);
    let config = if paged_lists {
        config
    } else {
        config.streaming_lists()
    };
    forward(
        "pods",
        watcher(Api::<Pod>::all(client.clone()), config.clone()),
        Change::Pod,
        tx.clone(),
        metrics.clone(),
    );
    forward(
        "nodes",
        watcher(Api::<Node>::all(client.clone()), config.clone()),
        Change::Node,
        tx.clone(),
        metrics.clone(),
    );
    forward(
        "events",
        watcher(Api::<Event>::all(client.clone()), config.clone()),
        Change::Event,
        tx.clone(),
        metrics.clone(),
    );
    let leases = Api::<Lease>::namespaced(client.clone(), "kube-node-lease");
    forward(
        "leases",
        watcher(leases, config.clone()),
        Change::Lease,
        tx.clone(),
        metrics.clone(),
    );
    let namespaces = watcher(Api::<Namespace>::all(client.clone()), config.clone());
    forward(
        "namespaces",
        namespaces,
        Change::Namespace,
        tx.clone(),
        metrics.clone(),
    );
    forward(
        "healingactions",
        watcher(
            Api::<PartialObjectMeta<HealingAction>>::all(client.clone()),
            config.clone(),
        ),
        Change::Record,
        tx.clone(),
        metrics.clone(),
    );
    forward(
        "healingpolicies",
        watcher(
            Api::<DynamicObject>::all_with(client.clone(), &ApiResource::erase::<HealingPolicy>(&())),
            match policy_selector {
                Some(selector) => config.labels(selector),
                None => config,
            },
        ),
        Change::Policy,
        tx,
        metrics,
    );
}

fn forward<K, S>(
    resource: &'static str,
    stream: S,
    wrap: fn(Box<watcher::Event<K>>) -> Change,
    tx: mpsc::Sender<Change>,
    metrics: Arc<Metrics>,
) where
    K: Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream.backoff(Reconnect::default()));
        let label = Metrics::resource(resource);
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => {
                    metrics.watch_events.get_or_create(&label).inc();
                    if tx.send(wrap(Box::new(event))).await.is_err() {
                        return; // the engine stopped
                    }
                }
                Err(e) => {
                    metrics.watch_errors.get_or_create(&label).inc();
                    tracing::warn!(resource, error = %e, "watch error; resuming after backoff");
                }
            }
        }
    });
}
