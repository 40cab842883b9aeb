//! Running the operator binary against the test cluster, as a user would run it.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use kube_healer_testenv::TestCluster;
use kube_healer_testenv::process::{ManagedProcess, Reaper, free_port};

/// A `kube-healer run` process: killed (by PID) when dropped, or by the reaper if the test dies.
pub struct Operator {
    process: ManagedProcess,
    reaper: Reaper,
    pub http: String,
}

impl Operator {
    /// Installs the CRDs (as the chart does) and starts the operator; returns once it is ready.
    pub async fn start(cluster: &TestCluster, name: &str, extra: &[&str]) -> anyhow::Result<Self> {
        let crds: Vec<_> = kube_healer_api::crds().into_iter().map(|(_, crd)| crd).collect();
        kube_healer_testenv::crds::install(&cluster.client()?, &crds).await?;
        let port = free_port()?;
        let log: PathBuf = cluster.dir().join(format!("operator-{name}.log"));
        let mut args = vec![
            "run".to_string(),
            "--kubeconfig".into(),
            cluster.kubeconfig_path().display().to_string(),
            "--http-addr".into(),
            format!("127.0.0.1:{port}"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut reaper = Reaper::start()?;
        let process = ManagedProcess::spawn(
            name,
            std::path::Path::new(env!("CARGO_BIN_EXE_kube-healer")),
            &args,
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

/// A minimal HTTP/1.1 GET to 127.0.0.1 (no client library needed for probes and metrics).
fn http_get(url: &str) -> anyhow::Result<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").context("http URL")?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("HTTP status line")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}
