//! ModelConfig facade v3: ModelGet, ModelSet, ModelUnset, and the `secret-backend` key.
//!
//! On `/api` the facade acts on the (unlisted) controller model.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{Call, JUJU_VERSION};
use crate::rpc::{CODE_NOT_FOUND, RpcError, empty};
use crate::state::{ModelAccess, State};

/// Keys that ModelSet may not change.
const IMMUTABLE: &[&str] = &["name", "uuid", "type", "agent-version"];

/// Runs one ModelConfig method.
pub(super) fn handle(call: &Call<'_>, method: &str) -> Result<Value, RpcError> {
    match method {
        "ModelGet" => {
            call.require_model(ModelAccess::Read)?;
            model_get(call)
        }
        "ModelSet" => {
            call.require_model(ModelAccess::Write)?;
            model_set(call)
        }
        "ModelUnset" => {
            call.require_model(ModelAccess::Write)?;
            model_unset(call)
        }
        _ => Err(RpcError::plain(format!(
            "no such request - method {method}"
        ))),
    }
}

/// The model the call acts on: name, uuid, type and its set config.
fn target(
    state: &State,
    call: &Call<'_>,
) -> Option<(String, String, String, BTreeMap<String, Value>)> {
    match call.model_uuid() {
        Some(uuid) => state.model(uuid).map(|m| {
            (
                m.name.clone(),
                m.uuid.clone(),
                m.model_type.clone(),
                m.config.clone(),
            )
        }),
        None => Some((
            "controller".into(),
            state.controller_model_uuid.clone(),
            "iaas".into(),
            state.controller_model_config.clone(),
        )),
    }
}

fn model_gone() -> RpcError {
    RpcError::new("model not found", CODE_NOT_FOUND)
}

fn model_get(call: &Call<'_>) -> Result<Value, RpcError> {
    let (name, uuid, model_type, set) = call
        .conn
        .shared
        .read(|s| target(s, call))
        .ok_or_else(model_gone)?;
    let mut config = Map::new();
    let entry = |value: Value, source: &str| json!({"value": value, "source": source});
    config.insert("name".into(), entry(json!(name), "model"));
    config.insert("uuid".into(), entry(json!(uuid), "model"));
    config.insert("type".into(), entry(json!(model_type), "model"));
    config.insert("agent-version".into(), entry(json!(JUJU_VERSION), "model"));
    config.insert("default-series".into(), entry(json!(""), "default"));
    config.insert("default-base".into(), entry(json!(""), "default"));
    config.insert("development".into(), entry(json!(false), "default"));
    config.insert(
        "logging-config".into(),
        entry(json!("<root>=INFO"), "model"),
    );
    config.insert("secret-backend".into(), entry(json!("auto"), "default"));
    for (k, v) in set {
        config.insert(k, entry(v, "model"));
    }
    Ok(json!({ "config": config }))
}

/// Checks a `secret-backend` value and returns the ID of the backend it selects.
fn check_secret_backend(call: &Call<'_>, state: &State, value: &Value) -> Result<String, RpcError> {
    let Value::String(name) = value else {
        return Err(RpcError::not_valid(
            "\"secret-backend\" config value is not a string",
        ));
    };
    match name.as_str() {
        "" => Err(RpcError::not_valid(
            "empty \"secret-backend\" config value not valid",
        )),
        "auto" => Ok(state.controller_uuid.clone()),
        other => {
            let backend = state.backend_by_name(other).ok_or_else(|| {
                RpcError::not_found(format!("secret backend {other:?} not found"))
            })?;
            if let Some(detail) = call.conn.shared.faults.ping_backend(other) {
                return Err(RpcError::plain(format!(
                    "cannot ping backend {other:?}: {detail}"
                )));
            }
            Ok(backend.id.clone())
        }
    }
}

/// Drains the call's model after its `secret-backend` changed: at once, or after the
/// drain delay (as Juju's drain workers do), to the backend the model names by then.
fn drain(call: &Call<'_>, state: &mut State) {
    let Some(uuid) = call.model_uuid() else {
        return;
    };
    let delay = call.conn.shared.faults.drain_delay();
    if delay.is_zero() {
        move_revisions(state, uuid);
        return;
    }
    let shared = call.conn.shared.clone();
    let uuid = uuid.to_owned();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        shared.write(|state| move_revisions(state, &uuid));
    });
}

/// Moves every revision of model `uuid` to the backend its `secret-backend` names,
/// except those of a force-removed backend: their content is gone, they stay where they
/// were (listed with backend `unknown`) for good.
fn move_revisions(state: &mut State, uuid: &str) {
    let Some(model) = state.model(uuid) else {
        return;
    };
    let setting = model.secret_backend_setting();
    let target = if setting == "auto" || setting == crate::state::INTERNAL_BACKEND {
        Some(state.controller_uuid.clone())
    } else {
        state.backend_by_name(&setting).map(|b| b.id.clone())
    };
    let Some(target) = target else {
        return;
    };
    let mut present: Vec<String> = state.backends.iter().map(|b| b.id.clone()).collect();
    present.push(state.controller_uuid.clone());
    if let Some(model) = state.model_mut(uuid) {
        for secret in &mut model.secrets {
            for rev in &mut secret.revisions {
                if present.contains(&rev.backend_id) {
                    rev.backend_id.clone_from(&target);
                }
            }
        }
    }
}

fn model_set(call: &Call<'_>) -> Result<Value, RpcError> {
    let params = call.req.params()?;
    let changes = params.opt_map("config")?.cloned().unwrap_or_default();
    call.conn.shared.write(|state| {
        let (name, uuid, model_type, _) = target(state, call).ok_or_else(model_gone)?;
        let current = |key: &str| match key {
            "name" => json!(name),
            "uuid" => json!(uuid),
            "type" => json!(model_type),
            _ => json!(JUJU_VERSION),
        };
        let mut new_backend = None;
        for (key, value) in &changes {
            if IMMUTABLE.contains(&key.as_str()) {
                let old = current(key);
                if &old != value {
                    return Err(RpcError::plain(format!(
                        "cannot change {key} from {old} to {value}"
                    )));
                }
            }
            if key == "secret-backend" {
                new_backend = Some(check_secret_backend(call, state, value)?);
            }
        }
        let config = match call.model_uuid() {
            Some(uuid) => match state.model_mut(uuid) {
                Some(m) => &mut m.config,
                None => return Err(model_gone()),
            },
            None => &mut state.controller_model_config,
        };
        for (key, value) in changes {
            if !IMMUTABLE.contains(&key.as_str()) {
                config.insert(key, value);
            }
        }
        if new_backend.is_some() {
            drain(call, state);
        }
        Ok(empty())
    })
}

fn model_unset(call: &Call<'_>) -> Result<Value, RpcError> {
    let params = call.req.params()?;
    let keys = params.list_of_strs("keys")?;
    call.conn.shared.write(|state| {
        let config = match call.model_uuid() {
            Some(uuid) => match state.model_mut(uuid) {
                Some(m) => &mut m.config,
                None => return Err(model_gone()),
            },
            None => &mut state.controller_model_config,
        };
        let mut backend_reset = false;
        for key in &keys {
            if config.remove(key).is_some() && key == "secret-backend" {
                backend_reset = true;
            }
        }
        if backend_reset {
            drain(call, state);
        }
        Ok(empty())
    })
}
