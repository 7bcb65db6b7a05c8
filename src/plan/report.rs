//! The plan as a reviewer reads it (text) and as a bot reads it (JSON). It names
//! objects, Juju secrets, keys, applications, options and models; it never holds a
//! value, and no value reaches it (the previews it is made from carry none).

use std::fmt::Write as _;

use serde::Serialize;

/// One change applying the manifests would make in Juju.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum Change {
    /// A new Juju secret with these keys.
    #[serde(rename_all = "camelCase")]
    Create {
        /// The secret's Juju name.
        name: String,
        /// Its keys.
        keys: Vec<String>,
    },
    /// A new revision of the secret's content.
    #[serde(rename_all = "camelCase")]
    NewRevision {
        /// The latest revision now.
        from: u64,
        /// The revision applying makes.
        to: u64,
        /// Keys added.
        keys_added: Vec<String>,
        /// Keys removed.
        keys_removed: Vec<String>,
        /// Keys whose value changes.
        keys_changed: Vec<String>,
    },
    /// Revisions removed (`keepRevisions`, `removeRevisions`).
    RemoveRevisions {
        /// The revision numbers.
        revisions: Vec<u64>,
    },
    /// The secret's Juju name changes.
    Rename {
        /// The name now.
        from: String,
        /// The new name.
        to: String,
    },
    /// The secret's description changes (or is cleared).
    Description,
    /// The secret's auto-prune flag changes.
    AutoPrune,
    /// An existing Juju secret (or backend) is taken over.
    #[serde(rename_all = "camelCase")]
    Adopt {
        /// The secret's ID, or the backend's name.
        id: String,
    },
    /// Deleting the object removes the Juju secret (or backend).
    #[serde(rename_all = "camelCase")]
    Delete {
        /// The secret's ID, or the backend's name.
        id: String,
    },
    /// Deleting the object leaves the Juju secret (or backend) in place.
    #[serde(rename_all = "camelCase")]
    Retain {
        /// The secret's ID, or the backend's name.
        id: String,
    },
    /// Applications gain read access.
    Grant {
        /// The applications.
        applications: Vec<String>,
    },
    /// Applications lose read access the operator gave them.
    Revoke {
        /// The applications.
        applications: Vec<String>,
    },
    /// A config option is set to the secret's URI.
    SetOption {
        /// `application/option`.
        option: String,
    },
    /// A config option the operator set is given back (its former value, or unset).
    RestoreOption {
        /// `application/option`.
        option: String,
    },
    /// A secret backend is added.
    #[serde(rename_all = "camelCase")]
    CreateBackend {
        /// Its name.
        name: String,
        /// `vault` or `kubernetes`.
        backend_type: String,
    },
    /// A secret backend's name or configuration changes (the configuration's values are
    /// never shown).
    UpdateBackend {
        /// `name`, `configuration`.
        changes: Vec<String>,
    },
    /// A model stores its new secrets in another backend.
    SwitchModel {
        /// The model.
        model: String,
        /// The backend it uses now.
        from: String,
        /// The backend it will use.
        to: String,
    },
}

impl Change {
    fn line(&self) -> String {
        let list = |v: &[String]| v.join(", ");
        match self {
            Change::Create { name, keys } => {
                format!("+ create secret {name:?} with keys: {}", list(keys))
            }
            Change::NewRevision {
                from,
                to,
                keys_added,
                keys_removed,
                keys_changed,
            } => {
                let mut parts = Vec::new();
                for (what, keys) in [
                    ("changed", keys_changed),
                    ("added", keys_added),
                    ("removed", keys_removed),
                ] {
                    if !keys.is_empty() {
                        parts.push(format!("{what} {}", list(keys)));
                    }
                }
                format!("~ new revision {from} -> {to}: {}", parts.join("; "))
            }
            Change::RemoveRevisions { revisions } => format!(
                "- remove revisions {}",
                revisions
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Change::Rename { from, to } => format!("~ rename {from:?} -> {to:?}"),
            Change::Description => "~ description".into(),
            Change::AutoPrune => "~ auto-prune".into(),
            Change::Adopt { id } => format!("~ adopt {id}"),
            Change::Delete { id } => format!("- delete {id}"),
            Change::Retain { id } => format!("= retain {id} (deletion leaves it in Juju)"),
            Change::Grant { applications } => format!("+ grant {}", list(applications)),
            Change::Revoke { applications } => format!("- revoke {}", list(applications)),
            Change::SetOption { option } => format!("+ config {option} = the secret's URI"),
            Change::RestoreOption { option } => format!("- config {option} given back"),
            Change::CreateBackend { name, backend_type } => {
                format!("+ create {backend_type} backend {name:?}")
            }
            Change::UpdateBackend { changes } => format!("~ backend {}", list(changes)),
            Change::SwitchModel { model, from, to } => {
                format!("~ model {model}: secrets backend {from} -> {to}")
            }
        }
    }
}

/// Why an object would not become Ready (or could not be planned).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The condition reason the operator would report (`Conflict`, `Forbidden` ...).
    pub reason: String,
    /// Its message.
    pub message: String,
}

/// What applying one object would do.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectPlan {
    /// `JujuSecret`, `JujuSecretGrant`, `JujuSecretBackend`.
    pub kind: &'static str,
    /// The object's namespace (none for backends).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
    /// The Juju model (`owner/name`, or a UUID).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The Juju secret (`secret:<id>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<String>,
    /// The object is absent from the manifests and would be deleted (`--prune`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Suspended: `changes` are held back until it is resumed; applying makes none.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub suspended: bool,
    /// The changes, in the order the operator makes them.
    pub changes: Vec<Change>,
    /// Why the object would not become Ready (a conflict, a forbidden model, an invalid
    /// spec, a missing source), as the operator would report it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// The object could not be planned (Kubernetes or Juju could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ObjectPlan {
    /// Whether applying changes something in Juju.
    pub fn changes_juju(&self) -> bool {
        !self.suspended && !self.changes.is_empty()
    }

    fn title(&self) -> String {
        let mut t = match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        };
        let juju: Vec<String> = [
            self.model.as_ref().map(|m| format!("model {m}")),
            self.secret_id.clone(),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !juju.is_empty() {
            let _ = write!(t, " ({})", juju.join(", "));
        }
        if self.deleted {
            t.push_str(": deleted");
        }
        if self.suspended {
            t.push_str(": suspended, held until resumed");
        }
        t
    }
}

/// The plan of a manifest set.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Every object with something to say (changes, held changes, findings, errors).
    pub objects: Vec<ObjectPlan>,
    /// The counts.
    pub summary: Summary,
}

/// The counts of a plan.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Objects whose apply changes Juju.
    pub change: usize,
    /// Objects already in line with Juju.
    pub unchanged: usize,
    /// Suspended objects holding changes back.
    pub held: usize,
    /// Objects that would not become Ready.
    pub problems: usize,
    /// Objects that could not be planned.
    pub errors: usize,
    /// Manifest objects of other kinds (the plan says nothing of them).
    pub other_kinds: usize,
}

impl Report {
    /// Adds an object's plan; one with nothing to say only counts as unchanged.
    pub fn add(&mut self, plan: ObjectPlan) {
        if plan.error.is_some() {
            self.summary.errors += 1;
        } else if !plan.findings.is_empty() {
            self.summary.problems += 1;
        } else if plan.changes_juju() {
            self.summary.change += 1;
        } else if plan.suspended && !plan.changes.is_empty() {
            self.summary.held += 1;
        } else {
            self.summary.unchanged += 1;
            return;
        }
        self.objects.push(plan);
    }

    /// `terraform plan -detailed-exitcode`: 0 nothing to change, 2 changes (or objects
    /// that would not become Ready), 1 an object could not be planned.
    pub fn exit_code(&self) -> u8 {
        if self.summary.errors > 0 {
            1
        } else if self.summary.change > 0 || self.summary.problems > 0 {
            2
        } else {
            0
        }
    }

    /// The plan for people.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for o in &self.objects {
            let _ = writeln!(out, "{}", o.title());
            for c in &o.changes {
                let _ = writeln!(out, "    {}", c.line());
            }
            for f in &o.findings {
                let _ = writeln!(out, "    ! {}: {}", f.reason, f.message);
            }
            if let Some(e) = &o.error {
                let _ = writeln!(out, "    ! cannot plan: {e}");
            }
        }
        let s = &self.summary;
        if self.objects.is_empty() {
            let _ = writeln!(
                out,
                "No changes: Juju matches the manifests ({} objects).",
                s.unchanged
            );
        } else {
            let _ = writeln!(
                out,
                "Plan: {} to change, {} unchanged, {} held by suspend, {} would not be Ready, {} could not be planned.",
                s.change, s.unchanged, s.held, s.problems, s.errors
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(changes: Vec<Change>) -> ObjectPlan {
        ObjectPlan {
            kind: "JujuSecret",
            namespace: Some("team-a".into()),
            name: "db".into(),
            changes,
            ..ObjectPlan::default()
        }
    }

    #[test]
    fn the_exit_code_says_whether_anything_would_change() {
        let mut r = Report::default();
        r.add(object(vec![]));
        assert_eq!((r.exit_code(), r.objects.len()), (0, 0));
        assert!(r.text().starts_with("No changes"), "{}", r.text());
        let mut held = object(vec![Change::Description]);
        held.suspended = true;
        r.add(held);
        assert_eq!(r.exit_code(), 0, "a suspended object changes nothing");
        r.add(object(vec![Change::Grant {
            applications: vec!["wordpress".into()],
        }]));
        assert_eq!(r.exit_code(), 2);
        let mut failed = object(vec![]);
        failed.error = Some("Juju unreachable".into());
        r.add(failed);
        assert_eq!(r.exit_code(), 1);
    }

    #[test]
    fn a_revision_names_its_keys() {
        let c = Change::NewRevision {
            from: 2,
            to: 3,
            keys_added: vec!["port".into()],
            keys_removed: vec!["legacy".into()],
            keys_changed: vec!["password".into()],
        };
        assert_eq!(
            c.line(),
            "~ new revision 2 -> 3: changed password; added port; removed legacy"
        );
        let json = serde_json::to_value(&c).unwrap_or_default();
        assert_eq!(json["action"], "newRevision");
        assert_eq!(json["keysChanged"][0], "password");
    }
}
