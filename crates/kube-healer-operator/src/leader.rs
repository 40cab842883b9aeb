//! Leader election on a Lease (kube-lease-manager): every replica watches and keeps its stores
//! warm; only the leader decides and acts. If the election task ends, the process must exit.

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Where and how replicas elect their leader.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    pub namespace: String,
    pub lease_name: String,
    /// Unique per replica (the pod name).
    pub identity: String,
    /// Seconds a lease stays valid after its last renewal; a new leader takes over after it.
    pub duration_seconds: u64,
    /// Seconds before expiry at which the holder renews.
    pub grace_seconds: u64,
}

impl LeaderElection {
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        LeaderElection {
            namespace: namespace.into(),
            lease_name: "kube-healer-leader".into(),
            identity: identity.into(),
            duration_seconds: 10,
            grace_seconds: 3,
        }
    }
}

/// The leadership channel and the election task (which ends only on a fatal error).
pub type Election = (watch::Receiver<bool>, JoinHandle<Result<(), LeaseManagerError>>);

pub async fn start(client: Client, config: &LeaderElection) -> Result<Election, LeaseManagerError> {
    let manager = LeaseManagerBuilder::new(client, &config.lease_name)
        .with_namespace(&config.namespace)
        .with_identity(&config.identity)
        .with_duration(config.duration_seconds)
        .with_grace(config.grace_seconds)
        .build()
        .await?;
    let (leader, task) = manager.watch().await;
    let task = tokio::spawn(async move {
        match task.await {
            Ok(Ok(_manager)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(join) => Err(LeaseManagerError::InconsistentState(format!(
                "the election task panicked: {join}"
            ))),
        }
    });
    Ok((leader, task))
}

/// Leadership for a single replica without election: always the leader. Keep the sender for as
/// long as the receiver is used.
pub fn always() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    watch::channel(true)
}
