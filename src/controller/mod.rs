//! The controllers, and the context they share.
//!
//! [`run`] starts the operator: it checks the CRDs are installed, reads the Juju
//! credentials from a Kubernetes Secret, waits for the leader Lease (when leader
//! election is on), and runs the controllers until SIGTERM/SIGINT, serving `/metrics`,
//! `/healthz` and `/readyz` meanwhile.

pub mod backend;
mod connect;
pub mod content;
mod context;
pub mod events;
pub mod grant;
pub mod juju_state;
pub mod jujusecret;
pub mod leader;
pub mod metrics;
pub mod mutants;
pub(crate) mod outcome;
pub mod ownership;
mod run;
pub mod tenancy;
#[cfg(test)]
mod test_support;
pub mod wiring;

pub use connect::{
    MAC_KEY_SECRET, MAX_KUBE_REQUESTS, connection_namespace, connection_options, existing_mac_key,
    limit_requests, options_from_secret,
};
pub(crate) use connect::{kube_client, kube_config};
pub use context::{
    Backoff, Context, Error, FIELD_MANAGER, KubeWrites, MAX_KUBE_WRITES, now_rfc3339,
};
pub use run::{RunConfig, RunError, all_but_status, run};
