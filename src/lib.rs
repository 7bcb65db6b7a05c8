//! juju-secrets-operator: declare Juju user secrets, grants and secret backends as
//! Kubernetes custom resources.
//!
//! The crate is split so that Kubernetes code never builds a Juju frame:
//! - [`juju`]: the typed client for the Juju controller API (TLS websocket, JSON-RPC,
//!   facades), with Juju's error codes and redacted secret values;
//! - [`emulator`]: a Juju controller emulator that speaks the same wire protocol, used by
//!   tests and by the local development environment.
#![forbid(unsafe_code)]

pub mod controller;
pub mod crd;
pub mod emulator;
pub mod juju;
