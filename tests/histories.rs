//! Randomized histories (issue 12): seeded sequences of actions by GitOps, people in
//! Juju, a tenant with only `*/status` rights and a fault injector (SIGKILL of the
//! leader of two replicas, so a handover; aimed kills inside a delayed Juju write; a
//! leader frozen with SIGSTOP past its Lease while the standby takes over; dropped
//! connections), interleaved with short pauses; after each history, once quiet, invariants computed from the tester's own
//! model of what the actors did are checked against Juju's real state.
//!
//! - CI size (default): the fixed seeds below plus one fresh seed (printed), 15 actions
//!   each. `JSO_HISTORY_SEED=<n>` runs only that seed (replay); `JSO_HISTORY_KEEP=0,3,5-7`
//!   keeps only those action indices of it (a shrunk history).
//! - Soak: `JSO_HISTORIES=300` (fixed seeds, then fresh ones); `JSO_HISTORY_LEN` sets the
//!   number of actions. Figures are printed at the end in a form for RELIABILITY.md.
//! - A failing history prints its seed, its actions with what each did, the violations
//!   and the replay command, then is shrunk (`JSO_HISTORY_SHRINK=<replays>`, default 6
//!   in CI, 0 disables) by dropping chunks of actions and replaying.
//! - `JSO_HISTORY_REPLICAS=1` runs one operator process instead of two replicas.
//! - `JSO_HISTORY_MUTANTS=<mutants>` runs the random histories against an operator with
//!   those mutants (`src/controller/mutants.rs`), to see whether the generator finds them.
//! - `tester_catches_mutants` runs aimed histories against operators started with
//!   `JSO_TEST_MUTANTS` (debug builds only) and asserts each is caught by its invariant.
//!
//! Run: `JSO_REQUIRE_E2E=1 cargo test --test histories -- --nocapture`.
// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// Not every harness helper is used here.
#[allow(dead_code)]
#[path = "e2e/harness.rs"]
mod harness;

#[path = "histories/actions.rs"]
mod actions;
#[path = "histories/world.rs"]
mod world;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actions::{Action, Step, Until};
use harness::{Env, NS, SetupError};
use world::{OpProc, Stats, Violation, World};

/// Seeds every CI run replays (histories that once failed go here).
const FIXED_SEEDS: [u64; 7] = [1, 2, 3, 5, 8, 13, 21];
/// Actions per history by default.
const DEFAULT_LEN: usize = 15;
/// Bound of one history, checks included.
const HISTORY_TIMEOUT: Duration = Duration::from_secs(300);

/// One environment at a time in this binary.
static SUITES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

async fn setup() -> Option<Arc<Env>> {
    match Env::setup().await {
        Ok(env) => Some(Arc::new(env)),
        Err(SetupError::NoApiServer(why)) => {
            if harness::required() {
                panic!("e2e environment cannot be brought up (JSO_REQUIRE_E2E=1): {why}");
            }
            eprintln!("histories SKIPPED: {why}");
            None
        }
    }
}

/// The outcome of one history.
struct Run {
    violations: Vec<Violation>,
    journal: Vec<String>,
    stats: Stats,
    /// A history that could not run to its checks (an API error, a timeout).
    error: Option<String>,
}

impl Run {
    fn failed(&self) -> bool {
        !self.violations.is_empty() || self.error.is_some()
    }
    fn invariants(&self) -> Vec<&'static str> {
        let mut v: Vec<_> = self.violations.iter().map(|v| v.invariant).collect();
        if self.error.is_some() {
            v.push("error");
        }
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// The tester's own operator process and what histories share.
struct Bench {
    env: Arc<Env>,
    op: Arc<Mutex<OpProc>>,
    tenant: kube::Client,
    next_history: usize,
}

impl Bench {
    async fn new(env: Arc<Env>, name: &str, mutants: Option<&str>, replicas: usize) -> Bench {
        // The environment's main operator stops for the duration (one operator per
        // namespace); ours runs with the same flags, plus the mutants asked for.
        env.operator.lock().await.kill();
        let envs: Vec<(&str, &str)> = mutants
            .map(|m| ("JSO_TEST_MUTANTS", m))
            .into_iter()
            .collect();
        let mut op = OpProc::start(&env, name, &envs, replicas);
        op.wait_healthy(Duration::from_secs(60)).await.unwrap();
        let tenant = env.status_tenant(NS).await;
        Bench {
            env,
            op: Arc::new(Mutex::new(op)),
            tenant,
            next_history: 0,
        }
    }

    async fn run(&mut self, steps: &[Step]) -> Run {
        let h = self.next_history;
        self.next_history += 1;
        // A fresh token per history: a soak outlives the tenant token's hour.
        self.tenant = self.env.status_tenant(NS).await;
        let mut world = World::new(self.env.clone(), self.op.clone(), self.tenant.clone(), h);
        let steps = steps.to_vec();
        let task = tokio::spawn(async move {
            let r = tokio::time::timeout(HISTORY_TIMEOUT, world.run(&steps)).await;
            let error = match r {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some(format!("history timed out after {HISTORY_TIMEOUT:?}")),
            };
            if error.is_some() {
                for line in world.describe_objects().await {
                    world.journal.push(format!("  last seen: {line}"));
                }
            }
            world.clean_juju().await;
            Run {
                violations: std::mem::take(&mut world.violations),
                journal: std::mem::take(&mut world.journal),
                stats: std::mem::take(&mut world.stats),
                error,
            }
        });
        let run = match task.await {
            Ok(run) => run,
            Err(e) => Run {
                violations: Vec::new(),
                journal: Vec::new(),
                stats: Stats {
                    histories: 1,
                    ..Stats::default()
                },
                error: Some(format!("history panicked: {}", panic_text(e))),
            },
        };
        // Whatever happened, leave no fault behind, and an operator running.
        let faults = self.env.emulator.faults();
        for m in ["CreateSecrets", "UpdateSecrets"] {
            faults.set_delay_for(Some("Secrets"), Some(m), Duration::ZERO);
            faults.set_answer_delay_for("Secrets", m, Duration::ZERO);
        }
        {
            let mut op = self.op.lock().unwrap();
            let _ = op.exited();
            op.spawn();
        }
        // Objects a failed history left behind would disturb the next ones.
        if run.error.is_some() {
            self.env.cleanup_all().await;
        }
        run
    }

    async fn restore(self) {
        self.op.lock().unwrap().kill();
        let mut main = self.env.operator.lock().await;
        main.restart();
        main.wait_started().await;
    }
}

fn panic_text(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return e.to_string();
    }
    let p = e.into_panic();
    match p.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p
            .downcast_ref::<&str>()
            .map_or_else(|| "panic".to_owned(), |s| (*s).to_owned()),
    }
}

fn parse_keep(spec: &str) -> Vec<usize> {
    let mut keep = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
                keep.extend(a..=b);
            }
            None => keep.push(part.parse().unwrap()),
        }
    }
    keep
}

fn keep_text(keep: &[usize]) -> String {
    keep.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn report(seed: u64, keep: Option<&[usize]>, steps: &[Step], run: &Run) {
    let keep_env = keep.map_or(String::new(), |k| {
        format!(" JSO_HISTORY_KEEP={}", keep_text(k))
    });
    let mut text = format!(
        "\n=== history seed {seed}{} FAILED: {:?}\nactions ({}):\n",
        keep.map_or(String::new(), |k| format!(" (actions {})", keep_text(k))),
        run.invariants(),
        steps.len()
    );
    for line in &run.journal {
        text.push_str(line);
        text.push('\n');
    }
    for v in &run.violations {
        text.push_str(&format!("VIOLATION [{}] {}\n", v.invariant, v.detail));
    }
    if let Some(e) = &run.error {
        text.push_str(&format!("ERROR {e}\n"));
    }
    text.push_str(&format!(
        "replay: JSO_REQUIRE_E2E=1 JSO_HISTORY_SEED={seed}{keep_env} cargo test --test histories randomized_histories -- --nocapture\n"
    ));
    eprintln!("{text}");
}

/// Delta debugging by dropping chunks of actions (halves, quarters, ... single ones),
/// keeping a drop when the replay still breaks one of the same invariants. Bounded by
/// `budget` replays. Returns the kept indices and the last failing run.
async fn shrink(
    bench: &mut Bench,
    all: &[Step],
    invariants: &[&'static str],
    budget: u64,
    stats: &mut Stats,
) -> Option<(Vec<usize>, Run)> {
    let mut keep: Vec<usize> = (0..all.len()).collect();
    let mut best = None;
    let mut replays = 0;
    let mut chunk = keep.len().div_ceil(2);
    while chunk >= 1 && replays < budget {
        let mut start = 0;
        let mut progressed = false;
        while start < keep.len() && replays < budget {
            let end = (start + chunk).min(keep.len());
            let candidate: Vec<usize> = keep[..start].iter().chain(&keep[end..]).copied().collect();
            if candidate.is_empty() {
                start = end;
                continue;
            }
            let steps: Vec<Step> = candidate.iter().map(|&i| all[i].clone()).collect();
            replays += 1;
            let run = bench.run(&steps).await;
            stats.add(&run.stats);
            let same = run.invariants().iter().any(|i| invariants.contains(i));
            eprintln!(
                "histories: shrink replay {replays}/{budget}: {} actions -> {}",
                candidate.len(),
                if same { "still fails" } else { "passes" }
            );
            if same {
                keep = candidate;
                best = Some(run);
                progressed = true;
            } else {
                start = end;
            }
        }
        if !progressed {
            if chunk == 1 {
                break;
            }
            chunk = chunk.div_ceil(2);
        }
    }
    best.map(|run| (keep, run))
}

fn figures(title: &str, stats: &Stats, wall: Duration, seeds: &[u64], len: usize) {
    let mut t = format!("\n## {title}\n\n");
    t.push_str(&format!(
        "- histories: {} ({} actions each, seeds {}{})\n",
        stats.histories,
        len,
        seeds
            .iter()
            .take(12)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        if seeds.len() > 12 { ", ..." } else { "" }
    ));
    let total: u64 = stats.actions.values().sum();
    t.push_str(&format!(
        "- actions: {total} ({} skipped as not applicable when they ran)\n",
        stats.skipped
    ));
    for (k, v) in &stats.actions {
        t.push_str(&format!("  - {k}: {v}\n"));
    }
    t.push_str(&format!(
        "- operator SIGKILLs: {} ({} aimed inside/just after a delayed Juju write){}\n",
        stats.kills,
        stats.aimed_kills,
        if stats.replicas > 1 {
            format!(
                "; {} replicas electing a leader, so every kill of the leader is a handover",
                stats.replicas
            )
        } else {
            String::new()
        }
    ));
    t.push_str(&format!(
        "- leaders frozen (SIGSTOP) and resumed: {}\n",
        stats.pauses
    ));
    t.push_str(&format!("- dropped Juju connections: {}\n", stats.drops));
    t.push_str(&format!("- invariant checks: {}\n", stats.checks));
    t.push_str(&format!(
        "- Juju write calls in quiet windows that changed nothing (refused retries): {}\n",
        stats.futile_writes
    ));
    let nv: u64 = stats.violations.values().sum();
    t.push_str(&format!(
        "- violations: {nv} in {} failed histories {:?}\n",
        stats.failed_histories, stats.violations
    ));
    t.push_str(&format!("- wall time: {:.0?}\n", wall));
    println!("{t}");
}

/// CI size by default; a soak with `JSO_HISTORIES=<n>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_histories() {
    let _one = SUITES.lock().await;
    let Some(env) = setup().await else {
        return;
    };
    let started = Instant::now();
    let len = env_u64("JSO_HISTORY_LEN").map_or(DEFAULT_LEN, |n| n as usize);
    let keep = std::env::var("JSO_HISTORY_KEEP")
        .ok()
        .map(|k| parse_keep(&k));
    let seeds: Vec<u64> = if let Some(seed) = env_u64("JSO_HISTORY_SEED") {
        vec![seed]
    } else {
        let count = env_u64("JSO_HISTORIES").map_or(FIXED_SEEDS.len() + 1, |n| n as usize);
        let base: u64 = rand::random::<u64>() >> 12;
        eprintln!("histories: fresh seeds from {base} (replay one with JSO_HISTORY_SEED=<seed>)");
        FIXED_SEEDS
            .iter()
            .copied()
            .chain((0..).map(|i| base + i))
            .take(count)
            .collect()
    };
    let budget = env_u64("JSO_HISTORY_SHRINK").unwrap_or(6);
    // `JSO_HISTORY_MUTANTS` runs the random histories against a deliberately broken
    // operator (debug builds): does the generator find the fault on its own?
    let mutants = std::env::var("JSO_HISTORY_MUTANTS")
        .ok()
        .filter(|m| !m.is_empty());
    if let Some(m) = &mutants {
        eprintln!("histories: the operator runs with mutants {m}");
    }
    // Two replicas electing a leader, as the chart can run them: a kill of the leader
    // is a handover. `JSO_HISTORY_REPLICAS=1` runs one process (restarts at once).
    let replicas = env_u64("JSO_HISTORY_REPLICAS").map_or(2, |n| n.max(1) as usize);
    let mut bench = Bench::new(
        env.clone(),
        "histories-operator",
        mutants.as_deref(),
        replicas,
    )
    .await;
    let mut stats = Stats::default();
    let mut failures = Vec::new();
    for (n, &seed) in seeds.iter().enumerate() {
        let all = actions::generate(seed, len);
        let steps: Vec<Step> = match &keep {
            Some(k) => k.iter().filter_map(|&i| all.get(i).cloned()).collect(),
            None => all.clone(),
        };
        let t0 = Instant::now();
        let run = bench.run(&steps).await;
        stats.add(&run.stats);
        eprintln!(
            "histories: {}/{} seed {seed}: {} ({:.1?})",
            n + 1,
            seeds.len(),
            if run.failed() {
                format!("FAILED {:?}", run.invariants())
            } else {
                "ok".into()
            },
            t0.elapsed()
        );
        if !run.failed() {
            if std::env::var("JSO_HISTORY_VERBOSE").is_ok_and(|v| v == "1") {
                eprintln!("{}", run.journal.join("\n"));
            }
            continue;
        }
        stats.failed_histories += 1;
        report(seed, keep.as_deref(), &steps, &run);
        let mut line = format!("seed {seed}: {:?}", run.invariants());
        if keep.is_none() && budget > 0 {
            let mut shrink_stats = Stats::default();
            if let Some((k, shrunk)) = shrink(
                &mut bench,
                &all,
                &run.invariants(),
                budget,
                &mut shrink_stats,
            )
            .await
            {
                let shrunk_steps: Vec<Step> = k.iter().map(|&i| all[i].clone()).collect();
                eprintln!("histories: seed {seed} shrunk to {} actions:", k.len());
                report(seed, Some(&k), &shrunk_steps, &shrunk);
                line.push_str(&format!(" (shrunk: JSO_HISTORY_KEEP={})", keep_text(&k)));
            }
        }
        failures.push(line);
    }
    bench.restore().await;
    figures(
        "Randomized histories",
        &stats,
        started.elapsed(),
        &seeds,
        len,
    );
    println!(
        "command: JSO_REQUIRE_E2E=1 JSO_HISTORIES={} JSO_HISTORY_LEN={len} cargo test --test histories randomized_histories -- --nocapture",
        seeds.len()
    );
    drop(env);
    assert!(
        failures.is_empty(),
        "{} failing histories:\n- {}",
        failures.len(),
        failures.join("\n- ")
    );
}

fn step(action: Action, pause_ms: u16) -> Step {
    Step { action, pause_ms }
}

/// The aimed history that shows each mutant, and the invariant that must catch it.
fn mutant_cases() -> Vec<(&'static str, &'static str, Vec<Step>)> {
    let create = |obj, name| Action::Create {
        obj,
        name,
        adopt: false,
        retain: false,
        two_keys: false,
    };
    let synced = |obj| Action::Wait {
        obj,
        until: Until::Synced,
    };
    vec![
        (
            "keep-refused-claim,cleanup-trusts-claim",
            world::PERSON_UNTOUCHED,
            vec![
                step(create(0, 0), 0),
                step(synced(0), 0),
                // The person's secret right after a listing, the JujuSecret at once.
                step(
                    Action::StaleClash {
                        obj: 1,
                        name: 1,
                        gitops: true,
                        adopt: false,
                    },
                    0,
                ),
                step(
                    Action::Wait {
                        obj: 1,
                        until: Until::Conflict,
                    },
                    0,
                ),
                step(Action::Delete { obj: 1 }, 0),
            ],
        ),
        (
            "retain-removes-secret",
            world::RETAIN_KEEPS,
            vec![
                step(
                    Action::Create {
                        obj: 0,
                        name: 0,
                        adopt: false,
                        retain: true,
                        two_keys: false,
                    },
                    0,
                ),
                step(synced(0), 0),
                step(Action::Delete { obj: 0 }, 0),
            ],
        ),
        (
            "create-twice",
            world::ONE_PER_OBJECT,
            vec![step(create(0, 0), 0), step(synced(0), 0)],
        ),
        (
            "status-wrong-secret-id",
            world::STATUS_AGREES,
            vec![step(create(0, 0), 0), step(synced(0), 0)],
        ),
        (
            "delete-leaves-secret",
            world::DELETE_REMOVES,
            vec![
                step(create(0, 0), 0),
                step(synced(0), 0),
                step(Action::Delete { obj: 0 }, 0),
            ],
        ),
        (
            "skip-content-update",
            world::READY_MATCHES,
            vec![
                step(create(0, 0), 0),
                step(synced(0), 0),
                step(
                    Action::EditContent {
                        obj: 0,
                        reuse: None,
                    },
                    0,
                ),
                step(synced(0), 0),
            ],
        ),
        (
            "revoke-unlisted",
            world::GRANTS_UNION,
            vec![
                step(create(0, 0), 0),
                step(synced(0), 0),
                step(Action::PersonGrant { name: 0, app: 0 }, 0),
                step(
                    Action::GrantCreate {
                        grant: 0,
                        obj: 0,
                        apps: 2,
                    },
                    0,
                ),
            ],
        ),
        (
            "log-values",
            world::NO_LEAK,
            vec![step(create(0, 0), 0), step(synced(0), 0)],
        ),
    ]
}

/// The tester's self-test: each deliberate fault of src/controller/mutants.rs is found
/// by the invariant meant for it; the same histories pass against the real operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tester_catches_mutants() {
    if !cfg!(debug_assertions) {
        eprintln!("histories: mutants exist in debug builds only; skipped");
        return;
    }
    let _one = SUITES.lock().await;
    let Some(env) = setup().await else {
        return;
    };
    let mut missed = Vec::new();
    let mut stats = Stats::default();
    let started = Instant::now();
    // The control: the aimed histories find nothing against the real operator.
    let mut bench = Bench::new(env.clone(), "control-operator", None, 1).await;
    for (mutants, _, steps) in mutant_cases() {
        let run = bench.run(&steps).await;
        stats.add(&run.stats);
        if run.failed() {
            report(0, None, &steps, &run);
            missed.push(format!(
                "control for {mutants}: the real operator fails the aimed history: {:?}",
                run.invariants()
            ));
        } else {
            eprintln!("histories: control for {mutants}: ok");
        }
    }
    bench.restore().await;
    for (mutants, invariant, steps) in mutant_cases() {
        let mut bench = Bench::new(
            env.clone(),
            &format!("mutant-{}", mutants.replace(',', "+")),
            Some(mutants),
            1,
        )
        .await;
        let run = bench.run(&steps).await;
        stats.add(&run.stats);
        let caught = run.violations.iter().any(|v| v.invariant == invariant);
        eprintln!(
            "histories: mutant {mutants}: {} (violations {:?})",
            if caught {
                format!("CAUGHT by {invariant}")
            } else {
                "MISSED".into()
            },
            run.invariants()
        );
        for v in &run.violations {
            eprintln!("    [{}] {}", v.invariant, v.detail);
        }
        if !caught {
            report(0, None, &steps, &run);
            missed.push(format!(
                "mutant {mutants} not caught by {invariant}: {:?}",
                run.invariants()
            ));
        }
        bench.restore().await;
    }
    figures("Mutant self-test", &stats, started.elapsed(), &[], 0);
    drop(env);
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}
