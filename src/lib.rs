//! juju-secrets-operator: declare Juju user secrets, grants and secret backends as
//! Kubernetes custom resources.
//!
//! - [`crd`]: the custom resources (`JujuSecret`, `JujuSecretGrant`, `JujuSecretBackend`),
//!   their specs, statuses and conditions;
//! - [`controller`]: the controllers that reconcile them against a Juju controller.
//!
//! Kubernetes code never builds a Juju frame: Juju is reached through the
//! [`juju_client`] crate, which knows nothing of Kubernetes. The Juju controller emulator
//! the tests run against is the `juju-emulator` crate, which this crate does not link.
#![forbid(unsafe_code)]

pub mod controller;
pub mod crd;
pub mod plan;
