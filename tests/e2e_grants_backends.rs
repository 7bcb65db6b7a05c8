//! End-to-end tests of JujuSecretGrant and JujuSecretBackend: the operator binary against
//! a real kube-apiserver (1.20, scripts/kube-apiserver.sh) and the in-process Juju
//! emulator, through the same harness as tests/e2e.rs.
//!
//! One test brings the environment up once and runs the scenarios in sequence; a failed
//! scenario is recorded, cleaned up after, and the next one still runs; the test fails at
//! the end with every failure. The last steps grep the operator's log, every Event and
//! every status seen for each sensitive value the test wrote, and check that only the
//! contract's reasons were used.
//!
//! Without a built kube-apiserver the test is skipped with the reason, unless
//! `JSO_REQUIRE_E2E=1` (CI). Run dir (logs, etcd, kubeconfig): `target/tmp/e2e/`.
// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// Not every harness helper is used here.
#[allow(dead_code)]
#[path = "e2e/harness.rs"]
mod harness;
#[path = "e2e/health.rs"]
mod health;
#[path = "e2e/suite.rs"]
mod suite;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::{
    Env, MODEL, NS, NS_DENIED, NS_SYSTEM, SetupError, WAIT, assert_content, b64, revision,
    secret_id,
};
use juju_client::{BackendInfo, SecretSelector, SecretUri};
use juju_secrets_operator::crd::backend::JujuSecretBackend;
use juju_secrets_operator::crd::condition::{Condition, READY};
use juju_secrets_operator::crd::grant::{ConfiguredOption, JujuSecretGrant};
use juju_secrets_operator::crd::secret::JujuSecret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const POLL: Duration = Duration::from_millis(250);
/// Bound of one scenario.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(150);
/// A pending application is retried with backoff up to a minute.
const PENDING_WAIT: Duration = Duration::from_secs(75);
/// Cluster-scoped objects' events land here.
const EVENTS_NS: &str = "default";
const FORCE_DELETE: &str = "secrets.juju.is/force-delete";
const VAULT_ENDPOINT: &str = "https://vault.example:8200";

/// The environment plus what this file's waits saw (for the leak and reasons checks).
struct T {
    env: Arc<Env>,
    /// Every distinct grant/backend status (with metadata) seen, as JSON.
    seen: Mutex<BTreeSet<String>>,
    /// (kind, Ready reason) pairs seen.
    reasons: Mutex<BTreeSet<(String, String)>>,
    /// Backend names made unreachable (restored by the cleanup).
    unreachable: Mutex<BTreeSet<String>>,
    /// Everything `plan` printed (the leak check reads it).
    plans: Mutex<Vec<String>>,
}

macro_rules! steps {
    ($($f:ident),* $(,)?) => {
        vec![$((stringify!($f), (|t| Box::pin($f(t))) as suite::Step<T>)),*]
    };
}

/// Every scenario is its own test over one shared environment (tests/e2e/suite.rs).
fn main() -> ExitCode {
    suite::run(vec![suite::Group {
        prefix: "grants_backends",
        setup: || Box::pin(setup()),
        scenarios: steps![
            grant_and_revoke,
            two_grants_one_application,
            two_grants_applied_together,
            application_handed_over,
            outside_grant_never_revoked,
            application_created_later,
            config_wiring,
            config_wiring_conflicts_and_overwrite,
            external_secret,
            external_secret_removed_by_hand,
            grant_waits_for_jujusecret,
            grant_outlives_its_secret,
            forged_status_cannot_grant_across_tenants,
            crash_right_after_grant_still_revokes,
            backend_add_update_list_remove,
            backend_removed_by_hand,
            token_change_in_referenced_secret,
            unreachable_backend,
            writes_while_the_models_vault_is_unreachable,
            deletion_when_the_content_cannot_be_removed,
            backend_released_while_revisions_drain,
            backend_in_use,
            model_assignment,
            backend_name_taken,
            forged_backend_status_changes_nothing_in_juju,
            backend_add_answer_lost_is_recognized,
            invalid_backends,
            examples_are_valid,
            plan_then_apply,
            health_checks_on_real_statuses,
        ],
        after_each: |t, name| Box::pin(after_each(t, name)),
        closing: steps![
            no_sensitive_value_leaked,
            only_contract_reasons,
            ready_then_sigterm_exits_cleanly,
            no_soft_failures,
        ],
        timeout: SCENARIO_TIMEOUT,
    }])
}

async fn setup() -> Result<Option<Arc<T>>, String> {
    let started = Instant::now();
    let env = match Env::setup().await {
        Ok(env) => Arc::new(env),
        Err(SetupError::NoApiServer(why)) if harness::required() => {
            return Err(format!(
                "e2e environment cannot be brought up (JSO_REQUIRE_E2E=1): {why}"
            ));
        }
        Err(SetupError::NoApiServer(why)) => {
            eprintln!("e2e SKIPPED: {why}");
            return Ok(None);
        }
    };
    eprintln!("e2e: environment up in {:?}", started.elapsed());
    Ok(Some(Arc::new(T {
        env,
        seen: Mutex::default(),
        reasons: Mutex::default(),
        unreachable: Mutex::default(),
        plans: Mutex::default(),
    })))
}

/// After each scenario: a crashed operator fails the scenario (and is restarted); what
/// the scenario left is deleted.
async fn after_each(t: Arc<T>, name: &'static str) -> Result<(), String> {
    let crashed = t.env.restart_if_crashed(name).await;
    t.cleanup(name).await;
    crashed
}

/// After every scenario the operator has reconciled plenty: it must be ready; SIGTERM
/// then ends it with exit status 0.
async fn ready_then_sigterm_exits_cleanly(t: Arc<T>) {
    let mut op = t.env.operator.lock().await;
    let readyz = harness::http_get_status(op.metrics_port, "/readyz");
    assert_eq!(readyz, Some(200), "/readyz after the scenarios");
    match op.terminate(Duration::from_secs(15)) {
        Some(s) if s.success() => {}
        Some(s) => panic!("operator exited with {s} on SIGTERM, not 0"),
        None => panic!("operator did not exit within 15 s of SIGTERM"),
    }
}

/// Problems that did not stop a scenario, reported at the end.
async fn no_soft_failures(t: Arc<T>) {
    let soft = t.env.soft_failures.lock().unwrap().clone();
    eprintln!(
        "e2e: operator log: {}",
        t.env.dir.join("operator.log").display()
    );
    assert!(soft.is_empty(), "soft failures:\n- {}", soft.join("\n- "));
}

// ------------------------------------------------------------------ helpers

fn ready_of(conditions: &[Condition]) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == READY)
}

fn grant_ready(g: &JujuSecretGrant) -> Option<&Condition> {
    ready_of(&g.status.as_ref()?.conditions)
}

fn backend_ready(b: &JujuSecretBackend) -> Option<&Condition> {
    ready_of(&b.status.as_ref()?.conditions)
}

/// Ready=True/Synced for the current generation.
fn grant_synced(g: &JujuSecretGrant) -> bool {
    grant_ready(g).is_some_and(|c| c.status == "True" && c.reason == "Synced")
        && g.status.as_ref().and_then(|s| s.observed_generation) == g.metadata.generation
}

fn backend_synced(b: &JujuSecretBackend) -> bool {
    backend_ready(b).is_some_and(|c| c.status == "True" && c.reason == "Synced")
        && b.status.as_ref().and_then(|s| s.observed_generation) == b.metadata.generation
}

/// Ready=False with `reason`, computed for the current generation.
fn has_reason(c: Option<&Condition>, generation: Option<i64>, reason: &str) -> bool {
    c.is_some_and(|c| {
        c.status == "False"
            && c.reason == reason
            && (c.observed_generation.is_none() || c.observed_generation == generation)
    })
}

fn describe_grant(g: &JujuSecretGrant) -> String {
    match &g.status {
        None => format!("generation {:?}, no status", g.metadata.generation),
        Some(s) => format!(
            "generation {:?}, observedGeneration {:?}, secretId {:?}, granted {:?}, pending {:?}, owned {:?}, Ready {}",
            g.metadata.generation,
            s.observed_generation,
            s.secret_id,
            s.granted_applications,
            s.pending_applications,
            s.owned_applications,
            ready_of(&s.conditions).map_or("none".into(), |c| format!(
                "{}/{}: {}",
                c.status, c.reason, c.message
            ))
        ),
    }
}

fn describe_backend(b: &JujuSecretBackend) -> String {
    match &b.status {
        None => format!("generation {:?}, no status", b.metadata.generation),
        Some(s) => format!(
            "generation {:?}, observedGeneration {:?}, backendId {:?}, status {:?}, message {:?}, secretCount {:?}, assignedModels {:?}, deleting {}, Ready {}",
            b.metadata.generation,
            s.observed_generation,
            s.backend_id,
            s.status,
            s.message,
            s.secret_count,
            s.assigned_models,
            b.metadata.deletion_timestamp.is_some(),
            ready_of(&s.conditions).map_or("none".into(), |c| format!(
                "{}/{}: {}",
                c.status, c.reason, c.message
            ))
        ),
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Waits until `done` holds for the object, or panics with `describe` of the last view.
async fn wait_obj<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    within: Duration,
    mut observe: impl FnMut(&K),
    describe: impl Fn(&K) -> String,
    done: impl Fn(&K) -> bool,
) -> K
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let deadline = Instant::now() + within;
    loop {
        let obj = api.get_opt(name).await.unwrap();
        if let Some(o) = &obj {
            observe(o);
            if done(o) {
                return o.clone();
            }
        }
        if Instant::now() > deadline {
            panic!(
                "{name}: not {what} within {within:?}; last seen: {}",
                obj.as_ref().map_or("absent".into(), describe)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Deletes an object and waits until it is gone; `Err` with its state when it is not.
async fn delete_and_wait<K>(api: &Api<K>, name: &str, within: Duration) -> Result<(), K>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
        Err(e) => panic!("delete {name}: {e}"),
    }
    let deadline = Instant::now() + within;
    loop {
        match api.get_opt(name).await.unwrap() {
            None => return Ok(()),
            Some(o) if Instant::now() > deadline => return Err(o),
            Some(_) => tokio::time::sleep(POLL).await,
        }
    }
}

impl T {
    fn grants(&self, ns: &str) -> Api<JujuSecretGrant> {
        Api::namespaced(self.env.kube.clone(), ns)
    }

    fn backends(&self) -> Api<JujuSecretBackend> {
        Api::all(self.env.kube.clone())
    }

    fn record<S: Serialize>(&self, kind: &str, what: &S, ready: Option<&Condition>) {
        self.seen
            .lock()
            .unwrap()
            .insert(serde_json::to_string(what).unwrap());
        if let Some(c) = ready {
            self.reasons
                .lock()
                .unwrap()
                .insert((kind.to_owned(), c.reason.clone()));
        }
    }

    fn saw_grant(&self, g: &JujuSecretGrant) {
        self.record(
            "JujuSecretGrant",
            &(&g.status, &g.metadata.annotations, &g.metadata.labels),
            grant_ready(g),
        );
    }

    fn saw_backend(&self, b: &JujuSecretBackend) {
        self.record(
            "JujuSecretBackend",
            &(&b.status, &b.metadata.annotations, &b.metadata.labels),
            backend_ready(b),
        );
    }

    // -------------------------------------------------------------- grants

    async fn create_grant(&self, ns: &str, name: &str, spec: Value) -> JujuSecretGrant {
        let obj: JujuSecretGrant = serde_json::from_value(json!({
            "apiVersion": "secrets.juju.is/v1alpha1",
            "kind": "JujuSecretGrant",
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }))
        .unwrap();
        self.grants(ns)
            .create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("create JujuSecretGrant {ns}/{name}: {e}"))
    }

    async fn patch_grant(&self, ns: &str, name: &str, patch: Value) -> JujuSecretGrant {
        self.grants(ns)
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap()
    }

    async fn wait_grant(
        &self,
        ns: &str,
        name: &str,
        what: &str,
        within: Duration,
        done: impl Fn(&JujuSecretGrant) -> bool,
    ) -> JujuSecretGrant {
        wait_obj(
            &self.grants(ns),
            name,
            what,
            within,
            |g| self.saw_grant(g),
            describe_grant,
            done,
        )
        .await
    }

    async fn wait_grant_synced(
        &self,
        ns: &str,
        name: &str,
        done: impl Fn(&JujuSecretGrant) -> bool,
    ) -> JujuSecretGrant {
        self.wait_grant(ns, name, "Ready/Synced", WAIT, |g| {
            grant_synced(g) && done(g)
        })
        .await
    }

    async fn wait_grant_reason(&self, ns: &str, name: &str, reason: &str) -> JujuSecretGrant {
        self.wait_grant(ns, name, &format!("Ready=False/{reason}"), WAIT, |g| {
            has_reason(grant_ready(g), g.metadata.generation, reason)
        })
        .await
    }

    async fn delete_grant(&self, ns: &str, name: &str) {
        if let Err(g) = delete_and_wait(&self.grants(ns), name, WAIT).await {
            panic!(
                "JujuSecretGrant {ns}/{name} still present {WAIT:?} after delete (finalizers {:?}): {}",
                g.metadata.finalizers,
                describe_grant(&g)
            );
        }
    }

    /// A person grants `app` access to `uri` in Juju, outside the operator.
    async fn grant_by_hand(&self, uri: &SecretUri, app: &str) {
        let res = self
            .env
            .juju
            .grant_secret(
                &self.env.model_uuid,
                &SecretSelector::Uri(uri.clone()),
                &[app.to_owned()],
            )
            .await
            .unwrap();
        assert!(res.iter().all(Result::is_ok), "grant by hand: {res:?}");
    }

    /// The value a person or the operator set on an application's config option.
    async fn option_value(&self, app: &str, option: &str) -> Option<String> {
        let config = self
            .env
            .juju
            .application_config(&self.env.model_uuid, app)
            .await
            .unwrap();
        config
            .get(option)
            .unwrap_or_else(|| panic!("{app} has no option {option}"))
            .user_value()
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    }

    /// Waits until `app`'s `option` holds `want` (`None`: unset).
    async fn wait_option(&self, app: &str, option: &str, want: Option<&str>, ctx: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.option_value(app, option).await;
            if now.as_deref() == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{ctx}: {app}/{option} is {now:?}, not {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A person sets `app`'s `option` in Juju, as `juju config` does.
    async fn set_option_by_hand(&self, app: &str, option: &str, value: &str) {
        let res = self
            .env
            .juju
            .set_application_config(
                &self.env.model_uuid,
                &[(
                    app.to_owned(),
                    BTreeMap::from([(option.to_owned(), value.to_owned())]),
                )],
            )
            .await
            .unwrap();
        assert!(
            res.iter().all(Result::is_ok),
            "juju config by hand: {res:?}"
        );
    }

    /// A JujuSecret with inline data in `NS`, synced; its Juju URI.
    async fn jujusecret(&self, name: &str) -> SecretUri {
        let v = self.env.value(name);
        self.env
            .create_jsec(NS, name, json!({"model": MODEL, "data": {"password": v}}))
            .await;
        let o = self
            .env
            .wait_synced(NS, name, |o| secret_id(o).is_some())
            .await;
        SecretUri::parse(&secret_id(&o).unwrap()).unwrap()
    }

    /// Applications holding a view grant on a secret, as Juju reports them.
    async fn access(&self, uri: &SecretUri) -> BTreeSet<String> {
        let info = self
            .env
            .juju_by_uri(&uri.short())
            .await
            .unwrap_or_else(|| panic!("Juju secret {} not found", uri.short()));
        info.access
            .iter()
            .filter_map(|a| a.application().map(str::to_owned))
            .collect()
    }

    /// Waits until Juju's grants on `uri` are exactly `want`.
    async fn wait_access(&self, uri: &SecretUri, want: &[&str], ctx: &str) {
        let want = set(want);
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.access(uri).await;
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{ctx}: Juju grants on {} are {got:?}, expected {want:?} (waited {WAIT:?})",
                uri.short()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Juju's grants on `uri` are `want` now and still after `settle` (nothing revoked
    /// late).
    async fn access_stays(&self, uri: &SecretUri, want: &[&str], settle: Duration, ctx: &str) {
        let want = set(want);
        let deadline = Instant::now() + settle;
        loop {
            let got = self.access(uri).await;
            assert_eq!(got, want, "{ctx}: Juju grants on {}", uri.short());
            if Instant::now() > deadline {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    // -------------------------------------------------------------- backends

    async fn create_backend(&self, name: &str, spec: Value) -> JujuSecretBackend {
        self.create_backend_with(name, json!({}), spec).await
    }

    async fn create_backend_with(
        &self,
        name: &str,
        annotations: Value,
        spec: Value,
    ) -> JujuSecretBackend {
        let obj: JujuSecretBackend = serde_json::from_value(json!({
            "apiVersion": "secrets.juju.is/v1alpha1",
            "kind": "JujuSecretBackend",
            "metadata": {"name": name, "annotations": annotations},
            "spec": spec,
        }))
        .unwrap();
        self.backends()
            .create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("create JujuSecretBackend {name}: {e}"))
    }

    async fn patch_backend(&self, name: &str, patch: Value) -> JujuSecretBackend {
        self.backends()
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap()
    }

    async fn wait_backend(
        &self,
        name: &str,
        what: &str,
        within: Duration,
        done: impl Fn(&JujuSecretBackend) -> bool,
    ) -> JujuSecretBackend {
        wait_obj(
            &self.backends(),
            name,
            what,
            within,
            |b| self.saw_backend(b),
            describe_backend,
            done,
        )
        .await
    }

    async fn wait_backend_synced(
        &self,
        name: &str,
        done: impl Fn(&JujuSecretBackend) -> bool,
    ) -> JujuSecretBackend {
        self.wait_backend(name, "Ready/Synced", WAIT, |b| backend_synced(b) && done(b))
            .await
    }

    async fn wait_backend_reason(
        &self,
        name: &str,
        reason: &str,
        within: Duration,
    ) -> JujuSecretBackend {
        self.wait_backend(name, &format!("Ready=False/{reason}"), within, |b| {
            has_reason(backend_ready(b), b.metadata.generation, reason)
        })
        .await
    }

    async fn delete_backend(&self, name: &str, within: Duration) {
        if let Err(b) = delete_and_wait(&self.backends(), name, within).await {
            panic!(
                "JujuSecretBackend {name} still present {within:?} after delete (finalizers {:?}): {}",
                b.metadata.finalizers,
                describe_backend(&b)
            );
        }
    }

    /// A vault backend added in Juju by a person (not by a JujuSecretBackend).
    async fn vault_by_hand(&self, name: &str, endpoint: &str) {
        let mut config = juju_client::BackendConfig::default();
        config.insert("endpoint", endpoint);
        let res = self
            .env
            .juju
            .add_secret_backends(&[juju_client::NewBackend {
                name: name.into(),
                backend_type: "vault".into(),
                token_rotate_interval: None,
                config,
            }])
            .await
            .unwrap();
        assert!(res.iter().all(Result::is_ok), "add {name} by hand: {res:?}");
    }

    /// Undoes [`T::vault_by_hand`]: the model back on `auto`, the backend force-removed.
    async fn vault_removed_by_hand(&self, name: &str) {
        self.env
            .juju
            .set_secret_backend(&self.env.model_uuid, "auto")
            .await
            .unwrap();
        self.env
            .juju
            .remove_secret_backends(&[(name.to_owned(), true)])
            .await
            .unwrap();
    }

    /// Juju's view of a backend (revealed: sensitive keys included).
    async fn juju_backend(&self, name: &str) -> Option<BackendInfo> {
        self.env
            .juju
            .list_secret_backends(&[], true)
            .await
            .unwrap()
            .into_iter()
            .find(|b| b.name == name)
    }

    async fn wait_juju_backend(
        &self,
        name: &str,
        what: &str,
        done: impl Fn(Option<&BackendInfo>) -> bool,
    ) -> Option<BackendInfo> {
        let deadline = Instant::now() + WAIT;
        loop {
            let b = self.juju_backend(name).await;
            if done(b.as_ref()) {
                return b;
            }
            assert!(
                Instant::now() < deadline,
                "Juju backend {name}: not {what} within {WAIT:?}; last seen: {}",
                b.as_ref().map_or("absent".into(), |b| format!(
                    "type {}, keys {:?}, status {}, secrets {}",
                    b.backend_type, b.config, b.status, b.num_secrets
                ))
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until status.secretCount mirrors Juju's count for the backend (at least
    /// one: the emulator moves every revision of the model, so the count includes the
    /// model's other user secrets).
    async fn wait_secret_count_mirrored(&self, name: &str) {
        let juju = self
            .juju_backend(name)
            .await
            .unwrap_or_else(|| panic!("backend {name} not in Juju"))
            .num_secrets;
        assert!(juju >= 1, "Juju counts no secret in backend {name}");
        self.wait_backend(name, &format!("secretCount {juju} (Juju's)"), WAIT, |b| {
            b.status.as_ref().unwrap().secret_count == Some(juju)
        })
        .await;
    }

    async fn model_backend(&self) -> String {
        self.env
            .juju
            .secret_backend(&self.env.model_uuid)
            .await
            .unwrap()
    }

    async fn wait_model_backend(&self, want: &str, ctx: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.model_backend().await;
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{ctx}: model {MODEL} secret-backend is {got:?}, expected {want:?} (waited {WAIT:?})"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    async fn create_secret(&self, ns: &str, name: &str, data: &[(&str, &str)]) {
        self.env.create_secret(ns, name, data).await;
    }

    async fn set_secret_key(&self, ns: &str, name: &str, key: &str, value: &str) {
        self.env
            .patch_secret(ns, name, json!({"data": {key: b64(value)}}))
            .await;
    }

    fn unreachable(&self, name: &str, yes: bool) {
        self.env.emulator.faults().set_backend_reachable(name, !yes);
        let mut u = self.unreachable.lock().unwrap();
        if yes {
            u.insert(name.to_owned());
        } else {
            u.remove(name);
        }
    }

    // -------------------------------------------------------------- cleanup

    /// Leaves a clean slate after a scenario, passed or failed: no grants, no backends,
    /// no JujuSecrets, every backend reachable, the model back on `auto`.
    async fn cleanup(&self, scenario: &str) {
        self.env.emulator.faults().set_drain_delay(Duration::ZERO);
        for name in std::mem::take(&mut *self.unreachable.lock().unwrap()) {
            self.env
                .emulator
                .faults()
                .set_backend_reachable(&name, true);
        }
        for ns in [NS, NS_DENIED] {
            let api = self.grants(ns);
            let names: Vec<String> = api
                .list(&ListParams::default())
                .await
                .map(|l| {
                    l.items
                        .into_iter()
                        .filter_map(|o| o.metadata.name)
                        .collect()
                })
                .unwrap_or_default();
            for name in names {
                if delete_and_wait(&api, &name, Duration::from_secs(15))
                    .await
                    .is_err()
                {
                    self.env.soft_fail(format!(
                        "after {scenario}: JujuSecretGrant {ns}/{name} not removed within 15 s; finalizer stripped"
                    ));
                    strip_finalizers(&api, &name).await;
                }
            }
        }
        let api = self.backends();
        let names: Vec<String> = api
            .list(&ListParams::default())
            .await
            .map(|l| {
                l.items
                    .into_iter()
                    .filter_map(|o| o.metadata.name)
                    .collect()
            })
            .unwrap_or_default();
        for name in names {
            if delete_and_wait(&api, &name, Duration::from_secs(15))
                .await
                .is_err()
            {
                let _ = api
                    .patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"metadata": {"annotations": {FORCE_DELETE: "true"}}})),
                    )
                    .await;
                if delete_and_wait(&api, &name, Duration::from_secs(10))
                    .await
                    .is_err()
                {
                    self.env.soft_fail(format!(
                        "after {scenario}: JujuSecretBackend {name} not removed within 25 s, even forced; finalizer stripped"
                    ));
                    strip_finalizers(&api, &name).await;
                }
            }
        }
        if self
            .env
            .juju
            .secret_backend(&self.env.model_uuid)
            .await
            .ok()
            .as_deref()
            != Some("auto")
        {
            let _ = self
                .env
                .juju
                .set_secret_backend(&self.env.model_uuid, "auto")
                .await;
        }
        // Backends left in Juju (Retain, or a failed scenario).
        if let Ok(list) = self.env.juju.list_secret_backends(&[], false).await {
            let extra: Vec<(String, bool)> = list
                .into_iter()
                .filter(|b| b.backend_type != "controller")
                .map(|b| (b.name, true))
                .collect();
            if !extra.is_empty() {
                let _ = self.env.juju.remove_secret_backends(&extra).await;
            }
        }
        self.env.cleanup_all().await;
    }
}

async fn strip_finalizers<K>(api: &Api<K>, name: &str)
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let _ = api
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await;
}

// ------------------------------------------------------------------ grant scenarios

/// Grant two applications → both granted in Juju, status and events say so; remove one
/// from `applications` → revoked; delete the object → the rest revoked.
async fn grant_and_revoke(t: Arc<T>) {
    let uri = t.jujusecret("gr-secret").await;
    t.create_grant(
        NS,
        "gr",
        json!({"secretRef": {"name": "gr-secret"}, "applications": ["mysql", "wordpress"]}),
    )
    .await;
    let g = t
        .wait_grant_synced(NS, "gr", |g| {
            g.status.as_ref().unwrap().granted_applications == ["mysql", "wordpress"]
        })
        .await;
    let s = g.status.unwrap();
    assert_eq!(
        s.secret_id.as_deref(),
        Some(uri.short().as_str()),
        "secretId"
    );
    assert_eq!(s.model_uuid.as_deref(), Some(t.env.model_uuid.as_str()));
    assert!(s.pending_applications.is_empty(), "pendingApplications");
    assert_eq!(
        (s.granted_count, s.wanted_count),
        (2, 2),
        "granted/wanted counts"
    );
    t.wait_access(&uri, &["mysql", "wordpress"], "after create")
        .await;
    t.env.wait_event(NS, "gr", "Normal", "Granted").await;

    t.patch_grant(NS, "gr", json!({"spec": {"applications": ["mysql"]}}))
        .await;
    let g = t
        .wait_grant_synced(NS, "gr", |g| {
            g.status.as_ref().unwrap().granted_applications == ["mysql"]
        })
        .await;
    assert_eq!(g.status.unwrap().wanted_count, 1, "wantedCount");
    t.wait_access(&uri, &["mysql"], "wordpress removed from applications")
        .await;
    t.env.wait_event(NS, "gr", "Normal", "Revoked").await;

    t.delete_grant(NS, "gr").await;
    t.wait_access(&uri, &[], "grant object deleted").await;
    t.env.delete_jsec(NS, "gr-secret").await;
}

/// Two grant objects for one application: deleting one keeps it granted, deleting both
/// revokes it.
async fn two_grants_one_application(t: Arc<T>) {
    let uri = t.jujusecret("shared-secret").await;
    t.create_grant(
        NS,
        "share-a",
        json!({"secretRef": {"name": "shared-secret"}, "applications": ["mysql"]}),
    )
    .await;
    t.wait_grant_synced(NS, "share-a", |_| true).await;
    t.wait_access(&uri, &["mysql"], "share-a").await;
    t.create_grant(
        NS,
        "share-b",
        json!({"secretRef": {"name": "shared-secret"}, "applications": ["mysql", "wordpress"]}),
    )
    .await;
    t.wait_grant_synced(NS, "share-b", |g| {
        g.status.as_ref().unwrap().granted_count == 2
    })
    .await;
    t.wait_access(&uri, &["mysql", "wordpress"], "share-a + share-b")
        .await;

    // share-a made the mysql grant; share-b still lists mysql.
    t.delete_grant(NS, "share-a").await;
    t.access_stays(
        &uri,
        &["mysql", "wordpress"],
        Duration::from_secs(2) + harness::REFRESH,
        "share-a deleted, share-b still lists mysql",
    )
    .await;
    t.wait_grant_synced(NS, "share-b", |g| {
        g.status.as_ref().unwrap().granted_count == 2
    })
    .await;

    t.delete_grant(NS, "share-b").await;
    t.wait_access(&uri, &[], "both grant objects deleted").await;
    t.env.delete_jsec(NS, "shared-secret").await;
}

/// Two grant objects applied at once (`kubectl apply -f dir/`): whichever made the
/// grant, deleting one keeps it, deleting both revokes it.
async fn two_grants_applied_together(t: Arc<T>) {
    let uri = t.jujusecret("together-secret").await;
    for name in ["together-a", "together-b"] {
        t.create_grant(
            NS,
            name,
            json!({"secretRef": {"name": "together-secret"}, "applications": ["mysql"]}),
        )
        .await;
    }
    t.wait_grant_synced(NS, "together-a", |_| true).await;
    t.wait_grant_synced(NS, "together-b", |_| true).await;
    t.wait_access(&uri, &["mysql"], "both grant objects").await;
    t.delete_grant(NS, "together-a").await;
    t.access_stays(
        &uri,
        &["mysql"],
        Duration::from_secs(1),
        "together-a deleted, together-b still lists mysql",
    )
    .await;
    let b = t.grants(NS).get("together-b").await.unwrap();
    t.delete_grant(NS, "together-b").await;
    let ctx = format!(
        "both grant objects deleted (together-b before deletion: {})",
        describe_grant(&b)
    );
    t.wait_access(&uri, &[], &ctx).await;
    t.env.delete_jsec(NS, "together-secret").await;
}

/// An application one grant object lets go while another lists it stays granted, and
/// is revoked once no object lists it, whichever object's pass comes first. Here the
/// object that takes it over has recorded nothing when the first lets go: its passes
/// stop at its invalid config (which an apiserver without the CRD's CEL rules admits).
async fn application_handed_over(t: Arc<T>) {
    let uri = t.jujusecret("handover-secret").await;
    t.create_grant(
        NS,
        "handover-a",
        json!({"secretRef": {"name": "handover-secret"}, "applications": ["mysql"]}),
    )
    .await;
    t.wait_grant_synced(NS, "handover-a", |g| {
        g.status.as_ref().is_some_and(|s| s.granted_count == 1)
    })
    .await;
    t.wait_access(&uri, &["mysql"], "handover-a").await;
    t.create_grant(
        NS,
        "handover-b",
        json!({
            "secretRef": {"name": "handover-secret"},
            "applications": ["mysql"],
            "config": [{"application": "wordpress", "option": "blog-title"}],
        }),
    )
    .await;
    t.wait_grant_reason(NS, "handover-b", "InvalidSpec").await;
    t.patch_grant(
        NS,
        "handover-a",
        json!({"spec": {"applications": ["wordpress"]}}),
    )
    .await;
    t.wait_grant_synced(NS, "handover-a", |g| {
        g.status.as_ref().is_some_and(|s| s.granted_count == 1)
    })
    .await;
    t.access_stays(
        &uri,
        &["mysql", "wordpress"],
        Duration::from_secs(1),
        "handover-a lets mysql go, handover-b lists it",
    )
    .await;
    t.patch_grant(NS, "handover-b", json!({"spec": {"config": null}}))
        .await;
    t.wait_grant_synced(NS, "handover-b", |g| {
        g.status.as_ref().is_some_and(|s| s.granted_count == 1)
    })
    .await;
    t.delete_grant(NS, "handover-b").await;
    t.wait_access(&uri, &["wordpress"], "no grant object lists mysql any more")
        .await;
    t.delete_grant(NS, "handover-a").await;
    t.wait_access(&uri, &[], "handover-a deleted").await;

    // The same when the object letting go is deleted: the grant is handed over, and
    // goes with the last object that lists it.
    t.create_grant(
        NS,
        "handover-c",
        json!({"secretRef": {"name": "handover-secret"}, "applications": ["mysql"]}),
    )
    .await;
    t.wait_access(&uri, &["mysql"], "handover-c").await;
    t.create_grant(
        NS,
        "handover-d",
        json!({
            "secretRef": {"name": "handover-secret"},
            "applications": ["mysql"],
            "config": [{"application": "wordpress", "option": "blog-title"}],
        }),
    )
    .await;
    t.wait_grant_reason(NS, "handover-d", "InvalidSpec").await;
    t.delete_grant(NS, "handover-c").await;
    t.access_stays(
        &uri,
        &["mysql"],
        Duration::from_secs(1),
        "handover-c deleted, handover-d lists mysql",
    )
    .await;
    t.patch_grant(NS, "handover-d", json!({"spec": {"config": null}}))
        .await;
    t.wait_grant_synced(NS, "handover-d", |g| {
        g.status.as_ref().is_some_and(|s| s.granted_count == 1)
    })
    .await;
    t.delete_grant(NS, "handover-d").await;
    t.wait_access(&uri, &[], "handover-d deleted: nobody lists mysql")
        .await;
    t.env.delete_jsec(NS, "handover-secret").await;
}

/// A grant made outside the operator (before the object existed) is never revoked: not
/// when it leaves `applications`, not when the object is deleted.
async fn outside_grant_never_revoked(t: Arc<T>) {
    let uri = t.jujusecret("outside-secret").await;
    t.grant_by_hand(&uri, "mysql").await;
    t.create_grant(
        NS,
        "outside",
        json!({"secretRef": {"name": "outside-secret"}, "applications": ["mysql", "wordpress"]}),
    )
    .await;
    let g = t
        .wait_grant_synced(NS, "outside", |g| {
            g.status.as_ref().unwrap().granted_count == 2
        })
        .await;
    // Checked last: what Juju sees comes first.
    let owned = g.status.unwrap().owned_applications;
    t.wait_access(&uri, &["mysql", "wordpress"], "after create")
        .await;

    t.patch_grant(
        NS,
        "outside",
        json!({"spec": {"applications": ["wordpress"]}}),
    )
    .await;
    t.wait_grant_synced(NS, "outside", |g| {
        g.status.as_ref().unwrap().wanted_count == 1
    })
    .await;
    t.access_stays(
        &uri,
        &["mysql", "wordpress"],
        Duration::from_secs(2),
        "mysql (granted by hand) removed from applications",
    )
    .await;

    t.delete_grant(NS, "outside").await;
    t.wait_access(&uri, &["mysql"], "grant object deleted")
        .await;
    t.access_stays(
        &uri,
        &["mysql"],
        Duration::from_secs(1),
        "grant object deleted",
    )
    .await;
    assert!(
        !owned.contains(&"mysql".to_owned()),
        "ownedApplications {owned:?} claims the grant made by hand"
    );
    t.env.delete_jsec(NS, "outside-secret").await;
}

/// An application that does not exist yet: the others are granted, it is pending with
/// ApplicationNotFound, and it is granted once it appears.
async fn application_created_later(t: Arc<T>) {
    let uri = t.jujusecret("later-secret").await;
    t.create_grant(
        NS,
        "later",
        json!({"secretRef": {"name": "later-secret"}, "applications": ["mysql", "latecomer"]}),
    )
    .await;
    let g = t
        .wait_grant_reason(NS, "later", "ApplicationNotFound")
        .await;
    let s = g.status.unwrap();
    assert_eq!(s.pending_applications, ["latecomer"], "pendingApplications");
    assert_eq!(s.granted_applications, ["mysql"], "grantedApplications");
    assert_eq!(
        (s.granted_count, s.wanted_count),
        (1, 2),
        "granted/wanted counts"
    );
    let msg = &ready_of(&s.conditions).unwrap().message;
    assert!(
        msg.contains("latecomer"),
        "condition message names the app: {msg}"
    );
    t.wait_access(&uri, &["mysql"], "the existing app is not held back")
        .await;
    t.env
        .wait_event(NS, "later", "Warning", "ApplicationNotFound")
        .await;

    t.env
        .emulator
        .add_application(&t.env.model_uuid, "latecomer");
    let added = Instant::now();
    t.wait_grant(
        NS,
        "later",
        "Ready/Synced with latecomer",
        PENDING_WAIT,
        |g| {
            grant_synced(g)
                && g.status.as_ref().unwrap().granted_applications == ["latecomer", "mysql"]
                && g.status.as_ref().unwrap().pending_applications.is_empty()
        },
    )
    .await;
    eprintln!(
        "e2e: latecomer granted {:?} after it appeared",
        added.elapsed()
    );
    t.wait_access(&uri, &["latecomer", "mysql"], "latecomer appeared")
        .await;
    t.delete_grant(NS, "later").await;
    t.wait_access(&uri, &[], "grant object deleted").await;
    t.env.delete_jsec(NS, "later-secret").await;
}

/// Config wiring: an option gets the secret's URI only after its application holds the
/// grant (a failed grant call leaves it unset), an application that appears later gets
/// both, a recreated JujuSecret's new URI follows, and options taken out of the spec or
/// left by a deleted grant are restored to what they were (unset here).
async fn config_wiring(t: Arc<T>) {
    let uri = t.jujusecret("wire-secret").await;
    // The grant calls fail: nothing may be wired before the grant exists. Two failed
    // calls prove a whole pass ended after a failure (the retry starts only then).
    let grants = t.env.emulator.call_count("Secrets", "GrantSecret");
    t.env.emulator.faults().fail_next(
        "Secrets",
        "GrantSecret",
        1_000,
        "",
        "injected: the grant call fails",
    );
    t.create_grant(
        NS,
        "wire",
        json!({
            "secretRef": {"name": "wire-secret"},
            "applications": ["mysql", "wirelate"],
            "config": [
                {"application": "mysql", "option": "root-password"},
                {"application": "wirelate", "option": "credentials"},
            ],
        }),
    )
    .await;
    let deadline = Instant::now() + WAIT;
    while t.env.emulator.call_count("Secrets", "GrantSecret") < grants + 2 {
        assert!(
            Instant::now() < deadline,
            "fewer than two GrantSecret calls"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        t.option_value("mysql", "root-password").await,
        None,
        "the option was set although the grant call failed"
    );
    t.env
        .emulator
        .faults()
        .fail_next("Secrets", "GrantSecret", 0, "", "");
    let g = t.wait_grant_reason(NS, "wire", "ApplicationNotFound").await;
    let s = g.status.unwrap();
    assert_eq!(s.granted_applications, ["mysql"]);
    assert_eq!(
        s.configured,
        [ConfiguredOption {
            application: "mysql".into(),
            option: "root-password".into()
        }],
        "status.configured"
    );
    t.wait_access(&uri, &["mysql"], "mysql granted").await;
    t.wait_option("mysql", "root-password", Some(&uri.short()), "wired")
        .await;
    t.env.wait_event(NS, "wire", "Normal", "Configured").await;

    // The application appears: granted, then configured.
    t.env
        .emulator
        .add_application(&t.env.model_uuid, "wirelate");
    t.wait_grant(NS, "wire", "both configured", PENDING_WAIT, |g| {
        grant_synced(g) && g.status.as_ref().unwrap().configured.len() == 2
    })
    .await;
    t.wait_option(
        "wirelate",
        "credentials",
        Some(&uri.short()),
        "latecomer wired",
    )
    .await;

    // The JujuSecret is recreated: a new URI, and the options follow it.
    t.env.delete_jsec(NS, "wire-secret").await;
    let renewed = t.jujusecret("wire-secret").await;
    assert_ne!(renewed, uri, "a recreated JujuSecret has a new secret");
    t.wait_option(
        "mysql",
        "root-password",
        Some(&renewed.short()),
        "URI followed",
    )
    .await;
    t.wait_option(
        "wirelate",
        "credentials",
        Some(&renewed.short()),
        "URI followed",
    )
    .await;

    // Taken out of the spec: restored (it was unset); the grant stays.
    t.patch_grant(
        NS,
        "wire",
        json!({"spec": {"config": [{"application": "wirelate", "option": "credentials"}]}}),
    )
    .await;
    t.wait_option("mysql", "root-password", None, "entry removed")
        .await;
    t.wait_access(&renewed, &["mysql", "wirelate"], "grants stay")
        .await;

    // The grant object goes: the last option is restored too, then access is revoked.
    t.delete_grant(NS, "wire").await;
    t.wait_option("wirelate", "credentials", None, "grant deleted")
        .await;
    t.wait_access(&renewed, &[], "grant deleted").await;
    t.env.delete_jsec(NS, "wire-secret").await;
}

/// An option a person set to another secret is a Conflict and stays as it is; with
/// `overwrite` it is taken over and given back when the entry goes. A value that is not
/// a secret URI is never replaced; an option the charm does not have is InvalidSpec.
async fn config_wiring_conflicts_and_overwrite(t: Arc<T>) {
    let uri = t.jujusecret("wire2-secret").await;
    let theirs = t.jujusecret("wire2-theirs").await;
    t.set_option_by_hand("wordpress", "db-password", &theirs.short())
        .await;
    t.create_grant(
        NS,
        "wire2",
        json!({
            "secretRef": {"name": "wire2-secret"},
            "applications": ["wordpress"],
            "config": [{"application": "wordpress", "option": "db-password"}],
        }),
    )
    .await;
    let g = t.wait_grant_reason(NS, "wire2", "Conflict").await;
    let msg = ready_of(&g.status.unwrap().conditions)
        .unwrap()
        .message
        .clone();
    assert!(msg.contains("wordpress/db-password"), "{msg}");
    t.wait_access(&uri, &["wordpress"], "granted despite the conflict")
        .await;
    assert_eq!(
        t.option_value("wordpress", "db-password").await.as_deref(),
        Some(theirs.short().as_str()),
        "a person's value was replaced"
    );

    // overwrite: taken over; the entry removed: given back.
    t.patch_grant(
        NS,
        "wire2",
        json!({"spec": {"config": [{"application": "wordpress", "option": "db-password", "overwrite": true}]}}),
    )
    .await;
    t.wait_grant_synced(NS, "wire2", |g| {
        g.status.as_ref().unwrap().configured.len() == 1
    })
    .await;
    t.wait_option(
        "wordpress",
        "db-password",
        Some(&uri.short()),
        "overwritten",
    )
    .await;
    t.patch_grant(NS, "wire2", json!({"spec": {"config": null}}))
        .await;
    t.wait_option(
        "wordpress",
        "db-password",
        Some(&theirs.short()),
        "given back",
    )
    .await;

    // Taken over again; a second grant object cannot wire the same option, and its
    // deletion leaves the option alone.
    let overwrite = json!({"spec": {"config": [{"application": "wordpress", "option": "db-password", "overwrite": true}]}});
    t.patch_grant(NS, "wire2", overwrite).await;
    t.wait_option(
        "wordpress",
        "db-password",
        Some(&uri.short()),
        "taken again",
    )
    .await;
    t.create_grant(
        NS,
        "wire3",
        json!({
            "secretRef": {"name": "wire2-secret"},
            "applications": ["wordpress"],
            "config": [{"application": "wordpress", "option": "db-password", "overwrite": true}],
        }),
    )
    .await;
    let g = t.wait_grant_reason(NS, "wire3", "Conflict").await;
    let msg = ready_of(&g.status.unwrap().conditions)
        .unwrap()
        .message
        .clone();
    assert!(msg.contains("another JujuSecretGrant"), "{msg}");
    t.delete_grant(NS, "wire3").await;
    assert_eq!(
        t.option_value("wordpress", "db-password").await.as_deref(),
        Some(uri.short().as_str()),
        "the second grant's deletion changed the option"
    );

    // A person changes the option the operator set: it is theirs again (a Conflict
    // without overwrite), and nothing is written back.
    t.patch_grant(
        NS,
        "wire2",
        json!({"spec": {"config": [{"application": "wordpress", "option": "db-password"}]}}),
    )
    .await;
    t.wait_grant_synced(NS, "wire2", |_| true).await;
    t.set_option_by_hand("wordpress", "db-password", &theirs.short())
        .await;
    t.wait_grant_reason(NS, "wire2", "Conflict").await;
    assert_eq!(
        t.option_value("wordpress", "db-password").await.as_deref(),
        Some(theirs.short().as_str()),
        "a person's later change was overwritten"
    );

    // Not a secret URI: never replaced, even with overwrite. Unknown option: InvalidSpec.
    t.set_option_by_hand("wordpress", "blog-title", "Notes")
        .await;
    t.patch_grant(
        NS,
        "wire2",
        json!({"spec": {"config": [{"application": "wordpress", "option": "blog-title", "overwrite": true}]}}),
    )
    .await;
    t.wait_grant_reason(NS, "wire2", "Conflict").await;
    assert_eq!(
        t.option_value("wordpress", "blog-title").await.as_deref(),
        Some("Notes")
    );
    t.patch_grant(
        NS,
        "wire2",
        json!({"spec": {"config": [{"application": "wordpress", "option": "no-such-option"}]}}),
    )
    .await;
    t.wait_grant_reason(NS, "wire2", "InvalidSpec").await;

    // A config entry for an application the grant does not list: InvalidSpec (the
    // apiserver refuses it too where it runs the CRD's CEL rules, Kubernetes 1.25+).
    t.patch_grant(
        NS,
        "wire2",
        json!({"spec": {"config": [{"application": "mysql", "option": "root-password"}]}}),
    )
    .await;
    t.wait_grant_reason(NS, "wire2", "InvalidSpec").await;
    assert_eq!(t.option_value("mysql", "root-password").await, None);

    t.delete_grant(NS, "wire2").await;
    t.wait_access(&uri, &[], "grant deleted").await;
    t.env.delete_jsec(NS, "wire2-secret").await;
    t.env.delete_jsec(NS, "wire2-theirs").await;
}

/// Secrets made outside the operator, by URI and by name; a missing one is NotFound; a
/// namespace the tenancy policy keeps off the model is Forbidden with no grant call.
async fn external_secret(t: Arc<T>) {
    let v1 = t.env.value("ext1");
    let v2 = t.env.value("ext2");
    let by_uri = t.env.juju_create("ext-by-uri", &[("password", &v1)]).await;
    let by_name = t.env.juju_create("ext-by-name", &[("password", &v2)]).await;

    t.create_grant(
        NS,
        "ext-uri",
        json!({"external": {"model": MODEL, "uri": by_uri.full(&t.env.model_uuid)}, "applications": ["mysql"]}),
    )
    .await;
    t.create_grant(
        NS,
        "ext-short-uri",
        json!({"external": {"model": t.env.model_uuid, "uri": by_uri.short()}, "applications": ["wordpress"]}),
    )
    .await;
    t.create_grant(
        NS,
        "ext-name",
        json!({"external": {"model": MODEL, "name": "ext-by-name"}, "applications": ["wordpress"]}),
    )
    .await;
    let g = t.wait_grant_synced(NS, "ext-uri", |_| true).await;
    let s = g.status.unwrap();
    assert_eq!(s.secret_id.as_deref(), Some(by_uri.short().as_str()));
    assert_eq!(s.model_uuid.as_deref(), Some(t.env.model_uuid.as_str()));
    t.wait_grant_synced(NS, "ext-short-uri", |_| true).await;
    let g = t.wait_grant_synced(NS, "ext-name", |_| true).await;
    assert_eq!(
        g.status.unwrap().secret_id.as_deref(),
        Some(by_name.short().as_str())
    );
    t.wait_access(&by_uri, &["mysql", "wordpress"], "external by URI")
        .await;
    t.wait_access(&by_name, &["wordpress"], "external by name")
        .await;

    t.create_grant(
        NS,
        "ext-missing",
        json!({"external": {"model": MODEL, "name": "no-such-secret"}, "applications": ["mysql"]}),
    )
    .await;
    t.wait_grant_reason(NS, "ext-missing", "NotFound").await;

    let grants_before = t.env.emulator.call_count("Secrets", "GrantSecret");
    t.create_grant(
        NS_DENIED,
        "ext-denied",
        json!({"external": {"model": MODEL, "uri": by_uri.short()}, "applications": ["mysql", "wordpress"]}),
    )
    .await;
    t.wait_grant_reason(NS_DENIED, "ext-denied", "Forbidden")
        .await;
    assert_eq!(
        t.env.emulator.call_count("Secrets", "GrantSecret"),
        grants_before,
        "a Forbidden grant made GrantSecret calls"
    );

    t.delete_grant(NS, "ext-uri").await;
    t.wait_access(&by_uri, &["wordpress"], "ext-uri deleted")
        .await;
    t.delete_grant(NS, "ext-short-uri").await;
    t.delete_grant(NS, "ext-name").await;
    t.wait_access(&by_uri, &[], "external grants deleted").await;
    t.wait_access(&by_name, &[], "external grants deleted")
        .await;
    t.delete_grant(NS, "ext-missing").await;
    t.delete_grant(NS_DENIED, "ext-denied").await;
}

/// A grant whose JujuSecret is not Ready (its source Secret is missing) waits with
/// SecretNotReady, is granted once the source appears, and follows the JujuSecret when
/// it is deleted and recreated.
async fn grant_waits_for_jujusecret(t: Arc<T>) {
    t.env
        .create_jsec(
            NS,
            "nr-secret",
            json!({"model": MODEL, "secretRef": {"name": "nr-source"}}),
        )
        .await;
    t.env.wait_reason(NS, "nr-secret", "SourceNotFound").await;
    t.create_grant(
        NS,
        "nr",
        json!({"secretRef": {"name": "nr-secret"}, "applications": ["mysql"]}),
    )
    .await;
    let g = t.wait_grant_reason(NS, "nr", "SecretNotReady").await;
    assert!(
        g.status.as_ref().unwrap().granted_applications.is_empty(),
        "nothing granted while the JujuSecret is not Ready"
    );

    let v = t.env.value("nr");
    t.create_secret(NS, "nr-source", &[("password", &v)]).await;
    let js = t
        .env
        .wait_synced(NS, "nr-secret", |o| secret_id(o).is_some())
        .await;
    let uri = SecretUri::parse(&secret_id(&js).unwrap()).unwrap();
    let g = t
        .wait_grant_synced(NS, "nr", |g| g.status.as_ref().unwrap().granted_count == 1)
        .await;
    assert_eq!(
        g.status.unwrap().secret_id.as_deref(),
        Some(uri.short().as_str())
    );
    t.wait_access(&uri, &["mysql"], "source appeared").await;

    // Recreated: a new Juju secret; the grant follows it.
    t.env.delete_jsec(NS, "nr-secret").await;
    t.wait_grant_reason(NS, "nr", "SecretNotReady").await;
    t.env
        .create_jsec(
            NS,
            "nr-secret",
            json!({"model": MODEL, "secretRef": {"name": "nr-source"}}),
        )
        .await;
    let js = t
        .env
        .wait_synced(NS, "nr-secret", |o| secret_id(o).is_some())
        .await;
    let uri2 = SecretUri::parse(&secret_id(&js).unwrap()).unwrap();
    assert_ne!(uri2, uri, "the recreated JujuSecret has a new Juju secret");
    t.wait_grant_synced(NS, "nr", |g| {
        g.status.as_ref().unwrap().secret_id.as_deref() == Some(uri2.short().as_str())
    })
    .await;
    t.wait_access(&uri2, &["mysql"], "JujuSecret recreated")
        .await;
    t.delete_grant(NS, "nr").await;
    t.wait_access(&uri2, &[], "grant object deleted").await;
    t.env.delete_jsec(NS, "nr-secret").await;
}

/// The operator is killed right after its GrantSecret reached Juju, before any status
/// recorded it: the restarted operator still knows the grant is its own (the record is
/// written before the call), so deleting the grant object revokes it.
async fn crash_right_after_grant_still_revokes(t: Arc<T>) {
    let uri = t.jujusecret("crash-grant-secret").await;
    // The grant takes effect in Juju at once; its answer is held back, and the operator
    // is killed while it waits for it.
    let faults = t.env.emulator.faults();
    faults.set_answer_delay_for("Secrets", "GrantSecret", Duration::from_secs(20));
    t.create_grant(
        NS,
        "crash-grant",
        json!({"secretRef": {"name": "crash-grant-secret"}, "applications": ["mysql"]}),
    )
    .await;
    t.wait_access(&uri, &["mysql"], "granted, answer held back")
        .await;
    {
        let mut op = t.env.operator.lock().await;
        op.kill();
        faults.set_answer_delay_for("Secrets", "GrantSecret", Duration::ZERO);
        op.restart();
        op.wait_started().await;
    }
    t.wait_access(&uri, &["mysql"], "granted before the kill")
        .await;
    t.wait_grant_synced(NS, "crash-grant", |g| {
        g.status.as_ref().unwrap().granted_count == 1
    })
    .await;
    t.delete_grant(NS, "crash-grant").await;
    t.wait_access(&uri, &[], "the grant made before the kill is revoked")
        .await;
    t.env.delete_jsec(NS, "crash-grant-secret").await;
}

/// A person removes the external secret a grant names; the grant is edited before the
/// operator's listing of the model shows the removal, so GrantSecret goes out for a secret
/// that is gone. Juju answers "secret ... not found" for every application (it does not
/// look the URI up for the call): the grant says the secret is not found, never that the
/// applications are missing.
async fn external_secret_removed_by_hand(t: Arc<T>) {
    let v = t.env.value("ext-gone");
    let uri = t.env.juju_create("ext-gone", &[("password", &v)]).await;
    t.create_grant(
        NS,
        "ext-gone",
        json!({"external": {"model": MODEL, "uri": uri.short()}, "applications": ["mysql"]}),
    )
    .await;
    t.wait_grant_synced(NS, "ext-gone", |_| true).await;
    t.env
        .juju
        .remove_secrets(
            &t.env.model_uuid,
            &[juju_client::SecretRemoval {
                secret: SecretSelector::Uri(uri.clone()),
                revisions: None,
            }],
        )
        .await
        .unwrap();
    let grants = t.env.emulator.call_count("Secrets", "GrantSecret");
    t.patch_grant(
        NS,
        "ext-gone",
        json!({"spec": {"applications": ["mysql", "wordpress"]}}),
    )
    .await;
    t.wait_grant_reason(NS, "ext-gone", "NotFound").await;
    eprintln!(
        "e2e: external_secret_removed_by_hand: {} GrantSecret call(s) on the removed secret",
        t.env.emulator.call_count("Secrets", "GrantSecret") - grants
    );
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(t.env.kube.clone(), NS);
    let wrong: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some("ext-gone"))
        .filter(|e| e.involved_object.kind.as_deref() == Some("JujuSecretGrant"))
        .filter_map(|e| e.reason)
        .filter(|r| r == "ApplicationNotFound")
        .collect();
    assert!(
        wrong.is_empty(),
        "a removed secret was reported as missing applications: {wrong:?}"
    );
    t.delete_grant(NS, "ext-gone").await;
}

/// Team b (namespace NS_DENIED, not allowed to use the model) forges statuses, with only
/// status rights, so that its JujuSecret and its grant point at team a's secret: the
/// operator grants nothing and revokes nothing there.
async fn forged_status_cannot_grant_across_tenants(t: Arc<T>) {
    let uri = t.jujusecret("xt-secret").await;
    // A person granted mysql by hand on team a's secret.
    t.grant_by_hand(&uri, "mysql").await;
    let grants = t.env.emulator.call_count("Secrets", "GrantSecret");
    let revokes = t.env.emulator.call_count("Secrets", "RevokeSecret");

    t.env
        .create_jsec(
            NS_DENIED,
            "xt-decoy",
            json!({"model": MODEL, "data": {"password": t.env.value("xt-decoy")}}),
        )
        .await;
    t.env.wait_reason(NS_DENIED, "xt-decoy", "Forbidden").await;
    let tenant = t.env.status_tenant(NS_DENIED).await;
    let forged = json!({"status": {
        "secretId": uri.short(),
        "secretUri": uri.full(&t.env.model_uuid),
        "modelUuid": t.env.model_uuid,
        "owned": true,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Synced",
                        "message": "in sync", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
    }});
    Api::<JujuSecret>::namespaced(tenant.clone(), NS_DENIED)
        .patch_status("xt-decoy", &PatchParams::default(), &Patch::Merge(forged))
        .await
        .unwrap();
    t.create_grant(
        NS_DENIED,
        "xt-grant",
        json!({"secretRef": {"name": "xt-decoy"}, "applications": ["wordpress"]}),
    )
    .await;
    // The operator looked at the grant (its condition is about this generation).
    t.wait_grant_reason(NS_DENIED, "xt-grant", "SecretNotReady")
        .await;
    // The grant's own status forged too, claiming it granted mysql there; then deleted.
    let forged = json!({"status": {
        "secretId": uri.short(),
        "modelUuid": t.env.model_uuid,
        "ownedApplications": ["mysql"],
        "grantedApplications": ["mysql"],
    }});
    Api::<JujuSecretGrant>::namespaced(tenant, NS_DENIED)
        .patch_status("xt-grant", &PatchParams::default(), &Patch::Merge(forged))
        .await
        .unwrap();
    t.delete_grant(NS_DENIED, "xt-grant").await;
    assert_eq!(
        t.env.emulator.call_count("Secrets", "GrantSecret"),
        grants,
        "GrantSecret was called across tenants"
    );
    assert_eq!(
        t.env.emulator.call_count("Secrets", "RevokeSecret"),
        revokes,
        "RevokeSecret was called across tenants"
    );
    t.wait_access(&uri, &["mysql"], "after the forged grant")
        .await;
    t.env.delete_jsec(NS_DENIED, "xt-decoy").await;
    t.env.delete_jsec(NS, "xt-secret").await;
}

/// The JujuSecret goes away for good: the grant waits (SecretNotReady), and deleting
/// the grant does not wedge on the vanished secret.
async fn grant_outlives_its_secret(t: Arc<T>) {
    let uri = t.jujusecret("short-lived").await;
    t.create_grant(
        NS,
        "orphan",
        json!({"secretRef": {"name": "short-lived"}, "applications": ["mysql"]}),
    )
    .await;
    t.wait_grant_synced(NS, "orphan", |_| true).await;
    t.wait_access(&uri, &["mysql"], "granted").await;
    t.env.delete_jsec(NS, "short-lived").await;
    assert!(
        t.env.juju_by_uri(&uri.short()).await.is_none(),
        "the JujuSecret's Juju secret is still there"
    );
    t.wait_grant_reason(NS, "orphan", "SecretNotReady").await;
    t.delete_grant(NS, "orphan").await;
}

// ------------------------------------------------------------------ backend scenarios

/// Add (vault and kubernetes), update a plain key, rename, list, remove; Retain leaves
/// the backend in Juju.
async fn backend_add_update_list_remove(t: Arc<T>) {
    let token = t.env.value("vault-token");
    t.create_secret(NS_SYSTEM, "crud-creds", &[("token", &token)])
        .await;
    t.create_backend(
        "crud-vault",
        json!({
            "backendType": "vault",
            "config": {"endpoint": VAULT_ENDPOINT, "tls-server-name": "vault.one"},
            "configSecretRef": {"namespace": NS_SYSTEM, "name": "crud-creds"},
            "tokenRotateInterval": "24h",
        }),
    )
    .await;
    let b = t.wait_backend_synced("crud-vault", |_| true).await;
    let s = b.status.clone().unwrap();
    assert!(s.backend_id.is_some(), "backendId missing");
    assert_eq!(s.status.as_deref(), Some("active"), "Juju status");
    assert_eq!(s.secret_count, Some(0), "secretCount");
    assert_eq!(s.name.as_deref(), Some("crud-vault"), "status.name");
    assert!(s.assigned_models.is_empty(), "assignedModels");
    let mac1 = s.config_mac.clone().expect("configMac missing");
    t.env
        .wait_event(EVENTS_NS, "crud-vault", "Normal", "Created")
        .await;
    let info = t.juju_backend("crud-vault").await.expect("backend in Juju");
    assert_eq!(info.backend_type, "vault");
    assert_eq!(Some(info.id.as_str()), s.backend_id.as_deref(), "backendId");
    assert_eq!(info.config.get("endpoint"), Some(&json!(VAULT_ENDPOINT)));
    assert_eq!(
        info.config.get("tls-server-name"),
        Some(&json!("vault.one"))
    );
    assert!(
        info.config.get("token") == Some(&json!(token)),
        "the token in Juju is not the one in the referenced Secret"
    );
    assert_eq!(
        info.token_rotate_interval,
        Some(Duration::from_secs(86_400)),
        "token-rotate-interval"
    );

    t.create_backend(
        "crud-k8s",
        json!({
            "backendType": "kubernetes",
            "name": "crud-k8s-one",
            "config": {"endpoint": "https://k8s.example:6443", "namespace": "juju-secrets"},
        }),
    )
    .await;
    t.wait_backend_synced("crud-k8s", |_| true).await;
    let k = t
        .juju_backend("crud-k8s-one")
        .await
        .expect("kubernetes backend in Juju");
    assert_eq!(k.backend_type, "kubernetes");

    // List (what `kubectl get jujusecretbackends` reads) and its columns.
    let listed: BTreeSet<String> = t
        .backends()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|b| b.metadata.name)
        .collect();
    assert_eq!(listed, set(&["crud-k8s", "crud-vault"]), "listed backends");
    check_printer_columns(&t).await;

    // Update a plain key.
    t.patch_backend(
        "crud-vault",
        json!({"spec": {"config": {"tls-server-name": "vault.two"}}}),
    )
    .await;
    let b = t
        .wait_backend_synced("crud-vault", |b| {
            b.status.as_ref().unwrap().config_mac.as_deref() != Some(mac1.as_str())
        })
        .await;
    t.env
        .wait_event(EVENTS_NS, "crud-vault", "Normal", "Updated")
        .await;
    t.wait_juju_backend("crud-vault", "updated", |b| {
        b.is_some_and(|b| b.config.get("tls-server-name") == Some(&json!("vault.two")))
    })
    .await;
    assert_eq!(
        b.status.unwrap().backend_id,
        s.backend_id,
        "an update keeps the backend"
    );

    // Rename while unused: same Juju backend, new name.
    let k_id = k.id.clone();
    t.patch_backend("crud-k8s", json!({"spec": {"name": "crud-k8s-two"}}))
        .await;
    t.wait_backend_synced("crud-k8s", |b| {
        b.status.as_ref().unwrap().name.as_deref() == Some("crud-k8s-two")
    })
    .await;
    let renamed = t
        .wait_juju_backend("crud-k8s-two", "renamed", |b| b.is_some())
        .await
        .unwrap();
    assert_eq!(renamed.id, k_id, "a rename keeps the backend ID");
    assert!(
        t.juju_backend("crud-k8s-one").await.is_none(),
        "old name still in Juju"
    );

    // Remove.
    t.delete_backend("crud-vault", WAIT).await;
    t.env
        .wait_event(EVENTS_NS, "crud-vault", "Normal", "Deleted")
        .await;
    assert!(
        t.juju_backend("crud-vault").await.is_none(),
        "deleted backend still in Juju"
    );
    t.delete_backend("crud-k8s", WAIT).await;
    assert!(t.juju_backend("crud-k8s-two").await.is_none());

    // Retain.
    t.create_backend(
        "crud-retain",
        json!({"backendType": "vault", "config": {"endpoint": VAULT_ENDPOINT}, "deletionPolicy": "Retain"}),
    )
    .await;
    t.wait_backend_synced("crud-retain", |_| true).await;
    t.delete_backend("crud-retain", WAIT).await;
    t.env
        .wait_event(EVENTS_NS, "crud-retain", "Normal", "Retained")
        .await;
    assert!(
        t.juju_backend("crud-retain").await.is_some(),
        "Retain removed the backend from Juju"
    );
    t.env
        .juju
        .remove_secret_backends(&[("crud-retain".to_owned(), false)])
        .await
        .unwrap();
}

/// A backend removed from Juju by hand is added again; deleting the resource of a
/// backend already gone from Juju completes.
async fn backend_removed_by_hand(t: Arc<T>) {
    t.create_backend(
        "by-hand",
        json!({"backendType": "vault", "config": {"endpoint": VAULT_ENDPOINT}}),
    )
    .await;
    let b = t.wait_backend_synced("by-hand", |_| true).await;
    let first_id = b.status.unwrap().backend_id;
    let res = t
        .env
        .juju
        .remove_secret_backends(&[("by-hand".to_owned(), false)])
        .await
        .unwrap();
    assert!(res.iter().all(Result::is_ok), "remove by hand: {res:?}");
    // Re-added within a refresh or two.
    let again = t
        .wait_juju_backend("by-hand", "added again", |b| b.is_some())
        .await
        .unwrap();
    assert_ne!(Some(again.id.clone()), first_id, "the same ID came back");
    t.wait_backend_synced("by-hand", |b| {
        b.status.as_ref().unwrap().backend_id.as_deref() == Some(again.id.as_str())
    })
    .await;

    // Gone from Juju, then the resource deleted.
    t.env
        .juju
        .remove_secret_backends(&[("by-hand".to_owned(), false)])
        .await
        .unwrap();
    t.delete_backend("by-hand", WAIT).await;
}

/// `kubectl get jujusecretgrants,jujusecretbackends` shows useful columns.
async fn check_printer_columns(t: &T) {
    let crds: Api<CustomResourceDefinition> = Api::all(t.env.kube.clone());
    for (crd, want) in [
        (
            "jujusecretgrants.secrets.juju.is",
            &["Secret", "Granted", "Wanted", "Ready", "Age"][..],
        ),
        (
            "jujusecretbackends.secrets.juju.is",
            &["Type", "Juju Status", "Secrets", "Ready", "Age"][..],
        ),
    ] {
        let obj = crds.get(crd).await.unwrap();
        let cols: Vec<String> = obj.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.clone())
            .collect();
        for w in want {
            assert!(
                cols.iter().any(|c| c == w),
                "{crd}: printer columns {cols:?} lack {w}"
            );
        }
    }
}

/// The referenced Secret is missing → SourceNotFound; it appears → Synced; its token
/// changes → the backend is updated (Updated event, configMac changes, Juju has it).
async fn token_change_in_referenced_secret(t: Arc<T>) {
    let first = t.env.value("token-first");
    let second = t.env.value("token-second");
    t.create_backend(
        "rotating",
        json!({
            "backendType": "vault",
            "config": {"endpoint": VAULT_ENDPOINT},
            "configSecretRef": {"namespace": NS_SYSTEM, "name": "rotating-creds"},
        }),
    )
    .await;
    t.wait_backend_reason("rotating", "SourceNotFound", WAIT)
        .await;
    t.create_secret(NS_SYSTEM, "rotating-creds", &[("token", &first)])
        .await;
    let b = t.wait_backend_synced("rotating", |_| true).await;
    let mac1 = b.status.unwrap().config_mac.expect("configMac");
    t.wait_juju_backend("rotating", "holding the first token", |b| {
        b.is_some_and(|b| b.config.get("token") == Some(&json!(first)))
    })
    .await;

    t.set_secret_key(NS_SYSTEM, "rotating-creds", "token", &second)
        .await;
    let b = t
        .wait_backend_synced("rotating", |b| {
            b.status.as_ref().unwrap().config_mac.as_deref() != Some(mac1.as_str())
        })
        .await;
    assert!(b.status.unwrap().config_mac.is_some());
    t.env
        .wait_event(EVENTS_NS, "rotating", "Normal", "Updated")
        .await;
    t.wait_juju_backend("rotating", "holding the second token", |b| {
        b.is_some_and(|b| b.config.get("token") == Some(&json!(second)))
    })
    .await;
    t.delete_backend("rotating", WAIT).await;
}

/// Unreachable at add time → BackendUnreachable; reachable → Synced by itself. An added
/// backend going unreachable shows Juju's `error` status, and recovers too.
async fn unreachable_backend(t: Arc<T>) {
    t.unreachable("flaky", true);
    t.create_backend(
        "flaky",
        json!({"backendType": "vault", "config": {"endpoint": VAULT_ENDPOINT}}),
    )
    .await;
    let b = t
        .wait_backend_reason("flaky", "BackendUnreachable", WAIT)
        .await;
    let msg = backend_ready(&b).unwrap().message.clone();
    assert!(msg.contains("not reachable"), "condition message: {msg}");
    t.env
        .wait_event(EVENTS_NS, "flaky", "Warning", "BackendUnreachable")
        .await;
    assert!(
        t.juju_backend("flaky").await.is_none(),
        "added while unreachable"
    );

    t.unreachable("flaky", false);
    let b = t
        .wait_backend(
            "flaky",
            "Ready/Synced after becoming reachable",
            Duration::from_secs(70),
            backend_synced,
        )
        .await;
    assert_eq!(b.status.unwrap().status.as_deref(), Some("active"));
    assert!(
        t.juju_backend("flaky").await.is_some(),
        "not added once reachable"
    );

    // Unreachable once added: Juju reports `error`, mirrored; then back.
    t.unreachable("flaky", true);
    let b = t
        .wait_backend("flaky", "Juju status error", WAIT, |b| {
            has_reason(
                backend_ready(b),
                b.metadata.generation,
                "BackendUnreachable",
            ) && b.status.as_ref().unwrap().status.as_deref() == Some("error")
        })
        .await;
    assert!(
        b.status
            .unwrap()
            .message
            .is_some_and(|m| m.contains("not reachable")),
        "status.message mirrors Juju's"
    );
    t.unreachable("flaky", false);
    t.wait_backend(
        "flaky",
        "Ready/Synced again",
        Duration::from_secs(70),
        |b| backend_synced(b) && b.status.as_ref().unwrap().status.as_deref() == Some("active"),
    )
    .await;
    t.delete_backend("flaky", WAIT).await;
}

/// A backend storing revisions: deletion waits with InUse; it completes once the
/// backend is empty, or when forced by the annotation.
///
/// The emulator moves all of a model's revisions when its `secret-backend` changes, and
/// the operator returns assigned models to `auto` before removing a backend; so the
/// model is pointed at the backend directly with the Juju client (not through `models`).
async fn backend_in_use(t: Arc<T>) {
    let uuid = t.env.model_uuid.clone();
    t.create_backend(
        "busy",
        json!({"backendType": "vault", "config": {"endpoint": VAULT_ENDPOINT}}),
    )
    .await;
    t.wait_backend_synced("busy", |_| true).await;
    t.env.juju.set_secret_backend(&uuid, "busy").await.unwrap();
    let v = t.env.value("busy");
    let uri = t.env.juju_create("busy-secret", &[("password", &v)]).await;
    let info = t.env.juju_by_uri(&uri.short()).await.unwrap();
    assert_eq!(
        info.revisions
            .last()
            .and_then(|r| r.backend_name.as_deref()),
        Some("busy"),
        "the revision is stored in the backend"
    );
    t.wait_secret_count_mirrored("busy").await;

    t.backends()
        .delete("busy", &DeleteParams::default())
        .await
        .unwrap();
    let b = t.wait_backend_reason("busy", "InUse", WAIT).await;
    let msg = backend_ready(&b).unwrap().message.clone();
    assert!(
        msg.contains(FORCE_DELETE),
        "the InUse message should say how to force: {msg}"
    );
    t.env
        .wait_event(EVENTS_NS, "busy", "Warning", "InUse")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        t.backends().get_opt("busy").await.unwrap().is_some(),
        "a backend in use was deleted without force"
    );
    assert!(
        t.juju_backend("busy").await.is_some(),
        "removed from Juju while in use"
    );

    // Unused again: the deletion completes by itself.
    t.env.juju.set_secret_backend(&uuid, "auto").await.unwrap();
    t.delete_backend("busy", Duration::from_secs(70)).await;
    t.env
        .wait_event(EVENTS_NS, "busy", "Normal", "Deleted")
        .await;
    assert!(t.juju_backend("busy").await.is_none());

    // Forced.
    t.create_backend(
        "busy-forced",
        json!({"backendType": "vault", "config": {"endpoint": VAULT_ENDPOINT}}),
    )
    .await;
    t.wait_backend_synced("busy-forced", |_| true).await;
    t.env
        .juju
        .set_secret_backend(&uuid, "busy-forced")
        .await
        .unwrap();
    t.backends()
        .delete("busy-forced", &DeleteParams::default())
        .await
        .unwrap();
    t.wait_backend_reason("busy-forced", "InUse", WAIT).await;
    t.patch_backend(
        "busy-forced",
        json!({"metadata": {"annotations": {FORCE_DELETE: "true"}}}),
    )
    .await;
    let gone = delete_and_wait(&t.backends(), "busy-forced", WAIT).await;
    // The model pointed at the removed backend: back to auto either way.
    t.env.juju.set_secret_backend(&uuid, "auto").await.unwrap();
    if let Err(b) = gone {
        panic!(
            "forced deletion did not complete within {WAIT:?}: {}",
            describe_backend(&b)
        );
    }
    assert!(t.juju_backend("busy-forced").await.is_none());
}

/// `models` points the model's `secret-backend` at the backend; a second backend
/// claiming the model gets Conflict; removed from `models` → back to `auto`.
async fn model_assignment(t: Arc<T>) {
    let uuid = t.env.model_uuid.clone();
    t.create_backend(
        "assign-a",
        json!({"backendType": "vault", "config": {"endpoint": VAULT_ENDPOINT}, "models": [MODEL]}),
    )
    .await;
    let b = t
        .wait_backend_synced("assign-a", |b| {
            !b.status.as_ref().unwrap().assigned_models.is_empty()
        })
        .await;
    assert_eq!(
        b.status.unwrap().assigned_models,
        std::slice::from_ref(&uuid),
        "assignedModels"
    );
    t.wait_model_backend("assign-a", "assigned").await;
    t.env
        .wait_event(EVENTS_NS, "assign-a", "Normal", "ModelAssigned")
        .await;

    // New secrets of the model are stored there, and counted.
    let uri = t.jujusecret("assigned-secret").await;
    let info = t.env.juju_by_uri(&uri.short()).await.unwrap();
    assert_eq!(
        info.revisions
            .last()
            .and_then(|r| r.backend_name.as_deref()),
        Some("assign-a")
    );
    t.wait_secret_count_mirrored("assign-a").await;

    // A newer backend claiming the same model.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    t.create_backend(
        "assign-b",
        json!({"backendType": "vault", "config": {"endpoint": VAULT_ENDPOINT}, "models": [uuid]}),
    )
    .await;
    let b = t.wait_backend_reason("assign-b", "Conflict", WAIT).await;
    assert!(
        b.status.unwrap().assigned_models.is_empty(),
        "the newer backend claims the model"
    );
    assert_eq!(
        t.model_backend().await,
        "assign-a",
        "the older assignment holds"
    );
    t.delete_backend("assign-b", WAIT).await;
    assert_eq!(
        t.model_backend().await,
        "assign-a",
        "deleting the loser moved the model"
    );

    // Removed from `models`: back to auto.
    t.patch_backend("assign-a", json!({"spec": {"models": []}}))
        .await;
    t.wait_backend_synced("assign-a", |b| {
        b.status.as_ref().unwrap().assigned_models.is_empty()
    })
    .await;
    t.wait_model_backend("auto", "released").await;
    t.env
        .wait_event(EVENTS_NS, "assign-a", "Normal", "ModelReleased")
        .await;
    t.wait_backend("assign-a", "secretCount 0", WAIT, |b| {
        b.status.as_ref().unwrap().secret_count == Some(0)
    })
    .await;
    t.env.wait_synced(NS, "assigned-secret", |_| true).await;

    // Assigned again, then the backend deleted: the model goes back to auto and the
    // backend is removed (its revisions moved off with the model).
    t.patch_backend("assign-a", json!({"spec": {"models": [MODEL]}}))
        .await;
    t.wait_model_backend("assign-a", "assigned again").await;
    t.delete_backend("assign-a", WAIT).await;
    assert_eq!(
        t.model_backend().await,
        "auto",
        "deleted backend left the model on it"
    );
    assert!(t.juju_backend("assign-a").await.is_none());
    t.env.delete_jsec(NS, "assigned-secret").await;
}

/// A Juju backend of that name not made by this resource: Conflict, left untouched,
/// and not removed when the resource is deleted.
async fn backend_name_taken(t: Arc<T>) {
    t.vault_by_hand("taken", "https://vault.other:8200").await;
    let updates = t
        .env
        .emulator
        .call_count("SecretBackends", "UpdateSecretBackends");
    t.create_backend(
        "taken",
        json!({"backendType": "vault", "config": {"endpoint": VAULT_ENDPOINT}}),
    )
    .await;
    let b = t.wait_backend_reason("taken", "Conflict", WAIT).await;
    assert!(
        b.status.unwrap().backend_id.is_none(),
        "backendId of a backend not ours"
    );
    let info = t.juju_backend("taken").await.unwrap();
    assert_eq!(
        info.config.get("endpoint"),
        Some(&json!("https://vault.other:8200")),
        "the existing backend was changed"
    );
    assert_eq!(
        t.env
            .emulator
            .call_count("SecretBackends", "UpdateSecretBackends"),
        updates,
        "UpdateSecretBackends called on a backend not ours"
    );
    t.delete_backend("taken", WAIT).await;
    assert!(
        t.juju_backend("taken").await.is_some(),
        "deleting the conflicting resource removed a backend it did not make"
    );

    // Asked to, a resource takes the backend over: the spec's configuration is applied,
    // and it is this resource's to remove.
    // (Juju refuses a changed vault endpoint, so the spec keeps it.)
    let adopted =
        json!({"endpoint": "https://vault.other:8200", "tls-server-name": "vault.adopted"});
    t.create_backend(
        "taken",
        json!({"backendType": "vault", "config": adopted, "adopt": true}),
    )
    .await;
    t.wait_backend_synced("taken", |b| {
        b.status.as_ref().is_some_and(|s| s.backend_id.is_some())
    })
    .await;
    t.env
        .wait_event(EVENTS_NS, "taken", "Normal", "Adopted")
        .await;
    let info = t.juju_backend("taken").await.unwrap();
    assert_eq!(
        info.config.get("tls-server-name"),
        Some(&json!("vault.adopted")),
        "the adopted backend's configuration"
    );
    // A second resource cannot adopt what the first manages.
    t.create_backend(
        "taken-twice",
        json!({"name": "taken", "backendType": "vault", "config": {"endpoint": "https://vault.twice:8200"}, "adopt": true}),
    )
    .await;
    let b = t.wait_backend_reason("taken-twice", "Conflict", WAIT).await;
    let message = backend_ready(&b).unwrap().message.clone();
    assert!(
        message.contains("managed by another JujuSecretBackend"),
        "{message}"
    );
    t.delete_backend("taken-twice", WAIT).await;
    assert_eq!(
        t.juju_backend("taken")
            .await
            .map(|i| i.config.get("tls-server-name").cloned()),
        Some(Some(json!("vault.adopted"))),
        "the refused adoption changed or removed the backend"
    );
    t.delete_backend("taken", WAIT).await;
    assert!(
        t.juju_backend("taken").await.is_none(),
        "the adopted backend was left behind by a Delete policy"
    );
}

/// The answer to AddSecretBackends is lost (the operator is killed while Juju holds it
/// back, the backend already added): the restarted operator recognizes the backend by
/// its claim in the ownership record, not as somebody else's, and its deletion removes
/// it. The old status marker that served this was wiped by any failed pass.
async fn backend_add_answer_lost_is_recognized(t: Arc<T>) {
    let faults = t.env.emulator.faults();
    faults.set_answer_delay_for(
        "SecretBackends",
        "AddSecretBackends",
        Duration::from_secs(20),
    );
    t.create_backend(
        "lost-answer",
        json!({"backendType": "vault", "config": {"endpoint": VAULT_ENDPOINT}}),
    )
    .await;
    let deadline = Instant::now() + WAIT;
    while t.juju_backend("lost-answer").await.is_none() {
        assert!(Instant::now() < deadline, "the backend was never added");
        tokio::time::sleep(POLL).await;
    }
    {
        let mut op = t.env.operator.lock().await;
        op.kill();
        faults.set_answer_delay_for("SecretBackends", "AddSecretBackends", Duration::ZERO);
        op.restart();
        op.wait_started().await;
    }
    let b = t
        .wait_backend_synced("lost-answer", |b| {
            b.status.as_ref().is_some_and(|s| s.backend_id.is_some())
        })
        .await;
    assert_eq!(
        b.status.unwrap().backend_id,
        t.juju_backend("lost-answer").await.map(|i| i.id),
        "backendId"
    );
    t.delete_backend("lost-answer", WAIT).await;
    assert!(
        t.juju_backend("lost-answer").await.is_none(),
        "the backend whose add answer was lost was left behind"
    );
}

/// Status is output only for backends too: a client that may only write
/// `jujusecretbackends/status` forges every field the operator writes (the ID and name of
/// a person's backend, a model the person pointed there, a pending create, a config MAC)
/// and nothing changes in Juju, neither on the next passes nor when the object is
/// deleted.
async fn forged_backend_status_changes_nothing_in_juju(t: Arc<T>) {
    t.vault_by_hand("people-vault", "https://vault.people:8200")
        .await;
    let people = t.juju_backend("people-vault").await.unwrap();
    t.env
        .juju
        .set_secret_backend(&t.env.model_uuid, "people-vault")
        .await
        .unwrap();

    t.create_backend(
        "forge-ours",
        json!({"backendType": "vault", "config": {"endpoint": VAULT_ENDPOINT}}),
    )
    .await;
    t.wait_backend_synced("forge-ours", |b| {
        b.status.as_ref().is_some_and(|s| s.backend_id.is_some())
    })
    .await;
    let calls = || {
        [
            "AddSecretBackends",
            "UpdateSecretBackends",
            "RemoveSecretBackends",
        ]
        .map(|m| t.env.emulator.call_count("SecretBackends", m))
    };
    let before = calls();

    let forger = t.env.backend_status_forger(EVENTS_NS).await;
    let forged = json!({"status": {
        "backendId": people.id,
        "name": "people-vault",
        "assignedModels": [t.env.model_uuid],
        "pendingCreate": "2026-01-01T00:00:00Z",
        "configMac": "hmac-sha256:00",
    }});
    Api::<JujuSecretBackend>::all(forger)
        .patch_status("forge-ours", &PatchParams::default(), &Patch::Merge(forged))
        .await
        .unwrap();
    // The patch wakes the operator; proof that it looked before the checks.
    t.env.wait_reconciles_of("JujuSecretBackend", 2).await;
    let after = t.juju_backend("people-vault").await;
    assert_eq!(
        after.as_ref().map(|b| (&b.name, b.config.get("endpoint"))),
        Some((
            &"people-vault".to_owned(),
            Some(&json!("https://vault.people:8200"))
        )),
        "the person's backend was renamed, changed or removed after a forged status"
    );
    assert_eq!(
        calls(),
        before,
        "backend writes after a forged status (Add, Update, Remove)"
    );
    assert_eq!(
        t.model_backend().await,
        "people-vault",
        "the person's model assignment was changed after a forged status"
    );

    t.delete_backend("forge-ours", WAIT).await;
    assert!(
        t.juju_backend("forge-ours").await.is_none(),
        "deleting the object left the operator's own backend"
    );
    assert!(
        t.juju_backend("people-vault").await.is_some(),
        "deleting the object whose status was forged removed the person's backend"
    );
    assert_eq!(
        t.model_backend().await,
        "people-vault",
        "deleting the object whose status was forged released the person's model"
    );
    t.vault_removed_by_hand("people-vault").await;
}

/// The model stores secrets in a vault that goes out of reach: Juju refuses every write
/// at the top level (it fetches the backend before looking at any item). A new
/// JujuSecret and an edited one both report `BackendUnreachable`, nothing is created
/// meanwhile, and once the vault is back both converge without a restart: one secret
/// for the new object, one new revision for the edited one.
async fn writes_while_the_models_vault_is_unreachable(t: Arc<T>) {
    let old = t.jujusecret("vault-down-old").await;
    t.vault_by_hand("down-vault", VAULT_ENDPOINT).await;
    t.env
        .juju
        .set_secret_backend(&t.env.model_uuid, "down-vault")
        .await
        .unwrap();
    t.unreachable("down-vault", true);

    let v_new = t.env.value("vault-down-new");
    let v_old = t.env.value("vault-down-old-2");
    t.env
        .create_jsec(
            NS,
            "vault-down-new",
            json!({"model": MODEL, "data": {"password": v_new}}),
        )
        .await;
    t.env
        .patch_jsec(
            NS,
            "vault-down-old",
            json!({"spec": {"data": {"password": v_old}}}),
        )
        .await;
    t.env
        .wait_reason(NS, "vault-down-new", "BackendUnreachable")
        .await;
    t.env
        .wait_reason(NS, "vault-down-old", "BackendUnreachable")
        .await;
    assert!(
        t.env.juju_by_label("vault-down-new").await.is_empty(),
        "a secret was created while the vault was out of reach"
    );

    t.unreachable("down-vault", false);
    let new = t
        .env
        .wait_synced(NS, "vault-down-new", |o| secret_id(o).is_some())
        .await;
    let found = t.env.juju_by_label("vault-down-new").await;
    assert_eq!(
        found.len(),
        1,
        "secrets named vault-down-new after recovery"
    );
    assert_eq!(secret_id(&new), Some(found[0].uri.short()));
    assert_content(&found[0], &[("password", &v_new)], "vault-down-new");
    let edited = t
        .env
        .wait_synced(NS, "vault-down-old", |o| revision(o) == Some(2))
        .await;
    assert_eq!(secret_id(&edited), Some(old.short()));
    let info = t.env.juju_by_uri(&old.short()).await.unwrap();
    assert_eq!(info.latest_revision, 2);
    assert_content(&info, &[("password", &v_old)], "vault-down-old");

    t.env.delete_jsec(NS, "vault-down-new").await;
    t.env.delete_jsec(NS, "vault-down-old").await;
    t.vault_removed_by_hand("down-vault").await;
}

/// Deleting a JujuSecret whose content Juju cannot remove: its vault out of reach, or
/// force-removed while the model still names it (Juju then answers "not found" for the
/// backend, not the secret). Never a silent success that leaves the secret: the object
/// stays with a condition and a Warning saying why and what to do, is retried, and goes
/// once the vault is back, or at once with `deletionPolicy: Retain`, leaving the secret.
async fn deletion_when_the_content_cannot_be_removed(t: Arc<T>) {
    let stuck_deleting = |name: &'static str, reason: &'static str| {
        let t = t.clone();
        async move {
            t.env
                .jsecs(NS)
                .delete(name, &DeleteParams::default())
                .await
                .unwrap();
            let o = t.env.wait_reason(NS, name, reason).await;
            assert!(o.metadata.deletion_timestamp.is_some());
            let message = o
                .status
                .and_then(|s| s.conditions.into_iter().next())
                .map(|c| c.message)
                .unwrap_or_default();
            assert!(
                message.contains("deletionPolicy: Retain"),
                "the way out is not named: {message}"
            );
            t.env.wait_event(NS, name, "Warning", reason).await;
        }
    };

    // The vault out of reach: BackendUnreachable, then removed once it is back.
    t.vault_by_hand("del-vault", VAULT_ENDPOINT).await;
    t.env
        .juju
        .set_secret_backend(&t.env.model_uuid, "del-vault")
        .await
        .unwrap();
    let uri = t.jujusecret("del-unreachable").await;
    t.unreachable("del-vault", true);
    stuck_deleting("del-unreachable", "BackendUnreachable").await;
    assert!(t.env.juju_by_uri(&uri.short()).await.is_some());
    t.unreachable("del-vault", false);
    t.env.delete_jsec(NS, "del-unreachable").await;
    assert!(
        t.env.juju_by_uri(&uri.short()).await.is_none(),
        "the secret outlived its JujuSecret"
    );

    // The finalizer removed by hand while the cleanup cannot run: the operator sees the
    // object gone with its entry still in the ownership record, and removes the secret
    // as soon as Juju lets it.
    let uri = t.jujusecret("del-stripped").await;
    t.unreachable("del-vault", true);
    stuck_deleting("del-stripped", "BackendUnreachable").await;
    t.env
        .jsecs(NS)
        .patch(
            "del-stripped",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while t
        .env
        .jsecs(NS)
        .get_opt("del-stripped")
        .await
        .unwrap()
        .is_some()
    {
        assert!(Instant::now() < deadline, "the stripped object stayed");
        tokio::time::sleep(POLL).await;
    }
    assert!(t.env.juju_by_uri(&uri.short()).await.is_some());
    t.unreachable("del-vault", false);
    let deadline = Instant::now() + WAIT;
    while t.env.juju_by_uri(&uri.short()).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "the secret of an object whose finalizer was removed by hand outlived it"
        );
        tokio::time::sleep(POLL).await;
    }

    // The vault force-removed while the model names it: no secret of the model can be
    // removed. Retain lets the object go and leaves the secret.
    let uri = t.jujusecret("del-orphaned").await;
    t.env
        .juju
        .remove_secret_backends(&[("del-vault".to_owned(), true)])
        .await
        .unwrap();
    stuck_deleting("del-orphaned", "JujuError").await;
    assert!(
        t.env.juju_by_uri(&uri.short()).await.is_some(),
        "the secret is gone while the object says it could not be removed"
    );
    t.env
        .patch_jsec(
            NS,
            "del-orphaned",
            json!({"spec": {"deletionPolicy": "Retain"}}),
        )
        .await;
    t.env.delete_jsec(NS, "del-orphaned").await;
    assert!(t.env.juju_by_uri(&uri.short()).await.is_some(), "Retain");
    t.env
        .juju
        .set_secret_backend(&t.env.model_uuid, "auto")
        .await
        .unwrap();
}

/// Juju moves a model's revisions to its new backend asynchronously. A model released
/// from a JujuSecretBackend leaves revisions behind for a while: the status says so with
/// the count, deleting the backend waits with `InUse` (nothing forced) and completes by
/// itself once the drain is done.
async fn backend_released_while_revisions_drain(t: Arc<T>) {
    let faults = t.env.emulator.faults();
    faults.set_drain_delay(Duration::from_secs(4));
    t.create_backend(
        "drain-b",
        json!({"backendType": "vault", "config": {"endpoint": VAULT_ENDPOINT}, "models": [MODEL]}),
    )
    .await;
    t.wait_backend_synced("drain-b", |b| {
        !b.status.as_ref().unwrap().assigned_models.is_empty()
    })
    .await;
    t.wait_model_backend("drain-b", "assigned").await;
    let uri = t.jujusecret("drain-secret").await;
    let stored_in = |info: &juju_client::SecretInfo| {
        info.revisions
            .last()
            .and_then(|r| r.backend_name.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        stored_in(&t.env.juju_by_uri(&uri.short()).await.unwrap()),
        "drain-b"
    );

    t.patch_backend("drain-b", json!({"spec": {"models": []}}))
        .await;
    let b = t
        .wait_backend_synced("drain-b", |b| {
            b.status.as_ref().unwrap().assigned_models.is_empty()
                && backend_ready(b).is_some_and(|c| c.message.contains("draining"))
        })
        .await;
    assert_eq!(b.status.unwrap().secret_count, Some(1));
    t.backends()
        .delete("drain-b", &DeleteParams::default())
        .await
        .unwrap();
    t.wait_backend_reason("drain-b", "InUse", WAIT).await;
    assert!(
        t.juju_backend("drain-b").await.is_some(),
        "removed while in use"
    );
    t.delete_backend("drain-b", WAIT).await;
    assert!(t.juju_backend("drain-b").await.is_none());
    assert_eq!(
        stored_in(&t.env.juju_by_uri(&uri.short()).await.unwrap()),
        "internal",
        "the drained revision"
    );
    faults.set_drain_delay(Duration::ZERO);
    t.env.delete_jsec(NS, "drain-secret").await;
}

/// Invalid specs: a too-short tokenRotateInterval (InvalidSpec before any Juju call, or
/// refused at admission by an apiserver with CEL), a malformed one and an unknown type
/// (refused by the schema), a reserved name, and a misspelled sensitive key (Juju's error
/// comes back without the value).
async fn invalid_backends(t: Arc<T>) {
    let adds = || {
        t.env
            .emulator
            .call_count("SecretBackends", "AddSecretBackends")
    };

    // 10m passes the pattern; Juju's rule (0 or ≥ 1h) refuses it.
    let before = adds();
    let short = serde_json::from_value::<JujuSecretBackend>(json!({
        "apiVersion": "secrets.juju.is/v1alpha1",
        "kind": "JujuSecretBackend",
        "metadata": {"name": "short-rotate"},
        "spec": {"backendType": "vault", "config": {"endpoint": VAULT_ENDPOINT}, "tokenRotateInterval": "10m"},
    }))
    .unwrap();
    match t.backends().create(&PostParams::default(), &short).await {
        Err(kube::Error::Api(e)) => assert!(
            e.message.contains("1h"),
            "admission refused tokenRotateInterval 10m without a clear message: {}",
            e.message
        ),
        Err(e) => panic!("create short-rotate: {e}"),
        Ok(_) => {
            let b = t
                .wait_backend_reason("short-rotate", "InvalidSpec", WAIT)
                .await;
            let msg = backend_ready(&b).unwrap().message.clone();
            assert!(
                msg.contains("tokenRotateInterval") && msg.contains("10m") && msg.contains("1h"),
                "InvalidSpec message is not clear: {msg}"
            );
            t.env
                .wait_event(EVENTS_NS, "short-rotate", "Warning", "InvalidSpec")
                .await;
            assert_eq!(adds(), before, "an invalid interval reached Juju");
            t.patch_backend(
                "short-rotate",
                json!({"spec": {"tokenRotateInterval": "1h"}}),
            )
            .await;
            t.wait_backend_synced("short-rotate", |_| true).await;
            let info = t.juju_backend("short-rotate").await.unwrap();
            assert_eq!(info.token_rotate_interval, Some(Duration::from_secs(3600)));
            t.delete_backend("short-rotate", WAIT).await;
        }
    }

    // Malformed interval and unknown type: the schema refuses them.
    let dynamic: Api<DynamicObject> = Api::all_with(
        t.env.kube.clone(),
        &ApiResource::erase::<JujuSecretBackend>(&()),
    );
    let raw = |name: &str, spec: Value| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "secrets.juju.is/v1alpha1",
            "kind": "JujuSecretBackend",
            "metadata": {"name": name},
            "spec": spec,
        }))
        .unwrap()
    };
    let err = dynamic
        .create(
            &PostParams::default(),
            &raw(
                "bad-type",
                json!({"backendType": "aws-secrets-manager", "config": {"endpoint": VAULT_ENDPOINT}}),
            ),
        )
        .await
        .expect_err("an unknown backendType was accepted");
    let text = err.to_string();
    assert!(
        text.contains("backendType") && text.contains("vault") && text.contains("kubernetes"),
        "the rejection of an unknown backendType should name the field and the allowed values: {text}"
    );
    let err = dynamic
        .create(
            &PostParams::default(),
            &raw(
                "bad-interval",
                json!({"backendType": "vault", "config": {"endpoint": VAULT_ENDPOINT}, "tokenRotateInterval": "daily"}),
            ),
        )
        .await
        .expect_err("a malformed tokenRotateInterval was accepted");
    assert!(
        err.to_string().contains("tokenRotateInterval"),
        "the rejection should name tokenRotateInterval: {err}"
    );

    // A reserved name (CEL at admission where supported, else the operator).
    let before = adds();
    match dynamic
        .create(
            &PostParams::default(),
            &raw(
                "internal",
                json!({"backendType": "vault", "config": {"endpoint": VAULT_ENDPOINT}}),
            ),
        )
        .await
    {
        Err(e) => assert!(e.to_string().contains("reserved"), "{e}"),
        Ok(_) => {
            let b = t.wait_backend_reason("internal", "InvalidSpec", WAIT).await;
            let msg = backend_ready(&b).unwrap().message.clone();
            assert!(msg.contains("reserved"), "InvalidSpec message: {msg}");
            assert_eq!(adds(), before, "a reserved name reached Juju");
            t.delete_backend("internal", WAIT).await;
        }
    }

    // A misspelled sensitive key: Juju refuses the unknown key; its message quotes the
    // value, which must not reach the status, events or log.
    let typo = t.env.value("typo-token");
    t.create_secret(NS_SYSTEM, "typo-creds", &[("Token", &typo)])
        .await;
    t.create_backend(
        "typo",
        json!({
            "backendType": "vault",
            "config": {"endpoint": VAULT_ENDPOINT},
            "configSecretRef": {"namespace": NS_SYSTEM, "name": "typo-creds"},
        }),
    )
    .await;
    let b = t.wait_backend_reason("typo", "InvalidSpec", WAIT).await;
    let msg = backend_ready(&b).unwrap().message.clone();
    assert!(msg.contains("Token"), "the message names the key: {msg}");
    assert!(!msg.contains(&typo), "the message shows the value");
    t.delete_backend("typo", WAIT).await;
}

/// examples/grant.yaml, examples/backend.yaml and the seed workflow (50-seed-workflow.yaml)
/// parse as the operator's types and pass
/// the apiserver's validation (server-side dry run; nothing is stored).
async fn examples_are_valid(t: Arc<T>) {
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(t.env.kube.clone());
    let demo = serde_json::from_value(json!({"metadata": {"name": "demo"}})).unwrap();
    match ns.create(&PostParams::default(), &demo).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("create namespace demo: {e}"),
    }
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let mut kinds = Vec::new();
    for file in [
        "examples/grant.yaml",
        "examples/backend.yaml",
        "examples/50-seed-workflow.yaml",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
            .map(|doc| Value::deserialize(doc).unwrap())
            .collect();
        for value in docs {
            let kind = value["kind"].as_str().unwrap_or_default().to_owned();
            let name = value["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let ctx = format!("{file}: {kind} {name}");
            let (resource, namespaced) = match kind.as_str() {
                "JujuSecretGrant" => {
                    serde_json::from_value::<JujuSecretGrant>(value.clone())
                        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    (ApiResource::erase::<JujuSecretGrant>(&()), true)
                }
                "JujuSecretBackend" => {
                    serde_json::from_value::<JujuSecretBackend>(value.clone())
                        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    (ApiResource::erase::<JujuSecretBackend>(&()), false)
                }
                "JujuSecret" => {
                    serde_json::from_value::<JujuSecret>(value.clone())
                        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    (ApiResource::erase::<JujuSecret>(&()), true)
                }
                "Secret" => (
                    ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&()),
                    true,
                ),
                other => panic!("{ctx}: unexpected kind {other}"),
            };
            let api: Api<DynamicObject> = if namespaced {
                let ns = value["metadata"]["namespace"].as_str().unwrap_or("default");
                Api::namespaced_with(t.env.kube.clone(), ns, &resource)
            } else {
                Api::all_with(t.env.kube.clone(), &resource)
            };
            let obj: DynamicObject = serde_json::from_value(value).unwrap();
            api.create(&dry, &obj)
                .await
                .unwrap_or_else(|e| panic!("{ctx}: refused by the apiserver: {e}"));
            kinds.push(kind);
        }
    }
    for want in ["JujuSecretGrant", "JujuSecretBackend"] {
        assert!(kinds.iter().any(|k| k == want), "no {want} in the examples");
    }
}

// ------------------------------------------------------------------ plan

/// The JSON objects of a plan, the text of its output, and its exit status.
struct PlanRun {
    json: Value,
    text: String,
    code: Option<i32>,
}

impl T {
    /// A kubeconfig for the user `jso-plan`, whose only rights are deploy/plan-rbac.yaml
    /// and whose every request the apiserver audits.
    async fn plan_kubeconfig(&self) -> std::path::PathBuf {
        use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/plan-rbac.yaml"),
        )
        .unwrap();
        let role: ClusterRole = serde_yaml_ng::from_str(&text).unwrap();
        let binding: ClusterRoleBinding = serde_json::from_value(json!({
            "metadata": {"name": "jso-plan"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": role.metadata.name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "jso-plan"}],
        }))
        .unwrap();
        let pp = PostParams::default();
        for r in [
            Api::<ClusterRole>::all(self.env.kube.clone())
                .create(&pp, &role)
                .await
                .map(drop),
            Api::<ClusterRoleBinding>::all(self.env.kube.clone())
                .create(&pp, &binding)
                .await
                .map(drop),
        ] {
            match r {
                Ok(()) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => panic!("plan RBAC: {e}"),
            }
        }
        let mut kubeconfig: Value = serde_yaml_ng::from_str(
            &std::fs::read_to_string(self.env.dir.join("kube/kubeconfig")).unwrap(),
        )
        .unwrap();
        kubeconfig["users"] = json!([{"name": "admin", "user": {"token": "plantoken"}}]);
        let path = self.env.dir.join("plan-kubeconfig");
        std::fs::write(&path, serde_yaml_ng::to_string(&kubeconfig).unwrap()).unwrap();
        path
    }

    /// Runs `plan` over `manifests` as `jso-plan`, with the operator frozen meanwhile so
    /// that every Juju call made in between is the plan's; asserts it made no write on
    /// either side and that it did read both.
    async fn plan(&self, manifests: &str, extra: &[&str]) -> PlanRun {
        let kubeconfig = self.plan_kubeconfig().await;
        let file = self.env.dir.join(format!("plan-{}.yaml", harness::tag()));
        std::fs::write(&file, manifests).unwrap();
        let audit = self.env.dir.join("kube/audit.log");
        let audited_before = std::fs::read_to_string(&audit).unwrap_or_default().len();
        let calls_before = self.env.emulator.call_counts();
        let operator = self.env.operator.lock().await;
        operator.signal("STOP");
        let run = |format: &'static str| {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_juju-secrets-operator"));
            cmd.arg("plan")
                .arg("-f")
                .arg(&file)
                .args(["-o", format, "--kubeconfig"])
                .arg(&kubeconfig)
                .args([
                    "--juju-connection-secret",
                    &format!("{NS_SYSTEM}/juju-admin"),
                ])
                .arg("--tenancy-policy")
                .arg(self.env.dir.join("tenancy.yaml"))
                .args(extra)
                .env_remove("KUBECONFIG");
            cmd.output().unwrap()
        };
        let (json_out, text_out) = tokio::task::block_in_place(|| (run("json"), run("text")));
        operator.signal("CONT");
        drop(operator);
        let calls_after = self.env.emulator.call_counts();

        let stderr = String::from_utf8_lossy(&json_out.stderr).into_owned();
        let text = String::from_utf8_lossy(&text_out.stdout).into_owned();
        let stdout = String::from_utf8_lossy(&json_out.stdout).into_owned();
        self.plans
            .lock()
            .unwrap()
            .extend([stdout.clone(), stderr.clone(), text.clone()]);
        assert_eq!(
            json_out.status.code(),
            text_out.status.code(),
            "both formats exit alike"
        );
        let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!("plan -o json printed no JSON ({e}): {stdout}\nstderr: {stderr}")
        });

        // Juju: only reads, and some were made.
        let changed: BTreeMap<&String, u64> = calls_after
            .iter()
            .map(|(m, n)| (m, n - calls_before.get(m).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .collect();
        let reads = [
            "Admin.Login",
            "Pinger.Ping",
            "ModelManager.ListModels",
            "ModelManager.ListModelSummaries",
            "ModelManager.ModelInfo",
            "Secrets.ListSecrets",
            "SecretBackends.ListSecretBackends",
            "ModelConfig.ModelGet",
            "ModelConfig.GetModelConstraints",
            "Application.Get",
            "Application.GetConfig",
            "Application.CharmConfig",
        ];
        let writes: Vec<_> = changed
            .keys()
            .filter(|m| !reads.contains(&m.as_str()))
            .collect();
        assert!(
            writes.is_empty(),
            "plan called Juju methods that are not reads: {writes:?} (all: {changed:?})"
        );
        assert!(
            changed.contains_key(&"Secrets.ListSecrets".to_owned()),
            "the plan never read Juju's secrets: {changed:?}"
        );

        // Kubernetes: every request of jso-plan was a read, and there were some.
        let audited = std::fs::read_to_string(&audit).unwrap_or_default();
        let verbs: Vec<String> = audited[audited_before.min(audited.len())..]
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["user"]["username"] == "jso-plan")
            .map(|e| {
                format!(
                    "{} {}",
                    e["verb"].as_str().unwrap_or_default(),
                    e["requestURI"].as_str().unwrap_or_default()
                )
            })
            .collect();
        assert!(
            !verbs.is_empty(),
            "no request of jso-plan in {}",
            audit.display()
        );
        let not_reads: Vec<&String> = verbs
            .iter()
            .filter(|v| !(v.starts_with("get ") || v.starts_with("list ")))
            .collect();
        assert!(
            not_reads.is_empty(),
            "plan asked the apiserver for more than reads: {not_reads:?}"
        );
        PlanRun {
            json,
            text,
            code: json_out.status.code(),
        }
    }

    /// Applies manifests with server-side apply, as `kubectl apply --server-side` does.
    async fn apply_manifests(&self, manifests: &str) {
        let pp = PatchParams::apply("e2e-plan").force();
        let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(manifests)
            .map(|doc| Value::deserialize(doc).unwrap())
            .collect();
        for value in docs {
            let name = value["metadata"]["name"].as_str().unwrap().to_owned();
            match value["kind"].as_str().unwrap() {
                "JujuSecret" => drop(
                    self.env
                        .jsecs(NS)
                        .patch(&name, &pp, &Patch::Apply(&value))
                        .await
                        .unwrap(),
                ),
                "JujuSecretGrant" => drop(
                    self.grants(NS)
                        .patch(&name, &pp, &Patch::Apply(&value))
                        .await
                        .unwrap(),
                ),
                "JujuSecretBackend" => drop(
                    self.backends()
                        .patch(&name, &pp, &Patch::Apply(&value))
                        .await
                        .unwrap(),
                ),
                other => panic!("unexpected kind {other}"),
            }
        }
    }
}

/// The manifests of the plan scenario: `plan-a` renamed with one key changed, one added
/// and one removed; `plan-b` new; `plan-c` new with a generated value (which a plan must
/// not store); the grant moved from mysql to wordpress, whose `db-password` option gets
/// the secret's URI; the backend given the model.
fn plan_manifests(beta: &str, delta: &str, one: &str, alpha: &str, suspend_b: bool) -> String {
    format!(
        r#"apiVersion: secrets.juju.is/v1alpha1
kind: JujuSecret
metadata: {{name: plan-a, namespace: {NS}}}
spec:
  model: {MODEL}
  name: plan-a-renamed
  keepRevisions: 1
  data: {{alpha: "{alpha}", beta: "{beta}", delta: "{delta}"}}
---
apiVersion: secrets.juju.is/v1alpha1
kind: JujuSecret
metadata: {{name: plan-b, namespace: {NS}}}
spec:
  model: {MODEL}
  suspend: {suspend_b}
  data: {{one: "{one}"}}
---
apiVersion: secrets.juju.is/v1alpha1
kind: JujuSecret
metadata: {{name: plan-c, namespace: {NS}}}
spec:
  model: {MODEL}
  generate: [{{key: token, length: 24}}]
---
apiVersion: secrets.juju.is/v1alpha1
kind: JujuSecretGrant
metadata: {{name: plan-a-readers, namespace: {NS}}}
spec:
  secretRef: {{name: plan-a}}
  applications: [wordpress]
  config: [{{application: wordpress, option: db-password}}]
---
apiVersion: secrets.juju.is/v1alpha1
kind: JujuSecretBackend
metadata: {{name: plan-vault}}
spec:
  backendType: vault
  config: {{endpoint: "{VAULT_ENDPOINT}"}}
  models: ["{MODEL}"]
"#
    )
}

/// `plan` says exactly what applying a manifest set will do — a rename, a new revision
/// with one key changed, one added and one removed, a new secret, a grant and a revoke,
/// a config option wired, a model switched to a backend — reading only (as a user with read rights, every
/// apiserver request audited, every Juju call counted); applying the set then does
/// exactly that; a plan of the applied set says nothing and exits 0; `--prune` plans the
/// deletion of an object the set no longer holds.
async fn plan_then_apply(t: Arc<T>) {
    let env = &t.env;
    let (alpha, beta, gamma) = (
        env.value("plan-alpha"),
        env.value("plan-beta"),
        env.value("plan-gamma"),
    );
    let (beta2, delta, one) = (
        env.value("plan-beta2"),
        env.value("plan-delta"),
        env.value("plan-one"),
    );
    // wordpress/db-password starts unset (earlier scenarios leave a person's value).
    let reset = env
        .juju
        .unset_application_config(
            &env.model_uuid,
            &[("wordpress".to_owned(), vec!["db-password".to_owned()])],
        )
        .await
        .unwrap();
    assert!(reset.iter().all(Result::is_ok), "reset: {reset:?}");
    // Before, applied as a GitOps tool would (one field manager, server-side apply): a
    // secret with three keys read by mysql, and a backend with no model.
    let before = format!(
        r#"apiVersion: secrets.juju.is/v1alpha1
kind: JujuSecret
metadata: {{name: plan-a, namespace: {NS}}}
spec:
  model: {MODEL}
  data: {{alpha: "{alpha}", beta: "{beta}", gamma: "{gamma}"}}
---
apiVersion: secrets.juju.is/v1alpha1
kind: JujuSecretGrant
metadata: {{name: plan-a-readers, namespace: {NS}}}
spec:
  secretRef: {{name: plan-a}}
  applications: [mysql]
---
apiVersion: secrets.juju.is/v1alpha1
kind: JujuSecretBackend
metadata: {{name: plan-vault}}
spec:
  backendType: vault
  config: {{endpoint: "{VAULT_ENDPOINT}"}}
  models: []
"#
    );
    t.apply_manifests(&before).await;
    let o = env
        .wait_synced(NS, "plan-a", |o| secret_id(o).is_some())
        .await;
    let uri = SecretUri::parse(&secret_id(&o).unwrap()).unwrap();
    t.wait_grant_synced(NS, "plan-a-readers", |g| {
        g.status.as_ref().unwrap().granted_applications == ["mysql"]
    })
    .await;
    t.wait_backend_synced("plan-vault", |_| true).await;
    let backend_before = t.model_backend().await;

    let manifests = plan_manifests(&beta2, &delta, &one, &alpha, false);
    let plan = t.plan(&manifests, &[]).await;
    assert_eq!(plan.code, Some(2), "changes: exit 2\n{}", plan.text);
    let expected = json!([
        {"kind": "JujuSecret", "namespace": NS, "name": "plan-a", "model": MODEL,
         "secretId": uri.short(), "changes": [
            {"action": "rename", "from": "plan-a", "to": "plan-a-renamed"},
            {"action": "newRevision", "from": 1, "to": 2, "keysAdded": ["delta"],
             "keysRemoved": ["gamma"], "keysChanged": ["beta"]},
            {"action": "removeRevisions", "revisions": [1]}]},
        {"kind": "JujuSecret", "namespace": NS, "name": "plan-b", "model": MODEL,
         "changes": [{"action": "create", "name": "plan-b", "keys": ["one"]}]},
        {"kind": "JujuSecret", "namespace": NS, "name": "plan-c", "model": MODEL,
         "changes": [{"action": "create", "name": "plan-c", "keys": ["token"]}]},
        {"kind": "JujuSecretGrant", "namespace": NS, "name": "plan-a-readers", "model": MODEL,
         "secretId": uri.short(), "changes": [
            {"action": "revoke", "applications": ["mysql"]},
            {"action": "grant", "applications": ["wordpress"]},
            {"action": "setOption", "option": "wordpress/db-password"}]},
        {"kind": "JujuSecretBackend", "name": "plan-vault", "changes": [
            {"action": "switchModel", "model": MODEL, "from": backend_before, "to": "plan-vault"}]},
    ]);
    assert_eq!(plan.json["objects"], expected, "the plan\n{}", plan.text);
    assert_eq!(plan.json["summary"]["change"], 5);
    assert!(
        env.secrets(NS)
            .get_opt("plan-c-juju-generated")
            .await
            .unwrap()
            .is_none(),
        "the plan stored a generated value"
    );
    for line in [
        "~ rename \"plan-a\" -> \"plan-a-renamed\"",
        "~ new revision 1 -> 2: changed beta; added delta; removed gamma",
        "- remove revisions 1",
        "+ create secret \"plan-b\" with keys: one",
        "- revoke mysql",
        "+ grant wordpress",
        "+ config wordpress/db-password = the secret's URI",
    ] {
        assert!(
            plan.text.contains(line),
            "text plan lacks {line:?}:\n{}",
            plan.text
        );
    }

    // Applying the set does what the plan said, and only that.
    t.apply_manifests(&manifests).await;
    env.wait_synced(NS, "plan-a", |o| {
        revision(o) == Some(2)
            && o.status
                .as_ref()
                .and_then(|s| s.revisions.as_ref())
                .is_some_and(|r| r.count == 1)
    })
    .await;
    env.wait_synced(NS, "plan-b", |o| secret_id(o).is_some())
        .await;
    env.wait_synced(NS, "plan-c", |o| secret_id(o).is_some())
        .await;
    let generated = env.secrets(NS).get("plan-c-juju-generated").await.unwrap();
    for v in generated.data.unwrap_or_default().values() {
        env.remember(&String::from_utf8_lossy(&v.0));
    }
    t.wait_grant_synced(NS, "plan-a-readers", |g| {
        g.status.as_ref().unwrap().granted_applications == ["wordpress"]
    })
    .await;
    t.wait_backend_synced("plan-vault", |b| {
        !b.status.as_ref().unwrap().assigned_models.is_empty()
    })
    .await;
    let a = env.juju_by_uri(&uri.short()).await.unwrap();
    let planned = &plan.json["objects"][0]["changes"];
    assert_eq!(
        a.label.as_deref(),
        planned[0]["to"].as_str(),
        "renamed as planned"
    );
    assert_eq!(
        Some(a.latest_revision),
        planned[1]["to"].as_u64(),
        "revision as planned"
    );
    let held: Vec<u64> = a.revisions.iter().map(|r| r.revision).collect();
    assert_eq!(held, [2], "revisions removed as planned ({})", planned[2]);
    assert_eq!(
        Some(&json!(held)),
        Some(&json!([2])),
        "revisions removed as planned ({})",
        planned[2]
    );
    assert_content(
        &a,
        &[("alpha", &alpha), ("beta", &beta2), ("delta", &delta)],
        "plan-a after apply: beta changed, delta added, gamma removed",
    );
    let b = env.juju_one("plan-b").await;
    assert_content(&b, &[("one", &one)], "plan-b created with its planned keys");
    t.wait_access(&uri, &["wordpress"], "granted and revoked as planned")
        .await;
    t.wait_option(
        "wordpress",
        "db-password",
        Some(uri.short().as_str()),
        "the option planned to hold the secret's URI",
    )
    .await;
    assert_eq!(
        t.model_backend().await,
        "plan-vault",
        "model switched as planned"
    );

    // The applied set: nothing to do.
    let again = t.plan(&manifests, &[]).await;
    assert_eq!(again.code, Some(0), "no changes: exit 0\n{}", again.text);
    assert_eq!(again.json["objects"], json!([]), "{}", again.text);
    assert!(again.text.starts_with("No changes"), "{}", again.text);

    // Without plan-b, --prune plans its deletion (Delete is its deletion policy).
    let without_b: String = manifests
        .split("---\n")
        .filter(|d| !d.contains("name: plan-b,"))
        .collect::<Vec<_>>()
        .join("---\n");
    let pruned = t.plan(&without_b, &["--prune"]).await;
    assert_eq!(pruned.code, Some(2), "{}", pruned.text);
    let b_id = b.uri.short();
    let deleted = pruned.json["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "plan-b")
        .unwrap_or_else(|| panic!("no deletion of plan-b in\n{}", pruned.text));
    assert_eq!(deleted["deleted"], true);
    assert_eq!(
        deleted["changes"],
        json!([{"action": "delete", "id": b_id}])
    );

    // Suspended: plan-b's new content is held back; the plan says so and exits 0, and
    // the object's status carries the same plan once applied.
    let two = env.value("plan-two");
    let suspended = plan_manifests(&beta2, &delta, &two, &alpha, true);
    let held = t.plan(&suspended, &[]).await;
    assert_eq!(
        held.code,
        Some(0),
        "a suspended object changes nothing\n{}",
        held.text
    );
    let held_b = &held.json["objects"][0];
    assert_eq!(held_b["name"], "plan-b");
    assert_eq!(held_b["suspended"], true);
    assert_eq!(held_b["changes"][0]["keysChanged"], json!(["one"]));
    t.apply_manifests(&suspended).await;
    let o = env
        .wait_jsec(NS, "plan-b", "Suspended with a plan", WAIT, |o| {
            o.status.as_ref().and_then(|s| s.plan.as_ref()).is_some()
        })
        .await;
    let status_plan = serde_json::to_value(o.status.unwrap().plan.unwrap()).unwrap();
    assert_eq!(
        status_plan,
        json!({"action": "Update", "changes": ["content"], "keysChanged": ["one"]})
    );
    let b = env.juju_one("plan-b").await;
    assert_content(&b, &[("one", &one)], "suspended: Juju unchanged");

    t.delete_grant(NS, "plan-a-readers").await;
    env.delete_jsec(NS, "plan-a").await;
    env.delete_jsec(NS, "plan-b").await;
    env.delete_jsec(NS, "plan-c").await;
    t.delete_backend("plan-vault", WAIT).await;
}

/// An object as the apiserver returns it, untyped.
async fn raw<K>(api: &Api<K>, name: &str) -> Value
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Serialize,
{
    serde_json::to_value(api.get(name).await.unwrap()).unwrap()
}

/// The shipped Argo CD and Flux health checks (deploy/) give each state the verdict the
/// README promises, on statuses the operator wrote.
async fn health_checks_on_real_statuses(t: Arc<T>) {
    let env = &t.env;
    let check = |what: &str, obj: &Value, argo: &str, flux: &str| {
        let (verdict, message) = health::argo(obj);
        assert_eq!(verdict, argo, "Argo CD on {what}: {message}\n{obj}");
        assert_eq!(health::flux(obj), flux, "Flux on {what}\n{obj}");
        message
    };
    // Ready.
    let v = env.value("hc-ready");
    env.create_jsec(
        NS,
        "hc-ready",
        json!({"model": MODEL, "data": {"password": v}}),
    )
    .await;
    env.wait_synced(NS, "hc-ready", |o| secret_id(o).is_some())
        .await;
    check(
        "a synced JujuSecret",
        &raw(&env.jsecs(NS), "hc-ready").await,
        "Healthy",
        "current",
    );
    t.create_grant(
        NS,
        "hc-grant",
        json!({"secretRef": {"name": "hc-ready"}, "applications": ["mysql"]}),
    )
    .await;
    t.wait_grant_synced(NS, "hc-grant", |_| true).await;
    check(
        "a synced grant",
        &raw(&t.grants(NS), "hc-grant").await,
        "Healthy",
        "current",
    );
    t.create_backend(
        "hc-vault",
        json!({"backendType": "vault", "config": {"endpoint": VAULT_ENDPOINT}}),
    )
    .await;
    t.wait_backend_synced("hc-vault", |_| true).await;
    check(
        "a synced backend",
        &raw(&t.backends(), "hc-vault").await,
        "Healthy",
        "current",
    );

    // Waiting on something the operator retries by itself.
    t.create_grant(
        NS,
        "hc-waiting",
        json!({"secretRef": {"name": "hc-missing"}, "applications": ["mysql"]}),
    )
    .await;
    t.wait_grant_reason(NS, "hc-waiting", "SecretNotReady")
        .await;
    check(
        "a grant waiting for its JujuSecret",
        &raw(&t.grants(NS), "hc-waiting").await,
        "Progressing",
        "inProgress",
    );

    // Failed: a name clash, a reserved backend name.
    env.juju_create("hc-taken", &[("password", &env.value("hc-taken"))])
        .await;
    env.create_jsec(
        NS,
        "hc-taken",
        json!({"model": MODEL, "data": {"password": env.value("hc-taken-2")}}),
    )
    .await;
    env.wait_reason(NS, "hc-taken", "Conflict").await;
    check(
        "a conflict",
        &raw(&env.jsecs(NS), "hc-taken").await,
        "Degraded",
        "failed",
    );
    t.create_backend(
        "hc-reserved",
        json!({"name": "auto", "backendType": "vault", "config": {"endpoint": VAULT_ENDPOINT}}),
    )
    .await;
    t.wait_backend_reason("hc-reserved", "InvalidSpec", WAIT)
        .await;
    check(
        "a reserved backend name",
        &raw(&t.backends(), "hc-reserved").await,
        "Degraded",
        "failed",
    );

    // Suspended with a change held back: the message names the key, never a value.
    let v2 = env.value("hc-ready-2");
    env.patch_jsec(
        NS,
        "hc-ready",
        json!({"spec": {"suspend": true, "data": {"password": v2}}}),
    )
    .await;
    env.wait_jsec(NS, "hc-ready", "Suspended with a plan", WAIT, |o| {
        o.status.as_ref().and_then(|s| s.plan.as_ref()).is_some()
    })
    .await;
    let message = check(
        "a suspended JujuSecret",
        &raw(&env.jsecs(NS), "hc-ready").await,
        "Suspended",
        "current",
    );
    assert_eq!(
        message,
        "Suspended; resuming would update content (keysChanged: password)"
    );

    // No status yet (a namespace the operator does not watch).
    env.create_jsec(
        "default",
        "hc-unwatched",
        json!({"model": MODEL, "data": {"password": env.value("hc-unwatched")}}),
    )
    .await;
    check(
        "an object the operator has not reconciled",
        &raw(&env.jsecs("default"), "hc-unwatched").await,
        "Progressing",
        "inProgress",
    );

    env.jsecs("default")
        .delete("hc-unwatched", &DeleteParams::default())
        .await
        .unwrap();
    t.delete_grant(NS, "hc-waiting").await;
    t.delete_grant(NS, "hc-grant").await;
    env.delete_jsec(NS, "hc-ready").await;
    env.delete_jsec(NS, "hc-taken").await;
    t.delete_backend("hc-reserved", WAIT).await;
    t.delete_backend("hc-vault", WAIT).await;
}

// ------------------------------------------------------------------ final checks

/// No value the test wrote (tokens, secret content) appears, raw, base64 or as its
/// SHA-256, in the operator's log, in any Event, in any grant, backend or JujuSecret
/// status seen, or in anything `plan` printed.
async fn no_sensitive_value_leaked(t: Arc<T>) {
    let env = &t.env;
    let values = env.remembered();
    assert!(!values.is_empty(), "the scenarios registered no values");
    let passwords: Vec<String> = env
        .emulator
        .connection_info()
        .users
        .iter()
        .map(|u| u.password.clone())
        .collect();
    let mut places: Vec<(String, String)> = Vec::new();
    for log in env.logs.lock().unwrap().iter() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        assert!(!text.is_empty(), "operator log {} is empty", log.display());
        places.push((format!("log {}", log.display()), text));
    }
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::all(env.kube.clone());
    let events = events.list(&ListParams::default()).await.unwrap();
    places.push(("events".into(), serde_json::to_string(&events).unwrap()));
    places.push((
        "grant and backend statuses seen".into(),
        t.seen
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
    ));
    places.push(("JujuSecret statuses seen".into(), env.statuses_seen()));
    places.push(("plan output".into(), t.plans.lock().unwrap().join("\n")));
    for ns in [NS, NS_DENIED] {
        for g in t.grants(ns).list(&ListParams::default()).await.unwrap() {
            places.push((
                format!("grant {ns}/{}", g.metadata.name.clone().unwrap_or_default()),
                serde_json::to_string(&g).unwrap(),
            ));
        }
    }
    for b in t.backends().list(&ListParams::default()).await.unwrap() {
        places.push((
            format!("backend {}", b.metadata.name.clone().unwrap_or_default()),
            serde_json::to_string(&b).unwrap(),
        ));
    }
    let mut leaks = Vec::new();
    for (what, text) in &places {
        for (i, v) in values.iter().enumerate() {
            // An unkeyed hash of a value is as good as the value to anyone who can guess.
            let hashed = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(v.as_bytes()));
            if text.contains(v.as_str()) || text.contains(&b64(v)) || text.contains(&hashed) {
                leaks.push(format!("value #{i} ({}) appears in {what}", kind_of(v)));
            }
        }
        if passwords.iter().any(|p| text.contains(p.as_str())) {
            leaks.push(format!("a Juju password appears in {what}"));
        }
    }
    assert!(leaks.is_empty(), "leaks:\n{}", leaks.join("\n"));
}

/// The `what` part of a value made by `Env::value` (`sv-<what>-<tag>`), never the value.
fn kind_of(v: &str) -> String {
    let parts: Vec<&str> = v.split('-').collect();
    parts[1..parts.len().saturating_sub(1)].join("-")
}

/// Ready reasons of the contract, per kind.
fn contract() -> BTreeMap<&'static str, Vec<&'static str>> {
    let common = [
        "Synced",
        "JujuUnavailable",
        "Unauthorized",
        "Forbidden",
        "ModelNotFound",
    ];
    let mut m = BTreeMap::new();
    m.insert(
        "JujuSecretGrant",
        [
            &common[..],
            &[
                "ApplicationNotFound",
                "SecretNotReady",
                "NotFound",
                "Conflict",
                "InvalidSpec",
                "JujuError",
            ],
        ]
        .concat(),
    );
    m.insert(
        "JujuSecretBackend",
        [
            &common[..],
            &[
                "BackendUnreachable",
                "InvalidSpec",
                "Conflict",
                "InUse",
                "SourceNotFound",
            ],
        ]
        .concat(),
    );
    m
}

/// Every grant/backend event and every Ready reason the waits saw use the contract's
/// reasons.
async fn only_contract_reasons(t: Arc<T>) {
    let contract = contract();
    let normal: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
        (
            "JujuSecretGrant",
            vec!["Granted", "Revoked", "SecretNotReady", "Configured"],
        ),
        (
            "JujuSecretBackend",
            vec![
                "Created",
                "Updated",
                "ModelAssigned",
                "ModelReleased",
                "Adopted",
                "Deleted",
                "Retained",
            ],
        ),
    ]);
    let mut odd = BTreeSet::new();
    for (kind, reason) in t.reasons.lock().unwrap().iter() {
        if !contract[kind.as_str()].contains(&reason.as_str()) {
            odd.insert(format!("{kind} Ready reason {reason}"));
        }
    }
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::all(t.env.kube.clone());
    for e in events.list(&ListParams::default()).await.unwrap() {
        let Some(kind) = e.involved_object.kind.as_deref() else {
            continue;
        };
        let (Some(allowed), Some(normal)) = (contract.get(kind), normal.get(kind)) else {
            continue;
        };
        let reason = e.reason.clone().unwrap_or_default();
        let ok = match e.type_.as_deref() {
            Some("Normal") => normal.contains(&reason.as_str()),
            Some("Warning") => reason != "Synced" && allowed.contains(&reason.as_str()),
            _ => false,
        };
        if !ok {
            odd.insert(format!(
                "event {}/{reason} on {kind} {}",
                e.type_.unwrap_or_default(),
                e.involved_object.name.unwrap_or_default()
            ));
        }
    }
    assert!(odd.is_empty(), "reasons outside the contract: {odd:?}");
}
