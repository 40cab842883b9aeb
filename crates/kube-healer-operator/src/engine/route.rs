//! Routing each watch change to where it is kept, then classifying what it touched.

use kube_healer_core::ClusterView;

use super::Engine;
use crate::metrics::Metrics;
use crate::store::Applied;
use crate::watch::Change;

impl Engine {
    pub fn apply(&mut self, change: Change) {
        let now = self.clock.now();
        let applied = match change {
            Change::Pod(event) => {
                let applied = self.stores.apply_pod(*event, now);
                self.synced.pods |= applied.listed;
                applied
            }
            Change::Node(event) => {
                let applied = self.stores.apply_node(*event, now);
                self.synced.nodes |= applied.listed;
                applied
            }
            Change::Event(event) => {
                let applied = self.stores.apply_event(*event, now);
                self.synced.events |= applied.listed;
                applied
            }
            Change::Lease(event) => {
                let applied = self.stores.apply_lease(*event);
                self.synced.leases |= applied.listed;
                applied
            }
            Change::Policy(event) => self.apply_policy(*event, now),
            Change::Namespace(event) => self.apply_namespace(*event),
            Change::Record(event) => {
                self.apply_record(*event, now);
                Applied::default()
            }
        };
        for target in &applied.targets {
            self.evaluate(target, now);
        }
        if applied.listed {
            self.publish_synced();
        }
        self.count_stores();
    }

    pub(super) fn count_stores(&self) {
        let count = |resource: &str, n: usize| {
            self.metrics
                .store_objects
                .get_or_create(&Metrics::resource(resource))
                .set(n as i64);
        };
        count("pods", self.stores.pod_count());
        count("nodes", ClusterView::node_count(&self.stores));
        count("events", self.stores.event_count());
    }

    fn publish_synced(&self) {
        self.synced_tx.send_replace(self.synced);
        if self.synced.all() {
            tracing::info!(
                pods = self.stores.pod_count(),
                nodes = ClusterView::node_count(&self.stores),
                "stores synced"
            );
        }
    }
}
