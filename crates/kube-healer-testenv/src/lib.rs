//! A real local Kubernetes control plane for kube-healer's tests, benchmarks and demo.
//!
//! [`TestCluster::start`] runs etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
//! kwok on 127.0.0.1 from binaries built out of the Go module proxy (tests/controlplane/build.sh).
//! Nothing here is a mock: eviction, PodDisruptionBudgets, watches, RBAC and CRD validation are the
//! API server's own.

pub mod binaries;
pub mod chart;
pub mod cluster;
pub mod crds;
pub mod error;
pub mod faults;
pub mod fixtures;
pub mod harness;
pub mod http;
pub mod nodes;
pub mod pki;
pub mod process;
pub mod scenario;
pub mod wait;

pub use cluster::{ClusterOptions, KWOK_NODE_LABEL, TestCluster};
pub use error::{Error, Result};
pub use scenario::{Scenario, scenario_pod};
