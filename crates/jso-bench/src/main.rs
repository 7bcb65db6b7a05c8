//! Scale benchmark of juju-secrets-operator: N JujuSecrets over M models on a real
//! kube-apiserver, the Juju emulator binary and the operator binary, all release builds.
//! Driven by scripts/bench.sh, which builds, starts the apiserver and applies crds/.
//!
//! One run prints one JSON line of results on stdout (the script makes the table).
//! Every wait is bounded. No secret value is printed.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use juju_client::{ConnectOptions, JujuClient, NewSecret, Password, SecretContent, SecretFilter};
use juju_emulator::{ConnectionInfo, control_call};
use juju_secrets_operator::crd::secret::JujuSecret;
use k8s_openapi::api::core::v1::{Event, Namespace, Secret};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::{Value, json};

type Res<T> = Result<T, String>;

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
    /// Operator --refresh-interval and the steady-state window, in seconds.
    #[arg(long, default_value_t = 60)]
    refresh_secs: u64,
    /// Source-Secret edits for the change latency (0: skip).
    #[arg(long, default_value_t = 50)]
    edits: usize,
    /// Bound of the cold-start wait, seconds.
    #[arg(long, default_value_t = 600)]
    converge_timeout: u64,
    /// Python interpreter with python-libjuju, for the peer (empty: skip the peer).
    #[arg(long, default_value = "")]
    python: String,
    /// The peer script.
    #[arg(long, default_value = "bench/libjuju_peer.py")]
    peer_script: PathBuf,
    /// An extra argument for `juju-secrets-operator run` (repeatable), e.g.
    /// `--operator-arg=--max-concurrent-reconciles=256`.
    #[arg(long)]
    operator_arg: Vec<String>,
}

const NS: &str = "bench";
const CONN_NS: &str = "juju-system";

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

/// Name → resourceVersion of every object in `list`.
fn versions<K: kube::Resource + Clone>(
    list: &kube::core::ObjectList<K>,
) -> BTreeMap<String, String> {
    list.items
        .iter()
        .map(|o| {
            let meta = o.meta();
            (
                meta.name.clone().unwrap_or_default(),
                meta.resource_version.clone().unwrap_or_default(),
            )
        })
        .collect()
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

async fn run(args: &Args) -> Res<Value> {
    let (n, m) = (args.n, args.m);
    let e = |x: kube::Error| x.to_string();
    std::fs::create_dir_all(&args.work_dir).map_err(|e| e.to_string())?;
    let mut out = json!({"n": n, "m": m, "refresh_secs": args.refresh_secs});

    // ---- emulator with M models
    let seed = json!({
        "users": [{"username": "admin", "access": "superuser"}],
        "models": (0..m).map(|k| json!({"name": format!("bench-{k}"), "owner": "admin"})).collect::<Vec<_>>(),
    });
    let seed_path = args.work_dir.join("seed.json");
    std::fs::write(&seed_path, seed.to_string()).map_err(|e| e.to_string())?;
    let (emu, info) = start_emulator(args, &args.work_dir.join("juju"), &seed_path)?;
    let emu_pid = emu.child.id();
    let uuid_of: BTreeMap<String, String> = info
        .models
        .iter()
        .map(|md| (md.name.clone(), md.uuid.clone()))
        .collect();

    // ---- kube
    let kc = Kubeconfig::read_from(&args.kubeconfig).map_err(|e| e.to_string())?;
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    cfg.read_timeout = Some(Duration::from_secs(120));
    let kube = Client::try_from(cfg).map_err(|e| e.to_string())?;
    let nsapi: Api<Namespace> = Api::all(kube.clone());
    for ns in [NS, CONN_NS] {
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
        .map_err(e)?;

    // ---- N objects before the operator starts
    let secrets: Api<Secret> = Api::namespaced(kube.clone(), NS);
    let jss: Api<JujuSecret> = Api::namespaced(kube.clone(), NS);
    let t_setup = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let secrets = secrets.clone();
            let jss = jss.clone();
            async move {
                let model = format!("admin/bench-{}", i % m);
                let spec = if i % 2 == 0 {
                    json!({"model": model, "data": desired(i, 0)})
                } else {
                    let s: Secret = serde_json::from_value(json!({
                        "metadata": {"name": format!("src-{i}")},
                        "stringData": desired(i, 0),
                    }))
                    .map_err(|e| e.to_string())?;
                    secrets
                        .create(&PostParams::default(), &s)
                        .await
                        .map_err(|e| e.to_string())?;
                    json!({"model": model, "secretRef": {"name": format!("src-{i}")}})
                };
                let js: JujuSecret = serde_json::from_value(json!({
                    "apiVersion": "secrets.juju.is/v1alpha1", "kind": "JujuSecret",
                    "metadata": {"name": format!("js-{i}")}, "spec": spec,
                }))
                .map_err(|e| e.to_string())?;
                jss.create(&PostParams::default(), &js)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<(), String>(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    out["setup_secs"] = json!(t_setup.elapsed().as_secs_f64());
    eprintln!(
        "bench N={n} M={m}: {n} objects created in {:.1}s (excluded)",
        t_setup.elapsed().as_secs_f64()
    );

    // etcd's global revision (a list's resourceVersion) counts every write the
    // apiserver stored, whoever made it; taken before the operator starts and at Ready.
    let etcd_rev = |l: &kube::core::ObjectList<JujuSecret>| -> u64 {
        l.metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let rev_before = etcd_rev(&jss.list(&ListParams::default().limit(1)).await.map_err(e)?);

    // ---- operator
    let side_before = juju_side_secs(&info).await?;
    let (emu_cpu_before, _, _) = proc_stats(emu_pid);
    let port = free_port();
    let oplog = File::create(args.work_dir.join("operator.log")).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let child = Command::new(&args.operator_bin)
        .arg("run")
        .arg("--kubeconfig")
        .arg(&args.kubeconfig)
        .args(["--juju-connection-secret", "juju-system/juju-connection"])
        .args(["--namespaces", NS])
        .args(["--refresh-interval", &format!("{}s", args.refresh_secs)])
        .args(["--log-level", "warn"])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .args(&args.operator_arg)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(oplog.try_clone().map_err(|e| e.to_string())?)
        .stderr(oplog)
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut op = Proc { child };
    let op_pid = op.child.id();

    // ---- cold start
    // Readiness is followed with a watch (as a dashboard would), not by listing all N
    // objects every second: a list of 10,000 objects costs the apiserver as much as a
    // good part of the operator's own work.
    let deadline = t0 + Duration::from_secs(args.converge_timeout);
    let (reader, writer) = kube::runtime::reflector::store::<JujuSecret>();
    let follow = tokio::spawn(
        kube::runtime::reflector(
            writer,
            kube::runtime::watcher(jss.clone(), kube::runtime::watcher::Config::default()),
        )
        .for_each(|_| futures::future::ready(())),
    );
    let mut last_print = Instant::now();
    let ready = loop {
        if let Ok(Some(st)) = op.child.try_wait() {
            follow.abort();
            return Err(format!(
                "operator exited: {st}; see {}",
                args.work_dir.join("operator.log").display()
            ));
        }
        let ready = reader.state().iter().filter(|j| is_ready(j)).count();
        if ready == n || Instant::now() > deadline {
            break ready;
        }
        if last_print.elapsed() > Duration::from_secs(10) {
            eprintln!("  {:.0}s: {ready}/{n} Ready", t0.elapsed().as_secs_f64());
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    follow.abort();
    let cold = t0.elapsed().as_secs_f64();
    let conv_calls = juju_calls(port);
    let side = delta(&side_before, &juju_side_secs(&info).await?);
    out["converge_juju_side_secs"] = json!(side.values().sum::<f64>());
    out["converge_juju_cpu_secs"] = json!(proc_stats(emu_pid).0 - emu_cpu_before);
    out["converge_juju_side_by_method"] = json!(side);
    if let Ok(l) = jss.list(&ListParams::default().limit(1)).await {
        let w = etcd_rev(&l).saturating_sub(rev_before);
        out["converge_etcd_writes"] = json!(w);
        out["converge_etcd_writes_per_secret"] = json!(w as f64 / n as f64);
    }
    let (cpu_conv, hwm_conv, _) = proc_stats(op_pid);
    out["ready"] = json!(ready);
    out["cold_start_secs"] = if ready == n { json!(cold) } else { Value::Null };
    out["converge_calls"] = json!(conv_calls);
    let total: u64 = conv_calls.values().sum();
    out["converge_calls_total"] = json!(total);
    out["converge_calls_per_secret"] = json!(total as f64 / n as f64);
    out["cpu_converge_secs"] = json!(cpu_conv);
    out["hwm_converge_kib"] = json!(hwm_conv);
    eprintln!(
        "  cold start: {ready}/{n} Ready after {cold:.1}s; {total} Juju calls {conv_calls:?}"
    );

    // ---- content check in the emulator (every secret)
    let jc = juju_client(&info)?;
    let mut ok = 0usize;
    let mut bad = 0usize;
    for k in 0..m {
        let uuid = &uuid_of[&format!("bench-{k}")];
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
    out["content_ok"] = json!(ok);
    out["content_bad"] = json!(bad);
    eprintln!("  content: {ok} right, {bad} wrong in the emulator");

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
    let rv = versions::<JujuSecret>;
    let events: Api<Event> = Api::namespaced(kube.clone(), NS);
    let sec_rv = versions::<Secret>;
    let before_list = jss.list(&ListParams::default()).await.map_err(e)?;
    let steady_rev0 = etcd_rev(&before_list);
    let before = rv(&before_list);
    let sbefore = sec_rv(&secrets.list(&ListParams::default()).await.map_err(e)?);
    let ev_before = events
        .list(&ListParams::default())
        .await
        .map_err(e)?
        .items
        .len();
    let c_before = juju_calls(port);
    let (cpu_b, _, _) = proc_stats(op_pid);
    // Exactly one interval: two drift checks of a model are at least one interval apart,
    // so a longer window could catch two by its alignment alone.
    tokio::time::sleep(Duration::from_secs(args.refresh_secs)).await;
    let c_after = juju_calls(port);
    let (cpu_a, _, _) = proc_stats(op_pid);
    let after_list = jss.list(&ListParams::default()).await.map_err(e)?;
    out["steady_etcd_writes_all_sources"] =
        json!(etcd_rev(&after_list).saturating_sub(steady_rev0));
    let after = rv(&after_list);
    let safter = sec_rv(&secrets.list(&ListParams::default()).await.map_err(e)?);
    let ev_after = events
        .list(&ListParams::default())
        .await
        .map_err(e)?
        .items
        .len();
    let changed = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .count();
    let schanged = safter
        .iter()
        .filter(|(k, v)| sbefore.get(*k) != Some(v))
        .count();
    let sd = delta(&c_before, &c_after);
    out["steady_window_secs"] = json!(args.refresh_secs);
    out["steady_calls"] = json!(sd);
    out["steady_list_per_model"] =
        json!(sd.get("Secrets.ListSecrets").copied().unwrap_or(0) as f64 / m as f64);
    out["steady_jujusecret_writes"] = json!(changed);
    out["steady_secret_writes"] = json!(schanged);
    out["steady_new_events"] = json!(ev_after as i64 - ev_before as i64);
    out["steady_cpu_secs"] = json!(cpu_a - cpu_b);
    eprintln!(
        "  steady: calls {sd:?}, {changed} JujuSecret + {schanged} Secret objects written, {} new events",
        ev_after as i64 - ev_before as i64
    );

    // ---- change latency: edit a source Secret, poll the emulator for the new revision
    let mut lat = Vec::new();
    let mut lat_timeouts = 0;
    let edits = if n >= 2 { args.edits } else { 0 };
    let c_edit_before = juju_calls(port);
    for r in 0..edits {
        let i = ((2 * r * 7919 + 1) % n) | 1;
        let i = if i >= n { 1 } else { i };
        let uuid = &uuid_of[&format!("bench-{}", i % m)];
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
        secrets
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
    out["edit_calls"] = json!(delta(&c_edit_before, &juju_calls(port)));
    if !lat.is_empty() {
        out["latency_p50_secs"] = json!(pct(&lat, 50.0));
        out["latency_p99_secs"] = json!(pct(&lat, 99.0));
        out["latency_max_secs"] = json!(lat[lat.len() - 1]);
    }
    eprintln!(
        "  change latency over {} edits: p50 {:.3}s p99 {:.3}s ({lat_timeouts} timeouts)",
        lat.len(),
        pct(&lat, 50.0),
        pct(&lat, 99.0)
    );

    let (cpu, hwm, rss) = proc_stats(op_pid);
    out["op_cpu_secs"] = json!(cpu);
    out["op_peak_rss_mib"] = json!(hwm as f64 / 1024.0);
    out["op_rss_end_mib"] = json!(rss as f64 / 1024.0);
    let (ecpu, ehwm, _) = proc_stats(emu_pid);
    out["emu_cpu_secs"] = json!(ecpu);
    out["emu_peak_rss_mib"] = json!(ehwm as f64 / 1024.0);
    drop(op);
    drop(jc);
    drop(emu);

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
        let counts: BTreeMap<String, u64> =
            serde_json::from_value(control_call(&info2, "CallCounts", json!({})).await?)
                .map_err(|e| e.to_string())?;
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
    }
    Ok(out)
}
