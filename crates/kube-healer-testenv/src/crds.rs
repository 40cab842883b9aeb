//! Installing CustomResourceDefinitions the way a user would, and waiting until they serve.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

use crate::error::{Error, Result};

/// Server-side applies each CRD (field manager `kube-healer-testenv`, forced) and waits until the
/// API server reports it Established, so that its resources can be created right away.
pub async fn install(client: &Client, crds: &[CustomResourceDefinition]) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("kube-healer-testenv").force();
    for crd in crds {
        let name = crd
            .metadata
            .name
            .clone()
            .ok_or_else(|| Error::Other("a CRD without a name".into()))?;
        api.patch(&name, &params, &Patch::Apply(crd)).await?;
    }
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crate::wait::until(
            &format!("CRD {name} to be established"),
            Duration::from_secs(30),
            || async {
                let current = api.get(&name).await?;
                let established = current
                    .status
                    .and_then(|s| s.conditions)
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"));
                Ok(established.then_some(()))
            },
        )
        .await?;
    }
    Ok(())
}
