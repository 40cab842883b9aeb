//! `kube-healer explain pod/NAMESPACE/NAME | node/NAME`: what kube-healer sees on one target now:
//! its findings with evidence, the policies that select it, where each ladder stands (read back
//! from the target's HealingActions), what happens next or why not, and the latest records.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use kube::api::{Api, ListParams};
use kube_healer_api::record::TimelineEvidence;
use kube_healer_api::{HealingAction, HealingPolicy, TargetKind};
use kube_healer_core::classify::pod::human;
use kube_healer_core::cluster::ClusterView;
use kube_healer_core::decide::{Budget, Ladder, Recorded, episode_of};
use kube_healer_core::policy::{CompiledPolicy, TargetView};
use kube_healer_core::view::Secs;
use kube_healer_core::{Finding, Knobs, Snapshot, classify_node, classify_pod};

use crate::offline;
use crate::read_cluster::{ClusterRead, read_cluster};
use crate::render::{self, Voice};
use kube_healer_operator::decide::removals::Removals;

#[derive(clap::Args)]
pub struct Args {
    /// pod/NAMESPACE/NAME or node/NAME.
    target: String,
    /// Kubeconfig to use; default: $KUBECONFIG, then ~/.kube/config.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Records shown, latest first.
    #[arg(long, default_value_t = 10)]
    records: usize,
    /// The node label that names a node's pool (karpenter.sh/nodepool, ...): nodes failing
    /// together in a pool are one cause, as in a zone.
    #[arg(long, env = "KUBE_HEALER_NODE_POOL_LABEL")]
    node_pool_label: Option<String>,
}

enum Wanted {
    Pod(String, String),
    Node(String),
}

fn parse(target: &str) -> anyhow::Result<Wanted> {
    let parts: Vec<&str> = target.split('/').collect();
    match parts.as_slice() {
        [kind, ns, name] if kind.eq_ignore_ascii_case("pod") && !ns.is_empty() && !name.is_empty() => {
            Ok(Wanted::Pod(ns.to_string(), name.to_string()))
        }
        [kind, name] if kind.eq_ignore_ascii_case("node") && !name.is_empty() => {
            Ok(Wanted::Node(name.to_string()))
        }
        _ => bail!("{target:?}: expected pod/NAMESPACE/NAME or node/NAME"),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let wanted = parse(&args.target)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(explain(wanted, args))
}

async fn explain(wanted: Wanted, args: Args) -> anyhow::Result<ExitCode> {
    let client = crate::cmd::client(args.kubeconfig.as_deref()).await?;
    let ClusterRead {
        mut snapshot,
        namespaces,
    } = read_cluster(&client).await?;
    snapshot.pool_label = args.node_pool_label.clone();
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    snapshot.sick_nodes = kube_healer_core::classify::sick_nodes_of(&snapshot, now);
    let Found {
        target,
        uid,
        opted_out,
        header,
        findings,
    } = found(&wanted, &snapshot, now)?;
    let policies = Api::<HealingPolicy>::all(client.clone())
        .list(&ListParams::default())
        .await
        .context("listing HealingPolicies")?
        .items;
    // Pods failing alike are found as the operator finds them: at the loosest thresholds any
    // policy asks for (each policy's row then reads the causes its own meet).
    let mut correlating = Knobs::default();
    let operator = correlating.pods_alike;
    correlating.fit_pods_alike(&operator, policies.iter().map(|p| &p.spec.safety));
    let report = kube_healer_core::classify::classify_snapshot_with(&snapshot, &correlating, now);
    let records = target_records(&client, &uid).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{header}")?;
    if opted_out {
        writeln!(
            out,
            "opted out: carries {}=true",
            kube_healer_api::OPT_OUT_ANNOTATION
        )?;
    }
    writeln!(out)?;
    write_findings(&mut out, &findings, now)?;
    write_timeline(&mut out, timeline(target, &snapshot, &records, now), now)?;

    let removals = match target {
        TargetView::Pod(_) => workload_removals(&client, now).await?,
        TargetView::Node(_) => Removals::default(),
    };
    let rows = policy_rows(
        &policies,
        (&records, &removals),
        target,
        &findings,
        &snapshot,
        &namespaces,
        &report,
        now,
    );
    writeln!(out)?;
    if rows.is_empty() {
        writeln!(out, "policies: none selects it")?;
    } else {
        writeln!(out, "policies:")?;
        crate::table::write(&mut out, ["POLICY", "CONDITION", "STEP", "NEXT"], &rows)?;
    }

    write_records(&mut out, &records, args.records, now)?;
    Ok(ExitCode::SUCCESS)
}

/// The target asked for, as read: its view, UID, opt-out, a header line and its findings.
struct Found<'a> {
    target: TargetView<'a>,
    uid: String,
    opted_out: bool,
    header: String,
    findings: Vec<Finding>,
}

fn found<'a>(wanted: &Wanted, snapshot: &'a Snapshot, now: Secs) -> anyhow::Result<Found<'a>> {
    let knobs = Knobs::default();
    let mut findings: Vec<Finding> = Vec::new();
    Ok(match wanted {
        Wanted::Pod(ns, name) => {
            let pod = snapshot
                .pods
                .iter()
                .find(|p| &*p.namespace == ns && &*p.name == name)
                .with_context(|| format!("pod {ns}/{name} not found"))?;
            classify_pod(pod, snapshot, &knobs, now, &mut findings);
            let header = format!(
                "pod/{ns}/{name} (uid {}, node {}, phase {:?})",
                pod.uid,
                pod.node.as_deref().unwrap_or("none"),
                pod.phase
            );
            let (uid, opted_out) = (pod.uid.to_string(), pod.opted_out);
            Found {
                target: TargetView::Pod(pod),
                uid,
                opted_out,
                header,
                findings,
            }
        }
        Wanted::Node(name) => {
            let node = snapshot
                .nodes
                .iter()
                .find(|n| &*n.name == name)
                .with_context(|| format!("node {name} not found"))?;
            classify_node(node, snapshot, &knobs, now, &mut findings);
            let header = format!("node/{name} (uid {})", node.uid);
            let (uid, opted_out) = (node.uid.to_string(), node.opted_out);
            Found {
                target: TargetView::Node(node),
                uid,
                opted_out,
                header,
                findings,
            }
        }
    })
}

/// kube-healer's pod removals by workload, from every record's metadata (their `disrupts`
/// annotations), counted as the operator counts them, for maxDisruptedPerWorkload.
async fn workload_removals(client: &kube::Client, now: Secs) -> anyhow::Result<Removals> {
    let records = Api::<HealingAction>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await
        .context("listing HealingActions for the removals they record")?
        .items;
    Ok(Removals::from_records(records.iter().map(|r| &r.metadata), now))
}

/// The target's own records, and the batches (bulk clean-ups of leftovers) it was in.
async fn target_records(client: &kube::Client, uid: &str) -> anyhow::Result<Vec<HealingAction>> {
    let api = Api::<HealingAction>::all(client.clone());
    let mut records: Vec<HealingAction> = api
        .list(&ListParams::default().labels(&format!("{}={uid}", kube_healer_api::TARGET_UID_LABEL)))
        .await
        .context("listing the target's HealingActions")?
        .items;
    let batches = api
        .list(&ListParams::default().labels(&kube_healer_api::batch::member_label(uid)))
        .await
        .context("listing the batches the target was in")?
        .items;
    for batch in batches {
        if !records.iter().any(|r| r.metadata.name == batch.metadata.name) {
            records.push(batch);
        }
    }
    Ok(records)
}

fn write_findings(out: &mut impl Write, findings: &[Finding], now: Secs) -> anyhow::Result<()> {
    if findings.is_empty() {
        writeln!(out, "findings: none (healthy as far as kube-healer can tell)")?;
        return Ok(());
    }
    let rows: Vec<[String; 3]> = findings
        .iter()
        .map(|f| {
            [
                f.class.to_string(),
                human(now - f.since),
                f.evidence.summary.clone(),
            ]
        })
        .collect();
    writeln!(out, "findings:")?;
    crate::table::write(out, ["CLASS", "FAILING FOR", "EVIDENCE"], &rows)?;
    Ok(())
}

fn write_timeline(out: &mut impl Write, entries: Vec<TimelineEvidence>, now: Secs) -> anyhow::Result<()> {
    writeln!(out)?;
    if entries.is_empty() {
        writeln!(out, "timeline: nothing to tell")?;
        return Ok(());
    }
    writeln!(
        out,
        "timeline (oldest first; from the object, its events and its records):"
    )?;
    let rows: Vec<[String; 3]> = entries
        .into_iter()
        .map(|e| {
            [
                format!("{} ago", human(now - e.at.0.as_second())),
                e.kind,
                e.detail,
            ]
        })
        .collect();
    crate::table::write(out, ["WHEN", "KIND", "WHAT"], &rows)?;
    Ok(())
}

/// One row per policy condition holding on the target (or per selecting policy): where its
/// ladder stands, read back from the target's records, and what happens next or why not.
#[allow(clippy::too_many_arguments)]
fn policy_rows(
    policies: &[HealingPolicy],
    (records, removals): (&[HealingAction], &Removals),
    target: TargetView<'_>,
    findings: &[Finding],
    snapshot: &kube_healer_core::Snapshot,
    namespaces: &std::collections::HashMap<String, kube_healer_core::view::Labels>,
    report: &kube_healer_core::Report,
    now: Secs,
) -> Vec<[String; 4]> {
    let mut rows: Vec<[String; 4]> = Vec::new();
    let workloads = offline::workloads(snapshot);
    for policy in policies {
        let name = policy.metadata.name.clone().unwrap_or_default();
        let compiled = match CompiledPolicy::compile(policy) {
            Ok(c) => c,
            Err(e) => {
                rows.push([name, "-".into(), "-".into(), format!("invalid: {e}")]);
                continue;
            }
        };
        let selected = match target {
            TargetView::Pod(p) if compiled.kind == TargetKind::Pod => {
                compiled.selects_pod(p, namespaces.get(&*p.namespace))
            }
            TargetView::Node(n) if compiled.kind == TargetKind::Node => compiled.selects_node(n),
            _ => false,
        };
        if !selected {
            continue;
        }
        let held = compiled.findings_for(target, findings, snapshot, now);
        if held.is_empty() {
            rows.push([
                name,
                "-".into(),
                "-".into(),
                "selects it; no condition holds".into(),
            ]);
            continue;
        }
        let own: Vec<&HealingAction> = records.iter().filter(|r| r.spec.policy == name).collect();
        for (i, f) in held {
            let steps = policy.spec.actions.len();
            let ladder = ladder_of(policy, &own, f.since);
            let decider = offline::Decider {
                policy: &compiled,
                snapshot,
                correlated: &report.correlated,
                workloads: &workloads,
                now,
            };
            let removed = |w: &str| removals.of(w, now);
            let decision = decider.decide(target, &f, i, (&ladder, &Budget::default()), &removed);
            let step = ladder.next_step.min(steps.saturating_sub(1));
            let waiting = policy.spec.actions.get(step).map(|s| s.action.to_string());
            let next = render::decision(&decision, now, waiting.as_deref(), Voice::Next);
            rows.push([
                name.clone(),
                format!("{} for {}", f.class, human(compiled.conditions[i].for_secs)),
                format!(
                    "{} of {}, {} taken",
                    (ladder.next_step + 1).min(steps),
                    steps,
                    ladder.attempts
                ),
                next,
            ]);
        }
    }
    rows
}

/// Where a policy's ladder stands on a failure that began at `since`, from the policy's own
/// records of the target: the episode as the operator reckons it (a failure that went on, or
/// came back within the cooldown, continues its ladder).
fn ladder_of(policy: &HealingPolicy, own: &[&HealingAction], since: Secs) -> Ladder {
    let recorded = own.iter().filter_map(|r| {
        Some(Recorded {
            created: r.metadata.creation_timestamp.as_ref()?.0.as_second(),
            episode: r.spec.failing_since.as_ref()?.0.as_second(),
            acted: Ladder::took_step(r),
        })
    });
    let safety = &policy.spec.safety;
    let episode = episode_of(recorded, since, safety.cooldown_secs());
    Ladder::from_records(
        own.iter().copied(),
        episode,
        policy.spec.actions.len(),
        safety.dry_run,
    )
}

/// The target's timeline: what the object and its events tell now, and what the operator saw
/// happen before (kept in its records' evidence), each moment once, oldest first.
fn timeline(
    target: TargetView<'_>,
    snapshot: &kube_healer_core::Snapshot,
    records: &[HealingAction],
    now: Secs,
) -> Vec<TimelineEvidence> {
    use kube_healer_core::timeline;
    let told_now = match target {
        TargetView::Pod(pod) => {
            let events = snapshot.events_of(
                "Pod",
                Some(&pod.namespace),
                &pod.name,
                &pod.uid,
                Some(pod.created()),
            );
            timeline::evidence(pod, events, now)
        }
        TargetView::Node(node) => {
            let events = snapshot.events_of("Node", None, &node.name, &node.uid, None);
            timeline::node_evidence(node, events, now)
        }
    };
    let mut recorded: Vec<&HealingAction> = records.iter().collect();
    recorded.sort_by_key(|r| r.spec.decided_at.0);
    let told = recorded
        .into_iter()
        .flat_map(|r| r.spec.evidence.timeline.iter().cloned());
    timeline::merge(told.chain(told_now))
}

/// The target's latest records.
fn write_records(
    out: &mut impl Write,
    records: &[HealingAction],
    count: usize,
    now: Secs,
) -> anyhow::Result<()> {
    let mut latest: Vec<&HealingAction> = records.iter().collect();
    latest.sort_by_key(|r| std::cmp::Reverse(r.spec.decided_at.0));
    writeln!(out)?;
    if latest.is_empty() {
        writeln!(out, "records: none")?;
    } else {
        let rows: Vec<[String; 6]> = latest
            .iter()
            .take(count)
            .map(|r| {
                let status = r.status.as_ref();
                [
                    r.metadata.name.clone().unwrap_or_default(),
                    r.spec.action.to_string(),
                    status.map_or("Pending".into(), |s| format!("{:?}", s.phase)),
                    status.and_then(|s| s.reason.clone()).unwrap_or_default(),
                    human(now - r.spec.decided_at.0.as_second()),
                    status.and_then(|s| s.message.clone()).unwrap_or_default(),
                ]
            })
            .collect();
        writeln!(out, "records (latest first):")?;
        crate::table::write(
            out,
            ["NAME", "ACTION", "PHASE", "REASON", "AGE", "MESSAGE"],
            &rows,
        )?;
    }
    Ok(())
}
