//! `plan`: what applying a set of manifests would do in Juju, key by key, without a
//! single value, and without writing anything anywhere.
//!
//! Each object is run through the same observe and decide steps as the controllers'
//! passes ([`jujusecret::preview`], [`grant::preview`], [`backend::preview`]), against
//! the cluster's objects and source Secrets (the manifests' own Secrets stand in for
//! those they would write), the operator's ownership record and Juju, all read only:
//! the record is loaded without its writer, events go nowhere, generated values are
//! never stored, and no Juju write method is called. The one rule set is what makes the
//! plan what the operator will do.

pub mod manifests;
pub mod report;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use crate::controller::content::Sources;
use crate::controller::events::EventSink;
use crate::controller::juju_state::{ModelDirectory, SecretListings, WriteBatcher};
use crate::controller::outcome::Problem;
use crate::controller::ownership::OwnershipRecord;
use crate::controller::tenancy::TenancyPolicy;
use crate::controller::{
    Backoff, Context, KubeWrites, MAX_KUBE_WRITES, backend, connection_namespace,
    connection_options, existing_mac_key, grant, jujusecret, kube_client, kube_config, metrics,
    options_from_secret,
};
use crate::crd::backend::JujuSecretBackend;
use crate::crd::condition::reason;
use crate::crd::grant::JujuSecretGrant;
use crate::crd::secret::{DeletionPolicy, JujuSecret, ManagementPolicy};
use juju_client::JujuClient;
use manifests::Manifests;
use report::{Change, Finding, ObjectPlan, Report};

/// What to plan, and where to read.
#[derive(Debug)]
pub struct PlanConfig {
    /// Manifest files, directories, or `-`.
    pub files: Vec<PathBuf>,
    /// Namespace of manifest objects that name none.
    pub namespace: String,
    /// Kubeconfig (default: in-cluster, else ~/.kube/config).
    pub kubeconfig: Option<PathBuf>,
    /// The operator's connection Secret (`namespace/name`): the Juju connection unless
    /// `juju_connection` is given, and the namespace of the ownership record and MAC key.
    pub connection_secret: String,
    /// A file holding a connection Secret manifest (say, a read-only Juju user's).
    pub juju_connection: Option<PathBuf>,
    /// The operator's tenancy policy file.
    pub tenancy_policy: Option<PathBuf>,
    /// Objects of the manifests' namespaces (and backends) absent from the manifests
    /// would be deleted, as `kubectl apply --prune` or a GitOps tool's pruning does.
    pub prune: bool,
}

/// Why no plan could be made at all.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A manifest cannot be read.
    #[error(transparent)]
    Manifest(#[from] manifests::ManifestError),
    /// Kubernetes or Juju cannot be reached, or the connection is unusable.
    #[error("{0}")]
    Setup(String),
}

/// Makes the plan of `config`'s manifests.
pub async fn plan(config: &PlanConfig) -> Result<Report, PlanError> {
    let manifests = Manifests::read(&config.files, &config.namespace)?;
    let setup = |e: &dyn std::fmt::Display| PlanError::Setup(e.to_string());
    let client = kube_client(
        kube_config(config.kubeconfig.as_ref())
            .await
            .map_err(|e| setup(&e))?,
    )
    .map_err(|e| setup(&e))?;
    let ctx = read_only_context(&client, config).await?;
    let cluster = Cluster::read(&client).await.map_err(|e| setup(&e))?;
    Ok(Planner {
        ctx: &ctx,
        manifests,
        cluster,
        prune: config.prune,
    }
    .run()
    .await)
}

/// The namespace of the kubeconfig's current context (what kubectl gives objects that
/// name none), else `default`.
pub async fn default_namespace(kubeconfig: Option<&PathBuf>) -> String {
    kube_config(kubeconfig)
        .await
        .map(|c| c.default_namespace)
        .unwrap_or_else(|_| "default".into())
}

/// A [`Context`] that cannot write: the record is loaded without its writer, events are
/// dropped, and nothing here calls a Juju write method.
async fn read_only_context(client: &Client, config: &PlanConfig) -> Result<Context, PlanError> {
    let setup = |e: &dyn std::fmt::Display| PlanError::Setup(e.to_string());
    let options = match &config.juju_connection {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| PlanError::Setup(format!("cannot read {}: {e}", path.display())))?;
            let secret: Secret = serde_yaml_ng::from_str(&text).map_err(|_| {
                PlanError::Setup(format!(
                    "{} is not a Secret manifest with the keys endpoints, ca-cert, username, password",
                    path.display()
                ))
            })?;
            options_from_secret(&secret, &path.display().to_string()).map_err(|e| setup(&e))?
        }
        None => connection_options(client, &config.connection_secret)
            .await
            .map_err(|e| setup(&e))?,
    };
    let policy = match &config.tenancy_policy {
        Some(path) => TenancyPolicy::load(path).map_err(|e| setup(&e))?,
        None => TenancyPolicy::AllowAll,
    };
    let namespace = connection_namespace(&config.connection_secret);
    // Without the operator's key no recorded MAC can match: content is compared with
    // Juju's checksum or content instead.
    let mac_key = existing_mac_key(client, &config.connection_secret)
        .await
        .map_err(|e| setup(&e))?
        .unwrap_or_else(|| {
            let mut key = vec![0u8; 32];
            rand::Rng::fill(&mut rand::rng(), key.as_mut_slice());
            key
        });
    let ownership = Arc::new(
        OwnershipRecord::load_read_only(client.clone(), namespace)
            .await
            .map_err(|e| setup(&e))?,
    );
    let juju = JujuClient::new(options).map_err(|e| setup(&e))?;
    let metrics = metrics::Metrics::new();
    Ok(Context {
        client: client.clone(),
        events: EventSink::discard(metrics.clone()),
        policy,
        models: ModelDirectory::new(juju.clone(), Duration::from_secs(300)),
        listings: SecretListings::new(juju.clone()),
        writes: WriteBatcher::new(juju.clone()),
        ownership,
        juju,
        mac_key,
        refresh_interval: Duration::from_secs(300),
        backoff: Backoff::default(),
        metrics,
        controller_config: kube::runtime::controller::Config::default(),
        kube_writes: KubeWrites::new(MAX_KUBE_WRITES, None),
        finisher: Default::default(),
    })
}

/// The operator's objects in the cluster now.
struct Cluster {
    secrets: Vec<JujuSecret>,
    grants: Vec<JujuSecretGrant>,
    backends: Vec<JujuSecretBackend>,
}

impl Cluster {
    async fn read(client: &Client) -> Result<Self, kube::Error> {
        let lp = ListParams::default();
        Ok(Self {
            secrets: Api::<JujuSecret>::all(client.clone())
                .list(&lp)
                .await?
                .items,
            grants: Api::<JujuSecretGrant>::all(client.clone())
                .list(&lp)
                .await?
                .items,
            backends: Api::<JujuSecretBackend>::all(client.clone())
                .list(&lp)
                .await?
                .items,
        })
    }
}

type Key = (Option<String>, String);

fn key_of<K: ResourceExt>(o: &K) -> Key {
    (o.namespace(), o.name_any())
}

/// Gives a manifest object the identity of the cluster's object of the same name (the
/// record knows objects by UID), or none for an object applying would create.
fn identify<K: ResourceExt + Clone>(manifest: &K, cluster: &[K]) -> K {
    let mut o = manifest.clone();
    let found = cluster.iter().find(|c| key_of(*c) == key_of(manifest));
    o.meta_mut().uid = found.and_then(|c| c.uid());
    o.meta_mut().generation = found.and_then(|c| c.meta().generation);
    o
}

struct Planner<'a> {
    ctx: &'a Context,
    manifests: Manifests,
    cluster: Cluster,
    prune: bool,
}

impl Planner<'_> {
    async fn run(self) -> Report {
        let mut report = Report {
            summary: report::Summary {
                other_kinds: self.manifests.other,
                ..Default::default()
            },
            ..Default::default()
        };
        let sources = Sources {
            overrides: self.manifests.sources.clone(),
            preview: true,
        };
        // Secrets first: a grant on a secret that applying creates is planned from it.
        let mut created: BTreeMap<Key, String> = BTreeMap::new();
        for manifest in &self.manifests.secrets {
            let js = identify(manifest, &self.cluster.secrets);
            let (plan, create_in) = self.secret(&js, &sources).await;
            if let Some(model) = create_in {
                created.insert(key_of(&js), model);
            }
            report.add(plan);
        }

        // The grant objects as they would be once applied (or pruned).
        let manifest_keys: Vec<Key> = self.manifests.grants.iter().map(key_of).collect();
        let namespaces = self.namespaces();
        let pruned = |g: &JujuSecretGrant| {
            self.prune
                && !manifest_keys.contains(&key_of(g))
                && g.namespace().is_some_and(|ns| namespaces.contains(&ns))
        };
        let mut all: Vec<Arc<JujuSecretGrant>> = self
            .cluster
            .grants
            .iter()
            .filter(|g| !manifest_keys.contains(&key_of(*g)) && !pruned(g))
            .cloned()
            .map(Arc::new)
            .collect();
        let grants: Vec<JujuSecretGrant> = self
            .manifests
            .grants
            .iter()
            .map(|g| identify(g, &self.cluster.grants))
            .collect();
        all.extend(grants.iter().cloned().map(Arc::new));
        for g in &grants {
            let new_secret = g.spec.secret_ref.as_ref().and_then(|r| {
                created
                    .get(&(g.namespace(), r.name.clone()))
                    .map(String::as_str)
            });
            report.add(self.grant(g, &all, new_secret).await);
        }

        for manifest in &self.manifests.backends {
            let b = identify(manifest, &self.cluster.backends);
            report.add(self.backend(&b).await);
        }

        if self.prune {
            for plan in self.deletions(&namespaces, &all).await {
                report.add(plan);
            }
        }
        report
    }

    /// The namespaces the manifests hold objects in (pruning is limited to them).
    fn namespaces(&self) -> Vec<String> {
        let mut ns: Vec<String> = self
            .manifests
            .secrets
            .iter()
            .filter_map(ResourceExt::namespace)
            .chain(
                self.manifests
                    .grants
                    .iter()
                    .filter_map(ResourceExt::namespace),
            )
            .collect();
        ns.sort();
        ns.dedup();
        ns
    }

    async fn secret(&self, js: &JujuSecret, sources: &Sources) -> (ObjectPlan, Option<String>) {
        let mut plan = object("JujuSecret", js);
        let preview = match jujusecret::preview(js, self.ctx, sources).await {
            Ok(p) => p,
            Err(p) => {
                problem(&mut plan, p);
                return (plan, None);
            }
        };
        plan.model = Some(preview.model.clone());
        plan.secret_id = preview.secret_id.clone();
        plan.suspended = preview.suspended;
        if preview.adopt
            && let Some(id) = &preview.secret_id
        {
            plan.changes.push(Change::Adopt { id: id.clone() });
        }
        let remove = (!preview.remove_revisions.is_empty()).then(|| Change::RemoveRevisions {
            revisions: preview.remove_revisions.clone(),
        });
        let Some(write) = preview.write else {
            plan.changes.extend(remove);
            return (plan, None);
        };
        if write.action == "Create" {
            plan.changes.push(Change::Create {
                name: js.spec.name.clone().unwrap_or_else(|| js.name_any()),
                keys: write.keys_added,
            });
            let created = (!preview.suspended).then_some(preview.model_uuid);
            return (plan, created);
        }
        if let Some((from, to)) = preview.rename {
            plan.changes.push(Change::Rename { from, to });
        }
        if write.changes.iter().any(|c| c == "description") {
            plan.changes.push(Change::Description);
        }
        if let Some((from, to)) = preview.revision {
            plan.changes.push(Change::NewRevision {
                from,
                to,
                keys_added: write.keys_added,
                keys_removed: write.keys_removed,
                keys_changed: write.keys_changed,
            });
        }
        if write.changes.iter().any(|c| c == "autoPrune") {
            plan.changes.push(Change::AutoPrune);
        }
        plan.changes.extend(remove);
        (plan, None)
    }

    async fn grant(
        &self,
        g: &JujuSecretGrant,
        all: &[Arc<JujuSecretGrant>],
        new_secret: Option<&str>,
    ) -> ObjectPlan {
        let mut plan = object("JujuSecretGrant", g);
        match grant::preview(g, self.ctx, all, new_secret).await {
            Ok(p) => grant_changes(&mut plan, p),
            Err(p) => problem(&mut plan, p),
        }
        self.name_model(&mut plan).await;
        plan
    }

    async fn backend(&self, b: &JujuSecretBackend) -> ObjectPlan {
        let mut plan = object("JujuSecretBackend", b);
        let p = match backend::preview(b, self.ctx).await {
            Ok(p) => p,
            Err(p) => {
                problem(&mut plan, p);
                return plan;
            }
        };
        if let Some(backend_type) = p.create {
            plan.changes.push(Change::CreateBackend {
                name: p.name.clone(),
                backend_type,
            });
        }
        if p.adopt {
            plan.changes.push(Change::Adopt { id: p.name.clone() });
        }
        if !p.changes.is_empty() {
            plan.changes.push(Change::UpdateBackend {
                changes: p.changes.iter().map(|c| (*c).to_owned()).collect(),
            });
        }
        for (model, from) in p.assign {
            plan.changes.push(Change::SwitchModel {
                model,
                from,
                to: p.name.clone(),
            });
        }
        for model in p.release {
            plan.changes.push(Change::SwitchModel {
                model,
                from: p.name.clone(),
                to: "auto".into(),
            });
        }
        for model in p.conflicts {
            plan.findings.push(Finding {
                reason: reason::CONFLICT.into(),
                message: format!("model {model} is already assigned by another JujuSecretBackend"),
            });
        }
        plan
    }

    /// Names the plan's model `owner/name` where it is known by UUID.
    async fn name_model(&self, plan: &mut ObjectPlan) {
        if let Some(uuid) = plan.model.clone()
            && let Ok(model) = self.ctx.models.resolve(&uuid).await
        {
            plan.model = Some(model.qualified_name());
        }
    }

    /// What deleting the cluster's objects that the manifests no longer hold would do.
    async fn deletions(
        &self,
        namespaces: &[String],
        all: &[Arc<JujuSecretGrant>],
    ) -> Vec<ObjectPlan> {
        let in_scope = |ns: Option<String>| ns.is_some_and(|ns| namespaces.contains(&ns));
        let listed = |keys: &[Key], k: &Key| keys.contains(k);
        let secret_keys: Vec<Key> = self.manifests.secrets.iter().map(key_of).collect();
        let grant_keys: Vec<Key> = self.manifests.grants.iter().map(key_of).collect();
        let backend_keys: Vec<Key> = self.manifests.backends.iter().map(key_of).collect();
        let mut out = Vec::new();
        for js in &self.cluster.secrets {
            if listed(&secret_keys, &key_of(js)) || !in_scope(js.namespace()) {
                continue;
            }
            let mut plan = object("JujuSecret", js);
            plan.deleted = true;
            let entry = js.uid().and_then(|uid| self.ctx.ownership.entry(&uid));
            plan.model = entry.as_ref().map(|e| e.model.clone());
            self.name_model(&mut plan).await;
            if let Some(id) = entry.and_then(|e| e.uri) {
                plan.secret_id = Some(id.clone());
                let keeps = js.spec.deletion_policy == DeletionPolicy::Retain
                    || js.spec.management_policy == ManagementPolicy::ObserveOnly;
                plan.changes.push(if keeps {
                    Change::Retain { id }
                } else {
                    Change::Delete { id }
                });
            }
            out.push(plan);
        }
        for g in &self.cluster.grants {
            if listed(&grant_keys, &key_of(g)) || !in_scope(g.namespace()) {
                continue;
            }
            let mut plan = object("JujuSecretGrant", g);
            plan.deleted = true;
            if let Some(p) = grant::preview_deletion(g, self.ctx, all) {
                grant_changes(&mut plan, p);
            }
            self.name_model(&mut plan).await;
            out.push(plan);
        }
        if !self.manifests.backends.is_empty() {
            for b in &self.cluster.backends {
                if listed(&backend_keys, &key_of(b)) {
                    continue;
                }
                let mut plan = object("JujuSecretBackend", b);
                plan.deleted = true;
                if let Some(entry) = b
                    .uid()
                    .and_then(|uid| self.ctx.ownership.backend_entry(&uid))
                {
                    plan.changes
                        .push(if b.spec.deletion_policy == DeletionPolicy::Retain {
                            Change::Retain { id: entry.name }
                        } else {
                            Change::Delete { id: entry.name }
                        });
                }
                out.push(plan);
            }
        }
        out
    }
}

fn object<K: ResourceExt>(kind: &'static str, o: &K) -> ObjectPlan {
    ObjectPlan {
        kind,
        namespace: o.namespace(),
        name: o.name_any(),
        ..ObjectPlan::default()
    }
}

fn grant_changes(plan: &mut ObjectPlan, p: grant::GrantPreview) {
    plan.model = Some(p.model_uuid);
    plan.secret_id = p.secret_id;
    if !p.revoke_former.is_empty() {
        plan.changes.push(Change::Revoke {
            applications: p.revoke_former,
        });
    }
    // The operator's order: options given back before access is revoked, set after it
    // is granted.
    for option in p.wiring.restore {
        plan.changes.push(Change::RestoreOption { option });
    }
    if !p.revoke.is_empty() {
        plan.changes.push(Change::Revoke {
            applications: p.revoke,
        });
    }
    if !p.grant.is_empty() {
        plan.changes.push(Change::Grant {
            applications: p.grant,
        });
    }
    for option in p.wiring.set {
        plan.changes.push(Change::SetOption { option });
    }
    if !p.pending.is_empty() {
        plan.findings.push(Finding {
            reason: reason::APPLICATION_NOT_FOUND.into(),
            message: format!(
                "applications not found (yet): {}; granted once deployed",
                p.pending.join(", ")
            ),
        });
    }
    for (reason, messages) in [
        (reason::CONFLICT, p.wiring.conflicts),
        (reason::INVALID_SPEC, p.wiring.invalid),
    ] {
        for message in messages {
            plan.findings.push(Finding {
                reason: reason.into(),
                message,
            });
        }
    }
}

/// A problem that ends an object's pass: a finding when applying would report it, an
/// error when Kubernetes or Juju could not be read.
fn problem(plan: &mut ObjectPlan, p: Problem) {
    let unreadable = p.transient
        || [
            reason::JUJU_UNAVAILABLE,
            reason::UNAUTHORIZED,
            reason::KUBERNETES_ERROR,
        ]
        .contains(&p.reason);
    if unreadable {
        plan.error = Some(format!("{}: {}", p.reason, p.message));
    } else {
        plan.findings.push(Finding {
            reason: p.reason.into(),
            message: p.message,
        });
    }
}
