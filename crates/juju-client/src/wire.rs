//! Juju's wire types: the JSON shapes of the RPC envelope and of the facade params and
//! results this client uses, with the exact wire names (juju-api.md, juju-facade-schemas).
//!
//! Nothing outside `juju::` sees these types. Fields the server may leave out or send
//! as `null` are `Option` or `#[serde(default)]`; unknown fields are ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::content::SecretContent;
use super::error::WireError;

/// Params of a method that takes none.
#[derive(Serialize)]
pub struct Empty {}

/// Any answer frame. Errors carry `error`/`error-code`; `response` is always present
/// on a real controller but tolerated as missing.
#[derive(Deserialize)]
pub struct ResponseFrame {
    #[serde(rename = "request-id")]
    pub request_id: u64,
    #[serde(default)]
    pub response: Option<Value>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(rename = "error-code", default)]
    pub error_code: Option<String>,
}

// ---------------------------------------------------------------- Admin

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct LoginRequest<'a> {
    pub auth_tag: String,
    pub credentials: &'a str,
    pub nonce: &'a str,
    pub macaroons: Option<Vec<Value>>,
    pub bakery_version: u32,
    pub cli_args: &'a str,
    pub user_data: &'a str,
    pub client_version: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LoginResult {
    #[serde(default)]
    pub model_tag: Option<String>,
    #[serde(default)]
    pub facades: Vec<FacadeVersions>,
    #[serde(default)]
    pub server_version: String,
    #[serde(default)]
    pub discharge_required: Option<Value>,
    #[serde(default)]
    pub bakery_discharge_required: Option<Value>,
}

#[derive(Deserialize)]
pub struct FacadeVersions {
    pub name: String,
    #[serde(default)]
    pub versions: Vec<u32>,
}

// ---------------------------------------------------------------- shared results

#[derive(Serialize)]
pub struct EntityTag {
    pub tag: String,
}

#[derive(Serialize)]
pub struct Entities {
    pub entities: Vec<EntityTag>,
}

#[derive(Deserialize)]
pub struct ErrorResults {
    #[serde(default)]
    pub results: Vec<ErrorResult>,
}

#[derive(Deserialize)]
pub struct ErrorResult {
    #[serde(default)]
    pub error: Option<WireError>,
}

#[derive(Deserialize)]
pub struct StringResults {
    #[serde(default)]
    pub results: Vec<StringResult>,
}

#[derive(Deserialize)]
pub struct StringResult {
    #[serde(default)]
    pub result: String,
    #[serde(default)]
    pub error: Option<WireError>,
}

// ---------------------------------------------------------------- ModelManager

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct UserModelList {
    #[serde(default)]
    pub user_models: Option<Vec<UserModel>>,
}

#[derive(Deserialize)]
pub struct UserModel {
    pub model: ModelBrief,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ModelBrief {
    pub name: String,
    pub uuid: String,
    #[serde(rename = "type", default)]
    pub model_type: String,
    #[serde(default)]
    pub owner_tag: String,
}

#[derive(Deserialize)]
pub struct ModelInfoResults {
    #[serde(default)]
    pub results: Vec<ModelInfoResult>,
}

#[derive(Deserialize)]
pub struct ModelInfoResult {
    #[serde(default)]
    pub result: Option<ModelInfo>,
    #[serde(default)]
    pub error: Option<WireError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ModelInfo {
    pub name: String,
    pub uuid: String,
    #[serde(rename = "type", default)]
    pub model_type: String,
    #[serde(default)]
    pub owner_tag: String,
    #[serde(default)]
    pub agent_version: Option<String>,
}

// ---------------------------------------------------------------- Secrets

#[derive(Serialize)]
pub struct ContentParams<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<&'a SecretContent>,
}

#[derive(Serialize)]
pub struct CreateSecretArgs<'a> {
    pub args: Vec<CreateSecretArg<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CreateSecretArg<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<&'a str>,
    pub content: ContentParams<'a>,
    /// Always `""`: the server takes the model from the connection.
    pub owner_tag: &'a str,
}

#[derive(Serialize)]
pub struct UpdateUserSecretArgs<'a> {
    pub args: Vec<UpdateUserSecretArg<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct UpdateUserSecretArg<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<&'a str>,
    pub content: ContentParams<'a>,
    pub uri: String,
    pub existing_label: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_prune: Option<bool>,
}

#[derive(Serialize)]
pub struct DeleteSecretArgs<'a> {
    pub args: Vec<DeleteSecretArg<'a>>,
}

#[derive(Serialize)]
pub struct DeleteSecretArg<'a> {
    pub uri: String,
    pub label: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revisions: Option<&'a [u64]>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ListSecretsArgs<'a> {
    pub show_secrets: bool,
    pub filter: SecretsFilter<'a>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub struct SecretsFilter<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_tag: Option<String>,
}

#[derive(Deserialize)]
pub struct ListSecretResults {
    #[serde(default)]
    pub results: Option<Vec<ListSecretResult>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ListSecretResult {
    pub uri: String,
    #[serde(default)]
    pub owner_tag: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub latest_revision: u64,
    #[serde(default)]
    pub latest_revision_checksum: Option<String>,
    #[serde(default)]
    pub create_time: Option<String>,
    #[serde(default)]
    pub update_time: Option<String>,
    #[serde(default)]
    pub revisions: Option<Vec<SecretRevision>>,
    #[serde(default)]
    pub value: Option<SecretValueResult>,
    #[serde(default)]
    pub access: Option<Vec<AccessInfo>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SecretRevision {
    pub revision: u64,
    #[serde(default)]
    pub backend_name: Option<String>,
}

#[derive(Deserialize)]
pub struct SecretValueResult {
    #[serde(default)]
    pub data: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub error: Option<WireError>,
}

#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct AccessInfo {
    #[serde(default)]
    pub target_tag: String,
    #[serde(default)]
    pub scope_tag: String,
    #[serde(default)]
    pub role: String,
}

#[derive(Serialize)]
pub struct GrantRevokeUserSecretArg<'a> {
    pub uri: String,
    pub label: &'a str,
    pub applications: &'a [String],
}

// ---------------------------------------------------------------- SecretBackends

#[derive(Serialize)]
pub struct AddSecretBackendArgs<'a> {
    pub args: Vec<AddSecretBackendArg<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct AddSecretBackendArg<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    pub id: &'a str,
    pub name: &'a str,
    pub backend_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_rotate_interval: Option<i64>,
    pub config: &'a BTreeMap<String, Value>,
}

#[derive(Serialize)]
pub struct ListSecretBackendsArgs<'a> {
    pub names: Option<&'a [String]>,
    pub reveal: bool,
}

#[derive(Deserialize)]
pub struct ListSecretBackendsResults {
    #[serde(default)]
    pub results: Option<Vec<SecretBackendResult>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SecretBackendResult {
    pub result: SecretBackend,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub num_secrets: u64,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub error: Option<WireError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SecretBackend {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub backend_type: String,
    #[serde(default)]
    pub token_rotate_interval: Option<i64>,
    #[serde(default)]
    pub config: Option<BTreeMap<String, Value>>,
}

#[derive(Serialize)]
pub struct UpdateSecretBackendArgs<'a> {
    pub args: Vec<UpdateSecretBackendArg<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct UpdateSecretBackendArg<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_change: Option<&'a str>,
    /// Go has no omitempty here: `null` means unchanged.
    pub token_rotate_interval: Option<i64>,
    pub config: Option<&'a BTreeMap<String, Value>>,
    pub reset: Option<&'a [String]>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

#[derive(Serialize)]
pub struct RemoveSecretBackendArgs<'a> {
    pub args: Vec<RemoveSecretBackendArg<'a>>,
}

#[derive(Serialize)]
pub struct RemoveSecretBackendArg<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

// ---------------------------------------------------------------- ModelConfig

#[derive(Deserialize)]
pub struct ModelConfigResults {
    #[serde(default)]
    pub config: BTreeMap<String, ConfigValue>,
}

#[derive(Deserialize, Clone)]
pub struct ConfigValue {
    #[serde(default)]
    pub value: Value,
    #[serde(default)]
    pub source: String,
}

#[derive(Serialize)]
pub struct ModelSet {
    pub config: BTreeMap<String, Value>,
}

#[derive(Serialize)]
pub struct ModelUnset {
    pub keys: Vec<String>,
}

// ---------------------------------------------------------------- Application (charm config)

#[derive(Serialize)]
pub struct ApplicationGet {
    pub application: String,
    pub branch: String,
}

#[derive(Deserialize)]
pub struct ApplicationGetResults {
    /// Option name to Juju's description of it (`type`, `source`, `value`, `default`,
    /// `description`).
    #[serde(default)]
    pub config: BTreeMap<String, ConfigOptionWire>,
}

#[derive(Deserialize)]
pub struct ConfigOptionWire {
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub value: Option<Value>,
    #[serde(default)]
    pub default: Option<Value>,
}

#[derive(Serialize)]
pub struct ConfigSetArgs {
    #[serde(rename = "Args")]
    pub args: Vec<ConfigSet>,
}

#[derive(Serialize)]
pub struct ConfigSet {
    pub application: String,
    pub generation: String,
    pub config: BTreeMap<String, String>,
    #[serde(rename = "config-yaml")]
    pub config_yaml: String,
}

#[derive(Serialize)]
pub struct ApplicationConfigUnsetArgs {
    #[serde(rename = "Args")]
    pub args: Vec<ApplicationUnset>,
}

#[derive(Serialize)]
pub struct ApplicationUnset {
    pub application: String,
    pub branch: String,
    pub options: Vec<String>,
}
