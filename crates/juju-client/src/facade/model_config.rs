//! ModelConfig v3 (model connection): reading model config and switching a model's
//! `secret-backend`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::JujuClient;
use crate::error::Result;
use crate::wire;

const FACADE: &str = "ModelConfig";
const VERSIONS: &[u32] = &[3];

/// The model-config key naming the model's active secret backend.
pub const SECRET_BACKEND_KEY: &str = "secret-backend";

/// The value that means "the built-in backend" (`internal` on IAAS models,
/// `<model>-local` on Kubernetes models). Juju's ModelSet accepts `auto`, not `internal`.
pub const AUTO_BACKEND: &str = "auto";

/// A config attribute and where its value comes from. `Debug` leaves the value out:
/// model admins get secret attributes back.
#[derive(Clone)]
pub struct ConfigAttribute {
    /// The value (any JSON).
    pub value: Value,
    /// `default`, `controller`, `region` or `model`.
    pub source: String,
}

impl std::fmt::Debug for ConfigAttribute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigAttribute")
            .field("value", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

impl JujuClient {
    /// The model's configuration (`ModelGet`).
    pub async fn model_get(&self, model_uuid: &str) -> Result<BTreeMap<String, ConfigAttribute>> {
        let answer: wire::ModelConfigResults = self
            .model(model_uuid)?
            .call(FACADE, VERSIONS, "ModelGet", &wire::Empty {})
            .await?;
        Ok(answer
            .config
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    ConfigAttribute {
                        value: v.value,
                        source: v.source,
                    },
                )
            })
            .collect())
    }

    /// Sets config attributes (`ModelSet`).
    pub async fn model_set(&self, model_uuid: &str, config: BTreeMap<String, Value>) -> Result<()> {
        let _: Value = self
            .model(model_uuid)?
            .call(FACADE, VERSIONS, "ModelSet", &wire::ModelSet { config })
            .await?;
        Ok(())
    }

    /// Unsets config attributes (`ModelUnset`); they fall back to inherited values.
    pub async fn model_unset(&self, model_uuid: &str, keys: &[&str]) -> Result<()> {
        let params = wire::ModelUnset {
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        };
        let _: Value = self
            .model(model_uuid)?
            .call(FACADE, VERSIONS, "ModelUnset", &params)
            .await?;
        Ok(())
    }

    /// The model's `secret-backend` setting (`auto` unless set).
    pub async fn secret_backend(&self, model_uuid: &str) -> Result<String> {
        let config = self.model_get(model_uuid).await?;
        Ok(config
            .get(SECRET_BACKEND_KEY)
            .and_then(|a| a.value.as_str())
            .unwrap_or(AUTO_BACKEND)
            .to_owned())
    }

    /// Points the model's `secret-backend` at `backend` (a backend name, or
    /// [`AUTO_BACKEND`]). Juju pings the backend first.
    pub async fn set_secret_backend(&self, model_uuid: &str, backend: &str) -> Result<()> {
        let config = BTreeMap::from([(SECRET_BACKEND_KEY.to_owned(), Value::from(backend))]);
        self.model_set(model_uuid, config).await
    }

    /// Removes the model's own `secret-backend` setting (back to the inherited value,
    /// normally `auto`).
    pub async fn unset_secret_backend(&self, model_uuid: &str) -> Result<()> {
        self.model_unset(model_uuid, &[SECRET_BACKEND_KEY]).await
    }
}
