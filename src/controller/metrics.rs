//! Prometheus metrics and health endpoints: `/metrics`, `/healthz`, `/readyz`.
//!
//! Besides reconcile counters, every Juju call the client makes is counted per facade
//! method (`juju_secrets_operator_juju_calls_total{facade,method}`), so users can see
//! what the operator costs their controller.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::juju::JujuClient;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    facade: String,
    method: String,
}

/// The operator's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconciles: Family<OutcomeLabels, Counter>,
    juju_calls: Family<CallLabels, Counter>,
    juju: JujuClient,
    seen: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl Metrics {
    /// Registers the metrics.
    pub fn new(juju: JujuClient) -> Self {
        let mut registry = Registry::with_prefix("juju_secrets_operator");
        let reconciles = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconcile passes by outcome",
            reconciles.clone(),
        );
        let juju_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "juju_calls",
            "Juju API calls by facade and method",
            juju_calls.clone(),
        );
        Self {
            registry: Arc::new(registry),
            reconciles,
            juju_calls,
            juju,
            seen: Arc::default(),
        }
    }

    /// Counts one reconcile pass.
    pub fn reconciled(&self, _name: &str, error: Option<&str>) {
        self.reconciles
            .get_or_create(&OutcomeLabels {
                outcome: error.unwrap_or("ok").to_owned(),
            })
            .inc();
    }

    /// Brings the Juju call counters up to the client's counts.
    fn sync_juju_calls(&self) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for (key, count) in self.juju.stats().snapshot() {
            let before = seen.get(&key).copied().unwrap_or(0);
            if count > before {
                let (facade, method) = key.split_once('.').unwrap_or((key.as_str(), ""));
                self.juju_calls
                    .get_or_create(&CallLabels {
                        facade: facade.to_owned(),
                        method: method.to_owned(),
                    })
                    .inc_by(count - before);
                seen.insert(key, count);
            }
        }
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        self.sync_juju_calls();
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[derive(Clone)]
struct Shared {
    metrics: Metrics,
    ready: Arc<AtomicBool>,
}

/// Serves the endpoints until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Metrics, ready: Arc<AtomicBool>) {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready_handler))
        .with_state(Shared { metrics, ready });
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
    if shared.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}
