//! Observe: every fact a pass needs, and nothing else. The object's spec, the operator's
//! ownership record for the object, what the model's shared listing says about the
//! secret, and the desired content (from the spec and the source Secret; generated
//! values whose Secret is gone from the object's own secret in Juju). The object's
//! status is not among them: it is output only.

use std::time::Duration;

use kube::ResourceExt;

use super::super::Context;
use super::super::content::{
    InJuju, Sources, add_generated, checksum_mac, content_mac, desired_content,
};
use super::super::juju_state::{SecretSummary, SharedFailure};
use super::super::outcome::Problem;
use super::super::ownership::{self, Found, Ownership, SecretEntry};
use super::{forbidden, juju_name};
use crate::crd::condition::reason;
use crate::crd::secret::{JujuSecret, ManagementPolicy};
use juju_client::{Model, SecretContent, SecretFilter, SecretUri};

/// The facts of one pass.
#[derive(Debug)]
pub(super) struct Observed {
    /// The object's UID.
    pub uid: String,
    /// The Juju name the spec asks for.
    pub label: String,
    /// The model, resolved (and allowed by the tenancy policy).
    pub model: Model,
    /// The desired content with its keyed MAC; `None` for `ObserveOnly`.
    pub content: Option<(SecretContent, String)>,
    /// The record's entry for the object in this model.
    pub entry: Option<SecretEntry>,
    /// The secret found: by the URI the record holds, else by name (the claimed name
    /// while a claim is held).
    pub found: Option<SecretSummary>,
    /// Who the found secret belongs to ([`ownership::decide`]).
    pub ownership: Ownership,
    /// Whether the found secret's latest content differs from the desired content;
    /// `None` when that does not matter (not the object's to write, or nothing desired).
    pub content_differs: Option<bool>,
    /// Whether `content_differs` came from reading the content back from Juju (a
    /// controller before 3.6 whose latest revision the record did not know yet).
    pub read_back: bool,
    /// Whether the listing shows another secret holding the spec's name while the
    /// object's own secret (found by its recorded URI) has another name.
    pub name_taken: bool,
}

/// Gathers the facts of a pass. A problem here (forbidden model, unknown model,
/// invalid content, Juju unreachable) ends the pass before any write.
pub(super) async fn observe(
    js: &JujuSecret,
    ctx: &Context,
    refresh: Duration,
    sources: &Sources,
) -> Result<Observed, Problem> {
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
    // `data` and `secretRef` first: a missing source is reported before Juju is asked;
    // the generated values follow once the pass knows which secret is the object's.
    let base = if observe_only {
        None
    } else {
        Some(desired_content(&ctx.client, js, sources).await?)
    };
    let recorded = ctx.ownership.entry(&uid);
    if let Some(other) = recorded.as_ref().filter(|e| e.model != model.uuid) {
        model_unchanged(ctx, other, &model, refresh).await?;
    }
    let listing = ctx.listings.get(&model.uuid, refresh).await?;
    let entry = recorded.filter(|e| e.model == model.uuid);
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
    // A rename onto a name another secret holds would only be refused.
    let name_taken = by_uri.as_ref().is_some_and(|own| {
        own.label.as_deref() != Some(label.as_str())
            && listing.by_label(&label).is_some_and(|s| s.uri != own.uri)
    });
    // Not held across the reads and writes below: the operator's own records of what it
    // created copy the listing while any reader still holds it.
    drop(listing);

    let fact = match (&by_uri, &by_name) {
        (Some(_), _) => Found::ByRecordedUri,
        (None, None) => Found::Nothing,
        (None, Some(s)) => found_by_name(ctx, &model.uuid, &uid, s, entry.as_ref()).await?,
    };
    let ownership = ownership::decide(&ownership::Facts {
        entry: entry.as_ref(),
        found: fact,
        adopt: spec.adopt,
        observe_only,
        allowed: true,
    });
    let found = by_uri.or(by_name);

    let content = match base {
        None => None,
        Some(mut content) => {
            // Where a generated value the Kubernetes Secret lost is: the secret the
            // record says is the object's (never one being adopted: its values are not
            // the object's to read out into a Secret), read only then.
            let in_juju = found
                .as_ref()
                .filter(|_| matches!(ownership, Ownership::Owned | Ownership::Recovered))
                .map(|found| -> InJuju<'_> {
                    Box::pin(read_content(ctx, &model.uuid, &found.uri))
                });
            add_generated(
                &mut content,
                &ctx.client,
                js,
                super::super::FIELD_MANAGER,
                sources,
                in_juju,
            )
            .await?;
            let limits = ctx
                .juju
                .model_content_limits(&model.uuid)
                .await
                .map_err(SharedFailure::from)?;
            content
                .validate(limits)
                .map_err(|e| Problem::new(reason::INVALID_CONTENT, e.to_string()))?;
            let mac = content_mac(&ctx.mac_key, &content);
            Some((content, mac))
        }
    };

    // The content comparison matters only for a secret the operator may write.
    let mut read_back = false;
    let content_differs = match (&found, &content) {
        (Some(found), Some((desired, desired_mac)))
            if ownership.may_write() && spec.management_policy == ManagementPolicy::Full =>
        {
            let known = ctx.ownership.content_at(&uid, found.latest_revision);
            Some(match (&found.checksum, known) {
                (Some(checksum), _) => *checksum != desired.juju_checksum(),
                (None, Some(known)) => known != *desired_mac,
                (None, None) => {
                    read_back = true;
                    read_content(ctx, &model.uuid, &found.uri).await? != *desired
                }
            })
        }
        _ => None,
    };
    Ok(Observed {
        uid,
        label,
        model,
        content,
        entry,
        found,
        ownership,
        content_differs,
        read_back,
        name_taken,
    })
}

/// `spec.model` is immutable (a CEL rule from Kubernetes 1.25); an apiserver without CEL
/// lets it change, and the record then holds the object's secret in another model than
/// the spec names. While that secret is there the pass goes no further: creating one in
/// the new model would leave it behind, owned by no one. A model that is gone took its
/// secret with it, and a secret gone from its model leaves nothing behind: the pass
/// goes on in the new model (whose claim replaces the entry).
async fn model_unchanged(
    ctx: &Context,
    recorded: &SecretEntry,
    spec: &Model,
    refresh: Duration,
) -> Result<(), Problem> {
    let Some(old) = ctx.models.known(&recorded.model).await? else {
        return Ok(());
    };
    let listing = ctx.listings.get(&old.uuid, refresh).await?;
    let there = match recorded.uri.as_deref().map(SecretUri::parse) {
        Some(Ok(uri)) => listing.by_uri(&uri).is_some(),
        Some(Err(_)) => false,
        // A create whose outcome is unknown: its secret would carry the claimed name.
        None => listing.by_label(&recorded.name).is_some(),
    };
    drop(listing);
    if !there {
        return Ok(());
    }
    Err(Problem::new(
        reason::INVALID_SPEC,
        format!(
            "spec.model is immutable: this object's secret is in model {}, not {}; \
             set spec.model back, or delete the object (its deletionPolicy applies) \
             and create it again naming the new model",
            old.qualified_name(),
            spec.qualified_name()
        ),
    ))
}

/// The ownership facts of a secret found by name: its revision, its keyed MAC when it
/// could be the secret the object's claim was creating, and whether another object owns it.
pub(super) async fn found_by_name(
    ctx: &Context,
    model_uuid: &str,
    uid: &str,
    found: &SecretSummary,
    entry: Option<&SecretEntry>,
) -> Result<Found, Problem> {
    Ok(Found::ByName {
        latest_revision: found.latest_revision,
        content_mac: found_content_mac(ctx, model_uuid, found, entry).await?,
        owned_by_another: ctx
            .ownership
            .owner_of(model_uuid, &found.uri.short())
            .is_some_and(|owner| owner != uid),
    })
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
/// which report no checksum, and to name the keys a held or planned update changes.
pub(super) async fn read_content(
    ctx: &Context,
    model_uuid: &str,
    uri: &SecretUri,
) -> Result<SecretContent, Problem> {
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
            format!("cannot read the content of {uri}: {e}"),
        )
        .transient()),
        None => Err(Problem::new(
            reason::JUJU_ERROR,
            format!("Juju did not return the content of {uri}"),
        )
        .transient()),
    }
}
