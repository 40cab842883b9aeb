//! Nodes as a kubelet or node-problem-detector would report them: a node kwok does not manage,
//! whose conditions the test writes, and Warning events on nodes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::now_rfc3339;

/// A node kwok does not manage, with the given status conditions (a test writes its status).
pub async fn unmanaged_node(
    client: &Client,
    name: &str,
    conditions: serde_json::Value,
) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    nodes.create(&PostParams::default(), &node).await?;
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": conditions}})),
        )
        .await?;
    Ok(())
}

/// The node's cordon and the policies its cordoned-by annotation says hold it.
pub async fn cordon(api: &Api<Node>, name: &str) -> kube::Result<(bool, String)> {
    let node = api.get(name).await?;
    let cordoned = node.spec.and_then(|s| s.unschedulable) == Some(true);
    let owners = node
        .metadata
        .annotations
        .and_then(|a| a.get(kube_healer_api::CORDONED_BY_ANNOTATION).cloned())
        .unwrap_or_default();
    Ok((cordoned, owners))
}

/// A Ready condition as a kubelet writes it.
pub fn ready(status: &str, message: &str) -> serde_json::Value {
    json!({"type": "Ready", "status": status, "reason": "KubeletNotReady", "message": message,
        "lastTransitionTime": now_rfc3339(-60), "lastHeartbeatTime": now_rfc3339(0)})
}

/// A Ready node's conditions with KernelDeadlock as node-problem-detector reports it: True
/// (`on`) or False, last changed at `since`.
pub fn kernel_deadlock(on: bool, since: &str) -> serde_json::Value {
    let status = if on { "True" } else { "False" };
    json!([{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
            "lastTransitionTime": now_rfc3339(-3600), "lastHeartbeatTime": now_rfc3339(0)},
        {"type": "KernelDeadlock", "status": status, "reason": "DockerHung",
            "message": "kernel: INFO: task docker:20744 blocked for more than 120 seconds.",
            "lastTransitionTime": since, "lastHeartbeatTime": now_rfc3339(0)}])
}

/// A Warning event on a node, as its kubelet or node-problem-detector would post it.
pub async fn node_event(
    client: &Client,
    node: &str,
    reason: &str,
    message: &str,
    count: i32,
) -> anyhow::Result<()> {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let event: Event = serde_json::from_value(json!({
        "metadata": {"generateName": format!("{node}.")},
        "involvedObject": {"kind": "Node", "name": node, "uid": node},
        "reason": reason, "message": message, "count": count, "type": "Warning",
        "firstTimestamp": now_rfc3339(if count > 1 { -120 } else { 0 }), "lastTimestamp": now_rfc3339(0),
        "source": {"component": "kubelet", "host": node},
    }))?;
    events.create(&PostParams::default(), &event).await?;
    Ok(())
}

/// Nodes kwok does not manage whose status the test posts every 2 s, as a kubelet and
/// node-problem-detector would: the node lifecycle controller sees them alive, each with the
/// conditions the test gives it. Dropped, it stops posting.
pub struct PostedNodes {
    conditions: Arc<Mutex<BTreeMap<String, serde_json::Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl PostedNodes {
    /// Creates the nodes with these labels and conditions, and starts posting.
    pub async fn create(
        client: &Client,
        names: &[String],
        labels: serde_json::Value,
        conditions: serde_json::Value,
    ) -> anyhow::Result<PostedNodes> {
        let api: Api<Node> = Api::all(client.clone());
        for name in names {
            let node: Node = serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))?;
            api.create(&PostParams::default(), &node).await?;
        }
        let all: BTreeMap<String, serde_json::Value> =
            names.iter().map(|n| (n.clone(), conditions.clone())).collect();
        let conditions = Arc::new(Mutex::new(all));
        let posted = conditions.clone();
        let task = tokio::spawn(async move {
            loop {
                let now: Vec<_> = posted
                    .lock()
                    .map(|c| c.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                for (name, mut conditions) in now {
                    // Each post is a heartbeat, as a kubelet's status update is: the node
                    // lifecycle controller counts a node alive by its Ready condition's
                    // lastHeartbeatTime moving, and marks it Unknown after its grace otherwise.
                    let beat = now_rfc3339(0);
                    for c in conditions.as_array_mut().into_iter().flatten() {
                        c["lastHeartbeatTime"] = json!(beat);
                    }
                    let body = json!({"status": {"conditions": conditions}});
                    let _ = api
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(body))
                        .await;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
        Ok(PostedNodes { conditions, task })
    }

    /// The node's conditions from its next post on.
    pub fn set(&self, name: &str, conditions: serde_json::Value) {
        if let Ok(mut all) = self.conditions.lock() {
            all.insert(name.to_string(), conditions);
        }
    }
}

impl Drop for PostedNodes {
    fn drop(&mut self) {
        self.task.abort();
    }
}
