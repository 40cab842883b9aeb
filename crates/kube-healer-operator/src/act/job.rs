//! RunJob: a Job from a NodeJob the cluster admin defined, pinned to the node (nodeName,
//! tolerating its taints), for node remediations such as dropping caches or restarting a
//! container runtime. The policy only names the NodeJob: the pod spec, its host access and its
//! privilege come from the definition, read fresh right before the Job is created; the Job runs
//! in the operator's jobs namespace under its jobs ServiceAccount. The Job's name derives from
//! the decision, so a restart never creates it twice; its outcome is followed through a watch on
//! that one Job.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::Client;
use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use kube_healer_api::node_job::{NodeJob, NodeJobSpec};
use kube_healer_api::record::ActionPhase;
use kube_healer_api::{HealingActionSpec, NODE_JOB_LABEL, NODE_LABEL, POLICY_LABEL, reasons};
use serde_json::json;

use crate::act::{Outcome, node};
use crate::protocol::Leading;
use crate::record::label_value;
use crate::retry::{self, Backoff};

/// Where node jobs run: the operator's jobs namespace, under its jobs ServiceAccount (both the
/// chart's, never the policy's or the definition's).
#[derive(Clone, Debug, PartialEq)]
pub struct JobsPlace {
    pub namespace: String,
    pub service_account: String,
}

impl Default for JobsPlace {
    fn default() -> Self {
        JobsPlace {
            namespace: "kube-healer-jobs".into(),
            service_account: "kube-healer-node-jobs".into(),
        }
    }
}

/// The Job's name for a decision: `kube-healer-` and the record name's hash.
pub fn job_name(record: &str) -> String {
    let hash = record.rsplit('-').next().unwrap_or(record);
    format!("kube-healer-{hash}")
}

/// Why a NodeJob's definition makes no Job.
#[derive(Debug, thiserror::Error)]
pub enum BadNodeJob {
    #[error("NodeJob {0}: spec.podSpec must be an object (a core/v1 PodSpec)")]
    NotAnObject(String),
    #[error("NodeJob {0}: spec.podSpec.tolerations must be a list")]
    TolerationsNotAList(String),
    #[error("NodeJob {job}: spec.podSpec is not a valid PodSpec: {source}")]
    NotAPodSpec {
        job: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The Job for a decision, from the NodeJob `node_job` defined as `definition`.
pub fn job(
    record: &str,
    spec: &HealingActionSpec,
    node_job: &str,
    definition: &NodeJobSpec,
    place: &JobsPlace,
) -> Result<Job, BadNodeJob> {
    let node = &spec.target.name;
    let mut pod_spec = definition.pod_spec.clone();
    let Some(object) = pod_spec.as_object_mut() else {
        return Err(BadNodeJob::NotAnObject(node_job.to_string()));
    };
    object.insert("nodeName".into(), json!(node));
    object.insert("restartPolicy".into(), json!("Never"));
    object.insert("serviceAccountName".into(), json!(place.service_account));
    // A node job reads no API unless its definition says so.
    object
        .entry("automountServiceAccountToken")
        .or_insert(json!(false));
    // The node is failing: it is likely tainted (unreachable, not-ready, kube-healer's own).
    let tolerations = object.entry("tolerations").or_insert_with(|| json!([]));
    match tolerations.as_array_mut() {
        Some(list) => list.push(json!({"operator": "Exists"})),
        None => {
            return Err(BadNodeJob::TolerationsNotAList(node_job.to_string()));
        }
    }
    let labels = json!({
        POLICY_LABEL: label_value(&spec.policy),
        NODE_LABEL: label_value(node),
        NODE_JOB_LABEL: label_value(node_job),
        "app.kubernetes.io/managed-by": "kube-healer",
    });
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(record), "namespace": place.namespace, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": definition.deadline_seconds(),
            "ttlSecondsAfterFinished": definition.ttl_seconds(),
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    });
    serde_json::from_value(job).map_err(|source| BadNodeJob::NotAPodSpec {
        job: node_job.to_string(),
        source,
    })
}

/// The Job's end: Some(true) complete, Some(false) failed, None running.
fn finished(job: &Job) -> Option<(bool, String)> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .filter(|c| c.status == "True")
        .find_map(|c| match c.type_.as_str() {
            "Complete" => Some((true, String::new())),
            "Failed" => Some((
                false,
                format!(
                    "{}: {}",
                    c.reason.clone().unwrap_or_default(),
                    c.message.clone().unwrap_or_default()
                ),
            )),
            _ => None,
        })
}

pub async fn run_job(
    client: &Client,
    record: &str,
    spec: &HealingActionSpec,
    node_job: &str,
    place: &JobsPlace,
    leading: &Leading,
) -> Outcome {
    let mut calls = 0;
    let definition = match definition(client, node_job, &mut calls).await {
        Ok(definition) => definition,
        Err(outcome) => return outcome,
    };
    let job = match job(record, spec, node_job, &definition, place) {
        Ok(job) => job,
        Err(e) => return Outcome::unsafe_because(e.to_string()),
    };
    // The node is marked before its Job exists, so that the budget counts it, across restarts
    // and failovers, for as long as the Job may run; the mark comes off when the Job has been
    // followed to its end (a leader that takes over follows it, and takes the mark off).
    let (node, uid) = (&spec.target.name, Some(spec.target.uid.as_str()));
    if let Err(e) = node::update_node(client, node, uid, |n| node::job_mark_patch(n, &spec.policy)).await {
        return crate::act::failure::api_failure(&e, calls + 1);
    }
    let mut outcome = create_and_follow(client, spec, (node_job, &definition), job, place, leading).await;
    if outcome.phase != ActionPhase::Running {
        outcome.calls += 1;
        if let Err(e) = node::update_node(client, node, uid, |n| node::job_done_patch(n, &spec.policy)).await
        {
            // Left on the node, it keeps the node counted until the policy's failure is over
            // and the node has recovered: then it is let go as a stale mark.
            tracing::warn!(%node, error = %e, "the node job's mark could not be taken off");
        }
    }
    outcome.calls += calls + 1;
    outcome
}

async fn create_and_follow(
    client: &Client,
    spec: &HealingActionSpec,
    (node_job, definition): (&str, &NodeJobSpec),
    job: Job,
    place: &JobsPlace,
    leading: &Leading,
) -> Outcome {
    let name = job.metadata.name.clone().unwrap_or_default();
    let reference = format!("job/{}/{name}", place.namespace);
    let jobs: Api<Job> = Api::namespaced(client.clone(), &place.namespace);
    let post = PostParams::default();
    let (created, calls) = retry::call(Backoff::ACTION, "create job", || jobs.create(&post, &job)).await;
    match created {
        Ok(_) => tracing::info!(job = %reference, node = %spec.target.name, "job created"),
        // Created before a restart: follow it.
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(kube::Error::Api(s)) => {
            return Outcome::new(
                ActionPhase::Failed,
                reasons::API_ERROR,
                format!("creating {reference} was refused: {}", s.message),
                calls,
            );
        }
        Err(e) => return crate::act::failure::api_failure(&e, calls),
    }
    let deadline = definition.deadline_seconds() as u64 + 60;
    let mut outcome = follow(jobs, (&name, &reference), spec, node_job, deadline, leading).await;
    outcome.calls += calls;
    outcome
}

/// The NodeJob as it is now: an admin who removed or changed it meanwhile is obeyed.
async fn definition(client: &Client, node_job: &str, calls: &mut i32) -> Result<NodeJobSpec, Outcome> {
    let definitions: Api<NodeJob> = Api::all(client.clone());
    let (read, n) = retry::call(Backoff::ACTION, "get nodejob", || definitions.get_opt(node_job)).await;
    *calls += n;
    match read {
        Ok(Some(found)) => Ok(found.spec),
        Ok(None) => Err(Outcome::new(
            ActionPhase::Failed,
            reasons::NODE_JOB_UNDEFINED,
            format!(
                "NodeJob {node_job} is not defined: only node jobs the cluster admin defined run (kubectl get nodejobs)"
            ),
            *calls,
        )),
        Err(e) => Err(crate::act::failure::api_failure(&e, *calls)),
    }
}

/// Follows the Job to its end, its deletion, its deadline or the loss of the leadership.
async fn follow(
    jobs: Api<Job>,
    (name, reference): (&str, &str),
    spec: &HealingActionSpec,
    node_job: &str,
    deadline: u64,
    leading: &Leading,
) -> Outcome {
    let ended = await_condition(jobs, name, |job: Option<&Job>| {
        job.is_none_or(|j| finished(j).is_some())
    });
    let Some(followed) = leading.within(Duration::from_secs(deadline), ended).await else {
        // Left unfinished (phase Running): the next leader follows the Job (same name).
        let message = format!(
            "stopped following {reference}: this replica lost the leadership; the next leader follows it"
        );
        return Outcome::new(ActionPhase::Running, reasons::LEADERSHIP_LOST, message, 1);
    };
    let target = &spec.target.reference;
    let (phase, reason, message) = match followed {
        Ok(Ok(Some(job))) => match finished(&job) {
            Some((true, _)) => (
                ActionPhase::Succeeded,
                reasons::COMPLETED,
                format!("{reference} (NodeJob {node_job}) completed on {target}"),
            ),
            Some((false, why)) => (
                ActionPhase::Failed,
                reasons::API_ERROR,
                format!("{reference} (NodeJob {node_job}) failed on {target}: {why}"),
            ),
            None => (
                ActionPhase::Failed,
                reasons::INTERRUPTED,
                format!("{reference} ended without a result"),
            ),
        },
        Ok(Ok(None)) => (
            ActionPhase::Failed,
            reasons::TARGET_GONE,
            format!("{reference} was deleted before it finished"),
        ),
        Ok(Err(e)) => (
            ActionPhase::Failed,
            reasons::API_ERROR,
            format!("following {reference}: {e}"),
        ),
        Err(_) => (
            ActionPhase::Failed,
            reasons::TIMEOUT,
            format!("{reference} did not finish within {deadline}s"),
        ),
    };
    Outcome::new(phase, reason, message, 1)
}
