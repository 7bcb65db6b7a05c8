//! The controllers, and the context they share.
//!
//! [`run`] starts the operator: it checks the CRDs are installed, reads the Juju
//! credentials from a Kubernetes Secret, waits for the leader Lease (when leader
//! election is on), and runs the controllers until SIGTERM/SIGINT, serving `/metrics`,
//! `/healthz` and `/readyz` meanwhile.

pub mod backend;
pub mod content;
pub mod events;
pub mod grant;
pub mod intents;
pub mod juju_state;
pub mod jujusecret;
pub mod leader;
pub mod metrics;
mod outcome;
pub mod tenancy;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use crate::crd::grant::JujuSecretGrant;
use crate::crd::secret::JujuSecret;
use crate::juju::{self, ConnectOptions, JujuClient, Password};
use juju_state::{ModelDirectory, SecretListings, WriteBatcher};
use tenancy::TenancyPolicy;

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
}

impl Error {
    /// A stable PascalCase label for metrics and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubernetesError",
            Error::Finalizer(_) => "FinalizerError",
            Error::NotNamespaced => "NotNamespaced",
            Error::Cleanup(_) => "CleanupError",
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
    pub intents: Arc<intents::Intents>,
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
    /// Bounds the status writes and events in flight to the apiserver.
    pub kube_writes: Arc<tokio::sync::Semaphore>,
}

/// Status writes and events in flight to the apiserver at most.
pub const MAX_KUBE_WRITES: usize = 32;

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

/// How to run the operator.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Kubeconfig file; `None` for in-cluster or the default kubeconfig.
    pub kubeconfig: Option<PathBuf>,
    /// `namespace/name` of the Secret with the Juju connection.
    pub connection_secret: String,
    /// Namespaces to watch; empty for all.
    pub namespaces: Vec<String>,
    /// Tenancy policy file.
    pub tenancy_policy: Option<PathBuf>,
    /// Default refresh interval.
    pub refresh_interval: Duration,
    /// Address of the metrics and health server.
    pub metrics_addr: SocketAddr,
    /// Reconciles in flight per controller at most.
    pub max_concurrent_reconciles: u16,
    /// Leader election; `None` runs the controllers at once (one replica only).
    pub leader_election: Option<leader::LeaderElection>,
}

/// Why the operator could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Kubernetes client setup failed.
    #[error("cannot set up the Kubernetes client: {0}")]
    KubeConfig(String),
    /// The CRDs are not installed.
    #[error(
        "the CustomResourceDefinition {crd} is not installed ({detail}); install the CRDs with `juju-secrets-operator crds | kubectl apply -f -` (or `kubectl apply -f crds/`, or the Helm chart)"
    )]
    CrdsMissing {
        /// CRD name.
        crd: String,
        /// What the API said.
        detail: String,
    },
    /// The Juju connection Secret is missing or incomplete.
    #[error("Juju connection Secret {secret}: {detail}")]
    Connection {
        /// `namespace/name`.
        secret: String,
        /// What is wrong (never a value).
        detail: String,
    },
    /// The tenancy policy is invalid.
    #[error(transparent)]
    Policy(#[from] tenancy::PolicyError),
    /// The Juju client could not be built.
    #[error("Juju client: {0}")]
    Juju(#[from] juju::Error),
    /// The create intents could not be read.
    #[error("create intents: {0}")]
    Intents(String),
    /// Another replica took the leader Lease, or renewing it failed.
    #[error("leadership lost: {0}")]
    LeadershipLost(String),
    /// The metrics server could not start.
    #[error("metrics server on {addr}: {source}")]
    Metrics {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

async fn kube_config(kubeconfig: Option<&PathBuf>) -> Result<kube::Config, RunError> {
    Ok(match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| RunError::KubeConfig(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| RunError::KubeConfig(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| RunError::KubeConfig(e.to_string()))?,
    })
}

fn kube_client(config: kube::Config) -> Result<Client, RunError> {
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| RunError::KubeConfig(e.to_string()))?;
    Ok(limit_requests(builder))
}

/// Requests in flight to the apiserver at most. The client speaks HTTP/1.1, one request
/// per connection: without a bound, a thousand reconciles reading Secrets or adding
/// finalizers at once open a thousand TLS connections (memory and handshakes on both
/// sides). A watch counts until its response starts, not while it streams.
pub const MAX_KUBE_REQUESTS: usize = 64;

/// Builds the client with at most [`MAX_KUBE_REQUESTS`] requests in flight; more wait.
pub fn limit_requests<S, B>(builder: kube::client::ClientBuilder<S>) -> Client
where
    S: tower::Service<http::Request<kube::client::Body>, Response = http::Response<B>>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tower::BoxError>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<tower::BoxError>,
{
    builder
        .with_layer(&tower::limit::ConcurrencyLimitLayer::new(MAX_KUBE_REQUESTS))
        .build()
}

/// Reads the Juju connection (endpoints, CA, username, password) from a Secret.
pub async fn connection_options(client: &Client, secret: &str) -> Result<ConnectOptions, RunError> {
    let fail = |detail: String| RunError::Connection {
        secret: secret.to_owned(),
        detail,
    };
    let (namespace, name) = secret
        .split_once('/')
        .ok_or_else(|| fail("expected namespace/name".into()))?;
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let found = api
        .get_opt(name)
        .await
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail("not found".into()))?;
    let data = found.data.unwrap_or_default();
    let field = |key: &str| -> Result<String, RunError> {
        let bytes = data
            .get(key)
            .ok_or_else(|| fail(format!("key {key:?} missing")))?;
        String::from_utf8(bytes.0.clone()).map_err(|_| fail(format!("key {key:?} is not UTF-8")))
    };
    let endpoints: Vec<String> = field("endpoints")?
        .split([',', '\n', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if endpoints.is_empty() {
        return Err(fail("key \"endpoints\" lists no address".into()));
    }
    Ok(ConnectOptions::new(
        endpoints,
        field("ca-cert")?,
        field("username")?.trim(),
        Password::new(field("password")?),
    ))
}

/// Name of the Secret holding the key of the content MACs, beside the connection Secret.
pub const MAC_KEY_SECRET: &str = "juju-secrets-operator-mac-key";

/// The namespace of the connection Secret (`namespace/name`), where the operator keeps
/// its own objects: the MAC key, the create intents and, by default, the leader Lease.
pub fn connection_namespace(connection_secret: &str) -> &str {
    connection_secret
        .split_once('/')
        .map_or("default", |(ns, _)| ns)
}

/// The key of the content MACs: 32 random bytes, created once and kept in a Secret in
/// the connection Secret's namespace, so MACs survive restarts and reveal nothing (a
/// key derived from a password would let anyone who knows some content test guesses).
async fn mac_key(client: &Client, connection_secret: &str) -> Result<Vec<u8>, RunError> {
    let namespace = connection_namespace(connection_secret);
    let fail = |detail: String| RunError::Connection {
        secret: format!("{namespace}/{MAC_KEY_SECRET}"),
        detail,
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for _ in 0..2 {
        if let Some(found) = api
            .get_opt(MAC_KEY_SECRET)
            .await
            .map_err(|e| fail(e.to_string()))?
        {
            return found
                .data
                .and_then(|d| d.get("key").map(|k| k.0.clone()))
                .filter(|k| k.len() >= 32)
                .ok_or_else(|| fail("key \"key\" missing or shorter than 32 bytes".into()));
        }
        let mut key = vec![0u8; 32];
        rand::Rng::fill(&mut rand::rng(), key.as_mut_slice());
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(MAC_KEY_SECRET.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            data: Some(std::collections::BTreeMap::from([(
                "key".to_owned(),
                k8s_openapi::ByteString(key),
            )])),
            type_: Some("Opaque".into()),
            ..Default::default()
        };
        match api.create(&kube::api::PostParams::default(), &secret).await {
            Ok(_) => continue,
            // Another replica created it first: read that one.
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    Err(fail("could not create or read the key".into()))
}

async fn check_crd_installed(client: &Client) -> Result<(), RunError> {
    check_kind::<JujuSecret>(client).await?;
    check_kind::<JujuSecretGrant>(client).await?;
    check_kind::<crate::crd::backend::JujuSecretBackend>(client).await
}

async fn check_kind<K>(client: &Client) -> Result<(), RunError>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    api.list_metadata(&ListParams::default().limit(1))
        .await
        .map(|_| ())
        .map_err(|e| RunError::CrdsMissing {
            crd: format!("{}.{}", K::plural(&()), K::group(&())),
            detail: e.to_string(),
        })
}

/// Runs the operator until SIGTERM or SIGINT.
pub async fn run(config: RunConfig) -> Result<(), RunError> {
    let kube_config = kube_config(config.kubeconfig.as_ref()).await?;
    let client = kube_client(kube_config.clone())?;
    check_crd_installed(&client).await?;
    let policy = match &config.tenancy_policy {
        Some(path) => TenancyPolicy::load(path)?,
        None => TenancyPolicy::AllowAll,
    };
    let options = connection_options(&client, &config.connection_secret).await?;
    let mac_key = mac_key(&client, &config.connection_secret).await?;

    let metrics = metrics::Metrics::new();
    let health = metrics::Health::new();
    let listener = tokio::net::TcpListener::bind(config.metrics_addr)
        .await
        .map_err(|source| RunError::Metrics {
            addr: config.metrics_addr,
            source,
        })?;
    tokio::spawn(metrics::serve(listener, metrics.clone(), health.clone()));

    let leadership = match &config.leader_election {
        Some(election) => {
            // Lease requests time out well within the Lease, so a hung renewal ends
            // the leadership before another replica could take over.
            let mut lease_config = kube_config.clone();
            lease_config.connect_timeout = Some(election.request_timeout());
            lease_config.read_timeout = Some(election.request_timeout());
            lease_config.write_timeout = Some(election.request_timeout());
            health.set_standby();
            tokio::select! {
                leadership = leader::acquire(kube_client(lease_config)?, election) => Some(leadership),
                () = shutdown_signal() => {
                    info!("stopped while waiting for the leader lease");
                    return Ok(());
                }
            }
        }
        None => None,
    };
    // Only the leader talks to Juju, and writes the create intents.
    let juju = JujuClient::new(options)?;
    let intents_namespace = connection_namespace(&config.connection_secret);
    let intents = Arc::new(
        intents::Intents::load(client.clone(), intents_namespace)
            .await
            .map_err(|e| {
                RunError::Intents(format!(
                    "cannot read ConfigMap {intents_namespace}/{}: {e}",
                    intents::CONFIGMAP
                ))
            })?,
    );
    metrics.attach(juju.clone());
    metrics.set_leader(true);

    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let kube_writes = Arc::new(tokio::sync::Semaphore::new(MAX_KUBE_WRITES));
    let ctx = Arc::new(Context {
        client: client.clone(),
        events: events::EventSink::start(
            Recorder::new(client.clone(), reporter),
            kube_writes.clone(),
            metrics.clone(),
        ),
        policy,
        models: ModelDirectory::new(juju.clone(), Duration::from_secs(30)),
        listings: SecretListings::new(juju.clone()),
        writes: WriteBatcher::with_intents(juju.clone(), intents.clone()),
        intents,
        juju,
        mac_key,
        refresh_interval: config.refresh_interval,
        backoff: Backoff::default(),
        metrics: metrics.clone(),
        kube_writes,
        controller_config: kube::runtime::controller::Config::default()
            .concurrency(config.max_concurrent_reconciles),
    });

    info!(namespaces = ?config.namespaces, "starting the controllers");
    let scopes: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().cloned().map(Some).collect()
    };
    // Two controllers per scope, plus the cluster-wide backend controller.
    health.set_leading(ctx.juju.clone(), scopes.len() * 2 + 1);
    let mut runs = Vec::new();
    for scope in scopes {
        runs.push(tokio::spawn(run_jujusecrets(
            api_for(&client, scope.as_deref()),
            api_for(&client, scope.as_deref()),
            ctx.clone(),
            health.clone(),
        )));
        runs.push(tokio::spawn(run_grants(
            api_for(&client, scope.as_deref()),
            api_for(&client, scope.as_deref()),
            ctx.clone(),
            health.clone(),
        )));
    }
    // Backends are cluster-scoped: one controller whatever the namespaces.
    runs.push(tokio::spawn(run_backends(
        client.clone(),
        ctx.clone(),
        config.namespaces.clone(),
        health.clone(),
    )));
    let controllers = futures::future::join_all(runs);
    match leadership {
        None => {
            controllers.await;
        }
        Some(mut leadership) => {
            tokio::select! {
                _ = controllers => {
                    leadership.release().await;
                }
                reason = &mut leadership.lost => {
                    let reason = reason.unwrap_or_else(|_| "the lease watcher stopped".into());
                    warn!(%reason, "leadership lost; stopping");
                    metrics.set_leader(false);
                    return Err(RunError::LeadershipLost(reason));
                }
            }
        }
    }
    info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT (the controllers watch for the same signals).
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot watch for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Marks the scope's cache as synced in `/readyz` once the store has its first list.
fn report_cache_sync<K>(
    kind: &'static str,
    store: kube::runtime::reflector::Store<K>,
    health: Arc<metrics::Health>,
) where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone + Send + Sync,
{
    tokio::spawn(async move {
        // The store's readiness signal wakes only its most recent waiter, and the
        // controller itself waits on it too: poll again every half second instead of
        // relying on a wake-up.
        loop {
            match tokio::time::timeout(Duration::from_millis(500), store.wait_until_ready()).await {
                Ok(Ok(())) => {
                    tracing::debug!(kind, "cache synced");
                    health.cache_synced();
                    return;
                }
                Ok(Err(e)) => {
                    warn!(kind, error = %e, "cache never synced");
                    return;
                }
                Err(_) => {}
            }
        }
    });
}

/// A controller for `K` whose cache keeps objects without `metadata.managedFields`:
/// the operator never reads them, and with server-side apply they are a good part of
/// every cached object. Only changes that `predicate` sees trigger a reconcile (the
/// cache gets every change).
fn lean_controller<K, P>(
    api: Api<K>,
    config: &kube::runtime::controller::Config,
    predicate: P,
) -> Controller<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + std::fmt::Debug + Unpin,
    P: kube::runtime::Predicate<K> + Send + Unpin + 'static,
{
    let (reader, writer) = kube::runtime::reflector::store();
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(|obj: &mut K| obj.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicate, Default::default());
    Controller::for_stream(stream, reader).with_config(config.clone())
}

/// Everything of an object but its status: generation (the spec), finalizers, deletion,
/// labels and annotations. A status write (the operator's own, mostly) changes none of
/// them, so it does not cause another pass; the timed requeues still check drift.
pub fn all_but_status<K: Resource>(obj: &K) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = obj.meta();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    meta.uid.hash(&mut h);
    meta.generation.hash(&mut h);
    meta.finalizers.hash(&mut h);
    meta.deletion_timestamp.is_some().hash(&mut h);
    meta.labels.hash(&mut h);
    meta.annotations.hash(&mut h);
    Some(h.finish())
}

/// Changes to objects in `api`'s scope, as metadata only: the mappers need the name,
/// namespace and labels, and the reconcilers read the objects they use themselves.
/// (Any change of an object, its status included, changes its resourceVersion.)
fn metadata_changes<K>(
    api: Api<PartialObjectMeta<K>>,
) -> impl futures::Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default,
    PartialObjectMeta<K>:
        Resource<DynamicType = ()> + DeserializeOwned + Clone + std::fmt::Debug + Send + 'static,
{
    watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .touched_objects()
}

/// An API over all namespaces, or one.
fn api_for<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

async fn run_jujusecrets(
    api: Api<JujuSecret>,
    secrets: Api<PartialObjectMeta<Secret>>,
    ctx: Arc<Context>,
    health: Arc<metrics::Health>,
) {
    let controller = lean_controller(api, &ctx.controller_config, all_but_status::<JujuSecret>);
    let store = controller.store();
    report_cache_sync("JujuSecret", store.clone(), health);
    ctx.metrics.count_objects("JujuSecret", store.clone());
    controller
        .watches_stream(
            metadata_changes(secrets),
            move |secret: PartialObjectMeta<Secret>| {
                // A source Secret changed: reconcile every JujuSecret that reads it.
                let namespace = secret.namespace();
                let name = secret.name_any();
                let generated_for = secret.labels().get(content::GENERATED_LABEL).cloned();
                store
                    .state()
                    .into_iter()
                    .filter(|js| js.namespace() == namespace)
                    .filter(|js| {
                        js.spec.secret_ref.as_ref().is_some_and(|r| r.name == name)
                            || generated_for.as_deref() == Some(js.name_any().as_str())
                    })
                    .map(|js| ObjectRef::from_obj(&*js))
                    .collect::<Vec<_>>()
            },
        )
        .shutdown_on_signal()
        .run(
            |js, ctx: Arc<Context>| async move {
                let metrics = ctx.metrics.clone();
                metrics
                    .timed("JujuSecret", jujusecret::reconcile(js, ctx))
                    .await
            },
            error_policy,
            ctx.clone(),
        )
        .for_each(|result| {
            let ctx = ctx.clone();
            async move { report(&ctx, "JujuSecret", result) }
        })
        .await;
}

async fn run_grants(
    api: Api<JujuSecretGrant>,
    jujusecrets: Api<PartialObjectMeta<JujuSecret>>,
    ctx: Arc<Context>,
    health: Arc<metrics::Health>,
) {
    let controller = lean_controller(
        api,
        &ctx.controller_config,
        kube::runtime::predicates::resource_version,
    );
    let store = controller.store();
    report_cache_sync("JujuSecretGrant", store.clone(), health);
    ctx.metrics.count_objects("JujuSecretGrant", store.clone());
    let gctx = Arc::new(grant::GrantContext {
        ctx: ctx.clone(),
        grants: store.clone(),
        made: Default::default(),
    });
    controller
        .watches_stream(
            metadata_changes(jujusecrets),
            move |js: PartialObjectMeta<JujuSecret>| {
                // A JujuSecret became Ready, changed or was recreated: its grants follow.
                let namespace = js.namespace();
                let name = js.name_any();
                store
                    .state()
                    .into_iter()
                    .filter(|g| g.namespace() == namespace)
                    .filter(|g| g.spec.secret_ref.as_ref().is_some_and(|r| r.name == name))
                    .map(|g| ObjectRef::from_obj(&*g))
                    .collect::<Vec<_>>()
            },
        )
        .shutdown_on_signal()
        .run(
            |g, gctx: Arc<grant::GrantContext>| async move {
                let metrics = gctx.ctx.metrics.clone();
                metrics
                    .timed("JujuSecretGrant", grant::reconcile(g, gctx))
                    .await
            },
            grant_error_policy,
            gctx,
        )
        .for_each(|result| {
            let ctx = ctx.clone();
            async move { report(&ctx, "JujuSecretGrant", result) }
        })
        .await;
}

/// Runs the JujuSecretBackend controller. Referenced Secrets are watched in
/// `namespaces` (all when empty), the same scope the operator may read Secrets in.
async fn run_backends(
    client: Client,
    ctx: Arc<Context>,
    namespaces: Vec<String>,
    health: Arc<metrics::Health>,
) {
    let api: Api<crate::crd::backend::JujuSecretBackend> = Api::all(client.clone());
    let mut controller = lean_controller(
        api,
        &ctx.controller_config,
        kube::runtime::predicates::resource_version,
    );
    let store = controller.store();
    report_cache_sync("JujuSecretBackend", store.clone(), health);
    ctx.metrics
        .count_objects("JujuSecretBackend", store.clone());
    let bctx = Arc::new(backend::BackendContext {
        ctx: ctx.clone(),
        backends: store.clone(),
    });
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    };
    for scope in scopes {
        let store = store.clone();
        controller = controller.watches_stream(
            metadata_changes(api_for(&client, scope.as_deref())),
            move |secret: PartialObjectMeta<Secret>| {
                // A configSecretRef changed (a rotated token): update the backend.
                backend::reading_secret(&store, secret.namespace(), &secret.name_any())
                    .iter()
                    .map(|b| ObjectRef::from_obj(&**b))
                    .collect::<Vec<_>>()
            },
        );
    }
    controller
        .shutdown_on_signal()
        .run(
            |b, bctx: Arc<backend::BackendContext>| async move {
                let metrics = bctx.ctx.metrics.clone();
                metrics
                    .timed("JujuSecretBackend", backend::reconcile(b, bctx))
                    .await
            },
            backend_error_policy,
            bctx,
        )
        .for_each(|result| {
            let ctx = ctx.clone();
            async move { report(&ctx, "JujuSecretBackend", result) }
        })
        .await;
}

fn backend_error_policy(
    b: Arc<crate::crd::backend::JujuSecretBackend>,
    error: &Error,
    bctx: Arc<backend::BackendContext>,
) -> Action {
    let delay = bctx.ctx.backoff.next(&format!("backend/{}", b.name_any()));
    warn!(name = b.name_any(), error = %error, retry_in = ?delay, "reconcile error");
    Action::requeue(delay)
}

/// Logs what the controller runtime reports; failures outside a reconcile pass (a
/// reconcile's own outcome is counted by [`metrics::Metrics::timed`]) are counted too.
fn report<K, E>(
    ctx: &Context,
    kind: &'static str,
    result: Result<(ObjectRef<K>, Action), kube::runtime::controller::Error<Error, E>>,
) where
    K: Resource,
    E: std::error::Error,
{
    match result {
        Ok(_) => {}
        Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {}
        Err(e) => {
            warn!(kind, error = %e, "controller error");
            ctx.metrics.reconciled(kind, None, Some(error_label(&e)));
        }
    }
}

fn grant_error_policy(
    g: Arc<JujuSecretGrant>,
    error: &Error,
    gctx: Arc<grant::GrantContext>,
) -> Action {
    let key = format!(
        "grant/{}/{}",
        g.namespace().unwrap_or_default(),
        g.name_any()
    );
    let delay = gctx.ctx.backoff.next(&key);
    warn!(namespace = g.namespace().unwrap_or_default(), name = g.name_any(), error = %error, retry_in = ?delay, "reconcile error");
    Action::requeue(delay)
}

fn error_label<E: std::error::Error>(
    e: &kube::runtime::controller::Error<Error, E>,
) -> &'static str {
    match e {
        kube::runtime::controller::Error::ReconcilerFailed(err, _) => err.category(),
        kube::runtime::controller::Error::ObjectNotFound(_) => "ObjectNotFound",
        kube::runtime::controller::Error::QueueError(_) => "QueueError",
        _ => "Other",
    }
}

fn error_policy(js: Arc<JujuSecret>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = format!("{}/{}", js.namespace().unwrap_or_default(), js.name_any());
    let delay = ctx.backoff.next(&key);
    warn!(namespace = js.namespace().unwrap_or_default(), name = js.name_any(), error = %error, retry_in = ?delay, "reconcile error");
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use kube::client::Body;

    use super::*;

    /// A status write leaves the trigger hash alone; spec, finalizer, deletion, label
    /// and annotation changes move it.
    #[test]
    fn only_changes_beside_the_status_trigger_a_pass() {
        let js: JujuSecret = serde_json::from_value(serde_json::json!({
            "apiVersion": "secrets.juju.is/v1alpha1", "kind": "JujuSecret",
            "metadata": {"name": "a", "namespace": "ns", "uid": "u1", "generation": 1},
            "spec": {"model": "admin/dev", "data": {"k": "v"}}
        }))
        .unwrap();
        let base = all_but_status(&js);
        let mut with_status = js.clone();
        with_status.status = Some(Default::default());
        with_status.metadata.resource_version = Some("99".into());
        assert_eq!(all_but_status(&with_status), base);
        let changes: [fn(&mut JujuSecret); 6] = [
            |o| o.metadata.generation = Some(2),
            |o| o.metadata.finalizers = Some(vec!["f".into()]),
            |o| {
                o.metadata.deletion_timestamp =
                    Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        jiff::Timestamp::UNIX_EPOCH,
                    ))
            },
            |o| o.metadata.labels = Some([("l".to_owned(), "1".to_owned())].into()),
            |o| o.metadata.annotations = Some([("a".to_owned(), "1".to_owned())].into()),
            |o| o.metadata.uid = Some("u2".into()),
        ];
        for change in changes {
            let mut o = js.clone();
            change(&mut o);
            assert_ne!(all_but_status(&o), base, "{:?}", o.metadata);
        }
    }

    /// A thousand requests at once reach the apiserver at most MAX_KUBE_REQUESTS at a
    /// time, and all of them are answered.
    #[tokio::test]
    async fn the_client_bounds_requests_in_flight() {
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let service = tower::service_fn({
            let (now, peak) = (now.clone(), peak.clone());
            move |_req: http::Request<Body>| {
                let (now, peak) = (now.clone(), peak.clone());
                async move {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    let body = serde_json::to_vec(&serde_json::json!({
                        "apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "c", "namespace": "ns"}
                    }))
                    .unwrap();
                    Ok::<_, std::convert::Infallible>(
                        http::Response::builder().body(Body::from(body)).unwrap(),
                    )
                }
            }
        });
        let client = limit_requests(kube::client::ClientBuilder::new(service, "ns"));
        let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, "ns");
        let gets = (0..1000).map(|_| api.get("c"));
        let answered = futures::future::join_all(gets).await;
        assert!(answered.iter().all(Result::is_ok));
        let peak = peak.load(Ordering::SeqCst);
        assert!(peak <= MAX_KUBE_REQUESTS, "{peak} requests in flight");
        assert!(
            peak >= MAX_KUBE_REQUESTS / 2,
            "the limit serialised too much: {peak}"
        );
    }
}
