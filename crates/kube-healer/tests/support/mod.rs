//! Running the operator binary against the test cluster, as a user would run it, and the helpers
//! the e2e tests share, one file per concern:
//!
//! - `operator`: the `kube-healer run` process of a test, as the chart's ServiceAccount;
//! - `policies`: the test's own policies, its `--policy-selector` and limits;
//! - `records`: waiting for a policy's HealingActions and reading their outcome;
//! - `nodes`: nodes kwok does not manage, their conditions and events;
//! - `pods`: failing pods;
//! - `once`: leaders among replicas, and the check that each failure was healed exactly once;
//! - `flight`: the flight recorder's recording of a scenario, replayed and compared to the live run.
//!
//! Everything is re-exported here: tests `use support::{...}` without knowing the files.

#![allow(dead_code)]

mod crds;
pub mod flight;
mod nodes;
pub mod once;
mod operator;
mod pods;
mod policies;
mod records;

use std::time::Duration;

// Each test binary uses a part of the helpers (hence also `dead_code` above).
#[allow(unused_imports)]
pub use crds::shaped_crd;
#[allow(unused_imports)]
pub use nodes::{PostedNodes, cordon, kernel_deadlock, node_event, ready, unmanaged_node};
#[allow(unused_imports)]
pub use operator::{CHART_NAMESPACE, JOBS_NAMESPACE, JOBS_SERVICE_ACCOUNT, Operator};
#[allow(unused_imports)]
pub use pods::{deployment, evicted_pod, lone_crash_loop};
#[allow(unused_imports)]
pub use policies::{create_policy, delete_evicted, limits, selector};
#[allow(unused_imports)]
pub use records::{
    all_records, healed, message, outcomes_by_pod, phase_reason, pod_outcome, records, records_naming,
    restarted,
};

/// How long a test waits for a heal.
pub const HEAL: Duration = Duration::from_secs(60);

/// `kube-healer explain TARGET` against the test's cluster: its output, or its failure with both
/// streams.
pub fn explain(ctx: &kube_healer_testenv::harness::Ctx, target: &str) -> anyhow::Result<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kube-healer"))
        .args(["explain", target, "--kubeconfig"])
        .arg(ctx.cluster.kubeconfig_path())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(
        out.status.success(),
        "explain {target} failed:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(text)
}

/// The time `offset_secs` from now, RFC 3339.
pub fn now_rfc3339(offset_secs: i64) -> String {
    (k8s_openapi::jiff::Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_secs(offset_secs))
        .to_string()
}

/// The API server's answers to a client's calls, without those a retry followed by design (429
/// and 5xx, as a loaded API server gives now and then): what the calls came to.
#[allow(dead_code)]
pub fn answered(codes: Vec<u16>) -> Vec<u16> {
    codes.into_iter().filter(|c| *c != 429 && *c < 500).collect()
}
