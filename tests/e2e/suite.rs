//! The end-to-end suites' runner: every scenario is its own test (libtest-mimic), and the
//! scenarios of one group share one environment, brought up when the group's first test
//! runs and taken down after its last. `cargo test --test e2e <name>` runs one scenario,
//! the closing line counts scenarios, and no environment variable can empty a run.
//!
//! Tests run one at a time, in the order given: a group's closing checks (leak scan,
//! reasons, SIGTERM) come after its scenarios.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};

/// A scenario or a closing check of a group.
pub type Step<S> = fn(Arc<S>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// What runs after each scenario of a group, with the scenario's name: an `Err` fails
/// that scenario (e.g. the operator had exited).
pub type AfterEach<S> =
    fn(Arc<S>, &'static str) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Brings a group's environment up: `Ok(None)` when it cannot start here and need not
/// (the group's tests then pass as skipped, with the reason printed); `Err` when it must
/// and cannot (CI).
pub type Setup<S> = fn() -> Pin<Box<dyn Future<Output = Result<Option<Arc<S>>, String>>>>;

enum Slot<S> {
    NotStarted,
    Skipped,
    Up(Arc<S>),
}

/// Scenarios sharing one environment.
pub struct Group<S> {
    /// Prefix of the tests' names (`<prefix>::<scenario>`).
    pub prefix: &'static str,
    pub setup: Setup<S>,
    pub scenarios: Vec<(&'static str, Step<S>)>,
    pub after_each: AfterEach<S>,
    /// Checks after every scenario, in order; the environment goes after the last.
    pub closing: Vec<(&'static str, Step<S>)>,
    /// Bound of one step.
    pub timeout: Duration,
}

/// The message of a panic.
pub fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    match p.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p
            .downcast_ref::<&str>()
            .map_or_else(|| "panic".to_owned(), |s| (*s).to_owned()),
    }
}

/// Runs the groups as tests and returns the process's exit code.
pub fn run<S: Send + Sync + 'static>(groups: Vec<Group<S>>) -> ExitCode {
    let mut args = Arguments::from_args();
    // One at a time: a group's steps share an environment and its closing checks read
    // what every scenario left.
    args.test_threads = Some(1);
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime"),
    );
    let mut trials = Vec::new();
    let mut cells = Vec::new();
    for group in groups {
        let cell: Arc<Mutex<Slot<S>>> = Arc::new(Mutex::new(Slot::NotStarted));
        cells.push(cell.clone());
        let last = group.closing.len().saturating_sub(1);
        let steps = group
            .scenarios
            .iter()
            .map(|(n, s)| (*n, *s, false, false))
            .chain(
                group
                    .closing
                    .iter()
                    .enumerate()
                    .map(|(i, (n, s))| (*n, *s, true, i == last)),
            )
            .collect::<Vec<_>>();
        for (name, step, closing, drops_env) in steps {
            let (runtime, cell) = (runtime.clone(), cell.clone());
            let (setup, after_each, timeout) = (group.setup, group.after_each, group.timeout);
            trials.push(Trial::test(
                format!("{}::{name}", group.prefix),
                move || -> Result<(), Failed> {
                    runtime.block_on(async move {
                        let existing = match &*cell.lock().unwrap_or_else(|p| p.into_inner()) {
                            Slot::NotStarted => None,
                            Slot::Skipped => return Ok(()),
                            Slot::Up(env) => Some(env.clone()),
                        };
                        let env = match existing {
                            Some(env) => env,
                            None => match setup().await.map_err(Failed::from)? {
                                Some(env) => {
                                    *cell.lock().unwrap_or_else(|p| p.into_inner()) =
                                        Slot::Up(env.clone());
                                    env
                                }
                                None => {
                                    *cell.lock().unwrap_or_else(|p| p.into_inner()) = Slot::Skipped;
                                    return Ok(());
                                }
                            },
                        };
                        let t0 = Instant::now();
                        let mut task = tokio::spawn(step(env.clone()));
                        let outcome = match tokio::time::timeout(timeout, &mut task).await {
                            Ok(Ok(())) => Ok(()),
                            Ok(Err(e)) if e.is_panic() => Err(panic_text(e.into_panic())),
                            Ok(Err(e)) => Err(format!("task failed: {e}")),
                            Err(_) => {
                                task.abort();
                                Err(format!("timed out after {timeout:?}"))
                            }
                        };
                        eprintln!(
                            "e2e: {name}: {} ({:.1?})",
                            if outcome.is_ok() { "ok" } else { "FAILED" },
                            t0.elapsed()
                        );
                        let after = if closing {
                            Ok(())
                        } else {
                            after_each(env.clone(), name).await
                        };
                        drop(env);
                        if drops_env {
                            // The apiserver, the emulator and the operator stop here.
                            let slot = std::mem::replace(
                                &mut *cell.lock().unwrap_or_else(|p| p.into_inner()),
                                Slot::NotStarted,
                            );
                            drop(slot);
                        }
                        outcome.and(after).map_err(Failed::from)
                    })
                },
            ));
        }
    }
    let conclusion = libtest_mimic::run(&args, trials);
    let _runtime = runtime.enter();
    for cell in cells {
        let slot = std::mem::replace(
            &mut *cell.lock().unwrap_or_else(|p| p.into_inner()),
            Slot::NotStarted,
        );
        drop(slot);
    }
    conclusion.exit_code()
}
