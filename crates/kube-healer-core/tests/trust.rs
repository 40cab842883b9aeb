//! Whose events about nodes are evidence (`trust::EventTrust`): the node's own reporters in
//! `default`; anything else about a node is ignored, and says why; events about pods count as
//! they come.

use k8s_openapi::api::core::v1::Event;
use kube_healer_core::trust::{EventTrust, Untrusted};
use serde_json::json;

fn event(kind: &str, namespace: &str, source: Option<&str>, reporting: Option<&str>) -> Event {
    let mut e = json!({"metadata": {"name": "e", "namespace": namespace},
        "involvedObject": {"kind": kind, "name": "w1"}, "reason": "SystemOOM"});
    if let Some(s) = source {
        e["source"] = json!({"component": s});
    }
    if let Some(r) = reporting {
        e["reportingComponent"] = json!(r);
    }
    serde_json::from_value(e).unwrap()
}

#[test]
fn node_events_count_only_from_their_reporters_where_they_write() {
    let trust = EventTrust::default();
    assert_eq!(
        trust.judge(&event("Node", "default", Some("kubelet"), None)),
        Ok(())
    );
    assert_eq!(
        trust.judge(&event("Node", "default", Some("kernel-monitor"), None)),
        Ok(())
    );
    // events.k8s.io writers name themselves in reportingComponent.
    assert_eq!(
        trust.judge(&event("Node", "default", None, Some("node-controller"))),
        Ok(())
    );
    // Claiming to be the kubelet from elsewhere: the namespace fences it.
    assert_eq!(
        trust.judge(&event("Node", "tenant", Some("kubelet"), None)),
        Err(Untrusted::Namespace)
    );
    assert_eq!(
        trust.judge(&event("Node", "default", Some("my-operator"), None)),
        Err(Untrusted::Source)
    );
    assert_eq!(
        trust.judge(&event("Node", "default", None, None)),
        Err(Untrusted::Source)
    );
    // Pods' events are not fenced here.
    assert_eq!(
        trust.judge(&event("Pod", "tenant", Some("my-operator"), None)),
        Ok(())
    );
}

#[test]
fn the_trusted_reporters_are_configurable() {
    let trust = EventTrust {
        sources: vec!["my-npd".into()],
        namespaces: vec!["node-problems".into()],
    };
    assert_eq!(
        trust.judge(&event("Node", "node-problems", Some("my-npd"), None)),
        Ok(())
    );
    assert_eq!(
        trust.judge(&event("Node", "default", Some("kubelet"), None)),
        Err(Untrusted::Namespace)
    );
}
