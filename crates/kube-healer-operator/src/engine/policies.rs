//! Policy and namespace changes: the policy set is updated, the targets of the kind a policy
//! covers are decided on again, and the policy's status is computed (and written, if leading).

use k8s_openapi::api::core::v1::Namespace;
use kube::api::DynamicObject;
use kube::runtime::watcher::Event as W;
use kube_healer_api::TargetKind;
use kube_healer_core::view::Secs;

use super::Engine;
use crate::metrics::Metrics;
use crate::policy::book::Taken;
use crate::policy::{PolicyStatus, Refused, Unreadable, decode};
use crate::store::Applied;
use crate::target::Target;

impl Engine {
    /// Events are kept as long as the longest window a policy counts them over, and Normal
    /// events whole if a policy's pattern may read them; pods failing alike are found at the
    /// loosest thresholds a policy asks for.
    fn fit_to_policies(&mut self) {
        let window = self.policies.longest_event_window();
        self.stores.keep_events_for(window);
        self.stores.normal = self.policies.normal_events();
        self.fit_pods_alike();
    }

    pub(super) fn apply_policy(&mut self, event: W<DynamicObject>, now: Secs) -> Applied {
        match event {
            W::Apply(object) | W::InitApply(object) => {
                let name = object.metadata.name.clone().unwrap_or_default();
                self.relist_policies.saw(&name);
                let policy = match decode(object) {
                    Ok(policy) => policy,
                    Err(unreadable) => {
                        self.refuse_unreadable(unreadable, now);
                        return Applied::default();
                    }
                };
                let validity = match self.policies.upsert(&policy) {
                    Ok((kind, changed)) => {
                        if changed {
                            tracing::info!(policy = %name, generation = ?policy.metadata.generation, "policy loaded");
                            self.fit_to_policies();
                            self.evaluate_kind(kind, now);
                            // Its records may have arrived before it.
                            self.apply_retention(now);
                        }
                        Ok(())
                    }
                    Err(e) => {
                        tracing::warn!(policy = %name, error = %e, "policy refused");
                        Err(e.into())
                    }
                };
                // Counted on from the status read back: another replica may have written it last.
                let observed = policy.status.as_ref().map_or(Taken::default(), |s| Taken {
                    count: s.actions_taken.unwrap_or(0),
                    last: s.last_action_time.as_ref().map(|t| t.0.as_second()),
                });
                let taken = self.statuses.observed(&name, observed);
                let status = PolicyStatus {
                    actions_taken: taken.count,
                    last_action: taken.last,
                    targets_matched: self.policies.count_targets(&name, &self.stores),
                    name,
                    generation: policy.metadata.generation,
                    validity,
                    suspended: policy.spec.safety.suspend,
                };
                self.write_status(status);
                Applied::default()
            }
            W::Delete(policy) => {
                let name = policy.metadata.name.unwrap_or_default();
                self.statuses.forget(&name);
                self.count_policies();
                self.gate.forget_policy(&name);
                self.count_held();
                self.retire(&name);
                if let Some(kind) = self.policies.remove(&name) {
                    tracing::info!(policy = %name, "policy removed");
                    self.fit_to_policies();
                    self.evaluate_kind(kind, now);
                }
                Applied::default()
            }
            W::Init => {
                self.relist_policies.begin();
                Applied::default()
            }
            W::InitDone => {
                if let Some(seen) = self.relist_policies.finish() {
                    self.policies.retain(&seen);
                    self.fit_to_policies();
                }
                Applied {
                    listed: true,
                    ..Default::default()
                }
            }
        }
    }

    /// A policy that cannot be read: whatever was loaded under its name stops, and its status
    /// says why.
    fn refuse_unreadable(&mut self, unreadable: Unreadable, now: Secs) {
        let Unreadable {
            name,
            generation,
            error,
        } = unreadable;
        tracing::warn!(policy = %name, %error, "policy cannot be read: refused");
        if let Some(kind) = self.policies.remove(&name) {
            self.evaluate_kind(kind, now);
        }
        self.gate.forget_policy(&name);
        self.count_held();
        let taken = self.statuses.taken(&name);
        self.write_status(PolicyStatus {
            name,
            generation,
            validity: Err(Refused::Unreadable(error)),
            suspended: false,
            targets_matched: 0,
            actions_taken: taken.count,
            last_action: taken.last,
        });
    }

    pub(super) fn apply_namespace(&mut self, event: W<Namespace>) -> Applied {
        match event {
            W::Apply(ns) | W::InitApply(ns) => {
                let mut targets = self.read_pause(&ns, false);
                let interner = self.stores.interner_mut();
                let name = interner.str(ns.metadata.name.as_deref().unwrap_or_default());
                let labels = interner.labels(ns.metadata.labels.as_ref());
                if self.policies.set_namespace(name.clone(), labels)
                    && !self.policies.is_empty()
                    && targets.is_empty()
                {
                    targets = self
                        .stores
                        .pods()
                        .filter(|p| p.namespace == name)
                        .map(|p| Target::Pod(p.namespace.clone(), p.name.clone()))
                        .collect();
                }
                Applied {
                    targets,
                    ..Default::default()
                }
            }
            W::Delete(ns) => {
                self.policies
                    .remove_namespace(ns.metadata.name.as_deref().unwrap_or_default());
                Applied {
                    targets: self.read_pause(&ns, true),
                    ..Default::default()
                }
            }
            W::Init => {
                self.own_namespace_listed = false;
                Applied::default()
            }
            W::InitDone => {
                // Listed whole without kube-healer's namespace: it is gone, and its pause.
                let gone = !std::mem::replace(&mut self.own_namespace_listed, true);
                let targets = match (&self.own_namespace, gone) {
                    (Some(own), true) => {
                        let ns = Namespace {
                            metadata: kube::api::ObjectMeta {
                                name: Some(own.clone()),
                                ..Default::default()
                            },
                            ..Default::default()
                        };
                        self.read_pause(&ns, true)
                    }
                    _ => Vec::new(),
                };
                Applied {
                    targets,
                    listed: true,
                    ..Default::default()
                }
            }
        }
    }

    /// Reads the pause annotation off kube-healer's own namespace (`deleted`: it is gone, and its
    /// annotation with it). Once the pause is lifted, every target is decided again (what it
    /// held was held until changed); the targets to evaluate are returned.
    fn read_pause(&mut self, ns: &Namespace, deleted: bool) -> Vec<Target> {
        if self.own_namespace.is_none() || ns.metadata.name != self.own_namespace {
            return Vec::new();
        }
        self.own_namespace_listed = true;
        let annotations = ns.metadata.annotations.as_ref();
        let by = annotations
            .and_then(|a| a.get(kube_healer_api::PAUSE_ANNOTATION))
            .filter(|_| !deleted)
            .map(|why| {
                if why.is_empty() {
                    "(no reason given)".to_string()
                } else {
                    why.clone()
                }
            });
        let lifted = self.gate.switches.paused_by.is_some() && by.is_none();
        if by != self.gate.switches.paused_by {
            match &by {
                Some(why) => {
                    tracing::warn!(reason = %why, "paused by the annotation on kube-healer's namespace: no new action until it is removed (marks on nodes that recovered are still lifted)")
                }
                None => tracing::info!("the pause annotation was removed: deciding again"),
            }
        }
        self.gate.switches.paused_by = by;
        if lifted { self.stores.targets() } else { Vec::new() }
    }

    /// Re-evaluates every target of a kind (after a policy change).
    fn evaluate_kind(&mut self, kind: TargetKind, now: Secs) {
        let targets: Vec<Target> = match kind {
            TargetKind::Pod => self
                .stores
                .pods()
                .map(|p| Target::Pod(p.namespace.clone(), p.name.clone()))
                .collect(),
            TargetKind::Node => self
                .stores
                .nodes()
                .map(|n| Target::Node(n.name.clone()))
                .collect(),
        };
        for t in targets {
            self.evaluate(&t, now);
        }
    }

    /// Keeps a policy's status and sends it to the writer if this replica leads and it differs
    /// from the last one sent.
    pub(super) fn write_status(&mut self, status: PolicyStatus) {
        let update = self.statuses.update(status);
        self.count_policies();
        let Some(status) = update else {
            return;
        };
        let Some(tx) = &self.status_tx else { return };
        if !self.is_leader {
            return;
        }
        if tx.send(status.clone()).is_ok() {
            self.statuses.sent(status);
        }
    }

    /// The policies gauge: active and refused, as their statuses say.
    fn count_policies(&self) {
        let (active, refused) = self.statuses.counts();
        self.metrics
            .policies
            .get_or_create(&Metrics::state("active"))
            .set(active);
        self.metrics
            .policies
            .get_or_create(&Metrics::state("refused"))
            .set(refused);
    }
}
