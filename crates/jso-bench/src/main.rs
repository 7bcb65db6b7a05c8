//! Scale benchmark of juju-secrets-operator: N JujuSecrets over M models on a real
//! kube-apiserver, the Juju emulator binary and the operator binary, all release builds.
//! Driven by scripts/bench.sh, which builds, starts the apiserver and applies crds/.
//!
//! Two modes, each on a fresh apiserver:
//!
//! * `restart`: the N objects exist, then the operator starts (cold start, steady state,
//!   change latency, the emulator's bulk ceiling, the python-libjuju peer, and a small
//!   probe of the apiserver's write rate alone);
//! * `gitops`: the operator runs and is ready, then the N JujuSecrets are applied at once
//!   with `kubectl apply --server-side` from one file (`--applier kubectl`, which sends
//!   one object at a time), or with server-side apply requests sent
//!   `--apply-in-flight` at a time (`--applier parallel`, the apiserver's pace). It
//!   reports the time to Juju (the emulator's `ContentTimes`: when the last secret's
//!   content was stored) and the time to Ready (the watch), both from the apply's
//!   start, and per object the lag from its arrival in the watch to its content in Juju.
//!
//! The operator's Juju round trips are counted by the emulator (`CallCounts`, less the
//! benchmark's own calls), as the peer's and the ceiling's are; the operator's own
//! `/metrics` count is read beside it, and any difference is reported as a mismatch.
//!
//! One run prints one JSON line of results on stdout (the script makes the tables).
//! Every wait is bounded. No secret value is printed.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use futures::{StreamExt, TryStreamExt};
use juju_client::{ConnectOptions, JujuClient, NewSecret, Password, SecretContent, SecretFilter};
use juju_emulator::{ConnectionInfo, control_call};
use juju_secrets_operator::controller::jujusecret::FINALIZER;
use juju_secrets_operator::crd::secret::JujuSecret;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Secret};
use kube::api::{ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::{Value, json};

type Res<T> = Result<T, String>;

/// What is measured.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The N objects exist, then the operator starts.
    Restart,
    /// The operator runs and is ready, then the N JujuSecrets are applied at once with
    /// server-side apply from one file.
    Gitops,
    /// No operator: the apiserver's cost of each kind of write the operator makes per
    /// object (status by server-side apply or by merge patch, the finalizer's JSON
    /// patch, an annotation merge patch), `--write-probe` of each, rounds alternating.
    Writes,
    /// No operator, no Juju: the N JujuSecrets applied as in `gitops` (parallel) and,
    /// as each apply returns, the apiserver requests a finalizer-first operator makes for
    /// that object, in its order (finalizer, source Secret read, status): the earliest
    /// the last secret could reach Juju, and the last object be Ready, on this apiserver.
    Floor,
}

/// How the `gitops` mode applies the N objects.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Applier {
    /// `kubectl apply --server-side -f <file>` (one request at a time).
    Kubectl,
    /// Server-side apply requests, `--apply-in-flight` at a time.
    Parallel,
}

/// The order of the `floor` mode's requests.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Schedule {
    /// Finalizer, read, status, object by object.
    PerObject,
    /// Finalizer and read of every object, then every status.
    StatusesLast,
    /// Only the source Secret's read as each object lands (all an operator that writes
    /// Juju before the finalizer must ask the apiserver first); every finalizer, then
    /// every status, once the apply is done.
    JujuFirst,
}

#[derive(Parser, Debug)]
struct Args {
    #[arg(long)]
    kubeconfig: PathBuf,
    #[arg(long)]
    operator_bin: PathBuf,
    #[arg(long)]
    emulator_bin: PathBuf,
    /// Run directory (emulator state, logs, seed).
    #[arg(long)]
    work_dir: PathBuf,
    #[arg(long)]
    n: usize,
    #[arg(long)]
    m: usize,
    #[arg(long, value_enum, default_value_t = Mode::Restart)]
    mode: Mode,
    /// kubectl, for the `gitops` mode's apply.
    #[arg(long, default_value = "kubectl")]
    kubectl: PathBuf,
    /// What applies the objects in `gitops` mode.
    #[arg(long, value_enum, default_value_t = Applier::Kubectl)]
    applier: Applier,
    /// Requests in flight of `--applier parallel`.
    #[arg(long, default_value_t = 32)]
    apply_in_flight: usize,
    /// `gitops` mode: before the operator starts, apply the same N objects to a
    /// namespace it does not watch, to time the apply alone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    apply_alone: bool,
    /// Operator --refresh-interval and the steady-state window, in seconds.
    #[arg(long, default_value_t = 60)]
    refresh_secs: u64,
    /// Source-Secret edits for the change latency (0: skip).
    #[arg(long, default_value_t = 50)]
    edits: usize,
    /// Bound of the cold-start wait, seconds.
    #[arg(long, default_value_t = 600)]
    converge_timeout: u64,
    /// Writes of the apiserver write-rate probe, made once the operator has stopped
    /// (`restart` mode; 0: skip).
    #[arg(long, default_value_t = 2000)]
    write_probe: usize,
    /// Python interpreter with python-libjuju, for the peer (empty: skip the peer).
    #[arg(long, default_value = "")]
    python: String,
    /// The peer script.
    #[arg(long, default_value = "bench/libjuju_peer.py")]
    peer_script: PathBuf,
    /// `floor` mode: `per-object` (each object's status follows its finalizer and read)
    /// or `statuses-last` (every status after every finalizer and read: the schedule
    /// that brings the last Juju write earliest).
    #[arg(long, value_enum, default_value_t = Schedule::PerObject)]
    floor_schedule: Schedule,
    /// An extra argument for `juju-secrets-operator run` (repeatable), e.g.
    /// `--operator-arg=--max-concurrent-reconciles=256`.
    #[arg(long)]
    operator_arg: Vec<String>,
}

const NS: &str = "bench";
const CONN_NS: &str = "juju-system";
/// Requests in flight of the write-rate probe: the operator's default bound of
/// apiserver requests in flight.
const PROBE_IN_FLIGHT: usize = 64;

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// (utime+stime seconds, VmHWM KiB, VmRSS KiB)
fn proc_stats(pid: u32) -> (f64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // after ')' : state(0) ppid(1) ... utime is field 14 overall => index 11 here
    let ut: f64 = f.get(11).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let st: f64 = f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    ((ut + st) / clk_tck(), kib("VmHWM:"), kib("VmRSS:"))
}

/// CPU seconds this machine spent busy (every process and the kernel: user, nice,
/// system, irq, softirq, steal) and in all, summed over its cores, from `/proc/stat`.
fn machine_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let at = |i: usize| ticks.get(i).copied().unwrap_or(0.0);
    let idle = at(3) + at(4);
    let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
    (busy / clk_tck(), (busy + idle) / clk_tck())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18080)
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    let _ = s.take(8 << 20).read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    if text.split_whitespace().nth(1)? != "200" {
        return None;
    }
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
}

/// `juju_secrets_operator_juju_calls_total` per `Facade.Method`.
fn juju_calls(port: u16) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Some(body) = http_get(port, "/metrics") else {
        return out;
    };
    for line in body.lines() {
        let Some(rest) = line.strip_prefix("juju_secrets_operator_juju_calls_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let mut facade = "";
        let mut method = "";
        for kv in labels.split(',') {
            if let Some((k, v)) = kv.split_once('=') {
                let v = v.trim_matches('"');
                match k {
                    "facade" => facade = v,
                    "method" => method = v,
                    _ => {}
                }
            }
        }
        let v: f64 = value.trim().parse().unwrap_or(0.0);
        *out.entry(format!("{facade}.{method}")).or_default() += v as u64;
    }
    out
}

/// The value of an unlabelled metric `juju_secrets_operator_<name>`.
fn metric(port: u16, name: &str) -> Option<f64> {
    let body = http_get(port, "/metrics")?;
    let prefix = format!("juju_secrets_operator_{name} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// What grew from `a` to `b`, per key (counters: call counts, served seconds).
fn delta<T>(a: &BTreeMap<String, T>, b: &BTreeMap<String, T>) -> BTreeMap<String, T>
where
    T: Copy + Default + PartialOrd + std::ops::Sub<Output = T>,
{
    b.iter()
        .map(|(k, v)| (k.clone(), *v - a.get(k).copied().unwrap_or_default()))
        .filter(|(_, v)| *v > T::default())
        .collect()
}

/// The emulator's time serving calls (`CallTimes`), per `Facade.Method`: the
/// "Juju-side time" of a run. Long polls (`AllWatcher.Next`) are left out: their time is
/// waiting for changes, not work.
async fn juju_side_secs(info: &ConnectionInfo) -> Res<BTreeMap<String, f64>> {
    let v = control_call(info, "CallTimes", json!({})).await?;
    let map: BTreeMap<String, f64> = serde_json::from_value(v).map_err(|e| e.to_string())?;
    Ok(map
        .into_iter()
        .filter(|(k, _)| k != "AllWatcher.Next")
        .collect())
}

struct Proc {
    child: Child,
}
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_emulator(args: &Args, dir: &Path, seed: &Path) -> Res<(Proc, ConnectionInfo)> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let log = File::create(dir.join("emulator.log")).map_err(|e| e.to_string())?;
    let child = Command::new(&args.emulator_bin)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--state-dir")
        .arg(dir)
        .arg("--seed")
        .arg(seed)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("emulator: {e}"))?;
    let p = Proc { child };
    let deadline = Instant::now() + Duration::from_secs(30);
    let path = dir.join("connection.json");
    loop {
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(info) = serde_json::from_str::<ConnectionInfo>(&text)
        {
            return Ok((p, info));
        }
        if Instant::now() > deadline {
            return Err("emulator wrote no connection.json within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn juju_client(info: &ConnectionInfo) -> Res<JujuClient> {
    let pw = info
        .users
        .iter()
        .find(|u| u.username == "admin")
        .map(|u| u.password.clone())
        .ok_or("no admin")?;
    let mut o = ConnectOptions::new(
        vec![info.endpoint.clone()],
        info.ca_cert.clone(),
        "admin",
        Password::new(pw),
    );
    o.call_timeout = Duration::from_secs(60);
    JujuClient::new(o).map_err(|e| e.to_string())
}

/// Desired content of secret i (label `js-i`).
fn desired(i: usize, gen_: u64) -> BTreeMap<String, String> {
    if i.is_multiple_of(2) {
        BTreeMap::from([
            ("username".into(), format!("user-{i}")),
            ("password".into(), format!("pw-{i}-data")),
        ])
    } else {
        BTreeMap::from([("password".into(), format!("pw-{i}-src-{gen_}"))])
    }
}

fn is_ready(js: &JujuSecret) -> bool {
    js.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[idx.saturating_sub(1).min(sorted.len() - 1)]
}

/// The emulator's `CallCounts`: every call it received so far, by anyone, per
/// `Facade.Method` (control calls are not counted).
async fn emulator_counts(info: &ConnectionInfo) -> Res<BTreeMap<String, u64>> {
    serde_json::from_value(control_call(info, "CallCounts", json!({})).await?)
        .map_err(|e| format!("CallCounts: {e}"))
}

/// `a - b` per key, zeros left out.
fn minus(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    a.iter()
        .map(|(k, v)| (k.clone(), v.saturating_sub(b.get(k).copied().unwrap_or(0))))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Juju call counters on every side at one moment.
#[derive(Clone, Debug, Default)]
struct CallSnap {
    /// The emulator's `CallCounts`.
    emulator: BTreeMap<String, u64>,
    /// The benchmark's own calls to the same emulator (its client's counters).
    own: BTreeMap<String, u64>,
    /// The operator's `juju_secrets_operator_juju_calls_total`.
    metrics: BTreeMap<String, u64>,
}

/// The operator's Juju calls over a window, counted twice.
#[derive(Clone, Debug)]
struct WindowCalls {
    /// Counted by the emulator, the benchmark's own calls taken out: the figure reported.
    emulator: BTreeMap<String, u64>,
    /// Counted by the operator's `/metrics`: the cross-check.
    metrics: BTreeMap<String, u64>,
}

impl WindowCalls {
    fn agree(&self) -> bool {
        self.emulator == self.metrics
    }

    fn total(&self) -> u64 {
        self.emulator.values().sum()
    }
}

/// The counters now; the benchmark's own client (if it has one on this emulator) is
/// `own`.
async fn call_snap(info: &ConnectionInfo, port: u16, own: Option<&JujuClient>) -> Res<CallSnap> {
    Ok(CallSnap {
        metrics: juju_calls(port),
        emulator: emulator_counts(info).await?,
        own: own.map(|c| c.stats().snapshot()).unwrap_or_default(),
    })
}

/// The operator's calls since `base`, by the emulator and by `/metrics`. The emulator
/// counts a call when its frame arrives and the operator when the answer is back, so a
/// call in flight shows on one side only: the two are read until they agree, with
/// `/metrics` unchanged around the emulator's read, for up to 3 s; a difference left
/// after that is a mismatch. Returns the last counters too (the next window's base).
async fn window_calls(
    info: &ConnectionInfo,
    port: u16,
    own: Option<&JujuClient>,
    base: &CallSnap,
) -> Res<(CallSnap, WindowCalls)> {
    let mut attempt = 0;
    loop {
        let before = juju_calls(port);
        let now = call_snap(info, port, own).await?;
        let w = WindowCalls {
            emulator: minus(
                &delta(&base.emulator, &now.emulator),
                &delta(&base.own, &now.own),
            ),
            metrics: delta(&base.metrics, &now.metrics),
        };
        attempt += 1;
        if (w.agree() && before == now.metrics) || attempt >= 15 {
            return Ok((now, w));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Records a window's calls in `out` under `<prefix>_calls` (emulator) and
/// `<prefix>_calls_metrics`, and a mismatch in `mismatches` (also printed).
fn record_calls(out: &mut Value, mismatches: &mut Vec<Value>, prefix: &str, w: &WindowCalls) {
    out[format!("{prefix}_calls")] = json!(w.emulator);
    out[format!("{prefix}_calls_metrics")] = json!(w.metrics);
    if !w.agree() {
        let keys: std::collections::BTreeSet<&String> =
            w.emulator.keys().chain(w.metrics.keys()).collect();
        let diff: BTreeMap<&String, i64> = keys
            .into_iter()
            .map(|k| {
                let e = w.emulator.get(k).copied().unwrap_or(0) as i64;
                let m = w.metrics.get(k).copied().unwrap_or(0) as i64;
                (k, e - m)
            })
            .filter(|(_, d)| *d != 0)
            .collect();
        eprintln!(
            "  MISMATCH in {prefix}: the emulator counted {} operator calls, /metrics {}; emulator - metrics per method: {diff:?}",
            w.total(),
            w.metrics.values().sum::<u64>()
        );
        mismatches.push(json!({
            "window": prefix,
            "emulator_total": w.total(),
            "metrics_total": w.metrics.values().sum::<u64>(),
            "emulator_minus_metrics": diff,
        }));
    }
}

/// Writes (and bytes stored) per `namespace/name`, and the task counting them.
type WriteCounter = (
    Arc<Mutex<BTreeMap<String, (u64, u64)>>>,
    tokio::task::JoinHandle<()>,
);

/// Counts the writes of one kind the apiserver reports by watch from `rv` on, per
/// `namespace/name`, into the returned map (writes, and the bytes of the objects they
/// stored as JSON), until the task is aborted.
fn count_writes<K>(api: Api<K>, rv: String) -> WriteCounter
where
    K: kube::Resource
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + k8s_openapi::serde::Serialize
        + std::fmt::Debug
        + Send
        + 'static,
{
    let counts = Arc::new(Mutex::new(BTreeMap::new()));
    let c = counts.clone();
    let task = tokio::spawn(async move {
        let mut rv = rv;
        loop {
            let Ok(stream) = api.watch(&WatchParams::default().timeout(240), &rv).await else {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            };
            let mut stream = std::pin::pin!(stream);
            while let Some(ev) = stream.next().await {
                let obj = match ev {
                    Ok(WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o)) => {
                        o
                    }
                    Ok(WatchEvent::Bookmark(b)) => {
                        rv = b.metadata.resource_version;
                        continue;
                    }
                    _ => continue,
                };
                let meta = obj.meta();
                if let Some(v) = &meta.resource_version {
                    rv = v.clone();
                }
                let key = format!(
                    "{}/{}",
                    meta.namespace.as_deref().unwrap_or(""),
                    meta.name.as_deref().unwrap_or("")
                );
                // Each write's stored object, in bytes of JSON (what one write carried).
                let size = serde_json::to_vec(&obj).map_or(0, |v| v.len() as u64);
                if let Ok(mut m) = c.lock() {
                    let (writes, bytes) = m.entry(key).or_default();
                    *writes += 1;
                    *bytes += size;
                }
            }
        }
    });
    (counts, task)
}

/// Stops a [`count_writes`] task and returns its counts of writes per object.
fn writes_counted((counts, task): WriteCounter) -> BTreeMap<String, u64> {
    task.abort();
    counts
        .lock()
        .map(|m| {
            m.iter()
                .map(|(k, (writes, _))| (k.clone(), *writes))
                .collect()
        })
        .unwrap_or_default()
}

/// etcd's global revision (a list's resourceVersion): it counts every write the
/// apiserver stored, whoever made it.
async fn etcd_revision(jss: &Api<JujuSecret>) -> Res<u64> {
    let l = jss
        .list(&ListParams::default().limit(1))
        .await
        .map_err(|e| e.to_string())?;
    Ok(l.metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// The JujuSecret `js-i`: even `i` carry `data` (2 keys), odd ones a `secretRef` to the
/// Secret `src-i` (1 key); models round-robin.
fn jujusecret(i: usize, m: usize) -> Value {
    jujusecret_in(i, m, NS)
}

/// [`jujusecret`] in namespace `ns`.
fn jujusecret_in(i: usize, m: usize, ns: &str) -> Value {
    let model = format!("admin/bench-{}", i % m);
    let spec = if i.is_multiple_of(2) {
        json!({"model": model, "data": desired(i, 0)})
    } else {
        json!({"model": model, "secretRef": {"name": format!("src-{i}")}})
    };
    json!({
        "apiVersion": "secrets.juju.is/v1alpha1", "kind": "JujuSecret",
        "metadata": {"name": format!("js-{i}"), "namespace": ns}, "spec": spec,
    })
}

/// Creates the source Secrets (odd `i`) and, with `with_jujusecrets`, the N JujuSecrets,
/// 16 requests in flight.
async fn create_objects(
    secrets: &Api<Secret>,
    jss: &Api<JujuSecret>,
    n: usize,
    m: usize,
    with_jujusecrets: bool,
) -> Res<()> {
    futures::stream::iter(0..n)
        .map(|i| {
            let secrets = secrets.clone();
            let jss = jss.clone();
            async move {
                if i % 2 == 1 {
                    let s: Secret = serde_json::from_value(json!({
                        "metadata": {"name": format!("src-{i}")},
                        "stringData": desired(i, 0),
                    }))
                    .map_err(|e| e.to_string())?;
                    secrets
                        .create(&PostParams::default(), &s)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                if with_jujusecrets {
                    let js: JujuSecret =
                        serde_json::from_value(jujusecret(i, m)).map_err(|e| e.to_string())?;
                    jss.create(&PostParams::default(), &js)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok::<(), String>(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// Every secret of the M models checked key by key against what its JujuSecret asks
/// for (one `ListSecrets(show_secrets)` per model): (right, wrong).
async fn content_check(
    jc: &JujuClient,
    uuid_of: &BTreeMap<String, String>,
    m: usize,
) -> Res<(usize, usize)> {
    let mut ok = 0usize;
    let mut bad = 0usize;
    for k in 0..m {
        let uuid = uuid_of
            .get(&format!("bench-{k}"))
            .ok_or_else(|| format!("no model bench-{k} in the emulator"))?;
        let list = jc
            .list_secrets(uuid, &SecretFilter::user_secrets(uuid), true)
            .await
            .map_err(|e| e.to_string())?;
        for s in list {
            let Some(i) = s
                .label
                .as_deref()
                .and_then(|l| l.strip_prefix("js-"))
                .and_then(|x| x.parse::<usize>().ok())
            else {
                continue;
            };
            let want = desired(i, 0);
            let got: Option<BTreeMap<String, String>> = match &s.value {
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
            if got.as_ref() == Some(&want) && i % m == k {
                ok += 1;
            } else {
                bad += 1;
            }
        }
    }
    Ok((ok, bad))
}

/// The operator, with its metrics on 127.0.0.1:`port`.
fn start_operator(args: &Args, port: u16, refresh_secs: u64) -> Res<Proc> {
    let oplog = File::create(args.work_dir.join("operator.log")).map_err(|e| e.to_string())?;
    let child = Command::new(&args.operator_bin)
        .arg("run")
        .arg("--kubeconfig")
        .arg(&args.kubeconfig)
        .args(["--juju-connection-secret", "juju-system/juju-connection"])
        .args(["--namespaces", NS])
        .args(["--refresh-interval", &format!("{refresh_secs}s")])
        .args(["--log-level", "warn"])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .args(&args.operator_arg)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(oplog.try_clone().map_err(|e| e.to_string())?)
        .stderr(oplog)
        .spawn()
        .map_err(|e| e.to_string())?;
    Ok(Proc { child })
}

/// When each object was first seen by the benchmark's watch and first seen Ready, in ms
/// since the Unix epoch (the emulator's `ContentTimes` clock), by object name.
#[derive(Default, Debug)]
struct Timing {
    seen: BTreeMap<String, u64>,
    /// First seen with the operator's finalizer.
    finalized: BTreeMap<String, u64>,
    ready: BTreeMap<String, u64>,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Follows the JujuSecrets with a watch (as a dashboard would), not by listing all N
/// objects every second: a list of 10,000 objects costs the apiserver as much as a good
/// part of the operator's own work. Notes when each object arrives and turns Ready.
fn follow(
    jss: &Api<JujuSecret>,
) -> (
    kube::runtime::reflector::Store<JujuSecret>,
    tokio::task::JoinHandle<()>,
    Arc<Mutex<Timing>>,
) {
    let (reader, writer) = kube::runtime::reflector::store::<JujuSecret>();
    let timing = Arc::new(Mutex::new(Timing::default()));
    let noted = timing.clone();
    let task = tokio::spawn(
        kube::runtime::reflector(
            writer,
            kube::runtime::watcher(jss.clone(), kube::runtime::watcher::Config::default()),
        )
        .for_each(move |ev| {
            if let Ok(
                kube::runtime::watcher::Event::Apply(js)
                | kube::runtime::watcher::Event::InitApply(js),
            ) = ev
            {
                let now = unix_ms();
                let name = kube::ResourceExt::name_any(&js);
                let mut t = noted.lock().unwrap_or_else(|e| e.into_inner());
                t.seen.entry(name.clone()).or_insert(now);
                if js
                    .metadata
                    .finalizers
                    .as_ref()
                    .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
                {
                    t.finalized.entry(name.clone()).or_insert(now);
                }
                if is_ready(&js) {
                    t.ready.entry(name).or_insert(now);
                }
            }
            futures::future::ready(())
        }),
    );
    (reader, task, timing)
}

/// What applies the objects in `gitops` mode, running beside the wait.
enum ApplyJob {
    Kubectl(Child),
    Parallel(tokio::task::JoinHandle<Res<()>>),
}

impl ApplyJob {
    /// `None` while it runs; then whether it succeeded.
    fn poll_done(&mut self) -> Option<Res<()>> {
        match self {
            ApplyJob::Kubectl(c) => match c.try_wait() {
                Ok(None) => None,
                Ok(Some(st)) if st.success() => Some(Ok(())),
                Ok(Some(st)) => Some(Err(format!("kubectl apply failed: {st}"))),
                Err(e) => Some(Err(e.to_string())),
            },
            ApplyJob::Parallel(h) if h.is_finished() => {
                Some(match futures::FutureExt::now_or_never(h) {
                    Some(Ok(r)) => r,
                    Some(Err(e)) => Err(e.to_string()),
                    None => Err("apply task not finished".into()),
                })
            }
            ApplyJob::Parallel(_) => None,
        }
    }

    fn stop(&mut self) {
        match self {
            ApplyJob::Kubectl(c) => {
                let _ = c.kill();
                let _ = c.wait();
            }
            ApplyJob::Parallel(h) => h.abort(),
        }
    }
}

/// Waits (checking every 200 ms) until `n` JujuSecrets are Ready, the operator exits
/// (an error) or `deadline`; with `apply`, also until that process ends (its failure
/// is an error). Returns the Ready count and, for `apply`, its duration since `t0`.
async fn wait_ready(
    reader: &kube::runtime::reflector::Store<JujuSecret>,
    n: usize,
    t0: Instant,
    deadline: Instant,
    op: &mut Proc,
    mut apply: Option<&mut ApplyJob>,
    log_dir: &Path,
) -> Res<(usize, Option<f64>)> {
    let mut last_print = Instant::now();
    let mut apply_secs = None;
    loop {
        if let Ok(Some(st)) = op.child.try_wait() {
            return Err(format!(
                "operator exited: {st}; see {}",
                log_dir.join("operator.log").display()
            ));
        }
        if let Some(a) = apply.as_deref_mut()
            && apply_secs.is_none()
            && let Some(done) = a.poll_done()
        {
            if let Err(e) = done {
                return Err(format!(
                    "{e}; see {}",
                    log_dir.join("kubectl-apply.log").display()
                ));
            }
            apply_secs = Some(t0.elapsed().as_secs_f64());
            eprintln!("  apply done after {:.1}s", t0.elapsed().as_secs_f64());
        }
        let ready = reader.state().iter().filter(|j| is_ready(j)).count();
        let applied = apply.is_none() || apply_secs.is_some();
        if (ready == n && applied) || Instant::now() > deadline {
            return Ok((ready, apply_secs));
        }
        if last_print.elapsed() > Duration::from_secs(10) {
            eprintln!("  {:.0}s: {ready}/{n} Ready", t0.elapsed().as_secs_f64());
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Checks the content once every object is Ready (at `ready_at`, seconds since `t0`);
/// if some is not right yet, checks again every second until all are or `deadline`.
/// Returns (right, wrong, when it was right: `ready_at` if the first check found it
/// so, else the end of the check that did; `None` if none did).
async fn content_right(
    jc: &JujuClient,
    uuid_of: &BTreeMap<String, String>,
    (n, m): (usize, usize),
    t0: Instant,
    ready_at: f64,
    deadline: Instant,
) -> Res<(usize, usize, Option<f64>)> {
    let mut first = true;
    loop {
        let (ok, bad) = content_check(jc, uuid_of, m).await?;
        if ok == n && bad == 0 {
            let at = if first {
                ready_at
            } else {
                t0.elapsed().as_secs_f64()
            };
            return Ok((ok, bad, Some(at)));
        }
        if Instant::now() > deadline {
            return Ok((ok, bad, None));
        }
        first = false;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `a / b` when both are known and non-zero.
fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if a > 0.0 && b > 0.0 => Some(a / b),
        _ => None,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    match run(&args).await {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("jso-bench: {e}");
            std::process::exit(1);
        }
    }
}

/// What both modes start from: the emulator with M models, the namespaces, the
/// connection Secret, and the benchmark's own Juju client (whose calls are taken out
/// of the emulator's counts).
struct Setup {
    emu: Proc,
    info: ConnectionInfo,
    uuid_of: BTreeMap<String, String>,
    seed_path: PathBuf,
    kube: Client,
    secrets: Api<Secret>,
    jss: Api<JujuSecret>,
    jc: JujuClient,
}

async fn setup(args: &Args) -> Res<Setup> {
    let m = args.m;
    std::fs::create_dir_all(&args.work_dir).map_err(|e| e.to_string())?;
    let seed = json!({
        "users": [{"username": "admin", "access": "superuser"}],
        "models": (0..m).map(|k| json!({"name": format!("bench-{k}"), "owner": "admin"})).collect::<Vec<_>>(),
    });
    let seed_path = args.work_dir.join("seed.json");
    std::fs::write(&seed_path, seed.to_string()).map_err(|e| e.to_string())?;
    let (emu, info) = start_emulator(args, &args.work_dir.join("juju"), &seed_path)?;
    let uuid_of: BTreeMap<String, String> = info
        .models
        .iter()
        .map(|md| (md.name.clone(), md.uuid.clone()))
        .collect();

    let kc = Kubeconfig::read_from(&args.kubeconfig).map_err(|e| e.to_string())?;
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    cfg.read_timeout = Some(Duration::from_secs(120));
    let kube = Client::try_from(cfg).map_err(|e| e.to_string())?;
    let nsapi: Api<Namespace> = Api::all(kube.clone());
    for ns in [NS, CONN_NS, ALONE_NS] {
        let _ = nsapi
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}}))
                    .map_err(|e| e.to_string())?,
            )
            .await;
    }
    let conn = Command::new(&args.operator_bin)
        .args(["connection-secret", "--from-emulator"])
        .arg(args.work_dir.join("juju/connection.json"))
        .args(["--namespace", CONN_NS, "--name", "juju-connection"])
        .output()
        .map_err(|e| e.to_string())?;
    let conn_secret: Secret =
        serde_yaml_ng::from_slice(&conn.stdout).map_err(|e| format!("connection secret: {e}"))?;
    let conn_api: Api<Secret> = Api::namespaced(kube.clone(), CONN_NS);
    let _ = conn_api
        .delete("juju-connection", &Default::default())
        .await;
    conn_api
        .create(&PostParams::default(), &conn_secret)
        .await
        .map_err(|e| e.to_string())?;
    let jc = juju_client(&info)?;
    Ok(Setup {
        secrets: Api::namespaced(kube.clone(), NS),
        jss: Api::namespaced(kube.clone(), NS),
        emu,
        info,
        uuid_of,
        seed_path,
        kube,
        jc,
    })
}

async fn run(args: &Args) -> Res<Value> {
    let s = setup(args).await?;
    let mut out = json!({
        "n": args.n, "m": args.m, "refresh_secs": args.refresh_secs,
        "mode": match args.mode {
            Mode::Restart => "restart",
            Mode::Gitops => "gitops",
            Mode::Writes => "writes",
            Mode::Floor => "floor",
        },
    });
    let mut mismatches = Vec::new();
    match args.mode {
        Mode::Restart => run_restart(args, s, &mut out, &mut mismatches).await?,
        Mode::Gitops => run_gitops(args, s, &mut out, &mut mismatches).await?,
        Mode::Writes => run_writes(args, s, &mut out).await?,
        Mode::Floor => run_floor(args, s, &mut out).await?,
    }
    out["call_counts_agree"] = json!(mismatches.is_empty());
    out["call_count_mismatches"] = json!(mismatches);
    Ok(out)
}

/// Counters taken just before the measured convergence starts.
struct Before {
    calls: CallSnap,
    etcd_rev: u64,
    side: BTreeMap<String, f64>,
    emu_cpu: f64,
    /// CPU seconds of the apiserver and etcd.
    kube_cpu: (f64, f64),
    /// CPU seconds of this benchmark's own process (its apply and its watch).
    bench_cpu: f64,
    /// The machine's busy and total CPU seconds ([`machine_cpu`]).
    machine_cpu: (f64, f64),
    /// Writes of ConfigMaps in the operator's namespace (its ownership record) from
    /// here on.
    record_writes: WriteCounter,
}

async fn before(s: &Setup, port: u16, kubeconfig: &Path) -> Res<Before> {
    let etcd_rev = etcd_revision(&s.jss).await?;
    Ok(Before {
        calls: call_snap(&s.info, port, Some(&s.jc)).await?,
        etcd_rev,
        side: juju_side_secs(&s.info).await?,
        emu_cpu: proc_stats(s.emu.child.id()).0,
        kube_cpu: kube_cpu(kubeconfig),
        bench_cpu: proc_stats(std::process::id()).0,
        machine_cpu: machine_cpu(),
        record_writes: count_writes(
            Api::<ConfigMap>::namespaced(s.kube.clone(), CONN_NS),
            etcd_rev.to_string(),
        ),
    })
}

/// Prefix of the ownership record's ConfigMaps (`controller::ownership`).
const RECORD_PREFIX: &str = "juju-secrets-operator-ownership-";

/// The ownership record's cost during convergence: its ConfigMap writes (by watch), and
/// its size once converged (bytes in all shards, the largest shard, entries).
async fn record_cost(s: &Setup, b: &Before, n: u64, out: &mut Value) -> Res<()> {
    // The watch delivers within milliseconds; give it a moment to catch up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.record_writes.1.abort();
    let (writes, written): (u64, u64) = b
        .record_writes
        .0
        .lock()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.contains(RECORD_PREFIX))
                .fold((0, 0), |(w, by), (_, (writes, bytes))| {
                    (w + writes, by + bytes)
                })
        })
        .unwrap_or((0, 0));
    let cms = Api::<ConfigMap>::namespaced(s.kube.clone(), CONN_NS)
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?;
    let (mut bytes, mut largest, mut entries) = (0usize, 0usize, 0usize);
    for cm in cms.items.iter().filter(|cm| {
        cm.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with(RECORD_PREFIX))
    }) {
        for text in cm.data.iter().flat_map(|d| d.values()) {
            bytes += text.len();
            largest = largest.max(text.len());
            entries += serde_json::from_str::<serde_json::Map<String, Value>>(text)
                .map(|m| m.len())
                .unwrap_or(0);
        }
    }
    out["converge_record_writes"] = json!(writes);
    out["converge_record_writes_per_secret"] = json!(writes as f64 / n.max(1) as f64);
    out["converge_record_bytes_written"] = json!(written);
    out["record_bytes"] = json!(bytes);
    out["record_largest_shard_bytes"] = json!(largest);
    out["record_entries"] = json!(entries);
    eprintln!(
        "  ownership record: {writes} ConfigMap writes ({:.1} MB) during convergence; {entries} entries, {bytes} bytes, largest shard {largest} bytes",
        written as f64 / 1e6
    );
    Ok(())
}

/// From `t0` until every JujuSecret is Ready and right in the emulator (and, with
/// `apply`, that process is done): the cold start, its Juju calls (both counts), the
/// emulator's served time and CPU, apiserver writes, the operator's CPU and peak RSS.
/// Returns the call counters at Ready.
#[allow(clippy::too_many_arguments)]
async fn converge(
    args: &Args,
    s: &Setup,
    (op, port): (&mut Proc, u16),
    reader: kube::runtime::reflector::Store<JujuSecret>,
    follow_task: tokio::task::JoinHandle<()>,
    (t0, apply): (Instant, Option<&mut ApplyJob>),
    b: &Before,
    out: &mut Value,
    mismatches: &mut Vec<Value>,
) -> Res<CallSnap> {
    let n = args.n;
    let deadline = t0 + Duration::from_secs(args.converge_timeout);
    let waited = wait_ready(&reader, n, t0, deadline, op, apply, &args.work_dir).await;
    let (api_cpu, etcd_cpu) = kube_cpu(&args.kubeconfig);
    out["converge_apiserver_cpu_secs"] = json!(api_cpu - b.kube_cpu.0);
    out["converge_etcd_cpu_secs"] = json!(etcd_cpu - b.kube_cpu.1);
    out["converge_bench_cpu_secs"] = json!(proc_stats(std::process::id()).0 - b.bench_cpu);
    let (busy, all) = machine_cpu();
    // Busy over all: 1.0 when every core worked the whole span.
    out["converge_machine_busy_secs"] = json!(busy - b.machine_cpu.0);
    out["converge_machine_busy_share"] = json!((busy - b.machine_cpu.0) / (all - b.machine_cpu.1));
    out["converge_wall_secs"] = json!(t0.elapsed().as_secs_f64());
    follow_task.abort();
    let (ready, apply_secs) = waited?;
    let ready_at = t0.elapsed().as_secs_f64();
    // The operator's own counters at convergence, kept beside the run for diagnosis.
    if let Some(text) = http_get(port, "/metrics") {
        let _ = std::fs::write(args.work_dir.join("operator-metrics.txt"), text);
    }
    let (snap, calls) = window_calls(&s.info, port, Some(&s.jc), &b.calls).await?;
    let side = delta(&b.side, &juju_side_secs(&s.info).await?);
    out["converge_juju_side_secs"] = json!(side.values().sum::<f64>());
    out["converge_juju_cpu_secs"] = json!(proc_stats(s.emu.child.id()).0 - b.emu_cpu);
    out["converge_juju_side_by_method"] = json!(side);
    let w = etcd_revision(&s.jss).await?.saturating_sub(b.etcd_rev);
    record_cost(s, b, n as u64, out).await?;
    out["converge_etcd_writes"] = json!(w);
    out["converge_etcd_writes_per_secret"] = json!(w as f64 / n as f64);
    let (cpu_conv, hwm_conv, _) = proc_stats(op.child.id());
    out["ready"] = json!(ready);
    out["apply_secs"] = json!(apply_secs);
    record_calls(out, mismatches, "converge", &calls);
    let total = calls.total();
    out["converge_calls_total"] = json!(total);
    out["converge_calls_metrics_total"] = json!(calls.metrics.values().sum::<u64>());
    out["converge_calls_per_secret"] = json!(total as f64 / n as f64);
    out["cpu_converge_secs"] = json!(cpu_conv);
    out["hwm_converge_kib"] = json!(hwm_conv);
    eprintln!(
        "  {ready}/{n} Ready after {ready_at:.1}s; {total} Juju calls counted by the emulator {:?}; /metrics {} ({})",
        calls.emulator,
        calls.metrics.values().sum::<u64>(),
        if calls.agree() { "agrees" } else { "MISMATCH" }
    );

    let content_deadline = Instant::now() + Duration::from_secs(60);
    let (ok, bad, right_at) = if ready == n {
        content_right(
            &s.jc,
            &s.uuid_of,
            (n, args.m),
            t0,
            ready_at,
            content_deadline,
        )
        .await?
    } else {
        let (ok, bad) = content_check(&s.jc, &s.uuid_of, args.m).await?;
        (ok, bad, None)
    };
    out["content_ok"] = json!(ok);
    out["content_bad"] = json!(bad);
    // The figure counts only when every object is Ready and right in the emulator.
    out["cold_start_secs"] = json!(right_at);
    eprintln!(
        "  content: {ok} right, {bad} wrong in the emulator; cold start {}",
        right_at.map_or("none".into(), |t| format!("{t:.1}s"))
    );
    Ok(snap)
}

/// The N objects exist, then the operator starts.
async fn run_restart(
    args: &Args,
    s: Setup,
    out: &mut Value,
    mismatches: &mut Vec<Value>,
) -> Res<()> {
    let (n, m) = (args.n, args.m);
    let e = |x: kube::Error| x.to_string();
    let t_setup = Instant::now();
    create_objects(&s.secrets, &s.jss, n, m, true).await?;
    out["setup_secs"] = json!(t_setup.elapsed().as_secs_f64());
    eprintln!(
        "bench N={n} M={m} restart: {n} objects created in {:.1}s (excluded)",
        t_setup.elapsed().as_secs_f64()
    );

    let port = free_port();
    let b = before(&s, port, &args.kubeconfig).await?;
    let (reader, follow_task, timing) = follow(&s.jss);
    let t0_ms = unix_ms();
    let t0 = Instant::now();
    let mut op = start_operator(args, port, args.refresh_secs)?;
    let op_pid = op.child.id();
    let emu_pid = s.emu.child.id();
    let mut snap = converge(
        args,
        &s,
        (&mut op, port),
        reader,
        follow_task,
        (t0, None),
        &b,
        out,
        mismatches,
    )
    .await?;
    // Time to Juju and to Ready from the operator's start (before the edits below make
    // new revisions).
    record_time_to_juju(&s.info, &timing, t0_ms, args.n, out).await?;

    // ---- steady state: one full refresh interval with no changes, once the events of
    // the convergence (which yield to status writes) are delivered.
    let te = Instant::now();
    while metric(port, "events_queued").unwrap_or(0.0) > 0.0
        && te.elapsed() < Duration::from_secs(120)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    out["events_drained_after_secs"] = json!(te.elapsed().as_secs_f64());
    out["events_dropped"] = json!(metric(port, "events_dropped_total"));
    eprintln!(
        "  events delivered {:.1}s after convergence; {} dropped",
        te.elapsed().as_secs_f64(),
        metric(port, "events_dropped_total").unwrap_or(0.0)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Writes in the window, followed by watch from etcd's revision at its start: every
    // write of a JujuSecret, a Secret or an Event in the namespace, and of any Lease
    // (the operator's leader election renews its Lease a third of its duration before
    // it would expire). The revision delta counts the apiserver's own writes too.
    let steady_rev0 = etcd_revision(&s.jss).await?;
    let rv0 = steady_rev0.to_string();
    let w_js = count_writes(s.jss.clone(), rv0.clone());
    let w_sec = count_writes(s.secrets.clone(), rv0.clone());
    let w_ev = count_writes(Api::<Event>::namespaced(s.kube.clone(), NS), rv0.clone());
    let w_lease = count_writes(Api::<Lease>::all(s.kube.clone()), rv0);
    snap = window_calls(&s.info, port, Some(&s.jc), &snap).await?.0;
    let (cpu_b, _, _) = proc_stats(op_pid);
    // Exactly one interval: two drift checks of a model are at least one interval apart,
    // so a longer window could catch two by its alignment alone.
    tokio::time::sleep(Duration::from_secs(args.refresh_secs)).await;
    let (steady_snap, sd) = window_calls(&s.info, port, Some(&s.jc), &snap).await?;
    snap = steady_snap;
    let (cpu_a, _, _) = proc_stats(op_pid);
    let steady_rev1 = etcd_revision(&s.jss).await?;
    // Watch events arrive shortly after the write; a moment for the last ones.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let js_w = writes_counted(w_js);
    let sec_w = writes_counted(w_sec);
    let ev_w = writes_counted(w_ev);
    let lease_w = writes_counted(w_lease);
    let sum = |m: &BTreeMap<String, u64>| m.values().sum::<u64>();
    let objects = sum(&js_w) + sum(&sec_w) + sum(&ev_w);
    out["steady_window_secs"] = json!(args.refresh_secs);
    record_calls(out, mismatches, "steady", &sd);
    let sdc = &sd.emulator;
    out["steady_list_per_model"] =
        json!(sdc.get("Secrets.ListSecrets").copied().unwrap_or(0) as f64 / m as f64);
    out["steady_juju_writes"] = json!(
        sdc.iter()
            .filter(|(k, _)| is_juju_write(k))
            .map(|(_, v)| v)
            .sum::<u64>()
    );
    out["steady_jujusecret_writes"] = json!(sum(&js_w));
    out["steady_secret_writes"] = json!(sum(&sec_w));
    out["steady_new_events"] = json!(sum(&ev_w));
    out["steady_lease_writes"] = json!(lease_w);
    out["steady_lease_writes_total"] = json!(sum(&lease_w));
    out["steady_apiserver_writes"] = json!(objects + sum(&lease_w));
    out["steady_apiserver_writes_besides_leases"] = json!(objects);
    out["steady_etcd_writes_all_sources"] = json!(steady_rev1.saturating_sub(steady_rev0));
    out["steady_cpu_secs"] = json!(cpu_a - cpu_b);
    eprintln!(
        "  steady: Juju calls {sdc:?}; apiserver writes: {} JujuSecret, {} Secret, {} Event, {} Lease renewals {lease_w:?}; etcd revisions +{}",
        sum(&js_w),
        sum(&sec_w),
        sum(&ev_w),
        sum(&lease_w),
        steady_rev1.saturating_sub(steady_rev0)
    );

    // ---- change latency: edit a source Secret, poll the emulator for the new revision
    let jc = &s.jc;
    let mut lat = Vec::new();
    let mut lat_timeouts = 0;
    let edits = if n >= 2 { args.edits } else { 0 };
    for r in 0..edits {
        let i = ((2 * r * 7919 + 1) % n) | 1;
        let i = if i >= n { 1 } else { i };
        let uuid = s
            .uuid_of
            .get(&format!("bench-{}", i % m))
            .ok_or("model missing")?;
        let filter = SecretFilter {
            label: Some(format!("js-{i}")),
            ..SecretFilter::user_secrets(uuid)
        };
        let cur = jc
            .list_secrets(uuid, &filter, false)
            .await
            .map_err(|e| e.to_string())?
            .first()
            .map(|s| s.latest_revision)
            .unwrap_or(0);
        let patch = json!({"stringData": desired(i, 1000 + r as u64)});
        let te = Instant::now();
        s.secrets
            .patch(
                &format!("src-{i}"),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(e)?;
        let bound = te + Duration::from_secs(30);
        loop {
            let revs = jc
                .list_secrets(uuid, &filter, false)
                .await
                .map_err(|e| e.to_string())?;
            if revs.first().is_some_and(|s| s.latest_revision > cur) {
                lat.push(te.elapsed().as_secs_f64());
                break;
            }
            if Instant::now() > bound {
                lat_timeouts += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    out["edits"] = json!(edits);
    out["edit_timeouts"] = json!(lat_timeouts);
    let (_, ed) = window_calls(&s.info, port, Some(&s.jc), &snap).await?;
    record_calls(out, mismatches, "edit", &ed);
    if !lat.is_empty() {
        out["latency_p50_secs"] = json!(pct(&lat, 50.0));
        out["latency_p99_secs"] = json!(pct(&lat, 99.0));
        out["latency_max_secs"] = json!(lat[lat.len() - 1]);
    }
    eprintln!(
        "  change latency over {} edits: p50 {:.3}s p99 {:.3}s ({lat_timeouts} timeouts); Juju calls {:?}",
        lat.len(),
        pct(&lat, 50.0),
        pct(&lat, 99.0),
        ed.emulator
    );

    let (cpu, hwm, rss) = proc_stats(op_pid);
    out["op_cpu_secs"] = json!(cpu);
    out["op_peak_rss_mib"] = json!(hwm as f64 / 1024.0);
    out["op_rss_end_mib"] = json!(rss as f64 / 1024.0);
    let (ecpu, ehwm, _) = proc_stats(emu_pid);
    out["emu_cpu_secs"] = json!(ecpu);
    out["emu_peak_rss_mib"] = json!(ehwm as f64 / 1024.0);
    drop(op);

    // ---- the apiserver's write rate alone: the operator has stopped; merge patches of
    // the JujuSecrets' annotations, as many in flight as the operator's bound.
    if args.write_probe > 0 && n > 0 {
        let writes = args.write_probe;
        let tw = Instant::now();
        futures::stream::iter(0..writes)
            .map(|k| {
                let jss = s.jss.clone();
                async move {
                    let patch =
                        json!({"metadata": {"annotations": {"bench.juju.is/probe": k.to_string()}}});
                    jss.patch(
                        &format!("js-{}", k % n),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
                }
            })
            .buffer_unordered(PROBE_IN_FLIGHT)
            .try_collect::<Vec<_>>()
            .await?;
        let secs = tw.elapsed().as_secs_f64();
        let rate = writes as f64 / secs;
        out["probe_writes"] = json!(writes);
        out["probe_in_flight"] = json!(PROBE_IN_FLIGHT);
        out["probe_secs"] = json!(secs);
        out["probe_writes_per_sec"] = json!(rate);
        // The convergence's apiserver writes at the rate measured alone: the apiserver's
        // share of the cold start if nothing else ran.
        if let Some(w) = out["converge_etcd_writes"].as_f64() {
            out["converge_writes_at_probe_rate_secs"] = json!(w / rate);
        }
        eprintln!(
            "  apiserver alone: {writes} JujuSecret patches ({PROBE_IN_FLIGHT} in flight) in {secs:.2}s = {rate:.0} writes/s"
        );
    }
    let seed_path = s.seed_path.clone();
    drop(s);

    // ---- the emulator's ceiling: bulk CreateSecrets from the Rust client, fresh emulator
    {
        let (emu2, info2) = start_emulator(args, &args.work_dir.join("juju-ceiling"), &seed_path)?;
        let jc2 = juju_client(&info2)?;
        let uuids: Vec<String> = (0..m)
            .map(|k| {
                info2
                    .models
                    .iter()
                    .find(|md| md.name == format!("bench-{k}"))
                    .map(|md| md.uuid.clone())
                    .unwrap_or_default()
            })
            .collect();
        let ceiling_cpu_before = proc_stats(emu2.child.id()).0;
        let tc = Instant::now();
        for (k, uuid) in uuids.iter().enumerate() {
            let batch: Vec<NewSecret> = (0..n)
                .filter(|i| i % m == k)
                .map(|i| {
                    let mut c = SecretContent::new();
                    for (kk, v) in desired(i, 0) {
                        c.insert(kk, v.into_bytes());
                    }
                    NewSecret {
                        label: Some(format!("js-{i}")),
                        description: None,
                        content: c,
                    }
                })
                .collect();
            jc2.create_secrets(uuid, &batch)
                .await
                .map_err(|e| e.to_string())?;
        }
        let create_secs = tc.elapsed().as_secs_f64();
        let tl = Instant::now();
        for uuid in &uuids {
            jc2.list_secrets(uuid, &SecretFilter::user_secrets(uuid), true)
                .await
                .map_err(|e| e.to_string())?;
        }
        let list_secs = tl.elapsed().as_secs_f64();
        let stats = format!("{:?}", jc2.stats());
        let side = juju_side_secs(&info2).await?;
        out["ceiling_juju_side_secs"] = json!(side.values().sum::<f64>());
        out["ceiling_juju_cpu_secs"] = json!(proc_stats(emu2.child.id()).0 - ceiling_cpu_before);
        out["ceiling_juju_side_by_method"] = json!(side);
        out["ceiling_create_secs"] = json!(create_secs);
        out["ceiling_list_secs"] = json!(list_secs);
        let counts = emulator_counts(&info2).await?;
        out["ceiling_round_trips"] = json!(counts.values().sum::<u64>());
        out["ceiling_calls"] = json!(counts);
        out["ceiling_stats"] = json!(stats);
        eprintln!(
            "  ceiling: bulk CreateSecrets of {n} in {create_secs:.2}s, ListSecrets(show) x{m} in {list_secs:.2}s"
        );
        drop(jc2);
        drop(emu2);
    }

    // ---- the python-libjuju peer, fresh emulator
    if !args.python.is_empty() {
        let (emu3, info3) = start_emulator(args, &args.work_dir.join("juju-peer"), &seed_path)?;
        let desired_path = args.work_dir.join("desired.json");
        let want: Vec<Value> = (0..n)
            .map(|i| json!({"model": format!("bench-{}", i % m), "label": format!("js-{i}"), "data": desired(i, 0)}))
            .collect();
        std::fs::write(
            &desired_path,
            json!({"connection": info3, "secrets": want}).to_string(),
        )
        .map_err(|e| e.to_string())?;
        let peer_cpu_before = proc_stats(emu3.child.id()).0;
        let tp = Instant::now();
        let o = Command::new(&args.python)
            .arg(&args.peer_script)
            .arg(&desired_path)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| e.to_string())?;
        let wall = tp.elapsed().as_secs_f64();
        let text = String::from_utf8_lossy(&o.stdout);
        let peer: Value = text
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or(json!({"error": format!("peer failed: {}", o.status)}));
        out["peer"] = peer;
        out["peer_wall_secs_outer"] = json!(wall);
        let side = juju_side_secs(&info3).await?;
        out["peer_juju_side_secs"] = json!(side.values().sum::<f64>());
        out["peer_juju_cpu_secs"] = json!(proc_stats(emu3.child.id()).0 - peer_cpu_before);
        out["peer_juju_side_by_method"] = json!(side);
        drop(emu3);

        // Every ratio is the operator's figure divided by the peer's: lower is better.
        let f = |k: &str| out[k].as_f64();
        let rt = ratio(
            f("converge_calls_total"),
            out["peer"]["round_trips"].as_f64(),
        );
        let time = ratio(f("converge_juju_side_secs"), f("peer_juju_side_secs"));
        let cpu = ratio(f("converge_juju_cpu_secs"), f("peer_juju_cpu_secs"));
        out["ratio_round_trips_operator_per_peer"] = json!(rt);
        out["ratio_juju_side_secs_operator_per_peer"] = json!(time);
        out["ratio_juju_cpu_operator_per_peer"] = json!(cpu);
        let show = |r: Option<f64>| r.map_or("-".into(), |r| format!("{r:.2}"));
        eprintln!(
            "  operator ÷ peer (lower is better): round trips {}, Juju-side time {}, emulator CPU {}",
            show(rt),
            show(time),
            show(cpu)
        );
    }
    let f = |k: &str| out[k].as_f64();
    let ceiling = [
        (
            "round_trips",
            ratio(f("converge_calls_total"), f("ceiling_round_trips")),
        ),
        (
            "juju_side_secs",
            ratio(f("converge_juju_side_secs"), f("ceiling_juju_side_secs")),
        ),
        (
            "juju_cpu",
            ratio(f("converge_juju_cpu_secs"), f("ceiling_juju_cpu_secs")),
        ),
    ];
    for (k, r) in ceiling {
        out[format!("ratio_{k}_operator_per_ceiling")] = json!(r);
    }
    Ok(())
}

/// The operator is running and ready, then the N JujuSecrets are applied at once with
/// `kubectl apply --server-side` from one file; timed from the start of the apply to
/// the last object Ready with its content right in the emulator. The source Secrets
/// exist before (created with the setup, excluded).
async fn run_gitops(
    args: &Args,
    s: Setup,
    out: &mut Value,
    mismatches: &mut Vec<Value>,
) -> Res<()> {
    let (n, m) = (args.n, args.m);
    let t_setup = Instant::now();
    create_objects(&s.secrets, &s.jss, n, m, false).await?;
    let manifest = write_manifest(&args.work_dir, "jujusecrets.yaml", n, m, NS)?;
    out["setup_secs"] = json!(t_setup.elapsed().as_secs_f64());

    // The apply alone, the operator not running: how soon the apiserver holds N objects
    // on this machine (a bound on any time to Juju).
    if args.apply_alone {
        let alone = write_manifest(&args.work_dir, "jujusecrets-alone.yaml", n, m, ALONE_NS)?;
        let t = Instant::now();
        let mut job = start_apply(args, &s.kube, ALONE_NS, &alone, "kubectl-apply-alone.log")?;
        let done = loop {
            if let Some(done) = job.poll_done() {
                break done;
            }
            if t.elapsed() > Duration::from_secs(args.converge_timeout) {
                job.stop();
                break Err("the apply alone did not finish".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        done?;
        out["apply_alone_secs"] = json!(t.elapsed().as_secs_f64());
        eprintln!(
            "bench N={n} M={m} gitops: the apply alone (no operator) took {:.1}s",
            t.elapsed().as_secs_f64()
        );
    }

    let port = free_port();
    let t_op = Instant::now();
    // The operator's default refresh interval: this mode measures no steady state, and
    // a short interval would add refresh passes to the burst being measured.
    let mut op = start_operator(args, port, GITOPS_REFRESH_SECS)?;
    let op_pid = op.child.id();
    // Ready: /readyz answers 200 and this replica leads (not a standby).
    let ready_bound = t_op + Duration::from_secs(120);
    loop {
        if let Ok(Some(st)) = op.child.try_wait() {
            return Err(format!("operator exited before it was ready: {st}"));
        }
        if http_get(port, "/readyz").is_some() && metric(port, "leader") == Some(1.0) {
            break;
        }
        if Instant::now() > ready_bound {
            return Err("operator not ready within 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    out["operator_ready_secs"] = json!(t_op.elapsed().as_secs_f64());
    // The startup's own calls (logins, model listing) settle before the window starts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!(
        "bench N={n} M={m} gitops: operator ready after {:.1}s; applying {n} JujuSecrets from {}",
        t_op.elapsed().as_secs_f64(),
        manifest.display()
    );

    let b = before(&s, port, &args.kubeconfig).await?;
    let (cpu_before, _, _) = proc_stats(op_pid);
    let (reader, follow_task, timing) = follow(&s.jss);
    // The watch's initial (empty) list is done before the apply starts.
    let _ = tokio::time::timeout(Duration::from_secs(30), reader.wait_until_ready()).await;
    let api_before = apiserver_time(&s.kube).await?;
    let t0_ms = unix_ms();
    let t0 = Instant::now();
    let mut apply = start_apply(args, &s.kube, NS, &manifest, "kubectl-apply.log")?;
    out["applier"] = json!(match args.applier {
        Applier::Kubectl => "kubectl".to_owned(),
        Applier::Parallel => format!("parallel-{}", args.apply_in_flight),
    });
    let res = converge(
        args,
        &s,
        (&mut op, port),
        reader,
        follow_task,
        (t0, Some(&mut apply)),
        &b,
        out,
        mismatches,
    )
    .await;
    if res.is_err() {
        apply.stop();
    }
    res?;
    record_time_to_juju(&s.info, &timing, t0_ms, n, out).await?;
    out["apiserver_time"] = apiserver_time_delta(&api_before, &apiserver_time(&s.kube).await?);
    let (cpu, hwm, _) = proc_stats(op_pid);
    out["op_cpu_secs"] = json!(cpu - cpu_before);
    out["op_peak_rss_mib"] = json!(hwm as f64 / 1024.0);
    drop(op);
    drop(s);
    Ok(())
}

/// The operator's default `--refresh-interval` (10 minutes), used in `gitops` mode.
const GITOPS_REFRESH_SECS: u64 = 600;

/// Namespace of the apply alone (the operator watches only [`NS`]).
const ALONE_NS: &str = "bench-alone";

/// Writes the N JujuSecrets of namespace `ns` as one multi-document YAML file.
fn write_manifest(dir: &Path, file: &str, n: usize, m: usize, ns: &str) -> Res<PathBuf> {
    let path = dir.join(file);
    let mut text = String::new();
    for i in 0..n {
        text.push_str("---\n");
        text.push_str(
            &serde_yaml_ng::to_string(&jujusecret_in(i, m, ns)).map_err(|e| e.to_string())?,
        );
    }
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    Ok(path)
}

/// Starts applying the N JujuSecrets of `ns` (from `manifest` for kubectl).
fn start_apply(
    args: &Args,
    client: &Client,
    ns: &str,
    manifest: &Path,
    log: &str,
) -> Res<ApplyJob> {
    Ok(match args.applier {
        Applier::Kubectl => {
            let log = File::create(args.work_dir.join(log)).map_err(|e| e.to_string())?;
            ApplyJob::Kubectl(
                Command::new(&args.kubectl)
                    .arg("--kubeconfig")
                    .arg(&args.kubeconfig)
                    .args(["apply", "--server-side", "--validate=false", "-f"])
                    .arg(manifest)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().map_err(|e| e.to_string())?)
                    .stderr(log)
                    .spawn()
                    .map_err(|e| format!("{}: {e}", args.kubectl.display()))?,
            )
        }
        Applier::Parallel => ApplyJob::Parallel(tokio::spawn(apply_parallel(
            Api::namespaced(client.clone(), ns),
            args.n,
            args.m,
            ns.to_owned(),
            args.apply_in_flight,
        ))),
    })
}

/// Server-side applies of the N JujuSecrets (field manager `jso-bench`), `in_flight` at
/// a time: what a GitOps tool that applies in parallel sends.
async fn apply_parallel(
    jss: Api<JujuSecret>,
    n: usize,
    m: usize,
    ns: String,
    in_flight: usize,
) -> Res<()> {
    let pp = PatchParams::apply("jso-bench");
    futures::stream::iter(0..n)
        .map(|i| {
            let (jss, pp, ns) = (jss.clone(), pp.clone(), ns.clone());
            async move {
                jss.patch(
                    &format!("js-{i}"),
                    &pp,
                    &Patch::Apply(jujusecret_in(i, m, &ns)),
                )
                .await
                .map(|_| ())
                .map_err(|e| format!("apply js-{i}: {e}"))
            }
        })
        .buffer_unordered(in_flight.max(1))
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// The apiserver's own time serving requests so far (its `/metrics`
/// `apiserver_request_duration_seconds` sums and counts), per "VERB resource[/sub]".
async fn apiserver_time(client: &Client) -> Res<BTreeMap<String, (f64, u64)>> {
    let req = http::Request::get("/metrics")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let text = client.request_text(req).await.map_err(|e| e.to_string())?;
    let mut out: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    for line in text.lines() {
        let (is_sum, rest) =
            if let Some(r) = line.strip_prefix("apiserver_request_duration_seconds_sum{") {
                (true, r)
            } else if let Some(r) = line.strip_prefix("apiserver_request_duration_seconds_count{") {
                (false, r)
            } else {
                continue;
            };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |k: &str| {
            labels
                .split("\",")
                .find_map(|kv| kv.strip_prefix(&format!("{k}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let (verb, resource, sub) = (label("verb"), label("resource"), label("subresource"));
        if verb == "WATCH" || verb == "CONNECT" {
            continue;
        }
        let key = if sub.is_empty() {
            format!("{verb} {resource}")
        } else {
            format!("{verb} {resource}/{sub}")
        };
        let v: f64 = value.trim().parse().unwrap_or(0.0);
        let e = out.entry(key).or_default();
        if is_sum {
            e.0 += v;
        } else {
            e.1 += v as u64;
        }
    }
    Ok(out)
}

/// `after - before` of [`apiserver_time`], as `{"VERB resource": {"secs", "requests"}}`
/// (the busiest first in the printed line).
fn apiserver_time_delta(
    before: &BTreeMap<String, (f64, u64)>,
    after: &BTreeMap<String, (f64, u64)>,
) -> Value {
    let mut rows: Vec<(String, f64, u64)> = after
        .iter()
        .map(|(k, (s, c))| {
            let (s0, c0) = before.get(k).copied().unwrap_or_default();
            (k.clone(), s - s0, c.saturating_sub(c0))
        })
        .filter(|(_, _, c)| *c > 0)
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    eprintln!(
        "  apiserver time by request: {}",
        rows.iter()
            .take(8)
            .map(|(k, s, c)| format!("{k} {s:.1}s/{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Value::Object(
        rows.into_iter()
            .map(|(k, s, c)| (k, json!({"secs": s, "requests": c})))
            .collect(),
    )
}

/// CPU seconds so far of the apiserver and of etcd that `scripts/kube-apiserver.sh`
/// started beside `kubeconfig` (their PID files are in the same directory).
fn kube_cpu(kubeconfig: &Path) -> (f64, f64) {
    let dir = kubeconfig.parent().unwrap_or(Path::new("."));
    let cpu = |name: &str| {
        std::fs::read_to_string(dir.join(format!("{name}.pid")))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
            .map_or(0.0, |pid| proc_stats(pid).0)
    };
    (cpu("apiserver"), cpu("etcd"))
}

/// Milliseconds as seconds.
fn ms_secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Reads the emulator's `ContentTimes` and records [`time_to_juju`].
async fn record_time_to_juju(
    info: &ConnectionInfo,
    timing: &Mutex<Timing>,
    t0_ms: u64,
    n: usize,
    out: &mut Value,
) -> Res<()> {
    let contents: BTreeMap<String, BTreeMap<String, u64>> =
        serde_json::from_value(control_call(info, "ContentTimes", json!({})).await?)
            .map_err(|e| format!("ContentTimes: {e}"))?;
    let timing = timing.lock().unwrap_or_else(|e| e.into_inner());
    time_to_juju(&contents, &timing, t0_ms, n, out);
    Ok(())
}

/// The GitOps time figures: from the apply's start (`t0_ms`) to the last object in the
/// apiserver, the last content in Juju and the last object Ready, and per object the
/// lag from its arrival (the watch) to its content in Juju and to Ready.
fn time_to_juju(
    contents: &BTreeMap<String, BTreeMap<String, u64>>,
    timing: &Timing,
    t0_ms: u64,
    n: usize,
    out: &mut Value,
) {
    let content_of: BTreeMap<&str, u64> = contents
        .values()
        .flat_map(|m| m.iter().map(|(label, ms)| (label.as_str(), *ms)))
        .collect();
    let mut juju_lag = Vec::new();
    let mut ready_lag = Vec::new();
    let mut finalizer_lag = Vec::new();
    let mut finalizer_to_juju = Vec::new();
    let mut juju_to_ready = Vec::new();
    let mut last_content = None::<u64>;
    for i in 0..n {
        let name = format!("js-{i}");
        let seen = timing.seen.get(&name).copied();
        let content = content_of.get(name.as_str()).copied();
        let ready = timing.ready.get(&name).copied();
        if let Some(c) = content {
            last_content = Some(last_content.map_or(c, |l| l.max(c)));
        }
        if let (Some(seen), Some(c)) = (seen, content) {
            juju_lag.push(ms_secs(c.saturating_sub(seen)));
        }
        if let (Some(seen), Some(r)) = (seen, ready) {
            ready_lag.push(ms_secs(r.saturating_sub(seen)));
        }
        let finalized = timing.finalized.get(&name).copied();
        if let (Some(seen), Some(f)) = (seen, finalized) {
            finalizer_lag.push(ms_secs(f.saturating_sub(seen)));
        }
        if let (Some(f), Some(c)) = (finalized, content) {
            finalizer_to_juju.push(ms_secs(c.saturating_sub(f)));
        }
        if let (Some(c), Some(r)) = (content, ready) {
            juju_to_ready.push(ms_secs(r.saturating_sub(c)));
        }
    }
    let since = |ms: Option<u64>| ms.map(|t| ms_secs(t.saturating_sub(t0_ms)));
    out["in_apiserver_secs"] = json!(since(timing.seen.values().max().copied()));
    // Counted only when every object arrived and has its content in Juju / is Ready.
    out["time_to_juju_secs"] = json!(since(last_content).filter(|_| juju_lag.len() == n));
    out["time_to_ready_secs"] =
        json!(since(timing.ready.values().max().copied()).filter(|_| timing.ready.len() == n));
    for v in [
        &mut juju_lag,
        &mut ready_lag,
        &mut finalizer_lag,
        &mut finalizer_to_juju,
        &mut juju_to_ready,
    ] {
        v.sort_by(f64::total_cmp);
    }
    // The lag split in three: arrival to the finalizer seen, the finalizer seen to the
    // content in Juju, the content in Juju to Ready.
    out["finalizer_lag_p50_secs"] = json!(pct(&finalizer_lag, 50.0));
    out["finalizer_lag_p99_secs"] = json!(pct(&finalizer_lag, 99.0));
    out["finalizer_to_juju_p50_secs"] = json!(pct(&finalizer_to_juju, 50.0));
    out["finalizer_to_juju_p99_secs"] = json!(pct(&finalizer_to_juju, 99.0));
    out["juju_to_ready_p50_secs"] = json!(pct(&juju_to_ready, 50.0));
    out["juju_to_ready_p99_secs"] = json!(pct(&juju_to_ready, 99.0));
    out["juju_lag_p50_secs"] = json!(pct(&juju_lag, 50.0));
    out["juju_lag_p99_secs"] = json!(pct(&juju_lag, 99.0));
    out["juju_lag_max_secs"] = json!(juju_lag.last());
    out["ready_lag_p50_secs"] = json!(pct(&ready_lag, 50.0));
    out["ready_lag_p99_secs"] = json!(pct(&ready_lag, 99.0));
    eprintln!(
        "  time to Juju {} s, to Ready {} s, in the apiserver {} s; arrival to Juju p50 {:.2} s p99 {:.2} s \
         (arrival to finalizer p50 {:.2} p99 {:.2}; finalizer to Juju p50 {:.2} p99 {:.2}; Juju to Ready p50 {:.2} p99 {:.2})",
        out["time_to_juju_secs"],
        out["time_to_ready_secs"],
        out["in_apiserver_secs"],
        pct(&juju_lag, 50.0),
        pct(&juju_lag, 99.0),
        pct(&finalizer_lag, 50.0),
        pct(&finalizer_lag, 99.0),
        pct(&finalizer_to_juju, 50.0),
        pct(&finalizer_to_juju, 99.0),
        pct(&juju_to_ready, 50.0),
        pct(&juju_to_ready, 99.0),
    );
}

/// Whether a `Facade.Method` changes something in Juju.
fn is_juju_write(method: &str) -> bool {
    let m = method.rsplit('.').next().unwrap_or(method);
    [
        "Create", "Update", "Remove", "Grant", "Revoke", "Add", "Delete", "Change",
    ]
    .iter()
    .any(|p| m.starts_with(p))
}

/// Kinds of write [`run_writes`] compares.
const WRITE_KINDS: [&str; 5] = [
    "status-apply",
    "status-merge",
    "status-json",
    "finalizer-json",
    "annotation-merge",
];

/// One write of `kind` to object `i` in round `round` (every write changes something,
/// so none is a no-op the apiserver skips).
async fn write_once(jss: &Api<JujuSecret>, kind: &str, i: usize, round: usize) -> Res<()> {
    let name = format!("js-{i}");
    // A revision of its own per round and kind: no write repeats the stored status.
    let kind_no = WRITE_KINDS.iter().position(|k| *k == kind).unwrap_or(0);
    let revision = round * WRITE_KINDS.len() + kind_no + 1;
    // What the operator writes once an object is Ready (the same fields and sizes).
    let status = json!({
        "secretId": format!("d4k2n9s7q1m0r5t8v3w{i:05}"),
        "secretUri": format!("secret:0a1b2c3d-4e5f-4a7b-8c9d-0e1f2a3b4c5d/d4k2n9s7q1m0r5t8v3w{i:05}"),
        "modelUuid": "0a1b2c3d-4e5f-4a7b-8c9d-0e1f2a3b4c5d",
        "revision": revision,
        "observedGeneration": 1,
        "lastSyncTime": format!("2026-12-06T12:00:{:02}Z", round % 60),
        "contentMac": format!("hmac-sha256:{}", "ab".repeat(32)),
        "owned": true,
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "Synced",
            "message": format!("revision {revision} of the secret is in Juju"),
            "lastTransitionTime": "2026-12-06T12:00:00Z", "observedGeneration": 1,
        }],
    });
    let r = match kind {
        "status-apply" => {
            let patch = json!({
                "apiVersion": "secrets.juju.is/v1alpha1", "kind": "JujuSecret", "status": status,
            });
            jss.patch_status(
                &name,
                &PatchParams::apply("juju-secrets-operator").force(),
                &Patch::Apply(&patch),
            )
            .await
        }
        "status-merge" => {
            jss.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "status": status })),
            )
            .await
        }
        "status-json" => {
            // The whole status replaced by one JSON patch operation (no read, no merge).
            let ops = json!([{"op": "add", "path": "/status", "value": status}]);
            let patch = serde_json::from_value(ops).map_err(|e| e.to_string())?;
            jss.patch_status(&name, &PatchParams::default(), &Patch::<()>::Json(patch))
                .await
        }
        "finalizer-json" => {
            // Added in odd rounds, removed in even ones: what kube-runtime's finalizer
            // helper sends (a test of the list, then the change).
            let ops = if round % 2 == 1 {
                json!([
                    {"op": "test", "path": "/metadata/finalizers", "value": null},
                    {"op": "add", "path": "/metadata/finalizers", "value": ["secrets.juju.is/cleanup"]},
                ])
            } else {
                json!([
                    {"op": "test", "path": "/metadata/finalizers/0", "value": "secrets.juju.is/cleanup"},
                    {"op": "remove", "path": "/metadata/finalizers/0"},
                ])
            };
            let patch = serde_json::from_value(ops).map_err(|e| e.to_string())?;
            jss.patch(&name, &PatchParams::default(), &Patch::<()>::Json(patch))
                .await
        }
        _ => {
            let patch =
                json!({"metadata": {"annotations": {"bench.juju.is/probe": round.to_string()}}});
            jss.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
        }
    };
    r.map(|_| ()).map_err(|e| format!("{kind} of {name}: {e}"))
}

/// `--mode writes`: N JujuSecrets exist (no operator runs); then rounds of
/// `--write-probe` writes of each kind in [`WRITE_KINDS`] (one per object, objects in
/// turn, [`PROBE_IN_FLIGHT`] in flight), the kinds alternating round by round; per round
/// and kind the wall time and the CPU seconds of the apiserver and of etcd.
async fn run_writes(args: &Args, s: Setup, out: &mut Value) -> Res<()> {
    let n = args.n.max(1);
    let writes = args.write_probe.max(1);
    create_objects(&s.secrets, &s.jss, n, args.m, true).await?;
    // Every object gets a status first, so each measured status write replaces one.
    run_kind(&s.jss, "status-apply", n, n, 0).await?;
    let mut rows = Vec::new();
    for round in 1..=6 {
        for kind in WRITE_KINDS {
            let (api0, etcd0) = kube_cpu(&args.kubeconfig);
            let t = Instant::now();
            run_kind(&s.jss, kind, n, writes, round).await?;
            let secs = t.elapsed().as_secs_f64();
            let (api1, etcd1) = kube_cpu(&args.kubeconfig);
            let row = json!({
                "round": round, "kind": kind, "writes": writes, "secs": secs,
                "writes_per_sec": writes as f64 / secs,
                "apiserver_cpu_ms_per_write": (api1 - api0) * 1000.0 / writes as f64,
                "etcd_cpu_ms_per_write": (etcd1 - etcd0) * 1000.0 / writes as f64,
            });
            eprintln!("  {row}");
            rows.push(row);
        }
    }
    let mut summary = serde_json::Map::new();
    for kind in WRITE_KINDS {
        let of = |field: &str| {
            let mut v: Vec<f64> = rows
                .iter()
                .filter(|r| r["kind"] == kind)
                .filter_map(|r| r[field].as_f64())
                .collect();
            v.sort_by(f64::total_cmp);
            json!({"median": pct(&v, 50.0), "min": v.first(), "max": v.last()})
        };
        summary.insert(
            kind.to_owned(),
            json!({
                "writes_per_sec": of("writes_per_sec"),
                "apiserver_cpu_ms_per_write": of("apiserver_cpu_ms_per_write"),
                "etcd_cpu_ms_per_write": of("etcd_cpu_ms_per_write"),
            }),
        );
    }
    out["writes"] = json!(rows);
    out["writes_summary"] = Value::Object(summary);
    Ok(())
}

/// `writes` writes of `kind`, objects `0..n` in turn, [`PROBE_IN_FLIGHT`] in flight.
async fn run_kind(
    jss: &Api<JujuSecret>,
    kind: &str,
    n: usize,
    writes: usize,
    round: usize,
) -> Res<()> {
    futures::stream::iter(0..writes)
        .map(|k| write_once(jss, kind, k % n, round))
        .buffer_unordered(PROBE_IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await
        .map(|_| ())
}

/// `--mode floor`. First the same N JujuSecrets applied alone to another namespace
/// (timed); then the N applied again, `--apply-in-flight` at a time, and as each apply
/// returns, that object's requests as a finalizer-first operator makes them: the
/// finalizer's JSON patch, the source Secret's read (odd objects), the status by
/// server-side apply (`--floor-schedule statuses-last`: every status once every
/// finalizer and read is done; `juju-first`: only the read as each object lands, every
/// finalizer and then every status once the apply is done); [`PROBE_IN_FLIGHT`]
/// objects' requests in flight (the operator's bound). From the apply's start: the last
/// object applied, the last of the requests that precede a Juju write (the earliest the
/// last secret could be written to Juju), the last status (the earliest the last object
/// could be Ready); and the CPU of the apiserver and etcd.
async fn run_floor(args: &Args, s: Setup, out: &mut Value) -> Res<()> {
    let (n, m) = (args.n, args.m);
    create_objects(&s.secrets, &s.jss, n, m, false).await?;
    let in_flight = args.apply_in_flight.max(1);
    let t = Instant::now();
    apply_parallel(
        Api::namespaced(s.kube.clone(), ALONE_NS),
        n,
        m,
        ALONE_NS.to_owned(),
        in_flight,
    )
    .await?;
    out["apply_alone_secs"] = json!(t.elapsed().as_secs_f64());

    let (api0, etcd0) = kube_cpu(&args.kubeconfig);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let t0 = Instant::now();
    let apply = {
        let jss = s.jss.clone();
        tokio::spawn(async move {
            let pp = PatchParams::apply("jso-bench");
            futures::stream::iter(0..n)
                .map(|i| {
                    let (jss, pp, tx) = (jss.clone(), pp.clone(), tx.clone());
                    async move {
                        jss.patch(
                            &format!("js-{i}"),
                            &pp,
                            &Patch::Apply(jujusecret_in(i, m, NS)),
                        )
                        .await
                        .map_err(|e| format!("apply js-{i}: {e}"))?;
                        let _ = tx.send(i);
                        Ok::<(), String>(())
                    }
                })
                .buffer_unordered(in_flight)
                .try_collect::<Vec<_>>()
                .await?;
            Ok::<f64, String>(t0.elapsed().as_secs_f64())
        })
    };
    let last_juju = Arc::new(Mutex::new(0f64));
    let last_ready = Arc::new(Mutex::new(0f64));
    let per_object = args.floor_schedule == Schedule::PerObject;
    let finalizer_first = args.floor_schedule != Schedule::JujuFirst;
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) })
        .map(|i| {
            let (jss, secrets) = (s.jss.clone(), s.secrets.clone());
            let (last_juju, last_ready) = (last_juju.clone(), last_ready.clone());
            async move {
                if finalizer_first {
                    write_once(&jss, "finalizer-json", i, 1).await?;
                }
                if i % 2 == 1 {
                    secrets
                        .get(&format!("src-{i}"))
                        .await
                        .map_err(|e| format!("read src-{i}: {e}"))?;
                }
                let at = t0.elapsed().as_secs_f64();
                if let Ok(mut l) = last_juju.lock() {
                    *l = l.max(at);
                }
                if per_object {
                    write_once(&jss, "status-apply", i, 0).await?;
                    let at = t0.elapsed().as_secs_f64();
                    if let Ok(mut l) = last_ready.lock() {
                        *l = l.max(at);
                    }
                }
                Ok::<(), String>(())
            }
        })
        .buffer_unordered(PROBE_IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await?;
    let applied = apply.await.map_err(|e| e.to_string())??;
    if !finalizer_first {
        run_kind(&s.jss, "finalizer-json", n, n, 1).await?;
    }
    if !per_object {
        run_kind(&s.jss, "status-apply", n, n, 0).await?;
        if let Ok(mut l) = last_ready.lock() {
            *l = t0.elapsed().as_secs_f64();
        }
    }
    let (api1, etcd1) = kube_cpu(&args.kubeconfig);
    let get = |l: &Arc<Mutex<f64>>| l.lock().map(|v| *v).unwrap_or(f64::NAN);
    out["apply_secs"] = json!(applied);
    out["floor_schedule"] = json!(match args.floor_schedule {
        Schedule::PerObject => "per-object",
        Schedule::StatusesLast => "statuses-last",
        Schedule::JujuFirst => "juju-first",
    });
    out["floor_juju_secs"] = json!(get(&last_juju));
    out["floor_ready_secs"] = json!(get(&last_ready));
    out["apiserver_cpu_secs"] = json!(api1 - api0);
    out["etcd_cpu_secs"] = json!(etcd1 - etcd0);
    eprintln!(
        "  floor: apply alone {:.1}s; with the operator's requests: applied {applied:.1}s, last request before Juju {:.1}s, last status {:.1}s",
        out["apply_alone_secs"].as_f64().unwrap_or(f64::NAN),
        get(&last_juju),
        get(&last_ready)
    );
    Ok(())
}
