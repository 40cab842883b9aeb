//! Remediate: the node handed to an external remediator, through the contract medik8s'
//! NodeHealthCheck defines. A remediation template (a resource whose kind ends in "Template",
//! holding `spec.template.spec`) names the remediator; kube-healer creates a remediation
//! resource of the template's kind minus "Template", in the template's namespace, for the node,
//! and the remediator (Self Node Remediation, Fence Agents Remediation, Machine Deletion
//! Remediation, ...) reboots, fences or replaces it and reports through its status conditions.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;

/// On a remediation resource: the node it is for (NodeHealthCheck's annotation; remediators read
/// it when the resource's name is generated).
pub const NODE_NAME_ANNOTATION: &str = "remediation.medik8s.io/node-name";
/// On a remediation resource: the template it was made from.
pub const TEMPLATE_NAME_ANNOTATION: &str = "remediation.medik8s.io/template-name";
/// On a remediation template: several templates may remediate one node, so the resource's name
/// is generated from the node's.
pub const MULTIPLE_TEMPLATES_ANNOTATION: &str = "remediation.medik8s.io/multiple-templates-support";
/// Put on a remediation resource that ran out of time: medik8s remediators stop on it.
pub const TIMED_OUT_ANNOTATION: &str = "remediation.medik8s.io/nhc-timed-out";

/// Parameters of Remediate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemediateParams {
    /// The remediation template, as a NodeHealthCheck's remediationTemplate names it.
    pub template: TemplateRef,
    /// How long the remediation may take to succeed before it is marked timed out (the
    /// annotation remediation.medik8s.io/nhc-timed-out, on which medik8s remediators stop) and
    /// the record fails (default 30m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

impl RemediateParams {
    pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1800);

    pub fn timeout(&self) -> std::time::Duration {
        self.timeout.map_or(Self::DEFAULT_TIMEOUT, |t| t.as_std())
    }
}

/// A remediation template: a namespaced resource whose kind ends in "Template".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.kind.endsWith('Template') && size(self.kind) > 8")
    .message("kind must be a remediation template's, ending in Template (for example SelfNodeRemediationTemplate): the remediation's kind is the template's without it"))]
pub struct TemplateRef {
    /// For example self-node-remediation.medik8s.io/v1alpha1.
    #[schemars(length(min = 1, max = 253))]
    pub api_version: String,
    /// For example SelfNodeRemediationTemplate.
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')")
        .message("must be a namespace name (lowercase letters, digits and '-')"))]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
}

impl TemplateRef {
    /// The remediation resource's kind: the template's without "Template".
    pub fn remediation_kind(&self) -> &str {
        self.kind.strip_suffix("Template").unwrap_or(&self.kind)
    }
}

/// A remediation resource a node carries (in kube-healer's remediated-by annotation): enough to
/// find and delete it when the node has recovered, whatever became of the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemediationRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
}

impl RemediationRef {
    /// `policy=apiVersion/Kind/namespace`, as the annotation holds each entry.
    pub fn entry(&self, policy: &str) -> String {
        format!("{policy}={}/{}/{}", self.api_version, self.kind, self.namespace)
    }

    /// An entry of the annotation: (policy, remediation).
    pub fn parse(entry: &str) -> Option<(&str, RemediationRef)> {
        let (policy, rest) = entry.trim().split_once('=')?;
        let mut parts = rest.rsplitn(3, '/');
        let namespace = parts.next()?;
        let kind = parts.next()?;
        let api_version = parts.next()?;
        if policy.is_empty() || namespace.is_empty() || kind.is_empty() || api_version.is_empty() {
            return None;
        }
        Some((
            policy,
            RemediationRef {
                api_version: api_version.into(),
                kind: kind.into(),
                namespace: namespace.into(),
            },
        ))
    }
}

impl From<&TemplateRef> for RemediationRef {
    fn from(t: &TemplateRef) -> Self {
        RemediationRef {
            api_version: t.api_version.clone(),
            kind: t.remediation_kind().to_string(),
            namespace: t.namespace.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_back_even_with_a_grouped_api_version() {
        let r = RemediationRef {
            api_version: "self-node-remediation.medik8s.io/v1alpha1".into(),
            kind: "SelfNodeRemediation".into(),
            namespace: "medik8s".into(),
        };
        let entry = r.entry("reboot");
        assert_eq!(
            entry,
            "reboot=self-node-remediation.medik8s.io/v1alpha1/SelfNodeRemediation/medik8s"
        );
        assert_eq!(RemediationRef::parse(&entry), Some(("reboot", r)));
        for bad in ["", "p=", "=a/b/c", "p=Kind/ns", "p=v1//ns"] {
            assert_eq!(RemediationRef::parse(bad), None, "{bad}");
        }
    }
}
