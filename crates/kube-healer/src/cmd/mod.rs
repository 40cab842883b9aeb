//! One module per subcommand.

#[cfg(test)]
mod agree;
pub mod classify;
pub mod crd;
pub mod demo;
pub mod explain;
pub mod record;
pub mod release;
pub mod replay;
pub mod run;
pub mod simulate;

/// When pods failing alike are one cause (the operator's flags, and replay's, of the same
/// names).
#[derive(Clone, Debug, clap::Args)]
pub struct PodsAlikeArgs {
    /// Pods failing alike (one class, told the same way without their own names and numbers)
    /// are one cause, and their actions are held, when at least this many pods...
    #[arg(long, env = "KUBE_HEALER_PODS_ALIKE_MIN_PODS", default_value_t = kube_healer_core::PodsAlike::default().pods)]
    pub pods_alike_min_pods: usize,
    /// ...of at least this many workloads...
    #[arg(long, env = "KUBE_HEALER_PODS_ALIKE_MIN_WORKLOADS", default_value_t = kube_healer_core::PodsAlike::default().workloads)]
    pub pods_alike_min_workloads: usize,
    /// ...begin to fail within this long.
    #[arg(long, env = "KUBE_HEALER_PODS_ALIKE_WINDOW", default_value = "10m")]
    pub pods_alike_window: kube_healer_api::Duration,
}

impl PodsAlikeArgs {
    pub fn thresholds(&self) -> kube_healer_core::PodsAlike {
        kube_healer_core::PodsAlike {
            pods: self.pods_alike_min_pods.max(1),
            workloads: self.pods_alike_min_workloads.max(1),
            window: self.pods_alike_window.as_std().as_secs() as i64,
        }
    }
}

/// In-house maintenance tooling's signals of planned disruption (the operator's flags, and
/// replay's, of the same names).
#[derive(Clone, Debug, clap::Args)]
pub struct MaintenanceArgs {
    /// Taint keys that in-house tooling puts on a node it takes down on purpose
    /// (comma-separated), beside the built-in ones (Karpenter, cluster-autoscaler, medik8s):
    /// such a node gets no node action, and its pods are left to the maintenance for the
    /// policy's maintenanceGrace.
    #[arg(long, env = "KUBE_HEALER_MAINTENANCE_TAINTS", value_delimiter = ',')]
    pub maintenance_taints: Vec<String>,
    /// Annotation keys that say the same (comma-separated), beside kured's.
    #[arg(long, env = "KUBE_HEALER_MAINTENANCE_ANNOTATIONS", value_delimiter = ',')]
    pub maintenance_annotations: Vec<String>,
    /// Labels that say the same, `key` or `key=value` (comma-separated), beside medik8s's
    /// exclude-from-remediation.
    #[arg(long, env = "KUBE_HEALER_MAINTENANCE_LABELS", value_delimiter = ',')]
    pub maintenance_labels: Vec<String>,
    /// The time zone policies' windows (safety.windows) are read in: an IANA name such as
    /// Europe/Berlin (from the system's time zone database), UTC, or Local.
    #[arg(long, env = "KUBE_HEALER_TIME_ZONE", default_value = "UTC", value_parser = kube_healer_core::decide::Zone::named)]
    pub time_zone: kube_healer_core::decide::Zone,
    /// The namespace kube-healer runs in (the chart sets it to the release namespace). While it
    /// carries the annotation healing.kubehealer.io/pause, every decision is recorded as Skipped
    /// (Paused), with the annotation's value as the reason: upgrade tooling pauses kube-healer
    /// without a restart.
    #[arg(long, env = "KUBE_HEALER_NAMESPACE", default_value = "kube-healer")]
    pub namespace: String,
}

impl MaintenanceArgs {
    pub fn signals(&self) -> kube_healer_core::decide::PlannedSignals {
        let non_empty = |items: &[String]| -> Vec<String> {
            items
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        kube_healer_core::decide::PlannedSignals {
            taints: non_empty(&self.maintenance_taints),
            annotations: non_empty(&self.maintenance_annotations),
            labels: non_empty(&self.maintenance_labels),
        }
    }
}

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
