//! Admin facade v3: Login.

use serde::Serialize;
use serde_json::Value;

use super::{JUJU_VERSION, facade_list};
use crate::ids;
use crate::rpc::{CODE_UNAUTHORIZED, Request, RpcError, to_value};
use crate::server::{Conn, ConnKind, LoginState, Session};

#[derive(Serialize)]
struct HostPort {
    value: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    scope: &'static str,
    port: u16,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct UserInfo<'a> {
    display_name: &'a str,
    identity: String,
    controller_access: &'a str,
    model_access: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct LoginResult<'a> {
    servers: Vec<Vec<HostPort>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_tag: Option<String>,
    controller_tag: String,
    user_info: UserInfo<'a>,
    facades: Vec<Value>,
    server_version: &'static str,
}

fn bad_credentials() -> RpcError {
    RpcError::new("invalid entity name or password", CODE_UNAUTHORIZED)
}

/// `Admin.Login`: password login for local users.
pub(super) fn login(conn: &Conn, req: &Request) -> Result<Value, RpcError> {
    let outcome = try_login(conn, req);
    let mut state = conn.login_state();
    match &outcome {
        Ok((_, Some(session))) => *state = LoginState::Done(session.clone()),
        Ok((_, None)) | Err(_) => *state = LoginState::None,
    }
    outcome.map(|(v, _)| v)
}

fn try_login(conn: &Conn, req: &Request) -> Result<(Value, Option<Session>), RpcError> {
    let params = req.params()?;
    let tag = params.str("auth-tag")?;
    let credentials = params.str("credentials")?;
    if credentials.is_empty() {
        // No password: the macaroon path. Without a valid macaroon the server answers
        // with a discharge request and does not log in; the emulator has no identity
        // service, so it sends only the reason.
        return Ok((
            serde_json::json!({"discharge-required-error": "no credentials provided"}),
            None,
        ));
    }
    let username = tag.strip_prefix("user-").ok_or_else(bad_credentials)?;
    let model_uuid = match &conn.kind {
        ConnKind::Model(uuid) => Some(uuid.clone()),
        _ => None,
    };
    let now = ids::now_rfc3339();
    let result = conn.shared.write(|state| {
        let user = state.user(username).ok_or_else(bad_credentials)?;
        if user.password != credentials {
            return Err(bad_credentials());
        }
        let controller_access = user.controller_access.clone();
        let superuser = controller_access == "superuser";
        let mut model_access = None;
        if let Some(uuid) = &model_uuid {
            let model = state.model(uuid).ok_or_else(|| {
                RpcError::new(format!("unknown model: {uuid:?}"), "model not found")
            })?;
            let access = state
                .model_access(username, model)
                .ok_or_else(RpcError::permission_denied)?;
            model_access = Some(access);
            if let Some(model) = state.model_mut(uuid) {
                model
                    .last_connection
                    .insert(username.to_owned(), now.clone());
            }
        }
        Ok((
            Session {
                user: username.to_owned(),
                superuser,
                model_access,
            },
            controller_access,
            state.controller_uuid.clone(),
        ))
    })?;
    let (session, controller_access, controller_uuid) = result;
    let body = LoginResult {
        servers: vec![vec![HostPort {
            value: "127.0.0.1",
            kind: "ipv4",
            scope: "local-machine",
            port: conn.shared.port,
        }]],
        model_tag: model_uuid.as_ref().map(|u| format!("model-{u}")),
        controller_tag: format!("controller-{controller_uuid}"),
        user_info: UserInfo {
            display_name: "",
            identity: format!("user-{}", session.user),
            controller_access: &controller_access,
            model_access: session.model_access.map(|a| a.as_str()).unwrap_or(""),
        },
        facades: facade_list(model_uuid.is_some()),
        server_version: JUJU_VERSION,
    };
    Ok((to_value(&body)?, Some(session)))
}
