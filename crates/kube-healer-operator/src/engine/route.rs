//! Routing each watch change to where it is kept, then classifying what it touched.

use kube_healer_core::ClusterView;
use kube_healer_core::view::Secs;

use super::Engine;
use crate::metrics::Metrics;
use crate::store::Applied;
use crate::watch::Change;

impl Engine {
    pub fn apply(&mut self, change: Change) {
        let now = self.clock.now();
        let was_synced = self.synced.all();
        let knew_maintainers = self.synced.maintainers();
        let relist = change.begins_list();
        let (applied, resource) = self.keep(change, now);
        // A watch that lists (again) is not current until its list ends: decisions wait.
        if let Some(flag) = self.synced.flag(resource) {
            *flag = (*flag && !relist) || applied.listed;
        }
        for target in &applied.targets {
            self.evaluate(target, now);
        }
        if resource == "pods" {
            self.wake_workload_holds(&applied.targets, now);
        }
        if applied.listed || relist {
            self.publish_synced();
        }
        if self.synced.all() != was_synced {
            self.synced_changed(now);
        } else if self.synced.maintainers() != knew_maintainers {
            self.maintainers_changed(now);
        }
        self.stores.prune_interner();
        self.count_stores();
    }

    /// Routes a change to where it is kept: what it touched, and its watch's resource name.
    fn keep(&mut self, change: Change, now: Secs) -> (Applied, &'static str) {
        match change {
            Change::Pod(event) => (self.stores.apply_pod(*event, now), "pods"),
            Change::Node(event) => (self.stores.apply_node(*event, now), "nodes"),
            Change::Event(event) => {
                let applied = self.stores.apply_event(*event, now);
                if let Some(why) = applied.ignored {
                    let reason = crate::metrics::ReasonLabel {
                        reason: why.as_str().into(),
                    };
                    self.metrics.events_ignored.get_or_create(&reason).inc();
                }
                (applied, "events")
            }
            Change::Lease(event) => (self.stores.apply_lease(*event, now), "leases"),
            Change::Policy(event) => (self.apply_policy(*event, now), "healingpolicies"),
            Change::Namespace(event) => (self.apply_namespace(*event), "namespaces"),
            Change::Record(event) => {
                let applied = Applied {
                    listed: matches!(*event, kube::runtime::watcher::Event::InitDone),
                    ..Default::default()
                };
                self.apply_record(*event, now);
                (applied, "healingactions")
            }
            Change::Maintainer(maintainer, event) => {
                let (applied, changed) = self.stores.apply_maintainer(maintainer, *event);
                for (node, signal) in changed {
                    self.maintained.set(&node, signal);
                }
                (applied, maintainer.resource())
            }
            Change::WatchFailed(resource) => {
                // Not current until the new watch has listed: decisions on it wait.
                if let Some(flag) = self.synced.flag(resource) {
                    *flag = false;
                }
                self.publish_synced();
                (Applied::default(), resource)
            }
        }
    }

    /// A pod that settled (Ready, or failing on its own) or went may answer a removal of its
    /// workload: the targets held by maxDisruptedPerWorkload in that workload are decided again
    /// now, not at their hold's end.
    fn wake_workload_holds(&mut self, changed: &[crate::target::Target], now: Secs) {
        use kube_healer_api::reasons::HoldReason;
        if !self.gate.holding.any(HoldReason::WorkloadLimit) {
            return;
        }
        let woken: std::collections::HashSet<String> = changed
            .iter()
            .filter(|t| match t {
                crate::target::Target::Pod(ns, name) => self
                    .stores
                    .pod_at(ns, name)
                    .is_some_and(kube_healer_core::decide::settled),
                crate::target::Target::Node(_) => false,
            })
            .filter_map(|t| self.workload_of(t))
            .collect();
        self.wake_held_in(&woken, now);
    }

    /// The targets maxDisruptedPerWorkload holds in these workloads are decided again at `now`.
    pub(super) fn wake_held_in(&mut self, workloads: &std::collections::HashSet<String>, now: Secs) {
        use kube_healer_api::reasons::HoldReason;
        if workloads.is_empty() {
            return;
        }
        let held: Vec<crate::target::Target> = self
            .gate
            .holding
            .held_for(HoldReason::WorkloadLimit)
            .filter(|t| self.workload_of(t).is_some_and(|w| workloads.contains(&w)))
            .cloned()
            .collect();
        for target in held {
            self.timers.schedule(target, now);
        }
    }

    /// A pod target's workload (`Deployment namespace/name`), as the store shows the pod.
    fn workload_of(&self, target: &crate::target::Target) -> Option<String> {
        match target {
            crate::target::Target::Pod(ns, name) => self
                .stores
                .pod_at(ns, name)
                .and_then(kube_healer_core::decide::workload_of),
            crate::target::Target::Node(_) => None,
        }
    }

    /// Every watch has listed (decisions may be made), or one lists again (they wait). Targets
    /// that became due meanwhile were not decided on: once synced, every target is evaluated.
    fn synced_changed(&mut self, now: Secs) {
        let synced = self.synced.all();
        self.metrics.synced.set(i64::from(synced));
        if !synced {
            tracing::warn!(synced = ?self.synced, "a watch failed or is listing again: no decision until it has listed");
            return;
        }
        tracing::info!("every watch has listed: deciding");
        if self.is_leader {
            for target in self.stores.targets() {
                self.evaluate(&target, now);
            }
            // What failures are in progress is known only now.
            self.apply_retention(now);
            self.resume_unfinished();
        }
    }

    /// Whether nodes are under someone else's maintenance is known again (every maintainer's
    /// watch has listed), or no longer: the node decisions that waited for it are made now.
    fn maintainers_changed(&mut self, now: Secs) {
        if !self.synced.maintainers() {
            tracing::warn!(synced = ?self.synced, "a maintenance resource's watch failed or lists again: node decisions wait until it has listed");
            return;
        }
        if self.deciding() {
            for target in self.stores.targets() {
                self.evaluate(&target, now);
            }
        }
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
        let entries = [
            ("interned", self.stores.interned()),
            ("gone_nodes", self.stores.gone_nodes()),
            ("workloads", self.stores.workload_count()),
            ("timers", self.timers.len()),
            ("policy_matches", self.policies.match_entries()),
            ("records", self.records.len()),
            ("releasing", self.releasing.len()),
            ("retired_policies", self.retired.len()),
        ];
        for (index, n) in entries.into_iter().chain(self.gate.entries()) {
            self.metrics
                .index_entries
                .get_or_create(&Metrics::index(index))
                .set(n as i64);
        }
        let (bytes, _, evicted) = self.stores.event_memory();
        self.metrics.event_index_bytes.set(bytes as i64);
        let counted = self.metrics.events_evicted.get();
        self.metrics
            .events_evicted
            .inc_by(evicted.saturating_sub(counted));
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

#[cfg(test)]
mod tests {
    /// The resources the metrics name are those whose listing decisions wait for.
    #[test]
    fn the_watched_resources_are_those_decisions_wait_for() {
        let mut synced = crate::store::Synced::default();
        for resource in crate::metrics::WATCHED {
            assert!(synced.flag(resource).is_some(), "{resource}");
        }
    }
}
