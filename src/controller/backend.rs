//! The JujuSecretBackend controller: a vault or kubernetes secret backend on the Juju
//! controller, and the models whose `secret-backend` points at it.
//!
//! Sensitive configuration (`token`, `client-key`, `password`) comes from a watched
//! Kubernetes Secret and is never read back from Juju: a keyed MAC of what was last
//! written tells when it changed. Juju's own status for the backend (`active`/`error`,
//! its message, the number of secrets stored) is mirrored into the status on every
//! refresh. Deleting a backend that still stores revisions waits, with a condition
//! saying so, unless the user asked to force it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};
use serde_json::Value;
use sha2::Sha256;
use tracing::{info, instrument};

use super::juju_state::{FailureKind, SharedFailure};
use super::outcome::{self, Problem};
use super::{Context, Error, now_rfc3339};
use crate::crd::backend::{BackendType, JujuSecretBackend, JujuSecretBackendStatus};
use crate::crd::condition::{Condition, reason};
use crate::crd::secret::DeletionPolicy;
use juju_client::facade::model_config::AUTO_BACKEND;
use juju_client::{BackendConfig, BackendInfo, BackendUpdate, ErrorCode, NewBackend};

/// Finalizer that lets the operator remove the backend before the object goes.
pub const FINALIZER: &str = "secrets.juju.is/backend-cleanup";

/// Annotation that allows deleting a backend that still stores secret revisions.
pub const FORCE_DELETE_ANNOTATION: &str = "secrets.juju.is/force-delete";

/// Reasons specific to backends.
pub mod backend_reason {
    /// Juju could not reach the backend.
    pub const BACKEND_UNREACHABLE: &str = "BackendUnreachable";
    /// The backend still stores revisions (deletion or rename waits).
    pub const IN_USE: &str = "InUse";
}

/// Config keys that carry credentials; hidden by Juju without `reveal`.
const SENSITIVE_KEYS: &[&str] = &["token", "client-key", "password"];

/// Juju's minimum token rotation interval.
const MIN_ROTATE: Duration = Duration::from_secs(3600);

/// Turns a per-item Juju error on Add/Update into a problem.
fn item_problem(e: juju_client::ApiError) -> Problem {
    let text = e.to_string();
    if text.contains("not reachable") || text.contains("cannot ping") || text.contains("sealed") {
        Problem::new(backend_reason::BACKEND_UNREACHABLE, text).transient()
    } else if e.code == ErrorCode::AlreadyExists {
        Problem::new(reason::CONFLICT, text)
    } else if text.contains("in use") {
        Problem::new(backend_reason::IN_USE, text)
    } else {
        Problem::new(reason::INVALID_SPEC, text)
    }
}

/// The outcome of a one-item Add or Update call.
fn single(
    outcome: juju_client::Result<Vec<Result<(), juju_client::ApiError>>>,
) -> Result<(), Problem> {
    outcome
        .map_err(SharedFailure::from)?
        .into_iter()
        .next()
        .unwrap_or(Ok(()))
        .map_err(item_problem)
}

/// What the backend controller shares beyond [`Context`].
pub struct BackendContext {
    /// The operator-wide context.
    pub ctx: Arc<Context>,
    /// Every JujuSecretBackend, to settle two of them claiming one model.
    pub backends: Store<JujuSecretBackend>,
}

/// Entry point for the kube-runtime controller.
pub async fn reconcile(
    backend: Arc<JujuSecretBackend>,
    bctx: Arc<BackendContext>,
) -> Result<Action, Error> {
    let api: Api<JujuSecretBackend> = Api::all(bctx.ctx.client.clone());
    finalizer(&api, FINALIZER, backend, |event| async {
        match event {
            Finalizer::Apply(b) => apply(&b, &bctx).await,
            Finalizer::Cleanup(b) => cleanup(&b, &bctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

fn juju_name(b: &JujuSecretBackend) -> String {
    b.spec.name.clone().unwrap_or_else(|| b.name_any())
}

fn key(b: &JujuSecretBackend) -> String {
    format!("backend/{}", b.name_any())
}

fn type_name(t: BackendType) -> &'static str {
    match t {
        BackendType::Vault => "vault",
        BackendType::Kubernetes => "kubernetes",
    }
}

/// Parses `tokenRotateInterval` with Juju's rule: 0 or at least 1 h.
pub fn rotate_interval(spec: Option<&str>) -> Result<Option<Duration>, String> {
    let Some(text) = spec.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let d = if text == "0" {
        Duration::ZERO
    } else {
        humantime::parse_duration(text).map_err(|e| format!("tokenRotateInterval {text:?}: {e}"))?
    };
    if !d.is_zero() && d < MIN_ROTATE {
        return Err(format!(
            "tokenRotateInterval {text:?} is less than 1h; Juju needs 0 (no rotation) or at least 1h"
        ));
    }
    Ok(Some(d))
}

/// The full desired configuration: plain keys plus the referenced Secret's keys.
async fn desired_config(b: &JujuSecretBackend, ctx: &Context) -> Result<BackendConfig, Problem> {
    let mut config = BackendConfig::default();
    for (k, v) in &b.spec.config {
        config.insert(k.clone(), Value::String(v.clone()));
    }
    if let Some(r) = &b.spec.config_secret_ref {
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &r.namespace);
        let secret = api
            .get_opt(&r.name)
            .await
            .map_err(|e| Problem::new(reason::KUBERNETES_ERROR, e.to_string()).transient())?
            .ok_or_else(|| {
                Problem::new(
                    reason::SOURCE_NOT_FOUND,
                    format!("Secret {}/{} not found", r.namespace, r.name),
                )
            })?;
        for (k, v) in secret.data.unwrap_or_default() {
            let text = String::from_utf8(v.0).map_err(|_| {
                Problem::new(
                    reason::INVALID_SPEC,
                    format!(
                        "key {k:?} of Secret {}/{} is not UTF-8",
                        r.namespace, r.name
                    ),
                )
            })?;
            if config.get(&k).is_some() {
                return Err(Problem::new(
                    reason::INVALID_SPEC,
                    format!(
                        "key {k:?} is given both in config and in Secret {}/{}",
                        r.namespace, r.name
                    ),
                ));
            }
            config.insert(k, Value::String(text));
        }
    }
    Ok(config)
}

fn config_mac(key: &[u8], config: &BackendConfig, interval: Option<Duration>) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(
        serde_json::to_string(&config.0)
            .unwrap_or_default()
            .as_bytes(),
    );
    mac.update(format!("{interval:?}").as_bytes());
    format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
}

#[instrument(skip_all, fields(name = b.name_any()))]
async fn apply(b: &JujuSecretBackend, bctx: &BackendContext) -> Result<Action, Error> {
    let ctx = &bctx.ctx;
    let previous = b.status.clone().unwrap_or_default();
    let mut status = JujuSecretBackendStatus {
        observed_generation: b.metadata.generation,
        ..previous.clone()
    };
    let outcome = sync(b, bctx, &previous, &mut status).await;
    let action = match outcome {
        Ok(()) => {
            ctx.backoff.reset(&key(b));
            status.conditions = vec![condition(b, &previous, true, reason::SYNCED, "in sync")];
            Action::requeue(ctx.refresh_interval)
        }
        Err(problem) => {
            let changed = outcome::ready_changes(&previous.conditions, &problem);
            if changed {
                ctx.publish(
                    b,
                    EventType::Warning,
                    problem.reason,
                    "Sync",
                    Some(problem.message.clone()),
                );
            }
            status.conditions = vec![condition(
                b,
                &previous,
                false,
                problem.reason,
                &problem.message,
            )];
            Action::requeue(if problem.transient {
                ctx.backoff.next(&key(b))
            } else {
                ctx.refresh_interval
            })
        }
    };
    write_status(b, ctx, &previous, status).await?;
    Ok(action)
}

/// Finds this resource's backend: by recorded ID first, then by name.
fn find<'a>(
    listed: &'a [BackendInfo],
    previous: &JujuSecretBackendStatus,
    name: &str,
) -> Option<&'a BackendInfo> {
    previous
        .backend_id
        .as_deref()
        .and_then(|id| listed.iter().find(|i| i.id == id))
        .or_else(|| listed.iter().find(|i| i.name == name))
}

async fn sync(
    b: &JujuSecretBackend,
    bctx: &BackendContext,
    previous: &JujuSecretBackendStatus,
    status: &mut JujuSecretBackendStatus,
) -> Result<(), Problem> {
    let ctx = &bctx.ctx;
    let name = juju_name(b);
    if name == "internal" || name == "auto" {
        return Err(Problem::new(
            reason::INVALID_SPEC,
            format!("{name:?} is a reserved backend name"),
        ));
    }
    let interval = rotate_interval(b.spec.token_rotate_interval.as_deref())
        .map_err(|m| Problem::new(reason::INVALID_SPEC, m))?;
    let config = desired_config(b, ctx).await?;
    let mac = config_mac(&ctx.mac_key, &config, interval);
    let backend_type = type_name(b.spec.backend_type);

    let listed = ctx
        .juju
        .list_secret_backends(&[], false)
        .await
        .map_err(SharedFailure::from)?;
    let found = find(&listed, previous, &name).cloned();
    match found {
        None => {
            let mut pending = previous.clone();
            pending.pending_create = Some(now_rfc3339());
            write_status(b, ctx, previous, pending)
                .await
                .map_err(|e| Problem::new(reason::KUBERNETES_ERROR, e.to_string()).transient())?;
            let new = NewBackend {
                name: name.clone(),
                backend_type: backend_type.into(),
                // Juju refuses 0 on add; absent means no rotation.
                token_rotate_interval: interval.filter(|d| !d.is_zero()),
                config: config.clone(),
            };
            single(ctx.juju.add_secret_backends(&[new]).await)?;
            info!(backend = %name, "added secret backend");
            ctx.publish(
                b,
                EventType::Normal,
                "Created",
                "Create",
                Some(format!("added {backend_type} secret backend {name:?}")),
            );
        }
        Some(current) => {
            let ours = previous.backend_id.as_deref() == Some(current.id.as_str())
                || previous.pending_create.is_some();
            if !ours {
                return Err(Problem::new(
                    reason::CONFLICT,
                    format!(
                        "a secret backend named {name:?} already exists in Juju and was not created by this resource"
                    ),
                ));
            }
            if current.backend_type != backend_type {
                return Err(Problem::new(
                    reason::INVALID_SPEC,
                    format!(
                        "backendType cannot change: the Juju backend is {:?}",
                        current.backend_type
                    ),
                ));
            }
            let mut update = BackendUpdate {
                name: current.name.clone(),
                ..Default::default()
            };
            let mut changes = Vec::new();
            if current.name != name {
                update.name_change = Some(name.clone());
                changes.push("name");
            }
            if previous.config_mac.as_deref() != Some(mac.as_str()) {
                update.config = Some(config.clone());
                update.reset = current
                    .config
                    .0
                    .keys()
                    .filter(|k| config.get(k).is_none() && !SENSITIVE_KEYS.contains(&k.as_str()))
                    .cloned()
                    .collect();
                update.token_rotate_interval = Some(interval.unwrap_or(Duration::ZERO));
                changes.push("configuration");
            } else {
                // Someone changed a plain key in Juju: put it back.
                let drifted = config.0.iter().any(|(k, v)| {
                    !SENSITIVE_KEYS.contains(&k.as_str()) && current.config.get(k) != Some(v)
                });
                if drifted
                    || current.token_rotate_interval.unwrap_or_default()
                        != interval.unwrap_or_default()
                {
                    update.config = Some(config.clone());
                    update.token_rotate_interval = Some(interval.unwrap_or(Duration::ZERO));
                    changes.push("configuration");
                }
            }
            if !changes.is_empty() {
                single(ctx.juju.update_secret_backends(&[update]).await)?;
                let what = changes.join(", ");
                info!(backend = %name, changed = %what, "updated secret backend");
                ctx.publish(
                    b,
                    EventType::Normal,
                    "Updated",
                    "Update",
                    Some(format!("updated {what} of secret backend {name:?}")),
                );
            }
        }
    }
    status.pending_create = None;
    status.name = Some(name.clone());
    status.config_mac = Some(mac);

    // Mirror Juju's view of the backend.
    let listed = ctx
        .juju
        .list_secret_backends(std::slice::from_ref(&name), false)
        .await
        .map_err(SharedFailure::from)?;
    if let Some(info) = listed.into_iter().find(|i| i.name == name) {
        status.backend_id = Some(info.id);
        status.status = Some(info.status.clone());
        status.message = info.message.clone();
        status.secret_count = Some(info.num_secrets);
        if info.status == "error" {
            return Err(Problem::new(
                backend_reason::BACKEND_UNREACHABLE,
                info.message
                    .unwrap_or_else(|| "Juju reports the backend in error".into()),
            )
            .transient());
        }
    }

    assign_models(b, bctx, previous, status, &name).await
}

/// Points the listed models at this backend, and models no longer listed back at
/// `auto`. A model another JujuSecretBackend claimed first is a conflict here.
async fn assign_models(
    b: &JujuSecretBackend,
    bctx: &BackendContext,
    previous: &JujuSecretBackendStatus,
    status: &mut JujuSecretBackendStatus,
    name: &str,
) -> Result<(), Problem> {
    let ctx = &bctx.ctx;
    let mut desired = BTreeSet::new();
    let mut problems = Vec::new();
    let older_claims: BTreeSet<String> = bctx
        .backends
        .state()
        .iter()
        .filter(|o| o.name_any() != b.name_any() && o.metadata.deletion_timestamp.is_none())
        .filter(|o| {
            (o.metadata.creation_timestamp.as_ref(), o.name_any())
                < (b.metadata.creation_timestamp.as_ref(), b.name_any())
        })
        .flat_map(|o| {
            o.status
                .iter()
                .flat_map(|s| s.assigned_models.iter().cloned())
                .collect::<Vec<_>>()
        })
        .collect();
    // What is assigned, kept up to date as each call succeeds so that a failure half
    // way never loses track of a model pointed here.
    let mut assigned: BTreeSet<String> = previous.assigned_models.iter().cloned().collect();
    let mut unresolved = false;
    for spec in &b.spec.models {
        let model = match ctx.models.resolve(spec).await {
            Ok(m) => m,
            Err(f) => {
                unresolved = true;
                problems.push(Problem::from(f));
                continue;
            }
        };
        if older_claims.contains(&model.uuid) {
            problems.push(Problem::new(
                reason::CONFLICT,
                format!(
                    "model {} is already assigned by another JujuSecretBackend",
                    model.qualified_name()
                ),
            ));
            continue;
        }
        desired.insert(model.uuid.clone());
        let current = match ctx.juju.secret_backend(&model.uuid).await {
            Ok(c) => c,
            Err(e) => {
                status.assigned_models = assigned.iter().cloned().collect();
                return Err(SharedFailure::from(e).into());
            }
        };
        if current != name {
            let set = ctx.juju.set_secret_backend(&model.uuid, name).await;
            if let Err(e) = set {
                status.assigned_models = assigned.iter().cloned().collect();
                return Err(match SharedFailure::from(&e) {
                    f if f.kind == FailureKind::Other => {
                        item_problem(juju_client::ApiError::new("", e.to_string()))
                    }
                    f => Problem::from(f),
                });
            }
            ctx.publish(
                b,
                EventType::Normal,
                "ModelAssigned",
                "Assign",
                Some(format!(
                    "model {} now stores new secrets in {name:?}",
                    model.qualified_name()
                )),
            );
        }
        assigned.insert(model.uuid.clone());
    }
    // A model that could not be resolved this pass may still be wanted: release
    // nothing until every entry resolves.
    if !unresolved {
        let release: Vec<String> = assigned
            .iter()
            .filter(|u| !desired.contains(*u))
            .cloned()
            .collect();
        for uuid in release {
            if let Err(p) = release_model(ctx, b, &uuid, name).await {
                status.assigned_models = assigned.iter().cloned().collect();
                return Err(p);
            }
            assigned.remove(&uuid);
        }
    }
    status.assigned_models = assigned.into_iter().collect();
    match problems.into_iter().next() {
        Some(p) => Err(p),
        None => Ok(()),
    }
}

/// Sets a model back to `auto` if it still points at `name`.
async fn release_model(
    ctx: &Context,
    b: &JujuSecretBackend,
    uuid: &str,
    name: &str,
) -> Result<(), Problem> {
    match ctx.juju.secret_backend(uuid).await {
        Ok(current) if current == name => {
            ctx.juju
                .set_secret_backend(uuid, AUTO_BACKEND)
                .await
                .map_err(SharedFailure::from)?;
            ctx.publish(
                b,
                EventType::Normal,
                "ModelReleased",
                "Assign",
                Some(format!("model {uuid} back to the auto secret backend")),
            );
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(e) if SharedFailure::from(&e).kind == FailureKind::ModelNotFound => Ok(()),
        Err(e) => Err(SharedFailure::from(e).into()),
    }
}

#[instrument(skip_all, fields(name = b.name_any()))]
async fn cleanup(b: &JujuSecretBackend, bctx: &BackendContext) -> Result<Action, Error> {
    let ctx = &bctx.ctx;
    let name = b
        .status
        .as_ref()
        .and_then(|s| s.name.clone())
        .unwrap_or_else(|| juju_name(b));
    if b.spec.deletion_policy == DeletionPolicy::Retain {
        ctx.publish(
            b,
            EventType::Normal,
            "Retained",
            "Delete",
            Some(format!("left secret backend {name:?} in Juju")),
        );
        return Ok(Action::await_change());
    }
    let previous = b.status.clone().unwrap_or_default();
    if previous.backend_id.is_none() && previous.pending_create.is_none() {
        return Ok(Action::await_change());
    }
    let force = b
        .annotations()
        .get(FORCE_DELETE_ANNOTATION)
        .is_some_and(|v| v == "true");
    let result: Result<(), Problem> = async {
        for uuid in &previous.assigned_models {
            release_model(ctx, b, uuid, &name).await?;
        }
        let removed = ctx
            .juju
            .remove_secret_backends(&[(name.clone(), force)])
            .await
            .map_err(SharedFailure::from)?
            .into_iter()
            .next()
            .unwrap_or(Ok(()));
        match removed {
            Ok(()) => Ok(()),
            Err(e) if e.code == ErrorCode::NotSupported => Err(Problem::new(
                backend_reason::IN_USE,
                format!(
                    "{}; the backend still stores secret revisions: move or remove them, or annotate {FORCE_DELETE_ANNOTATION}=\"true\" to remove it anyway",
                    e.message
                ),
            )),
            Err(e) => Err(Problem::new(reason::JUJU_ERROR, e.to_string())),
        }
    }
    .await;
    match result {
        Ok(()) => {
            ctx.publish(
                b,
                EventType::Normal,
                "Deleted",
                "Delete",
                Some(format!("removed secret backend {name:?}")),
            );
            Ok(Action::await_change())
        }
        Err(problem) => {
            let mut status = previous.clone();
            status.conditions = vec![condition(
                b,
                &previous,
                false,
                problem.reason,
                &problem.message,
            )];
            if previous.conditions.first().map(|c| &c.message) != Some(&problem.message) {
                ctx.publish(
                    b,
                    EventType::Warning,
                    problem.reason,
                    "Delete",
                    Some(problem.message.clone()),
                );
            }
            write_status(b, ctx, &previous, status).await?;
            Err(Error::Cleanup(problem.message))
        }
    }
}

fn condition(
    b: &JujuSecretBackend,
    previous: &JujuSecretBackendStatus,
    ok: bool,
    reason: &str,
    message: &str,
) -> Condition {
    outcome::ready_condition(
        b.metadata.generation,
        &previous.conditions,
        ok,
        reason,
        message,
    )
}

async fn write_status(
    b: &JujuSecretBackend,
    ctx: &Context,
    previous: &JujuSecretBackendStatus,
    status: JujuSecretBackendStatus,
) -> Result<(), Error> {
    let api: Api<JujuSecretBackend> = Api::all(ctx.client.clone());
    outcome::write_status(
        &ctx.kube_writes,
        &api,
        &b.name_any(),
        b.status.is_some(),
        previous,
        &status,
    )
    .await
}

/// Backends that read a given Secret, for the Secret watch.
pub fn reading_secret(
    backends: &Store<JujuSecretBackend>,
    namespace: Option<String>,
    name: &str,
) -> Vec<Arc<JujuSecretBackend>> {
    backends
        .state()
        .into_iter()
        .filter(|b| {
            b.spec
                .config_secret_ref
                .as_ref()
                .is_some_and(|r| Some(&r.namespace) == namespace.as_ref() && r.name == name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotate_interval_follows_juju_rule() {
        assert_eq!(rotate_interval(None), Ok(None));
        assert_eq!(rotate_interval(Some("0")), Ok(Some(Duration::ZERO)));
        assert_eq!(
            rotate_interval(Some("24h")),
            Ok(Some(Duration::from_secs(86_400)))
        );
        assert_eq!(
            rotate_interval(Some("1h")),
            Ok(Some(Duration::from_secs(3600)))
        );
        let err = rotate_interval(Some("10m")).unwrap_err();
        assert!(err.contains("less than 1h"), "{err}");
        assert!(rotate_interval(Some("soon")).is_err());
    }

    #[test]
    fn config_mac_changes_with_a_token_and_hides_it() {
        let mut a = BackendConfig::default();
        a.insert("endpoint", "https://vault:8200");
        a.insert("token", "s.first-token");
        let mut b = a.clone();
        b.insert("token", "s.second-token");
        let key = b"operator-key";
        assert_ne!(config_mac(key, &a, None), config_mac(key, &b, None));
        assert_eq!(config_mac(key, &a, None), config_mac(key, &a, None));
        assert!(!config_mac(key, &a, None).contains("first"));
        assert_ne!(
            config_mac(key, &a, None),
            config_mac(key, &a, Some(Duration::from_secs(3600)))
        );
    }

    #[test]
    fn unreachable_and_in_use_errors_get_their_reasons() {
        let p = item_problem(juju_client::ApiError::new(
            "",
            "backend not reachable: dial tcp: connection refused",
        ));
        assert_eq!(p.reason, backend_reason::BACKEND_UNREACHABLE);
        assert!(p.transient);
        let p = item_problem(juju_client::ApiError::new(
            "not valid",
            "cannot rename a secret backend that is in use",
        ));
        assert_eq!(p.reason, backend_reason::IN_USE);
        let p = item_problem(juju_client::ApiError::new(
            "already exists",
            "secret backend \"x\" already exists",
        ));
        assert_eq!(p.reason, reason::CONFLICT);
    }

    #[test]
    fn reading_secret_is_empty_without_backends() {
        let (store, _writer) = kube::runtime::reflector::store::<JujuSecretBackend>();
        assert!(reading_secret(&store, Some("ns".into()), "x").is_empty());
    }
}
