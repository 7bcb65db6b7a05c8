//! [`JujuClient`]: one controller connection plus one connection per model in use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::content::ContentLimits;
use super::error::Result;
use super::transport::{CallStats, ConnectOptions, Connection, Target};

/// A client for one Juju controller. Cheap to clone; connections are shared.
///
/// The controller connection (`/api`) serves ModelManager and SecretBackends; each model
/// gets its own connection (`/model/<uuid>/api`) for Secrets and ModelConfig, opened on
/// first use and kept. All of them reconnect on their own.
#[derive(Clone)]
pub struct JujuClient {
    options: Arc<ConnectOptions>,
    connections: Arc<Mutex<HashMap<Target, Connection>>>,
    stats: Arc<CallStats>,
}

impl std::fmt::Debug for JujuClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JujuClient")
            .field("endpoints", &self.options.endpoints)
            .field("username", &self.options.username)
            .finish_non_exhaustive()
    }
}

impl JujuClient {
    /// Creates the client and starts connecting to the controller in the background.
    /// Fails only on unusable options (no endpoint, a CA that does not parse); an
    /// unreachable controller shows up in the first call.
    pub fn new(options: ConnectOptions) -> Result<Self> {
        let client = Self {
            options: Arc::new(options),
            connections: Arc::default(),
            stats: Arc::new(CallStats::default()),
        };
        client.connection(Target::Controller)?;
        Ok(client)
    }

    /// The connection to `target`, opened on first use and replaced when its login was
    /// refused (so access granted later, or a model created later, is picked up).
    fn connection(&self, target: Target) -> Result<Connection> {
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(conn) = connections.get(&target).filter(|c| !c.is_finished()) {
            return Ok(conn.clone());
        }
        let conn = Connection::open((*self.options).clone(), target.clone(), self.stats.clone())?;
        connections.insert(target, conn.clone());
        Ok(conn)
    }

    /// The options the client was built with.
    pub fn options(&self) -> &ConnectOptions {
        &self.options
    }

    /// The connection to `/api`.
    pub fn controller(&self) -> Result<Connection> {
        self.connection(Target::Controller)
    }

    /// The connection to `/model/<uuid>/api`, opened on first use.
    pub fn model(&self, model_uuid: &str) -> Result<Connection> {
        if !super::facade::model_manager::is_uuid(model_uuid) {
            return Err(super::error::Error::ModelNotFound {
                model: model_uuid.to_owned(),
            });
        }
        self.connection(Target::Model(model_uuid.to_owned()))
    }

    /// Closes the connection to one model (it is reopened on next use).
    pub fn forget_model(&self, model_uuid: &str) {
        self.connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&Target::Model(model_uuid.to_owned()));
    }

    /// True while the controller connection is logged in.
    pub fn controller_connected(&self) -> bool {
        self.controller().is_ok_and(|c| c.is_connected())
    }

    /// Counters of the calls made so far, per `Facade.Method`.
    pub fn stats(&self) -> &CallStats {
        &self.stats
    }

    /// The content size limits for secrets of one model, from the version the model's
    /// connection reported at login.
    pub async fn model_content_limits(&self, model_uuid: &str) -> Result<ContentLimits> {
        let version = self.model(model_uuid)?.server_version().await?;
        Ok(ContentLimits::for_server_version(&version))
    }

    /// The content size limits Juju's own client applies for this controller's version.
    pub async fn content_limits(&self) -> Result<ContentLimits> {
        let version = self.controller()?.server_version().await?;
        Ok(ContentLimits::for_server_version(&version))
    }
}
