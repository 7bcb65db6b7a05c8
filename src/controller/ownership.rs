//! The ownership record: which Juju secrets this operator created or adopted, and for
//! which object. Decisions that write, rename or delete a Juju secret read this record,
//! never an object's status (anyone with `*/status` rights can write a status).
//!
//! One entry per JujuSecret (by UID): the model, the name it claimed, and either
//!
//! - a **claim** (no URI yet): written before the CreateSecrets it covers, with the keyed
//!   MAC of the content being created. A claim whose create Juju definitely refused is
//!   released at once; only an unknown outcome (lost answer, crash) keeps it, and then a
//!   secret found by the claimed name counts as the object's own only if it is still the
//!   first revision and its content has the claimed MAC ([`decide`]). A claim made
//!   before the object carried the operator's finalizer (a new object is written to
//!   Juju first) is marked with where the object is and what its deletion does
//!   ([`Unfinalized`]) until the finalizer is there, so that an object deleted while no
//!   operator ran is still cleaned up (the JujuSecret controller's start-up sweep); or
//! - an **owned secret** (with URI): confirmed after Juju answered the create, or taken
//!   over by `adopt` while no other object owned it.
//!
//! One entry per JujuSecretGrant: the applications the operator granted for it, recorded
//! before the GrantSecret call. One entry per JujuSecretBackend: the backend's ID once
//! created or adopted (a claim with the keyed MAC of the type and plain configuration
//! being added before that), the keyed MAC of the configuration last written, and the
//! models the operator pointed at it (recorded before the model config write).
//!
//! The record lives in [`SHARDS`] ConfigMaps `juju-secrets-operator-ownership-NN` in the
//! connection Secret's namespace, where only the operator's ServiceAccount may write
//! (the chart's Role names them). An entry is about 200 bytes, so 100,000 entries take
//! about 620 KiB per shard, well under the apiserver's object size limit. Writes use
//! optimistic concurrency (the shard's `resourceVersion`): a conflict means another
//! process wrote the shard (a former leader); the stored shard is read back and merged,
//! this process's own changes winning for the objects it touched. Changes are made
//! durable with group commit ([`OwnershipRecord::persist`]): the write batcher calls it
//! before every bulk Juju write, so one write per touched shard covers every claim and
//! confirmation made until then. Persists are paced to [`WRITE_RATE`] bytes per second
//! (a whole shard is rewritten for any change in it, so during a burst of creates most
//! persists rewrite the whole record): the pace bounds what a burst costs the apiserver
//! and etcd's history, and makes each persist cover more creates.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::warn;

/// Number of ConfigMaps the record is spread over.
pub const SHARDS: usize = 32;

/// Bytes per second the record's writes may average (see [`OwnershipRecord::persist`]).
pub const WRITE_RATE: usize = 2_000_000;

/// Longest pause between two persists, however large the record.
const MAX_PAUSE: std::time::Duration = std::time::Duration::from_secs(15);

/// The pause before the next persist after one that wrote `bytes`.
fn pause_after(bytes: usize) -> std::time::Duration {
    std::time::Duration::from_secs_f64(bytes as f64 / WRITE_RATE as f64).min(MAX_PAUSE)
}

/// Prefix of the shards' names; shard `i` is `<PREFIX>-<i:02>`.
pub const CONFIGMAP_PREFIX: &str = "juju-secrets-operator-ownership";

/// The ConfigMap key holding a shard's entries (JSON: object UID → entry).
const KEY: &str = "secrets.json";

/// Most claims (creates with no confirmed URI) held at once; beyond it new creates wait.
pub const MAX_CLAIMS: usize = 4000;

/// The name of shard `i`.
pub fn shard_name(i: usize) -> String {
    format!("{CONFIGMAP_PREFIX}-{i:02}")
}

/// What the record holds for one JujuSecret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretEntry {
    /// The model's UUID.
    #[serde(rename = "m")]
    pub model: String,
    /// The Juju name the object claimed (the name it was created under).
    #[serde(rename = "n")]
    pub name: String,
    /// The secret's ID (`secret:<xid>`) once owned; `None` while only claimed.
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Keyed MAC of the content being created (a claim), or of the content of revision
    /// `revision` as the operator last wrote or read it (an owned secret).
    #[serde(rename = "h", default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The revision whose content has the MAC `mac` (owned secrets): while Juju's latest
    /// revision is still this one, the content is known without reading it (a controller
    /// before Juju 3.6 reports no checksum, and every content change makes a revision).
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// The auto-prune flag last applied to the secret, if any.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub auto_prune: Option<bool>,
    /// Set when the claim was made for an object that did not carry the operator's
    /// finalizer yet (Juju is written first, the finalizer follows); cleared once it
    /// does. While set, an object deleted with no operator running is cleaned up by the
    /// start-up sweep, which needs to know where the object was and its deletion policy.
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    pub unfinalized: Option<Unfinalized>,
}

/// Where an object without the operator's finalizer is, and what its deletion does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unfinalized {
    /// The object's namespace.
    #[serde(rename = "ns")]
    pub namespace: String,
    /// The object's name.
    #[serde(rename = "n")]
    pub name: String,
    /// Deleting the object leaves the secret in Juju (`deletionPolicy: Retain`, or
    /// `managementPolicy: ObserveOnly`): so does the sweep.
    #[serde(rename = "k", default, skip_serializing_if = "std::ops::Not::not")]
    pub retain: bool,
}

impl SecretEntry {
    /// Whether this is a claim (a create whose URI is not confirmed).
    pub fn is_claim(&self) -> bool {
        self.uri.is_none()
    }
}

/// What the record holds for one JujuSecretGrant: the applications the operator granted
/// on one Juju secret for it. Recorded before the GrantSecret call it covers, so a
/// crash never leaves an application granted that no record lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantEntry {
    /// The model's UUID.
    #[serde(rename = "m")]
    pub model: String,
    /// The secret's ID (`secret:<xid>`).
    #[serde(rename = "u")]
    pub uri: String,
    /// The applications granted for the grant object.
    #[serde(rename = "a")]
    pub applications: std::collections::BTreeSet<String>,
    /// Config options the operator set to the secret's URI for the grant object, by
    /// application and option. Recorded before the SetConfigs call it covers.
    #[serde(rename = "c", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub configured: BTreeMap<String, BTreeMap<String, Wired>>,
}

/// One config option the operator set: what it held before (restored when the option
/// is no longer wired) and what the operator set it to. Values are secret URIs or
/// unset, never anything else: an option holding another value is not taken over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wired {
    /// The value before the operator set it; `None` when it was unset.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<String>,
    /// The value the operator set (or is setting).
    #[serde(rename = "v")]
    pub value: String,
    /// While the write of `value` is in flight: the operator's value it replaces (a
    /// secret followed to its new URI), so that an option still holding it is known
    /// as the operator's if the write never happened.
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    /// Recorded before the write of `value`, cleared once Juju took it.
    #[serde(rename = "w", default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
}

impl Wired {
    /// Whether an option holding `now` holds what the operator put there (or, with a
    /// write in flight, what it held just before the operator's write).
    pub fn is_operators(&self, now: Option<&str>) -> bool {
        now == Some(self.value.as_str())
            || (self.pending
                && (now == self.prior.as_deref()
                    || (self.old.is_some() && now == self.old.as_deref())))
    }
}

/// What the record holds for one JujuSecretBackend.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendEntry {
    /// The backend's Juju name as last created, adopted or renamed by the operator.
    #[serde(rename = "b")]
    pub name: String,
    /// Juju's ID of the backend once created or adopted.
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// While an add is in flight (a claim): the keyed MAC of the type and plain
    /// configuration being added, to recognize the backend if the answer was lost.
    #[serde(rename = "h", default, skip_serializing_if = "Option::is_none")]
    pub adding: Option<String>,
    /// Keyed MAC of the configuration last written (sensitive keys included).
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub config_mac: Option<String>,
    /// UUIDs of the models the operator pointed at the backend for this object.
    #[serde(rename = "ms", default, skip_serializing_if = "BTreeSet::is_empty")]
    pub models: BTreeSet<String>,
}

impl BackendEntry {
    /// Whether an add is claimed and not confirmed.
    pub fn is_claim(&self) -> bool {
        self.adding.is_some()
    }
}

/// One entry of the record, by object UID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Entry {
    /// A JujuSecret's claim or owned secret.
    Secret(SecretEntry),
    /// A JujuSecretGrant's granted applications.
    Grant(GrantEntry),
    /// A JujuSecretBackend's backend and assigned models.
    Backend(BackendEntry),
}

/// Why a claim or an adoption was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordError {
    /// Another JujuSecret is creating a secret of that name in that model.
    Held,
    /// Another object owns that secret, backend or model assignment.
    OwnedByAnother,
    /// Too many creates in flight.
    Full,
}

#[derive(Default)]
struct Shard {
    entries: BTreeMap<String, Entry>,
    /// Entries this version of the operator cannot read (written by a newer one, or
    /// edited by hand), kept as they are stored and written back unchanged.
    foreign: BTreeMap<String, serde_json::Value>,
    /// Why the stored shard cannot be read at all; such a shard is never overwritten
    /// (see [`OwnershipRecord::write_shard`]).
    unreadable: Option<String>,
    /// The stored ConfigMap's resourceVersion; `None` when it does not exist yet.
    resource_version: Option<String>,
    /// Objects whose entry changed since the last successful write, with the record's
    /// version at that change.
    touched: BTreeMap<String, u64>,
}

#[derive(Default)]
struct State {
    shards: Vec<Shard>,
    /// `(model, name)` → UID of the object holding a claim on it.
    claims: HashMap<(String, String), String>,
    /// `(model, secret id)` → UID of the owning object.
    owners: HashMap<(String, String), String>,
    /// `(model, secret id)` → UIDs of the grant objects with applications granted there.
    grants: HashMap<(String, String), std::collections::BTreeSet<String>>,
    /// Backend ID → UID of the owning JujuSecretBackend.
    backends: HashMap<String, String>,
    /// Backend name → UID of the JujuSecretBackend adding a backend of that name.
    backend_claims: HashMap<String, String>,
    /// Model UUID → UID of the JujuSecretBackend that pointed the model at its backend.
    model_backends: HashMap<String, String>,
    /// Bumped on every change.
    version: u64,
    /// The version the ConfigMaps hold.
    persisted: u64,
}

impl State {
    fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            ..Self::default()
        }
    }

    fn index(&mut self, uid: &str, entry: &Entry) {
        match entry {
            Entry::Secret(SecretEntry {
                model,
                uri: Some(uri),
                ..
            }) => {
                self.owners
                    .insert((model.clone(), uri.clone()), uid.to_owned());
            }
            Entry::Secret(SecretEntry {
                model,
                name,
                uri: None,
                ..
            }) => {
                self.claims
                    .insert((model.clone(), name.clone()), uid.to_owned());
            }
            Entry::Grant(g) => {
                self.grants
                    .entry((g.model.clone(), g.uri.clone()))
                    .or_default()
                    .insert(uid.to_owned());
            }
            Entry::Backend(b) => {
                if let Some(id) = &b.id {
                    self.backends.insert(id.clone(), uid.to_owned());
                }
                if b.is_claim() {
                    self.backend_claims.insert(b.name.clone(), uid.to_owned());
                }
                for model in &b.models {
                    self.model_backends.insert(model.clone(), uid.to_owned());
                }
            }
        }
    }

    fn unindex(&mut self, uid: &str, entry: &Entry) {
        let (map, key) = match entry {
            Entry::Secret(SecretEntry {
                model,
                uri: Some(uri),
                ..
            }) => (&mut self.owners, (model.clone(), uri.clone())),
            Entry::Secret(SecretEntry {
                model,
                name,
                uri: None,
                ..
            }) => (&mut self.claims, (model.clone(), name.clone())),
            Entry::Grant(g) => {
                let key = (g.model.clone(), g.uri.clone());
                if let Some(uids) = self.grants.get_mut(&key) {
                    uids.remove(uid);
                    if uids.is_empty() {
                        self.grants.remove(&key);
                    }
                }
                return;
            }
            Entry::Backend(b) => {
                let mine =
                    |m: &HashMap<String, String>, k: &String| m.get(k).is_some_and(|u| u == uid);
                if let Some(id) = &b.id
                    && mine(&self.backends, id)
                {
                    self.backends.remove(id);
                }
                if b.is_claim() && mine(&self.backend_claims, &b.name) {
                    self.backend_claims.remove(&b.name);
                }
                for model in &b.models {
                    if mine(&self.model_backends, model) {
                        self.model_backends.remove(model);
                    }
                }
                return;
            }
        };
        if map.get(&key).is_some_and(|u| u == uid) {
            map.remove(&key);
        }
    }

    fn get(&self, uid: &str) -> Option<&SecretEntry> {
        match self.shards[shard_of(uid)].entries.get(uid) {
            Some(Entry::Secret(e)) => Some(e),
            _ => None,
        }
    }

    fn grant(&self, uid: &str) -> Option<&GrantEntry> {
        match self.shards[shard_of(uid)].entries.get(uid) {
            Some(Entry::Grant(e)) => Some(e),
            _ => None,
        }
    }

    fn backend(&self, uid: &str) -> Option<&BackendEntry> {
        match self.shards[shard_of(uid)].entries.get(uid) {
            Some(Entry::Backend(e)) => Some(e),
            _ => None,
        }
    }

    fn set(&mut self, uid: &str, entry: Option<SecretEntry>) {
        self.set_entry(uid, entry.map(Entry::Secret));
    }

    /// Sets (or with `None` removes) the entry of `uid`.
    fn set_entry(&mut self, uid: &str, entry: Option<Entry>) {
        let s = shard_of(uid);
        if self.shards[s].entries.get(uid) == entry.as_ref() {
            return;
        }
        if let Some(old) = self.shards[s].entries.remove(uid) {
            self.unindex(uid, &old);
        }
        // The object's own entry now: one this version could not read is superseded.
        self.shards[s].foreign.remove(uid);
        if let Some(new) = entry {
            self.index(uid, &new);
            self.shards[s].entries.insert(uid.to_owned(), new);
        }
        self.version += 1;
        let version = self.version;
        self.shards[s].touched.insert(uid.to_owned(), version);
    }
}

fn shard_of(uid: &str) -> usize {
    let digest = Sha256::digest(uid.as_bytes());
    usize::from(digest[0]) % SHARDS
}

/// The record, in memory and in its ConfigMaps.
pub struct OwnershipRecord {
    api: Option<Api<ConfigMap>>,
    state: Mutex<State>,
    /// Held by the one persist writing; the earliest time the next may start.
    writer: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

/// A stored shard as this version of the operator reads it.
#[derive(Debug, Default, PartialEq)]
struct Parsed {
    entries: BTreeMap<String, Entry>,
    /// Entries it cannot read, kept verbatim.
    foreign: BTreeMap<String, serde_json::Value>,
    /// Why the shard as a whole cannot be read.
    unreadable: Option<String>,
}

/// Reads a shard entry by entry: one entry this version cannot read (a newer
/// operator's, a hand edit) is kept as it is, not the shard's other entries with it.
/// A shard that is not a JSON object at all is unreadable.
fn parse_shard(name: &str, cm: &ConfigMap) -> Parsed {
    let Some(text) = cm.data.as_ref().and_then(|d| d.get(KEY)) else {
        return Parsed::default();
    };
    // Every entry readable (the usual case): read as such, with no intermediate values.
    if let Ok(entries) = serde_json::from_str::<BTreeMap<String, Entry>>(text) {
        return Parsed {
            entries,
            ..Parsed::default()
        };
    }
    let raw: BTreeMap<String, serde_json::Value> = match serde_json::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            // Never silently, and never overwritten: an unreadable shard means
            // ownership the operator cannot prove, so those secrets become conflicts,
            // never deletions, until a person repairs or removes the ConfigMap.
            warn!(configmap = name, error = %e, "unreadable ownership record shard; its entries are ignored and it is not written");
            return Parsed {
                unreadable: Some(format!(
                    "ConfigMap {name} key {KEY} is not a JSON object: {e}"
                )),
                ..Parsed::default()
            };
        }
    };
    let mut parsed = Parsed::default();
    for (uid, value) in raw {
        match Entry::deserialize(&value) {
            Ok(entry) => {
                parsed.entries.insert(uid, entry);
            }
            Err(e) => {
                warn!(configmap = name, uid = %uid, error = %e, "unreadable ownership record entry; kept as stored, its object is treated as owning nothing");
                parsed.foreign.insert(uid, value);
            }
        }
    }
    parsed
}

/// The text a shard is stored as: its entries and, unchanged, those it could not read.
fn shard_text(shard: &Shard) -> Result<String, String> {
    if shard.foreign.is_empty() {
        return serde_json::to_string(&shard.entries).map_err(|e| e.to_string());
    }
    let mut all = shard.foreign.clone();
    for (uid, entry) in &shard.entries {
        all.insert(
            uid.clone(),
            serde_json::to_value(entry).map_err(|e| e.to_string())?,
        );
    }
    serde_json::to_string(&all).map_err(|e| e.to_string())
}

impl OwnershipRecord {
    /// Loads the record from its ConfigMaps in `namespace` (an absent shard is empty).
    pub async fn load(client: kube::Client, namespace: &str) -> Result<Self, kube::Error> {
        let api: Api<ConfigMap> = Api::namespaced(client, namespace);
        let mut state = State::new();
        for i in 0..SHARDS {
            let name = shard_name(i);
            if let Some(cm) = api.get_opt(&name).await? {
                let parsed = parse_shard(&name, &cm);
                for (uid, entry) in &parsed.entries {
                    state.index(uid, entry);
                }
                state.shards[i].entries = parsed.entries;
                state.shards[i].foreign = parsed.foreign;
                state.shards[i].unreadable = parsed.unreadable;
                state.shards[i].resource_version = cm.metadata.resource_version.clone();
            }
        }
        Ok(Self {
            api: Some(api),
            state: Mutex::new(state),
            writer: tokio::sync::Mutex::new(None),
        })
    }

    /// The record as its ConfigMaps hold it now, kept in memory only: what a plan
    /// reads. Nothing it is told is ever written back.
    pub async fn load_read_only(
        client: kube::Client,
        namespace: &str,
    ) -> Result<Self, kube::Error> {
        let mut record = Self::load(client, namespace).await?;
        record.api = None;
        Ok(record)
    }

    /// A record kept in memory only (tests, tools).
    pub fn in_memory() -> Self {
        Self {
            api: None,
            state: Mutex::new(State::new()),
            writer: tokio::sync::Mutex::new(None),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entry of the object `uid`.
    pub fn entry(&self, uid: &str) -> Option<SecretEntry> {
        self.state().get(uid).cloned()
    }

    /// The object that owns secret `uri` (`secret:<xid>`) in `model`, if any.
    pub fn owner_of(&self, model: &str, uri: &str) -> Option<String> {
        self.state()
            .owners
            .get(&(model.to_owned(), uri.to_owned()))
            .cloned()
    }

    /// Claims `name` in `model` for the object `uid`, which is about to create a secret
    /// whose content has the keyed MAC `mac`. Replaces the object's earlier entry.
    pub fn claim(&self, uid: &str, model: &str, name: &str, mac: &str) -> Result<(), RecordError> {
        self.claim_marked(uid, model, name, mac, None)
    }

    /// [`claim`](Self::claim), for an object that does not carry the operator's finalizer
    /// yet when `unfinalized` is given (the mark is part of the claim: one change).
    pub fn claim_marked(
        &self,
        uid: &str,
        model: &str,
        name: &str,
        mac: &str,
        unfinalized: Option<Unfinalized>,
    ) -> Result<(), RecordError> {
        let mut state = self.state();
        let key = (model.to_owned(), name.to_owned());
        match state.claims.get(&key) {
            Some(holder) if holder != uid => return Err(RecordError::Held),
            Some(_) => {}
            None if state.claims.len() >= MAX_CLAIMS => return Err(RecordError::Full),
            None => {}
        }
        state.set(
            uid,
            Some(SecretEntry {
                model: model.to_owned(),
                name: name.to_owned(),
                uri: None,
                mac: Some(mac.to_owned()),
                revision: None,
                auto_prune: None,
                unfinalized,
            }),
        );
        Ok(())
    }

    /// Drops the object's claim: Juju definitely refused the create it covered. An owned
    /// entry is left alone.
    pub fn release_claim(&self, uid: &str) {
        let mut state = self.state();
        if state.get(uid).is_some_and(SecretEntry::is_claim) {
            state.set(uid, None);
        }
    }

    /// Records that the object `uid` owns secret `uri` in `model` (its create was
    /// answered, or a claimed secret was recognized). Refused if another object owns it.
    pub fn confirm(
        &self,
        uid: &str,
        model: &str,
        name: &str,
        uri: &str,
    ) -> Result<(), RecordError> {
        let mut state = self.state();
        if let Some(owner) = state.owners.get(&(model.to_owned(), uri.to_owned()))
            && owner != uid
        {
            return Err(RecordError::OwnedByAnother);
        }
        let same = state
            .get(uid)
            .filter(|e| e.uri.as_deref() == Some(uri))
            .cloned();
        // The confirmed create of a claim made before the object's finalizer keeps
        // the mark until the finalizer is there.
        let unfinalized = state.get(uid).and_then(|e| e.unfinalized.clone());
        state.set(
            uid,
            Some(SecretEntry {
                model: model.to_owned(),
                name: name.to_owned(),
                uri: Some(uri.to_owned()),
                mac: same.as_ref().and_then(|e| e.mac.clone()),
                revision: same.as_ref().and_then(|e| e.revision),
                auto_prune: same.and_then(|e| e.auto_prune),
                unfinalized,
            }),
        );
        Ok(())
    }

    /// Records that revision `revision` of the object's owned secret has content with the
    /// keyed MAC `mac`.
    pub fn set_content(&self, uid: &str, revision: u64, mac: &str) {
        let mut state = self.state();
        if let Some(mut entry) = state.get(uid).cloned()
            && !entry.is_claim()
            && (entry.revision != Some(revision) || entry.mac.as_deref() != Some(mac))
        {
            entry.revision = Some(revision);
            entry.mac = Some(mac.to_owned());
            state.set(uid, Some(entry));
        }
    }

    /// The keyed MAC of the content of revision `revision` of the object's owned secret,
    /// if the record knows it.
    pub fn content_at(&self, uid: &str, revision: u64) -> Option<String> {
        self.state()
            .get(uid)
            .filter(|e| !e.is_claim() && e.revision == Some(revision))
            .and_then(|e| e.mac.clone())
    }

    /// Records the auto-prune flag applied to the object's owned secret.
    pub fn set_auto_prune(&self, uid: &str, auto_prune: bool) {
        let mut state = self.state();
        if let Some(mut entry) = state.get(uid).cloned()
            && !entry.is_claim()
            && entry.auto_prune != Some(auto_prune)
        {
            entry.auto_prune = Some(auto_prune);
            state.set(uid, Some(entry));
        }
    }

    /// The applications the operator granted for the grant object `uid`, and where.
    pub fn grant_entry(&self, uid: &str) -> Option<GrantEntry> {
        self.state().grant(uid).cloned()
    }

    /// The applications the operator granted on secret `uri` in `model` for grant
    /// objects other than `except`.
    pub fn granted_by_others(
        &self,
        model: &str,
        uri: &str,
        except: &str,
    ) -> std::collections::BTreeSet<String> {
        let state = self.state();
        state
            .grants
            .get(&(model.to_owned(), uri.to_owned()))
            .into_iter()
            .flatten()
            .filter(|uid| uid.as_str() != except)
            .filter_map(|uid| state.grant(uid))
            .flat_map(|g| g.applications.iter().cloned())
            .collect()
    }

    /// The grant objects with a record on secret `uri` in `model`.
    pub fn grant_objects_on(&self, model: &str, uri: &str) -> std::collections::BTreeSet<String> {
        self.state()
            .grants
            .get(&(model.to_owned(), uri.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// Records the applications granted for the grant object `uid` on `uri` in `model`
    /// (an empty set removes the entry).
    pub fn record_grants(
        &self,
        uid: &str,
        model: &str,
        uri: &str,
        applications: std::collections::BTreeSet<String>,
    ) {
        let mut state = self.state();
        let configured = state
            .grant(uid)
            .map(|g| g.configured.clone())
            .unwrap_or_default();
        let entry = (!applications.is_empty() || !configured.is_empty()).then(|| {
            Entry::Grant(GrantEntry {
                model: model.to_owned(),
                uri: uri.to_owned(),
                applications,
                configured,
            })
        });
        state.set_entry(uid, entry);
    }

    /// Adds `app`, granted by the operator on `uri` in `model`, to grant object `to`'s
    /// entry: another object that lists it takes it over from one that no longer does,
    /// so the grant stays the operator's and goes once no object lists it. False when
    /// `to`'s entry is on another secret (its pass has not followed its spec yet).
    pub fn hand_over_grant(&self, to: &str, model: &str, uri: &str, app: &str) -> bool {
        let mut state = self.state();
        let entry = match state.grant(to) {
            Some(g) if g.model != model || g.uri != uri => return false,
            Some(g) => {
                let mut g = g.clone();
                g.applications.insert(app.to_owned());
                g
            }
            None => GrantEntry {
                model: model.to_owned(),
                uri: uri.to_owned(),
                applications: [app.to_owned()].into(),
                configured: BTreeMap::new(),
            },
        };
        state.set_entry(to, Some(Entry::Grant(entry)));
        true
    }

    /// The grant object other than `except` whose record lists config option `option` of
    /// application `app` in `model`, if any (one object wires an option at a time). A
    /// scan of the grant entries: wired options are few.
    pub fn option_wired_by(
        &self,
        model: &str,
        app: &str,
        option: &str,
        except: &str,
    ) -> Option<String> {
        let state = self.state();
        state.shards.iter().find_map(|shard| {
            shard.entries.iter().find_map(|(uid, entry)| match entry {
                Entry::Grant(g)
                    if uid != except
                        && g.model == model
                        && g.configured
                            .get(app)
                            .is_some_and(|o| o.contains_key(option)) =>
                {
                    Some(uid.clone())
                }
                _ => None,
            })
        })
    }

    /// Replaces the config options recorded as set for grant object `uid` (its secret
    /// and granted applications stay as recorded; `model` and `uri` are used when the
    /// object has no entry yet).
    pub fn record_configured(
        &self,
        uid: &str,
        model: &str,
        uri: &str,
        configured: BTreeMap<String, BTreeMap<String, Wired>>,
    ) {
        let mut state = self.state();
        let (model, uri, applications) = match state.grant(uid) {
            Some(g) => (g.model.clone(), g.uri.clone(), g.applications.clone()),
            None => (model.to_owned(), uri.to_owned(), BTreeSet::new()),
        };
        let entry = (!applications.is_empty() || !configured.is_empty()).then_some(Entry::Grant(
            GrantEntry {
                model,
                uri,
                applications,
                configured,
            },
        ));
        state.set_entry(uid, entry);
    }

    /// The record of the JujuSecretBackend `uid`.
    pub fn backend_entry(&self, uid: &str) -> Option<BackendEntry> {
        self.state().backend(uid).cloned()
    }

    /// The JujuSecretBackend that owns the backend with ID `id`, if any.
    pub fn owner_of_backend(&self, id: &str) -> Option<String> {
        self.state().backends.get(id).cloned()
    }

    /// Claims the backend name `name` for the JujuSecretBackend `uid`, which is about to
    /// add a backend whose type and plain configuration have the keyed MAC `mac`. The
    /// models already recorded for the object stay recorded.
    pub fn claim_backend(&self, uid: &str, name: &str, mac: &str) -> Result<(), RecordError> {
        let mut state = self.state();
        if state
            .backend_claims
            .get(name)
            .is_some_and(|holder| holder != uid)
        {
            return Err(RecordError::Held);
        }
        let old = state.backend(uid).cloned().unwrap_or_default();
        let entry = BackendEntry {
            name: name.to_owned(),
            id: None,
            adding: Some(mac.to_owned()),
            config_mac: None,
            models: old.models,
        };
        state.set_entry(uid, Some(Entry::Backend(entry)));
        Ok(())
    }

    /// Drops the object's backend claim: Juju definitely refused the add it covered.
    pub fn release_backend_claim(&self, uid: &str) {
        let mut state = self.state();
        if let Some(mut entry) = state.backend(uid).filter(|e| e.is_claim()).cloned() {
            entry.adding = None;
            let keep = entry.id.is_some() || !entry.models.is_empty();
            state.set_entry(uid, keep.then_some(Entry::Backend(entry)));
        }
    }

    /// Records that the JujuSecretBackend `uid` owns the backend `id`, now named `name`
    /// (its add was answered, a claimed backend was recognized, or it was adopted).
    /// Refused if another object owns it.
    pub fn confirm_backend(&self, uid: &str, id: &str, name: &str) -> Result<(), RecordError> {
        let mut state = self.state();
        if state.backends.get(id).is_some_and(|owner| owner != uid) {
            return Err(RecordError::OwnedByAnother);
        }
        let old = state.backend(uid).cloned().unwrap_or_default();
        let same = old.id.as_deref() == Some(id);
        let entry = BackendEntry {
            name: name.to_owned(),
            id: Some(id.to_owned()),
            adding: None,
            config_mac: if same { old.config_mac } else { None },
            models: old.models,
        };
        state.set_entry(uid, Some(Entry::Backend(entry)));
        Ok(())
    }

    /// Records the keyed MAC of the configuration last written to the object's backend.
    pub fn set_backend_config(&self, uid: &str, mac: &str) {
        let mut state = self.state();
        if let Some(mut entry) = state.backend(uid).cloned()
            && entry.config_mac.as_deref() != Some(mac)
        {
            entry.config_mac = Some(mac.to_owned());
            state.set_entry(uid, Some(Entry::Backend(entry)));
        }
    }

    /// Records, before the model config write, that the JujuSecretBackend `uid` points
    /// model `model` at its backend. Refused if another object recorded that model.
    pub fn assign_model(&self, uid: &str, model: &str) -> Result<(), RecordError> {
        let mut state = self.state();
        if state
            .model_backends
            .get(model)
            .is_some_and(|owner| owner != uid)
        {
            return Err(RecordError::OwnedByAnother);
        }
        let Some(mut entry) = state.backend(uid).cloned() else {
            return Err(RecordError::Held);
        };
        if entry.models.insert(model.to_owned()) {
            state.set_entry(uid, Some(Entry::Backend(entry)));
        }
        Ok(())
    }

    /// Whether another JujuSecretBackend than `uid` recorded model `model`.
    pub fn model_assigned_by_another(&self, uid: &str, model: &str) -> bool {
        self.state()
            .model_backends
            .get(model)
            .is_some_and(|owner| owner != uid)
    }

    /// Records that the object's backend no longer has model `model` pointed at it.
    pub fn release_model(&self, uid: &str, model: &str) {
        let mut state = self.state();
        if let Some(mut entry) = state.backend(uid).cloned()
            && entry.models.remove(model)
        {
            state.set_entry(uid, Some(Entry::Backend(entry)));
        }
    }

    /// Forgets the object's entry (its secret was removed, retained or left behind).
    pub fn forget(&self, uid: &str) {
        self.state().set_entry(uid, None);
    }

    /// Sets the deletion policy an unfinalized entry's mark records; true when it
    /// changed (the caller makes it durable).
    pub fn remark(&self, uid: &str, retain: bool) -> bool {
        let mut state = self.state();
        let Some(mut entry) = state.get(uid).cloned() else {
            return false;
        };
        match &mut entry.unfinalized {
            Some(mark) if mark.retain != retain => mark.retain = retain,
            _ => return false,
        }
        state.set(uid, Some(entry));
        true
    }

    /// The object now carries the operator's finalizer: its entry's mark goes.
    pub fn finalized(&self, uid: &str) {
        let mut state = self.state();
        if let Some(mut entry) = state.get(uid).cloned()
            && entry.unfinalized.is_some()
        {
            entry.unfinalized = None;
            state.set(uid, Some(entry));
        }
    }

    /// The entries marked as made before their object's finalizer, by UID.
    pub fn unfinalized(&self) -> Vec<(String, SecretEntry)> {
        let state = self.state();
        state
            .shards
            .iter()
            .flat_map(|s| s.entries.iter())
            .filter_map(|(uid, e)| match e {
                Entry::Secret(e) if e.unfinalized.is_some() => Some((uid.clone(), e.clone())),
                _ => None,
            })
            .collect()
    }

    /// Number of claims held.
    pub fn claims(&self) -> usize {
        self.state().claims.len()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.state().shards.iter().map(|s| s.entries.len()).sum()
    }

    /// Whether the record is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes every change made so far durable: returns once the ConfigMaps hold them
    /// (one write per touched shard covers every caller waiting meanwhile).
    ///
    /// The record's writes are paced to [`WRITE_RATE`]: after a persist that wrote B
    /// bytes, the next one starts B / `WRITE_RATE` later at the earliest, and covers
    /// every change made meanwhile. A shard is rewritten whole, so without the pace a
    /// burst of creates would rewrite the whole record for every few of them (bytes
    /// growing with the square of the objects, all of it kept in etcd's history until
    /// compaction).
    pub async fn persist(&self) -> Result<(), String> {
        let wanted = self.state().version;
        let mut writer = self.writer.lock().await;
        if self.state().persisted >= wanted {
            return Ok(());
        }
        if let Some(at) = *writer {
            tokio::time::sleep_until(at).await;
        }
        let (dirty, version) = {
            // `persisted` moves only under the writer lock, held since the check above.
            let mut state = self.state();
            let dirty: Vec<usize> = (0..SHARDS)
                .filter(|&i| !state.shards[i].touched.is_empty())
                .collect();
            if self.api.is_none() {
                for &i in &dirty {
                    state.shards[i].touched.clear();
                }
                state.persisted = state.version;
                return Ok(());
            }
            (dirty, state.version)
        };
        let writes = dirty.into_iter().map(|i| self.write_shard(i));
        let mut written = 0;
        for result in futures::future::join_all(writes).await {
            written += result?;
        }
        *writer = Some(tokio::time::Instant::now() + pause_after(written));
        let mut state = self.state();
        state.persisted = state.persisted.max(version);
        Ok(())
    }

    /// Writes shard `i`; on a conflict, merges what is stored and tries again. Returns
    /// the bytes written.
    async fn write_shard(&self, i: usize) -> Result<usize, String> {
        let Some(api) = &self.api else {
            return Ok(0);
        };
        let name = shard_name(i);
        let mut written = 0;
        for _attempt in 0..5 {
            // A shard that could not be read is read again (a person may have repaired
            // or removed it); while it still cannot be, it is not overwritten.
            if self.state().shards[i].unreadable.is_some() {
                let stored = api
                    .get_opt(&name)
                    .await
                    .map_err(|e| format!("cannot read ConfigMap {name}: {e}"))?;
                self.merge(i, stored.as_ref());
                if let Some(why) = &self.state().shards[i].unreadable {
                    return Err(format!(
                        "the ownership record cannot be written: {why}; the operator does not overwrite what it cannot read: repair or remove that ConfigMap"
                    ));
                }
            }
            let (text, resource_version, version) = {
                let state = self.state();
                let shard = &state.shards[i];
                (
                    shard_text(shard)?,
                    shard.resource_version.clone(),
                    state.version,
                )
            };
            written += text.len();
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    resource_version: resource_version.clone(),
                    labels: Some(BTreeMap::from([(
                        "app.kubernetes.io/managed-by".to_owned(),
                        super::FIELD_MANAGER.to_owned(),
                    )])),
                    ..ObjectMeta::default()
                },
                data: Some(BTreeMap::from([(KEY.to_owned(), text)])),
                ..ConfigMap::default()
            };
            let params = PostParams {
                field_manager: Some(super::FIELD_MANAGER.to_owned()),
                ..PostParams::default()
            };
            let result = match resource_version {
                Some(_) => api.replace(&name, &params, &cm).await,
                None => api.create(&params, &cm).await,
            };
            match result {
                Ok(stored) => {
                    let mut state = self.state();
                    let shard = &mut state.shards[i];
                    shard.resource_version = stored.metadata.resource_version;
                    // Changes made while the write was in flight stay touched.
                    shard.touched.retain(|_, at| *at > version);
                    return Ok(written);
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    // Another process wrote this shard since it was read: merge.
                    let stored = api
                        .get_opt(&name)
                        .await
                        .map_err(|e| format!("cannot read ConfigMap {name}: {e}"))?;
                    self.merge(i, stored.as_ref());
                }
                Err(e) => {
                    return Err(format!(
                        "cannot write the ownership record (ConfigMap {name}): {e}"
                    ));
                }
            }
        }
        Err(format!(
            "cannot write the ownership record (ConfigMap {name}): it kept changing under this process"
        ))
    }

    /// Takes the stored shard as the base and keeps this process's own changes on top.
    fn merge(&self, i: usize, stored: Option<&ConfigMap>) {
        let mut state = self.state();
        let Parsed {
            entries: stored_entries,
            foreign,
            unreadable,
        } = stored
            .map(|cm| parse_shard(&shard_name(i), cm))
            .unwrap_or_default();
        if unreadable.is_some() {
            // What this process knows of the shard stays, in memory only, until the
            // stored one can be read again.
            state.shards[i].unreadable = unreadable;
            return;
        }
        let touched = state.shards[i].touched.clone();
        let mine: BTreeMap<String, Option<Entry>> = touched
            .keys()
            .map(|uid| (uid.clone(), state.shards[i].entries.get(uid).cloned()))
            .collect();
        let old: Vec<(String, Entry)> = std::mem::take(&mut state.shards[i].entries)
            .into_iter()
            .collect();
        for (uid, entry) in &old {
            state.unindex(uid, entry);
        }
        let mut merged = stored_entries;
        for (uid, entry) in mine {
            match entry {
                Some(e) => {
                    merged.insert(uid, e);
                }
                None => {
                    merged.remove(&uid);
                }
            }
        }
        for (uid, entry) in &merged {
            state.index(uid, entry);
        }
        let shard = &mut state.shards[i];
        shard.foreign = foreign
            .into_iter()
            .filter(|(uid, _)| !shard.touched.contains_key(uid))
            .collect();
        shard.unreadable = None;
        shard.entries = merged;
        shard.resource_version = stored.and_then(|cm| cm.metadata.resource_version.clone());
    }
}

/// What the pass found in Juju for the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// Nothing by the recorded URI nor by the name looked for.
    Nothing,
    /// The secret the record says the object owns, found by its URI.
    ByRecordedUri,
    /// A secret with the name looked for (the claimed name while a claim is held, else
    /// the spec's name).
    ByName {
        /// Its latest revision.
        latest_revision: u64,
        /// Keyed MAC of its content (from Juju's checksum where sent, else read back);
        /// `None` when neither is known.
        content_mac: Option<String>,
        /// Whether another object owns it according to the record.
        owned_by_another: bool,
    },
}

/// The facts one ownership decision rests on. None of them comes from a status.
#[derive(Clone, Debug)]
pub struct Facts<'a> {
    /// The object's entry in the record.
    pub entry: Option<&'a SecretEntry>,
    /// What Juju holds.
    pub found: Found,
    /// `spec.adopt`.
    pub adopt: bool,
    /// `spec.managementPolicy: ObserveOnly`.
    pub observe_only: bool,
    /// Whether the tenancy policy lets the object's namespace use the model.
    pub allowed: bool,
}

/// Who the found secret belongs to, and so what the operator may do with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// The tenancy policy forbids the model: no call at all.
    Forbidden,
    /// Nothing found: create (unless observing only).
    Absent,
    /// The object's own secret, recorded as owned.
    Owned,
    /// The secret the object's claim was creating (first revision, claimed content):
    /// confirm it in the record, then treat it as owned.
    Recovered,
    /// Not owned by anyone; `adopt` takes it over: record it, then treat it as owned.
    Adopt,
    /// Observed only, never written.
    Observed,
    /// Owned by another object: never written, never removed.
    ConflictOwnedByAnother,
    /// Not created by this object and not adopted: never written, never removed.
    ConflictNotOurs,
}

impl Ownership {
    /// Whether the operator may write to (or, in cleanup, remove) the found secret.
    pub fn may_write(&self) -> bool {
        matches!(
            self,
            Ownership::Owned | Ownership::Recovered | Ownership::Adopt
        )
    }
}

/// The one ownership rule, for the reconcile and the cleanup alike (cleanup passes
/// `adopt: false, observe_only: false`).
pub fn decide(facts: &Facts<'_>) -> Ownership {
    if !facts.allowed {
        return Ownership::Forbidden;
    }
    match &facts.found {
        Found::Nothing => Ownership::Absent,
        Found::ByRecordedUri if facts.observe_only => Ownership::Observed,
        Found::ByRecordedUri => {
            if facts.entry.is_some_and(|e| !e.is_claim()) {
                Ownership::Owned
            } else {
                // Not a state a pass can reach: a URI comes from an owned entry.
                Ownership::ConflictNotOurs
            }
        }
        Found::ByName {
            latest_revision,
            content_mac,
            owned_by_another,
        } => {
            if facts.observe_only {
                return Ownership::Observed;
            }
            if *owned_by_another {
                return Ownership::ConflictOwnedByAnother;
            }
            let claimed_mac = facts
                .entry
                .filter(|e| e.is_claim())
                .and_then(|e| e.mac.as_deref());
            let created_here = *latest_revision == 1
                && claimed_mac.is_some()
                && content_mac.as_deref() == claimed_mac;
            if created_here {
                Ownership::Recovered
            } else if facts.adopt {
                Ownership::Adopt
            } else {
                Ownership::ConflictNotOurs
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn claim(mac: &str) -> SecretEntry {
        SecretEntry {
            model: "m".into(),
            name: "db".into(),
            uri: None,
            mac: Some(mac.into()),
            revision: None,
            auto_prune: None,
            unfinalized: None,
        }
    }

    fn owned() -> SecretEntry {
        SecretEntry {
            model: "m".into(),
            name: "db".into(),
            uri: Some("secret:a".into()),
            mac: None,
            revision: None,
            auto_prune: None,
            unfinalized: None,
        }
    }

    #[derive(Clone, Copy, Debug)]
    enum Rec {
        Owned,
        Claimed,
        Neither,
    }

    #[derive(Clone, Copy, Debug)]
    enum Where {
        ByUri,
        ByName,
        NotFound,
    }

    #[derive(Clone, Copy, Debug)]
    enum Sum {
        Equal,
        Different,
        Absent,
    }

    /// Every combination of record × where found × content × revision × adopt ×
    /// observe × other owner × policy, against the rule written out case by case.
    #[test]
    fn the_rule_over_every_combination() {
        let recs = [Rec::Owned, Rec::Claimed, Rec::Neither];
        let wheres = [Where::ByUri, Where::ByName, Where::NotFound];
        let sums = [Sum::Equal, Sum::Different, Sum::Absent];
        let mut cases = 0;
        for rec in recs {
            for wh in wheres {
                for sum in sums {
                    for revision in [1_u64, 2] {
                        for adopt in [false, true] {
                            for observe_only in [false, true] {
                                for owned_by_another in [false, true] {
                                    for allowed in [false, true] {
                                        cases += 1;
                                        let entry = match rec {
                                            Rec::Owned => Some(owned()),
                                            Rec::Claimed => Some(claim("mac-ours")),
                                            Rec::Neither => None,
                                        };
                                        // A URI lookup needs an owned entry.
                                        let found = match (wh, rec) {
                                            (Where::ByUri, Rec::Owned) => Found::ByRecordedUri,
                                            (Where::ByUri, _) | (Where::NotFound, _) => {
                                                Found::Nothing
                                            }
                                            (Where::ByName, _) => Found::ByName {
                                                latest_revision: revision,
                                                content_mac: match sum {
                                                    Sum::Equal => Some("mac-ours".into()),
                                                    Sum::Different => Some("mac-theirs".into()),
                                                    Sum::Absent => None,
                                                },
                                                owned_by_another,
                                            },
                                        };
                                        let facts = Facts {
                                            entry: entry.as_ref(),
                                            found: found.clone(),
                                            adopt,
                                            observe_only,
                                            allowed,
                                        };
                                        let got = decide(&facts);
                                        let want = if !allowed {
                                            Ownership::Forbidden
                                        } else {
                                            match found {
                                                Found::Nothing => Ownership::Absent,
                                                Found::ByRecordedUri if observe_only => {
                                                    Ownership::Observed
                                                }
                                                Found::ByRecordedUri => Ownership::Owned,
                                                Found::ByName { .. } if observe_only => {
                                                    Ownership::Observed
                                                }
                                                Found::ByName { .. } if owned_by_another => {
                                                    Ownership::ConflictOwnedByAnother
                                                }
                                                Found::ByName { .. }
                                                    if matches!(rec, Rec::Claimed)
                                                        && revision == 1
                                                        && matches!(sum, Sum::Equal) =>
                                                {
                                                    Ownership::Recovered
                                                }
                                                Found::ByName { .. } if adopt => Ownership::Adopt,
                                                Found::ByName { .. } => Ownership::ConflictNotOurs,
                                            }
                                        };
                                        assert_eq!(
                                            got, want,
                                            "{rec:?} {wh:?} {sum:?} rev {revision} adopt {adopt} observe {observe_only} other {owned_by_another} allowed {allowed}"
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 3 * 3 * 3 * 2 * 2 * 2 * 2 * 2);
    }

    /// The promises that matter most, stated plainly.
    #[test]
    fn a_persons_secret_is_never_writable_without_adopt() {
        for content_mac in [None, Some("mac-theirs".to_owned()), Some("mac-ours".into())] {
            for entry in [None, Some(owned())] {
                let facts = Facts {
                    entry: entry.as_ref(),
                    found: Found::ByName {
                        latest_revision: 1,
                        content_mac: content_mac.clone(),
                        owned_by_another: false,
                    },
                    adopt: false,
                    observe_only: false,
                    allowed: true,
                };
                assert!(!decide(&facts).may_write(), "{facts:?}");
            }
        }
        // A claim with no checksum and no content read back proves nothing.
        let c = claim("mac-ours");
        let facts = Facts {
            entry: Some(&c),
            found: Found::ByName {
                latest_revision: 1,
                content_mac: None,
                owned_by_another: false,
            },
            adopt: false,
            observe_only: false,
            allowed: true,
        };
        assert_eq!(decide(&facts), Ownership::ConflictNotOurs);
        // adopt never takes a secret another object owns.
        let facts = Facts {
            entry: None,
            found: Found::ByName {
                latest_revision: 3,
                content_mac: None,
                owned_by_another: true,
            },
            adopt: true,
            observe_only: false,
            allowed: true,
        };
        assert_eq!(decide(&facts), Ownership::ConflictOwnedByAnother);
    }

    #[test]
    fn a_name_is_claimed_by_one_object_at_a_time_and_refusals_release_it() {
        let record = OwnershipRecord::in_memory();
        assert_eq!(record.claim("uid-a", "m", "db", "h1"), Ok(()));
        assert_eq!(
            record.claim("uid-b", "m", "db", "h2"),
            Err(RecordError::Held)
        );
        // The same name in another model is another secret.
        assert_eq!(record.claim("uid-b", "m2", "db", "h2"), Ok(()));
        // A refused create releases the claim; the name is free again.
        record.release_claim("uid-a");
        assert_eq!(record.entry("uid-a"), None);
        assert_eq!(record.claim("uid-c", "m", "db", "h3"), Ok(()));
        // Confirming turns the claim into ownership and frees the name.
        record.confirm("uid-c", "m", "db", "secret:x").unwrap();
        assert_eq!(record.owner_of("m", "secret:x").as_deref(), Some("uid-c"));
        assert_eq!(record.claim("uid-d", "m", "db", "h4"), Ok(()));
        // Releasing a claim never drops ownership.
        record.release_claim("uid-c");
        assert_eq!(record.owner_of("m", "secret:x").as_deref(), Some("uid-c"));
        // Nobody else can take an owned secret.
        assert_eq!(
            record.confirm("uid-e", "m", "db", "secret:x"),
            Err(RecordError::OwnedByAnother)
        );
        record.forget("uid-c");
        assert_eq!(record.owner_of("m", "secret:x"), None);
    }

    #[test]
    fn claims_are_bounded() {
        let record = OwnershipRecord::in_memory();
        for i in 0..MAX_CLAIMS {
            assert_eq!(
                record.claim(&format!("u{i}"), "m", &format!("s{i}"), "h"),
                Ok(())
            );
        }
        assert_eq!(
            record.claim("u-more", "m", "one-more", "h"),
            Err(RecordError::Full)
        );
        record.release_claim("u0");
        assert_eq!(record.claim("u-more", "m", "one-more", "h"), Ok(()));
    }

    fn stored(text: &str) -> ConfigMap {
        ConfigMap {
            data: Some(BTreeMap::from([(KEY.to_owned(), text.to_owned())])),
            ..ConfigMap::default()
        }
    }

    /// An entry this version cannot read costs nothing else in its shard, and is
    /// written back as it was stored.
    #[test]
    fn an_unreadable_entry_is_kept_verbatim_and_the_rest_of_its_shard_read() {
        let record = OwnershipRecord::in_memory();
        record.record_grants("g1", "m", "secret:a", ["mysql".to_owned()].into());
        let text = {
            let state = record.state();
            shard_text(&state.shards[shard_of("g1")]).unwrap()
        };
        let mut raw: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
        let newer = serde_json::json!({"kind": "from-a-newer-operator", "x": [1, 2]});
        raw.insert("u-newer".to_owned(), newer.clone());
        let parsed = parse_shard("shard", &stored(&serde_json::to_string(&raw).unwrap()));
        assert_eq!(parsed.unreadable, None);
        assert_eq!(parsed.entries.len(), 1, "the readable entry is read");
        assert_eq!(parsed.foreign.get("u-newer"), Some(&newer));

        let shard = Shard {
            entries: parsed.entries,
            foreign: parsed.foreign,
            ..Shard::default()
        };
        let back: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(&shard_text(&shard).unwrap()).unwrap();
        assert_eq!(
            back, raw,
            "written back with the unreadable entry unchanged"
        );

        // The object's own new entry supersedes the one that could not be read.
        let record = OwnershipRecord::in_memory();
        let s = shard_of("u-newer");
        record.state().shards[s]
            .foreign
            .insert("u-newer".to_owned(), newer);
        record.record_grants("u-newer", "m", "secret:b", ["mysql".to_owned()].into());
        assert!(record.state().shards[s].foreign.is_empty());
    }

    #[test]
    fn a_shard_that_is_not_json_is_unreadable_not_empty() {
        let parsed = parse_shard("juju-secrets-operator-ownership-07", &stored("{not json"));
        assert!(parsed.entries.is_empty());
        let why = parsed.unreadable.unwrap();
        assert!(why.contains("juju-secrets-operator-ownership-07"), "{why}");
    }

    #[test]
    fn grants_are_recorded_per_grant_object_and_read_as_a_union() {
        let record = OwnershipRecord::in_memory();
        let apps = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect();
        record.record_grants("g1", "m", "secret:a", apps(&["mysql"]));
        record.record_grants("g2", "m", "secret:a", apps(&["mysql", "wordpress"]));
        assert_eq!(
            record.granted_by_others("m", "secret:a", "g1"),
            apps(&["mysql", "wordpress"])
        );
        assert_eq!(
            record.granted_by_others("m", "secret:a", "g2"),
            apps(&["mysql"])
        );
        record.record_grants("g2", "m", "secret:b", apps(&["wordpress"]));
        assert_eq!(record.granted_by_others("m", "secret:a", "g1"), apps(&[]));
        assert_eq!(record.grant_objects_on("m", "secret:b").len(), 1);
        // A grant entry and a secret entry survive the ConfigMap's JSON as what they are.
        record.confirm("s1", "m", "db", "secret:c").unwrap();
        let state = record.state();
        for shard in &state.shards {
            let text = serde_json::to_string(&shard.entries).unwrap();
            let back: BTreeMap<String, Entry> = serde_json::from_str(&text).unwrap();
            assert_eq!(back, shard.entries);
        }
        drop(state);
        record.record_grants("g2", "m", "secret:b", apps(&[]));
        assert_eq!(record.grant_entry("g2"), None);
    }

    /// 100,000 owned entries stay far below the apiserver's object size limit per shard.
    #[test]
    fn a_hundred_thousand_entries_fit_the_shards() {
        let mut state = State::new();
        for i in 0..100_000 {
            let uid = format!("{:08x}-1b2c-4d5e-8f90-{:012x}", i, i * 7919);
            state.set(
                &uid,
                Some(SecretEntry {
                    model: "5f2a9e1c-0b7d-4c3e-9a8f-6d1e2b3c4d5e".into(),
                    name: format!("a-secret-name-of-some-length-{i}"),
                    uri: Some("secret:d4sj2rjq4b3c7a9gvbtg".into()),
                    mac: Some(format!("hmac-sha256:{}", "ab".repeat(32))),
                    revision: Some(12),
                    auto_prune: Some(true),
                    unfinalized: None,
                }),
            );
        }
        let largest = state
            .shards
            .iter()
            .map(|s| serde_json::to_string(&s.entries).unwrap().len())
            .max()
            .unwrap();
        assert!(largest < 1024 * 1024, "largest shard: {largest} bytes");
    }

    /// The pause after a persist grows with the bytes it wrote (the record's write
    /// rate), and is bounded, so a huge record still persists within seconds.
    #[test]
    fn persists_are_paced_by_the_bytes_written() {
        use std::time::Duration;
        assert_eq!(pause_after(0), Duration::ZERO);
        assert_eq!(pause_after(WRITE_RATE), Duration::from_secs(1));
        assert_eq!(pause_after(WRITE_RATE / 4), Duration::from_millis(250));
        // 32 shards of ~75 KiB (10,000 entries): about 1.2 s.
        let whole_record = 32 * 75 * 1024;
        assert!(pause_after(whole_record) > Duration::from_secs(1));
        assert!(pause_after(whole_record) < Duration::from_secs(2));
        assert_eq!(pause_after(usize::MAX), MAX_PAUSE);
    }

    /// A conflict merges: the stored entries of other objects are kept, this
    /// process's own changes win.
    #[test]
    fn a_merge_keeps_both_writers_entries() {
        let record = OwnershipRecord::in_memory();
        record.confirm("mine", "m", "a", "secret:a").unwrap();
        let i = shard_of("mine");
        // Another process stored an entry for another object in the same shard.
        let other_uid = (0..)
            .map(|n| format!("other-{n}"))
            .find(|u| shard_of(u) == i)
            .unwrap();
        let stored_entries = BTreeMap::from([(
            other_uid.clone(),
            Entry::Secret(SecretEntry {
                model: "m".into(),
                name: "b".into(),
                uri: Some("secret:b".into()),
                mac: None,
                revision: None,
                auto_prune: None,
                unfinalized: None,
            }),
        )]);
        let cm = ConfigMap {
            metadata: ObjectMeta {
                resource_version: Some("7".into()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                KEY.to_owned(),
                serde_json::to_string(&stored_entries).unwrap(),
            )])),
            ..ConfigMap::default()
        };
        record.merge(i, Some(&cm));
        assert_eq!(record.owner_of("m", "secret:a").as_deref(), Some("mine"));
        assert_eq!(record.owner_of("m", "secret:b"), Some(other_uid));
        assert_eq!(
            record.state().shards[i].resource_version.as_deref(),
            Some("7")
        );
    }

    #[test]
    fn the_three_kinds_of_entry_read_back_as_themselves() {
        let entries = BTreeMap::from([
            ("s".to_owned(), Entry::Secret(claim("hmac-sha256:aa"))),
            (
                "g".to_owned(),
                Entry::Grant(GrantEntry {
                    model: "m".into(),
                    uri: "secret:a".into(),
                    applications: BTreeSet::from(["mysql".to_owned()]),
                    configured: BTreeMap::from([(
                        "mysql".to_owned(),
                        BTreeMap::from([(
                            "root-password".to_owned(),
                            Wired {
                                prior: None,
                                value: "secret:a".into(),
                                old: None,
                                pending: true,
                            },
                        )]),
                    )]),
                }),
            ),
            (
                "b".to_owned(),
                Entry::Backend(BackendEntry {
                    name: "vault-a".into(),
                    id: Some("id-1".into()),
                    adding: None,
                    config_mac: Some("hmac-sha256:bb".into()),
                    models: BTreeSet::from(["m".to_owned()]),
                }),
            ),
            (
                "c".to_owned(),
                Entry::Backend(BackendEntry {
                    name: "vault-b".into(),
                    adding: Some("hmac-sha256:cc".into()),
                    ..BackendEntry::default()
                }),
            ),
        ]);
        let text = serde_json::to_string(&entries).unwrap();
        let back: BTreeMap<String, Entry> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, entries, "{text}");
    }

    #[test]
    fn backends_and_their_models_have_one_owner_each() {
        let record = OwnershipRecord::in_memory();
        record.claim_backend("b1", "vault", "mac-1").unwrap();
        assert_eq!(
            record.claim_backend("b2", "vault", "mac-2"),
            Err(RecordError::Held),
            "a second add of the same name while the first is in flight"
        );
        record.confirm_backend("b1", "id-1", "vault").unwrap();
        assert_eq!(record.owner_of_backend("id-1").as_deref(), Some("b1"));
        assert_eq!(
            record.confirm_backend("b2", "id-1", "vault"),
            Err(RecordError::OwnedByAnother),
            "adopting a backend another object owns"
        );
        record.claim_backend("b2", "vault", "mac-2").unwrap();

        record.assign_model("b1", "model-a").unwrap();
        assert!(record.model_assigned_by_another("b2", "model-a"));
        assert_eq!(
            record.assign_model("b2", "model-a"),
            Err(RecordError::OwnedByAnother)
        );
        record.release_model("b1", "model-a");
        assert!(!record.model_assigned_by_another("b2", "model-a"));
        record.assign_model("b1", "model-a").unwrap();

        // A refused add keeps what else the entry records; a renamed backend keeps its
        // models and configuration MAC.
        record.assign_model("b2", "model-b").unwrap();
        record.release_backend_claim("b2");
        let b2 = record.backend_entry("b2").unwrap();
        assert!(!b2.is_claim() && b2.models.contains("model-b"), "{b2:?}");
        record.set_backend_config("b1", "cfg");
        record
            .confirm_backend("b1", "id-1", "vault-renamed")
            .unwrap();
        let b1 = record.backend_entry("b1").unwrap();
        assert_eq!(
            (b1.name.as_str(), b1.config_mac.as_deref(), b1.models.len()),
            ("vault-renamed", Some("cfg"), 1)
        );
        record.forget("b1");
        assert_eq!(record.owner_of_backend("id-1"), None);
        assert!(!record.model_assigned_by_another("b2", "model-a"));
    }

    #[test]
    fn a_claim_made_before_the_finalizer_stays_marked_until_the_finalizer_is_there() {
        let record = OwnershipRecord::in_memory();
        let mark = Unfinalized {
            namespace: "team".into(),
            name: "db".into(),
            retain: false,
        };
        assert_eq!(
            record.claim_marked("uid-a", "m", "db", "h1", Some(mark.clone())),
            Ok(())
        );
        // Juju answered the create: the entry is owned and still marked.
        assert_eq!(record.confirm("uid-a", "m", "db", "secret:x1"), Ok(()));
        let entry = record.entry("uid-a").unwrap();
        assert_eq!(entry.uri.as_deref(), Some("secret:x1"));
        assert_eq!(entry.unfinalized, Some(mark.clone()));
        assert_eq!(record.unfinalized().len(), 1);
        // The object's deletion policy changed: the mark follows.
        assert!(record.remark("uid-a", true));
        assert!(!record.remark("uid-a", true));
        assert!(record.entry("uid-a").unwrap().unfinalized.unwrap().retain);
        assert!(record.remark("uid-a", false));
        // The finalizer is on the object: the mark goes, the ownership stays.
        record.finalized("uid-a");
        let entry = record.entry("uid-a").unwrap();
        assert_eq!(entry.unfinalized, None);
        assert_eq!(entry.uri.as_deref(), Some("secret:x1"));
        assert!(record.unfinalized().is_empty());
        // An entry of an earlier operator (no mark) reads as unmarked; a mark is stored
        // under short keys, and Retain only when set.
        let old: Entry = serde_json::from_str(r#"{"m":"m","n":"db","u":"secret:x1"}"#).unwrap();
        assert!(matches!(
            old,
            Entry::Secret(SecretEntry {
                unfinalized: None,
                ..
            })
        ));
        let mut marked = entry.clone();
        marked.unfinalized = Some(Unfinalized {
            retain: true,
            ..mark
        });
        let text = serde_json::to_string(&marked).unwrap();
        assert!(
            text.contains(r#""o":{"ns":"team","n":"db","k":true}"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<SecretEntry>(&text).unwrap(), marked);
    }
}
