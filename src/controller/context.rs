//! What every controller shares: the [`Context`] (Kubernetes client, Juju client and
//! the shared Juju state, metrics, event sink, MAC key), the reconcile error type and the
//! per-object backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::events::EventType;
use kube::{Client, Resource};
#[cfg(test)]
use tokio::sync::AcquireError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit, TryAcquireError};
use tracing::debug;

use super::juju_state::{ModelDirectory, SecretListings, WriteBatcher};
use super::tenancy::TenancyPolicy;
use super::{events, juju_state, jujusecret, metrics, ownership};
use juju_client::{Fence, JujuClient};

/// Field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "juju-secrets-operator";

/// Errors that end a reconcile pass (Juju problems become conditions instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    /// The finalizer helper failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// A namespaced object arrived without a namespace.
    #[error("object has no namespace")]
    NotNamespaced,
    /// Removing the Juju secret failed; deletion waits and retries.
    #[error("cleanup: {0}")]
    Cleanup(String),
    /// The ownership record could not be made durable.
    #[error("ownership record: {0}")]
    Record(String),
}

impl Error {
    /// A stable PascalCase label for metrics and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubernetesError",
            Error::Finalizer(_) => "FinalizerError",
            Error::NotNamespaced => "NotNamespaced",
            Error::Cleanup(_) => "CleanupError",
            Error::Record(_) => "RecordError",
        }
    }
}

/// Per-object exponential backoff for retries.
#[derive(Default)]
pub struct Backoff {
    attempts: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    const INITIAL: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(60);

    /// The next delay for `key`: 1 s, 2 s, 4 s ... up to a minute.
    pub fn next(&self, key: &str) -> Duration {
        let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        let n = attempts.entry(key.to_owned()).or_default();
        let delay = Self::INITIAL
            .saturating_mul(2u32.saturating_pow((*n).min(16)))
            .min(Self::MAX);
        *n = n.saturating_add(1);
        delay
    }

    /// Forgets `key` after a success.
    pub fn reset(&self, key: &str) {
        self.attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// What every reconcile shares.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Juju client.
    pub juju: JujuClient,
    /// Events, delivered behind the status writes.
    pub events: events::EventSink,
    /// Tenancy policy.
    pub policy: TenancyPolicy,
    /// Model name resolution.
    pub models: ModelDirectory,
    /// Per-model secret listings.
    pub listings: SecretListings,
    /// Per-model write batching.
    pub writes: WriteBatcher,
    /// Which object is creating which Juju secret (crash safety).
    pub ownership: Arc<ownership::OwnershipRecord>,
    /// Key of the content MAC.
    pub mac_key: Vec<u8>,
    /// Default drift-check interval.
    pub refresh_interval: Duration,
    /// Retry backoff.
    pub backoff: Backoff,
    /// Metrics.
    pub metrics: metrics::Metrics,
    /// Settings of every controller (reconcile concurrency).
    pub controller_config: kube::runtime::controller::Config,
    /// The status writes and events to the apiserver: bounded, and none once the
    /// process may no longer lead.
    pub kube_writes: KubeWrites,
    /// New JujuSecrets' finalizers and statuses, written after their Juju writes.
    pub finisher: Arc<jujusecret::Finisher>,
}

/// Status writes and events in flight to the apiserver at most.
pub const MAX_KUBE_WRITES: usize = 32;

/// The operator's status writes and Events: at most [`MAX_KUBE_WRITES`] in flight, and
/// none once the Juju client's [`Fence`] has closed. A leader frozen or starved past its
/// Lease has its Juju calls refused by the fence; what its passes would then report
/// (the refusal as `JujuError`, a Warning event) is not the objects' state, and a
/// successor may already lead and report them. Cheap to clone.
#[derive(Clone)]
pub struct KubeWrites {
    permits: Arc<Semaphore>,
    fence: Option<Fence>,
}

impl KubeWrites {
    /// `limit` writes in flight at most, none once `fence` (if any) has closed.
    pub fn new(limit: usize, fence: Option<Fence>) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            fence,
        }
    }

    /// Whether writes may go now (the fence, if any, is open).
    pub fn open(&self) -> bool {
        self.fence.as_ref().is_none_or(Fence::is_open)
    }

    /// Waits for a permit for one write; `None` when the write must not go (the fence
    /// has closed, checked once the permit is held, just before the write).
    pub async fn acquire(&self) -> Option<SemaphorePermit<'_>> {
        let permit = self.permits.acquire().await.ok()?;
        if self.open() {
            Some(permit)
        } else {
            debug!("status write not sent: this process no longer leads");
            None
        }
    }

    /// A permit now if one is free and no writer waits for one (the semaphore hands
    /// released permits to its waiters first).
    pub fn try_acquire_owned(&self) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        self.permits.clone().try_acquire_owned()
    }

    /// Takes `n` permits (tests: writes that hold every slot).
    #[cfg(test)]
    pub async fn hold(&self, n: u32) -> Result<OwnedSemaphorePermit, AcquireError> {
        self.permits.clone().acquire_many_owned(n).await
    }
}

impl Context {
    /// Queues an event about `obj` (see [`events`]): best-effort, never waited for.
    pub fn publish<K>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: Option<String>,
    ) where
        K: Resource<DynamicType = ()>,
    {
        let event = jujusecret::event(type_, reason, action, note);
        let mut reference = obj.object_ref(&());
        // Events about cluster-scoped objects live in `default`; apiservers before 1.22
        // insist that the reference names the event's namespace.
        if reference.namespace.is_none() {
            reference.namespace = Some("default".into());
        }
        self.events.send(event, reference);
    }
}

impl Context {
    /// Whether the tenancy policy lets `namespace` use the model written `model`
    /// (name, `owner/name` or UUID). Resolves the model only when the policy names it
    /// in another form.
    pub async fn model_allowed(
        &self,
        namespace: &str,
        model: &str,
    ) -> Result<bool, juju_state::SharedFailure> {
        match self
            .policy
            .precheck(namespace, model, &self.juju.options().username)
        {
            Some(answer) => Ok(answer),
            None => {
                let resolved = self.models.resolve(model).await?;
                Ok(self.policy.allows_model(namespace, &resolved))
            }
        }
    }
}

/// Current time, RFC 3339 with second precision (UTC).
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}
