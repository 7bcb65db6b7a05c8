//! Fault injection: dropped connections, slow responses, failing calls and unreachable
//! secret backends.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use super::rpc::RpcError;

/// A delay applied to responses, optionally only for one facade or method.
#[derive(Debug, Clone)]
struct DelayRule {
    facade: Option<String>,
    method: Option<String>,
    delay: Duration,
}

/// A pending injected failure.
#[derive(Debug, Clone)]
struct FailRule {
    remaining: u64,
    error: RpcError,
}

#[derive(Debug, Default)]
struct FaultTable {
    delays: Vec<DelayRule>,
    /// `(facade, method)` → how long the answer waits after the call took effect.
    answer_delays: HashMap<(String, String), Duration>,
    failures: HashMap<(String, String), FailRule>,
    unreachable: HashSet<String>,
    /// How long after a model's `secret-backend` changes its revisions move.
    drain_delay: Duration,
}

/// Handle to the emulator's fault switches. Cloning gives another handle to the same
/// switches.
#[derive(Debug, Clone)]
pub struct Faults {
    table: Arc<Mutex<FaultTable>>,
    drop_tx: Arc<watch::Sender<u64>>,
    /// Cleared to behave like a controller before Juju 3.6 (see [`Faults::set_checksums`]).
    checksums: Arc<std::sync::atomic::AtomicBool>,
}

impl Default for Faults {
    fn default() -> Self {
        Self::new()
    }
}

impl Faults {
    /// Fresh switches: nothing injected.
    pub fn new() -> Self {
        let (drop_tx, _) = watch::channel(0);
        Self {
            table: Arc::default(),
            drop_tx: Arc::new(drop_tx),
            checksums: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        }
    }

    /// Content checksums on (Juju 3.6, the default) or off, as on a controller before
    /// Juju 3.6: ListSecrets reports no `latest-revision-checksum` (sent empty, as 3.6
    /// does for revisions written before it; clients read both as "no checksum"), and
    /// UpdateSecrets makes a new revision even for content identical to the latest.
    /// Not a fault, but a behaviour tests switch the same way.
    pub fn set_checksums(&self, on: bool) {
        self.checksums
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether content checksums are on.
    pub fn checksums(&self) -> bool {
        self.checksums.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How long after a model's `secret-backend` changes Juju's drain moves its existing
    /// revisions to the new backend. Zero (the default) moves them at once; Juju does it
    /// asynchronously, so until then listings, `num-secrets` and the in-use refusal of
    /// RemoveSecretBackends still show the old backend.
    pub fn set_drain_delay(&self, delay: Duration) {
        self.table().drain_delay = delay;
    }

    /// The drain delay (see [`Faults::set_drain_delay`]).
    pub fn drain_delay(&self) -> Duration {
        self.table().drain_delay
    }

    fn table(&self) -> MutexGuard<'_, FaultTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes every open API websocket now. Clients see the connection go away and must
    /// reconnect and log in again.
    pub fn drop_connections(&self) {
        self.drop_tx.send_modify(|n| *n += 1);
    }

    /// A receiver that changes whenever [`Faults::drop_connections`] is called.
    pub(crate) fn drop_signal(&self) -> watch::Receiver<u64> {
        self.drop_tx.subscribe()
    }

    /// Delays every response by `delay` (zero removes the delay).
    pub fn set_delay(&self, delay: Duration) {
        self.set_delay_for(None, None, delay);
    }

    /// Delays the responses of one facade (and optionally one method) by `delay`; zero
    /// removes that rule.
    pub fn set_delay_for(&self, facade: Option<&str>, method: Option<&str>, delay: Duration) {
        let mut t = self.table();
        let facade = facade.map(str::to_owned);
        let method = method.map(str::to_owned);
        t.delays
            .retain(|r| !(r.facade == facade && r.method == method));
        if !delay.is_zero() {
            t.delays.push(DelayRule {
                facade,
                method,
                delay,
            });
        }
    }

    /// Lets calls of `facade.method` take effect at once but holds their answer back by
    /// `delay` (zero removes the rule): a client killed meanwhile never learns that its
    /// write happened, the window a crash-safety test aims at.
    pub fn set_answer_delay_for(&self, facade: &str, method: &str, delay: Duration) {
        let mut t = self.table();
        let key = (facade.to_owned(), method.to_owned());
        if delay.is_zero() {
            t.answer_delays.remove(&key);
        } else {
            t.answer_delays.insert(key, delay);
        }
    }

    /// How long the answer of a call that took effect waits.
    pub(crate) fn answer_delay_for(&self, facade: &str, method: &str) -> Duration {
        self.table()
            .answer_delays
            .get(&(facade.to_owned(), method.to_owned()))
            .copied()
            .unwrap_or_default()
    }

    /// The delay for a call: the most specific matching rule wins.
    pub(crate) fn delay_for(&self, facade: &str, method: &str) -> Duration {
        let t = self.table();
        let mut best: Option<(u8, Duration)> = None;
        for r in &t.delays {
            let facade_ok = r.facade.as_deref().is_none_or(|f| f == facade);
            let method_ok = r.method.as_deref().is_none_or(|m| m == method);
            if facade_ok && method_ok {
                let score = u8::from(r.facade.is_some()) + u8::from(r.method.is_some());
                if best.is_none_or(|(s, _)| score > s) {
                    best = Some((score, r.delay));
                }
            }
        }
        best.map(|(_, d)| d).unwrap_or_default()
    }

    /// Makes the next `count` calls of `facade.method` fail with a top-level error frame
    /// carrying `code` and `message`.
    pub fn fail_next(&self, facade: &str, method: &str, count: u64, code: &str, message: &str) {
        let mut t = self.table();
        let key = (facade.to_owned(), method.to_owned());
        if count == 0 {
            t.failures.remove(&key);
        } else {
            t.failures.insert(
                key,
                FailRule {
                    remaining: count,
                    error: RpcError::new(message, code),
                },
            );
        }
    }

    /// Takes one injected failure for this call, if any is pending.
    pub(crate) fn take_failure(&self, facade: &str, method: &str) -> Option<RpcError> {
        let mut t = self.table();
        let key = (facade.to_owned(), method.to_owned());
        let rule = t.failures.get_mut(&key)?;
        rule.remaining = rule.remaining.saturating_sub(1);
        let error = rule.error.clone();
        if rule.remaining == 0 {
            t.failures.remove(&key);
        }
        Some(error)
    }

    /// Makes the named secret backend reachable or not. An unreachable backend fails its
    /// ping (AddSecretBackends, UpdateSecretBackends, ModelSet `secret-backend`), shows
    /// status `error` in ListSecretBackends, and cannot store or return content.
    pub fn set_backend_reachable(&self, name: &str, reachable: bool) {
        let mut t = self.table();
        if reachable {
            t.unreachable.remove(name);
        } else {
            t.unreachable.insert(name.to_owned());
        }
    }

    /// `None` if the backend answers its ping, else the failure text.
    pub(crate) fn ping_backend(&self, name: &str) -> Option<String> {
        self.table()
            .unreachable
            .contains(name)
            .then(|| "backend not reachable: dial tcp: connection refused".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_delay_wins() {
        let f = Faults::new();
        f.set_delay(Duration::from_millis(5));
        f.set_delay_for(Some("Secrets"), None, Duration::from_millis(50));
        f.set_delay_for(
            Some("Secrets"),
            Some("ListSecrets"),
            Duration::from_millis(500),
        );
        assert_eq!(f.delay_for("Pinger", "Ping"), Duration::from_millis(5));
        assert_eq!(
            f.delay_for("Secrets", "CreateSecrets"),
            Duration::from_millis(50)
        );
        assert_eq!(
            f.delay_for("Secrets", "ListSecrets"),
            Duration::from_millis(500)
        );
        f.set_delay(Duration::ZERO);
        assert_eq!(f.delay_for("Pinger", "Ping"), Duration::ZERO);
    }

    #[test]
    fn fail_next_counts_down() {
        let f = Faults::new();
        f.fail_next("Secrets", "ListSecrets", 2, "not found", "gone");
        assert!(f.take_failure("Secrets", "ListSecrets").is_some());
        assert!(f.take_failure("Secrets", "ListSecrets").is_some());
        assert!(f.take_failure("Secrets", "ListSecrets").is_none());
    }
}
