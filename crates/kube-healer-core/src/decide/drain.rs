//! Which pods a drain leaves on the node, and why: `kubectl drain`'s defaults, plus the pods
//! kube-healer itself must not move. A pod no controller recreates, or one whose emptyDir data
//! would be lost, is left unless the policy opts in, as `--force` and `--delete-emptydir-data`
//! do for kubectl.

use k8s_openapi::api::core::v1::Pod;
use kube_healer_api::action::DrainParams;
use kube_healer_api::{OPERATOR_POD_LABEL, OPT_OUT_ANNOTATION, POLICY_LABEL};

/// Why a drain leaves a pod where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LeftAlone {
    /// A static pod's mirror: the kubelet owns it.
    Mirror,
    /// A DaemonSet pod: its controller would put it straight back.
    DaemonSet,
    /// Already terminating.
    Terminating,
    /// The pod carries the opt-out annotation.
    OptedOut,
    /// In a namespace no policy touches unless it names it.
    ProtectedNamespace,
    /// kube-healer's own: a replica of the operator, or a node Job it runs.
    KubeHealer,
    /// No controller owns it: evicted, it is gone for good (`force` evicts it).
    Unmanaged,
    /// It has emptyDir volumes, whose data eviction loses (`deleteEmptyDirData` evicts it).
    EmptyDir,
}

impl LeftAlone {
    /// How the record names the reason.
    pub fn as_str(self) -> &'static str {
        match self {
            LeftAlone::Mirror => "mirror",
            LeftAlone::DaemonSet => "DaemonSet",
            LeftAlone::Terminating => "already terminating",
            LeftAlone::OptedOut => "opted out",
            LeftAlone::ProtectedNamespace => "protected namespace",
            LeftAlone::KubeHealer => "kube-healer's own",
            LeftAlone::Unmanaged => "no controller (force: true evicts it)",
            LeftAlone::EmptyDir => "emptyDir data (deleteEmptyDirData: true evicts it)",
        }
    }

    /// Whether the record names each such pod (the reasons a person may want to act on), or
    /// only counts them.
    pub fn named(self) -> bool {
        !matches!(
            self,
            LeftAlone::Mirror | LeftAlone::DaemonSet | LeftAlone::Terminating
        )
    }
}

/// Why a drain leaves this pod, or None if it evicts it.
pub fn left_alone(pod: &Pod, params: &DrainParams, protected_namespaces: &[String]) -> Option<LeftAlone> {
    let meta = &pod.metadata;
    let annotation = |key: &str| meta.annotations.as_ref().and_then(|a| a.get(key));
    let label = |key: &str| meta.labels.as_ref().and_then(|l| l.get(key));
    let controller = meta
        .owner_references
        .as_ref()
        .and_then(|o| o.iter().find(|o| o.controller == Some(true)));
    if annotation("kubernetes.io/config.mirror").is_some() {
        return Some(LeftAlone::Mirror);
    }
    if controller.is_some_and(|o| o.kind == "DaemonSet") {
        return Some(LeftAlone::DaemonSet);
    }
    if meta.deletion_timestamp.is_some() {
        return Some(LeftAlone::Terminating);
    }
    if annotation(OPT_OUT_ANNOTATION).is_some_and(|v| v == "true") {
        return Some(LeftAlone::OptedOut);
    }
    let namespace = meta.namespace.as_deref().unwrap_or("");
    if protected_namespaces.iter().any(|p| p == namespace) {
        return Some(LeftAlone::ProtectedNamespace);
    }
    if label(OPERATOR_POD_LABEL).is_some() || label(POLICY_LABEL).is_some() {
        return Some(LeftAlone::KubeHealer);
    }
    // A finished pod has nothing left to lose (kubectl deletes those too).
    let finished = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    if finished {
        return None;
    }
    if controller.is_none() && !params.force {
        return Some(LeftAlone::Unmanaged);
    }
    let empty_dir = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|v| v.iter().any(|v| v.empty_dir.is_some()));
    if empty_dir && !params.delete_emptydir_data {
        return Some(LeftAlone::EmptyDir);
    }
    None
}

/// The grace period a drain evicts this pod with (None: the pod's own). A drain's
/// `gracePeriodSeconds: 0` removes a pod without waiting for its kubelet, which only fencing
/// makes safe (ForceDelete's rule, one rule for every removal that does not wait): a pod whose
/// replacement would take its identity or its volume while it may still run (a StatefulSet's, one
/// with a PersistentVolumeClaim, one of a controller kube-healer does not know) is evicted with
/// its own grace instead, and so stays until its kubelet, or the node's fencing, ends it.
pub fn drain_grace(pod: &Pod, params: &DrainParams) -> Option<u32> {
    let grace = params
        .grace_period_seconds
        .map(|g| g.clamp(0, u32::MAX as i64) as u32);
    if grace != Some(0) {
        return grace;
    }
    let kind = pod
        .metadata
        .owner_references
        .as_ref()
        .and_then(|o| o.iter().find(|o| o.controller == Some(true)))
        .map(|o| o.kind.as_str());
    let known = matches!(kind, None | Some("ReplicaSet" | "Job" | "DaemonSet"));
    let claims = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|v| {
            v.iter()
                .any(|v| v.persistent_volume_claim.is_some() || v.ephemeral.is_some())
        });
    if kind == Some("StatefulSet") || claims || !known {
        None
    } else {
        grace
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A grace-0 drain waits for the kubelet of the pods that need fencing.
    #[test]
    fn a_grace_zero_drain_never_removes_a_pod_that_needs_fencing_at_once() {
        let zero = DrainParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        assert_eq!(
            drain_grace(&pod(json!({})), &zero),
            Some(0),
            "a ReplicaSet pod without claims"
        );
        let sts = pod(
            json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "s", "controller": true}]}}),
        );
        assert_eq!(drain_grace(&sts, &zero), None);
        let claimed = pod(
            json!({"spec": {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "d"}}]}}),
        );
        assert_eq!(drain_grace(&claimed, &zero), None);
        let foreign = pod(
            json!({"metadata": {"ownerReferences": [{"apiVersion": "x/v1", "kind": "Cluster", "name": "c", "uid": "c", "controller": true}]}}),
        );
        assert_eq!(drain_grace(&foreign, &zero), None);
        let thirty = DrainParams {
            grace_period_seconds: Some(30),
            ..Default::default()
        };
        assert_eq!(
            drain_grace(&sts, &thirty),
            Some(30),
            "a grace waits for the kubelet anyway"
        );
        assert_eq!(drain_grace(&sts, &DrainParams::default()), None);
    }

    fn pod(extra: serde_json::Value) -> Pod {
        let mut p = json!({
            "metadata": {"name": "p", "namespace": "shop", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "rs", "controller": true}]},
            "spec": {"containers": [{"name": "app"}]},
            "status": {"phase": "Running"},
        });
        merge(&mut p, extra);
        serde_json::from_value(p).unwrap()
    }

    fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    const PROTECTED: &[&str] = &["kube-system"];

    fn why(p: &Pod, params: &DrainParams) -> Option<LeftAlone> {
        let protected: Vec<String> = PROTECTED.iter().map(|s| s.to_string()).collect();
        left_alone(p, params, &protected)
    }

    #[test]
    fn kubectl_drain_defaults_and_kube_healer_own_pods() {
        let d = DrainParams::default();
        assert_eq!(why(&pod(json!({})), &d), None, "a ReplicaSet pod is evicted");
        let bare = pod(json!({"metadata": {"ownerReferences": []}}));
        assert_eq!(why(&bare, &d), Some(LeftAlone::Unmanaged));
        let scratch = pod(json!({"spec": {"volumes": [{"name": "tmp", "emptyDir": {}}]}}));
        assert_eq!(why(&scratch, &d), Some(LeftAlone::EmptyDir));
        let opted = pod(json!({"metadata": {"annotations": {OPT_OUT_ANNOTATION: "true"}}}));
        assert_eq!(why(&opted, &d), Some(LeftAlone::OptedOut));
        let system = pod(json!({"metadata": {"namespace": "kube-system"}}));
        assert_eq!(why(&system, &d), Some(LeftAlone::ProtectedNamespace));
        let own = pod(json!({"metadata": {"labels": {OPERATOR_POD_LABEL: "true"}}}));
        assert_eq!(why(&own, &d), Some(LeftAlone::KubeHealer));
        let job = pod(json!({"metadata": {"labels": {POLICY_LABEL: "repair"}}}));
        assert_eq!(why(&job, &d), Some(LeftAlone::KubeHealer));
        let ds = pod(
            json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "ds", "controller": true}]}}),
        );
        assert_eq!(why(&ds, &d), Some(LeftAlone::DaemonSet));
        let mirror = pod(json!({"metadata": {"annotations": {"kubernetes.io/config.mirror": "abc"}}}));
        assert_eq!(why(&mirror, &d), Some(LeftAlone::Mirror));
    }

    #[test]
    fn parameters_opt_in_like_kubectl_flags_and_finished_pods_go() {
        let forced = DrainParams {
            force: true,
            delete_emptydir_data: true,
            ..Default::default()
        };
        let bare_scratch = pod(
            json!({"metadata": {"ownerReferences": []}, "spec": {"volumes": [{"name": "tmp", "emptyDir": {}}]}}),
        );
        assert_eq!(why(&bare_scratch, &forced), None);
        let only_force = DrainParams {
            force: true,
            ..Default::default()
        };
        assert_eq!(why(&bare_scratch, &only_force), Some(LeftAlone::EmptyDir));
        // The opt-out and kube-healer's own pods hold whatever the parameters say.
        let opted = pod(json!({"metadata": {"annotations": {OPT_OUT_ANNOTATION: "true"}}}));
        assert_eq!(why(&opted, &forced), Some(LeftAlone::OptedOut));
        let done = pod(json!({"metadata": {"ownerReferences": []}, "status": {"phase": "Succeeded"}}));
        assert_eq!(
            why(&done, &DrainParams::default()),
            None,
            "a finished bare pod loses nothing"
        );
    }
}
