//! descheduler (sigs.k8s.io/descheduler), built from the Go module proxy when the benchmark runs
//! (cached outside the repository, never committed), run once with RemoveFailedPods.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use kube_healer_testenv::TestCluster;
use kube_healer_testenv::process::{ManagedProcess, Reaper};

pub const VERSION: &str = "v0.36.0";

/// The descheduler binary, built on first use into ~/.cache/kube-healer/descheduler-<version>/.
pub fn build() -> anyhow::Result<PathBuf> {
    let home = std::env::var("HOME").context("HOME")?;
    let cache = std::env::var("XDG_CACHE_HOME").unwrap_or_else(|_| format!("{home}/.cache"));
    let dir = Path::new(&cache).join(format!("kube-healer/descheduler-{VERSION}"));
    let binary = dir.join("descheduler");
    if binary.exists() {
        return Ok(binary);
    }
    eprintln!("building descheduler {VERSION} from the Go module proxy (once; a few minutes)");
    std::fs::create_dir_all(&dir)?;
    // `go install pkg@version` refuses modules with replace directives: build inside a copy of
    // the module instead.
    let download = std::process::Command::new("go")
        .args([
            "mod",
            "download",
            "-json",
            &format!("sigs.k8s.io/descheduler@{VERSION}"),
        ])
        .env("GOTOOLCHAIN", "local")
        .output()
        .context("running go (Go 1.26 is needed to build descheduler)")?;
    ensure!(
        download.status.success(),
        "go mod download: {}",
        String::from_utf8_lossy(&download.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&download.stdout)?;
    let module = info["Dir"].as_str().context("go mod download gave no Dir")?;
    let source = dir.join("src");
    let _ = std::fs::remove_dir_all(&source);
    let copy = std::process::Command::new("cp")
        .args(["-r", module, &source.display().to_string()])
        .status()?;
    ensure!(copy.success(), "copying {module}");
    let chmod = std::process::Command::new("chmod")
        .args(["-R", "u+w", &source.display().to_string()])
        .status()?;
    ensure!(chmod.success(), "chmod {}", source.display());
    let status = std::process::Command::new("go")
        .current_dir(&source)
        .args([
            "build",
            "-mod=mod",
            "-o",
            &binary.display().to_string(),
            "./cmd/descheduler",
        ])
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .status()?;
    ensure!(status.success(), "building descheduler failed");
    let _ = std::fs::remove_dir_all(&source);
    Ok(binary)
}

/// How one descheduler run went.
pub struct Run {
    pub seconds: f64,
    pub peak_mib: f64,
}

/// Runs descheduler once (no interval) with RemoveFailedPods on `namespace`, measuring its wall
/// time and peak memory.
pub async fn run_once(
    cluster: &TestCluster,
    binary: &Path,
    namespace: &str,
    reaper: &mut Reaper,
) -> anyhow::Result<Run> {
    let policy = cluster.dir().join("descheduler-policy.yaml");
    std::fs::write(
        &policy,
        format!(
            r#"apiVersion: descheduler/v1alpha2
kind: DeschedulerPolicy
profiles:
  - name: failed-pods
    pluginConfig:
      - name: DefaultEvictor
        args:
          evictFailedBarePods: true
          evictLocalStoragePods: true
      - name: RemoveFailedPods
        args:
          reasons: [Evicted]
          minPodLifetimeSeconds: 0
          namespaces:
            include: [{namespace}]
    plugins:
      deschedule:
        enabled: [RemoveFailedPods]
"#
        ),
    )?;
    let started = Instant::now();
    let mut process = ManagedProcess::spawn(
        "descheduler",
        binary,
        &[
            format!("--kubeconfig={}", cluster.kubeconfig_path().display()),
            format!("--policy-config-file={}", policy.display()),
            // Its default is 5 requests a second (one eviction each): lifted to what kube-healer
            // may use, so that the comparison is of the designs, not of a default.
            "--client-connection-qps=200".into(),
            "--client-connection-burst=400".into(),
            "--v=1".into(),
        ],
        cluster.dir().join("descheduler.log"),
        reaper,
    )?;
    let mut peak: f64 = 0.0;
    let pid = process.pid();
    loop {
        if let Some((_, hwm)) = crate::measure::memory_mib(pid) {
            peak = peak.max(hwm);
        }
        if process.check_alive().is_err() {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(1200),
            "descheduler still running after 20 min"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    process.kill();
    Ok(Run {
        seconds,
        peak_mib: peak,
    })
}
