//! The JujuSecret controller: one Juju user secret per JujuSecret.
//!
//! A pass is observe → decide → act, each in its own module:
//! - [`observe`]: the spec, the desired content, the operator's ownership record for the
//!   object and the model's shared listing (never the status, which is output only);
//! - [`decide`]: a pure function from those facts to a plan (the Juju write, a take-over
//!   in the record, the status to report);
//! - [`act`]: claim → Juju write → confirm, through the per-model write batcher;
//!
//! then the status is written with server-side apply. Deletion is [`cleanup`], which
//! removes only what the ownership record proves the object owns. Juju problems become a
//! `Ready=False` condition with a specific reason and a Warning event, never a crash
//! loop; transient ones are retried with backoff.

mod act;
mod cleanup;
mod decide;
mod finisher;
mod observe;
mod preview;
mod revisions;
mod tail;

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};
use tracing::{Instrument, instrument, warn};

use super::content::{ContentProblem, Sources};
use super::outcome::{self, Problem};
use super::{Context, Error, now_rfc3339};
use crate::crd::condition::{Condition, READY, reason};
use crate::crd::secret::{DeletionPolicy, JujuSecret, JujuSecretStatus, ManagementPolicy};
use act::Acted;
use act::act;
use cleanup::cleanup;
use decide::decide;
pub use finisher::{Finisher, has_finalizer};
use juju_client::SecretUri;
use observe::observe;
pub use preview::{SecretPreview, key_changes, preview};
pub use tail::{DRAIN_TIMEOUT, Tails};
use tail::{Next, Step};

/// Finalizer that lets the operator remove the Juju secret before the object goes.
pub const FINALIZER: &str = "secrets.juju.is/cleanup";

impl From<ContentProblem> for Problem {
    fn from(p: ContentProblem) -> Self {
        match p {
            ContentProblem::Kube(e) => {
                Problem::new(reason::KUBERNETES_ERROR, e.to_string()).transient()
            }
            ContentProblem::Juju(p) => *p,
            p if p.is_source_missing() => Problem::new(reason::SOURCE_NOT_FOUND, p.to_string()),
            p => Problem::new(reason::INVALID_CONTENT, p.to_string()),
        }
    }
}

/// A successful pass.
#[derive(Debug)]
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
    /// The revisions Juju holds, once known.
    revisions: Option<crate::crd::secret::RevisionsStatus>,
    /// While suspended: what resuming would change.
    plan: Option<crate::crd::secret::PlannedChange>,
}

/// Entry point for the kube-runtime controller. A pass whose Juju write is queued
/// gives its slot back and finishes as a task ([`tail`]).
pub async fn reconcile(
    js: Arc<JujuSecret>,
    ctx: Arc<Context>,
    tails: Arc<Tails>,
) -> Result<Action, Error> {
    let namespace = js.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<JujuSecret> = Api::namespaced(ctx.client.clone(), &namespace);
    let deleting = js.metadata.deletion_timestamp.is_some();
    if !has_finalizer(&js) {
        if !deleting && ctx.finisher.running() {
            // A new object: Juju first, then the finalizer and the status, from the
            // finisher (see `finisher`). Its deletion policy changed meanwhile: the
            // record's mark follows it, durably, before anything else.
            let retain = leaves_secret(&js);
            if ctx.ownership.remark(&js.uid().unwrap_or_default(), retain) {
                ctx.ownership.persist().await.map_err(Error::Record)?;
            }
            return run_pass(&js, &ctx, &tails).await;
        }
        if deleting && ctx.ownership.entry(&js.uid().unwrap_or_default()).is_some() {
            // Being deleted before its finalizer came (another finalizer holds it):
            // what its pass wrote to Juju is cleaned up now.
            return run_cleanup(&js, &ctx, &tails).await;
        }
    }
    finalizer(&api, FINALIZER, js, |event| async {
        match event {
            Finalizer::Apply(js) => {
                // Its finalizer is there: a claim made before it is no longer marked.
                ctx.ownership.finalized(&js.uid().unwrap_or_default());
                run_pass(&js, &ctx, &tails).await
            }
            Finalizer::Cleanup(js) => run_cleanup(&js, &ctx, &tails).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// A pass of `js`; what is left of it once its Juju write is queued runs as a tail.
async fn run_pass(
    js: &Arc<JujuSecret>,
    ctx: &Arc<Context>,
    tails: &Arc<Tails>,
) -> Result<Action, Error> {
    let handed_off = Some(refresh_interval(js, ctx));
    let pass = apply(js, ctx);
    let next = tails.run(js, handed_off, pass).await?;
    Ok(next.map_or_else(Action::await_change, Action::requeue))
}

/// The cleanup of `js`, once no pass of it runs as a tail.
async fn run_cleanup(js: &JujuSecret, ctx: &Context, tails: &Tails) -> Result<Action, Error> {
    tails.wait_idle(&js.uid().unwrap_or_default()).await;
    cleanup(js, ctx).await
}

/// Whether deleting `js` leaves its Juju secret in place (`deletionPolicy: Retain`, or
/// `managementPolicy: ObserveOnly`), as [`cleanup`] decides.
fn leaves_secret(js: &JujuSecret) -> bool {
    js.spec.deletion_policy == DeletionPolicy::Retain
        || js.spec.management_policy == ManagementPolicy::ObserveOnly
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

#[instrument(skip_all, fields(namespace = js.namespace().unwrap_or_default(), name = js.name_any()))]
async fn apply(js: &Arc<JujuSecret>, ctx: &Arc<Context>) -> Result<Step, Error> {
    // The last status written: output only. It feeds the next status (condition
    // timestamps, the drift event), never a decision about Juju.
    let previous = js.status.clone().unwrap_or_default();
    // Set to the model once a create was attempted (a failure status then still names
    // the model).
    let mut base = JujuSecretStatus::default();
    let outcome = match sync(js, ctx, &mut base).await {
        Ok(Acted::Done(synced)) => Ok(synced),
        Ok(Acted::Waiting(waiting)) => {
            // The rest of the pass: Juju's answer, then the status. It owns what it
            // needs and keeps no room for the steps already done.
            let (js, ctx, model_uuid) = (js.clone(), ctx.clone(), base.model_uuid);
            let tail = async move {
                let outcome = waiting.await;
                match Box::pin(report(&js, &ctx, &previous, model_uuid, outcome)).await {
                    // The reconcile has returned: the error policy's backoff is the
                    // tail's to apply.
                    Err(error) => {
                        let delay = ctx.backoff.next(&object_key(&js));
                        warn!(%error, retry_in = ?delay, "reconcile error after the Juju write");
                        Ok(Some(delay))
                    }
                    next => next,
                }
            };
            return Ok(Step::Waiting(Box::pin(tail.in_current_span())));
        }
        Err(problem) => Err(problem),
    };
    report(js, ctx, &previous, base.model_uuid, outcome)
        .await
        .map(Step::Done)
}

/// Reports a pass's outcome in the status (and a Warning event for a new problem);
/// says when the object's next pass is due. `model_uuid`: the model a create was
/// attempted in, if any (a failure status then still names it).
async fn report(
    js: &JujuSecret,
    ctx: &Context,
    previous: &JujuSecretStatus,
    model_uuid: Option<String>,
    outcome: Result<Synced, Problem>,
) -> Result<Next, Error> {
    let key = object_key(js);
    let next = match &outcome {
        Ok(_) => {
            ctx.backoff.reset(&key);
            refresh_interval(js, ctx)
        }
        Err(problem) => {
            if outcome::ready_changes(&previous.conditions, problem) {
                warn!(reason = problem.reason, message = %problem.message, "JujuSecret not synced");
                ctx.publish(
                    js,
                    EventType::Warning,
                    problem.reason,
                    "Sync",
                    Some(problem.message.clone()),
                );
            }
            if problem.transient {
                ctx.backoff.next(&key)
            } else {
                refresh_interval(js, ctx)
            }
        }
    };
    let status = || {
        // What the ownership record says of the object: the IDs a status names when
        // the pass did not observe them itself (never the previous status's, which
        // anyone with status rights may have written).
        let mut recorded = recorded_status(ctx, js);
        recorded.model_uuid = model_uuid.clone().or(recorded.model_uuid);
        match &outcome {
            Ok(synced) => synced_status(js, previous, &recorded, synced),
            Err(problem) => problem_status(js, previous, &recorded, problem),
        }
    };
    // An object without the finalizer gets it, then its status, from the finisher.
    if js.metadata.deletion_timestamp.is_none() && !has_finalizer(js) && ctx.finisher.running() {
        let s = status();
        let changed = !outcome::status_unchanged(js.status.is_some(), previous, &s);
        // Boxed: a pass waiting for room holds the push apart, not in its own future.
        Box::pin(ctx.finisher.push(js, changed.then_some(s))).await;
        return Ok(Some(next));
    }
    if outcome::status_unchanged(js.status.is_some(), previous, &status()) {
        return Ok(Some(next));
    }
    // In a burst thousands of passes wait here for one of the bounded kube writes,
    // each holding its outcome only: the status is built again once the write may go.
    let Some(_permit) = ctx.kube_writes.acquire().await else {
        // The process no longer leads: the successor reports the object.
        return Ok(Some(next));
    };
    match Box::pin(apply_status(js, ctx, status())).await {
        // The object is gone although this pass ran with the finalizer in place: the
        // apiserver completed a deletion that raced the finalizer being added (seen on a
        // JujuSecret deleted right after it was created). What the pass may have written
        // is cleaned up now, as the finalizer would have done.
        Err(Error::Kube(kube::Error::Api(e))) if e.code == 404 => {
            Box::pin(status_not_found(js, ctx, e)).await?;
            return Ok(None);
        }
        written => written?,
    }
    Ok(Some(next))
}

/// The status write answered 404: if the object is gone, what the pass may have written
/// is cleaned up now ([`outcome::gone_after_status_404`]). Boxed by its caller: the
/// waiting pass stays small.
async fn status_not_found(
    js: &JujuSecret,
    ctx: &Context,
    e: Box<kube::core::Status>,
) -> Result<(), Error> {
    let namespace = js.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<JujuSecret> = Api::namespaced(ctx.client.clone(), &namespace);
    outcome::gone_after_status_404(&api, js, e).await?;
    cleanup(js, ctx).await.map(|_| ())
}

/// A JujuSecret deleted from the API (its watch reported it gone). Normally its cleanup
/// ran before its finalizer was removed and the record holds nothing for it; if the
/// record still does (a deletion that did not wait for the finalizer, or a finalizer
/// removed by hand), the cleanup runs now, retried with backoff while it fails.
pub fn deleted(js: Arc<JujuSecret>, ctx: Arc<Context>, tails: Arc<Tails>) {
    let Some(uid) = js.uid() else {
        return;
    };
    let what = format!(
        "JujuSecret {}/{}",
        js.namespace().unwrap_or_default(),
        js.name_any()
    );
    let record = ctx.clone();
    outcome::clean_up_deleted(
        what,
        ctx.refresh_interval,
        move || record.ownership.entry(&uid).is_some(),
        move || {
            let (js, ctx, tails) = (js.clone(), ctx.clone(), tails.clone());
            async move { run_cleanup(&js, &ctx, &tails).await }
        },
    );
}

/// At start-up, once the cache holds every JujuSecret (`store`): an object whose record entry is
/// still marked as claimed before its finalizer came, and which is gone, was deleted
/// while no operator ran (or before its finalizer, by a process that stopped before it
/// saw the deletion). It is cleaned up now, as its deletion would have been, by its
/// recorded deletion policy. The apiserver is asked before: an object the cache does
/// not hold yet is not gone.
pub async fn sweep(ctx: Arc<Context>, store: &Store<JujuSecret>, tails: Arc<Tails>) {
    let present: std::collections::HashSet<String> =
        store.state().iter().filter_map(|o| o.uid()).collect();
    let mut swept = 0;
    for (uid, entry) in ctx.ownership.unfinalized() {
        let Some(mark) = entry.unfinalized.clone() else {
            continue;
        };
        if present.contains(&uid) {
            continue;
        }
        let api: Api<JujuSecret> = Api::namespaced(ctx.client.clone(), &mark.namespace);
        match api.get_opt(&mark.name).await {
            Ok(Some(o)) if o.uid().as_deref() == Some(uid.as_str()) => continue,
            Ok(_) => {}
            Err(error) => {
                warn!(namespace = mark.namespace, name = mark.name, %error, "cannot tell whether a JujuSecret claimed before its finalizer is gone; left for the next start");
                continue;
            }
        }
        let gone = serde_json::from_value::<JujuSecret>(serde_json::json!({
            "apiVersion": "secrets.juju.is/v1alpha1",
            "kind": "JujuSecret",
            "metadata": {"name": mark.name, "namespace": mark.namespace, "uid": uid},
            "spec": {
                "model": entry.model,
                "name": entry.name,
                "deletionPolicy": if mark.retain { "Retain" } else { "Delete" },
            },
        }));
        match gone {
            Ok(js) => {
                swept += 1;
                deleted(Arc::new(js), ctx.clone(), tails.clone());
            }
            Err(error) => {
                warn!(%error, "a record entry claimed before its finalizer cannot be read back")
            }
        }
    }
    tracing::info!(
        swept,
        "start-up sweep of objects deleted before their finalizer came: done"
    );
}

/// One pass: observe → decide → act (what follows a queued Juju write is left in
/// [`Acted::Waiting`]).
async fn sync(
    js: &Arc<JujuSecret>,
    ctx: &Arc<Context>,
    base: &mut JujuSecretStatus,
) -> Result<Acted, Problem> {
    let facts = observe(js, ctx, refresh_interval(js, ctx), &Sources::APPLY).await?;
    let plan = decide(&js.spec, &facts)?;
    // A suspended object reports what resuming would do, key by key.
    let held = match &plan.held {
        Some(write) => preview::planned(ctx, &facts, write).await?,
        None => None,
    };
    match act(js, ctx, facts, plan, base).await? {
        Acted::Done(synced) => Ok(Acted::Done(revise(js, ctx, synced, held).await?)),
        Acted::Waiting(waiting) => {
            let (js, ctx) = (js.clone(), ctx.clone());
            Ok(Acted::Waiting(Box::pin(async move {
                let synced = waiting.await?;
                Box::pin(revise(&js, &ctx, synced, held)).await
            })))
        }
    }
}

/// The end of a pass that reached its state: what resuming would change (while
/// suspended), and the revisions Juju keeps.
async fn revise(
    js: &JujuSecret,
    ctx: &Context,
    mut synced: Synced,
    held: Option<crate::crd::secret::PlannedChange>,
) -> Result<Synced, Problem> {
    synced.plan = held;
    if synced.reason == reason::SYNCED
        && let Some(uri) = synced.uri.clone()
    {
        synced.revisions =
            revisions::enforce(js, ctx, &synced.model_uuid, &uri, synced.owned).await?;
    }
    Ok(synced)
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

/// The status fields the ownership record can say of the object.
fn recorded_status(ctx: &Context, js: &JujuSecret) -> JujuSecretStatus {
    let Some(entry) = js.uid().and_then(|uid| ctx.ownership.entry(&uid)) else {
        return JujuSecretStatus::default();
    };
    let uri = entry.uri.as_deref().and_then(|u| SecretUri::parse(u).ok());
    let owned = uri.is_some();
    JujuSecretStatus {
        secret_id: uri.as_ref().map(SecretUri::short),
        secret_uri: uri.as_ref().map(|u| u.full(&entry.model)),
        model_uuid: Some(entry.model),
        revision: entry.revision.filter(|_| owned),
        content_mac: entry.mac.filter(|_| owned),
        owned: Some(owned),
        auto_prune: entry.auto_prune,
        ..JujuSecretStatus::default()
    }
}

/// The status of a pass that reached a state (`Synced`, or a reason such as `Conflict`):
/// what the pass observed, else what the record says.
fn synced_status(
    js: &JujuSecret,
    previous: &JujuSecretStatus,
    recorded: &JujuSecretStatus,
    s: &Synced,
) -> JujuSecretStatus {
    let ok = s.reason == reason::SYNCED;
    let condition = ready_condition(js, previous, ok, s.reason, &s.message);
    let condition_changed =
        previous.conditions.iter().find(|c| c.type_ == READY) != Some(&condition);
    JujuSecretStatus {
        secret_id: if super::mutants::active(super::mutants::STATUS_WRONG_SECRET_ID) {
            Some("secret:d4mutantd4mutantd4mu".to_owned())
        } else {
            s.uri
                .as_ref()
                .map(SecretUri::short)
                .or(recorded.secret_id.clone())
        },
        secret_uri: s
            .uri
            .as_ref()
            .map(|u| u.full(&s.model_uuid))
            .or(recorded.secret_uri.clone()),
        model_uuid: Some(s.model_uuid.clone()),
        revision: s.revision.or(recorded.revision),
        observed_generation: js.metadata.generation,
        last_sync_time: if s.wrote || condition_changed || previous.last_sync_time.is_none() {
            Some(now_rfc3339())
        } else {
            previous.last_sync_time.clone()
        },
        content_mac: s.content_mac.clone(),
        owned: Some(s.owned),
        auto_prune: s.auto_prune,
        revisions: s.revisions.clone(),
        plan: s.plan.clone(),
        pending_create: None,
        conditions: vec![condition],
    }
}

/// The status of a pass that failed: the record's view of the object (the previous
/// status contributes only its condition's transition time and the last sync time).
fn problem_status(
    js: &JujuSecret,
    previous: &JujuSecretStatus,
    recorded: &JujuSecretStatus,
    p: &Problem,
) -> JujuSecretStatus {
    JujuSecretStatus {
        observed_generation: js.metadata.generation,
        last_sync_time: previous.last_sync_time.clone(),
        conditions: vec![ready_condition(js, previous, false, p.reason, &p.message)],
        ..recorded.clone()
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

/// Writes the status with server-side apply; the caller holds a kube write permit.
async fn apply_status(
    js: &JujuSecret,
    ctx: &Context,
    status: JujuSecretStatus,
) -> Result<(), Error> {
    let namespace = js.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<JujuSecret> = Api::namespaced(ctx.client.clone(), &namespace);
    outcome::apply_status(&api, &js.name_any(), &status).await
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
            revisions: None,
            plan: None,
        }
    }

    #[test]
    fn a_pass_that_finds_nothing_new_produces_an_identical_status() {
        let js = jujusecret(1, None);
        let none = JujuSecretStatus::default();
        let first = synced_status(&js, &none, &none, &synced(true));
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
        let again = synced_status(&js, &first, &none, &synced(false));
        assert_eq!(again, first, "no write needed: identical status");
    }

    #[test]
    fn a_problem_keeps_the_ids_and_flips_the_condition_once() {
        let js = jujusecret(1, None);
        let none = JujuSecretStatus::default();
        let ok = synced_status(&js, &none, &none, &synced(true));
        // What the record holds for the object.
        let recorded = JujuSecretStatus {
            secret_id: ok.secret_id.clone(),
            secret_uri: ok.secret_uri.clone(),
            model_uuid: ok.model_uuid.clone(),
            revision: Some(2),
            owned: Some(true),
            ..JujuSecretStatus::default()
        };
        let js = jujusecret(2, Some(ok.clone()));
        let problem = Problem::new(reason::SOURCE_NOT_FOUND, "Secret team-a/src not found");
        let failed = problem_status(&js, &ok, &recorded, &problem);
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
        assert_eq!(problem_status(&js, &failed, &recorded, &problem), failed);
    }

    #[test]
    fn a_forged_status_is_not_carried_forward() {
        let forged = JujuSecretStatus {
            secret_id: Some("secret:d4forgedd4forgedd4fo".into()),
            secret_uri: Some("secret://m/d4forgedd4forgedd4fo".into()),
            model_uuid: Some("someone-elses-model".into()),
            revision: Some(7),
            owned: Some(true),
            ..JujuSecretStatus::default()
        };
        let js = jujusecret(1, Some(forged.clone()));
        let problem = Problem::new(reason::JUJU_UNAVAILABLE, "connection refused");
        let failed = problem_status(&js, &forged, &JujuSecretStatus::default(), &problem);
        assert_eq!(
            (
                failed.secret_id,
                failed.model_uuid,
                failed.revision,
                failed.owned
            ),
            (None, None, None, None)
        );
        let conflict = Synced {
            uri: None,
            revision: None,
            reason: reason::CONFLICT,
            owned: false,
            ..synced(false)
        };
        let after = synced_status(&js, &forged, &JujuSecretStatus::default(), &conflict);
        assert_eq!((after.secret_id, after.revision), (None, None));
    }

    #[test]
    fn success_clears_the_pending_create_marker() {
        let js = jujusecret(1, None);
        let pending = JujuSecretStatus {
            pending_create: Some("2026-11-23T00:00:00Z".into()),
            ..Default::default()
        };
        let done = synced_status(&js, &pending, &JujuSecretStatus::default(), &synced(true));
        assert_eq!(done.pending_create, None);
    }

    #[test]
    fn event_notes_are_cut_to_the_api_limit() {
        let e = event(EventType::Warning, "X", "Y", Some("é".repeat(800)));
        assert!(e.note.unwrap().len() <= 1024);
    }

    /// The size of the future `f` returns.
    fn future_size<A, B, C, D, E, F: Future>(_: impl Fn(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn a_pass_waiting_for_its_status_write_holds_its_outcome_only() {
        // Thousands of passes wait for a status write in a burst (a restart over
        // thousands of objects), each as this future: it must hold the outcome, not
        // a built status, its patch and the write's request.
        let waiting = future_size::<&JujuSecret, &Context, &JujuSecretStatus, _, _, _>(report);
        assert!(waiting <= 1536, "report's future: {waiting} bytes");
    }
}
