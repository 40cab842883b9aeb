//! A complete local cluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
//! kwok, all on 127.0.0.1 with free ports, in a temporary directory that teardown removes.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::binaries::Binaries;
use crate::error::{Error, Result, io};
use crate::pki::Pki;
use crate::process::{ManagedProcess, Reaper, free_port};

/// The label kwok selects the nodes it manages by. Removing it stops the node's heartbeats.
pub const KWOK_NODE_LABEL: &str = "kube-healer.test/kwok";

/// Knobs of the local cluster. The defaults make node-failure tests fast.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// kube-controller-manager --node-monitor-grace-period: heartbeat silence before Ready=Unknown.
    pub node_monitor_grace_period: Duration,
    /// kube-controller-manager --node-monitor-period.
    pub node_monitor_period: Duration,
    /// kwok --node-lease-duration-seconds; kwok renews every quarter of it.
    pub node_lease_duration_seconds: u32,
    /// Lift the API server's in-flight limits and the controller-manager's client limits (scale runs).
    pub high_throughput: bool,
    /// Extra kube-apiserver flags.
    pub extra_apiserver_args: Vec<String>,
    /// Keep the directory (logs, kubeconfig, certificates) after teardown.
    pub keep_dir: bool,
    /// Write the API server's audit log (metadata of every request except kwok's heartbeats and
    /// status writes), read by [`TestCluster::forbidden_impersonated`]. Off for scale runs.
    pub audit: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            node_monitor_grace_period: Duration::from_secs(20),
            node_monitor_period: Duration::from_secs(2),
            node_lease_duration_seconds: 20,
            high_throughput: false,
            extra_apiserver_args: Vec::new(),
            keep_dir: false,
            audit: true,
        }
    }
}

/// A running cluster. Dropping it kills exactly the processes it started and removes its directory.
pub struct TestCluster {
    // Field order is drop order: processes die before the directory they log into is removed.
    processes: Mutex<Vec<ManagedProcess>>,
    reaper: Mutex<Reaper>,
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    kubeconfig: PathBuf,
    apiserver_url: String,
    config: Config,
    binaries: Binaries,
    apiserver_args: Vec<String>,
    /// Windows (start, seconds) in which refusals of the operator's requests are expected: after
    /// a restart of kube-apiserver (its authorizer has not read the RBAC objects yet), or while a
    /// test has taken a permission away.
    refusal_windows: Mutex<Vec<(k8s_openapi::jiff::Timestamp, f64)>>,
    pub options: ClusterOptions,
    pub started_in: Duration,
}

impl TestCluster {
    /// Starts a cluster and waits until the API server is ready, the controller-manager has created
    /// the default service account, and the scheduler and kwok are running.
    pub async fn start(options: ClusterOptions) -> Result<Self> {
        let begun = Instant::now();
        let binaries = tokio::task::spawn_blocking(Binaries::locate)
            .await
            .map_err(|e| Error::Other(format!("locating binaries: {e}")))??;
        let dir = tempfile::Builder::new()
            .prefix("kube-healer-testenv-")
            .tempdir()
            .map_err(io("creating temp dir"))?;
        let dir_path = dir.path().to_path_buf();
        let pki = Pki::generate(&dir_path)?;
        let mut reaper = Reaper::start()?;

        let etcd_port = free_port()?;
        let etcd_peer_port = free_port()?;
        let apiserver_port = free_port()?;
        let kwok_port = free_port()?;
        let apiserver_url = format!("https://127.0.0.1:{apiserver_port}");
        let kubeconfig = write_kubeconfig(&dir_path, &apiserver_url, &pki)?;

        let mut processes = Vec::new();
        let etcd_args = etcd_args(&dir_path, etcd_port, etcd_peer_port);
        processes.push(ManagedProcess::spawn(
            "etcd",
            &binaries.path("etcd"),
            &etcd_args,
            dir_path.join("etcd.log"),
            &mut reaper,
        )?);
        wait_for_tcp("etcd", etcd_port, &mut processes[0], Duration::from_secs(30)).await?;

        let mut apiserver_args = apiserver_args(&options, &pki, etcd_port, apiserver_port);
        if options.audit {
            let policy = dir_path.join("audit-policy.yaml");
            std::fs::write(&policy, AUDIT_POLICY).map_err(io("writing the audit policy"))?;
            apiserver_args.extend([
                format!("--audit-policy-file={}", path(&policy)),
                format!("--audit-log-path={}", path(&dir_path.join(AUDIT_LOG))),
                "--audit-log-format=json".to_string(),
                "--audit-log-maxbackup=0".to_string(),
            ]);
        }
        processes.push(ManagedProcess::spawn(
            "kube-apiserver",
            &binaries.path("kube-apiserver"),
            &apiserver_args,
            dir_path.join("kube-apiserver.log"),
            &mut reaper,
        )?);
        let config = client_config(&kubeconfig).await?;
        let mut cluster = TestCluster {
            processes: Mutex::new(processes),
            reaper: Mutex::new(reaper),
            dir: Some(dir),
            dir_path,
            kubeconfig,
            apiserver_url,
            config,
            binaries,
            apiserver_args,
            refusal_windows: Mutex::new(Vec::new()),
            options,
            started_in: Duration::ZERO,
        };
        cluster.wait_apiserver_ready(Duration::from_secs(90)).await?;

        let kcm = controller_manager_args(&cluster.options, &cluster.kubeconfig, &pki);
        cluster.spawn("kube-controller-manager", &kcm)?;
        let scheduler = scheduler_args(&cluster.kubeconfig);
        cluster.spawn("kube-scheduler", &scheduler)?;
        let kwok = kwok_args(&cluster, kwok_port)?;
        cluster.spawn("kwok", &kwok)?;

        cluster
            .wait_default_service_account(Duration::from_secs(90))
            .await?;
        cluster.started_in = begun.elapsed();
        tracing::info!(dir = %cluster.dir_path.display(), secs = cluster.started_in.as_secs_f64(), "local cluster ready");
        Ok(cluster)
    }

    fn spawn(&self, name: &str, args: &[String]) -> Result<()> {
        self.spawn_binary(name, name, args)
    }

    fn spawn_binary(&self, name: &str, binary: &str, args: &[String]) -> Result<()> {
        let log = self.dir_path.join(format!("{name}.log"));
        let mut reaper = self.reaper.lock().expect("reaper");
        let process = ManagedProcess::spawn(name, &self.binaries.path(binary), args, log, &mut reaper)?;
        self.processes.lock().expect("processes").push(process);
        Ok(())
    }

    /// A new client for the cluster's admin user (group system:masters). Call it on the runtime
    /// that will use the client.
    pub fn client(&self) -> Result<Client> {
        Ok(Client::try_from(self.config.clone())?)
    }

    /// The admin client configuration (for impersonation or custom timeouts).
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn apiserver_url(&self) -> &str {
        &self.apiserver_url
    }

    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    pub fn binaries(&self) -> &Binaries {
        &self.binaries
    }

    /// PIDs of the processes this cluster started, by component name.
    pub fn pids(&self) -> Vec<(String, u32)> {
        let processes = self.processes.lock().expect("processes");
        processes.iter().map(|p| (p.name.clone(), p.pid())).collect()
    }

    /// Fails with the component's log tail if any component has exited.
    pub fn check_alive(&self) -> Result<()> {
        self.processes
            .lock()
            .expect("processes")
            .iter_mut()
            .try_for_each(ManagedProcess::check_alive)
    }

    /// Stops kube-apiserver (etcd and the other components keep running).
    pub fn stop_apiserver(&self) {
        let mut processes = self.processes.lock().expect("processes");
        if let Some(p) = processes.iter_mut().find(|p| p.name == "kube-apiserver") {
            p.kill();
        }
        processes.retain(|p| p.name != "kube-apiserver");
    }

    /// Starts kube-apiserver again on the same port and data (stopping it first if it runs),
    /// and waits until it is ready.
    pub async fn restart_apiserver(&self) -> Result<()> {
        self.stop_apiserver();
        self.expect_refusals(Duration::from_secs(20));
        let args = self.apiserver_args.clone();
        self.spawn("kube-apiserver", &args)?;
        self.wait_apiserver_ready(Duration::from_secs(90)).await
    }

    /// A second kube-apiserver on the same etcd, as in a highly available control plane, on a
    /// port of its own: what is changed through it while the first is stopped is what the
    /// clients of the first find when it is back. Returns an admin configuration for it; it runs
    /// until the cluster is torn down.
    pub async fn start_second_apiserver(&self) -> Result<Config> {
        let port = free_port()?;
        let audit = path(&self.dir_path.join("audit-2.log"));
        let args: Vec<String> = self
            .apiserver_args
            .iter()
            .map(|a| {
                if a.starts_with("--secure-port=") {
                    format!("--secure-port={port}")
                } else if a.starts_with("--audit-log-path=") {
                    format!("--audit-log-path={audit}")
                } else {
                    a.clone()
                }
            })
            .collect();
        self.spawn_binary("kube-apiserver-2", "kube-apiserver", &args)?;
        let mut config = self.config.clone();
        config.cluster_url = format!("https://127.0.0.1:{port}")
            .parse()
            .map_err(|e| Error::Other(format!("second API server URL: {e}")))?;
        let client = Client::try_from(config.clone())?;
        crate::wait::until(
            "the second API server to be ready",
            Duration::from_secs(90),
            || async {
                let request = http::Request::get("/readyz")
                    .body(Vec::new())
                    .expect("static request");
                Ok(match client.request_text(request).await {
                    Ok(body) if body.trim() == "ok" => Some(()),
                    _ => None,
                })
            },
        )
        .await?;
        Ok(config)
    }

    /// The API server's audit log (JSON lines), when [`ClusterOptions::audit`] is on.
    pub fn audit_log(&self) -> PathBuf {
        self.dir_path.join(AUDIT_LOG)
    }

    /// The audit log's events (empty when it is off).
    pub fn audit_events(&self) -> Result<Vec<serde_json::Value>> {
        let log = match std::fs::read_to_string(self.audit_log()) {
            Ok(log) => log,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("reading the audit log")(e)),
        };
        Ok(log
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect())
    }

    /// The answers (HTTP codes) the API server gave to impersonated users' (the operator's)
    /// requests with this verb on this object, in order. `resource` may name a subresource
    /// ("pods/eviction").
    pub fn operator_requests(
        &self,
        verb: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<u16>> {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        Ok(self
            .audit_events()?
            .iter()
            .filter(|e| e["impersonatedUser"]["username"].is_string() && e["verb"] == verb)
            .filter(|e| {
                let o = &e["objectRef"];
                o["resource"] == resource
                    && o["subresource"].as_str().unwrap_or_default() == subresource
                    && o["namespace"].as_str().unwrap_or_default() == namespace
                    && o["name"] == name
            })
            .map(|e| e["responseStatus"]["code"].as_u64().unwrap_or(0) as u16)
            .collect())
    }

    /// Any request of an impersonated user (the operator) on Secrets, one line each: the
    /// operator has no business with them.
    pub fn impersonated_secret_requests(&self) -> Result<Vec<String>> {
        Ok(self
            .audit_events()?
            .iter()
            .filter(|e| {
                e["impersonatedUser"]["username"].is_string() && e["objectRef"]["resource"] == "secrets"
            })
            .map(|e| {
                format!(
                    "a request on Secrets: {}",
                    e["requestURI"].as_str().unwrap_or("?")
                )
            })
            .collect())
    }

    /// From now on, for `window`, refusals (403) of the operator's requests are expected: a test
    /// takes a permission away on purpose. The end-of-run check leaves them out.
    pub fn expect_refusals(&self, window: Duration) {
        self.refusal_windows
            .lock()
            .expect("refusal windows")
            .push((k8s_openapi::jiff::Timestamp::now(), window.as_secs_f64()));
    }

    /// Whether an audit event falls in a window where refusals are expected.
    fn refusal_expected(&self, event: &serde_json::Value) -> bool {
        let Some(at) = event["requestReceivedTimestamp"]
            .as_str()
            .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
        else {
            return false;
        };
        let windows = self.refusal_windows.lock().expect("refusal windows");
        windows.iter().any(|(start, secs)| {
            let after = at.duration_since(*start).as_secs_f64();
            (0.0..*secs).contains(&after)
        })
    }

    /// The requests made by impersonated users (the operator run as its chart's ServiceAccount)
    /// that the API server refused with 403, one line each: user, verb, resource and name. Empty
    /// when the audit log is off.
    pub fn forbidden_impersonated(&self) -> Result<Vec<String>> {
        Ok(self
            .audit_events()?
            .into_iter()
            .filter(|e| e["responseStatus"]["code"] == 403 && e["impersonatedUser"]["username"].is_string())
            .filter(|e| !self.refusal_expected(e))
            .map(|e| {
                let object = &e["objectRef"];
                let sub = object["subresource"].as_str().map(|s| format!("/{s}"));
                format!(
                    "{} {} {}{} {}/{} ({})",
                    e["impersonatedUser"]["username"].as_str().unwrap_or("?"),
                    e["verb"].as_str().unwrap_or("?"),
                    object["resource"].as_str().unwrap_or("?"),
                    sub.unwrap_or_default(),
                    object["namespace"].as_str().unwrap_or(""),
                    object["name"].as_str().unwrap_or(""),
                    e["requestURI"].as_str().unwrap_or("?"),
                )
            })
            .collect())
    }

    /// Runs kubectl against this cluster and returns its stdout; a failure carries stderr.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        let output = std::process::Command::new(self.binaries.path("kubectl"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .map_err(io("running kubectl"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(Error::Other(format!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            )))
        }
    }

    async fn wait_apiserver_ready(&self, timeout: Duration) -> Result<()> {
        let client = self.client()?;
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            {
                let mut processes = self.processes.lock().expect("processes");
                if let Some(p) = processes.iter_mut().find(|p| p.name == "kube-apiserver") {
                    p.check_alive()?;
                }
            }
            let request = http::Request::get("/readyz")
                .body(Vec::new())
                .expect("static request");
            match client.request_text(request).await {
                Ok(body) if body.trim() == "ok" => return Ok(()),
                Ok(body) => last = body,
                Err(e) => last = e.to_string(),
            }
            if Instant::now() > deadline {
                return Err(Error::NotReady {
                    component: "kube-apiserver".into(),
                    seconds: timeout.as_secs(),
                    detail: last,
                    log: self.dir_path.join("kube-apiserver.log"),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn wait_default_service_account(&self, timeout: Duration) -> Result<()> {
        use k8s_openapi::api::core::v1::ServiceAccount;
        let api: kube::Api<ServiceAccount> = kube::Api::namespaced(self.client()?, "default");
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            if api.get_opt("default").await?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::NotReady {
                    component: "kube-controller-manager".into(),
                    seconds: timeout.as_secs(),
                    detail: "the default service account was never created".into(),
                    log: self.dir_path.join("kube-controller-manager.log"),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Tears the cluster down now (Drop does the same).
    pub fn stop(mut self) {
        self.teardown();
    }

    fn teardown(&mut self) {
        // Reverse start order: kwok and the controllers first, etcd last.
        let processes = self.processes.get_mut().unwrap_or_else(|e| e.into_inner());
        while let Some(mut p) = processes.pop() {
            p.kill();
        }
        self.reaper.get_mut().unwrap_or_else(|e| e.into_inner()).disarm();
        if let Some(dir) = self.dir.take() {
            if self.options.keep_dir {
                let kept = dir.keep();
                eprintln!("kube-healer-testenv: kept {}", kept.display());
            } else {
                let _ = dir.close();
            }
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let processes = self.processes.get_mut().unwrap_or_else(|e| e.into_inner());
            for p in processes.iter() {
                eprintln!(
                    "--- {} (last lines of {}):\n{}",
                    p.name,
                    p.log.display(),
                    p.log_tail(15)
                );
            }
        }
        self.teardown();
    }
}

async fn client_config(kubeconfig: &Path) -> Result<Config> {
    let kc = Kubeconfig::read_from(kubeconfig)?;
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(60));
    // kube's default layer retries 429 up to 15 times with backoff up to 1000 s: a PDB refusal
    // from the Eviction API would hang a test for minutes instead of coming back as an answer.
    config.default_retry = false;
    Ok(config)
}

async fn wait_for_tcp(name: &str, port: u16, process: &mut ManagedProcess, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        process.check_alive()?;
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::NotReady {
                component: name.into(),
                seconds: timeout.as_secs(),
                detail: format!("nothing listens on 127.0.0.1:{port}"),
                log: process.log.clone(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn write_kubeconfig(dir: &Path, server: &str, pki: &Pki) -> Result<PathBuf> {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kube-healer-testenv", "cluster": {
            "server": server,
            "certificate-authority-data": b64(&pki.ca_pem),
        }}],
        "users": [{"name": "admin", "user": {
            "client-certificate-data": b64(&pki.admin_cert_pem),
            "client-key-data": b64(&pki.admin_key_pem),
        }}],
        "contexts": [{"name": "kube-healer-testenv", "context": {"cluster": "kube-healer-testenv", "user": "admin"}}],
        "current-context": "kube-healer-testenv",
    });
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&kubeconfig).expect("static json"),
    )
    .map_err(io("writing kubeconfig"))?;
    Ok(path)
}

fn strings<const N: usize>(items: [&str; N]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn etcd_args(dir: &Path, client: u16, peer: u16) -> Vec<String> {
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut args = strings(["--name=default", "--unsafe-no-fsync=true", "--log-level=warn"]);
    args.extend([
        format!("--data-dir={}", path(&dir.join("etcd-data"))),
        format!("--listen-client-urls={client_url}"),
        format!("--advertise-client-urls={client_url}"),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster=default={peer_url}"),
        "--quota-backend-bytes=8589934592".to_string(),
    ]);
    args
}

const AUDIT_LOG: &str = "audit.log";

/// Metadata of every request, except the bulk that kwok and the controllers write about nodes
/// and pods (heartbeats, status), which no operator under test makes.
const AUDIT_POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    verbs: [update, patch]
    resources:
      - group: ""
        resources: [nodes/status, pods/status]
  - level: None
    verbs: [update, patch]
    resources:
      - group: coordination.k8s.io
        resources: [leases]
    namespaces: [kube-node-lease]
  - level: None
    users: [system:kube-controller-manager, system:kube-scheduler]
  - level: Metadata
"#;

fn apiserver_args(options: &ClusterOptions, pki: &Pki, etcd_port: u16, port: u16) -> Vec<String> {
    let mut args = strings([
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        "--authorization-mode=Node,RBAC",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--service-cluster-ip-range=10.0.0.0/24",
        "--allow-privileged=true",
        "--profiling=false",
        "--endpoint-reconciler-type=none",
        "--v=1",
    ]);
    args.extend([
        format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
        format!("--secure-port={port}"),
        format!("--tls-cert-file={}", path(&pki.serving_cert)),
        format!("--tls-private-key-file={}", path(&pki.serving_key)),
        format!("--client-ca-file={}", path(&pki.ca_cert)),
        format!("--service-account-key-file={}", path(&pki.service_account_pub)),
        format!(
            "--service-account-signing-key-file={}",
            path(&pki.service_account_key)
        ),
    ]);
    if options.high_throughput {
        args.extend(strings([
            "--max-requests-inflight=3000",
            "--max-mutating-requests-inflight=1000",
        ]));
    }
    args.extend(options.extra_apiserver_args.iter().cloned());
    args
}

fn controller_manager_args(options: &ClusterOptions, kubeconfig: &Path, pki: &Pki) -> Vec<String> {
    let mut args = strings([
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        "--secure-port=0",
        "--allocate-node-cidrs=false",
        "--v=1",
    ]);
    args.extend([
        format!("--kubeconfig={}", path(kubeconfig)),
        format!("--root-ca-file={}", path(&pki.ca_cert)),
        format!(
            "--service-account-private-key-file={}",
            path(&pki.service_account_key)
        ),
        format!("--cluster-signing-cert-file={}", path(&pki.ca_cert)),
        format!("--cluster-signing-key-file={}", path(&pki.ca_key)),
        format!(
            "--node-monitor-period={}s",
            options.node_monitor_period.as_secs().max(1)
        ),
        format!(
            "--node-monitor-grace-period={}s",
            options.node_monitor_grace_period.as_secs().max(1)
        ),
    ]);
    if options.high_throughput {
        args.extend(strings(["--kube-api-qps=1000", "--kube-api-burst=2000"]));
    } else {
        args.extend(strings(["--kube-api-qps=100", "--kube-api-burst=200"]));
    }
    args
}

fn scheduler_args(kubeconfig: &Path) -> Vec<String> {
    let mut args = strings([
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        "--secure-port=0",
        "--v=1",
    ]);
    args.push(format!("--kubeconfig={}", path(kubeconfig)));
    args
}

/// The stock stages kwok uses for nodes and pods, and the repository's scenario stages.
const STOCK_STAGES: &[&str] = &[
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "node/chaos/node-not-ready.yaml",
    "pod/general/pod-create.yaml",
    "pod/general/pod-init-container-running.yaml",
    "pod/general/pod-init-container-completed.yaml",
    "pod/general/pod-ready.yaml",
    "pod/general/pod-complete.yaml",
    "pod/general/pod-delete.yaml",
];

fn kwok_args(cluster: &TestCluster, port: u16) -> Result<Vec<String>> {
    let scenarios = cluster.dir_path.join("scenario-stages.yaml");
    std::fs::write(&scenarios, crate::scenario::SCENARIO_STAGES).map_err(io("writing scenario stages"))?;
    let mut args = strings([
        "--manage-all-nodes=false",
        "--cidr=10.244.0.0/16",
        "--node-ip=10.0.0.2",
    ]);
    args.extend([
        format!("--kubeconfig={}", path(&cluster.kubeconfig)),
        format!("--manage-nodes-with-label-selector={KWOK_NODE_LABEL}=true"),
        format!(
            "--node-lease-duration-seconds={}",
            cluster.options.node_lease_duration_seconds
        ),
        format!("--server-address=127.0.0.1:{port}"),
    ]);
    for stage in STOCK_STAGES {
        let file = cluster.binaries.stock_stage(stage);
        if !file.exists() {
            return Err(Error::Other(format!(
                "stock kwok stage missing: {}",
                file.display()
            )));
        }
        args.push(format!("--config={}", path(&file)));
    }
    args.push(format!("--config={}", path(&scenarios)));
    Ok(args)
}
