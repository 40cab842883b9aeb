//! A history run through the operator's own engine, in process, on a manual clock, as replay
//! runs it: the simulated cluster's changes are delivered as its watches would deliver them
//! (late, lost and listed again, or served from a cache that went back in time), time moves a
//! second at a time as the live loop's ticks do, and each request the engine sends is carried
//! out on the simulated cluster by [`crate::executor`], after the same fresh recheck the live
//! executor makes. The invariants are judged at every step.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::watcher::Event as W;
use kube_healer_core::view::Secs;
use kube_healer_operator::clock::{Clock, ManualClock};
use kube_healer_operator::engine::Engine;
use kube_healer_operator::flight::frame::Frame;
use kube_healer_operator::metrics::Metrics;
use kube_healer_operator::protocol::Work;
use kube_healer_operator::store::Synced;
use kube_healer_operator::watch::Change;
use tokio::sync::mpsc;

use crate::history::Step;
use crate::invariants::Judge;
use crate::objects::{self, PodStatus};
use crate::policies;
use crate::world::{Cause, SimPod, Trouble, World};

/// When a history begins (Unix seconds).
pub const T0: Secs = 1_800_000_000;

/// The cluster a history runs on, and the operator's settings.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    pub zones: usize,
    pub per_zone: usize,
    pub workloads: usize,
    pub replicas: usize,
    /// The cluster-wide disruption budget, in nodes (`--max-nodes-out-of-service`).
    pub budget: usize,
    /// `--clear-debounce`, in seconds.
    pub debounce: Secs,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            zones: 3,
            per_zone: 3,
            workloads: 6,
            replicas: 3,
            budget: 3,
            debounce: 30,
        }
    }
}

/// A watch not delivering: its store is known to be behind (a failed watch, listed again at
/// `until`), or silently so (the watches of a restarted engine lagging, listed again at
/// `until`).
#[derive(Clone, Copy, Debug)]
enum Blind {
    Watch { pods: bool, until: Secs },
    Lagging { until: Secs },
}

pub struct Run {
    pub world: World,
    pub setup: Setup,
    pub(crate) engine: Engine,
    clock: ManualClock,
    work: mpsc::UnboundedReceiver<Work>,
    /// Every watch of the running engine has listed, and none has failed since.
    pub(crate) synced: bool,
    blind: Option<Blind>,
    pub(crate) api_errors: bool,
    pub judge: Judge,
    /// Every change the engines were given, as a recording's frames.
    pub frames: Vec<Frame>,
    /// Requests the engines sent (held ones too).
    pub requests: usize,
    /// Seconds ticked.
    pub seconds: u64,
    /// Engines started (the first, and one per restart or failover).
    pub(crate) engines: u32,
}

fn engine(setup: &Setup, now: Secs) -> (Engine, ManualClock, mpsc::UnboundedReceiver<Work>) {
    let (tx, work) = mpsc::unbounded_channel();
    // The run answers the engine itself (`action_done`): the executor's channel stays empty.
    let (_done_tx, done_rx) = mpsc::unbounded_channel();
    let (synced, _) = tokio::sync::watch::channel(Synced::default());
    let clock = ManualClock::at(now);
    let engine = Engine::new(Arc::new(Metrics::default()), synced)
        .with_clock(clock.clone())
        .with_executor(tx, done_rx)
        .with_disruption_budget(Some(setup.budget.to_string()))
        .with_clear_debounce(Duration::from_secs(setup.debounce as u64));
    (engine, clock, work)
}

impl Run {
    pub fn new(setup: Setup) -> Run {
        let world = World::new(T0, setup.zones, setup.per_zone, setup.workloads, setup.replicas);
        let (engine, clock, work) = engine(&setup, T0);
        let judge = Judge::new(setup.budget, setup.debounce);
        let mut run = Run {
            world,
            setup,
            engine,
            clock,
            work,
            synced: false,
            blind: None,
            api_errors: false,
            judge,
            frames: Vec::new(),
            requests: 0,
            seconds: 0,
            engines: 1,
        };
        let lists = run.world.lists();
        run.give_all(lists, true);
        run
    }

    /// Runs a whole history, then the control (a lone failure that must be healed).
    pub fn history(setup: Setup, steps: &[Step]) -> Run {
        let mut run = Run::new(setup);
        for step in steps {
            run.step(step);
        }
        run.control();
        run
    }

    fn give(&mut self, change: Change) {
        if let Some(frame) = Frame::of(&change, self.clock.now_ms()) {
            self.frames.push(frame);
        }
        self.engine.apply(change);
    }

    /// A list delivered, the engine's requests answered after each of its changes (as the live
    /// executor runs beside the watches; what they change is delivered after the list, as a
    /// watch does); `synced` once its last change is delivered.
    fn give_all(&mut self, changes: Vec<Change>, synced: bool) {
        let last = changes.len();
        for (i, change) in changes.into_iter().enumerate() {
            self.give(change);
            if synced && i + 1 == last {
                self.synced = true;
            }
            while let Ok(work) = self.work.try_recv() {
                self.handle(work);
            }
        }
        if synced {
            self.synced = true;
        }
        self.settle();
    }

    /// The world's changes delivered (or lost to a watch that is not delivering), and the
    /// engine's requests answered, until neither has more.
    pub(crate) fn settle(&mut self) {
        loop {
            let changes = std::mem::take(&mut self.world.changes.0);
            for change in changes {
                let lost = match (self.blind, &change) {
                    // kube-healer's own objects are read consistently: never stale.
                    (Some(Blind::Lagging { .. }), Change::Policy(_) | Change::Record(_)) => false,
                    (Some(Blind::Lagging { .. }), _) => true,
                    (Some(Blind::Watch { pods: true, .. }), Change::Pod(_)) => true,
                    (Some(Blind::Watch { pods: false, .. }), Change::Node(_)) => true,
                    _ => false,
                };
                if !lost {
                    self.give(change);
                }
            }
            match self.work.try_recv() {
                Ok(work) => self.handle(work),
                Err(_) if self.world.changes.0.is_empty() => return,
                Err(_) => {}
            }
        }
    }

    /// One step of a history.
    pub fn step(&mut self, step: &Step) {
        match step {
            Step::Pass(secs) => self.pass(*secs as Secs),
            Step::Evict(i) => {
                if let Some(key) = self.pick_pod(*i, |w, p| p.trouble == Trouble::None && w.node_up_for(p)) {
                    self.world.evict_by_kubelet(&key);
                }
            }
            Step::Crash(i) => {
                if let Some(key) = self.pick_pod(*i, |w, p| p.trouble == Trouble::None && w.node_up_for(p)) {
                    self.world.crash(&key, Cause::Alone);
                }
            }
            Step::Recover(i) => {
                let alone = |_: &World, p: &SimPod| matches!(p.trouble, Trouble::Crashing(_, Cause::Alone));
                if let Some(key) = self.pick_pod(*i, alone) {
                    self.recover(&key);
                }
            }
            Step::NodeDown(i) => {
                let name = self.pick_node(*i);
                self.world.node_down(&name, Cause::Alone);
            }
            Step::NodeUp(i) => {
                // A node down with its zone comes back with its zone.
                let name = self.pick_node(*i);
                if matches!(self.world.nodes[&name].down, Some((_, Cause::Alone))) {
                    self.world.node_up(&name);
                }
            }
            Step::NodeProblem(i) | Step::NodeProblemGone(i) => {
                let name = self.pick_node(*i);
                self.world
                    .node_problem(&name, matches!(step, Step::NodeProblem(_)));
            }
            Step::ZoneDown(z) => self.zone(*z, true),
            Step::ZoneUp(z) => self.zone(*z, false),
            Step::Break(workloads) => {
                let n = self.world.workloads.len();
                let mut chosen: Vec<usize> = workloads.iter().map(|w| w % n).collect();
                chosen.sort_unstable();
                chosen.dedup();
                self.world.break_workloads(1000, &chosen);
            }
            Step::Fix => self.world.fix(1000),
            Step::PersonCordon(i) | Step::PersonUncordon(i) => {
                let name = self.pick_node(*i);
                self.world
                    .person_cordon(&name, matches!(step, Step::PersonCordon(_)));
            }
            Step::Policy { template, variant } => {
                self.world.apply_policy(policies::template(*template, *variant))
            }
            Step::DeletePolicy(t) => {
                let name = policies::TEMPLATES[t % policies::TEMPLATES.len()].name;
                self.world.delete_policy(name);
            }
            Step::Restart => self.restart(None),
            Step::LaggingRestart { lag } => self.restart(Some(*lag as Secs)),
            Step::WatchGap { pods, secs } => self.watch_gap(*pods, *secs as Secs),
            Step::ApiErrors(on) => self.api_errors = *on,
        }
        self.settle();
    }

    fn pick_pod(&self, i: usize, pick: impl Fn(&World, &SimPod) -> bool) -> Option<String> {
        let keys: Vec<&String> = self
            .world
            .pods
            .iter()
            .filter(|(_, p)| {
                p.deleting.is_none() && p.workload < self.world.workloads.len() && pick(&self.world, p)
            })
            .map(|(k, _)| k)
            .collect();
        (!keys.is_empty()).then(|| keys[i % keys.len()].clone())
    }

    fn pick_node(&self, i: usize) -> String {
        let names = self.world.node_names();
        names[i % names.len()].clone()
    }

    fn recover(&mut self, key: &str) {
        let now = self.world.now;
        if let Some(p) = self.world.pods.get_mut(key) {
            p.trouble = Trouble::None;
            objects::set_status(&mut p.obj, PodStatus::Running(now));
        }
        self.world.pod_changed(key);
    }

    /// A whole zone cut off (one cause), or back.
    fn zone(&mut self, z: usize, down: bool) {
        let zone = z % self.setup.zones;
        let cause = 100 + zone as u32;
        let names: Vec<String> = self
            .world
            .nodes
            .iter()
            .filter(|(_, n)| n.zone == zone)
            .map(|(k, _)| k.clone())
            .collect();
        for name in names {
            if down {
                self.world.node_down(&name, Cause::Shared(cause));
            } else if self.world.nodes[&name]
                .down
                .is_some_and(|(_, c)| c == Cause::Shared(cause))
            {
                self.world.node_up(&name);
            }
        }
    }

    /// Time passes, a second at a time, as the live loop ticks.
    pub fn pass(&mut self, secs: Secs) {
        for _ in 0..secs {
            let now = self.world.now + 1;
            self.world.now = now;
            self.clock.set(now);
            self.seconds += 1;
            self.world.reconcile();
            self.see_again(now);
            self.settle();
            self.engine.correlated();
            // As the engine sees causes: once a second (a burst that shows and is cut off with
            // its nodes within the same second was never there to see).
            self.world.note_pod_causes();
            self.engine.fire_due_timers();
            if now % 60 == 0 {
                self.engine.prune_events();
            }
            self.settle();
        }
    }

    /// A watch that was not delivering lists again once its time is up.
    fn see_again(&mut self, now: Secs) {
        match self.blind {
            Some(Blind::Watch { pods, until }) if now >= until => {
                self.set_blind(None);
                let list = self.world.relist(pods);
                self.give_all(list, true);
            }
            Some(Blind::Lagging { until }) if now >= until => {
                self.set_blind(None);
                let lists = self.world.cluster_lists();
                self.give_all(lists, false);
            }
            _ => {}
        }
    }

    /// A watch fails: the engine is told (its store is not current), and it sees nothing of its
    /// kind until it lists again.
    fn watch_gap(&mut self, pods: bool, secs: Secs) {
        if self.blind.is_some() {
            return;
        }
        self.set_blind(Some(Blind::Watch {
            pods,
            until: self.world.now + secs,
        }));
        self.synced = false;
        self.give(Change::WatchFailed(if pods { "pods" } else { "nodes" }));
        self.settle();
    }

    /// The operator restarts (or another replica takes over): a new engine, whose watches list
    /// the cluster as it is (every list is a consistent read), and then, if `lag`, lag behind
    /// silently for that long.
    fn restart(&mut self, lag: Option<Secs>) {
        let (engine, clock, work) = engine(&self.setup, self.world.now);
        self.engines += 1;
        self.engine = engine;
        self.clock = clock;
        self.work = work;
        self.set_blind(None);
        self.synced = false;
        let lists = self.world.lists();
        self.give_all(lists, true);
        if let Some(lag) = lag {
            self.set_blind(Some(Blind::Lagging {
                until: self.world.now + lag,
            }));
        }
    }

    /// Which watch is not delivering; the world is told whether its pods' changes reach the
    /// engine (a cause the engine cannot see cannot hold its actions: see `World::many_pods`).
    fn set_blind(&mut self, blind: Option<Blind>) {
        self.blind = blind;
        self.world.pods_delivered = !matches!(
            blind,
            Some(Blind::Lagging { .. } | Blind::Watch { pods: true, .. })
        );
    }

    /// The control: with every watch listed and calls working, a lone failure (an Evicted pod
    /// on a healthy node, with its own policy) is healed within its policy's time, whatever
    /// else the history left behind.
    pub fn control(&mut self) {
        if let Some(Blind::Watch { until, .. } | Blind::Lagging { until }) = self.blind {
            let wait = (until - self.world.now).max(0);
            self.pass(wait + 1);
        }
        self.api_errors = false;
        self.world.apply_policy(policies::control());
        self.settle();
        self.pass(2);
        let Some(node) = self
            .world
            .nodes
            .iter()
            .find(|(_, n)| n.down.is_none())
            .map(|(name, _)| name.clone())
        else {
            return;
        };
        let now = self.world.now;
        let mut obj = objects::pod(
            policies::CONTROL_NS,
            "lone",
            "lone",
            &node,
            ("none", false),
            now,
            PodStatus::Evicted(now),
        );
        obj.metadata.owner_references = None;
        let key = format!("{}/lone", policies::CONTROL_NS);
        let pod = SimPod {
            obj,
            workload: usize::MAX,
            trouble: Trouble::Evicted(now),
            deleting: None,
        };
        self.world.pods.insert(key.clone(), pod);
        self.world.pod_changed(&key);
        self.settle();
        self.pass(policies::CONTROL_FOR as Secs + 60);
        if self.world.pods.contains_key(&key) {
            self.judge.liveness(
                self.world.now,
                format!(
                    "the lone Evicted pod {key} on {node} was not removed within {}s",
                    policies::CONTROL_FOR + 60
                ),
            );
        }
    }

    /// A request's end, told to the engine as the executor would.
    pub(crate) fn done(
        &mut self,
        req: &kube_healer_operator::protocol::ActionRequest,
        (carried_out, untouched): (bool, bool),
    ) {
        self.engine
            .action_done(kube_healer_operator::protocol::ActionDone {
                policy: req.spec.policy.clone(),
                name: req.name.clone(),
                was_in_flight: req.in_flight(),
                carried_out,
                untouched,
                unrecorded: None,
            });
    }

    /// The moment the run has reached.
    pub fn now(&self) -> Secs {
        self.world.now
    }

    pub(crate) fn record_deleted(&mut self, name: &str) {
        if let Some(r) = self.world.records.remove(name) {
            self.world
                .changes
                .0
                .push(Change::Record(Box::new(W::Delete(r.meta))));
        }
    }
}
