//! The simulated act step: each request carried out on the simulated cluster as the live
//! executor carries it out, with the operator's own rules where they live in `act` (the fresh
//! recheck's reads and core's verdict on them, the delete's grace, the patches a cordon, a taint
//! and a revert make). What stands in for the API server is only its semantics: a record is
//! written once, a precondition on resourceVersion is checked, a graceful delete waits for a
//! kubelet, a terminal pod goes at once.

use kube::core::PartialObjectMeta;
use kube_healer_api::{ActionKind, HealingAction, TargetKind};
use kube_healer_core::convert::{Interner, node_view, pod_view};
use kube_healer_core::decide::{Fresh, Read, Seen, Tally, checked_by_version, recheck_node, recheck_pod};
use kube_healer_operator::act::{asks_budgets, node as node_act, reads, removal_grace};
use kube_healer_operator::protocol::{ActionRequest, Work};

use crate::harness::Run;
use crate::invariants::pod_key;
use crate::objects;
use crate::world::Record;

/// KH_INVARIANTS_TRACE set: each request is printed (read once, not per request).
static TRACE: std::sync::LazyLock<bool> =
    std::sync::LazyLock::new(|| std::env::var_os("KH_INVARIANTS_TRACE").is_some());

impl Run {
    pub(crate) fn handle(&mut self, work: Work) {
        match work {
            Work::Act(req) => self.execute(*req),
            Work::Revert {
                policy,
                node,
                debounce,
                ready_since,
                watch,
            } => {
                let recovered = node_act::Recovered {
                    debounce,
                    ready_since,
                    now: self.world.now,
                    watch,
                };
                self.revert(&policy, &node, &recovered)
            }
            Work::DeleteRecord { name } => self.record_deleted(&name),
            Work::MarksLifted { node } => self.marks_lifted(&node),
            // An avoid taint expiring, a batch or a record left by a process that ended: none
            // of what a history makes.
            Work::Unavoid { .. }
            | Work::ResumeBatch { .. }
            | Work::SettleBatch { .. }
            | Work::FinishUnfinished { .. } => {}
        }
    }

    /// Recorded first, then (unless held, dry or failing) rechecked and carried out; the engine
    /// told what came of it.
    fn execute(&mut self, req: ActionRequest) {
        self.requests += 1;
        let now = self.world.now;
        self.judge.on_request(&req, self.synced, now);
        if *TRACE {
            eprintln!(
                "+{} {} {} {} by {} in_flight={} synced={} record={} hold={:?}",
                now - crate::harness::T0,
                req.name,
                req.spec.action,
                req.spec.target.reference,
                req.spec.policy,
                req.in_flight(),
                self.synced,
                self.world.records.contains_key(&req.name),
                req.hold.as_ref().map(|h| h.reason)
            );
        }
        let resumed = match self.world.records.get(&req.name) {
            // Recorded before and finished: never carried out again.
            Some(r) if r.finished => return self.done(&req, (false, false)),
            // Recorded by a process that ended before its outcome: finished now (its call may
            // have been made: never known untouched).
            Some(_) => true,
            None => {
                self.write_record(&req, (false, false));
                self.judge.on_recorded(&self.world, &req, self.engines);
                false
            }
        };
        // A failing API server fails the call as a timeout would: it may have taken effect.
        let (carried, untouched) = match req.in_flight() && !self.api_errors {
            true => self.call(&req),
            false => (false, false),
        };
        let untouched = untouched && !resumed;
        self.write_record(&req, (true, untouched));
        self.done(&req, (carried, untouched));
    }

    /// The record, `finished` or not; a removal `untouched` (its call never sent) no longer
    /// names its workload, as the live executor's last write leaves it.
    fn write_record(&mut self, req: &ActionRequest, (finished, untouched): (bool, bool)) {
        let (labels, mut annotations) =
            kube_healer_operator::record::writer::metadata(&req.spec, req.hold.is_some(), None);
        if untouched && let Some(a) = annotations.as_mut() {
            a.remove(kube_healer_api::DISRUPTS_ANNOTATION);
        }
        let meta: PartialObjectMeta<HealingAction> = serde_json::from_value(serde_json::json!({
            "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingAction",
            "metadata": {"name": req.name, "labels": labels, "annotations": annotations,
                "creationTimestamp": objects::at(self.world.now)}}))
        .expect("a record's metadata");
        self.world.put_record(&req.name, Record { meta, finished });
    }

    /// The call, made only if the failure still holds on a fresh read (or, for a dead pod, if
    /// the version decided on is still the pod's). Whether the cluster was changed, and whether
    /// the target was certainly left untouched (the recheck stopped the call before it was sent).
    fn call(&mut self, req: &ActionRequest) -> (bool, bool) {
        let Some(seen) = req.seen.as_deref() else {
            // Nothing to recheck: an Event.
            return (true, false);
        };
        if req.spec.target.kind == TargetKind::Pod
            && let Some(version) = checked_by_version(seen, req.spec.action)
        {
            let key = pod_key(req);
            let current = self
                .world
                .pods
                .get(&key)
                .and_then(|p| p.obj.metadata.resource_version.clone());
            if current == Some(version.to_string()) {
                self.judge.before_call(&self.world, req);
                return self.remove_pod(req);
            }
        }
        if self.recheck(req, seen) != Fresh::Holds {
            return (false, true);
        }
        self.judge.before_call(&self.world, req);
        match req.spec.target.kind {
            TargetKind::Pod => self.act_on_pod(req),
            TargetKind::Node => (self.act_on_node(req), false),
        }
    }

    /// Core's recheck on what the live executor would read right now.
    fn recheck(&self, req: &ActionRequest, seen: &Seen) -> Fresh {
        let mut interner = Interner::default();
        let now = self.world.now;
        let plan = reads(seen, req.spec.action);
        let node_read = |name: &str, interner: &mut Interner| match self.world.nodes.get(name) {
            Some(n) => node_view(&n.obj, interner).map_or(Read::NotRead, Read::Found),
            None => Read::Gone,
        };
        match req.spec.target.kind {
            TargetKind::Pod => {
                let pod = match self.world.pods.get(&pod_key(req)) {
                    Some(p) => pod_view(&p.obj, &mut interner).map_or(Read::NotRead, Read::Found),
                    None => Read::Gone,
                };
                let node = match seen.pod.as_ref().and_then(|p| p.node.as_deref()) {
                    Some(name) if plan.pods_node => node_read(name, &mut interner),
                    _ => Read::NotRead,
                };
                recheck_pod(seen, req.spec.action, pod, node, now)
            }
            TargetKind::Node => {
                let node = node_read(&req.spec.target.name, &mut interner);
                // The simulated nodes have no Lease: one asked for reads as gone.
                let lease = if plan.lease { Read::Gone } else { Read::NotRead };
                let counted = matches!(&node, Read::Found(n) if Tally::may_refuse(n, &seen.planned));
                match recheck_node(seen, req.spec.action, node, lease, now) {
                    Fresh::Holds if counted => self.budget(seen, &req.spec.target.name),
                    other => other,
                }
            }
        }
    }

    /// The live recheck's count of the disruption budget on the nodes listed afresh (a
    /// consistent read: the world as it is).
    fn budget(&self, seen: &Seen, target: &str) -> Fresh {
        let Some(configured) = seen.budget.as_deref() else {
            return Fresh::Holds;
        };
        let mut interner = Interner::default();
        let mut tally = Tally::default();
        for n in self.world.nodes.values() {
            if let Ok(view) = node_view(&n.obj, &mut interner) {
                tally.add(&view, target, &seen.planned);
            }
        }
        match tally.refusal(configured) {
            Some(why) => Fresh::BudgetExceeded(why),
            None => Fresh::Holds,
        }
    }

    /// A removal (as the action declares) takes the pod away; the history's policies take no
    /// other pod action, and nothing else changes.
    fn act_on_pod(&mut self, req: &ActionRequest) -> (bool, bool) {
        if req.spec.action.properties().removes_target {
            self.remove_pod(req)
        } else {
            (true, false)
        }
    }

    /// A pod deleted (or evicted) the way the live executor does it: through the Eviction API
    /// when the action asks the budgets (a refusal leaves the pod untouched, as the live
    /// executor's PDBBlocked does), with the grace it gives: a terminal pod, or one deleted
    /// with grace 0, goes at once; the others are Terminating until their kubelet has stopped
    /// them. Whether the cluster changed, and whether the pod was certainly left untouched.
    fn remove_pod(&mut self, req: &ActionRequest) -> (bool, bool) {
        let key = pod_key(req);
        let Some(pod) = self.world.pods.get(&key) else {
            return (false, false);
        };
        if pod.obj.metadata.uid.as_deref() != Some(req.spec.target.uid.as_str()) {
            return (false, false);
        }
        let eviction = self.world.eviction(&key);
        if asks_budgets(&req.spec) && eviction.is_err() {
            return (false, true);
        }
        self.judge.budget_kept(&self.world, req, eviction);
        let Some(pod) = self.world.pods.get(&key) else {
            return (false, false);
        };
        let terminal = pod.obj.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed");
        // An eviction takes the pod's own grace, as the Eviction API does.
        let grace = if req.spec.action == ActionKind::Evict {
            None
        } else {
            removal_grace(req)
        };
        if grace == Some(0) && !terminal {
            self.judge.forced(&self.world, req, pod);
        }
        if terminal || grace == Some(0) {
            self.world.pod_removed(&key);
            return (true, false);
        }
        let Some(pod) = self.world.pods.get_mut(&key) else {
            return (false, false);
        };
        if pod.deleting.is_none() {
            pod.deleting = Some(self.world.now);
            pod.obj.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(self.world.now).unwrap_or_default(),
            ));
            pod.obj.metadata.deletion_grace_period_seconds = Some(30);
            self.world.pod_changed(&key);
        }
        (true, false)
    }

    fn act_on_node(&mut self, req: &ActionRequest) -> bool {
        let name = req.spec.target.name.clone();
        let Some(node) = self.world.nodes.get(&name) else {
            return false;
        };
        let was_out = node.down.is_some() || objects::unschedulable(&node.obj);
        let person_before = node.person_cordon;
        let patch = match req.spec.action {
            ActionKind::Cordon => node_act::cordon_patch(&node.obj, &req.spec),
            ActionKind::Taint => match &req.step.taint {
                Some(taint) => node_act::taint_patch(&node.obj, &req.spec, taint),
                None => return false,
            },
            // The history's policies take no other node action: nothing changes.
            ActionKind::Event
            | ActionKind::Evict
            | ActionKind::Delete
            | ActionKind::ForceDelete
            | ActionKind::Reschedule
            | ActionKind::RestartOwner
            | ActionKind::Drain
            | ActionKind::RunJob
            | ActionKind::OutOfService
            | ActionKind::Remediate
            | ActionKind::Replace => None,
        };
        if let Some((patch, _)) = patch {
            self.patch_node(&name, &patch);
        }
        self.judge.after_node_call(&self.world, req, was_out);
        if req.spec.action == ActionKind::Cordon {
            self.judge.on_cordon(&self.world, req, person_before);
        }
        true
    }

    fn patch_node(&mut self, name: &str, patch: &serde_json::Value) {
        let Some(node) = self.world.nodes.get_mut(name) else {
            return;
        };
        let was = objects::unschedulable(&node.obj);
        let mut value = serde_json::to_value(&node.obj).expect("a node as JSON");
        objects::merge(&mut value, patch);
        let mut patched: k8s_openapi::api::core::v1::Node =
            serde_json::from_value(value).expect("a patched node");
        // The field and its owner, as the API server records kube-healer's update of it.
        let to = objects::unschedulable(&patched);
        patched.spec.get_or_insert_with(Default::default).unschedulable = was.then_some(true);
        objects::set_unschedulable(&mut patched, to, kube_healer_core::marks::FIELD_MANAGER);
        node.obj = patched;
        self.world.node_changed(name);
    }

    /// Someone undid kube-healer's marks: the live acknowledgement's patch.
    fn marks_lifted(&mut self, name: &str) {
        let Some(node) = self.world.nodes.get(name) else {
            return;
        };
        if let Some((patch, _)) = node_act::lifted_marks_patch(&node.obj, self.world.now) {
            self.patch_node(name, &patch);
        }
    }

    /// The policy lets go of the node: the live revert's recheck and patch (no remediation in
    /// a history).
    fn revert(&mut self, policy: &str, name: &str, recovered: &node_act::Recovered) {
        let Some(node) = self.world.nodes.get(name) else {
            return;
        };
        if node_act::revert_waits(&node.obj, policy, recovered).is_some() {
            return;
        }
        let Some((patch, said)) = node_act::revert_patch(&node.obj, policy, &[]) else {
            return;
        };
        self.patch_node(name, &patch);
        let lifted = said.contains("uncordoned") || said.contains("removed the taint");
        self.judge.on_revert(&self.world, name, policy, lifted);
    }
}
