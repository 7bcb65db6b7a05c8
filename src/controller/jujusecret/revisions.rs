//! A secret's revisions: what the status reports of them, and `keepRevisions` and
//! `removeRevisions`, applied after a pass that found the secret in sync.
//!
//! Only a secret the record says is the object's own, under `managementPolicy: Full`
//! and not suspended, loses revisions; the latest revision is never removed. The
//! shared listing tells how many revisions exist and the oldest; the exact list is read
//! (one ListSecrets for the secret) only when something is to be removed.

use juju_client::{ErrorCode, SecretFilter, SecretRemoval, SecretSelector, SecretUri};
use kube::runtime::events::EventType;
use tracing::info;

use super::super::Context;
use super::super::juju_state::{SecretSummary, SharedFailure};
use super::super::outcome::Problem;
use super::refresh_interval;
use crate::crd::condition::reason;
use crate::crd::secret::{JujuSecret, ManagementPolicy, RevisionRef, RevisionsStatus};

fn summary(s: &SecretSummary) -> RevisionsStatus {
    RevisionsStatus {
        count: s.revision_count,
        latest: s.latest_revision,
        oldest: s.oldest_revision,
    }
}

/// The revisions to remove from `existing` (sorted): those `remove` names for secret
/// `secret_id`, and the oldest beyond `keep`; never `latest` (naming it is an error).
pub(super) fn to_remove(
    keep: Option<u32>,
    remove: &[RevisionRef],
    secret_id: &str,
    latest: u64,
    existing: &[u64],
) -> Result<Vec<u64>, String> {
    let mut out = std::collections::BTreeSet::new();
    for r in remove.iter().filter(|r| r.secret_id == secret_id) {
        if r.revision == latest {
            return Err(format!(
                "removeRevisions names revision {latest} of {secret_id}, its latest: change the content first (a new revision), then remove it"
            ));
        }
        if existing.contains(&r.revision) {
            out.insert(r.revision);
        }
    }
    if let Some(keep) = keep {
        let left: Vec<u64> = existing
            .iter()
            .copied()
            .filter(|r| !out.contains(r))
            .collect();
        let excess = left.len().saturating_sub(keep as usize);
        out.extend(left.iter().copied().filter(|r| *r != latest).take(excess));
    }
    Ok(out.into_iter().collect())
}

/// Applies `keepRevisions` and `removeRevisions` to the secret `uri` of `js` (when
/// `owned`) and returns what Juju holds then.
pub(super) async fn enforce(
    js: &JujuSecret,
    ctx: &Context,
    model_uuid: &str,
    uri: &SecretUri,
    owned: bool,
) -> Result<Option<RevisionsStatus>, Problem> {
    let listing = ctx
        .listings
        .get(model_uuid, refresh_interval(js, ctx))
        .await?;
    let Some(found) = listing.by_uri(uri).cloned() else {
        return Ok(None);
    };
    let spec = &js.spec;
    let manages = owned && spec.management_policy == ManagementPolicy::Full && !spec.suspend;
    let id = uri.short();
    let wanted = spec
        .keep_revisions
        .is_some_and(|n| found.revision_count > n)
        || spec
            .remove_revisions
            .iter()
            .any(|r| r.secret_id == id && r.revision >= found.oldest_revision);
    if !manages || !wanted {
        return Ok(Some(summary(&found)));
    }
    let filter = SecretFilter {
        uri: Some(uri.clone()),
        ..Default::default()
    };
    let listed = ctx
        .juju
        .list_secrets(model_uuid, &filter, false)
        .await
        .map_err(SharedFailure::from)?;
    let Some(fresh) = listed.first() else {
        return Ok(None);
    };
    let existing: Vec<u64> = fresh.revisions.iter().map(|r| r.revision).collect();
    let remove = to_remove(
        spec.keep_revisions,
        &spec.remove_revisions,
        &id,
        fresh.latest_revision,
        &existing,
    )
    .map_err(|m| Problem::new(reason::INVALID_SPEC, m))?;
    let mut now = SecretSummary::from(fresh);
    if !remove.is_empty() {
        let results = ctx
            .juju
            .remove_secrets(
                model_uuid,
                &[SecretRemoval {
                    secret: SecretSelector::Uri(uri.clone()),
                    revisions: Some(remove.clone()),
                }],
            )
            .await
            .map_err(SharedFailure::from)?;
        match results.into_iter().next() {
            // Gone already (removed by hand meanwhile): nothing left to do.
            Some(Err(e)) if e.code != ErrorCode::NotFound => {
                return Err(Problem::new(
                    reason::JUJU_ERROR,
                    format!("cannot remove revisions {remove:?} of {uri}: {e}"),
                ));
            }
            _ => {}
        }
        let left: Vec<u64> = existing
            .iter()
            .copied()
            .filter(|r| !remove.contains(r))
            .collect();
        now.revision_count = u32::try_from(left.len()).unwrap_or(u32::MAX);
        now.oldest_revision = left.iter().copied().min().unwrap_or(now.latest_revision);
        info!(secret = %uri, revisions = ?remove, "removed revisions");
        ctx.publish(
            js,
            EventType::Normal,
            "RevisionsRemoved",
            "RemoveRevisions",
            Some(format!(
                "removed revisions {} of Juju secret {uri}",
                remove
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        );
    }
    ctx.listings.record(model_uuid, now.clone()).await;
    Ok(Some(summary(&now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "secret:9m4e2mr0ui3e8a215n4g";

    fn named(revision: u64) -> RevisionRef {
        RevisionRef {
            secret_id: ID.into(),
            revision,
        }
    }

    #[test]
    fn keep_removes_the_oldest_and_never_the_latest() {
        assert_eq!(
            to_remove(Some(2), &[], ID, 5, &[1, 2, 3, 4, 5]),
            Ok(vec![1, 2, 3])
        );
        assert_eq!(to_remove(Some(5), &[], ID, 5, &[1, 2, 3, 4, 5]), Ok(vec![]));
        // The latest removed by hand: what is left is kept down to N all the same.
        assert_eq!(to_remove(Some(1), &[], ID, 5, &[3, 4]), Ok(vec![3]));
        assert_eq!(to_remove(Some(1), &[], ID, 5, &[5]), Ok(vec![]));
    }

    #[test]
    fn named_revisions_are_removed_once_and_only_for_their_secret() {
        assert_eq!(
            to_remove(None, &[named(2)], ID, 4, &[1, 2, 3, 4]),
            Ok(vec![2])
        );
        // Applied again: already gone, nothing to do.
        assert_eq!(to_remove(None, &[named(2)], ID, 4, &[1, 3, 4]), Ok(vec![]));
        // Another secret (the object was recreated): ignored.
        let other = RevisionRef {
            secret_id: "secret:9m4e2mr0ui3e8a215n50".into(),
            revision: 1,
        };
        assert_eq!(to_remove(None, &[other], ID, 4, &[1, 2, 3, 4]), Ok(vec![]));
        // Both: the named one counts towards what is kept.
        assert_eq!(
            to_remove(Some(2), &[named(3)], ID, 4, &[1, 2, 3, 4]),
            Ok(vec![1, 3])
        );
    }

    #[test]
    fn the_latest_revision_cannot_be_named() {
        let e = to_remove(None, &[named(4)], ID, 4, &[1, 2, 3, 4]).unwrap_err();
        assert!(e.contains("latest"), "{e}");
    }
}
