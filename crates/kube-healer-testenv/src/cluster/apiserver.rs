//! kube-apiserver during a test: stopped and started again on the same port and etcd (as in a
//! control-plane upgrade), or a second one on the same etcd (as in a highly available control
//! plane). Used by the restart tests.

use std::time::Duration;

use kube::{Client, Config};

use crate::error::{Error, Result};
use crate::process::free_port;

use super::TestCluster;
use super::flags::path;

impl TestCluster {
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
}
