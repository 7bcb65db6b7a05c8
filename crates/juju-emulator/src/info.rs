//! What the emulator hands to clients (`connection.json`) and what it starts from (the seed).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use juju_client::connection_file::{ConnectionInfo, ModelInfo, UserInfo};

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
