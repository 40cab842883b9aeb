//! The workload and node actions on the real cluster: Reschedule (the pod recreated on another
//! node), RestartOwner (one rollout restart for several failing pods), Drain (a PodDisruptionBudget
//! respected; DaemonSet, bare, emptyDir and opted-out pods left and named; a clean timeout), RunJob (a Job pinned to a flapping node after
//! its cordon), and a crash between the record and the API call (finished once after the restart).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube_healer_api::record::ActionPhase;
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::nodes::OWNER_LABEL;
use kube_healer_testenv::{Scenario, nodes, scenario_pod, wait};
use serde_json::json;

use crate::support;
use support::{
    HEAL, Operator, create_policy, limits, node_event, now_rfc3339, phase_reason, records, selector,
};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![
        test("reschedule_recreates_the_pod_on_another_node", reschedule),
        test(
            "restart_owner_restarts_the_deployment_once_for_its_failing_pods",
            restart_owner,
        ),
        test(
            "drain_respects_the_pdb_leaves_what_kubectl_drain_leaves_and_times_out_cleanly",
            drain,
        ),
        test(
            "a_node_job_is_subject_to_the_namespaces_pod_security",
            job_pod_security,
        ),
        test(
            "a_flapping_node_is_cordoned_then_gets_a_node_job",
            flapping_node_job,
        ),
        test(
            "a_crash_between_record_and_call_is_finished_once_after_restart",
            crash_after_record,
        ),
        test(
            "pods_of_a_node_that_stopped_posting_are_deleted_then_force_deleted_safely",
            lost_node,
        ),
    ]
}

/// A Deployment of `replicas` pods like `template` (a scenario pod), kept on the test's nodes.
fn deployment(ctx: &Ctx, ns: &str, name: &str, replicas: i32, template: Pod) -> anyhow::Result<Deployment> {
    let mut meta = template.metadata;
    meta.name = None;
    meta.namespace = None;
    meta.labels
        .get_or_insert_default()
        .insert("app".into(), name.into());
    let mut spec = template.spec.context("scenario pods have a spec")?;
    spec.node_name = None;
    spec.node_selector = Some(BTreeMap::from([(OWNER_LABEL.to_string(), ctx.id.clone())]));
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": meta, "spec": spec}},
    }))?)
}

async fn running_pods(pods: &Api<Pod>, app: &str) -> Result<Vec<Pod>, kube::Error> {
    let list = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
        .collect())
}

fn node_of(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

async fn reschedule(ctx: Ctx) -> anyhow::Result<()> {
    let op = Operator::start(
        &ctx.cluster,
        "reschedule",
        &["--policy-selector", &selector(&ctx)],
    )
    .await?;
    let (a, b) = (ctx.name("a"), ctx.name("b"));
    nodes::add_owned_nodes(&ctx.client, &[a.clone(), b.clone()], &ctx.id, HEAL).await?;
    let ns = ctx.namespace("rs").await?;
    let policy = ctx.name("mount");
    create_policy(
        &ctx,
        &policy,
        json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
        "conditions": [{"class": "EventPattern", "reason": "FailedMount", "for": "1s"}],
        "actions": [{"action": "Reschedule", "reschedule": {"avoidNode": true}}], "safety": limits()}),
    )
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let template = scenario_pod(&ns, "web", None, &Scenario::Running);
    deployments
        .create(
            &PostParams::default(),
            &deployment(&ctx, &ns, "web", 1, template)?,
        )
        .await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let first = wait::until("the web pod running", HEAL, || async {
        Ok(running_pods(&pods, "web").await?.into_iter().next())
    })
    .await?;
    let (name, bad_node) = (first.name_any(), node_of(&first));
    // The kubelet cannot mount its volume on this node.
    let events: Api<Event> = Api::namespaced(ctx.client.clone(), &ns);
    let event: Event = serde_json::from_value(json!({
        "metadata": {"generateName": format!("{name}.")},
        "involvedObject": {"kind": "Pod", "namespace": ns, "name": name, "uid": first.uid()},
        "reason": "FailedMount", "type": "Warning", "count": 1,
        "message": "MountVolume.SetUp failed for volume \"data\" : mount failed: exit status 32",
        "firstTimestamp": now_rfc3339(0), "lastTimestamp": now_rfc3339(0),
        "source": {"component": "kubelet", "host": bad_node},
    }))?;
    events.create(&PostParams::default(), &event).await?;

    let moved = wait::until("the replacement running on the other node", HEAL, || async {
        let running = running_pods(&pods, "web").await?;
        let old_left = pods.get_opt(&name).await?.is_some();
        Ok(running
            .into_iter()
            .find(|p| !old_left && p.name_any() != name && node_of(p) != bad_node))
    })
    .await;
    if let Err(e) = moved {
        anyhow::bail!("{e}; operator log:\n{}", op.log_tail(30));
    }
    let recs = records(&ctx, &policy, 1).await?;
    ensure!(recs.len() == 1, "{recs:#?}");
    let status = recs[0].status.as_ref().context("status")?;
    ensure!(
        phase_reason(&recs[0]) == (ActionPhase::Succeeded, "Completed".into()),
        "{status:?}"
    );
    let message = status.message.clone().unwrap_or_default();
    ensure!(
        message.contains("evicted") && message.contains(&format!("node {bad_node} avoided")),
        "{message}"
    );
    // The avoid taint: NoSchedule, with its expiry as the value.
    let node = Api::<Node>::all(ctx.client.clone()).get(&bad_node).await?;
    let taint = node
        .spec
        .and_then(|s| s.taints)
        .unwrap_or_default()
        .into_iter()
        .find(|t| t.key == kube_healer_api::AVOID_TAINT)
        .context("the avoid taint on the node")?;
    let until: i64 = taint.value.as_deref().unwrap_or_default().parse()?;
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    ensure!(
        taint.effect == "NoSchedule" && until > now + 500 && until <= now + 600,
        "{taint:?}"
    );
    Ok(())
}

async fn restart_owner(ctx: Ctx) -> anyhow::Result<()> {
    let _op = Operator::start(&ctx.cluster, "restart", &["--policy-selector", &selector(&ctx)]).await?;
    nodes::add_owned_nodes(&ctx.client, &[ctx.name("n")], &ctx.id, HEAL).await?;
    let ns = ctx.namespace("ro").await?;
    let policy = ctx.name("crashing");
    create_policy(
        &ctx,
        &policy,
        json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
        "conditions": [{"class": "CrashLoop", "for": "1s"}],
        "actions": [{"action": "RestartOwner"}],
        "safety": {"maxConcurrent": 5, "rate": {"actions": 10, "per": "1m"}, "cooldown": "10m"}}),
    )
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let template = scenario_pod(&ns, "api", None, &Scenario::crash_loop(7));
    deployments
        .create(
            &PostParams::default(),
            &deployment(&ctx, &ns, "api", 2, template)?,
        )
        .await?;
    // Both pods crash: two decisions, one restart.
    let recs = records(&ctx, &policy, 2).await?;
    let messages: Vec<String> = recs
        .iter()
        .map(|r| {
            r.status
                .as_ref()
                .and_then(|s| s.message.clone())
                .unwrap_or_default()
        })
        .collect();
    ensure!(
        recs.iter()
            .all(|r| phase_reason(r) == (ActionPhase::Succeeded, "Completed".into())),
        "{messages:?}"
    );
    let restarted = format!("restarted deployment/{ns}/api");
    ensure!(
        messages.iter().filter(|m| m.starts_with(&restarted)).count() == 1,
        "{messages:?}"
    );
    ensure!(
        messages.iter().any(|m| m.contains("already restarted")),
        "{messages:?}"
    );
    let d = deployments.get("api").await?;
    let annotations = d
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .unwrap_or_default();
    ensure!(
        annotations.contains_key("kubectl.kubernetes.io/restartedAt")
            && annotations
                .get(kube_healer_api::RESTARTED_BY_ANNOTATION)
                .is_some_and(|v| v.starts_with(&format!("{policy}@"))),
        "{annotations:?}"
    );
    Ok(())
}

async fn drain(ctx: Ctx) -> anyhow::Result<()> {
    let op = Operator::start(&ctx.cluster, "drain", &["--policy-selector", &selector(&ctx)]).await?;
    let node = ctx.name("oom");
    nodes::add_owned_nodes(&ctx.client, std::slice::from_ref(&node), &ctx.id, HEAL).await?;
    let ns = ctx.namespace("dn").await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    // A controller that no controller-manager loop runs (a ConfigMap): the pods count as managed
    // for the drain, and nothing adopts, releases or recreates them during the test.
    let owner = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner"}}))?,
        )
        .await?;
    let owned = |name: &str| -> anyhow::Result<Pod> {
        let mut pod = scenario_pod(&ns, name, Some(&node), &Scenario::Running);
        pod.metadata.owner_references = Some(vec![serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
            "uid": owner.metadata.uid.clone().context("uid")?, "controller": true}))?]);
        Ok(pod)
    };
    let free = owned("free")?;
    let mut guarded = owned("guarded")?;
    guarded
        .metadata
        .labels
        .get_or_insert_default()
        .insert("app".into(), "guarded".into());
    // What kubectl drain leaves by default, and a pod that opted out: none of them is evicted.
    let bare = scenario_pod(&ns, "bare", Some(&node), &Scenario::Running);
    let mut scratch = owned("scratch")?;
    scratch.spec.as_mut().context("spec")?.volumes = Some(vec![serde_json::from_value(
        json!({"name": "tmp", "emptyDir": {}}),
    )?]);
    let mut opted = owned("opted")?;
    opted
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(kube_healer_api::OPT_OUT_ANNOTATION.into(), "true".into());
    for pod in [free, guarded, bare, scratch, opted] {
        pods.create(&PostParams::default(), &pod).await?;
    }
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "guarded", "namespace": ns},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}}}))?;
    Api::<PodDisruptionBudget>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &pdb)
        .await?;
    let mut agent = scenario_pod(&ns, "agent", None, &Scenario::Running);
    agent.spec.as_mut().context("spec")?.node_selector = Some(BTreeMap::from([(
        "kubernetes.io/hostname".to_string(),
        node.clone(),
    )]));
    let agent_labels = json!({"app": "agent"});
    let mut agent_meta = serde_json::to_value(&agent.metadata)?;
    agent_meta["labels"]["app"] = json!("agent");
    agent_meta.as_object_mut().context("meta")?.remove("name");
    agent_meta.as_object_mut().context("meta")?.remove("namespace");
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "agent", "namespace": ns},
        "spec": {"selector": {"matchLabels": agent_labels}, "template": {"metadata": agent_meta, "spec": agent.spec}}}))?;
    Api::<DaemonSet>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &ds)
        .await?;
    for name in ["free", "guarded", "bare", "scratch", "opted"] {
        wait::pod_phase(&pods, name, "Running", HEAL).await?;
    }
    wait::until("the DaemonSet pod running", HEAL, || async {
        Ok(running_pods(&pods, "agent").await?.into_iter().next())
    })
    .await?;

    let policy = ctx.name("oomdrain");
    create_policy(
        &ctx,
        &policy,
        json!({"target": {"kind": "Node", "selector": {"matchLabels": {OWNER_LABEL: ctx.id}}},
        "conditions": [{"class": "SystemOOM", "for": "1s"}],
        "actions": [{"action": "Drain", "drain": {"timeout": "12s"}}],
        "safety": {"maxUnhealthy": "100%", "maxConcurrent": 1, "rate": {"actions": 5, "per": "1h"}}}),
    )
    .await?;
    node_event(
        &ctx.client,
        &node,
        "SystemOOM",
        "System OOM encountered, victim process: java, pid: 18212",
        3,
    )
    .await?;

    let recs = records(&ctx, &policy, 1).await;
    let recs = match recs {
        Ok(r) => r,
        Err(e) => anyhow::bail!("{e}; operator log:\n{}", op.log_tail(30)),
    };
    let status = recs[0].status.clone().context("status")?;
    let message = status.message.unwrap_or_default();
    ensure!(
        phase_reason(&recs[0]) == (ActionPhase::Failed, "Timeout".into()),
        "{message}"
    );
    ensure!(
        message.contains(&format!("{ns}/guarded"))
            && message.contains("evicted 1 of 2")
            && message.contains("1 DaemonSet")
            && message.contains("stays cordoned"),
        "{message}"
    );
    for (pod, why) in [
        ("bare", "no controller (force: true evicts it)"),
        ("scratch", "emptyDir data (deleteEmptyDirData: true evicts it)"),
        ("opted", "opted out"),
    ] {
        ensure!(
            message.contains(&format!("{why}: {ns}/{pod}")),
            "{pod} not named: {message}"
        );
        let left = pods.get(pod).await?;
        ensure!(left.metadata.deletion_timestamp.is_none(), "{pod} was evicted");
    }
    let n = Api::<Node>::all(ctx.client.clone()).get(&node).await?;
    ensure!(
        n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)
            && n.annotations().get(kube_healer_api::CORDONED_BY_ANNOTATION) == Some(&policy),
        "the node is not cordoned by the policy: {:?}",
        n.spec
    );
    let free_left = pods.get_opt("free").await?;
    ensure!(
        free_left.is_none_or(|p| p.metadata.deletion_timestamp.is_some()),
        "the unprotected pod was not evicted"
    );
    let guarded = pods.get("guarded").await?;
    ensure!(
        guarded.metadata.deletion_timestamp.is_none(),
        "the PDB-protected pod was evicted"
    );
    ensure!(
        !running_pods(&pods, "agent").await?.is_empty(),
        "the DaemonSet pod was evicted"
    );
    Ok(())
}

async fn flapping_node_job(ctx: Ctx) -> anyhow::Result<()> {
    let op = Operator::start(&ctx.cluster, "job", &["--policy-selector", &selector(&ctx)]).await?;
    let node = ctx.name("flap");
    nodes::add_owned_nodes(&ctx.client, std::slice::from_ref(&node), &ctx.id, HEAL).await?;
    let ns = ctx.namespace("job").await?;
    let policy = ctx.name("nightly");
    create_policy(&ctx, &policy, json!({"target": {"kind": "Node", "selector": {"matchLabels": {OWNER_LABEL: ctx.id}}},
        "conditions": [{"class": "NodeFlapping", "for": "1s"}],
        "actions": [{"action": "Cordon", "escalateAfter": "1s"},
            {"action": "RunJob", "runJob": {"namespace": ns, "activeDeadlineSeconds": 120,
             "podSpec": {"containers": [{"name": "restart-runtime", "image": "registry.example/node-tools:1.0",
                "command": ["sh", "-c", "systemctl restart containerd"]}]}}}],
        "safety": {"maxUnhealthy": "100%", "cooldown": "1s", "maxConcurrent": 2, "rate": {"actions": 5, "per": "1m"}}})).await?;
    for (reason, count) in [("NodeNotReady", 2), ("NodeReady", 2)] {
        let message = format!("Node {node} status is now: {reason}");
        node_event(&ctx.client, &node, reason, &message, count).await?;
    }
    let recs = match records(&ctx, &policy, 2).await {
        Ok(r) => r,
        Err(e) => anyhow::bail!("{e}; operator log:\n{}", op.log_tail(30)),
    };
    let mut outcomes: Vec<(String, ActionPhase, String)> = recs
        .iter()
        .map(|r| {
            (
                r.spec.action.to_string(),
                phase_reason(r).0,
                r.status
                    .as_ref()
                    .and_then(|s| s.message.clone())
                    .unwrap_or_default(),
            )
        })
        .collect();
    outcomes.sort_by(|a, b| a.0.cmp(&b.0));
    ensure!(
        outcomes.len() == 2
            && outcomes[0].0 == "Cordon"
            && outcomes[0].1 == ActionPhase::Succeeded
            && outcomes[1].0 == "RunJob"
            && outcomes[1].1 == ActionPhase::Succeeded
            && outcomes[1].2.contains("completed"),
        "{outcomes:?}"
    );
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let list = jobs
        .list(&ListParams::default().labels(&format!("{}={node}", kube_healer_api::NODE_LABEL)))
        .await?;
    ensure!(list.items.len() == 1, "one Job: {}", list.items.len());
    let spec = list.items[0]
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .context("pod spec")?;
    ensure!(
        spec.node_name.as_deref() == Some(node.as_str()) && spec.restart_policy.as_deref() == Some("Never"),
        "{spec:?}"
    );
    let n = Api::<Node>::all(ctx.client.clone()).get(&node).await?;
    ensure!(n.spec.and_then(|s| s.unschedulable) == Some(true), "not cordoned");
    Ok(())
}

/// RunJob creates a Job, whose pods the Job controller creates: they pass the namespace's Pod
/// Security admission like any pod. A privileged node job in a namespace enforcing the restricted
/// profile never runs, and the record says it failed.
async fn job_pod_security(ctx: Ctx) -> anyhow::Result<()> {
    let _op = Operator::start(&ctx.cluster, "psa", &["--policy-selector", &selector(&ctx)]).await?;
    let node = ctx.name("flap");
    nodes::add_owned_nodes(&ctx.client, std::slice::from_ref(&node), &ctx.id, HEAL).await?;
    let ns = ctx.namespace("psa").await?;
    kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(ctx.client.clone())
        .patch(
            &ns,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}),
            ),
        )
        .await?;
    let policy = ctx.name("privileged");
    create_policy(&ctx, &policy, json!({"target": {"kind": "Node", "selector": {"matchLabels": {OWNER_LABEL: ctx.id}}},
        "conditions": [{"class": "NodeFlapping", "for": "1s"}],
        "actions": [{"action": "RunJob", "runJob": {"namespace": ns, "activeDeadlineSeconds": 10,
             "podSpec": {"hostPID": true, "containers": [{"name": "nsenter", "image": "registry.example/node-tools:1.0",
                "securityContext": {"privileged": true}, "command": ["nsenter", "-t", "1", "-m", "--", "true"]}]}}}],
        "safety": {"maxUnhealthy": "100%", "maxConcurrent": 1, "rate": {"actions": 5, "per": "1m"}}})).await?;
    for (reason, count) in [("NodeNotReady", 2), ("NodeReady", 2)] {
        let message = format!("Node {node} status is now: {reason}");
        node_event(&ctx.client, &node, reason, &message, count).await?;
    }
    let recs = records(&ctx, &policy, 1).await?;
    ensure!(
        phase_reason(&recs[0]).0 == ActionPhase::Failed,
        "a job refused by Pod Security cannot succeed: {:?}",
        recs[0].status
    );
    let events: Api<Event> = Api::namespaced(ctx.client.clone(), &ns);
    let refusals: Vec<String> = events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("FailedCreate"))
        .filter_map(|e| e.message)
        .collect();
    ensure!(
        refusals.iter().any(|m| m.contains("PodSecurity")),
        "the Job controller's pods were refused by Pod Security: {refusals:?}"
    );
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    ensure!(
        pods.list(&ListParams::default()).await?.items.is_empty(),
        "a privileged pod ran"
    );
    println!(
        "    recorded: {:?}",
        recs[0].status.as_ref().and_then(|s| s.message.clone())
    );
    Ok(())
}

async fn crash_after_record(ctx: Ctx) -> anyhow::Result<()> {
    let node = ctx.name("n");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("cr").await?;
    let policy = ctx.name("crash");
    create_policy(&ctx, &policy, json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
        "conditions": [{"class": "Evicted", "for": "1s"}], "actions": [{"action": "Delete"}], "safety": limits()})).await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let first = Operator::start_with_env(
        &ctx.cluster,
        "crashing",
        &["--policy-selector", &selector(&ctx)],
        &[("KUBE_HEALER_FAILPOINT", "after-record")],
    )
    .await?;
    pods.create(
        &PostParams::default(),
        &scenario_pod(&ns, "leftover", Some(&node), &Scenario::evicted()),
    )
    .await?;
    first.wait_log(&["failpoint reached"], HEAL).await?;
    drop(first);
    let api: Api<kube_healer_api::HealingAction> = Api::all(ctx.client.clone());
    let lp = ListParams::default().labels(&format!("{}={policy}", kube_healer_api::POLICY_LABEL));
    let recorded = api.list(&lp).await?.items;
    ensure!(
        recorded.len() == 1 && recorded[0].status.is_none(),
        "one record, without a status: {recorded:#?}"
    );
    ensure!(
        pods.get_opt("leftover").await?.is_some(),
        "the pod was deleted before the crash"
    );

    let second = Operator::start(
        &ctx.cluster,
        "after-crash",
        &["--policy-selector", &selector(&ctx)],
    )
    .await?;
    second
        .wait_log(&["not finished before a restart: finishing it"], HEAL)
        .await?;
    wait::until("the leftover pod to be gone", HEAL, || async {
        Ok(pods.get_opt("leftover").await?.is_none().then_some(()))
    })
    .await?;
    let recs = records(&ctx, &policy, 1).await?;
    ensure!(recs.len() == 1, "recorded twice: {recs:#?}");
    ensure!(
        phase_reason(&recs[0]) == (ActionPhase::Succeeded, "Completed".into()),
        "{:?}",
        recs[0].status
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(
        api.list(&lp).await?.items.len() == 1,
        "a second decision was recorded"
    );
    Ok(())
}

async fn lost_node(ctx: Ctx) -> anyhow::Result<()> {
    let op = Operator::start(&ctx.cluster, "lost", &["--policy-selector", &selector(&ctx)]).await?;
    let (dead, spare) = (ctx.name("dead"), ctx.name("spare"));
    nodes::add_owned_nodes(&ctx.client, std::slice::from_ref(&dead), &ctx.id, HEAL).await?;
    let ns = ctx.namespace("ln").await?;
    let policy = ctx.name("lost");
    // Delete first (the pod's grace period: 5 s), then ForceDelete once past its deletionTimestamp.
    create_policy(
        &ctx,
        &policy,
        json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
        "conditions": [{"class": "NodeLost", "for": "1s"}],
        "actions": [{"action": "Delete", "escalateAfter": "6s"}, {"action": "ForceDelete"}],
        "safety": {"cooldown": "1s", "maxConcurrent": 5, "rate": {"actions": 10, "per": "1m"}}}),
    )
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let template = scenario_pod(&ns, "web", None, &Scenario::Running);
    deployments
        .create(
            &PostParams::default(),
            &deployment(&ctx, &ns, "web", 1, template)?,
        )
        .await?;
    let db = deployment(
        &ctx,
        &ns,
        "db",
        1,
        scenario_pod(&ns, "db", None, &Scenario::Running),
    )?;
    let mut db = serde_json::to_value(db)?;
    db["spec"]["serviceName"] = json!("db");
    db["kind"] = json!("StatefulSet");
    let db: StatefulSet = serde_json::from_value(db)?;
    Api::<StatefulSet>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &db)
        .await?;
    // A Deployment whose pod holds a ReadWriteOnce claim (a hostPath volume, bound by the
    // controller-manager's binder): force-deleted only once its node is fenced.
    let volume = format!("{ns}-data");
    let pv: PersistentVolume = serde_json::from_value(json!({"metadata": {"name": volume},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
            "hostPath": {"path": "/var/lib/data"}, "claimRef": {"namespace": ns, "name": "data"}}}))?;
    Api::<PersistentVolume>::all(ctx.client.clone())
        .create(&PostParams::default(), &pv)
        .await?;
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({"metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": volume,
            "resources": {"requests": {"storage": "1Gi"}}}}))?;
    Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &pvc)
        .await?;
    let mut vol = scenario_pod(&ns, "vol", None, &Scenario::Running);
    vol.spec.as_mut().context("spec")?.volumes = Some(vec![serde_json::from_value(
        json!({"name": "data", "persistentVolumeClaim": {"claimName": "data"}}),
    )?]);
    deployments
        .create(&PostParams::default(), &deployment(&ctx, &ns, "vol", 1, vol)?)
        .await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let (web, vol) = wait::until("web, db and vol running", HEAL, || async {
        let web = running_pods(&pods, "web").await?;
        let db = running_pods(&pods, "db").await?;
        let vol = running_pods(&pods, "vol").await?;
        let both = web.into_iter().next().zip(vol.into_iter().next());
        Ok((!db.is_empty()).then_some(both).flatten())
    })
    .await?;
    // A second node for the replacement, then the kubelet of the first one stops posting.
    nodes::add_owned_nodes(&ctx.client, std::slice::from_ref(&spare), &ctx.id, HEAL).await?;
    nodes::stop_heartbeats(&ctx.client, &dead).await?;

    let replaced = wait::until(
        "web replaced on the spare node",
        Duration::from_secs(90),
        || async {
            let old_gone = pods.get_opt(&web.name_any()).await?.is_none();
            let running = running_pods(&pods, "web").await?;
            Ok((old_gone && running.iter().any(|p| node_of(p) == spare)).then_some(()))
        },
    )
    .await;
    if let Err(e) = replaced {
        anyhow::bail!("{e}; operator log:\n{}", op.log_tail(30));
    }
    let recs = records(&ctx, &policy, 6).await?;
    let mut got: Vec<(String, String, ActionPhase, String)> = recs
        .iter()
        .map(|r| {
            let (phase, reason) = phase_reason(r);
            let pod = r
                .spec
                .target
                .name
                .split('-')
                .next()
                .unwrap_or_default()
                .to_string();
            (pod, r.spec.action.to_string(), phase, reason)
        })
        .collect();
    got.sort_by_key(|o| format!("{o:?}"));
    let expected = [
        ("db", "Delete", ActionPhase::Succeeded, "Completed"),
        ("db", "ForceDelete", ActionPhase::Skipped, "Unsafe"),
        ("vol", "Delete", ActionPhase::Succeeded, "Completed"),
        ("vol", "ForceDelete", ActionPhase::Skipped, "Unsafe"),
        ("web", "Delete", ActionPhase::Succeeded, "Completed"),
        ("web", "ForceDelete", ActionPhase::Succeeded, "Completed"),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(p, a, ph, r)| (p.to_string(), a.to_string(), *ph, r.to_string()))
        .collect();
    ensure!(got == expected, "{got:#?}");
    // The StatefulSet pod stays (Terminating) until its node is confirmed gone: two pods with
    // one identity must never run at once.
    let db_pod = pods.get_opt("db-0").await?;
    ensure!(
        db_pod.is_some_and(|p| p.metadata.deletion_timestamp.is_some()),
        "the StatefulSet pod was force-deleted while its node may still run it"
    );
    // So does the pod with the claim, and its record names the fencing it waits for.
    let vol_name = vol.name_any();
    let held = pods.get_opt(&vol_name).await?;
    ensure!(
        held.is_some_and(|p| p.metadata.deletion_timestamp.is_some()),
        "the pod with a ReadWriteOnce claim was force-deleted on an unfenced node"
    );
    let unsafe_message = recs
        .iter()
        .filter(|r| r.spec.target.name == vol_name && phase_reason(r).1 == "Unsafe")
        .find_map(|r| r.status.as_ref()?.message.clone())
        .unwrap_or_default();
    ensure!(
        unsafe_message.contains("PersistentVolumeClaim")
            && unsafe_message.contains("node.kubernetes.io/out-of-service"),
        "{unsafe_message}"
    );

    // Fenced: the out-of-service taint (non-graceful node shutdown) lets both go.
    Api::<Node>::all(ctx.client.clone())
        .patch(
            &dead,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": [
            {"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}]}})),
        )
        .await?;
    wait::until("db-0 and the old vol pod gone once fenced", HEAL, || async {
        let db_left = pods.get_opt("db-0").await?.is_some_and(|p| node_of(&p) == dead);
        let vol_left = pods.get_opt(&vol_name).await?.is_some();
        Ok((!db_left && !vol_left).then_some(()))
    })
    .await?;
    // kube-healer force-deleted them (or, racing it, PodGC did: the record then reads TargetGone).
    let recs = records(&ctx, &policy, 6).await?;
    let failed: Vec<_> = recs
        .iter()
        .filter(|r| phase_reason(r).0 == ActionPhase::Failed)
        .collect();
    ensure!(failed.is_empty(), "{failed:#?}");
    Ok(())
}
