//! Replay: the real engine fed a recording's frames on a manual clock. Time moves to each frame's
//! moment a second at a time, as the live loop's ticks would: correlation refreshed, due timers
//! fired, events pruned each minute. Each decision the engine sends is noted and answered as an
//! executor that carried it out would (its record fed back as the watch shows records, then its
//! end), so ladders, rates, maxConcurrent and episodes run as they would live. Nothing talks to
//! a cluster.
//!
//! What a replay cannot know: the live cluster changed under what the live operator did (a pod
//! it deleted is gone from the recording whatever the replayed policy decides), and the fresh
//! read right before acting is not made (the recording is the only truth there is). A long
//! action (Drain, RunJob, Remediate, Replace) ends as soon as it is decided: it holds no place
//! under its policy's maxConcurrent for the minutes it would run live.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::core::PartialObjectMeta;
use kube::runtime::watcher::Event as W;
use kube_healer_api::{ActionKind, HealingAction, HealingPolicy, TargetKind};
use kube_healer_core::view::Secs;
use serde::Serialize;
use tokio::sync::mpsc;

use super::frame::{Frame, FrameError, Kind, Watch};
use super::marks::Marks;
use crate::clock::{Clock, ManualClock};
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::protocol::{ActionDone, ActionRequest, Work};
use crate::store::Synced;
use crate::watch::Change;

/// How the replayed operator is set up (the operator's own flags of the same names).
#[derive(Clone, Debug, Default)]
pub struct Setup {
    /// Policies to replay instead of the recorded ones (None: the recording's own).
    pub policies: Option<Vec<HealingPolicy>>,
    pub protected_namespaces: Option<Vec<String>>,
    pub max_nodes_out_of_service: Option<String>,
    pub node_pool_label: Option<String>,
    pub clear_debounce_secs: u64,
    pub pods_alike: kube_healer_core::PodsAlike,
    pub planned: kube_healer_core::decide::PlannedSignals,
    pub time_zone: kube_healer_core::decide::Zone,
    /// The namespace whose pause annotation paused the live operator.
    pub own_namespace: Option<String>,
}

/// One decision the engine made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decided {
    /// Unix seconds.
    pub at: Secs,
    pub policy: String,
    pub kind: TargetKind,
    pub namespace: Option<String>,
    pub name: String,
    pub class: String,
    pub action: ActionKind,
    pub step: i32,
    /// act, dry-run or hold.
    pub verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The record the live operator would have written (a decision made again is the same
    /// record: the engine decides once per failure and step).
    pub record: String,
}

impl Decided {
    pub fn target(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// A correlated cause as it came into force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cause {
    pub at: Secs,
    pub message: String,
    pub members: usize,
}

/// What the replay came to.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub frames: usize,
    pub decisions: usize,
    pub acted: usize,
    pub dry_runs: usize,
    /// Held decisions by their reason.
    pub held: BTreeMap<&'static str, usize>,
    /// Pods deleted or evicted.
    pub pods_removed: usize,
    /// The most nodes kept out of service (cordoned, drained, tainted) by the replay's decisions
    /// at once.
    pub nodes_out_peak: usize,
    pub causes: usize,
}

/// The most seconds stepped through between two frames.
const MAX_STEPS: Secs = 3600;

pub struct Replay {
    engine: Engine,
    clock: ManualClock,
    work: mpsc::UnboundedReceiver<Work>,
    /// The second the replay has reached (None: before the first frame).
    second: Option<Secs>,
    policies_given: bool,
    setup: Setup,
    /// Decisions before this (Unix seconds) are made but not reported.
    report_from: Secs,
    decided: Vec<Decided>,
    causes: Vec<Cause>,
    causes_now: Vec<String>,
    marks: Marks,
    summary: Summary,
}

impl Replay {
    pub fn new(setup: Setup, report_from: Option<Secs>) -> Replay {
        let (tx, work) = mpsc::unbounded_channel();
        // The replay answers the engine itself (`answer`): the executor's channel stays empty.
        let (_done_tx, done_rx) = mpsc::unbounded_channel();
        let (synced, _) = tokio::sync::watch::channel(Synced::default());
        let clock = ManualClock::at(0);
        let mut engine = Engine::new(Arc::new(Metrics::default()), synced)
            .with_clock(clock.clone())
            .with_executor(tx, done_rx)
            .with_disruption_budget(setup.max_nodes_out_of_service.clone())
            .with_pool_label(setup.node_pool_label.clone())
            .with_clear_debounce(std::time::Duration::from_secs(setup.clear_debounce_secs))
            .with_pods_alike(setup.pods_alike)
            .with_planned(setup.planned.clone())
            .with_time_zone(setup.time_zone.clone())
            .with_own_namespace(setup.own_namespace.clone());
        if let Some(ns) = &setup.protected_namespaces {
            engine = engine.with_protected_namespaces(ns.clone());
        }
        Replay {
            engine,
            clock,
            work,
            second: None,
            policies_given: setup.policies.is_some(),
            setup,
            report_from: report_from.unwrap_or(Secs::MIN),
            decided: Vec::new(),
            causes: Vec::new(),
            causes_now: Vec::new(),
            marks: Marks::default(),
            summary: Summary::default(),
        }
    }

    /// Feeds one frame: time moves on to it, then the engine is given its change. Time never
    /// goes back: a frame stamped before the last one counts as at the same moment.
    pub fn feed(&mut self, mut frame: Frame) -> Result<(), FrameError> {
        if self.policies_given && frame.w == Watch::HealingPolicies {
            // The replayed policies stand in for the recorded ones.
            self.summary.frames += 1;
            return Ok(());
        }
        if self.second.is_none() {
            self.begin(frame.t);
        }
        let t = frame.t.max(self.clock.now_ms());
        self.advance_to(t.div_euclid(1000));
        self.set_ms(t);
        self.show_due(t);
        // After the seconds before it have run: a change the replay made shows with the node's
        // next recorded change, not before its time.
        if let (Watch::Nodes, Some(node)) = (frame.w, frame.o.as_mut()) {
            self.marks.recorded(node, frame.e == Kind::Delete);
        }
        let change = frame.into_change()?;
        self.engine.apply(change);
        self.summary.frames += 1;
        self.drain();
        Ok(())
    }

    /// Moves time on to `secs` (past the last frame: what comes due after it).
    pub fn run_until(&mut self, secs: Secs) {
        if self.second.is_some() {
            self.advance_to(secs);
        }
    }

    /// The decisions made, in order, from the reported time on.
    pub fn decisions(&self) -> &[Decided] {
        &self.decided
    }

    pub fn causes(&self) -> &[Cause] {
        &self.causes
    }

    pub fn summary(&self) -> Summary {
        let mut s = self.summary.clone();
        s.decisions = self.decided.len();
        s.causes = self.causes.len();
        s
    }

    /// The time the replay has reached (Unix seconds).
    pub fn now(&self) -> Option<Secs> {
        self.second
    }

    /// Before the first frame: no records yet (a replay makes its own), and the replayed
    /// policies, if any, listed.
    fn begin(&mut self, t: i64) {
        self.set_ms(t);
        self.second = Some(t.div_euclid(1000));
        self.engine.apply(Change::Record(Box::new(W::Init)));
        self.engine.apply(Change::Record(Box::new(W::InitDone)));
        if let Some(policies) = self.setup.policies.take() {
            self.engine.apply(Change::policy(W::Init));
            for p in policies {
                self.engine.apply(Change::policy(W::InitApply(p)));
            }
            self.engine.apply(Change::policy(W::InitDone));
        }
    }

    fn set_ms(&self, ms: i64) {
        self.clock.set_ms(ms);
    }

    /// Each second up to `secs`, as the live loop's ticks: correlation, due timers, pruning.
    fn advance_to(&mut self, secs: Secs) {
        let Some(mut second) = self.second else {
            return;
        };
        // A gap of more than an hour (a recorder that was down, a --to far off) is not stepped
        // through second by second: its last hour is, and what came due before fires late.
        if secs - second > MAX_STEPS {
            second = secs - MAX_STEPS;
        }
        while second < secs {
            second += 1;
            self.clock.set(second);
            self.show_due(second * 1000);
            self.refresh_causes(second);
            self.engine.fire_due_timers();
            if second % 60 == 0 {
                self.engine.prune_events();
            }
            self.drain();
        }
        self.second = Some(second);
    }

    fn refresh_causes(&mut self, at: Secs) {
        let now: Vec<(String, usize)> = self
            .engine
            .correlated()
            .iter()
            .map(|c| (c.message.clone(), c.members.len()))
            .collect();
        for (message, members) in &now {
            if !self.causes_now.contains(message) && at >= self.report_from {
                self.causes.push(Cause {
                    at,
                    message: message.clone(),
                    members: *members,
                });
            }
        }
        self.causes_now = now.into_iter().map(|(m, _)| m).collect();
    }

    /// Notes and answers what the engine sent.
    fn drain(&mut self) {
        while let Ok(work) = self.work.try_recv() {
            match work {
                Work::Act(req) => self.answer(*req),
                Work::Revert { node, policy, .. } => {
                    self.marks.unmark(&node, &policy, self.clock.now_ms());
                }
                // Taints expiring, records past retention, batches: the executor's business.
                Work::Unavoid { .. }
                | Work::MarksLifted { .. }
                | Work::DeleteRecord { .. }
                | Work::ResumeBatch { .. }
                | Work::SettleBatch { .. }
                | Work::FinishUnfinished { .. } => {}
            }
        }
    }

    fn answer(&mut self, req: ActionRequest) {
        let now = self.clock.now();
        let spec = &req.spec;
        let verdict = match (&req.hold, spec.dry_run) {
            (Some(_), _) => "hold",
            (None, true) => "dry-run",
            (None, false) => "act",
        };
        let reported = now >= self.report_from;
        match verdict {
            "hold" if reported => {
                let reason = req.hold.as_ref().map_or("", |h| h.reason.as_str());
                *self.summary.held.entry(reason).or_default() += 1;
            }
            "dry-run" if reported => self.summary.dry_runs += 1,
            "act" => {
                // The replay's own world of marks: those a live action leaves on its node.
                let node_out = spec.action.properties().marks_node;
                if spec.target.kind == TargetKind::Node && node_out {
                    self.marks
                        .mark(&spec.target.name, &spec.policy, self.clock.now_ms());
                }
                if reported {
                    self.summary.acted += 1;
                    if spec.target.kind == TargetKind::Node && node_out {
                        self.summary.nodes_out_peak = self.summary.nodes_out_peak.max(self.marks.count());
                    }
                    if spec.target.kind == TargetKind::Pod && spec.action.properties().removes_target {
                        self.summary.pods_removed += 1;
                    }
                }
            }
            _ => {}
        }
        if reported {
            self.decided.push(Decided {
                at: now,
                policy: spec.policy.clone(),
                kind: spec.target.kind,
                namespace: spec.target.namespace.clone(),
                name: spec.target.name.clone(),
                class: spec.class.to_string(),
                action: spec.action,
                step: spec.step,
                verdict,
                reason: req.hold.as_ref().map(|h| h.reason.as_str()),
                message: req.hold.as_ref().map(|h| h.message.clone()),
                record: req.name.clone(),
            });
        }
        // Its record, as the watch would show it, then its end.
        let (labels, annotations) = crate::record::writer::metadata(spec, req.hold.is_some(), None);
        let meta: Result<PartialObjectMeta<HealingAction>, _> = serde_json::from_value(serde_json::json!({
            "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingAction",
            "metadata": {"name": req.name, "labels": labels, "annotations": annotations,
                "creationTimestamp": self.clock.time()}}));
        if let Ok(meta) = meta {
            self.engine.apply(Change::Record(Box::new(W::Apply(meta))));
        }
        self.engine.action_done(ActionDone {
            policy: spec.policy.clone(),
            name: req.name.clone(),
            was_in_flight: req.in_flight(),
            carried_out: req.in_flight(),
            // A replay has no call to refuse: its removals count as made.
            untouched: false,
            unrecorded: None,
        });
    }

    /// Shows the engine the nodes whose changes by the replay are due by `ms`.
    fn show_due(&mut self, ms: i64) {
        for node in self.marks.due(ms) {
            if let Ok(node) = serde_json::from_value(node) {
                self.engine.apply(Change::Node(Box::new(W::Apply(node))));
            }
        }
        self.drain();
    }
}
