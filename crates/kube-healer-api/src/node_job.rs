//! NodeJob: a job the cluster admin defines for the RunJob action, cluster-scoped.
//!
//! A policy only names a NodeJob; what the job runs, and the host access and privilege it has,
//! come from the definition alone. Whoever may write policies therefore borrows no more power
//! than the admin granted: a policy cannot run a pod spec of its own, choose a ServiceAccount or
//! a namespace. kube-healer runs the Job in its jobs namespace, under its jobs ServiceAccount,
//! pinned to the failing node.

use kube::{CustomResource, KubeSchema};
use schemars::{Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The longest a node job may run, in seconds: also how long its record counts as in flight
/// when the leader that started it is gone.
pub const MAX_DEADLINE_SECONDS: i64 = 3600;
/// A node job's run time limit when its definition sets none, in seconds.
pub const DEFAULT_DEADLINE_SECONDS: i64 = 600;
/// How long a finished Job is kept when the definition sets none, in seconds.
pub const DEFAULT_TTL_SECONDS: i32 = 3600;

#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "healing.kubehealer.io",
    version = "v1alpha1",
    kind = "NodeJob",
    shortname = "nj",
    doc = "NodeJob is a job the cluster admin defines for HealingPolicies' RunJob action: the pod spec, host access and privilege of a Job kube-healer pins to a failing node. Policies only name it.",
    printcolumn = r#"{"name":"Description","type":"string","jsonPath":".spec.description"}"#,
    printcolumn = r#"{"name":"Deadline","type":"integer","jsonPath":".spec.activeDeadlineSeconds"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.podSpec.serviceAccountName) && !has(self.podSpec.serviceAccount)")
    .message("podSpec.serviceAccountName: node jobs run under kube-healer's jobs ServiceAccount (chart value nodeJobs.serviceAccount); grant that account what the job needs instead of naming another"))]
#[x_kube(validation = Rule::new("!has(self.podSpec.nodeName)")
    .message("podSpec.nodeName: kube-healer pins the Job to the failing node itself; remove nodeName"))]
pub struct NodeJobSpec {
    /// What the job does, for people reading policies and records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub description: Option<String>,
    /// The Job's pod spec (a core/v1 PodSpec), with exactly the host access and privilege the job
    /// needs. kube-healer sets nodeName to the failing node, restartPolicy to Never and
    /// serviceAccountName to its jobs ServiceAccount, tolerates every taint, and leaves the rest
    /// as defined; the API server validates it when the Job is created, and the jobs namespace's
    /// Pod Security admission applies to its pod.
    #[schemars(schema_with = "pod_spec")]
    pub pod_spec: serde_json::Value,
    /// Upper bound on the Job's run time, in seconds (default 600, at most 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub active_deadline_seconds: Option<i64>,
    /// How long a finished Job is kept, in seconds (default 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 604800))]
    pub ttl_seconds_after_finished: Option<i32>,
}

impl NodeJobSpec {
    /// The Job's run time limit, in seconds.
    pub fn deadline_seconds(&self) -> i64 {
        self.active_deadline_seconds
            .unwrap_or(DEFAULT_DEADLINE_SECONDS)
            .clamp(1, MAX_DEADLINE_SECONDS)
    }

    pub fn ttl_seconds(&self) -> i32 {
        self.ttl_seconds_after_finished.unwrap_or(DEFAULT_TTL_SECONDS)
    }
}

/// A PodSpec kept as given, with the fields the definition's rules read declared (the API server
/// hides undeclared fields of a preserved object from CEL).
fn pod_spec(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": {
            "serviceAccountName": {"type": "string"},
            "serviceAccount": {"type": "string"},
            "nodeName": {"type": "string"},
        },
    })
}

/// A node job pinned to the node: the policy names one of the NodeJobs the cluster admin
/// defined, and nothing else. The fields that once carried a pod spec of the policy's own are
/// declared only so that the API server can refuse them with a way forward.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.podSpec) && !has(self.__namespace__) && !has(self.activeDeadlineSeconds) && !has(self.ttlSecondsAfterFinished)")
    .message("runJob no longer takes a pod spec: node jobs are defined by the cluster admin as NodeJob resources (kubectl get nodejobs). Move podSpec, activeDeadlineSeconds and ttlSecondsAfterFinished into a NodeJob and name it here: runJob: {nodeJob: <name>} (README, Node jobs)"))]
#[x_kube(validation = Rule::new("has(self.nodeJob)")
    .message("runJob needs nodeJob: the name of a NodeJob the cluster admin defined (kubectl get nodejobs)"))]
pub struct RunJobParams {
    /// The NodeJob to run (cluster-scoped, defined by the cluster admin).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$')")
        .message("must be a NodeJob's name (lowercase letters, digits, '-' and '.')"))]
    #[schemars(length(min = 1, max = 253))]
    pub node_job: String,
    /// Removed (refused by the API server): the Job's namespace is the operator's jobs namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Removed (refused by the API server): the pod spec belongs in a NodeJob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::removed_object")]
    pub pod_spec: Option<serde_json::Value>,
    /// Removed (refused by the API server): set on the NodeJob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    /// Removed (refused by the API server): set on the NodeJob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<i32>,
}

impl RunJobParams {
    pub fn named(node_job: &str) -> Self {
        RunJobParams {
            node_job: node_job.into(),
            namespace: None,
            pod_spec: None,
            active_deadline_seconds: None,
            ttl_seconds_after_finished: None,
        }
    }

    /// Why this step cannot run, for a policy stored before node jobs were the admin's: the
    /// API server refuses these fields now, but an object stored earlier is served as stored.
    pub fn removed_fields(&self) -> Option<&'static str> {
        let removed = self.namespace.is_some()
            || self.pod_spec.is_some()
            || self.active_deadline_seconds.is_some()
            || self.ttl_seconds_after_finished.is_some();
        (removed || self.node_job.is_empty()).then_some(
            "runJob no longer takes a pod spec: name a NodeJob the cluster admin defined (runJob: {nodeJob: <name>}; README, Node jobs)",
        )
    }
}
