//! Planned disruption (issue 31), as an administrator does it and as a new user writes the
//! policies from the README (unreachable nodes: Cordon, then Drain, then a NoExecute taint;
//! pods lost with their node: Delete), on its own cluster of 10 kwok nodes running a Deployment
//! and a DaemonSet, and one node whose status the test posts (node-problem-detector's
//! KernelDeadlock), with a disruption budget of 20% (2 of 11 nodes):
//!
//! - (a) three nodes upgraded one after another the way the kubectl documentation says (cordon
//!   and evict, the kubelet silent through a reboot, uncordon): no action on them or their pods,
//!   and none of their cordons taken for kube-healer's. The control: a node that goes silent
//!   meanwhile with nobody's maintenance is cordoned, and its Deployment pods deleted;
//! - (d) that node's DaemonSet pod is neither deleted nor evicted (its DaemonSet would bring it
//!   back on the same node), nor is a Deployment's pod pinned to it by required affinity;
//! - (c) a person uncordons the node kube-healer cordoned: no re-cordon, the ladder's next step
//!   is recorded Skipped (Overridden), and the node says who lifted it;
//! - (e) two nodes cordoned by a person fill the budget: a Ready node with a KernelDeadlock is
//!   held (BudgetExceeded), a node that goes silent is still cordoned (it is out of service
//!   already), and once the person uncordons, the held node is cordoned;
//! - (b) each signal of planned disruption holds a node that goes silent, and the pods lost with
//!   it: taints, a label, an annotation, and other tools' resources (CRDs shaped like
//!   Karpenter's NodeClaim, Cluster API's Machine and medik8s' NodeMaintenance).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ApiResource, DynamicObject, EvictParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube_healer_api::record::ActionPhase;
use kube_healer_api::{CORDON_LIFTED_ANNOTATION, CORDONED_BY_ANNOTATION, HealingAction};
use kube_healer_core::decide::Maintainer;
use kube_healer_testenv::harness::{Ctx, test};
use kube_healer_testenv::nodes::OWNER_LABEL;
use kube_healer_testenv::{ClusterOptions, Scenario, nodes, scenario_pod, wait};
use serde_json::json;
use support::{
    HEAL, Operator, PostedNodes, create_policy, deployment, kernel_deadlock, now_rfc3339, phase_reason,
};

fn main() -> std::process::ExitCode {
    kube_healer_testenv::harness::run(
        ClusterOptions::default(),
        vec![test(
            "nodes_under_maintenance_are_left_to_it_a_person_s_uncordon_wins_and_the_budget_counts_every_node_out",
            maintenance,
        )],
    )
}

/// How long a maintained node's kubelet stays silent: past the node lifecycle controller's grace
/// (20 s) and the policy's `for` (10 s), so that its failure is due and decided while it lasts.
const REBOOT: Duration = Duration::from_secs(45);

/// The taint of the test's in-house maintenance tooling (`--maintenance-taints`).
const IN_HOUSE_TAINT: &str = "example.com/maintenance";

async fn set_unschedulable(api: &Api<Node>, name: &str, on: bool) -> anyhow::Result<()> {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"unschedulable": on}})),
    )
    .await?;
    Ok(())
}

async fn pods_on(ctx: &Ctx, ns: &str, node: &str) -> kube::Result<Vec<Pod>> {
    let lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
    Ok(Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .list(&lp)
        .await?
        .items)
}

fn owned_by_daemonset(p: &Pod) -> bool {
    p.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "DaemonSet")
}

/// `kubectl drain`: cordon, then evict every pod but the DaemonSet's, and wait until they are gone.
async fn drain(ctx: &Ctx, api: &Api<Node>, ns: &str, node: &str) -> anyhow::Result<()> {
    set_unschedulable(api, node, true).await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    for p in pods_on(ctx, ns, node)
        .await?
        .iter()
        .filter(|p| !owned_by_daemonset(p))
    {
        let name = p.metadata.name.as_deref().unwrap_or_default();
        pods.evict(name, &EvictParams::default()).await?;
    }
    wait::until(&format!("{node} drained"), HEAL, || async {
        let left = pods_on(ctx, ns, node).await?;
        Ok(left.iter().all(owned_by_daemonset).then_some(()))
    })
    .await?;
    Ok(())
}

/// An upgrade, as the kubectl documentation has it: drain, the kubelet silent through a reboot,
/// back, uncordon.
async fn upgrade(ctx: &Ctx, api: &Api<Node>, ns: &str, node: &str) -> anyhow::Result<()> {
    drain(ctx, api, ns, node).await?;
    nodes::stop_heartbeats(&ctx.client, node).await?;
    nodes::wait_node_ready_status(&ctx.client, node, "Unknown", HEAL).await?;
    tokio::time::sleep(REBOOT.saturating_sub(Duration::from_secs(20))).await;
    nodes::resume_heartbeats(&ctx.client, node).await?;
    nodes::wait_node_ready_status(&ctx.client, node, "True", HEAL).await?;
    set_unschedulable(api, node, false).await?;
    println!(
        "    {node} upgraded: drained, silent for {}s, uncordoned",
        REBOOT.as_secs()
    );
    Ok(())
}

/// Every record, by the target it names (a batch record's members too).
async fn records_by_target(ctx: &Ctx) -> kube::Result<BTreeMap<String, Vec<HealingAction>>> {
    let all = Api::<HealingAction>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?;
    let mut by: BTreeMap<String, Vec<HealingAction>> = BTreeMap::new();
    for r in all.items {
        let mut names = vec![r.spec.target.name.clone()];
        names.extend(r.spec.members.iter().map(|m| m.target.name.clone()));
        for n in names {
            by.entry(n).or_default().push(r.clone());
        }
    }
    Ok(by)
}

fn said(r: &HealingAction) -> String {
    let s = r.status.as_ref();
    format!(
        "{} {} {:?}/{}: {}",
        r.spec.policy,
        r.spec.action,
        s.map(|s| s.phase),
        s.and_then(|s| s.reason.clone()).unwrap_or_default(),
        s.and_then(|s| s.message.clone()).unwrap_or_default()
    )
}

/// Waits for a final record of `policy` on `target` with `reason`.
async fn record_with(ctx: &Ctx, policy: &str, target: &str, reason: &str) -> anyhow::Result<HealingAction> {
    record_saying(ctx, (policy, target, reason), "").await
}

/// Waits for a final record of `policy` on `target` with `reason` whose message says `words`.
async fn record_saying(
    ctx: &Ctx,
    (policy, target, reason): (&str, &str, &str),
    words: &str,
) -> anyhow::Result<HealingAction> {
    wait::until(
        &format!("{policy}'s {reason} record on {target} saying {words:?}"),
        HEAL,
        || async {
            let by = records_by_target(ctx).await?;
            Ok(by
                .get(target)
                .into_iter()
                .flatten()
                .find(|r| {
                    r.spec.policy == policy
                        && r.status.as_ref().is_some_and(|s| s.phase.is_final())
                        && phase_reason(r).1 == reason
                        && said(r).contains(words)
                })
                .cloned())
        },
    )
    .await
    .map_err(Into::into)
}

fn cordon_marks(node: &Node) -> (Option<String>, Option<String>) {
    let a = node.metadata.annotations.clone().unwrap_or_default();
    (
        a.get(CORDONED_BY_ANNOTATION).cloned(),
        a.get(CORDON_LIFTED_ANNOTATION).cloned(),
    )
}

fn unschedulable(node: &Node) -> bool {
    node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)
}

struct World {
    api: Api<Node>,
    ns: String,
    names: Vec<String>,
    unreachable: String,
    lost: String,
    deadlock: String,
}

async fn maintenance(ctx: Ctx) -> anyhow::Result<()> {
    let selector = format!("kube-healer.test/owner={}", ctx.id);
    let (flight, [f1, f2]) = support::flight::recorder(&ctx.cluster);
    let decisive = [
        "--max-nodes-out-of-service",
        "20%",
        "--maintenance-taints",
        IN_HOUSE_TAINT,
    ];
    let mut flags = vec!["--policy-selector", &selector, &f1, &f2];
    flags.extend(decisive);
    install_maintainer_crds(&ctx).await?;
    let op = Operator::start(&ctx.cluster, "maintenance", &flags).await?;
    let names: Vec<String> = (0..10).map(|i| ctx.name(&format!("m{i}"))).collect();
    nodes::add_owned_nodes(&ctx.client, &names, &ctx.id, HEAL).await?;
    let posted = ctx.name("npd");
    let npd = PostedNodes::create(
        &ctx.client,
        std::slice::from_ref(&posted),
        json!({"kube-healer.test/posted": ctx.id}),
        kernel_deadlock(false, &now_rfc3339(-3600)),
    )
    .await?;
    let ns = ctx.namespace("shop").await?;
    let web = scenario_pod(&ns, "web", None, &Scenario::Running);
    Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &deployment(&ctx, &ns, "web", 20, web)?)
        .await?;
    // A pod pinned to the control node (m9) by a required affinity on its name, as a Deployment
    // may pin one: moving it cannot help either.
    let mut pinned = deployment(
        &ctx,
        &ns,
        "pinned",
        1,
        scenario_pod(&ns, "pinned", None, &Scenario::Running),
    )?;
    if let Some(spec) = pinned.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        spec.affinity = Some(serde_json::from_value(
            json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [ctx.name("m9")]}]}]}}}),
        )?);
        // Not evicted by the node lifecycle controller while its node is down (its default
        // 300 s toleration could end within the scenario on a slow machine).
        let stay = |key: &str| json!({"key": key, "operator": "Exists", "effect": "NoExecute"});
        let mut tolerations = spec.tolerations.take().unwrap_or_default();
        for key in ["node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"] {
            tolerations.push(serde_json::from_value(stay(key))?);
        }
        spec.tolerations = Some(tolerations);
    }
    Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &pinned)
        .await?;
    let agent = scenario_pod(&ns, "agent", None, &Scenario::Running);
    let mut agent_meta = serde_json::to_value(&agent.metadata)?;
    agent_meta["labels"]["app"] = json!("agent");
    for key in ["name", "namespace"] {
        agent_meta.as_object_mut().context("metadata")?.remove(key);
    }
    let mut agent_spec = serde_json::to_value(agent.spec.context("a spec")?)?;
    agent_spec["nodeName"] = serde_json::Value::Null;
    agent_spec["nodeSelector"] = json!({OWNER_LABEL: ctx.id});
    let daemonset: DaemonSet = serde_json::from_value(
        json!({"metadata": {"name": "agent", "namespace": ns},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {"metadata": agent_meta, "spec": agent_spec}}}),
    )?;
    Api::<DaemonSet>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &daemonset)
        .await?;
    wait::until(
        "20 web, 10 agent pods and the pinned one running",
        HEAL,
        || async {
            let pods = Api::<Pod>::namespaced(ctx.client.clone(), &ns)
                .list(&ListParams::default())
                .await?;
            let running = pods
                .items
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count();
            Ok((running == 31).then_some(()))
        },
    )
    .await?;

    let selects = json!({"matchLabels": {OWNER_LABEL: ctx.id}});
    let world = World {
        api: Api::all(ctx.client.clone()),
        ns: ns.clone(),
        names,
        unreachable: ctx.name("unreachable"),
        lost: ctx.name("lost"),
        deadlock: ctx.name("deadlock"),
    };
    let limits = json!({"maxConcurrent": 10, "rate": {"actions": 30, "per": "1m"}, "cooldown": "5m"});
    create_policy(&ctx, &world.unreachable, json!({"target": {"kind": "Node", "selector": selects},
        "conditions": [{"class": "NodeUnreachable", "for": "10s"}],
        "actions": [{"action": "Cordon", "escalateAfter": "15s"}, {"action": "Drain", "escalateAfter": "1m"},
            {"action": "Taint", "taint": {"key": "kube-healer.test/down", "effect": "NoExecute", "acknowledgeNoExecute": true}}],
        "safety": limits})).await?;
    create_policy(&ctx, &world.lost, json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
        "conditions": [{"class": "NodeLost", "for": "10s"}], "actions": [{"action": "Delete"}], "safety": limits})).await?;
    create_policy(
        &ctx,
        &world.deadlock,
        json!({"target": {"kind": "Node", "selector": {"matchLabels": {"kube-healer.test/posted": ctx.id}}},
        "conditions": [{"class": "NodeCondition", "conditionType": "KernelDeadlock", "for": "1s"}],
        "actions": [{"action": "Cordon"}], "safety": limits}),
    )
    .await?;

    let result = async {
        upgrades_beside_a_failure(&ctx, &world).await?;
        a_full_budget(&ctx, &world, &npd, &posted).await?;
        each_signal_holds(&ctx, &world).await
    }
    .await;
    if let Err(e) = result {
        let log = op.log();
        let decisions: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("decision") || l.contains("lifted") || l.contains("undone"))
            .map(|l| l.get(..400).unwrap_or(l))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .take(40)
            .collect();
        bail!("{e:#}; the operator's last decisions:\n{}", decisions.join("\n"));
    }
    // Replayed from the flight recording: the same decisions.
    let live: Vec<HealingAction> = Api::<HealingAction>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|r| r.status.as_ref().is_some_and(|s| s.phase.is_final()))
        .collect();
    support::flight::replay_matches_live("maintenance", &flight, &live, &decisive).await?;
    drop(op);
    Ok(())
}

/// (a), (c), (d): three upgrades one after another, while the control node fails and a person
/// lifts the cordon kube-healer put on it.
async fn upgrades_beside_a_failure(ctx: &Ctx, w: &World) -> anyhow::Result<()> {
    let (api, ns) = (&w.api, w.ns.as_str());
    let maintained = &w.names[..3];
    let control = &w.names[9];
    let pinned = pods_on(ctx, ns, control)
        .await?
        .into_iter()
        .find(|p| {
            p.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("pinned-"))
        })
        .context("the pinned pod on the control node")?
        .metadata
        .uid
        .unwrap_or_default();
    let mut agents = BTreeMap::new();
    for node in maintained.iter().chain([control]) {
        let agent = pods_on(ctx, ns, node)
            .await?
            .into_iter()
            .find(owned_by_daemonset)
            .context("an agent")?;
        agents.insert(node.clone(), agent.metadata.uid.unwrap_or_default());
    }
    let upgrades = async {
        for node in maintained {
            upgrade(ctx, api, ns, node).await?;
        }
        anyhow::Ok(())
    };
    let control_fails = async {
        nodes::stop_heartbeats(&ctx.client, control).await?;
        wait::until(&format!("kube-healer's cordon on {control}"), HEAL, || async {
            let n = api.get(control).await?;
            Ok((unschedulable(&n) && cordon_marks(&n).0.is_some()).then_some(()))
        })
        .await?;
        // (c) The person uncordons it: the person wins.
        set_unschedulable(api, control, false).await?;
        let held = record_with(ctx, &w.unreachable, control, "Overridden").await?;
        ensure!(
            held.spec.action.to_string() == "Drain",
            "the held step: {}",
            said(&held)
        );
        for _ in 0..10 {
            let n = api.get(control).await?;
            ensure!(
                !unschedulable(&n),
                "{control} was cordoned again after the person's uncordon"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let (by, lifted) = cordon_marks(&api.get(control).await?);
        ensure!(by.is_none(), "the lifted cordon's mark stayed: {by:?}");
        ensure!(
            lifted
                .as_deref()
                .is_some_and(|l| l.starts_with(&format!("{}=", w.unreachable))),
            "{lifted:?}"
        );
        println!(
            "    control {control}: cordoned, uncordoned by a person; then {}",
            said(&held)
        );
        anyhow::Ok(())
    };
    let (upgraded, failed) = tokio::join!(upgrades, control_fails);
    upgraded?;
    failed?;

    let by = records_by_target(ctx).await?;
    // (a) Nothing done to the maintained nodes or their pods; each decided on and held once.
    for node in maintained {
        let n = api.get(node).await?;
        ensure!(
            cordon_marks(&n).0.is_none() && !unschedulable(&n),
            "{node}: {:?}",
            cordon_marks(&n)
        );
        let on_node = by.get(node.as_str()).cloned().unwrap_or_default();
        for r in &on_node {
            ensure!(phase_reason(r).0 == ActionPhase::Skipped, "{node}: {}", said(r));
        }
        ensure!(
            on_node.iter().any(|r| phase_reason(r).1 == "Maintenance"),
            "{node} has no Maintenance record: {:?}",
            on_node.iter().map(said).collect::<Vec<_>>()
        );
        let agent = &agents[node];
        let still = Api::<Pod>::namespaced(ctx.client.clone(), ns)
            .list(&ListParams::default())
            .await?;
        ensure!(
            still
                .items
                .iter()
                .any(|p| p.metadata.uid.as_deref() == Some(agent.as_str())),
            "{node}'s DaemonSet pod was removed"
        );
    }
    let acted: Vec<String> = by
        .iter()
        .filter(|(target, _)| {
            maintained.iter().any(|m| target.as_str() == m.as_str()) || target.starts_with("agent")
        })
        .flat_map(|(_, rs)| {
            rs.iter()
                .filter(|r| phase_reason(r).0 != ActionPhase::Skipped)
                .map(said)
        })
        .collect();
    ensure!(
        acted.is_empty(),
        "actions on maintained nodes or DaemonSet pods: {acted:?}"
    );
    // The control: cordoned (above), and its Deployment pods deleted; (d) its DaemonSet pod not.
    let deleted: Vec<String> = by
        .values()
        .flatten()
        .filter(|r| {
            r.spec.policy == w.lost && phase_reason(r) == (ActionPhase::Succeeded, "Completed".into())
        })
        .map(|r| r.spec.target.name.clone())
        .collect();
    ensure!(!deleted.is_empty(), "no pod lost with {control} was deleted");
    let agent = &agents[control];
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default())
        .await?;
    ensure!(
        pods.items
            .iter()
            .any(|p| p.metadata.uid.as_deref() == Some(agent.as_str())),
        "{control}'s DaemonSet pod was removed"
    );
    let futile = by
        .values()
        .flatten()
        .find(|r| r.spec.policy == w.lost && r.spec.target.uid == *agent && phase_reason(r).1 == "Unsafe");
    let futile = futile.context("no Unsafe record for the control's DaemonSet pod")?;
    let stuck = by
        .values()
        .flatten()
        .find(|r| r.spec.policy == w.lost && r.spec.target.uid == pinned)
        .context("no record for the pod pinned to the control node")?;
    ensure!(
        phase_reason(stuck).1 == "Unsafe" && said(stuck).contains("pinned to that node"),
        "the pinned pod: {}",
        said(stuck)
    );
    ensure!(
        pods.items
            .iter()
            .any(|p| p.metadata.uid.as_deref() == Some(pinned.as_str())),
        "the pod pinned to {control} was removed"
    );
    ensure!(
        said(futile).contains("DaemonSet recreates its pod on the same node"),
        "{}",
        said(futile)
    );
    println!(
        "    3 nodes upgraded: 0 actions on them or their pods; control: {} pods deleted, its DaemonSet pod held: {}",
        deleted.len(),
        said(futile)
    );
    nodes::resume_heartbeats(&ctx.client, control).await?;
    nodes::wait_node_ready_status(&ctx.client, control, "True", HEAL).await?;
    Ok(())
}

/// (e) Two nodes a person cordoned fill the budget (2 of 11): a Ready node failing is held, a
/// silent one is cordoned (already out), and the person's uncordon frees the place.
async fn a_full_budget(ctx: &Ctx, w: &World, npd: &PostedNodes, posted: &str) -> anyhow::Result<()> {
    let api = &w.api;
    let (kept, silent) = (&w.names[3..5], &w.names[5]);
    for node in kept {
        set_unschedulable(api, node, true).await?;
    }
    npd.set(posted, kernel_deadlock(true, &now_rfc3339(0)));
    nodes::stop_heartbeats(&ctx.client, silent).await?;
    let held = record_with(ctx, &w.deadlock, posted, "BudgetExceeded").await?;
    ensure!(said(&held).contains("maintenance"), "{}", said(&held));
    wait::until(
        &format!("kube-healer's cordon on the silent {silent}"),
        HEAL,
        || async {
            let n = api.get(silent).await?;
            Ok((unschedulable(&n) && cordon_marks(&n).0.is_some()).then_some(()))
        },
    )
    .await?;
    ensure!(
        !unschedulable(&api.get(posted).await?),
        "{posted} was cordoned past the budget"
    );
    println!(
        "    budget full with 2 nodes a person cordoned: {}; {silent} (silent) cordoned",
        said(&held)
    );
    for node in kept {
        set_unschedulable(api, node, false).await?;
    }
    wait::until(
        &format!("{posted} cordoned once the person uncordoned"),
        HEAL,
        || async {
            let n = api.get(posted).await?;
            Ok((unschedulable(&n) && cordon_marks(&n).0.is_some()).then_some(()))
        },
    )
    .await?;
    println!("    the person uncordoned {kept:?}: {posted} was cordoned");
    Ok(())
}

/// (b) Each signal of planned disruption holds a node whose kubelet then goes silent, as its
/// tool does it: the node is held (Skipped/Maintenance, naming the signal), and so are the pods
/// lost with it. All eight at once: a cause shared by many nodes holds them too, but the reason
/// recorded is the maintenance.
async fn each_signal_holds(ctx: &Ctx, w: &World) -> anyhow::Result<()> {
    let api = &w.api;
    let taint = |key: &str| json!({"spec": {"taints": [{"key": key, "effect": "NoSchedule"}]}});
    let signals = [
        (
            &w.names[3],
            taint("karpenter.sh/disrupted"),
            "karpenter.sh/disrupted",
        ),
        (
            &w.names[4],
            taint("ToBeDeletedByClusterAutoscaler"),
            "ToBeDeletedByClusterAutoscaler",
        ),
        (
            &w.names[6],
            json!({"metadata": {"labels": {"remediation.medik8s.io/exclude-from-remediation": "true"}}}),
            "remediation.medik8s.io/exclude-from-remediation",
        ),
        (
            &w.names[7],
            json!({"metadata": {"annotations": {"weave.works/kured-reboot-in-progress": now_rfc3339(0)}}}),
            "weave.works/kured-reboot-in-progress",
        ),
        (&w.names[8], taint(IN_HOUSE_TAINT), IN_HOUSE_TAINT),
    ];
    let resources = take_down_with_resources(ctx, &w.names[..3]).await?;
    let mut lost_pods = Vec::new();
    for node in resources.iter().map(|(n, _)| n) {
        lost_pods.extend(
            pods_on(ctx, &w.ns, node)
                .await?
                .into_iter()
                .filter_map(|p| p.metadata.name),
        );
    }
    for (node, patch, _) in &signals {
        api.patch(node, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        lost_pods.extend(
            pods_on(ctx, &w.ns, node)
                .await?
                .into_iter()
                .filter_map(|p| p.metadata.name),
        );
    }
    let signals: Vec<(&String, &str)> = signals
        .iter()
        .map(|(n, _, key)| (*n, *key))
        .chain(resources.iter().map(|(n, says)| (n, *says)))
        .collect();
    for (node, _) in &signals {
        nodes::stop_heartbeats(&ctx.client, node).await?;
    }
    for (node, key) in &signals {
        // The nodes of (a) were held for a person's cordon then: this failure's record names
        // the resource.
        record_saying(ctx, (&w.unreachable, node, "Maintenance"), key).await?;
    }
    // Their pods' NodeLost is due 10 s after the nodes' own failure: give it that, and more.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let by = records_by_target(ctx).await?;
    let mut held_pods = 0;
    for target in signals
        .iter()
        .map(|(n, _)| n.to_string())
        .chain(lost_pods.iter().cloned())
    {
        for r in by.get(&target).into_iter().flatten() {
            ensure!(phase_reason(r).0 == ActionPhase::Skipped, "{target}: {}", said(r));
            held_pods += usize::from(
                phase_reason(r).1 == "Maintenance" && r.spec.target.kind == kube_healer_api::TargetKind::Pod,
            );
        }
    }
    ensure!(
        held_pods > 0,
        "none of the {} pods lost with those nodes was held for the maintenance",
        lost_pods.len()
    );
    println!(
        "    8 signals (Karpenter's taint and NodeClaim, cluster-autoscaler, medik8s' label and NodeMaintenance, Cluster API's Machine, kured, in-house): each node held, and {held_pods} pods lost with them"
    );
    Ok(())
}

/// The resource of a maintainer at `version`, shaped like its project's CRD.
fn maintainer_api(client: &kube::Client, m: Maintainer, namespace: Option<&str>) -> Api<DynamicObject> {
    let api = m.api();
    let gvk = GroupVersionKind::gvk(api.group, api.versions[0], api.kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, m.resource());
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// Takes three nodes down as their tools do, by resource: Karpenter deleting the node's NodeClaim
/// (its termination finalizer keeps it while it drains), a Cluster API Machine kept from
/// remediation, a medik8s NodeMaintenance. Returns each node and what its record must name.
async fn take_down_with_resources(
    ctx: &Ctx,
    nodes: &[String],
) -> anyhow::Result<Vec<(String, &'static str)>> {
    let ns = ctx.namespace("capi").await?;
    let object = |v: serde_json::Value| serde_json::from_value::<DynamicObject>(v);
    let (pp, status) = (PostParams::default(), PatchParams::default());

    let claims = maintainer_api(&ctx.client, Maintainer::NodeClaim, None);
    let claim = ctx.name("claim");
    claims
        .create(&pp, &object(json!({"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
            "metadata": {"name": claim, "finalizers": ["karpenter.sh/termination"]},
            "spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"}}}))?)
        .await?;
    claims
        .patch_status(
            &claim,
            &status,
            &Patch::Merge(json!({"status": {"nodeName": nodes[0]}})),
        )
        .await?;
    claims.delete(&claim, &Default::default()).await?;

    let machines = maintainer_api(&ctx.client, Maintainer::Machine, Some(&ns));
    let machine = ctx.name("machine");
    machines
        .create(&pp, &object(json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
            "metadata": {"name": machine, "namespace": ns, "annotations": {"cluster.x-k8s.io/skip-remediation": ""}},
            "spec": {"clusterName": "c"}}))?)
        .await?;
    machines
        .patch_status(
            &machine,
            &status,
            &Patch::Merge(json!({"status": {"nodeRef": {"name": nodes[1]}}})),
        )
        .await?;

    let maintenances = maintainer_api(&ctx.client, Maintainer::NodeMaintenance, None);
    maintenances
        .create(&pp, &object(json!({"apiVersion": "nodemaintenance.medik8s.io/v1beta1", "kind": "NodeMaintenance",
            "metadata": {"name": ctx.name("upgrade")}, "spec": {"nodeName": nodes[2], "reason": "kernel upgrade"}}))?)
        .await?;
    Ok(vec![
        (nodes[0].clone(), "deleting NodeClaim"),
        (nodes[1].clone(), "cluster.x-k8s.io/skip-remediation"),
        (nodes[2].clone(), "NodeMaintenance"),
    ])
}

/// The CRDs of the maintainers' resources, shaped like their projects' (installed before the
/// operator starts: its watches find them served).
async fn install_maintainer_crds(ctx: &Ctx) -> anyhow::Result<()> {
    let crds = [
        support::shaped_crd("karpenter.sh", "v1", "NodeClaim", "nodeclaims", "Cluster")?,
        support::shaped_crd("cluster.x-k8s.io", "v1beta2", "Machine", "machines", "Namespaced")?,
        support::shaped_crd(
            "nodemaintenance.medik8s.io",
            "v1beta1",
            "NodeMaintenance",
            "nodemaintenances",
            "Cluster",
        )?,
    ];
    kube_healer_testenv::crds::install(&ctx.client, &crds).await?;
    Ok(())
}
