//! One module per subcommand.

#[cfg(test)]
mod agree;
pub mod classify;
pub mod crd;
pub mod demo;
pub mod explain;
pub mod record;
pub mod replay;
pub mod run;
pub mod simulate;

/// A client from a kubeconfig path, or the usual inference (in-cluster, $KUBECONFIG,
/// ~/.kube/config). kube's blanket retry of 429 is off: retries are kube-healer's to decide.
pub async fn client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Client> {
    Ok(kube::Client::try_from(client_config(kubeconfig).await?)?)
}

/// The client configuration: kubeconfig, in-cluster or inferred; kube's own retries off (a
/// PodDisruptionBudget's 429 must reach the caller at once).
pub async fn client_config(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Config> {
    use anyhow::Context;
    let mut config = match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("no Kubernetes configuration found")?,
    };
    config.default_retry = false;
    Ok(config)
}
