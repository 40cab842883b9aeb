//! A leader loses its Lease in the middle of a drain: it makes no eviction after it stepped down,
//! and the replica that takes over keeps the policy's maxConcurrent of 1: it resumes the drain
//! the old leader left (one record, finished by the new leader) and drains the next node only
//! once that drain has ended. The two replicas run as two releases of the chart (two
//! ServiceAccounts, one Lease), so that one of them can lose its permission on the Lease and the
//! audit log tells their calls apart.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams};
use kube_healer_api::HealingAction;
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::harness::Ctx;
use kube_healer_testenv::nodes::OWNER_LABEL;
use kube_healer_testenv::{Scenario, chart, nodes, scenario_pod, wait};
use serde_json::json;

use crate::support::once::stepped_down_at;
use crate::support::{HEAL, Operator, create_policy, node_event, selector};

/// The namespace of the two releases and their Lease.
const NAMESPACE: &str = "kh-takeover";
const LEASE: &str = "takeover";
/// The drain's timeout: it must outlast the Lease taken away in its middle (a few seconds), the
/// old leader's step-down (up to the Lease's 10 s), the takeover (`takeover_limit`, 20 s) and the
/// new leader's first eviction of the resumed drain, on a loaded machine. Under a minute, so that
/// the record's message says it in seconds.
const DRAIN_TIMEOUT: u64 = 50;

/// One replica, as release `release` of the chart.
async fn replica(ctx: &Ctx, release: &str) -> anyhow::Result<Operator> {
    let lease = format!("leaderElection.leaseName={LEASE}");
    let kubeconfig = chart::operator_identity(&ctx.cluster, release, NAMESPACE, &[&lease]).await?;
    let selector = selector(ctx);
    let args = [
        "--leader-election-namespace",
        NAMESPACE,
        "--leader-election-lease",
        LEASE,
        "--policy-selector",
        &selector,
        "--identity",
        release,
        // Both nodes may be out of service at once: the limit under test is the policy's
        // maxConcurrent, not the cluster's disruption budget (which counts the other tests'
        // nodes too).
        "--max-nodes-out-of-service",
        "100%",
    ];
    Operator::spawn(&ctx.cluster, &kubeconfig, release, &args, &[]).await
}

/// Whether the replica leads, by its kube_healer_leader metric (for `wait::until`).
async fn leads(op: &Operator) -> kube_healer_testenv::Result<bool> {
    let value = op
        .metric("kube_healer_leader")
        .await
        .map_err(|e| kube_healer_testenv::Error::Other(format!("{e:#}")))?;
    Ok(value.unwrap_or(0.0) == 1.0)
}

/// A pod on `node` that a PodDisruptionBudget keeps there: a drain waits on it until its
/// timeout. Owned by a ConfigMap, so that the drain counts it as managed and no controller
/// recreates or adopts it.
async fn guarded_pod(ctx: &Ctx, ns: &str, node: &str) -> anyhow::Result<()> {
    let owner = Api::<ConfigMap>::namespaced(ctx.client.clone(), ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner"}}))?,
        )
        .await?;
    let mut pod = scenario_pod(ns, "guarded", Some(node), &Scenario::Running);
    pod.metadata.owner_references = Some(vec![serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
        "uid": owner.metadata.uid.context("uid")?, "controller": true}))?]);
    pod.metadata
        .labels
        .get_or_insert_default()
        .insert("app".into(), "guarded".into());
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    pods.create(&PostParams::default(), &pod).await?;
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "guarded", "namespace": ns},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}}}))?;
    Api::<PodDisruptionBudget>::namespaced(ctx.client.clone(), ns)
        .create(&PostParams::default(), &pdb)
        .await?;
    wait::pod_phase(&pods, "guarded", "Running", HEAL).await?;
    Ok(())
}

/// The policy's record on `node`, once it has one in `phase` (any phase: None).
async fn record_on(
    ctx: &Ctx,
    policy: &str,
    node: &str,
    phase: Option<ActionPhase>,
    within: Duration,
) -> anyhow::Result<HealingAction> {
    let api: Api<HealingAction> = Api::all(ctx.client.clone());
    let lp = kube::api::ListParams::default().labels(&format!("{}={policy}", kube_healer_api::POLICY_LABEL));
    wait::until(&format!("a record on {node} ({phase:?})"), within, || async {
        let list = api.list(&lp).await?.items;
        Ok(list.into_iter().find(|r| {
            r.spec.target.name == node
                && phase.is_none_or(|p| r.status.as_ref().is_some_and(|s| s.phase == p))
        }))
    })
    .await
    .map_err(Into::into)
}

/// The times the API server received the evictions made by `user_part`'s ServiceAccount.
fn evictions_by(ctx: &Ctx, user_part: &str) -> kube_healer_testenv::Result<Vec<Timestamp>> {
    Ok(ctx
        .cluster
        .audit_events()?
        .iter()
        .filter(|e| {
            e["impersonatedUser"]["username"]
                .as_str()
                .is_some_and(|u| u.contains(user_part))
                && e["objectRef"]["subresource"] == "eviction"
        })
        .filter_map(|e| e["requestReceivedTimestamp"].as_str()?.parse().ok())
        .collect())
}

pub async fn takeover_mid_drain(ctx: Ctx) -> anyhow::Result<()> {
    let crds: Vec<_> = kube_healer_api::crds().into_iter().map(|(_, crd)| crd).collect();
    kube_healer_testenv::crds::install(&ctx.client, &crds).await?;
    // The node drained first sorts after the one queued behind it: the new leader, deciding on
    // every target in name order, meets the queued node first.
    let (first, queued) = (ctx.name("z-first"), ctx.name("a-queued"));
    nodes::add_owned_nodes(&ctx.client, &[first.clone(), queued.clone()], &ctx.id, HEAL).await?;
    let ns = ctx.namespace("to").await?;
    guarded_pod(&ctx, &ns, &first).await?;

    let a = replica(&ctx, "kh-a").await?;
    wait::until("kh-a leads", Duration::from_secs(30), || async {
        Ok(leads(&a).await?.then_some(()))
    })
    .await?;
    let b = replica(&ctx, "kh-b").await?;
    ensure!(!leads(&b).await?, "two leaders");

    let policy = ctx.name("drain");
    create_policy(
        &ctx,
        &policy,
        json!({"target": {"kind": "Node", "selector": {"matchLabels": {OWNER_LABEL: ctx.id}}},
        "conditions": [{"class": "SystemOOM", "for": "1s"}],
        "actions": [{"action": "Drain", "drain": {"timeout": format!("{DRAIN_TIMEOUT}s")}}],
        "safety": {"maxUnhealthy": "100%", "maxConcurrent": 1, "rate": {"actions": 10, "per": "1h"}}}),
    )
    .await?;
    let oom = "System OOM encountered, victim process: java, pid: 18212";
    node_event(&ctx.client, &first, "SystemOOM", oom, 3).await?;
    record_on(&ctx, &policy, &first, Some(ActionPhase::Running), HEAL).await?;
    wait::until("kh-a's first eviction", HEAL, || async {
        Ok((!evictions_by(&ctx, ":kh-a-")?.is_empty()).then_some(()))
    })
    .await?;
    // The second node fails while the first drains: it waits for the place.
    node_event(&ctx.client, &queued, "SystemOOM", oom, 3).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let cordoned = |n: Node| n.spec.and_then(|s| s.unschedulable) == Some(true);
    ensure!(
        !cordoned(nodes.get(&queued).await?),
        "the queued node was drained beside the first (maxConcurrent 1)"
    );

    // kh-a's permission on the Lease goes.
    let bindings: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), NAMESPACE);
    // kh-a is refused the Lease from now until the test ends: the longest it can run.
    ctx.cluster
        .expect_refusals(Duration::from_secs(30 + 30 + DRAIN_TIMEOUT + 60) + HEAL);
    bindings
        .delete("kh-a-kube-healer-leader-election", &DeleteParams::default())
        .await?;
    let revoked = Instant::now();
    // How soon it steps down is lease.rs's matter; here, that it makes no eviction after.
    wait::until("kh-a steps down", Duration::from_secs(30), || async {
        Ok((!leads(&a).await?).then_some(()))
    })
    .await?;
    let stepped_down = stepped_down_at(&a).context("kh-a logged no step-down")?;
    wait::until("kh-b leads", Duration::from_secs(30), || async {
        Ok(leads(&b).await?.then_some(()))
    })
    .await?;
    let took_over = revoked.elapsed();

    // The new leader finishes the old leader's drain (it times out on the PDB), then drains the
    // queued node.
    let within = Duration::from_secs(DRAIN_TIMEOUT + 60);
    let ended = async {
        let done = record_on(&ctx, &policy, &first, Some(ActionPhase::Failed), within).await?;
        let next = record_on(&ctx, &policy, &queued, Some(ActionPhase::Succeeded), HEAL).await?;
        anyhow::Ok((done, next))
    };
    let (done, next) = match ended.await {
        Ok(records) => records,
        Err(e) => anyhow::bail!(
            "{e:#}\nkh-a's log:\n{}\nkh-b's log:\n{}",
            a.log_tail(15),
            b.log_tail(40)
        ),
    };
    let finished = done
        .status
        .as_ref()
        .and_then(|s| s.finish_time.clone())
        .context("finish time")?;
    ensure!(
        next.spec.decided_at.0 >= finished.0,
        "the queued node was decided at {} while the first drain ran until {} (maxConcurrent 1)",
        next.spec.decided_at.0,
        finished.0
    );
    let message = done.status.and_then(|s| s.message).unwrap_or_default();
    ensure!(
        message.contains(&format!("drain stopped after {DRAIN_TIMEOUT}s")),
        "{message}"
    );
    let on_first: Vec<_> = Api::<HealingAction>::all(ctx.client.clone())
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|r| r.spec.policy == policy && r.spec.target.name == first)
        .collect();
    ensure!(
        on_first.len() == 1,
        "{} records for the first node: the drain was begun again instead of resumed",
        on_first.len()
    );

    // No eviction from the old leader once it stepped down, by its own log's clock (a call
    // already under way may reach the API server a few seconds later on a loaded machine).
    let by_a = evictions_by(&ctx, ":kh-a-")?;
    let late: Vec<_> = by_a
        .iter()
        .filter(|t| t.duration_since(stepped_down).as_secs_f64() > 3.0)
        .collect();
    ensure!(
        late.is_empty(),
        "kh-a evicted after it stepped down at {stepped_down}: {late:?}"
    );
    let by_b = evictions_by(&ctx, ":kh-b-")?;
    ensure!(!by_b.is_empty(), "kh-b never resumed the drain's evictions");
    println!(
        "    kh-a evicted {} times, none after it stepped down; kh-b led {:.1} s after the Lease permission went, resumed the drain ({} evictions) and drained the next node only after it ended",
        by_a.len(),
        took_over.as_secs_f64(),
        by_b.len()
    );
    drop((a, b));
    Ok(())
}
