//! The JujuSecretGrant controller: which Juju applications may read a secret.
//!
//! Grants are reconciled per Juju secret as the union of every JujuSecretGrant naming
//! it. The operator revokes only grants it made itself (recorded in its ownership
//! record, never read from a status) and only once no JujuSecretGrant lists the
//! application any more; an application one object lets go and another lists is
//! handed over to that object in the record. Grants people made outside the operator
//! are never revoked. An
//! application that does not exist yet is reported as pending and retried with
//! backoff, without holding back the others.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};
use tracing::{info, instrument, warn};

use super::juju_state::{FailureKind, SharedFailure};
use super::outcome::{self, Problem};
use super::ownership::{GrantEntry, OwnershipRecord};
use super::{Context, Error};
use crate::crd::condition::{Condition, reason};
use crate::crd::grant::{JujuSecretGrant, JujuSecretGrantStatus};
use crate::crd::secret::{JujuSecret, ManagementPolicy};
use juju_client::{ErrorCode, SecretSelector, SecretUri};

/// Finalizer that lets the operator revoke before the object goes.
pub const FINALIZER: &str = "secrets.juju.is/revoke";

/// Reason while the referenced JujuSecret has no Juju secret yet.
pub const SECRET_NOT_READY: &str = "SecretNotReady";

/// The Juju secret a grant is about.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    model_uuid: String,
    uri: SecretUri,
}

/// What the grant controller shares beyond [`Context`].
pub struct GrantContext {
    /// The operator-wide context.
    pub ctx: Arc<Context>,
    /// Every JujuSecretGrant, for the union of wanted applications.
    pub grants: Store<JujuSecretGrant>,
}
/// Entry point for the kube-runtime controller.
pub async fn reconcile(
    grant: Arc<JujuSecretGrant>,
    gctx: Arc<GrantContext>,
) -> Result<Action, Error> {
    let namespace = grant.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<JujuSecretGrant> = Api::namespaced(gctx.ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, grant, |event| async {
        match event {
            Finalizer::Apply(g) => apply(&g, &gctx).await,
            Finalizer::Cleanup(g) => cleanup(&g, &gctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

fn key(grant: &JujuSecretGrant) -> String {
    format!(
        "grant/{}/{}",
        grant.namespace().unwrap_or_default(),
        grant.name_any()
    )
}

fn wanted(grant: &JujuSecretGrant) -> BTreeSet<String> {
    grant.spec.applications.iter().cloned().collect()
}

/// Finds the Juju secret the grant names.
async fn target(grant: &JujuSecretGrant, ctx: &Context) -> Result<Target, Problem> {
    let namespace = grant.namespace().unwrap_or_default();
    if let Some(local) = &grant.spec.secret_ref {
        let api: Api<JujuSecret> = Api::namespaced(ctx.client.clone(), &namespace);
        let js = api
            .get_opt(&local.name)
            .await
            .map_err(|e| Problem {
                transient: true,
                ..Problem::new(reason::KUBERNETES_ERROR, e.to_string())
            })?
            .ok_or_else(|| {
                Problem::new(
                    SECRET_NOT_READY,
                    format!("JujuSecret {namespace}/{} not found", local.name),
                )
            })?;
        if js.metadata.deletion_timestamp.is_some() {
            return Err(Problem::new(
                SECRET_NOT_READY,
                format!("JujuSecret {namespace}/{} is being deleted", local.name),
            ));
        }
        // The target comes from the operator's ownership record (the secret it created
        // or adopted for that JujuSecret), never from the JujuSecret's status, and its
        // model must be one this namespace may use.
        let waiting = || {
            Problem::new(
                SECRET_NOT_READY,
                format!(
                    "waiting for JujuSecret {namespace}/{} to be Ready",
                    local.name
                ),
            )
        };
        let owned = js
            .uid()
            .and_then(|uid| ctx.ownership.entry(&uid))
            .and_then(|e| Some((e.model.clone(), SecretUri::parse(e.uri.as_deref()?).ok()?)));
        let (model_uuid, uri) = match owned {
            Some(found) => found,
            // An observed secret (ObserveOnly) is looked up as the JujuSecret declares it.
            None if js.spec.management_policy == ManagementPolicy::ObserveOnly => {
                let name = js.spec.name.clone().unwrap_or_else(|| js.name_any());
                let model = resolve_allowed(ctx, &namespace, &js.spec.model).await?;
                let listing = ctx.listings.get(&model.uuid, ctx.refresh_interval).await?;
                let uri = listing.by_label(&name).map(|s| s.uri.clone());
                drop(listing);
                (model.uuid, uri.ok_or_else(waiting)?)
            }
            None => return Err(waiting()),
        };
        let allowed = ctx
            .model_allowed(&namespace, &model_uuid)
            .await
            .map_err(Problem::from)?;
        if !allowed {
            return Err(forbidden(&namespace, &js.spec.model));
        }
        return Ok(Target { model_uuid, uri });
    }
    let Some(external) = &grant.spec.external else {
        return Err(Problem::new(
            reason::INVALID_SPEC,
            "one of secretRef or external is required",
        ));
    };
    let model = resolve_allowed(ctx, &namespace, &external.model).await?;
    let listing = ctx.listings.get(&model.uuid, ctx.refresh_interval).await?;
    let found = match (&external.uri, &external.name) {
        (Some(uri), _) => {
            let uri =
                SecretUri::parse(uri).map_err(|e| Problem::new(reason::INVALID_SPEC, e.message))?;
            listing.by_uri(&uri).map(|s| s.uri.clone())
        }
        (None, Some(name)) => listing.by_label(name).map(|s| s.uri.clone()),
        (None, None) => {
            return Err(Problem::new(
                reason::INVALID_SPEC,
                "external needs name or uri",
            ));
        }
    };
    let uri = found.ok_or_else(|| {
        Problem::new(
            reason::NOT_FOUND,
            format!(
                "the secret is not among the user secrets of model {}",
                model.qualified_name()
            ),
        )
    })?;
    Ok(Target {
        model_uuid: model.uuid,
        uri,
    })
}

/// The target secret is not (or no longer) in Juju: retried, the model's listing read
/// again meanwhile by the caller.
fn secret_not_found(target: &Target) -> Problem {
    Problem::new(
        SECRET_NOT_READY,
        format!("Juju secret {} not found", target.uri),
    )
    .transient()
}

/// Resolves `model` for an object in `namespace`: `Forbidden` (with no call on the model)
/// when the tenancy policy does not let that namespace use it.
async fn resolve_allowed(
    ctx: &Context,
    namespace: &str,
    model: &str,
) -> Result<juju_client::Model, Problem> {
    let precheck = ctx
        .policy
        .precheck(namespace, model, &ctx.juju.options().username);
    if precheck == Some(false) {
        return Err(forbidden(namespace, model));
    }
    let resolved = ctx.models.resolve(model).await?;
    if precheck.is_none() && !ctx.policy.allows_model(namespace, &resolved) {
        return Err(forbidden(namespace, model));
    }
    Ok(resolved)
}

fn forbidden(namespace: &str, model: &str) -> Problem {
    Problem::new(
        reason::FORBIDDEN,
        format!(
            "the tenancy policy does not allow namespace {namespace:?} to use Juju model {model:?}"
        ),
    )
}

/// The other grant objects about the same Juju secret: by spec for grants on the same
/// JujuSecret, otherwise by the ownership record (never by their statuses).
fn others<'a>(
    all: &'a [Arc<JujuSecretGrant>],
    me: &JujuSecretGrant,
    target: &Target,
    record: &OwnershipRecord,
) -> Vec<&'a JujuSecretGrant> {
    let on_target = record.grant_objects_on(&target.model_uuid, &target.uri.short());
    all.iter()
        .map(|g| g.as_ref())
        .filter(|g| !(g.namespace() == me.namespace() && g.name_any() == me.name_any()))
        .filter(|g| g.metadata.deletion_timestamp.is_none())
        .filter(|g| {
            // Grants on the same JujuSecret match by spec, even before their first
            // pass; others by the secret their status records.
            let same_ref = g.namespace() == me.namespace()
                && matches!((&g.spec.secret_ref, &me.spec.secret_ref), (Some(a), Some(b)) if a.name == b.name);
            same_ref || g.uid().is_some_and(|uid| on_target.contains(&uid))
        })
        .collect()
}

/// Applications other grant objects with a record on `target` list.
fn self_others_want(
    all: &[Arc<JujuSecretGrant>],
    me: &JujuSecretGrant,
    target: &Target,
    record: &OwnershipRecord,
) -> BTreeSet<String> {
    let on_target = record.grant_objects_on(&target.model_uuid, &target.uri.short());
    others(all, me, target, record)
        .iter()
        .filter(|g| g.uid().is_some_and(|uid| on_target.contains(&uid)))
        .flat_map(|g| g.spec.applications.iter().cloned())
        .collect()
}

#[instrument(skip_all, fields(namespace = grant.namespace().unwrap_or_default(), name = grant.name_any()))]
async fn apply(grant: &JujuSecretGrant, gctx: &GrantContext) -> Result<Action, Error> {
    let ctx = &gctx.ctx;
    let previous = grant.status.clone().unwrap_or_default();
    let outcome = sync(grant, gctx, &previous).await;
    let (status, action) = match outcome {
        Ok((status, pending)) => {
            let action = if pending {
                Action::requeue(ctx.backoff.next(&key(grant)))
            } else {
                ctx.backoff.reset(&key(grant));
                Action::requeue(ctx.refresh_interval)
            };
            (status, action)
        }
        Err(problem) => {
            let changed = outcome::ready_changes(&previous.conditions, &problem);
            if changed {
                let type_ = if problem.reason == SECRET_NOT_READY {
                    EventType::Normal
                } else {
                    EventType::Warning
                };
                ctx.publish(
                    grant,
                    type_,
                    problem.reason,
                    "Grant",
                    Some(problem.message.clone()),
                );
            }
            let delay = if problem.transient || problem.reason == SECRET_NOT_READY {
                ctx.backoff
                    .next(&key(grant))
                    .min(std::time::Duration::from_secs(30))
            } else {
                ctx.refresh_interval
            };
            let status = JujuSecretGrantStatus {
                observed_generation: grant.metadata.generation,
                wanted_count: count(grant.spec.applications.len()),
                conditions: vec![condition(
                    grant,
                    &previous,
                    false,
                    problem.reason,
                    &problem.message,
                )],
                ..previous.clone()
            };
            (status, Action::requeue(delay))
        }
    };
    match write_status(grant, ctx, &previous, status).await {
        // Gone although this pass ran with the finalizer in place (a deletion that raced
        // the finalizer being added): revoke now what the pass may have granted.
        Err(Error::Kube(kube::Error::Api(e))) if e.code == 404 => {
            let namespace = grant.namespace().ok_or(Error::NotNamespaced)?;
            let api: Api<JujuSecretGrant> = Api::namespaced(ctx.client.clone(), &namespace);
            outcome::gone_after_status_404(&api, grant, e).await?;
            cleanup(grant, gctx).await?;
            return Ok(Action::await_change());
        }
        written => written?,
    }
    Ok(action)
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Every config option must name a listed application. The CRD's CEL rule says the
/// same; apiservers before Kubernetes 1.25 do not run it.
fn check_config(grant: &JujuSecretGrant) -> Result<(), Problem> {
    let unlisted: Vec<&str> = grant
        .spec
        .config
        .iter()
        .map(|c| c.application.as_str())
        .filter(|app| !grant.spec.applications.iter().any(|a| a == app))
        .collect();
    if unlisted.is_empty() {
        return Ok(());
    }
    Err(Problem::new(
        reason::INVALID_SPEC,
        format!(
            "config names applications not listed in applications: {}",
            unlisted.join(", ")
        ),
    ))
}

/// What the record says the object granted on `target` (ownership follows the secret,
/// not the object), and the former target with its entry when the object's target
/// moved (another secret, or its JujuSecret recreated).
fn recorded_grants(
    entry: Option<GrantEntry>,
    target: &Target,
) -> (BTreeSet<String>, Option<(GrantEntry, SecretUri)>) {
    match entry {
        Some(e) if e.model == target.model_uuid && e.uri == target.uri.short() => {
            (e.applications, None)
        }
        Some(e) => {
            let former = SecretUri::parse(&e.uri).ok().map(|uri| (e, uri));
            (BTreeSet::new(), former)
        }
        None => (BTreeSet::new(), None),
    }
}

/// The applications to grant: wanted, without access now.
fn to_grant(wanted: &BTreeSet<String>, access: &BTreeSet<String>) -> Vec<String> {
    wanted.difference(access).cloned().collect()
}

/// The applications to revoke: granted by the operator for this object (`owned`), and
/// listed by no grant object any more. Grants people made are never among them.
fn to_revoke(
    owned: &BTreeSet<String>,
    wanted: &BTreeSet<String>,
    others_want: &BTreeSet<String>,
) -> Vec<String> {
    owned
        .iter()
        .filter(|app| !wanted.contains(*app) && !others_want.contains(*app))
        .cloned()
        .collect()
}

/// Of `let_go` (applications the operator granted on `target` for grant object `uid`,
/// which no longer lists them), those another grant object lists stay granted: unless
/// one of the others has recorded it already, each is handed over in the record to one
/// that lists it, and the record is persisted before `uid`'s entry drops them, so the
/// grants stay the operator's and are revoked once no object lists them. Returns the
/// applications no other object could take (their records are on another secret),
/// which `uid` keeps.
async fn hand_over<'a>(
    ctx: &Context,
    uid: &str,
    others: &[&JujuSecretGrant],
    target: &Target,
    let_go: impl IntoIterator<Item = &'a String>,
) -> Result<BTreeSet<String>, String> {
    let uri = target.uri.short();
    let others_own = ctx
        .ownership
        .granted_by_others(&target.model_uuid, &uri, uid);
    let mut kept = BTreeSet::new();
    let mut handed = false;
    for app in let_go.into_iter().filter(|app| !others_own.contains(*app)) {
        let listing: Vec<_> = others
            .iter()
            .filter(|g| g.spec.applications.contains(app))
            .collect();
        if listing.is_empty() {
            continue;
        }
        if listing.iter().filter_map(|g| g.uid()).any(|to| {
            ctx.ownership
                .hand_over_grant(&to, &target.model_uuid, &uri, app)
        }) {
            handed = true;
        } else {
            kept.insert(app.clone());
        }
    }
    if handed {
        ctx.ownership.persist().await?;
    }
    Ok(kept)
}

async fn sync(
    grant: &JujuSecretGrant,
    gctx: &GrantContext,
    previous: &JujuSecretGrantStatus,
) -> Result<(JujuSecretGrantStatus, bool), Problem> {
    let ctx = &gctx.ctx;
    check_config(grant)?;
    let target = target(grant, ctx).await?;
    let all = gctx.grants.state();
    let uid = grant.uid().unwrap_or_default();
    let others = others(&all, grant, &target, &ctx.ownership);
    let others_want: BTreeSet<String> = others
        .iter()
        .flat_map(|g| g.spec.applications.iter().cloned())
        .collect();
    // What the operator granted on this secret for other grant objects (the record is
    // updated in memory at once, so grant objects applied together see each other).
    let others_own = ctx
        .ownership
        .granted_by_others(&target.model_uuid, &target.uri.short(), &uid);

    let listing = ctx
        .listings
        .get(&target.model_uuid, ctx.refresh_interval)
        .await?;
    let Some(secret) = listing.by_uri(&target.uri) else {
        ctx.listings.invalidate(&target.model_uuid).await;
        return Err(secret_not_found(&target));
    };
    let mut access = secret.applications.clone();
    let wanted = wanted(grant);
    // Ownership follows the secret, not the object: what the record says the operator
    // granted for this object (if it still points at the same secret), plus what it
    // granted for other objects.
    let (mut owned, former) = recorded_grants(ctx.ownership.grant_entry(&uid), &target);
    // The grant now names another secret (or its JujuSecret was recreated): take back
    // what it granted on the old one, unless other grants there still list it.
    if let Some((old, old_uri)) = former {
        // Revoke there only on a model this namespace may use.
        let namespace = grant.namespace().unwrap_or_default();
        let allowed = ctx
            .model_allowed(&namespace, &old.model)
            .await
            .map_err(Problem::from)?;
        if !allowed {
            warn!(model = %old.model, "the grant's former secret is in a model this namespace may not use; nothing revoked there");
        }
        let old_target = Target {
            model_uuid: old.model.clone(),
            uri: old_uri,
        };
        let still_wanted = self_others_want(&all, grant, &old_target, &ctx.ownership);
        let apps = to_revoke(&old.applications, &BTreeSet::new(), &still_wanted);
        // Another model: first restore the options wired in the old one, so that no
        // application is left pointing at a secret it can no longer read.
        if old.model != target.model_uuid && allowed {
            super::wiring::unwire_all(ctx, &uid).await?;
        }
        if allowed && !apps.is_empty() {
            match revoke(ctx, grant, &old_target, &apps).await {
                Ok(()) => ctx.listings.invalidate(&old_target.model_uuid).await,
                // The old secret or its model is gone, and its grants with it.
                Err(p)
                    if p.reason == reason::MODEL_NOT_FOUND || p.message.contains("not found") => {}
                Err(p) => return Err(p),
            }
        }
        if old.model == target.model_uuid {
            // Same model: the options the operator wired follow the new URI.
            ctx.ownership.record_grants(
                &uid,
                &target.model_uuid,
                &target.uri.short(),
                BTreeSet::new(),
            );
        } else {
            ctx.ownership.forget(&uid);
        }
    }

    // Grant what is wanted and missing. The shared listing may be up to a refresh
    // interval old: before granting, read who has access now, so that a grant someone
    // made a moment ago is not mistaken for one the operator made.
    if wanted.difference(&access).next().is_some() {
        let filter = juju_client::SecretFilter {
            uri: Some(target.uri.clone()),
            ..Default::default()
        };
        let fresh = ctx
            .juju
            .list_secrets(&target.model_uuid, &filter, false)
            .await
            .map_err(SharedFailure::from)?;
        if let Some(s) = fresh.first() {
            access = s
                .access
                .iter()
                .filter_map(|a| a.application())
                .map(str::to_owned)
                .collect();
        }
    }
    let to_grant = to_grant(&wanted, &access);
    let mut pending = BTreeSet::new();
    let mut failures: Vec<String> = Vec::new();
    let selector = SecretSelector::Uri(target.uri.clone());
    if !to_grant.is_empty() {
        // Recorded before Juju is asked: a crash after GrantSecret never leaves an
        // application granted that the record does not list.
        let mut intended = owned.clone();
        intended.extend(to_grant.iter().cloned());
        ctx.ownership
            .record_grants(&uid, &target.model_uuid, &target.uri.short(), intended);
        ctx.ownership
            .persist()
            .await
            .map_err(|message| Problem::new(reason::KUBERNETES_ERROR, message).transient())?;
        let results = ctx
            .juju
            .grant_secret(&target.model_uuid, &selector, &to_grant)
            .await
            .map_err(SharedFailure::from)?;
        let mut granted = Vec::new();
        // Juju does not look the URI up for the call: a secret removed since the listing
        // fails every application with "secret ... not found", not "application".
        let secret_gone = format!("secret {:?} not found", target.uri.short());
        let mut gone = false;
        for (app, result) in to_grant.iter().zip(results) {
            match result {
                Ok(()) => {
                    access.insert(app.clone());
                    owned.insert(app.clone());
                    granted.push(app.as_str());
                }
                Err(e) if e.code == ErrorCode::NotFound && e.message.ends_with(&secret_gone) => {
                    gone = true;
                }
                Err(e) if e.code == ErrorCode::NotFound => {
                    pending.insert(app.clone());
                }
                // Recorded below with what did succeed, so no grant made here is
                // forgotten; the pass is retried.
                Err(e) => failures.push(format!("{app}: {e}")),
            }
        }
        if gone {
            // What did succeed stays recorded; the target is read again next pass.
            ctx.ownership.record_grants(
                &uid,
                &target.model_uuid,
                &target.uri.short(),
                owned.clone(),
            );
            ctx.listings.invalidate(&target.model_uuid).await;
            return Err(secret_not_found(&target));
        }
        if !granted.is_empty() {
            info!(secret = %target.uri, applications = ?granted, "granted");
            ctx.publish(
                grant,
                EventType::Normal,
                "Granted",
                "Grant",
                Some(format!(
                    "granted {} access to {}",
                    granted.join(", "),
                    target.uri
                )),
            );
        }
    }
    // Applications that already had access and that another object's grant made count
    // as the operator's; anything else that already had access was granted by people.
    for app in wanted.intersection(&others_own) {
        owned.insert(app.clone());
    }

    // Revoke what this object made and nobody lists any more.
    let to_revoke: Vec<String> = if super::mutants::active(super::mutants::REVOKE_UNLISTED) {
        access
            .iter()
            .filter(|app| !wanted.contains(*app) && !others_want.contains(*app))
            .cloned()
            .collect()
    } else {
        to_revoke(&owned, &wanted, &others_want)
    };
    let mut unrevoked = BTreeSet::new();
    if !to_revoke.is_empty() {
        match revoke(ctx, grant, &target, &to_revoke).await {
            Ok(()) => {
                for app in &to_revoke {
                    access.remove(app);
                }
            }
            // Still this object's: revoked on a later pass.
            Err(p) => {
                failures.push(p.message);
                unrevoked.extend(to_revoke.iter().cloned());
            }
        }
    }
    let let_go = owned.iter().filter(|app| !wanted.contains(*app));
    let kept = hand_over(ctx, &uid, &others, &target, let_go)
        .await
        .map_err(|message| Problem::new(reason::KUBERNETES_ERROR, message).transient())?;
    owned.retain(|app| wanted.contains(app) || unrevoked.contains(app) || kept.contains(app));
    ctx.ownership
        .record_grants(&uid, &target.model_uuid, &target.uri.short(), owned.clone());
    ctx.listings
        .record_access(&target.model_uuid, &target.uri, access.clone())
        .await;

    let granted: Vec<String> = wanted.intersection(&access).cloned().collect();
    // Config options get the URI only once their application holds the grant.
    let holding: BTreeSet<String> = granted.iter().cloned().collect();
    let wiring = super::wiring::sync(
        ctx,
        &uid,
        &target.model_uuid,
        &target.uri,
        &grant.spec.config,
        &holding,
    )
    .await?;
    if !wiring.changed.is_empty() {
        ctx.publish(
            grant,
            EventType::Normal,
            "Configured",
            "Configure",
            Some(wiring.changed.join(", ")),
        );
    }
    let configured_note = if grant.spec.config.is_empty() {
        String::new()
    } else {
        format!(
            "; {} of {} config options set",
            wiring.configured.len(),
            grant.spec.config.len()
        )
    };
    let (ok, why, message) = if !failures.is_empty() {
        (false, reason::JUJU_ERROR, failures.join("; "))
    } else if !wiring.invalid.is_empty() {
        (false, reason::INVALID_SPEC, wiring.invalid.join("; "))
    } else if !wiring.conflicts.is_empty() {
        (false, reason::CONFLICT, wiring.conflicts.join("; "))
    } else if pending.is_empty() {
        (
            true,
            reason::SYNCED,
            format!(
                "{} of {} applications granted{configured_note}",
                granted.len(),
                wanted.len()
            ),
        )
    } else {
        (
            false,
            reason::APPLICATION_NOT_FOUND,
            format!(
                "applications not found (yet): {}; retrying",
                pending.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    };
    if !pending.is_empty()
        && previous.pending_applications != pending.iter().cloned().collect::<Vec<_>>()
    {
        warn!(pending = ?pending, "applications not found");
        ctx.publish(
            grant,
            EventType::Warning,
            reason::APPLICATION_NOT_FOUND,
            "Grant",
            Some(message.clone()),
        );
    }
    let status = JujuSecretGrantStatus {
        secret_id: Some(target.uri.short()),
        model_uuid: Some(target.model_uuid.clone()),
        owned_applications: owned.into_iter().collect(),
        granted_count: count(granted.len()),
        granted_applications: granted,
        pending_applications: pending.iter().cloned().collect(),
        configured: wiring.configured,
        wanted_count: count(wanted.len()),
        observed_generation: grant.metadata.generation,
        conditions: vec![condition(grant, previous, ok, why, &message)],
    };
    Ok((status, !pending.is_empty() || !failures.is_empty()))
}

/// What applying a JujuSecretGrant would do in Juju.
#[derive(Debug, Default)]
pub struct GrantPreview {
    /// The model's UUID.
    pub model_uuid: String,
    /// The secret the grant is about (`None`: one its JujuSecret would create).
    pub secret_id: Option<String>,
    /// Applications that would be granted.
    pub grant: Vec<String>,
    /// Applications whose grant (made by the operator) would be revoked.
    pub revoke: Vec<String>,
    /// Applications revoked on the secret the object granted before (its target moved).
    pub revoke_former: Vec<String>,
    /// Applications to grant that Juju does not know (yet): granted once deployed.
    pub pending: Vec<String>,
    /// Config options that would be set or given back.
    pub wiring: super::wiring::WiringPreview,
}

/// The applications of `apps` that model `model` does not have (yet).
async fn missing_applications(
    ctx: &Context,
    model: &str,
    apps: &[String],
) -> Result<Vec<String>, Problem> {
    let mut missing = Vec::new();
    for app in apps {
        match ctx.juju.application_config(model, app).await {
            Ok(_) => {}
            Err(e) if e.code() == Some(&ErrorCode::NotFound) => missing.push(app.clone()),
            Err(e) => return Err(SharedFailure::from(e).into()),
        }
    }
    Ok(missing)
}

/// What a pass over `grant` would do, the other grant objects being `all` (as they would
/// be once applied). `new_secret` is the model of a secret its JujuSecret would create
/// (nothing exists to read then: every listed application would be granted). Reads only,
/// with the same rules as a pass.
pub async fn preview(
    grant: &JujuSecretGrant,
    ctx: &Context,
    all: &[Arc<JujuSecretGrant>],
    new_secret: Option<&str>,
) -> Result<GrantPreview, Problem> {
    check_config(grant)?;
    let wanted = wanted(grant);
    let uid = grant.uid();
    if let Some(model) = new_secret {
        let apps: Vec<String> = wanted.iter().cloned().collect();
        return Ok(GrantPreview {
            model_uuid: model.to_owned(),
            pending: missing_applications(ctx, model, &apps).await?,
            grant: apps,
            wiring: super::wiring::preview(ctx, None, model, None, &grant.spec.config, &wanted)
                .await?,
            ..GrantPreview::default()
        });
    }
    let target = target(grant, ctx).await?;
    let others = others(all, grant, &target, &ctx.ownership);
    let others_want: BTreeSet<String> = others
        .iter()
        .flat_map(|g| g.spec.applications.iter().cloned())
        .collect();
    let listing = ctx
        .listings
        .get(&target.model_uuid, ctx.refresh_interval)
        .await?;
    let access = listing
        .by_uri(&target.uri)
        .map(|s| s.applications.clone())
        .ok_or_else(|| secret_not_found(&target))?;
    drop(listing);
    let entry = uid
        .as_deref()
        .and_then(|uid| ctx.ownership.grant_entry(uid));
    let (owned, former) = recorded_grants(entry, &target);
    let revoke_former = former
        .map(|(old, uri)| {
            let old_target = Target {
                model_uuid: old.model.clone(),
                uri,
            };
            let still_wanted = self_others_want(all, grant, &old_target, &ctx.ownership);
            to_revoke(&old.applications, &BTreeSet::new(), &still_wanted)
        })
        .unwrap_or_default();
    let wiring = super::wiring::preview(
        ctx,
        uid.as_deref(),
        &target.model_uuid,
        Some(&target.uri),
        &grant.spec.config,
        &wanted,
    )
    .await?;
    let grant = to_grant(&wanted, &access);
    Ok(GrantPreview {
        pending: missing_applications(ctx, &target.model_uuid, &grant).await?,
        grant,
        revoke: to_revoke(&owned, &wanted, &others_want),
        revoke_former,
        wiring,
        model_uuid: target.model_uuid,
        secret_id: Some(target.uri.short()),
    })
}

/// What deleting `grant` would do (its cleanup): the options it wired given back, and
/// what it granted revoked unless another of `all` (as they would be once applied) still
/// lists the application. Reads only.
pub fn preview_deletion(
    grant: &JujuSecretGrant,
    ctx: &Context,
    all: &[Arc<JujuSecretGrant>],
) -> Option<GrantPreview> {
    let entry = ctx.ownership.grant_entry(&grant.uid()?)?;
    let uri = SecretUri::parse(&entry.uri).ok()?;
    let target = Target {
        model_uuid: entry.model.clone(),
        uri,
    };
    let others_want: BTreeSet<String> = others(all, grant, &target, &ctx.ownership)
        .iter()
        .flat_map(|g| g.spec.applications.iter().cloned())
        .collect();
    let restore = entry
        .configured
        .iter()
        .flat_map(|(app, options)| options.keys().map(move |o| format!("{app}/{o}")))
        .collect();
    Some(GrantPreview {
        revoke: to_revoke(&entry.applications, &BTreeSet::new(), &others_want),
        wiring: super::wiring::WiringPreview {
            restore,
            ..Default::default()
        },
        model_uuid: target.model_uuid,
        secret_id: Some(target.uri.short()),
        ..GrantPreview::default()
    })
}

async fn revoke(
    ctx: &Context,
    grant: &JujuSecretGrant,
    target: &Target,
    apps: &[String],
) -> Result<(), Problem> {
    let results = ctx
        .juju
        .revoke_secret(
            &target.model_uuid,
            &SecretSelector::Uri(target.uri.clone()),
            apps,
        )
        .await
        .map_err(SharedFailure::from)?;
    // An application that no longer exists has no grant left to revoke.
    if let Some(Err(e)) = results
        .into_iter()
        .find(|r| r.as_ref().is_err_and(|e| e.code != ErrorCode::NotFound))
    {
        return Err(Problem::new(reason::JUJU_ERROR, e.to_string()));
    }
    info!(secret = %target.uri, applications = ?apps, "revoked");
    ctx.publish(
        grant,
        EventType::Normal,
        "Revoked",
        "Revoke",
        Some(format!(
            "revoked {} access to {}",
            apps.join(", "),
            target.uri
        )),
    );
    Ok(())
}

#[instrument(skip_all, fields(namespace = grant.namespace().unwrap_or_default(), name = grant.name_any()))]
/// A JujuSecretGrant deleted from the API: if the record still lists applications granted
/// for it (a deletion that did not wait for the finalizer, or a finalizer removed by
/// hand), they are revoked now, retried with backoff while that fails.
pub fn deleted(grant: Arc<JujuSecretGrant>, gctx: Arc<GrantContext>) {
    let Some(uid) = grant.uid() else {
        return;
    };
    let what = format!(
        "JujuSecretGrant {}/{}",
        grant.namespace().unwrap_or_default(),
        grant.name_any()
    );
    let record = gctx.ctx.clone();
    outcome::clean_up_deleted(
        what,
        gctx.ctx.refresh_interval,
        move || record.ownership.grant_entry(&uid).is_some(),
        move || {
            let (grant, gctx) = (grant.clone(), gctx.clone());
            async move { cleanup(&grant, &gctx).await }
        },
    );
}

async fn cleanup(grant: &JujuSecretGrant, gctx: &GrantContext) -> Result<Action, Error> {
    let ctx = &gctx.ctx;
    let uid = grant.uid().unwrap_or_default();
    // Only what the record says the operator granted for this object is revoked.
    let Some(entry) = ctx.ownership.grant_entry(&uid) else {
        return Ok(Action::await_change());
    };
    let forget = || async {
        ctx.ownership.forget(&uid);
        ctx.ownership.persist().await.map_err(Error::Cleanup)?;
        Ok(Action::await_change())
    };
    let Ok(uri) = SecretUri::parse(&entry.uri) else {
        return forget().await;
    };
    let namespace = grant.namespace().unwrap_or_default();
    match ctx.model_allowed(&namespace, &entry.model).await {
        Ok(true) => {}
        // Forbidden now (the policy changed): leave Juju alone. Gone: nothing to do.
        Ok(false) => return forget().await,
        Err(f) if f.kind == FailureKind::ModelNotFound => return forget().await,
        Err(f) => return Err(Error::Cleanup(f.message)),
    }
    let target = Target {
        model_uuid: entry.model.clone(),
        uri,
    };
    // Config options first: an application is not left pointing at a secret it can no
    // longer read.
    if let Err(p) = super::wiring::unwire_all(ctx, &uid).await {
        ctx.publish(
            grant,
            EventType::Warning,
            p.reason,
            "Unconfigure",
            Some(p.message.clone()),
        );
        return Err(Error::Cleanup(p.message));
    }
    let all = gctx.grants.state();
    let others = others(&all, grant, &target, &ctx.ownership);
    let others_want: BTreeSet<String> = others
        .iter()
        .flat_map(|g| g.spec.applications.iter().cloned())
        .collect();
    let kept = hand_over(ctx, &uid, &others, &target, &entry.applications)
        .await
        .map_err(Error::Cleanup)?;
    if !kept.is_empty() {
        warn!(applications = ?kept, "grants other objects list but cannot take over yet are left in Juju");
    }
    let to_revoke = to_revoke(&entry.applications, &BTreeSet::new(), &others_want);
    if to_revoke.is_empty() {
        return forget().await;
    }
    match revoke(ctx, grant, &target, &to_revoke).await {
        Ok(()) => {
            ctx.listings.invalidate(&target.model_uuid).await;
            forget().await
        }
        // The secret or its model is gone: nothing left to revoke.
        Err(p) if p.reason == reason::MODEL_NOT_FOUND || p.message.contains("not found") => {
            forget().await
        }
        Err(p) => {
            ctx.publish(
                grant,
                EventType::Warning,
                p.reason,
                "Revoke",
                Some(p.message.clone()),
            );
            Err(Error::Cleanup(p.message))
        }
    }
}

fn condition(
    grant: &JujuSecretGrant,
    previous: &JujuSecretGrantStatus,
    ok: bool,
    reason: &str,
    message: &str,
) -> Condition {
    outcome::ready_condition(
        grant.metadata.generation,
        &previous.conditions,
        ok,
        reason,
        message,
    )
}

async fn write_status(
    grant: &JujuSecretGrant,
    ctx: &Context,
    previous: &JujuSecretGrantStatus,
    status: JujuSecretGrantStatus,
) -> Result<(), Error> {
    let namespace = grant.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<JujuSecretGrant> = Api::namespaced(ctx.client.clone(), &namespace);
    outcome::write_status(
        &ctx.kube_writes,
        &api,
        &grant.name_any(),
        grant.status.is_some(),
        previous,
        &status,
    )
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    const URI: &str = "secret:9m4e2mr0ui3e8a215n4g";
    const OTHER: &str = "secret:9m4e2mr0ui3e8a215n50";

    fn target() -> Target {
        Target {
            model_uuid: "m".into(),
            uri: SecretUri::parse(URI).unwrap(),
        }
    }

    fn entry(uri: &str, apps: &[&str]) -> GrantEntry {
        GrantEntry {
            model: "m".into(),
            uri: uri.into(),
            applications: set(apps),
            configured: std::collections::BTreeMap::new(),
        }
    }

    #[test]
    fn only_what_the_operator_granted_and_nobody_lists_is_revoked() {
        let owned = set(&["mysql", "wordpress", "grafana"]);
        let wanted = set(&["wordpress"]);
        let others = set(&["grafana"]);
        assert_eq!(to_revoke(&owned, &wanted, &others), ["mysql"]);
        // A grant people made is not in `owned`: never revoked.
        assert!(to_revoke(&BTreeSet::new(), &wanted, &others).is_empty());
        assert_eq!(
            to_grant(&set(&["wordpress", "mysql"]), &set(&["mysql", "people"])),
            ["wordpress"]
        );
    }

    #[test]
    fn ownership_follows_the_secret_not_the_object() {
        let (owned, former) = recorded_grants(Some(entry(URI, &["mysql"])), &target());
        assert_eq!((owned, former.is_none()), (set(&["mysql"]), true));
        // The object's target moved: nothing is its own on the new one; the former
        // secret is named so its grants can be taken back.
        let (owned, former) = recorded_grants(Some(entry(OTHER, &["mysql"])), &target());
        assert!(owned.is_empty());
        let (old, uri) = former.unwrap();
        assert_eq!(
            (old.applications, uri.short()),
            (set(&["mysql"]), OTHER.into())
        );
        assert_eq!(recorded_grants(None, &target()).0, BTreeSet::new());
    }
}
