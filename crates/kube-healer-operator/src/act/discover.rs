//! The API resource of a kind another controller defines (a remediator's, Karpenter's, Cluster
//! API's), as the API server serves it: one discovery call per action, never on a hot path.

use kube::Client;
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, pinned_kind};

use crate::retry::{self, Backoff};

/// `kind` in `api_version` (`group/version`, or `version` for the core group).
pub async fn served(client: &Client, api_version: &str, kind: &str) -> Result<ApiResource, kube::Error> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (found, _) = retry::call(Backoff::ACTION, "discover", || pinned_kind(client, &gvk)).await;
    found.map(|(resource, _)| resource)
}
