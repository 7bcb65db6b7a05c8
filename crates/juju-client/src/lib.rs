//! A client for the Juju controller API: user secrets, secret backends, model config.
//!
//! Speaks Juju's wire protocol (JSON-RPC over a TLS websocket) to Juju 3.3 – 3.6
//! controllers: [`JujuClient`] holds one connection to `/api` and one per model, each
//! verified against the controller's CA with the server name `juju-apiserver`,
//! multiplexed (many requests in flight on one socket), kept alive with pings and
//! re-established after a drop. The typed calls live in [`facade`]; errors keep Juju's
//! codes ([`ErrorCode`]); secret values live in [`SecretValue`]/[`SecretContent`], whose
//! `Debug` and `Display` never print them.
//!
//! This crate knows nothing of Kubernetes.
//!
//! # Example: connect, create a secret, grant it
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use juju_client::{ConnectOptions, JujuClient, NewSecret, Password, SecretContent, SecretSelector};
//! # // A Juju controller emulator stands in for a real controller.
//! # let dir = tempfile::tempdir()?;
//! # let emulator = juju_emulator::Emulator::start(juju_emulator::EmulatorConfig::new(dir.path())).await?;
//! # let info = emulator.connection_info();
//! # let (endpoint, ca_cert) = (info.endpoint.clone(), info.ca_cert.clone());
//! # let password = info.users.iter().find(|u| u.username == "admin").map(|u| u.password.clone()).unwrap_or_default();
//! # let model_uuid = info.models[0].uuid.clone();
//!
//! // The controller's address, its CA certificate (PEM) and a user allowed to manage
//! // secrets in the model (`juju show-controller` prints the first two).
//! let client = JujuClient::new(ConnectOptions::new(
//!     vec![endpoint],
//!     ca_cert,
//!     "admin",
//!     Password::new(password),
//! ))?;
//!
//! // Create a user secret (`juju add-secret db-creds password=...`).
//! let mut content = SecretContent::new();
//! content.insert("password", "s3cret-from-somewhere");
//! let created = client
//!     .create_secrets(
//!         &model_uuid,
//!         &[NewSecret {
//!             label: Some("db-creds".into()),
//!             description: Some("primary database".into()),
//!             content,
//!         }],
//!     )
//!     .await?;
//! let uri = created.into_iter().next().ok_or("no result")??;
//! println!("created {}", uri.short()); // secret:<xid>
//!
//! // Let the application `mysql` read it (`juju grant-secret db-creds mysql`).
//! for result in client
//!     .grant_secret(&model_uuid, &SecretSelector::Uri(uri.clone()), &["mysql".to_owned()])
//!     .await?
//! {
//!     result?;
//! }
//!
//! // The listing shows the grant; values only with `show_secrets` and model admin.
//! let listed = client
//!     .list_secrets(&model_uuid, &juju_client::SecretFilter::default(), false)
//!     .await?;
//! assert!(listed.iter().any(|s| s.uri == uri && s.access.iter().any(|a| a.application() == Some("mysql"))));
//! # Ok(())
//! # }
//! ```
//!
//! # What it does not do
//!
//! Only the facades a secrets operator needs are typed: Admin (login), ModelManager
//! (list and look up models), ModelConfig (the `secret-backend` key), Secrets v1/v2 (user
//! secrets), SecretBackends v1 and Application (an application's charm config, where a
//! granted secret's URI goes), plus Pinger. Charm-owned secrets (the SecretsManager
//! facade agents use), macaroon or OIDC login, and controller discovery (redirects, many
//! addresses tried in a smart order) are not implemented.

mod client;
pub mod connection_file;
pub mod content;
pub mod error;
pub mod facade;
pub mod transport;
mod wire;

pub use client::JujuClient;
pub use content::{ContentError, ContentLimits, SecretContent, SecretValue};
pub use error::{ApiError, Error, ErrorCode, Result};
pub use facade::application::ConfigOption;
pub use facade::model_manager::{Model, ModelSpec};
pub use facade::secret_backends::{BackendConfig, BackendInfo, BackendUpdate, NewBackend};
pub use facade::secrets::{
    AccessInfo, NewSecret, RevisionInfo, SecretFilter, SecretInfo, SecretRemoval, SecretSelector,
    SecretUpdate, SecretUri,
};
pub use transport::{Backoff, CallStats, ConnectOptions, Connection, Fence, Password, Target};
