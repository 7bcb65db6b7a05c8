//! Leader election over a `coordination.k8s.io/v1` Lease, so that several replicas can
//! run and exactly one reconciles.
//!
//! A replica waits (as a standby) until it holds the Lease (`kube-lease-manager` does
//! the acquiring), then starts the controllers. While it leads, it renews the Lease
//! itself, every third of the Lease's duration, with the Lease's `resourceVersion` as a
//! precondition, so a renewal never extends a Lease that another replica has touched
//! since. A renewal that fails (a timeout, a dropped connection, an apiserver restart)
//! is tried again while the Lease still certainly holds: the leader knows when it runs
//! out from its own last successful write. If the Lease changed hands, or renewal keeps
//! failing until a sixth of the duration is left, the leader stops (the process exits
//! and Kubernetes restarts it as a standby) before another replica could take over.
//! Each Lease request times out after that sixth, so a hung request cannot carry the
//! leader past its Lease. On a clean shutdown the leader releases the Lease so a
//! standby takes over without waiting for it to expire.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
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

impl LeaderElection {
    fn seconds(&self) -> u64 {
        self.duration.as_secs().max(MIN_LEASE_DURATION.as_secs())
    }

    /// How a standby's `kube-lease-manager` renews a Lease it has just taken, before
    /// this replica's own renewal takes over.
    fn grace_seconds(&self) -> u64 {
        (self.seconds() / 3).max(1)
    }

    /// The timeout of each Lease request: a sixth of the Lease.
    pub fn request_timeout(&self) -> Duration {
        self.timing().stop_before
    }

    fn timing(&self) -> Timing {
        Timing::new(Duration::from_secs(self.seconds()))
    }
}

/// When the leader renews its Lease and when it gives up.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Timing {
    /// The Lease's duration.
    duration: Duration,
    /// Renewal starts when this much of the Lease is left: two thirds, so it renews
    /// every third and has the middle half of the Lease to try again.
    renew_before: Duration,
    /// The leader stops when renewal has failed until this much is left (a sixth).
    stop_before: Duration,
    /// The pause between failed renewals.
    retry_pause: Duration,
}

impl Timing {
    fn new(duration: Duration) -> Timing {
        Timing {
            duration,
            renew_before: duration * 2 / 3,
            stop_before: duration / 6,
            retry_pause: duration / 30,
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
    manager: Arc<LeaseManager>,
    /// Resolves with the reason when the leadership ends.
    pub lost: oneshot::Receiver<String>,
    renewer: tokio::task::JoinHandle<()>,
}

impl Leadership {
    /// Stops renewing and gives the Lease up, so a standby takes over at once.
    pub async fn release(self) {
        self.renewer.abort();
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
    let field_manager = format!("{}-lease", super::FIELD_MANAGER);
    let mut backoff = Duration::from_secs(1);
    let manager = loop {
        // The builder checks grace < duration on every step: lower the grace first.
        let built = LeaseManagerBuilder::new(client.clone(), election.lease_name.clone())
            .with_namespace(election.namespace.clone())
            .with_identity(election.identity.clone())
            .with_grace(1)
            .with_duration(seconds)
            .with_grace(grace)
            .with_field_manager(field_manager.clone())
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
    let lease = KubeLease {
        api: Api::namespaced(client, &election.namespace),
        name: election.lease_name.clone(),
        seconds: i32::try_from(seconds).unwrap_or(i32::MAX),
        params: PatchParams {
            field_manager: Some(field_manager),
            ..PatchParams::default()
        },
    };
    let timing = election.timing();
    info!(lease = %election.lease_name, namespace = %election.namespace, identity = %election.identity, "waiting for the leader lease");
    let held = loop {
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
        match take_over(&lease, &election.identity, timing).await {
            Some(held) => break held,
            None => info!("another replica took the leader lease first; waiting again"),
        }
    };
    info!(identity = %election.identity, "became the leader");
    let (tx, lost) = oneshot::channel();
    let identity = election.identity.clone();
    let renewer = tokio::spawn(async move {
        let reason = hold(&lease, &identity, timing, held).await;
        let _ = tx.send(reason);
    });
    Leadership {
        manager,
        lost,
        renewer,
    }
}

/// Why a Lease request failed.
#[derive(Debug)]
enum LeaseError {
    /// The Lease is no longer at the `resourceVersion` the renewal named.
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

/// The Lease as read: who holds it, at which `resourceVersion`.
#[derive(Clone, Debug, PartialEq)]
struct LeaseView {
    holder: Option<String>,
    resource_version: String,
}

/// What the leader does to its Lease: the apiserver's, or a script in the tests.
trait LeaseApi {
    /// Reads the Lease.
    fn read(&self) -> impl Future<Output = Result<LeaseView, LeaseError>> + Send;
    /// Moves `renewTime` to now if the Lease is still at `resource_version`; its new
    /// `resourceVersion`.
    fn renew(
        &self,
        resource_version: &str,
    ) -> impl Future<Output = Result<String, LeaseError>> + Send;
}

/// The Lease in the apiserver.
struct KubeLease {
    api: Api<Lease>,
    name: String,
    seconds: i32,
    params: PatchParams,
}

impl LeaseApi for KubeLease {
    async fn read(&self) -> Result<LeaseView, LeaseError> {
        let lease = self.api.get(&self.name).await.map_err(lease_error)?;
        Ok(LeaseView {
            holder: lease
                .spec
                .and_then(|s| s.holder_identity)
                .filter(|h| !h.is_empty()),
            resource_version: lease.metadata.resource_version.unwrap_or_default(),
        })
    }

    async fn renew(&self, resource_version: &str) -> Result<String, LeaseError> {
        // A merge patch that names the resourceVersion is refused (409) if the Lease
        // changed since: it never renews a Lease another replica took or released.
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": resource_version},
            "spec": {
                "renewTime": MicroTime(k8s_openapi::jiff::Timestamp::now()),
                "leaseDurationSeconds": self.seconds,
            },
        });
        let lease = self
            .api
            .patch(&self.name, &self.params, &Patch::Merge(&patch))
            .await
            .map_err(lease_error)?;
        lease.metadata.resource_version.ok_or_else(|| {
            LeaseError::Other("the apiserver returned the Lease without a resourceVersion".into())
        })
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
    /// When the Lease runs out at the earliest: the renewal was sent after this
    /// instant less the duration, and wrote a `renewTime` no earlier.
    expires: Instant,
}

/// Renews the Lease the manager has just taken, so that this replica knows from its
/// own write how long it holds it; `None` when another replica holds it after all.
/// Nothing reconciles yet, so this tries for as long as it takes.
async fn take_over(lease: &impl LeaseApi, identity: &str, timing: Timing) -> Option<Held> {
    let mut backoff = timing.retry_pause;
    loop {
        let error = match lease.read().await {
            Ok(view) if view.holder.as_deref() != Some(identity) => return None,
            Ok(view) => {
                let sent = Instant::now();
                match lease.renew(&view.resource_version).await {
                    Ok(resource_version) => {
                        return Some(Held {
                            resource_version,
                            expires: sent + timing.duration,
                        });
                    }
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        warn!(error = %error, retry_in = ?backoff, "cannot renew the leader lease just taken; trying again");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(timing.duration);
    }
}

/// Renews the Lease while this replica leads; returns why the leadership ended. Each
/// renewal starts when two thirds of the Lease are left; a failed one is tried again
/// until a sixth is left, each attempt cut off there, so the leader gives up before
/// the Lease could run out and a standby take over.
async fn hold(lease: &impl LeaseApi, identity: &str, timing: Timing, mut held: Held) -> String {
    loop {
        tokio::time::sleep_until(earlier(held.expires, timing.renew_before)).await;
        let stop_at = earlier(held.expires, timing.stop_before);
        let mut resource_version = held.resource_version.clone();
        let mut failures = 0u32;
        held = loop {
            let sent = Instant::now();
            let error = match tokio::time::timeout_at(stop_at, lease.renew(&resource_version)).await
            {
                Ok(Ok(resource_version)) => {
                    break Held {
                        resource_version,
                        expires: sent + timing.duration,
                    };
                }
                Ok(Err(LeaseError::Conflict)) => {
                    // Someone else wrote the Lease: renew again only if it is still ours.
                    match tokio::time::timeout_at(stop_at, lease.read()).await {
                        Ok(Ok(view)) => match view.holder {
                            Some(holder) if holder == identity => {
                                resource_version = view.resource_version;
                                continue;
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

    /// What one scripted request does.
    #[derive(Clone, Copy, Debug)]
    enum Step {
        /// Succeeds; a read answers with this holder.
        Ok(Option<&'static str>),
        /// Fails as a dropped connection would.
        Fail,
        /// A renewal refused with 409.
        Conflict,
        /// Never answers.
        Hang,
    }

    /// A Lease whose requests follow a script; it logs each request with the time
    /// since the test began (time is paused, so the times are exact).
    struct Script {
        start: Instant,
        renewals: Mutex<VecDeque<Step>>,
        reads: Mutex<VecDeque<Step>>,
        log: Mutex<Vec<(Duration, String)>>,
    }

    impl Script {
        fn new(renewals: &[Step], reads: &[Step]) -> Script {
            Script {
                start: Instant::now(),
                renewals: Mutex::new(renewals.iter().copied().collect()),
                reads: Mutex::new(reads.iter().copied().collect()),
                log: Mutex::new(Vec::new()),
            }
        }

        fn next(&self, queue: &Mutex<VecDeque<Step>>, what: String) -> Step {
            self.log.lock().unwrap().push((self.start.elapsed(), what));
            queue.lock().unwrap().pop_front().unwrap_or(Step::Hang)
        }

        fn log(&self) -> Vec<(Duration, String)> {
            self.log.lock().unwrap().clone()
        }
    }

    impl LeaseApi for Script {
        async fn read(&self) -> Result<LeaseView, LeaseError> {
            match self.next(&self.reads, "read".into()) {
                Step::Ok(holder) => Ok(LeaseView {
                    holder: holder.map(str::to_owned),
                    resource_version: format!("read-{}", self.log().len()),
                }),
                Step::Fail | Step::Conflict => Err(LeaseError::Other("connection reset".into())),
                Step::Hang => std::future::pending().await,
            }
        }

        async fn renew(&self, resource_version: &str) -> Result<String, LeaseError> {
            match self.next(&self.renewals, format!("renew {resource_version}")) {
                Step::Ok(_) => Ok(format!("renewed-{}", self.log().len())),
                Step::Fail => Err(LeaseError::Other("connection reset".into())),
                Step::Conflict => Err(LeaseError::Conflict),
                Step::Hang => std::future::pending().await,
            }
        }
    }

    const ME: &str = "replica-a";
    const LEASE: Duration = Duration::from_secs(6);

    fn held(script: &Script) -> Held {
        Held {
            resource_version: "1".into(),
            expires: script.start + LEASE,
        }
    }

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn renewal_every_third_retries_in_the_middle_half_requests_cut_at_a_sixth() {
        let t = Timing::new(LEASE);
        assert_eq!(t.renew_before, ms(4000));
        assert_eq!(t.stop_before, ms(1000));
        assert_eq!(t.retry_pause, ms(200));
        let shortest = LeaderElection {
            lease_name: "l".into(),
            namespace: "n".into(),
            identity: ME.into(),
            duration: Duration::from_secs(1),
        };
        // Below the minimum the minimum applies; requests time out at a sixth.
        assert_eq!(shortest.request_timeout(), ms(500));
        assert_eq!(shortest.timing().renew_before, ms(2000));
    }

    #[tokio::test(start_paused = true)]
    async fn renewal_failures_shorter_than_the_lease_keep_the_leadership() {
        let script = Script::new(
            &[Step::Fail, Step::Fail, Step::Ok(None), Step::Conflict],
            &[Step::Ok(Some("replica-b"))],
        );
        let reason = hold(&script, ME, Timing::new(LEASE), held(&script)).await;
        assert_eq!(reason, "another replica (replica-b) holds the leader lease");
        assert_eq!(
            script.log(),
            vec![
                // Two thirds left: renew; it fails twice and is tried again.
                (ms(2000), "renew 1".into()),
                (ms(2200), "renew 1".into()),
                (ms(2400), "renew 1".into()),
                // Renewed at 2.4 s: the next renewal is a third of the Lease later.
                (ms(4400), "renew renewed-3".into()),
                (ms(4400), "read".into()),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_that_cannot_renew_stops_before_its_lease_could_run_out() {
        let script = Script::new(&[Step::Fail; 100], &[]);
        let reason = hold(&script, ME, Timing::new(LEASE), held(&script)).await;
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
    async fn a_hung_renewal_cannot_carry_the_leader_past_its_lease() {
        let script = Script::new(&[Step::Hang], &[]);
        let reason = hold(&script, ME, Timing::new(LEASE), held(&script)).await;
        assert_eq!(script.start.elapsed(), LEASE - LEASE / 6);
        assert!(reason.ends_with("the renewal timed out"), "{reason}");
        assert_eq!(script.log(), vec![(ms(2000), "renew 1".into())]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_written_by_someone_else_is_renewed_only_while_it_names_this_replica() {
        // Someone annotated the Lease: it still names this replica, so the renewal
        // goes on at the new resourceVersion; then a standby took it over.
        let script = Script::new(
            &[Step::Conflict, Step::Ok(None), Step::Conflict],
            &[Step::Ok(Some(ME)), Step::Ok(None)],
        );
        let reason = hold(&script, ME, Timing::new(LEASE), held(&script)).await;
        assert_eq!(reason, "the leader lease was released by someone else");
        assert_eq!(
            script.log(),
            vec![
                (ms(2000), "renew 1".into()),
                (ms(2000), "read".into()),
                (ms(2000), "renew read-2".into()),
                (ms(4000), "renew renewed-3".into()),
                (ms(4000), "read".into()),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_just_taken_is_renewed_before_anything_runs_or_given_back_to_its_holder() {
        // Reads and renewals fail for a while (no deadline: nothing runs yet).
        let script = Script::new(
            &[Step::Fail, Step::Ok(None)],
            &[Step::Fail, Step::Ok(Some(ME)), Step::Ok(Some(ME))],
        );
        let taken = take_over(&script, ME, Timing::new(LEASE)).await;
        assert_eq!(
            taken,
            Some(Held {
                resource_version: "renewed-5".into(),
                expires: script.start + ms(600) + LEASE,
            })
        );
        // Another replica won the race: the standby goes back to waiting.
        let script = Script::new(&[], &[Step::Ok(Some("replica-b"))]);
        assert_eq!(take_over(&script, ME, Timing::new(LEASE)).await, None);
        assert_eq!(script.log(), vec![(Duration::ZERO, "read".into())]);
    }
}
