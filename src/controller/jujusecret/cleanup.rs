//! Cleanup: what deleting a JujuSecret does in Juju. Only a secret the ownership record
//! proves the object owns (or the one its claim was creating, recognized by the same
//! rule as a pass) is removed; `Retain` and `ObserveOnly` leave Juju alone. Cleanup never
//! wedges: a model or secret already gone counts as done.

use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use tracing::instrument;

use super::super::juju_state::{FailureKind, SharedFailure, says_backend_unreachable};
use super::super::mutants;
use super::super::outcome::Problem;
use super::super::ownership;
use super::super::{Context, Error};
use super::observe::found_by_name;
use super::{juju_name, problem_status, recorded_status, write_status};
use crate::crd::condition::reason;
use crate::crd::secret::{DeletionPolicy, JujuSecret, ManagementPolicy};
use juju_client::{ErrorCode, SecretRemoval, SecretSelector, SecretUri};

#[instrument(skip_all, fields(namespace = js.namespace().unwrap_or_default(), name = js.name_any()))]
pub(super) async fn cleanup(js: &JujuSecret, ctx: &Context) -> Result<Action, Error> {
    let spec = &js.spec;
    let label = juju_name(js);
    if (spec.deletion_policy == DeletionPolicy::Retain
        && !mutants::active(mutants::RETAIN_REMOVES_SECRET))
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
            let fact = found_by_name(ctx, &model_uuid, &uid, &found, Some(&entry))
                .await
                .map_err(|p| Error::Cleanup(p.message))?;
            let decision = ownership::decide(&ownership::Facts {
                entry: Some(&entry),
                found: fact,
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
                let mut status = problem_status(js, &previous, &recorded_status(ctx, js), &problem);
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
        // Already gone. Only a missing *secret* counts: Juju answers "not found" too for
        // a backend that holds the content and was removed, and the secret then stays.
        Err(e) if e.code == ErrorCode::NotFound && e.message.starts_with("secret \"") => {}
        Err(e) => {
            let why = if says_backend_unreachable(&e.message) {
                reason::BACKEND_UNREACHABLE
            } else {
                reason::JUJU_ERROR
            };
            let problem = Problem::new(
                why,
                format!(
                    "cannot remove the Juju secret yet: {e}; retrying. To leave the secret in Juju and let this resource go, set spec.deletionPolicy: Retain"
                ),
            );
            let previous = status.clone();
            let status = problem_status(js, &previous, &recorded_status(ctx, js), &problem);
            ctx.publish(
                js,
                EventType::Warning,
                why,
                "Delete",
                Some(problem.message.clone()),
            );
            write_status(js, ctx, &previous, status).await?;
            return Err(Error::Cleanup(problem.message));
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
