//! A complete local cluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
//! kwok, all on 127.0.0.1 with free ports, in a temporary directory that teardown removes.
//!
//! [`TestCluster`] is one type; its parts live in one file per concern, so that each stays short
//! and a change to one (a flag, the audit policy) is read without the others:
//!
//! - `options`: the knobs ([`ClusterOptions`]);
//! - `start`: starting the components in order and waiting until each is ready;
//! - `flags`: the command line of each component;
//! - `kubeconfig`: the admin kubeconfig and the client configuration read from it;
//! - `apiserver`: stopping, restarting and doubling kube-apiserver during a test;
//! - `audit`: the API server's audit log and what the harness and tests read from it;
//! - `teardown`: stopping the processes and removing the directory.
//!
//! This file holds the type itself, its accessors and kubectl.

mod apiserver;
mod audit;
mod flags;
mod kubeconfig;
mod options;
mod start;
mod teardown;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use kube::{Client, Config};

use crate::binaries::Binaries;
use crate::error::{Error, Result, io};
use crate::process::{ManagedProcess, Reaper};

pub use options::ClusterOptions;

/// The label kwok selects the nodes it manages by. Removing it stops the node's heartbeats.
pub const KWOK_NODE_LABEL: &str = "kube-healer.test/kwok";

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
}
