//! Status conditions shared by every kind, and the reasons they carry.
//!
//! `lastTransitionTime` changes only when a condition's status flips, so a reconcile
//! that finds nothing new writes an identical status (a no-op for the apiserver).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The condition type every kind reports.
pub const READY: &str = "Ready";

/// One condition, shaped like `metav1.Condition`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason, e.g. `Synced`, `Conflict`, `ModelNotFound`.
    pub reason: String,
    /// A human-readable explanation. Never contains a secret value.
    pub message: String,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
    /// The `metadata.generation` this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    /// Returns `new`, keeping the previous `lastTransitionTime` when the status did not
    /// change.
    pub fn carry_transition_time(mut new: Condition, previous: &[Condition]) -> Condition {
        if let Some(old) = previous.iter().find(|c| c.type_ == new.type_)
            && old.status == new.status
        {
            new.last_transition_time
                .clone_from(&old.last_transition_time);
        }
        new
    }
}

/// Reasons of the `Ready` condition.
pub mod reason {
    /// Juju holds the desired state.
    pub const SYNCED: &str = "Synced";
    /// A Juju object of that name exists and was not made by this resource.
    pub const CONFLICT: &str = "Conflict";
    /// The model matches no model the operator's Juju user can see.
    pub const MODEL_NOT_FOUND: &str = "ModelNotFound";
    /// A referenced Kubernetes Secret or key does not exist.
    pub const SOURCE_NOT_FOUND: &str = "SourceNotFound";
    /// Content breaks Juju's key or size rules.
    pub const INVALID_CONTENT: &str = "InvalidContent";
    /// The Juju controller cannot be reached.
    pub const JUJU_UNAVAILABLE: &str = "JujuUnavailable";
    /// The operator's Juju user lacks the permission.
    pub const UNAUTHORIZED: &str = "Unauthorized";
    /// The tenancy policy does not allow this namespace to use that model.
    pub const FORBIDDEN: &str = "Forbidden";
    /// `spec.suspend` is set.
    pub const SUSPENDED: &str = "Suspended";
    /// The model's secret backend (vault) cannot be reached, so Juju refused the write;
    /// retried with backoff. For a JujuSecretBackend: Juju cannot reach the backend.
    pub const BACKEND_UNREACHABLE: &str = "BackendUnreachable";
    /// A granted application does not exist (yet).
    pub const APPLICATION_NOT_FOUND: &str = "ApplicationNotFound";
    /// `ObserveOnly`: the secret to observe does not exist in Juju.
    pub const NOT_FOUND: &str = "NotFound";
    /// Juju refused a call for another reason (the message says which).
    pub const JUJU_ERROR: &str = "JujuError";
    /// The Kubernetes API failed.
    pub const KUBERNETES_ERROR: &str = "KubernetesError";
    /// The spec is invalid in a way the schema could not catch.
    pub const INVALID_SPEC: &str = "InvalidSpec";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(status: &str, at: &str) -> Condition {
        Condition {
            type_: READY.into(),
            status: status.into(),
            reason: reason::SYNCED.into(),
            message: String::new(),
            last_transition_time: at.into(),
            observed_generation: Some(1),
        }
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let old = vec![ready("True", "2026-01-01T00:00:00Z")];
        let same = Condition::carry_transition_time(ready("True", "2026-02-02T00:00:00Z"), &old);
        assert_eq!(same.last_transition_time, "2026-01-01T00:00:00Z");
        let flipped =
            Condition::carry_transition_time(ready("False", "2026-02-02T00:00:00Z"), &old);
        assert_eq!(flipped.last_transition_time, "2026-02-02T00:00:00Z");
    }
}
