//! Facade registry, call routing and dispatch.

mod admin;
mod application;
mod backends;
mod control;
mod modelconfig;
mod modelmanager;
mod secrets;
mod watcher;

use std::sync::Arc;

use serde_json::Value;

use super::rpc::{
    CODE_MODEL_NOT_FOUND, CODE_NOT_IMPLEMENTED, CODE_NOT_SUPPORTED, Request, RpcError,
};
use super::server::{Conn, ConnKind, LoginState, Session};

/// The Juju version the emulator imitates.
pub const JUJU_VERSION: &str = "3.6.14";

/// Facades that only a controller (`/api`) connection serves.
const CONTROLLER_ONLY: &[&str] = &[
    "AllModelWatcher",
    "ApplicationOffers",
    "Cloud",
    "Controller",
    "CrossController",
    "MigrationTarget",
    "ModelManager",
    "ModelUpgrader",
    "ModelSummaryWatcher",
    "SecretBackends",
    "UserManager",
];

/// Facades that both kinds of connection serve.
const BOTH: &[&str] = &[
    "Pinger",
    "Bundle",
    "HighAvailability",
    "NotifyWatcher",
    "ModelConfig",
];

/// Where a facade is served.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Served {
    Controller,
    Model,
    Both,
}

/// A facade the emulator implements.
struct Facade {
    name: &'static str,
    versions: &'static [i64],
    served: Served,
    methods: fn(i64) -> &'static [&'static str],
}

/// The implemented facades, sorted by name.
const FACADES: &[Facade] = &[
    Facade {
        name: "AllWatcher",
        versions: &[3],
        served: Served::Model,
        methods: |_| &["Next", "Stop"],
    },
    Facade {
        name: "Application",
        // Juju 3.6.10 and later (versions 21 and 22 added storage calls).
        versions: &[15, 16, 17, 18, 19, 20, 21, 22],
        served: Served::Model,
        methods: |_| {
            &[
                "CharmConfig",
                "Get",
                "GetConfig",
                "SetConfigs",
                "UnsetApplicationsConfig",
            ]
        },
    },
    Facade {
        name: "Client",
        versions: &[6, 7, 8],
        served: Served::Model,
        methods: |_| &["WatchAll"],
    },
    Facade {
        name: "ModelConfig",
        versions: &[3],
        served: Served::Both,
        methods: |_| &["ModelGet", "ModelSet", "ModelUnset"],
    },
    Facade {
        name: "ModelManager",
        versions: &[9, 10],
        served: Served::Controller,
        methods: |_| &["ListModelSummaries", "ListModels", "ModelInfo"],
    },
    Facade {
        name: "Pinger",
        versions: &[1],
        served: Served::Both,
        methods: |_| &["Ping", "Stop"],
    },
    Facade {
        name: "SecretBackends",
        versions: &[1],
        served: Served::Controller,
        methods: |_| {
            &[
                "AddSecretBackends",
                "ListSecretBackends",
                "RemoveSecretBackends",
                "UpdateSecretBackends",
            ]
        },
    },
    Facade {
        name: "Secrets",
        versions: &[1, 2],
        served: Served::Model,
        methods: |v| {
            if v >= 2 {
                &[
                    "CreateSecrets",
                    "GrantSecret",
                    "ListSecrets",
                    "RemoveSecrets",
                    "RevokeSecret",
                    "UpdateSecrets",
                ]
            } else {
                &["ListSecrets"]
            }
        },
    },
];

/// The `facades` list of a Login response for this connection kind.
fn facade_list(model: bool) -> Vec<Value> {
    FACADES
        .iter()
        .filter(|f| match f.served {
            Served::Both => true,
            Served::Controller => !model,
            Served::Model => model,
        })
        .map(|f| serde_json::json!({"name": f.name, "versions": f.versions}))
        .collect()
}

/// Where a routed call goes.
pub(crate) enum Route {
    /// `Admin.Login`.
    Login,
    /// A control request (`/emulator/control`).
    Control,
    /// A facade call by a logged-in user.
    Call(Session),
}

fn unknown_version(facade: &str, version: i64) -> RpcError {
    RpcError::new(
        format!("unknown version ({version}) of interface {facade:?}"),
        CODE_NOT_IMPLEMENTED,
    )
}

fn unknown_object(facade: &str) -> RpcError {
    RpcError::new(
        format!("unknown object type {facade:?}"),
        CODE_NOT_IMPLEMENTED,
    )
}

fn no_such_method(facade: &str, version: i64, method: &str) -> RpcError {
    RpcError::new(
        format!("no such request - method {facade}({version}).{method} is not implemented"),
        CODE_NOT_IMPLEMENTED,
    )
}

/// Decides, when the frame is read, which root handles the call.
pub(crate) fn route(conn: &Conn, req: &Request) -> Result<Route, RpcError> {
    let model = match &conn.kind {
        ConnKind::UnknownModel(uuid) => {
            return Err(RpcError::new(
                format!("unknown model: {uuid:?}"),
                CODE_MODEL_NOT_FOUND,
            ));
        }
        ConnKind::Control => {
            if req.facade != "Emulator" || req.version == 0 {
                return Err(unknown_object(&req.facade));
            }
            if req.version != 1 {
                return Err(unknown_version(&req.facade, req.version));
            }
            if !control::METHODS.contains(&req.method.as_str()) {
                return Err(no_such_method(&req.facade, req.version, &req.method));
            }
            return Ok(Route::Control);
        }
        ConnKind::Controller => false,
        ConnKind::Model(_) => true,
    };
    let mut login = conn.login_state();
    let session = match &*login {
        LoginState::Done(session) => session.clone(),
        LoginState::None | LoginState::InProgress => {
            if req.facade != "Admin" {
                return Err(unknown_version(&req.facade, req.version));
            }
            if req.version != 3 {
                return Err(unknown_version("Admin", req.version));
            }
            return match req.method.as_str() {
                "Login" => {
                    if matches!(*login, LoginState::None) {
                        *login = LoginState::InProgress;
                        Ok(Route::Login)
                    } else {
                        Err(RpcError::plain("already logged in"))
                    }
                }
                "RedirectInfo" => Err(RpcError::new("not redirected", "not redirected")),
                other => Err(no_such_method("Admin", 3, other)),
            };
        }
    };
    drop(login);
    let facade = req.facade.as_str();
    if model {
        if facade == "Admin" {
            return Err(unknown_version("Admin", req.version));
        }
        if CONTROLLER_ONLY.contains(&facade) {
            return Err(RpcError::new(
                format!("facade {facade:?} not supported for model API connection"),
                CODE_NOT_SUPPORTED,
            ));
        }
    } else if !CONTROLLER_ONLY.contains(&facade) && !BOTH.contains(&facade) {
        return Err(RpcError::new(
            format!("facade {facade:?} not supported for controller API connection"),
            CODE_NOT_SUPPORTED,
        ));
    }
    let Some(spec) = FACADES.iter().find(|f| f.name == facade) else {
        return Err(unknown_object(facade));
    };
    if req.version == 0 {
        return Err(unknown_object(facade));
    }
    if !spec.versions.contains(&req.version) {
        return Err(unknown_version(facade, req.version));
    }
    if !(spec.methods)(req.version).contains(&req.method.as_str()) {
        return Err(no_such_method(facade, req.version, &req.method));
    }
    Ok(Route::Call(session))
}

/// Runs a routed call.
pub(crate) async fn execute(
    conn: &Arc<Conn>,
    route: Route,
    req: &Request,
) -> Result<Value, RpcError> {
    match route {
        Route::Login => admin::login(conn, req),
        Route::Control => control::handle(conn, req),
        Route::Call(session) => {
            let call = Call {
                conn,
                session: &session,
                req,
            };
            match (req.facade.as_str(), req.method.as_str()) {
                ("Pinger", _) => Ok(super::rpc::empty()),
                ("AllWatcher", "Next") => watcher::next(conn, req).await,
                ("AllWatcher", "Stop") => watcher::stop(conn, req),
                ("Application", m) => application::handle(&call, m),
                ("Client", "WatchAll") => watcher::watch_all(conn),
                ("ModelConfig", m) => modelconfig::handle(&call, m),
                ("ModelManager", m) => modelmanager::handle(&call, m),
                ("SecretBackends", m) => backends::handle(&call, m),
                ("Secrets", m) => secrets::handle(&call, m),
                (f, m) => Err(no_such_method(f, req.version, m)),
            }
        }
    }
}

/// One call by a logged-in user.
pub(crate) struct Call<'a> {
    /// The connection.
    pub conn: &'a Conn,
    /// Who is calling.
    pub session: &'a Session,
    /// The request.
    pub req: &'a Request,
}

impl Call<'_> {
    /// The UUID of the connection's model, or `None` on a controller connection.
    pub fn model_uuid(&self) -> Option<&str> {
        match &self.conn.kind {
            ConnKind::Model(uuid) => Some(uuid),
            _ => None,
        }
    }

    /// Fails with `permission denied` unless the caller has at least `need` on the model.
    pub fn require_model(&self, need: super::state::ModelAccess) -> Result<(), RpcError> {
        if self.session.superuser || self.session.model_access.is_some_and(|a| a >= need) {
            Ok(())
        } else {
            Err(RpcError::permission_denied())
        }
    }

    /// Fails with `permission denied` unless the caller is a controller superuser.
    pub fn require_superuser(&self) -> Result<(), RpcError> {
        if self.session.superuser {
            Ok(())
        } else {
            Err(RpcError::permission_denied())
        }
    }
}
