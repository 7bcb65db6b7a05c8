//! `connection.json`: what a client needs to reach a controller (endpoint, CA certificate,
//! users and their passwords, models), as the Juju emulator writes it into its state
//! directory. The operator's `connection-secret` command turns it into the connection
//! Secret; tests and tools read it to log in.

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
