//! What a pod's failure may share with other pods': its workload (and revision), and the failure
//! told without what is the pod's own. Many pods of several workloads failing alike are one
//! cause (a DNS or database outage, a bad ConfigMap, an expired certificate): see
//! `correlate::pods_alike`.

use kube_healer_api::FailureClass;

use crate::finding::{Alike, Workload};
use crate::view::{ContainerState, OwnerKind, PodView, Secs};

/// The labels that name a pod's revision of its workload.
const POD_TEMPLATE_HASH: &str = "pod-template-hash";
const CONTROLLER_REVISION_HASH: &str = "controller-revision-hash";

/// What the pod's `class` finding, told by `summary` and begun at `since`, may share with
/// others'.
pub fn alike(class: FailureClass, pod: &PodView, summary: &str, since: Secs) -> Alike {
    let workload = workload(pod);
    let mut own: Vec<&str> = vec![&pod.name, &pod.namespace, &workload.name];
    own.extend(pod.owner_name.as_deref());
    own.extend(pod.containers.iter().map(|c| &*c.name));
    let mut signature = format!("{class}: {}", fingerprint(summary, &own));
    // How the containers of a crash loop last ended: the exit code and the log's tail are what
    // one cause's pods have in common (and what tells a lone crash from them).
    for c in pod.containers.iter() {
        let (ContainerState::Waiting { .. }, Some(last)) = (&c.state, &c.last_terminated) else {
            continue;
        };
        signature.push_str(&format!(
            " | last ended {} exit {}",
            last.reason.as_deref().unwrap_or("-"),
            last.exit_code
        ));
        if let Some(message) = &last.message {
            signature.push_str(": ");
            signature.push_str(&fingerprint(message, &own));
        }
    }
    Alike {
        workload,
        signature,
        since: began(pod, since),
        created: pod.created(),
    }
}

/// When the failure begun at `since` (as the view dates it) began by the kubelet's own word, if
/// it is earlier: a crash loop's back-off began when its container last ended. A view dates a
/// waiting state by when it first saw it, so a watch that lagged (a restart, a slow API server)
/// would push the pod's start past the window of the others its cause broke, and the one cause
/// would look like several.
fn began(pod: &PodView, since: Secs) -> Secs {
    let waiting = pod
        .containers
        .iter()
        .filter(|c| matches!(c.state, ContainerState::Waiting { .. }));
    let ended = waiting.filter_map(|c| c.last_terminated.as_ref()?.finished);
    ended.fold(since, Secs::min)
}

/// The workload a pod belongs to: the Deployment of a ReplicaSet that carries its
/// pod-template-hash, else its controller, else the pod itself; and its revision.
pub fn workload(pod: &PodView) -> Workload {
    let label = |key: &str| {
        pod.labels
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| v.to_string())
    };
    let owner = pod.owner_name.as_deref().unwrap_or(&pod.name);
    let (kind, name, revision) = match pod.owner {
        OwnerKind::ReplicaSet => match label(POD_TEMPLATE_HASH) {
            Some(hash) => match owner.strip_suffix(&format!("-{hash}")) {
                Some(deployment) => ("Deployment", deployment.to_string(), Some(hash)),
                None => ("ReplicaSet", owner.to_string(), Some(hash)),
            },
            None => ("ReplicaSet", owner.to_string(), None),
        },
        OwnerKind::StatefulSet | OwnerKind::DaemonSet => (
            pod.owner.as_str(),
            owner.to_string(),
            label(CONTROLLER_REVISION_HASH),
        ),
        OwnerKind::Job | OwnerKind::Other => (pod.owner.as_str(), owner.to_string(), None),
        OwnerKind::None | OwnerKind::Node => ("Pod", pod.name.to_string(), None),
    };
    Workload {
        namespace: pod.namespace.to_string(),
        kind,
        name,
        revision,
    }
}

/// `text` with what is one object's own left out: each token (a run of letters, digits, `-`
/// and `.`) that is one of `own` (names) becomes `<name>`, and each that holds a digit (counts,
/// durations, hashes, addresses, ports, UIDs) becomes `#`.
pub fn fingerprint(text: &str, own: &[&str]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        if token.is_empty() {
            return;
        }
        if own.contains(&token.as_str()) {
            out.push_str("<name>");
        } else if token.bytes().any(|b| b.is_ascii_digit()) {
            out.push('#');
        } else {
            out.push_str(token);
        }
        token.clear();
    };
    for ch in text.chars() {
        if ch.is_alphanumeric() || ch == '-' || ch == '.' {
            token.push(ch);
        } else {
            flush(&mut token, &mut out);
            out.push(ch);
        }
    }
    flush(&mut token, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::fingerprint;

    #[test]
    fn a_pods_own_names_and_numbers_are_left_out() {
        let own = ["web-7d9f8c6b5-bcdfg", "shop", "app"];
        assert_eq!(
            fingerprint(
                "back-off 5m0s restarting failed container=app pod=web-7d9f8c6b5-bcdfg_shop(0b7a-11)",
                &own
            ),
            "back-off # restarting failed container=<name> pod=<name>_<name>(#)"
        );
        assert_eq!(
            fingerprint("dial tcp: lookup db.prod.svc on 10.96.0.10:53: i/o timeout", &own),
            "dial tcp: lookup db.prod.svc on #:#: i/o timeout"
        );
        assert_eq!(
            fingerprint("configmap \"app-config\" not found", &own),
            "configmap \"app-config\" not found",
            "the object a message names is kept: it is the cause"
        );
    }
}
