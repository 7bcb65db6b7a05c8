//! `JujuSecretBackend`: a Juju secret backend on the controller, and the models using it.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::condition::Condition;
use super::secret::DeletionPolicy;

/// A Juju secret backend (vault or kubernetes). Cluster-scoped: the backend belongs to
/// the controller, not to a namespace.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "secrets.juju.is",
    version = "v1alpha1",
    kind = "JujuSecretBackend",
    status = "JujuSecretBackendStatus",
    shortname = "jsb",
    category = "juju",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.backendType"}"#,
    printcolumn = r#"{"name":"Juju Status","type":"string","jsonPath":".status.status"}"#,
    printcolumn = r#"{"name":"Secrets","type":"integer","jsonPath":".status.secretCount"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    doc = "A Juju secret backend on the controller, and the models using it.",
    validation = Rule::new(
        "has(self.spec.name) || (self.metadata.name != 'internal' && self.metadata.name != 'auto')"
    )
    .message("internal and auto are reserved backend names: set spec.name")
)]
#[serde(rename_all = "camelCase")]
pub struct JujuSecretBackendSpec {
    /// Backend name in Juju; defaults to `metadata.name`. Not `internal` or `auto`.
    /// Juju renames a backend only while it stores no revisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1), extend("x-kubernetes-validations" = [
        {"rule": "self != 'internal' && self != 'auto'", "message": "internal and auto are reserved backend names"}
    ]))]
    pub name: Option<String>,
    /// Backend type.
    pub backend_type: BackendType,
    /// Non-sensitive configuration, e.g. `endpoint`, `namespace`, `ca-cert`.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// A Kubernetes Secret whose keys are merged into the configuration (for sensitive
    /// keys such as `token`, `client-key`, `password`). Watched: a change updates the
    /// backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_secret_ref: Option<NamespacedSecretRef>,
    /// Token rotation interval: whole numbers with the units `ms`, `s`, `m`, `h`, e.g.
    /// `24h`; `0` disables rotation. Juju's minimum is `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^(0|([0-9]+(ms|s|m|h))+)$"),
        extend("x-kubernetes-validations" = [
            {"rule": "self == '0' || duration(self) == duration('0s') || duration(self) >= duration('1h')",
             "message": "tokenRotateInterval must be 0 (no rotation) or at least 1h"}
        ])
    )]
    pub token_rotate_interval: Option<String>,
    /// Models (name, `owner/name` or UUID) whose `secret-backend` points at this backend.
    /// A model removed from the list goes back to `auto`.
    #[serde(default)]
    pub models: Vec<String>,
    /// What happens in Juju when this resource is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Take over an existing Juju backend of the same name that this resource did not
    /// add (and no other JujuSecretBackend manages). Without it a name clash is a
    /// `Conflict` and the existing backend is left untouched.
    #[serde(default)]
    pub adopt: bool,
}

/// Juju backend types the operator manages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendType {
    /// HashiCorp Vault.
    Vault,
    /// A Kubernetes namespace (Juju 3.6.3+).
    Kubernetes,
}

/// A Secret in a named namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NamespacedSecretRef {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub name: String,
}

/// What the operator last saw and did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JujuSecretBackendStatus {
    /// Juju's backend ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_id: Option<String>,
    /// Juju's status for the backend: `active` or `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Juju's message when the status is `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Secrets with a revision stored in the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_count: Option<u64>,
    /// UUIDs of the models whose `secret-backend` the operator pointed at this backend.
    /// Output only, like every status field: the operator decides from its ownership
    /// record.
    #[serde(default)]
    pub assigned_models: Vec<String>,
    /// The backend's name in Juju as last applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Keyed MAC of the configuration last written (sensitive keys included); never the
    /// values themselves. Output only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_mac: Option<String>,
    /// No longer written or read: add claims live in the operator's ownership record.
    /// Kept so that statuses written by earlier versions stay valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_create: Option<String>,
    /// `metadata.generation` of the spec this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions, keyed by type.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
