//! Drain: cordon the node, then evict its pods through the Eviction API (PodDisruptionBudgets
//! apply), leaving the pods `kubectl drain` leaves by default and kube-healer's own (the rule is
//! core's `left_alone`). The drain stops at its timeout and says which pods were left and why;
//! the node stays cordoned either way, and is uncordoned when the failure clears (only if
//! kube-healer cordoned it).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams};
use kube_healer_api::action::DrainParams;
use kube_healer_api::record::ActionPhase;
use kube_healer_api::{HealingActionSpec, reasons};
use kube_healer_core::decide::{LeftAlone, left_alone};
use tokio::time::Instant;

use crate::act::Outcome;
use crate::act::node;
use crate::act::pod::{EvictError, evict};
use crate::protocol::Leading;

/// A drain's default timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Pods named in a record's message, at most.
const NAMED: usize = 10;

fn names(pods: &[String]) -> String {
    let mut s = pods.iter().take(NAMED).cloned().collect::<Vec<_>>().join(", ");
    if pods.len() > NAMED {
        s.push_str(&format!(" and {} more", pods.len() - NAMED));
    }
    s
}

/// The pods a drain left, as the record says it: counts of those left by rule, and the names of
/// those a person may want to move by hand or opt in for.
fn left_alone_said(left: &BTreeMap<LeftAlone, Vec<String>>) -> String {
    let count = |why| left.get(&why).map_or(0, Vec::len);
    let mut said = format!(
        "left alone: {} DaemonSet, {} mirror, {} already terminating",
        count(LeftAlone::DaemonSet),
        count(LeftAlone::Mirror),
        count(LeftAlone::Terminating)
    );
    for (why, pods) in left.iter().filter(|(why, _)| why.named()) {
        said.push_str(&format!("; {}: {}", why.as_str(), names(pods)));
    }
    said
}

pub async fn drain(
    client: &Client,
    spec: &HealingActionSpec,
    params: &DrainParams,
    protected_namespaces: &[String],
    leading: &Leading,
) -> Outcome {
    let node = &spec.target.name;
    let timeout = params.timeout.map_or(DEFAULT_TIMEOUT, |t| t.as_std());
    let deadline = Instant::now() + timeout;
    let cordoned = node::cordon(client, spec).await;
    if !cordoned.succeeded() {
        return Outcome::new(
            cordoned.phase,
            cordoned.reason,
            format!("drain stopped before evicting: {}", cordoned.message),
            1,
        );
    }
    // One list of the node's pods, by field selector: a drain is rare and bounded by the rate.
    let all: Api<Pod> = Api::all(client.clone());
    let on_node = match all
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await
    {
        Ok(list) => list.items,
        Err(e) => {
            return Outcome::new(
                ActionPhase::Failed,
                reasons::API_ERROR,
                format!("listing the pods on {node} failed: {e}; the node stays cordoned"),
                2,
            );
        }
    };
    let (to_evict, left) = sort_out(&on_node, params, protected_namespaces);
    let evictions = to_evict.iter().map(|pod| {
        let grace = kube_healer_core::decide::drain_grace(pod, params);
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        async move {
            let (result, calls) = evict(&pods, &name, &uid, grace, deadline, leading).await;
            (format!("{ns}/{name}"), result, calls)
        }
    });
    let results = join_all(evictions).await;
    let calls: i32 = 2 + results.iter().map(|r| r.2).sum::<i32>();
    let evictions = Evictions::of(results, to_evict.len());
    evictions.outcome(spec, &left, timeout, calls)
}

/// The pods to evict, and those left alone by rule (by why).
fn sort_out<'a>(
    on_node: &'a [Pod],
    params: &DrainParams,
    protected_namespaces: &[String],
) -> (Vec<&'a Pod>, BTreeMap<LeftAlone, Vec<String>>) {
    let mut left: BTreeMap<LeftAlone, Vec<String>> = BTreeMap::new();
    let mut to_evict = Vec::new();
    for pod in on_node {
        match left_alone(pod, params, protected_namespaces) {
            Some(why) => {
                let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
                let name = pod.metadata.name.as_deref().unwrap_or_default();
                left.entry(why).or_default().push(format!("{ns}/{name}"));
            }
            None => to_evict.push(pod),
        }
    }
    (to_evict, left)
}

/// What the evictions came to.
struct Evictions {
    tried: usize,
    evicted: usize,
    /// Kept by a PodDisruptionBudget until the timeout.
    blocked: Vec<String>,
    /// Refused otherwise, with the error.
    failed: Vec<String>,
    /// Stopped as this replica lost the leadership.
    stopped: usize,
}

impl Evictions {
    fn of(results: Vec<(String, Result<(), EvictError>, i32)>, tried: usize) -> Self {
        let mut e = Evictions {
            tried,
            evicted: 0,
            blocked: Vec::new(),
            failed: Vec::new(),
            stopped: 0,
        };
        for (pod, result, _) in results {
            match result {
                Ok(()) | Err(EvictError::Gone) => e.evicted += 1,
                Err(EvictError::Blocked(_)) => e.blocked.push(pod),
                Err(EvictError::Stopped) => e.stopped += 1,
                Err(EvictError::Api(err)) => e.failed.push(format!("{pod} ({err})")),
            }
        }
        e
    }

    /// The drain's outcome, as its record says it.
    fn outcome(
        &self,
        spec: &HealingActionSpec,
        left: &BTreeMap<LeftAlone, Vec<String>>,
        timeout: Duration,
        calls: i32,
    ) -> Outcome {
        let Evictions {
            tried,
            evicted,
            blocked,
            failed,
            stopped,
        } = self;
        if *stopped > 0 {
            // Left unfinished (phase Running): the next leader resumes the drain.
            return Outcome::new(
                ActionPhase::Running,
                reasons::LEADERSHIP_LOST,
                format!(
                    "drain stopped after evicting {evicted} of {tried}: this replica lost the leadership; the node stays cordoned and the next leader resumes the drain"
                ),
                calls,
            );
        }
        let left_alone = left_alone_said(left);
        let wait = kube_healer_api::Duration::from_secs(timeout.as_secs());
        if blocked.is_empty() && failed.is_empty() {
            let message = format!(
                "cordoned {} and evicted {evicted} pods ({left_alone})",
                spec.target.reference
            );
            Outcome::new(ActionPhase::Succeeded, reasons::COMPLETED, message, calls)
        } else if !blocked.is_empty() {
            let failed = if failed.is_empty() {
                String::new()
            } else {
                format!("; failed: {}", names(failed))
            };
            let message = format!(
                "drain stopped after {wait}: evicted {evicted} of {tried}; a PodDisruptionBudget kept {}{failed}; the node stays cordoned ({left_alone})",
                names(blocked),
            );
            Outcome::new(ActionPhase::Failed, reasons::TIMEOUT, message, calls)
        } else {
            let message = format!(
                "evicted {evicted} of {tried}; failed: {}; the node stays cordoned ({left_alone})",
                names(failed)
            );
            Outcome::new(ActionPhase::Failed, reasons::API_ERROR, message, calls)
        }
    }
}
