//! `kube-healer simulate -f policy.yaml`: what a policy would do to the cluster right now,
//! without acting. The API server validates the policy (server-side dry run); the cluster is read
//! once; the decisions are the operator's, starting from a fresh ladder.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use kube::api::{Api, Patch, PatchParams};
use kube_healer_api::{HealingPolicy, TargetKind};
use kube_healer_core::classify::pod::human;
use kube_healer_core::decide::{Budget, Decision, Ladder, Removal, disrupts_workload, workload_of};
use kube_healer_core::policy::{CompiledPolicy, TargetView};
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
    cluster.snapshot.sick_nodes = kube_healer_core::classify::sick_nodes_of(&cluster.snapshot, now);
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
    // Pods failing alike are found as the operator would with this policy among its own: at the
    // looser of its thresholds and the defaults.
    let mut correlating = Knobs::default();
    let operator = correlating.pods_alike;
    correlating.fit_pods_alike(&operator, [&compiled.policy.spec.safety]);
    let report = kube_healer_core::classify::classify_snapshot_with(snapshot, &correlating, now);
    let knobs = Knobs::default();
    let labels = |ns: &str| namespaces.get(ns);
    let mut matches: Vec<(usize, Finding, TargetView<'_>)> = Vec::new();
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
                for (i, f) in compiled.findings_for(TargetView::Pod(pod), &findings, snapshot, now) {
                    matches.push((i, f, TargetView::Pod(pod)));
                }
            }
        }
        TargetKind::Node => {
            for node in snapshot.nodes.iter().filter(|n| compiled.selects_node(n)) {
                selected += 1;
                let mut findings = Vec::new();
                classify_node(node, snapshot, &knobs, now, &mut findings);
                for (i, f) in compiled.findings_for(TargetView::Node(node), &findings, snapshot, now) {
                    matches.push((i, f, TargetView::Node(node)));
                }
            }
        }
    }
    matches.sort_by_key(|(i, f, _)| (f.due_at(compiled.conditions[*i].for_secs), f.subject.to_string()));
    let mut budget = Budget::default();
    // The pods the plan removes (or, a dry run, would remove) count against their workloads'
    // limits as it goes, as the operator counts them.
    let mut removals: HashMap<String, Vec<Removal>> = HashMap::new();
    let decider = offline::Decider {
        policy: compiled,
        snapshot,
        correlated: &report.correlated,
        workloads: &offline::workloads(snapshot),
        now,
    };
    let decisions = matches
        .into_iter()
        .map(|(i, f, target)| {
            let removed = |w: &str| removals.get(w).cloned().unwrap_or_default();
            let decision = decider.decide(target, &f, i, (&Ladder::new(f.since), &budget), &removed);
            budget.spend(&decision, now);
            if let (Decision::Act { action, .. }, TargetView::Pod(pod)) = (&decision, target)
                && disrupts_workload(f.class, *action)
                && let Some(workload) = workload_of(pod)
            {
                removals.entry(workload).or_default().push(Removal {
                    at: now,
                    pod: pod.uid.to_string(),
                    pod_created: pod.created(),
                });
            }
            (f, decision)
        })
        .collect();
    Plan { selected, decisions }
}
