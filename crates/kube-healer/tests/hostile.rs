//! Hostile and unexpected input on the real API server: a HealingPolicy stored under a looser
//! schema than the one in force (as after a CRD upgrade) that the operator cannot read, a selector
//! with a huge label value, unicode and very large objects, a megabyte condition message, and
//! thousands of policies. None may stop a watch or the operator; each bad policy is refused in its
//! status with the reason. Its own cluster: the first test loosens the HealingPolicy CRD for a
//! moment.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube_healer_api::HealingPolicy;
use kube_healer_testenv::harness::{Ctx, test};
use kube_healer_testenv::{ClusterOptions, Scenario, nodes, scenario_pod, wait};
use serde_json::json;
use support::{HEAL, Operator, create_policy, records, selector};

fn main() -> std::process::ExitCode {
    kube_healer_testenv::harness::run(
        ClusterOptions::default(),
        vec![
            test(
                "a_policy_the_operator_cannot_read_is_refused_and_stops_nothing",
                unreadable_policy,
            ),
            test("huge_and_unicode_values_are_handled", huge_and_unicode),
            test(
                "a_failure_with_a_megabyte_message_is_still_recorded",
                megabyte_message,
            ),
            test("thousands_of_policies_are_handled", thousands).ignored(),
        ],
    )
}

/// A policy's status condition messages (read as plain JSON: the policy may not fit its type).
async fn condition_messages(ctx: &Ctx, name: &str) -> anyhow::Result<Vec<String>> {
    let api: Api<DynamicObject> =
        Api::all_with(ctx.client.clone(), &ApiResource::erase::<HealingPolicy>(&()));
    let policy = api.get(name).await?;
    let conditions = policy.data["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok(conditions
        .iter()
        .map(|c| {
            let text = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            format!(
                "{} {} {}: {}",
                text("type"),
                text("status"),
                text("reason"),
                text("message")
            )
        })
        .collect())
}

async fn wait_condition(ctx: &Ctx, name: &str, part: &str) -> anyhow::Result<Vec<String>> {
    wait::until(&format!("{name}'s status to say {part:?}"), HEAL, || async {
        let messages = condition_messages(ctx, name).await.unwrap_or_default();
        Ok(messages.iter().any(|m| m.contains(part)).then_some(messages))
    })
    .await
    .map_err(Into::into)
}

async fn deleted(ctx: &Ctx, ns: &str, name: &str) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    wait::until(&format!("{ns}/{name} deleted"), HEAL, || async {
        Ok(pods.get_opt(name).await?.is_none().then_some(()))
    })
    .await?;
    Ok(())
}

async fn unreadable_policy(ctx: Ctx) -> anyhow::Result<()> {
    let mut op = Operator::start(
        &ctx.cluster,
        "unreadable",
        &["--policy-selector", &selector(&ctx)],
    )
    .await?;
    let node = ctx.name("n");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("ur").await?;
    let good = ctx.name("good");
    create_policy(
        &ctx,
        &good,
        json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
        "conditions": [{"class": "Evicted", "for": "1s"}], "actions": [{"action": "Delete"}], "safety": support::limits()}),
    )
    .await?;

    // An older, looser schema admits a spec the operator's type cannot read; the strict schema
    // comes back, and the stored object stays as it was.
    let strict = <kube_healer_api::HealingPolicy as kube::CustomResourceExt>::crd();
    let mut loose = strict.clone();
    let version = &mut loose.spec.versions[0];
    let schema = version
        .schema
        .as_mut()
        .and_then(|s| s.open_api_v3_schema.as_mut())
        .context("the CRD's schema")?;
    schema.x_kubernetes_validations = None;
    let properties = schema.properties.as_mut().context("schema properties")?;
    properties.insert(
        "spec".into(),
        serde_json::from_value(json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}))?,
    );
    kube_healer_testenv::crds::install(&ctx.client, &[loose]).await?;
    let broken = ctx.name("broken");
    let api: Api<DynamicObject> =
        Api::all_with(ctx.client.clone(), &ApiResource::erase::<HealingPolicy>(&()));
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": broken, "labels": {"kube-healer.test/owner": ctx.id}},
        "spec": {"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
            "conditions": [{"class": "Evicted", "for": "1s"}], "actions": [{"action": "Reboot"}]},
    }))?;
    // The API server may still serve the strict schema for a moment after the update.
    wait::until(
        "the loose schema to admit the policy",
        Duration::from_secs(20),
        || async { Ok(api.create(&PostParams::default(), &object).await.ok().map(|_| ())) },
    )
    .await?;
    kube_healer_testenv::crds::install(&ctx.client, &[strict]).await?;

    let messages = wait_condition(&ctx, &broken, "cannot be read").await?;
    println!("    the unreadable policy's status: {messages:?}");
    ensure!(
        messages.iter().any(|m| m.contains("spec.actions[0].action")),
        "the status names the field: {messages:?}"
    );
    // The watch goes on: the good policy still heals.
    support::evicted_pod(&ctx, &ns, "after-broken", &node).await?;
    deleted(&ctx, &ns, "after-broken").await?;

    // A fresh start lists the unreadable policy among the others and still syncs.
    drop(op);
    op = Operator::start(
        &ctx.cluster,
        "unreadable-2",
        &["--policy-selector", &selector(&ctx)],
    )
    .await?;
    support::evicted_pod(&ctx, &ns, "after-restart", &node).await?;
    deleted(&ctx, &ns, "after-restart").await?;
    ensure!(
        op.log().contains("policy cannot be read"),
        "the restarted operator logs the refusal"
    );
    Api::<HealingPolicy>::all(ctx.client.clone())
        .delete(&broken, &Default::default())
        .await?;
    Ok(())
}

async fn huge_and_unicode(ctx: Ctx) -> anyhow::Result<()> {
    let _op = Operator::start(&ctx.cluster, "hostile", &["--policy-selector", &selector(&ctx)]).await?;
    let node = ctx.name("n");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("hu").await?;

    // A selector no label can match: a value of 10,000 characters (labels hold 63).
    let huge = ctx.name("huge");
    let created = create_policy(
        &ctx,
        &huge,
        json!({"target": {"kind": "Pod", "selector": {"matchLabels": {"app": "x".repeat(10_000)}}},
        "conditions": [{"class": "Evicted", "for": "1s"}], "actions": [{"action": "Delete"}], "safety": support::limits()}),
    )
    .await;
    match created {
        Err(e) => println!("    a 10,000-character label value is refused at admission: {e}"),
        Ok(()) => {
            let messages = wait_condition(&ctx, &huge, "Invalid True").await?;
            ensure!(
                messages.iter().any(|m| m.contains("63 characters")),
                "the refusal says why: {messages:?}"
            );
            println!("    a 10,000-character label value is refused: {messages:?}");
        }
    }

    // A pod with unicode in its name's annotations and messages, and 200 KB of annotations.
    let policy = ctx.name("unicode");
    create_policy(
        &ctx,
        &policy,
        json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
        "conditions": [{"class": "Evicted", "for": "1s"}], "actions": [{"action": "Delete"}], "safety": support::limits()}),
    )
    .await?;
    let message = "Évincé : нехватка памяти 💥 ".repeat(200);
    let mut pod = scenario_pod(
        &ns,
        "unicode",
        Some(&node),
        &Scenario::Failed {
            reason: "Evicted".into(),
            message: message.clone(),
        },
    );
    let annotations = pod.metadata.annotations.get_or_insert_default();
    annotations.insert("example.com/big".into(), "é".repeat(100_000));
    annotations.insert("example.com/emoji".into(), "🚑".repeat(1000));
    Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &pod)
        .await?;
    deleted(&ctx, &ns, "unicode").await?;
    let recs = records(&ctx, &policy, 1).await?;
    let summary = &recs[0].spec.evidence.summary;
    println!("    record evidence: {} characters", summary.chars().count());
    ensure!(
        summary.contains("нехватка"),
        "the evidence keeps the message: {summary}"
    );
    Ok(())
}

/// A node condition whose message is a megabyte (node-problem-detector quoting a kernel log, say):
/// its evidence, copied as it was into the record twice (summary and condition), would make a
/// record over etcd's 1.5 MiB request limit, refused at every decision. Bounded, it is written.
async fn megabyte_message(ctx: Ctx) -> anyhow::Result<()> {
    let _op = Operator::start(&ctx.cluster, "megabyte", &["--policy-selector", &selector(&ctx)]).await?;
    let node = ctx.name("mb");
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let object: Node = serde_json::from_value(
        json!({"metadata": {"name": node, "labels": {"kube-healer.test/node": node}}}),
    )?;
    nodes.create(&PostParams::default(), &object).await?;
    let message = "kernel: BUG: soft lockup ".repeat(40_000);
    let conditions = json!([
        support::ready("True", "kubelet is posting ready status"),
        {"type": "KernelDeadlock", "status": "True", "reason": "DockerHung", "message": message,
            "lastTransitionTime": support::now_rfc3339(-120), "lastHeartbeatTime": support::now_rfc3339(0)},
    ]);
    nodes
        .patch_status(
            &node,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": conditions}})),
        )
        .await?;
    let policy = ctx.name("deadlock");
    create_policy(
        &ctx,
        &policy,
        json!({"target": {"kind": "Node", "selector": {"matchLabels": {"kube-healer.test/node": node}}},
        "conditions": [{"class": "NodeCondition", "conditionType": "KernelDeadlock", "for": "1s"}], "actions": [{"action": "Event"}], "safety": support::limits()}),
    )
    .await?;
    let recs = records(&ctx, &policy, 1).await?;
    let record = &recs[0];
    let size = serde_json::to_string(record)?.len();
    println!("    a {}-byte message: record of {size} bytes", message.len());
    ensure!(
        support::phase_reason(record).0 == kube_healer_api::record::ActionPhase::Succeeded,
        "{:?}",
        record.status
    );
    ensure!(
        record.spec.evidence.summary.contains("[cut: "),
        "the cut is marked"
    );
    ensure!(size < 256 * 1024, "{size} bytes");
    Ok(())
}

async fn thousands(ctx: Ctx) -> anyhow::Result<()> {
    const POLICIES: usize = 2000;
    let op = Operator::start(&ctx.cluster, "thousands", &["--policy-selector", &selector(&ctx)]).await?;
    let node = ctx.name("n");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("th").await?;
    let t = Instant::now();
    let names: Vec<String> = (0..POLICIES).map(|i| ctx.name(&format!("p{i:04}"))).collect();
    // The CRDs are in (the operator installed them): create the policies side by side.
    let api: Api<HealingPolicy> = Api::all(ctx.client.clone());
    futures::future::try_join_all(names.chunks(100).enumerate().map(|(chunk, names)| {
        let (api, ns, id) = (api.clone(), ns.clone(), ctx.id.clone());
        async move {
            for (j, name) in names.iter().enumerate() {
                let i = chunk * 100 + j;
                let policy: HealingPolicy = serde_json::from_value(json!({
                    "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
                    "metadata": {"name": name, "labels": {"kube-healer.test/owner": id}},
                    "spec": {"target": {"kind": "Pod", "namespaces": {"include": [ns]},
                        "selector": {"matchLabels": {"app": format!("app-{i}")}}},
                        "conditions": [{"class": "Evicted", "for": "1s"}], "actions": [{"action": "Delete"}],
                        "safety": support::limits()}}))?;
                api.create(&PostParams::default(), &policy).await?;
            }
            anyhow::Ok(())
        }
    }))
    .await?;
    println!(
        "    {POLICIES} policies created in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // Every policy's status is written by the operator.
    let t = Instant::now();
    wait::until("every policy's status", Duration::from_secs(180), || async {
        let list = api.list(&ListParams::default().labels(&selector(&ctx))).await?;
        let ready = list.items.iter().filter(|p| p.status.is_some()).count();
        Ok((ready >= POLICIES).then_some(()))
    })
    .await?;
    println!(
        "    every status written {:.1} s later",
        t.elapsed().as_secs_f64()
    );
    // One failing pod: exactly the one policy that selects it acts.
    let mut pod = scenario_pod(&ns, "one", Some(&node), &Scenario::evicted());
    pod.metadata
        .labels
        .get_or_insert_default()
        .insert("app".into(), "app-1234".into());
    let t = Instant::now();
    Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &pod)
        .await?;
    deleted(&ctx, &ns, "one").await?;
    println!(
        "    the pod deleted {:.1} s after it was created",
        t.elapsed().as_secs_f64()
    );
    let recs = records(&ctx, &names[1234], 1).await?;
    ensure!(recs.len() == 1, "one record of the selecting policy");
    let rss = std::fs::read_to_string(format!("/proc/{}/status", op.pid()))?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .map(str::to_string)
        .unwrap_or_default();
    println!("    operator with {POLICIES} policies: {rss}");
    Ok(())
}
