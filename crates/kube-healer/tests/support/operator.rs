//! The operator of a test: `kube-healer run` started as the chart's ServiceAccount (impersonated,
//! so that it has exactly the chart's permissions), read through its log, metrics and readiness,
//! and killed by PID when the test drops it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use kube_healer_testenv::process::{ManagedProcess, Reaper, free_port};
use kube_healer_testenv::{TestCluster, chart};

/// A `kube-healer run` process: killed (by PID) when dropped, or by the reaper if the test dies.
pub struct Operator {
    process: ManagedProcess,
    reaper: Reaper,
    pub http: String,
}

/// The disruption budget of a test's operator unless it sets its own (and of its replay).
pub const TESTS_BUDGET: &str = "100%";

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
        // By port too: tests side by side may give their operators the same name.
        let log: PathBuf = cluster.dir().join(format!("operator-{name}-{port}.log"));
        let mut args = vec![
            "run".to_string(),
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
            "--http-addr".into(),
            format!("127.0.0.1:{port}"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        // A failure is over after 60 s clear by default; the tests that are not about the
        // debounce would wait that long for every revert, so theirs is 2 s unless they say.
        if !extra.iter().any(|a| a.starts_with("--clear-debounce")) {
            args.extend(["--clear-debounce".to_string(), "2s".to_string()]);
        }
        // The cluster's disruption budget counts every node out of service, whoever took it
        // out: on a cluster the tests share, other tests' nodes (cordoned, silent) would hold
        // this test's node actions. The tests of the budget set theirs.
        if !extra.iter().any(|a| a.starts_with("--max-nodes-out-of-service")) {
            args.extend(["--max-nodes-out-of-service".to_string(), TESTS_BUDGET.to_string()]);
        }
        let mut reaper = Reaper::start()?;
        let process = ManagedProcess::spawn_with_env(name, &binary(), &args, env, log, &mut reaper)?;
        let operator = Operator {
            process,
            reaper,
            http: format!("http://127.0.0.1:{port}"),
        };
        // Ready means every store listed: a test that slows a list (shutdown.rs) or a loaded machine
        // takes a while.
        operator.wait_ready(Duration::from_secs(60)).await?;
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

    /// The name the test gave it (its log file's too).
    pub fn name(&self) -> &str {
        &self.process.name
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The value of a metric without labels, if exported. An operator that does not answer (its
    /// HTTP server starved on a loaded machine) is asked again for up to 10 s before this fails.
    pub async fn metric(&self, name: &str) -> anyhow::Result<Option<f64>> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let body = loop {
            match self.get("/metrics").await {
                Ok((_, body)) => break body,
                Err(e) if std::time::Instant::now() > deadline => {
                    return Err(e.context(format!("{}: GET /metrics", self.name())));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
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
/// Where the chart's release runs node jobs, and under which ServiceAccount (the operator's
/// defaults too).
pub const JOBS_NAMESPACE: &str = "kube-healer-jobs";
pub const JOBS_SERVICE_ACCOUNT: &str = "kube-healer-node-jobs";

/// The kubeconfig every e2e operator uses, once per cluster (one cluster per test binary).
static CHART_IDENTITY: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();

/// The chart's ServiceAccount and RBAC (release kube-healer, node jobs on: their namespace
/// kube-healer-jobs, privileged, and ServiceAccount kube-healer-node-jobs), and a kubeconfig
/// impersonating that ServiceAccount: every e2e scenario runs with exactly the chart's
/// permissions, and the harness fails the run if the API server refused any of the operator's
/// requests (403 in its audit log).
async fn chart_identity(cluster: &TestCluster) -> anyhow::Result<PathBuf> {
    let set = [
        "nodeJobs.enabled=true",
        "nodeJobs.podSecurity=privileged",
        // Remediate, on the Self Node Remediation-shaped CRDs of e2e/remediate.rs.
        "remediation.resources[0].apiGroup=self-node-remediation.medik8s.io",
        "remediation.resources[0].templates={selfnoderemediationtemplates}",
        "remediation.resources[0].resources={selfnoderemediations}",
        // Replace, on the NodeClaim- and Machine-shaped CRDs of e2e/replace.rs.
        "replacement.karpenter=true",
        "replacement.clusterAPI=true",
    ];
    chart::operator_identity(cluster, "kube-healer", CHART_NAMESPACE, &set).await
}

/// The operator binary: cargo's build of it, or `KUBE_HEALER_BIN` (to run a test over and over
/// against one build while the tree is rebuilt).
fn binary() -> PathBuf {
    std::env::var_os("KUBE_HEALER_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kube-healer")))
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
