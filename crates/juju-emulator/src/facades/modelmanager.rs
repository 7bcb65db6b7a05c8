//! ModelManager facade v9/v10 (controller connection): ListModels, ModelInfo,
//! ListModelSummaries.

use serde::Serialize;
use serde_json::Value;

use super::{Call, JUJU_VERSION};
use crate::ids::ZERO_TIME;
use crate::rpc::{RpcError, to_value};
use crate::state::{INTERNAL_BACKEND, ModelAccess, ModelRecord, State};

/// Runs one ModelManager method.
pub(super) fn handle(call: &Call<'_>, method: &str) -> Result<Value, RpcError> {
    match method {
        "ListModels" => list_models(call),
        "ModelInfo" => model_info(call),
        "ListModelSummaries" => list_summaries(call),
        _ => Err(RpcError::plain(format!(
            "no such request - method {method}"
        ))),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ModelRef<'a> {
    name: &'a str,
    uuid: &'a str,
    #[serde(rename = "type")]
    model_type: &'a str,
    owner_tag: String,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct UserModel<'a> {
    model: ModelRef<'a>,
    last_connection: &'a str,
}

/// The user named by a `user-<name>` tag, checked against the caller.
fn user_from_tag(call: &Call<'_>, tag: &str) -> Result<String, RpcError> {
    let name = tag
        .strip_prefix("user-")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| RpcError::plain(format!("{tag:?} is not a valid user tag")))?;
    if name != call.session.user && !call.session.superuser {
        return Err(RpcError::permission_denied());
    }
    Ok(name.to_owned())
}

/// Models `user` may see, sorted by name then owner. A superuser sees all of them.
fn visible_models<'s>(state: &'s State, user: &str) -> Vec<&'s ModelRecord> {
    let mut models: Vec<&ModelRecord> = state
        .models
        .iter()
        .filter(|m| state.model_access(user, m).is_some())
        .collect();
    models.sort_by(|a, b| (&a.name, &a.owner).cmp(&(&b.name, &b.owner)));
    models
}

fn list_models(call: &Call<'_>) -> Result<Value, RpcError> {
    let params = call.req.params()?;
    let user = user_from_tag(call, &params.str("tag")?)?;
    call.conn.shared.read(|state| {
        let list: Vec<UserModel<'_>> = visible_models(state, &user)
            .into_iter()
            .map(|m| UserModel {
                model: ModelRef {
                    name: &m.name,
                    uuid: &m.uuid,
                    model_type: &m.model_type,
                    owner_tag: format!("user-{}", m.owner),
                },
                last_connection: m
                    .last_connection
                    .get(&user)
                    .map(String::as_str)
                    .unwrap_or(ZERO_TIME),
            })
            .collect();
        if list.is_empty() {
            Ok(serde_json::json!({"user-models": null}))
        } else {
            Ok(serde_json::json!({"user-models": to_value(&list)?}))
        }
    })
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct EntityStatus<'a> {
    status: &'a str,
    info: &'a str,
    since: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ModelUserInfo<'a> {
    model_tag: String,
    user: &'a str,
    display_name: &'a str,
    last_connection: &'a str,
    access: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Sla {
    level: &'static str,
    owner: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct SupportedFeature {
    name: &'static str,
    description: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ModelInfo<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    model_type: &'a str,
    uuid: &'a str,
    controller_uuid: &'a str,
    is_controller: bool,
    provider_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_series: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_base: Option<&'static str>,
    cloud_tag: &'static str,
    cloud_region: &'static str,
    cloud_credential_tag: String,
    cloud_credential_validity: bool,
    owner_tag: String,
    life: &'static str,
    status: EntityStatus<'a>,
    users: Option<Vec<ModelUserInfo<'a>>>,
    machines: Option<Vec<Value>>,
    secret_backends: Option<Vec<Value>>,
    sla: Sla,
    agent_version: &'static str,
    supported_features: Vec<SupportedFeature>,
}

fn model_info(call: &Call<'_>) -> Result<Value, RpcError> {
    let params = call.req.params()?;
    let entities = params.list_of_objs("entities")?;
    let v9 = call.req.version < 10;
    let me = &call.session.user;
    call.conn.shared.read(|state| {
        let mut results = Vec::new();
        for entity in entities {
            let tag = entity.str("tag")?;
            let item = match tag
                .strip_prefix("model-")
                .filter(|u| uuid::Uuid::parse_str(u).is_ok())
            {
                None => Err(RpcError::plain(format!("{tag:?} is not a valid model tag"))),
                Some(uuid) => match state.model(uuid) {
                    Some(m) => match state.model_access(me, m) {
                        Some(access) => info_for(state, m, me, access, v9),
                        None => Err(RpcError::permission_denied()),
                    },
                    None => Err(RpcError::permission_denied()),
                },
            };
            results.push(match item {
                Ok(v) => serde_json::json!({ "result": v }),
                Err(e) => serde_json::json!({ "error": e.to_value() }),
            });
        }
        Ok(serde_json::json!({ "results": results }))
    })
}

fn info_for(
    state: &State,
    m: &ModelRecord,
    me: &str,
    access: ModelAccess,
    v9: bool,
) -> Result<Value, RpcError> {
    let model_tag = format!("model-{}", m.uuid);
    let mut users: Vec<ModelUserInfo<'_>> = Vec::new();
    for user in &state.users {
        let Some(a) = state.model_access(&user.username, m) else {
            continue;
        };
        if access < ModelAccess::Admin && user.username != me {
            continue;
        }
        // Superusers without an explicit grant are not model users.
        if !m.access.contains_key(&user.username) {
            continue;
        }
        users.push(ModelUserInfo {
            model_tag: model_tag.clone(),
            user: &user.username,
            display_name: &user.username,
            last_connection: m
                .last_connection
                .get(&user.username)
                .map(String::as_str)
                .unwrap_or(ZERO_TIME),
            access: a.as_str(),
        });
    }
    let secret_backends = (access >= ModelAccess::Write).then(|| backends_of_model(state, m));
    let info = ModelInfo {
        name: &m.name,
        model_type: &m.model_type,
        uuid: &m.uuid,
        controller_uuid: &state.controller_uuid,
        is_controller: false,
        provider_type: "lxd",
        default_series: v9.then_some("noble"),
        default_base: v9.then_some("ubuntu@24.04/stable"),
        cloud_tag: "cloud-localhost",
        cloud_region: "localhost",
        cloud_credential_tag: format!("cloudcred-localhost_{}_localhost", m.owner),
        cloud_credential_validity: true,
        owner_tag: format!("user-{}", m.owner),
        life: "alive",
        status: EntityStatus {
            status: "available",
            info: "",
            since: &m.created,
        },
        users: (!users.is_empty()).then_some(users),
        machines: None,
        secret_backends: secret_backends.filter(|b| !b.is_empty()),
        sla: Sla {
            level: "unsupported",
            owner: "",
        },
        agent_version: JUJU_VERSION,
        supported_features: vec![SupportedFeature {
            name: "juju",
            description: "the version of Juju used by the model",
            version: JUJU_VERSION,
        }],
    };
    to_value(&info)
}

/// The backends holding revisions of this model, with `id` blanked.
fn backends_of_model(state: &State, m: &ModelRecord) -> Vec<Value> {
    let mut ids: Vec<&str> = m
        .secrets
        .iter()
        .flat_map(|s| s.revisions.iter().map(|r| r.backend_id.as_str()))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter()
        .map(|id| {
            let count = m
                .secrets
                .iter()
                .filter(|s| s.revisions.iter().any(|r| r.backend_id == id))
                .count();
            let (name, backend_type) = if id == state.controller_uuid {
                (INTERNAL_BACKEND.to_owned(), "controller".to_owned())
            } else {
                match state.backends.iter().find(|b| b.id == id) {
                    Some(b) => (b.name.clone(), b.backend_type.clone()),
                    None => ("unknown".to_owned(), String::new()),
                }
            };
            serde_json::json!({
                "result": {"name": name, "backend-type": backend_type, "config": {}},
                "id": "",
                "num-secrets": count,
                "status": "active",
            })
        })
        .collect()
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Count {
    entity: &'static str,
    count: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ModelSummary<'a> {
    name: &'a str,
    uuid: &'a str,
    #[serde(rename = "type")]
    model_type: &'a str,
    controller_uuid: &'a str,
    is_controller: bool,
    provider_type: &'static str,
    cloud_tag: &'static str,
    cloud_region: &'static str,
    cloud_credential_tag: String,
    owner_tag: String,
    life: &'static str,
    status: EntityStatus<'a>,
    user_access: &'static str,
    last_connection: &'a str,
    counts: Vec<Count>,
    sla: Sla,
    agent_version: &'static str,
}

fn list_summaries(call: &Call<'_>) -> Result<Value, RpcError> {
    let params = call.req.params()?;
    let user = user_from_tag(call, &params.str("user-tag")?)?;
    let all = params.bool("all")? && call.session.superuser;
    call.conn.shared.read(|state| {
        let mut results = Vec::new();
        for m in visible_models(state, &user) {
            let access = match state.model_access(&user, m) {
                Some(a) => a.as_str(),
                None if all => "",
                None => continue,
            };
            let summary = ModelSummary {
                name: &m.name,
                uuid: &m.uuid,
                model_type: &m.model_type,
                controller_uuid: &state.controller_uuid,
                is_controller: false,
                provider_type: "lxd",
                cloud_tag: "cloud-localhost",
                cloud_region: "localhost",
                cloud_credential_tag: format!("cloudcred-localhost_{}_localhost", m.owner),
                owner_tag: format!("user-{}", m.owner),
                life: "alive",
                status: EntityStatus {
                    status: "available",
                    info: "",
                    since: &m.created,
                },
                user_access: access,
                last_connection: m
                    .last_connection
                    .get(&user)
                    .map(String::as_str)
                    .unwrap_or(ZERO_TIME),
                counts: vec![
                    Count {
                        entity: "machines",
                        count: 0,
                    },
                    Count {
                        entity: "cores",
                        count: 0,
                    },
                    Count {
                        entity: "units",
                        count: m.applications.len(),
                    },
                ],
                sla: Sla {
                    level: "unsupported",
                    owner: "",
                },
                agent_version: JUJU_VERSION,
            };
            results.push(serde_json::json!({ "result": to_value(&summary)? }));
        }
        Ok(serde_json::json!({ "results": results }))
    })
}
