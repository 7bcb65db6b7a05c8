//! The end-to-end environment: a real kube-apiserver (scripts/kube-apiserver.sh), the
//! Juju emulator in-process (faults, call counts), the CRDs, the connection Secrets and
//! the operator binary as a child process; plus the helpers the scenarios use.
//!
//! Every wait is bounded. Assertion messages name keys and revisions, never values.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use juju_client::{
    ConnectOptions, JujuClient, Password, SecretContent, SecretFilter, SecretInfo, SecretUri,
};
use juju_emulator::{Emulator, EmulatorConfig};
use juju_secrets_operator::crd::condition::READY;
use juju_secrets_operator::crd::secret::JujuSecret;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Event, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::{Value, json};

/// Default bound of every wait for the operator.
pub const WAIT: Duration = Duration::from_secs(30);
/// The operator's `--refresh-interval`.
pub const REFRESH: Duration = Duration::from_secs(5);
/// Namespace of the main scenarios.
pub const NS: &str = "e2e";
/// Namespace the tenancy policy allows no access to `admin/dev`.
pub const NS_DENIED: &str = "e2e-denied";
/// Namespace watched by the secondary operators (one at a time): the one that logs in
/// as `reader`, the one whose controller is unreachable.
pub const NS_READER: &str = "e2e-reader";
/// Namespace of the connection Secrets: `juju-admin`, `juju-reader`, and
/// `juju-unreachable` (an endpoint nothing listens on).
pub const NS_SYSTEM: &str = "e2e-system";
/// The model every scenario uses (the emulator's default seed).
pub const MODEL: &str = "admin/dev";
/// A second model the tenancy policy lets `NS` use too (a JujuSecret moved between models).
pub const MODEL_OTHER: &str = "admin/staging";

pub const POLL: Duration = Duration::from_millis(200);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kube_script() -> PathBuf {
    repo().join("scripts/kube-apiserver.sh")
}

/// Whether CI asked for the suite to never skip.
pub fn required() -> bool {
    std::env::var("JSO_REQUIRE_E2E").is_ok_and(|v| v == "1")
}

/// A random tag making names and values unique per run.
pub fn tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_owned()
}

// ------------------------------------------------------------------ kube-apiserver

/// etcd + kube-apiserver started by scripts/kube-apiserver.sh; stopped on drop.
pub struct ApiServer {
    run_dir: PathBuf,
    pub kubeconfig: PathBuf,
}

impl ApiServer {
    /// Starts the apiserver in `run_dir`. Without `JSO_REQUIRE_E2E=1` a missing build is
    /// not built here (it takes minutes): the error says how to build it.
    pub fn start(run_dir: &Path) -> Result<Self, String> {
        let script = kube_script();
        if !required() {
            let out = Command::new("bash")
                .arg(&script)
                .arg("path")
                .output()
                .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
            let bin = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if !Path::new(&bin).is_file() {
                return Err(format!(
                    "kube-apiserver is not built ({bin} missing); run `scripts/kube-apiserver.sh build` \
                     once (about 6 minutes), or set JSO_REQUIRE_E2E=1 to build it from the test"
                ));
            }
        }
        std::fs::create_dir_all(run_dir).map_err(|e| e.to_string())?;
        let log = run_dir.join("kube-apiserver-script.log");
        let out = File::create(&log).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let status = Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(run_dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let server = ApiServer {
            run_dir: run_dir.to_owned(),
            kubeconfig: run_dir.join("kubeconfig"),
        };
        if !status.success() {
            return Err(format!(
                "`scripts/kube-apiserver.sh start` failed ({status}):\n{}",
                tail(&log, 30)
            ));
        }
        Ok(server)
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(kube_script())
            .arg("stop")
            .arg(&self.run_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
    }
}

/// The last `lines` lines of a file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ------------------------------------------------------------------ operator process

/// One operator instance (the real binary) as a child process; its stdout and stderr
/// are appended to `log`. Killed on drop.
pub struct Operator {
    pub name: String,
    args: Vec<String>,
    /// Environment variables set for the process (a test's faults).
    envs: Vec<(String, String)>,
    pub log: PathBuf,
    pub metrics_port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

impl Operator {
    /// Starts `juju-secrets-operator run` with `args` plus `--metrics-addr` on a free port.
    pub fn start(name: &str, args: Vec<String>, log: PathBuf) -> Operator {
        let mut op = Operator {
            name: name.to_owned(),
            args,
            envs: Vec::new(),
            log,
            metrics_port: free_port(),
            child: None,
        };
        op.spawn();
        op
    }

    fn spawn(&mut self) {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let _ = writeln!(log, "### e2e: starting {}", self.name);
        let err = log.try_clone().unwrap();
        // One process per Lease unless a scenario asks for leader election: restarts
        // after SIGKILL must not wait for the dead process's Lease to expire.
        let election = if self
            .args
            .iter()
            .any(|a| a.starts_with("--leader-election") || a == "--lease-name")
        {
            Vec::new()
        } else {
            vec!["--leader-election=false".to_owned()]
        };
        let child = Command::new(env!("CARGO_BIN_EXE_juju-secrets-operator"))
            .arg("run")
            .args(&self.args)
            .args(&election)
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{}", self.metrics_port))
            .env_remove("KUBECONFIG")
            .env_remove("RUST_LOG")
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// `Some(status)` when the process has exited.
    /// The process ID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (bounded) for the exit status.
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` (`STOP`, `CONT` ...) to the process.
    #[allow(dead_code, reason = "used by the plan scenario only")]
    pub fn signal(&self, signal: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(c.id().to_string())
                .status();
        }
    }

    /// Sets the environment of the process's next start (`restart`); empty: none.
    pub fn set_envs(&mut self, envs: &[(&str, &str)]) {
        self.envs = envs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
    }

    /// Starts the process again with the same arguments (after `kill`).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Polls `GET {path}` until it answers 200, the process exits, or `within` passes.
    pub async fn wait_http_ok(&mut self, path: &str, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exited() {
                return Err(format!(
                    "operator {} exited ({status}); log tail:\n{}",
                    self.name,
                    tail(&self.log, 20)
                ));
            }
            if http_get_status(self.metrics_port, path) == Some(200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "operator {}: {path} did not answer 200 within {within:?}: {:?}",
                    self.name,
                    http_get(self.metrics_port, path)
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the process serves `/healthz` (it is up); panics with the log tail
    /// when it exits or does not come up.
    pub async fn wait_started(&mut self) {
        if let Err(e) = self.wait_http_ok("/healthz", WAIT).await {
            panic!("{e}\nlog tail:\n{}", tail(&self.log, 20));
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A minimal HTTP/1.0 GET on loopback; the status code, if any answer came.
pub fn http_get_status(port: u16, path: &str) -> Option<u16> {
    http_get(port, path).map(|(code, _)| code)
}

/// A minimal HTTP/1.0 GET on loopback: status code and body (up to 1 MiB).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    let _ = s.take(1 << 20).read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((code, body))
}

/// The sum of the samples of metric `name` (exactly that name, any labels) whose
/// labels include every pair of `labels`; `None` when there is no such sample.
pub fn metric(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in body.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_text, value) = if let Some(rest) = rest.strip_prefix('{') {
            match rest.split_once("} ") {
                Some(parts) => parts,
                None => continue,
            }
        } else if let Some(value) = rest.strip_prefix(' ') {
            ("", value)
        } else {
            continue;
        };
        let all = labels
            .iter()
            .all(|(k, v)| label_text.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
        if all && let Ok(v) = value.trim().parse::<f64>() {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

// ------------------------------------------------------------------ the environment

/// Everything the scenarios share. Field order is drop order: operators first, the
/// apiserver last.
pub struct Env {
    pub operator: tokio::sync::Mutex<Operator>,
    pub emulator: Emulator,
    pub juju: JujuClient,
    pub kube: Client,
    pub model_uuid: String,
    /// The UUID of [`MODEL_OTHER`].
    pub other_model_uuid: String,
    pub dir: PathBuf,
    /// A client with the operator's own rights: the Helm chart's ServiceAccount and
    /// RBAC, applied from the rendered chart (every operator runs with its token).
    pub operator_kube: Client,
    /// Arguments every operator instance shares (kubeconfig, refresh, logging).
    pub common_args: Vec<String>,
    /// Every secret value the tests wrote anywhere (the leak check greps for them).
    values: Mutex<Vec<String>>,
    /// Operator logs to grep at the end.
    pub logs: Mutex<Vec<PathBuf>>,
    /// Every distinct JujuSecret status (with annotations and labels) the waits saw.
    statuses: Mutex<std::collections::BTreeSet<String>>,
    reasons: Mutex<std::collections::BTreeSet<String>>,
    /// Problems that do not stop a scenario (reported at the end).
    pub soft_failures: Mutex<Vec<String>>,
    /// Kept for its `Drop` (stops etcd and the apiserver).
    _apiserver: ApiServer,
}

/// Why the environment did not come up: skip (or fail under CI) vs. always fail.
pub enum SetupError {
    /// The kube-apiserver could not be built or started, or the rendered Helm chart
    /// (whose RBAC the operator runs with) is missing.
    NoApiServer(String),
}

/// How an environment differs from the default one.
#[derive(Clone, Copy, Debug)]
pub struct EnvOptions {
    /// The emulator reports content checksums as Juju 3.6 does (`false`: as a
    /// controller before 3.6).
    pub checksums: bool,
}

impl Default for EnvOptions {
    fn default() -> Self {
        Self { checksums: true }
    }
}

impl Env {
    /// Brings up the environment; panics on anything but a missing apiserver.
    #[allow(
        dead_code,
        reason = "not every test binary uses the default environment"
    )]
    pub async fn setup() -> Result<Env, SetupError> {
        Self::setup_with(EnvOptions::default()).await
    }

    /// Brings up an environment with `options`; panics on anything but a missing
    /// apiserver.
    pub async fn setup_with(options: EnvOptions) -> Result<Env, SetupError> {
        // One directory per test binary (tests/e2e.rs, tests/e2e_grants_backends.rs, ...)
        // and process, `target/tmp/<binary>-<pid>`, so that runs at the same time never
        // stop each other's apiserver. Directories of runs that are gone are removed
        // (their apiserver stopped first: a run killed hard leaves it running).
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let prefix = format!("{}-", env!("CARGO_CRATE_NAME"));
        for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix(&prefix) else {
                continue;
            };
            let pid = pid.split('-').next().unwrap_or_default();
            if pid.parse::<u32>().is_err() || Path::new("/proc").join(pid).exists() {
                continue;
            }
            let _ = Command::new("bash")
                .arg(kube_script())
                .arg("stop")
                .arg(entry.path().join("kube"))
                .stdout(Stdio::null())
                .status();
            let _ = std::fs::remove_dir_all(entry.path());
        }
        let variant = if options.checksums { "" } else { "-pre36" };
        let dir = root.join(format!("{prefix}{}{variant}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        eprintln!("e2e: run directory {}", dir.display());

        let t0 = Instant::now();
        let apiserver = ApiServer::start(&dir.join("kube")).map_err(SetupError::NoApiServer)?;
        eprintln!("e2e: kube-apiserver ready in {:?}", t0.elapsed());
        let kubeconfig = Kubeconfig::read_from(&apiserver.kubeconfig).unwrap();
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .unwrap();
        let kube = Client::try_from(config).unwrap();

        // The emulator, in-process; its frames go where the Python suite validates them.
        let mut config = EmulatorConfig::new(dir.join("juju"));
        let frame_logs = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("frame-logs");
        std::fs::create_dir_all(&frame_logs).unwrap();
        let frame_log = frame_logs.join(format!("{}{variant}.jsonl", env!("CARGO_CRATE_NAME")));
        let _ = std::fs::remove_file(&frame_log);
        config.frame_log = Some(frame_log);
        config.checksums = options.checksums;
        let mut seed = juju_emulator::Seed::default();
        seed.models.push(juju_emulator::SeedModel {
            name: "staging".into(),
            owner: "admin".into(),
            uuid: None,
            applications: Vec::new(),
        });
        config.seed = Some(seed);
        let emulator = Emulator::start(config).await.unwrap();
        let info = emulator.connection_info().clone();
        let uuid_of = |qualified: &str| {
            info.models
                .iter()
                .find(|m| format!("{}/{}", m.owner, m.name) == qualified)
                .map(|m| m.uuid.clone())
                .unwrap_or_else(|| panic!("the emulator has no model {qualified}"))
        };
        let (model_uuid, other_model_uuid) = (uuid_of(MODEL), uuid_of(MODEL_OTHER));
        let password = |user: &str| {
            info.users
                .iter()
                .find(|u| u.username == user)
                .map(|u| u.password.clone())
                .unwrap()
        };
        let mut options = ConnectOptions::new(
            vec![info.endpoint.clone()],
            info.ca_cert.clone(),
            "admin",
            Password::new(password("admin")),
        );
        options.call_timeout = Duration::from_secs(10);
        options.backoff.initial = Duration::from_millis(50);
        options.backoff.max = Duration::from_millis(500);
        let juju = JujuClient::new(options).unwrap();

        // Namespaces, connection Secrets, CRDs.
        for ns in [NS, NS_DENIED, NS_READER, NS_SYSTEM] {
            let api: Api<Namespace> = Api::all(kube.clone());
            let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
            api.create(&PostParams::default(), &obj).await.unwrap();
        }
        let secrets: Api<Secret> = Api::namespaced(kube.clone(), NS_SYSTEM);
        // juju-unreachable: the admin's credentials, but an endpoint nothing listens on.
        let dead_endpoint = format!("127.0.0.1:{}", free_port());
        for (name, user, endpoint) in [
            ("juju-admin", "admin", &info.endpoint),
            ("juju-reader", "reader", &info.endpoint),
            ("juju-unreachable", "admin", &dead_endpoint),
        ] {
            let obj: Secret = serde_json::from_value(json!({
                "metadata": {"name": name},
                "stringData": {
                    "endpoints": endpoint,
                    "ca-cert": info.ca_cert,
                    "username": user,
                    "password": password(user),
                }
            }))
            .unwrap();
            secrets.create(&PostParams::default(), &obj).await.unwrap();
        }
        apply_crds(&kube).await;
        let (operator_kubeconfig, operator_kube) =
            install_chart_rbac(&kube, &apiserver.kubeconfig, &dir).await?;

        // The tenancy policy of the main operator: NS_DENIED may use another model only.
        let policy = dir.join("tenancy.yaml");
        std::fs::write(
            &policy,
            format!(
                "namespaces:\n  {NS}: [\"{MODEL}\", \"{MODEL_OTHER}\"]\n  {NS_DENIED}: [\"admin/elsewhere\"]\n  \"*\": []\n"
            ),
        )
        .unwrap();

        let common_args: Vec<String> = vec![
            "--kubeconfig".into(),
            operator_kubeconfig.display().to_string(),
            "--refresh-interval".into(),
            format!("{}s", REFRESH.as_secs()),
            "--log-format".into(),
            "json".into(),
            "--log-level".into(),
            "info,juju_secrets_operator=debug".into(),
        ];
        let mut args = common_args.clone();
        args.extend([
            "--juju-connection-secret".into(),
            format!("{NS_SYSTEM}/juju-admin"),
            "--namespaces".into(),
            format!("{NS},{NS_DENIED}"),
            "--tenancy-policy".into(),
            policy.display().to_string(),
        ]);
        let log = dir.join("operator.log");
        let t0 = Instant::now();
        let mut operator = Operator::start("main", args, log.clone());
        let mut soft = Vec::new();
        operator.wait_started().await;
        eprintln!("e2e: operator serving /healthz after {:?}", t0.elapsed());
        // Nothing to reconcile yet: an operator must still become ready (its watches
        // are synced and Juju answered).
        if let Err(e) = operator
            .wait_http_ok("/readyz", Duration::from_secs(10))
            .await
        {
            soft.push(format!("setup, no JujuSecret objects yet: {e}"));
        }

        let env = Env {
            operator: tokio::sync::Mutex::new(operator),
            emulator,
            juju,
            kube,
            model_uuid,
            other_model_uuid,
            dir,
            operator_kube,
            common_args,
            values: Mutex::new(Vec::new()),
            logs: Mutex::new(vec![log]),
            statuses: Mutex::default(),
            reasons: Mutex::default(),
            soft_failures: Mutex::new(soft),
            _apiserver: apiserver,
        };
        env.check_connection_secret_helper().await;
        Ok(env)
    }

    /// `juju-secrets-operator connection-secret --from-emulator` must print a Secret
    /// with the keys the operator reads (a soft check: the scenarios do not rely on it).
    async fn check_connection_secret_helper(&self) {
        let out = Command::new(env!("CARGO_BIN_EXE_juju-secrets-operator"))
            .args(["connection-secret", "--from-emulator"])
            .arg(self.dir.join("juju/connection.json"))
            .args(["--user", "admin", "--namespace", NS_SYSTEM, "--name", "x"])
            .output()
            .unwrap();
        if !out.status.success() {
            self.soft_fail(format!(
                "`connection-secret --from-emulator` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            return;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let secret: Result<Secret, _> = serde_yaml_ng::from_str(&text);
        match secret {
            Ok(s) => {
                let mut keys: Vec<String> = s.data.unwrap_or_default().into_keys().collect();
                keys.extend(s.string_data.unwrap_or_default().into_keys());
                keys.sort();
                let want = ["ca-cert", "endpoints", "password", "username"];
                if keys != want {
                    self.soft_fail(format!(
                        "`connection-secret` printed keys {keys:?}, expected {want:?}"
                    ));
                }
                if s.metadata.namespace.as_deref() != Some(NS_SYSTEM) {
                    self.soft_fail("`connection-secret` ignored --namespace".into());
                }
            }
            Err(e) => self.soft_fail(format!("`connection-secret` output is not a Secret: {e}")),
        }
    }

    pub fn soft_fail(&self, msg: String) {
        eprintln!("e2e: SOFT FAILURE: {msg}");
        self.soft_failures.lock().unwrap().push(msg);
    }

    // -------------------------------------------------------------- secret values

    /// A fresh, unique value, remembered for the leak check.
    pub fn value(&self, what: &str) -> String {
        let v = format!("sv-{what}-{}{}", tag(), tag());
        self.remember(&v);
        v
    }

    /// Remembers a value the tests did not choose (generated ones) for the leak check.
    pub fn remember(&self, v: &str) {
        self.values.lock().unwrap().push(v.to_owned());
    }

    pub fn remembered(&self) -> Vec<String> {
        self.values.lock().unwrap().clone()
    }

    // -------------------------------------------------------------- Kubernetes

    pub fn jsecs(&self, ns: &str) -> Api<JujuSecret> {
        Api::namespaced(self.kube.clone(), ns)
    }

    pub fn secrets(&self, ns: &str) -> Api<Secret> {
        Api::namespaced(self.kube.clone(), ns)
    }

    /// Creates a JujuSecret from a spec written as a user would.
    pub async fn create_jsec(&self, ns: &str, name: &str, spec: Value) -> JujuSecret {
        let obj: JujuSecret = serde_json::from_value(json!({
            "apiVersion": "secrets.juju.is/v1alpha1",
            "kind": "JujuSecret",
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }))
        .unwrap();
        self.jsecs(ns)
            .create(&PostParams::default(), &obj)
            .await
            .unwrap()
    }

    /// JSON merge patch of a JujuSecret (e.g. `{"spec": {...}}`).
    pub async fn patch_jsec(&self, ns: &str, name: &str, patch: Value) -> JujuSecret {
        self.jsecs(ns)
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap()
    }

    /// Creates a Kubernetes Secret with `data`.
    pub async fn create_secret(&self, ns: &str, name: &str, data: &[(&str, &str)]) {
        let mut map = BTreeMap::new();
        for (k, v) in data {
            map.insert((*k).to_owned(), ByteString(v.as_bytes().to_vec()));
        }
        let obj = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_owned()),
                ..Default::default()
            },
            data: Some(map),
            ..Default::default()
        };
        self.secrets(ns)
            .create(&PostParams::default(), &obj)
            .await
            .unwrap();
    }

    pub async fn patch_secret(&self, ns: &str, name: &str, patch: Value) {
        self.secrets(ns)
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
    }

    /// Deletes a JujuSecret and waits (bounded) until it is gone, finalizer included.
    pub async fn delete_jsec(&self, ns: &str, name: &str) {
        let api = self.jsecs(ns);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return,
            Err(e) => panic!("delete {ns}/{name}: {e}"),
        }
        let deadline = Instant::now() + WAIT;
        loop {
            match api.get_opt(name).await.unwrap() {
                None => return,
                Some(obj) => {
                    assert!(
                        Instant::now() < deadline,
                        "{ns}/{name} still present {WAIT:?} after delete (finalizers {:?}, status {})",
                        obj.metadata.finalizers,
                        describe(&obj)
                    );
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Best-effort cleanup at a scenario's end: removes the finalizer-free way first
    /// (delete and wait), then strips a stuck finalizer so later scenarios stay clean.
    pub async fn cleanup(&self, ns: &str, names: &[&str]) {
        let api = self.jsecs(ns);
        for name in names {
            let _ = api.delete(name, &DeleteParams::default()).await;
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        for name in names {
            loop {
                match api.get_opt(name).await {
                    Ok(None) | Err(_) => break,
                    Ok(Some(_)) if Instant::now() > deadline => {
                        self.soft_fail(format!(
                            "cleanup: {ns}/{name} not removed within 15 s; finalizer stripped"
                        ));
                        let _ = api
                            .patch(
                                name,
                                &PatchParams::default(),
                                &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                            )
                            .await;
                        break;
                    }
                    Ok(Some(_)) => tokio::time::sleep(POLL).await,
                }
            }
        }
    }

    /// Deletes every JujuSecret in the scenario namespaces (what a failed scenario left),
    /// so that later scenarios start clean.
    pub async fn cleanup_all(&self) {
        for ns in [NS, NS_DENIED, NS_READER] {
            let names: Vec<String> = self
                .jsecs(ns)
                .list(&ListParams::default())
                .await
                .map(|l| {
                    l.items
                        .into_iter()
                        .filter_map(|o| o.metadata.name)
                        .collect()
                })
                .unwrap_or_default();
            if !names.is_empty() {
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                self.cleanup(ns, &refs).await;
            }
        }
    }

    /// Waits until `pred` holds for the JujuSecret; panics with its status otherwise.
    pub async fn wait_jsec(
        &self,
        ns: &str,
        name: &str,
        what: &str,
        within: Duration,
        pred: impl Fn(&JujuSecret) -> bool,
    ) -> JujuSecret {
        let api = self.jsecs(ns);
        let deadline = Instant::now() + within;
        loop {
            let obj = api.get_opt(name).await.unwrap();
            if let Some(o) = &obj {
                self.saw(o);
            }
            if let Some(o) = &obj
                && pred(o)
            {
                return o.clone();
            }
            if Instant::now() > deadline {
                panic!(
                    "{ns}/{name}: not {what} within {within:?}; last seen: {}",
                    obj.as_ref().map_or("absent".into(), describe)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Records what the operator wrote into an object, for the leak check.
    fn saw(&self, o: &JujuSecret) {
        let text = serde_json::to_string(&(&o.status, &o.metadata.annotations, &o.metadata.labels))
            .unwrap();
        self.statuses.lock().unwrap().insert(text);
        if let Some((_, reason)) = ready(o) {
            self.reasons.lock().unwrap().insert(reason);
        }
    }

    /// Every Ready reason the waits saw.
    pub fn ready_reasons_seen(&self) -> std::collections::BTreeSet<String> {
        self.reasons.lock().unwrap().clone()
    }

    /// All statuses seen, as one text.
    pub fn statuses_seen(&self) -> String {
        let seen = self.statuses.lock().unwrap();
        seen.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Waits for Ready=True/Synced for the current generation, and `pred`.
    pub async fn wait_synced(
        &self,
        ns: &str,
        name: &str,
        pred: impl Fn(&JujuSecret) -> bool,
    ) -> JujuSecret {
        self.wait_jsec(ns, name, "Ready/Synced", WAIT, |o| {
            ready(o).is_some_and(|(s, r)| s == "True" && r == "Synced") && current(o) && pred(o)
        })
        .await
    }

    /// Waits for Ready=False with `reason` for the current generation.
    pub async fn wait_reason(&self, ns: &str, name: &str, reason: &str) -> JujuSecret {
        self.wait_jsec(ns, name, &format!("Ready=False/{reason}"), WAIT, |o| {
            ready(o).is_some_and(|(s, r)| s == "False" && r == reason) && condition_current(o)
        })
        .await
    }

    /// Events about one object (core/v1 view, which includes events.k8s.io/v1 ones).
    pub async fn events(&self, ns: &str, name: &str) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.kube.clone(), ns);
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(name))
            .collect()
    }

    /// Waits (bounded) for an event with `reason` (and `type_`) about the object.
    pub async fn wait_event(&self, ns: &str, name: &str, type_: &str, reason: &str) -> Event {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let events = self.events(ns, name).await;
            if let Some(e) = events
                .iter()
                .find(|e| e.reason.as_deref() == Some(reason) && e.type_.as_deref() == Some(type_))
            {
                return e.clone();
            }
            if Instant::now() > deadline {
                let seen: Vec<String> = events
                    .iter()
                    .map(|e| {
                        format!(
                            "{}/{}",
                            e.type_.as_deref().unwrap_or("?"),
                            e.reason.as_deref().unwrap_or("?")
                        )
                    })
                    .collect();
                panic!("{ns}/{name}: no {type_} event {reason} within 15 s; events seen: {seen:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    // -------------------------------------------------------------- Juju side

    /// Every user secret of the model, with content.
    pub async fn juju_all(&self) -> Vec<SecretInfo> {
        let filter = SecretFilter::user_secrets(&self.model_uuid);
        self.juju
            .list_secrets(&self.model_uuid, &filter, true)
            .await
            .unwrap()
    }

    /// The secrets named `label` (more than one would be a bug Juju itself prevents).
    pub async fn juju_by_label(&self, label: &str) -> Vec<SecretInfo> {
        self.juju_all()
            .await
            .into_iter()
            .filter(|s| s.label.as_deref() == Some(label))
            .collect()
    }

    /// The one secret named `label`; panics when absent or duplicated.
    pub async fn juju_one(&self, label: &str) -> SecretInfo {
        let mut found = self.juju_by_label(label).await;
        assert_eq!(found.len(), 1, "expected one Juju secret named {label}");
        found.remove(0)
    }

    pub async fn juju_by_uri(&self, uri: &str) -> Option<SecretInfo> {
        let uri = SecretUri::parse(uri).unwrap();
        self.juju_all().await.into_iter().find(|s| s.uri == uri)
    }

    /// Writes new content into Juju directly (a human using the Juju CLI).
    pub async fn juju_set_content(&self, uri: &SecretUri, pairs: &[(&str, &str)]) {
        let mut update =
            juju_client::SecretUpdate::of(juju_client::SecretSelector::Uri(uri.clone()));
        update.content = Some(content(pairs));
        let results = self
            .juju
            .update_secrets(&self.model_uuid, &[update])
            .await
            .unwrap();
        results.into_iter().next().unwrap().unwrap();
    }

    /// Creates a secret in Juju directly (made outside the operator).
    pub async fn juju_create(&self, label: &str, pairs: &[(&str, &str)]) -> SecretUri {
        let new = juju_client::NewSecret {
            label: Some(label.to_owned()),
            description: Some("made by hand".into()),
            content: content(pairs),
        };
        let results = self
            .juju
            .create_secrets(&self.model_uuid, &[new])
            .await
            .unwrap();
        results.into_iter().next().unwrap().unwrap()
    }

    /// A client for a tenant of namespace `ns` who may only read and write the status
    /// of JujuSecrets and JujuSecretGrants there (a common tenant role): its own
    /// ServiceAccount, Role, RoleBinding and token.
    pub async fn status_tenant(&self, ns: &str) -> Client {
        use k8s_openapi::api::core::v1::ServiceAccount;
        use k8s_openapi::api::rbac::v1::{Role, RoleBinding};

        let name = "status-tenant";
        let pp = PostParams::default();
        let ignore_exists = |r: Result<(), kube::Error>| match r {
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            other => other,
        };
        let sa: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        ignore_exists(
            Api::<ServiceAccount>::namespaced(self.kube.clone(), ns)
                .create(&pp, &sa)
                .await
                .map(drop),
        )
        .unwrap();
        let role: Role = serde_json::from_value(json!({
            "metadata": {"name": name},
            "rules": [{
                "apiGroups": ["secrets.juju.is"],
                "resources": ["jujusecrets/status", "jujusecretgrants/status"],
                "verbs": ["get", "patch", "update"],
            }],
        }))
        .unwrap();
        ignore_exists(
            Api::<Role>::namespaced(self.kube.clone(), ns)
                .create(&pp, &role)
                .await
                .map(drop),
        )
        .unwrap();
        let binding: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
        }))
        .unwrap();
        ignore_exists(
            Api::<RoleBinding>::namespaced(self.kube.clone(), ns)
                .create(&pp, &binding)
                .await
                .map(drop),
        )
        .unwrap();
        self.client_of(ns, name).await
    }

    /// A client for a ServiceAccount in `ns` that may only read and write the status of
    /// JujuSecretBackends (cluster-wide: they are cluster-scoped), as a platform role
    /// granting `*/status` would.
    #[allow(dead_code, reason = "used by the backend scenarios only")]
    pub async fn backend_status_forger(&self, ns: &str) -> Client {
        use k8s_openapi::api::core::v1::ServiceAccount;
        use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};

        let name = "backend-status-forger";
        let pp = PostParams::default();
        let ignore_exists = |r: Result<(), kube::Error>| match r {
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            other => other,
        };
        let sa: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        ignore_exists(
            Api::<ServiceAccount>::namespaced(self.kube.clone(), ns)
                .create(&pp, &sa)
                .await
                .map(drop),
        )
        .unwrap();
        let role: ClusterRole = serde_json::from_value(json!({
            "metadata": {"name": name},
            "rules": [{
                "apiGroups": ["secrets.juju.is"],
                "resources": ["jujusecretbackends/status"],
                "verbs": ["get", "patch", "update"],
            }],
        }))
        .unwrap();
        ignore_exists(
            Api::<ClusterRole>::all(self.kube.clone())
                .create(&pp, &role)
                .await
                .map(drop),
        )
        .unwrap();
        let binding: ClusterRoleBinding = serde_json::from_value(json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
        }))
        .unwrap();
        ignore_exists(
            Api::<ClusterRoleBinding>::all(self.kube.clone())
                .create(&pp, &binding)
                .await
                .map(drop),
        )
        .unwrap();
        self.client_of(ns, name).await
    }

    /// A client authenticated with a token of the ServiceAccount `ns`/`name`.
    async fn client_of(&self, ns: &str, name: &str) -> Client {
        use k8s_openapi::api::authentication::v1::TokenRequest;
        use k8s_openapi::api::core::v1::ServiceAccount;

        let pp = PostParams::default();
        let request: TokenRequest = serde_json::from_value(json!({
            "spec": {"audiences": [], "expirationSeconds": 3600}
        }))
        .unwrap();
        let token = Api::<ServiceAccount>::namespaced(self.kube.clone(), ns)
            .create_token_request(name, &pp, &request)
            .await
            .unwrap()
            .status
            .expect("token request answered without a token")
            .token;
        let mut kubeconfig: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&self._apiserver.kubeconfig).unwrap())
                .unwrap();
        kubeconfig["users"] = json!([{"name": "admin", "user": {"token": token}}]);
        let path = self.dir.join(format!("{name}-{ns}-kubeconfig"));
        std::fs::write(&path, serde_yaml_ng::to_string(&kubeconfig).unwrap()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(
            Kubeconfig::read_from(&path).unwrap(),
            &KubeConfigOptions::default(),
        )
        .await
        .unwrap();
        Client::try_from(config).unwrap()
    }

    /// The object UIDs the operator's ownership record holds an entry for.
    pub async fn ownership_record_uids(&self) -> std::collections::BTreeSet<String> {
        use juju_secrets_operator::controller::ownership::{SHARDS, shard_name};
        use k8s_openapi::api::core::v1::ConfigMap;
        let api: Api<ConfigMap> = Api::namespaced(self.kube.clone(), NS_SYSTEM);
        let mut uids = std::collections::BTreeSet::new();
        for i in 0..SHARDS {
            if let Some(cm) = api.get_opt(&shard_name(i)).await.unwrap()
                && let Some(text) = cm.data.as_ref().and_then(|d| d.get("secrets.json"))
            {
                let entries: BTreeMap<String, Value> = serde_json::from_str(text).unwrap();
                uids.extend(entries.into_keys());
            }
        }
        uids
    }

    /// After a scenario: an operator that had exited fails the scenario and is
    /// restarted, so the next scenario does not fail for the same reason.
    pub async fn restart_if_crashed(&self, scenario: &str) -> Result<(), String> {
        let mut op = self.operator.lock().await;
        let Some(status) = op.exited() else {
            return Ok(());
        };
        let why = format!(
            "after {scenario}: the operator had exited ({status}); restarted it. Log tail:\n{}",
            tail(&op.log, 15)
        );
        op.restart();
        op.wait_started().await;
        Err(why)
    }

    /// The operator's count of finished reconciles of objects of `kind` (its `/metrics`).
    pub async fn reconciles_of(&self, kind: &str) -> f64 {
        let port = self.operator.lock().await.metrics_port;
        http_get(port, "/metrics")
            .and_then(|(_, body)| {
                metric(
                    &body,
                    "juju_secrets_operator_reconciles_total",
                    &[("kind", kind)],
                )
            })
            .unwrap_or(0.0)
    }

    /// Proof that the operator looked, for a check that nothing happened: waits (bounded)
    /// until it has finished `n` more JujuSecret reconciles than when called.
    pub async fn wait_reconciles(&self, n: u32) {
        self.wait_reconciles_of("JujuSecret", n).await;
    }

    /// [`Env::wait_reconciles`] for objects of `kind`.
    pub async fn wait_reconciles_of(&self, kind: &str, n: u32) {
        let start = self.reconciles_of(kind).await;
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.reconciles_of(kind).await;
            if now >= start + f64::from(n) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the operator finished {} of {n} {kind} reconciles within {WAIT:?}",
                now - start
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Calls of the write methods so far: (CreateSecrets, UpdateSecrets).
    pub fn writes(&self) -> (u64, u64) {
        (
            self.emulator.call_count("Secrets", "CreateSecrets"),
            self.emulator.call_count("Secrets", "UpdateSecrets"),
        )
    }

    /// Calls of every method an operator uses for secrets and models.
    pub fn all_calls(&self) -> BTreeMap<&'static str, u64> {
        [
            ("Secrets", "CreateSecrets"),
            ("Secrets", "UpdateSecrets"),
            ("Secrets", "RemoveSecrets"),
            ("Secrets", "ListSecrets"),
            ("Secrets", "GrantSecret"),
            ("ModelManager", "ListModels"),
            ("ModelManager", "ModelInfo"),
        ]
        .into_iter()
        .map(|(f, m)| {
            (
                m,
                self.emulator.call_count(f, m)
                    + if f == "ModelManager" {
                        self.emulator.call_count(f, &format!("{m}Summaries"))
                    } else {
                        0
                    },
            )
        })
        .collect()
    }
}

// ------------------------------------------------------------------ small helpers

pub fn content(pairs: &[(&str, &str)]) -> SecretContent {
    let mut c = SecretContent::new();
    for (k, v) in pairs {
        c.insert(*k, *v);
    }
    c
}

/// Compares a Juju secret's content with what is expected, naming keys only.
pub fn assert_content(info: &SecretInfo, expected: &[(&str, &str)], ctx: &str) {
    let got = match &info.value {
        Some(Ok(c)) => c,
        Some(Err(e)) => panic!("{ctx}: content of {} not readable: {e}", info.uri.short()),
        None => panic!("{ctx}: content of {} not returned", info.uri.short()),
    };
    let got_keys: Vec<&str> = got.keys().collect();
    let want_keys: Vec<&str> = {
        let mut k: Vec<&str> = expected.iter().map(|(k, _)| *k).collect();
        k.sort_unstable();
        k
    };
    assert_eq!(got_keys, want_keys, "{ctx}: keys in Juju");
    for (k, v) in expected {
        let same = got.get(k).is_some_and(|g| g.expose() == v.as_bytes());
        assert!(
            same,
            "{ctx}: the value of key {k} in Juju is not the one written"
        );
    }
}

/// True when the content in Juju equals `expected`.
pub fn content_is(info: &SecretInfo, expected: &[(&str, &str)]) -> bool {
    let Some(Ok(got)) = &info.value else {
        return false;
    };
    got.len() == expected.len()
        && expected
            .iter()
            .all(|(k, v)| got.get(k).is_some_and(|g| g.expose() == v.as_bytes()))
}

/// Ready condition (status, reason).
pub fn ready(o: &JujuSecret) -> Option<(String, String)> {
    o.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == READY)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// status.observedGeneration is the object's generation.
pub fn current(o: &JujuSecret) -> bool {
    o.status.as_ref().and_then(|s| s.observed_generation) == o.metadata.generation
}

/// The Ready condition was computed for the current generation (by the condition's own
/// observedGeneration, else the status').
pub fn condition_current(o: &JujuSecret) -> bool {
    let Some(status) = o.status.as_ref() else {
        return false;
    };
    let cond = status
        .conditions
        .iter()
        .find(|c| c.type_ == READY)
        .and_then(|c| c.observed_generation);
    cond.or(status.observed_generation) == o.metadata.generation
}

pub fn revision(o: &JujuSecret) -> Option<u64> {
    o.status.as_ref()?.revision
}

pub fn secret_id(o: &JujuSecret) -> Option<String> {
    o.status.as_ref()?.secret_id.clone()
}

/// A one-line description of an object's status (no values: status never holds any).
pub fn describe(o: &JujuSecret) -> String {
    match &o.status {
        None => format!("generation {:?}, no status", o.metadata.generation),
        Some(s) => {
            let cond = s
                .conditions
                .iter()
                .find(|c| c.type_ == READY)
                .map(|c| format!("{}/{}: {}", c.status, c.reason, c.message))
                .unwrap_or_else(|| "no Ready condition".into());
            format!(
                "generation {:?}, observedGeneration {:?}, secretId {:?}, revision {:?}, Ready {cond}",
                o.metadata.generation, s.observed_generation, s.secret_id, s.revision
            )
        }
    }
}

fn typed<T: serde::de::DeserializeOwned>(obj: &Value) -> T {
    serde_json::from_value(obj.clone()).unwrap_or_else(|e| panic!("{e}: {obj}"))
}

/// The chart rendered for the end-to-end tests (release `jso` in [`NS_SYSTEM`]):
/// `JSO_CHART_MANIFEST`, else `target/chart/e2e.yaml`, which `scripts/test.sh` writes.
fn chart_manifest() -> PathBuf {
    std::env::var_os("JSO_CHART_MANIFEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/chart/e2e.yaml"))
}

/// Applies the ServiceAccount and RBAC objects of the rendered Helm chart, requests a
/// token for that ServiceAccount, and writes a kubeconfig that uses it: the operator
/// then has exactly the chart's rights. Returns the kubeconfig and a client with it.
async fn install_chart_rbac(
    admin: &Client,
    admin_kubeconfig: &Path,
    dir: &Path,
) -> Result<(PathBuf, Client), SetupError> {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    use serde::Deserialize;

    let path = chart_manifest();
    let text = std::fs::read_to_string(&path).map_err(|e| {
        SetupError::NoApiServer(format!(
            "rendered Helm chart {} not readable ({e}); scripts/test.sh renders it \
             with tests/chart/render.py",
            path.display()
        ))
    })?;
    let pp = PostParams::default();
    let mut service_account = None;
    let mut kinds = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let Ok(obj) = Value::deserialize(doc) else {
            panic!("{}: a document is not YAML", path.display());
        };
        if obj.is_null() {
            continue;
        }
        let kind = obj["kind"].as_str().unwrap_or_default().to_owned();
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or(NS_SYSTEM);
        match kind.as_str() {
            "ServiceAccount" => {
                let sa: ServiceAccount = typed(&obj);
                service_account = sa.metadata.name.clone();
                Api::<ServiceAccount>::namespaced(admin.clone(), ns)
                    .create(&pp, &sa)
                    .await
                    .map(drop)
            }
            "ClusterRole" => Api::<ClusterRole>::all(admin.clone())
                .create(&pp, &typed(&obj))
                .await
                .map(drop),
            "ClusterRoleBinding" => Api::<ClusterRoleBinding>::all(admin.clone())
                .create(&pp, &typed(&obj))
                .await
                .map(drop),
            "Role" => Api::<Role>::namespaced(admin.clone(), ns)
                .create(&pp, &typed(&obj))
                .await
                .map(drop),
            "RoleBinding" => Api::<RoleBinding>::namespaced(admin.clone(), ns)
                .create(&pp, &typed(&obj))
                .await
                .map(drop),
            _ => Ok(()),
        }
        .unwrap_or_else(|e| panic!("applying the chart's {kind}: {e}"));
        kinds.push(kind);
    }
    let sa =
        service_account.unwrap_or_else(|| panic!("{} renders no ServiceAccount", path.display()));
    for kind in ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "{} renders no {kind}: {kinds:?}",
            path.display()
        );
    }
    let request: TokenRequest = serde_json::from_value(json!({
        "spec": {"audiences": [], "expirationSeconds": 7200}
    }))
    .unwrap();
    let token = Api::<ServiceAccount>::namespaced(admin.clone(), NS_SYSTEM)
        .create_token_request(&sa, &pp, &request)
        .await
        .unwrap_or_else(|e| panic!("token for the chart's ServiceAccount {sa}: {e}"))
        .status
        .expect("token request answered without a token")
        .token;
    // The admin kubeconfig with the user swapped for the ServiceAccount's token.
    let mut kubeconfig: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(admin_kubeconfig).unwrap()).unwrap();
    kubeconfig["users"] = json!([{"name": "admin", "user": {"token": token}}]);
    let out = dir.join("operator-kubeconfig");
    std::fs::write(&out, serde_yaml_ng::to_string(&kubeconfig).unwrap()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&out).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    eprintln!(
        "e2e: operators run as ServiceAccount {NS_SYSTEM}/{sa} with the chart's RBAC ({})",
        path.display()
    );
    Ok((out, Client::try_from(config).unwrap()))
}

async fn apply_crds(kube: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(kube.clone());
    let mut names = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(repo().join("crds"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for f in files {
        let crd: CustomResourceDefinition =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        names.push(crd.metadata.name.clone().unwrap());
        api.create(&PostParams::default(), &crd).await.unwrap();
    }
    for name in names {
        let established = kube::runtime::wait::await_condition(
            api.clone(),
            &name,
            kube::runtime::wait::conditions::is_crd_established(),
        );
        tokio::time::timeout(WAIT, established)
            .await
            .unwrap_or_else(|_| panic!("CRD {name} not Established within {WAIT:?}"))
            .unwrap();
    }
}

/// The standard base64 of a value (how it travels to Juju).
pub fn b64(v: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

/// A TCP proxy on 127.0.0.1 in front of the kube-apiserver that can hold every byte
/// back: the network between one replica and the apiserver stalling, the apiserver
/// itself untouched. Connections made during a stall hang too.
#[allow(dead_code, reason = "used by the leader election scenario only")]
pub struct StallProxy {
    stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
    accept: tokio::task::JoinHandle<()>,
}

#[allow(dead_code, reason = "used by the leader election scenario only")]
impl StallProxy {
    /// Listens on a free port, forwarding to the apiserver of `kubeconfig`, and writes
    /// to `out` a copy of `kubeconfig` that reaches the apiserver through the proxy (the
    /// apiserver's certificate names 127.0.0.1, whatever the port).
    pub async fn start(kubeconfig: &Path, out: &Path) -> StallProxy {
        use std::sync::atomic::AtomicBool;
        let mut config: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(kubeconfig).unwrap()).unwrap();
        let server = config["clusters"][0]["cluster"]["server"]
            .as_str()
            .unwrap()
            .to_owned();
        let upstream: std::net::SocketAddr = server
            .trim_start_matches("https://")
            .parse()
            .unwrap_or_else(|e| panic!("apiserver address {server}: {e}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        config["clusters"][0]["cluster"]["server"] = json!(format!("https://127.0.0.1:{port}"));
        std::fs::write(out, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
        let stalled = std::sync::Arc::new(AtomicBool::new(false));
        let held = stalled.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let (from_client, to_client) = client.into_split();
                let (from_server, to_server) = server.into_split();
                tokio::spawn(pipe(from_client, to_server, held.clone()));
                tokio::spawn(pipe(from_server, to_client, held.clone()));
            }
        });
        StallProxy { stalled, accept }
    }

    /// Holds every byte back from now on (`true`), or lets them through again.
    pub fn stall(&self, on: bool) {
        self.stalled.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies one direction of a proxied connection, holding bytes while `stalled`.
#[allow(dead_code, reason = "used by the leader election scenario only")]
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while stalled.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
