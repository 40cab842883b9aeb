//! A pod's lifecycle timeline on the real cluster. The pod's container goes from
//! ContainerCreating to ErrImagePull, ImagePullBackOff, ErrImagePull and ImagePullBackOff again,
//! written as its kubelet would write them, and the kubelet's Failed event is posted. The object
//! keeps only its last state; the operator's record of the decision carries the whole story, in
//! order, with the event, and `kube-healer explain` prints it.

use std::time::Duration;

use anyhow::ensure;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube_healer_testenv::harness::{Ctx, E2eTest, test};
use kube_healer_testenv::{Scenario, nodes, scenario_pod, wait};
use serde_json::json;

use crate::support;
use support::{HEAL, Operator, create_policy, now_rfc3339, records, selector};

/// This file's tests, run on the shared cluster by main.rs.
pub fn tests() -> Vec<E2eTest> {
    vec![test(
        "a_record_and_explain_tell_the_pods_story_the_object_no_longer_shows",
        timeline,
    )]
}

/// The container's waiting reasons, in the order the test writes them.
const STORY: [&str; 5] = [
    "ContainerCreating",
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrImagePull",
    "ImagePullBackOff",
];

async fn timeline(ctx: Ctx) -> anyhow::Result<()> {
    let _op = Operator::start(&ctx.cluster, "timeline", &["--policy-selector", &selector(&ctx)]).await?;
    let node = ctx.name("n");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("tl").await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let waiting = Scenario::ContainerWaiting {
        reason: STORY[0].into(),
        message: String::new(),
        restarts: 0,
    };
    pods.create(
        &PostParams::default(),
        &scenario_pod(&ns, "web", Some(&node), &waiting),
    )
    .await?;
    // kwok writes the first state once; the rest is the test's, as the kubelet's would be.
    let pod = wait::until("kwok to start the pod", HEAL, || async {
        let pod = pods.get("web").await?;
        Ok(pod.status.as_ref().and_then(|s| s.pod_ip.clone()).map(|_| pod))
    })
    .await?;
    for reason in &STORY[1..] {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        pods.patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"containerStatuses": [{"name": "app", "image": "registry.example/app:1.0",
                "imageID": "", "ready": false, "restartCount": 0, "started": false,
                "state": {"waiting": {"reason": reason, "message": format!("{reason}: registry.example/app:1.0")}}}]}})),
        )
        .await?;
    }
    let events: Api<Event> = Api::namespaced(ctx.client.clone(), &ns);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let event: Event = serde_json::from_value(json!({
        "metadata": {"generateName": "web."},
        "involvedObject": {"kind": "Pod", "namespace": ns, "name": "web", "uid": uid},
        "reason": "Failed", "message": "Failed to pull image \"registry.example/app:1.0\": not found",
        "count": 2, "type": "Warning", "firstTimestamp": now_rfc3339(-4), "lastTimestamp": now_rfc3339(0),
        "source": {"component": "kubelet", "host": node},
    }))?;
    events.create(&PostParams::default(), &event).await?;
    // The policy only once the whole story is written: however slow the writes, the decision
    // comes after them (the operator keeps a troubled pod's timeline with or without a policy).
    let policy = ctx.name("pull");
    create_policy(
        &ctx,
        &policy,
        json!({"target": {"kind": "Pod", "namespaces": {"include": [ns]}},
        "conditions": [{"class": "ImagePullFailure", "for": "8s"}], "actions": [{"action": "Event"}],
        "safety": support::limits()}),
    )
    .await?;

    let recs = records(&ctx, &policy, 1).await?;
    let timeline = &recs[0].spec.evidence.timeline;
    let said: Vec<String> = timeline
        .iter()
        .map(|m| format!("{}: {}", m.kind, m.detail))
        .collect();
    let waits: Vec<&str> = timeline
        .iter()
        .filter_map(|m| m.detail.strip_prefix("container app waiting: "))
        .collect();
    ensure!(waits == STORY, "the record's timeline: {said:#?}");
    ensure!(
        said.iter().any(|s| s.starts_with("event: Failed (x2, last ")),
        "the kubelet's event in the timeline: {said:#?}"
    );
    ensure!(
        timeline.windows(2).all(|w| w[0].at.0 <= w[1].at.0),
        "oldest first: {said:#?}"
    );
    // The object itself shows only the last state.
    let now = pods.get("web").await?;
    let shown = serde_json::to_string(&now.status)?;
    ensure!(shown.matches("ErrImagePull").count() == 0, "{shown}");

    // `kube-healer explain` prints the story: the object's, its events and its records'.
    let text = support::explain(&ctx, &format!("pod/{ns}/web"))?;
    let section: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("timeline"))
        .take_while(|l| !l.is_empty())
        .collect();
    let told: Vec<&str> = section
        .iter()
        .filter_map(|l| l.split("container app waiting: ").nth(1).map(str::trim))
        .collect();
    ensure!(told == STORY, "explain's timeline:\n{text}");
    ensure!(
        section.iter().any(|l| l.contains("Failed (x2")),
        "explain's timeline has the event:\n{text}"
    );
    Ok(())
}
