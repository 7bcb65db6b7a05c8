//! What every controller does with the outcome of a pass: a [`Problem`] becomes a
//! `Ready=False` condition with a specific reason, conditions keep their transition
//! time unless they flip, and the status is written with server-side apply only when
//! it changed.

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::warn;

use super::juju_state::{FailureKind, SharedFailure};
use super::{Error, FIELD_MANAGER, KubeWrites, now_rfc3339};
use crate::crd::condition::{Condition, READY, reason};

/// Why a pass could not bring Juju to the desired state. The message never contains
/// a secret value.
#[derive(Debug)]
pub struct Problem {
    /// The condition reason.
    pub reason: &'static str,
    /// What went wrong.
    pub message: String,
    /// Retry with backoff (the cause may go away by itself).
    pub transient: bool,
}

impl Problem {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            transient: false,
        }
    }

    pub fn transient(mut self) -> Self {
        self.transient = true;
        self
    }
}

impl From<SharedFailure> for Problem {
    fn from(f: SharedFailure) -> Self {
        match f.kind {
            FailureKind::Unavailable => {
                Problem::new(reason::JUJU_UNAVAILABLE, f.message).transient()
            }
            FailureKind::Unauthorized => Problem::new(reason::UNAUTHORIZED, f.message),
            FailureKind::ModelNotFound => Problem::new(reason::MODEL_NOT_FOUND, f.message),
            FailureKind::InvalidContent => Problem::new(reason::INVALID_CONTENT, f.message),
            FailureKind::BackendUnreachable => {
                Problem::new(reason::BACKEND_UNREACHABLE, f.message).transient()
            }
            FailureKind::Other => Problem::new(reason::JUJU_ERROR, f.message).transient(),
            FailureKind::Record => Problem::new(reason::KUBERNETES_ERROR, f.message).transient(),
        }
    }
}

/// The `Ready` condition for this pass, keeping the previous transition time unless
/// the status flips.
pub(crate) fn ready_condition(
    generation: Option<i64>,
    previous: &[Condition],
    ok: bool,
    reason: &str,
    message: &str,
) -> Condition {
    Condition::carry_transition_time(
        Condition {
            type_: READY.into(),
            status: if ok { "True" } else { "False" }.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: now_rfc3339(),
            observed_generation: generation,
        },
        previous,
    )
}

/// True when the Ready condition would change reason or message (worth an event).
pub(crate) fn ready_changes(previous: &[Condition], problem: &Problem) -> bool {
    previous
        .iter()
        .find(|c| c.type_ == READY)
        .is_none_or(|c| c.reason != problem.reason || c.message != problem.message)
}

/// Writes `status` with server-side apply under the operator's field manager, unless
/// the object already has a status equal to it or `writes` has closed (the process no
/// longer leads: nothing is written).
pub(crate) async fn write_status<K, S>(
    writes: &KubeWrites,
    api: &Api<K>,
    name: &str,
    has_status: bool,
    previous: &S,
    status: &S,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if status_unchanged(has_status, previous, status) {
        return Ok(());
    }
    // A bounded number of writes in flight: thousands of objects reconciled at once
    // must not push the apiserver past its in-flight limit (429s, timeouts).
    let Some(_permit) = writes.acquire().await else {
        return Ok(());
    };
    apply_status(api, name, status).await
}

/// After `obj`'s status write answered `not_found` (404): `Ok` when the object is gone
/// (a deletion that raced its finalizer being added; the caller cleans up what the pass
/// may have done, as the finalizer would have). That answer also comes from a CRD
/// without the status subresource (an old or hand-edited CRD): an object still there,
/// with the same UID, is never cleaned up for it, and the 404 is the pass's error.
pub(crate) async fn gone_after_status_404<K>(
    api: &Api<K>,
    obj: &K,
    not_found: Box<kube::core::Status>,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let kind = K::kind(&());
    let name = obj.meta().name.clone().unwrap_or_default();
    let gone = match api.get_opt(&name).await.map_err(Error::Kube)? {
        None => true,
        Some(current) => current.meta().uid != obj.meta().uid,
    };
    if !gone {
        warn!(
            "the {kind}'s status cannot be written (404) although it exists: does its CRD lack the status subresource? Nothing is cleaned up"
        );
        return Err(Error::Kube(kube::Error::Api(not_found)));
    }
    warn!("the {kind} is gone without its finalizer having run; cleaning up");
    Ok(())
}

/// Whether the object's status already is `status` (nothing to write).
pub(crate) fn status_unchanged<S: PartialEq>(has_status: bool, previous: &S, status: &S) -> bool {
    has_status && previous == status
}

/// Writes `status` with server-side apply under the operator's field manager; the
/// caller holds one of the bounded kube write permits.
pub(crate) async fn apply_status<K, S>(api: &Api<K>, name: &str, status: &S) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::Kube)?;
    Ok(())
}

/// Cleans up after an object that is gone from the API while the ownership record still
/// holds something for it (a deletion that did not wait for the finalizer, or a finalizer
/// removed by hand): runs `cleanup` in the background, retried with backoff up to
/// `max_delay`, until `recorded` says the record holds nothing more for it.
pub(crate) fn clean_up_deleted<R, C, F>(what: String, max_delay: Duration, recorded: R, cleanup: C)
where
    R: Fn() -> bool + Send + 'static,
    C: Fn() -> F + Send + 'static,
    F: std::future::Future<Output = Result<kube::runtime::controller::Action, Error>> + Send,
{
    if !recorded() {
        return;
    }
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(500);
        while recorded() {
            tracing::warn!(object = %what, "deleted, but the ownership record still holds it; cleaning up");
            if cleanup().await.is_ok() {
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(max_delay);
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::{Arc, Mutex};

    use juju_client::Fence;
    use tokio::time::Instant;

    use super::*;
    use crate::crd::secret::{JujuSecret, JujuSecretStatus};

    /// A fake apiserver that answers every request with a JujuSecret and records them.
    fn fake_client(seen: Arc<Mutex<Vec<String>>>) -> kube::Client {
        super::super::test_support::fake_client(
            seen,
            json!({
                "apiVersion": "secrets.juju.is/v1alpha1", "kind": "JujuSecret",
                "metadata": {"name": "s", "namespace": "ns"},
                "spec": {"model": "m", "data": {"k": "v"}}
            }),
        )
    }

    #[tokio::test]
    async fn no_status_is_written_once_the_fence_has_closed() {
        // A leader woken past its Lease: the status its pass would write (a Juju call
        // refused by the fence, reported as JujuError) is not sent; with the fence open
        // again, it is.
        let seen = Arc::new(Mutex::new(Vec::new()));
        let api: Api<JujuSecret> = Api::namespaced(fake_client(seen.clone()), "ns");
        let fence = Fence::new(Instant::now());
        let writes = KubeWrites::new(4, Some(fence.clone()));
        let previous = JujuSecretStatus::default();
        let status = JujuSecretStatus {
            revision: Some(1),
            ..JujuSecretStatus::default()
        };
        write_status(&writes, &api, "s", true, &previous, &status)
            .await
            .unwrap();
        assert!(
            seen.lock().unwrap().is_empty(),
            "a status went out through a closed fence"
        );
        fence.open_until(Instant::now() + Duration::from_secs(60));
        write_status(&writes, &api, "s", true, &previous, &status)
            .await
            .unwrap();
        assert_eq!(
            seen.lock().unwrap().as_slice(),
            ["PATCH /apis/secrets.juju.is/v1alpha1/namespaces/ns/jujusecrets/s/status"]
        );
    }
}
