//! SecretBackends v1 (controller connection): vault and kubernetes secret backends.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde_json::Value;

use super::error_results;
use crate::JujuClient;
use crate::error::{ApiError, Error, Result, WireError};
use crate::wire;

const FACADE: &str = "SecretBackends";
const VERSIONS: &[u32] = &[1];

/// A backend's configuration. Values may be credentials (`token`, `client-key`,
/// `password`), so `Debug` shows the keys only.
#[derive(Clone, Default, PartialEq)]
pub struct BackendConfig(pub BTreeMap<String, Value>);

impl BackendConfig {
    /// Sets a key.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        self.0.insert(key.into(), value.into());
    }

    /// Reads a key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }
}

impl fmt::Debug for BackendConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// A backend to add.
#[derive(Clone, Debug)]
pub struct NewBackend {
    /// Backend name (not `internal` or `auto`).
    pub name: String,
    /// `vault` or `kubernetes`.
    pub backend_type: String,
    /// Token rotation; Juju wants at least 1 h.
    pub token_rotate_interval: Option<Duration>,
    /// Provider configuration.
    pub config: BackendConfig,
}

/// Changes to a backend. `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct BackendUpdate {
    /// Current name.
    pub name: String,
    /// New name (refused by Juju while the backend holds revisions).
    pub name_change: Option<String>,
    /// `Some(ZERO)` turns rotation off.
    pub token_rotate_interval: Option<Duration>,
    /// Keys to add or overwrite.
    pub config: Option<BackendConfig>,
    /// Keys to delete.
    pub reset: Vec<String>,
    /// Skip Juju's reachability check.
    pub force: bool,
}

/// A backend as ListSecretBackends reports it.
#[derive(Clone, Debug)]
pub struct BackendInfo {
    /// Backend ID (the controller UUID for `internal`).
    pub id: String,
    /// Name.
    pub name: String,
    /// `controller`, `vault` or `kubernetes`.
    pub backend_type: String,
    /// Token rotation interval, if set.
    pub token_rotate_interval: Option<Duration>,
    /// Configuration; credentials only with `reveal`.
    pub config: BackendConfig,
    /// Number of secrets with a revision stored here.
    pub num_secrets: u64,
    /// `active` or `error`.
    pub status: String,
    /// Why the status is `error`.
    pub message: Option<String>,
    /// Set when Juju could not describe the backend.
    pub error: Option<ApiError>,
}

/// Juju quotes config values in some messages (`unknown key "Token" (value "s.abc")`,
/// schema type errors). A token under a misspelled key must not reach a status or a log
/// through such a message, so every value that was sent is masked, and so is Juju's
/// `(value ...)` part.
fn redact_config_values(mut error: ApiError, config: Option<&BackendConfig>) -> ApiError {
    if let Some(start) = error.message.find("(value ")
        && let Some(end) = error.message.rfind(')')
        && end > start
    {
        error
            .message
            .replace_range(start..=end, "(value <redacted>)");
    }
    for value in config.into_iter().flat_map(|c| c.0.values()) {
        let shown = match value {
            Value::String(s) => s.clone(),
            Value::Null | Value::Bool(_) => continue,
            other => other.to_string(),
        };
        if shown.len() >= 3 {
            error.message = error.message.replace(&shown, "<redacted>");
        }
    }
    error
}

/// A call Juju refuses as a whole answers with one error for all the items sent: every
/// value sent with any of them is masked in it.
fn redact_call<T>(result: Result<T>, configs: &[Option<&BackendConfig>]) -> Result<T> {
    result.map_err(|e| match e {
        Error::Api {
            facade,
            method,
            source,
        } => Error::Api {
            facade,
            method,
            source: configs
                .iter()
                .fold(redact_config_values(source, None), |e, config| {
                    redact_config_values(e, *config)
                }),
        },
        other => other,
    })
}

fn redact_results(
    results: Vec<std::result::Result<(), ApiError>>,
    configs: impl Iterator<Item = Option<BackendConfig>>,
) -> Vec<std::result::Result<(), ApiError>> {
    results
        .into_iter()
        .zip(configs)
        .map(|(r, config)| r.map_err(|e| redact_config_values(e, config.as_ref())))
        .collect()
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn from_nanos(n: i64) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(0))
}

impl JujuClient {
    /// Adds backends; one result per item. Juju pings each backend first.
    pub async fn add_secret_backends(
        &self,
        backends: &[NewBackend],
    ) -> Result<Vec<std::result::Result<(), ApiError>>> {
        let params = wire::AddSecretBackendArgs {
            args: backends
                .iter()
                .map(|b| wire::AddSecretBackendArg {
                    id: "",
                    name: &b.name,
                    backend_type: &b.backend_type,
                    token_rotate_interval: b.token_rotate_interval.map(nanos),
                    config: &b.config.0,
                })
                .collect(),
        };
        let configs: Vec<_> = backends.iter().map(|b| Some(&b.config)).collect();
        let answer: wire::ErrorResults = redact_call(
            self.controller()?
                .call(FACADE, VERSIONS, "AddSecretBackends", &params)
                .await,
            &configs,
        )?;
        let results = error_results(FACADE, "AddSecretBackends", answer, backends.len())?;
        Ok(redact_results(
            results,
            backends.iter().map(|b| Some(b.config.clone())),
        ))
    }

    /// Lists backends (all when `names` is empty), sorted by ID as Juju does. With
    /// `reveal` the credentials are included (needs controller superuser).
    pub async fn list_secret_backends(
        &self,
        names: &[String],
        reveal: bool,
    ) -> Result<Vec<BackendInfo>> {
        let params = wire::ListSecretBackendsArgs {
            names: (!names.is_empty()).then_some(names),
            reveal,
        };
        let answer: wire::ListSecretBackendsResults = self
            .controller()?
            .call(FACADE, VERSIONS, "ListSecretBackends", &params)
            .await?;
        Ok(answer
            .results
            .unwrap_or_default()
            .into_iter()
            .map(|r| BackendInfo {
                id: r.id,
                name: r.result.name,
                backend_type: r.result.backend_type,
                token_rotate_interval: r.result.token_rotate_interval.map(from_nanos),
                config: BackendConfig(r.result.config.unwrap_or_default()),
                num_secrets: r.num_secrets,
                status: r.status,
                message: r.message.filter(|m| !m.is_empty()),
                error: r.error.filter(WireError::is_error).map(Into::into),
            })
            .collect())
    }

    /// Updates backends; one result per item.
    pub async fn update_secret_backends(
        &self,
        updates: &[BackendUpdate],
    ) -> Result<Vec<std::result::Result<(), ApiError>>> {
        let params = wire::UpdateSecretBackendArgs {
            args: updates
                .iter()
                .map(|u| wire::UpdateSecretBackendArg {
                    name: &u.name,
                    name_change: u.name_change.as_deref(),
                    token_rotate_interval: u.token_rotate_interval.map(nanos),
                    config: u.config.as_ref().map(|c| &c.0),
                    reset: (!u.reset.is_empty()).then_some(u.reset.as_slice()),
                    force: u.force,
                })
                .collect(),
        };
        let configs: Vec<_> = updates.iter().map(|u| u.config.as_ref()).collect();
        let answer: wire::ErrorResults = redact_call(
            self.controller()?
                .call(FACADE, VERSIONS, "UpdateSecretBackends", &params)
                .await,
            &configs,
        )?;
        let results = error_results(FACADE, "UpdateSecretBackends", answer, updates.len())?;
        Ok(redact_results(
            results,
            updates.iter().map(|u| u.config.clone()),
        ))
    }

    /// Removes backends by name; an unknown name succeeds. A backend that still holds
    /// revisions fails with `not supported` unless `force`.
    pub async fn remove_secret_backends(
        &self,
        names: &[(String, bool)],
    ) -> Result<Vec<std::result::Result<(), ApiError>>> {
        let params = wire::RemoveSecretBackendArgs {
            args: names
                .iter()
                .map(|(name, force)| wire::RemoveSecretBackendArg {
                    name,
                    force: *force,
                })
                .collect(),
        };
        let answer: wire::ErrorResults = self
            .controller()?
            .call(FACADE, VERSIONS, "RemoveSecretBackends", &params)
            .await?;
        error_results(FACADE, "RemoveSecretBackends", answer, names.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_debug_shows_keys_only() {
        let mut c = BackendConfig::default();
        c.insert("endpoint", "https://vault.example:8200");
        c.insert("token", "s.very-secret-token");
        let shown = format!("{c:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("token"));
    }

    #[test]
    fn juju_messages_never_carry_sent_config_values() {
        let mut c = BackendConfig::default();
        c.insert("endpoint", "https://vault.example:8200");
        c.insert("Token", "s.very-secret-token");
        let e = ApiError::new(
            "",
            "invalid config for provider \"vault\": unknown key \"Token\" (value \"s.very-secret-token\")",
        );
        let e = redact_config_values(e, Some(&c));
        assert_eq!(
            e.message,
            "invalid config for provider \"vault\": unknown key \"Token\" (value <redacted>)"
        );
        let e = ApiError::new(
            "",
            "backend not reachable: token s.very-secret-token refused",
        );
        assert!(
            !redact_config_values(e, Some(&c))
                .message
                .contains("very-secret")
        );
    }

    #[test]
    fn a_call_refused_whole_never_carries_sent_config_values() {
        let mut c = BackendConfig::default();
        c.insert("token", "s.very-secret-token");
        let refused: Result<()> = Err(Error::Api {
            facade: FACADE,
            method: "AddSecretBackends",
            source: ApiError::new(
                "not valid",
                "config: token s.very-secret-token (value \"s.very-secret-token\") rejected",
            ),
        });
        let shown = redact_call(refused, &[None, Some(&c)])
            .unwrap_err()
            .to_string();
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("AddSecretBackends"), "{shown}");
        assert!(shown.contains("rejected"), "{shown}");
    }

    #[test]
    fn durations_are_nanoseconds() {
        assert_eq!(nanos(Duration::from_secs(3600)), 3_600_000_000_000);
        assert_eq!(from_nanos(86_400_000_000_000), Duration::from_secs(86_400));
        assert_eq!(from_nanos(-5), Duration::ZERO);
    }
}
