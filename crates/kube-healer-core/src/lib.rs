//! kube-healer's pure logic: classify, match policies, gate and decide. No client, no clock: time
//! is a parameter (Unix seconds), and the cluster is whatever implements [`ClusterView`].

pub mod carry;
pub mod classify;
pub mod cluster;
pub mod convert;
pub mod decide;
pub mod events;
pub mod finding;
pub mod marks;
pub mod policy;
pub mod thresholds;
pub mod timeline;
pub mod trust;
pub mod view;

pub use classify::{Report, classify_node, classify_pod, classify_snapshot};
pub use cluster::{ClusterView, NodeLookup, Snapshot};
pub use finding::{Alike, Burst, Correlated, CorrelatedCause, Finding, PodsKey, Subject, Workload};
pub use thresholds::{Knobs, PodsAlike, default_for};
