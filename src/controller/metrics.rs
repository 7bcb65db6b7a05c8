//! Prometheus metrics and health endpoints: `/metrics`, `/healthz`, `/readyz`.
//!
//! Metrics (prefix `juju_secrets_operator_`):
//! - `reconciles_total{kind,outcome}` and `reconcile_errors_total{kind,reason}`;
//! - `reconcile_duration_seconds{kind}` (histogram);
//! - `juju_calls_total{facade,method,outcome}`: every call the Juju client made, so users
//!   can see what the operator costs their controller;
//! - `juju_connected`: 1 while the controller connection is logged in;
//! - `objects{kind,ready}`: objects in the operator's caches by their Ready condition
//!   (`True`, `False`, `Unknown`; `Unknown` also for objects without one yet);
//! - `leader`: 1 in the replica that holds the leader lease (or runs without election).
//!
//! `/healthz` answers 200 while the process serves. `/readyz` answers 200 in a standby
//! replica (it is healthy and waiting for the lease, and must not block a rolling
//! update), and in the leader once every controller's cache has synced and the Juju
//! controller connection is logged in; 503 otherwise, with the reason.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::crd::backend::JujuSecretBackend;
use crate::crd::condition::{Condition, READY};
use crate::crd::grant::JujuSecretGrant;
use crate::crd::secret::JujuSecret;
use juju_client::JujuClient;
use juju_client::transport::CallKey;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    facade: &'static str,
    method: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectLabels {
    kind: &'static str,
    ready: &'static str,
}

/// Counts objects of one kind by Ready condition status.
type Census = Box<dyn Fn() -> BTreeMap<&'static str, i64> + Send + Sync>;

/// The kinds whose Ready condition the `objects` gauge reports.
pub trait HasConditions {
    /// The object's status conditions (empty before its first status).
    fn conditions(&self) -> &[Condition];
}

impl HasConditions for JujuSecret {
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }
}

impl HasConditions for JujuSecretGrant {
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }
}

impl HasConditions for JujuSecretBackend {
    fn conditions(&self) -> &[Condition] {
        self.status.as_ref().map_or(&[], |s| &s.conditions)
    }
}

/// The Ready status of an object as a label value.
fn ready_label(conditions: &[Condition]) -> &'static str {
    match conditions.iter().find(|c| c.type_ == READY) {
        Some(c) if c.status == "True" => "True",
        Some(c) if c.status == "False" => "False",
        _ => "Unknown",
    }
}

/// The operator's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_duration: Family<KindLabels, Histogram>,
    juju_calls: Family<CallLabels, Counter>,
    juju_connected: Gauge,
    objects: Family<ObjectLabels, Gauge>,
    leader: Gauge,
    events_queued: Gauge,
    events_dropped: Counter,
    juju: Arc<OnceLock<JujuClient>>,
    seen: Arc<Mutex<BTreeMap<CallKey, u64>>>,
    censuses: Arc<Mutex<Vec<(&'static str, Census)>>>,
}

impl Metrics {
    /// Registers the metrics. The Juju client is attached with [`Metrics::attach`] once
    /// the replica leads (a standby does not connect to Juju).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("juju_secrets_operator");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconcile passes by kind and outcome (ok or error)",
            reconciles.clone(),
        );
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Failed reconcile passes by kind and reason",
            reconcile_errors.clone(),
        );
        let reconcile_duration =
            Family::<KindLabels, Histogram>::new_with_constructor(|| -> Histogram {
                // 1 ms .. ~33 s
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            });
        registry.register_with_unit(
            "reconcile_duration",
            "Time one reconcile pass took, by kind",
            prometheus_client::registry::Unit::Seconds,
            reconcile_duration.clone(),
        );
        let juju_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "juju_calls",
            "Juju API calls by facade, method and outcome (ok, error, timeout, connection-lost)",
            juju_calls.clone(),
        );
        let juju_connected = Gauge::default();
        registry.register(
            "juju_connected",
            "1 while the connection to the Juju controller is logged in",
            juju_connected.clone(),
        );
        let objects = Family::<ObjectLabels, Gauge>::default();
        registry.register(
            "objects",
            "Objects in the operator's caches by kind and Ready condition status",
            objects.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 in the replica that holds the leader lease and reconciles",
            leader.clone(),
        );
        let events_queued = Gauge::default();
        registry.register(
            "events_queued",
            "Kubernetes Events waiting for delivery (they yield to status writes)",
            events_queued.clone(),
        );
        let events_dropped = Counter::default();
        registry.register(
            "events_dropped",
            "Kubernetes Events dropped because the delivery queue was full",
            events_dropped.clone(),
        );
        Self {
            registry: Arc::new(registry),
            reconciles,
            reconcile_errors,
            reconcile_duration,
            juju_calls,
            juju_connected,
            objects,
            leader,
            events_queued,
            events_dropped,
            juju: Arc::default(),
            seen: Arc::default(),
            censuses: Arc::default(),
        }
    }

    /// Counts one reconcile pass of `kind` that took `took`; `error` is the failure's
    /// reason.
    pub fn reconciled(
        &self,
        kind: &'static str,
        took: Option<Duration>,
        error: Option<&'static str>,
    ) {
        let outcome = if error.is_some() { "error" } else { "ok" };
        self.reconciles
            .get_or_create(&ReconcileLabels { kind, outcome })
            .inc();
        if let Some(reason) = error {
            self.reconcile_errors
                .get_or_create(&ErrorLabels { kind, reason })
                .inc();
        }
        if let Some(took) = took {
            self.reconcile_duration
                .get_or_create(&KindLabels { kind })
                .observe(took.as_secs_f64());
        }
    }

    /// Runs one reconcile pass and records its outcome and duration.
    pub async fn timed<T, E, F>(&self, kind: &'static str, reconcile: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: Categorized,
    {
        let start = Instant::now();
        let result = reconcile.await;
        self.reconciled(
            kind,
            Some(start.elapsed()),
            result.as_ref().err().map(Categorized::category),
        );
        result
    }

    /// Reports the objects of `store` by Ready status under `kind`.
    pub fn count_objects<K>(&self, kind: &'static str, store: kube::runtime::reflector::Store<K>)
    where
        K: kube::Resource + HasConditions + Clone + Send + Sync + 'static,
        K::DynamicType: std::hash::Hash + Eq + Clone,
    {
        let census: Census = Box::new(move || {
            let mut counts: BTreeMap<&'static str, i64> =
                [("True", 0), ("False", 0), ("Unknown", 0)].into();
            for obj in store.state() {
                *counts.entry(ready_label(obj.conditions())).or_default() += 1;
            }
            counts
        });
        self.censuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((kind, census));
    }

    /// Reports the calls and connection state of `juju` from now on.
    pub fn attach(&self, juju: JujuClient) {
        let _ = self.juju.set(juju);
    }

    /// Adds `delta` to the events waiting for delivery.
    pub fn event_queued(&self, delta: i64) {
        self.events_queued.inc_by(delta);
    }

    /// Counts one event dropped at a full queue; returns how many were dropped so far.
    pub fn event_dropped(&self) -> u64 {
        self.events_dropped.inc() + 1
    }

    /// Records whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Brings the gauges and the Juju call counters up to date.
    fn refresh(&self) {
        let Some(juju) = self.juju.get() else {
            return;
        };
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for (key, count) in juju.stats().by_outcome() {
            let before = seen.get(&key).copied().unwrap_or(0);
            if count > before {
                let (facade, method, outcome) = key;
                self.juju_calls
                    .get_or_create(&CallLabels {
                        facade,
                        method,
                        outcome,
                    })
                    .inc_by(count - before);
                seen.insert(key, count);
            }
        }
        drop(seen);
        self.juju_connected
            .set(i64::from(juju.controller_connected()));
        let censuses = self.censuses.lock().unwrap_or_else(|p| p.into_inner());
        // Several controllers may count the same kind (one per watched namespace).
        let mut totals: BTreeMap<(&'static str, &'static str), i64> = BTreeMap::new();
        for (kind, census) in censuses.iter() {
            for (ready, n) in census() {
                *totals.entry((kind, ready)).or_default() += n;
            }
        }
        for ((kind, ready), n) in totals {
            self.objects
                .get_or_create(&ObjectLabels { kind, ready })
                .set(n);
        }
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        self.refresh();
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Errors that carry a short reason label.
pub trait Categorized {
    /// A CamelCase reason for metrics labels.
    fn category(&self) -> &'static str;
}

impl Categorized for super::Error {
    fn category(&self) -> &'static str {
        super::Error::category(self)
    }
}

/// What `/readyz` reports.
pub struct Health {
    standby: AtomicBool,
    leading: AtomicBool,
    caches_pending: AtomicUsize,
    juju: OnceLock<JujuClient>,
}

impl Health {
    /// Starting: neither standby nor leading, not ready.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            standby: AtomicBool::new(false),
            leading: AtomicBool::new(false),
            caches_pending: AtomicUsize::new(0),
            juju: OnceLock::new(),
        })
    }

    /// Waiting for the leader lease.
    pub fn set_standby(&self) {
        self.standby.store(true, Ordering::Release);
    }

    /// Leading with `juju`, with `caches` controller caches still to sync.
    pub fn set_leading(&self, juju: JujuClient, caches: usize) {
        let _ = self.juju.set(juju);
        self.caches_pending.store(caches, Ordering::Release);
        self.leading.store(true, Ordering::Release);
        self.standby.store(false, Ordering::Release);
    }

    /// One controller cache finished its first full list.
    pub fn cache_synced(&self) {
        let _ = self
            .caches_pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Whether the replica is ready, and why not.
    fn readiness(&self) -> Result<&'static str, &'static str> {
        if self.leading.load(Ordering::Acquire) {
            if self.caches_pending.load(Ordering::Acquire) > 0 {
                Err("caches are syncing")
            } else if !self
                .juju
                .get()
                .is_some_and(JujuClient::controller_connected)
            {
                Err("not connected to the Juju controller")
            } else {
                Ok("ready")
            }
        } else if self.standby.load(Ordering::Acquire) {
            Ok("standby: another replica holds the leader lease")
        } else {
            Err("starting")
        }
    }
}

#[derive(Clone)]
struct Shared {
    metrics: Metrics,
    health: Arc<Health>,
}

/// Serves the endpoints until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Metrics, health: Arc<Health>) {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready_handler))
        .with_state(Shared { metrics, health });
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!(error = %e, "metrics server stopped");
    }
}

async fn metrics_handler(State(shared): State<Shared>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.render(),
    )
}

async fn ready_handler(State(shared): State<Shared>) -> impl IntoResponse {
    match shared.health.readiness() {
        Ok(why) => (StatusCode::OK, why),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_label_reads_the_ready_condition() {
        let cond = |type_: &str, status: &str| Condition {
            type_: type_.into(),
            status: status.into(),
            ..Default::default()
        };
        assert_eq!(ready_label(&[]), "Unknown");
        assert_eq!(ready_label(&[cond("Other", "True")]), "Unknown");
        assert_eq!(ready_label(&[cond(READY, "True")]), "True");
        assert_eq!(ready_label(&[cond(READY, "False")]), "False");
        assert_eq!(ready_label(&[cond(READY, "Unknown")]), "Unknown");
    }
}
