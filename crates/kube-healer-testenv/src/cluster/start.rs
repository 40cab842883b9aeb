//! Starting a cluster: etcd first, then kube-apiserver, then the controller-manager, the scheduler
//! and kwok, each waited for before what depends on it, so that a test starts on a cluster that
//! answers and a component that fails to start is named with its log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::binaries::Binaries;
use crate::error::{Error, Result, io};
use crate::pki::Pki;
use crate::process::{ManagedProcess, Reaper, free_port};

use super::flags::{apiserver_args, controller_manager_args, etcd_args, kwok_args, scheduler_args};
use super::kubeconfig::{client_config, write_kubeconfig};
use super::{ClusterOptions, TestCluster, audit};

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
            apiserver_args.extend(audit::apiserver_flags(&dir_path)?);
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

    pub(super) async fn wait_apiserver_ready(&self, timeout: Duration) -> Result<()> {
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
