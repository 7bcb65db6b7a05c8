//! Act: carries a plan out in order — take over in the record, claim in the record,
//! Juju write, confirm in the record — and turns Juju's answers into problems for the
//! next pass. It decides nothing itself.
//!
//! A pass that queues a Juju write returns what is left of it (waiting for the answer,
//! then confirming) as a future of its own ([`Acted::Waiting`]): small, owning what it
//! needs, so that it can wait apart from the pass (see the `tail` module).

use std::sync::Arc;

use futures::future::BoxFuture;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use tracing::{info, warn};

use super::super::Context;
use super::super::juju_state::{FailureKind, SecretSummary, SharedFailure};
use super::super::mutants;
use super::super::outcome::Problem;
use super::super::ownership::{RecordError, Unfinalized};
use super::Synced;
use super::decide::{Plan, Write};
use super::observe::Observed;
use crate::crd::condition::reason;
use crate::crd::secret::{JujuSecret, JujuSecretStatus};
use juju_client::{ErrorCode, NewSecret, SecretUri};

/// The longest a create waits for room among the claims before it reports that too
/// many creates are in flight (and is retried with backoff).
const CLAIM_ROOM_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What acting on a plan came to.
#[allow(clippy::large_enum_variant)] // made once per pass and taken apart at once
pub(super) enum Acted {
    /// Done: nothing was sent to Juju, or nothing more is awaited.
    Done(Synced),
    /// A Juju write is queued; the future waits for its answer and records it.
    Waiting(BoxFuture<'static, Result<Synced, Problem>>),
}

/// Carries out `plan`. `base` is the status the pass builds on; it learns the model as
/// soon as a create is attempted.
pub(super) async fn act(
    js: &Arc<JujuSecret>,
    ctx: &Arc<Context>,
    facts: Observed,
    plan: Plan,
    base: &mut JujuSecretStatus,
) -> Result<Acted, Problem> {
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
                &**js,
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
            Ok(Acted::Done(outcome))
        }
        Write::Create => {
            // In a burst of new objects a create waits a little for room among the
            // claims rather than fail (a claim goes when Juju answers its create).
            let room = std::time::Instant::now();
            while ctx.ownership.claims() >= super::super::ownership::MAX_CLAIMS
                && room.elapsed() < CLAIM_ROOM_WAIT
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            let (content, mac) = content.unwrap_or_default();
            let created = create(js, ctx, uid, label, model, content, mac, base)?;
            Ok(Acted::Waiting(Box::pin(async move {
                outcome.uri = Some(created.await?);
                Ok(outcome)
            })))
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
                return Ok(Acted::Done(outcome));
            };
            let sent = update.content.is_some();
            let updated = Updated {
                js: js.clone(),
                ctx: ctx.clone(),
                uid,
                label,
                model_uuid: model.uuid,
                // What the record and the listing need of new content: its MAC and
                // Juju's checksum, not the values.
                content: content
                    .filter(|_| sent)
                    .map(|(content, mac)| (content.juju_checksum(), mac)),
                auto_prune: update.auto_prune,
                found,
                changes,
                drift: plan.drift,
            };
            let queued = ctx.writes.update(&updated.model_uuid, update);
            Ok(Acted::Waiting(Box::pin(async move {
                outcome.revision = Some(updated.confirm(queued.await).await?);
                Ok(outcome)
            })))
        }
    }
}

/// What a queued update needs to record Juju's answer.
struct Updated {
    js: Arc<JujuSecret>,
    ctx: Arc<Context>,
    uid: String,
    label: String,
    model_uuid: String,
    /// Juju's checksum and the MAC of the content sent, if any.
    content: Option<(String, String)>,
    auto_prune: Option<bool>,
    found: SecretSummary,
    changes: Vec<&'static str>,
    drift: bool,
}

impl Updated {
    /// Records Juju's answer to the update; the secret's latest revision after it.
    async fn confirm(self, answer: Answer<()>) -> Result<u64, Problem> {
        let Self {
            js,
            ctx,
            uid,
            label,
            model_uuid,
            content,
            auto_prune,
            found,
            changes,
            drift,
        } = self;
        match answer? {
            Ok(()) => {}
            Err(e) if e.code == ErrorCode::AlreadyExists => {
                // The listing missed the secret holding that name: read it again, so
                // that the next pass sees the name taken and sends nothing.
                ctx.listings.invalidate(&model_uuid).await;
                return Err(Problem::new(
                    reason::CONFLICT,
                    format!("cannot rename to {label:?}: {}", e.message),
                ));
            }
            Err(e) if e.code == ErrorCode::NotFound => {
                ctx.listings.invalidate(&model_uuid).await;
                return Err(Problem::new(reason::JUJU_ERROR, e.to_string()).transient());
            }
            Err(e) => return Err(Problem::new(reason::JUJU_ERROR, e.to_string())),
        }
        let sent_content = content.is_some();
        let revision = found.latest_revision + u64::from(sent_content);
        if let Some((_, mac)) = &content {
            ctx.ownership.set_content(&uid, revision, mac);
        }
        if let Some(prune) = auto_prune {
            ctx.ownership.set_auto_prune(&uid, prune);
        }
        let mut revisions = found.revisions.clone();
        if sent_content {
            revisions.push(revision);
        }
        ctx.listings
            .record(
                &model_uuid,
                SecretSummary {
                    uri: found.uri.clone(),
                    label: Some(label.clone()),
                    description: js.spec.description.clone().filter(|d| !d.is_empty()),
                    latest_revision: revision,
                    checksum: match content {
                        Some((checksum, _)) => Some(checksum),
                        None => found.checksum.clone(),
                    },
                    applications: found.applications.clone(),
                    revisions,
                },
            )
            .await;
        if drift && sent_content {
            ctx.publish(
                &*js,
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
                &*js,
                EventType::Normal,
                reason,
                "Update",
                Some(format!(
                    "updated {what} of Juju secret {label:?} ({}); revision {revision}",
                    found.uri
                )),
            );
        }
        Ok(revision)
    }
}

/// Claim in the record (made durable before the bulk create goes out) and queue the
/// create; the future waits for Juju's answer and confirms.
#[allow(clippy::too_many_arguments)]
fn create(
    js: &Arc<JujuSecret>,
    ctx: &Arc<Context>,
    uid: String,
    label: String,
    model: juju_client::Model,
    content: juju_client::SecretContent,
    claimed_mac: String,
    base: &mut JujuSecretStatus,
) -> Result<BoxFuture<'static, Result<SecretUri, Problem>>, Problem> {
    // If the operator dies after Juju creates the secret but before the answer is
    // recorded, the next pass recognizes the secret by this claim.
    // A new object's Juju write comes before its finalizer: the claim says where the
    // object is, so that a deletion no operator saw is still cleaned up.
    let unfinalized = (!super::has_finalizer(js)).then(|| Unfinalized {
        namespace: js.namespace().unwrap_or_default(),
        name: js.name_any(),
        retain: super::leaves_secret(js),
    });
    match ctx
        .ownership
        .claim_marked(&uid, &model.uuid, &label, &claimed_mac, unfinalized)
    {
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
            label: Some(label.clone()),
            description: js.spec.description.clone(),
            content,
        },
    );
    let copied = copy.map(|copy| ctx.writes.create(&model.uuid, copy));
    let created = Created {
        js: js.clone(),
        ctx: ctx.clone(),
        uid,
        label,
        model,
        claimed_mac,
        checksum,
    };
    Ok(Box::pin(async move {
        let answer = queued.await;
        if let Some(copied) = copied {
            let _ = copied.await;
        }
        created.confirm(answer).await
    }))
}

/// What a queued create needs to record Juju's answer.
struct Created {
    js: Arc<JujuSecret>,
    ctx: Arc<Context>,
    uid: String,
    label: String,
    model: juju_client::Model,
    claimed_mac: String,
    checksum: String,
}

/// Juju's answer to one queued write.
type Answer<T> = Result<Result<T, juju_client::ApiError>, SharedFailure>;

impl Created {
    /// Records Juju's answer to the create: the confirmation, or the claim's release
    /// when nothing was created.
    async fn confirm(self, answer: Answer<SecretUri>) -> Result<SecretUri, Problem> {
        let Self {
            js,
            ctx,
            uid,
            label,
            model,
            claimed_mac,
            checksum,
        } = self;
        let (js, ctx, uid, label) = (&*js, &*ctx, uid.as_str(), label.as_str());
        let uri = match answer {
            Ok(Ok(uri)) => uri,
            // The outcome is unknown (the answer was lost): keep the claim, read Juju
            // again, and let the next pass recognize the secret if it was created.
            Err(failure) => {
                ctx.listings.invalidate(&model.uuid).await;
                // Refused outright (no permission, invalid content, the model's vault
                // out of reach): nothing was created.
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
                // Someone else created a secret of that name since the listing was
                // read. The refusal is definite: the claim goes at once, so nothing can
                // later take that secret for this object's own.
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
            Ok(()) => ctx.ownership.set_content(uid, 1, &claimed_mac),
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
}

/// Drops the object's claim after Juju definitely refused its create, and makes that
/// durable at once: a claim brought back by a restart could otherwise take a person's
/// secret of the same name and content for the object's own.
async fn release_claim(ctx: &Context, uid: &str) {
    ctx.ownership.release_claim(uid);
    // Boxed: rare, and kept out of the size of every create waiting for Juju.
    if let Err(e) = Box::pin(ctx.ownership.persist()).await {
        warn!(error = %e, "cannot record the release of a create claim yet; it goes with the next write");
    }
}
