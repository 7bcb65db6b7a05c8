//! The controller's state: users, models, secrets and secret backends, persisted as JSON.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::EmulatorError;
use super::ids;
use super::info::{ModelInfo, Seed, UserInfo};

/// Name of the built-in backend that keeps content in the controller.
pub const INTERNAL_BACKEND: &str = "internal";

/// Model access levels, ordered by power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ModelAccess {
    /// Read only.
    Read,
    /// Read and change.
    Write,
    /// Everything, including revealing secrets.
    Admin,
}

impl ModelAccess {
    /// Parses `read`, `write` or `admin`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

/// The whole persisted state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct State {
    /// Controller UUID.
    pub controller_uuid: String,
    /// UUID of the (unlisted) controller model that ModelConfig on `/api` acts on.
    pub controller_model_uuid: String,
    /// Config set on the controller model.
    #[serde(default)]
    pub controller_model_config: BTreeMap<String, Value>,
    /// Local users.
    pub users: Vec<UserRecord>,
    /// Hosted models.
    pub models: Vec<ModelRecord>,
    /// User-added secret backends.
    #[serde(default)]
    pub backends: Vec<BackendRecord>,
}

/// A local user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct UserRecord {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// `superuser`, `add-model` or `login`.
    pub controller_access: String,
    /// The access string the seed gave, reported in `connection.json`.
    pub seed_access: String,
}

/// A hosted model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ModelRecord {
    /// Model name.
    pub name: String,
    /// Owner's user name.
    pub owner: String,
    /// Model UUID.
    pub uuid: String,
    /// `iaas` or `caas`.
    pub model_type: String,
    /// Creation time (RFC 3339).
    pub created: String,
    /// Deployed applications.
    pub applications: Vec<String>,
    /// Charm config values set with `SetConfigs`, per application (typed as the option).
    #[serde(default)]
    pub app_config: BTreeMap<String, BTreeMap<String, Value>>,
    /// Explicit access grants: user name to `read`/`write`/`admin`.
    pub access: BTreeMap<String, String>,
    /// Config values set with ModelSet.
    #[serde(default)]
    pub config: BTreeMap<String, Value>,
    /// Last model login per user (RFC 3339).
    #[serde(default)]
    pub last_connection: BTreeMap<String, String>,
    /// Secrets hosted in the model.
    #[serde(default)]
    pub secrets: Vec<SecretRecord>,
}

/// A secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SecretRecord {
    /// The 20-character ID.
    pub id: String,
    /// The owner tag (`model-<uuid>` for user secrets).
    pub owner_tag: String,
    /// Label; `None` when never set.
    pub label: Option<String>,
    /// Description; `None` when never set.
    pub description: Option<String>,
    /// Highest revision ever written.
    pub latest_revision: u64,
    /// Checksum of the latest revision's content.
    pub latest_revision_checksum: String,
    /// Whether obsolete revisions are pruned.
    pub auto_prune: bool,
    /// Creation time.
    pub create_time: String,
    /// Last update time.
    pub update_time: String,
    /// Stored revisions, in creation order.
    pub revisions: Vec<RevisionRecord>,
    /// Applications with a `view` grant.
    pub grants: Vec<String>,
}

/// One stored revision.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RevisionRecord {
    /// Revision number.
    pub revision: u64,
    /// Content: key to base64 value.
    pub data: BTreeMap<String, String>,
    /// ID of the backend holding the content (the controller UUID for `internal`).
    pub backend_id: String,
    /// Creation time.
    pub create_time: String,
    /// Update time.
    pub update_time: String,
    /// When this emulator stored the content, in milliseconds since the Unix epoch: what
    /// the control facade's `ContentTimes` reports (benchmarks measure from it how soon
    /// content reaches Juju). Not persisted: Juju has no such field.
    #[serde(skip)]
    pub written_ms: u64,
}

/// A user-added secret backend.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BackendRecord {
    /// Backend ID.
    pub id: String,
    /// Backend name.
    pub name: String,
    /// `vault` or `kubernetes`.
    pub backend_type: String,
    /// Token rotation interval in nanoseconds.
    pub token_rotate_interval: Option<i64>,
    /// Provider config.
    pub config: serde_json::Map<String, Value>,
}

impl State {
    /// Builds a fresh state from a seed.
    pub fn from_seed(seed: &Seed) -> Result<Self, EmulatorError> {
        let now = ids::now_rfc3339();
        let controller_uuid = match &seed.controller_uuid {
            Some(u) => u.clone(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        let mut models = Vec::new();
        for m in &seed.models {
            if !seed.users.iter().any(|u| u.username == m.owner) {
                return Err(EmulatorError::Seed(format!(
                    "model {:?} has unknown owner {:?}",
                    m.name, m.owner
                )));
            }
            models.push(ModelRecord {
                name: m.name.clone(),
                owner: m.owner.clone(),
                uuid: m
                    .uuid
                    .clone()
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                model_type: "iaas".into(),
                created: now.clone(),
                applications: m.applications.clone(),
                app_config: BTreeMap::new(),
                access: BTreeMap::from([(m.owner.clone(), "admin".to_owned())]),
                config: BTreeMap::new(),
                last_connection: BTreeMap::new(),
                secrets: Vec::new(),
            });
        }
        let mut users = Vec::new();
        for u in &seed.users {
            let (controller_access, all_models) = match u.access.as_str() {
                "superuser" | "add-model" | "login" => (u.access.clone(), None),
                other => match ModelAccess::parse(other) {
                    Some(a) => ("login".to_owned(), Some(a)),
                    None => {
                        return Err(EmulatorError::Seed(format!(
                            "user {:?} has unknown access {other:?}",
                            u.username
                        )));
                    }
                },
            };
            for model in &mut models {
                let key = format!("{}/{}", model.owner, model.name);
                let explicit = u.models.get(&key).or_else(|| u.models.get(&model.uuid));
                let access = match explicit {
                    Some(s) => Some(ModelAccess::parse(s).ok_or_else(|| {
                        EmulatorError::Seed(format!("user {:?}: unknown access {s:?}", u.username))
                    })?),
                    None => all_models,
                };
                if let Some(a) = access
                    && model.owner != u.username
                {
                    model.access.insert(u.username.clone(), a.as_str().into());
                }
            }
            users.push(UserRecord {
                username: u.username.clone(),
                password: u.password.clone().unwrap_or_else(ids::new_password),
                controller_access,
                seed_access: u.access.clone(),
            });
        }
        Ok(Self {
            controller_uuid,
            controller_model_uuid: uuid::Uuid::new_v4().to_string(),
            controller_model_config: BTreeMap::new(),
            users,
            models,
            backends: Vec::new(),
        })
    }

    /// Loads the state file, if there is one.
    pub fn load(path: &Path) -> Result<Option<Self>, EmulatorError> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| EmulatorError::State(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(EmulatorError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Writes the state file atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<(), EmulatorError> {
        write_private_atomically(path, &self.to_json()?)
    }

    /// The state as `state.json` holds it.
    pub fn to_json(&self) -> Result<Vec<u8>, EmulatorError> {
        serde_json::to_vec_pretty(self).map_err(|e| EmulatorError::State(e.to_string()))
    }

    /// Users and models as `connection.json` lists them.
    pub fn public_lists(&self) -> (Vec<UserInfo>, Vec<ModelInfo>) {
        let users = self
            .users
            .iter()
            .map(|u| UserInfo {
                username: u.username.clone(),
                password: u.password.clone(),
                access: u.seed_access.clone(),
            })
            .collect();
        let models = self
            .models
            .iter()
            .map(|m| ModelInfo {
                name: m.name.clone(),
                owner: m.owner.clone(),
                uuid: m.uuid.clone(),
                applications: m.applications.clone(),
            })
            .collect();
        (users, models)
    }

    /// A user by name.
    pub fn user(&self, name: &str) -> Option<&UserRecord> {
        self.users.iter().find(|u| u.username == name)
    }

    /// A model by UUID.
    pub fn model(&self, uuid: &str) -> Option<&ModelRecord> {
        self.models.iter().find(|m| m.uuid == uuid)
    }

    /// A model by UUID, for changes.
    pub fn model_mut(&mut self, uuid: &str) -> Option<&mut ModelRecord> {
        self.models.iter_mut().find(|m| m.uuid == uuid)
    }

    /// Whether the user is a controller superuser.
    pub fn is_superuser(&self, user: &str) -> bool {
        self.user(user)
            .is_some_and(|u| u.controller_access == "superuser")
    }

    /// The user's effective access to a model: an explicit grant, else `admin` for a
    /// controller superuser.
    pub fn model_access(&self, user: &str, model: &ModelRecord) -> Option<ModelAccess> {
        let explicit = model.access.get(user).and_then(|a| ModelAccess::parse(a));
        match explicit {
            Some(a) if self.is_superuser(user) => Some(a.max(ModelAccess::Admin)),
            Some(a) => Some(a),
            None if self.is_superuser(user) => Some(ModelAccess::Admin),
            None => None,
        }
    }

    /// A user-added backend by name.
    pub fn backend_by_name(&self, name: &str) -> Option<&BackendRecord> {
        self.backends.iter().find(|b| b.name == name)
    }

    /// The name of the backend with this ID (`internal` for the controller UUID), or
    /// `None` when it no longer exists.
    pub fn backend_name(&self, id: &str) -> Option<String> {
        if id == self.controller_uuid {
            return Some(INTERNAL_BACKEND.into());
        }
        self.backends
            .iter()
            .find(|b| b.id == id)
            .map(|b| b.name.clone())
    }

    /// Number of distinct secrets (all models) with a revision in the backend.
    pub fn secrets_in_backend(&self, id: &str) -> usize {
        self.models
            .iter()
            .flat_map(|m| m.secrets.iter())
            .filter(|s| s.revisions.iter().any(|r| r.backend_id == id))
            .count()
    }

    /// Number of revisions (all models) stored in the backend.
    pub fn revisions_in_backend(&self, id: &str) -> usize {
        self.models
            .iter()
            .flat_map(|m| m.secrets.iter())
            .flat_map(|s| s.revisions.iter())
            .filter(|r| r.backend_id == id)
            .count()
    }
}

impl ModelRecord {
    /// The model's `secret-backend` setting (`auto` unless set).
    pub fn secret_backend_setting(&self) -> String {
        match self.config.get("secret-backend") {
            Some(Value::String(s)) => s.clone(),
            _ => "auto".into(),
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, readable only
/// by the owner.
pub fn write_private_atomically(path: &Path, bytes: &[u8]) -> Result<(), EmulatorError> {
    use std::io::Write;
    let io_err = |source| EmulatorError::Io {
        path: path.to_owned(),
        source,
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", ids::new_backend_id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(io_err)?;
    file.write_all(bytes).map_err(io_err)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_seed_gives_admin_and_reader() {
        let state = State::from_seed(&Seed::default()).unwrap();
        let dev = &state.models[0];
        assert_eq!(state.model_access("admin", dev), Some(ModelAccess::Admin));
        assert_eq!(state.model_access("reader", dev), Some(ModelAccess::Read));
        assert!(state.is_superuser("admin"));
        assert!(!state.is_superuser("reader"));
        let (users, _) = state.public_lists();
        assert_eq!(users[1].access, "read");
    }
}
