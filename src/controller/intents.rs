//! The create intents: which JujuSecret is creating which Juju secret, kept in one
//! ConfigMap beside the connection Secret so that it survives a crash.
//!
//! If the operator dies after Juju created a secret but before the JujuSecret's status
//! recorded it, the next pass finds a secret of that name it cannot tell from a stranger's.
//! Before any create is sent, the claim `(model, name) → object UID` is persisted here;
//! a secret found by name counts as the object's own only if the object holds the claim
//! (and the secret is still the first revision with the content being created).
//!
//! Claims are persisted with group commit: every write batch that carries creates calls
//! [`Intents::persist`] before its bulk call; one ConfigMap write covers every claim made
//! until then, whatever the model. A cold start of thousands of objects therefore costs a
//! handful of ConfigMap writes instead of one status write per object. Claims are
//! released once the status records the secret, and the release reaches the ConfigMap
//! with the next write. Claims older than [`MAX_AGE`] are dropped.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::warn;

/// Name of the ConfigMap, in the connection Secret's namespace.
pub const CONFIGMAP: &str = "juju-secrets-operator-intents";

/// The ConfigMap key holding the claims (JSON).
const KEY: &str = "claims.json";

/// Claims older than this are dropped (the object recorded its secret long ago, or was
/// deleted).
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Most claims held at once; beyond it new creates wait (keeps the ConfigMap far below
/// its 1 MiB limit).
pub const MAX_CLAIMS: usize = 4000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Claim {
    /// UID of the JujuSecret creating the secret.
    uid: String,
    /// When the claim was made (seconds since the Unix epoch).
    since: i64,
}

#[derive(Default)]
struct State {
    /// `<model-uuid>/<name>` → claim.
    claims: BTreeMap<String, Claim>,
    /// Bumped on every change.
    version: u64,
    /// The version the ConfigMap holds.
    persisted: u64,
}

/// Why a claim was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum ClaimError {
    /// Another JujuSecret is creating a secret of that name in that model.
    Held,
    /// Too many creates in flight.
    Full,
}

/// The claims, in memory and in the ConfigMap.
pub struct Intents {
    api: Option<Api<ConfigMap>>,
    state: Mutex<State>,
    writer: tokio::sync::Mutex<()>,
}

fn key(model_uuid: &str, name: &str) -> String {
    format!("{model_uuid}/{name}")
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl Intents {
    /// Loads the claims from the ConfigMap `CONFIGMAP` in `namespace` (none if absent).
    pub async fn load(client: kube::Client, namespace: &str) -> Result<Self, kube::Error> {
        let api: Api<ConfigMap> = Api::namespaced(client, namespace);
        let mut claims = BTreeMap::new();
        if let Some(cm) = api.get_opt(CONFIGMAP).await?
            && let Some(text) = cm.data.as_ref().and_then(|d| d.get(KEY))
        {
            match serde_json::from_str::<BTreeMap<String, Claim>>(text) {
                Ok(loaded) => claims = loaded,
                Err(e) => {
                    warn!(configmap = CONFIGMAP, error = %e, "unreadable create intents; starting without them")
                }
            }
        }
        Ok(Self {
            api: Some(api),
            state: Mutex::new(State {
                claims,
                version: 0,
                persisted: 0,
            }),
            writer: tokio::sync::Mutex::new(()),
        })
    }

    /// Claims kept in memory only (tests, tools).
    pub fn in_memory() -> Self {
        Self {
            api: None,
            state: Mutex::default(),
            writer: tokio::sync::Mutex::new(()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims `name` in `model_uuid` for the object `uid`. Claiming again what the object
    /// holds renews the claim.
    pub fn claim(&self, model_uuid: &str, name: &str, uid: &str) -> Result<(), ClaimError> {
        let mut state = self.state();
        let k = key(model_uuid, name);
        match state.claims.get(&k) {
            Some(c) if c.uid != uid && now() - c.since < MAX_AGE.as_secs() as i64 => {
                return Err(ClaimError::Held);
            }
            None if state.claims.len() >= MAX_CLAIMS => return Err(ClaimError::Full),
            _ => {}
        }
        state.claims.insert(
            k,
            Claim {
                uid: uid.to_owned(),
                since: now(),
            },
        );
        state.version += 1;
        Ok(())
    }

    /// Whether the object `uid` holds the claim on `name` in `model_uuid`.
    pub fn held_by(&self, model_uuid: &str, name: &str, uid: &str) -> bool {
        self.state()
            .claims
            .get(&key(model_uuid, name))
            .is_some_and(|c| c.uid == uid)
    }

    /// The model of a claim the object `uid` holds on `name`, if any.
    pub fn model_of(&self, name: &str, uid: &str) -> Option<String> {
        self.state().claims.iter().find_map(|(k, c)| {
            let (model, n) = k.split_once('/')?;
            (n == name && c.uid == uid).then(|| model.to_owned())
        })
    }

    /// Drops the object's claim (its status records the secret now, or nothing was
    /// created). Reaches the ConfigMap with the next write.
    pub fn release(&self, model_uuid: &str, name: &str, uid: &str) {
        let mut state = self.state();
        let k = key(model_uuid, name);
        if state.claims.get(&k).is_some_and(|c| c.uid == uid) {
            state.claims.remove(&k);
            state.version += 1;
        }
    }

    /// Number of claims held.
    pub fn len(&self) -> usize {
        self.state().claims.len()
    }

    /// Whether no claim is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes every claim made so far durable: returns once the ConfigMap holds them
    /// (one write covers every caller waiting meanwhile).
    pub async fn persist(&self) -> Result<(), String> {
        let wanted = self.state().version;
        let _writer = self.writer.lock().await;
        let (claims, version) = {
            let mut state = self.state();
            if state.persisted >= wanted {
                return Ok(());
            }
            let cutoff = now() - MAX_AGE.as_secs() as i64;
            let before = state.claims.len();
            state.claims.retain(|_, c| c.since >= cutoff);
            if state.claims.len() != before {
                state.version += 1;
            }
            (state.claims.clone(), state.version)
        };
        if let Some(api) = &self.api {
            let text = serde_json::to_string(&claims).map_err(|e| e.to_string())?;
            let patch = json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": CONFIGMAP,
                    "labels": {"app.kubernetes.io/managed-by": super::FIELD_MANAGER},
                },
                "data": {KEY: text},
            });
            api.patch(
                CONFIGMAP,
                &PatchParams::apply(super::FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(|e| {
                format!("cannot record the create intents in ConfigMap {CONFIGMAP}: {e}")
            })?;
        }
        let mut state = self.state();
        state.persisted = state.persisted.max(version);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_claimed_by_one_object_at_a_time() {
        let intents = Intents::in_memory();
        assert_eq!(intents.claim("m", "db", "uid-a"), Ok(()));
        assert_eq!(intents.claim("m", "db", "uid-b"), Err(ClaimError::Held));
        // The same name in another model is another secret.
        assert_eq!(intents.claim("m2", "db", "uid-b"), Ok(()));
        assert!(intents.held_by("m", "db", "uid-a"));
        assert!(!intents.held_by("m", "db", "uid-b"));
        assert_eq!(intents.model_of("db", "uid-b").as_deref(), Some("m2"));
        // Renewing is fine; releasing someone else's claim does nothing.
        assert_eq!(intents.claim("m", "db", "uid-a"), Ok(()));
        intents.release("m", "db", "uid-b");
        assert!(intents.held_by("m", "db", "uid-a"));
        intents.release("m", "db", "uid-a");
        assert!(!intents.held_by("m", "db", "uid-a"));
        assert_eq!(intents.claim("m", "db", "uid-b"), Ok(()));
    }

    #[test]
    fn claims_are_bounded() {
        let intents = Intents::in_memory();
        for i in 0..MAX_CLAIMS {
            assert_eq!(intents.claim("m", &format!("s{i}"), "u"), Ok(()));
        }
        assert_eq!(intents.claim("m", "one-more", "u"), Err(ClaimError::Full));
        intents.release("m", "s0", "u");
        assert_eq!(intents.claim("m", "one-more", "u"), Ok(()));
    }

    #[tokio::test]
    async fn persist_covers_every_claim_made_before_it() {
        let intents = Intents::in_memory();
        intents.claim("m", "a", "u").unwrap();
        intents.persist().await.unwrap();
        let state = intents.state();
        assert_eq!(state.persisted, state.version);
    }
}
