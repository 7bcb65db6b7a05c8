//! Application (model connection): an application's charm config, as `juju config`
//! reads, sets and resets it (`Get`, `SetConfigs`, `UnsetApplicationsConfig`, on the
//! `master` branch). Juju 3.6 serves versions 15 to 22; these calls are the same in all.

use std::collections::BTreeMap;

use serde_json::Value;

use super::error_results;
use crate::JujuClient;
use crate::error::{ApiError, Result};
use crate::wire;

const FACADE: &str = "Application";
const VERSIONS: &[u32] = &[15, 16, 17, 18, 19, 20, 21, 22];
const MASTER: &str = "master";

/// One charm config option of an application, as Juju describes it. `Debug` leaves the
/// value out: a string option may hold anything.
#[derive(Clone, PartialEq)]
pub struct ConfigOption {
    /// `string`, `int`, `float`, `boolean` or `secret`.
    pub kind: String,
    /// `unset`, `default` or `user` (a value equal to the default reads as `default`).
    pub source: String,
    /// The value in effect (the user's or the default), typed as the option.
    pub value: Option<Value>,
    /// The charm's default, if it has one.
    pub default: Option<Value>,
}

impl ConfigOption {
    /// The value a person or the operator set, if any (`source` is `user`).
    pub fn user_value(&self) -> Option<&Value> {
        self.value.as_ref().filter(|_| self.source == "user")
    }
}

impl std::fmt::Debug for ConfigOption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigOption")
            .field("kind", &self.kind)
            .field("source", &self.source)
            .field("value", &self.value.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl JujuClient {
    /// The charm config of `application` (`Get`): every option the charm declares.
    /// An unknown application fails the call with code `not found`.
    pub async fn application_config(
        &self,
        model_uuid: &str,
        application: &str,
    ) -> Result<BTreeMap<String, ConfigOption>> {
        let params = wire::ApplicationGet {
            application: application.to_owned(),
            branch: MASTER.to_owned(),
        };
        let answer: wire::ApplicationGetResults = self
            .model(model_uuid)?
            .call(FACADE, VERSIONS, "Get", &params)
            .await?;
        Ok(answer
            .config
            .into_iter()
            .map(|(name, o)| {
                (
                    name,
                    ConfigOption {
                        kind: o.kind,
                        source: o.source,
                        value: o.value,
                        default: o.default,
                    },
                )
            })
            .collect())
    }

    /// Sets charm config options, given as strings as `juju config app k=v` sends them
    /// (`SetConfigs`): one result per application. Juju checks every value of an item
    /// before it writes any (unknown option, wrong type, a `secret` option's URI syntax).
    pub async fn set_application_config(
        &self,
        model_uuid: &str,
        items: &[(String, BTreeMap<String, String>)],
    ) -> Result<Vec<std::result::Result<(), ApiError>>> {
        let params = wire::ConfigSetArgs {
            args: items
                .iter()
                .map(|(application, config)| wire::ConfigSet {
                    application: application.clone(),
                    generation: MASTER.to_owned(),
                    config: config.clone(),
                    config_yaml: String::new(),
                })
                .collect(),
        };
        let answer: wire::ErrorResults = self
            .model(model_uuid)?
            .call(FACADE, VERSIONS, "SetConfigs", &params)
            .await?;
        error_results(FACADE, "SetConfigs", answer, items.len())
    }

    /// Resets charm config options to their defaults, as `juju config app --reset k`
    /// (`UnsetApplicationsConfig`): one result per application.
    pub async fn unset_application_config(
        &self,
        model_uuid: &str,
        items: &[(String, Vec<String>)],
    ) -> Result<Vec<std::result::Result<(), ApiError>>> {
        let params = wire::ApplicationConfigUnsetArgs {
            args: items
                .iter()
                .map(|(application, options)| wire::ApplicationUnset {
                    application: application.clone(),
                    branch: MASTER.to_owned(),
                    options: options.clone(),
                })
                .collect(),
        };
        let answer: wire::ErrorResults = self
            .model(model_uuid)?
            .call(FACADE, VERSIONS, "UnsetApplicationsConfig", &params)
            .await?;
        error_results(FACADE, "UnsetApplicationsConfig", answer, items.len())
    }
}
