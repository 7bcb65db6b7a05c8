//! Leader election over a `coordination.k8s.io/v1` Lease, so that several replicas can
//! run and exactly one reconciles.
//!
//! Every write to the Lease is a merge patch that names the `resourceVersion` it was
//! decided on, so the apiserver refuses it (409) if anyone wrote the Lease since: of two
//! replicas that try to take it at once one wins, and a renewal never extends a Lease
//! that has changed hands.
//!
//! A standby looks at the Lease every fifteenth of its duration. It takes a Lease that
//! names no holder (one released on a clean shutdown) at its next look, and a Lease
//! another replica holds once it has seen it unchanged for a whole duration, by its own
//! clock (the holder renews it every third): no clock of another machine decides. A
//! Lease naming this replica's own identity is taken at once: a container restarted in
//! its pod keeps the pod's name. The Lease is a process's only while it names its
//! identity *and* the `acquireTime` its take wrote, so should two processes be given
//! one name (a `POD_NAME` override; the chart never does), the one whose Lease the other
//! took stops at its next renewal, and says why.
//!
//! The leader renews the Lease every third of its duration. A renewal that fails (a
//! timeout, a dropped connection, an apiserver restart) is tried again while the Lease
//! certainly holds, as the leader knows from its own last successful write. If the
//! Lease changed hands, or renewal keeps failing until a sixth of the duration is
//! left, the leader stops (the process exits and Kubernetes restarts it as a standby),
//! before a standby could take over; every attempt is cut off at that point, so a hung
//! request cannot carry the leader past its Lease. Each Lease request times out after a
//! quarter of the duration: a slow apiserver still answers in time, and the middle half
//! of the Lease leaves room for two attempts. On a clean shutdown the leader
//! clears the holder, so a standby takes over without waiting for the Lease to run out.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use juju_client::Fence;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::oneshot;
use tokio::time::Instant;
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
/// The longest Lease duration accepted: a standby waits this long for a leader that
/// stopped without releasing the Lease.
pub const MAX_LEASE_DURATION: Duration = Duration::from_secs(3600);

impl LeaderElection {
    fn seconds(&self) -> u64 {
        self.duration
            .as_secs()
            .clamp(MIN_LEASE_DURATION.as_secs(), MAX_LEASE_DURATION.as_secs())
    }

    /// The timeout of each Lease request: a quarter of the Lease.
    pub fn request_timeout(&self) -> Duration {
        self.timing().request_timeout
    }

    fn timing(&self) -> Timing {
        Timing::new(Duration::from_secs(self.seconds()))
    }
}

/// When a standby looks at the Lease, when the leader renews it, and when it gives up.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Timing {
    /// The Lease's duration.
    duration: Duration,
    /// Renewal starts when this much of the Lease is left: two thirds, so it renews
    /// every third and has the middle half of the Lease to try again.
    renew_before: Duration,
    /// The leader stops when renewal has failed until this much is left (a sixth).
    stop_before: Duration,
    /// The timeout of each Lease request (a quarter).
    request_timeout: Duration,
    /// The pause between failed renewals.
    retry_pause: Duration,
    /// How often a standby looks at the Lease.
    poll: Duration,
}

impl Timing {
    fn new(duration: Duration) -> Timing {
        Timing {
            duration,
            renew_before: duration * 2 / 3,
            stop_before: duration / 6,
            request_timeout: duration / 4,
            retry_pause: duration / 30,
            poll: duration / 15,
        }
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
    lease: Arc<KubeLease>,
    /// Closes when this replica must stop leading at the latest, moved on by every
    /// renewal: the Juju client sends nothing once it has closed, even if this process
    /// was frozen and has not yet noticed.
    pub fence: Fence,
    /// Resolves with the reason when the leadership ends.
    pub lost: oneshot::Receiver<String>,
    /// The `acquireTime` this process's take wrote.
    acquired: Option<String>,
    renewer: tokio::task::JoinHandle<()>,
}

impl Leadership {
    /// Stops renewing and gives the Lease up, so a standby takes over at its next look
    /// instead of waiting for the Lease to run out.
    pub async fn release(self) {
        self.renewer.abort();
        match release(&*self.lease, &self.lease.identity, &self.acquired).await {
            Ok(true) => info!("released the leader lease"),
            Ok(false) => info!("the leader lease no longer names this replica; nothing to release"),
            Err(e) => {
                warn!(error = %e, "could not release the leader lease; it runs out on its own")
            }
        }
    }
}

/// Waits until this replica holds the Lease, then renews it in the background. `client`
/// should have request timeouts of [`LeaderElection::request_timeout`].
pub async fn acquire(client: Client, election: &LeaderElection) -> Leadership {
    let lease = Arc::new(KubeLease {
        api: Api::namespaced(client, &election.namespace),
        name: election.lease_name.clone(),
        identity: election.identity.clone(),
        seconds: i32::try_from(election.seconds()).unwrap_or(i32::MAX),
        params: PatchParams {
            field_manager: Some(format!("{}-lease", super::FIELD_MANAGER)),
            ..PatchParams::default()
        },
    });
    let timing = election.timing();
    info!(lease = %election.lease_name, namespace = %election.namespace, identity = %election.identity, "waiting for the leader lease");
    let held = wait_for_lease(&*lease, &election.identity, timing).await;
    info!(identity = %election.identity, "became the leader");
    let (tx, lost) = oneshot::channel();
    let fence = Fence::new(held.stop_by(timing));
    let acquired = held.acquired.clone();
    let renewing = lease.clone();
    let renewer = tokio::spawn({
        let fence = fence.clone();
        async move {
            let reason = hold(&*renewing, &renewing.identity, timing, held, &fence).await;
            let _ = tx.send(reason);
        }
    });
    Leadership {
        lease,
        fence,
        lost,
        acquired,
        renewer,
    }
}

/// Why a Lease request failed.
#[derive(Debug)]
enum LeaseError {
    /// The Lease is no longer at the `resourceVersion` the write named (or, for a
    /// create, someone else created it first).
    Conflict,
    /// Anything else: a timeout, a dropped connection, an apiserver error.
    Other(String),
}

impl std::fmt::Display for LeaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaseError::Conflict => f.write_str("the Lease was changed by someone else"),
            LeaseError::Other(e) => f.write_str(e),
        }
    }
}

/// The Lease as read.
#[derive(Clone, Debug, PartialEq)]
struct LeaseView {
    holder: Option<String>,
    /// `acquireTime` as the apiserver holds it: which take of the holder's this is.
    acquired: Option<String>,
    resource_version: String,
    /// `leaseDurationSeconds` as its holder wrote it.
    duration: Option<Duration>,
    transitions: i32,
}

/// What the election does to the Lease: the apiserver's, or a script in the tests.
/// Every write names the `resourceVersion` it was decided on, so it is refused
/// ([`LeaseError::Conflict`]) if anyone wrote the Lease since.
trait LeaseApi {
    /// Reads the Lease; `None` when there is none.
    fn read(&self) -> impl Future<Output = Result<Option<LeaseView>, LeaseError>> + Send;
    /// Makes this replica the holder of the Lease as `seen` (creates the Lease when
    /// there is none); the new `resourceVersion` and `acquireTime`.
    fn take(
        &self,
        seen: Option<&LeaseView>,
    ) -> impl Future<Output = Result<Taken, LeaseError>> + Send;
    /// Moves `renewTime` to now; the new `resourceVersion`.
    fn renew(
        &self,
        resource_version: &str,
    ) -> impl Future<Output = Result<String, LeaseError>> + Send;
    /// Clears the holder.
    fn clear(&self, resource_version: &str) -> impl Future<Output = Result<(), LeaseError>> + Send;
}

/// A take, as the apiserver stored it.
#[derive(Clone, Debug, PartialEq)]
struct Taken {
    resource_version: String,
    acquired: Option<String>,
}

/// The Lease in the apiserver.
struct KubeLease {
    api: Api<Lease>,
    name: String,
    identity: String,
    seconds: i32,
    params: PatchParams,
}

impl KubeLease {
    /// A merge patch that names `resource_version`: the apiserver refuses it (409) if
    /// the Lease changed since. The Lease as written.
    async fn patch(
        &self,
        resource_version: &str,
        spec: serde_json::Value,
    ) -> Result<Lease, LeaseError> {
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": resource_version},
            "spec": spec,
        });
        self.api
            .patch(&self.name, &self.params, &Patch::Merge(&patch))
            .await
            .map_err(lease_error)
    }
}

fn written_version(lease: Lease) -> Result<String, LeaseError> {
    lease.metadata.resource_version.ok_or_else(|| {
        LeaseError::Other("the apiserver returned the Lease without a resourceVersion".into())
    })
}

/// `acquireTime` of `lease` as the apiserver holds it (microseconds).
fn acquired(lease: &Lease) -> Option<String> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.acquire_time.as_ref())
        .map(|t| t.0.to_string())
}

fn taken(lease: Lease) -> Result<Taken, LeaseError> {
    let acquired = acquired(&lease);
    Ok(Taken {
        resource_version: written_version(lease)?,
        acquired,
    })
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

impl LeaseApi for KubeLease {
    async fn read(&self) -> Result<Option<LeaseView>, LeaseError> {
        let Some(lease) = self.api.get_opt(&self.name).await.map_err(lease_error)? else {
            return Ok(None);
        };
        let acquired = acquired(&lease);
        let spec = lease.spec.unwrap_or_default();
        Ok(Some(LeaseView {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            acquired,
            resource_version: lease.metadata.resource_version.unwrap_or_default(),
            duration: spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map(Duration::from_secs),
            transitions: spec.lease_transitions.unwrap_or(0),
        }))
    }

    async fn take(&self, seen: Option<&LeaseView>) -> Result<Taken, LeaseError> {
        let spec = |transitions: i32| {
            serde_json::json!({
                "holderIdentity": self.identity,
                "acquireTime": now(),
                "renewTime": now(),
                "leaseDurationSeconds": self.seconds,
                "leaseTransitions": transitions,
            })
        };
        match seen {
            Some(view) => {
                let transitions = if view.holder.as_deref() == Some(self.identity.as_str()) {
                    view.transitions
                } else {
                    view.transitions.saturating_add(1)
                };
                taken(
                    self.patch(&view.resource_version, spec(transitions))
                        .await?,
                )
            }
            None => {
                let lease: Lease = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": self.name},
                    "spec": spec(0),
                }))
                .map_err(|e| LeaseError::Other(e.to_string()))?;
                let post = PostParams {
                    field_manager: self.params.field_manager.clone(),
                    ..PostParams::default()
                };
                let created = self.api.create(&post, &lease).await.map_err(lease_error)?;
                taken(created)
            }
        }
    }

    async fn renew(&self, resource_version: &str) -> Result<String, LeaseError> {
        self.patch(
            resource_version,
            serde_json::json!({"renewTime": now(), "leaseDurationSeconds": self.seconds}),
        )
        .await
        .and_then(written_version)
    }

    async fn clear(&self, resource_version: &str) -> Result<(), LeaseError> {
        self.patch(
            resource_version,
            serde_json::json!({"holderIdentity": null, "acquireTime": null, "renewTime": null}),
        )
        .await
        .map(|_| ())
    }
}

fn lease_error(e: kube::Error) -> LeaseError {
    match e {
        kube::Error::Api(status) if status.code == 409 => LeaseError::Conflict,
        e => LeaseError::Other(e.to_string()),
    }
}

/// The Lease as this replica last renewed it.
#[derive(Clone, Debug, PartialEq)]
struct Held {
    resource_version: String,
    /// The `acquireTime` this process's take wrote: the Lease is this process's only
    /// while it names this identity with this time.
    acquired: Option<String>,
    /// When the Lease runs out at the earliest: the write was sent after this instant
    /// less the duration, and wrote a `renewTime` no earlier.
    expires: Instant,
}

/// Whether `view` is the Lease of the process named `identity` whose take wrote
/// `acquired`.
fn taken_by(view: &LeaseView, identity: &str, acquired: &Option<String>) -> bool {
    view.holder.as_deref() == Some(identity) && view.acquired == *acquired
}

impl Held {
    /// Whether `view` is this process's Lease.
    fn is(&self, view: &LeaseView, identity: &str) -> bool {
        taken_by(view, identity, &self.acquired)
    }

    /// When the leader must stop at the latest unless it renews: a sixth of the Lease
    /// before it could run out. Renewal attempts are cut off there, and the Juju
    /// client's fence closes there.
    fn stop_by(&self, timing: Timing) -> Instant {
        earlier(self.expires, timing.stop_before)
    }
}

/// Looks at the Lease every [`Timing::poll`] until this replica holds it. A Lease that
/// names no holder, or this replica (a restarted container keeps its pod's name), is
/// taken at once. A Lease held by another replica is taken once this replica has seen
/// it unchanged (the same `resourceVersion`) for a whole Lease duration, by its own
/// clock: the holder renews it every third of that, so it has stopped, and no clock of
/// another machine enters the decision. Every take names the `resourceVersion` it was
/// decided on, so of two replicas that decide at once one wins and the other reads
/// again; a renewal that lands in between makes the take fail.
async fn wait_for_lease(lease: &impl LeaseApi, identity: &str, timing: Timing) -> Held {
    let mut seen = Unchanged::default();
    let mut pause = timing.poll;
    loop {
        let attempt = match lease.read().await {
            Ok(view) if seen.free(view.as_ref(), identity, timing) => {
                let sent = Instant::now();
                lease.take(view.as_ref()).await.map(|taken| {
                    Some(Held {
                        resource_version: taken.resource_version,
                        acquired: taken.acquired,
                        expires: sent + timing.duration,
                    })
                })
            }
            Ok(_) => Ok(None),
            Err(e) => Err(e),
        };
        match attempt {
            Ok(Some(held)) => return held,
            Ok(None) => pause = timing.poll,
            // Another replica wrote the Lease first: read it again, soon.
            Err(LeaseError::Conflict) => pause = timing.retry_pause,
            Err(e) => {
                warn!(error = %e, retry_in = ?pause, "cannot read or take the leader lease");
                pause = (pause * 2).min(timing.duration);
            }
        }
        tokio::time::sleep(pause).await;
    }
}

/// What a standby has seen of a Lease another replica holds: its `resourceVersion` and
/// since when (by this replica's clock).
#[derive(Default)]
struct Unchanged(Option<(String, Instant)>);

impl Unchanged {
    /// Whether the Lease as read (`view`) may be taken now: there is none, it names no
    /// holder or this replica, or its `resourceVersion` has been the same for a whole
    /// Lease (the longer of this replica's duration and the one its holder wrote).
    fn free(&mut self, view: Option<&LeaseView>, identity: &str, timing: Timing) -> bool {
        let Some(view) = view else {
            return true;
        };
        match view.holder.as_deref() {
            None => return true,
            Some(holder) if holder == identity => return true,
            Some(_) => {}
        }
        let since = match &self.0 {
            Some((version, since)) if *version == view.resource_version => *since,
            _ => {
                let now = Instant::now();
                self.0 = Some((view.resource_version.clone(), now));
                now
            }
        };
        since.elapsed() >= view.duration.unwrap_or_default().max(timing.duration)
    }
}

/// Clears the holder if the Lease is still this process's (`acquired` by it): `Ok(false)`
/// when it is not.
async fn release(
    lease: &impl LeaseApi,
    identity: &str,
    acquired: &Option<String>,
) -> Result<bool, LeaseError> {
    loop {
        let Some(view) = lease.read().await? else {
            return Ok(false);
        };
        if !taken_by(&view, identity, acquired) {
            return Ok(false);
        }
        match lease.clear(&view.resource_version).await {
            Ok(()) => return Ok(true),
            Err(LeaseError::Conflict) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Renews the Lease while this replica leads; returns why the leadership ended. Each
/// renewal starts when two thirds of the Lease are left; a failed one is tried again
/// until a sixth is left, each attempt cut off there, so the leader gives up before
/// the Lease could run out and a standby take over.
async fn hold(
    lease: &impl LeaseApi,
    identity: &str,
    timing: Timing,
    mut held: Held,
    fence: &Fence,
) -> String {
    loop {
        tokio::time::sleep_until(earlier(held.expires, timing.renew_before)).await;
        let stop_at = held.stop_by(timing);
        let mut resource_version = held.resource_version.clone();
        let mut failures = 0u32;
        held = loop {
            let sent = Instant::now();
            if sent >= stop_at {
                // Woken too late to renew in time (the process was paused or starved):
                // send nothing, the Lease may be another replica's by now.
                return format!(
                    "the leader lease was not renewed in time: {:?} late, {:?} before it could run out",
                    sent - stop_at,
                    held.expires.saturating_duration_since(sent)
                );
            }
            let error = match tokio::time::timeout_at(stop_at, lease.renew(&resource_version)).await
            {
                Ok(Ok(resource_version)) => {
                    break Held {
                        resource_version,
                        acquired: held.acquired.clone(),
                        expires: sent + timing.duration,
                    };
                }
                Ok(Err(LeaseError::Conflict)) => {
                    // Someone else wrote the Lease: renew again only if it is still ours.
                    match tokio::time::timeout_at(stop_at, lease.read()).await {
                        Ok(Ok(None)) => return "the leader lease was deleted".into(),
                        Ok(Ok(Some(view))) if held.is(&view, identity) => {
                            resource_version = view.resource_version;
                            continue;
                        }
                        Ok(Ok(Some(view))) => match view.holder {
                            Some(holder) if holder == identity => {
                                return format!(
                                    "another process with this replica's identity ({holder}) took the leader lease over"
                                );
                            }
                            Some(holder) => {
                                return format!(
                                    "another replica ({holder}) holds the leader lease"
                                );
                            }
                            None => return "the leader lease was released by someone else".into(),
                        },
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => "reading the Lease timed out".into(),
                    }
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => "the renewal timed out".into(),
            };
            failures += 1;
            let left = held.expires.saturating_duration_since(Instant::now());
            if Instant::now() + timing.retry_pause >= stop_at {
                return format!(
                    "cannot renew the leader lease (attempts: {failures}) and it could run out in {left:?}: {error}"
                );
            }
            warn!(%error, attempt = failures, lease_left = ?left, "cannot renew the leader lease; trying again while it holds");
            tokio::time::sleep(timing.retry_pause).await;
        };
        fence.open_until(held.stop_by(timing));
        if failures > 0 {
            info!(
                failed_attempts = failures,
                "renewed the leader lease after failed attempts"
            );
        }
    }
}

/// `at` less `by`, or `at` itself should the clock not reach back that far.
fn earlier(at: Instant, by: Duration) -> Instant {
    at.checked_sub(by).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;

    /// What one scripted write (take, renew, clear) does.
    #[derive(Clone, Copy, Debug)]
    enum Step {
        /// Succeeds.
        Ok,
        /// Fails as a dropped connection would.
        Fail,
        /// Refused with 409.
        Conflict,
        /// Never answers.
        Hang,
    }

    /// What one scripted read answers.
    #[derive(Clone, Debug)]
    enum Read {
        Lease(Option<LeaseView>),
        Fail,
    }

    /// A Lease as read: held by `holder`, at `version`, written for [`LEASE`].
    fn lease(holder: Option<&str>, version: &str) -> Read {
        Read::Lease(Some(LeaseView {
            holder: holder.map(str::to_owned),
            acquired: holder.map(acquired_by),
            resource_version: version.to_owned(),
            duration: Some(LEASE),
            transitions: 1,
        }))
    }

    /// A Lease whose requests follow a script (a read past its end fails, a write past
    /// its end never answers); it logs each request with the time since the test began
    /// (time is paused, so the times are exact).
    struct Script {
        start: Instant,
        writes: Mutex<VecDeque<Step>>,
        reads: Mutex<VecDeque<Read>>,
        log: Mutex<Vec<(Duration, String)>>,
    }

    impl Script {
        fn new(writes: &[Step], reads: &[Read]) -> Script {
            Script {
                start: Instant::now(),
                writes: Mutex::new(writes.iter().copied().collect()),
                reads: Mutex::new(reads.iter().cloned().collect()),
                log: Mutex::new(Vec::new()),
            }
        }

        fn note(&self, what: String) -> usize {
            let mut log = self.log.lock().unwrap();
            log.push((self.start.elapsed(), what));
            log.len()
        }

        async fn write(&self, what: String) -> Result<String, LeaseError> {
            let n = self.note(what);
            let step = self
                .writes
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Step::Hang);
            match step {
                Step::Ok => Ok(format!("w{n}")),
                Step::Fail => Err(LeaseError::Other("connection reset".into())),
                Step::Conflict => Err(LeaseError::Conflict),
                Step::Hang => std::future::pending().await,
            }
        }

        fn log(&self) -> Vec<(Duration, String)> {
            self.log.lock().unwrap().clone()
        }
    }

    impl LeaseApi for Script {
        async fn read(&self) -> Result<Option<LeaseView>, LeaseError> {
            self.note("read".into());
            match self.reads.lock().unwrap().pop_front() {
                Some(Read::Lease(view)) => Ok(view),
                Some(Read::Fail) | None => Err(LeaseError::Other("connection reset".into())),
            }
        }

        async fn take(&self, seen: Option<&LeaseView>) -> Result<Taken, LeaseError> {
            let version = seen.map_or("new", |v| v.resource_version.as_str());
            let resource_version = self.write(format!("take {version}")).await?;
            Ok(Taken {
                resource_version,
                acquired: Some(acquired_by(ME)),
            })
        }

        async fn renew(&self, resource_version: &str) -> Result<String, LeaseError> {
            self.write(format!("renew {resource_version}")).await
        }

        async fn clear(&self, resource_version: &str) -> Result<(), LeaseError> {
            self.write(format!("clear {resource_version}"))
                .await
                .map(|_| ())
        }
    }

    const ME: &str = "replica-a";
    const LEASE: Duration = Duration::from_secs(6);

    /// The `acquireTime` of `holder`'s take in the scripts (this process's: `ME`'s).
    fn acquired_by(holder: &str) -> String {
        format!("acquired by {holder}")
    }

    fn held(script: &Script) -> Held {
        Held {
            acquired: Some(acquired_by(ME)),
            resource_version: "1".into(),
            expires: script.start + LEASE,
        }
    }

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn fence() -> Fence {
        Fence::new(Instant::now())
    }

    /// `(at, what)` for each time in `times`.
    fn at(times: impl IntoIterator<Item = u64>, what: &str) -> Vec<(Duration, String)> {
        times
            .into_iter()
            .map(|t| (ms(t), what.to_owned()))
            .collect()
    }

    #[test]
    fn renewal_every_third_retries_in_the_middle_half_requests_time_out_at_a_quarter() {
        let t = Timing::new(LEASE);
        assert_eq!(t.renew_before, ms(4000));
        assert_eq!(t.stop_before, ms(1000));
        assert_eq!(t.request_timeout, ms(1500));
        assert_eq!(t.retry_pause, ms(200));
        assert_eq!(t.poll, ms(400));
        let shortest = LeaderElection {
            lease_name: "l".into(),
            namespace: "n".into(),
            identity: ME.into(),
            duration: Duration::from_secs(1),
        };
        // Below the minimum the minimum applies; requests time out at a quarter.
        assert_eq!(shortest.request_timeout(), ms(750));
        assert_eq!(shortest.timing().renew_before, ms(2000));
    }

    #[tokio::test(start_paused = true)]
    async fn renewal_failures_shorter_than_the_lease_keep_the_leadership() {
        let script = Script::new(
            &[Step::Fail, Step::Fail, Step::Ok, Step::Conflict],
            &[lease(Some("replica-b"), "9")],
        );
        let reason = hold(&script, ME, Timing::new(LEASE), held(&script), &fence()).await;
        assert_eq!(reason, "another replica (replica-b) holds the leader lease");
        assert_eq!(
            script.log(),
            vec![
                // Two thirds left: renew; it fails twice and is tried again.
                (ms(2000), "renew 1".into()),
                (ms(2200), "renew 1".into()),
                (ms(2400), "renew 1".into()),
                // Renewed at 2.4 s: the next renewal is a third of the Lease later.
                (ms(4400), "renew w3".into()),
                (ms(4400), "read".into()),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_that_cannot_renew_stops_before_its_lease_could_run_out() {
        let script = Script::new(&[Step::Fail; 100], &[]);
        let reason = hold(&script, ME, Timing::new(LEASE), held(&script), &fence()).await;
        let stopped = script.start.elapsed();
        assert!(
            reason.starts_with("cannot renew the leader lease (attempts: 15)"),
            "{reason}"
        );
        assert!(reason.ends_with("connection reset"), "{reason}");
        // It tried until the last sixth, and stopped there.
        let last = script.log().last().map(|(at, _)| *at);
        assert_eq!(last, Some(ms(4800)));
        assert_eq!(stopped, ms(4800));
        assert!(stopped <= LEASE - LEASE / 6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_woken_past_its_deadline_stops_without_writing() {
        // As after SIGSTOP: the renewal is due at 2 s, the process runs again at 5.5 s.
        let script = Script::new(&[Step::Ok], &[]);
        let held = held(&script);
        tokio::time::advance(ms(5500)).await;
        let reason = hold(&script, ME, Timing::new(LEASE), held, &fence()).await;
        assert_eq!(
            reason,
            "the leader lease was not renewed in time: 500ms late, 500ms before it could run out"
        );
        assert_eq!(script.log(), vec![]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_juju_fence_closes_on_time_even_if_the_renewer_never_runs_again() {
        // Renewed at 2 s: the fence opens until 7 s (the Lease's 8 s less a sixth).
        // The next renewal hangs; whether or not the renewer gets to notice, the fence
        // is closed from 7 s on.
        let script = Script::new(&[Step::Ok, Step::Hang], &[]);
        let fence = Fence::new(script.start + ms(5000));
        let renewer = {
            let fence = fence.clone();
            let held = held(&script);
            async move { hold(&script, ME, Timing::new(LEASE), held, &fence).await }
        };
        let start = Instant::now();
        let watch = async {
            tokio::time::sleep_until(start + ms(6999)).await;
            let before = fence.is_open();
            tokio::time::sleep_until(start + ms(7000)).await;
            (before, fence.is_open())
        };
        let (reason, (before, at)) = tokio::join!(renewer, watch);
        assert_eq!((before, at), (true, false));
        assert!(reason.ends_with("the renewal timed out"), "{reason}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_renewal_cannot_carry_the_leader_past_its_lease() {
        let script = Script::new(&[Step::Hang], &[]);
        let reason = hold(&script, ME, Timing::new(LEASE), held(&script), &fence()).await;
        assert_eq!(script.start.elapsed(), LEASE - LEASE / 6);
        assert!(reason.ends_with("the renewal timed out"), "{reason}");
        assert_eq!(script.log(), at([2000], "renew 1"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_written_by_someone_else_is_renewed_only_while_it_names_this_replica() {
        // Someone annotated the Lease: it still names this replica, so the renewal
        // goes on at the new resourceVersion; then it was cleared, then deleted.
        let script = Script::new(
            &[Step::Conflict, Step::Ok, Step::Conflict],
            &[lease(Some(ME), "7"), lease(None, "8")],
        );
        let reason = hold(&script, ME, Timing::new(LEASE), held(&script), &fence()).await;
        assert_eq!(reason, "the leader lease was released by someone else");
        assert_eq!(
            script.log(),
            vec![
                (ms(2000), "renew 1".into()),
                (ms(2000), "read".into()),
                (ms(2000), "renew 7".into()),
                (ms(4000), "renew w3".into()),
                (ms(4000), "read".into()),
            ]
        );
        let script = Script::new(&[Step::Conflict], &[Read::Lease(None)]);
        let reason = hold(&script, ME, Timing::new(LEASE), held(&script), &fence()).await;
        assert_eq!(reason, "the leader lease was deleted");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_taken_over_by_another_process_with_this_identity_ends_the_leadership() {
        // A second process was given this replica's name (a POD_NAME override) and took
        // the Lease: it names this identity still, with another acquireTime.
        let mut other = lease(Some(ME), "7");
        if let Read::Lease(Some(view)) = &mut other {
            view.acquired = Some("acquired by the other process".into());
        }
        let script = Script::new(&[Step::Conflict], &[other]);
        let reason = hold(&script, ME, Timing::new(LEASE), held(&script), &fence()).await;
        assert_eq!(
            reason,
            "another process with this replica's identity (replica-a) took the leader lease over"
        );
        assert_eq!(
            script.log(),
            [at([2000], "renew 1"), at([2000], "read")].concat()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_standby_takes_a_released_lease_at_its_next_look() {
        let script = Script::new(
            &[Step::Ok],
            &[lease(Some("replica-b"), "5"), lease(None, "6")],
        );
        let held = wait_for_lease(&script, ME, Timing::new(LEASE)).await;
        assert_eq!(
            held,
            Held {
                resource_version: "w3".into(),
                acquired: Some(acquired_by(ME)),
                expires: script.start + ms(400) + LEASE,
            }
        );
        assert_eq!(
            script.log(),
            [at([0, 400], "read"), at([400], "take 6")].concat()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_standby_takes_a_held_lease_only_once_it_saw_it_unchanged_for_a_whole_lease() {
        // The holder renews at 1.6 s (a new resourceVersion), then stops: the standby
        // takes the Lease a whole Lease after it first saw that version, not earlier.
        let mut reads = vec![lease(Some("replica-b"), "5"); 4];
        reads.extend(vec![lease(Some("replica-b"), "6"); 16]);
        let script = Script::new(&[Step::Ok], &reads);
        wait_for_lease(&script, ME, Timing::new(LEASE)).await;
        assert_eq!(
            script.log(),
            [at((0..=7600).step_by(400), "read"), at([7600], "take 6")].concat()
        );
        // A holder that wrote a longer Lease is waited for that long.
        let mut longer = lease(Some("replica-b"), "5");
        if let Read::Lease(Some(view)) = &mut longer {
            view.duration = Some(Duration::from_secs(10));
        }
        let script = Script::new(&[Step::Ok], &vec![longer; 26]);
        wait_for_lease(&script, ME, Timing::new(LEASE)).await;
        assert_eq!(script.log().last(), Some(&(ms(10_000), "take 5".into())));
    }

    #[tokio::test(start_paused = true)]
    async fn of_two_standbys_taking_the_lease_at_once_the_one_refused_reads_again() {
        // This replica's take is refused: another replica took the Lease first. The
        // next read, soon, shows it held; this one waits out a whole Lease again.
        let mut reads = vec![lease(None, "1")];
        reads.extend(vec![lease(Some("replica-b"), "2"); 16]);
        let script = Script::new(&[Step::Conflict, Step::Ok], &reads);
        wait_for_lease(&script, ME, Timing::new(LEASE)).await;
        assert_eq!(
            script.log(),
            [
                at([0], "read"),
                at([0], "take 1"),
                at((200..=6200).step_by(400), "read"),
                at([6200], "take 2"),
            ]
            .concat()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_naming_this_replica_or_none_is_taken_at_once_and_failed_reads_back_off() {
        // A restarted container keeps its pod's name: its own Lease is taken at once.
        let script = Script::new(&[Step::Ok], &[lease(Some(ME), "3")]);
        wait_for_lease(&script, ME, Timing::new(LEASE)).await;
        assert_eq!(script.log(), [at([0], "read"), at([0], "take 3")].concat());
        // No Lease yet: it is created; reads that fail are tried again, backing off.
        let script = Script::new(&[Step::Ok], &[Read::Fail, Read::Fail, Read::Lease(None)]);
        wait_for_lease(&script, ME, Timing::new(LEASE)).await;
        assert_eq!(
            script.log(),
            [at([0, 800, 2400], "read"), at([2400], "take new")].concat()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn release_clears_only_a_lease_that_names_this_replica() {
        let script = Script::new(
            &[Step::Conflict, Step::Ok],
            &[lease(Some(ME), "9"), lease(Some(ME), "10")],
        );
        assert!(release(&script, ME, &Some(acquired_by(ME))).await.unwrap());
        assert_eq!(
            script.log(),
            [
                at([0], "read"),
                at([0], "clear 9"),
                at([0], "read"),
                at([0], "clear 10")
            ]
            .concat()
        );
        let script = Script::new(&[], &[lease(Some("replica-b"), "11")]);
        assert!(!release(&script, ME, &Some(acquired_by(ME))).await.unwrap());
        assert_eq!(script.log(), at([0], "read"));
        // Nor one another process with this identity took over.
        let script = Script::new(&[], &[lease(Some(ME), "12")]);
        let other = Some("acquired by the other process".to_owned());
        assert!(!release(&script, ME, &other).await.unwrap());
        assert_eq!(script.log(), at([0], "read"));
    }

    /// One Lease kept in memory under the apiserver's rule (a write naming another
    /// `resourceVersion` is refused), shared by several replicas whose requests take a
    /// random time, fail at random, and are cut off by the client's timeout while the
    /// apiserver still applies them (an answer lost on the way back).
    struct Simulated {
        lease: Mutex<Option<SimLease>>,
        seed: Mutex<u64>,
    }

    /// The simulated Lease: its holder, `resourceVersion` and `acquireTime` (the
    /// `resourceVersion` its last take wrote).
    struct SimLease {
        holder: Option<String>,
        version: u64,
        acquired: u64,
    }

    impl Simulated {
        fn random(&self, below: u64) -> u64 {
            let mut x = self.seed.lock().unwrap();
            // xorshift64
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            *x % below
        }
    }

    struct Replica {
        sim: Arc<Simulated>,
        identity: String,
        timeout: Duration,
    }

    impl Replica {
        /// Runs `apply` on the Lease after a random delay, whether or not the caller is
        /// still there; the caller gets its answer, an error, or a timeout.
        async fn request<T: Send + 'static>(
            &self,
            apply: impl FnOnce(&mut Option<SimLease>) -> Result<T, LeaseError> + Send + 'static,
        ) -> Result<T, LeaseError> {
            // A quarter of the requests outlast the client's timeout (a quarter of the
            // Lease), one in ten fails.
            let delay = ms(self.sim.random(2000));
            let fails_before = self.sim.random(20) == 0;
            let answer_lost = self.sim.random(20) == 0;
            let sim = self.sim.clone();
            let applied = tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if fails_before {
                    return Err(LeaseError::Other("connection refused".into()));
                }
                let result = apply(&mut sim.lease.lock().unwrap());
                if answer_lost {
                    return Err(LeaseError::Other("connection reset".into()));
                }
                result
            });
            match tokio::time::timeout(self.timeout, applied).await {
                Ok(Ok(result)) => result,
                Ok(Err(e)) => Err(LeaseError::Other(e.to_string())),
                Err(_) => Err(LeaseError::Other("timed out".into())),
            }
        }
    }

    impl LeaseApi for Replica {
        async fn read(&self) -> Result<Option<LeaseView>, LeaseError> {
            self.request(|lease| {
                Ok(lease.as_ref().map(|l| LeaseView {
                    holder: l.holder.clone(),
                    acquired: Some(l.acquired.to_string()),
                    resource_version: l.version.to_string(),
                    duration: Some(LEASE),
                    transitions: 0,
                }))
            })
            .await
        }

        async fn take(&self, seen: Option<&LeaseView>) -> Result<Taken, LeaseError> {
            let me = self.identity.clone();
            let seen = seen.map(|v| v.resource_version.clone());
            self.request(move |lease| {
                let version = match (lease.as_mut(), seen) {
                    (None, None) => 1,
                    (Some(l), Some(seen)) if l.version.to_string() == seen => l.version + 1,
                    _ => return Err(LeaseError::Conflict),
                };
                *lease = Some(SimLease {
                    holder: Some(me),
                    version,
                    acquired: version,
                });
                Ok(Taken {
                    resource_version: version.to_string(),
                    acquired: Some(version.to_string()),
                })
            })
            .await
        }

        async fn renew(&self, resource_version: &str) -> Result<String, LeaseError> {
            let seen = resource_version.to_owned();
            self.request(move |lease| match lease.as_mut() {
                Some(l) if l.version.to_string() == seen => {
                    l.version += 1;
                    Ok(l.version.to_string())
                }
                _ => Err(LeaseError::Conflict),
            })
            .await
        }

        async fn clear(&self, resource_version: &str) -> Result<(), LeaseError> {
            let seen = resource_version.to_owned();
            self.request(move |lease| match lease.as_mut() {
                Some(l) if l.version.to_string() == seen => {
                    l.holder = None;
                    l.version += 1;
                    Ok(())
                }
                _ => Err(LeaseError::Conflict),
            })
            .await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn replicas_on_a_flaky_apiserver_never_lead_at_once() {
        simulate(["replica-a", "replica-b", "replica-c"], Duration::ZERO).await;
    }

    #[tokio::test(start_paused = true)]
    async fn of_two_processes_with_one_identity_the_one_taken_over_stops_by_its_deadline() {
        // A POD_NAME override gave two processes one name. One takes the Lease naming
        // that name at once (it cannot tell the other from its own restarted container);
        // the other, whose take it was, stops once its renewal finds another take's
        // acquireTime, before its own deadline: at most five sixths of the Lease later.
        // (Comparing the holder's name only, the one taken over led on until a renewal
        // happened to fail: seed 1, 7 s beside the other.)
        let reasons = simulate(["replica-a", "replica-a", "replica-c"], LEASE * 5 / 6).await;
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("another process with this replica's identity")),
            "{reasons:?}"
        );
    }

    /// Three processes with `identities` on one flaky Lease, 100 seeds × 600 s: no two
    /// processes lead at once for longer than `overlap`, and someone leads most of the
    /// time. The reasons the leaderships ended.
    async fn simulate(identities: [&str; 3], overlap: Duration) -> Vec<String> {
        let mut reasons = Vec::new();
        let timing = Timing::new(LEASE);
        let run_for = Duration::from_secs(600);
        for seed in 1..=100u64 {
            let sim = Arc::new(Simulated {
                lease: Mutex::new(None),
                seed: Mutex::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            });
            let start = Instant::now();
            let terms = Arc::new(Mutex::new(Vec::new()));
            let replicas: Vec<_> = identities
                .into_iter()
                .enumerate()
                .map(|(process, name)| {
                    let replica = Replica {
                        sim: sim.clone(),
                        identity: format!("{name}-{seed}"),
                        timeout: timing.request_timeout,
                    };
                    let terms = terms.clone();
                    tokio::spawn(async move {
                        while start.elapsed() < run_for {
                            let held = wait_for_lease(&replica, &replica.identity, timing).await;
                            let began = Instant::now();
                            let reason =
                                hold(&replica, &replica.identity, timing, held, &fence()).await;
                            terms.lock().unwrap().push((
                                began - start,
                                start.elapsed(),
                                format!("process {process} ({})", replica.identity),
                                reason,
                            ));
                            // The process exits and Kubernetes restarts it as a standby.
                        }
                    })
                })
                .collect();
            for r in replicas {
                r.await.unwrap();
            }
            let mut terms = terms.lock().unwrap().clone();
            terms.sort();
            for pair in terms.windows(2) {
                let ((_, ended, a, _), (began, _, b, _)) = (&pair[0], &pair[1]);
                assert!(
                    *began + overlap >= *ended,
                    "seed {seed}: {b} led from {began:?} while {a} led until {ended:?}"
                );
            }
            // Not vacuous: handovers happened, and someone led most of the time.
            let led: Duration = terms.iter().map(|(b, e, _, _)| *e - *b).sum();
            assert!(terms.len() >= 3, "seed {seed}: {} terms", terms.len());
            assert!(led > run_for / 2, "seed {seed}: led {led:?} of {run_for:?}");
            reasons.extend(terms.into_iter().map(|(_, _, _, reason)| reason));
        }
        reasons
    }
}
