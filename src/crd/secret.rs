//! `JujuSecret`: the desired state of one Juju user secret in one model.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::condition::Condition;

/// Juju's secret key rule, as a CEL regular expression.
pub const KEY_RULE: &str = "^([a-z](?:-?[a-z0-9]){2,})$";

/// A Juju user secret, declared in Kubernetes and kept in sync by the operator.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "secrets.juju.is",
    version = "v1alpha1",
    kind = "JujuSecret",
    namespaced,
    status = "JujuSecretStatus",
    shortname = "jsec",
    category = "juju",
    printcolumn = r#"{"name":"Model","type":"string","jsonPath":".spec.model"}"#,
    printcolumn = r#"{"name":"Secret","type":"string","jsonPath":".status.secretId"}"#,
    printcolumn = r#"{"name":"Revision","type":"integer","jsonPath":".status.revision"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    doc = "A Juju user secret, declared in Kubernetes and kept in sync by the operator."
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.managementPolicy == 'ObserveOnly' || (has(self.data) && size(self.data) > 0) || has(self.secretRef) || (has(self.generate) && size(self.generate) > 0)",
     "message": "at least one content source is required: data, secretRef or generate (except with managementPolicy ObserveOnly)"}
]))]
pub struct JujuSecretSpec {
    /// The Juju model holding the secret: a model name, `owner/name`, or a model UUID.
    /// Immutable.
    #[schemars(length(min = 1), extend("x-kubernetes-validations" = [
        {"rule": "self == oldSelf", "message": "model is immutable"}
    ]))]
    pub model: String,

    /// The Juju secret name (Juju's label), unique per model. Defaults to
    /// `metadata.name`. Changing it renames the secret in Juju: same URI, no new
    /// revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub name: Option<String>,

    /// Free text describing the secret (Juju's `--info`). Removing it clears the
    /// description in Juju.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,

    /// Literal content: key → string value. Keys must match Juju's rule
    /// `^([a-z](?:-?[a-z0-9]){2,})$` (lower-case letters, digits, single hyphens, at
    /// least three letters or digits). At most 256 keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 256, "x-kubernetes-validations" = [
        {"rule": "self.all(k, k.matches('^([a-z](?:-?[a-z0-9]){2,})$'))",
         "message": "keys must match Juju's rule ^([a-z](?:-?[a-z0-9]){2,})$"}
    ]))]
    pub data: Option<BTreeMap<String, String>>,

    /// Content from a Kubernetes Secret in the same namespace. Its changes reach Juju as
    /// new revisions within seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretSource>,

    /// Generated values (random passwords), kept stable until a rotation is asked for.
    /// At most 64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub generate: Option<Vec<Generator>>,

    /// Let Juju delete revisions no consumer tracks any more.
    #[serde(default = "default_true")]
    pub auto_prune: bool,

    /// Keep at most this many revisions in Juju: older ones beyond it are removed after
    /// each pass (the latest is never removed). Unset (default): only `autoPrune`
    /// removes revisions. A consumer tracking a removed revision can no longer read it
    /// and must move to the latest (`secret-get --refresh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_revisions: Option<u32>,

    /// Revisions to remove, such as one whose value leaked. Each names the secret it
    /// belongs to (`status.secretId`), so a recreated secret, whose revisions start
    /// again at 1, is never touched by an old entry; a revision already gone is skipped,
    /// so the same manifest can be applied again. The latest revision cannot be
    /// removed: change the content first (a new revision), then remove the old one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub remove_revisions: Vec<RevisionRef>,

    /// What happens in Juju when this resource is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// How far the operator may write to Juju.
    #[serde(default)]
    pub management_policy: ManagementPolicy,

    /// Take over an existing Juju secret of the same name that this resource did not
    /// create. Without it a name clash is a `Conflict` and the existing secret is left
    /// untouched.
    #[serde(default)]
    pub adopt: bool,

    /// Stop writing to Juju while set; status still reports drift.
    #[serde(default)]
    pub suspend: bool,

    /// How often Juju is re-read to detect and correct drift: whole numbers with the
    /// units `ms`, `s`, `m`, `h`, e.g. `10m`, `1h30m`.
    /// Defaults to the operator's `--refresh-interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub refresh_interval: Option<String>,
}

fn default_true() -> bool {
    true
}

/// A Kubernetes Secret as content source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretSource {
    /// Name of the Secret, in the namespace of the JujuSecret.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Keys to take and the Juju key each becomes. Empty or absent: every key, under
    /// its own name. At most 256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub keys: Option<Vec<KeyMapping>>,
}

/// One key taken from a Kubernetes Secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyMapping {
    /// Key in the Kubernetes Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
    /// Key in the Juju secret; defaults to `key`. Must match Juju's key rule.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^([a-z](?:-?[a-z0-9]){2,})$')",
         "message": "keys must match Juju's rule ^([a-z](?:-?[a-z0-9]){2,})$"}
    ]))]
    pub as_: Option<String>,
}

/// A generated value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Generator {
    /// Juju key of the generated value. Must match Juju's key rule.
    #[schemars(length(max = 253), extend("x-kubernetes-validations" = [
        {"rule": "self.matches('^([a-z](?:-?[a-z0-9]){2,})$')",
         "message": "keys must match Juju's rule ^([a-z](?:-?[a-z0-9]){2,})$"}
    ]))]
    pub key: String,
    /// Number of characters.
    #[serde(default = "default_length")]
    #[schemars(range(min = 8, max = 4096))]
    pub length: u32,
    /// Characters to draw from.
    #[serde(default)]
    pub charset: Charset,
    /// Change this value (any string, e.g. a date) to generate a new value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<String>,
}

fn default_length() -> u32 {
    32
}

/// Alphabet of a generated value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Charset {
    /// `A-Z a-z 0-9`.
    #[default]
    Alphanumeric,
    /// Alphanumeric plus `-_.~!@#%^*+=`.
    Symbols,
    /// `0-9a-f`.
    Hex,
}

/// What happens in Juju when the resource is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Remove the Juju secret.
    #[default]
    Delete,
    /// Leave the Juju secret in place.
    Retain,
}

/// How far the operator may write to Juju.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ManagementPolicy {
    /// Create, update and delete.
    #[default]
    Full,
    /// Create when missing, then never overwrite (a placeholder a human fills in).
    CreateOnly,
    /// Never write: report the existing secret's ID and revision.
    ObserveOnly,
}

/// One revision of one Juju secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionRef {
    /// The secret, `secret:<id>` as in `status.secretId`.
    #[schemars(length(min = 1, max = 128))]
    pub secret_id: String,
    /// The revision number.
    #[schemars(range(min = 1))]
    pub revision: u64,
}

/// The revisions Juju holds for a secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionsStatus {
    /// How many revisions exist.
    pub count: u32,
    /// The latest revision.
    pub latest: u64,
    /// The oldest revision still held.
    pub oldest: u64,
}

/// What resuming a suspended JujuSecret would change in Juju: names of keys, never
/// values (the same plan `juju-secrets-operator plan` prints).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlannedChange {
    /// `Create` (the secret does not exist in Juju) or `Update`.
    pub action: String,
    /// What an update changes: `name`, `description`, `content`, `autoPrune`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// Keys the new revision adds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys_added: Vec<String>,
    /// Keys the new revision no longer has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys_removed: Vec<String>,
    /// Keys whose value the new revision changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys_changed: Vec<String>,
}

/// What the operator last saw and did in Juju.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JujuSecretStatus {
    /// Short URI, `secret:<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<String>,
    /// Full URI, `secret://<model-uuid>/<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_uri: Option<String>,
    /// UUID of the resolved model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_uuid: Option<String>,
    /// Latest revision in Juju.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// `metadata.generation` of the spec this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When Juju was last confirmed to match (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
    /// Keyed MAC (HMAC-SHA256 with an operator-held key) of the content last written;
    /// never the content, never an unkeyed hash of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_mac: Option<String>,
    /// True when the operator's ownership record holds the secret for this resource
    /// (created or adopted); false when it was only observed (`ObserveOnly`). Output
    /// only: the operator decides from its own record, never from this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned: Option<bool>,
    /// The revisions Juju holds for the secret, as last listed (counting the operator's
    /// own writes since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revisions: Option<RevisionsStatus>,
    /// While suspended: what resuming would change in Juju (absent when nothing would).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlannedChange>,
    /// `autoPrune` as last applied to Juju (Juju does not report it back). Output only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_prune: Option<bool>,
    /// No longer written or read: create claims live in the operator's ownership
    /// record. Kept so that statuses written by earlier versions stay valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_create: Option<String>,
    /// Conditions, keyed by type.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
