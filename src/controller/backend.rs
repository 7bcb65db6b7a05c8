//! The JujuSecretBackend controller: a vault or kubernetes secret backend on the Juju
//! controller, and the models whose `secret-backend` points at it.
//!
//! Sensitive configuration (`token`, `client-key`, `password`) comes from a watched
//! Kubernetes Secret and is never read back from Juju: a keyed MAC of what was last
//! written tells when it changed. Juju's own status for the backend (`active`/`error`,
//! its message, the number of secrets stored) is mirrored into the status on every
//! refresh. Deleting a backend that still stores revisions waits, with a condition
//! saying so, unless the user asked to force it.
//!
//! Which backend and which model assignments are this object's comes from the operator's
//! ownership record ([`super::ownership`]), never from the status: an add is claimed
//! there before it is sent (and recognized after a lost answer only by the keyed MAC of
//! its type and plain configuration), a model is recorded before its `secret-backend` is
//! pointed here, and cleanup removes only what the record lists.

use std::collections::{BTreeMap, BTreeSet};
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
use super::ownership::BackendEntry;
use super::{Context, Error};
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
    pub const BACKEND_UNREACHABLE: &str = crate::crd::condition::reason::BACKEND_UNREACHABLE;
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
    if super::juju_state::says_backend_unreachable(&text) {
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
    // Rebuilt from the record and from Juju; only Juju's own report of the backend is
    // carried over until this pass lists it again.
    let mut status = JujuSecretBackendStatus {
        observed_generation: b.metadata.generation,
        status: previous.status.clone(),
        message: previous.message.clone(),
        secret_count: previous.secret_count,
        ..JujuSecretBackendStatus::default()
    };
    let outcome = sync(b, bctx, &mut status).await;
    if let Some(entry) = b.uid().and_then(|uid| ctx.ownership.backend_entry(&uid)) {
        status.backend_id = entry.id.clone();
        status.name = Some(entry.name.clone());
        status.config_mac = entry.config_mac.clone();
        status.assigned_models = entry.models.iter().cloned().collect();
    }
    let action = match outcome {
        Ok(()) => {
            ctx.backoff.reset(&key(b));
            // Revisions of a model moved away stay until Juju's drain moves them.
            let message = match status.secret_count {
                Some(n) if n > 0 && status.assigned_models.is_empty() => format!(
                    "in sync; no model assigned, {n} secret revisions still stored here (draining to their models' backends)"
                ),
                _ => "in sync".to_owned(),
            };
            status.conditions = vec![condition(b, &previous, true, reason::SYNCED, &message)];
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
    match write_status(b, ctx, &previous, status).await {
        // Gone although this pass ran with the finalizer in place (a deletion that raced
        // the finalizer being added): clean up now what the pass may have done.
        Err(Error::Kube(kube::Error::Api(e))) if e.code == 404 => {
            let api: Api<JujuSecretBackend> = Api::all(ctx.client.clone());
            outcome::gone_after_status_404(&api, b, e).await?;
            cleanup(b, bctx).await?;
            return Ok(Action::await_change());
        }
        written => written?,
    }
    Ok(action)
}

/// A JujuSecretBackend deleted from the API: if the record still holds its backend or
/// model assignments (a deletion that did not wait for the finalizer, or a finalizer
/// removed by hand), they are cleaned up now, retried with backoff while that fails.
pub fn deleted(b: Arc<JujuSecretBackend>, bctx: Arc<BackendContext>) {
    let Some(uid) = b.uid() else {
        return;
    };
    let what = format!("JujuSecretBackend {}", b.name_any());
    let record = bctx.ctx.clone();
    outcome::clean_up_deleted(
        what,
        bctx.ctx.refresh_interval,
        move || record.ownership.backend_entry(&uid).is_some(),
        move || {
            let (b, bctx) = (b.clone(), bctx.clone());
            async move { cleanup(&b, &bctx).await }
        },
    );
}

/// Keyed MAC of what identifies a backend being added: its type and plain (not
/// sensitive) configuration, which Juju lists without `reveal`.
fn identity_mac(key: &[u8], backend_type: &str, config: &BackendConfig) -> String {
    let plain: BTreeMap<&String, &Value> = config
        .0
        .iter()
        .filter(|(k, _)| !SENSITIVE_KEYS.contains(&k.as_str()))
        .collect();
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(backend_type.as_bytes());
    mac.update(&[0]);
    mac.update(serde_json::to_string(&plain).unwrap_or_default().as_bytes());
    format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
}

fn uid_of(b: &JujuSecretBackend) -> Result<String, Problem> {
    b.uid().ok_or_else(|| {
        Problem::new(
            reason::KUBERNETES_ERROR,
            "the object has no UID yet".to_owned(),
        )
        .transient()
    })
}

fn record_failure(message: String) -> Problem {
    Problem::new(reason::KUBERNETES_ERROR, message).transient()
}

/// This object's backend among those listed, by the ownership record: by the recorded
/// ID, or, while an add is claimed, by the claimed name if its type and plain
/// configuration have the claimed MAC.
fn recorded<'a>(
    listed: &'a [BackendInfo],
    entry: Option<&BackendEntry>,
    key: &[u8],
) -> Option<&'a BackendInfo> {
    let entry = entry?;
    if let Some(id) = &entry.id
        && let Some(found) = listed.iter().find(|i| &i.id == id)
    {
        return Some(found);
    }
    let claimed = entry.adding.as_deref()?;
    listed
        .iter()
        .find(|i| i.name == entry.name && identity_mac(key, &i.backend_type, &i.config) == claimed)
}

/// What Juju holds for a JujuSecretBackend, by the ownership rules.
enum Existing<'a> {
    /// The object's own backend (recorded, or its claimed add recognized).
    Recorded(&'a BackendInfo),
    /// A backend of the spec's name nobody owns, to take over (`adopt: true`).
    Adopt(&'a BackendInfo),
    /// No backend of that name: to add.
    Absent,
}

/// Finds the object's backend among those listed: the recorded one, else one of the
/// spec's name, which is a `Conflict` when another object owns it or `adopt` is off.
fn existing<'a>(
    listed: &'a [BackendInfo],
    entry: Option<&BackendEntry>,
    key: &[u8],
    b: &JujuSecretBackend,
    record: &super::ownership::OwnershipRecord,
) -> Result<Existing<'a>, Problem> {
    if let Some(found) = recorded(listed, entry, key) {
        return Ok(Existing::Recorded(found));
    }
    let name = juju_name(b);
    let Some(other) = listed.iter().find(|i| i.name == name) else {
        return Ok(Existing::Absent);
    };
    match record.owner_of_backend(&other.id) {
        Some(_) => Err(managed_by_another(&name)),
        None if !b.spec.adopt => Err(Problem::new(
            reason::CONFLICT,
            format!(
                "a secret backend named {name:?} already exists in Juju and was not created by this resource; set adopt: true to take it over"
            ),
        )),
        None => Ok(Existing::Adopt(other)),
    }
}

async fn sync(
    b: &JujuSecretBackend,
    bctx: &BackendContext,
    status: &mut JujuSecretBackendStatus,
) -> Result<(), Problem> {
    let ctx = &bctx.ctx;
    let (name, interval) = checked(b)?;
    let config = desired_config(b, ctx).await?;
    let mac = config_mac(&ctx.mac_key, &config, interval);
    let backend_type = type_name(b.spec.backend_type);

    let uid = uid_of(b)?;
    let record = &ctx.ownership;
    let entry = record.backend_entry(&uid);

    let listed = ctx
        .juju
        .list_secret_backends(&[], false)
        .await
        .map_err(SharedFailure::from)?;
    let found = match existing(&listed, entry.as_ref(), &ctx.mac_key, b, record)? {
        Existing::Recorded(found) => {
            // Owned, or a claimed add recognized after its answer was lost.
            record
                .confirm_backend(&uid, &found.id, &found.name)
                .map_err(|_| managed_by_another(&name))?;
            Some(found.clone())
        }
        Existing::Adopt(other) => {
            record
                .confirm_backend(&uid, &other.id, &other.name)
                .map_err(|_| managed_by_another(&name))?;
            record.persist().await.map_err(record_failure)?;
            info!(backend = %name, "adopted secret backend");
            ctx.publish(
                b,
                EventType::Normal,
                "Adopted",
                "Adopt",
                Some(format!("took over secret backend {name:?}")),
            );
            Some(other.clone())
        }
        Existing::Absent => None,
    };
    match found {
        None => {
            record
                .claim_backend(
                    &uid,
                    &name,
                    &identity_mac(&ctx.mac_key, backend_type, &config),
                )
                .map_err(|_| {
                    Problem::new(
                        reason::CONFLICT,
                        format!("another JujuSecretBackend is adding a backend named {name:?}"),
                    )
                })?;
            record.persist().await.map_err(record_failure)?;
            let new = NewBackend {
                name: name.clone(),
                backend_type: backend_type.into(),
                // Juju refuses 0 on add; absent means no rotation.
                token_rotate_interval: interval.filter(|d| !d.is_zero()),
                config: config.clone(),
            };
            // A lost answer keeps the claim; a refusal releases it at once.
            let answer = ctx
                .juju
                .add_secret_backends(&[new])
                .await
                .map_err(SharedFailure::from)?;
            if let Some(Err(e)) = answer.into_iter().next() {
                record.release_backend_claim(&uid);
                return Err(item_problem(e));
            }
            let added = ctx
                .juju
                .list_secret_backends(std::slice::from_ref(&name), false)
                .await
                .map_err(SharedFailure::from)?;
            if let Some(info) = added.iter().find(|i| i.name == name) {
                record
                    .confirm_backend(&uid, &info.id, &name)
                    .map_err(|_| managed_by_another(&name))?;
                record.set_backend_config(&uid, &mac);
            }
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
            if current.backend_type != backend_type {
                return Err(Problem::new(
                    reason::INVALID_SPEC,
                    format!(
                        "backendType cannot change: the Juju backend is {:?}",
                        current.backend_type
                    ),
                ));
            }
            let written = record.backend_entry(&uid).and_then(|e| e.config_mac);
            let (update, changes) =
                backend_update(&current, &name, &config, &mac, written.as_deref(), interval);
            if !changes.is_empty() {
                single(ctx.juju.update_secret_backends(&[update]).await)?;
                record
                    .confirm_backend(&uid, &current.id, &name)
                    .map_err(|_| managed_by_another(&name))?;
                record.set_backend_config(&uid, &mac);
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
    record.persist().await.map_err(record_failure)?;

    // Mirror Juju's view of the backend.
    let listed = ctx
        .juju
        .list_secret_backends(std::slice::from_ref(&name), false)
        .await
        .map_err(SharedFailure::from)?;
    if let Some(info) = listed.into_iter().find(|i| i.name == name) {
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

    assign_models(b, bctx, &uid, &name).await
}

/// The backend's Juju name and token rotation interval, or why the spec is invalid.
fn checked(b: &JujuSecretBackend) -> Result<(String, Option<Duration>), Problem> {
    let name = juju_name(b);
    if name == "internal" || name == "auto" {
        return Err(Problem::new(
            reason::INVALID_SPEC,
            format!("{name:?} is a reserved backend name"),
        ));
    }
    let interval = rotate_interval(b.spec.token_rotate_interval.as_deref())
        .map_err(|m| Problem::new(reason::INVALID_SPEC, m))?;
    Ok((name, interval))
}

/// The update that brings the backend `current` in line with the spec, and what it
/// changes (nothing to send when empty). A configuration whose keyed MAC differs from
/// the one last written (`written`) is sent whole, with removed plain keys reset; one
/// unchanged since is sent again only when Juju's plain keys or interval drifted.
fn backend_update(
    current: &BackendInfo,
    name: &str,
    config: &BackendConfig,
    mac: &str,
    written: Option<&str>,
    interval: Option<Duration>,
) -> (BackendUpdate, Vec<&'static str>) {
    let mut update = BackendUpdate {
        name: current.name.clone(),
        ..Default::default()
    };
    let mut changes = Vec::new();
    if current.name != name {
        update.name_change = Some(name.to_owned());
        changes.push("name");
    }
    if written != Some(mac) {
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
            || current.token_rotate_interval.unwrap_or_default() != interval.unwrap_or_default()
        {
            update.config = Some(config.clone());
            update.token_rotate_interval = Some(interval.unwrap_or(Duration::ZERO));
            changes.push("configuration");
        }
    }
    (update, changes)
}

/// What applying a JujuSecretBackend would do in Juju.
#[derive(Debug, Default)]
pub struct BackendPreview {
    /// The backend's Juju name.
    pub name: String,
    /// The backend would be added, of this type.
    pub create: Option<String>,
    /// An existing backend of that name would be adopted.
    pub adopt: bool,
    /// What an update changes: `name`, `configuration`.
    pub changes: Vec<&'static str>,
    /// Models that would store new secrets here: (model, backend now).
    pub assign: Vec<(String, String)>,
    /// Models the object assigned that would go back to `auto` (`owner/name`).
    pub release: Vec<String>,
    /// Models another JujuSecretBackend assigns (a conflict).
    pub conflicts: Vec<String>,
}

/// What a pass over `b` would do. Reads only, with the same rules as a pass.
pub async fn preview(b: &JujuSecretBackend, ctx: &Context) -> Result<BackendPreview, Problem> {
    let (name, interval) = checked(b)?;
    let config = desired_config(b, ctx).await?;
    let mac = config_mac(&ctx.mac_key, &config, interval);
    let backend_type = type_name(b.spec.backend_type);
    let uid = b.uid();
    let record = &ctx.ownership;
    let entry = uid.as_deref().and_then(|uid| record.backend_entry(uid));
    let listed = ctx
        .juju
        .list_secret_backends(&[], false)
        .await
        .map_err(SharedFailure::from)?;
    let mut out = BackendPreview {
        name: name.clone(),
        ..BackendPreview::default()
    };
    let found = match existing(&listed, entry.as_ref(), &ctx.mac_key, b, record)? {
        Existing::Recorded(found) => Some(found),
        Existing::Adopt(other) => {
            out.adopt = true;
            Some(other)
        }
        Existing::Absent => None,
    };
    match found {
        None => out.create = Some(backend_type.to_owned()),
        Some(current) => {
            if current.backend_type != backend_type {
                return Err(Problem::new(
                    reason::INVALID_SPEC,
                    format!(
                        "backendType cannot change: the Juju backend is {:?}",
                        current.backend_type
                    ),
                ));
            }
            let written = entry.as_ref().and_then(|e| e.config_mac.as_deref());
            out.changes = backend_update(current, &name, &config, &mac, written, interval).1;
        }
    }
    let mut desired = BTreeSet::new();
    for spec in &b.spec.models {
        let model = ctx.models.resolve(spec).await?;
        if record.model_assigned_by_another(uid.as_deref().unwrap_or_default(), &model.uuid) {
            out.conflicts.push(model.qualified_name());
            continue;
        }
        desired.insert(model.uuid.clone());
        let current = model_backend(ctx, &model.uuid).await?;
        if current != name {
            out.assign.push((model.qualified_name(), current));
        }
    }
    for uuid in entry
        .map(|e| e.models)
        .unwrap_or_default()
        .difference(&desired)
    {
        match ctx.juju.secret_backend(uuid).await {
            Ok(current) if current == name => out.release.push(
                ctx.models
                    .resolve(uuid)
                    .await
                    .map_or_else(|_| uuid.clone(), |m| m.qualified_name()),
            ),
            Ok(_) => {}
            Err(e) if SharedFailure::from(&e).kind == FailureKind::ModelNotFound => {}
            Err(e) => return Err(SharedFailure::from(e).into()),
        }
    }
    Ok(out)
}

fn managed_by_another(name: &str) -> Problem {
    Problem::new(
        reason::CONFLICT,
        format!("the secret backend {name:?} is managed by another JujuSecretBackend"),
    )
}

/// Points the listed models at this backend, and models no longer listed back at
/// `auto`. A model another JujuSecretBackend's record holds is a conflict here; a model
/// is recorded before it is pointed here, so a crash never leaves one that no record
/// lists.
async fn assign_models(
    b: &JujuSecretBackend,
    bctx: &BackendContext,
    uid: &str,
    name: &str,
) -> Result<(), Problem> {
    let ctx = &bctx.ctx;
    let record = &ctx.ownership;
    let mut desired = BTreeSet::new();
    let mut problems = Vec::new();
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
        if record.assign_model(uid, &model.uuid).is_err() {
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
        let current = model_backend(ctx, &model.uuid).await?;
        if current != name {
            record.persist().await.map_err(record_failure)?;
            let set = ctx.juju.set_secret_backend(&model.uuid, name).await;
            if let Err(e) = set {
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
    }
    // A model that could not be resolved this pass may still be wanted: release
    // nothing until every entry resolves.
    if !unresolved {
        let assigned = record
            .backend_entry(uid)
            .map(|e| e.models)
            .unwrap_or_default();
        for uuid in assigned.difference(&desired) {
            release_model(ctx, b, uuid, name).await?;
            record.release_model(uid, uuid);
        }
    }
    record.persist().await.map_err(record_failure)?;
    match problems.into_iter().next() {
        Some(p) => Err(p),
        None => Ok(()),
    }
}

/// The backend model `uuid` stores new secrets in now.
async fn model_backend(ctx: &Context, uuid: &str) -> Result<String, Problem> {
    ctx.juju
        .secret_backend(uuid)
        .await
        .map_err(|e| SharedFailure::from(e).into())
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
    let record = &ctx.ownership;
    let Some(uid) = b.uid() else {
        return Ok(Action::await_change());
    };
    // Only what the record lists is this object's to release or remove.
    let Some(entry) = record.backend_entry(&uid) else {
        return Ok(Action::await_change());
    };
    if b.spec.deletion_policy == DeletionPolicy::Retain {
        record.forget(&uid);
        record.persist().await.map_err(Error::Cleanup)?;
        ctx.publish(
            b,
            EventType::Normal,
            "Retained",
            "Delete",
            Some(format!("left secret backend {:?} in Juju", entry.name)),
        );
        return Ok(Action::await_change());
    }
    let force = b
        .annotations()
        .get(FORCE_DELETE_ANNOTATION)
        .is_some_and(|v| v == "true");
    let result: Result<Option<String>, Problem> = async {
        let listed = ctx
            .juju
            .list_secret_backends(&[], false)
            .await
            .map_err(SharedFailure::from)?;
        let found = recorded(&listed, Some(&entry), &ctx.mac_key);
        let name = found.map_or(entry.name.clone(), |f| f.name.clone());
        for uuid in &entry.models {
            release_model(ctx, b, uuid, &name).await?;
            record.release_model(&uid, uuid);
        }
        if found.is_none() {
            return Ok(None);
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
            Ok(()) => Ok(Some(name)),
            Err(e) if e.code == ErrorCode::NotFound => Ok(None),
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
        Ok(removed) => {
            record.forget(&uid);
            record.persist().await.map_err(Error::Cleanup)?;
            if let Some(name) = removed {
                ctx.publish(
                    b,
                    EventType::Normal,
                    "Deleted",
                    "Delete",
                    Some(format!("removed secret backend {name:?}")),
                );
            }
            Ok(Action::await_change())
        }
        Err(problem) => {
            // Keep the models released so far out of the record.
            record.persist().await.map_err(Error::Cleanup)?;
            let previous = b.status.clone().unwrap_or_default();
            let mut status = previous.clone();
            status.assigned_models = record
                .backend_entry(&uid)
                .map(|e| e.models.into_iter().collect())
                .unwrap_or_default();
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

    fn listed(id: &str, name: &str, endpoint: &str, token: Option<&str>) -> BackendInfo {
        let mut config = BackendConfig::default();
        config.insert("endpoint", endpoint);
        if let Some(t) = token {
            config.insert("token", t);
        }
        BackendInfo {
            id: id.into(),
            name: name.into(),
            backend_type: "vault".into(),
            token_rotate_interval: None,
            config,
            num_secrets: 0,
            status: "active".into(),
            message: None,
            error: None,
        }
    }

    #[test]
    fn only_the_recorded_backend_is_this_objects() {
        let key = b"operator-key";
        let mut desired = BackendConfig::default();
        desired.insert("endpoint", "https://vault:8200");
        desired.insert("token", "s.token");
        let claim = BackendEntry {
            name: "vault".into(),
            adding: Some(identity_mac(key, "vault", &desired)),
            ..BackendEntry::default()
        };
        // Juju lists it without the token: recognized by type and plain keys.
        let same = [listed("id-1", "vault", "https://vault:8200", None)];
        assert_eq!(
            recorded(&same, Some(&claim), key).map(|i| i.id.as_str()),
            Some("id-1")
        );
        // A person's backend of the claimed name with other configuration is not ours.
        let other = [listed("id-2", "vault", "https://people:8200", None)];
        assert!(recorded(&other, Some(&claim), key).is_none());
        // Without an entry nothing is ours, whatever its name.
        assert!(recorded(&same, None, key).is_none());
        // An owned backend is found by its ID, renamed or not.
        let owned = BackendEntry {
            name: "vault".into(),
            id: Some("id-1".into()),
            ..BackendEntry::default()
        };
        let renamed = [
            listed("id-2", "vault", "https://vault:8200", None),
            listed("id-1", "renamed", "https://elsewhere:8200", None),
        ];
        assert_eq!(
            recorded(&renamed, Some(&owned), key).map(|i| i.name.as_str()),
            Some("renamed")
        );
    }

    #[test]
    fn reading_secret_is_empty_without_backends() {
        let (store, _writer) = kube::runtime::reflector::store::<JujuSecretBackend>();
        assert!(reading_secret(&store, Some("ns".into()), "x").is_empty());
    }
}
