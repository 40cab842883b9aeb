//! Smoke tests of the local control plane. Each would fail on a fake cluster: they need the real
//! scheduler, kwok's pod lifecycle, the node lifecycle controller and the Eviction API with PDBs.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, EvictParams, ListParams, ObjectMeta, PostParams};
use kube_healer_testenv::harness::{Ctx, test};
use kube_healer_testenv::{ClusterOptions, Scenario, nodes, scenario_pod, wait};

fn main() -> std::process::ExitCode {
    kube_healer_testenv::harness::run(
        ClusterOptions::default(),
        vec![
            test(
                "deployment_pods_are_scheduled_onto_kwok_nodes_and_run",
                deployment_runs,
            ),
            test(
                "stopped_heartbeats_make_node_unknown_and_tainted_unreachable",
                heartbeat_loss,
            ),
            test("eviction_of_pdb_protected_pod_is_refused_with_429", eviction_pdb),
            test("scenario_pods_hold_their_failure_state", scenario_states),
        ],
    )
}

fn labels(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_string(), app.to_string())])
}

fn is_running_ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn deployment_runs(ctx: Ctx) -> anyhow::Result<()> {
    let node_names = vec![ctx.name("a"), ctx.name("b")];
    nodes::add_owned_nodes(&ctx.client, &node_names, &ctx.id, Duration::from_secs(60)).await?;
    let ns = ctx.namespace("deploy").await?;
    let deployment = Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(3),
            selector: LabelSelector {
                match_labels: Some(labels("web")),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels("web")),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    // Only this test's nodes: other tests stop heartbeats of theirs.
                    node_selector: Some(BTreeMap::from([(nodes::OWNER_LABEL.to_string(), ctx.id.clone())])),
                    containers: vec![Container {
                        name: "web".into(),
                        image: Some("nginx:1.27".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    Api::<Deployment>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &deployment)
        .await?;

    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let running = wait::until(
        "3 running, ready pods of the deployment",
        Duration::from_secs(90),
        || async {
            let list = pods.list(&ListParams::default().labels("app=web")).await?;
            let ready: Vec<Pod> = list.items.into_iter().filter(is_running_ready).collect();
            Ok((ready.len() == 3).then_some(ready))
        },
    )
    .await?;
    for pod in &running {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .context("running pod without a node")?;
        ensure!(
            node_names.contains(&node),
            "pod bound to a node not of this test: {node}"
        );
        ensure!(
            pod.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some(),
            "kwok gave the pod no IP"
        );
    }
    Ok(())
}

async fn heartbeat_loss(ctx: Ctx) -> anyhow::Result<()> {
    let name = ctx.name("lost");
    nodes::add_node(&ctx.client, &name).await?;
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), "kube-node-lease");
    let lease = wait::until("the node's lease", Duration::from_secs(30), || async {
        Ok(leases.get_opt(&name).await?)
    })
    .await?;
    ensure!(
        lease.spec.and_then(|s| s.renew_time).is_some(),
        "kwok never renewed the node lease"
    );

    nodes::stop_heartbeats(&ctx.client, &name).await?;
    let node = nodes::wait_node_ready_status(&ctx.client, &name, "Unknown", Duration::from_secs(120)).await?;
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .cloned();
    let message = ready.and_then(|c| c.message).unwrap_or_default();
    ensure!(
        message.contains("Kubelet stopped posting node status"),
        "unexpected Ready message: {message}"
    );

    let nodes_api: Api<Node> = Api::all(ctx.client.clone());
    wait::until(
        "the unreachable NoExecute taint",
        Duration::from_secs(60),
        || async {
            let node = nodes_api.get(&name).await?;
            let taints = node.spec.and_then(|s| s.taints).unwrap_or_default();
            Ok(taints
                .iter()
                .any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute")
                .then_some(()))
        },
    )
    .await?;
    Ok(())
}

async fn eviction_pdb(ctx: Ctx) -> anyhow::Result<()> {
    let node = ctx.name("pdb");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("pdb").await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    for (name, app) in [("guarded", "guarded"), ("free", "free")] {
        let mut pod = scenario_pod(&ns, name, Some(&node), &Scenario::Running);
        pod.metadata
            .labels
            .get_or_insert_default()
            .insert("app".into(), app.into());
        pods.create(&PostParams::default(), &pod).await?;
    }
    let pdb = PodDisruptionBudget {
        metadata: ObjectMeta {
            name: Some("guard".into()),
            ..Default::default()
        },
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(labels("guarded")),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    };
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &ns);
    pdbs.create(&PostParams::default(), &pdb).await?;
    // The disruption controller must have seen the healthy pod before the budget means anything.
    wait::until(
        "the PDB to count one healthy pod",
        Duration::from_secs(60),
        || async {
            let status = pdbs.get("guard").await?.status;
            Ok(status
                .filter(|s| s.current_healthy == Some(1) && s.disruptions_allowed == Some(0))
                .map(|_| ()))
        },
    )
    .await?;
    wait::until("the unguarded pod to run", Duration::from_secs(30), || async {
        Ok(pods.get("free").await.ok().filter(is_running_ready).map(|_| ()))
    })
    .await?;

    match pods.evict("guarded", &EvictParams::default()).await {
        Err(kube::Error::Api(status)) if status.code == 429 => {
            ensure!(
                status.message.contains("disruption budget"),
                "429 for another reason: {}",
                status.message
            );
        }
        Err(e) => bail!("expected 429 from the Eviction API, got {e}"),
        Ok(_) => bail!("the PDB-protected pod was evicted"),
    }
    pods.evict("free", &EvictParams::default())
        .await
        .context("evicting the unprotected pod")?;
    wait::until("the evicted pod to go away", Duration::from_secs(30), || async {
        Ok(pods.get_opt("free").await?.is_none().then_some(()))
    })
    .await?;
    ensure!(
        pods.get_opt("guarded").await?.is_some(),
        "the protected pod disappeared"
    );
    Ok(())
}

async fn scenario_states(ctx: Ctx) -> anyhow::Result<()> {
    let node = ctx.name("scn");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("scn").await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pp = PostParams::default();
    pods.create(
        &pp,
        &scenario_pod(
            &ns,
            "pull",
            Some(&node),
            &Scenario::image_pull_backoff("registry.example/missing:1"),
        ),
    )
    .await?;
    pods.create(
        &pp,
        &scenario_pod(&ns, "evicted", Some(&node), &Scenario::evicted()),
    )
    .await?;
    pods.create(
        &pp,
        &scenario_pod(&ns, "stuck", Some(&node), &Scenario::StuckTerminating),
    )
    .await?;

    let waiting_reason = |pod: &Pod| -> Option<String> {
        pod.status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .first()?
            .state
            .as_ref()?
            .waiting
            .as_ref()?
            .reason
            .clone()
    };
    wait::until(
        "pull pod in ImagePullBackOff",
        Duration::from_secs(30),
        || async {
            Ok(waiting_reason(&pods.get("pull").await?)
                .filter(|r| r == "ImagePullBackOff")
                .map(|_| ()))
        },
    )
    .await?;
    wait::until("evicted pod Failed/Evicted", Duration::from_secs(30), || async {
        let status = pods.get("evicted").await?.status.unwrap_or_default();
        Ok(
            (status.phase.as_deref() == Some("Failed") && status.reason.as_deref() == Some("Evicted"))
                .then_some(()),
        )
    })
    .await?;
    wait::until("stuck pod running", Duration::from_secs(30), || async {
        Ok(pods.get_opt("stuck").await?.filter(is_running_ready).map(|_| ()))
    })
    .await?;
    pods.delete(
        "stuck",
        &DeleteParams {
            grace_period_seconds: Some(1),
            ..Default::default()
        },
    )
    .await?;

    // Long enough for the stock stages to have acted (1-6 s delays) had they matched.
    tokio::time::sleep(Duration::from_secs(8)).await;
    ensure!(
        waiting_reason(&pods.get("pull").await?).as_deref() == Some("ImagePullBackOff"),
        "pull pod left its scenario state"
    );
    let stuck = pods
        .get_opt("stuck")
        .await?
        .context("the stuck pod was deleted")?;
    ensure!(
        stuck.metadata.deletion_timestamp.is_some(),
        "stuck pod is not terminating"
    );
    pods.delete(
        "stuck",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await?;
    wait::until("force-deleted pod to vanish", Duration::from_secs(20), || async {
        Ok(pods.get_opt("stuck").await?.is_none().then_some(()))
    })
    .await?;
    Ok(())
}
