//! Preview: what a pass would do, without doing it. The same observe and decide a pass
//! runs, then the decided (or, while suspended, held back) write described key by key:
//! keys are compared with the content Juju holds, and only their names leave here.
//!
//! The operator uses it for a suspended object's `status.plan`; the `plan` command for
//! every object of the manifests it reads.

use std::collections::BTreeSet;

use super::super::Context;
use super::super::content::Sources;
use super::super::outcome::Problem;
use super::decide::{Write, decide};
use super::observe::{Observed, observe, read_content};
use super::revisions;
use crate::crd::condition::reason;
use crate::crd::secret::ManagementPolicy;
use crate::crd::secret::{JujuSecret, PlannedChange};
use juju_client::SecretContent;

/// What applying a JujuSecret's spec would do in Juju.
#[derive(Debug, Default)]
pub struct SecretPreview {
    /// The model, as `owner/name`.
    pub model: String,
    /// The model's UUID.
    pub model_uuid: String,
    /// The secret the object has or would take over (`secret:<id>`).
    pub secret_id: Option<String>,
    /// The existing secret would be adopted.
    pub adopt: bool,
    /// The object is suspended: the write waits until it is resumed.
    pub suspended: bool,
    /// The Juju write: create or update, with the keys it changes.
    pub write: Option<PlannedChange>,
    /// A rename: (from, to).
    pub rename: Option<(String, String)>,
    /// A new revision: (latest now, the new one).
    pub revision: Option<(u64, u64)>,
    /// Revisions `keepRevisions` / `removeRevisions` would remove afterwards.
    pub remove_revisions: Vec<u64>,
}

/// What applying `js` would do, read from the API (or `sources`) and Juju only.
pub async fn preview(
    js: &JujuSecret,
    ctx: &Context,
    sources: &Sources,
) -> Result<SecretPreview, Problem> {
    let facts = observe(js, ctx, ctx.refresh_interval, sources).await?;
    let plan = decide(&js.spec, &facts)?;
    let suspended = plan.held.is_some() || js.spec.suspend;
    let write = plan.held.as_ref().unwrap_or(&plan.write);
    let planned = planned(ctx, &facts, write).await?;
    let found = facts.found.as_ref();
    let rename = match (write, found) {
        (Write::Update { update, .. }, Some(found)) => update
            .label
            .clone()
            .map(|to| (found.label.clone().unwrap_or_else(|| found.uri.short()), to)),
        _ => None,
    };
    let revision = match (write, found) {
        (Write::Update { update, .. }, Some(found)) if update.content.is_some() => {
            Some((found.latest_revision, found.latest_revision + 1))
        }
        _ => None,
    };
    // What the pass does after a write or none: the same rule, on the revisions Juju
    // would hold then.
    let spec = &js.spec;
    let remove_revisions = match found {
        Some(found)
            if plan.outcome.owned
                && spec.management_policy == ManagementPolicy::Full
                && !suspended =>
        {
            let mut existing = found.revisions.clone();
            let mut latest = found.latest_revision;
            if let Some((_, new)) = revision {
                existing.push(new);
                latest = new;
            }
            revisions::to_remove(
                spec.keep_revisions,
                &spec.remove_revisions,
                &found.uri,
                latest,
                &existing,
            )
            .map_err(|m| Problem::new(reason::INVALID_SPEC, m))?
        }
        _ => Vec::new(),
    };
    Ok(SecretPreview {
        model: facts.model.qualified_name(),
        model_uuid: facts.model.uuid.clone(),
        secret_id: found.map(|f| f.uri.short()),
        adopt: plan.adopted,
        suspended,
        write: planned,
        rename,
        revision,
        remove_revisions,
    })
}

/// The change `write` stands for, its keys named by comparing the desired content with
/// the content Juju holds (read only when the content changes).
pub(super) async fn planned(
    ctx: &Context,
    facts: &Observed,
    write: &Write,
) -> Result<Option<PlannedChange>, Problem> {
    let desired = facts.content.as_ref().map(|(c, _)| c);
    Ok(match write {
        Write::Nothing => None,
        Write::Create => Some(PlannedChange {
            action: "Create".into(),
            keys_added: desired
                .map(|c| c.keys().map(str::to_owned).collect())
                .unwrap_or_default(),
            ..PlannedChange::default()
        }),
        Write::Update { update, changes } => {
            let mut planned = PlannedChange {
                action: "Update".into(),
                changes: changes.iter().map(|c| (*c).to_owned()).collect(),
                ..PlannedChange::default()
            };
            if planned.changes.is_empty() && update.auto_prune.is_some() {
                planned.changes.push("autoPrune".into());
            }
            if let (Some(desired), Some(found)) = (&update.content, &facts.found) {
                let current = read_content(ctx, &facts.model.uuid, &found.uri).await?;
                key_changes(desired, &current, &mut planned);
            }
            Some(planned)
        }
    })
}

/// Fills in which keys a new revision `desired` adds, removes and changes against
/// `current`. Values are compared here and nowhere reported.
pub fn key_changes(desired: &SecretContent, current: &SecretContent, into: &mut PlannedChange) {
    let now: BTreeSet<&str> = current.keys().collect();
    for (key, value) in desired.iter() {
        match current.get(key) {
            None => into.keys_added.push(key.to_owned()),
            Some(v) if v.expose() != value.expose() => into.keys_changed.push(key.to_owned()),
            Some(_) => {}
        }
    }
    into.keys_removed = now
        .into_iter()
        .filter(|k| desired.get(k).is_none())
        .map(str::to_owned)
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(pairs: &[(&str, &str)]) -> SecretContent {
        let mut c = SecretContent::new();
        for (k, v) in pairs {
            c.insert(*k, *v);
        }
        c
    }

    #[test]
    fn keys_are_named_by_what_happens_to_them() {
        let desired = content(&[("host", "db"), ("password", "new"), ("port", "5432")]);
        let current = content(&[("host", "db"), ("password", "old"), ("legacy", "x")]);
        let mut p = PlannedChange::default();
        key_changes(&desired, &current, &mut p);
        assert_eq!(p.keys_added, ["port"]);
        assert_eq!(p.keys_changed, ["password"]);
        assert_eq!(p.keys_removed, ["legacy"]);
        let text = serde_json::to_string(&p).unwrap_or_default();
        for value in ["new", "old", "5432", "\"x\""] {
            assert!(!text.contains(value), "{value} in {text}");
        }
    }
}
