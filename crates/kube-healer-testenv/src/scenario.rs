//! Scenario pods: pods that kwok drives into a chosen failure through the repository's stages.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use kube::api::ObjectMeta;

/// The scenario stages (stages/scenarios.yaml), loaded by kwok next to its stock stages.
pub const SCENARIO_STAGES: &str = include_str!("../stages/scenarios.yaml");

pub const SCENARIO_LABEL: &str = "scenario.kube-healer.test/name";
const REASON: &str = "scenario.kube-healer.test/reason";
const MESSAGE: &str = "scenario.kube-healer.test/message";
const RESTARTS: &str = "scenario.kube-healer.test/restarts";
const EXIT_CODE: &str = "scenario.kube-healer.test/exit-code";
const LAST_MESSAGE: &str = "scenario.kube-healer.test/last-message";

/// The stock pod stages whose weight a scenario pod sets to 0 so that the scenario stage wins.
const STOCK_POD_STAGES: &[&str] = &[
    "pod-create",
    "pod-ready",
    "pod-complete",
    "pod-init-container-running",
    "pod-init-container-completed",
];

/// What kwok makes of the pod.
#[derive(Clone, Debug)]
pub enum Scenario {
    /// Running and Ready, without the stock stages' random delays.
    Running,
    /// Running; when deleted it stays Terminating for ever (as if runc init hung in D state).
    StuckTerminating,
    /// Running, its containers started and not ready (a readiness probe failing them); the
    /// kubelet's Unhealthy events are the test's to post.
    Unready,
    /// Pending with every container waiting with this reason and message
    /// (ImagePullBackOff, ContainerCreating, CrashLoopBackOff, RunContainerError, ...).
    ContainerWaiting {
        reason: String,
        message: String,
        restarts: u32,
    },
    /// Waiting in CrashLoopBackOff after `restarts` restarts, each container last ended with
    /// `exit_code` and `message` (its termination message: what it said as it died).
    CrashLoop {
        restarts: u32,
        exit_code: i32,
        message: String,
    },
    /// phase Failed with this pod-level reason and message (Evicted, OutOfcpu, ...).
    Failed { reason: String, message: String },
}

impl Scenario {
    pub fn image_pull_backoff(image: &str) -> Self {
        Scenario::ContainerWaiting {
            reason: "ImagePullBackOff".into(),
            message: format!("Back-off pulling image \"{image}\""),
            restarts: 0,
        }
    }

    pub fn crash_loop(restarts: u32) -> Self {
        Scenario::ContainerWaiting {
            reason: "CrashLoopBackOff".into(),
            message: "back-off 5m0s restarting failed container=app".into(),
            restarts,
        }
    }

    pub fn evicted() -> Self {
        Scenario::Failed {
            reason: "Evicted".into(),
            message: "The node was low on resource: memory. Threshold quantity: 100Mi, available: 52Mi."
                .into(),
        }
    }

    fn stage(&self) -> &'static str {
        match self {
            Scenario::Running => "running",
            Scenario::StuckTerminating => "stuck-terminating",
            Scenario::Unready => "unready",
            Scenario::ContainerWaiting { .. } | Scenario::CrashLoop { .. } => "container-waiting",
            Scenario::Failed { .. } => "pod-failed",
        }
    }
}

/// A pod that kwok drives into `scenario`. `node` binds it directly (no scheduling); `None` leaves
/// it to kube-scheduler.
pub fn scenario_pod(namespace: &str, name: &str, node: Option<&str>, scenario: &Scenario) -> Pod {
    let mut annotations: BTreeMap<String, String> = STOCK_POD_STAGES
        .iter()
        .map(|s| (format!("{s}.stage.kwok.x-k8s.io/weight"), "0".to_string()))
        .collect();
    match scenario {
        Scenario::StuckTerminating => {
            annotations.insert("pod-delete.stage.kwok.x-k8s.io/weight".into(), "0".into());
        }
        Scenario::ContainerWaiting {
            reason,
            message,
            restarts,
        } => {
            annotations.insert(REASON.into(), reason.clone());
            annotations.insert(MESSAGE.into(), message.clone());
            annotations.insert(RESTARTS.into(), restarts.to_string());
        }
        Scenario::CrashLoop {
            restarts,
            exit_code,
            message,
        } => {
            annotations.insert(REASON.into(), "CrashLoopBackOff".into());
            annotations.insert(
                MESSAGE.into(),
                "back-off 5m0s restarting failed container=app".into(),
            );
            annotations.insert(RESTARTS.into(), restarts.to_string());
            annotations.insert(EXIT_CODE.into(), exit_code.to_string());
            annotations.insert(LAST_MESSAGE.into(), message.clone());
        }
        Scenario::Failed { reason, message } => {
            annotations.insert(REASON.into(), reason.clone());
            annotations.insert(MESSAGE.into(), message.clone());
        }
        Scenario::Running | Scenario::Unready => {}
    }
    let labels = BTreeMap::from([(SCENARIO_LABEL.to_string(), scenario.stage().to_string())]);
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: node.map(str::to_string),
            containers: vec![Container {
                name: "app".into(),
                image: Some("registry.example/app:1.0".into()),
                ..Default::default()
            }],
            termination_grace_period_seconds: Some(5),
            ..Default::default()
        }),
        status: None,
    }
}

/// Creates a pod that kwok runs, waits until it runs, and deletes it with a 1 s grace period: it
/// then stays Terminating for ever, past its deletionTimestamp.
pub async fn stuck_terminating_pod(
    pods: &kube::Api<Pod>,
    namespace: &str,
    name: &str,
    node: &str,
) -> crate::Result<()> {
    let pod = scenario_pod(namespace, name, Some(node), &Scenario::StuckTerminating);
    pods.create(&kube::api::PostParams::default(), &pod).await?;
    crate::wait::pod_phase(pods, name, "Running", std::time::Duration::from_secs(30)).await?;
    let delete = kube::api::DeleteParams {
        grace_period_seconds: Some(1),
        ..Default::default()
    };
    pods.delete(name, &delete).await?;
    Ok(())
}
