//! The knobs of a local cluster, with defaults that make node-failure tests fast: a separate file
//! so that callers (tests, the benchmark, the demo) read what they may set without the machinery.

use std::time::Duration;

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
    /// status writes), read by [`TestCluster::forbidden_impersonated`](super::TestCluster::forbidden_impersonated). Off for scale runs.
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
