//! A secret's revisions: what the status reports of them, and `keepRevisions` and
//! `removeRevisions`, applied after a pass that found the secret in sync.
//!
//! Only a secret the record says is the object's own, under `managementPolicy: Full`
//! and not suspended, loses revisions; the latest revision is never removed. The shared
//! listing (refreshed every interval, and told of the operator's own writes) holds each
//! secret's revisions, so nothing is read from Juju for this; a RemoveSecrets goes out
//! only when there is something to remove.

use juju_client::{ErrorCode, SecretRemoval, SecretSelector, SecretUri};
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
        count: u32::try_from(s.revisions.len()).unwrap_or(u32::MAX),
        latest: s.latest_revision,
        oldest: s.revisions.first().copied().unwrap_or(s.latest_revision),
    }
}

/// The revisions to remove from `existing` (sorted): those `remove` names for secret
/// `secret_id`, and the oldest beyond `keep`; never `latest` (naming it, or a revision
/// after it, is an error; an entry whose `secretId` is not a secret URI too).
pub(super) fn to_remove(
    keep: Option<u32>,
    remove: &[RevisionRef],
    secret_id: &SecretUri,
    latest: u64,
    existing: &[u64],
) -> Result<Vec<u64>, String> {
    let mut out = std::collections::BTreeSet::new();
    for r in remove {
        let named = SecretUri::parse(r.secret_id.trim()).map_err(|_| {
            format!(
                "removeRevisions: {:?} is not a secret ID (secret:<id>, as status.secretId)",
                r.secret_id
            )
        })?;
        if named.id() != secret_id.id() {
            continue;
        }
        if r.revision >= latest {
            return Err(format!(
                "removeRevisions names revision {} of {secret_id}, whose latest is {latest}: \
                 the latest cannot be removed (change the content first, then remove the old revision)",
                r.revision
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
    let found = {
        let listing = ctx
            .listings
            .get(model_uuid, refresh_interval(js, ctx))
            .await?;
        // A clone of one entry: the listing itself is released before it is written.
        listing.by_uri(uri).cloned()
    };
    let Some(mut found) = found else {
        return Ok(None);
    };
    let spec = &js.spec;
    if !owned || spec.management_policy != ManagementPolicy::Full || spec.suspend {
        return Ok(Some(summary(&found)));
    }
    let remove = to_remove(
        spec.keep_revisions,
        &spec.remove_revisions,
        uri,
        found.latest_revision,
        &found.revisions,
    )
    .map_err(|m| Problem::new(reason::INVALID_SPEC, m))?;
    if remove.is_empty() {
        return Ok(Some(summary(&found)));
    }
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
        Some(Err(e)) if e.code == ErrorCode::NotFound => {
            // Gone already (removed by hand since the listing): read Juju again.
            ctx.listings.invalidate(model_uuid).await;
            return Ok(Some(summary(&found)));
        }
        Some(Err(e)) => {
            return Err(Problem::new(
                reason::JUJU_ERROR,
                format!("cannot remove revisions {remove:?} of {uri}: {e}"),
            ));
        }
        _ => {}
    }
    found.revisions.retain(|r| !remove.contains(r));
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
    let status = summary(&found);
    ctx.listings.record(model_uuid, found).await;
    Ok(Some(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "secret:9m4e2mr0ui3e8a215n4g";

    fn id() -> SecretUri {
        SecretUri::parse(ID).unwrap()
    }

    fn named(revision: u64) -> RevisionRef {
        RevisionRef {
            secret_id: ID.into(),
            revision,
        }
    }

    #[test]
    fn keep_removes_the_oldest_and_never_the_latest() {
        assert_eq!(
            to_remove(Some(2), &[], &id(), 5, &[1, 2, 3, 4, 5]),
            Ok(vec![1, 2, 3])
        );
        assert_eq!(
            to_remove(Some(5), &[], &id(), 5, &[1, 2, 3, 4, 5]),
            Ok(vec![])
        );
        // The latest removed by hand: what is left is kept down to N all the same.
        assert_eq!(to_remove(Some(1), &[], &id(), 5, &[3, 4]), Ok(vec![3]));
        assert_eq!(to_remove(Some(1), &[], &id(), 5, &[5]), Ok(vec![]));
    }

    #[test]
    fn named_revisions_are_removed_once_and_only_for_their_secret() {
        assert_eq!(
            to_remove(None, &[named(2)], &id(), 4, &[1, 2, 3, 4]),
            Ok(vec![2])
        );
        // Applied again: already gone, nothing to do.
        assert_eq!(
            to_remove(None, &[named(2)], &id(), 4, &[1, 3, 4]),
            Ok(vec![])
        );
        // Another secret (the object was recreated): ignored.
        let other = RevisionRef {
            secret_id: "secret:9m4e2mr0ui3e8a215n50".into(),
            revision: 1,
        };
        assert_eq!(
            to_remove(None, &[other], &id(), 4, &[1, 2, 3, 4]),
            Ok(vec![])
        );
        // Both: the named one counts towards what is kept.
        assert_eq!(
            to_remove(Some(2), &[named(3)], &id(), 4, &[1, 2, 3, 4]),
            Ok(vec![1, 3])
        );
    }

    #[test]
    fn the_latest_revision_or_a_later_one_cannot_be_named() {
        for revision in [4, 9] {
            let e = to_remove(None, &[named(revision)], &id(), 4, &[1, 2, 3, 4]).unwrap_err();
            assert!(e.contains("latest"), "{e}");
        }
    }

    #[test]
    fn a_secret_id_is_compared_as_an_id_and_must_be_one() {
        let full = RevisionRef {
            secret_id: "secret://26e9b4dd-e657-4a2c-8f25-222c879fd45d/9m4e2mr0ui3e8a215n4g".into(),
            revision: 2,
        };
        assert_eq!(
            to_remove(None, &[full], &id(), 4, &[1, 2, 3, 4]),
            Ok(vec![2])
        );
        let bad = RevisionRef {
            secret_id: "db-creds".into(),
            revision: 2,
        };
        assert!(to_remove(None, &[bad], &id(), 4, &[1, 2, 3, 4]).is_err());
    }
}
