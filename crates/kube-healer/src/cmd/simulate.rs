//! `kube-healer simulate -f policy.yaml`: what a policy would do to the cluster right now,
//! without acting. The API server validates the policy (server-side dry run); the cluster is read
//! once; the decisions are the operator's, starting from a fresh ladder.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use kube::api::{Api, Patch, PatchParams};
use kube_healer_api::{HealingPolicy, TargetKind};
use kube_healer_core::classify::pod::human;
use kube_healer_core::decide::{Budget, Decision, Ladder};
use kube_healer_core::policy::{CompiledPolicy, Target};
use kube_healer_core::view::Secs;
use kube_healer_core::{Finding, Knobs, classify_node, classify_pod};

use crate::offline;
use crate::read_cluster::{ClusterRead, read_cluster};
use crate::render::{self, Voice};

#[derive(clap::Args)]
pub struct Args {
    /// The HealingPolicy (YAML or JSON).
    #[arg(short = 'f', long = "filename")]
    file: PathBuf,
    /// Kubeconfig to use; default: $KUBECONFIG, then ~/.kube/config.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The node label that names a node's pool (karpenter.sh/nodepool, ...): nodes failing
    /// together in a pool are one cause, as in a zone.
    #[arg(long, env = "KUBE_HEALER_NODE_POOL_LABEL")]
    node_pool_label: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let policy: HealingPolicy = serde_yaml::from_str(&text).map_err(|e| {
        let line = e.location().map_or(0, |l| l.line());
        anyhow::anyhow!("{}: line {line}: not a HealingPolicy: {e}", args.file.display())
    })?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(simulate(policy, args))
}

async fn simulate(policy: HealingPolicy, args: Args) -> anyhow::Result<ExitCode> {
    let client = crate::cmd::client(args.kubeconfig.as_deref()).await?;
    let name = policy
        .metadata
        .name
        .clone()
        .context("the policy has no metadata.name")?;

    // The API server's verdict on the policy, without storing it.
    let api: Api<HealingPolicy> = Api::all(client.clone());
    let params = PatchParams::apply("kube-healer-simulate")
        .dry_run()
        .validation_strict();
    if let Err(e) = api.patch(&name, &params, &Patch::Apply(&policy)).await {
        match e {
            kube::Error::Api(status) => {
                eprintln!("the API server refuses this policy: {}", status.message);
                return Ok(ExitCode::FAILURE);
            }
            other => return Err(other).context("validating the policy with a server-side dry run"),
        }
    }
    let compiled =
        CompiledPolicy::compile(&policy).map_err(|e| anyhow::anyhow!("the policy cannot be used: {e}"))?;

    let mut cluster = read_cluster(&client).await?;
    cluster.snapshot.pool_label = args.node_pool_label.clone();
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let plan = plan(&compiled, &cluster, now);

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "policy {name}: {} {} selected, {} failing now",
        plan.selected,
        compiled.kind.as_str().to_ascii_lowercase() + "s",
        plan.decisions.len()
    )?;
    if plan.decisions.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 4]> = plan
        .decisions
        .iter()
        .map(|(f, decision)| {
            [
                f.subject.to_string(),
                f.class.to_string(),
                human(now - f.since),
                render::decision(decision, now, None, Voice::Would),
            ]
        })
        .collect();
    crate::table::write(&mut out, ["TARGET", "CLASS", "FAILING FOR", "WOULD"], &rows)?;
    Ok(ExitCode::SUCCESS)
}

/// What a policy would do to a cluster at `now`.
pub struct Plan {
    /// Targets the policy selects.
    pub selected: usize,
    /// Each failing target's finding and decision, in due order.
    pub decisions: Vec<(Finding, Decision)>,
}

/// Decides in due order, as the operator would, starting from fresh ladders and spending the
/// policy's budget as it goes.
pub fn plan(compiled: &CompiledPolicy, cluster: &ClusterRead, now: Secs) -> Plan {
    let ClusterRead { snapshot, namespaces } = cluster;
    let report = kube_healer_core::classify_snapshot(snapshot, now);
    let knobs = Knobs::default();
    let labels = |ns: &str| namespaces.get(ns);
    let mut matches: Vec<(usize, Finding, Target<'_>)> = Vec::new();
    let mut selected = 0usize;
    match compiled.kind {
        TargetKind::Pod => {
            for pod in snapshot
                .pods
                .iter()
                .filter(|p| compiled.selects_pod(p, labels(&p.namespace)))
            {
                selected += 1;
                let mut findings = Vec::new();
                classify_pod(pod, snapshot, &knobs, now, &mut findings);
                for (i, f) in compiled.findings_for(Target::Pod(pod), &findings, snapshot, now) {
                    matches.push((i, f, Target::Pod(pod)));
                }
            }
        }
        TargetKind::Node => {
            for node in snapshot.nodes.iter().filter(|n| compiled.selects_node(n)) {
                selected += 1;
                let mut findings = Vec::new();
                classify_node(node, snapshot, &knobs, now, &mut findings);
                for (i, f) in compiled.findings_for(Target::Node(node), &findings, snapshot, now) {
                    matches.push((i, f, Target::Node(node)));
                }
            }
        }
    }
    matches.sort_by_key(|(i, f, _)| (f.due_at(compiled.conditions[*i].for_secs), f.subject.to_string()));
    let mut budget = Budget::default();
    let decider = offline::Decider {
        policy: compiled,
        snapshot,
        correlated: &report.correlated,
        now,
    };
    let decisions = matches
        .into_iter()
        .map(|(i, f, target)| {
            let decision = decider.decide(target, &f, i, &Ladder::new(f.since), &budget);
            budget.spend(&decision, now);
            (f, decision)
        })
        .collect();
    Plan { selected, decisions }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::watcher::Event;
    use kube_healer_core::convert::{Interner, pod_view};
    use kube_healer_core::{Snapshot, decide::Decision};
    use kube_healer_operator::clock::ManualClock;
    use kube_healer_operator::engine::Engine;
    use kube_healer_operator::metrics::Metrics;
    use kube_healer_operator::protocol::Work;
    use kube_healer_operator::store::Synced;
    use kube_healer_operator::watch::Change;
    use serde_json::json;

    use super::*;

    const T0: Secs = 1_800_000_000;

    fn at(secs: Secs) -> String {
        k8s_openapi::jiff::Timestamp::from_second(secs)
            .unwrap()
            .to_string()
    }

    fn evicted(name: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "uid": name, "creationTimestamp": at(T0 - 600)},
            "spec": {"containers": [], "nodeName": "n1"},
            "status": {"phase": "Failed", "reason": "Evicted", "message": "low on memory", "startTime": at(T0 - 600)}}))
        .unwrap()
    }

    /// `simulate` and the operator's engine decide alike on a dry-run policy under maxConcurrent:
    /// a dry run changes nothing and ends at once, so it takes no place in flight, and every
    /// target is dry-run (simulate once counted each dry run as in flight, and showed the rest
    /// held by maxConcurrent).
    #[test]
    fn simulate_and_the_engine_agree_on_dry_runs_under_max_concurrent() {
        let policy: HealingPolicy = serde_json::from_value(json!({
            "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
            "metadata": {"name": "leftovers", "generation": 1},
            "spec": {"target": {"kind": "Pod", "namespaces": {"include": ["ns"]}},
                "conditions": [{"class": "Evicted", "for": "1m"}], "actions": [{"action": "Delete"}],
                "safety": {"dryRun": true, "maxConcurrent": 1, "rate": {"actions": 100, "per": "1m"}}}}))
        .unwrap();
        let pods: Vec<Pod> = ["a", "b", "c"].map(evicted).to_vec();
        let now = T0 + 61;

        // The engine, fed the pods as its watches would, on a manual clock.
        let (synced, _) = tokio::sync::watch::channel(Synced::default());
        let (work_tx, mut work) = tokio::sync::mpsc::unbounded_channel();
        let (_done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel();
        let clock = ManualClock::at(T0);
        let mut engine = Engine::new(Arc::new(Metrics::default()), synced)
            .with_clock(clock.clone())
            .with_executor(work_tx, done_rx);
        // Every watch lists first, as at start-up (the engine decides only once all have).
        engine.apply(Change::policy(Event::Init));
        engine.apply(Change::policy(Event::InitApply(policy.clone())));
        engine.apply(Change::policy(Event::InitDone));
        engine.apply(Change::Pod(Box::new(Event::Init)));
        for pod in &pods {
            engine.apply(Change::Pod(Box::new(Event::InitApply(pod.clone()))));
        }
        engine.apply(Change::Pod(Box::new(Event::InitDone)));
        engine.apply(Change::Node(Box::new(Event::Init)));
        engine.apply(Change::Node(Box::new(Event::InitDone)));
        engine.apply(Change::Event(Box::new(Event::Init)));
        engine.apply(Change::Event(Box::new(Event::InitDone)));
        engine.apply(Change::Lease(Box::new(Event::Init)));
        engine.apply(Change::Lease(Box::new(Event::InitDone)));
        engine.apply(Change::Namespace(Box::new(Event::Init)));
        engine.apply(Change::Namespace(Box::new(Event::InitDone)));
        engine.apply(Change::Record(Box::new(Event::Init)));
        engine.apply(Change::Record(Box::new(Event::InitDone)));
        clock.set(now);
        engine.fire_due_timers();
        let mut by_engine = Vec::new();
        while let Ok(w) = work.try_recv() {
            if let Work::Act(req) = w {
                let held = req.hold.as_ref().map(|h| h.reason);
                by_engine.push((
                    req.spec.target.name.clone(),
                    req.spec.action,
                    req.spec.dry_run,
                    held,
                ));
            }
        }
        by_engine.sort_by(|a, b| a.0.cmp(&b.0));

        // simulate, on the same pods read once.
        let mut interner = Interner::default();
        let views = pods.iter().map(|p| pod_view(p, &mut interner).unwrap()).collect();
        let cluster = ClusterRead {
            snapshot: Snapshot::new(views, Vec::new(), Vec::new(), Vec::new()),
            namespaces: Default::default(),
        };
        let compiled = CompiledPolicy::compile(&policy).unwrap();
        let plan = plan(&compiled, &cluster, now);
        let mut by_simulate: Vec<_> = plan
            .decisions
            .iter()
            .map(|(f, d)| match d {
                Decision::Act { action, dry_run, .. } => {
                    (f.subject.name.to_string(), *action, *dry_run, None)
                }
                Decision::Hold { action, reason, .. } => {
                    (f.subject.name.to_string(), *action, true, Some(*reason))
                }
                Decision::Wait { .. } => panic!("{} is due: {d:?}", f.subject),
            })
            .collect();
        by_simulate.sort_by(|a, b| a.0.cmp(&b.0));

        assert_eq!(by_engine.len(), 3, "{by_engine:?}");
        assert!(by_engine.iter().all(|d| d.2 && d.3.is_none()), "{by_engine:?}");
        assert_eq!(by_simulate, by_engine);
    }
}
