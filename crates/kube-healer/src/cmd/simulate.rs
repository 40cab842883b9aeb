//! `kube-healer simulate -f policy.yaml`: what a policy would do to the cluster right now,
//! without acting. The API server validates the policy (server-side dry run); the cluster is read
//! once; the decisions are the operator's, starting from a fresh ladder.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube_healer_api::{FailureClass, HealingPolicy, TargetKind};
use kube_healer_core::classify::pod::human;
use kube_healer_core::convert::{Interner, event_view, lease_view, node_view, pod_view};
use kube_healer_core::decide::{Budget, Decision, Facts, Ladder, decide};
use kube_healer_core::policy::{CompiledPolicy, Target};
use kube_healer_core::{Finding, Knobs, Snapshot, classify_node, classify_pod};

#[derive(clap::Args)]
pub struct Args {
    /// The HealingPolicy (YAML or JSON).
    #[arg(short = 'f', long = "filename")]
    file: PathBuf,
    /// Kubeconfig to use; default: $KUBECONFIG, then ~/.kube/config.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
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

    let ClusterRead { snapshot, namespaces } = read_cluster(&client).await?;
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let report = kube_healer_core::classify_snapshot(&snapshot, now);

    // Targets the policy selects, with their findings under its conditions.
    let knobs = Knobs::default();
    let mut matches: Vec<(usize, Finding, bool)> = Vec::new();
    let mut selected_nodes = 0usize;
    let mut unhealthy = 0usize;
    match compiled.kind {
        TargetKind::Pod => {
            for pod in &snapshot.pods {
                if compiled.selects_pod(pod, namespaces.get(&*pod.namespace)) {
                    let mut findings = Vec::new();
                    classify_pod(pod, &snapshot, &knobs, now, &mut findings);
                    for (i, f) in compiled.findings_for(Target::Pod(pod), &findings, &snapshot, now) {
                        matches.push((i, f, pod.opted_out));
                    }
                }
            }
        }
        TargetKind::Node => {
            (unhealthy, selected_nodes) = unhealthy_nodes(&snapshot, &compiled, now);
            for node in &snapshot.nodes {
                if compiled.selects_node(node) {
                    let mut findings = Vec::new();
                    classify_node(node, &snapshot, &knobs, now, &mut findings);
                    for (i, f) in compiled.findings_for(Target::Node(node), &findings, &snapshot, now) {
                        matches.push((i, f, node.opted_out));
                    }
                }
            }
        }
    }
    matches.sort_by_key(|(i, f, _)| (f.due_at(compiled.conditions[*i].for_secs), f.subject.to_string()));

    // Decide in due order, as the operator would, spending the policy's budget as it goes.
    let mut budget = Budget::default();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "policy {name}: {} {} selected, {} failing now",
        match compiled.kind {
            TargetKind::Pod => snapshot
                .pods
                .iter()
                .filter(|p| compiled.selects_pod(p, namespaces.get(&*p.namespace)))
                .count(),
            TargetKind::Node => selected_nodes,
        },
        compiled.kind.as_str().to_ascii_lowercase() + "s",
        matches.len()
    )?;
    if matches.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 4]> = matches
        .iter()
        .map(|(i, f, opted_out)| {
            let due = f.due_at(compiled.conditions[*i].for_secs);
            let facts = Facts {
                now,
                opted_out: *opted_out,
                correlated: report
                    .correlated
                    .iter()
                    .find(|c| c.covers(f))
                    .map(|c| c.message.clone()),
                unhealthy_nodes: (compiled.kind == TargetKind::Node).then_some((unhealthy, selected_nodes)),
                ..Default::default()
            };
            let decision = decide(&policy.spec, due, &Ladder::new(f.since), &budget, &facts);
            let verdict = match &decision {
                Decision::Wait { until } => format!("wait {} (due then)", human(until - now)),
                Decision::Act {
                    step,
                    action,
                    dry_run,
                } => {
                    budget.in_flight += 1;
                    budget.recent.push(now);
                    format!(
                        "{action} (step {}){}",
                        step + 1,
                        if *dry_run { ", dry run" } else { "" }
                    )
                }
                Decision::Hold {
                    action,
                    reason,
                    message,
                    ..
                } => format!("hold {action}: {reason} ({message})"),
            };
            [
                f.subject.to_string(),
                f.class.to_string(),
                human(now - f.since),
                verdict,
            ]
        })
        .collect();
    crate::table::write(&mut out, ["TARGET", "CLASS", "FAILING FOR", "WOULD"], &rows)?;
    Ok(ExitCode::SUCCESS)
}

/// (NotReady or unreachable nodes, nodes) among those the policy selects.
pub fn unhealthy_nodes(snapshot: &Snapshot, policy: &CompiledPolicy, now: i64) -> (usize, usize) {
    let knobs = Knobs::default();
    let mut selected = 0;
    let mut down = 0;
    for node in snapshot.nodes.iter().filter(|n| policy.selects_node(n)) {
        selected += 1;
        let mut findings = Vec::new();
        classify_node(node, snapshot, &knobs, now, &mut findings);
        down += usize::from(findings.iter().any(|f| {
            matches!(
                f.class,
                FailureClass::NodeNotReady | FailureClass::NodeUnreachable
            )
        }));
    }
    (down, selected)
}

/// The cluster, read once (a CLI may list; the operator only watches).
pub struct ClusterRead {
    pub snapshot: Snapshot,
    /// Namespace labels, for namespaceSelectors.
    pub namespaces: HashMap<String, kube_healer_core::view::Labels>,
}

pub async fn read_cluster(client: &kube::Client) -> anyhow::Result<ClusterRead> {
    let lp = ListParams::default().limit(500);
    let mut interner = Interner::default();
    let pods: Vec<_> = list::<Pod>(Api::all(client.clone()), &lp)
        .await?
        .iter()
        .filter_map(|p| pod_view(p, &mut interner).ok())
        .collect();
    let nodes: Vec<_> = list::<Node>(Api::all(client.clone()), &lp)
        .await?
        .iter()
        .filter_map(|n| node_view(n, &mut interner).ok())
        .collect();
    let events: Vec<_> = list::<Event>(Api::all(client.clone()), &lp)
        .await?
        .iter()
        .filter_map(|e| event_view(e, &mut interner).ok())
        .collect();
    let leases: Vec<_> = list::<Lease>(Api::namespaced(client.clone(), "kube-node-lease"), &lp)
        .await?
        .iter()
        .filter_map(|l| lease_view(l, &mut interner).ok())
        .collect();
    let namespaces = list::<Namespace>(Api::all(client.clone()), &lp)
        .await?
        .iter()
        .map(|n| {
            (
                n.metadata.name.clone().unwrap_or_default(),
                interner.labels(n.metadata.labels.as_ref()),
            )
        })
        .collect();
    Ok(ClusterRead {
        snapshot: Snapshot::new(pods, nodes, events, leases),
        namespaces,
    })
}

/// Every object of a list, page by page.
pub async fn list<K>(api: Api<K>, params: &ListParams) -> anyhow::Result<Vec<K>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut params = params.clone();
    loop {
        let page = api.list(&params).await?;
        out.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params.continue_token = Some(token),
            _ => return Ok(out),
        }
    }
}
