//! Running the operator binary against the test cluster, as a user would run it.

#![allow(dead_code)]

pub mod once;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::{Event, Node};
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube_healer_api::record::ActionPhase;
use kube_healer_api::{HealingAction, HealingPolicy};
use kube_healer_testenv::harness::Ctx;
use kube_healer_testenv::process::{ManagedProcess, Reaper, free_port};
use kube_healer_testenv::{TestCluster, chart, wait};
use serde_json::json;

/// A `kube-healer run` process: killed (by PID) when dropped, or by the reaper if the test dies.
pub struct Operator {
    process: ManagedProcess,
    reaper: Reaper,
    pub http: String,
}

impl Operator {
    /// Installs the CRDs (as the chart does) and starts the operator; returns once it is ready.
    pub async fn start(cluster: &TestCluster, name: &str, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_with_env(cluster, name, extra, &[]).await
    }

    /// Like [`Operator::start`], with extra environment variables (failpoints).
    pub async fn start_with_env(
        cluster: &TestCluster,
        name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let crds: Vec<_> = kube_healer_api::crds().into_iter().map(|(_, crd)| crd).collect();
        kube_healer_testenv::crds::install(&cluster.client()?, &crds).await?;
        let kubeconfig = CHART_IDENTITY.get_or_try_init(|| chart_identity(cluster)).await?;
        Self::spawn(cluster, kubeconfig, name, extra, env).await
    }

    /// Starts `kube-healer run` with this kubeconfig; returns once it is ready.
    pub async fn spawn(
        cluster: &TestCluster,
        kubeconfig: &std::path::Path,
        name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let log: PathBuf = cluster.dir().join(format!("operator-{name}.log"));
        let mut args = vec![
            "run".to_string(),
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
            "--http-addr".into(),
            format!("127.0.0.1:{port}"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut reaper = Reaper::start()?;
        let process = ManagedProcess::spawn_with_env(
            name,
            std::path::Path::new(env!("CARGO_BIN_EXE_kube-healer")),
            &args,
            env,
            log,
            &mut reaper,
        )?;
        let operator = Operator {
            process,
            reaper,
            http: format!("http://127.0.0.1:{port}"),
        };
        operator.wait_ready(Duration::from_secs(30)).await?;
        Ok(operator)
    }

    async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok((200, _)) = self.get("/readyz").await {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!(
                    "operator not ready within {timeout:?}; log:\n{}",
                    self.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// GET on the operator's HTTP port: (status, body).
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let url = format!("{}{path}", self.http);
        tokio::task::spawn_blocking(move || http_get(&url)).await?
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.process.log).unwrap_or_default()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// Waits until a log line contains every one of `parts`.
    pub async fn wait_log(&self, parts: &[&str], timeout: Duration) -> anyhow::Result<String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(line) = self.log().lines().find(|l| parts.iter().all(|p| l.contains(p))) {
                return Ok(line.to_string());
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!(
                    "no log line with {parts:?} within {timeout:?}; log tail:\n{}",
                    self.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The value of a metric without labels, if exported.
    pub async fn metric(&self, name: &str) -> anyhow::Result<Option<f64>> {
        let (_, body) = self.get("/metrics").await?;
        Ok(body
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.process.kill();
        self.reaper.disarm();
    }
}

/// The namespace of the chart's release in the e2e clusters: the operator runs as its
/// ServiceAccount and elects its leader there.
pub const CHART_NAMESPACE: &str = "kube-healer";

/// The kubeconfig every e2e operator uses, once per cluster (one cluster per test binary).
static CHART_IDENTITY: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();

/// The chart's ServiceAccount and RBAC (release kube-healer, RunJob permitted), and a kubeconfig
/// impersonating that ServiceAccount: every e2e scenario runs with exactly the chart's
/// permissions, and the harness fails the run if the API server refused any of the operator's
/// requests (403 in its audit log).
async fn chart_identity(cluster: &TestCluster) -> anyhow::Result<PathBuf> {
    chart::operator_identity(cluster, "kube-healer", CHART_NAMESPACE, &["rbac.runJobs=true"]).await
}

/// A GET of `http://host:port/path` on 127.0.0.1.
fn http_get(url: &str) -> anyhow::Result<(u16, String)> {
    let rest = url.strip_prefix("http://").context("http URL")?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    Ok(kube_healer_testenv::http::get(host, &path)?)
}

/// A policy owned by the test (`kube-healer.test/owner` = the test's id), for an operator started
/// with `--policy-selector kube-healer.test/owner=<id>`.
pub async fn create_policy(ctx: &Ctx, name: &str, spec: serde_json::Value) -> anyhow::Result<()> {
    // The CRDs, as the chart installs them (a no-op when they are: tests may start their
    // operator after their policies).
    let crds: Vec<_> = kube_healer_api::crds().into_iter().map(|(_, crd)| crd).collect();
    kube_healer_testenv::crds::install(&ctx.client, &crds).await?;
    let policy: HealingPolicy = serde_json::from_value(json!({
        "apiVersion": "healing.kubehealer.io/v1alpha1", "kind": "HealingPolicy",
        "metadata": {"name": name, "labels": {"kube-healer.test/owner": ctx.id}}, "spec": spec,
    }))?;
    Api::<HealingPolicy>::all(ctx.client.clone())
        .create(&PostParams::default(), &policy)
        .await?;
    Ok(())
}

/// How long a test waits for a heal.
pub const HEAL: Duration = Duration::from_secs(60);

/// The records of a policy, once `count` of them have reached a final phase.
pub async fn records(ctx: &Ctx, policy: &str, count: usize) -> anyhow::Result<Vec<HealingAction>> {
    let api: Api<HealingAction> = Api::all(ctx.client.clone());
    let lp = ListParams::default().labels(&format!("{}={policy}", kube_healer_api::POLICY_LABEL));
    wait::until(&format!("{count} final records of {policy}"), HEAL, || async {
        let list = match api.list(&lp).await {
            Ok(l) => l.items,
            // A CRD just installed answers 429 while its storage initializes.
            Err(kube::Error::Api(s)) if s.code == 429 => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let done = list
            .iter()
            .filter(|r| r.status.as_ref().is_some_and(|s| s.phase.is_final()))
            .count();
        Ok((done >= count).then_some(list))
    })
    .await
    .map_err(Into::into)
}

/// A final record's phase and reason.
pub fn phase_reason(r: &HealingAction) -> (ActionPhase, String) {
    let s = r.status.as_ref().expect("final records have a status");
    (s.phase, s.reason.clone().unwrap_or_default())
}

/// The time `offset_secs` from now, RFC 3339.
pub fn now_rfc3339(offset_secs: i64) -> String {
    (k8s_openapi::jiff::Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_secs(offset_secs))
        .to_string()
}

/// A node kwok does not manage, with the given status conditions (a test writes its status).
pub async fn unmanaged_node(
    client: &Client,
    name: &str,
    conditions: serde_json::Value,
) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    nodes.create(&PostParams::default(), &node).await?;
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": conditions}})),
        )
        .await?;
    Ok(())
}

/// A Ready condition as a kubelet writes it.
pub fn ready(status: &str, message: &str) -> serde_json::Value {
    json!({"type": "Ready", "status": status, "reason": "KubeletNotReady", "message": message,
        "lastTransitionTime": now_rfc3339(-60), "lastHeartbeatTime": now_rfc3339(0)})
}

/// A Warning event on a node, as its kubelet or node-problem-detector would post it.
pub async fn node_event(
    client: &Client,
    node: &str,
    reason: &str,
    message: &str,
    count: i32,
) -> anyhow::Result<()> {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let event: Event = serde_json::from_value(json!({
        "metadata": {"generateName": format!("{node}.")},
        "involvedObject": {"kind": "Node", "name": node, "uid": node},
        "reason": reason, "message": message, "count": count, "type": "Warning",
        "firstTimestamp": now_rfc3339(-120), "lastTimestamp": now_rfc3339(0),
        "source": {"component": "kubelet", "host": node},
    }))?;
    events.create(&PostParams::default(), &event).await?;
    Ok(())
}

/// An Evicted pod (kwok drives it there) on `node`.
pub async fn evicted_pod(ctx: &Ctx, ns: &str, name: &str, node: &str) -> anyhow::Result<()> {
    Api::<k8s_openapi::api::core::v1::Pod>::namespaced(ctx.client.clone(), ns)
        .create(
            &PostParams::default(),
            &kube_healer_testenv::scenario_pod(
                ns,
                name,
                Some(node),
                &kube_healer_testenv::Scenario::evicted(),
            ),
        )
        .await?;
    Ok(())
}

/// The `--policy-selector` that picks the test's own policies.
pub fn selector(ctx: &Ctx) -> String {
    format!("kube-healer.test/owner={}", ctx.id)
}

/// Limits that let a test's few actions through.
pub fn limits() -> serde_json::Value {
    json!({"maxConcurrent": 5, "rate": {"actions": 10, "per": "1m"}})
}
