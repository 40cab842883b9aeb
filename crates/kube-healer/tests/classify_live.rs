//! `kube-healer classify` on what a real cluster prints: failures made by kwok stages and the
//! node lifecycle controller, dumped with kubectl, diagnosed offline.
//!
//! Its own cluster: the dump is of the whole cluster (every namespace), and the test asserts that
//! nothing named `fine` is flagged in it: other tests' pods of that name (heal's, caught before
//! kwok runs it) would be diagnosed too.

use std::time::Duration;

use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use kube_healer_testenv::harness::{Ctx, test};
use kube_healer_testenv::{ClusterOptions, Scenario, nodes, scenario_pod, wait};

fn main() -> std::process::ExitCode {
    kube_healer_testenv::harness::run(
        ClusterOptions::default(),
        vec![
            test(
                "classify_diagnoses_a_kubectl_dump_of_the_real_cluster",
                classify_dump,
            ),
            test("simulate_shows_what_a_policy_would_do_without_acting", simulate),
        ],
    )
}

async fn classify_dump(ctx: Ctx) -> anyhow::Result<()> {
    let healthy = ctx.name("ok");
    let lost = ctx.name("lost");
    nodes::add_node(&ctx.client, &healthy).await?;
    nodes::add_node(&ctx.client, &lost).await?;
    let ns = ctx.namespace("shop").await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pp = PostParams::default();
    pods.create(
        &pp,
        &scenario_pod(
            &ns,
            "pull",
            Some(&healthy),
            &Scenario::image_pull_backoff("registry.example/app:2"),
        ),
    )
    .await?;
    pods.create(
        &pp,
        &scenario_pod(&ns, "loop", Some(&healthy), &Scenario::crash_loop(9)),
    )
    .await?;
    pods.create(
        &pp,
        &scenario_pod(&ns, "evicted", Some(&healthy), &Scenario::evicted()),
    )
    .await?;
    pods.create(
        &pp,
        &scenario_pod(&ns, "stuck", Some(&healthy), &Scenario::StuckTerminating),
    )
    .await?;
    pods.create(
        &pp,
        &scenario_pod(&ns, "fine", Some(&healthy), &Scenario::Running),
    )
    .await?;
    pods.create(
        &pp,
        &scenario_pod(&ns, "stranded", Some(&lost), &Scenario::Running),
    )
    .await?;
    wait::pod_phase(&pods, "stuck", "Running", Duration::from_secs(30)).await?;
    wait::pod_phase(&pods, "stranded", "Running", Duration::from_secs(30)).await?;
    pods.delete(
        "stuck",
        &DeleteParams {
            grace_period_seconds: Some(1),
            ..Default::default()
        },
    )
    .await?;
    nodes::stop_heartbeats(&ctx.client, &lost).await?;
    nodes::wait_node_ready_status(&ctx.client, &lost, "Unknown", Duration::from_secs(90)).await?;

    let dump = tokio::task::block_in_place(|| {
        ctx.cluster
            .kubectl(&["get", "pods,nodes,events,leases", "-A", "-o", "yaml"])
    })?;
    // Judge two hours later, when every failure is past its threshold.
    let later = k8s_openapi::jiff::Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_hours(2);
    let out = tokio::task::block_in_place(|| {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kube-healer"))
            .args(["classify", "-f", "-", "-o", "json", "--now", &later.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        child.stdin.take().context("stdin")?.write_all(dump.as_bytes())?;
        anyhow::Ok(child.wait_with_output()?)
    })?;
    let stdout = String::from_utf8(out.stdout)?;
    ensure!(
        out.status.success(),
        "classify failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let findings: Vec<serde_json::Value> = stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let has = |class: &str, name: &str| findings.iter().any(|f| f["class"] == class && f["name"] == name);
    for (class, name) in [
        ("ImagePullFailure", "pull"),
        ("CrashLoop", "loop"),
        ("Evicted", "evicted"),
        ("StuckTerminating", "stuck"),
        ("NodeLost", "stranded"),
        ("NodeUnreachable", lost.as_str()),
    ] {
        ensure!(has(class, name), "no {class} for {name} in:\n{stdout}");
    }
    // Two hours on, every lease in the dump is late: HeartbeatLag is the one finding a healthy
    // node may carry here.
    let healthy_flagged = findings
        .iter()
        .any(|f| f["name"] == "fine" || (f["name"] == healthy.as_str() && f["class"] != "HeartbeatLag"));
    ensure!(!healthy_flagged, "healthy objects reported:\n{stdout}");
    Ok(())
}

fn kube_healer(args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kube-healer"))
        .args(args)
        .output()?;
    Ok((
        out.status.success(),
        String::from_utf8(out.stdout)?,
        String::from_utf8(out.stderr)?,
    ))
}

async fn simulate(ctx: Ctx) -> anyhow::Result<()> {
    let crds: Vec<_> = kube_healer_api::crds().into_iter().map(|(_, crd)| crd).collect();
    kube_healer_testenv::crds::install(&ctx.client, &crds).await?;
    let node = ctx.name("n");
    nodes::add_node(&ctx.client, &node).await?;
    let ns = ctx.namespace("sim").await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    for name in ["s1", "s2", "s3"] {
        kube_healer_testenv::scenario::stuck_terminating_pod(&pods, &ns, name, &node).await?;
    }
    pods.create(
        &PostParams::default(),
        &scenario_pod(&ns, "fine", Some(&node), &Scenario::Running),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let policy_name = ctx.name("sim");
    let policy = format!(
        "apiVersion: healing.kubehealer.io/v1alpha1\nkind: HealingPolicy\nmetadata: {{name: {policy_name}}}\nspec:\n  target: {{kind: Pod, namespaces: {{include: [{ns}]}}}}\n  conditions: [{{class: StuckTerminating, for: 1s}}]\n  actions: [{{action: ForceDelete}}]\n  safety: {{maxConcurrent: 5, rate: {{actions: 2, per: 10m}}}}\n"
    );
    let file = ctx.cluster.dir().join("sim-policy.yaml");
    std::fs::write(&file, &policy)?;
    let kubeconfig = ctx.cluster.kubeconfig_path().display().to_string();
    let file_arg = file.display().to_string();
    let (ok, stdout, stderr) = tokio::task::block_in_place(|| {
        kube_healer(&["simulate", "-f", &file_arg, "--kubeconfig", &kubeconfig])
    })?;
    ensure!(ok, "simulate failed: {stderr}");
    ensure!(stdout.contains("4 pods selected, 3 failing now"), "{stdout}");
    ensure!(
        stdout.matches("ForceDelete (step 1)").count() == 2,
        "two actions within the rate:\n{stdout}"
    );
    ensure!(
        stdout.contains("hold ForceDelete: RateLimited"),
        "the third is held by the rate:\n{stdout}"
    );
    ensure!(!stdout.contains(&format!("pod/{ns}/fine")), "{stdout}");
    // Nothing was stored or changed.
    let stored = Api::<kube_healer_api::HealingPolicy>::all(ctx.client.clone())
        .get_opt(&policy_name)
        .await?;
    ensure!(stored.is_none(), "simulate stored the policy");
    ensure!(pods.get_opt("s1").await?.is_some(), "simulate acted");

    // An invalid policy gets the API server's own message.
    std::fs::write(&file, policy.replace("ForceDelete", "Cordon"))?;
    let (ok, _, stderr) = tokio::task::block_in_place(|| {
        kube_healer(&["simulate", "-f", &file_arg, "--kubeconfig", &kubeconfig])
    })?;
    ensure!(
        !ok && stderr.contains("a Pod policy takes only these actions"),
        "{stderr}"
    );
    Ok(())
}
