//! The JujuSecret controller: one Juju user secret per JujuSecret.
//!
//! A pass reads the inputs (tenancy, model, content), compares them with what the
//! model's shared listing says about the secret, applies the difference through the
//! per-model write batcher, and writes the status with server-side apply. Juju
//! problems become a `Ready=False` condition with a specific reason and a Warning
//! event, never a crash loop; transient ones are retried with backoff.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, ResourceExt};
use tracing::{info, instrument, warn};

use super::content::{ContentProblem, checksum_mac, content_mac, desired_content};
use super::juju_state::{FailureKind, SecretSummary, SharedFailure};
use super::mutants;
use super::outcome::{self, Problem};
use super::ownership::{self, Found, Ownership, RecordError, SecretEntry};
use super::{Context, Error, now_rfc3339};
use crate::crd::condition::{Condition, READY, reason};
use crate::crd::secret::{DeletionPolicy, JujuSecret, JujuSecretStatus, ManagementPolicy};
use juju_client::{
    ErrorCode, NewSecret, SecretFilter, SecretRemoval, SecretSelector, SecretUpdate, SecretUri,
};

/// Finalizer that lets the operator remove the Juju secret before the object goes.
pub const FINALIZER: &str = "secrets.juju.is/cleanup";

impl From<ContentProblem> for Problem {
    fn from(p: ContentProblem) -> Self {
        match p {
            ContentProblem::Kube(e) => {
                Problem::new(reason::KUBERNETES_ERROR, e.to_string()).transient()
            }
            p if p.is_source_missing() => Problem::new(reason::SOURCE_NOT_FOUND, p.to_string()),
            p => Problem::new(reason::INVALID_CONTENT, p.to_string()),
        }
    }
}

/// A successful pass.
struct Synced {
    model_uuid: String,
    uri: Option<SecretUri>,
    revision: Option<u64>,
    content_mac: Option<String>,
    auto_prune: Option<bool>,
    reason: &'static str,
    message: String,
    /// Whether Juju was written.
    wrote: bool,
    /// Whether the secret is this resource's own (created or adopted).
    owned: bool,
}

/// Entry point for the kube-runtime controller.
pub async fn reconcile(js: Arc<JujuSecret>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = js.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<JujuSecret> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, js, |event| async {
        match event {
            Finalizer::Apply(js) => apply(&js, &ctx).await,
            Finalizer::Cleanup(js) => cleanup(&js, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// The Juju name of the secret.
fn juju_name(js: &JujuSecret) -> String {
    js.spec.name.clone().unwrap_or_else(|| js.name_any())
}

/// Shortest per-object refresh interval: a tiny value would make the operator re-read
/// Juju in a loop.
const MIN_REFRESH: Duration = Duration::from_secs(5);

fn refresh_interval(js: &JujuSecret, ctx: &Context) -> Duration {
    js.spec
        .refresh_interval
        .as_deref()
        .and_then(|s| humantime::parse_duration(s).ok())
        .filter(|d| !d.is_zero())
        .map(|d| d.max(MIN_REFRESH))
        .unwrap_or(ctx.refresh_interval)
}

#[instrument(skip_all, fields(namespace = cached.namespace().unwrap_or_default(), name = cached.name_any()))]
async fn apply(cached: &JujuSecret, ctx: &Context) -> Result<Action, Error> {
    let key = object_key(cached);
    let js = cached;
    // The last status written: output only. It feeds the next status (condition
    // timestamps, the drift event), never a decision about Juju.
    let previous = js.status.clone().unwrap_or_default();
    // The status this pass builds on, plus the model once a create was attempted (a
    // failure status then still names the model).
    let mut base = previous.clone();
    let outcome = sync(js, ctx, &previous, &mut base).await;
    let previous = base;
    let interval = refresh_interval(js, ctx);
    let (status, action) = match outcome {
        Ok(synced) => {
            ctx.backoff.reset(&key);
            let status = synced_status(js, &previous, &synced);
            (status, Action::requeue(interval))
        }
        Err(problem) => {
            let delay = if problem.transient {
                ctx.backoff.next(&key)
            } else {
                interval
            };
            let changed = outcome::ready_changes(&previous.conditions, &problem);
            if changed {
                warn!(reason = problem.reason, message = %problem.message, "JujuSecret not synced");
                ctx.publish(
                    js,
                    EventType::Warning,
                    problem.reason,
                    "Sync",
                    Some(problem.message.clone()),
                );
            }
            (
                problem_status(js, &previous, &problem),
                Action::requeue(delay),
            )
        }
    };
    write_status(js, ctx, &previous, status).await?;
    Ok(action)
}

async fn sync(
    js: &JujuSecret,
    ctx: &Context,
    previous: &JujuSecretStatus,
    base: &mut JujuSecretStatus,
) -> Result<Synced, Problem> {
    let namespace = js.namespace().unwrap_or_default();
    let spec = &js.spec;
    let label = juju_name(js);
    let uid = js.uid().unwrap_or_default();

    // Tenancy comes first: a forbidden object causes no call on its model.
    let precheck = ctx
        .policy
        .precheck(&namespace, &spec.model, &ctx.juju.options().username);
    if precheck == Some(false) {
        return Err(forbidden(&namespace, &spec.model));
    }
    let model = ctx.models.resolve(&spec.model).await?;
    if precheck.is_none() && !ctx.policy.allows_model(&namespace, &model) {
        return Err(forbidden(&namespace, &spec.model));
    }

    let observe_only = spec.management_policy == ManagementPolicy::ObserveOnly;
    let content = if observe_only {
        None
    } else {
        let content = desired_content(&ctx.client, js, super::FIELD_MANAGER).await?;
        let limits = ctx
            .juju
            .model_content_limits(&model.uuid)
            .await
            .map_err(SharedFailure::from)?;
        content
            .validate(limits)
            .map_err(|e| Problem::new(reason::INVALID_CONTENT, e.to_string()))?;
        Some(content)
    };
    let mac = content.as_ref().map(|c| content_mac(&ctx.mac_key, c));

    let interval = refresh_interval(js, ctx);
    let listing = ctx.listings.get(&model.uuid, interval).await?;

    // Observe: what the record says this object owns or claims, and what Juju holds.
    let entry = ctx.ownership.entry(&uid).filter(|e| e.model == model.uuid);
    let recorded_uri = entry
        .as_ref()
        .and_then(|e| e.uri.as_deref())
        .and_then(|id| SecretUri::parse(id).ok());
    // While a create's outcome is unknown, its secret carries the claimed name (the
    // spec's name may have changed since).
    let lookup_name = entry
        .as_ref()
        .filter(|e| e.is_claim())
        .map_or_else(|| label.clone(), |e| e.name.clone());
    let by_uri = recorded_uri
        .as_ref()
        .and_then(|uri| listing.by_uri(uri))
        .cloned();
    let by_name = match by_uri {
        Some(_) => None,
        None => listing.by_label(&lookup_name).cloned(),
    };
    // Not held across the Juju writes below: the operator's own records of what it
    // created copy the listing while any reader still holds it.
    drop(listing);
    let found = match (&by_uri, &by_name) {
        (Some(_), _) => Found::ByRecordedUri,
        (None, None) => Found::Nothing,
        (None, Some(s)) => Found::ByName {
            latest_revision: s.latest_revision,
            content_mac: found_content_mac(ctx, &model.uuid, s, entry.as_ref()).await?,
            owned_by_another: ctx
                .ownership
                .owner_of(&model.uuid, &s.uri.short())
                .is_some_and(|owner| owner != uid),
        },
    };
    let previously_owned = entry.as_ref().is_some_and(|e| !e.is_claim());
    let applied_prune_before = entry.as_ref().and_then(|e| e.auto_prune);

    // Decide who the secret belongs to (the one rule, shared with cleanup).
    let ownership = ownership::decide(&ownership::Facts {
        entry: entry.as_ref(),
        found,
        adopt: spec.adopt,
        observe_only,
        allowed: true,
    });
    let found = by_uri.or(by_name);
    let mut adopted = false;
    let current = match (ownership, found) {
        (Ownership::ConflictOwnedByAnother, Some(found)) => {
            return Err(Problem::new(
                reason::CONFLICT,
                format!(
                    "the Juju secret named {:?} ({}) in model {} is managed by another JujuSecret",
                    found.label.as_deref().unwrap_or_default(),
                    found.uri,
                    model.qualified_name()
                ),
            ));
        }
        (Ownership::ConflictNotOurs, Some(found)) => {
            return Err(Problem::new(
                reason::CONFLICT,
                format!(
                    "a Juju secret named {:?} ({}) already exists in model {} and was not created by this resource; set spec.adopt to take it over",
                    found.label.as_deref().unwrap_or_default(),
                    found.uri,
                    model.qualified_name()
                ),
            ));
        }
        (Ownership::Recovered | Ownership::Adopt, Some(found)) => {
            let name = found.label.clone().unwrap_or_else(|| label.clone());
            if ctx
                .ownership
                .confirm(&uid, &model.uuid, &name, &found.uri.short())
                .is_err()
            {
                return Err(Problem::new(
                    reason::CONFLICT,
                    format!(
                        "the Juju secret {} in model {} is managed by another JujuSecret",
                        found.uri,
                        model.qualified_name()
                    ),
                )
                .transient());
            }
            adopted = ownership == Ownership::Adopt;
            Some(found)
        }
        (Ownership::Owned | Ownership::Observed, Some(found)) => Some(found),
        _ => None,
    };
    let owned = !observe_only || previously_owned;

    let Some(current) = current else {
        if observe_only {
            return Err(Problem::new(
                reason::NOT_FOUND,
                format!(
                    "no Juju secret named {label:?} in model {}",
                    model.qualified_name()
                ),
            ));
        }
        let content = content.unwrap_or_default();
        if spec.suspend {
            return Ok(Synced {
                model_uuid: model.uuid,
                uri: None,
                revision: None,
                content_mac: previous.content_mac.clone(),
                auto_prune: applied_prune_before,
                reason: reason::SUSPENDED,
                message: "the secret does not exist in Juju; not created while suspended".into(),
                wrote: false,
                owned: previously_owned,
            });
        }
        // Claim the name first (made durable before the bulk create goes out): if the
        // operator dies after Juju creates the secret but before its URI is recorded,
        // the next pass knows the secret is its own.
        let claimed_mac = content_mac(&ctx.mac_key, &content);
        match ctx.ownership.claim(&uid, &model.uuid, &label, &claimed_mac) {
            Ok(()) => {}
            Err(RecordError::Held | RecordError::OwnedByAnother) => {
                return Err(Problem::new(
                    reason::CONFLICT,
                    format!(
                        "another JujuSecret is creating a Juju secret named {label:?} in model {}",
                        model.qualified_name()
                    ),
                )
                .transient());
            }
            Err(RecordError::Full) => {
                return Err(Problem::new(
                    reason::JUJU_UNAVAILABLE,
                    "too many Juju secrets being created at once; waiting",
                )
                .transient());
            }
        }
        base.model_uuid = Some(model.uuid.clone());

        let checksum = content.juju_checksum();
        if mutants::active(mutants::LOG_VALUES) {
            for (key, value) in content.iter() {
                info!(key, value = %String::from_utf8_lossy(value.expose()), "creating");
            }
        }
        let created = ctx
            .writes
            .create(
                &model.uuid,
                NewSecret {
                    label: Some(label.clone()),
                    description: spec.description.clone(),
                    content,
                },
            )
            .await;
        let uri = match created {
            Ok(Ok(uri)) => uri,
            // The outcome is unknown (the answer was lost): keep the claim, read Juju
            // again, and let the next pass recognize the secret if it was created.
            Err(failure) => {
                ctx.listings.invalidate(&model.uuid).await;
                // Refused outright (no permission): nothing was created.
                if matches!(
                    failure.kind,
                    FailureKind::Unauthorized | FailureKind::InvalidContent
                ) {
                    release_claim(ctx, &uid).await;
                }
                return Err(failure.into());
            }
            Ok(Err(e)) if e.code == ErrorCode::AlreadyExists => {
                // Someone else created a secret of that name since the listing was
                // read. The refusal is definite: the claim goes at once, so nothing
                // can later take that secret for this object's own.
                if !mutants::active(mutants::KEEP_REFUSED_CLAIM) {
                    release_claim(ctx, &uid).await;
                }
                ctx.listings.invalidate(&model.uuid).await;
                return Err(Problem::new(
                    reason::CONFLICT,
                    format!(
                        "a Juju secret named {label:?} appeared in model {} while this resource was creating it: {}",
                        model.qualified_name(),
                        e.message
                    ),
                )
                .transient());
            }
            Ok(Err(e)) => {
                // Juju refused: nothing was created.
                release_claim(ctx, &uid).await;
                return Err(Problem::new(reason::JUJU_ERROR, e.to_string()));
            }
        };
        // The create was answered: the secret is this object's own. The confirmation
        // reaches the record's ConfigMap before the next Juju write goes out.
        match ctx
            .ownership
            .confirm(&uid, &model.uuid, &label, &uri.short())
        {
            Ok(()) => ctx.ownership.set_content(&uid, 1, &claimed_mac),
            Err(e) => {
                warn!(secret = %uri, error = ?e, "a secret just created is recorded for another object")
            }
        }
        ctx.listings
            .record(
                &model.uuid,
                SecretSummary {
                    uri: uri.clone(),
                    label: Some(label.clone()),
                    description: spec.description.clone(),
                    latest_revision: 1,
                    checksum: Some(checksum),
                    applications: Default::default(),
                },
            )
            .await;
        // Juju's create takes no auto-prune flag; with one revision there is nothing
        // to prune, so the flag goes out with the first content update instead of in
        // a call of its own.
        info!(secret = %uri, model = %model.uuid, "created Juju secret");
        ctx.publish(
            js,
            EventType::Normal,
            "Created",
            "Create",
            Some(format!(
                "created Juju secret {label:?} ({uri}) in model {}",
                model.qualified_name()
            )),
        );
        return Ok(Synced {
            model_uuid: model.uuid,
            uri: Some(uri),
            revision: Some(1),
            content_mac: mac,
            auto_prune: None,
            reason: reason::SYNCED,
            // The same message as the passes that follow, so the next drift check
            // finds nothing to write (the Created event tells of the create).
            message: "in sync".into(),
            wrote: true,
            owned: true,
        });
    };

    if adopted {
        ctx.publish(
            js,
            EventType::Normal,
            "Adopted",
            "Adopt",
            Some(format!(
                "took over existing Juju secret {label:?} ({})",
                current.uri
            )),
        );
    }

    let observed = |message: &str| Synced {
        model_uuid: model.uuid.clone(),
        uri: Some(current.uri.clone()),
        revision: Some(current.latest_revision),
        content_mac: previous.content_mac.clone(),
        auto_prune: applied_prune_before,
        reason: reason::SYNCED,
        message: message.to_owned(),
        wrote: false,
        owned,
    };
    match spec.management_policy {
        ManagementPolicy::ObserveOnly => {
            return Ok(observed("observed; the operator never writes this secret"));
        }
        ManagementPolicy::CreateOnly => {
            return Ok(observed(
                "exists in Juju; the operator does not overwrite it",
            ));
        }
        ManagementPolicy::Full => {}
    }
    let content = content.unwrap_or_default();
    let desired_checksum = content.juju_checksum();

    let mut update = SecretUpdate::of(SecretSelector::Uri(current.uri.clone()));
    let mut changes = Vec::new();
    if current.label.as_deref() != Some(label.as_str()) {
        update.label = Some(label.clone());
        changes.push("name");
    }
    if let Some(description) = &spec.description
        && current.description.as_ref() != Some(description)
    {
        update.description = Some(description.clone());
        changes.push("description");
    }
    // Juju 3.6 reports a checksum; before it, the record knows the content of the
    // revision the operator last wrote or read, and only a new revision means a change.
    let desired_mac = content_mac(&ctx.mac_key, &content);
    let content_differs = match (
        &current.checksum,
        ctx.ownership.content_at(&uid, current.latest_revision),
    ) {
        (Some(checksum), _) => *checksum != desired_checksum,
        (None, Some(known)) => known != desired_mac,
        (None, None) => {
            let differs = juju_content_differs(ctx, &model.uuid, &current.uri, &content).await?;
            if !differs {
                ctx.ownership
                    .set_content(&uid, current.latest_revision, &desired_mac);
            }
            differs
        }
    };
    if content_differs && !mutants::active(mutants::SKIP_CONTENT_UPDATE) {
        update.content = Some(content);
        changes.push("content");
    }
    // Every new revision carries the flag; a changed flag alone is sent once it was
    // applied before (a secret that never had a second revision has nothing to prune).
    if content_differs || applied_prune_before.is_some_and(|applied| applied != spec.auto_prune) {
        update.auto_prune = Some(spec.auto_prune);
    }
    let applied_prune = if update.auto_prune.is_some() {
        Some(spec.auto_prune)
    } else {
        applied_prune_before
    };
    let drift = content_differs
        && previous.content_mac.is_some()
        && previous.content_mac == mac
        && recorded_uri.as_ref() == Some(&current.uri);

    if spec.suspend {
        let message = if changes.is_empty() {
            "suspended; Juju matches the spec".to_owned()
        } else {
            format!(
                "suspended; Juju differs from the spec in: {}",
                changes.join(", ")
            )
        };
        return Ok(Synced {
            reason: reason::SUSPENDED,
            ..observed(&message)
        });
    }
    if update.label.is_none()
        && update.description.is_none()
        && update.content.is_none()
        && update.auto_prune.is_none()
    {
        let mut synced = observed("in sync");
        synced.content_mac = mac;
        return Ok(synced);
    }

    let sent_prune = update.auto_prune;
    match ctx.writes.update(&model.uuid, update).await? {
        Ok(()) => {}
        Err(e) if e.code == ErrorCode::AlreadyExists => {
            return Err(Problem::new(
                reason::CONFLICT,
                format!("cannot rename to {label:?}: {}", e.message),
            ));
        }
        Err(e) if e.code == ErrorCode::NotFound => {
            ctx.listings.invalidate(&model.uuid).await;
            return Err(Problem::new(reason::JUJU_ERROR, e.to_string()).transient());
        }
        Err(e) => return Err(Problem::new(reason::JUJU_ERROR, e.to_string())),
    }
    let revision = current.latest_revision + u64::from(content_differs);
    if content_differs {
        ctx.ownership.set_content(&uid, revision, &desired_mac);
    }
    if let Some(prune) = sent_prune {
        ctx.ownership.set_auto_prune(&uid, prune);
    }
    ctx.listings
        .record(
            &model.uuid,
            SecretSummary {
                uri: current.uri.clone(),
                label: Some(label.clone()),
                description: spec.description.clone().or(current.description.clone()),
                latest_revision: revision,
                checksum: Some(desired_checksum),
                applications: current.applications.clone(),
            },
        )
        .await;
    if drift {
        ctx.publish(
            js,
            EventType::Warning,
            "DriftCorrected",
            "Update",
            Some(format!(
                "the content of Juju secret {label:?} ({}) was changed outside the operator; restored as revision {revision}",
                current.uri
            )),
        );
    }
    if !changes.is_empty() {
        let what = changes.join(", ");
        let reason = if changes == ["name"] {
            "Renamed"
        } else {
            "Updated"
        };
        info!(secret = %current.uri, changed = %what, "updated Juju secret");
        ctx.publish(
            js,
            EventType::Normal,
            reason,
            "Update",
            Some(format!(
                "updated {what} of Juju secret {label:?} ({}); revision {revision}",
                current.uri
            )),
        );
    }
    Ok(Synced {
        model_uuid: model.uuid,
        uri: Some(current.uri),
        revision: Some(revision),
        content_mac: mac,
        auto_prune: applied_prune,
        reason: reason::SYNCED,
        message: "in sync".into(),
        wrote: true,
        owned: true,
    })
}

/// Drops the object's claim after Juju definitely refused its create, and makes that
/// durable at once: a claim brought back by a restart could otherwise take a person's
/// secret of the same name and content for the object's own.
async fn release_claim(ctx: &Context, uid: &str) {
    ctx.ownership.release_claim(uid);
    if let Err(e) = ctx.ownership.persist().await {
        warn!(error = %e, "cannot record the release of a create claim yet; it goes with the next write");
    }
}

/// The keyed MAC of a secret found by name, when it could be the one this object's
/// claim was creating (first revision): from Juju's checksum where sent, otherwise from
/// the content read back. `None` when it cannot be the claimed secret.
async fn found_content_mac(
    ctx: &Context,
    model_uuid: &str,
    found: &SecretSummary,
    entry: Option<&SecretEntry>,
) -> Result<Option<String>, Problem> {
    if found.latest_revision != 1 || !entry.is_some_and(SecretEntry::is_claim) {
        return Ok(None);
    }
    if let Some(checksum) = &found.checksum {
        return Ok(Some(checksum_mac(&ctx.mac_key, checksum)));
    }
    let content = read_content(ctx, model_uuid, &found.uri).await?;
    Ok(Some(content_mac(&ctx.mac_key, &content)))
}

/// Reads a secret's content (needs model admin): for controllers older than Juju 3.6,
/// which report no checksum.
async fn read_content(
    ctx: &Context,
    model_uuid: &str,
    uri: &SecretUri,
) -> Result<juju_client::SecretContent, Problem> {
    let filter = SecretFilter {
        uri: Some(uri.clone()),
        ..SecretFilter::default()
    };
    let listed = ctx
        .juju
        .list_secrets(model_uuid, &filter, true)
        .await
        .map_err(SharedFailure::from)?;
    match listed.into_iter().next().and_then(|s| s.value) {
        Some(Ok(content)) => Ok(content),
        Some(Err(e)) => Err(Problem::new(
            reason::JUJU_ERROR,
            format!("cannot read the content of {uri} to compare it: {e}"),
        )
        .transient()),
        None => Err(Problem::new(
            reason::JUJU_ERROR,
            format!("Juju did not return the content of {uri} to compare it"),
        )
        .transient()),
    }
}

/// For controllers older than Juju 3.6, which report no checksum: compare the content
/// itself (needs model admin).
async fn juju_content_differs(
    ctx: &Context,
    model_uuid: &str,
    uri: &SecretUri,
    desired: &juju_client::SecretContent,
) -> Result<bool, Problem> {
    Ok(read_content(ctx, model_uuid, uri).await? != *desired)
}

fn forbidden(namespace: &str, model: &str) -> Problem {
    Problem::new(
        reason::FORBIDDEN,
        format!(
            "the tenancy policy does not allow namespace {namespace:?} to use Juju model {model:?}"
        ),
    )
}

fn object_key(js: &JujuSecret) -> String {
    format!("{}/{}", js.namespace().unwrap_or_default(), js.name_any())
}

fn ready_condition(
    js: &JujuSecret,
    previous: &JujuSecretStatus,
    ok: bool,
    reason: &str,
    message: &str,
) -> Condition {
    outcome::ready_condition(
        js.metadata.generation,
        &previous.conditions,
        ok,
        reason,
        message,
    )
}

fn synced_status(js: &JujuSecret, previous: &JujuSecretStatus, s: &Synced) -> JujuSecretStatus {
    let ok = s.reason == reason::SYNCED;
    let condition = ready_condition(js, previous, ok, s.reason, &s.message);
    let condition_changed =
        previous.conditions.iter().find(|c| c.type_ == READY) != Some(&condition);
    JujuSecretStatus {
        secret_id: s
            .uri
            .as_ref()
            .map(SecretUri::short)
            .or(previous.secret_id.clone()),
        secret_uri: s
            .uri
            .as_ref()
            .map(|u| u.full(&s.model_uuid))
            .or(previous.secret_uri.clone()),
        model_uuid: Some(s.model_uuid.clone()),
        revision: s.revision.or(previous.revision),
        observed_generation: js.metadata.generation,
        last_sync_time: if s.wrote || condition_changed || previous.last_sync_time.is_none() {
            Some(now_rfc3339())
        } else {
            previous.last_sync_time.clone()
        },
        content_mac: s.content_mac.clone(),
        owned: Some(s.owned),
        auto_prune: s.auto_prune,
        pending_create: None,
        conditions: vec![condition],
    }
}

fn problem_status(js: &JujuSecret, previous: &JujuSecretStatus, p: &Problem) -> JujuSecretStatus {
    JujuSecretStatus {
        observed_generation: js.metadata.generation,
        conditions: vec![ready_condition(js, previous, false, p.reason, &p.message)],
        ..previous.clone()
    }
}

/// Writes the status with server-side apply, unless nothing changed.
async fn write_status(
    js: &JujuSecret,
    ctx: &Context,
    previous: &JujuSecretStatus,
    status: JujuSecretStatus,
) -> Result<(), Error> {
    let namespace = js.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<JujuSecret> = Api::namespaced(ctx.client.clone(), &namespace);
    outcome::write_status(
        &ctx.kube_writes,
        &api,
        &js.name_any(),
        js.status.is_some(),
        previous,
        &status,
    )
    .await
}

#[instrument(skip_all, fields(namespace = js.namespace().unwrap_or_default(), name = js.name_any()))]
async fn cleanup(js: &JujuSecret, ctx: &Context) -> Result<Action, Error> {
    let spec = &js.spec;
    let label = juju_name(js);
    if spec.deletion_policy == DeletionPolicy::Retain
        || spec.management_policy == ManagementPolicy::ObserveOnly
    {
        ctx.publish(
            js,
            EventType::Normal,
            "Retained",
            "Delete",
            Some(format!("left Juju secret {label:?} in place")),
        );
        forget(ctx, &js.uid().unwrap_or_default()).await?;
        return Ok(Action::await_change());
    }
    let status = js.status.clone().unwrap_or_default();
    let uid = js.uid().unwrap_or_default();
    // Only what the record says this object owns or claims is ever removed; the status
    // says nothing about ownership.
    let Some(entry) = ctx.ownership.entry(&uid) else {
        return Ok(Action::await_change());
    };
    let model_uuid = entry.model.clone();
    let namespace = js.namespace().unwrap_or_default();
    let allowed = match ctx.model_allowed(&namespace, &model_uuid).await {
        Ok(allowed) => allowed,
        // The model is gone, and the secret with it.
        Err(f) if f.kind == FailureKind::ModelNotFound => {
            forget(ctx, &uid).await?;
            return Ok(Action::await_change());
        }
        Err(f) => return Err(Error::Cleanup(f.message)),
    };
    if !allowed {
        ctx.publish(
            js,
            EventType::Warning,
            reason::FORBIDDEN,
            "Delete",
            Some("the tenancy policy no longer allows this namespace to use the model; the Juju secret was left in place".into()),
        );
        forget(ctx, &uid).await?;
        return Ok(Action::await_change());
    }
    let selector = match entry.uri.as_deref().map(SecretUri::parse) {
        Some(Ok(uri)) => SecretSelector::Uri(uri),
        Some(Err(_)) => {
            forget(ctx, &uid).await?;
            return Ok(Action::await_change());
        }
        // A create whose outcome is unknown (the operator stopped before the answer):
        // the secret of the claimed name, only if the one ownership rule recognizes it
        // as the one being created (first revision, the claimed content).
        None => {
            let listing = ctx
                .listings
                .get(&model_uuid, Duration::ZERO)
                .await
                .map_err(|f| Error::Cleanup(f.message))?;
            let found = listing.by_label(&entry.name).cloned();
            drop(listing);
            let Some(found) = found else {
                forget(ctx, &uid).await?;
                return Ok(Action::await_change());
            };
            let content_mac = found_content_mac(ctx, &model_uuid, &found, Some(&entry))
                .await
                .map_err(|p| Error::Cleanup(p.message))?;
            let decision = ownership::decide(&ownership::Facts {
                entry: Some(&entry),
                found: Found::ByName {
                    latest_revision: found.latest_revision,
                    content_mac,
                    owned_by_another: ctx
                        .ownership
                        .owner_of(&model_uuid, &found.uri.short())
                        .is_some_and(|owner| owner != uid),
                },
                adopt: false,
                observe_only: false,
                allowed: true,
            });
            if !decision.may_write() && !mutants::active(mutants::CLEANUP_TRUSTS_CLAIM) {
                forget(ctx, &uid).await?;
                return Ok(Action::await_change());
            }
            SecretSelector::Uri(found.uri)
        }
    };
    let removal = SecretRemoval {
        secret: selector.clone(),
        revisions: None,
    };
    let result = if mutants::active(mutants::DELETE_LEAVES_SECRET) {
        Ok(vec![Ok(())])
    } else {
        ctx.juju.remove_secrets(&model_uuid, &[removal]).await
    };
    let outcome = match result {
        Ok(results) => results.into_iter().next().unwrap_or(Ok(())),
        Err(e) => {
            let failure = SharedFailure::from(&e);
            if failure.kind == FailureKind::ModelNotFound {
                // The model is gone, and the secret with it.
                Ok(())
            } else {
                let problem = Problem::from(failure);
                let previous = status.clone();
                let mut status = problem_status(js, &previous, &problem);
                status.conditions[0].message =
                    format!("cannot remove the Juju secret yet: {}", problem.message);
                ctx.publish(
                    js,
                    EventType::Warning,
                    problem.reason,
                    "Delete",
                    Some(problem.message.clone()),
                );
                write_status(js, ctx, &previous, status).await?;
                return Err(Error::Cleanup(problem.message));
            }
        }
    };
    match outcome {
        Ok(()) => {}
        Err(e) if e.code == ErrorCode::NotFound => {}
        Err(e) => {
            ctx.publish(
                js,
                EventType::Warning,
                reason::JUJU_ERROR,
                "Delete",
                Some(e.to_string()),
            );
            return Err(Error::Cleanup(e.to_string()));
        }
    }
    if let SecretSelector::Uri(uri) = &selector {
        ctx.listings.forget(&model_uuid, uri).await;
    }
    forget(ctx, &uid).await?;
    ctx.publish(
        js,
        EventType::Normal,
        "Deleted",
        "Delete",
        Some(format!("removed Juju secret {label:?}")),
    );
    Ok(Action::await_change())
}

/// Drops the object's entry from the record and makes that durable before the finalizer
/// goes: a later object may then adopt the secret the deleted one left behind.
async fn forget(ctx: &Context, uid: &str) -> Result<(), Error> {
    ctx.ownership.forget(uid);
    ctx.ownership.persist().await.map_err(Error::Cleanup)
}

/// Builds the event the recorder publishes.
pub(crate) fn event(
    type_: EventType,
    reason: &str,
    action: &str,
    note: Option<String>,
) -> KubeEvent {
    KubeEvent {
        type_,
        reason: reason.into(),
        note: note.map(|n| truncate(n, 1024)),
        action: action.into(),
        secondary: None,
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::secret::JujuSecretSpec;

    fn jujusecret(generation: i64, status: Option<JujuSecretStatus>) -> JujuSecret {
        let spec: JujuSecretSpec =
            serde_json::from_value(serde_json::json!({"model": "dev", "data": {"password": "x"}}))
                .unwrap();
        let mut js = JujuSecret::new("db", spec);
        js.metadata.namespace = Some("team-a".into());
        js.metadata.generation = Some(generation);
        js.status = status;
        js
    }

    fn synced(wrote: bool) -> Synced {
        Synced {
            model_uuid: "26e9b4dd-e657-4a2c-8f25-222c879fd45d".into(),
            uri: Some(SecretUri::parse("secret:9fvb66662rqormfsip9g").unwrap()),
            revision: Some(2),
            content_mac: Some("hmac-sha256:00".into()),
            auto_prune: Some(true),
            reason: reason::SYNCED,
            message: "in sync".into(),
            wrote,
            owned: true,
        }
    }

    #[test]
    fn a_pass_that_finds_nothing_new_produces_an_identical_status() {
        let js = jujusecret(1, None);
        let first = synced_status(&js, &JujuSecretStatus::default(), &synced(true));
        assert_eq!(
            first.secret_id.as_deref(),
            Some("secret:9fvb66662rqormfsip9g")
        );
        assert_eq!(
            first.secret_uri.as_deref(),
            Some("secret://26e9b4dd-e657-4a2c-8f25-222c879fd45d/9fvb66662rqormfsip9g")
        );
        assert_eq!(first.observed_generation, Some(1));
        assert_eq!(first.conditions[0].status, "True");
        let js = jujusecret(1, Some(first.clone()));
        let again = synced_status(&js, &first, &synced(false));
        assert_eq!(again, first, "no write needed: identical status");
    }

    #[test]
    fn a_problem_keeps_the_ids_and_flips_the_condition_once() {
        let js = jujusecret(1, None);
        let ok = synced_status(&js, &JujuSecretStatus::default(), &synced(true));
        let js = jujusecret(2, Some(ok.clone()));
        let problem = Problem::new(reason::SOURCE_NOT_FOUND, "Secret team-a/src not found");
        let failed = problem_status(&js, &ok, &problem);
        assert_eq!(failed.secret_id, ok.secret_id);
        assert_eq!(failed.revision, Some(2));
        assert_eq!(failed.observed_generation, Some(2));
        let c = &failed.conditions[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "SourceNotFound")
        );
        // The same problem again keeps the transition time: nothing to write.
        let js = jujusecret(2, Some(failed.clone()));
        assert_eq!(problem_status(&js, &failed, &problem), failed);
    }

    #[test]
    fn success_clears_the_pending_create_marker() {
        let js = jujusecret(1, None);
        let pending = JujuSecretStatus {
            pending_create: Some("2026-11-23T00:00:00Z".into()),
            ..Default::default()
        };
        let done = synced_status(&js, &pending, &synced(true));
        assert_eq!(done.pending_create, None);
    }

    #[test]
    fn event_notes_are_cut_to_the_api_limit() {
        let e = event(EventType::Warning, "X", "Y", Some("é".repeat(800)));
        assert!(e.note.unwrap().len() <= 1024);
    }
}
