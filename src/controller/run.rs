//! The run wiring: [`run`] checks the CRDs, connects, waits for the leader Lease (when
//! leader election is on), starts the three controllers with their watches and error
//! policies, and serves `/metrics`, `/healthz` and `/readyz` until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use super::connect::{
    check_crd_installed, connection_namespace, connection_options, kube_client, kube_config,
    mac_key,
};
use super::context::{Backoff, Context, Error, FIELD_MANAGER, KubeWrites, MAX_KUBE_WRITES};
use super::juju_state::{ModelDirectory, SecretListings, WriteBatcher};
use super::tenancy::TenancyPolicy;
use super::{backend, content, events, grant, jujusecret, leader, metrics, ownership, tenancy};
use crate::crd::grant::JujuSecretGrant;
use crate::crd::secret::JujuSecret;
use juju_client::JujuClient;

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
    Juju(#[from] juju_client::Error),
    /// The ownership record could not be read.
    #[error("ownership record: {0}")]
    Ownership(String),
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
            // Lease requests time out well within the Lease, so that a hung request
            // leaves time to try again (the renewal itself is cut off before the Lease
            // could run out, whatever the timeout).
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
    // Only the leader talks to Juju, and writes the ownership record; its Juju client
    // sends nothing once the leadership could have run out.
    let mut options = options;
    options.fence = leadership.as_ref().map(|l| l.fence.clone());
    let juju = JujuClient::new(options)?;
    let record_namespace = connection_namespace(&config.connection_secret);
    let ownership = Arc::new(
        ownership::OwnershipRecord::load(client.clone(), record_namespace)
            .await
            .map_err(|e| {
                RunError::Ownership(format!(
                    "cannot read the ConfigMaps {record_namespace}/{}-NN: {e}",
                    ownership::CONFIGMAP_PREFIX
                ))
            })?,
    );
    metrics.attach(juju.clone());
    metrics.set_leader(true);

    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    // Status writes and events stop with the Juju calls, at the fence.
    let kube_writes = KubeWrites::new(MAX_KUBE_WRITES, juju.options().fence.clone());
    let ctx = Arc::new(Context {
        client: client.clone(),
        events: events::EventSink::start(
            client.clone(),
            reporter,
            kube_writes.clone(),
            metrics.clone(),
        ),
        policy,
        models: ModelDirectory::new(juju.clone(), Duration::from_secs(30)),
        listings: SecretListings::new(juju.clone()),
        writes: WriteBatcher::with_record(juju.clone(), ownership.clone()),
        ownership,
        juju,
        mac_key,
        refresh_interval: config.refresh_interval,
        backoff: Backoff::default(),
        metrics: metrics.clone(),
        kube_writes,
        finisher: Arc::default(),
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
        let (jujusecrets_changed, changes) = futures::channel::mpsc::unbounded();
        runs.push(tokio::spawn(run_jujusecrets(
            api_for(&client, scope.as_deref()),
            api_for(&client, scope.as_deref()),
            jujusecrets_changed,
            ctx.clone(),
            health.clone(),
        )));
        // Grants and backends reconcile inline: the controllers return once their
        // running passes have finished.
        let grants = run_grants(
            api_for(&client, scope.as_deref()),
            changes,
            ctx.clone(),
            health.clone(),
        );
        runs.push(tokio::spawn(async move {
            grants.await;
            true
        }));
    }
    // Backends are cluster-scoped: one controller whatever the namespaces.
    let backends = run_backends(
        client.clone(),
        ctx.clone(),
        config.namespaces.clone(),
        health.clone(),
    );
    runs.push(tokio::spawn(async move {
        backends.await;
        true
    }));
    let controllers = futures::future::join_all(runs);
    match leadership {
        None => {
            controllers.await;
        }
        Some(mut leadership) => {
            tokio::select! {
                done = controllers => {
                    // Writes still in flight to Juju must not meet a successor's: give the
                    // Lease up only once every pass has finished; else let it run out.
                    if done.iter().all(|drained| matches!(drained, Ok(true))) {
                        leadership.release().await;
                    } else {
                        warn!("passes still wait for Juju: the leader lease is left to run out, so no successor writes beside them");
                    }
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
        if cache_synced(&store).await {
            tracing::debug!(kind, "cache synced");
            health.cache_synced();
        } else {
            warn!(kind, "cache never synced");
        }
    });
}

/// Waits until `store` holds every object its watch listed; false if it never will.
async fn cache_synced<K>(store: &kube::runtime::reflector::Store<K>) -> bool
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone + Send + Sync,
{
    // The store's readiness signal wakes only its most recent waiter, and the
    // controller itself waits on it too: poll again every half second instead of
    // relying on a wake-up.
    loop {
        match tokio::time::timeout(Duration::from_millis(500), store.wait_until_ready()).await {
            Ok(Ok(())) => return true,
            Ok(Err(_)) => return false,
            Err(_) => {}
        }
    }
}

/// A controller for `K` whose cache keeps objects without `metadata.managedFields`:
/// the operator never reads them, and with server-side apply they are a good part of
/// every cached object. Only changes that `predicate` sees trigger a reconcile (the
/// cache gets every change). `on_delete` gets each object deleted, `on_change` sees every
/// change, status included, before the predicate.
fn lean_controller<K, P>(
    api: Api<K>,
    config: &kube::runtime::controller::Config,
    predicate: P,
    on_delete: impl Fn(K) + Send + 'static,
    on_change: impl Fn(&K) + Send + 'static,
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
        .inspect(move |event| match event {
            Ok(watcher::Event::Delete(obj)) => {
                on_change(obj);
                on_delete(obj.clone());
            }
            Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => on_change(obj),
            _ => {}
        })
        .applied_objects()
        .predicate_filter(predicate, Default::default());
    Controller::for_stream(stream, reader).with_config(config.clone())
}

/// [`all_but_status`] but the finalizers: the JujuSecret finalizer the operator adds after
/// a new object's Juju write causes no second pass (a finalizer removed by hand is put
/// back by the object's next pass).
pub fn all_but_status_and_finalizers<K: Resource>(obj: &K) -> Option<u64> {
    hash_meta(obj, false)
}

/// Everything of an object but its status: generation (the spec), finalizers, deletion,
/// labels and annotations. A status write (the operator's own, mostly) changes none of
/// them, so it does not cause another pass; the timed requeues still check drift.
pub fn all_but_status<K: Resource>(obj: &K) -> Option<u64> {
    hash_meta(obj, true)
}

fn hash_meta<K: Resource>(obj: &K, finalizers: bool) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = obj.meta();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    meta.uid.hash(&mut h);
    meta.generation.hash(&mut h);
    if finalizers {
        meta.finalizers.hash(&mut h);
    }
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

/// The JujuSecret controller; every change its watch sees (status included) goes to
/// `changed` too, for the grant controller: one watch of JujuSecrets serves both.
/// Whether every pass had finished when it stopped.
async fn run_jujusecrets(
    api: Api<JujuSecret>,
    secrets: Api<PartialObjectMeta<Secret>>,
    changed: JujuSecretChanges,
    ctx: Arc<Context>,
    health: Arc<metrics::Health>,
) -> bool {
    // Passes that finish as tasks once their Juju write is queued; their follow-up
    // passes come back through `retrigger`.
    let (retrigger_tx, mut retrigger) = tokio::sync::mpsc::unbounded_channel();
    {
        let (ctx, retrigger) = (ctx.clone(), retrigger_tx.clone());
        tokio::spawn(async move { ctx.finisher.run(&ctx, retrigger).await });
    }
    let tails = Arc::new(jujusecret::Tails::new(retrigger_tx));
    let on_delete = {
        let (ctx, tails) = (ctx.clone(), tails.clone());
        move |js: JujuSecret| jujusecret::deleted(Arc::new(js), ctx.clone(), tails.clone())
    };
    let finisher = ctx.finisher.clone();
    let controller = lean_controller(
        api,
        &ctx.controller_config,
        all_but_status_and_finalizers::<JujuSecret>,
        on_delete,
        move |js: &JujuSecret| {
            if js.metadata.deletion_timestamp.is_none() && !jujusecret::has_finalizer(js) {
                finisher.arrived();
            }
            // The grant controller stops with the process: a closed channel is no error.
            let _ = changed.unbounded_send(ObjectRef::from_obj(js));
        },
    );
    let store = controller.store();
    {
        let (ctx, store, tails) = (ctx.clone(), store.clone(), tails.clone());
        tokio::spawn(async move {
            if cache_synced(&store).await {
                jujusecret::sweep(ctx, &store, tails).await;
            }
        });
    }
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
        .reconcile_on(futures::stream::poll_fn(move |cx| retrigger.poll_recv(cx)))
        .shutdown_on_signal()
        .run(
            {
                let tails = tails.clone();
                move |js, ctx: Arc<Context>| {
                    let tails = tails.clone();
                    async move {
                        let metrics = ctx.metrics.clone();
                        metrics
                            .timed("JujuSecret", jujusecret::reconcile(js, ctx, tails))
                            .await
                    }
                }
            },
            error_policy,
            ctx.clone(),
        )
        .for_each(|result| {
            let ctx = ctx.clone();
            async move { report(&ctx, "JujuSecret", result) }
        })
        .await;
    tails.drain(jujusecret::DRAIN_TIMEOUT).await
}

/// Changes of JujuSecrets, from the JujuSecret controller's watch to the grant controller.
type JujuSecretChanges = futures::channel::mpsc::UnboundedSender<ObjectRef<JujuSecret>>;

/// The grant controller; `jujusecrets_changed` carries every change of a JujuSecret
/// (from the JujuSecret controller's watch) so the grants that name it follow.
async fn run_grants(
    api: Api<JujuSecretGrant>,
    jujusecrets_changed: futures::channel::mpsc::UnboundedReceiver<ObjectRef<JujuSecret>>,
    ctx: Arc<Context>,
    health: Arc<metrics::Health>,
) {
    let (deleted_tx, mut deleted_rx) = tokio::sync::mpsc::unbounded_channel();
    let controller = lean_controller(
        api,
        &ctx.controller_config,
        kube::runtime::predicates::resource_version,
        move |g: JujuSecretGrant| {
            let _ = deleted_tx.send(g);
        },
        |_: &JujuSecretGrant| {},
    );
    let store = controller.store();
    report_cache_sync("JujuSecretGrant", store.clone(), health);
    ctx.metrics.count_objects("JujuSecretGrant", store.clone());
    let gctx = Arc::new(grant::GrantContext {
        ctx: ctx.clone(),
        grants: store.clone(),
    });
    {
        let gctx = gctx.clone();
        tokio::spawn(async move {
            while let Some(g) = deleted_rx.recv().await {
                grant::deleted(Arc::new(g), gctx.clone());
            }
        });
    }
    // A JujuSecret became Ready, changed, was recreated or deleted: its grants follow.
    let follow = jujusecrets_changed.flat_map(move |js: ObjectRef<JujuSecret>| {
        let grants = store
            .state()
            .into_iter()
            .filter(|g| g.namespace() == js.namespace)
            .filter(|g| {
                g.spec
                    .secret_ref
                    .as_ref()
                    .is_some_and(|r| r.name == js.name)
            })
            .map(|g| ObjectRef::from_obj(&*g))
            .collect::<Vec<_>>();
        futures::stream::iter(grants)
    });
    controller
        .reconcile_on(follow)
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
    let (deleted_tx, mut deleted_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut controller = lean_controller(
        api,
        &ctx.controller_config,
        kube::runtime::predicates::resource_version,
        move |b: crate::crd::backend::JujuSecretBackend| {
            let _ = deleted_tx.send(b);
        },
        |_: &crate::crd::backend::JujuSecretBackend| {},
    );
    let store = controller.store();
    report_cache_sync("JujuSecretBackend", store.clone(), health);
    ctx.metrics
        .count_objects("JujuSecretBackend", store.clone());
    let bctx = Arc::new(backend::BackendContext {
        ctx: ctx.clone(),
        backends: store.clone(),
    });
    {
        let bctx = bctx.clone();
        tokio::spawn(async move {
            while let Some(b) = deleted_rx.recv().await {
                backend::deleted(Arc::new(b), bctx.clone());
            }
        });
    }
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

    use super::*;

    /// A status write leaves the trigger hash alone; spec, finalizer, deletion, label
    /// and annotation changes move it (all but the finalizer, for JujuSecrets).
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
        // The JujuSecret controller's: the finalizer it adds after a new object's Juju
        // write causes no pass; every other change does, as above.
        let base = all_but_status_and_finalizers(&js);
        let mut finalized = with_status.clone();
        finalized.metadata.finalizers = Some(vec!["secrets.juju.is/cleanup".into()]);
        assert_eq!(all_but_status_and_finalizers(&finalized), base);
        for change in &changes[..1] {
            let mut o = js.clone();
            change(&mut o);
            assert_ne!(all_but_status_and_finalizers(&o), base);
        }
        for change in &changes[2..] {
            let mut o = js.clone();
            change(&mut o);
            assert_ne!(all_but_status_and_finalizers(&o), base, "{:?}", o.metadata);
        }
    }
}
