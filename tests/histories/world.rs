//! One history against the shared environment: the tester's model of what every actor
//! did, the actions' execution, quiescence, and the invariants, which compare Juju's
//! real state (listed through the tester's own Juju connection) with that model. The
//! operator's statuses are checked, never believed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use juju_client::{
    ErrorCode, NewSecret, SecretContent, SecretFilter, SecretInfo, SecretRemoval, SecretSelector,
    SecretUpdate, SecretUri,
};
use juju_secrets_operator::crd::condition::READY;
use juju_secrets_operator::crd::grant::JujuSecretGrant;
use juju_secrets_operator::crd::secret::JujuSecret;
use k8s_openapi::api::core::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use super::actions::{APPS, Action, GRANTS, OBJECTS, Step, Until, Write, apps_of};
use super::harness::{self, Env, MODEL, NS, REFRESH};

/// How long Juju writes must stay still before a history counts as quiet: longer than
/// the refresh interval, so that every object had a periodic pass in the window.
const QUIET: Duration = Duration::from_millis(REFRESH.as_millis() as u64 + 2500);
/// Bound of the wait for quiet; a history that never quiets is "wedged".
const QUIET_BOUND: Duration = Duration::from_secs(90);
/// Grace for liveness properties after quiet (a Conflict whose clash went away, a
/// forged status, a grant revoked by hand): two refresh intervals and some.
const GRACE: Duration = Duration::from_millis(2 * REFRESH.as_millis() as u64 + 4000);
/// Slack around "at the same time" for adoption windows (the operator acts on a cache).
const SLACK: Duration = Duration::from_secs(3);
/// How long the aimed kill delays the Juju write.
const AIM_DELAY: Duration = Duration::from_millis(1500);
const POLL: Duration = Duration::from_millis(200);
const HAND: &str = "made by hand";

// ------------------------------------------------------------------ operator process

/// The Lease the replicas compete for (the chart's, which its Role lets them renew).
const LEASE: &str = "jso-juju-secrets-operator";
/// The replicas' Lease duration: the shortest the operator accepts, so a handover is quick.
pub const LEASE_DURATION: Duration = Duration::from_secs(3);

/// One operator process.
struct Replica {
    identity: String,
    port: u16,
    child: Option<Child>,
    /// Stopped with SIGSTOP by the tester (the log's length then) and resumed since:
    /// an exit after "leadership lost" in the log from there is expected, not a crash.
    paused: Option<u64>,
}

/// The operator binary as child processes, with the main operator's arguments plus
/// optional environment (e.g. `JSO_TEST_MUTANTS`): one process, or two replicas
/// electing a leader with the Lease as the chart runs them. Killed on drop.
pub struct OpProc {
    args: Vec<String>,
    envs: Vec<(String, String)>,
    /// Every replica's log, one file.
    pub log: PathBuf,
    replicas: Vec<Replica>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl OpProc {
    /// Like the environment's main operator (same flags, tenancy policy, ServiceAccount),
    /// with `envs` added; its log goes to `<run dir>/<name>.log`. With `replicas` > 1
    /// the processes elect a leader; with one, leader election is off (a restart does
    /// not wait for the Lease).
    pub fn start(env: &Env, name: &str, envs: &[(&str, &str)], replicas: usize) -> OpProc {
        let mut args = env.common_args.clone();
        args.extend([
            "--juju-connection-secret".into(),
            format!("{}/juju-admin", harness::NS_SYSTEM),
            "--namespaces".into(),
            format!("{NS},{}", harness::NS_DENIED),
            "--tenancy-policy".into(),
            env.dir.join("tenancy.yaml").display().to_string(),
        ]);
        if replicas > 1 {
            args.extend([
                "--leader-election=true".into(),
                "--lease-name".into(),
                LEASE.into(),
                "--lease-duration".into(),
                format!("{}s", LEASE_DURATION.as_secs()),
            ]);
        } else {
            args.push("--leader-election=false".into());
        }
        let mut op = OpProc {
            args,
            envs: envs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            log: env.dir.join(format!("{name}.log")),
            replicas: (0..replicas.max(1))
                .map(|i| Replica {
                    identity: format!("{name}-{i}"),
                    port: free_port(),
                    child: None,
                    paused: None,
                })
                .collect(),
        };
        op.spawn();
        op
    }

    /// Starts every replica that is not running.
    pub fn spawn(&mut self) {
        use std::io::Write as _;
        for r in &mut self.replicas {
            if r.child.is_some() {
                continue;
            }
            let mut log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .expect("operator log");
            let _ = writeln!(
                log,
                "### histories: starting the operator {} {:?}",
                r.identity, self.envs
            );
            let err = log.try_clone().expect("operator log");
            let child = Command::new(env!("CARGO_BIN_EXE_juju-secrets-operator"))
                .arg("run")
                .args(&self.args)
                .arg("--metrics-addr")
                .arg(format!("127.0.0.1:{}", r.port))
                .env_remove("KUBECONFIG")
                .env_remove("RUST_LOG")
                .env_remove("JSO_TEST_MUTANTS")
                .env("POD_NAME", &r.identity)
                .envs(self.envs.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err)
                .spawn()
                .expect("spawn the operator");
            r.child = Some(child);
            r.paused = None;
        }
    }

    /// The replica that says it leads (its `leader` gauge).
    fn leading(&self) -> Option<usize> {
        self.replicas.iter().position(|r| {
            r.child.is_some()
                && harness::http_get(r.port, "/metrics").is_some_and(|(code, body)| {
                    code == 200
                        && harness::metric(&body, "juju_secrets_operator_leader", &[]) == Some(1.0)
                })
        })
    }

    /// The replica that leads, else the first running one.
    fn leader_index(&self) -> usize {
        self.leading()
            .or_else(|| self.replicas.iter().position(|r| r.child.is_some()))
            .unwrap_or(0)
    }

    /// Waits (bounded) until a replica leads, so that a fault aimed at the leader hits
    /// one; replicas that stepped down are restarted meanwhile. Returns false if none
    /// led in time.
    pub async fn wait_leader(op: &Mutex<OpProc>, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            {
                let op = op.lock().expect("op");
                if op.leading().is_some() {
                    return true;
                }
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGKILLs the leader (the only process, or the replica holding the Lease): the
    /// standby takes over once the Lease expires. Returns the identity killed.
    pub fn kill_leader(&mut self) -> String {
        let i = self.leader_index();
        let r = &mut self.replicas[i];
        if let Some(mut c) = r.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        r.identity.clone()
    }

    /// SIGSTOPs the leader for `pause`, then SIGCONTs it: a pause longer than the Lease
    /// lets the standby take over while the old leader is frozen mid-work; on waking it
    /// must notice and stop before it writes anything. Returns the identity paused.
    pub async fn pause_leader(op: &Mutex<OpProc>, pause: Duration) -> Option<String> {
        let (pid, identity) = {
            let mut op = op.lock().expect("op");
            let i = op.leader_index();
            let offset = op.log_len();
            let r = &mut op.replicas[i];
            let pid = r.child.as_ref()?.id();
            r.paused = Some(offset);
            (pid, r.identity.clone())
        };
        let signal = |sig: &str| {
            let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
        };
        signal("-STOP");
        tokio::time::sleep(pause).await;
        signal("-CONT");
        Some(identity)
    }

    /// SIGKILLs every replica.
    pub fn kill(&mut self) {
        for r in &mut self.replicas {
            if let Some(mut c) = r.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// A replica that exited on its own, with its status; a replica the tester paused
    /// that exited because its leadership was lost is restarted quietly (that is the
    /// design: a leader that lost its Lease stops, and Kubernetes restarts it).
    pub fn exited(&mut self) -> Option<(String, std::process::ExitStatus)> {
        let log = self.log.clone();
        let mut crashed = None;
        let mut restart = false;
        for r in &mut self.replicas {
            let Some(status) = r.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) else {
                continue;
            };
            r.child = None;
            let stepped_down = r.paused.is_some_and(|offset| {
                std::fs::read(&log).is_ok_and(|t| {
                    String::from_utf8_lossy(t.get(offset as usize..).unwrap_or_default())
                        .contains("leadership lost")
                })
            });
            if stepped_down {
                restart = true;
            } else if crashed.is_none() {
                crashed = Some((r.identity.clone(), status));
            }
        }
        if restart {
            self.spawn();
        }
        crashed
    }

    pub fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }

    /// Sum of `juju_secrets_operator_reconciles_total` over every label and replica;
    /// `None` while no replica answers.
    pub fn reconciles(&self) -> Option<f64> {
        let mut total = None;
        for r in &self.replicas {
            if let Some((200, body)) = harness::http_get(r.port, "/metrics") {
                let n = harness::metric(&body, "juju_secrets_operator_reconciles_total", &[])
                    .unwrap_or(0.0);
                total = Some(total.unwrap_or(0.0) + n);
            }
        }
        total
    }

    /// Waits until every replica serves `/healthz` and one leads.
    pub async fn wait_healthy(&mut self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some((who, s)) = self.exited() {
                return Err(format!(
                    "operator {who} exited ({s}): {}",
                    harness::tail(&self.log, 15)
                ));
            }
            let healthy = self
                .replicas
                .iter()
                .all(|r| harness::http_get_status(r.port, "/healthz") == Some(200));
            let leads = self.replicas.len() == 1 || self.leading().is_some();
            if healthy && leads {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("operator not healthy within {within:?}"));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for OpProc {
    fn drop(&mut self) {
        self.kill();
    }
}

// ------------------------------------------------------------------ figures

/// Counters over every history of a run.
#[derive(Default, Debug)]
pub struct Stats {
    pub histories: u64,
    pub actions: BTreeMap<&'static str, u64>,
    pub skipped: u64,
    pub kills: u64,
    pub aimed_kills: u64,
    /// Leaders frozen (SIGSTOP) and resumed.
    pub pauses: u64,
    /// Replicas running (two elect a leader: a kill is a handover).
    pub replicas: u64,
    pub drops: u64,
    pub checks: u64,
    /// Juju write calls during quiet windows (refused retries: nothing changed).
    pub futile_writes: u64,
    pub violations: BTreeMap<&'static str, u64>,
    pub failed_histories: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.histories += o.histories;
        for (k, v) in &o.actions {
            *self.actions.entry(k).or_default() += v;
        }
        self.skipped += o.skipped;
        self.kills += o.kills;
        self.aimed_kills += o.aimed_kills;
        self.pauses += o.pauses;
        self.replicas = self.replicas.max(o.replicas);
        self.drops += o.drops;
        self.checks += o.checks;
        self.futile_writes += o.futile_writes;
        for (k, v) in &o.violations {
            *self.violations.entry(k).or_default() += v;
        }
        self.failed_histories += o.failed_histories;
    }
}

/// A broken promise found by a check.
#[derive(Clone, Debug)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

pub const PERSON_UNTOUCHED: &str = "person-secret-untouched";
pub const ONE_PER_OBJECT: &str = "at-most-one-secret-per-object";
pub const DELETE_REMOVES: &str = "delete-leaves-nothing";
pub const RETAIN_KEEPS: &str = "retain-keeps-the-secret";
pub const READY_MATCHES: &str = "ready-matches-spec";
pub const STATUS_AGREES: &str = "status-agrees-with-juju";
pub const GRANTS_UNION: &str = "grants-are-union-plus-persons";
pub const CONVERGES: &str = "converges";
pub const NO_LEAK: &str = "no-values-leaked";
pub const ALIVE: &str = "operator-alive";
pub const WEDGED: &str = "quiet (wedged)";

// ------------------------------------------------------------------ the model

#[derive(Clone, Debug)]
struct Span {
    name: u8,
    start: Instant,
    end: Option<Instant>,
}

fn overlap(a: &Span, b: &Span) -> bool {
    let now = Instant::now();
    a.name == b.name
        && a.start <= b.end.unwrap_or(now) + SLACK
        && b.start <= a.end.unwrap_or(now) + SLACK
}

/// One JujuSecret object from its create to its delete (a recreated name is another).
#[derive(Clone, Debug)]
struct Inc {
    id: usize,
    obj: u8,
    name: u8,
    desc: u8,
    data: BTreeMap<String, String>,
    contents: Vec<BTreeMap<String, String>>,
    adopt: bool,
    retain: bool,
    suspend: bool,
    live: bool,
    /// Deleted with `Retain` (true) or `Delete` (false).
    deleted_retain: Option<bool>,
    deleted_at: Option<Instant>,
    /// The Juju secret (URI, name) holding its content just before its deletion.
    seen_before_delete: Option<(String, String)>,
    /// While `adopt: true` with Juju name `name`.
    adopt_spans: Vec<Span>,
}

/// A secret a person made in Juju.
#[derive(Clone, Debug)]
struct Person {
    uri: SecretUri,
    label: u8,
    label_spans: Vec<Span>,
    content: BTreeMap<String, String>,
    revision: u64,
    removed: bool,
    /// A call's outcome was lost: not checked any more.
    unknown: bool,
}

#[derive(Clone, Debug)]
struct GrantObj {
    obj: u8,
    apps: BTreeSet<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Owner {
    Inc(usize),
    Person(usize),
}

/// A Juju secret of this history as listed.
#[derive(Clone, Debug)]
struct Sec {
    uri: SecretUri,
    label: String,
    description: Option<String>,
    revision: u64,
    content: Option<BTreeMap<String, String>>,
    access: BTreeSet<String>,
}

fn sec_of(s: &SecretInfo) -> Sec {
    let content = match &s.value {
        Some(Ok(c)) => Some(
            c.iter()
                .map(|(k, v)| {
                    (
                        k.to_owned(),
                        String::from_utf8_lossy(v.expose()).into_owned(),
                    )
                })
                .collect(),
        ),
        _ => None,
    };
    Sec {
        uri: s.uri.clone(),
        label: s.label.clone().unwrap_or_default(),
        description: s.description.clone(),
        revision: s.latest_revision,
        content,
        access: s
            .access
            .iter()
            .filter_map(|a| a.application())
            .map(str::to_owned)
            .collect(),
    }
}

fn to_content(m: &BTreeMap<String, String>) -> SecretContent {
    let mut c = SecretContent::new();
    for (k, v) in m {
        c.insert(k.clone(), v.as_str());
    }
    c
}

/// The world of one history.
pub struct World {
    pub env: Arc<Env>,
    pub op: Arc<Mutex<OpProc>>,
    tenant: Client,
    prefix: String,
    incs: Vec<Inc>,
    live: [Option<usize>; OBJECTS as usize],
    persons: Vec<Person>,
    grants: [Option<GrantObj>; GRANTS as usize],
    /// Applications some grant object ever listed for JujuSecret `o`.
    ever_listed: BTreeSet<(u8, String)>,
    /// Applications people granted (and did not revoke since), by secret URI.
    person_grants: BTreeMap<String, BTreeSet<String>>,
    owner: HashMap<String, Owner>,
    pub values: Vec<String>,
    counter: u64,
    log_offset: u64,
    /// What each action did, in order.
    pub journal: Vec<String>,
    pub stats: Stats,
    /// Whether the tester killed the operator on purpose (so an exit is not a crash).
    pub violations: Vec<Violation>,
}

type Res<T> = Result<T, String>;

impl World {
    pub fn new(env: Arc<Env>, op: Arc<Mutex<OpProc>>, tenant: Client, h: usize) -> World {
        let (log_offset, replicas) = {
            let op = op.lock().expect("op");
            (op.log_len(), op.replicas.len() as u64)
        };
        World {
            env,
            op,
            tenant,
            prefix: format!("h{h}"),
            incs: Vec::new(),
            live: [None; OBJECTS as usize],
            persons: Vec::new(),
            grants: std::array::from_fn(|_| None),
            ever_listed: BTreeSet::new(),
            person_grants: BTreeMap::new(),
            owner: HashMap::new(),
            values: Vec::new(),
            counter: 0,
            log_offset,
            journal: Vec::new(),
            stats: Stats {
                histories: 1,
                replicas,
                ..Stats::default()
            },
            violations: Vec::new(),
        }
    }

    fn obj_name(&self, o: u8) -> String {
        format!("{}-o{o}", self.prefix)
    }
    fn jname(&self, n: u8) -> String {
        format!("{}-n{n}", self.prefix)
    }
    fn gname(&self, g: u8) -> String {
        format!("{}-g{g}", self.prefix)
    }
    fn name_index(&self, label: &str) -> Option<u8> {
        label
            .strip_prefix(&format!("{}-n", self.prefix))
            .and_then(|i| i.parse().ok())
    }
    fn desc(d: u8) -> String {
        format!("description {d}")
    }

    fn jsecs(&self) -> Api<JujuSecret> {
        Api::namespaced(self.env.kube.clone(), NS)
    }
    fn jsgs(&self) -> Api<JujuSecretGrant> {
        Api::namespaced(self.env.kube.clone(), NS)
    }

    fn violate(&mut self, invariant: &'static str, detail: String) {
        // The checks after the teardown repeat those before it.
        if self
            .violations
            .iter()
            .any(|v| v.invariant == invariant && v.detail == detail)
        {
            return;
        }
        *self.stats.violations.entry(invariant).or_default() += 1;
        self.violations.push(Violation { invariant, detail });
    }

    fn fresh(&mut self, owner: Owner) -> String {
        self.counter += 1;
        let v = format!("sv{}x{}x{}", self.prefix, self.counter, harness::tag());
        self.owner.insert(v.clone(), owner);
        self.values.push(v.clone());
        v
    }

    fn content_for(&mut self, owner: Owner, two_keys: bool) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("password".to_owned(), self.fresh(owner));
        if two_keys {
            m.insert("user-name".to_owned(), self.fresh(owner));
        }
        m
    }

    /// Who wrote this content: one owner, or `None` (nobody known, or a mix).
    fn attribute(&self, s: &Sec) -> Option<Owner> {
        let content = s.content.as_ref()?;
        let owners: BTreeSet<Owner> = content
            .values()
            .map(|v| self.owner.get(v).copied())
            .collect::<Option<BTreeSet<_>>>()?;
        if owners.len() != 1 {
            return None;
        }
        owners.into_iter().next()
    }

    /// Whether a JujuSecret with `adopt: true` may have taken person secret `p` over.
    fn adoptable(&self, p: usize) -> bool {
        let person = &self.persons[p];
        person.unknown
            || self.incs.iter().any(|i| {
                i.adopt_spans
                    .iter()
                    .any(|a| person.label_spans.iter().any(|l| overlap(a, l)))
            })
    }

    fn open_adopt_span(&mut self, id: usize) {
        let inc = &mut self.incs[id];
        let open = inc.adopt_spans.last().is_some_and(|s| s.end.is_none());
        let want = inc.live && inc.adopt;
        let moved = inc.adopt_spans.last().is_some_and(|s| s.name != inc.name);
        if open
            && (!want || moved)
            && let Some(s) = inc.adopt_spans.last_mut()
        {
            s.end = Some(Instant::now());
        }
        let open = inc.adopt_spans.last().is_some_and(|s| s.end.is_none());
        if want && !open {
            inc.adopt_spans.push(Span {
                name: inc.name,
                start: Instant::now(),
                end: None,
            });
        }
    }

    fn note(&mut self, i: usize, step: &Step, what: &str) {
        let line = format!("  #{i:<3} {:<60} {what}", step.action.to_string());
        self.journal.push(line);
    }

    // -------------------------------------------------------------- Juju side

    /// Every secret of this history in Juju (by name prefix), with content and access.
    async fn juju(&self) -> Res<Vec<Sec>> {
        let filter = SecretFilter::user_secrets(&self.env.model_uuid);
        let mut last = String::new();
        for _ in 0..8 {
            match self
                .env
                .juju
                .list_secrets(&self.env.model_uuid, &filter, true)
                .await
            {
                Ok(list) => {
                    let p = format!("{}-", self.prefix);
                    return Ok(list
                        .iter()
                        .filter(|s| s.label.as_deref().is_some_and(|l| l.starts_with(&p)))
                        .map(sec_of)
                        .collect());
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Err(format!("listing Juju failed: {last}"))
    }

    // -------------------------------------------------------------- actions

    /// Runs the steps, then the checks (quiet, invariants; teardown, invariants again).
    pub async fn run(&mut self, steps: &[Step]) -> Res<()> {
        for (i, step) in steps.iter().enumerate() {
            *self.stats.actions.entry(step.action.kind()).or_default() += 1;
            let outcome = self.act(&step.action).await?;
            if outcome.starts_with("skipped") {
                self.stats.skipped += 1;
            }
            self.note(i, step, &outcome);
            self.crashed_check();
            if step.pause_ms > 0 {
                tokio::time::sleep(Duration::from_millis(u64::from(step.pause_ms))).await;
            }
        }
        self.journal.push("  -- quiet, then checks".into());
        self.quiet().await?;
        self.check(false).await?;
        self.journal
            .push("  -- teardown (every object deleted), quiet, checks".into());
        self.teardown().await?;
        self.quiet().await?;
        self.check(true).await?;
        Ok(())
    }

    fn crashed_check(&mut self) {
        let exited = self.op.lock().expect("op").exited();
        if let Some((who, status)) = exited {
            let tail = harness::tail(&self.op.lock().expect("op").log, 10);
            self.violate(
                ALIVE,
                format!("the operator {who} exited on its own ({status}): {tail}"),
            );
            self.op.lock().expect("op").spawn();
        }
    }

    async fn act(&mut self, action: &Action) -> Res<String> {
        match *action {
            Action::Create {
                obj,
                name,
                adopt,
                retain,
                two_keys,
            } => self.create(obj, name, adopt, retain, two_keys).await,
            Action::EditContent { obj, reuse } => self.edit_content(obj, reuse).await,
            Action::Rename { obj, name } => {
                let Some(id) = self.live[obj as usize] else {
                    return Ok("skipped: not declared".into());
                };
                self.patch(obj, json!({"spec": {"name": self.jname(name)}}))
                    .await?;
                self.incs[id].name = name;
                self.open_adopt_span(id);
                Ok("done".into())
            }
            Action::Describe { obj, desc } => {
                let Some(id) = self.live[obj as usize] else {
                    return Ok("skipped: not declared".into());
                };
                self.patch(obj, json!({"spec": {"description": Self::desc(desc)}}))
                    .await?;
                self.incs[id].desc = desc;
                Ok("done".into())
            }
            Action::SetAdopt { obj, on } => {
                let Some(id) = self.live[obj as usize] else {
                    return Ok("skipped: not declared".into());
                };
                self.patch(obj, json!({"spec": {"adopt": on}})).await?;
                self.incs[id].adopt = on;
                self.open_adopt_span(id);
                Ok("done".into())
            }
            Action::Suspend { obj, on } => {
                let Some(id) = self.live[obj as usize] else {
                    return Ok("skipped: not declared".into());
                };
                self.patch(obj, json!({"spec": {"suspend": on}})).await?;
                self.incs[id].suspend = on;
                Ok("done".into())
            }
            Action::SetPolicy { obj, retain } => {
                let Some(id) = self.live[obj as usize] else {
                    return Ok("skipped: not declared".into());
                };
                let p = if retain { "Retain" } else { "Delete" };
                self.patch(obj, json!({"spec": {"deletionPolicy": p}}))
                    .await?;
                self.incs[id].retain = retain;
                Ok("done".into())
            }
            Action::Delete { obj } => self.delete(obj).await,
            Action::GrantCreate { grant, obj, apps } => self.grant_create(grant, obj, apps).await,
            Action::GrantEdit { grant, apps } => {
                let Some(g) = self.grants[grant as usize].clone() else {
                    return Ok("skipped: no such grant object".into());
                };
                let apps = apps_of(apps);
                self.jsgs()
                    .patch(
                        &self.gname(grant),
                        &PatchParams::default(),
                        &Patch::Merge(json!({"spec": {"applications": apps}})),
                    )
                    .await
                    .map_err(|e| format!("patch grant: {e}"))?;
                for a in &apps {
                    self.ever_listed.insert((g.obj, a.clone()));
                }
                self.grants[grant as usize] = Some(GrantObj {
                    obj: g.obj,
                    apps: apps.into_iter().collect(),
                });
                Ok("done".into())
            }
            Action::GrantDelete { grant } => {
                if self.grants[grant as usize].is_none() {
                    return Ok("skipped: no such grant object".into());
                }
                self.jsgs()
                    .delete(&self.gname(grant), &DeleteParams::default())
                    .await
                    .map_err(|e| format!("delete grant: {e}"))?;
                self.grants[grant as usize] = None;
                Ok("done".into())
            }
            Action::Wait { obj, until } => {
                if self.live[obj as usize].is_none() {
                    return Ok("skipped: not declared".into());
                }
                let name = self.obj_name(obj);
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    let o = self
                        .jsecs()
                        .get_opt(&name)
                        .await
                        .map_err(|e| e.to_string())?;
                    let reached = o.as_ref().is_some_and(|o| {
                        harness::ready(o).is_some_and(|(s, r)| match until {
                            Until::Synced => s == "True" && r == "Synced" && harness::current(o),
                            Until::Conflict => {
                                s == "False" && r == "Conflict" && harness::condition_current(o)
                            }
                        })
                    });
                    if reached {
                        return Ok("reached".into());
                    }
                    if Instant::now() > deadline {
                        return Ok(format!(
                            "not reached in 20 s ({})",
                            o.as_ref().map_or("absent".into(), harness::describe)
                        ));
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
            Action::PersonCreate { name } => self.person_create(name).await,
            Action::PersonEdit { name } => self.person_edit(name).await,
            Action::PersonRename { name, to } => self.person_rename(name, to).await,
            Action::PersonRemove { name } => self.person_remove(name).await,
            Action::PersonGrant { name, app } => self.person_grant(name, app, true).await,
            Action::PersonRevoke { name, app } => self.person_grant(name, app, false).await,
            Action::StaleClash {
                obj,
                name,
                gitops,
                adopt,
            } => {
                // Right after the operator listed the model (only it lists while this
                // waits).
                let lists = || self.env.emulator.call_count("Secrets", "ListSecrets");
                let c0 = lists();
                let deadline = Instant::now() + REFRESH + Duration::from_secs(2);
                while lists() == c0 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                let listed = lists() > c0;
                let mut out = format!(
                    "{}; person: {}",
                    if listed {
                        "after a listing"
                    } else {
                        "no listing seen"
                    },
                    self.person_create(name).await?
                );
                if gitops {
                    let then = match self.live[obj as usize] {
                        Some(id) => {
                            self.patch(
                                obj,
                                json!({"spec": {"name": self.jname(name), "adopt": adopt}}),
                            )
                            .await?;
                            self.incs[id].name = name;
                            self.incs[id].adopt = adopt;
                            self.open_adopt_span(id);
                            "renamed".to_owned()
                        }
                        None => self.create(obj, name, adopt, false, false).await?,
                    };
                    out.push_str(&format!("; gitops: {then}"));
                }
                Ok(out)
            }
            Action::ForgeSecret { obj, target } => {
                if self.live[obj as usize].is_none() {
                    return Ok("skipped: not declared".into());
                }
                let Some(sec) = self.by_label(target).await? else {
                    return Ok("skipped: no target".into());
                };
                let forged = json!({"status": {
                    "secretId": sec.uri.short(),
                    "secretUri": sec.uri.full(&self.env.model_uuid),
                    "modelUuid": self.env.model_uuid,
                    "owned": true,
                    "revision": 1,
                    "contentMac": "hmac-sha256:00",
                    "pendingCreate": "forged",
                }});
                Api::<JujuSecret>::namespaced(self.tenant.clone(), NS)
                    .patch_status(
                        &self.obj_name(obj),
                        &PatchParams::default(),
                        &Patch::Merge(forged),
                    )
                    .await
                    .map_err(|e| format!("forge status: {e}"))?;
                Ok("forged".into())
            }
            Action::ForgeGrant { grant, target } => {
                if self.grants[grant as usize].is_none() {
                    return Ok("skipped: no such grant object".into());
                }
                let Some(sec) = self.by_label(target).await? else {
                    return Ok("skipped: no target".into());
                };
                let forged = json!({"status": {
                    "secretId": sec.uri.short(),
                    "modelUuid": self.env.model_uuid,
                    "ownedApplications": APPS,
                    "grantedApplications": APPS,
                }});
                Api::<JujuSecretGrant>::namespaced(self.tenant.clone(), NS)
                    .patch_status(
                        &self.gname(grant),
                        &PatchParams::default(),
                        &Patch::Merge(forged),
                    )
                    .await
                    .map_err(|e| format!("forge grant status: {e}"))?;
                Ok("forged".into())
            }
            Action::Kill { pause_ms: None } => {
                self.await_leader().await;
                let mut op = self.op.lock().expect("op");
                let who = op.kill_leader();
                op.spawn();
                self.stats.kills += 1;
                Ok(format!("killed {who}, restarted"))
            }
            Action::Kill { pause_ms: Some(ms) } => {
                let pause = Duration::from_millis(u64::from(ms));
                self.await_leader().await;
                match OpProc::pause_leader(&self.op, pause).await {
                    Some(who) => {
                        self.stats.pauses += 1;
                        Ok(format!("paused {who} for {ms} ms"))
                    }
                    None => Ok("no leader running to pause".into()),
                }
            }
            Action::AimedKill {
                write,
                obj,
                name,
                before,
                jitter_ms,
            } => self.aimed_kill(write, obj, name, before, jitter_ms).await,
            Action::DropConnections => {
                self.env.emulator.faults().drop_connections();
                self.stats.drops += 1;
                Ok("dropped".into())
            }
        }
    }

    async fn patch(&self, obj: u8, patch: Value) -> Res<()> {
        self.jsecs()
            .patch(
                &self.obj_name(obj),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
            .map(drop)
            .map_err(|e| format!("patch {}: {e}", self.obj_name(obj)))
    }

    /// Waits (bounded) until no object of that name exists (its finalizer ran).
    async fn wait_gone<K>(&self, api: &Api<K>, name: &str) -> Res<()>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let deadline = Instant::now() + Duration::from_secs(45);
        while api
            .get_opt(name)
            .await
            .map_err(|e| e.to_string())?
            .is_some()
        {
            if Instant::now() > deadline {
                return Err(format!("{WEDGED}: {name} still being deleted after 45 s"));
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    async fn create(
        &mut self,
        obj: u8,
        name: u8,
        adopt: bool,
        retain: bool,
        two_keys: bool,
    ) -> Res<String> {
        if self.live[obj as usize].is_some() {
            return Ok("skipped: already declared".into());
        }
        let k8s = self.obj_name(obj);
        self.wait_gone(&self.jsecs(), &k8s).await?;
        let id = self.incs.len();
        let data = self.content_for(Owner::Inc(id), two_keys);
        let obj_json = json!({
            "apiVersion": "secrets.juju.is/v1alpha1",
            "kind": "JujuSecret",
            "metadata": {"name": k8s, "namespace": NS},
            "spec": {
                "model": MODEL,
                "name": self.jname(name),
                "description": Self::desc(0),
                "data": data,
                "adopt": adopt,
                "deletionPolicy": if retain { "Retain" } else { "Delete" },
            },
        });
        let js: JujuSecret = serde_json::from_value(obj_json).map_err(|e| e.to_string())?;
        self.jsecs()
            .create(&PostParams::default(), &js)
            .await
            .map_err(|e| format!("create {k8s}: {e}"))?;
        self.incs.push(Inc {
            id,
            obj,
            name,
            desc: 0,
            data: data.clone(),
            contents: vec![data],
            adopt,
            retain,
            suspend: false,
            live: true,
            deleted_retain: None,
            deleted_at: None,
            seen_before_delete: None,
            adopt_spans: Vec::new(),
        });
        self.live[obj as usize] = Some(id);
        self.open_adopt_span(id);
        Ok(format!("created (incarnation #{id})"))
    }

    async fn edit_content(&mut self, obj: u8, reuse: Option<u8>) -> Res<String> {
        let Some(id) = self.live[obj as usize] else {
            return Ok("skipped: not declared".into());
        };
        let inc = &self.incs[id];
        let data = match reuse {
            Some(r) if inc.contents.len() > 1 => {
                inc.contents[usize::from(r) % inc.contents.len()].clone()
            }
            _ => {
                let two = inc.data.len() > 1;
                let d = self.content_for(Owner::Inc(id), two);
                self.incs[id].contents.push(d.clone());
                d
            }
        };
        self.patch(obj, json!({"spec": {"data": data}})).await?;
        self.incs[id].data = data;
        Ok("done".into())
    }

    async fn delete(&mut self, obj: u8) -> Res<String> {
        let Some(id) = self.live[obj as usize] else {
            return Ok("skipped: not declared".into());
        };
        // What holds its content now (a Retain must leave exactly that one).
        let mine: Vec<Sec> = self
            .juju()
            .await?
            .into_iter()
            .filter(|s| self.attribute(s) == Some(Owner::Inc(id)))
            .collect();
        let k8s = self.obj_name(obj);
        match self.jsecs().delete(&k8s, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(format!("delete {k8s}: {e}")),
        }
        let inc = &mut self.incs[id];
        inc.live = false;
        inc.deleted_retain = Some(inc.retain);
        inc.deleted_at = Some(Instant::now());
        if mine.len() == 1 {
            inc.seen_before_delete = Some((mine[0].uri.short(), mine[0].label.clone()));
        }
        self.live[obj as usize] = None;
        self.open_adopt_span(id);
        Ok(format!(
            "deleted ({}; {} secret(s) held its content)",
            if self.incs[id].retain {
                "Retain"
            } else {
                "Delete"
            },
            mine.len()
        ))
    }

    async fn grant_create(&mut self, grant: u8, obj: u8, apps: u8) -> Res<String> {
        if self.grants[grant as usize].is_some() {
            return Ok("skipped: exists".into());
        }
        let name = self.gname(grant);
        self.wait_gone(&self.jsgs(), &name).await?;
        let apps = apps_of(apps);
        let g: JujuSecretGrant = serde_json::from_value(json!({
            "apiVersion": "secrets.juju.is/v1alpha1",
            "kind": "JujuSecretGrant",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"secretRef": {"name": self.obj_name(obj)}, "applications": apps},
        }))
        .map_err(|e| e.to_string())?;
        self.jsgs()
            .create(&PostParams::default(), &g)
            .await
            .map_err(|e| format!("create grant {name}: {e}"))?;
        for a in &apps {
            self.ever_listed.insert((obj, a.clone()));
        }
        self.grants[grant as usize] = Some(GrantObj {
            obj,
            apps: apps.into_iter().collect(),
        });
        Ok("created".into())
    }

    async fn by_label(&self, n: u8) -> Res<Option<Sec>> {
        let label = self.jname(n);
        Ok(self.juju().await?.into_iter().find(|s| s.label == label))
    }

    /// The person secret named `n` now, if the person may still act on it.
    fn person_named(&self, n: u8) -> Option<usize> {
        (0..self.persons.len()).find(|&p| {
            let s = &self.persons[p];
            !s.removed && s.label == n && !self.adoptable(p)
        })
    }

    async fn person_create(&mut self, n: u8) -> Res<String> {
        let p = self.persons.len();
        let content = self.content_for(Owner::Person(p), false);
        let label = self.jname(n);
        let new = NewSecret {
            label: Some(label.clone()),
            description: Some(HAND.into()),
            content: to_content(&content),
        };
        let result = self
            .env
            .juju
            .create_secrets(&self.env.model_uuid, &[new])
            .await;
        let uri = match result.map(|r| r.into_iter().next()) {
            Ok(Some(Ok(uri))) => uri,
            Ok(Some(Err(e))) if e.code == ErrorCode::AlreadyExists => {
                return Ok("refused: name taken".into());
            }
            Ok(Some(Err(e))) => return Ok(format!("refused: {e}")),
            Ok(None) => return Err("CreateSecrets answered no result".into()),
            Err(e) => {
                // Outcome unknown: look.
                let found = self.by_label(n).await?;
                match found {
                    Some(s) if s.content.as_ref() == Some(&content) => s.uri,
                    _ => return Ok(format!("failed ({e}); not created")),
                }
            }
        };
        self.persons.push(Person {
            uri,
            label: n,
            label_spans: vec![Span {
                name: n,
                start: Instant::now(),
                end: None,
            }],
            content,
            revision: 1,
            removed: false,
            unknown: false,
        });
        Ok(format!("created (person secret #{p})"))
    }

    async fn person_edit(&mut self, n: u8) -> Res<String> {
        let Some(p) = self.person_named(n) else {
            return Ok("skipped: no person secret of that name".into());
        };
        let content = self.content_for(Owner::Person(p), false);
        let mut update = SecretUpdate::of(SecretSelector::Uri(self.persons[p].uri.clone()));
        update.content = Some(to_content(&content));
        match self.person_update(p, update).await {
            Ok(()) => {
                self.persons[p].content = content;
                self.persons[p].revision += 1;
                Ok("done".into())
            }
            Err(e) => Ok(e),
        }
    }

    /// One update by the person; an unknown outcome makes the secret unchecked.
    async fn person_update(&mut self, p: usize, update: SecretUpdate) -> Result<(), String> {
        match self
            .env
            .juju
            .update_secrets(&self.env.model_uuid, &[update])
            .await
        {
            Ok(r) => match r.into_iter().next() {
                Some(Ok(())) => Ok(()),
                Some(Err(e)) => Err(format!("refused: {e}")),
                None => Err("refused: no result".into()),
            },
            Err(e) => {
                self.persons[p].unknown = true;
                Err(format!("failed ({e}); outcome unknown, no longer checked"))
            }
        }
    }

    async fn person_rename(&mut self, n: u8, to: u8) -> Res<String> {
        let Some(p) = self.person_named(n) else {
            return Ok("skipped: no person secret of that name".into());
        };
        if n == to {
            return Ok("skipped: same name".into());
        }
        let mut update = SecretUpdate::of(SecretSelector::Uri(self.persons[p].uri.clone()));
        update.label = Some(self.jname(to));
        match self.person_update(p, update).await {
            Ok(()) => {
                let now = Instant::now();
                let person = &mut self.persons[p];
                if let Some(s) = person.label_spans.last_mut() {
                    s.end = Some(now);
                }
                person.label_spans.push(Span {
                    name: to,
                    start: now,
                    end: None,
                });
                person.label = to;
                Ok("done".into())
            }
            Err(e) => Ok(e),
        }
    }

    async fn person_remove(&mut self, n: u8) -> Res<String> {
        let Some(p) = self.person_named(n) else {
            return Ok("skipped: no person secret of that name".into());
        };
        let removal = SecretRemoval {
            secret: SecretSelector::Uri(self.persons[p].uri.clone()),
            revisions: None,
        };
        match self
            .env
            .juju
            .remove_secrets(&self.env.model_uuid, &[removal])
            .await
        {
            Ok(r) => match r.into_iter().next() {
                Some(Ok(())) => {
                    let person = &mut self.persons[p];
                    person.removed = true;
                    if let Some(s) = person.label_spans.last_mut() {
                        s.end = Some(Instant::now());
                    }
                    Ok("done".into())
                }
                other => Ok(format!("refused: {other:?}")),
            },
            Err(e) => {
                self.persons[p].unknown = true;
                Ok(format!("failed ({e}); outcome unknown"))
            }
        }
    }

    /// A person grants (or revokes) `app` on the secret named `n` now: on their own
    /// secret; on a JujuSecret's only when no grant object ever listed that
    /// application for it and it has no access yet (so the grant is unambiguously the
    /// person's); revokes only what they granted.
    async fn person_grant(&mut self, n: u8, app: u8, grant: bool) -> Res<String> {
        let app = APPS[usize::from(app) % APPS.len()].to_owned();
        let Some(sec) = self.by_label(n).await? else {
            return Ok("skipped: no secret of that name".into());
        };
        let uri = sec.uri.short();
        if !grant {
            if !self
                .person_grants
                .get(&uri)
                .is_some_and(|s| s.contains(&app))
            {
                return Ok("skipped: not granted by the person".into());
            }
        } else {
            let own = self
                .persons
                .iter()
                .position(|p| p.uri == sec.uri && !p.removed);
            let allowed = match own {
                Some(p) => !self.adoptable(p) && self.attribute(&sec) == Some(Owner::Person(p)),
                None => match self.attribute(&sec) {
                    Some(Owner::Inc(i)) => {
                        self.incs[i].live
                            && !sec.access.contains(&app)
                            && !self.ever_listed.contains(&(self.incs[i].obj, app.clone()))
                    }
                    _ => false,
                },
            };
            if !allowed {
                return Ok("skipped: the grant would be ambiguous".into());
            }
        }
        let selector = SecretSelector::Uri(sec.uri.clone());
        let apps = [app.clone()];
        let result = if grant {
            self.env
                .juju
                .grant_secret(&self.env.model_uuid, &selector, &apps)
                .await
        } else {
            self.env
                .juju
                .revoke_secret(&self.env.model_uuid, &selector, &apps)
                .await
        };
        match result.map(|r| r.into_iter().next()) {
            Ok(Some(Ok(()))) => {
                let set = self.person_grants.entry(uri).or_default();
                if grant {
                    set.insert(app);
                } else {
                    set.remove(&app);
                }
                Ok("done".into())
            }
            Ok(other) => Ok(format!("refused: {other:?}")),
            Err(e) => {
                // Unknown: nobody can say what the access should be; stop checking
                // this secret's grants by treating the app as ambiguous both ways.
                if let Some(p) = self.persons.iter_mut().find(|p| p.uri == sec.uri) {
                    p.unknown = true;
                }
                self.ever_listed.insert((u8::MAX, uri));
                Ok(format!("failed ({e}); outcome unknown"))
            }
        }
    }

    /// Before a fault aimed at the leader: replicas that exited are reaped (a crash is a
    /// violation, a paused leader that stepped down is restarted) and one leads.
    async fn await_leader(&mut self) {
        self.crashed_check();
        if !OpProc::wait_leader(&self.op, 6 * LEASE_DURATION).await {
            self.journal
                .push("  (no replica led within six Lease durations)".into());
        }
    }

    async fn aimed_kill(
        &mut self,
        write: Write,
        obj: u8,
        name: u8,
        before: bool,
        jitter_ms: u16,
    ) -> Res<String> {
        // A create needs a free object name, an update a declared object.
        let write = match (write, self.live[obj as usize].is_some()) {
            (Write::Create, true) => Write::Update,
            (Write::Update, false) => Write::Create,
            (w, _) => w,
        };
        let faults = self.env.emulator.faults().clone();
        let method = write.method();
        // Before: the write is held before it takes effect (a kill then means it never
        // reached Juju). After: it takes effect and its answer is held (a kill then
        // lands between the Juju write and the status write).
        let set = |d: Duration| {
            if before {
                faults.set_delay_for(Some("Secrets"), Some(method), d);
            } else {
                faults.set_answer_delay_for("Secrets", method, d);
            }
        };
        set(AIM_DELAY);
        let env = self.env.clone();
        let calls = move || env.emulator.call_count("Secrets", method);
        let c0 = calls();
        let what = match write {
            Write::Create => self.create(obj, name, false, false, false).await,
            Write::Update => self.edit_content(obj, None).await,
        };
        let what = match what {
            Ok(w) => w,
            Err(e) => {
                set(Duration::ZERO);
                return Err(e);
            }
        };
        let deadline = Instant::now() + Duration::from_secs(6);
        while calls() == c0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if calls() == c0 {
            set(Duration::ZERO);
            return Ok(format!("{what}; no {method} to aim at (no kill)"));
        }
        let wait = Duration::from_millis(u64::from(jitter_ms) % 1400);
        tokio::time::sleep(wait).await;
        {
            let mut op = self.op.lock().expect("op");
            op.kill_leader();
            set(Duration::ZERO);
            op.spawn();
        }
        self.stats.kills += 1;
        self.stats.aimed_kills += 1;
        Ok(format!(
            "{what}; killed {} ms after {method} arrived, restarted",
            wait.as_millis()
        ))
    }

    // -------------------------------------------------------------- quiet

    async fn history_objects(&self) -> Res<(Vec<JujuSecret>, Vec<JujuSecretGrant>)> {
        let p = format!("{}-", self.prefix);
        let js = self
            .jsecs()
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?
            .items
            .into_iter()
            .filter(|o| o.name_any().starts_with(&p))
            .collect();
        let gs = self
            .jsgs()
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?
            .items
            .into_iter()
            .filter(|o| o.name_any().starts_with(&p))
            .collect();
        Ok((js, gs))
    }

    fn writes(&self) -> u64 {
        self.write_counts().iter().map(|(_, n)| n).sum()
    }

    fn write_counts(&self) -> Vec<(&'static str, u64)> {
        [
            "CreateSecrets",
            "UpdateSecrets",
            "RemoveSecrets",
            "GrantSecret",
            "RevokeSecret",
        ]
        .iter()
        .map(|m| (*m, self.env.emulator.call_count("Secrets", m)))
        .collect()
    }

    /// This history's secrets in Juju, as one comparable text.
    async fn fingerprint(&self) -> Res<String> {
        let mut secs = self.juju().await?;
        secs.sort_by_key(|s| s.uri.short());
        Ok(secs
            .iter()
            .map(|s| {
                format!(
                    "{} {} {:?} {} {:?} {:?}\n",
                    s.uri.short(),
                    s.label,
                    s.description,
                    s.revision,
                    s.content,
                    s.access
                )
            })
            .collect())
    }

    /// Waits until every object's status is for its generation, nothing is being
    /// deleted, Juju's state (this history's secrets) stayed still for [`QUIET`], and the operator reconciled at
    /// least once per live JujuSecret in that window (proof it looked).
    async fn quiet(&mut self) -> Res<()> {
        let t0 = Instant::now();
        let deadline = t0 + QUIET_BOUND;
        let mut since = Instant::now();
        let mut last_writes = self.writes();
        let mut last_state = String::new();
        let mut rec0 = self.op.lock().expect("op").reconciles();
        let mut counts0 = self.write_counts();
        let mut counts_at = Instant::now();
        loop {
            self.crashed_check();
            let (js, gs) = self.history_objects().await?;
            let unsettled: Vec<String> = js
                .iter()
                .filter(|o| o.metadata.deletion_timestamp.is_some() || !harness::current(o))
                .map(|o| format!("{}: {}", o.name_any(), harness::describe(o)))
                .chain(
                    gs.iter()
                        .filter(|g| {
                            g.metadata.deletion_timestamp.is_some()
                                || g.status.as_ref().and_then(|s| s.observed_generation)
                                    != g.metadata.generation
                        })
                        .map(|g| format!("{}: grant not observed/being deleted", g.name_any())),
                )
                .collect();
            // Quiet means Juju's state stays still: an operator retrying a write Juju
            // refuses (a rename onto a taken name, once per refresh) is steady, not busy.
            let state = self.fingerprint().await?;
            let rec = self.op.lock().expect("op").reconciles();
            if !unsettled.is_empty() || state != last_state {
                since = Instant::now();
                last_state = state;
                last_writes = self.writes();
                rec0 = rec;
            }
            if rec.is_some() && (rec0.is_none() || rec < rec0) {
                // Restarted (counters from zero) or not answering before.
                rec0 = rec;
                since = Instant::now();
            }
            let looked = match (rec0, rec) {
                (Some(a), Some(b)) => b - a >= js.len() as f64,
                _ => false,
            };
            if unsettled.is_empty() && since.elapsed() >= QUIET && looked {
                let futile = self.writes() - last_writes;
                self.stats.futile_writes += futile;
                self.journal.push(format!(
                    "  -- quiet after {:.1?}{}",
                    t0.elapsed(),
                    if futile > 0 {
                        format!(" ({futile} Juju write calls in the quiet window changed nothing)")
                    } else {
                        String::new()
                    }
                ));
                return Ok(());
            }
            if counts_at.elapsed() > Duration::from_secs(20)
                && Instant::now() + Duration::from_secs(20) < deadline
            {
                counts0 = self.write_counts();
                counts_at = Instant::now();
            }
            if Instant::now() > deadline {
                let now = self.write_counts();
                let deltas: Vec<String> = now
                    .iter()
                    .zip(&counts0)
                    .filter(|((_, a), (_, b))| a != b)
                    .map(|((m, a), (_, b))| format!("{m} +{}", a - b))
                    .collect();
                let states: Vec<String> = js
                    .iter()
                    .map(|o| format!("{}: {}", o.name_any(), harness::describe(o)))
                    .collect();
                let why = if unsettled.is_empty() {
                    format!(
                        "Juju writes or reconciles never settled (in the last {:.0?}: writes {deltas:?}; reconciles {rec0:?} -> {rec:?} since the last write); objects: {states:?}",
                        counts_at.elapsed()
                    )
                } else {
                    unsettled.join("; ")
                };
                // Still check what holds now: a wedge often hides a broken promise.
                self.violate(WEDGED, format!("not quiet within {QUIET_BOUND:?}: {why}"));
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn teardown(&mut self) -> Res<()> {
        for o in 0..OBJECTS {
            if self.live[o as usize].is_some() {
                let out = self.delete(o).await?;
                self.journal.push(format!("  teardown: o{o} {out}"));
            }
        }
        for g in 0..GRANTS {
            if self.grants[g as usize].take().is_some() {
                let _ = self
                    .jsgs()
                    .delete(&self.gname(g), &DeleteParams::default())
                    .await;
            }
        }
        for o in 0..OBJECTS {
            self.wait_gone(&self.jsecs(), &self.obj_name(o)).await?;
        }
        for g in 0..GRANTS {
            self.wait_gone(&self.jsgs(), &self.gname(g)).await?;
        }
        Ok(())
    }

    /// Removes what the history left in Juju (people's and retained secrets), so the
    /// model's listing stays small over a soak.
    pub async fn clean_juju(&self) {
        if let Ok(secs) = self.juju().await {
            let removals: Vec<SecretRemoval> = secs
                .iter()
                .map(|s| SecretRemoval {
                    secret: SecretSelector::Uri(s.uri.clone()),
                    revisions: None,
                })
                .collect();
            if !removals.is_empty() {
                let _ = self
                    .env
                    .juju
                    .remove_secrets(&self.env.model_uuid, &removals)
                    .await;
            }
        }
    }

    // -------------------------------------------------------------- checks

    /// Whether live object `id`'s not being Ready is justified now: a secret of its
    /// Juju name exists that is not its own.
    fn conflict_justified(&self, id: usize, secs: &[Sec]) -> bool {
        let label = self.jname(self.incs[id].name);
        secs.iter()
            .any(|s| s.label == label && self.attribute(s) != Some(Owner::Inc(id)))
    }

    /// Waits (bounded by [`GRACE`]) until every live, unsuspended JujuSecret is Ready,
    /// or in a Conflict that Juju's state justifies; reports the others.
    async fn converge(&mut self) -> Res<()> {
        let deadline = Instant::now() + GRACE;
        loop {
            let secs = self.juju().await?;
            let mut stuck = Vec::new();
            for o in 0..OBJECTS {
                let Some(id) = self.live[o as usize] else {
                    continue;
                };
                if self.incs[id].suspend {
                    continue;
                }
                let obj = self
                    .jsecs()
                    .get_opt(&self.obj_name(o))
                    .await
                    .map_err(|e| e.to_string())?;
                let Some(obj) = obj else {
                    stuck.push(format!("o{o}: the object is gone"));
                    continue;
                };
                let ok = match harness::ready(&obj) {
                    Some((s, r)) if s == "True" && r == "Synced" => harness::current(&obj),
                    Some((s, r)) if s == "False" && r == "Conflict" => {
                        self.conflict_justified(id, &secs)
                    }
                    _ => false,
                };
                if !ok {
                    stuck.push(format!(
                        "o{o} (#{id}, n{}): {}",
                        self.incs[id].name,
                        harness::describe(&obj)
                    ));
                }
            }
            self.stats.checks += 1;
            if stuck.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                for s in stuck {
                    self.violate(
                        CONVERGES,
                        format!("not Ready and no clash in Juju justifies it, {GRACE:?} after quiet: {s}"),
                    );
                }
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn check(&mut self, after_teardown: bool) -> Res<()> {
        if !after_teardown {
            self.converge().await?;
        }
        let secs = self.juju().await?;
        let by_uri: HashMap<String, &Sec> = secs.iter().map(|s| (s.uri.short(), s)).collect();
        let mut found: Vec<Violation> = Vec::new();
        let mut checks = 0u64;
        let mut v = |inv: &'static str, d: String| {
            found.push(Violation {
                invariant: inv,
                detail: d,
            })
        };

        // People's secrets: untouched unless a JujuSecret with adopt may have taken them.
        for (p, person) in self.persons.iter().enumerate() {
            if person.unknown || self.adoptable(p) {
                continue;
            }
            checks += 1;
            let id = person.uri.short();
            let s = by_uri.get(&id);
            let want_label = self.jname(person.label);
            match (person.removed, s) {
                (true, _) => {}
                (false, None) => v(
                    PERSON_UNTOUCHED,
                    format!("person secret #{p} {id} ({want_label}) was removed"),
                ),
                (false, Some(s)) => {
                    if s.label != want_label {
                        v(
                            PERSON_UNTOUCHED,
                            format!(
                                "person secret #{p} {id} renamed to {} (person named it {want_label})",
                                s.label
                            ),
                        );
                    }
                    if s.content.as_ref() != Some(&person.content) {
                        let who = self.attribute(s);
                        v(
                            PERSON_UNTOUCHED,
                            format!(
                                "person secret #{p} {id} ({want_label}): content is not the person's (now written by {who:?})"
                            ),
                        );
                    }
                    if s.revision != person.revision {
                        v(
                            PERSON_UNTOUCHED,
                            format!(
                                "person secret #{p} {id} ({want_label}): revision {} (the person made {})",
                                s.revision, person.revision
                            ),
                        );
                    }
                    if s.description.as_deref() != Some(HAND) {
                        v(
                            PERSON_UNTOUCHED,
                            format!("person secret #{p} {id} ({want_label}): description changed"),
                        );
                    }
                    let want = self.person_grants.get(&id).cloned().unwrap_or_default();
                    if s.access != want {
                        v(
                            PERSON_UNTOUCHED,
                            format!(
                                "person secret #{p} {id} ({want_label}): access {:?}, the person granted {want:?}",
                                s.access
                            ),
                        );
                    }
                }
            }
        }

        // At most one Juju secret per JujuSecret; none of unknown or mixed content
        // except people's (whose content the model knows).
        let mut per_inc: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for s in &secs {
            checks += 1;
            match self.attribute(s) {
                Some(Owner::Inc(i)) => {
                    per_inc
                        .entry(i)
                        .or_default()
                        .push(format!("{} ({})", s.uri.short(), s.label))
                }
                Some(Owner::Person(_)) => {}
                None => {
                    let person = self.persons.iter().any(|p| p.uri == s.uri && p.unknown);
                    if !person {
                        v(
                            ONE_PER_OBJECT,
                            format!(
                                "{} ({}) holds content no single actor wrote (mixed or unknown)",
                                s.uri.short(),
                                s.label
                            ),
                        );
                    }
                }
            }
        }
        for (i, list) in &per_inc {
            if list.len() > 1 {
                v(
                    ONE_PER_OBJECT,
                    format!(
                        "incarnation #{i} (o{}) has {} Juju secrets: {list:?}",
                        self.incs[*i].obj,
                        list.len()
                    ),
                );
            }
        }

        // Deleted objects: Delete leaves nothing; Retain leaves the secret it had.
        for inc in &self.incs {
            let Some(retain) = inc.deleted_retain else {
                continue;
            };
            checks += 1;
            let left = per_inc.get(&inc.id).cloned().unwrap_or_default();
            if !retain && !left.is_empty() {
                v(
                    DELETE_REMOVES,
                    format!(
                        "incarnation #{} (o{}) deleted with Delete, its secret is still in Juju: {left:?}",
                        inc.id, inc.obj
                    ),
                );
            }
            if retain && let Some((uri, label)) = &inc.seen_before_delete {
                let n = self.name_index(label);
                let adoptable = self.incs.iter().any(|other| {
                    other.id != inc.id
                        && other.adopt_spans.iter().any(|a| {
                            Some(a.name) == n
                                && a.end
                                    .is_none_or(|e| e + SLACK >= inc.deleted_at.unwrap_or(e))
                        })
                });
                if !adoptable && !by_uri.contains_key(uri) {
                    v(
                        RETAIN_KEEPS,
                        format!(
                            "incarnation #{} (o{}) deleted with Retain, but its secret {uri} ({label}) is gone",
                            inc.id, inc.obj
                        ),
                    );
                }
            }
        }

        // Live, Ready objects: Juju holds their spec, the status names that secret,
        // and its grants are the union of the grant objects plus people's grants.
        let mut ready_secrets: Vec<(usize, String)> = Vec::new();
        let mut status_checks: Vec<(u8, String)> = Vec::new();
        for o in 0..OBJECTS {
            let Some(id) = self.live[o as usize] else {
                continue;
            };
            let inc = &self.incs[id];
            if inc.suspend {
                continue;
            }
            let Some(obj) = self
                .jsecs()
                .get_opt(&self.obj_name(o))
                .await
                .map_err(|e| e.to_string())?
            else {
                continue;
            };
            let synced = harness::ready(&obj).is_some_and(|(s, r)| s == "True" && r == "Synced")
                && harness::current(&obj);
            if !synced {
                continue;
            }
            checks += 1;
            let label = self.jname(inc.name);
            let Some(s) = secs.iter().find(|s| s.label == label) else {
                v(
                    READY_MATCHES,
                    format!("o{o} (#{id}) is Ready/Synced but Juju has no secret named {label}"),
                );
                continue;
            };
            if s.content.as_ref() != Some(&inc.data) {
                let who = self.attribute(s);
                let keys: Vec<&String> = s.content.iter().flat_map(|c| c.keys()).collect();
                v(
                    READY_MATCHES,
                    format!(
                        "o{o} (#{id}) is Ready/Synced but {} ({label}) does not hold its content (keys {keys:?}, written by {who:?}; spec has {} content versions)",
                        s.uri.short(),
                        inc.contents.len()
                    ),
                );
                continue;
            }
            if s.description.as_deref() != Some(Self::desc(inc.desc).as_str()) {
                v(
                    READY_MATCHES,
                    format!(
                        "o{o} (#{id}) is Ready/Synced but {} has description {:?}, spec {:?}",
                        s.uri.short(),
                        s.description,
                        Self::desc(inc.desc)
                    ),
                );
            }
            ready_secrets.push((id, s.uri.short()));
            status_checks.push((o, s.uri.short()));
        }
        self.stats.checks += checks;
        for f in found {
            self.violate(f.invariant, f.detail);
        }

        // The status agrees with Juju (a forged one is rewritten within a refresh).
        for (o, uri) in status_checks {
            self.stats.checks += 1;
            let deadline = Instant::now() + GRACE;
            loop {
                let obj = self
                    .jsecs()
                    .get_opt(&self.obj_name(o))
                    .await
                    .map_err(|e| e.to_string())?;
                let sid = obj.as_ref().and_then(harness::secret_id);
                if sid.as_deref() == Some(uri.as_str()) || obj.is_none() {
                    break;
                }
                if Instant::now() > deadline {
                    self.violate(
                        STATUS_AGREES,
                        format!("o{o}: status.secretId {sid:?}, but its secret in Juju is {uri} ({GRACE:?} after quiet)"),
                    );
                    break;
                }
                tokio::time::sleep(POLL).await;
            }
        }

        // Grants.
        for (id, uri) in ready_secrets {
            self.stats.checks += 1;
            let obj = self.incs[id].obj;
            if self.ever_listed.contains(&(u8::MAX, uri.clone())) {
                continue;
            }
            let mut want: BTreeSet<String> = self
                .grants
                .iter()
                .flatten()
                .filter(|g| g.obj == obj)
                .flat_map(|g| g.apps.iter().cloned())
                .collect();
            want.extend(self.person_grants.get(&uri).cloned().unwrap_or_default());
            let deadline = Instant::now() + GRACE;
            loop {
                let now = self.juju().await?;
                let access = now
                    .iter()
                    .find(|s| s.uri.short() == uri)
                    .map(|s| s.access.clone());
                match access {
                    None => break,
                    Some(a) if a == want => break,
                    Some(a) if Instant::now() > deadline => {
                        self.violate(
                            GRANTS_UNION,
                            format!("o{obj} (#{id}) secret {uri}: access {a:?}, expected {want:?} (grant objects' union plus people's grants)"),
                        );
                        break;
                    }
                    Some(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
        }

        // No value anywhere it must not be: the operator's log (this history's part),
        // Events, statuses.
        self.leaks().await?;
        Ok(())
    }

    async fn leaks(&mut self) -> Res<()> {
        let log_path = self.op.lock().expect("op").log.clone();
        let bytes = std::fs::read(&log_path).unwrap_or_default();
        let from = usize::try_from(self.log_offset)
            .unwrap_or(0)
            .min(bytes.len());
        let log = String::from_utf8_lossy(&bytes[from..]).into_owned();
        let events: Api<Event> = Api::namespaced(self.env.kube.clone(), NS);
        let events = events
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?
            .items;
        let events_text = serde_json::to_string(&events).unwrap_or_default();
        let (js, gs) = self.history_objects().await?;
        let status_text = serde_json::to_string(&(
            js.iter()
                .map(|o| (&o.status, &o.metadata.annotations, &o.metadata.labels))
                .collect::<Vec<_>>(),
            gs.iter()
                .map(|o| (&o.status, &o.metadata.annotations, &o.metadata.labels))
                .collect::<Vec<_>>(),
        ))
        .unwrap_or_default();
        let mut leaked = Vec::new();
        for (i, value) in self.values.iter().enumerate() {
            for (place, text) in [
                ("operator log", &log),
                ("events", &events_text),
                ("statuses", &status_text),
            ] {
                if text.contains(value.as_str()) {
                    leaked.push(format!(
                        "value #{i} (of {:?}) in the {place}",
                        self.owner.get(value)
                    ));
                }
            }
        }
        self.stats.checks += 1;
        if !leaked.is_empty() {
            leaked.dedup();
            self.violate(NO_LEAK, leaked.join("; "));
        }
        Ok(())
    }

    /// A last look for the journal: the Ready condition of each live object.
    pub async fn describe_objects(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok((js, _)) = self.history_objects().await {
            for o in js {
                let cond = o
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == READY).cloned());
                out.push(format!(
                    "{}: {:?}",
                    o.name_any(),
                    cond.map(|c| (c.status, c.reason))
                ));
            }
        }
        out
    }
}
