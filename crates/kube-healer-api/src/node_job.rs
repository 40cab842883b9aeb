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
