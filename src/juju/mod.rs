//! Juju API client.
