//! Leader election on a Lease (kube-lease-manager): every replica watches and keeps its stores
//! warm; only the leader decides and acts. If the election task ends, the process must exit.
//!
//! A leader that cannot reach its Lease (the API server refuses or does not answer the renewal)
//! cannot know whether the Lease is still its own: it might expire while another replica takes
//! over. So on any error it steps down at once, and starts a fresh election, which finds the
//! Lease still its own (and leads again at once) or someone else's. kube-lease-manager's own
//! `watch()` keeps reporting leadership through such errors; this loop does not.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long one call of the election may take before it counts as failed (the client given to
/// [`start`] is built with it): a renewal that hangs must not outlive the grace period.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// The longest kube-lease-manager waits, after force-releasing an expired Lease, before taking it
/// (a random 100-1000 ms, against two followers colliding).
pub const RELEASE_JITTER: Duration = Duration::from_secs(1);

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

    /// The longest a follower takes to lead after the leader died without releasing the Lease:
    /// the Lease outlives the leader's last renewal by its duration; the follower then reads it,
    /// force-releases it, waits out the jitter and takes it, three calls that may each take up
    /// to [`CALL_TIMEOUT`] on a loaded API server before they count as failed.
    pub fn takeover_bound(&self) -> Duration {
        Duration::from_secs(self.duration_seconds) + RELEASE_JITTER + 3 * CALL_TIMEOUT
    }

    async fn manager(&self, client: &Client) -> Result<LeaseManager, LeaseManagerError> {
        LeaseManagerBuilder::new(client.clone(), &self.lease_name)
            .with_namespace(&self.namespace)
            .with_identity(&self.identity)
            .with_duration(self.duration_seconds)
            .with_grace(self.grace_seconds)
            .build()
            .await
    }
}

/// The leadership channel and the election task (which ends only when every receiver is gone).
pub type Election = (watch::Receiver<bool>, JoinHandle<Result<(), LeaseManagerError>>);

/// Starts the election. `client` should answer within the grace period (a renewal that hangs is
/// an error like any other): give it a read timeout.
pub async fn start(client: Client, config: &LeaderElection) -> Result<Election, LeaseManagerError> {
    let first = config.manager(&client).await?;
    let (leader, rx) = watch::channel(false);
    let config = config.clone();
    let task = tokio::spawn(async move {
        let mut manager = first;
        let mut pause = Duration::from_millis(250);
        loop {
            tokio::select! {
                () = leader.closed() => {
                    // Shutting down: let another replica take over without waiting for expiry.
                    let _ = manager.release().await;
                    return Ok(());
                }
                changed = manager.changed() => match changed {
                    Ok(leading) => {
                        pause = Duration::from_millis(250);
                        leader.send_replace(leading);
                    }
                    Err(e) => {
                        if leader.send_replace(false) {
                            tracing::warn!(error = %e, "the leader's Lease cannot be read or renewed: stepping down");
                        } else {
                            tracing::warn!(error = %e, "leader election: the Lease cannot be read");
                        }
                        // A fresh manager knows nothing; it reads the Lease anew.
                        loop {
                            tokio::time::sleep(pause).await;
                            pause = (pause * 2).min(Duration::from_secs(config.grace_seconds.max(1)));
                            match config.manager(&client).await {
                                Ok(fresh) => {
                                    manager = fresh;
                                    break;
                                }
                                Err(e) => tracing::warn!(error = %e, "leader election: the Lease cannot be read"),
                            }
                        }
                    }
                },
            }
        }
    });
    Ok((rx, task))
}

/// Leadership for a single replica without election: always the leader. Keep the sender for as
/// long as the receiver is used.
pub fn always() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    watch::channel(true)
}
