//! The operator under measurement: the `kube-healer` binary (release build next to this one),
//! started as the chart's ServiceAccount with its CRDs installed as the chart does, and its HTTP
//! port.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use kube::Client;
use kube_healer_testenv::process::{ManagedProcess, Reaper, free_port};
use kube_healer_testenv::{TestCluster, chart};

use super::OPERATOR_NAMESPACE;

/// The running operator, and what the phases read about it.
pub(super) struct Operator {
    pub process: ManagedProcess,
    /// Kills the operator (and descheduler) if the benchmark dies.
    pub reaper: Reaper,
    /// Its user in the audit log.
    pub user: String,
    /// 127.0.0.1:port of its HTTP endpoint.
    pub http: String,
    /// From spawn to /readyz 200: its stores synced.
    pub synced_in: f64,
}

/// The operator, as the chart's ServiceAccount, its CRDs installed as the chart does; returns
/// once it is ready.
pub(super) async fn start(cluster: &TestCluster, client: &Client, binary: &Path) -> anyhow::Result<Operator> {
    let crds: Vec<_> = kube_healer_api::crds().into_iter().map(|(_, crd)| crd).collect();
    kube_healer_testenv::crds::install(client, &crds).await?;
    let kubeconfig = chart::operator_identity(cluster, "kube-healer", OPERATOR_NAMESPACE, &[]).await?;
    let user = format!("system:serviceaccount:{OPERATOR_NAMESPACE}:kube-healer");
    let port = free_port()?;
    let mut reaper = Reaper::start()?;
    let started = Instant::now();
    let operator = ManagedProcess::spawn(
        "kube-healer",
        binary,
        &[
            "run".into(),
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
            "--http-addr".into(),
            format!("127.0.0.1:{port}"),
            "--records-per-policy".into(),
            "100000".into(),
            "--log".into(),
            "warn".into(),
        ],
        cluster.dir().join("operator.log"),
        &mut reaper,
    )?;
    let http = format!("127.0.0.1:{port}");
    if let Err(e) = wait_http(&http, "/readyz", Duration::from_secs(120)).await {
        anyhow::bail!("{e}; operator log:\n{}", operator.log_tail(30));
    }
    let sync = started.elapsed().as_secs_f64();
    Ok(Operator {
        process: operator,
        reaper,
        user,
        http,
        synced_in: sync,
    })
}

/// The release build of `kube-healer` next to this binary, built first if missing.
pub(super) fn binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let binary = exe.with_file_name("kube-healer");
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let profile = if exe.to_string_lossy().contains("/release/") {
            "--release"
        } else {
            "--profile=dev"
        };
        let status = std::process::Command::new(cargo)
            .args(["build", profile, "-p", "kube-healer"])
            .status()
            .context("building kube-healer")?;
        ensure!(status.success(), "building kube-healer failed");
    }
    ensure!(binary.exists(), "{} not found", binary.display());
    Ok(binary)
}

async fn wait_http(addr: &str, path: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok((200, _)) = http_get(addr, path).await {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "{path} not 200 within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GET http://addr/path (127.0.0.1): status and body.
pub(super) async fn http_get(addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let (addr, path) = (addr.to_string(), path.to_string());
    Ok(tokio::task::spawn_blocking(move || kube_healer_testenv::http::get(&addr, &path)).await??)
}
