//! Act: carries a plan out in order — take over in the record, claim in the record,
//! Juju write, confirm in the record — and turns Juju's answers into problems for the
//! next pass. It decides nothing itself.

use kube::runtime::events::EventType;
use tracing::{info, warn};

use super::super::Context;
use super::super::juju_state::{FailureKind, SecretSummary};
use super::super::mutants;
use super::super::outcome::Problem;
use super::super::ownership::RecordError;
use super::Synced;
use super::decide::{Plan, Write};
use super::observe::Observed;
use super::tail::Handoff;
use crate::crd::condition::reason;
use crate::crd::secret::{JujuSecret, JujuSecretStatus};
use juju_client::{ErrorCode, NewSecret, SecretUri};

/// Carries out `plan`. `base` is the status the pass builds on; it learns the model as
/// soon as a create is attempted.
pub(super) async fn act(
    js: &JujuSecret,
    ctx: &Context,
    facts: Observed,
    plan: Plan,
    base: &mut JujuSecretStatus,
    handoff: &mut Handoff,
) -> Result<Synced, Problem> {
    let Observed {
        uid,
        label,
        model,
        content,
        found,
        read_back,
        content_differs,
        ..
    } = facts;
    if plan.take_over
        && let Some(found) = &found
    {
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
        if plan.adopted {
            ctx.publish(
                js,
                EventType::Normal,
                "Adopted",
                "Adopt",
                Some(format!(
                    "took over existing Juju secret {label:?} ({})",
                    found.uri
                )),
            );
        }
    }
    let mut outcome = plan.outcome;
    match plan.write {
        Write::Nothing => {
            // A controller before 3.6: what was read back is the content of this revision.
            if let (true, Some(false), Some(found), Some((_, mac))) =
                (read_back, content_differs, &found, &content)
            {
                ctx.ownership.set_content(&uid, found.latest_revision, mac);
            }
            Ok(outcome)
        }
        Write::Create => {
            let (content, mac) = content.unwrap_or_default();
            let uri = create(js, ctx, &uid, &label, &model, content, &mac, base, handoff).await?;
            outcome.uri = Some(uri);
            Ok(outcome)
        }
        Write::Update {
            mut update,
            mut changes,
        } => {
            if mutants::active(mutants::SKIP_CONTENT_UPDATE) && update.content.is_some() {
                update.content = None;
                changes.retain(|c| *c != "content");
            }
            let Some(found) = found else {
                return Ok(outcome);
            };
            let sent_content = update.content.is_some();
            let sent_prune = update.auto_prune;
            let queued = ctx.writes.update(&model.uuid, update);
            handoff.now();
            match queued.await? {
                Ok(()) => {}
                Err(e) if e.code == ErrorCode::AlreadyExists => {
                    // The listing missed the secret holding that name: read it again, so
                    // that the next pass sees the name taken and sends nothing.
                    ctx.listings.invalidate(&model.uuid).await;
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
            let revision = found.latest_revision + u64::from(sent_content);
            outcome.revision = Some(revision);
            if let (true, Some((_, mac))) = (sent_content, &content) {
                ctx.ownership.set_content(&uid, revision, mac);
            }
            if let Some(prune) = sent_prune {
                ctx.ownership.set_auto_prune(&uid, prune);
            }
            ctx.listings
                .record(
                    &model.uuid,
                    SecretSummary {
                        uri: found.uri.clone(),
                        label: Some(label.clone()),
                        description: js.spec.description.clone().filter(|d| !d.is_empty()),
                        latest_revision: revision,
                        checksum: match (sent_content, &content) {
                            (true, Some((c, _))) => Some(c.juju_checksum()),
                            _ => found.checksum.clone(),
                        },
                        applications: found.applications.clone(),
                        revisions: {
                            let mut r = found.revisions.clone();
                            if sent_content {
                                r.push(revision);
                            }
                            r
                        },
                    },
                )
                .await;
            if plan.drift && sent_content {
                ctx.publish(
                    js,
                    EventType::Warning,
                    "DriftCorrected",
                    "Update",
                    Some(format!(
                        "the content of Juju secret {label:?} ({}) was changed outside the operator; restored as revision {revision}",
                        found.uri
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
                info!(secret = %found.uri, changed = %what, "updated Juju secret");
                ctx.publish(
                    js,
                    EventType::Normal,
                    reason,
                    "Update",
                    Some(format!(
                        "updated {what} of Juju secret {label:?} ({}); revision {revision}",
                        found.uri
                    )),
                );
            }
            Ok(outcome)
        }
    }
}

/// Claim in the record (made durable before the bulk create goes out), create, confirm.
#[allow(clippy::too_many_arguments)]
async fn create(
    js: &JujuSecret,
    ctx: &Context,
    uid: &str,
    label: &str,
    model: &juju_client::Model,
    content: juju_client::SecretContent,
    claimed_mac: &str,
    base: &mut JujuSecretStatus,
    handoff: &mut Handoff,
) -> Result<SecretUri, Problem> {
    // If the operator dies after Juju creates the secret but before the answer is
    // recorded, the next pass recognizes the secret by this claim.
    match ctx.ownership.claim(uid, &model.uuid, label, claimed_mac) {
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
    let copy = mutants::active(mutants::CREATE_TWICE).then(|| NewSecret {
        label: Some(format!("{label}-copy")),
        description: js.spec.description.clone(),
        content: content.clone(),
    });
    let queued = ctx.writes.create(
        &model.uuid,
        NewSecret {
            label: Some(label.to_owned()),
            description: js.spec.description.clone(),
            content,
        },
    );
    // Queued behind the claim: the reconcile slot is free for other objects while the
    // batch gathers (see the `tail` module).
    handoff.now();
    let created = queued.await;
    if let Some(copy) = copy {
        let _ = ctx.writes.create(&model.uuid, copy).await;
    }
    let uri = match created {
        Ok(Ok(uri)) => uri,
        // The outcome is unknown (the answer was lost): keep the claim, read Juju
        // again, and let the next pass recognize the secret if it was created.
        Err(failure) => {
            ctx.listings.invalidate(&model.uuid).await;
            // Refused outright (no permission, invalid content, the model's vault out of
            // reach): nothing was created.
            if matches!(
                failure.kind,
                FailureKind::Unauthorized
                    | FailureKind::InvalidContent
                    | FailureKind::BackendUnreachable
            ) {
                release_claim(ctx, uid).await;
            }
            return Err(failure.into());
        }
        Ok(Err(e)) if e.code == ErrorCode::AlreadyExists => {
            // Someone else created a secret of that name since the listing was read.
            // The refusal is definite: the claim goes at once, so nothing can later take
            // that secret for this object's own.
            if !mutants::active(mutants::KEEP_REFUSED_CLAIM) {
                release_claim(ctx, uid).await;
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
            release_claim(ctx, uid).await;
            return Err(Problem::new(reason::JUJU_ERROR, e.to_string()));
        }
    };
    // The create was answered: the secret is this object's own. The confirmation
    // reaches the record's ConfigMap before the next Juju write goes out.
    match ctx.ownership.confirm(uid, &model.uuid, label, &uri.short()) {
        Ok(()) => ctx.ownership.set_content(uid, 1, claimed_mac),
        Err(e) => {
            warn!(secret = %uri, error = ?e, "a secret just created is recorded for another object")
        }
    }
    ctx.listings
        .record(
            &model.uuid,
            SecretSummary {
                uri: uri.clone(),
                label: Some(label.to_owned()),
                description: js.spec.description.clone(),
                latest_revision: 1,
                checksum: Some(checksum),
                applications: Default::default(),
                revisions: vec![1],
            },
        )
        .await;
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
    Ok(uri)
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
