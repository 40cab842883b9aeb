//! kwok nodes: create them, wait for them, stop and resume their heartbeats.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};

use crate::cluster::KWOK_NODE_LABEL;
use crate::error::Result;

/// Names the test that created a node, so a test can keep its pods on its own nodes.
pub const OWNER_LABEL: &str = "kube-healer.test/owner";

/// A node object that kwok manages.
pub fn kwok_node(name: &str) -> Node {
    let labels = BTreeMap::from([
        (KWOK_NODE_LABEL.to_string(), "true".to_string()),
        ("kubernetes.io/hostname".to_string(), name.to_string()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("type".to_string(), "kwok".to_string()),
    ]);
    let annotations = BTreeMap::from([("kwok.x-k8s.io/node".to_string(), "fake".to_string())]);
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Creates kwok nodes and waits until every one reads Ready=True.
pub async fn add_nodes(client: &Client, names: &[String], timeout: Duration) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    for name in names {
        api.create(&PostParams::default(), &kwok_node(name)).await?;
    }
    for name in names {
        wait_node_ready_status(client, name, "True", timeout).await?;
    }
    Ok(())
}

/// Like [`add_nodes`], with [`OWNER_LABEL`] set to `owner`.
pub async fn add_owned_nodes(
    client: &Client,
    names: &[String],
    owner: &str,
    timeout: Duration,
) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    for name in names {
        let mut node = kwok_node(name);
        node.metadata
            .labels
            .get_or_insert_default()
            .insert(OWNER_LABEL.into(), owner.into());
        api.create(&PostParams::default(), &node).await?;
    }
    for name in names {
        wait_node_ready_status(client, name, "True", timeout).await?;
    }
    Ok(())
}

pub async fn add_node(client: &Client, name: &str) -> Result<()> {
    add_nodes(client, &[name.to_string()], Duration::from_secs(60)).await
}

/// Takes the node out of kwok's selector: kwok stops renewing its Lease and posting its status,
/// as a kubelet that died would. kube-controller-manager then marks it Ready=Unknown.
pub async fn stop_heartbeats(client: &Client, name: &str) -> Result<()> {
    set_kwok_label(client, name, serde_json::Value::Null).await
}

/// Puts the node back under kwok's management; its heartbeats resume.
pub async fn resume_heartbeats(client: &Client, name: &str) -> Result<()> {
    set_kwok_label(client, name, serde_json::Value::String("true".into())).await
}

async fn set_kwok_label(client: &Client, name: &str, value: serde_json::Value) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let patch = serde_json::json!({"metadata": {"labels": {KWOK_NODE_LABEL: value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// The status of the node's Ready condition, if it has one.
pub fn ready_status(node: &Node) -> Option<String> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

/// Waits until the node's Ready condition reads `status` ("True", "False" or "Unknown").
pub async fn wait_node_ready_status(
    client: &Client,
    name: &str,
    status: &str,
    timeout: Duration,
) -> Result<Node> {
    let api: Api<Node> = Api::all(client.clone());
    crate::wait::until(
        &format!("node {name} to reach Ready={status}"),
        timeout,
        || async {
            let node = api.get_opt(name).await?;
            Ok(node.filter(|n| ready_status(n).as_deref() == Some(status)))
        },
    )
    .await
}
