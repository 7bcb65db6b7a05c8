//! The Juju controller API client.
//!
//! Speaks Juju's wire protocol (JSON-RPC over a TLS websocket, juju-api.md) to Juju
//! 3.3 – 3.6 controllers: [`JujuClient`] holds one connection to `/api` and one per
//! model, each verified against the controller's CA with the server name
//! `juju-apiserver`, multiplexed, kept alive with pings and re-established after a drop.
//! The typed calls live in [`facade`]; errors keep Juju's codes ([`ErrorCode`]); secret
//! values live in [`SecretValue`]/[`SecretContent`], which never print.
//!
//! This module knows nothing of Kubernetes.

mod client;
pub mod content;
pub mod error;
pub mod facade;
pub mod transport;
mod wire;

pub use client::JujuClient;
pub use content::{ContentError, ContentLimits, SecretContent, SecretValue};
pub use error::{ApiError, Error, ErrorCode, Result};
pub use facade::model_manager::{Model, ModelSpec};
pub use facade::secret_backends::{BackendConfig, BackendInfo, BackendUpdate, NewBackend};
pub use facade::secrets::{
    AccessInfo, NewSecret, RevisionInfo, SecretFilter, SecretInfo, SecretRemoval, SecretSelector,
    SecretUpdate, SecretUri,
};
pub use transport::{Backoff, CallStats, ConnectOptions, Connection, Password, Target};
