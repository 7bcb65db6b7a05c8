//! Application facade (model connection): the charm config calls of Juju 3.6 (`Get`,
//! `GetConfig`, `CharmConfig`, `SetConfigs`, `UnsetApplicationsConfig`).
//!
//! Every deployed application runs a charm whose config options the emulator derives
//! from the application's name: `mysql` and `wordpress` have the options below, each
//! with one option of type `secret`; any other application has `credentials` (secret)
//! and `log-level` (string, default `info`). Values set with `SetConfigs` are stored
//! typed and reported as Juju's `describe` does (`source` `unset`, `default` or `user`;
//! a value equal to the default reads as `default`).
//!
//! What Juju checks is checked, with its messages: unknown application and option,
//! values of the wrong type, and for `secret` options the URI's syntax only. Like Juju,
//! nothing checks that a secret set on an option exists or that the application was
//! granted it. Not imitated: branches other than `master` (refused as not found),
//! `config-yaml`, application config keys other than `trust`, and the random choice
//! among several bad keys in one item (the first in name order is reported).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::Call;
use super::secrets::is_valid_application;
use crate::ids;
use crate::rpc::{Params, RpcError};
use crate::state::{ModelAccess, ModelRecord};

/// One charm config option.
struct CharmOption {
    name: &'static str,
    kind: &'static str,
    description: &'static str,
    default: Option<Value>,
}

fn option(
    name: &'static str,
    kind: &'static str,
    description: &'static str,
    default: Option<Value>,
) -> CharmOption {
    CharmOption {
        name,
        kind,
        description,
        default,
    }
}

/// The charm config options of application `app`.
fn charm_options(app: &str) -> Vec<CharmOption> {
    match app {
        "mysql" => vec![
            option(
                "root-password",
                "secret",
                "The administrator's credentials: a Juju secret URI",
                None,
            ),
            option(
                "port",
                "int",
                "The port MySQL listens on",
                Some(json!(3306)),
            ),
            option("database-name", "string", "The database to create", None),
            option("tls", "boolean", "Serve TLS only", Some(json!(false))),
        ],
        "wordpress" => vec![
            option(
                "db-password",
                "secret",
                "The database credentials: a Juju secret URI",
                None,
            ),
            option(
                "blog-title",
                "string",
                "The blog's title",
                Some(json!("My Blog")),
            ),
            option("debug", "boolean", "Verbose logging", Some(json!(false))),
            option(
                "cache-ratio",
                "float",
                "Share of memory for the page cache",
                Some(json!(0.5)),
            ),
        ],
        _ => vec![
            option(
                "credentials",
                "secret",
                "Credentials the application reads: a Juju secret URI",
                None,
            ),
            option("log-level", "string", "Logging level", Some(json!("info"))),
        ],
    }
}

/// Runs one Application method.
pub(super) fn handle(call: &Call<'_>, method: &str) -> Result<Value, RpcError> {
    let uuid = call
        .model_uuid()
        .ok_or_else(|| RpcError::plain("applications need a model connection"))?
        .to_owned();
    let params = call.req.params()?;
    match method {
        "Get" => {
            call.require_model(ModelAccess::Read)?;
            let app = params.str("application")?;
            let branch = params.opt_str("branch")?.unwrap_or_default();
            call.conn.shared.read(|state| {
                let model = state.model(&uuid).ok_or_else(model_gone)?;
                check_branch(model, &branch, "")?;
                let settings = find(model, &app)?;
                Ok(json!({
                    "application": app,
                    "charm": app,
                    "config": describe(&app, settings),
                    "application-config": {"trust": {
                        "default": false,
                        "description": "Does this application have access to trusted credentials",
                        "source": "default",
                        "type": "bool",
                        "value": false,
                    }},
                    "constraints": {},
                    "base": {"name": "ubuntu", "channel": "22.04/stable"},
                    "channel": "stable",
                    "endpoint-bindings": {"": "alpha"},
                }))
            })
        }
        "GetConfig" => {
            call.require_model(ModelAccess::Read)?;
            let tags = params.list_of_objs("entities")?;
            call.conn.shared.read(|state| {
                let model = state.model(&uuid).ok_or_else(model_gone)?;
                let results: Vec<Value> = tags
                    .iter()
                    .map(|e| {
                        let tag = e.opt_str("tag")?.unwrap_or_default();
                        let app = application_tag(&tag)?;
                        Ok(describe(&app, find(model, &app)?))
                    })
                    .map(config_result)
                    .collect();
                Ok(json!({ "Results": results }))
            })
        }
        "CharmConfig" => {
            call.require_model(ModelAccess::Read)?;
            let args = params.list_of_objs("args")?;
            call.conn.shared.read(|state| {
                let model = state.model(&uuid).ok_or_else(model_gone)?;
                let results: Vec<Value> = args
                    .iter()
                    .map(|a| {
                        let app = a.opt_str("application")?.unwrap_or_default();
                        let settings = find(model, &app)?;
                        // CharmConfig, unlike the others, does not read "" as master.
                        let branch = a.opt_str("branch")?.unwrap_or_default();
                        if branch != "master" {
                            return Err(RpcError::not_found(format!(
                                "charm config for application {app:?}: branch {branch:?} in model {:?} not found",
                                model.uuid
                            )));
                        }
                        Ok(describe(&app, settings))
                    })
                    .map(config_result)
                    .collect();
                Ok(json!({ "Results": results }))
            })
        }
        "SetConfigs" => write_each(call, &uuid, &params, set_one),
        "UnsetApplicationsConfig" => write_each(call, &uuid, &params, unset_one),
        _ => Err(RpcError::plain(format!(
            "no such request - method {method}"
        ))),
    }
}

/// A bulk write (`SetConfigs`, `UnsetApplicationsConfig`): each `Args` item on its own,
/// one `ErrorResult` per item.
fn write_each(
    call: &Call<'_>,
    uuid: &str,
    params: &Params<'_>,
    one: fn(&mut ModelRecord, &Params<'_>) -> Result<(), RpcError>,
) -> Result<Value, RpcError> {
    call.require_model(ModelAccess::Write)?;
    let args = params.list_of_objs("Args")?;
    call.conn.shared.write(|state| {
        let model = state.model_mut(uuid).ok_or_else(model_gone)?;
        let results: Vec<Value> = args
            .iter()
            .map(|a| one(model, a))
            .map(error_result)
            .collect();
        Ok(json!({ "results": results }))
    })
}

fn model_gone() -> RpcError {
    RpcError::not_found("model not found")
}

/// Only the `master` branch exists ("" means master, except for CharmConfig).
fn check_branch(model: &ModelRecord, branch: &str, context: &str) -> Result<(), RpcError> {
    if branch.is_empty() || branch == "master" {
        return Ok(());
    }
    Err(RpcError::not_found(format!(
        "{context}branch {branch:?} in model {:?} not found",
        model.uuid
    )))
}

/// The application's stored settings, or Juju's error for a missing application.
fn find<'m>(
    model: &'m ModelRecord,
    app: &str,
) -> Result<Option<&'m BTreeMap<String, Value>>, RpcError> {
    if !is_valid_application(app) {
        return Err(RpcError::plain(format!(
            "{app:?} is not a valid application name"
        )));
    }
    if !model.applications.iter().any(|a| a == app) {
        return Err(RpcError::not_found(format!(
            "application {app:?} not found"
        )));
    }
    Ok(model.app_config.get(app))
}

/// `application-<name>` to the name, with Juju's messages for other tags.
fn application_tag(tag: &str) -> Result<String, RpcError> {
    match tag.split_once('-') {
        Some(("application", name)) if is_valid_application(name) => Ok(name.to_owned()),
        Some((kind @ ("unit" | "machine" | "model" | "user"), _)) => Err(RpcError::plain(format!(
            "unexpected tag type, expected application, got {kind}"
        ))),
        _ => Err(RpcError::plain(format!("{tag:?} is not a valid tag"))),
    }
}

/// Juju's `describe`: every option of the charm, with its source.
fn describe(app: &str, settings: Option<&BTreeMap<String, Value>>) -> Value {
    let mut out = Map::new();
    for o in charm_options(app) {
        let mut info = Map::new();
        info.insert("description".into(), json!(o.description));
        info.insert("type".into(), json!(o.kind));
        info.insert("source".into(), json!("unset"));
        let set = settings.and_then(|s| s.get(o.name));
        if let Some(value) = set
            && Some(value) != o.default.as_ref()
        {
            info.insert("value".into(), value.clone());
            info.insert("source".into(), json!("user"));
        }
        if let Some(default) = &o.default {
            info.insert("default".into(), default.clone());
            if info.get("source") != Some(&json!("user")) {
                info.insert("value".into(), default.clone());
                info.insert("source".into(), json!("default"));
            }
        }
        out.insert(o.name.to_owned(), Value::Object(info));
    }
    Value::Object(out)
}

fn config_result(r: Result<Value, RpcError>) -> Value {
    match r {
        Ok(config) => json!({ "config": config }),
        Err(e) => json!({ "config": null, "error": e.to_value() }),
    }
}

fn error_result(r: Result<(), RpcError>) -> Value {
    match r {
        Ok(()) => json!({}),
        Err(e) => json!({ "error": e.to_value() }),
    }
}

/// Parses `text` as a value of option `o`, as charm config's `parse` does.
fn parse(o: &CharmOption, text: &str) -> Result<Value, RpcError> {
    let wrong = || {
        RpcError::plain(format!(
            "parsing settings for application: option {:?} expected {}, got {text:?}",
            o.name, o.kind
        ))
    };
    match o.kind {
        "int" => text.parse::<i64>().map(Value::from).map_err(|_| wrong()),
        "float" => text
            .parse::<f64>()
            .ok()
            .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
            .ok_or_else(wrong),
        "boolean" => match text {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(Value::Bool(true)),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(Value::Bool(false)),
            _ => Err(wrong()),
        },
        // string and secret: the text as it is.
        _ => Ok(Value::String(text.to_owned())),
    }
}

/// What Juju checks for a `secret` option: "" is allowed; otherwise the URI must parse
/// (`validateSecretConfig`) and carry the `secret:` scheme (the charm config checker).
fn check_secret(name: &str, text: &str) -> Result<(), RpcError> {
    if text.is_empty() {
        return Ok(());
    }
    if let Some((scheme, _)) = text.split_once(':')
        && scheme != "secret"
    {
        return Err(RpcError::not_valid(format!(
            "parsing settings for application: invalid secret URI for option {name:?}: secret URI scheme {scheme:?} not valid"
        )));
    }
    if let Err(e) = ids::parse_secret_uri(text) {
        return Err(RpcError::new(
            format!(
                "parsing settings for application: invalid secret URI for option {name:?}: {}",
                e.message
            ),
            &e.code,
        ));
    }
    if !text.starts_with("secret:") {
        return Err(RpcError::plain(format!(
            "updating charm config settings: option {name:?} expected secret, got {text:?}"
        )));
    }
    Ok(())
}

/// One `SetConfigs` item: every value is checked before any is stored.
fn set_one(model: &mut ModelRecord, item: &Params<'_>) -> Result<(), RpcError> {
    let app = item.opt_str("application")?.unwrap_or_default();
    find(model, &app)?;
    let branch = item.opt_str("generation")?.unwrap_or_default();
    check_branch(model, &branch, "")?;
    let config = item.opt_map("config")?.cloned().unwrap_or_default();
    let options = charm_options(&app);
    let mut parsed = BTreeMap::new();
    for (key, value) in &config {
        // Trust is application config, not charm config.
        if key == "trust" {
            continue;
        }
        let text = match value {
            Value::String(s) => s.as_str(),
            Value::Null => "",
            other => {
                return Err(RpcError::plain(format!(
                    "json: cannot unmarshal {} into Go struct field ConfigSet.Args.config of type string",
                    if other.is_number() { "number" } else { "value" }
                )));
            }
        };
        let o = options.iter().find(|o| o.name == key).ok_or_else(|| {
            RpcError::plain(format!(
                "parsing settings for application: unknown option {key:?}"
            ))
        })?;
        let value = parse(o, text)?;
        if o.kind == "secret" {
            check_secret(o.name, text)?;
        }
        parsed.insert(key.clone(), value);
    }
    model.app_config.entry(app).or_default().extend(parsed);
    Ok(())
}

/// One `UnsetApplicationsConfig` item: unknown names fail the item, known ones are
/// removed (unsetting an unset option is fine).
fn unset_one(model: &mut ModelRecord, item: &Params<'_>) -> Result<(), RpcError> {
    let app = item.opt_str("application")?.unwrap_or_default();
    find(model, &app)?;
    let branch = item.opt_str("branch")?.unwrap_or_default();
    check_branch(model, &branch, "")?;
    let names = item.list_of_strs("options")?;
    let options = charm_options(&app);
    if let Some(unknown) = names
        .iter()
        .find(|n| *n != "trust" && !options.iter().any(|o| o.name == n.as_str()))
    {
        return Err(RpcError::plain(format!(
            "updating application charm settings: unknown option {unknown:?}"
        )));
    }
    if let Some(settings) = model.app_config.get_mut(&app) {
        for n in &names {
            settings.remove(n);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_reports_sources_like_juju() {
        let mut settings = BTreeMap::new();
        settings.insert("port".to_owned(), json!(3306));
        settings.insert("database-name".to_owned(), json!("shop"));
        let c = describe("mysql", Some(&settings));
        // A value equal to the default reads as the default.
        assert_eq!(c["port"]["source"], "default");
        assert_eq!(c["database-name"]["source"], "user");
        assert_eq!(c["database-name"]["value"], "shop");
        // Unset without a default: no value, no default.
        let root = c["root-password"].as_object().unwrap();
        assert_eq!(root["source"], "unset");
        assert!(!root.contains_key("value") && !root.contains_key("default"));
        assert_eq!(root["type"], "secret");
    }

    #[test]
    fn secret_options_take_uris_only() {
        assert!(check_secret("s", "").is_ok());
        assert!(check_secret("s", "secret:9m4e2mr0ui3e8a215n4g").is_ok());
        let e = check_secret("s", "secret:foo").unwrap_err();
        assert_eq!(e.code, "not valid");
        assert!(
            e.message.ends_with("secret URI \"secret:foo\" not valid"),
            "{}",
            e.message
        );
        let e = check_secret("s", "http://x").unwrap_err();
        assert!(
            e.message.contains("scheme \"http\" not valid"),
            "{}",
            e.message
        );
        let e = check_secret("s", "9m4e2mr0ui3e8a215n4g").unwrap_err();
        assert_eq!(e.code, "");
        assert!(e.message.contains("expected secret"), "{}", e.message);
    }
}
