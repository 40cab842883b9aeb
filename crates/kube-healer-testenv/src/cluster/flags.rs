//! The command line of each component: what makes the cluster local (127.0.0.1, free ports, one
//! temporary directory), fast (the node monitor's periods) and quiet, in one place to read.

use std::path::Path;

use crate::error::{Error, Result, io};
use crate::pki::Pki;

use super::{ClusterOptions, KWOK_NODE_LABEL, TestCluster};

fn strings<const N: usize>(items: [&str; N]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

pub(super) fn path(p: &Path) -> String {
    p.display().to_string()
}

pub(super) fn etcd_args(dir: &Path, client: u16, peer: u16) -> Vec<String> {
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

pub(super) fn apiserver_args(options: &ClusterOptions, pki: &Pki, etcd_port: u16, port: u16) -> Vec<String> {
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

pub(super) fn controller_manager_args(options: &ClusterOptions, kubeconfig: &Path, pki: &Pki) -> Vec<String> {
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

pub(super) fn scheduler_args(kubeconfig: &Path) -> Vec<String> {
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

pub(super) fn kwok_args(cluster: &TestCluster, port: u16) -> Result<Vec<String>> {
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
