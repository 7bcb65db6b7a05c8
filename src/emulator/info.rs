//! What the emulator hands to clients (`connection.json`) and what it starts from (the seed).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Everything a client needs to connect; written to `<state-dir>/connection.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ConnectionInfo {
    /// `127.0.0.1:PORT`.
    pub endpoint: String,
    /// The controller CA certificate (PEM). The server certificate is valid for the names
    /// `juju-apiserver` and `localhost` and the address `127.0.0.1`.
    pub ca_cert: String,
    /// The controller UUID (also the ID of the `internal` secret backend).
    pub controller_uuid: String,
    /// The seeded users with their passwords.
    pub users: Vec<UserInfo>,
    /// The models on the controller.
    pub models: Vec<ModelInfo>,
}

/// A local user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct UserInfo {
    /// The user name (the tag is `user-<username>`).
    pub username: String,
    /// The password.
    pub password: String,
    /// The access the seed gave: a controller access (`superuser`, `add-model`, `login`)
    /// or a model access (`read`, `write`, `admin`) that comes with controller `login`.
    pub access: String,
}

/// A model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ModelInfo {
    /// The model name, unique per owner.
    pub name: String,
    /// The owner's user name.
    pub owner: String,
    /// The model UUID.
    pub uuid: String,
    /// Applications deployed in the model (grant targets).
    pub applications: Vec<String>,
}

/// The starting content of a new state directory. Ignored when the state directory already
/// holds state. Reads the same JSON shape as `connection.json`, minus `endpoint` and
/// `ca-cert`; every field but the names may be left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Seed {
    /// A fixed controller UUID; random when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_uuid: Option<String>,
    /// Users to create.
    #[serde(default)]
    pub users: Vec<SeedUser>,
    /// Models to create.
    #[serde(default)]
    pub models: Vec<SeedModel>,
}

/// A user in a [`Seed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SeedUser {
    /// The user name.
    pub username: String,
    /// A fixed password; random when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `superuser`, `add-model` or `login` (controller access), or `read`, `write` or
    /// `admin`: controller `login` plus that access on every seeded model not listed in
    /// `models`.
    pub access: String,
    /// Per-model access, keyed by `owner/name` or by model UUID.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, String>,
}

/// A model in a [`Seed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SeedModel {
    /// The model name.
    pub name: String,
    /// The owner's user name; must be a seeded user.
    pub owner: String,
    /// A fixed UUID; random when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Applications deployed in the model.
    #[serde(default)]
    pub applications: Vec<String>,
}

impl Default for Seed {
    /// `admin` (controller superuser), `reader` (controller login, `read` on `admin/dev`)
    /// and the model `admin/dev` with the applications `mysql` and `wordpress`.
    fn default() -> Self {
        Self {
            controller_uuid: None,
            users: vec![
                SeedUser {
                    username: "admin".into(),
                    password: None,
                    access: "superuser".into(),
                    models: BTreeMap::new(),
                },
                SeedUser {
                    username: "reader".into(),
                    password: None,
                    access: "read".into(),
                    models: BTreeMap::from([("admin/dev".into(), "read".into())]),
                },
            ],
            models: vec![SeedModel {
                name: "dev".into(),
                owner: "admin".into(),
                uuid: None,
                applications: vec!["mysql".into(), "wordpress".into()],
            }],
        }
    }
}

impl Seed {
    /// Reads a seed from a JSON file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, super::EmulatorError> {
        let text = std::fs::read_to_string(path).map_err(|source| super::EmulatorError::Io {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| super::EmulatorError::Seed(e.to_string()))
    }
}
