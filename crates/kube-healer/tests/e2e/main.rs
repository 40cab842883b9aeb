//! The end-to-end tests that share one local cluster, one module per former test binary: their
//! trials run side by side on it (libtest-mimic's threads), so that the suite starts one cluster
//! and links one binary for all of them instead of one each.
//!
//! A test belongs here only if it is isolated from the others on a shared cluster: it runs its
//! own operator on its own policies (`--policy-selector` on the test's id), in its own namespaces,
//! on its own nodes, and asserts nothing about the cluster as a whole. The other e2e binaries in
//! tests/ each say in their first doc comment why they need a cluster of their own. Two limits
//! that keep the modules here apart from those:
//!
//! - `ha`'s failover is the one test on this cluster that elects a leader on the chart's Lease
//!   (kube-healer/kube-healer-leader); a second election test needs a cluster of its own.
//! - No test here acts on a node NotReady or unreachable: the operator holds such actions as
//!   Correlated once 3 nodes and 30% of the cluster's are down together, a count over every node,
//!   and the nodes the tests here leave behind (unmanaged ones go Unknown) stay in it.

#[path = "../support/mod.rs"]
mod support;

mod actions;
mod batch;
mod budgets;
mod crash;
mod drain;
mod episodes;
mod forged;
mod ha;
mod heal;
mod inherited;
mod limits;
mod lost_node;
mod node_jobs;
mod observability;
mod ownership;
mod pause;
mod pods_alike;
mod probe;
mod rate;
mod recheck;
mod remediate;
mod replace;
mod returns;
mod rollout;
mod sick_node;
mod timeline;
mod workloads;

use kube_healer_testenv::ClusterOptions;

fn main() -> std::process::ExitCode {
    let tests = [
        actions::tests(),
        batch::tests(),
        budgets::tests(),
        crash::tests(),
        drain::tests(),
        episodes::tests(),
        forged::tests(),
        ha::tests(),
        heal::tests(),
        inherited::tests(),
        limits::tests(),
        lost_node::tests(),
        node_jobs::tests(),
        observability::tests(),
        ownership::tests(),
        pause::tests(),
        pods_alike::tests(),
        probe::tests(),
        rate::tests(),
        recheck::tests(),
        remediate::tests(),
        replace::tests(),
        returns::tests(),
        rollout::tests(),
        sick_node::tests(),
        timeline::tests(),
        workloads::tests(),
    ]
    .into_iter()
    .flatten()
    .collect();
    kube_healer_testenv::harness::run(ClusterOptions::default(), tests)
}
