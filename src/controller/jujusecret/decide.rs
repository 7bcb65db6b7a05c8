//! Decide: a plain function from the observed facts to a plan — the Juju write to make
//! (none, create, or one update), whether the record takes the found secret over, and the
//! status the pass reports when the write succeeds. No clients, no clock, no status read.

use super::super::outcome::Problem;
use super::super::ownership::Ownership;
use super::Synced;
use super::observe::Observed;
use crate::crd::condition::reason;
use crate::crd::secret::{JujuSecretSpec, ManagementPolicy};
use juju_client::{SecretSelector, SecretUpdate};

/// The Juju write a pass makes.
#[derive(Debug)]
pub(super) enum Write {
    /// Nothing to write.
    Nothing,
    /// Create the secret (claimed in the record first).
    Create,
    /// One update of the found secret; `changes` names what it changes.
    Update {
        update: SecretUpdate,
        changes: Vec<&'static str>,
    },
}

/// What a pass does.
#[derive(Debug)]
pub(super) struct Plan {
    /// Record the found secret as the object's own before anything else (a recognized
    /// create, or an adoption).
    pub take_over: bool,
    /// The take-over is an adoption (a `Adopted` event).
    pub adopted: bool,
    /// The Juju write.
    pub write: Write,
    /// The write a suspended object holds back: what resuming it would do (its plan,
    /// reported in the status). `None` when not suspended or when nothing differs.
    pub held: Option<Write>,
    /// The content in Juju changed under the operator (a `DriftCorrected` event).
    pub drift: bool,
    /// The status to report once the write succeeded (a create fills in the URI).
    pub outcome: Synced,
}

/// The plan for a pass, or the problem that ends it with no write.
pub(super) fn decide(spec: &JujuSecretSpec, facts: &Observed) -> Result<Plan, Problem> {
    let label = &facts.label;
    let model = &facts.model;
    let recorded_owned = facts.entry.as_ref().is_some_and(|e| !e.is_claim());
    let applied_prune = facts.entry.as_ref().and_then(|e| e.auto_prune);
    let desired_mac = facts.content.as_ref().map(|(_, mac)| mac.clone());
    let report = |uri, revision, message: &str, reason, owned| Synced {
        model_uuid: model.uuid.clone(),
        uri,
        revision,
        content_mac: None,
        auto_prune: applied_prune,
        reason,
        message: message.to_owned(),
        wrote: false,
        owned,
        revisions: None,
        plan: None,
    };
    let plan = |write, outcome| Plan {
        take_over: false,
        adopted: false,
        write,
        held: None,
        drift: false,
        outcome,
    };

    let found = match (facts.ownership, &facts.found) {
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
        (_, None) | (Ownership::Absent | Ownership::Forbidden, _) => {
            if spec.management_policy == ManagementPolicy::ObserveOnly {
                return Err(Problem::new(
                    reason::NOT_FOUND,
                    format!(
                        "no Juju secret named {label:?} in model {}",
                        model.qualified_name()
                    ),
                ));
            }
            if spec.suspend {
                let mut suspended = plan(
                    Write::Nothing,
                    report(
                        None,
                        None,
                        "the secret does not exist in Juju; not created while suspended",
                        reason::SUSPENDED,
                        recorded_owned,
                    ),
                );
                suspended.held = Some(Write::Create);
                return Ok(suspended);
            }
            let mut outcome = report(None, Some(1), "in sync", reason::SYNCED, true);
            // The same message as the passes that follow, so the next drift check finds
            // nothing to write (the Created event tells of the create).
            outcome.content_mac = desired_mac;
            // Juju's create takes no auto-prune flag; with one revision there is nothing
            // to prune, so the flag goes out with the first content update.
            outcome.auto_prune = None;
            outcome.wrote = true;
            return Ok(plan(Write::Create, outcome));
        }
        (_, Some(found)) => found,
    };
    let take_over = matches!(facts.ownership, Ownership::Recovered | Ownership::Adopt);
    let adopted = facts.ownership == Ownership::Adopt;
    let owned = facts.ownership != Ownership::Observed || recorded_owned;
    let observed = |message: &str| Plan {
        take_over,
        adopted,
        write: Write::Nothing,
        held: None,
        drift: false,
        outcome: report(
            Some(found.uri.clone()),
            Some(found.latest_revision),
            message,
            reason::SYNCED,
            owned,
        ),
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

    let content_differs = facts.content_differs.unwrap_or(false);
    let mut update = SecretUpdate::of(SecretSelector::Uri(found.uri.clone()));
    let mut changes = Vec::new();
    if found.label.as_deref() != Some(label.as_str()) {
        update.label = Some(label.clone());
        changes.push("name");
    }
    // The spec is the whole truth: no description in the spec clears Juju's (Juju
    // treats "" as none, and lists no description for it).
    let desired_description = spec.description.as_deref().filter(|d| !d.is_empty());
    if found.description.as_deref().filter(|d| !d.is_empty()) != desired_description {
        update.description = Some(desired_description.unwrap_or_default().to_owned());
        changes.push("description");
    }
    if content_differs {
        update.content = facts.content.as_ref().map(|(c, _)| c.clone());
        changes.push("content");
    }
    // Every new revision carries the flag; a changed flag alone is sent once it was
    // applied before (a secret that never had a second revision has nothing to prune).
    if content_differs || applied_prune.is_some_and(|applied| applied != spec.auto_prune) {
        update.auto_prune = Some(spec.auto_prune);
    }
    // Drift: the operator had put the desired content in place (the record knows its
    // MAC) and the content differs now.
    let drift = content_differs
        && recorded_owned
        && facts.entry.as_ref().and_then(|e| e.mac.as_deref()) == desired_mac.as_deref();

    if spec.suspend {
        let message = if changes.is_empty() {
            "suspended; Juju matches the spec".to_owned()
        } else {
            format!(
                "suspended; Juju differs from the spec in: {}",
                changes.join(", ")
            )
        };
        let mut plan = observed(&message);
        plan.outcome.reason = reason::SUSPENDED;
        if !changes.is_empty() || update.auto_prune.is_some() {
            plan.held = Some(Write::Update { update, changes });
        }
        return Ok(plan);
    }
    if facts.name_taken && update.label.is_some() {
        // Juju would refuse the rename; nothing else is sent until the name is free.
        return Err(Problem::new(
            reason::CONFLICT,
            format!(
                "cannot rename to {label:?}: another Juju secret of that name exists in model {}",
                model.qualified_name()
            ),
        ));
    }
    if changes.is_empty() && update.auto_prune.is_none() {
        let mut plan = observed("in sync");
        plan.outcome.content_mac = desired_mac;
        return Ok(plan);
    }
    let outcome = Synced {
        model_uuid: model.uuid.clone(),
        uri: Some(found.uri.clone()),
        revision: Some(found.latest_revision + u64::from(content_differs)),
        content_mac: desired_mac,
        auto_prune: update.auto_prune.or(applied_prune),
        reason: reason::SYNCED,
        message: "in sync".into(),
        wrote: true,
        owned: true,
        revisions: None,
        plan: None,
    };
    Ok(Plan {
        take_over,
        adopted,
        write: Write::Update { update, changes },
        held: None,
        drift,
        outcome,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;

    use super::*;
    use crate::controller::juju_state::SecretSummary;
    use crate::controller::ownership::SecretEntry;
    use juju_client::{Model, SecretContent, SecretUri};

    const URI: &str = "secret:9fvb66662rqormfsip9g";

    fn spec(extra: serde_json::Value) -> JujuSecretSpec {
        let mut base = serde_json::json!({"model": "admin/dev", "data": {"password": "x"}});
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        serde_json::from_value(base).unwrap()
    }

    fn found(label: &str, revision: u64) -> SecretSummary {
        SecretSummary {
            uri: SecretUri::parse(URI).unwrap(),
            label: Some(label.into()),
            description: None,
            latest_revision: revision,
            checksum: None,
            applications: BTreeSet::new(),
            revisions: vec![revision],
        }
    }

    fn owned_entry(mac: &str) -> SecretEntry {
        SecretEntry {
            model: "uuid".into(),
            name: "db".into(),
            uri: Some(URI.into()),
            mac: Some(mac.into()),
            revision: Some(1),
            auto_prune: None,
            unfinalized: None,
        }
    }

    fn facts(
        ownership: Ownership,
        found: Option<SecretSummary>,
        entry: Option<SecretEntry>,
        differs: Option<bool>,
    ) -> Observed {
        let mut content = SecretContent::new();
        content.insert("password", "x");
        Observed {
            uid: "uid".into(),
            label: "db".into(),
            model: Model {
                uuid: "uuid".into(),
                name: "dev".into(),
                owner: "admin".into(),
                model_type: "caas".into(),
            },
            content: Some((content, "mac-desired".into())),
            entry,
            found,
            ownership,
            content_differs: differs,
            read_back: false,
            name_taken: false,
        }
    }

    #[test]
    fn a_rename_onto_a_taken_name_is_a_conflict_without_a_write() {
        let mut f = facts(
            Ownership::Owned,
            Some(found("old-name", 1)),
            Some(owned_entry("mac-desired")),
            Some(false),
        );
        let plan = decide(&spec(serde_json::json!({})), &f).unwrap();
        assert!(matches!(plan.write, Write::Update { .. }), "a free name");
        f.name_taken = true;
        let p = decide(&spec(serde_json::json!({})), &f).unwrap_err();
        assert_eq!(p.reason, reason::CONFLICT);
        assert!(p.message.contains("another Juju secret"), "{}", p.message);
        // No rename wanted: the taken name does not matter.
        f.found = Some(found("db", 1));
        assert!(decide(&spec(serde_json::json!({})), &f).is_ok());
    }

    #[test]
    fn nothing_found_creates_unless_suspended_or_observing() {
        let f = facts(Ownership::Absent, None, None, None);
        let plan = decide(&spec(serde_json::json!({})), &f).unwrap();
        assert!(matches!(plan.write, Write::Create));
        assert_eq!(plan.outcome.revision, Some(1));
        let plan = decide(&spec(serde_json::json!({"suspend": true})), &f).unwrap();
        assert!(matches!(plan.write, Write::Nothing));
        assert!(
            matches!(plan.held, Some(Write::Create)),
            "held for the plan"
        );
        assert_eq!(plan.outcome.reason, reason::SUSPENDED);
        let p = decide(
            &spec(serde_json::json!({"managementPolicy": "ObserveOnly"})),
            &f,
        )
        .unwrap_err();
        assert_eq!(p.reason, reason::NOT_FOUND);
    }

    #[test]
    fn a_secret_not_ours_is_a_conflict_and_never_written() {
        for ownership in [
            Ownership::ConflictNotOurs,
            Ownership::ConflictOwnedByAnother,
        ] {
            let f = facts(ownership, Some(found("db", 1)), None, None);
            let p = decide(&spec(serde_json::json!({"adopt": true})), &f).unwrap_err();
            assert_eq!(p.reason, reason::CONFLICT);
        }
    }

    #[test]
    fn an_owned_secret_gets_exactly_what_differs() {
        let entry = Some(owned_entry("mac-desired"));
        // Identical: nothing to write.
        let f = facts(
            Ownership::Owned,
            Some(found("db", 1)),
            entry.clone(),
            Some(false),
        );
        let plan = decide(&spec(serde_json::json!({})), &f).unwrap();
        assert!(matches!(plan.write, Write::Nothing));
        assert_eq!(plan.outcome.content_mac.as_deref(), Some("mac-desired"));
        // Renamed, new description, new content (drifted: the record had the desired
        // content in place): one update with all three and the auto-prune flag.
        let f = facts(Ownership::Owned, Some(found("old", 3)), entry, Some(true));
        let plan = decide(&spec(serde_json::json!({"description": "d"})), &f).unwrap();
        let Write::Update { update, changes } = plan.write else {
            panic!("no update");
        };
        assert_eq!(changes, ["name", "description", "content"]);
        assert_eq!(update.label.as_deref(), Some("db"));
        assert_eq!(update.auto_prune, Some(true));
        assert!(update.content.is_some());
        assert!(plan.drift);
        assert_eq!(plan.outcome.revision, Some(4));
    }

    #[test]
    fn a_description_removed_from_the_spec_is_cleared_in_juju() {
        let entry = Some(owned_entry("mac-desired"));
        let mut described = found("db", 2);
        described.description = Some("old words".into());
        let f = facts(
            Ownership::Owned,
            Some(described),
            entry.clone(),
            Some(false),
        );
        let plan = decide(&spec(serde_json::json!({})), &f).unwrap();
        let Write::Update { update, changes } = plan.write else {
            panic!("no update");
        };
        assert_eq!(changes, ["description"]);
        assert_eq!(update.description.as_deref(), Some(""));
        assert!(update.content.is_none() && update.label.is_none());
        // An empty description in the spec is none: nothing to write when Juju has none.
        let f = facts(Ownership::Owned, Some(found("db", 2)), entry, Some(false));
        let plan = decide(&spec(serde_json::json!({"description": ""})), &f).unwrap();
        assert!(matches!(plan.write, Write::Nothing));
    }

    #[test]
    fn suspend_reports_what_differs_without_writing() {
        let f = facts(
            Ownership::Owned,
            Some(found("db", 2)),
            Some(owned_entry("other")),
            Some(true),
        );
        let plan = decide(&spec(serde_json::json!({"suspend": true})), &f).unwrap();
        assert!(matches!(plan.write, Write::Nothing));
        assert_eq!(plan.outcome.reason, reason::SUSPENDED);
        assert!(
            plan.outcome.message.contains("content"),
            "{}",
            plan.outcome.message
        );
        // What resuming would send is held, for the status's plan.
        let Some(Write::Update { update, changes }) = plan.held else {
            panic!("no held update");
        };
        assert_eq!(changes, ["content"]);
        assert!(update.content.is_some());
        // Nothing differs: nothing held.
        let f = facts(
            Ownership::Owned,
            Some(found("db", 2)),
            Some(owned_entry("mac-desired")),
            Some(false),
        );
        let plan = decide(&spec(serde_json::json!({"suspend": true})), &f).unwrap();
        assert!(plan.held.is_none());
    }

    #[test]
    fn adopt_and_recovery_take_the_secret_over_first() {
        for (ownership, adopted) in [(Ownership::Adopt, true), (Ownership::Recovered, false)] {
            let f = facts(ownership, Some(found("db", 1)), None, Some(false));
            let plan = decide(&spec(serde_json::json!({"adopt": adopted})), &f).unwrap();
            assert!(plan.take_over);
            assert_eq!(plan.adopted, adopted);
        }
        // CreateOnly never overwrites what exists; ObserveOnly never writes.
        for policy in ["CreateOnly", "ObserveOnly"] {
            let f = facts(Ownership::Owned, Some(found("x", 5)), None, None);
            let plan = decide(&spec(serde_json::json!({"managementPolicy": policy})), &f).unwrap();
            assert!(matches!(plan.write, Write::Nothing), "{policy}");
        }
    }
}
