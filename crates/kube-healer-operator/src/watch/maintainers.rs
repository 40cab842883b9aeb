//! The watches of other tools' maintenance resources (Karpenter's NodeClaims, Cluster API's
//! Machines, medik8s' NodeMaintenances). A cluster may serve none of them, and may install or
//! remove one at any time: a resource the API server does not serve has no objects, which is
//! known (an empty list), not unknown; one it serves is watched as every other resource is.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use kube::discovery::oneshot::pinned_kind;
use kube::error::DiscoveryError;
use kube::runtime::watcher::{self, watcher};
use kube::{Api, Client};
use kube_healer_core::decide::Maintainer;
use tokio::sync::mpsc;

use super::{Change, Pump};
use crate::metrics::Metrics;

/// How often the API server is asked again whether it serves a resource it did not: a
/// discovery request, not a list. A tool installed later is watched within this.
const ASK_AGAIN: Duration = Duration::from_secs(60);

/// Whether the API server serves a maintainer's resource.
enum Served {
    At(ApiResource),
    /// Not at any of its versions (its group or kind is unknown to the API server).
    No,
}

/// Starts one watch per maintainer; each runs until the engine stops.
pub(super) fn spawn(
    client: &Client,
    config: &watcher::Config,
    tx: &mpsc::Sender<Change>,
    metrics: &Arc<Metrics>,
) {
    for maintainer in Maintainer::ALL {
        let (client, config) = (client.clone(), config.clone());
        let pump = Pump::new(maintainer.resource(), tx.clone(), metrics.clone());
        tokio::spawn(watch_maintainer(maintainer, client, config, pump));
    }
}

async fn watch_maintainer(maintainer: Maintainer, client: Client, config: watcher::Config, mut pump: Pump) {
    let resource = maintainer.resource();
    let wrap = move |event: Box<watcher::Event<DynamicObject>>| Change::Maintainer(maintainer, event);
    // Whether the engine was last told the resource is not served (an empty list), and whether
    // it was served when last asked.
    let (mut said_absent, mut served_before) = (false, false);
    loop {
        match served(&client, maintainer).await {
            Ok(Served::At(api)) => {
                (said_absent, served_before) = (false, true);
                pump.reset();
                let api = Api::<DynamicObject>::all_with(client.clone(), &api);
                if !pump.run(std::pin::pin!(watcher(api, config.clone())), wrap).await || !pump.failed().await
                {
                    return;
                }
            }
            // Served a moment ago: an API server that restarted may not have registered its
            // custom resources yet. Unknown until a second answer, a minute later, says so.
            Ok(Served::No) if served_before => {
                tracing::warn!(
                    resource,
                    "no longer served by the API server: gone if it still is not in a minute"
                );
                served_before = false;
                if !pump.failed_for(ASK_AGAIN).await {
                    return;
                }
            }
            Ok(Served::No) => {
                pump.reset();
                if !said_absent {
                    tracing::info!(
                        resource,
                        "not served by the API server: none exist (asked again every minute)"
                    );
                    for event in [watcher::Event::Init, watcher::Event::InitDone] {
                        if !pump.send(wrap(Box::new(event))).await {
                            return;
                        }
                    }
                    said_absent = true;
                }
                if !pump.idle(ASK_AGAIN).await {
                    return;
                }
            }
            Err(error) => {
                // Unknown: not the same as absent. Node decisions wait, as for a failed watch.
                tracing::warn!(resource, error = %error, "cannot tell whether the API server serves it");
                said_absent = false;
                if !pump.failed().await {
                    return;
                }
            }
        }
    }
}

/// The first of the maintainer's versions the API server serves.
async fn served(client: &Client, maintainer: Maintainer) -> Result<Served, kube::Error> {
    let api = maintainer.api();
    for version in api.versions {
        let gvk = GroupVersionKind::gvk(api.group, version, api.kind);
        match pinned_kind(client, &gvk).await {
            Ok((resource, _)) => return Ok(Served::At(resource)),
            // Its group, or its kind in that version, unknown to the API server.
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(kube::Error::Discovery(
                DiscoveryError::MissingKind(_) | DiscoveryError::MissingApiGroup(_),
            )) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(Served::No)
}
