//! `JujuSecretGrant`: which Juju applications may read a secret.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::condition::Condition;

/// View access for Juju applications to one Juju secret. Grants are reconciled per
/// secret as the union of every JujuSecretGrant naming it; grants made outside the
/// operator are never revoked.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "secrets.juju.is",
    version = "v1alpha1",
    kind = "JujuSecretGrant",
    namespaced,
    status = "JujuSecretGrantStatus",
    shortname = "jsg",
    category = "juju",
    printcolumn = r#"{"name":"Secret","type":"string","jsonPath":".status.secretId"}"#,
    printcolumn = r#"{"name":"Granted","type":"integer","jsonPath":".status.grantedCount"}"#,
    printcolumn = r#"{"name":"Wanted","type":"integer","jsonPath":".status.wantedCount"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    doc = "View access for Juju applications to one Juju secret."
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.secretRef) != has(self.external)",
     "message": "exactly one of secretRef or external is required"},
    {"rule": "!has(self.config) || self.config.all(c, c.application in self.applications)",
     "message": "every config entry's application must be listed in applications"}
]))]
pub struct JujuSecretGrantSpec {
    /// A JujuSecret in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalSecretRef>,
    /// A Juju secret made outside the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalSecret>,
    /// Juju application names that may read the secret.
    #[schemars(length(min = 1, max = 100), inner(length(min = 1, max = 128)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub applications: Vec<String>,
    /// Config options that receive the secret's URI, as `juju config <application>
    /// <option>=<secret URI>` would set them: each is set once its application holds the
    /// grant (never before), follows the URI when the secret is recreated, and is
    /// restored to what it was before (unset if it was unset) when the entry, the
    /// application or the grant goes. An option a person set to another value (before
    /// or since) is a `Conflict` unless `overwrite` is true; a value that is not a secret
    /// URI is never overwritten; one grant object wires an option at a time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["application", "option"]))]
    pub config: Vec<ConfigOptionRef>,
}

/// A config option of a granted application that receives the secret's URI.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigOptionRef {
    /// The application (one of `applications`).
    #[schemars(length(min = 1, max = 128))]
    pub application: String,
    /// The charm config option, of type `secret` (or `string`).
    #[schemars(length(min = 1, max = 128))]
    pub option: String,
    /// Replace a secret URI a person set on the option (it is restored when the entry
    /// goes). Default false: such an option is a `Conflict`.
    #[serde(default)]
    pub overwrite: bool,
}

/// A config option the operator set to the secret's URI.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfiguredOption {
    /// The application.
    pub application: String,
    /// The charm config option.
    pub option: String,
}

/// A JujuSecret in the grant's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LocalSecretRef {
    /// `metadata.name` of the JujuSecret.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// A Juju secret not managed by the operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.name) != has(self.uri)", "message": "exactly one of name or uri is required"}
]))]
pub struct ExternalSecret {
    /// The model: name, `owner/name` or UUID.
    #[schemars(length(min = 1))]
    pub model: String,
    /// The secret's name (label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The secret's URI, `secret:<id>` or `secret://<model-uuid>/<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

/// What the operator last saw and did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JujuSecretGrantStatus {
    /// Short URI of the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<String>,
    /// UUID of the model holding the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_uuid: Option<String>,
    /// Applications whose grant the operator made (and may therefore revoke when no
    /// JujuSecretGrant lists them any more). Grants that existed before are never
    /// revoked.
    #[serde(default)]
    pub owned_applications: Vec<String>,
    /// Applications that hold the grant.
    #[serde(default)]
    pub granted_applications: Vec<String>,
    /// Applications that do not exist yet; retried with backoff.
    #[serde(default)]
    pub pending_applications: Vec<String>,
    /// Config options that hold the secret's URI because the operator set them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configured: Vec<ConfiguredOption>,
    /// Number of granted applications (for `kubectl get`).
    #[serde(default)]
    pub granted_count: u32,
    /// Number of wanted applications (for `kubectl get`).
    #[serde(default)]
    pub wanted_count: u32,
    /// `metadata.generation` of the spec this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions, keyed by type.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
