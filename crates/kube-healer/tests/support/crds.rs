//! CRDs shaped like another project's (a remediator's, Karpenter's, Cluster API's), for tests of
//! the contracts kube-healer speaks with them: the names, scope and a status subresource, the
//! schema left open.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::json;

/// `kind` (`plural`) in `group`/`version`, Cluster or Namespaced.
pub fn shaped_crd(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    scope: &str,
) -> anyhow::Result<CustomResourceDefinition> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {"group": group, "scope": scope,
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
            "versions": [{"name": version, "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}))?)
}
