//! Secrets facade v2 (model connection): user secrets, Juju 3.6.14 behaviour.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::Call;
use crate::faults::Faults;
use crate::ids;
use crate::rpc::{CODE_ALREADY_EXISTS, CODE_NOT_FOUND, Params, RpcError, to_value};
use crate::state::{ModelAccess, ModelRecord, RevisionRecord, SecretRecord, State};

/// Runs one Secrets method.
pub(super) fn handle(call: &Call<'_>, method: &str) -> Result<Value, RpcError> {
    let uuid = call
        .model_uuid()
        .ok_or_else(|| RpcError::plain("secrets need a model connection"))?
        .to_owned();
    match method {
        "ListSecrets" => {
            call.require_model(ModelAccess::Read)?;
            list(call, &uuid)
        }
        "CreateSecrets" => {
            call.require_model(ModelAccess::Write)?;
            create(call, &uuid)
        }
        "UpdateSecrets" => {
            call.require_model(ModelAccess::Write)?;
            update(call, &uuid)
        }
        // Permission is checked per item, after the not-found checks (juju-api.md §10.2).
        "RemoveSecrets" => {
            let can_write = call.require_model(ModelAccess::Write).is_ok();
            remove(call, &uuid, can_write)
        }
        "GrantSecret" => {
            call.require_model(ModelAccess::Write)?;
            grant_or_revoke(call, &uuid, true)
        }
        "RevokeSecret" => {
            call.require_model(ModelAccess::Write)?;
            grant_or_revoke(call, &uuid, false)
        }
        _ => Err(RpcError::plain(format!(
            "no such request - method {method}"
        ))),
    }
}

fn model_gone() -> RpcError {
    RpcError::new("model not found", CODE_NOT_FOUND)
}

fn secret_not_found(what: &str) -> RpcError {
    RpcError::not_found(format!("secret {what:?} not found"))
}

/// The fields shared by create and update args (`UpsertSecretArg`).
struct Upsert {
    label: Option<String>,
    description: Option<String>,
    data: Option<BTreeMap<String, String>>,
    rotate_policy: Option<String>,
    expire_time: Option<String>,
}

fn parse_upsert(p: &Params<'_>) -> Result<Upsert, RpcError> {
    let content = p.obj("content")?;
    let data = match content.opt_map("data")? {
        None => None,
        Some(m) => Some(
            m.iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    Value::Null => Ok((k.clone(), String::new())),
                    _ => Err(RpcError::plain(format!(
                        "json: cannot unmarshal value of key {k:?} into Go value of type string"
                    ))),
                })
                .collect::<Result<BTreeMap<_, _>, _>>()?,
        ),
    };
    Ok(Upsert {
        label: p.opt_str("label")?,
        description: p.opt_str("description")?,
        data,
        rotate_policy: p.opt_str("rotate-policy")?.filter(|s| !s.is_empty()),
        expire_time: p.opt_str("expire-time")?.filter(|s| !s.is_empty()),
    })
}

/// The ID and name of the backend new revisions of this model go to. A configured backend
/// that no longer exists fails the whole call.
fn active_backend(state: &State, model: &ModelRecord) -> Result<(String, String), RpcError> {
    let setting = model.secret_backend_setting();
    if setting == "auto" || setting == crate::state::INTERNAL_BACKEND {
        return Ok((
            state.controller_uuid.clone(),
            crate::state::INTERNAL_BACKEND.to_owned(),
        ));
    }
    state
        .backend_by_name(&setting)
        .map(|b| (b.id.clone(), b.name.clone()))
        .ok_or_else(|| RpcError::not_found(format!("secret backend {setting:?} not found")))
}

/// Fails when content cannot be written to (or read from) the named backend.
fn backend_usable(faults: &Faults, name: &str) -> Result<(), RpcError> {
    if name == crate::state::INTERNAL_BACKEND {
        return Ok(());
    }
    match faults.ping_backend(name) {
        Some(detail) => Err(RpcError::plain(detail)),
        None => Ok(()),
    }
}

fn model_mut<'s>(state: &'s mut State, uuid: &str) -> Result<&'s mut ModelRecord, RpcError> {
    state.model_mut(uuid).ok_or_else(model_gone)
}

/// Looks a model-owned secret up by label.
fn by_label(model: &ModelRecord, label: &str) -> Option<usize> {
    let owner = format!("model-{}", model.uuid);
    model
        .secrets
        .iter()
        .position(|s| s.owner_tag == owner && s.label.as_deref().unwrap_or("") == label)
}

/// Looks a secret up by URI (any owner).
fn by_uri(model: &ModelRecord, uri: &str) -> Result<usize, RpcError> {
    let id = ids::parse_secret_uri(uri)?;
    model
        .secrets
        .iter()
        .position(|s| s.id == id)
        .ok_or_else(|| secret_not_found(&ids::short_uri(&id)))
}

/// Whether another secret holds `label`. The empty label is no label (juju-api.md
/// §10.5): any number of secrets may have it.
fn label_taken(model: &ModelRecord, label: &str, except: Option<usize>) -> bool {
    !label.is_empty() && by_label(model, label).is_some_and(|i| Some(i) != except)
}

/// The one model-owned secret without a label, for RemoveSecrets with neither URI nor
/// label (Juju 3.6.4+).
fn the_unlabelled(model: &ModelRecord) -> Result<usize, RpcError> {
    let owner = format!("model-{}", model.uuid);
    let mut found = model
        .secrets
        .iter()
        .enumerate()
        .filter(|(_, s)| s.owner_tag == owner && s.label.as_deref().unwrap_or("").is_empty())
        .map(|(i, _)| i);
    match (found.next(), found.next()) {
        (Some(i), None) => Ok(i),
        (None, _) => Err(secret_not_found("")),
        (Some(_), Some(_)) => Err(RpcError::not_found(
            "more than 1 secret with label \"\" not found",
        )),
    }
}

fn label_exists_error(label: &str) -> RpcError {
    RpcError::new(
        format!("secret with name {label:?} already exists"),
        CODE_ALREADY_EXISTS,
    )
}

fn create(call: &Call<'_>, uuid: &str) -> Result<Value, RpcError> {
    let params = call.req.params()?;
    let mut args = Vec::new();
    for p in params.list_of_objs("args")? {
        args.push((parse_upsert(&p)?, p.str("owner-tag")?, p.str("uri")?));
    }
    let faults = &call.conn.shared.faults;
    call.conn.shared.write(|state| {
        let model = state.model(uuid).ok_or_else(model_gone)?;
        let (backend_id, backend_name) = active_backend(state, model)?;
        // Juju fetches the model's active backend for writing (contacting vault) before
        // looking at any item: unreachable, the whole call fails.
        backend_usable(faults, &backend_name)?;
        let model = model_mut(state, uuid)?;
        let mut results = Vec::new();
        for (upsert, owner, uri) in args {
            let item = create_one(model, upsert, &owner, &uri, &backend_id);
            results.push(match item {
                Ok(uri) => json!({ "result": uri }),
                Err(e) => json!({ "error": e.to_value(), "result": "" }),
            });
        }
        Ok(json!({ "results": results }))
    })
}

fn create_one(
    model: &mut ModelRecord,
    upsert: Upsert,
    owner: &str,
    uri: &str,
    backend_id: &str,
) -> Result<String, RpcError> {
    if !owner.is_empty() && owner != model.uuid {
        return Err(RpcError::not_valid(format!(
            "owner tag {owner:?} not valid"
        )));
    }
    let data = upsert
        .data
        .filter(|d| !d.is_empty())
        .ok_or_else(|| RpcError::not_valid("empty secret value not valid"))?;
    if let Some(label) = &upsert.label
        && label_taken(model, label, None)
    {
        return Err(label_exists_error(label));
    }
    let id = if uri.is_empty() {
        ids::new_secret_id()
    } else {
        let id = ids::parse_secret_uri(uri)?;
        if model.secrets.iter().any(|s| s.id == id) {
            return Err(RpcError::new(
                format!("secret {:?} already exists", ids::short_uri(&id)),
                CODE_ALREADY_EXISTS,
            ));
        }
        id
    };
    let now = ids::now_rfc3339();
    let checksum = ids::content_checksum(&data);
    model.secrets.push(SecretRecord {
        id: id.clone(),
        owner_tag: format!("model-{}", model.uuid),
        label: upsert.label.filter(|l| !l.is_empty()),
        description: upsert.description,
        latest_revision: 1,
        latest_revision_checksum: checksum,
        auto_prune: false,
        create_time: now.clone(),
        update_time: now.clone(),
        revisions: vec![RevisionRecord {
            revision: 1,
            data,
            backend_id: backend_id.to_owned(),
            create_time: now.clone(),
            update_time: now,
            written_ms: ids::unix_ms(),
        }],
        grants: Vec::new(),
    });
    Ok(ids::short_uri(&id))
}

fn update(call: &Call<'_>, uuid: &str) -> Result<Value, RpcError> {
    let params = call.req.params()?;
    let mut args = Vec::new();
    for p in params.list_of_objs("args")? {
        args.push((
            parse_upsert(&p)?,
            p.str("uri")?,
            p.str("existing-label")?,
            p.opt_bool("auto-prune")?,
        ));
    }
    let faults = &call.conn.shared.faults;
    call.conn.shared.write(|state| {
        let model = state.model(uuid).ok_or_else(model_gone)?;
        let (backend_id, backend_name) = active_backend(state, model)?;
        // As for CreateSecrets, even for updates that change only a name or description.
        backend_usable(faults, &backend_name)?;
        let model = model_mut(state, uuid)?;
        let mut results = Vec::new();
        for (upsert, uri, label, auto_prune) in args {
            let item = update_one(model, upsert, &uri, &label, auto_prune, faults, &backend_id);
            results.push(match item {
                Ok(()) => json!({}),
                Err(e) => json!({ "error": e.to_value() }),
            });
        }
        Ok(json!({ "results": results }))
    })
}

#[allow(clippy::too_many_arguments)]
fn update_one(
    model: &mut ModelRecord,
    upsert: Upsert,
    uri: &str,
    existing_label: &str,
    auto_prune: Option<bool>,
    faults: &Faults,
    backend_id: &str,
) -> Result<(), RpcError> {
    let data = upsert.data.filter(|d| !d.is_empty());
    let metadata_or_value = auto_prune.is_some()
        || upsert.description.is_some()
        || upsert.label.is_some()
        || data.is_some();
    if !metadata_or_value && upsert.rotate_policy.is_none() && upsert.expire_time.is_none() {
        return Err(RpcError::plain(
            "at least one attribute to update must be specified",
        ));
    }
    let index = match (uri.is_empty(), existing_label.is_empty()) {
        (true, true) => return Err(RpcError::plain("must specify either URI or label")),
        (false, false) => {
            return Err(RpcError::plain(
                "must specify either URI or label but not both",
            ));
        }
        (false, true) => by_uri(model, uri)?,
        (true, false) => {
            by_label(model, existing_label).ok_or_else(|| secret_not_found(existing_label))?
        }
    };
    if !metadata_or_value {
        return Err(RpcError::plain(
            "must specify a new value or metadata to update a secret",
        ));
    }
    if let Some(label) = &upsert.label
        && label_taken(model, label, Some(index))
    {
        return Err(label_exists_error(label));
    }
    let checksum = data.as_ref().map(ids::content_checksum);
    let secret = model
        .secrets
        .get_mut(index)
        .ok_or_else(|| secret_not_found(uri))?;
    // Juju 3.6 makes no revision for content identical to the latest; earlier versions do.
    let new_content = match (data, checksum) {
        (Some(d), Some(c)) if c != secret.latest_revision_checksum || !faults.checksums() => {
            Some((d, c))
        }
        _ => None,
    };
    let now = ids::now_rfc3339();
    let mut changed = false;
    if let Some(label) = upsert.label {
        secret.label = Some(label).filter(|l| !l.is_empty());
        changed = true;
    }
    if let Some(description) = upsert.description {
        secret.description = Some(description);
        changed = true;
    }
    if let Some(prune) = auto_prune {
        secret.auto_prune = prune;
        changed = true;
    }
    if let Some((data, checksum)) = new_content {
        secret.latest_revision += 1;
        secret.latest_revision_checksum = checksum;
        secret.revisions.push(RevisionRecord {
            revision: secret.latest_revision,
            data,
            backend_id: backend_id.to_owned(),
            create_time: now.clone(),
            update_time: now.clone(),
            written_ms: ids::unix_ms(),
        });
        changed = true;
    }
    if secret.auto_prune {
        // Nobody consumes a secret in the emulator, so every revision but the newest one
        // is obsolete.
        if let Some(newest) = secret.revisions.iter().map(|r| r.revision).max() {
            secret.revisions.retain(|r| r.revision == newest);
        }
    }
    if changed {
        secret.update_time = now;
    }
    Ok(())
}

fn remove(call: &Call<'_>, uuid: &str, can_write: bool) -> Result<Value, RpcError> {
    let params = call.req.params()?;
    let mut args = Vec::new();
    for p in params.list_of_objs("args")? {
        args.push((
            p.str("uri")?,
            p.str("label")?,
            p.opt_list_of_i64("revisions")?,
        ));
    }
    let faults = &call.conn.shared.faults;
    call.conn.shared.write(|state| {
        let model = state.model(uuid).ok_or_else(model_gone)?;
        // Juju opens the model's configured backend before any item: one that was
        // removed fails every item, internal secrets included.
        let configured = active_backend(state, model).err().map(|e| {
            RpcError::not_found(format!(
                "getting configured secrets providers: {}",
                e.message
            ))
        });
        let backends: Vec<(String, String)> = state
            .backends
            .iter()
            .map(|b| (b.id.clone(), b.name.clone()))
            .collect();
        let controller = state.controller_uuid.clone();
        let model = model_mut(state, uuid)?;
        let owner = format!("model-{uuid}");
        let mut results = Vec::new();
        for (uri, label, revisions) in args {
            let item = match &configured {
                Some(e) => Err(e.clone()),
                None => remove_one(
                    model,
                    (&owner, can_write),
                    &uri,
                    &label,
                    revisions,
                    &External {
                        faults,
                        backends: &backends,
                        controller: &controller,
                    },
                ),
            };
            results.push(match item {
                Ok(()) => json!({}),
                Err(e) => json!({ "error": e.to_value() }),
            });
        }
        Ok(json!({ "results": results }))
    })
}

/// What RemoveSecrets needs to know of the backends holding revisions' content.
struct External<'a> {
    faults: &'a Faults,
    /// `(id, name)` of every external backend.
    backends: &'a [(String, String)],
    /// The controller UUID: the ID of the `internal` backend.
    controller: &'a str,
}

impl External<'_> {
    /// Deletes the content of `revision` of secret `id` from its backend (Juju does this
    /// before it deletes the revision from its database).
    fn delete(&self, id: &str, revision: &RevisionRecord) -> Result<(), RpcError> {
        if revision.backend_id == self.controller {
            return Ok(());
        }
        let Some((_, name)) = self
            .backends
            .iter()
            .find(|(i, _)| *i == revision.backend_id)
        else {
            return Err(RpcError::not_found(format!(
                "backend {:?} not found",
                revision.backend_id
            )));
        };
        match self.faults.ping_backend(name) {
            Some(cause) => Err(RpcError::plain(format!(
                "cannot remove revision \"{id}-{}\" from secret backend {name:?}: {cause}",
                revision.revision
            ))),
            None => Ok(()),
        }
    }
}

fn remove_one(
    model: &mut ModelRecord,
    (owner, can_write): (&str, bool),
    uri: &str,
    label: &str,
    revisions: Option<Vec<i64>>,
    external: &External<'_>,
) -> Result<(), RpcError> {
    let index = if !uri.is_empty() {
        by_uri(model, uri)?
    } else if label.is_empty() {
        the_unlabelled(model)?
    } else {
        by_label(model, label).ok_or_else(|| secret_not_found(label))?
    };
    let Some(secret) = model.secrets.get_mut(index) else {
        return Err(secret_not_found(label));
    };
    if !can_write || secret.owner_tag != owner {
        return Err(RpcError::permission_denied());
    }
    match revisions.filter(|r| !r.is_empty()) {
        None => {
            for revision in &secret.revisions {
                external.delete(&secret.id, revision)?;
            }
            model.secrets.remove(index);
        }
        Some(wanted) => {
            let present: Vec<u64> = wanted
                .iter()
                .filter_map(|r| u64::try_from(*r).ok())
                .filter(|r| secret.revisions.iter().any(|x| x.revision == *r))
                .collect();
            if present.is_empty() {
                let listed: Vec<String> = wanted.iter().map(i64::to_string).collect();
                return Err(RpcError::not_found(format!(
                    "cannot delete any of revisions [{}] - revisions not found",
                    listed.join(" ")
                )));
            }
            for revision in secret
                .revisions
                .iter()
                .filter(|r| present.contains(&r.revision))
            {
                external.delete(&secret.id, revision)?;
            }
            secret.revisions.retain(|r| !present.contains(&r.revision));
            if secret.revisions.is_empty() {
                model.secrets.remove(index);
            }
        }
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct RevisionOut<'a> {
    revision: u64,
    backend_name: String,
    create_time: &'a str,
    update_time: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct AccessOut {
    target_tag: String,
    scope_tag: String,
    role: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ListItem<'a> {
    uri: String,
    version: u32,
    owner_tag: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    label: &'a str,
    latest_revision: u64,
    latest_revision_checksum: &'a str,
    create_time: &'a str,
    update_time: &'a str,
    revisions: Option<Vec<RevisionOut<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    access: Vec<AccessOut>,
}

/// Whether `tag` parses as a Juju entity tag.
fn is_valid_tag(tag: &str) -> bool {
    const KINDS: &[&str] = &[
        "model-",
        "application-",
        "unit-",
        "user-",
        "machine-",
        "controller-",
    ];
    KINDS
        .iter()
        .any(|k| tag.strip_prefix(k).is_some_and(|rest| !rest.is_empty()))
}

fn list(call: &Call<'_>, uuid: &str) -> Result<Value, RpcError> {
    let params = call.req.params()?;
    let show = params.bool("show-secrets")?;
    if show {
        call.require_model(ModelAccess::Admin)?;
    }
    let filter = params.obj("filter")?;
    let uri_id = match filter.opt_str("uri")? {
        Some(u) if !u.is_empty() => Some(ids::parse_secret_uri(&u)?),
        _ => None,
    };
    let label = filter.opt_str("label")?;
    let owner = filter.opt_str("owner-tag")?.filter(|o| !o.is_empty());
    if let Some(o) = &owner
        && !is_valid_tag(o)
    {
        return Err(RpcError::plain(format!("{o:?} is not a valid tag")));
    }
    let revision = filter.opt_i64("revision")?;
    let faults = &call.conn.shared.faults;
    call.conn.shared.read(|state| {
        let model = state.model(uuid).ok_or_else(model_gone)?;
        // A model naming a removed backend cannot read any value (juju-api.md §10.8).
        let dangling = active_backend(state, model).err();
        let mut out = Vec::new();
        for s in &model.secrets {
            if uri_id.as_ref().is_some_and(|id| *id != s.id)
                || label
                    .as_ref()
                    .is_some_and(|l| s.label.as_deref().unwrap_or("") != l)
                || owner.as_ref().is_some_and(|o| *o != s.owner_tag)
            {
                continue;
            }
            let uri = ids::short_uri(&s.id);
            let mut revs: Vec<&RevisionRecord> = s.revisions.iter().collect();
            if let Some(n) = revision {
                revs.retain(|r| i64::try_from(r.revision).is_ok_and(|x| x == n));
                if revs.is_empty() {
                    return Err(RpcError::not_found(format!(
                        "revison {n} for secret {uri:?} not found"
                    )));
                }
            }
            // Juju sorts by the storage key "<id>/<n>", i.e. by the number as a string.
            revs.sort_by_key(|r| r.revision.to_string());
            let value = show.then(|| {
                let wanted = revision
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(s.latest_revision);
                match &dangling {
                    Some(e) => json!({ "error": e.to_value() }),
                    None => reveal(state, faults, s, wanted),
                }
            });
            let revisions: Vec<RevisionOut<'_>> = revs
                .into_iter()
                .map(|r| RevisionOut {
                    revision: r.revision,
                    backend_name: state
                        .backend_name(&r.backend_id)
                        .unwrap_or_else(|| "unknown".into()),
                    create_time: &r.create_time,
                    update_time: &r.update_time,
                })
                .collect();
            out.push(ListItem {
                uri,
                version: 1,
                owner_tag: &s.owner_tag,
                description: s.description.as_deref().unwrap_or(""),
                label: s.label.as_deref().unwrap_or(""),
                latest_revision: s.latest_revision,
                latest_revision_checksum: if call.conn.shared.faults.checksums() {
                    &s.latest_revision_checksum
                } else {
                    ""
                },
                create_time: &s.create_time,
                update_time: &s.update_time,
                revisions: (!revisions.is_empty()).then_some(revisions),
                value,
                access: s
                    .grants
                    .iter()
                    .map(|app| AccessOut {
                        target_tag: format!("application-{app}"),
                        scope_tag: format!("model-{uuid}"),
                        role: "view",
                    })
                    .collect(),
            });
        }
        Ok(json!({ "results": to_value(&out)? }))
    })
}

/// The `value` member for one secret: its content, or the error reading it.
fn reveal(state: &State, faults: &Faults, s: &SecretRecord, wanted: u64) -> Value {
    let Some(rev) = s.revisions.iter().find(|r| r.revision == wanted) else {
        let e = RpcError::not_found(format!("secret revision \"{}/{wanted}\" not found", s.id));
        return json!({ "error": e.to_value() });
    };
    let Some(name) = state.backend_name(&rev.backend_id) else {
        // Juju prints its map of backend clients after "have"; the emulator, their IDs.
        let have: Vec<String> = state
            .backends
            .iter()
            .map(|b| format!("{:?}", b.id))
            .collect();
        let e = RpcError::not_found(format!(
            "external secret backend {:?}, have map[{}] not found",
            rev.backend_id,
            have.join(" ")
        ));
        return json!({ "error": e.to_value() });
    };
    match backend_usable(faults, &name) {
        Ok(()) => json!({ "data": rev.data }),
        Err(e) => json!({ "error": e.to_value() }),
    }
}

/// Whether `name` is a valid application name.
pub(super) fn is_valid_application(name: &str) -> bool {
    let mut parts = name.split('-');
    let Some(first) = parts.next() else {
        return false;
    };
    let alnum = |s: &str| {
        s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    if !first.starts_with(|c: char| c.is_ascii_lowercase()) || !alnum(first) {
        return false;
    }
    parts.all(|p| !p.is_empty() && alnum(p) && p.bytes().any(|c| c.is_ascii_lowercase()))
}

fn grant_or_revoke(call: &Call<'_>, uuid: &str, grant: bool) -> Result<Value, RpcError> {
    let params = call.req.params()?;
    let uri = params.str("uri")?;
    let label = params.str("label")?;
    let apps = params.list_of_strs("applications")?;
    if uri.is_empty() && label.is_empty() {
        return Err(RpcError::plain("must specify either URI or name"));
    }
    call.conn.shared.write(|state| {
        let model = model_mut(state, uuid)?;
        let index = if !uri.is_empty() {
            // Juju parses the URI but does not look it up for the call: a grant fails
            // per application, a revoke succeeds for every application.
            let id = ids::parse_secret_uri(&uri)?;
            match model.secrets.iter().position(|s| s.id == id) {
                Some(i) => i,
                None => {
                    let short = ids::short_uri(&id);
                    let results: Vec<Value> = apps
                        .iter()
                        .map(|app| {
                            if grant {
                                let e = RpcError::not_found(format!(
                                    "cannot change access to {short:?} for {app:?}: secret {short:?} not found"
                                ));
                                json!({ "error": e.to_value() })
                            } else {
                                json!({})
                            }
                        })
                        .collect();
                    return Ok(json!({ "results": results }));
                }
            }
        } else {
            by_label(model, &label).ok_or_else(|| secret_not_found(&label))?
        };
        let known: Vec<String> = model.applications.clone();
        let secret = model
            .secrets
            .get_mut(index)
            .ok_or_else(|| secret_not_found(&label))?;
        let short = ids::short_uri(&secret.id);
        let mut results = Vec::new();
        for app in apps {
            let fail = |reason: String, code: &str| {
                let e = RpcError::new(
                    format!("cannot change access to {short:?} for {app:?}: {reason}"),
                    code,
                );
                json!({ "error": e.to_value() })
            };
            if !is_valid_application(&app) {
                results.push(fail(
                    format!("invalid subject reference: {app:?} is not a valid application name"),
                    "",
                ));
                continue;
            }
            if grant {
                if !known.contains(&app) {
                    results.push(fail(
                        format!("invalid subject reference: saas application {app:?} not found"),
                        CODE_NOT_FOUND,
                    ));
                    continue;
                }
                if !secret.grants.contains(&app) {
                    secret.grants.push(app.clone());
                }
            } else {
                secret.grants.retain(|g| *g != app);
            }
            results.push(json!({}));
        }
        Ok(json!({ "results": results }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_names_follow_juju_rules() {
        for ok in ["mysql", "wordpress", "my-app", "app2", "a-1b"] {
            assert!(is_valid_application(ok), "{ok}");
        }
        for bad in [
            "MySQL", "1app", "app-", "-app", "app--x", "app-1", "my_app", "",
        ] {
            assert!(!is_valid_application(bad), "{bad}");
        }
    }

    #[test]
    fn revisions_sort_as_strings() {
        let mut revs: Vec<u64> = (1..=12).collect();
        revs.sort_by_key(|r| r.to_string());
        assert_eq!(revs, vec![1, 10, 11, 12, 2, 3, 4, 5, 6, 7, 8, 9]);
    }
}
