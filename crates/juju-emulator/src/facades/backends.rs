//! SecretBackends facade v1 (controller connection).
//!
//! Backends are never contacted: "reachable" is a fault switch per backend name
//! ([`crate::Faults::set_backend_reachable`]). Config is checked against the
//! vault and kubernetes (3.6.3+) schemas of Juju 3.6.14.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::Call;
use crate::ids;
use crate::rpc::{
    CODE_ALREADY_EXISTS, CODE_NOT_SUPPORTED, CODE_NOT_VALID, Params, RpcError, to_value,
};
use crate::state::{BackendRecord, INTERNAL_BACKEND, State};

/// One hour in nanoseconds, the shortest token rotation interval.
const ONE_HOUR_NS: i64 = 3_600_000_000_000;

/// Runs one SecretBackends method.
pub(super) fn handle(call: &Call<'_>, method: &str) -> Result<Value, RpcError> {
    match method {
        "ListSecretBackends" => list(call),
        "AddSecretBackends" => {
            call.require_superuser()?;
            add(call)
        }
        "UpdateSecretBackends" => {
            call.require_superuser()?;
            update(call)
        }
        "RemoveSecretBackends" => {
            call.require_superuser()?;
            remove(call)
        }
        _ => Err(RpcError::plain(format!(
            "no such request - method {method}"
        ))),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Bool,
    StrList,
}

struct Field {
    key: &'static str,
    kind: Kind,
    mandatory: bool,
    immutable: bool,
    secret: bool,
}

const fn field(
    key: &'static str,
    kind: Kind,
    mandatory: bool,
    immutable: bool,
    secret: bool,
) -> Field {
    Field {
        key,
        kind,
        mandatory,
        immutable,
        secret,
    }
}

const VAULT: &[Field] = &[
    field("endpoint", Kind::Str, true, true, false),
    field("namespace", Kind::Str, false, true, false),
    field("mount-path", Kind::Str, false, true, false),
    field("token", Kind::Str, false, false, true),
    field("ca-cert", Kind::Str, false, false, false),
    field("client-cert", Kind::Str, false, false, false),
    field("client-key", Kind::Str, false, false, true),
    field("tls-server-name", Kind::Str, false, false, false),
];

const KUBERNETES: &[Field] = &[
    field("endpoint", Kind::Str, true, true, false),
    field("namespace", Kind::Str, true, true, false),
    field("service-account", Kind::Str, false, false, false),
    field("ca-certs", Kind::StrList, false, false, false),
    field("ca-cert", Kind::Str, false, false, false),
    field("token", Kind::Str, false, false, true),
    field("username", Kind::Str, false, false, false),
    field("password", Kind::Str, false, false, true),
    field("client-cert", Kind::Str, false, false, false),
    field("client-key", Kind::Str, false, false, true),
    field("skip-tls-verify", Kind::Bool, false, false, false),
    field("prefer-incluster-address", Kind::Bool, false, false, false),
];

fn schema(backend_type: &str) -> Option<&'static [Field]> {
    match backend_type {
        "vault" => Some(VAULT),
        "kubernetes" => Some(KUBERNETES),
        _ => None,
    }
}

/// How Go's `%#v` prints a decoded JSON value, near enough.
fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => format!("float64({n})"),
        Value::Bool(b) => format!("bool({b})"),
        Value::Null => "nothing".into(),
        other => format!("{other}"),
    }
}

fn invalid_config(backend_type: &str, detail: &str, code: &str) -> RpcError {
    RpcError::new(
        format!("invalid config for provider {backend_type:?}: {detail}"),
        code,
    )
}

/// Checks and coerces a config against the provider schema; `old` is the stored config
/// when updating (immutable keys must not change).
fn validate_config(
    backend_type: &str,
    fields: &[Field],
    config: &Map<String, Value>,
    old: Option<&Map<String, Value>>,
) -> Result<Map<String, Value>, RpcError> {
    let bad = |detail: String| invalid_config(backend_type, &detail, "");
    for (k, v) in config {
        if !fields.iter().any(|f| f.key == k) {
            let shown = match v {
                Value::String(s) => format!("{s:?}"),
                other => other.to_string(),
            };
            return Err(bad(format!("unknown key {k:?} (value {shown})")));
        }
    }
    let mut out = Map::new();
    for f in fields {
        let Some(v) = config.get(f.key).filter(|v| !v.is_null()) else {
            if f.mandatory {
                return Err(bad(format!("{}: expected string, got nothing", f.key)));
            }
            continue;
        };
        let coerced = match (f.kind, v) {
            (Kind::Str, Value::String(_)) => v.clone(),
            (Kind::Bool, Value::Bool(_)) => v.clone(),
            (Kind::Bool, Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" => Value::Bool(true),
                "false" | "no" | "off" => Value::Bool(false),
                _ => {
                    return Err(bad(format!(
                        "{}: expected bool, got {}",
                        f.key,
                        go_value(v)
                    )));
                }
            },
            (Kind::StrList, Value::Array(items)) if items.iter().all(Value::is_string) => v.clone(),
            (Kind::StrList, Value::String(s)) => json!([s]),
            (Kind::Str, _) => {
                return Err(bad(format!(
                    "{}: expected string, got {}",
                    f.key,
                    go_value(v)
                )));
            }
            (Kind::Bool, _) => {
                return Err(bad(format!(
                    "{}: expected bool, got {}",
                    f.key,
                    go_value(v)
                )));
            }
            (Kind::StrList, _) => {
                return Err(bad(format!(
                    "{}: expected list, got {}",
                    f.key,
                    go_value(v)
                )));
            }
        };
        out.insert(f.key.to_owned(), coerced);
    }
    let has = |k: &str| out.get(k).is_some_and(|v| v.as_str() != Some(""));
    let prefix = if backend_type == "vault" {
        "vault"
    } else {
        "k8s"
    };
    if has("client-cert") && !has("client-key") {
        return Err(invalid_config(
            backend_type,
            &format!("{prefix} config missing client key not valid"),
            CODE_NOT_VALID,
        ));
    }
    if has("client-key") && !has("client-cert") {
        return Err(invalid_config(
            backend_type,
            &format!("{prefix} config missing client certificate not valid"),
            CODE_NOT_VALID,
        ));
    }
    if let Some(old) = old {
        for f in fields.iter().filter(|f| f.immutable) {
            if old.get(f.key) != out.get(f.key) {
                return Err(bad(format!("cannot change immutable field {:?}", f.key)));
            }
        }
    }
    Ok(out)
}

fn check_name(name: &str) -> Result<(), RpcError> {
    if name.is_empty() {
        return Err(RpcError::not_valid("missing backend name not valid"));
    }
    if name == INTERNAL_BACKEND || name == "auto" {
        // Juju formats this message with a missing argument.
        return Err(RpcError::not_valid("backend %!q(MISSING) not valid"));
    }
    Ok(())
}

/// Checks a token rotation interval (nanoseconds) for a backend type and config.
fn check_rotate(
    interval: i64,
    backend_type: &str,
    config: &Map<String, Value>,
) -> Result<(), RpcError> {
    if interval <= 0 {
        return Err(RpcError::not_valid(
            "secret backend missing next rotate time not valid",
        ));
    }
    if interval < ONE_HOUR_NS {
        return Err(RpcError::not_valid(format!(
            "token rotate interval {:?} less than 1h not valid",
            ids::go_duration(interval)
        )));
    }
    if !matches!(backend_type, "vault" | "kubernetes") {
        return Err(RpcError::new(
            format!("token refresh on secret backend of type {backend_type:?} not supported"),
            CODE_NOT_SUPPORTED,
        ));
    }
    if backend_type == "kubernetes"
        && config
            .get("service-account")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        return Err(RpcError::not_valid(
            "k8s config missing service account not valid",
        ));
    }
    Ok(())
}

/// Applies `one` to every item of `args` in one state write, answering with Juju's
/// `ErrorResults`: `{}` per success, `{"error": ...}` per failure, in order.
fn each_arg(
    call: &Call<'_>,
    one: impl Fn(&mut State, &crate::Faults, &Params<'_>) -> Result<(), RpcError>,
) -> Result<Value, RpcError> {
    let params = call.req.params()?;
    let args = params.list_of_objs("args")?;
    let faults = &call.conn.shared.faults;
    call.conn.shared.write(|state| {
        let mut results = Vec::new();
        for arg in args {
            results.push(match one(state, faults, &arg) {
                Ok(()) => json!({}),
                Err(e) => json!({ "error": e.to_value() }),
            });
        }
        Ok(json!({ "results": results }))
    })
}

fn add(call: &Call<'_>) -> Result<Value, RpcError> {
    each_arg(call, add_one)
}

fn add_one(state: &mut State, faults: &crate::Faults, arg: &Params<'_>) -> Result<(), RpcError> {
    let name = arg.str("name")?;
    check_name(&name)?;
    let backend_type = arg.str("backend-type")?;
    let fields = schema(&backend_type).ok_or_else(|| {
        RpcError::not_found(format!(
            "creating backend provider type {backend_type:?}: no registered provider for {backend_type:?}"
        ))
    })?;
    let given = arg.opt_map("config")?.cloned().unwrap_or_default();
    // Validated, but stored and listed as sent (juju-api.md §10.6).
    validate_config(&backend_type, fields, &given, None)?;
    let config = given;
    if let Some(detail) = faults.ping_backend(&name) {
        return Err(RpcError::plain(detail));
    }
    let interval = arg.opt_i64("token-rotate-interval")?;
    if let Some(i) = interval {
        check_rotate(i, &backend_type, &config)?;
    }
    let id = arg.str("id")?;
    // Juju checks the ID against the other backends only: the controller's UUID (the
    // `internal` backend's ID) is accepted (juju-api.md §10.7).
    if state.backend_by_name(&name).is_some()
        || (!id.is_empty() && state.backends.iter().any(|b| b.id == id))
    {
        return Err(RpcError::new(
            format!("secret backend with ID {id:?} already exists"),
            CODE_ALREADY_EXISTS,
        ));
    }
    state.backends.push(BackendRecord {
        id: if id.is_empty() {
            ids::new_backend_id()
        } else {
            id
        },
        name,
        backend_type,
        token_rotate_interval: interval,
        config,
    });
    Ok(())
}

fn update(call: &Call<'_>) -> Result<Value, RpcError> {
    each_arg(call, update_one)
}

fn update_one(state: &mut State, faults: &crate::Faults, arg: &Params<'_>) -> Result<(), RpcError> {
    let name = arg.str("name")?;
    check_name(&name)?;
    let existing = state
        .backend_by_name(&name)
        .ok_or_else(|| RpcError::not_found(format!("secret backend {name:?} not found")))?
        .clone();
    let fields = schema(&existing.backend_type).unwrap_or(&[]);
    let mut merged = existing.config.clone();
    if let Some(overlay) = arg.opt_map("config")? {
        for (k, v) in overlay {
            if v.is_null() {
                merged.remove(k);
            } else {
                merged.insert(k.clone(), v.clone());
            }
        }
    }
    for key in arg.list_of_strs("reset")? {
        merged.remove(&key);
    }
    validate_config(
        &existing.backend_type,
        fields,
        &merged,
        Some(&existing.config),
    )?;
    let config = merged;
    if !arg.bool("force")?
        && let Some(detail) = faults.ping_backend(&name)
    {
        return Err(RpcError::plain(detail));
    }
    let interval = match arg.opt_i64("token-rotate-interval")? {
        None => existing.token_rotate_interval,
        Some(0) => None,
        // Stored as sent on update (juju-api.md §10.7).
        Some(i) if i < 0 => Some(i),
        Some(i) => {
            check_rotate(i, &existing.backend_type, &config)?;
            Some(i)
        }
    };
    // A `name-change` that is present runs the in-use check even when it equals the
    // current name, and the new name is not validated (juju-api.md §10.7).
    let new_name = arg.opt_str("name-change")?;
    if let Some(new_name) = &new_name {
        if state.revisions_in_backend(&existing.id) > 0 {
            return Err(RpcError::not_valid(
                "cannot rename a secret backend that is in use",
            ));
        }
        if *new_name != name && state.backend_by_name(new_name).is_some() {
            return Err(RpcError::new(
                format!("secret backend {new_name:?} already exists"),
                CODE_ALREADY_EXISTS,
            ));
        }
    }
    if let Some(b) = state.backends.iter_mut().find(|b| b.id == existing.id) {
        b.config = config;
        b.token_rotate_interval = interval;
        if let Some(new_name) = new_name {
            b.name = new_name;
        }
    }
    Ok(())
}

fn remove(call: &Call<'_>) -> Result<Value, RpcError> {
    each_arg(call, |state, _, arg| remove_one(state, arg))
}

fn remove_one(state: &mut State, arg: &Params<'_>) -> Result<(), RpcError> {
    let name = arg.str("name")?;
    check_name(&name)?;
    let Some(backend) = state.backend_by_name(&name) else {
        return Ok(());
    };
    let id = backend.id.clone();
    let in_use = state.revisions_in_backend(&id);
    if in_use > 0 && !arg.bool("force")? {
        return Err(RpcError::new(
            format!("removing backend with {in_use} stored secret revisions not supported"),
            CODE_NOT_SUPPORTED,
        ));
    }
    state.backends.retain(|b| b.id != id);
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct BackendOut {
    name: String,
    backend_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_rotate_interval: Option<i64>,
    config: Map<String, Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct BackendResult {
    result: BackendOut,
    id: String,
    num_secrets: usize,
    status: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
}

fn list(call: &Call<'_>) -> Result<Value, RpcError> {
    let params = call.req.params()?;
    let reveal = params.bool("reveal")?;
    if reveal {
        call.require_superuser()?;
    }
    let names = params.list_of_strs("names")?;
    let wanted = |n: &str| names.is_empty() || names.iter().any(|x| x == n);
    let faults = &call.conn.shared.faults;
    call.conn.shared.read(|state| {
        let mut out = Vec::new();
        if wanted(INTERNAL_BACKEND) {
            out.push(BackendResult {
                result: BackendOut {
                    name: INTERNAL_BACKEND.into(),
                    backend_type: "controller".into(),
                    token_rotate_interval: None,
                    config: Map::new(),
                },
                id: state.controller_uuid.clone(),
                num_secrets: state.secrets_in_backend(&state.controller_uuid),
                status: "active",
                message: String::new(),
            });
        }
        for b in state.backends.iter().filter(|b| wanted(&b.name)) {
            let fields = schema(&b.backend_type).unwrap_or(&[]);
            let mut config = b.config.clone();
            if !reveal {
                config.retain(|k, _| !fields.iter().any(|f| f.key == k && f.secret));
            }
            let ping = faults.ping_backend(&b.name);
            out.push(BackendResult {
                result: BackendOut {
                    name: b.name.clone(),
                    backend_type: b.backend_type.clone(),
                    token_rotate_interval: b.token_rotate_interval,
                    config,
                },
                id: b.id.clone(),
                num_secrets: state.secrets_in_backend(&b.id),
                status: if ping.is_some() { "error" } else { "active" },
                message: ping.unwrap_or_default(),
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(json!({ "results": to_value(&out)? }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn vault_schema_rejects_unknown_and_missing_keys() {
        let e = validate_config(
            "vault",
            VAULT,
            &map(json!({"endpoint": "x", "foo": "bar"})),
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "invalid config for provider \"vault\": unknown key \"foo\" (value \"bar\")"
        );
        let e = validate_config("vault", VAULT, &map(json!({})), None).unwrap_err();
        assert_eq!(
            e.message,
            "invalid config for provider \"vault\": endpoint: expected string, got nothing"
        );
        let e = validate_config(
            "vault",
            VAULT,
            &map(json!({"endpoint": "x", "client-cert": "c"})),
            None,
        )
        .unwrap_err();
        assert_eq!(e.code, "not valid");
        assert!(
            e.message
                .ends_with("vault config missing client key not valid")
        );
    }

    #[test]
    fn immutable_keys_cannot_change() {
        let old = map(json!({"endpoint": "https://a"}));
        let e = validate_config(
            "vault",
            VAULT,
            &map(json!({"endpoint": "https://b"})),
            Some(&old),
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "invalid config for provider \"vault\": cannot change immutable field \"endpoint\""
        );
        assert_eq!(e.code, "");
    }

    #[test]
    fn kubernetes_bools_may_be_strings() {
        let c = validate_config(
            "kubernetes",
            KUBERNETES,
            &map(json!({"endpoint": "https://k", "namespace": "ns", "skip-tls-verify": "true"})),
            None,
        )
        .unwrap();
        assert_eq!(c["skip-tls-verify"], json!(true));
    }

    #[test]
    fn rotate_interval_rules() {
        let cfg = Map::new();
        assert_eq!(
            check_rotate(600_000_000_000, "vault", &cfg)
                .unwrap_err()
                .message,
            "token rotate interval \"10m0s\" less than 1h not valid"
        );
        assert_eq!(
            check_rotate(0, "vault", &cfg).unwrap_err().message,
            "secret backend missing next rotate time not valid"
        );
        assert!(check_rotate(ONE_HOUR_NS, "vault", &cfg).is_ok());
        assert_eq!(
            check_rotate(ONE_HOUR_NS, "kubernetes", &cfg)
                .unwrap_err()
                .message,
            "k8s config missing service account not valid"
        );
    }
}
