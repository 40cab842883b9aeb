//! The API server's audit log: its policy and flags, and what is read from it. The harness fails a
//! run on any request of the operator refused with 403 (outside expected windows) or touching
//! Secrets; tests count the operator's calls on an object.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Result, io};

use super::TestCluster;
use super::flags::path;

const AUDIT_LOG: &str = "audit.log";

/// Metadata of every request, except the bulk that kwok and the controllers write about nodes
/// and pods (heartbeats, status), which no operator under test makes.
const AUDIT_POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    verbs: [update, patch]
    resources:
      - group: ""
        resources: [nodes/status, pods/status]
  - level: None
    verbs: [update, patch]
    resources:
      - group: coordination.k8s.io
        resources: [leases]
    namespaces: [kube-node-lease]
  - level: None
    users: [system:kube-controller-manager, system:kube-scheduler]
  - level: Metadata
"#;

/// Writes the audit policy into `dir` and returns the kube-apiserver flags that turn the audit
/// log on.
pub(super) fn apiserver_flags(dir: &Path) -> Result<Vec<String>> {
    let policy = dir.join("audit-policy.yaml");
    std::fs::write(&policy, AUDIT_POLICY).map_err(io("writing the audit policy"))?;
    Ok(vec![
        format!("--audit-policy-file={}", path(&policy)),
        format!("--audit-log-path={}", path(&dir.join(AUDIT_LOG))),
        "--audit-log-format=json".to_string(),
        "--audit-log-maxbackup=0".to_string(),
    ])
}

impl TestCluster {
    /// The API server's audit log (JSON lines), when [`ClusterOptions::audit`](super::ClusterOptions::audit) is on.
    pub fn audit_log(&self) -> PathBuf {
        self.dir_path.join(AUDIT_LOG)
    }

    /// The audit log's events (empty when it is off).
    pub fn audit_events(&self) -> Result<Vec<serde_json::Value>> {
        let log = match std::fs::read_to_string(self.audit_log()) {
            Ok(log) => log,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("reading the audit log")(e)),
        };
        Ok(log
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect())
    }

    /// The answers (HTTP codes) the API server gave to impersonated users' (the operator's)
    /// requests with this verb on this object, in order. `resource` may name a subresource
    /// ("pods/eviction").
    pub fn operator_requests(
        &self,
        verb: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<u16>> {
        let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
        Ok(self
            .audit_events()?
            .iter()
            .filter(|e| e["impersonatedUser"]["username"].is_string() && e["verb"] == verb)
            .filter(|e| {
                let o = &e["objectRef"];
                o["resource"] == resource
                    && o["subresource"].as_str().unwrap_or_default() == subresource
                    && o["namespace"].as_str().unwrap_or_default() == namespace
                    && o["name"] == name
            })
            .map(|e| e["responseStatus"]["code"].as_u64().unwrap_or(0) as u16)
            .collect())
    }

    /// Any request of an impersonated user (the operator) on Secrets, one line each: the
    /// operator has no business with them.
    pub fn impersonated_secret_requests(&self) -> Result<Vec<String>> {
        Ok(self
            .audit_events()?
            .iter()
            .filter(|e| {
                e["impersonatedUser"]["username"].is_string() && e["objectRef"]["resource"] == "secrets"
            })
            .map(|e| {
                format!(
                    "a request on Secrets: {}",
                    e["requestURI"].as_str().unwrap_or("?")
                )
            })
            .collect())
    }

    /// From now on, for `window`, refusals (403) of the operator's requests are expected: a test
    /// takes a permission away on purpose. The end-of-run check leaves them out.
    pub fn expect_refusals(&self, window: Duration) {
        self.refusal_windows
            .lock()
            .expect("refusal windows")
            .push((k8s_openapi::jiff::Timestamp::now(), window.as_secs_f64()));
    }

    /// Whether an audit event falls in a window where refusals are expected.
    fn refusal_expected(&self, event: &serde_json::Value) -> bool {
        let Some(at) = event["requestReceivedTimestamp"]
            .as_str()
            .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
        else {
            return false;
        };
        let windows = self.refusal_windows.lock().expect("refusal windows");
        windows.iter().any(|(start, secs)| {
            let after = at.duration_since(*start).as_secs_f64();
            (0.0..*secs).contains(&after)
        })
    }

    /// The requests made by impersonated users (the operator run as its chart's ServiceAccount)
    /// that the API server refused with 403, one line each: user, verb, resource and name. Empty
    /// when the audit log is off.
    pub fn forbidden_impersonated(&self) -> Result<Vec<String>> {
        Ok(self
            .audit_events()?
            .into_iter()
            .filter(|e| e["responseStatus"]["code"] == 403 && e["impersonatedUser"]["username"].is_string())
            .filter(|e| !self.refusal_expected(e))
            .map(|e| {
                let object = &e["objectRef"];
                let sub = object["subresource"].as_str().map(|s| format!("/{s}"));
                format!(
                    "{} {} {}{} {}/{} ({})",
                    e["impersonatedUser"]["username"].as_str().unwrap_or("?"),
                    e["verb"].as_str().unwrap_or("?"),
                    object["resource"].as_str().unwrap_or("?"),
                    sub.unwrap_or_default(),
                    object["namespace"].as_str().unwrap_or(""),
                    object["name"].as_str().unwrap_or(""),
                    e["requestURI"].as_str().unwrap_or("?"),
                )
            })
            .collect())
    }
}
