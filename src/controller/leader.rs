//! Leader election over a `coordination.k8s.io/v1` Lease, so that several replicas can
//! run and exactly one reconciles.
//!
//! A replica waits (as a standby) until it holds the Lease, then starts the controllers.
//! The leader renews the Lease a third of its duration before it expires; if a renewal
//! fails or another replica took the Lease, the leader stops at once (the process exits
//! and Kubernetes restarts it as a standby) rather than risk two replicas writing to
//! Juju. The Lease client's requests time out after a sixth of the duration, so a hung
//! renewal ends the leadership well before the Lease could expire. On a clean shutdown
//! the leader releases the Lease so a standby takes over without waiting for it to
//! expire.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::oneshot;
use tracing::{info, warn};

/// Where the Lease lives and how long it is held.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    /// Name of the Lease.
    pub lease_name: String,
    /// Namespace of the Lease.
    pub namespace: String,
    /// This replica's identity, written as the Lease holder.
    pub identity: String,
    /// How long a Lease is valid without renewal (at least [`MIN_LEASE_DURATION`]).
    pub duration: Duration,
}

/// The shortest Lease duration accepted.
pub const MIN_LEASE_DURATION: Duration = Duration::from_secs(3);

impl LeaderElection {
    fn seconds(&self) -> u64 {
        self.duration.as_secs().max(MIN_LEASE_DURATION.as_secs())
    }

    /// Renewal starts this long before the Lease would expire.
    fn grace_seconds(&self) -> u64 {
        (self.seconds() / 3).max(1)
    }

    /// The timeout of each Lease request.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.grace_seconds() * 500)
    }
}

/// The identity of this replica: the pod name when set (the Helm chart passes it),
/// else the host name, with the process id so two processes on one host differ.
pub fn default_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "juju-secrets-operator".into());
    format!("{host}-{}", std::process::id())
}

/// Held leadership: resolves `lost` when it ends, and releases the Lease on
/// [`Leadership::release`].
pub struct Leadership {
    manager: Arc<LeaseManager>,
    /// Resolves with the reason when the leadership ends.
    pub lost: oneshot::Receiver<String>,
    watcher: tokio::task::JoinHandle<()>,
}

impl Leadership {
    /// Stops watching and gives the Lease up, so a standby takes over at once.
    pub async fn release(self) {
        self.watcher.abort();
        match self.manager.release().await {
            Ok(()) => info!("released the leader lease"),
            Err(e) => {
                warn!(error = %e, "could not release the leader lease; it expires on its own")
            }
        }
    }
}

/// Waits until this replica holds the Lease. `client` should have request timeouts of
/// [`LeaderElection::request_timeout`].
pub async fn acquire(client: Client, election: &LeaderElection) -> Leadership {
    let seconds = election.seconds();
    let grace = election.grace_seconds();
    let mut backoff = Duration::from_secs(1);
    let manager = loop {
        // The builder checks grace < duration on every step: lower the grace first.
        let built = LeaseManagerBuilder::new(client.clone(), election.lease_name.clone())
            .with_namespace(election.namespace.clone())
            .with_identity(election.identity.clone())
            .with_grace(1)
            .with_duration(seconds)
            .with_grace(grace)
            .with_field_manager(format!("{}-lease", super::FIELD_MANAGER))
            .build()
            .await;
        match built {
            Ok(manager) => break Arc::new(manager),
            Err(e) => {
                warn!(error = %e, lease = %election.lease_name, namespace = %election.namespace, retry_in = ?backoff, "cannot read or create the leader lease");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    };
    info!(lease = %election.lease_name, namespace = %election.namespace, identity = %election.identity, "waiting for the leader lease");
    backoff = Duration::from_secs(1);
    loop {
        match manager.changed().await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                warn!(error = %e, retry_in = ?backoff, "leader election failed; trying again");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
    info!(identity = %election.identity, "became the leader");
    let (tx, lost) = oneshot::channel();
    let watching = manager.clone();
    let watcher = tokio::spawn(async move {
        // `changed` keeps renewing and returns when the holder changes or a renewal
        // fails; either ends this replica's leadership.
        let reason = loop {
            match watching.changed().await {
                Ok(true) => {}
                Ok(false) => break "another replica holds the leader lease".to_owned(),
                Err(e) => break format!("cannot renew the leader lease: {e}"),
            }
        };
        let _ = tx.send(reason);
    });
    Leadership {
        manager,
        lost,
        watcher,
    }
}
